/* Unit tests of the compose keys of resources, security and lifecycle
 * (pipeline/spec_compose.c): the values the loader keeps, the defaults it
 * fills in, and the specs it refuses with their place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../pipeline/spec.h"

static const char *const test_env[] = {"HOME=/home/u", "TOKEN_VAR=tok-value", NULL};

static int load_s(struct pipeline **p, const char *yaml, struct cp_error *err)
{
	struct spec_options o = {.dir = "/proj", .env = test_env};
	return spec_load_string(p, "cpipe.yml", yaml, strlen(yaml), &o, err);
}

static struct pipeline *load(const char *yaml)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	if (load_s(&p, yaml, &err) < 0)
		fail_msg("unexpected error: %s", err.msg);
	return p;
}

static void expect_error(const char *yaml, const char *msg)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	int rc = load_s(&p, yaml, &err);
	if (rc == 0)
		pipeline_free(p);
	assert_int_equal(rc, -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_string_equal(err.msg, msg);
}

static void test_limits(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  a:\n"
				  "    command: 'true'\n"
				  "    shm_size: 1gb\n"
				  "    pids_limit: -1\n"
				  "    tmpfs: [/a, '/b:size=1m,mode=700']\n"
				  "    ulimits: {nofile: 10, core: {soft: 0, hard: -1}}\n");
	const struct stage_limits *l = &p->stages[0].limits;
	assert_int_equal(l->shm_size, 1LL << 30);
	assert_int_equal(l->pids_limit, 0);
	assert_int_equal(l->ntmpfs, 2);
	assert_string_equal(l->tmpfs[1].target, "/b");
	assert_string_equal(l->tmpfs[1].options, "size=1m,mode=700");
	assert_null(l->tmpfs[0].options);
	assert_int_equal(l->nulimits, 2);
	assert_int_equal(l->ulimits[0].soft, 10);
	assert_int_equal(l->ulimits[0].hard, 10);
	assert_int_equal(l->ulimits[1].hard, -1);
	pipeline_free(p);
}

static void test_security_and_lifecycle(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  a:\n"
				  "    command: 'true'\n"
				  "    service: true\n"
				  "    cap_add: [cap_net_admin]\n"
				  "    cap_drop: [ALL]\n"
				  "    stop_signal: INT\n"
				  "    restart: on-failure:4\n"
				  "    runtime: nvidia\n"
				  "    deploy: {replicas: 2}\n");
	const struct stage *s = &p->stages[0];
	assert_string_equal(s->security.cap_add.v[0], "NET_ADMIN");
	assert_string_equal(s->security.cap_drop.v[0], "ALL");
	assert_int_equal(s->lifecycle.stop_signal, SIGINT);
	assert_string_equal(s->lifecycle.stop_signal_name, "SIGINT");
	assert_int_equal(s->lifecycle.restart, RESTART_ON_FAILURE);
	assert_int_equal(s->lifecycle.restart_max, 4);
	assert_true(s->lifecycle.has_replicas);
	assert_int_equal(s->lifecycle.replicas, 2);
	assert_int_equal(s->gpus.n, 1);
	assert_string_equal(s->gpus.v[0], "all");
	pipeline_free(p);
}

static void test_secret_targets(void **state)
{
	(void)state;
	struct pipeline *p = load("secrets:\n"
				  "  tok: {environment: TOKEN_VAR}\n"
				  "configs:\n"
				  "  c: {content: hello}\n"
				  "stages:\n"
				  "  a:\n"
				  "    command: 'true'\n"
				  "    secrets: [tok, {source: tok, target: other}]\n"
				  "    configs: [c, {source: c, target: /etc/c.conf}]\n");
	const struct stage_security *sec = &p->stages[0].security;
	assert_int_equal(sec->nsecrets, 4);
	assert_string_equal(sec->secrets[0].target, "/run/secrets/tok");
	assert_string_equal(sec->secrets[0].content, "tok-value");
	assert_string_equal(sec->secrets[1].target, "/run/secrets/other");
	assert_string_equal(sec->secrets[2].target, "/c");
	assert_true(sec->secrets[2].config);
	assert_string_equal(sec->secrets[3].target, "/etc/c.conf");
	assert_string_equal(sec->secrets[3].content, "hello");
	pipeline_free(p);
}

static void test_volumes_from(void **state)
{
	(void)state;
	struct pipeline *p = load("volumes: {v: {}}\n"
				  "stages:\n"
				  "  b:\n"
				  "    command: 'true'\n"
				  "    volumes_from: ['a:ro']\n"
				  "  a:\n"
				  "    command: 'true'\n"
				  "    volumes: [v:/v]\n");
	const struct stage *b = &p->stages[0];
	assert_int_equal(b->nmounts, 1);
	assert_string_equal(b->mounts[0].source, "v");
	assert_true(b->mounts[0].read_only);
	pipeline_free(p);
}

static void test_refused(void **state)
{
	(void)state;
	expect_error("stages:\n  a: {command: x, pids_limit: lots}\n",
		     "cpipe.yml:2:31: stage \"a\": key \"pids_limit\" must be a number, got a "
		     "string");
	expect_error("stages:\n  a: {command: x, tmpfs: [relative]}\n",
		     "cpipe.yml:2:27: stage \"a\": tmpfs \"relative\" must be an absolute path "
		     "below /");
	expect_error("stages:\n  a: {command: x, stop_signal: SIGKILL}\n",
		     "cpipe.yml:2:32: stage \"a\": stop_signal \"SIGKILL\" cannot be caught, so it "
		     "stops nothing gracefully (stop_grace_period ends in SIGKILL anyway)");
	expect_error("stages:\n  a: {command: x, ulimits: {nofile: {soft: 9, hard: 3}}}\n",
		     "cpipe.yml:2:37: stage \"a\": ulimits: nofile soft limit is above its hard "
		     "limit");
	expect_error("stages:\n  a: {command: x, volumes_from: [a]}\n",
		     "cpipe.yml:2:19: stage \"a\": volumes_from \"a\" is not another stage of the "
		     "spec");
	expect_error("stages:\n  a: {command: x, volumes_from: ['container:db']}\n",
		     "cpipe.yml:2:19: stage \"a\": volumes_from \"container:db\": cpipe shares "
		     "the mounts of stages only; name a stage of the spec");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_security_and_lifecycle),
		cmocka_unit_test(test_secret_targets),
		cmocka_unit_test(test_volumes_from),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
