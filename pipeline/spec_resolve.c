/* Compose's ways of building one file from others: top-level `include:`
 * (other Compose applications whose services, volumes, ... join this one,
 * each with its own project directory and .env) and a service's `extends:`
 * (the service starts as a copy of another, of this file or of `file:`).
 * Relative paths of what comes from another file are made absolute against
 * that file's directory first, as compose resolves them. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/fs.h"
#include "interp.h"
#include "spec_internal.h"

#define RESOLVE_MAX_DEPTH 16
#define RESOLVE_MAX_BYTES (16u << 20)

struct resolver {
	struct pipeline *p;
	const struct spec_options *opts;
	struct strvec *read;
	struct strvec stack; /* files being included, for cycles */
	struct strvec chain; /* services being extended, for cycles */
	struct cp_error *err;
};

/* The name of `abs` in messages: relative to the project as the first
 * spec file is shown, else absolute. Lent from p->mark_files. */
static const char *mark_name(struct resolver *r, const char *abs)
{
	size_t n = strlen(r->p->dir);
	const char *first = r->p->mark_files.v[0];
	const char *slash = strrchr(first, '/');
	char *shown;
	if (strncmp(abs, r->p->dir, n) == 0 && abs[n] == '/')
		shown = xasprintf("%.*s%s", slash ? (int)(slash - first + 1) : 0, first, abs + n + 1);
	else
		shown = xstrdup(abs);
	for (size_t i = 0; i < r->p->mark_files.n; i++) {
		if (strcmp(r->p->mark_files.v[i], shown) == 0) {
			free(shown);
			return r->p->mark_files.v[i];
		}
	}
	strvec_push_take(&r->p->mark_files, shown);
	return r->p->mark_files.v[r->p->mark_files.n - 1];
}

/* Parses, interpolates and normalizes the file at `abs` (a mapping). */
static int load_file(struct resolver *r, struct ynode **out, const char *abs,
		     const struct kvvec *env, const struct cp_mark *at)
{
	const char *shown = mark_name(r, abs);
	cleanup_free char *data = NULL;
	size_t len = 0;
	*out = NULL;
	struct stat sb;
	if (stat(abs, &sb) != 0)
		return cp_error_at(r->err, EXIT_USAGE, at, "%s not found", shown);
	/* A FIFO or a device would block or never end. */
	if (!S_ISREG(sb.st_mode))
		return cp_error_at(r->err, EXIT_USAGE, at, "%s is not a regular file", shown);
	if (fs_read_file(&data, &len, abs, RESOLVE_MAX_BYTES, r->err) < 0)
		return -1;
	struct ynode *t = NULL;
	if (ytree_parse(&t, shown, data, len, r->err) < 0)
		return -1;
	if (!t) {
		struct cp_mark mk = {shown, 1, 1};
		t = ynode_new_map(&mk);
	}
	if (t->kind != YNODE_MAP) {
		cp_error_at(r->err, EXIT_USAGE, &t->mark, "the spec must be a mapping, got %s",
			    ynode_kind_name(t));
		ynode_free(t);
		return -1;
	}
	if (interp_tree(t, env, &r->p->secrets, NULL, r->err) < 0 ||
	    spec_normalize(t, r->err) < 0) {
		ynode_free(t);
		return -1;
	}
	bool seen = false;
	for (size_t i = 0; i < r->read->n && !seen; i++)
		seen = strcmp(r->read->v[i], abs) == 0;
	if (!seen)
		strvec_push(r->read, abs);
	*out = t;
	return 0;
}

/* ---- relative paths of a file read from elsewhere ---- */

static bool is_relative(const char *s)
{
	return s[0] == '.' && (s[1] == '/' || s[1] == '\0' || (s[1] == '.' && (s[2] == '/' || !s[2])));
}

static void absolutize(struct ynode *n, const char *dir)
{
	if (!n || n->kind != YNODE_SCALAR || ynode_is_null(n))
		return;
	if (n->str[0] == '/' || n->str[0] == '~' || strstr(n->str, "://") ||
	    str_has_prefix(n->str, "git@"))
		return;
	char *abs = path_absolute(dir, n->str);
	if (!abs)
		return; /* climbs above /: spec_build reports it */
	free(n->str);
	n->str = abs;
	n->exact_col = 0;
}

/* "./src:/dst:ro" → "/dir/src:/dst:ro"; named volumes stay. */
static void absolutize_volume(struct ynode *v, const char *dir)
{
	if (v->kind == YNODE_MAP) {
		const struct ynode *type = ymap_get(v, "type");
		if (type && type->kind == YNODE_SCALAR && !strcmp(type->str, "bind"))
			absolutize(ymap_get(v, "source"), dir);
		return;
	}
	if (v->kind != YNODE_SCALAR || !is_relative(v->str))
		return;
	const char *colon = strchr(v->str, ':');
	cleanup_free char *src = colon ? xstrndup(v->str, (size_t)(colon - v->str))
				       : xstrdup(v->str);
	char *abs = path_absolute(dir, src);
	if (!abs)
		return;
	char *joined = xasprintf("%s%s", abs, colon ? colon : "");
	free(abs);
	free(v->str);
	v->str = joined;
	v->exact_col = 0;
}

static void absolutize_service(struct ynode *svc, const char *dir)
{
	if (!svc || svc->kind != YNODE_MAP)
		return;
	struct ynode *b = ymap_get(svc, "build");
	if (b && b->kind == YNODE_MAP) {
		struct ynode *ctx = ymap_get(b, "context");
		if (ctx)
			absolutize(ctx, dir);
		else
			ymap_push(b, ynode_new_scalar("context", &b->mark, true),
				  ynode_new_scalar(dir, &b->mark, true));
	}
	struct ynode *ef = ymap_get(svc, "env_file");
	if (ef && ef->kind == YNODE_SCALAR)
		absolutize(ef, dir);
	for (size_t i = 0; ef && ef->kind == YNODE_SEQ && i < ef->nitems; i++) {
		struct ynode *it = ef->items[i];
		absolutize(it->kind == YNODE_MAP ? ymap_get(it, "path") : it, dir);
	}
	struct ynode *vols = ymap_get(svc, "volumes");
	for (size_t i = 0; vols && vols->kind == YNODE_SEQ && i < vols->nitems; i++)
		absolutize_volume(vols->items[i], dir);
	struct ynode *ext = ymap_get(svc, "extends");
	if (ext && ext->kind == YNODE_MAP)
		absolutize(ymap_get(ext, "file"), dir);
	absolutize(ymap_get(svc, "label_file"), dir);
}

static void absolutize_file(struct ynode *root, const char *dir)
{
	struct ynode *stages = ymap_get(root, "stages");
	for (size_t i = 0; stages && stages->kind == YNODE_MAP && i < stages->npairs; i++)
		absolutize_service(stages->pairs[i].value, dir);
	static const char *const tops[] = {"secrets", "configs"};
	for (size_t t = 0; t < ARRAY_LEN(tops); t++) {
		struct ynode *m = ymap_get(root, tops[t]);
		for (size_t i = 0; m && m->kind == YNODE_MAP && i < m->npairs; i++)
			absolutize(ymap_get(m->pairs[i].value, "file"), dir);
	}
}

/* ---- extends ---- */

static int resolve_extends_in(struct resolver *r, struct ynode *root, const char *path,
			      const struct kvvec *env, int depth);

/* The service `name` of the file at `path` with its extends resolved
 * and its paths made absolute (caller frees). */
static int service_from_file(struct resolver *r, struct ynode **out, const char *path,
			     const char *name, const struct kvvec *env, const struct cp_mark *at,
			     int depth)
{
	struct ynode *t = NULL;
	*out = NULL;
	if (load_file(r, &t, path, env, at) < 0)
		return -1;
	cleanup_free char *dir = path_dirname(path);
	int rc = resolve_extends_in(r, t, path, env, depth + 1);
	struct ypair *svc = rc < 0 ? NULL : ymap_find(ymap_get(t, "stages"), name);
	if (rc == 0 && !svc)
		rc = cp_error_at(r->err, EXIT_USAGE, at, "extends: no service \"%s\" in %s", name,
				 mark_name(r, path));
	if (rc == 0) {
		absolutize_service(svc->value, dir);
		*out = svc->value;
		svc->value = ynode_new_map(&svc->key->mark);
	}
	ynode_free(t);
	return rc;
}

static int extend_with(struct resolver *r, struct ynode *stages, size_t i, struct ypair *ext,
		       const char *path, const struct kvvec *env, int depth, char *state);

/* Replaces stages->pairs[i].value by its base merged with it. state[i]:
 * 0 = not yet, 1 = being resolved (a cycle if met again), 2 = done. */
static int extend_one(struct resolver *r, struct ynode *stages, size_t i, const char *path,
		      const struct kvvec *env, int depth, char *state)
{
	struct ypair *pr = &stages->pairs[i];
	struct ypair *ext = ymap_find(pr->value, "extends");
	if (state[i] == 2 || !ext) {
		state[i] = 2;
		return 0;
	}
	if (state[i] == 1) {
		struct strbuf sb = STRBUF_INIT;
		size_t from = 0;
		while (from < r->chain.n && strcmp(r->chain.v[from], pr->key->str))
			from++;
		for (size_t k = from; k < r->chain.n; k++)
			sb_addf(&sb, "%s -> ", r->chain.v[k]);
		sb_adds(&sb, pr->key->str);
		cp_error_at(r->err, EXIT_USAGE, &ext->key->mark, "extends cycle: %s", sb_str(&sb));
		sb_free(&sb);
		return -1;
	}
	if (depth > RESOLVE_MAX_DEPTH)
		return cp_error_at(r->err, EXIT_USAGE, &ext->key->mark,
				   "stage \"%s\": extends nested deeper than %d files",
				   pr->key->str, RESOLVE_MAX_DEPTH);
	state[i] = 1;
	strvec_push(&r->chain, pr->key->str);
	int rc = extend_with(r, stages, i, ext, path, env, depth, state);
	free(r->chain.v[--r->chain.n]);
	if (rc == 0)
		state[i] = 2;
	return rc;
}

/* extend_one's work once stage i is marked in progress. */
static int extend_with(struct resolver *r, struct ynode *stages, size_t i, struct ypair *ext,
		       const char *path, const struct kvvec *env, int depth, char *state)
{
	struct ypair *pr = &stages->pairs[i];
	const struct ynode *v = ext->value;
	const struct ynode *svc = v, *file = NULL;
	if (v->kind == YNODE_MAP) {
		for (size_t k = 0; k < v->npairs; k++) {
			const char *key = v->pairs[k].key->str;
			if (strcmp(key, "service") && strcmp(key, "file")) {
				static const char *const keys[] = {"service", "file"};
				const char *near = suggest_nearest(key, keys, 2);
				return cp_error_at(
				    r->err, EXIT_USAGE, &v->pairs[k].key->mark,
				    "stage \"%s\": extends: unknown key \"%s\"%s%s%s", pr->key->str,
				    key, near ? " (did you mean \"" : "", near ? near : "",
				    near ? "\"?)" : "");
			}
		}
		svc = ymap_get(v, "service");
		file = ymap_get(v, "file");
		if (!svc)
			return cp_error_at(r->err, EXIT_USAGE, &v->mark,
					   "stage \"%s\": extends: \"service\" is required",
					   pr->key->str);
	}
	if (svc->kind != YNODE_SCALAR || ynode_is_null(svc) ||
	    (file && (file->kind != YNODE_SCALAR || ynode_is_null(file))))
		return cp_error_at(r->err, EXIT_USAGE, &v->mark,
				   "stage \"%s\": extends must be a service name or {service, "
				   "file}, got %s",
				   pr->key->str, ynode_kind_name(v));
	struct ynode *base = NULL;
	if (file) {
		cleanup_free char *dir = path_dirname(path);
		cleanup_free char *abs = path_absolute(dir, file->str);
		if (!abs)
			return cp_error_at(r->err, EXIT_USAGE, &file->mark,
					   "stage \"%s\": extends: file "
					   "\"%s\" escapes /",
					   pr->key->str, file->str);
		if (service_from_file(r, &base, abs, svc->str, env, &svc->mark, depth) < 0)
			return -1;
	} else {
		size_t j = 0;
		while (j < stages->npairs && strcmp(stages->pairs[j].key->str, svc->str))
			j++;
		if (j == stages->npairs) {
			const char **names = xcalloc(stages->npairs + 1, sizeof(*names));
			for (size_t k = 0; k < stages->npairs; k++)
				names[k] = stages->pairs[k].key->str;
			const char *near = suggest_nearest(svc->str, names, stages->npairs);
			cp_error_at(r->err, EXIT_USAGE, &svc->mark,
				    "stage \"%s\": extends unknown service \"%s\"%s%s%s",
				    pr->key->str, svc->str, near ? " (did you mean \"" : "",
				    near ? near : "", near ? "\"?)" : "");
			free(names);
			return -1;
		}
		if (j == i)
			return cp_error_at(r->err, EXIT_USAGE, &svc->mark,
					   "stage \"%s\": extends itself", pr->key->str);
		if (extend_one(r, stages, j, path, env, depth, state) < 0)
			return -1;
		base = ynode_copy(stages->pairs[j].value);
	}
	/* The extending service without its extends: key, merged over a
	 * copy of the base. */
	struct ynode *self = pr->value;
	for (size_t k = 0; k < self->npairs; k++) {
		if (self->pairs[k].key == ext->key) {
			ymap_remove(self, k);
			break;
		}
	}
	if (base->kind != YNODE_MAP) {
		ynode_free(base);
		base = ynode_new_map(&self->mark);
	}
	spec_merge_service(&base, self);
	pr->value = base;
	return 0;
}

static int resolve_extends_in(struct resolver *r, struct ynode *root, const char *path,
			      const struct kvvec *env, int depth)
{
	struct ynode *stages = ymap_get(root, "stages");
	if (!stages || stages->kind != YNODE_MAP)
		return 0;
	char *state = xcalloc(stages->npairs + 1, 1);
	int rc = 0;
	for (size_t i = 0; i < stages->npairs && rc == 0; i++)
		if (stages->pairs[i].value->kind == YNODE_MAP)
			rc = extend_one(r, stages, i, path, env, depth, state);
	free(state);
	return rc;
}

/* ---- include ---- */

static int resolve_file(struct resolver *r, struct ynode *root, const char *path,
			const struct kvvec *env, int depth);

/* Strings of a string-or-list value, appended to out. */
static int string_or_list(struct resolver *r, const struct ynode *v, const char *what,
			  struct strvec *out)
{
	if (v->kind == YNODE_SCALAR && !ynode_is_null(v)) {
		strvec_push(out, v->str);
		return 0;
	}
	if (v->kind == YNODE_SEQ) {
		for (size_t i = 0; i < v->nitems; i++) {
			if (v->items[i]->kind != YNODE_SCALAR || ynode_is_null(v->items[i]))
				return cp_error_at(r->err, EXIT_USAGE, &v->items[i]->mark,
						   "include: %s entries must be paths, got %s",
						   what, ynode_kind_name(v->items[i]));
			strvec_push(out, v->items[i]->str);
		}
		return 0;
	}
	return cp_error_at(r->err, EXIT_USAGE, &v->mark,
			   "include: %s must be a path or a list, got %s", what,
			   ynode_kind_name(v));
}

/* The interpolation environment of an included project: its env files
 * (default: .env in its project directory), overridden by the process's. */
static int include_env(struct resolver *r, struct kvvec *out, const struct strvec *env_files,
		       const char *project_dir)
{
	const char *const *proc = r->opts ? r->opts->env : NULL;
	cleanup_free char *dotenv = path_join(project_dir, ".env");
	bool given = env_files->n > 0;
	size_t n = given ? env_files->n : 1;
	const char **files = xcalloc(n, sizeof(*files));
	const char **shown = xcalloc(n, sizeof(*shown));
	for (size_t i = 0; i < n; i++) {
		files[i] = given ? env_files->v[i] : dotenv;
		shown[i] = mark_name(r, files[i]);
	}
	int rc = interp_env_build(out, proc, files, shown, n, given, r->err);
	free(files);
	free(shown);
	return rc;
}

/* Adds the resources of `inc` to `root`; a service both define fails. */
static int include_merge(struct resolver *r, struct ynode *root, struct ynode *inc,
			 const struct cp_mark *at)
{
	static const char *const kinds[] = {"stages", "volumes", "networks", "secrets", "configs"};
	for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
		struct ypair *src = ymap_find(inc, kinds[k]);
		if (!src || src->value->kind != YNODE_MAP)
			continue;
		struct ypair *dst = ymap_find(root, kinds[k]);
		if (!dst || ynode_is_null(dst->value)) {
			if (dst) {
				ynode_free(dst->value);
				dst->value = src->value;
			} else {
				ymap_push(root, ynode_new_scalar(kinds[k], at, true), src->value);
			}
			src->value = ynode_new_map(at);
			continue;
		}
		if (dst->value->kind != YNODE_MAP)
			continue; /* spec_build reports it */
		for (size_t i = 0; i < src->value->npairs; i++) {
			struct ypair *e = &src->value->pairs[i];
			const struct ypair *mine = ymap_find(dst->value, e->key->str);
			if (mine && ynode_equal(mine->value, e->value))
				continue;
			if (mine)
				return cp_error_at(r->err, EXIT_USAGE, &mine->key->mark,
						   "%s \"%s\" is also defined by the included %s "
						   "(line %d); rename one of them",
						   k == 0 ? "service" : kinds[k], e->key->str,
						   e->key->mark.file, e->key->mark.line);
			ymap_push(dst->value, ynode_copy(e->key), ynode_copy(e->value));
		}
	}
	return 0;
}

static int include_one(struct resolver *r, struct ynode *root, const struct ynode *item,
		       const char *dir, int depth)
{
	struct strvec paths = {0}, env_files = {0};
	cleanup_free char *project_dir = NULL;
	struct kvvec env = {0};
	struct ynode *tree = NULL;
	int rc = -1;
	if (item->kind == YNODE_MAP) {
		for (size_t i = 0; i < item->npairs; i++) {
			const char *k = item->pairs[i].key->str;
			const struct ynode *v = item->pairs[i].value;
			static const char *const keys[] = {"path", "env_file", "project_directory"};
			if (!strcmp(k, "path")) {
				if (string_or_list(r, v, "path", &paths) < 0)
					goto out;
			} else if (!strcmp(k, "env_file")) {
				if (string_or_list(r, v, "env_file", &env_files) < 0)
					goto out;
			} else if (!strcmp(k, "project_directory") && v->kind == YNODE_SCALAR &&
				   !ynode_is_null(v)) {
				project_dir = path_absolute(dir, v->str);
			} else {
				const char *near = suggest_nearest(k, keys, 3);
				cp_error_at(r->err, EXIT_USAGE, &item->pairs[i].key->mark,
					    "include: unknown key \"%s\"%s%s%s", k,
					    near ? " (did you mean \"" : "", near ? near : "",
					    near ? "\"?)" : "");
				goto out;
			}
		}
	} else if (string_or_list(r, item, "entry", &paths) < 0) {
		goto out;
	}
	if (!paths.n) {
		cp_error_at(r->err, EXIT_USAGE, &item->mark, "include: \"path\" is required");
		goto out;
	}
	for (size_t i = 0; i < paths.n; i++) {
		char *abs = path_absolute(dir, paths.v[i]);
		free(paths.v[i]);
		paths.v[i] = abs ? abs : xstrdup("/");
	}
	for (size_t i = 0; i < env_files.n; i++) {
		char *abs = path_absolute(dir, env_files.v[i]);
		free(env_files.v[i]);
		env_files.v[i] = abs ? abs : xstrdup("/");
	}
	if (!project_dir)
		project_dir = path_dirname(paths.v[0]);
	for (size_t i = 0; i < r->stack.n; i++) {
		if (strcmp(r->stack.v[i], paths.v[0]) == 0) {
			cp_error_at(r->err, EXIT_USAGE, &item->mark,
				    "include cycle: %s includes itself", mark_name(r, paths.v[0]));
			goto out;
		}
	}
	if (depth > RESOLVE_MAX_DEPTH) {
		cp_error_at(r->err, EXIT_USAGE, &item->mark, "include nested deeper than %d files",
			    RESOLVE_MAX_DEPTH);
		goto out;
	}
	if (include_env(r, &env, &env_files, project_dir) < 0)
		goto out;
	for (size_t i = 0; i < paths.n; i++) {
		struct ynode *t = NULL;
		if (load_file(r, &t, paths.v[i], &env, &item->mark) < 0)
			goto out;
		strvec_push(&r->stack, paths.v[i]);
		int res = resolve_file(r, t, paths.v[i], &env, depth + 1);
		free(r->stack.v[--r->stack.n]);
		if (res < 0) {
			ynode_free(t);
			goto out;
		}
		absolutize_file(t, project_dir);
		if (!tree)
			tree = t;
		else
			spec_merge(tree, t);
	}
	rc = include_merge(r, root, tree, &item->mark);
out:
	ynode_free(tree);
	kvvec_free(&env);
	strvec_free(&paths);
	strvec_free(&env_files);
	return rc;
}

static int resolve_file(struct resolver *r, struct ynode *root, const char *path,
			const struct kvvec *env, int depth)
{
	struct ypair *inc = ymap_find(root, "include");
	/* include_one adds pairs to root: keep the nodes, not the pair. */
	const struct ynode *inc_key = inc ? inc->key : NULL;
	if (inc && !ynode_is_null(inc->value)) {
		cleanup_free char *dir = path_dirname(path);
		const struct ynode *v = inc->value;
		if (v->kind != YNODE_SEQ)
			return cp_error_at(r->err, EXIT_USAGE, &v->mark,
					   "include must be a list, got %s", ynode_kind_name(v));
		for (size_t i = 0; i < v->nitems; i++)
			if (include_one(r, root, v->items[i], dir, depth) < 0)
				return -1;
	}
	for (size_t i = 0; inc_key && i < root->npairs; i++) {
		if (root->pairs[i].key == inc_key) {
			ymap_remove(root, i);
			break;
		}
	}
	return resolve_extends_in(r, root, path, env, depth);
}

int spec_resolve(struct ynode *root, struct pipeline *p, const char *path,
		 const struct spec_options *opts, const struct kvvec *env, struct strvec *read,
		 struct cp_error *err)
{
	struct resolver r = {.p = p, .opts = opts, .read = read, .err = err};
	strvec_push(&r.stack, path);
	int rc = resolve_file(&r, root, path, env, 0);
	strvec_free(&r.stack);
	strvec_free(&r.chain);
	return rc;
}
