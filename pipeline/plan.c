#include "plan.h"
#include "spec_image.h"

#include <stdlib.h>
#include <string.h>

/* Dependencies as stage indices: deps of stage i are idx[off[i] .. off[i+1]),
 * in depends_on order; names that are no stage are left out. Names resolve
 * through the pipeline's sorted index, so building this is O(E log n). */
struct adjacency {
	size_t *off;
	size_t *idx;
};

static void adjacency_build(struct adjacency *adj, const struct pipeline *p)
{
	size_t n = p->nstages, edges = 0;
	for (size_t i = 0; i < n; i++)
		edges += p->stages[i].ndeps;
	adj->off = xcalloc(n + 1, sizeof(size_t));
	adj->idx = xcalloc(edges + 1, sizeof(size_t));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		adj->off[i] = k;
		for (size_t d = 0; d < p->stages[i].ndeps; d++) {
			long j = pipeline_stage_index(p, p->stages[i].deps[d].stage);
			if (j >= 0)
				adj->idx[k++] = (size_t)j;
		}
	}
	adj->off[n] = k;
}

static void adjacency_free(struct adjacency *adj)
{
	free(adj->off);
	free(adj->idx);
}

/* A binary min-heap of stage indices: the ready stage with the lowest spec
 * index comes out first, in O(log n). */
struct ready_heap {
	size_t *v;
	size_t n;
};

static void heap_push(struct ready_heap *h, size_t x)
{
	size_t i = h->n++;
	while (i > 0 && h->v[(i - 1) / 2] > x) {
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = x;
}

static size_t heap_pop(struct ready_heap *h)
{
	size_t top = h->v[0], last = h->v[--h->n], i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1] < h->v[c])
			c++;
		if (last <= h->v[c])
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

int plan_topo_order(size_t **out, const struct pipeline *p, struct cp_error *err)
{
	size_t n = p->nstages;
	struct adjacency adj;
	adjacency_build(&adj, p);

	/* Kahn's algorithm; picking the lowest spec index among ready stages
	 * makes the order deterministic. Dependents are found through the
	 * reversed adjacency. */
	cleanup_free size_t *pending = xcalloc(n + 1, sizeof(size_t));
	cleanup_free size_t *roff = xcalloc(n + 2, sizeof(size_t));
	cleanup_free size_t *ridx = xcalloc(adj.off[n] + 1, sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		pending[i] = adj.off[i + 1] - adj.off[i];
		for (size_t e = adj.off[i]; e < adj.off[i + 1]; e++)
			roff[adj.idx[e] + 1]++;
	}
	for (size_t i = 0; i < n; i++)
		roff[i + 1] += roff[i];
	cleanup_free size_t *fill = xcalloc(n + 1, sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		for (size_t e = adj.off[i]; e < adj.off[i + 1]; e++) {
			size_t j = adj.idx[e];
			ridx[roff[j] + fill[j]++] = i;
		}
	cleanup_free size_t *heap_v = xcalloc(n + 1, sizeof(size_t));
	struct ready_heap ready = {heap_v, 0};
	for (size_t i = 0; i < n; i++)
		if (pending[i] == 0)
			heap_push(&ready, i);
	size_t *order = xcalloc(n + 1, sizeof(size_t));
	for (size_t k = 0; k < n; k++) {
		if (!ready.n) {
			/* The loader rejects cycles with their path; this is a guard. */
			free(order);
			adjacency_free(&adj);
			return cp_error_set(err, EXIT_USAGE, "dependency cycle among stages");
		}
		size_t pick = heap_pop(&ready);
		order[k] = pick;
		for (size_t e = roff[pick]; e < roff[pick + 1]; e++)
			if (--pending[ridx[e]] == 0)
				heap_push(&ready, ridx[e]);
	}
	adjacency_free(&adj);
	*out = order;
	return 0;
}

static bool profile_active(const struct stage *s, const struct strvec *profiles)
{
	if (s->profiles.n == 0)
		return true;
	for (size_t i = 0; profiles && i < profiles->n; i++)
		if (strcmp(profiles->v[i], "*") == 0 || strvec_contains(&s->profiles, profiles->v[i]))
			return true;
	return false;
}

/* Marks stage i and everything upstream of it; `todo` (nstages long) is
 * scratch space for the walk, which needs no recursion. */
static void select_upstream(const struct adjacency *adj, size_t i, bool *selected, size_t *todo)
{
	if (selected[i])
		return;
	size_t n = 0;
	selected[i] = true;
	todo[n++] = i;
	while (n) {
		size_t s = todo[--n];
		for (size_t e = adj->off[s]; e < adj->off[s + 1]; e++) {
			size_t j = adj->idx[e];
			if (!selected[j]) {
				selected[j] = true;
				todo[n++] = j;
			}
		}
	}
}

int plan_build(struct plan *out, const struct pipeline *p, const char *const *names,
	       size_t nnames, bool no_deps, const struct strvec *profiles,
	       struct cp_error *err)
{
	memset(out, 0, sizeof(*out));
	out->p = p;
	out->selected = xcalloc(p->nstages ? p->nstages : 1, sizeof(bool));
	out->named = xcalloc(p->nstages ? p->nstages : 1, sizeof(bool));
	struct adjacency adj;
	adjacency_build(&adj, p);
	cleanup_free size_t *todo = xcalloc(p->nstages + 1, sizeof(size_t));
	for (size_t k = 0; k < nnames; k++) {
		long i = pipeline_stage_index(p, names[k]);
		if (i < 0) {
			adjacency_free(&adj);
			plan_free(out);
			return pipeline_unknown_stage(p, names[k], err);
		}
		out->named[i] = true;
		if (no_deps)
			out->selected[i] = true;
		else
			select_upstream(&adj, (size_t)i, out->selected, todo);
	}
	if (nnames == 0)
		for (size_t i = 0; i < p->nstages; i++)
			if (profile_active(&p->stages[i], profiles))
				select_upstream(&adj, i, out->selected, todo);
	adjacency_free(&adj);

	cleanup_free size_t *all = NULL;
	if (plan_topo_order(&all, p, err) < 0) {
		plan_free(out);
		return -1;
	}
	out->order = xcalloc(p->nstages ? p->nstages : 1, sizeof(size_t));
	for (size_t k = 0; k < p->nstages; k++)
		if (out->selected[all[k]])
			out->order[out->n++] = all[k];
	return 0;
}

int plan_check_runnable(const struct plan *plan, const char *runtime, bool images,
			struct cp_error *err)
{
	for (size_t k = 0; k < plan->n; k++) {
		const struct stage *s = &plan->p->stages[plan->order[k]];
		if (!images && spec_image_check_local(s, err) < 0)
			return -1;
		for (size_t i = 0; images && s->security.read_only && i < s->security.nsecrets; i++) {
			const struct stage_secret *x = &s->security.secrets[i];
			if (x->source)
				continue;
			return cp_error_at(
			    err, EXIT_USAGE, &x->mark,
			    "stage \"%s\": %s \"%s\" is given by value, which the %s "
			    "runtime copies into the container, and read_only: true "
			    "refuses that; declare it with file: or drop read_only",
			    s->name, x->config ? "config" : "secret", x->name, runtime);
		}
		if (images && !s->build && !(s->image && *s->image)) {
			return cp_error_at(err, EXIT_USAGE, &s->mark,
					   "stage \"%s\" has neither image: nor build:, and the %s "
					   "runtime needs one to run it",
					   s->name, runtime);
		}
	}
	return 0;
}

void plan_free(struct plan *plan)
{
	free(plan->order);
	free(plan->selected);
	free(plan->named);
	plan->order = NULL;
	plan->selected = NULL;
	plan->named = NULL;
	plan->n = 0;
}
