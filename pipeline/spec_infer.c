/* Jobs and services as compose means them. `service: true|false` decides
 * when given. Otherwise a stage is a long-running service when another
 * stage waits for it to start (service_started / service_healthy); it is a
 * job when another waits for it to complete; else a healthcheck,
 * `restart: always|unless-stopped` or published ports make it a service,
 * as does running an image as it comes (no build, command or entrypoint)
 * that another stage depends on; anything else is a job. Runs after pass 1 (names, service:) and
 * before the stages' own keys, so a depends_on without a condition can
 * mean "completed" on a job and "started" on a service. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spec_build.h"

/* The first stage that waits for this one to start, and to complete. */
struct waiters {
	const char *started; /* name of the dependent (lent from the tree) */
	const char *started_cond;
	const struct cp_mark *started_mark;
	const char *completed;
	const struct cp_mark *completed_mark;
	const char *plain; /* depends on it without a condition */
};

static const char *condition_of(const struct ynode *dep)
{
	const struct ynode *c = ymap_get(dep, "condition");
	return c && c->kind == YNODE_SCALAR && !ynode_is_null(c) ? c->str : NULL;
}

/* Who waits for whom, from the depends_on mappings (spec_normalize made
 * lists into mappings; malformed ones are reported later by spb_deps). */
static void find_waiters(struct spec_builder *b, const struct ynode *stages, struct waiters *w)
{
	for (size_t i = 0; i < stages->npairs; i++) {
		const struct ynode *deps = ymap_get(stages->pairs[i].value, "depends_on");
		if (!deps || deps->kind != YNODE_MAP)
			continue;
		for (size_t d = 0; d < deps->npairs; d++) {
			long j = pipeline_stage_index(b->p, deps->pairs[d].key->str);
			const char *cond = condition_of(deps->pairs[d].value);
			if (j < 0)
				continue;
			struct waiters *t = &w[j];
			if (!cond) {
				if (!t->plain)
					t->plain = stages->pairs[i].key->str;
				continue;
			}
			if ((!strcmp(cond, "service_started") || !strcmp(cond, "service_healthy")) &&
			    !t->started) {
				t->started = stages->pairs[i].key->str;
				t->started_cond = cond;
				t->started_mark = &deps->pairs[d].key->mark;
			} else if (!strcmp(cond, "service_completed_successfully") && !t->completed) {
				t->completed = stages->pairs[i].key->str;
				t->completed_mark = &deps->pairs[d].key->mark;
			}
		}
	}
}

/* compose's restart values; "no" is the string (YAML 1.2, as Compose v2
 * reads it), never a boolean. */
static int check_restart(struct spec_builder *b, const struct ynode *v, const char *where,
			 bool *keeps_running)
{
	*keeps_running = false;
	if (!v || ynode_is_null(v))
		return 0;
	if (v->kind == YNODE_SCALAR) {
		const char *s = v->str;
		if (!strcmp(s, "always") || !strcmp(s, "unless-stopped")) {
			*keeps_running = true;
			return 0;
		}
		if (!strcmp(s, "no") || !strcmp(s, "on-failure"))
			return 0;
		if (str_has_prefix(s, "on-failure:") && s[11]) {
			const char *p = s + 11;
			while (*p >= '0' && *p <= '9')
				p++;
			if (!*p)
				return 0;
		}
	}
	static const char *const vals[] = {"no", "always", "on-failure", "unless-stopped"};
	const char *near = v->kind == YNODE_SCALAR ? suggest_nearest(v->str, vals, 4) : NULL;
	return cp_error_at(b->err, EXIT_USAGE, &v->mark,
			   "%srestart must be no, always, on-failure[:N] or unless-stopped, got "
			   "%s%s%s%s",
			   where, v->kind == YNODE_SCALAR ? v->str : ynode_kind_name(v),
			   near ? " (did you mean \"" : "", near ? near : "", near ? "\"?)" : "");
}

/* A healthcheck that probes something (not disable: true, not NONE). */
static bool has_healthcheck(const struct ynode *hc)
{
	if (!hc || hc->kind != YNODE_MAP)
		return false;
	const struct ynode *dis = ymap_get(hc, "disable");
	if (dis && dis->kind == YNODE_SCALAR && !strcasecmp(dis->str, "true"))
		return false;
	const struct ynode *test = ymap_get(hc, "test");
	if (test && test->kind == YNODE_SEQ && test->nitems > 0 &&
	    test->items[0]->kind == YNODE_SCALAR && !strcmp(test->items[0]->str, "NONE"))
		return false;
	return true;
}

static bool has_ports(const struct ynode *ports)
{
	return ports && ports->kind == YNODE_SEQ && ports->nitems > 0;
}

/* Decides one stage; sets st->service and st->service_why. */
static int infer_one(struct spec_builder *b, struct stage *st, const struct ynode *v,
		     const struct waiters *w)
{
	cleanup_free char *where = xasprintf("stage \"%s\": ", st->name);
	bool keeps_running = false;
	const struct ynode *svc = ymap_get(v, "service");
	if (check_restart(b, ymap_get(v, "restart"), where, &keeps_running) < 0)
		return -1;
	if (svc && !ynode_is_null(svc)) {
		st->service_why = xstrdup(st->service ? "service: true" : "service: false");
	} else if (w->started) {
		st->service = true;
		st->service_why = xasprintf("stage \"%s\" depends on it with %s", w->started,
					    w->started_cond);
	} else if (w->completed) {
		st->service_why = xasprintf("stage \"%s\" depends on it with "
					    "service_completed_successfully",
					    w->completed);
	} else if (has_healthcheck(ymap_get(v, "healthcheck"))) {
		st->service = true;
		st->service_why = xstrdup("it has a healthcheck");
	} else if (keeps_running) {
		st->service = true;
		st->service_why = xasprintf("restart: %s", ymap_get(v, "restart")->str);
	} else if (has_ports(ymap_get(v, "ports"))) {
		st->service = true;
		st->service_why = xstrdup("it publishes ports and no stage depends on it with "
					  "service_completed_successfully");
	} else if (w->plain && !ymap_get(v, "build") && ynode_is_null(ymap_get(v, "command")) &&
		   ynode_is_null(ymap_get(v, "entrypoint"))) {
		/* redis, postgres, mongo: a server image run as it comes, that
		 * another stage needs, in files that say nothing more. */
		st->service = true;
		st->service_why = xasprintf("it runs its image as it comes (no build, command or "
					    "entrypoint) and stage \"%s\" depends on it",
					    w->plain);
	} else {
		st->service_why = xstrdup("nothing makes it long-running: no healthcheck, ports, "
					  "restart: always|unless-stopped or stage depending on it "
					  "with service_started/service_healthy");
	}
	/* A service runs until stopped: waiting for it to complete would never
	 * end. */
	if (st->service && w->completed)
		return cp_error_at(b->err, EXIT_USAGE, w->completed_mark,
				   "stage \"%s\" waits for \"%s\" to complete, but \"%s\" is a "
				   "service (%s) and runs until stopped; depend on it with "
				   "service_started or service_healthy, or make it a job with "
				   "service: false",
				   w->completed, st->name, st->name, st->service_why);
	return 0;
}

int spb_infer_services(struct spec_builder *b, const struct ynode *stages)
{
	if (stages->kind != YNODE_MAP)
		return 0;
	struct waiters *w = xcalloc(stages->npairs + 1, sizeof(*w));
	b->ordered_by_volumes = xcalloc(stages->npairs + 1, sizeof(bool));
	find_waiters(b, stages, w);
	int rc = 0;
	for (size_t i = 0; i < stages->npairs && rc == 0; i++) {
		const struct ynode *v = stages->pairs[i].value;
		struct stage *st = &b->p->stages[i];
		if (ynode_is_null(v)) {
			st->service_why = xstrdup("an empty stage is a job");
			continue;
		}
		rc = infer_one(b, st, v, &w[i]);
		b->ordered_by_volumes[i] = st->service && !ymap_get(v, "service") &&
					   !ymap_get(v, "inputs");
	}
	free(w);
	return rc;
}
