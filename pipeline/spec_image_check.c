/* What the local runtime checks of a planned stage before anything runs:
 * its Dockerfile was read, it has a command, and the command is on the
 * host under the PATH the stage will have. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "spec_image.h"

/* The local runtime's PATH for a stage that sets none (stages/local.c). */
#define LOCAL_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Commands Debian names differently, and the package that adds the name. */
static const struct {
	const char *name, *near, *package;
} renamed[] = {
	{"python", "python3", "python-is-python3"},
	{"pip", "pip3", "python3-pip"},
};

enum found { FOUND, MISSING, UNKNOWN };

/* Where stage directory `dir` is on the host: NULL when a volume or tmpfs
 * holds it, which only the run will fill. */
static char *host_dir(const struct stage *s, const char *dir)
{
	const struct mount *best = NULL;
	size_t blen = 0;
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount *m = &s->mounts[i];
		size_t n = m->target ? strlen(m->target) : 0;
		if (n && strncmp(dir, m->target, n) == 0 && (dir[n] == '/' || !dir[n]) && n > blen) {
			best = m;
			blen = n;
		}
	}
	if (!best)
		return xstrdup(dir);
	if (best->type != MOUNT_BIND)
		return NULL;
	return dir[blen] ? path_join(best->source, dir + blen + 1) : xstrdup(best->source);
}

static bool executable(const char *dir, const char *name)
{
	cleanup_free char *f = path_join(dir, name);
	struct stat st;
	return stat(f, &st) == 0 && S_ISREG(st.st_mode) && access(f, X_OK) == 0;
}

static enum found lookup(const struct stage *s, const char *path, const char *name,
			 char **where)
{
	cleanup_free char *copy = xstrdup(path);
	enum found r = MISSING;
	char *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if (d[0] != '/')
			continue;
		cleanup_free char *h = s ? host_dir(s, d) : xstrdup(d);
		if (!h) {
			r = UNKNOWN;
			continue;
		}
		if (executable(h, name)) {
			if (where)
				*where = path_join(d, name);
			return FOUND;
		}
	}
	return r;
}

/* "; the host has python3 (/usr/bin/python3): ..." or "". */
static char *near_names(const struct stage *s, const char *path, const char *name)
{
	struct strbuf sb = STRBUF_INIT;
	const char *pkg = NULL;
	struct strvec cands = {0};
	for (size_t i = 0; i < sizeof(renamed) / sizeof(*renamed); i++)
		if (strcmp(name, renamed[i].name) == 0) {
			strvec_push(&cands, renamed[i].near);
			pkg = renamed[i].package;
		}
	strvec_push_take(&cands, xasprintf("%s3", name));
	size_t n = strlen(name);
	while (n && (name[n - 1] == '.' || (name[n - 1] >= '0' && name[n - 1] <= '9')))
		n--;
	if (n && n < strlen(name))
		strvec_push_take(&cands, xstrndup(name, n));
	for (size_t i = 0; i < cands.n; i++) {
		char *where = NULL;
		if (i && strcmp(cands.v[i], cands.v[0]) == 0)
			continue;
		if (lookup(s, path, cands.v[i], &where) == FOUND) {
			sb_addf(&sb, "; the host has %s (%s): use \"%s\" in the stage's command", cands.v[i],
				where, cands.v[i]);
			free(where);
			break;
		}
	}
	if (pkg)
		sb_addf(&sb, "%s Debian's package %s provides \"%s\"", sb.len ? ", or install" : "; install",
			pkg, name);
	const char *host = getenv("PATH");
	char *where = NULL;
	if (host && lookup(NULL, host, name, &where) == FOUND) {
		cleanup_free char *dir = path_dirname(where);
		sb_addf(&sb, "; %s is in %s, which is on cpipe's PATH but not the stage's: add it "
			"to PATH in environment:", name, dir);
		free(where);
	}
	strvec_free(&cands);
	return sb_detach(&sb);
}

static int check_command(const struct stage *s, struct cp_error *err)
{
	const char *cmd = s->entrypoint.n ? s->entrypoint.v[0] : s->command.v[0];
	if (!*cmd || strchr(cmd, '/'))
		return 0;
	const struct kv *kv = kvvec_get(&s->environment, "PATH");
	const char *path = kv && kv->value ? kv->value : LOCAL_DEFAULT_PATH;
	if (lookup(s, path, cmd, NULL) != MISSING)
		return 0;
	cleanup_free char *hint = near_names(s, path, cmd);
	err->code = EXIT_USAGE;
	return cp_error_at(err, &s->mark,
			   "stage \"%s\": command \"%s\" is not on this host under the stage's "
			   "PATH (%s)%s; %s run the stage with --runtime docker",
			   s->name, cmd, path, hint, *hint ? "or" : "install it on the host, or");
}

int spec_image_check_local(const struct stage *s, struct cp_error *err)
{
	const struct stage_image *si = s->image_cfg;
	if (si && si->error) {
		err->code = EXIT_USAGE;
		return cp_error_set(err, "%s", si->error);
	}
	if (s->command.n || s->entrypoint.n)
		return check_command(s, err);
	err->code = EXIT_USAGE;
	if (si)
		return cp_error_at(err, &s->mark,
				   "stage \"%s\" has no command: its Dockerfile %s sets no CMD or "
				   "ENTRYPOINT, and the local runtime cannot know those of the base "
				   "image %s; add \"command: ...\" to the stage, or run it with "
				   "--runtime docker",
				   s->name, si->shown, si->base ? si->base : "");
	return cp_error_at(err, &s->mark,
			   "stage \"%s\" has no command, and the local runtime runs commands, not "
			   "images; add \"command: ...\" to the stage, or run it with --runtime "
			   "docker",
			   s->name);
}
