/* The local runtime's reading of a build: stage: fields filled, read-only
 * binds and volume fills for COPY sources, the files listed for the cache
 * key, and the plan-time errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../pipeline/spec_image.h"
#include "tmpdir.h"

static void put(const char *rel, const char *text)
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

static struct pipeline *load_applied(const char *yaml)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	struct spec_options o = {.dir = tmpdir};
	if (spec_load_string(&p, "compose.yaml", yaml, strlen(yaml), &o, &err) < 0)
		fail_msg("load failed: %s", err.msg);
	assert_int_equal(spec_image_apply(p, NULL, &err), 0);
	return p;
}

/* "src -> target" of the stage's read-only binds, relative to tmpdir. */
static char *binds(const struct stage *s)
{
	struct strbuf sb = STRBUF_INIT;
	size_t n = strlen(tmpdir);
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount *m = &s->mounts[i];
		if (m->type != MOUNT_BIND || !m->read_only)
			continue;
		const char *src = strncmp(m->source, tmpdir, n) == 0 ? m->source + n + 1 : m->source;
		sb_addf(&sb, "%s%s -> %s", sb.len ? ", " : "", src, m->target);
	}
	return sb_detach(&sb);
}

static void course_stage_gets_cmd_workdir_env_and_binds(void **state)
{
	(void)state;
	put("Dockerfile", "FROM python:3.11-slim\nWORKDIR /workspace\nCOPY train.py model.py .\n"
			  "COPY conf/ /etc/app/\nENV A=1 B=2\nUSER 1000\nCMD [\"python3\", \"train.py\"]\n");
	put("train.py", "print(1)\n");
	put("model.py", "x = 1\n");
	put("conf/a.yaml", "a: 1\n");
	struct pipeline *p = load_applied("services:\n  train:\n    build: .\n"
					  "    environment: {B: compose}\n"
					  "    volumes: [out:/workspace/out]\nvolumes: {out: {}}\n");
	const struct stage *s = &p->stages[0];
	assert_int_equal(s->command.n, 2);
	assert_string_equal(s->command.v[0], "python3");
	assert_string_equal(s->working_dir, "/workspace");
	assert_string_equal(s->user, "1000");
	assert_string_equal(kvvec_get(&s->environment, "A")->value, "1");
	assert_string_equal(kvvec_get(&s->environment, "B")->value, "compose");
	assert_false(s->has_command); /* the spec did not write it */
	cleanup_free char *b = binds(s);
	assert_string_equal(b, "train.py -> /workspace/train.py, model.py -> /workspace/model.py, "
			       "conf -> /etc/app");
	const struct stage_image *si = s->image_cfg;
	assert_null(si->error);
	assert_string_equal(si->origin[IMAGE_COMMAND], "Dockerfile:7");
	assert_string_equal(si->origin[IMAGE_WORKING_DIR], "Dockerfile:2");
	assert_string_equal(si->origin[IMAGE_ENVIRONMENT], "Dockerfile:5");
	assert_null(si->origin[IMAGE_ENTRYPOINT]);
	struct cp_error err = {0};
	assert_int_equal(spec_image_check_local(s, &err), 0);

	/* The files the image takes, for the cache key: sorted, absolute. */
	struct strvec files = {0};
	assert_int_equal(spec_image_files(&files, s, &err), 0);
	assert_int_equal(files.n, 3);
	cleanup_free char *f0 = at("conf/a.yaml"), *f1 = at("model.py"), *f2 = at("train.py");
	assert_string_equal(files.v[0], f0);
	assert_string_equal(files.v[1], f1);
	assert_string_equal(files.v[2], f2);
	strvec_free(&files);
	pipeline_free(p);
}

static void dockerignore_splits_a_directory_into_the_entries_that_stay(void **state)
{
	(void)state;
	put("Dockerfile", "FROM x\nWORKDIR /app\nCOPY . .\nCMD [\"true\"]\n");
	put(".dockerignore", "**/*.pyc\ndata\n!data/keep.txt\n");
	put("src/m.py", "");
	put("src/m.pyc", "");
	put("data/keep.txt", "");
	put("data/drop.txt", "");
	put("lib/u.py", "");
	put(".cpipe/volumes/v/x", "");
	struct pipeline *p = load_applied("services:\n  a: {build: .}\n");
	const struct stage *s = &p->stages[0];
	cleanup_free char *b = binds(s);
	/* lib has nothing excluded: one bind; src and data file by file. */
	assert_string_equal(b, ".dockerignore -> /app/.dockerignore, Dockerfile -> /app/Dockerfile, "
			       "data/keep.txt -> /app/data/keep.txt, lib -> /app/lib, "
			       "src/m.py -> /app/src/m.py");
	struct strvec files = {0};
	struct cp_error err = {0};
	assert_int_equal(spec_image_files(&files, s, &err), 0);
	assert_int_equal(files.n, 5);
	strvec_free(&files);
	pipeline_free(p);
}

static void a_named_volume_on_the_files_gets_them_as_its_fill(void **state)
{
	(void)state;
	put("Dockerfile", "FROM x\nWORKDIR /workspace\nCOPY train.py .\nCOPY pkg pkg\nCMD [\"true\"]\n");
	put("train.py", "");
	put("pkg/a.py", "");
	struct pipeline *p = load_applied("services:\n  a:\n    build: .\n"
					  "    volumes: [code:/workspace, ./host:/workspace/pkg]\n"
					  "volumes: {code: {}}\n");
	const struct stage *s = &p->stages[0];
	const struct mount *m = &s->mounts[0];
	assert_string_equal(m->target, "/workspace");
	/* The bind over pkg hides the image's pkg, as in docker. */
	assert_int_equal(m->nfill, 1);
	cleanup_free char *src = at("train.py");
	assert_string_equal(m->fill[0].source, src);
	assert_string_equal(m->fill[0].path, "train.py");
	cleanup_free char *b = binds(s);
	assert_string_equal(b, "");
	pipeline_free(p);
}

static void plan_time_errors_are_sentences(void **state)
{
	(void)state;
	put("Dockerfile", "FROM python:3\nWORKDIR /w\n");
	struct pipeline *p = load_applied("services:\n  a: {build: .}\n  b: {image: python:3}\n"
					  "  c: {build: {context: ., target: nope}}\n");
	struct cp_error err = {0};
	assert_int_equal(spec_image_check_local(&p->stages[0], &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_string_equal(err.msg,
			    "compose.yaml:2:3: stage \"a\" has no command: its Dockerfile Dockerfile "
			    "sets no CMD or ENTRYPOINT, and the local runtime cannot know those of "
			    "the base image python:3; add \"command: ...\" to the stage, or run it "
			    "with --runtime docker");
	assert_int_equal(spec_image_check_local(&p->stages[1], &err), -1);
	assert_string_equal(err.msg,
			    "compose.yaml:3:3: stage \"b\" has no command, and the local runtime runs "
			    "commands, not images; add \"command: ...\" to the stage, or run it with "
			    "--runtime docker");
	assert_int_equal(spec_image_check_local(&p->stages[2], &err), -1);
	assert_string_equal(err.msg, "Dockerfile: target stage \"nope\" not found; the stages are "
				     "unnamed");
	pipeline_free(p);
}

static void runs_and_from_are_warned_once_per_dockerfile(void **state)
{
	(void)state;
	put("Dockerfile", "FROM x AS b\nRUN make\nFROM y\nRUN apt-get install z\n"
			  "COPY --from=b /out/bin /usr/bin/bin\nADD https://e.com/f /f\nCMD [\"t\"]\n");
	struct pipeline *p = load_applied("services:\n  a: {build: .}\n  c: {build: .}\n");
	assert_int_equal(p->image_warnings.n, 3);
	assert_string_equal(p->image_warnings.v[0],
			    "Dockerfile:5: stages \"a\", \"c\": COPY --from=b /out/bin is not "
			    "reproducible locally: it comes from another image or build stage, so "
			    "the stage runs without /usr/bin/bin");
	assert_string_equal(p->image_warnings.v[1],
			    "Dockerfile:6: stages \"a\", \"c\": ADD https://e.com/f is not "
			    "reproducible locally (the local runtime downloads nothing): the stage "
			    "runs without /f");
	assert_string_equal(p->image_warnings.v[2],
			    "Dockerfile:4: stages \"a\", \"c\": the local runtime does not run the "
			    "Dockerfile's RUN step (Dockerfile:4); the host must provide what it "
			    "installs, or run the stage with --runtime docker");
	pipeline_free(p);
}

static void an_image_user_the_host_lacks_is_not_taken(void **state)
{
	(void)state;
	put("Dockerfile", "FROM x\nRUN useradd cpipe-no-such-user\nUSER cpipe-no-such-user\n"
			  "CMD [\"id\"]\n");
	struct pipeline *p = load_applied("services:\n  a: {build: .}\n  b: {build: ., user: \"0\"}\n");
	assert_null(p->stages[0].user);
	assert_string_equal(p->stages[1].user, "0");
	assert_int_equal(p->image_warnings.n, 2);
	assert_string_equal(p->image_warnings.v[0],
			    "Dockerfile:3: stage \"a\": USER cpipe-no-such-user: no such user or group "
			    "on the host (a RUN step makes it in the image), so the stage runs as "
			    "cpipe's user; give it user: to choose");
	pipeline_free(p);
	put("Dockerfile", "FROM x\nUSER 1000:root\nCMD [\"id\"]\n");
	p = load_applied("services:\n  a: {build: .}\n");
	assert_string_equal(p->stages[0].user, "1000:root");
	pipeline_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(course_stage_gets_cmd_workdir_env_and_binds,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(dockerignore_splits_a_directory_into_the_entries_that_stay,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(a_named_volume_on_the_files_gets_them_as_its_fill,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(plan_time_errors_are_sentences, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(runs_and_from_are_warned_once_per_dockerfile,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(an_image_user_the_host_lacks_is_not_taken,
						tmpdir_setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests_name("spec_image", tests, NULL, NULL);
}
