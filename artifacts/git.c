#include "git.h"

#include <git2.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "redact.h"

static int git_fail(struct cp_error *err, const char *what)
{
	const git_error *e = git_error_last();
	return cp_error_set(err, EXIT_USAGE, "git: %s: %s", what,
			    e && e->message ? e->message : "unknown error");
}

static void repo_free(git_repository **r)
{
	git_repository_free(*r);
}
#define cleanup_repo __attribute__((cleanup(repo_free)))

static int open_repo(git_repository **out, const char *dir, bool *found, struct cp_error *err)
{
	int rc = git_repository_open_ext(out, dir, 0, NULL);
	*found = rc == 0;
	if (rc == GIT_ENOTFOUND) {
		*out = NULL;
		return 0;
	}
	return rc < 0 ? git_fail(err, "opening the repository") : 0;
}

char *git_strip_credentials(const char *url)
{
	const char *user, *colon, *at;
	if (!url_find_userinfo(url, &user, &colon, &at))
		return xstrdup(url); /* scp-like user@host:path carries no secret */
	return xasprintf("%.*s%s", (int)(user - url), url, at + 1);
}

static int dirty_cb(const char *path, unsigned int flags, void *payload)
{
	(void)flags;
	if (str_has_prefix(path, ".cpipe/") || strstr(path, "/.cpipe/"))
		return 0;
	*(bool *)payload = true;
	return 1; /* one is enough */
}

static int facts_read(struct git_facts *out, const char *dir, struct cp_error *err)
{
	memset(out, 0, sizeof(*out));
	cleanup_repo git_repository *repo = NULL;
	bool found;
	if (open_repo(&repo, dir, &found, err) < 0)
		return -1;
	if (!found || git_repository_is_bare(repo))
		return 0;
	out->present = true;
	out->workdir = xstrdup(git_repository_workdir(repo));

	git_oid oid;
	if (git_reference_name_to_id(&oid, repo, "HEAD") == 0) {
		char hex[GIT_OID_HEXSZ + 1];
		git_oid_tostr(hex, sizeof(hex), &oid);
		out->commit = xstrdup(hex);
	}
	git_reference *head = NULL;
	if (git_repository_head(&head, repo) == 0) {
		if (git_reference_is_branch(head))
			out->branch = xstrdup(git_reference_shorthand(head));
		git_reference_free(head);
	} else if (git_repository_head_unborn(repo) == 1) {
		git_reference *sym = NULL;
		if (git_reference_lookup(&sym, repo, "HEAD") == 0) {
			const char *target = git_reference_symbolic_target(sym);
			if (target && str_has_prefix(target, "refs/heads/"))
				out->branch = xstrdup(target + 11);
			git_reference_free(sym);
		}
	}

	git_status_options so;
	git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
	so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	so.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
	int rc = git_status_foreach_ext(repo, &so, dirty_cb, &out->dirty);
	if (rc < 0 && rc != 1 && rc != GIT_EUSER) {
		git_facts_free(out);
		return git_fail(err, "reading the status");
	}

	git_remote *remote = NULL;
	if (git_remote_lookup(&remote, repo, "origin") != 0) {
		git_strarray names = {0};
		if (git_remote_list(&names, repo) == 0 && names.count > 0)
			git_remote_lookup(&remote, repo, names.strings[0]);
		git_strarray_dispose(&names);
	}
	if (remote) {
		if (git_remote_url(remote))
			out->remote = git_strip_credentials(git_remote_url(remote));
		git_remote_free(remote);
	}
	return 0;
}

/* libgit2's global state lives only as long as one call, so a run leaves
 * nothing of it behind (LeakSanitizer would rightly complain). */
int git_facts_read(struct git_facts *out, const char *dir, struct cp_error *err)
{
	git_libgit2_init();
	int rc = facts_read(out, dir, err);
	git_libgit2_shutdown();
	return rc;
}

void git_facts_free(struct git_facts *g)
{
	free(g->commit);
	free(g->branch);
	free(g->remote);
	free(g->workdir);
	memset(g, 0, sizeof(*g));
}

static int read_at(char **out, size_t *len, const char *abspath, const char *rev,
		   struct cp_error *err)
{
	cleanup_free char *dir = xstrdup(abspath);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	cleanup_repo git_repository *repo = NULL;
	bool found;
	if (open_repo(&repo, dir, &found, err) < 0)
		return -1;
	if (!found)
		return cp_error_set(err, EXIT_USAGE, "%s is not inside a git repository", abspath);
	const char *workdir = git_repository_workdir(repo);
	if (!workdir || !str_has_prefix(abspath, workdir))
		return cp_error_set(err, EXIT_USAGE, "%s is outside the work tree", abspath);
	cleanup_free char *spec = xasprintf("%s:%s", rev, abspath + strlen(workdir));
	git_object *obj = NULL;
	if (git_revparse_single(&obj, repo, spec) < 0)
		return git_fail(err, spec);
	if (git_object_type(obj) != GIT_OBJECT_BLOB) {
		git_object_free(obj);
		return cp_error_set(err, EXIT_USAGE, "git: %s is not a file", spec);
	}
	const git_blob *blob = (const git_blob *)obj;
	size_t n = (size_t)git_blob_rawsize(blob);
	*out = xstrndup(git_blob_rawcontent(blob), n);
	if (len)
		*len = n;
	git_object_free(obj);
	return 0;
}

int git_read_at(char **out, size_t *len, const char *abspath, const char *rev,
		struct cp_error *err)
{
	git_libgit2_init();
	int rc = read_at(out, len, abspath, rev, err);
	git_libgit2_shutdown();
	return rc;
}
