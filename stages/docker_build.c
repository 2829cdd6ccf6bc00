/* Image builds: the context as a tar written with libarchive (honouring
 * .dockerignore the way the docker CLI does), sent to POST /build, whose
 * JSON progress lines stream out as log lines. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/dockerignore.h"
#include "../lib/fs.h"
#include "docker_internal.h"

/* Added under this name when the Dockerfile lies outside the context. */
#define OUTSIDE_DOCKERFILE ".cpipe.Dockerfile"

/* ---- the context tar ---- */

struct tar {
	struct archive *a;
	const struct dockerignore *ig;
	const char *root;
	const char *dockerfile; /* relative; kept even when ignored */
	const char *skip;       /* relative; never sent (cpipe's state) */
	bool dockerfile_added;
	struct cp_error *err;
};

static int tar_error(struct tar *t, const char *what)
{
	return cp_error_set(t->err, EXIT_USAGE, "writing the build context (%s): %s", what,
			    archive_error_string(t->a));
}

/* Adds host file `path` as `name`. */
static int tar_add(struct tar *t, const char *path, const char *name, const struct stat *st)
{
	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode) && !S_ISLNK(st->st_mode))
		return 0; /* sockets, fifos, devices: docker leaves them out too */
	struct archive_entry *e = archive_entry_new();
	archive_entry_copy_stat(e, st);
	archive_entry_set_pathname(e, name);
	/* As the docker CLI does: files in the context belong to root. */
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_nlink(e, 1);
	int rc = 0;
	int fd = -1;
	if (S_ISLNK(st->st_mode)) {
		char target[4096];
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0) {
			rc = cp_error_errno(t->err, EXIT_USAGE, "reading link %s", path);
			goto out;
		}
		target[n] = '\0';
		archive_entry_set_symlink(e, target);
	} else if (S_ISREG(st->st_mode) && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = cp_error_errno(t->err, EXIT_USAGE, "build context: opening %s", path);
		goto out;
	}
	if (archive_write_header(t->a, e) != ARCHIVE_OK) {
		rc = tar_error(t, name);
		goto out;
	}
	if (fd >= 0) {
		char buf[65536];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
			if (n > 0 && archive_write_data(t->a, buf, (size_t)n) < 0) {
				rc = tar_error(t, name);
				goto out;
			}
		}
		if (n < 0) {
			rc = cp_error_errno(t->err, EXIT_USAGE, "build context: reading %s", path);
			goto out;
		}
	}
	if (strcmp(name, t->dockerfile) == 0)
		t->dockerfile_added = true;
out:
	if (fd >= 0)
		close(fd);
	archive_entry_free(e);
	return rc;
}

static int tar_dir(struct tar *t, const char *rel)
{
	cleanup_free char *dir = *rel ? path_join(t->root, rel) : xstrdup(t->root);
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		return cp_error_errno(t->err, EXIT_USAGE, "build context: reading %s", dir);
	int rc = 0;
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		if (rc < 0 || !strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		cleanup_free char *r = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
		cleanup_free char *path = path_join(t->root, r);
		struct stat st;
		if (lstat(path, &st) < 0) {
			rc = cp_error_errno(t->err, EXIT_USAGE, "build context: %s", path);
			continue;
		}
		if (t->skip && !strcmp(r, t->skip))
			continue;
		bool keep = !strcmp(r, t->dockerfile) || !strcmp(r, ".dockerignore");
		if (!keep && dockerignore_match(t->ig, r)) {
			/* A later "!pattern" may take back something inside. */
			if (S_ISDIR(st.st_mode) && t->ig->has_negations)
				rc = tar_dir(t, r);
			continue;
		}
		rc = tar_add(t, path, r, &st);
		if (rc == 0 && S_ISDIR(st.st_mode))
			rc = tar_dir(t, r);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* The Dockerfile's name inside the context, and its host path. */
static void dockerfile_place(const char *dir, const char *dockerfile, char **name_out,
			     char **path_out)
{
	char *abs = path_absolute(dir, dockerfile && *dockerfile ? dockerfile : "Dockerfile");
	size_t n = strlen(dir);
	if (abs && strncmp(abs, dir, n) == 0 && abs[n] == '/')
		*name_out = xstrdup(abs + n + 1);
	else
		*name_out = xstrdup(OUTSIDE_DOCKERFILE);
	*path_out = abs ? abs : xstrdup(dockerfile);
}

int docker_context_tar(FILE *f, const char *dir, const char *dockerfile, const char *skip,
		       struct cp_error *err)
{
	struct dockerignore ig = {0};
	if (dockerignore_load(&ig, dir, err) < 0)
		return -1;
	cleanup_free char *df_name = NULL, *df_path = NULL;
	dockerfile_place(dir, dockerfile, &df_name, &df_path);
	size_t n = strlen(dir);
	const char *skip_rel = skip && strncmp(skip, dir, n) == 0 && skip[n] == '/' ? skip + n + 1
										     : NULL;
	struct tar t = {.a = archive_write_new(), .ig = &ig, .root = dir, .dockerfile = df_name,
			.skip = skip_rel, .err = err};
	archive_write_set_format_pax_restricted(t.a);
	int rc = 0;
	if (archive_write_open_FILE(t.a, f) != ARCHIVE_OK)
		rc = tar_error(&t, "open");
	if (rc == 0)
		rc = tar_dir(&t, "");
	if (rc == 0 && !t.dockerfile_added) {
		struct stat st;
		if (stat(df_path, &st) < 0)
			rc = cp_error_errno(err, EXIT_USAGE, "Dockerfile %s", df_path);
		else
			rc = tar_add(&t, df_path, df_name, &st);
	}
	if (rc == 0 && archive_write_close(t.a) != ARCHIVE_OK)
		rc = tar_error(&t, "close");
	archive_write_free(t.a);
	dockerignore_free(&ig);
	return rc;
}

/* ---- POST /build ---- */

struct build_out {
	FILE *out;
	const char *prefix;
	struct strbuf line; /* an unterminated "stream" line */
	char *id;
	char *step_container; /* the classic builder's container of the current RUN */
};

/* " ---> Running in 0123456789ab": the container the step runs in. */
static void note_step_container(struct build_out *bo, const char *s)
{
	const char *p = strstr(s, "Running in ");
	if (!p)
		return;
	p += strlen("Running in ");
	size_t n = strspn(p, "0123456789abcdef");
	if (n < 12)
		return;
	free(bo->step_container);
	bo->step_container = xstrndup(p, n);
}

static void out_text(struct build_out *bo, const char *s)
{
	for (const char *p = s; *p;) {
		const char *nl = strchr(p, '\n');
		if (!nl) {
			sb_adds(&bo->line, p);
			break;
		}
		sb_add(&bo->line, p, (size_t)(nl - p));
		if (bo->out == stderr)
			fflush(stdout); /* keep order with what was printed before */
		fprintf(bo->out, "%s%s\n", bo->prefix, sb_str(&bo->line));
		sb_reset(&bo->line);
		p = nl + 1;
	}
	fflush(bo->out);
}

static int build_msg(void *ud, const cJSON *msg)
{
	struct build_out *bo = ud;
	const char *s = docker_str(msg, "stream");
	if (s) {
		note_step_container(bo, s);
		out_text(bo, s);
	}
	const char *id = docker_str(cJSON_GetObjectItemCaseSensitive(msg, "aux"), "ID");
	if (id) {
		free(bo->id);
		bo->id = xstrdup(id);
	}
	const char *status = docker_str(msg, "status");
	if (status && !cJSON_GetObjectItemCaseSensitive(msg, "progress")) {
		out_text(bo, status);
		out_text(bo, "\n");
	}
	return 0;
}

static char *kv_json(const struct kvvec *kv, bool from_env)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < kv->n; i++) {
		const char *v = kv->v[i].value;
		if (!v && from_env)
			v = getenv(kv->v[i].key); /* compose: "args: [NAME]" takes the environment's */
		if (v)
			cJSON_AddStringToObject(o, kv->v[i].key, v);
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

int docker_build_image(char **id_out, struct docker *d, const struct build *b, const char *tag,
		       const struct kvvec *labels, const char *skip, FILE *out, const char *prefix,
		       struct docker_waker *waker, struct cp_error *err)
{
	cleanup_fclose FILE *f = tmpfile();
	if (!f)
		return cp_error_errno(err, EXIT_USAGE,
				      "creating a temporary file for the build context");
	if (docker_context_tar(f, b->context, b->dockerfile, skip, err) < 0)
		return -1;
	long long size = ftell(f);
	rewind(f);

	cleanup_free char *df_name = NULL, *df_path = NULL;
	dockerfile_place(b->context, b->dockerfile, &df_name, &df_path);
	struct strbuf q = STRBUF_INIT;
	char *e = docker_escape(d, tag);
	sb_addf(&q, "/build?rm=1&forcerm=1&t=%s", e);
	free(e);
	e = docker_escape(d, df_name);
	sb_addf(&q, "&dockerfile=%s", e);
	free(e);
	if (b->target && *b->target) {
		e = docker_escape(d, b->target);
		sb_addf(&q, "&target=%s", e);
		free(e);
	}
	char *j = kv_json(&b->args, true);
	e = docker_escape(d, j);
	sb_addf(&q, "&buildargs=%s", e);
	free(e);
	cJSON_free(j);
	j = kv_json(labels, false);
	e = docker_escape(d, j);
	sb_addf(&q, "&labels=%s", e);
	free(e);
	cJSON_free(j);

	struct build_out bo = {.out = out, .prefix = prefix ? prefix : ""};
	struct docker_req rq = {.method = "POST", .path = sb_str(&q), .upload = f,
				.upload_size = size, .idle = DOCKER_IDLE_AFTER_HEADERS,
				.answer_ms = DOCKER_BUILD_ANSWER_MS, .waker = waker};
	int rc = docker_json_stream(d, &rq, build_msg, &bo, NULL, err);
	if (bo.line.len)
		out_text(&bo, "\n");
	sb_free(&bo.line);
	sb_free(&q);
	if (rc < 0 && bo.step_container) {
		/* Given up (Ctrl-C, a lost stream): the daemon would remove the
		 * step's container only once it noticed, seconds later. (Not
		 * with `waker`: woken, it ends every request it is given.) */
		cleanup_free char *path = xasprintf("/containers/%s?force=1", bo.step_container);
		struct cp_error ignored = {0};
		docker_json(d, "DELETE", path, NULL, NULL, NULL, &ignored);
	}
	free(bo.step_container);
	if (rc < 0) {
		free(bo.id);
		return -1;
	}
	if (!bo.id) { /* older daemons say "Successfully built" only */
		cleanup_free char *path = xasprintf("/images/%s/json", tag);
		cJSON *img = NULL;
		if (docker_json(d, "GET", path, NULL, NULL, &img, err) < 0)
			return -1;
		const char *id = docker_str(img, "Id");
		bo.id = id ? xstrdup(id) : NULL;
		cJSON_Delete(img);
		if (!bo.id)
			return cp_error_set(err, EXIT_USAGE, "the build gave no image ID");
	}
	*id_out = bo.id;
	return 0;
}
