/* depends_on, implicit dependencies from artifacts, and the cycle check. */
#include <stdlib.h>
#include <string.h>

#include "../lib/fs.h"
#include "spec_build.h"

/* ---- depends_on ---- */

static const struct stage *find_stage(const struct spec_builder *b, const char *name)
{
	return pipeline_stage(b->p, name);
}

static struct dep *dep_add(struct stage *st)
{
	st->deps = xrealloc(st->deps, (st->ndeps + 1) * sizeof(*st->deps));
	struct dep *d = &st->deps[st->ndeps++];
	memset(d, 0, sizeof(*d));
	return d;
}

static bool has_dep(const struct stage *st, const char *name)
{
	for (size_t i = 0; i < st->ndeps; i++)
		if (!strcmp(st->deps[i].stage, name))
			return true;
	return false;
}

static int dep_one(struct spec_builder *b, struct stage *st, const struct ynode *key,
		   const struct ynode *val, const char *where)
{
	static const char *const keys[] = {"condition", "required", "restart"};
	static const char *const conds[] = {"service_completed_successfully", "service_started",
					    "service_healthy"};
	const char *name = key->str;
	const struct stage *up = find_stage(b, name);
	if (!up) {
		const char *near = suggest_nearest(name, b->stage_names, b->p->nstages);
		if (near)
			return cp_error_at(b->err, &key->mark,
					   "%sdepends on unknown stage \"%s\" (did you mean \"%s\"?)",
					   where, name, near);
		return cp_error_at(b->err, &key->mark, "%sdepends on unknown stage \"%s\"", where,
				   name);
	}
	if (up == st)
		return cp_error_at(b->err, &key->mark, "%sdepends on itself", where);
	if (has_dep(st, name))
		return cp_error_at(b->err, &key->mark, "%sdepends on \"%s\" twice", where, name);
	struct dep *d = dep_add(st);
	d->stage = xstrdup(name);
	d->mark = key->mark;
	d->condition = up->service ? DEP_STARTED : DEP_COMPLETED_SUCCESSFULLY;
	if (ynode_is_null(val))
		return 0;
	cleanup_free char *w = xasprintf("%sdepends_on: %s: ", where, name);
	if (val->kind != YNODE_MAP)
		return sb_type_error(b, val, where, name, "a mapping");
	if (sb_check_keys(b, val, w, keys, ARRAY_LEN(keys)) < 0)
		return -1;
	bool flag;
	const struct ynode *n;
	if (((n = ymap_get(val, "required")) && sb_bool(b, n, w, "required", &flag) < 0) ||
	    ((n = ymap_get(val, "restart")) && sb_bool(b, n, w, "restart", &flag) < 0))
		return -1;
	const struct ynode *c = ymap_get(val, "condition");
	if (!c || ynode_is_null(c))
		return 0;
	if (c->kind != YNODE_SCALAR)
		return sb_type_error(b, c, w, "condition", "a string");
	for (size_t i = 0; i < ARRAY_LEN(conds); i++) {
		if (!strcmp(c->str, conds[i])) {
			d->condition = (enum dep_condition)i;
			return 0;
		}
	}
	const char *near = suggest_nearest(c->str, conds, ARRAY_LEN(conds));
	if (near)
		return cp_error_at(b->err, &c->mark,
				   "%sunknown condition \"%s\" (did you mean \"%s\"?)", w, c->str,
				   near);
	return cp_error_at(b->err, &c->mark,
			   "%sunknown condition \"%s\" (use service_started, service_healthy or "
			   "service_completed_successfully)",
			   w, c->str);
}

int sb_deps(struct spec_builder *b, struct stage *st, const struct ynode *v,
		      const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind == YNODE_SEQ) {
		for (size_t i = 0; i < v->nitems; i++) {
			const struct ynode *it = v->items[i];
			if (it->kind != YNODE_SCALAR || ynode_is_null(it))
				return cp_error_at(b->err, &it->mark,
						   "%skey \"depends_on\": entries must be stage "
						   "names, got %s",
						   where, ynode_kind_name(it));
			if (dep_one(b, st, it, NULL, where) < 0)
				return -1;
		}
		return 0;
	}
	if (v->kind != YNODE_MAP)
		return sb_type_error(b, v, where, "depends_on", "a list or a mapping");
	for (size_t i = 0; i < v->npairs; i++)
		if (dep_one(b, st, v->pairs[i].key, v->pairs[i].value, where) < 0)
			return -1;
	return 0;
}

/* ---- graph ---- */

static bool path_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);
	if (n == 1 && outer[0] == '/')
		return true;
	return strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

static bool refs_overlap(const struct artifact_ref *a, const struct artifact_ref *b)
{
	if (!a->volume != !b->volume)
		return false;
	if (a->volume && strcmp(a->volume, b->volume) != 0)
		return false;
	return path_within(a->path, b->path) || path_within(b->path, a->path);
}

static bool produces(const struct stage *up, const struct artifact_ref *in)
{
	for (size_t i = 0; i < up->noutputs; i++)
		if (refs_overlap(in, &up->outputs[i]))
			return true;
	for (size_t i = 0; i < up->nmetrics; i++)
		if (refs_overlap(in, &up->metrics[i]))
			return true;
	return false;
}

int sb_implicit_deps(struct spec_builder *b)
{
	struct pipeline *p = b->p;
	for (size_t i = 0; i < p->nstages; i++) {
		struct stage *st = &p->stages[i];
		for (size_t k = 0; k < st->ninputs; k++) {
			for (size_t j = 0; j < p->nstages; j++) {
				const struct stage *up = &p->stages[j];
				if (j == i || has_dep(st, up->name) || !produces(up, &st->inputs[k]))
					continue;
				struct dep *d = dep_add(st);
				d->stage = xstrdup(up->name);
				d->mark = st->inputs[k].mark;
				d->implicit = true;
				d->condition = up->service ? DEP_STARTED : DEP_COMPLETED_SUCCESSFULLY;
			}
		}
	}
	return 0;
}

static int stage_index(const struct pipeline *p, const char *name)
{
	const struct stage *st = pipeline_stage(p, name);
	return st ? (int)(st - p->stages) : -1;
}

static int dfs(struct spec_builder *b, size_t i, char *color, size_t *stack, size_t depth)
{
	const struct stage *st = &b->p->stages[i];
	color[i] = 1;
	stack[depth] = i;
	for (size_t k = 0; k < st->ndeps; k++) {
		int j = stage_index(b->p, st->deps[k].stage);
		if (j < 0)
			continue;
		if (color[j] == 1) {
			struct strbuf sb = STRBUF_INIT;
			size_t from = 0;
			while (stack[from] != (size_t)j)
				from++;
			for (size_t s = from; s <= depth; s++)
				sb_addf(&sb, "%s -> ", b->p->stages[stack[s]].name);
			sb_adds(&sb, b->p->stages[j].name);
			cp_error_at(b->err, &st->deps[k].mark, "dependency cycle: %s", sb_str(&sb));
			sb_free(&sb);
			return -1;
		}
		if (color[j] == 0 && dfs(b, (size_t)j, color, stack, depth + 1) < 0)
			return -1;
	}
	color[i] = 2;
	return 0;
}

int sb_check_cycles(struct spec_builder *b)
{
	size_t n = b->p->nstages;
	char *color = xcalloc(n + 1, 1);
	size_t *stack = xcalloc(n + 1, sizeof(*stack));
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (color[i] == 0)
			rc = dfs(b, i, color, stack, 0);
	free(color);
	free(stack);
	return rc;
}
