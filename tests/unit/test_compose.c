/* Unit tests of compose's loader features: the key table, warnings,
 * job/service inference, !reset/!override, extends and include. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../pipeline/compose_keys.h"
#include "../../pipeline/spec.h"
#include "../../pipeline/yaml_tree.h"
#include "tmpdir.h"

static const char *const test_env[] = {"HOME=/home/u", NULL};

static int load_in(struct pipeline **p, const char *dir, const char *yaml, struct cp_error *err)
{
	struct spec_options o = {0};
	o.dir = dir;
	o.env = test_env;
	return spec_load_string(p, "compose.yaml", yaml, strlen(yaml), &o, err);
}

static struct pipeline *load(const char *yaml)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	if (load_in(&p, "/proj", yaml, &err) != 0)
		fail_msg("unexpected error: %s", err.msg);
	return p;
}

static void expect_error(const char *yaml, const char *msg)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	int rc = load_in(&p, "/proj", yaml, &err);
	if (rc == 0)
		pipeline_free(p);
	assert_int_equal(rc, -1);
	assert_string_equal(err.msg, msg);
}

static const struct stage *stage(const struct pipeline *p, const char *name)
{
	const struct stage *st = pipeline_stage(p, name);
	if (!st)
		fail_msg("no stage %s", name);
	return st;
}

static void write_file(const char *rel, const char *text)
{
	cleanup_free char *path = at(rel);
	cleanup_free char *dir = path_dirname(path);
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(dir, 0755, &err), 0);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_key_table(void **state)
{
	(void)state;
	const struct compose_key *k = compose_key_find(CK_SERVICE, "mem_limit");
	assert_non_null(k);
	assert_int_equal(k->fate, CK_WARNED);
	assert_int_equal(compose_key_find(CK_SERVICE, "shm_size")->fate, CK_HONOURED);
	assert_int_equal(compose_key_find(CK_SERVICE, "command")->fate, CK_HONOURED);
	assert_int_equal(compose_key_find(CK_SERVICE, "outputs")->fate, CK_CPIPE);
	assert_int_equal(compose_key_find(CK_TOP, "include")->fate, CK_HONOURED);
	assert_null(compose_key_find(CK_SERVICE, "comand"));
	assert_null(compose_key_find(CK_TOP, "command"));
	assert_string_equal(compose_key_suggest(CK_SERVICE, "comand"), "command");
	/* Every entry says what cpipe does, and names are unique. */
	for (int s = CK_TOP; s <= CK_SERVICE; s++) {
		size_t n;
		const struct compose_key *t = compose_keys((enum compose_scope)s, &n);
		for (size_t i = 0; i < n; i++) {
			assert_true(strlen(t[i].what) > 10);
			for (size_t j = i + 1; j < n; j++)
				assert_string_not_equal(t[i].key, t[j].key);
		}
	}
}

static void test_warnings_once_per_key(void **state)
{
	(void)state;
	struct pipeline *p = load("version: '3'\n"
				  "services:\n"
				  "  a: {command: a, mem_limit: 1g, x-note: 1}\n"
				  "  b: {command: b, mem_limit: 2g}\n"
				  "  c: {command: c, mem_limit: 2g, restart: no}\n");
	assert_int_equal(p->warnings.n, 2);
	assert_string_equal(p->warnings.v[0],
			    "compose.yaml:1:1: version: cpipe ignores it, as Compose v2 does: the "
			    "file is read as the Compose Specification");
	assert_string_equal(p->warnings.v[1],
			    "compose.yaml:3:19: stage \"a\": mem_limit: cpipe ignores it; the stage "
			    "runs without that resource limit (also in 2 other stages)");
	pipeline_free(p);
	expect_error("services:\n  a: {command: a, shm_sise: 1g}\n",
		     "compose.yaml:2:19: stage \"a\": unknown key \"shm_sise\" (did you mean "
		     "\"shm_size\"?)");
}

static void test_inference(void **state)
{
	(void)state;
	struct pipeline *p = load("services:\n"
				  "  db: {image: postgres}\n"
				  "  api: {command: serve, healthcheck: {test: [CMD, 'true']}}\n"
				  "  web: {command: web, ports: ['80:80']}\n"
				  "  exporter: {command: export, ports: ['90:90']}\n"
				  "  cron: {command: cron, restart: unless-stopped}\n"
				  "  retry: {command: retry, restart: on-failure}\n"
				  "  job:\n"
				  "    command: job\n"
				  "    depends_on:\n"
				  "      db: {}\n"
				  "      exporter: {condition: service_completed_successfully}\n"
				  "      api: {condition: service_started}\n"
				  "      retry: {}\n");
	assert_true(stage(p, "db")->service);
	assert_true(stage(p, "api")->service);
	assert_true(stage(p, "web")->service);
	assert_false(stage(p, "exporter")->service);
	assert_true(stage(p, "cron")->service);
	assert_false(stage(p, "retry")->service);
	assert_false(stage(p, "job")->service);
	const struct stage *j = stage(p, "job");
	assert_int_equal(j->deps[0].condition, DEP_STARTED);                /* db, a service */
	assert_int_equal(j->deps[1].condition, DEP_COMPLETED_SUCCESSFULLY); /* exporter */
	assert_int_equal(j->deps[3].condition, DEP_COMPLETED_SUCCESSFULLY); /* retry, a job */
	assert_string_equal(stage(p, "exporter")->service_why,
			    "stage \"job\" depends on it with service_completed_successfully");
	pipeline_free(p);
}

static void test_service_after_volume_writers(void **state)
{
	(void)state;
	struct pipeline *p = load("volumes: {v: {}}\n"
				  "services:\n"
				  "  train: {command: t, volumes: ['v:/v']}\n"
				  "  look: {command: l, volumes: ['v:/v:ro']}\n"
				  "  serve: {command: s, ports: ['8000:8000'], volumes: ['v:/v:ro']}\n"
				  "  infer:\n"
				  "    command: i\n"
				  "    volumes: ['v:/v']\n"
				  "    depends_on: {serve: {condition: service_healthy}}\n");
	const struct stage *s = stage(p, "serve");
	/* train writes v and does not need serve: serve starts after it; look
	 * only reads v, infer needs serve. */
	assert_int_equal(s->ndeps, 1);
	assert_string_equal(s->deps[0].stage, "train");
	assert_true(s->deps[0].implicit);
	pipeline_free(p);
}

static void test_reset_and_override_tags(void **state)
{
	(void)state;
	struct ynode *t = NULL;
	struct cp_error err = {0};
	const char *y = "a: !reset []\nb: !override {x: 1}\nc: !reset\nd: plain\n";
	assert_int_equal(ytree_parse(&t, "f", y, strlen(y), &err), 0);
	assert_int_equal(ymap_get(t, "a")->tag, YTAG_RESET);
	assert_int_equal(ymap_get(t, "b")->tag, YTAG_OVERRIDE);
	assert_int_equal(ymap_get(t, "c")->tag, YTAG_RESET);
	assert_int_equal(ymap_get(t, "d")->tag, YTAG_NONE);
	ynode_free(t);
	/* In one file, a reset key is as good as absent. */
	struct pipeline *p = load("services:\n  a: {command: a, ports: !reset ['80:80']}\n");
	assert_int_equal(stage(p, "a")->nports, 0);
	assert_false(stage(p, "a")->service);
	pipeline_free(p);
}

static void test_extends_and_include(void **state)
{
	(void)state;
	write_file("lib/base.yaml", "services:\n"
				    "  t:\n"
				    "    build: ./ctx\n"
				    "    command: train\n"
				    "    environment: {A: '1'}\n");
	write_file("sub/compose.yaml", "services:\n  db: {image: 'postgres:${V}'}\n");
	write_file("sub/.env", "V=16\n");
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	const char *y = "include: [sub/compose.yaml]\n"
			"services:\n"
			"  train:\n"
			"    extends: {file: lib/base.yaml, service: t}\n"
			"    environment: {B: '2'}\n";
	if (load_in(&p, tmpdir, y, &err) != 0)
		fail_msg("%s", err.msg);
	const struct stage *t = stage(p, "train");
	cleanup_free char *ctx = at("lib/ctx");
	assert_string_equal(t->build->context, ctx);
	assert_string_equal(t->command.v[0], "train");
	assert_int_equal(t->environment.n, 2);
	assert_string_equal(stage(p, "db")->image, "postgres:16");
	/* The files read on the way are part of the spec (its digest). */
	assert_int_equal(p->files.n, 3);
	pipeline_free(p);
	expect_error("services:\n  a: {extends: b}\n  b: {extends: a}\n",
		     "compose.yaml:2:7: extends cycle: a -> b -> a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_table),
		cmocka_unit_test(test_warnings_once_per_key),
		cmocka_unit_test(test_inference),
		cmocka_unit_test(test_service_after_volume_writers),
		cmocka_unit_test(test_reset_and_override_tags),
		cmocka_unit_test_setup_teardown(test_extends_and_include, tmpdir_setup,
						tmpdir_teardown),
	};
	return cmocka_run_group_tests_name("compose", tests, NULL, NULL);
}
