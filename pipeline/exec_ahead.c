/* Getting the next jobs ready while the current ones run: a job whose
 * dependencies are running jobs will start the moment they succeed, and
 * what its runtime does before a start (a container created and attached)
 * does not depend on how they end. The runtime is asked to do it ahead
 * (runtime_ops prepare), so that the start is only a start; what was
 * prepared for a job that then does not start is given back. */
#include "exec_internal.h"

/* True when every dependency of slot i in this run is a job that is done,
 * running (and not being stopped) or `starting`, so that it starts once
 * those end well; false when it waits on anything else (a service, a
 * failure). */
static bool starts_next(struct run *r, size_t i, const struct slot *starting)
{
	const struct stage *s = &r->p->stages[i];
	for (size_t d = 0; d < s->ndeps; d++) {
		long j = pipeline_stage_index(r->p, s->deps[d].stage);
		if (j < 0 || !r->plan->selected[j])
			continue;
		const struct slot *up = &r->slots[j];
		if (up->s->service)
			return false;
		if (up == starting || up->state == SLOT_DONE)
			continue;
		if (up->state != SLOT_RUNNING || up->stopping ||
		    s->deps[d].condition == DEP_HEALTHY)
			return false;
	}
	return true;
}

void exec_prepare_ahead(struct run *r, const struct slot *starting)
{
	if (!r->ops->caps.ahead || r->stopping)
		return;
	int running = starting != NULL, ahead = 0;
	for (size_t i = 0; i < r->p->nstages; i++) {
		const struct slot *sl = &r->slots[i];
		running += sl->state == SLOT_RUNNING && !sl->s->service;
		ahead += sl->prepared && sl != starting;
	}
	for (size_t k = 0; k < r->plan->n && running && ahead < r->o->jobs; k++) {
		size_t i = r->plan->order[k];
		struct slot *sl = &r->slots[i];
		if (sl == starting || sl->state != SLOT_PENDING || sl->s->service || sl->prepared ||
		    sl->ahead_tried == r->starts + 1 || !starts_next(r, i, starting))
			continue;
		struct kvvec env = {0};
		struct task_desc desc;
		struct task_spec ts;
		exec_task_spec(r, sl, &env, &desc, &ts);
		sl->prepared = r->ops->prepare(r->rt, &ts);
		kvvec_free(&env);
		if (!sl->prepared)
			sl->ahead_tried = r->starts + 1;
		ahead += sl->prepared;
	}
}

void exec_unprepare(struct run *r, struct slot *sl)
{
	if (!sl->prepared)
		return;
	sl->prepared = false;
	r->ops->unprepare(r->rt, sl->s->name);
}

void exec_unprepare_all(struct run *r)
{
	for (size_t i = 0; i < r->p->nstages; i++)
		exec_unprepare(r, &r->slots[i]);
}
