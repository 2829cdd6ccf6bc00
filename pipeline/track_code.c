/* Code is an input: the files of the project a stage runs. On the local
 * runtime, which builds no image, and on one that knows images only by name
 * (Kubernetes: a rebuilt image under the same tag looks the same), a stage
 * with build: is keyed on its Dockerfile and its build context (what
 * .dockerignore leaves in); on every
 * runtime, a file of the project the command names (`./catgif`, `bin/train`,
 * `sh train.sh`, `python train.py`, inside `sh -c "..."` too) is one of its
 * inputs. Editing either makes the stage stale, and status names the file
 * ("input ./train.py changed"). */
#include "track_internal.h"
#include "spec_image.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/dockerignore.h"
#include "../lib/fs.h"

/* A path relative to `base` when inside it, else NULL. */
static const char *inside(const char *path, const char *base)
{
	size_t n = strlen(base);
	if (strncmp(path, base, n) != 0 || (path[n] != '/' && path[n] != '\0'))
		return NULL;
	return path[n] ? path + n + 1 : "";
}

/* Where the stage finds container path `cpath` on the host: through the
 * bind mount holding it, or (local runtime, where the host's files are the
 * stage's) as it is. NULL when it is in an image or a volume. */
static char *host_of(const struct stage *s, const char *cpath, bool local)
{
	const struct mount *best = NULL;
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount *m = &s->mounts[i];
		if (inside(cpath, m->target) && (!best || strlen(m->target) > strlen(best->target)))
			best = m;
	}
	if (best && best->type == MOUNT_BIND) {
		const char *rel = inside(cpath, best->target);
		return *rel ? path_join(best->source, rel) : xstrdup(best->source);
	}
	return !best && local ? xstrdup(cpath) : NULL;
}

static void add_word(struct strvec *out, const struct pipeline *p, const struct stage *s,
		     const char *wd, const char *state_dir, const char *w, bool local)
{
	if (!*w || *w == '-' || strchr(w, '=') || strlen(w) > 4096)
		return;
	cleanup_free char *cpath = path_absolute(wd, w);
	cleanup_free char *host = cpath ? host_of(s, cpath, local) : NULL;
	struct stat st;
	if (!host || !inside(host, p->dir) || inside(host, state_dir) || stat(host, &st) < 0 ||
	    !S_ISREG(st.st_mode) || strvec_contains(out, host))
		return;
	strvec_push(out, host);
}

static bool is_shell(const char *argv0)
{
	const char *base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	return !strcmp(base, "sh") || !strcmp(base, "bash") || !strcmp(base, "dash") ||
	       !strcmp(base, "ash") || !strcmp(base, "zsh");
}

/* The words of `argv` that may name files; a shell's -c script is split
 * and looked into once. argv[0] without a '/' is found on PATH: skipped. */
static void scan_argv(struct strvec *out, const struct pipeline *p, const struct stage *s,
		      const char *wd, const char *state_dir, const struct strvec *argv,
		      bool local, int depth)
{
	for (size_t i = 0; i < argv->n && i < 64; i++) {
		const char *w = argv->v[i];
		if (i == 0 && !strchr(w, '/'))
			continue;
		if (depth == 0 && i > 0 && !strcmp(argv->v[i - 1], "-c") && is_shell(argv->v[0])) {
			struct strvec words = {0};
			struct cp_error ignored = {0};
			if (shell_split(&words, w, &ignored) == 0)
				scan_argv(out, p, s, wd, state_dir, &words, local, 1);
			strvec_free(&words);
			continue;
		}
		add_word(out, p, s, wd, state_dir, w, local);
	}
}

char *track_build_change(const struct pipeline *p, const struct stage *s, const cJSON *le,
			 const cJSON *keyobj)
{
	if (!s->build || !le)
		return NULL;
	cleanup_free char *ctx = track_ref_name(p, NULL, s->build->context);
	size_t n = strcmp(ctx, ".") ? strlen(ctx) : 0;
	const cJSON *was = cJSON_GetObjectItem(le, "inputs");
	const cJSON *now = cJSON_GetObjectItem(keyobj, "inputs");
	for (const cJSON *e = now ? now->child : NULL; e; e = e->next) {
		if (n && (strncmp(e->string, ctx, n) != 0 || e->string[n] != '/'))
			continue;
		const char *then = track_entry_digest(cJSON_GetObjectItem(was, e->string));
		if (!then || strcmp(then, cJSON_GetStringValue(e) ? cJSON_GetStringValue(e) : ""))
			return xstrdup(e->string);
	}
	return NULL;
}

int track_code_files(struct strvec *out, const struct pipeline *p, const struct stage *s,
		     const char *state_dir, const char *lock_path, bool local, bool build_files,
		     struct cp_error *err)
{
	size_t first = out->n;
	if (build_files && s->build) {
		const struct build *b = s->build;
		cleanup_free char *df = path_absolute(b->context, b->dockerfile ? b->dockerfile
									       : "Dockerfile");
		const char *df_rel = df ? inside(df, b->context) : NULL;
		const char *skip = inside(state_dir, b->context);
		struct stat st;
		if (s->image_cfg) {
			/* The Dockerfile reader knows what the image takes: only
			 * the context files its COPY/ADD bring in, and the
			 * Dockerfile itself. */
			if (spec_image_files(out, s, err) < 0)
				return cp_error_prefix(err, "stage \"%s\"", s->name);
			if (df && stat(df, &st) == 0)
				strvec_push(out, df);
		} else {
			struct strvec rel = {0};
			if (dockerignore_context_files(&rel, b->context,
						       df_rel ? df_rel : "Dockerfile", skip, err) < 0) {
				strvec_free(&rel);
				return cp_error_prefix(err, "stage \"%s\"", s->name);
			}
			for (size_t i = 0; i < rel.n; i++)
				strvec_push_take(out, path_join(b->context, rel.v[i]));
			strvec_free(&rel);
			if (df && !df_rel && stat(df, &st) == 0)
				strvec_push(out, df);
		}
	}
	/* In working_dir, else where the local runtime runs it (the project);
	 * an image's own WORKDIR is not known here: "/". */
	const char *dflt = local ? p->dir : "/";
	cleanup_free char *wd =
		path_absolute(p->dir, s->working_dir && *s->working_dir ? s->working_dir : dflt);
	if (!wd)
		return 0;
	struct strvec argv = {0};
	for (size_t i = 0; i < s->entrypoint.n; i++)
		strvec_push(&argv, s->entrypoint.v[i]);
	for (size_t i = 0; i < s->command.n; i++)
		strvec_push(&argv, s->command.v[i]);
	scan_argv(out, p, s, wd, state_dir, &argv, local, 0);
	strvec_free(&argv);
	/* cpipe writes the lock as stages end: never code. */
	for (size_t i = first; i < out->n; i++) {
		if (strcmp(out->v[i], lock_path) == 0) {
			free(out->v[i]);
			memmove(&out->v[i], &out->v[i + 1], (out->n - i - 1) * sizeof(char *));
			out->n--;
			break;
		}
	}
	return 0;
}
