/* The local runtime's reading of a stage's build: Dockerfile (see
 * spec_image.h): the image's config fills what the spec leaves unset, as
 * docker merges a service over its image, and COPY/ADD sources from the
 * build context become read-only binds, or what an empty named volume on
 * their destination is filled with. */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/dockerignore.h"
#include "../lib/fs.h"
#include "dockerfile.h"
#include "spec_image.h"

/* More read-only binds than this for one stage means a .dockerignore that
 * picks files one by one out of a big tree; the stage fails instead. */
#define IMAGE_MAX_BINDS 1024

void spec_image_free(struct stage_image *si)
{
	if (!si)
		return;
	free(si->dockerfile);
	free(si->shown);
	free(si->base);
	free(si->state);
	free(si->error);
	for (int i = 0; i < IMAGE_FIELDS; i++)
		free(si->origin[i]);
	for (size_t i = 0; i < si->nentries; i++) {
		free(si->entries[i].source);
		free(si->entries[i].dest);
	}
	free(si->entries);
	strvec_free(&si->warnings);
	free(si);
}

/* What one stage's reading needs. */
struct ctx {
	struct pipeline *p;
	struct stage *s;
	struct stage_image *si;
	const char *context; /* the build context, absolute */
	const char *state;   /* the project's .cpipe, never part of an image */
	struct dockerignore ig;
	size_t nuser;        /* mounts the spec declared (before ours) */
	char *fail;          /* the stage's error, first one wins */
};

static void stage_fail(struct ctx *c, int line, const char *fmt, ...) CP_PRINTF(3, 4);
static void stage_fail(struct ctx *c, int line, const char *fmt, ...)
{
	if (c->fail)
		return;
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	c->fail = line ? xasprintf("%s:%d: stage \"%s\": %s", c->si->shown, line, c->s->name, msg)
		       : xasprintf("%s: stage \"%s\": %s", c->si->shown, c->s->name, msg);
}

static void warn(struct ctx *c, int line, const char *fmt, ...) CP_PRINTF(3, 4);
static void warn(struct ctx *c, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	strvec_push_take(&c->si->warnings, xasprintf("%s:%d: %s", c->si->shown, line, msg));
}

/* `path` relative to `dir`: "" for dir itself, NULL when outside it. */
static const char *rel_to(const char *dir, const char *path)
{
	size_t n = strlen(dir);
	if (strncmp(path, dir, n) != 0)
		return NULL;
	if (!path[n])
		return "";
	if (n == 1 && dir[0] == '/')
		return path + 1;
	return path[n] == '/' ? path + n + 1 : NULL;
}

static bool under(const char *path, const char *dir)
{
	return rel_to(dir, path) != NULL;
}

static bool excluded(const struct ctx *c, const char *abs)
{
	if (c->state && under(abs, c->state))
		return true;
	const char *rel = rel_to(c->context, abs);
	return rel && *rel && dockerignore_match(&c->ig, rel);
}

/* ---- the image's config over the stage's unset fields ---- */

static void set_origin(struct ctx *c, enum image_field f, int line)
{
	free(c->si->origin[f]);
	c->si->origin[f] = xasprintf("%s:%d", c->si->shown, line);
}

static bool numeric(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* USER name[:group]: numeric ids always, names when the host has them. */
static bool host_knows_user(const char *user)
{
	const char *colon = strchr(user, ':');
	size_t n = colon ? (size_t)(colon - user) : strlen(user);
	cleanup_free char *name = xstrndup(user, n);
	if (!numeric(name, n) && !getpwnam(name))
		return false;
	if (!colon)
		return true;
	return numeric(colon + 1, strlen(colon + 1)) || getgrnam(colon + 1);
}

static void fill_fields(struct ctx *c, const struct dockerfile_image *img)
{
	struct stage *s = c->s;
	if (!s->has_entrypoint && img->has_entrypoint && !s->entrypoint.n) {
		strvec_copy(&s->entrypoint, &img->entrypoint);
		set_origin(c, IMAGE_ENTRYPOINT, img->entrypoint_line);
	}
	/* As docker: a service's entrypoint: drops the image's CMD. */
	if (!s->has_command && !s->has_entrypoint && img->has_cmd && !s->command.n) {
		strvec_copy(&s->command, &img->cmd);
		set_origin(c, IMAGE_COMMAND, img->cmd_line);
	}
	if (!(s->working_dir && *s->working_dir) && img->workdir) {
		free(s->working_dir);
		s->working_dir = xstrdup(img->workdir);
		set_origin(c, IMAGE_WORKING_DIR, img->workdir_line);
	}
	if (!(s->user && *s->user) && img->user && *img->user) {
		if (host_knows_user(img->user)) {
			free(s->user);
			s->user = xstrdup(img->user);
			set_origin(c, IMAGE_USER, img->user_line);
		} else {
			warn(c, img->user_line, "USER %s: no such user or group on the host (a RUN "
			     "step makes it in the image), so the stage runs as cpipe's user; give "
			     "it user: to choose", img->user);
		}
	}
	bool added = false;
	for (size_t i = 0; i < img->env.n; i++)
		if (!kvvec_get(&s->environment, img->env.v[i].key)) {
			kvvec_set(&s->environment, img->env.v[i].key, img->env.v[i].value);
			added = true;
		}
	if (added)
		set_origin(c, IMAGE_ENVIRONMENT, img->env_line);
}

/* ---- COPY/ADD sources ---- */

static void add_entry(struct ctx *c, const char *src, const char *dest, bool dir, int line)
{
	struct stage_image *si = c->si;
	si->entries = xrealloc(si->entries, (si->nentries + 1) * sizeof(*si->entries));
	si->entries[si->nentries++] = (struct image_entry){
		.source = xstrdup(src), .dest = xstrdup(dest), .dir = dir, .line = line};
}

static bool is_url(const char *s)
{
	return str_has_prefix(s, "http://") || str_has_prefix(s, "https://") ||
	       str_has_prefix(s, "git@") || str_has_prefix(s, "git://");
}

static bool is_archive(const char *s)
{
	static const char *const ext[] = {".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2",
					  ".tar.xz", ".txz", ".tar.zst"};
	size_t n = strlen(s);
	for (size_t i = 0; i < sizeof(ext) / sizeof(*ext); i++) {
		size_t e = strlen(ext[i]);
		if (n > e && strcmp(s + n - e, ext[i]) == 0)
			return true;
	}
	return false;
}

/* The context paths a source names: itself, or what its wildcards match. */
static void source_matches(struct strvec *out, struct ctx *c, const char *src, int line)
{
	cleanup_free char *abs = path_absolute(c->context, src);
	if (!abs || !under(abs, c->context)) {
		stage_fail(c, line, "COPY source \"%s\" is outside the build context %s", src,
			   c->context);
		return;
	}
	if (!strpbrk(src, "*?[")) {
		struct stat st;
		if (stat(abs, &st) == 0)
			strvec_push(out, abs);
		return;
	}
	struct strbuf pat = STRBUF_INIT;
	for (const char *p = c->context; *p; p++) {
		if (strchr("*?[\\", *p))
			sb_addc(&pat, '\\');
		sb_addc(&pat, *p);
	}
	sb_adds(&pat, abs + strlen(c->context));
	glob_t g;
	if (glob(sb_str(&pat), 0, NULL, &g) == 0)
		for (size_t i = 0; i < g.gl_pathc; i++)
			if (!excluded(c, g.gl_pathv[i]))
				strvec_push(out, g.gl_pathv[i]);
	globfree(&g);
	sb_free(&pat);
}

/* Where on the host path `path` of the --from stage is: the context file or
 * directory that stage copied there (*built = false), or, next to a file it
 * copied, what the host built beside that file in the context, where the
 * stage's RUN steps would have (*built = true). NULL when neither. */
static char *from_host(struct ctx *c, const struct dockerfile_copy *cp, const char *path,
		       bool *built)
{
	char *sibling = NULL;
	for (size_t i = cp->nfrom_copies; i-- > 0;) {
		const struct dockerfile_copy *fc = &cp->from_copies[i];
		for (size_t k = 0; k < fc->src.n; k++) {
			if (strpbrk(fc->src.v[k], "*?[") || is_url(fc->src.v[k]))
				continue;
			cleanup_free char *src = path_absolute(c->context, fc->src.v[k]);
			struct stat st;
			if (!src || !under(src, c->context) || stat(src, &st) < 0)
				continue;
			bool dir = S_ISDIR(st.st_mode);
			cleanup_free char *dest = !dir && (fc->dest_dir || fc->src.n > 1)
							  ? path_join(fc->dest, strrchr(src, '/') + 1)
							  : xstrdup(fc->dest);
			const char *rel = rel_to(dest, path);
			if (rel && (dir || !*rel)) {
				free(sibling);
				*built = false;
				return *rel ? path_join(src, rel) : xstrdup(src);
			}
			if (dir || sibling)
				continue;
			cleanup_free char *ddir = path_dirname(dest), *sdir = path_dirname(src);
			const char *srel = rel_to(ddir, path);
			if (srel && *srel)
				sibling = path_join(sdir, srel);
		}
	}
	if (sibling && access(sibling, F_OK) == 0) {
		*built = true;
		return sibling;
	}
	free(sibling);
	return NULL;
}

static void read_copy_from(struct ctx *c, const struct dockerfile_copy *cp, const char *kw)
{
	bool many = cp->src.n > 1 || cp->dest_dir;
	for (size_t i = 0; i < cp->src.n; i++) {
		cleanup_free char *joined = path_join("/", cp->src.v[i]);
		cleanup_free char *path = path_normalize(joined);
		bool built = false;
		cleanup_free char *host = path ? from_host(c, cp, path, &built) : NULL;
		struct stat st;
		if (!host || stat(host, &st) < 0) {
			warn(c, cp->line, "%s --from=%s %s is not reproducible locally: it comes "
			     "from another image or build stage, so the stage runs without %s",
			     kw, cp->from, cp->src.v[i], cp->dest);
			continue;
		}
		if (built)
			warn(c, cp->line, "%s --from=%s %s: taken from %s, where the host must have "
			     "built it (the local runtime runs no RUN step of stage %s)",
			     kw, cp->from, cp->src.v[i], host, cp->from);
		bool dir = S_ISDIR(st.st_mode);
		cleanup_free char *dest = !dir && many ? path_join(cp->dest, strrchr(path, '/') + 1)
						       : xstrdup(cp->dest);
		add_entry(c, host, dest, dir, cp->line);
	}
}

static void read_copy(struct ctx *c, const struct dockerfile_copy *cp)
{
	const char *kw = cp->add ? "ADD" : "COPY";
	if (cp->from) {
		read_copy_from(c, cp, kw);
		return;
	}
	if (cp->heredoc) {
		warn(c, cp->line, "%s <<EOF is not reproducible locally: the stage runs without %s",
		     kw, cp->dest);
		return;
	}
	if (cp->chown || cp->chmod)
		warn(c, cp->line, "%s %s%s: locally the files keep their host owner and mode "
		     "(read-only)",
		     kw, cp->chown ? "--chown=" : "--chmod=", cp->chown ? cp->chown : cp->chmod);
	struct strvec paths = {0};
	for (size_t i = 0; i < cp->src.n; i++) {
		const char *src = cp->src.v[i];
		if (is_url(src)) {
			warn(c, cp->line, "%s %s is not reproducible locally (the local runtime "
			     "downloads nothing): the stage runs without %s", kw, src, cp->dest);
			continue;
		}
		size_t before = paths.n;
		source_matches(&paths, c, src, cp->line);
		if (c->fail)
			break;
		if (paths.n == before || (!strpbrk(src, "*?[") && excluded(c, paths.v[before]))) {
			stage_fail(c, cp->line, "%s %s: no such file in the build context %s%s", kw,
				   src, c->context,
				   paths.n > before ? " (.dockerignore excludes it)" : "");
			break;
		}
		if (cp->add && is_archive(src))
			warn(c, cp->line, "ADD %s: docker would unpack the archive; locally the "
			     "stage sees the archive file itself", src);
	}
	bool many = paths.n > 1 || cp->dest_dir;
	for (size_t i = 0; !c->fail && i < paths.n; i++) {
		struct stat st;
		if (stat(paths.v[i], &st) < 0) {
			stage_fail(c, cp->line, "%s %s: %s", kw, paths.v[i], strerror(errno));
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			add_entry(c, paths.v[i], cp->dest, true, cp->line);
			continue;
		}
		const char *base = strrchr(paths.v[i], '/') + 1;
		cleanup_free char *dest = many ? path_join(cp->dest, base) : xstrdup(cp->dest);
		add_entry(c, paths.v[i], dest, false, cp->line);
	}
	strvec_free(&paths);
}

/* ---- entries into mounts ---- */

/* Calls fn for every entry under `dir` (relative paths), pruning what is
 * excluded; an excluded directory is still entered when .dockerignore
 * has "!" exceptions. Stops at fn's nonzero return. */
typedef int (*walk_fn)(void *ud, const char *abs, const struct stat *st, bool excl);

static int walk(struct ctx *c, const char *dir, walk_fn fn, void *ud)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		return 0;
	int rc = 0;
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		if (rc || !strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		cleanup_free char *abs = path_join(dir, name);
		struct stat st;
		if (lstat(abs, &st) < 0)
			continue;
		bool excl = excluded(c, abs);
		rc = fn(ud, abs, &st, excl);
		if (!rc && S_ISDIR(st.st_mode) && (!excl || c->ig.has_negations) &&
		    !(c->state && under(abs, c->state)))
			rc = walk(c, abs, fn, ud);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int find_excluded(void *ud, const char *abs, const struct stat *st, bool excl)
{
	(void)ud;
	(void)abs;
	(void)st;
	return excl;
}

static bool clean_tree(struct ctx *c, const char *dir)
{
	if (!c->ig.n && !(c->state && under(c->state, dir)))
		return true;
	return walk(c, dir, find_excluded, NULL) == 0;
}

static void push_mount(struct ctx *c, const char *src, const char *dest, int line)
{
	struct stage *s = c->s;
	if (c->si->nbinds >= IMAGE_MAX_BINDS) {
		stage_fail(c, line, "its COPY/ADD sources would take more than %d read-only mounts; "
			   "list what the image needs in COPY rather than excluding files one by one "
			   "in .dockerignore", IMAGE_MAX_BINDS);
		return;
	}
	s->mounts = xrealloc(s->mounts, (s->nmounts + 2) * sizeof(*s->mounts));
	s->mounts[s->nmounts++] = (struct mount){.type = MOUNT_BIND, .source = xstrdup(src),
						 .target = xstrdup(dest), .read_only = true,
						 .mark = s->mark};
	c->si->nbinds++;
}

/* A directory source as binds: one for a tree nothing is excluded from,
 * else one per entry that stays. */
static void bind_tree(struct ctx *c, const char *src, const char *dest, int line)
{
	if (clean_tree(c, src)) {
		push_mount(c, src, dest, line);
		return;
	}
	struct dirent **names = NULL;
	int n = scandir(src, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		if (!c->fail && strcmp(name, ".") && strcmp(name, "..")) {
			cleanup_free char *abs = path_join(src, name);
			cleanup_free char *to = path_join(dest, name);
			struct stat st;
			bool dir = lstat(abs, &st) == 0 && S_ISDIR(st.st_mode);
			bool excl = excluded(c, abs);
			if (dir && (!excl || c->ig.has_negations) && !(c->state && under(abs, c->state)))
				bind_tree(c, abs, to, line);
			else if (!excl)
				push_mount(c, abs, to, line);
		}
		free(names[i]);
	}
	free(names);
}

struct fill_walk {
	struct ctx *c;
	struct mount *m;
	const char *root;   /* the source directory */
	const char *prefix; /* its place in the volume */
};

static void fill_push(struct mount *m, const char *src, const char *path)
{
	m->fill = xrealloc(m->fill, (m->nfill + 1) * sizeof(*m->fill));
	m->fill[m->nfill++] = (struct fs_fill_item){.source = xstrdup(src), .path = xstrdup(path)};
}

static int fill_one(void *ud, const char *abs, const struct stat *st, bool excl)
{
	struct fill_walk *fw = ud;
	if (excl)
		return 0;
	(void)st;
	const char *rel = rel_to(fw->root, abs);
	cleanup_free char *path = *fw->prefix ? path_join(fw->prefix, rel) : xstrdup(rel);
	fill_push(fw->m, abs, path);
	return 0;
}

/* The spec's own mount deepest at or above `dest`, or NULL. */
static struct mount *covering_mount(struct ctx *c, const char *dest)
{
	struct mount *best = NULL;
	for (size_t i = 0; i < c->nuser; i++) {
		struct mount *m = &c->s->mounts[i];
		if (m->target && under(dest, m->target) &&
		    (!best || strlen(m->target) > strlen(best->target)))
			best = m;
	}
	return best;
}

static void place_entry(struct ctx *c, const struct image_entry *e)
{
	struct mount *m = covering_mount(c, e->dest);
	if (!m) {
		if (e->dir)
			bind_tree(c, e->source, e->dest, e->line);
		else
			push_mount(c, e->source, e->dest, e->line);
		return;
	}
	if (m->type != MOUNT_VOLUME)
		return; /* a bind or tmpfs hides the image's files there, as in docker */
	const char *prefix = rel_to(m->target, e->dest);
	if (!e->dir) {
		if (*prefix)
			fill_push(m, e->source, prefix);
		return;
	}
	if (*prefix)
		fill_push(m, e->source, prefix);
	struct fill_walk fw = {.c = c, .m = m, .root = e->source, .prefix = prefix};
	walk(c, e->source, fill_one, &fw);
}

/* ---- the stage ---- */

static char *shown_path(const struct pipeline *p, const char *path)
{
	const char *rel = rel_to(p->dir, path);
	return xstrdup(rel && *rel ? rel : path);
}

static void runs_warning(struct ctx *c, const struct dockerfile_image *img)
{
	if (!img->nruns)
		return;
	struct strbuf lines = STRBUF_INIT;
	for (size_t i = 0; i < img->nruns; i++)
		sb_addf(&lines, "%s%s:%d", i ? ", " : "", c->si->shown, img->runs[i]);
	warn(c, img->runs[0],
	     "the local runtime does not run the Dockerfile's RUN step%s (%s); the host must "
	     "provide what %s, or run the stage with --runtime docker",
	     img->nruns > 1 ? "s" : "", sb_str(&lines), img->nruns > 1 ? "they install" : "it installs");
	sb_free(&lines);
}

static int apply_stage(struct pipeline *p, struct stage *s, const struct kvvec *env,
		       struct cp_error *err)
{
	struct stage_image *si = xcalloc(1, sizeof(*si));
	s->image_cfg = si;
	si->dockerfile = path_absolute(s->build->context, s->build->dockerfile && *s->build->dockerfile
								  ? s->build->dockerfile
								  : "Dockerfile");
	if (!si->dockerfile)
		si->dockerfile = xstrdup(s->build->dockerfile);
	si->shown = shown_path(p, si->dockerfile);
	si->state = path_join(p->dir, ".cpipe");
	struct ctx c = {.p = p, .s = s, .si = si, .context = s->build->context,
			.state = si->state, .nuser = s->nmounts};
	struct dockerfile_image img = {0};
	cleanup_free char *text = NULL;
	size_t len = 0;
	struct cp_error rerr = {0};
	if (access(si->dockerfile, F_OK) < 0 && errno == ENOENT) {
		/* docker could not build it either; the command runs as written. */
		strvec_push_take(&si->warnings,
				 xasprintf("%s: the file does not exist, so the local runtime "
					   "runs the stage as the spec says, with nothing from an image",
					   si->shown));
		goto out;
	}
	if (fs_read_file(&text, &len, si->dockerfile, (1 << 20) + 1, &rerr) < 0) {
		c.fail = xasprintf("stage \"%s\": cannot read its Dockerfile %s (%s); the local "
				   "runtime takes the stage's working_dir, environment, command and "
				   "files from it",
				   s->name, si->dockerfile, rerr.msg);
		goto out;
	}
	if (dockerfile_read(&img, text, len, si->shown, s->build->target, &s->build->args, env,
			    &rerr) < 0) {
		c.fail = xasprintf("%s", rerr.msg);
		goto out;
	}
	if (dockerignore_load(&c.ig, c.context, &rerr) < 0) {
		c.fail = xasprintf("stage \"%s\": %s", s->name, rerr.msg);
		goto out;
	}
	si->base = img.base ? xstrdup(img.base) : NULL;
	fill_fields(&c, &img);
	for (size_t i = 0; i < img.ncopies && !c.fail; i++)
		read_copy(&c, &img.copies[i]);
	for (size_t i = 0; i < si->nentries && !c.fail; i++)
		place_entry(&c, &si->entries[i]);
	runs_warning(&c, &img);
	for (size_t i = 0; i < img.notes.n; i++)
		strvec_push_take(&si->warnings, xasprintf("%s: %s", si->shown, img.notes.v[i]));
out:
	(void)err;
	si->error = c.fail;
	dockerignore_free(&c.ig);
	dockerfile_image_free(&img);
	return 0;
}

/* Stages built from one Dockerfile get the same warnings: each is said
 * once, naming the stages ("Dockerfile:4: stages \"a\", \"b\": ..."). */
static void group_warnings(struct pipeline *p)
{
	struct strvec msgs = {0};
	struct strbuf *who = NULL;
	size_t *count = NULL;
	for (size_t i = 0; i < p->nstages; i++) {
		const struct stage_image *si = p->stages[i].image_cfg;
		for (size_t k = 0; si && k < si->warnings.n; k++) {
			size_t m = 0;
			while (m < msgs.n && strcmp(msgs.v[m], si->warnings.v[k]) != 0)
				m++;
			if (m == msgs.n) {
				strvec_push(&msgs, si->warnings.v[k]);
				who = xrealloc(who, msgs.n * sizeof(*who));
				count = xrealloc(count, msgs.n * sizeof(*count));
				who[m] = (struct strbuf)STRBUF_INIT;
				count[m] = 0;
			}
			sb_addf(&who[m], "%s\"%s\"", count[m]++ ? ", " : "", p->stages[i].name);
		}
	}
	for (size_t m = 0; m < msgs.n; m++) {
		/* "Dockerfile:4: text" becomes "Dockerfile:4: stage \"a\": text". */
		const char *text = strstr(msgs.v[m], ": ");
		size_t at = text ? (size_t)(text - msgs.v[m]) : 0;
		strvec_push_take(&p->image_warnings,
				 xasprintf("%.*s: stage%s %s: %s", (int)at, msgs.v[m],
					   count[m] > 1 ? "s" : "", sb_str(&who[m]),
					   text ? text + 2 : msgs.v[m]));
		sb_free(&who[m]);
	}
	free(who);
	free(count);
	strvec_free(&msgs);
}

int spec_image_apply(struct pipeline *p, const struct kvvec *env, struct cp_error *err)
{
	for (size_t i = 0; i < p->nstages; i++)
		if (p->stages[i].build && !p->stages[i].image_cfg &&
		    apply_stage(p, &p->stages[i], env, err) < 0)
			return -1;
	group_warnings(p);
	return 0;
}

/* ---- plan-time checks ---- */

int spec_image_check_local(const struct stage *s, struct cp_error *err)
{
	const struct stage_image *si = s->image_cfg;
	if (si && si->error) {
		return cp_error_set(err, EXIT_USAGE, "%s", si->error);
	}
	if (s->command.n || s->entrypoint.n)
		return 0;
	if (si)
		return cp_error_at(
		    err, EXIT_USAGE, &s->mark,
		    "stage \"%s\" has no command: its Dockerfile %s sets no CMD or "
		    "ENTRYPOINT, and the local runtime cannot know those of the base "
		    "image %s; add \"command: ...\" to the stage, or run it with "
		    "--runtime docker",
		    s->name, si->shown, si->base ? si->base : "");
	return cp_error_at(err, EXIT_USAGE, &s->mark,
			   "stage \"%s\" has no command, and the local runtime runs commands, not "
			   "images; add \"command: ...\" to the stage, or run it with --runtime "
			   "docker",
			   s->name);
}

/* ---- files for the cache key ---- */

struct files_walk {
	struct strvec *out;
};

static int file_one(void *ud, const char *abs, const struct stat *st, bool excl)
{
	struct files_walk *fw = ud;
	if (!excl && (S_ISREG(st->st_mode) || S_ISLNK(st->st_mode)))
		strvec_push(fw->out, abs);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int spec_image_files(struct strvec *out, const struct stage *s, struct cp_error *err)
{
	const struct stage_image *si = s->image_cfg;
	if (!si || !si->nentries)
		return 0;
	struct ctx c = {.context = s->build->context, .state = si->state};
	if (dockerignore_load(&c.ig, c.context, err) < 0)
		return -1;
	struct strvec all = {0};
	struct files_walk fw = {&all};
	for (size_t i = 0; i < si->nentries; i++) {
		if (si->entries[i].dir)
			walk(&c, si->entries[i].source, file_one, &fw);
		else
			strvec_push(&all, si->entries[i].source);
	}
	dockerignore_free(&c.ig);
	if (all.n)
		qsort(all.v, all.n, sizeof(*all.v), cmp_str);
	for (size_t i = 0; i < all.n; i++) {
		if (i && strcmp(all.v[i], all.v[i - 1]) == 0)
			free(all.v[i]);
		else
			strvec_push_take(out, all.v[i]);
	}
	free(all.v);
	return 0;
}
