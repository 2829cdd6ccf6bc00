/* spec_load: finds the spec files, parses, interpolates and merges them,
 * then hands the tree to spec_build. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "interp.h"
#include "spec_internal.h"

#define SPEC_MAX_BYTES (16u << 20)

const char *const spec_default_files[] = {
	"cpipe.yml", "cpipe.yaml", "compose.yaml", "compose.yml", "docker-compose.yml",
	"docker-compose.yaml",
};
const size_t spec_ndefault_files = ARRAY_LEN(spec_default_files);

static char *cwd_or_dir(const struct spec_options *opts, struct cp_error *err)
{
	char *cwd = getcwd(NULL, 0);
	if (!cwd) {
		cp_error_errno(err, EXIT_USAGE, "cannot get the current directory");
		return NULL;
	}
	if (!opts || !opts->dir)
		return cwd;
	char *dir = path_absolute(cwd, opts->dir);
	free(cwd);
	if (!dir)
		cp_error_set(err, EXIT_USAGE, "-C %s: bad directory", opts->dir);
	return dir;
}

/* -C names a directory that exists (spec_load_string needs none). */
static int check_dir(const struct spec_options *opts, const char *dir, struct cp_error *err)
{
	struct stat st;
	if (!opts || !opts->dir)
		return 0;
	if (stat(dir, &st) < 0)
		return cp_error_errno(err, EXIT_USAGE, "-C %s", opts->dir);
	if (!S_ISDIR(st.st_mode))
		return cp_error_set(err, EXIT_USAGE,
				    "-C %s: not a directory (give the directory that holds the "
				    "spec, or the file itself with -f)",
				    opts->dir);
	return 0;
}

/* Parses, interpolates and normalizes one file. *out is a mapping. */
static int load_tree(struct ynode **out, const char *shown, const char *data, size_t len,
		     const struct kvvec *env, struct redactor *secrets, struct strvec *warned,
		     struct cp_error *err)
{
	struct ynode *root = NULL;
	*out = NULL;
	if (ytree_parse(&root, shown, data, len, err) < 0)
		return -1;
	if (!root) {
		struct cp_mark mk = {shown, 1, 1};
		root = ynode_new_map(&mk);
	}
	if (root->kind != YNODE_MAP) {
		cp_error_at(err, EXIT_USAGE, &root->mark, "the spec must be a mapping, got %s",
			    ynode_kind_name(root));
		ynode_free(root);
		return -1;
	}
	if (interp_tree(root, env, secrets, warned, err) < 0 || spec_normalize(root, err) < 0) {
		ynode_free(root);
		return -1;
	}
	*out = root;
	return 0;
}

static char *shown_base_of(const char *shown)
{
	const char *slash = strrchr(shown, '/');
	return slash ? xstrndup(shown, (size_t)(slash - shown + 1)) : xstrdup("");
}

/* The interpolation environment: the --env-file files (which must exist),
 * else `dir`/.env when there is one, under the process environment. */
static int env_for(struct kvvec *env, const char *dir, const char *shown_base,
		   const struct spec_options *opts, struct cp_error *err)
{
	kvvec_free(env);
	const char *const *penv = opts ? opts->env : NULL;
	if (opts && opts->nenv_files) {
		cleanup_free char *cwd = getcwd(NULL, 0);
		struct strvec paths = {0};
		for (size_t i = 0; i < opts->nenv_files; i++) {
			char *abs = cwd ? path_absolute(cwd, opts->env_files[i]) : NULL;
			strvec_push_take(&paths, abs ? abs : xstrdup(opts->env_files[i]));
		}
		int rc = interp_env_build(env, penv, (const char *const *)paths.v, opts->env_files,
					  paths.n, true, err);
		strvec_free(&paths);
		return rc;
	}
	cleanup_free char *path = path_join(dir, ".env");
	cleanup_free char *shown = xasprintf("%s.env", shown_base);
	const char *paths[] = {path}, *showns[] = {shown};
	return interp_env_build(env, penv, paths, showns, 1, false, err);
}

static const char *env_value(const struct kvvec *env, const char *key)
{
	const struct kv *kv = kvvec_get(env, key);
	return kv && kv->value && *kv->value ? kv->value : NULL;
}

/* Compose's rule for a project name given by -p or COMPOSE_PROJECT_NAME. */
static int check_project_name(const char *name, const char *from, struct cp_error *err)
{
	bool ok = (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9');
	for (const char *c = name; ok && *c; c++)
		ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
	if (ok)
		return 0;
	return cp_error_set(err, EXIT_USAGE,
			    "%s: project name \"%s\" must be lowercase letters, digits, \"_\" and "
			    "\"-\", starting with a letter or digit",
			    from, name);
}

static int finish(struct pipeline **out, struct pipeline *p, struct ynode *tree,
		  const struct spec_options *opts, const struct kvvec *env, const char *shown_base,
		  struct cp_error *err)
{
	struct spec_ctx ctx = {opts, env, shown_base};
	spec_strip_resets(tree);
	if (spec_build(p, tree, &ctx, err) < 0)
		return -1;
	const char *name = opts ? opts->project_name : NULL;
	const char *from = "-p";
	if (!name || !*name) {
		name = env_value(env, "COMPOSE_PROJECT_NAME");
		from = "COMPOSE_PROJECT_NAME";
	}
	if (name) {
		if (check_project_name(name, from, err) < 0)
			return -1;
		p->name_chosen = strcmp(p->name, name) != 0;
		free(p->name);
		p->name = xstrdup(name);
	}
	if (opts && opts->env_out) {
		kvvec_free(opts->env_out);
		for (size_t i = 0; i < env->n; i++)
			kvvec_set(opts->env_out, env->v[i].key, env->v[i].value);
	}
	*out = p;
	return 0;
}

/* A failed load: a message quoting a value fed by a secret variable (a
 * bad port, an unknown image) must not print it. Frees p. */
static void fail_masked(struct pipeline *p, struct cp_error *err)
{
	cleanup_free char *msg = redactor_text(&p->secrets, err->msg);
	snprintf(err->msg, sizeof(err->msg), "%s", msg);
	pipeline_free(p);
	cp_error_recode(err, EXIT_USAGE);
}

static int add_file(struct pipeline *p, const char *base, const char *given,
		    struct cp_error *err)
{
	char *abs = path_absolute(base, given);
	if (!abs)
		return cp_error_set(err, EXIT_USAGE, "bad spec file path %s", given);
	strvec_push_take(&p->files, abs);
	strvec_push(&p->mark_files, given);
	return 0;
}

/* COMPOSE_FILE: paths split at COMPOSE_PATH_SEPARATOR (default ':'). */
static int add_compose_file(struct pipeline *p, const char *base, const struct kvvec *env,
			    const char *list, struct cp_error *err)
{
	const char *sep = env_value(env, "COMPOSE_PATH_SEPARATOR");
	char sepc = sep ? sep[0] : ':';
	for (const char *q = list; *q;) {
		const char *e = strchr(q, sepc);
		size_t n = e ? (size_t)(e - q) : strlen(q);
		if (n) {
			cleanup_free char *one = xstrndup(q, n);
			if (add_file(p, base, one, err) < 0)
				return -1;
		}
		q += n + (e ? 1 : 0);
	}
	if (!p->files.n)
		return cp_error_set(err, EXIT_USAGE, "COMPOSE_FILE is set but names no file");
	return 0;
}

/* The first default file in `base`, then its override file when there is
 * one (compose.override.yaml next to compose.yaml, ...): merged over it. */
static int discover(struct pipeline *p, const char *base, struct cp_error *err)
{
	for (size_t i = 0; i < spec_ndefault_files; i++) {
		char *abs = path_join(base, spec_default_files[i]);
		if (access(abs, F_OK) != 0) {
			free(abs);
			continue;
		}
		strvec_push_take(&p->files, abs);
		strvec_push(&p->mark_files, spec_default_files[i]);
		const char *name = spec_default_files[i];
		size_t stem = (size_t)(strrchr(name, '.') - name);
		static const char *const exts[] = {"yaml", "yml"};
		for (size_t k = 0; k < ARRAY_LEN(exts); k++) {
			cleanup_free char *ov = xasprintf("%.*s.override.%s", (int)stem, name, exts[k]);
			char *ovabs = path_join(base, ov);
			if (access(ovabs, F_OK) == 0) {
				strvec_push_take(&p->files, ovabs);
				strvec_push(&p->mark_files, ov);
				break;
			}
			free(ovabs);
		}
		return 0;
	}
	if (access(base, R_OK | X_OK) != 0)
		return cp_error_errno(err, EXIT_USAGE, "cannot look for a spec file in %s", base);
	struct strbuf tried = STRBUF_INIT;
	for (size_t i = 0; i < spec_ndefault_files; i++)
		sb_addf(&tried, "%s%s", i ? ", " : "", spec_default_files[i]);
	cp_error_set(err, EXIT_USAGE, "no spec file in %s (tried %s)", base, sb_str(&tried));
	sb_free(&tried);
	return -1;
}

int spec_load(struct pipeline **out, const struct spec_options *opts, struct cp_error *err)
{
	struct pipeline *p = xcalloc(1, sizeof(*p));
	struct kvvec env = {0};
	struct strvec warned = {0};
	struct ynode *tree = NULL;
	cleanup_free char *base = NULL, *shown_base = NULL;
	struct strvec read = {0}; /* files read through include and extends */
	int rc = -1;

	*out = NULL;
	if (!(base = cwd_or_dir(opts, err)) || check_dir(opts, base, err) < 0)
		goto out;
	/* The environment of the directory looked in says which files
	 * (COMPOSE_FILE) when no -f does; the project's own is read below. */
	bool given = opts && opts->nfiles;
	if (!given && env_for(&env, base, "", opts, err) < 0)
		goto out;
	const char *compose_file = given ? NULL : env_value(&env, "COMPOSE_FILE");
	if (given) {
		for (size_t i = 0; i < opts->nfiles; i++)
			if (add_file(p, base, opts->files[i], err) < 0)
				goto out;
	} else if (compose_file) {
		if (add_compose_file(p, base, &env, compose_file, err) < 0)
			goto out;
	} else if (discover(p, base, err) < 0) {
		goto out;
	}
	p->dir = path_dirname(p->files.v[0]);
	shown_base = shown_base_of(p->mark_files.v[0]);
	if ((given || strcmp(p->dir, base) != 0) && env_for(&env, p->dir, shown_base, opts, err) < 0)
		goto out;
	for (size_t i = 0; i < p->files.n; i++) {
		const char *shown = p->mark_files.v[i];
		cleanup_free char *data = NULL;
		size_t len = 0;
		struct ynode *t = NULL;
		if (access(p->files.v[i], F_OK) != 0) {
			cp_error_set(err, EXIT_USAGE, "spec file %s not found", shown);
			goto out;
		}
		if (fs_read_file(&data, &len, p->files.v[i], SPEC_MAX_BYTES, err) < 0)
			goto out;
		if (load_tree(&t, shown, data, len, &env, &p->secrets,
			      opts && opts->no_warnings ? NULL : &warned, err) < 0)
			goto out;
		if (spec_resolve(t, p, p->files.v[i], opts, &env, &read, err) < 0) {
			ynode_free(t);
			goto out;
		}
		if (!tree)
			tree = t;
		else
			spec_merge(tree, t);
	}
	for (size_t i = 0; i < read.n; i++)
		strvec_push(&p->files, read.v[i]);
	rc = finish(out, p, tree, opts, &env, shown_base, err);
out:
	ynode_free(tree);
	kvvec_free(&env);
	strvec_free(&read);
	strvec_free(&warned);
	if (rc < 0)
		fail_masked(p, err);
	return rc;
}

int spec_load_string(struct pipeline **out, const char *display_name, const char *yaml,
		     size_t len, const struct spec_options *opts, struct cp_error *err)
{
	struct pipeline *p = xcalloc(1, sizeof(*p));
	struct kvvec env = {0};
	struct ynode *tree = NULL;
	struct strvec read = {0};
	int rc = -1;

	*out = NULL;
	if (!(p->dir = cwd_or_dir(opts, err)))
		goto out;
	char *abs = path_absolute(p->dir, display_name);
	strvec_push_take(&p->files, abs ? abs : xstrdup(display_name));
	strvec_push(&p->mark_files, display_name);
	if (env_for(&env, p->dir, "", opts, err) < 0)
		goto out;
	if (load_tree(&tree, p->mark_files.v[0], yaml, len, &env, &p->secrets, NULL, err) < 0)
		goto out;
	if (spec_resolve(tree, p, p->files.v[0], opts, &env, &read, err) < 0)
		goto out;
	for (size_t i = 0; i < read.n; i++)
		strvec_push(&p->files, read.v[i]);
	rc = finish(out, p, tree, opts, &env, "", err);
out:
	ynode_free(tree);
	kvvec_free(&env);
	strvec_free(&read);
	if (rc < 0)
		fail_masked(p, err);
	return rc;
}
