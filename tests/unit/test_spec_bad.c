/* Unit tests of the loader's limits and of specs it must refuse: alias and
 * merge expansion caps, empty specs, duplicate names and ports, bad values,
 * invalid UTF-8; and that large specs load with the right graph. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../pipeline/plan.h"

static const char *const test_env[] = {"HOME=/home/u", NULL};

static int load_n(struct pipeline **p, const char *yaml, size_t len, struct cp_error *err)
{
	struct spec_options o = {.dir = "/proj", .env = test_env};
	return spec_load_string(p, "cpipe.yml", yaml, len, &o, err);
}

static struct pipeline *load(const char *yaml)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	if (load_n(&p, yaml, strlen(yaml), &err) < 0)
		fail_msg("unexpected error: %s", err.msg);
	return p;
}

static void expect_error_n(const char *yaml, size_t len, const char *msg)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	int rc = load_n(&p, yaml, len, &err);
	if (rc == 0)
		pipeline_free(p);
	assert_int_equal(rc, -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_string_equal(err.msg, msg);
}

static void expect_error(const char *yaml, const char *msg)
{
	expect_error_n(yaml, strlen(yaml), msg);
}

static void add_repeat(struct strbuf *sb, char c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sb_addc(sb, c);
}

/* `x-big: &b "<1 MiB>"` then `x-list: [*b, *b, ...]`: refused at the alias
 * that crosses 64 MiB, not after allocating gigabytes. */
static void test_alias_text_is_capped(void **state)
{
	(void)state;
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "x-big: &b \"");
	add_repeat(&sb, 'x', 1 << 20);
	sb_adds(&sb, "\"\nx-list: [");
	for (int i = 0; i < 10000; i++)
		sb_adds(&sb, i ? ", *b" : "*b");
	sb_adds(&sb, "]\nstages: {a: {command: \"true\"}}\n");
	/* Aliases sit at columns 10, 14, 18, ...: the 63rd copy, with the
	 * original and the keys, is the one past 64 MiB. */
	expect_error_n(sb_str(&sb), sb.len,
		       "cpipe.yml:2:258: alias \"b\" expands the spec past 64 MiB of text, the "
		       "most cpipe reads from one file once aliases and \"<<\" merge keys are "
		       "expanded; repeat large values less often");
	sb_free(&sb);
}

/* The same through `<<` merge keys: each merge copies the source again. */
static void test_merge_text_is_capped(void **state)
{
	(void)state;
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "x-m: &m {k: \"");
	add_repeat(&sb, 'y', 1 << 20);
	sb_adds(&sb, "\"}\nx-f: \"");
	add_repeat(&sb, 'f', 3 << 19);
	sb_adds(&sb, "\"\n");
	for (int i = 0; i < 40; i++)
		sb_addf(&sb, "x-%d: {<<: *m}\n", i);
	sb_adds(&sb, "stages: {a: {command: \"true\"}}\n");
	/* 2.5 MiB written, then each line copies 1 MiB twice (the alias, then
	 * the merge): the 31st line's merge is the one past 64 MiB. */
	expect_error_n(sb_str(&sb), sb.len,
		       "cpipe.yml:33:8: merge key \"<<\" expands the spec past 64 MiB of text, "
		       "the most cpipe reads from one file once aliases and \"<<\" merge keys "
		       "are expanded; repeat large values less often");
	sb_free(&sb);
}

static void test_no_stages(void **state)
{
	(void)state;
	const char *msg = "cpipe.yml: no stages defined; add a `stages:` (or `services:`) map";
	expect_error("", msg);
	expect_error("# only a comment\n", msg);
	expect_error("name: x\nvolumes: {v: {}}\n", msg);
	expect_error("stages: {}\n",
		     "cpipe.yml:1:9: no stages defined; add a `stages:` (or `services:`) map");
	expect_error("services:\n",
		     "cpipe.yml:1:10: no stages defined; add a `stages:` (or `services:`) map");
}

static void test_depends_on_twice(void **state)
{
	(void)state;
	expect_error("stages:\n  b: {command: x}\n  a: {command: x, depends_on: [b, b]}\n",
		     "cpipe.yml:3:35: stage \"a\": depends on \"b\" twice");
	/* The environment list keeps compose's rule: the last value wins, in
	 * the first one's place. */
	struct pipeline *p = load("stages:\n  a:\n    command: x\n"
				  "    environment: [A=1, B=2, A=3]\n");
	const struct stage *a = pipeline_stage(p, "a");
	assert_int_equal(a->environment.n, 2);
	assert_string_equal(a->environment.v[0].key, "A");
	assert_string_equal(a->environment.v[0].value, "3");
	assert_string_equal(a->environment.v[1].key, "B");
	pipeline_free(p);
}

static void test_host_port_published_twice(void **state)
{
	(void)state;
	expect_error("stages:\n"
		     "  a: {command: x, ports: [\"8000:80\"]}\n"
		     "  b: {command: x, ports: [\"8000:81\"]}\n",
		     "cpipe.yml:3:27: stage \"b\": host port 8000/tcp on 127.0.0.1 is already "
		     "published by stage \"a\" (cpipe.yml:2:27); two stages cannot bind one host "
		     "port");
	/* A range reaching the port, on all addresses, clashes too. */
	expect_error("stages:\n"
		     "  a: {command: x, ports: [\"0.0.0.0:7990-8010:7990-8010\"]}\n"
		     "  b: {command: x, ports: [\"127.0.0.1:8005:80\"]}\n",
		     "cpipe.yml:3:27: stage \"b\": host port 8005/tcp on 127.0.0.1 is already "
		     "published by stage \"a\" (cpipe.yml:2:27); two stages cannot bind one host "
		     "port");
	/* Other addresses, other protocols and free ports do not. */
	struct pipeline *p = load("stages:\n"
				  "  a: {command: x, ports: [\"127.0.0.1:8000:80\", \"8000:80/udp\", \"80\"]}\n"
				  "  b: {command: x, ports: [\"127.0.0.2:8000:80\", \"8001:80\", \"80\"]}\n");
	assert_int_equal(p->nstages, 2);
	pipeline_free(p);
}

static void test_bad_host_ip_and_gpus(void **state)
{
	(void)state;
	expect_error("stages:\n  a: {command: x, ports: [\"999.1.2.3:8000:80\"]}\n",
		     "cpipe.yml:2:27: stage \"a\": port \"999.1.2.3:8000:80\": host IP "
		     "\"999.1.2.3\" is not an IPv4 or IPv6 address");
	expect_error("stages:\n  a: {command: x, gpus: lots}\n",
		     "cpipe.yml:2:25: stage \"a\": gpus \"lots\" is not \"all\", a number of GPUs "
		     "or \"device=ID[,ID...]\"");
	expect_error("stages:\n  a:\n    command: x\n    gpus: [{count: lots}]\n",
		     "cpipe.yml:4:20: stage \"a\": GPU count \"lots\" is not \"all\" or a number of "
		     "GPUs");
	struct pipeline *p = load("stages:\n  a:\n    command: x\n"
				  "    ports: [\"[::1]:8000:80\"]\n"
				  "    gpus: [all, 2, \"device=0,1\", {count: 1}]\n");
	assert_int_equal(p->stages[0].gpus.n, 4);
	assert_string_equal(p->stages[0].ports[0].host_ip, "::1");
	pipeline_free(p);
}

static void test_stage_name_length(void **state)
{
	(void)state;
	char name[SPEC_STAGE_NAME_MAX + 2];
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	char *yaml = xasprintf("stages:\n  %s: {command: x}\n", name);
	expect_error(yaml, "cpipe.yml:2:3: stage name \"aaaaaaaaaaaaaaaaaaaa...\" is 201 "
			   "characters long; cpipe names log files after stages and allows at "
			   "most 200");
	free(yaml);
	name[SPEC_STAGE_NAME_MAX] = '\0';
	yaml = xasprintf("stages:\n  %s: {command: x}\n", name);
	struct pipeline *p = load(yaml);
	assert_int_equal(strlen(p->stages[0].name), SPEC_STAGE_NAME_MAX);
	pipeline_free(p);
	free(yaml);
}

static void test_invalid_utf8_is_placed(void **state)
{
	(void)state;
	expect_error("stages:\n  a: {command: \"tr\xffue\"}\n",
		     "cpipe.yml:2:19: invalid leading UTF-8 octet (byte 0xff): the spec must be "
		     "UTF-8 text; fix or re-save the file as UTF-8");
	/* Columns count characters; a cut sequence is shown at its start. */
	expect_error("stages:\n  a: {command: \"\xc3\xa9\xe2\x82\"}\n",
		     "cpipe.yml:2:18: incomplete UTF-8 sequence (byte 0xe2): the spec must be "
		     "UTF-8 text; fix or re-save the file as UTF-8");
}

/* A stage the chosen runtime cannot start is refused by the planner. */
static void test_runnable_on_runtime(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n  a: {command: \"true\"}\n  b:\n    image: busybox\n");
	struct plan plan;
	struct cp_error err = {0};
	assert_int_equal(plan_build(&plan, p, NULL, 0, false, NULL, &err), 0);
	assert_int_equal(plan_check_runnable(&plan, "local", false, &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_string_equal(err.msg, "cpipe.yml:3:3: stage \"b\" has no command, and the local "
				     "runtime runs commands, not images; add \"command: ...\" to "
				     "the stage, or run it with --runtime docker");
	assert_int_equal(plan_check_runnable(&plan, "docker", true, &err), -1);
	assert_string_equal(err.msg, "cpipe.yml:2:3: stage \"a\" has neither image: nor build:, "
				     "and the docker runtime needs one to run it");
	plan_free(&plan);
	const char *only_a[] = {"a"};
	assert_int_equal(plan_build(&plan, p, only_a, 1, false, NULL, &err), 0);
	assert_int_equal(plan_check_runnable(&plan, "local", false, &err), 0);
	plan_free(&plan);
	pipeline_free(p);
}

/* A 50,000-stage chain (and a fan-in onto it) loads with every edge and
 * plans in order; the loader once took seconds on it, now it is linear. */
static void test_large_chain_loads(void **state)
{
	(void)state;
	enum { N = 50000 };
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "stages:\n");
	for (int i = N - 1; i >= 0; i--) {
		sb_addf(&sb, "  s%d:\n    command: \"true\"\n", i);
		if (i)
			sb_addf(&sb, "    depends_on: [s%d]\n", i - 1);
	}
	sb_adds(&sb, "  all:\n    command: \"true\"\n    depends_on:\n");
	for (int i = 0; i < N; i++)
		sb_addf(&sb, "      - s%d\n", i);
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	if (load_n(&p, sb_str(&sb), sb.len, &err) < 0)
		fail_msg("%s", err.msg);
	sb_free(&sb);
	assert_int_equal(p->nstages, N + 1);
	assert_int_equal(pipeline_stage(p, "all")->ndeps, N);
	assert_string_equal(pipeline_stage(p, "s77")->deps[0].stage, "s76");
	assert_null(pipeline_stage(p, "s50000"));
	struct plan plan;
	const char *names[] = {"s49999"};
	assert_int_equal(plan_build(&plan, p, names, 1, false, NULL, &err), 0);
	assert_int_equal(plan.n, N);
	for (size_t k = 0; k < plan.n; k++) {
		char want[24];
		snprintf(want, sizeof(want), "s%zu", k);
		assert_string_equal(p->stages[plan.order[k]].name, want);
	}
	plan_free(&plan);
	pipeline_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alias_text_is_capped),
		cmocka_unit_test(test_merge_text_is_capped),
		cmocka_unit_test(test_no_stages),
		cmocka_unit_test(test_depends_on_twice),
		cmocka_unit_test(test_host_port_published_twice),
		cmocka_unit_test(test_bad_host_ip_and_gpus),
		cmocka_unit_test(test_stage_name_length),
		cmocka_unit_test(test_invalid_utf8_is_placed),
		cmocka_unit_test(test_runnable_on_runtime),
		cmocka_unit_test(test_large_chain_loads),
	};
	return cmocka_run_group_tests_name("spec_bad", tests, NULL, NULL);
}
