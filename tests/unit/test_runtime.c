/* The runtime interface: every runtime's capabilities say which of its
 * members are there, and the task description the executor builds from a
 * stage (pipeline/task.c). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../pipeline/spec.h"
#include "../../pipeline/task.h"
#include "../../stages/runtime.h"

static void test_capabilities_match_the_members(void **state)
{
	(void)state;
	for (size_t i = 0; runtime_name_at(i); i++) {
		const struct runtime_ops *o = runtime_find(runtime_name_at(i));
		assert_non_null(o);
		const struct runtime_caps *c = &o->caps;
		/* What every runtime has. */
		assert_true(o->open && o->close && o->volume_ensure && o->volume_list &&
			    o->volume_remove && o->start && o->poll && o->kill && o->release &&
			    o->host_port);
		assert_int_equal(c->images, o->image_prepare != NULL);
		assert_int_equal(c->images, o->image_start != NULL);
		assert_int_equal(c->images, o->image_cancel != NULL);
		assert_int_equal(c->images, o->image_end != NULL);
		assert_int_equal(c->detached, o->task_handle != NULL);
		assert_int_equal(c->detached, o->handle_alive != NULL);
		assert_int_equal(c->detached, o->handle_stop != NULL);
		assert_int_equal(c->exec, o->exec_start != NULL);
		assert_int_equal(c->exec, o->exec_end != NULL);
		assert_int_equal(c->ahead, o->prepare != NULL);
		assert_int_equal(c->ahead, o->unprepare != NULL);
		assert_int_equal(c->attach, o->handle_exec != NULL);
		assert_int_equal(c->attach, o->handle_kill != NULL);
		assert_int_equal(c->host_volumes, o->volume_host_path != NULL);
		assert_int_equal(c->archive_reads, o->volume_read_tree != NULL);
		assert_int_equal(c->archive_writes, o->volume_write_tree != NULL);
		/* What it writes back it must read to store. */
		assert_true(c->archive_reads || !c->archive_writes);
		assert_int_equal(c->port_check, o->port_in_use != NULL);
		assert_int_equal(c->logs, o->handle_logs != NULL);
		assert_int_equal(c->top, o->handle_top != NULL);
		assert_int_equal(c->projects, o->projects != NULL);
		assert_int_equal(c->down, o->down != NULL);
		/* Attaching to, or reading the logs of, a detached task needs one. */
		assert_true(c->detached || !(c->attach || c->logs || c->top));
		/* Its own probes' verdicts come through exec_start. */
		assert_true(c->exec || !c->task_probes);
		/* Image IDs by name only mean nothing without images. */
		assert_true(c->images || !c->image_names);
	}
	assert_false(runtime_local.caps.images);
	assert_true(runtime_docker.caps.images && runtime_docker.caps.port_alloc);
}

static struct pipeline *load(const char *yaml)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	struct spec_options o = {.dir = "/tmp", .no_warnings = true};
	if (spec_load_string(&p, "cpipe.yml", yaml, strlen(yaml), &o, &err) < 0)
		fail_msg("%s", err.msg);
	return p;
}

/* The executor says which stage's build: makes an image: the stage's own,
 * else the first that builds the same name (":latest" implied). */
static void test_the_build_of_an_image_is_chosen_once_per_name(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  a: {image: app, command: x}\n"
				  "  b: {image: 'app:latest', build: ., command: x}\n"
				  "  c: {image: 'app:latest', build: ., command: x}\n"
				  "  d: {image: 'app:2', command: x}\n"
				  "  e: {build: ., command: x}\n"
				  "  f: {image: 'reg:5000/app', command: x}\n"
				  "  g: {image: 'reg:5000/app:latest', build: ., command: x}\n");
	struct task_desc d;
	task_desc_init(&d, p, pipeline_stage(p, "a"));
	assert_ptr_equal(d.build, pipeline_stage(p, "b")->build);
	assert_string_equal(d.build_stage, "b");
	task_desc_init(&d, p, pipeline_stage(p, "c"));
	assert_string_equal(d.build_stage, "c"); /* its own build: first */
	task_desc_init(&d, p, pipeline_stage(p, "d"));
	assert_null(d.build);
	task_desc_init(&d, p, pipeline_stage(p, "e"));
	assert_string_equal(d.build_stage, "e");
	task_desc_init(&d, p, pipeline_stage(p, "f"));
	assert_string_equal(d.build_stage, "g"); /* a registry's port is no tag */
	pipeline_free(p);
}

/* What a runtime reads of a stage is in its description. */
static void test_the_description_carries_the_stage(void **state)
{
	(void)state;
	struct pipeline *p = load("volumes: {data: {}}\n"
				  "stages:\n"
				  "  serve:\n"
				  "    image: busybox\n"
				  "    command: [httpd, -f]\n"
				  "    working_dir: /srv\n"
				  "    user: '1000'\n"
				  "    volumes: ['data:/srv:ro']\n"
				  "    ports: ['8080:80']\n"
				  "    shm_size: 64m\n"
				  "    cap_drop: [NET_RAW]\n"
				  "    stop_signal: SIGUSR1\n"
				  "    stop_grace_period: 3s\n"
				  "    healthcheck: {test: [CMD, 'true'], interval: 2s}\n");
	struct task_desc d;
	task_desc_init(&d, p, pipeline_stage(p, "serve"));
	assert_string_equal(d.name, "serve");
	assert_string_equal(d.image, "busybox");
	assert_int_equal(d.command.n, 2);
	assert_string_equal(d.working_dir, "/srv");
	assert_string_equal(d.user, "1000");
	assert_int_equal(d.nmounts, 1);
	assert_int_equal(d.mounts[0].type, MOUNT_VOLUME);
	assert_true(d.mounts[0].read_only);
	assert_int_equal(d.nports, 1);
	assert_int_equal(d.ports[0].host_port, 8080);
	assert_true(d.service);
	assert_non_null(d.healthcheck);
	assert_int_equal(d.healthcheck->interval_ms, 2000);
	assert_int_equal(d.stop_grace_ms, 3000);
	assert_int_equal(d.limits.shm_size, 64LL << 20);
	assert_string_equal(d.security.cap_drop.v[0], "NET_RAW");
	assert_int_equal(d.lifecycle.stop_signal, SIGUSR1);
	pipeline_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capabilities_match_the_members),
		cmocka_unit_test(test_the_build_of_an_image_is_chosen_once_per_name),
		cmocka_unit_test(test_the_description_carries_the_stage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
