/* The merged node tree → struct pipeline: top level, volumes and the
 * stage keys; mounts, healthchecks and dependencies live in
 * spec_stage.c. */
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stdio.h>

#include "../lib/fs.h"
#include "../stages/runtime.h"
#include "compose_keys.h"
#include "interp.h"
#include "spec_build.h"

int spb_type_error(struct spec_builder *b, const struct ynode *v, const char *where,
		  const char *key, const char *want)
{
	return cp_error_at(b->err, EXIT_USAGE, &v->mark, "%skey \"%s\" must be %s, got %s", where,
			   key, want, ynode_kind_name(v));
}

int spb_unknown_key(struct spec_builder *b, const struct ynode *k, const char *where,
		   const char *const *cands, size_t n)
{
	const char *near = suggest_nearest(k->str, cands, n);
	if (near)
		return cp_error_at(b->err, EXIT_USAGE, &k->mark,
				   "%sunknown key \"%s\" (did you mean \"%s\"?)", where, k->str,
				   near);
	return cp_error_at(b->err, EXIT_USAGE, &k->mark, "%sunknown key \"%s\"", where, k->str);
}

bool spb_key_known(const char *key, const char *const *keys, size_t n)
{
	if (str_has_prefix(key, "x-"))
		return true;
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

int spb_check_keys(struct spec_builder *b, const struct ynode *map, const char *where,
		  const char *const *keys, size_t n)
{
	for (size_t i = 0; i < map->npairs; i++)
		if (!spb_key_known(map->pairs[i].key->str, keys, n))
			return spb_unknown_key(b, map->pairs[i].key, where, keys, n);
	return 0;
}

void spb_warn(struct spec_builder *b, const char *id, const char *unit, const struct cp_mark *mark,
	     const char *fmt, ...)
{
	for (size_t i = 0; i < b->nwarnings; i++) {
		if (strcmp(b->warnings[i].id, id) == 0) {
			b->warnings[i].more++;
			return;
		}
	}
	b->warnings = xrealloc(b->warnings, (b->nwarnings + 1) * sizeof(*b->warnings));
	struct spb_warning *w = &b->warnings[b->nwarnings++];
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	w->id = xstrdup(id);
	w->unit = unit;
	w->more = 0;
	if (mark && mark->file && mark->line)
		w->text = xasprintf("%s:%d:%d: %s", mark->file, mark->line, mark->col, msg);
	else
		w->text = xstrdup(msg);
}

/* Moves the warnings into p->warnings, each with how often it recurred. */
static void flush_warnings(struct spec_builder *b)
{
	for (size_t i = 0; i < b->nwarnings; i++) {
		struct spb_warning *w = &b->warnings[i];
		if (w->more)
			strvec_push_take(&b->p->warnings,
					 xasprintf("%s (also in %zu other %s%s)", w->text, w->more,
						   w->unit, w->more > 1 ? "s" : ""));
		else
			strvec_push(&b->p->warnings, w->text);
		free(w->id);
		free(w->text);
	}
	free(b->warnings);
	b->warnings = NULL;
	b->nwarnings = 0;
}

int spb_compose_keys(struct spec_builder *b, const struct ynode *map, int scope, const char *where)
{
	for (size_t i = 0; i < map->npairs; i++) {
		const struct ynode *k = map->pairs[i].key;
		if (str_has_prefix(k->str, "x-"))
			continue;
		const struct compose_key *ck = compose_key_find((enum compose_scope)scope, k->str);
		if (!ck) {
			const char *near = compose_key_suggest((enum compose_scope)scope, k->str);
			const char *top = scope == CK_TOP ? "top-level " : "";
			if (near)
				return cp_error_at(b->err, EXIT_USAGE, &k->mark,
						   "%sunknown %skey \"%s\" (did you mean \"%s\"?)",
						   where, top, k->str, near);
			return cp_error_at(b->err, EXIT_USAGE, &k->mark, "%sunknown %skey \"%s\"",
					   where, top, k->str);
		}
		if (ck->fate != CK_WARNED)
			continue;
		cleanup_free char *id = xasprintf("%d %s", scope, k->str);
		if (!strcmp(k->str, "restart") && map->pairs[i].value->kind == YNODE_SCALAR &&
		    !strcmp(map->pairs[i].value->str, "no"))
			continue; /* what cpipe does anyway */
		spb_warn(b, id, scope == CK_TOP ? "file" : "stage", &k->mark, "%s%s: %s", where,
			k->str, ck->what);
	}
	return 0;
}

int spb_string(struct spec_builder *b, const struct ynode *v, const char *where, const char *key,
	      char **dst)
{
	if (v->kind != YNODE_SCALAR)
		return spb_type_error(b, v, where, key, "a string");
	free(*dst);
	*dst = ynode_is_null(v) ? NULL : xstrdup(v->str);
	return 0;
}

int spb_bool(struct spec_builder *b, const struct ynode *v, const char *where, const char *key,
	    bool *out)
{
	if (v->kind == YNODE_SCALAR) {
		const char *s = v->str;
		if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
			*out = false;
			return 0;
		}
	}
	return spb_type_error(b, v, where, key, "true or false");
}

int spb_long(struct spec_builder *b, const struct ynode *v, const char *where, const char *key,
	    long min, long max, long *out)
{
	if (v->kind != YNODE_SCALAR || ynode_is_null(v))
		return spb_type_error(b, v, where, key, "a number");
	char *end;
	const char *s = v->str;
	long n = strtol(s, &end, 10);
	if (end == s || *end || !((s[0] >= '0' && s[0] <= '9') || s[0] == '-'))
		return spb_type_error(b, v, where, key, "a number");
	if (n < min || n > max)
		return cp_error_at(b->err, EXIT_USAGE, &v->mark,
				   "%skey \"%s\" must be between %ld and %ld", where, key, min,
				   max);
	*out = n;
	return 0;
}

int spb_duration(struct spec_builder *b, const struct ynode *v, const char *where,
		const char *key, long *out)
{
	if (v->kind != YNODE_SCALAR || ynode_is_null(v))
		return spb_type_error(b, v, where, key, "a duration like \"1s\"");
	if (spec_parse_duration(out, v->str) < 0)
		return cp_error_at(b->err, EXIT_USAGE, &v->mark,
				   "%skey \"%s\": \"%s\" is not a duration (like \"500ms\", "
				   "\"1m30s\", \"2h\")",
				   where, key, v->str);
	return 0;
}

int spb_strlist(struct spec_builder *b, const struct ynode *v, const char *where,
	       const char *key, struct strvec *out)
{
	if (v->kind != YNODE_SEQ)
		return spb_type_error(b, v, where, key, "a list");
	for (size_t i = 0; i < v->nitems; i++) {
		const struct ynode *it = v->items[i];
		if (it->kind != YNODE_SCALAR || ynode_is_null(it))
			return cp_error_at(b->err, EXIT_USAGE, &it->mark,
					   "%skey \"%s\": entries must be strings, got %s", where,
					   key, ynode_kind_name(it));
		strvec_push(out, it->str);
	}
	return 0;
}

const char *spb_env_lookup(const struct spec_builder *b, const char *name)
{
	const struct kv *kv = kvvec_get(b->ctx->env, name);
	return kv ? kv->value : NULL;
}

int spb_kv(struct spec_builder *b, const struct ynode *v, const char *where, const char *key,
	  struct kvvec *out, enum spb_null null_policy, const struct stage *params_of)
{
	if (v->kind == YNODE_SEQ) {
		for (size_t i = 0; i < v->nitems; i++) {
			const struct ynode *it = v->items[i];
			if (it->kind != YNODE_SCALAR || ynode_is_null(it))
				return cp_error_at(b->err, EXIT_USAGE, &it->mark,
						   "%skey \"%s\": entries must be \"KEY=VALUE\" "
						   "strings, got %s",
						   where, key, ynode_kind_name(it));
		}
	} else if (v->kind != YNODE_MAP) {
		return spb_type_error(b, v, where, key, "a mapping or a list");
	}
	size_t n = v->kind == YNODE_SEQ ? v->nitems : v->npairs;
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *k = NULL;
		const char *val;
		bool is_null;
		const struct ynode *at;
		if (v->kind == YNODE_SEQ) {
			at = v->items[i];
			const char *eq = strchr(at->str, '=');
			k = eq ? xstrndup(at->str, (size_t)(eq - at->str)) : xstrdup(at->str);
			val = eq ? eq + 1 : NULL;
			is_null = !eq;
		} else {
			at = v->pairs[i].value;
			k = xstrdup(v->pairs[i].key->str);
			if (at->kind != YNODE_SCALAR)
				return cp_error_at(
				    b->err, EXIT_USAGE, &at->mark,
				    "%skey \"%s\": value of \"%s\" must be a string, "
				    "got %s",
				    where, key, k, ynode_kind_name(at));
			is_null = ynode_is_null(at);
			val = at->str;
		}
		if (!*k)
			return cp_error_at(b->err, EXIT_USAGE, &at->mark,
					   "%skey \"%s\": empty name", where, key);
		if (is_null) {
			if (null_policy == SB_NULL_EMPTY) {
				kvvec_set(out, k, "");
				continue;
			}
			val = spb_env_lookup(b, k);
			if (!val)
				continue;
		}
		if (params_of) {
			cleanup_free char *sub = NULL;
			if (interp_params(&sub, val, &params_of->params, params_of->name, &at->mark,
					  b->err) < 0)
				return -1;
			kvvec_set(out, k, sub);
		} else {
			kvvec_set(out, k, val);
		}
	}
	return 0;
}

char *spb_shown(const struct spec_builder *b, const char *path)
{
	if (path[0] == '/' || !*b->ctx->shown_base)
		return xstrdup(path);
	while (str_has_prefix(path, "./"))
		path += 2;
	return xasprintf("%s%s", b->ctx->shown_base, path);
}

char *spb_host_path(const struct spec_builder *b, const char *path)
{
	if (path[0] == '~' && (path[1] == '/' || !path[1]))
		return path_absolute(b->home, path[1] ? path + 2 : ".");
	return path_absolute(b->p->dir, path);
}

/* ---- top level ---- */

static bool valid_name(const char *s, bool lower_only)
{
	if (!*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (!lower_only && c >= 'A' && c <= 'Z') ||
			  (p != s && (c == '_' || c == '-' || (!lower_only && c == '.')));
		if (!ok)
			return false;
	}
	return true;
}

static int build_volume(struct spec_builder *b, struct volume *vol, const struct ypair *pr)
{
	static const char *const keys[] = {"name", "external", "driver", "driver_opts", "labels"};
	const struct ynode *v = pr->value;
	vol->name = xstrdup(pr->key->str);
	vol->mark = pr->key->mark;
	if (!valid_name(vol->name, false))
		return cp_error_at(b->err, EXIT_USAGE, &pr->key->mark,
				   "invalid volume name \"%s\" (use letters, digits, \"_\", \"-\" "
				   "and \".\")",
				   vol->name);
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_MAP)
		return cp_error_at(b->err, EXIT_USAGE, &v->mark,
				   "volume \"%s\" must be a mapping, got %s", vol->name,
				   ynode_kind_name(v));
	cleanup_free char *where = xasprintf("volume \"%s\": ", vol->name);
	if (spb_check_keys(b, v, where, keys, ARRAY_LEN(keys)) < 0)
		return -1;
	for (size_t i = 0; i < v->npairs; i++) {
		const char *k = v->pairs[i].key->str;
		const struct ynode *val = v->pairs[i].value;
		int rc = 0;
		if (!strcmp(k, "name")) {
			rc = spb_string(b, val, where, k, &vol->ext_name);
		} else if (!strcmp(k, "external")) {
			if (val->kind == YNODE_MAP) { /* legacy external: {name: x} */
				vol->external = true;
				const struct ynode *n = ymap_get(val, "name");
				if (n)
					rc = spb_string(b, n, where, "external.name", &vol->ext_name);
			} else {
				rc = spb_bool(b, val, where, k, &vol->external);
			}
		} else if (!strcmp(k, "driver")) {
			rc = spb_string(b, val, where, k, &vol->driver);
		} else if (!strcmp(k, "labels")) {
			rc = spb_kv(b, val, where, k, &vol->labels, SB_NULL_EMPTY, NULL);
		} else if (!strcmp(k, "driver_opts") && !ynode_is_null(val)) {
			rc = spb_kv(b, val, where, k, &vol->driver_opts, SB_NULL_EMPTY, NULL);
			bool others = false;
			for (size_t j = 0; rc == 0 && j < vol->driver_opts.n; j++)
				others |= strcmp(vol->driver_opts.v[j].key, "size") != 0 &&
					  strcmp(vol->driver_opts.v[j].key, "storage_class") != 0;
			if (others)
				spb_warn(b, "volume driver_opts", "volume", &v->pairs[i].key->mark,
					"%sdriver_opts: cpipe reads only size and storage_class "
					"(kubernetes); the volume is created with the driver's "
					"defaults otherwise",
					where);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int build_volumes(struct spec_builder *b, const struct ynode *v)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_MAP)
		return spb_type_error(b, v, "", "volumes", "a mapping");
	b->p->volumes = xcalloc(v->npairs, sizeof(*b->p->volumes));
	for (size_t i = 0; i < v->npairs; i++) {
		b->p->nvolumes++;
		if (build_volume(b, &b->p->volumes[i], &v->pairs[i]) < 0)
			return -1;
	}
	b->volume_names = xcalloc(v->npairs + 1, sizeof(*b->volume_names));
	for (size_t i = 0; i < b->p->nvolumes; i++)
		b->volume_names[i] = b->p->volumes[i].name;
	return 0;
}

static char *dir_project_name(const char *dir)
{
	const char *base = strrchr(dir, '/');
	base = base ? base + 1 : dir;
	struct strbuf sb = STRBUF_INIT;
	for (const char *p = base; *p; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')
			sb_addc(&sb, c);
	}
	if (!sb.len)
		sb_adds(&sb, "default");
	return sb_detach(&sb);
}

/* Splits every --set key into stage and param; the stage must exist. */
static int check_sets(struct spec_builder *b)
{
	const struct kvvec *sets = b->ctx->opts ? b->ctx->opts->sets : NULL;
	if (!sets)
		return 0;
	b->sets = xcalloc(sets->n + 1, sizeof(*b->sets));
	for (size_t i = 0; i < sets->n; i++) {
		const char *key = sets->v[i].key;
		struct spb_set *s = &b->sets[b->nsets++];
		s->key = key;
		s->value = sets->v[i].value ? sets->v[i].value : "";
		size_t best = 0;
		for (size_t j = 0; j < b->p->nstages; j++) {
			const char *name = b->p->stages[j].name;
			size_t l = strlen(name);
			if (l > best && strncmp(key, name, l) == 0 && key[l] == '.' && key[l + 1]) {
				best = l;
				s->stage = &b->p->stages[j];
			}
		}
		if (s->stage) {
			s->param = key + best + 1;
			continue;
		}
		const char *dot = strchr(key, '.');
		if (!dot || dot == key || !dot[1])
			return cp_error_set(b->err, EXIT_USAGE,
					    "--set %s: expected STAGE.PARAM=VALUE", key);
		cleanup_free char *stage = xstrndup(key, (size_t)(dot - key));
		const char *near = suggest_nearest(stage, b->stage_names, b->p->nstages);
		if (near)
			return cp_error_set(b->err, EXIT_USAGE,
					    "--set %s: unknown stage \"%s\" (did you mean \"%s\"?)",
					    key, stage, near);
		return cp_error_set(b->err, EXIT_USAGE, "--set %s: unknown stage \"%s\"", key,
				    stage);
	}
	return 0;
}

static int build_stages_pass1(struct spec_builder *b, const struct ynode *v)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_MAP)
		return spb_type_error(b, v, "", b->stages_key, "a mapping");
	struct pipeline *p = b->p;
	p->stages = xcalloc(v->npairs, sizeof(*p->stages));
	b->stage_names = xcalloc(v->npairs + 1, sizeof(*b->stage_names));
	for (size_t i = 0; i < v->npairs; i++) {
		const struct ypair *pr = &v->pairs[i];
		struct stage *st = &p->stages[p->nstages++];
		st->name = xstrdup(pr->key->str);
		st->mark = pr->key->mark;
		st->index = (int)i;
		st->stop_grace_ms = CP_STOP_GRACE_MS;
		b->stage_names[i] = st->name;
		if (!valid_name(st->name, false))
			return cp_error_at(b->err, EXIT_USAGE, &pr->key->mark,
					   "invalid stage name \"%s\" (use letters, digits, \"_\", "
					   "\"-\" and \".\", starting with a letter or digit)",
					   st->name);
		if (strlen(st->name) > SPEC_STAGE_NAME_MAX)
			return cp_error_at(b->err, EXIT_USAGE, &pr->key->mark,
					   "stage name \"%.20s...\" is %zu characters long; cpipe "
					   "names log files after stages and allows at most %d",
					   st->name, strlen(st->name), SPEC_STAGE_NAME_MAX);
		if (ynode_is_null(pr->value))
			continue;
		if (pr->value->kind != YNODE_MAP)
			return cp_error_at(b->err, EXIT_USAGE, &pr->value->mark,
					   "stage \"%s\" must be a mapping, got %s", st->name,
					   ynode_kind_name(pr->value));
		const struct ynode *svc = ymap_get(pr->value, "service");
		if (svc) {
			cleanup_free char *where = xasprintf("stage \"%s\": ", st->name);
			if (spb_bool(b, svc, where, "service", &st->service) < 0)
				return -1;
		}
	}
	return 0;
}

int spec_build(struct pipeline *p, const struct ynode *root, const struct spec_ctx *ctx,
	       struct cp_error *err)
{
	struct spec_builder b = {.p = p, .ctx = ctx, .err = err, .stages_key = "stages"};
	const struct ynode *stages = NULL, *volumes = NULL, *secrets = NULL;
	int rc = -1;

	const char *home = spb_env_lookup(&b, "HOME");
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(getuid());
		home = pw && pw->pw_dir ? pw->pw_dir : "/";
	}
	b.home = xstrdup(home);

	if (root && root->kind != YNODE_MAP) {
		cp_error_at(err, EXIT_USAGE, &root->mark, "the spec must be a mapping, got %s",
			    ynode_kind_name(root));
		goto out;
	}
	if (root && spb_compose_keys(&b, root, CK_TOP, "") < 0)
		goto out;
	for (size_t i = 0; root && i < root->npairs; i++) {
		const struct ypair *pr = &root->pairs[i];
		const char *k = pr->key->str;
		if (!strcmp(k, "name")) {
			if (spb_string(&b, pr->value, "", k, &p->name) < 0)
				goto out;
			if (p->name && !valid_name(p->name, true)) {
				cp_error_at(
				    err, EXIT_USAGE, &pr->value->mark,
				    "project name \"%s\" must be lowercase letters, digits, "
				    "\"_\" and \"-\", starting with a letter or digit",
				    p->name);
				goto out;
			}
		} else if (!strcmp(k, "runtime")) {
			if (spb_string(&b, pr->value, "", k, &p->runtime) < 0)
				goto out;
			if (p->runtime && !runtime_find(p->runtime)) {
				const char *names[8];
				size_t n = 0;
				while (n < ARRAY_LEN(names) && (names[n] = runtime_name_at(n)))
					n++;
				const char *near = suggest_nearest(p->runtime, names, n);
				cp_error_at(err, EXIT_USAGE, &pr->value->mark,
					    "runtime \"%s\" is not one of " RUNTIME_CHOICES
					    "%s%s%s",
					    p->runtime, near ? " (did you mean \"" : "",
					    near ? near : "", near ? "\"?)" : "");
				goto out;
			}
		} else if (!strcmp(k, "x-cpipe")) {
			static const char *const xkeys[] = {"remote", "namespace", "storage_class",
							    "volume_size", "helper_image"};
			const struct ynode *remote = ymap_get(pr->value, "remote");
			const struct ynode *xv[4] = {ymap_get(pr->value, "namespace"),
						     ymap_get(pr->value, "storage_class"),
						     ymap_get(pr->value, "volume_size"),
						     ymap_get(pr->value, "helper_image")};
			char **xout[4] = {&p->x_namespace, &p->x_storage_class, &p->x_volume_size,
					  &p->x_helper_image};
			bool xbad = false;
			for (size_t j = 0; j < 4 && !xbad; j++)
				xbad = xv[j] && spb_string(&b, xv[j], "x-cpipe: ", xkeys[j + 1], xout[j]) < 0;
			if (xbad)
				goto out;
			if (pr->value->kind != YNODE_MAP && !ynode_is_null(pr->value)) {
				spb_type_error(&b, pr->value, "", k, "a mapping");
				goto out;
			}
			if ((pr->value->kind == YNODE_MAP &&
			     spb_check_keys(&b, pr->value, "x-cpipe: ", xkeys, ARRAY_LEN(xkeys)) < 0) ||
			    (remote && spb_string(&b, remote, "x-cpipe: ", "remote", &p->remote) < 0))
				goto out;
		} else if (!strcmp(k, "stages") || !strcmp(k, "services")) {
			stages = pr->value;
			b.stages_key = k;
		} else if (!strcmp(k, "volumes")) {
			volumes = pr->value;
		} else if (!strcmp(k, "secrets")) {
			secrets = pr->value;
		}
	}
	if (!p->name)
		p->name = dir_project_name(p->dir);
	if (volumes && build_volumes(&b, volumes) < 0)
		goto out;
	if (!b.volume_names)
		b.volume_names = xcalloc(1, sizeof(*b.volume_names));
	if (stages && build_stages_pass1(&b, stages) < 0)
		goto out;

	if (!p->nstages) {
		/* Marks of an empty `stages:` point at it; a file without one
		 * has nothing to point at but itself. */
		struct cp_mark mk = {p->mark_files.v[0], 0, 0};
		cp_error_at(err, EXIT_USAGE, stages ? &stages->mark : &mk,
			    "no stages defined; add a `stages:` (or `services:`) map");
		goto out;
	}
	pipeline_index_stages(p);
	if (spb_infer_services(&b, stages) < 0)
		goto out;
	if (!b.stage_names)
		b.stage_names = xcalloc(1, sizeof(*b.stage_names));
	if (check_sets(&b) < 0)
		goto out;
	for (size_t i = 0; i < p->nstages; i++) {
		const struct ynode *sv = stages->pairs[i].value;
		int r = ynode_is_null(sv) ? spb_apply_sets(&b, &p->stages[i])
					  : spb_stage(&b, &p->stages[i], sv);
		if (r < 0)
			goto out;
	}
	if (spb_compose_finish(&b, root) < 0 || spb_check_ports(&b) < 0 || spb_implicit_deps(&b) < 0)
		goto out;
	spb_volume_order(&b);
	if (spb_check_cycles(&b) < 0)
		goto out;
	spb_secrets(&b, secrets);
	rc = 0;
out:
	flush_warnings(&b);
	free(b.home);
	free(b.stage_names);
	free(b.volume_names);
	free(b.sets);
	free(b.ordered_by_volumes);
	return rc;
}
