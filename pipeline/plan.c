#include "plan.h"

#include <stdlib.h>
#include <string.h>

/* Dependencies as stage indices: deps of stage i are idx[off[i] .. off[i+1]),
 * in depends_on order; names that are no stage are left out. Resolving
 * names once (sorted, binary search) keeps a 1,000-stage plan linear-ish. */
struct adjacency {
	size_t *off;
	size_t *idx;
};

struct named {
	const char *name;
	size_t i;
};

static int cmp_named(const void *a, const void *b)
{
	return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

static void adjacency_build(struct adjacency *adj, const struct pipeline *p)
{
	size_t n = p->nstages, edges = 0;
	struct named *byname = xcalloc(n + 1, sizeof(*byname));
	for (size_t i = 0; i < n; i++) {
		byname[i] = (struct named){p->stages[i].name, i};
		edges += p->stages[i].ndeps;
	}
	qsort(byname, n, sizeof(*byname), cmp_named);
	adj->off = xcalloc(n + 1, sizeof(size_t));
	adj->idx = xcalloc(edges + 1, sizeof(size_t));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		adj->off[i] = k;
		for (size_t d = 0; d < p->stages[i].ndeps; d++) {
			struct named key = {p->stages[i].deps[d].stage, 0};
			const struct named *hit = bsearch(&key, byname, n, sizeof(*byname), cmp_named);
			if (hit)
				adj->idx[k++] = hit->i;
		}
	}
	adj->off[n] = k;
	free(byname);
}

static void adjacency_free(struct adjacency *adj)
{
	free(adj->off);
	free(adj->idx);
}

/* The position of stage i's dependency on stage j in its deps (for the
 * mark of an edge in a cycle). */
static const struct dep *dep_on(const struct pipeline *p, size_t i, size_t j)
{
	const struct stage *s = &p->stages[i];
	for (size_t d = 0; d < s->ndeps; d++)
		if (strcmp(s->deps[d].stage, p->stages[j].name) == 0)
			return &s->deps[d];
	return NULL;
}

enum { WHITE, GREY, BLACK };

/* Depth-first search that reports the first cycle it meets as text. */
static int find_cycle(const struct pipeline *p, const struct adjacency *adj, size_t i, int *color,
		      size_t *stack, size_t depth, struct cp_error *err)
{
	color[i] = GREY;
	stack[depth] = i;
	for (size_t e = adj->off[i]; e < adj->off[i + 1]; e++) {
		size_t j = adj->idx[e];
		if (color[j] == GREY) {
			struct strbuf sb = STRBUF_INIT;
			size_t start = 0;
			while (stack[start] != j)
				start++;
			/* The stack runs downstream → upstream; print upstream first. */
			sb_adds(&sb, p->stages[j].name);
			for (size_t k = depth + 1; k-- > start;)
				sb_addf(&sb, " -> %s", p->stages[stack[k]].name);
			const struct dep *d = dep_on(p, i, j);
			cp_error_at(err, d ? &d->mark : NULL, "dependency cycle: %s", sb_str(&sb));
			sb_free(&sb);
			return -1;
		}
		if (color[j] == WHITE && find_cycle(p, adj, j, color, stack, depth + 1, err) < 0)
			return -1;
	}
	color[i] = BLACK;
	return 0;
}

int plan_topo_order(size_t **out, const struct pipeline *p, struct cp_error *err)
{
	size_t n = p->nstages;
	struct adjacency adj;
	adjacency_build(&adj, p);
	cleanup_free int *color = xcalloc(n + 1, sizeof(int));
	cleanup_free size_t *stack = xcalloc(n + 1, sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		if (color[i] == WHITE && find_cycle(p, &adj, i, color, stack, 0, err) < 0) {
			adjacency_free(&adj);
			return -1;
		}
	}

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
	cleanup_free bool *done = xcalloc(n + 1, sizeof(bool));
	size_t *order = xcalloc(n + 1, sizeof(size_t));
	for (size_t k = 0; k < n; k++) {
		size_t pick = (size_t)-1;
		for (size_t i = 0; i < n; i++)
			if (!done[i] && pending[i] == 0) {
				pick = i;
				break;
			}
		if (pick == (size_t)-1) {
			free(order);
			adjacency_free(&adj);
			return cp_error_set(err, "dependency cycle among stages");
		}
		done[pick] = true;
		order[k] = pick;
		for (size_t e = roff[pick]; e < roff[pick + 1]; e++)
			pending[ridx[e]]--;
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

static void select_upstream(const struct adjacency *adj, size_t i, bool *selected)
{
	if (selected[i])
		return;
	selected[i] = true;
	for (size_t e = adj->off[i]; e < adj->off[i + 1]; e++)
		select_upstream(adj, adj->idx[e], selected);
}

static size_t stage_index(const struct pipeline *p, const char *name)
{
	for (size_t i = 0; i < p->nstages; i++)
		if (strcmp(p->stages[i].name, name) == 0)
			return i;
	return (size_t)-1;
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
	for (size_t k = 0; k < nnames; k++) {
		size_t i = stage_index(p, names[k]);
		if (i == (size_t)-1) {
			adjacency_free(&adj);
			plan_free(out);
			return pipeline_unknown_stage(p, names[k], err);
		}
		out->named[i] = true;
		if (no_deps)
			out->selected[i] = true;
		else
			select_upstream(&adj, i, out->selected);
	}
	if (nnames == 0)
		for (size_t i = 0; i < p->nstages; i++)
			if (profile_active(&p->stages[i], profiles))
				select_upstream(&adj, i, out->selected);
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
