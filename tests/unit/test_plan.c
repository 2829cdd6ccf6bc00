/* Planner: selection of stages, upstream closure, --no-deps, profiles,
 * deterministic topological order, cycles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../pipeline/plan.h"

static struct pipeline *load(const char *yaml)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	struct spec_options o = {.dir = "/tmp"};
	if (spec_load_string(&p, "cpipe.yml", yaml, strlen(yaml), &o, &err) < 0)
		fail_msg("load failed: %s", err.msg);
	return p;
}

/* The plan's order as "a b c". */
static char *order_text(const struct plan *plan)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t k = 0; k < plan->n; k++)
		sb_addf(&sb, "%s%s", k ? " " : "", plan->p->stages[plan->order[k]].name);
	return sb_detach(&sb);
}

static const char *diamond = "stages:\n"
			     "  d: {command: x, depends_on: [b, c]}\n"
			     "  c: {command: x, depends_on: [a]}\n"
			     "  b: {command: x, depends_on: [a]}\n"
			     "  a: {command: x}\n"
			     "  lone: {command: x}\n";

static void check_plan(const char *yaml, const char *const *names, size_t n, bool no_deps,
		       const char *want)
{
	struct pipeline *p = load(yaml);
	struct plan plan;
	struct cp_error err = {0};
	assert_int_equal(plan_build(&plan, p, names, n, no_deps, NULL, &err), 0);
	char *got = order_text(&plan);
	assert_string_equal(got, want);
	free(got);
	plan_free(&plan);
	pipeline_free(p);
}

static void all_stages_topological_ties_in_spec_order(void **state)
{
	(void)state;
	check_plan(diamond, NULL, 0, false, "a c b d lone");
}

static void named_stage_brings_its_upstream(void **state)
{
	(void)state;
	const char *names[] = {"c"};
	check_plan(diamond, names, 1, false, "a c");
	const char *names2[] = {"d"};
	check_plan(diamond, names2, 1, false, "a c b d");
}

static void no_deps_runs_only_named(void **state)
{
	(void)state;
	const char *names[] = {"d", "a"};
	check_plan(diamond, names, 2, true, "a d");
}

static void implicit_edges_from_inputs_order_stages(void **state)
{
	(void)state;
	const char *yaml = "volumes: {v: {}}\n"
			   "stages:\n"
			   "  evaluate: {command: x, inputs: ['v:/model/ckpt']}\n"
			   "  train: {command: x, inputs: ['v:/data'], outputs: ['v:/model']}\n"
			   "  prepare: {command: x, outputs: ['v:/data/set.bin']}\n";
	check_plan(yaml, NULL, 0, false, "prepare train evaluate");
	const char *names[] = {"evaluate"};
	check_plan(yaml, names, 1, false, "prepare train evaluate");
}

static void profiles_hide_stages_unless_named_or_active(void **state)
{
	(void)state;
	const char *yaml = "stages:\n"
			   "  main: {command: x}\n"
			   "  debug: {command: x, profiles: [dev]}\n";
	check_plan(yaml, NULL, 0, false, "main");
	const char *names[] = {"debug"};
	check_plan(yaml, names, 1, false, "debug");

	struct pipeline *p = load(yaml);
	struct strvec prof = {0};
	strvec_push(&prof, "dev");
	struct plan plan;
	struct cp_error err = {0};
	assert_int_equal(plan_build(&plan, p, NULL, 0, false, &prof, &err), 0);
	assert_int_equal(plan.n, 2);
	plan_free(&plan);
	strvec_free(&prof);
	pipeline_free(p);
}

static void unknown_stage_suggests(void **state)
{
	(void)state;
	struct pipeline *p = load(diamond);
	struct plan plan;
	struct cp_error err = {0};
	const char *names[] = {"lonely"};
	assert_int_equal(plan_build(&plan, p, names, 1, false, NULL, &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_non_null(strstr(err.msg, "unknown stage \"lonely\" (did you mean \"lone\"?)"));
	pipeline_free(p);
}

static void order_is_stable_for_a_large_chain(void **state)
{
	(void)state;
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "stages:\n");
	for (int i = 199; i >= 0; i--) {
		if (i > 0)
			sb_addf(&sb, "  s%d: {command: x, depends_on: [s%d]}\n", i, i - 1);
		else
			sb_addf(&sb, "  s%d: {command: x}\n", i);
	}
	struct pipeline *p = load(sb_str(&sb));
	sb_free(&sb);
	size_t *order = NULL;
	struct cp_error err = {0};
	assert_int_equal(plan_topo_order(&order, p, &err), 0);
	assert_int_equal(p->nstages, 200);
	for (size_t k = 0; k < p->nstages; k++) {
		char want[32];
		snprintf(want, sizeof(want), "s%zu", k);
		assert_string_equal(p->stages[order[k]].name, want);
	}
	free(order);
	pipeline_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(all_stages_topological_ties_in_spec_order),
		cmocka_unit_test(named_stage_brings_its_upstream),
		cmocka_unit_test(no_deps_runs_only_named),
		cmocka_unit_test(implicit_edges_from_inputs_order_stages),
		cmocka_unit_test(profiles_hide_stages_unless_named_or_active),
		cmocka_unit_test(unknown_stage_suggests),
		cmocka_unit_test(order_is_stable_for_a_large_chain),
	};
	return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
