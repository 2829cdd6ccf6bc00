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
	/* deps only grow here: room doubles whenever ndeps reaches a power of
	 * two, so a stage with 50,000 dependencies is not copied 50,000 times. */
	size_t n = st->ndeps;
	if ((n & (n - 1)) == 0)
		st->deps = xrealloc(st->deps, (n ? 2 * n : 1) * sizeof(*st->deps));
	struct dep *d = &st->deps[st->ndeps++];
	memset(d, 0, sizeof(*d));
	return d;
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
			return cp_error_at(
			    b->err, EXIT_USAGE, &key->mark,
			    "%sdepends on unknown stage \"%s\" (did you mean \"%s\"?)", where, name,
			    near);
		return cp_error_at(b->err, EXIT_USAGE, &key->mark,
				   "%sdepends on unknown stage \"%s\"", where, name);
	}
	if (up == st)
		return cp_error_at(b->err, EXIT_USAGE, &key->mark, "%sdepends on itself", where);
	/* Names are distinct: spec_normalize rejects a list naming one twice. */
	struct dep *d = dep_add(st);
	d->stage = xstrdup(name);
	d->mark = key->mark;
	d->condition = up->service ? DEP_STARTED : DEP_COMPLETED_SUCCESSFULLY;
	if (ynode_is_null(val))
		return 0;
	cleanup_free char *w = xasprintf("%sdepends_on: %s: ", where, name);
	if (val->kind != YNODE_MAP)
		return spb_type_error(b, val, where, name, "a mapping");
	if (spb_check_keys(b, val, w, keys, ARRAY_LEN(keys)) < 0)
		return -1;
	bool flag;
	const struct ynode *n;
	if ((n = ymap_get(val, "required"))) {
		if (spb_bool(b, n, w, "required", &flag) < 0)
			return -1;
		if (!flag)
			spb_warn(b, "depends_on.required", "stage", &n->mark,
				"%srequired: false: cpipe ignores it; the stage is required", w);
	}
	if ((n = ymap_get(val, "restart"))) {
		if (spb_bool(b, n, w, "restart", &flag) < 0)
			return -1;
		if (flag)
			spb_warn(b, "depends_on.restart", "stage", &n->mark,
				"%srestart: true: cpipe ignores it; a stage is not restarted when "
				"what it depends on restarts",
				w);
	}
	const struct ynode *c = ymap_get(val, "condition");
	if (!c || ynode_is_null(c))
		return 0;
	if (c->kind != YNODE_SCALAR)
		return spb_type_error(b, c, w, "condition", "a string");
	for (size_t i = 0; i < ARRAY_LEN(conds); i++) {
		if (!strcmp(c->str, conds[i])) {
			d->condition = (enum dep_condition)i;
			return 0;
		}
	}
	const char *near = suggest_nearest(c->str, conds, ARRAY_LEN(conds));
	if (near)
		return cp_error_at(b->err, EXIT_USAGE, &c->mark,
				   "%sunknown condition \"%s\" (did you mean \"%s\"?)", w, c->str,
				   near);
	return cp_error_at(b->err, EXIT_USAGE, &c->mark,
			   "%sunknown condition \"%s\" (use service_started, service_healthy or "
			   "service_completed_successfully)",
			   w, c->str);
}

int spb_deps(struct spec_builder *b, struct stage *st, const struct ynode *v,
		      const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind == YNODE_SEQ) {
		for (size_t i = 0; i < v->nitems; i++) {
			const struct ynode *it = v->items[i];
			if (it->kind != YNODE_SCALAR || ynode_is_null(it))
				return cp_error_at(b->err, EXIT_USAGE, &it->mark,
						   "%skey \"depends_on\": entries must be stage "
						   "names, got %s",
						   where, ynode_kind_name(it));
			if (dep_one(b, st, it, NULL, where) < 0)
				return -1;
		}
		return 0;
	}
	if (v->kind != YNODE_MAP)
		return spb_type_error(b, v, where, "depends_on", "a list or a mapping");
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

/* Every declared output and metrics file, sorted by (volume, path), so the
 * producers of an input are found by binary search instead of by asking
 * every stage (a 1,000-stage spec would take a million comparisons). */
struct produced {
	const char *volume; /* NULL for host paths, sorted first */
	const char *path;
	size_t stage;
};

static int cmp_vol(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int cmp_produced(const void *x, const void *y)
{
	const struct produced *a = x, *b = y;
	int c = cmp_vol(a->volume, b->volume);
	return c ? c : strcmp(a->path, b->path);
}

/* Index of the first entry not below (volume, path). */
static size_t lower_bound(const struct produced *v, size_t n, const char *volume,
			  const char *path)
{
	size_t lo = 0, hi = n;
	struct produced key = {volume, path, 0};
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cmp_produced(&v[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int cmp_size(const void *x, const void *y)
{
	size_t a = *(const size_t *)x, b = *(const size_t *)y;
	return (a > b) - (a < b);
}

/* Stages whose outputs overlap `in` (equal, inside it, or containing it),
 * appended to *found. */
static void producers_of(size_t **found, size_t *nfound, size_t *cap, const struct produced *v,
			 size_t n, const struct artifact_ref *in)
{
#define FOUND(idx)                                                                   \
	do {                                                                         \
		if (*nfound == *cap) {                                               \
			*cap = *cap ? 2 * *cap : 8;                                  \
			*found = xrealloc(*found, *cap * sizeof(**found));           \
		}                                                                    \
		(*found)[(*nfound)++] = (idx);                                       \
	} while (0)
	/* Equal to or inside the input: a contiguous run from its path on. */
	for (size_t k = lower_bound(v, n, in->volume, in->path);
	     k < n && cmp_vol(v[k].volume, in->volume) == 0 && path_within(v[k].path, in->path); k++)
		FOUND(v[k].stage);
	/* Containing it: each proper ancestor directory, looked up exactly. */
	cleanup_free char *prefix = xstrdup(in->path);
	for (char *slash = strrchr(prefix, '/'); slash; slash = strrchr(prefix, '/')) {
		if (slash == prefix) {
			if (!prefix[1])
				break; /* the input is "/" itself: done above */
			prefix[1] = '\0';
		} else {
			*slash = '\0';
		}
		for (size_t k = lower_bound(v, n, in->volume, prefix);
		     k < n && cmp_vol(v[k].volume, in->volume) == 0 && strcmp(v[k].path, prefix) == 0;
		     k++)
			FOUND(v[k].stage);
		if (strcmp(prefix, "/") == 0)
			break;
	}
#undef FOUND
}

int spb_implicit_deps(struct spec_builder *b)
{
	struct pipeline *p = b->p;
	size_t n = 0, cap = 0;
	struct produced *v = NULL;
	for (size_t j = 0; j < p->nstages; j++) {
		const struct stage *up = &p->stages[j];
		for (int kind = 0; kind < 2; kind++) {
			const struct artifact_ref *refs = kind ? up->metrics : up->outputs;
			size_t nrefs = kind ? up->nmetrics : up->noutputs;
			for (size_t r = 0; r < nrefs; r++) {
				if (n == cap) {
					cap = cap ? 2 * cap : 64;
					v = xrealloc(v, cap * sizeof(*v));
				}
				v[n++] = (struct produced){refs[r].volume, refs[r].path, j};
			}
		}
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_produced);
	size_t *found = NULL, nfound = 0, fcap = 0;
	/* dep_of[j] == i + 1 once stage i depends on stage j. */
	size_t *dep_of = xcalloc(p->nstages + 1, sizeof(*dep_of));
	for (size_t i = 0; i < p->nstages; i++) {
		struct stage *st = &p->stages[i];
		if (!st->ninputs)
			continue;
		for (size_t d = 0; d < st->ndeps; d++) {
			long j = pipeline_stage_index(p, st->deps[d].stage);
			if (j >= 0)
				dep_of[j] = i + 1;
		}
		for (size_t k = 0; k < st->ninputs; k++) {
			nfound = 0;
			producers_of(&found, &nfound, &fcap, v, n, &st->inputs[k]);
			/* In spec order, as depends_on would list them. */
			if (nfound > 1)
				qsort(found, nfound, sizeof(*found), cmp_size);
			for (size_t f = 0; f < nfound; f++) {
				const struct stage *up = &p->stages[found[f]];
				if (found[f] == i || dep_of[found[f]] == i + 1)
					continue;
				dep_of[found[f]] = i + 1;
				struct dep *d = dep_add(st);
				d->stage = xstrdup(up->name);
				d->mark = st->inputs[k].mark;
				d->implicit = true;
				d->condition = up->service ? DEP_STARTED : DEP_COMPLETED_SUCCESSFULLY;
			}
		}
	}
	free(found);
	free(dep_of);
	free(v);
	return 0;
}

/* Reports the cycle closed by the edge from stack[depth] to stage j. */
static int cycle_error(struct spec_builder *b, const size_t *stack, size_t depth, size_t j,
		       const struct cp_mark *mark)
{
	struct strbuf sb = STRBUF_INIT;
	size_t from = 0;
	while (stack[from] != j)
		from++;
	for (size_t s = from; s <= depth; s++)
		sb_addf(&sb, "%s -> ", b->p->stages[stack[s]].name);
	sb_adds(&sb, b->p->stages[j].name);
	cp_error_at(b->err, EXIT_USAGE, mark, "dependency cycle: %s", sb_str(&sb));
	sb_free(&sb);
	return -1;
}

/* Depth-first search from `root` with an explicit stack (a 100,000-stage
 * chain would overflow the C stack); next[i] is the next dependency of
 * stage i to visit. */
static int dfs(struct spec_builder *b, size_t root, char *color, size_t *stack, size_t *next)
{
	size_t depth = 0;
	stack[0] = root;
	color[root] = 1;
	for (;;) {
		size_t i = stack[depth];
		const struct stage *st = &b->p->stages[i];
		if (next[i] == st->ndeps) {
			color[i] = 2;
			if (depth == 0)
				return 0;
			depth--;
			continue;
		}
		const struct dep *d = &st->deps[next[i]++];
		long j = pipeline_stage_index(b->p, d->stage);
		if (j < 0 || color[j] == 2)
			continue;
		if (color[j] == 1)
			return cycle_error(b, stack, depth, (size_t)j, &d->mark);
		color[j] = 1;
		stack[++depth] = (size_t)j;
	}
}

int spb_check_cycles(struct spec_builder *b)
{
	size_t n = b->p->nstages;
	char *color = xcalloc(n + 1, 1);
	size_t *stack = xcalloc(n + 1, sizeof(*stack));
	size_t *next = xcalloc(n + 1, sizeof(*next));
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (color[i] == 0)
			rc = dfs(b, i, color, stack, next);
	free(color);
	free(stack);
	free(next);
	return rc;
}

/* ---- services after the jobs that fill their volumes ---- */

static bool mounts_volume(const struct stage *st, const char *vol, bool writable)
{
	for (size_t m = 0; m < st->nmounts; m++)
		if (st->mounts[m].type == MOUNT_VOLUME && !strcmp(st->mounts[m].source, vol) &&
		    (!writable || !st->mounts[m].read_only))
			return true;
	return false;
}

/* Marks in `reaches` every stage that depends on stage s, transitively
 * (`rdeps` lists each stage's dependents). */
static void mark_dependents(const struct pipeline *p, size_t s, size_t **rdeps, size_t *nrdeps,
			    bool *reaches, size_t *stack)
{
	size_t n = 0;
	memset(reaches, 0, p->nstages * sizeof(*reaches));
	reaches[s] = true;
	stack[n++] = s;
	while (n) {
		size_t i = stack[--n];
		for (size_t k = 0; k < nrdeps[i]; k++) {
			size_t j = rdeps[i][k];
			if (!reaches[j]) {
				reaches[j] = true;
				stack[n++] = j;
			}
		}
	}
}

void spb_volume_order(struct spec_builder *b)
{
	struct pipeline *p = b->p;
	bool any = false;
	for (size_t i = 0; i < p->nstages && b->ordered_by_volumes; i++)
		any = any || (b->ordered_by_volumes[i] && p->stages[i].nmounts);
	if (!any)
		return;
	size_t **rdeps = xcalloc(p->nstages, sizeof(*rdeps));
	size_t *nrdeps = xcalloc(p->nstages, sizeof(*nrdeps));
	for (size_t i = 0; i < p->nstages; i++) {
		for (size_t d = 0; d < p->stages[i].ndeps; d++) {
			long j = pipeline_stage_index(p, p->stages[i].deps[d].stage);
			if (j < 0)
				continue;
			rdeps[j] = xrealloc(rdeps[j], (nrdeps[j] + 1) * sizeof(**rdeps));
			rdeps[j][nrdeps[j]++] = i;
		}
	}
	bool *reaches = xcalloc(p->nstages, sizeof(*reaches));
	size_t *stack = xcalloc(p->nstages, sizeof(*stack));
	for (size_t s = 0; s < p->nstages; s++) {
		struct stage *svc = &p->stages[s];
		if (!b->ordered_by_volumes[s] || !svc->nmounts)
			continue;
		mark_dependents(p, s, rdeps, nrdeps, reaches, stack);
		struct strbuf after = STRBUF_INIT;
		for (size_t j = 0; j < p->nstages; j++) {
			const struct stage *job = &p->stages[j];
			if (reaches[j] || job->service)
				continue;
			const char *vol = NULL;
			for (size_t m = 0; m < svc->nmounts && !vol; m++)
				if (svc->mounts[m].type == MOUNT_VOLUME &&
				    mounts_volume(job, svc->mounts[m].source, true))
					vol = svc->mounts[m].source;
			bool dup = false;
			for (size_t d = 0; d < svc->ndeps && !dup; d++)
				dup = !strcmp(svc->deps[d].stage, job->name);
			if (!vol || dup)
				continue;
			struct dep *d = dep_add(svc);
			d->stage = xstrdup(job->name);
			d->mark = svc->mark;
			d->implicit = true;
			d->condition = DEP_COMPLETED_SUCCESSFULLY;
			/* Later services see this edge: no cycle through two of them. */
			rdeps[j] = xrealloc(rdeps[j], (nrdeps[j] + 1) * sizeof(**rdeps));
			rdeps[j][nrdeps[j]++] = s;
			sb_addf(&after, "%s%s", after.len ? ", " : "", job->name);
		}
		if (after.len) {
			char *why = xasprintf("%s; it starts after the jobs that write a volume it "
					      "mounts: %s",
					      svc->service_why, sb_str(&after));
			free(svc->service_why);
			svc->service_why = why;
		}
		sb_free(&after);
	}
	for (size_t i = 0; i < p->nstages; i++)
		free(rdeps[i]);
	free(rdeps);
	free(nrdeps);
	free(reaches);
	free(stack);
}
