#include "plan.h"

#include <stdlib.h>
#include <string.h>

static size_t stage_index(const struct pipeline *p, const char *name)
{
	for (size_t i = 0; i < p->nstages; i++)
		if (strcmp(p->stages[i].name, name) == 0)
			return i;
	return (size_t)-1;
}

enum { WHITE, GREY, BLACK };

/* Depth-first search that reports the first cycle it meets as text. */
static int find_cycle(const struct pipeline *p, size_t i, int *color, size_t *stack,
		      size_t depth, struct cp_error *err)
{
	color[i] = GREY;
	stack[depth] = i;
	const struct stage *s = &p->stages[i];
	for (size_t d = 0; d < s->ndeps; d++) {
		size_t j = stage_index(p, s->deps[d].stage);
		if (j == (size_t)-1)
			continue;
		if (color[j] == GREY) {
			struct strbuf sb = STRBUF_INIT;
			size_t start = 0;
			while (stack[start] != j)
				start++;
			/* The stack runs downstream → upstream; print upstream first. */
			sb_adds(&sb, p->stages[j].name);
			for (size_t k = depth + 1; k-- > start;)
				sb_addf(&sb, " -> %s", p->stages[stack[k]].name);
			cp_error_at(err, &s->deps[d].mark, "dependency cycle: %s", sb_str(&sb));
			sb_free(&sb);
			return -1;
		}
		if (color[j] == WHITE && find_cycle(p, j, color, stack, depth + 1, err) < 0)
			return -1;
	}
	color[i] = BLACK;
	return 0;
}

int plan_topo_order(size_t **out, const struct pipeline *p, struct cp_error *err)
{
	size_t n = p->nstages;
	cleanup_free int *color = xcalloc(n, sizeof(int));
	cleanup_free size_t *stack = xcalloc(n + 1, sizeof(size_t));
	for (size_t i = 0; i < n; i++)
		if (color[i] == WHITE && find_cycle(p, i, color, stack, 0, err) < 0)
			return -1;

	/* Kahn's algorithm; picking the lowest spec index among ready stages
	 * makes the order deterministic. */
	cleanup_free size_t *pending = xcalloc(n, sizeof(size_t));
	cleanup_free bool *done = xcalloc(n, sizeof(bool));
	for (size_t i = 0; i < n; i++)
		for (size_t d = 0; d < p->stages[i].ndeps; d++)
			if (stage_index(p, p->stages[i].deps[d].stage) != (size_t)-1)
				pending[i]++;
	size_t *order = xcalloc(n, sizeof(size_t));
	for (size_t k = 0; k < n; k++) {
		size_t pick = (size_t)-1;
		for (size_t i = 0; i < n; i++)
			if (!done[i] && pending[i] == 0) {
				pick = i;
				break;
			}
		if (pick == (size_t)-1) {
			free(order);
			return cp_error_set(err, "dependency cycle among stages");
		}
		done[pick] = true;
		order[k] = pick;
		for (size_t i = 0; i < n; i++)
			for (size_t d = 0; d < p->stages[i].ndeps; d++)
				if (strcmp(p->stages[i].deps[d].stage, p->stages[pick].name) == 0)
					pending[i]--;
	}
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

static void select_upstream(const struct pipeline *p, size_t i, bool *selected)
{
	if (selected[i])
		return;
	selected[i] = true;
	const struct stage *s = &p->stages[i];
	for (size_t d = 0; d < s->ndeps; d++) {
		size_t j = stage_index(p, s->deps[d].stage);
		if (j != (size_t)-1)
			select_upstream(p, j, selected);
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
	for (size_t k = 0; k < nnames; k++) {
		size_t i = stage_index(p, names[k]);
		if (i == (size_t)-1) {
			plan_free(out);
			return pipeline_unknown_stage(p, names[k], err);
		}
		out->named[i] = true;
		if (no_deps)
			out->selected[i] = true;
		else
			select_upstream(p, i, out->selected);
	}
	if (nnames == 0)
		for (size_t i = 0; i < p->nstages; i++)
			if (profile_active(&p->stages[i], profiles))
				select_upstream(p, i, out->selected);

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
