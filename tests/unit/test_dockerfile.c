/* The Dockerfile reader: logical lines, directives, JSON and shell forms,
 * ARG/ENV substitution, multi-stage builds and --target, and the errors a
 * user sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../pipeline/dockerfile.h"

static void reads(struct dockerfile_image *img, const char *text, const char *target,
		  const struct kvvec *args)
{
	struct cp_error err = {0};
	if (dockerfile_read(img, text, strlen(text), "Dockerfile", target, args, NULL, &err) < 0)
		fail_msg("read failed: %s", err.msg);
}

static void fails(const char *text, const char *target, const char *want)
{
	struct dockerfile_image img;
	struct cp_error err = {0};
	assert_int_equal(dockerfile_read(&img, text, strlen(text), "Dockerfile", target, NULL,
					 NULL, &err),
			 -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_string_equal(err.msg, want);
	dockerfile_image_free(&img);
}

static char *joined(const struct strvec *sv)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < sv->n; i++)
		sb_addf(&sb, "%s[%s]", i ? " " : "", sv->v[i]);
	return sb_detach(&sb);
}

static void assert_argv(const struct strvec *sv, const char *want)
{
	char *got = joined(sv);
	assert_string_equal(got, want);
	free(got);
}

static const char *env(const struct dockerfile_image *img, const char *key)
{
	const struct kv *kv = kvvec_get(&img->env, key);
	return kv ? kv->value : NULL;
}

static void course_dockerfile_gives_workdir_env_copy_and_cmd(void **state)
{
	(void)state;
	struct dockerfile_image img;
	reads(&img,
	      "FROM python:3.11-slim\n"
	      "WORKDIR /workspace\n"
	      "COPY train.py model.py .\n"
	      "ENV EPOCHS=2 OUT=/workspace/out\n"
	      "CMD [\"python\", \"train.py\", \"--epochs\", \"1\"]\n",
	      NULL, NULL);
	assert_string_equal(img.base, "python:3.11-slim");
	assert_string_equal(img.workdir, "/workspace");
	assert_int_equal(img.workdir_line, 2);
	assert_string_equal(env(&img, "EPOCHS"), "2");
	assert_string_equal(env(&img, "OUT"), "/workspace/out");
	assert_true(img.has_cmd);
	assert_int_equal(img.cmd_line, 5);
	assert_argv(&img.cmd, "[python] [train.py] [--epochs] [1]");
	assert_int_equal(img.ncopies, 1);
	assert_argv(&img.copies[0].src, "[train.py] [model.py]");
	assert_string_equal(img.copies[0].dest, "/workspace");
	assert_true(img.copies[0].dest_dir);
	assert_false(img.has_entrypoint);
	dockerfile_image_free(&img);
}

static void continuations_comments_and_escape_directive(void **state)
{
	(void)state;
	struct dockerfile_image img;
	reads(&img,
	      "# syntax=docker/dockerfile:1\n"
	      "FROM debian \n"
	      "RUN apt-get update && \\\n"
	      "# a comment inside the continuation\n"
	      "    apt-get install -y python3\n"
	      "\n"
	      "ENV A=1 \\\n"
	      "    B=2\n"
	      "CMD python3 \\\n"
	      "  -m http.server\n",
	      NULL, NULL);
	assert_int_equal(img.nruns, 1);
	assert_int_equal(img.runs[0], 3);
	assert_string_equal(env(&img, "B"), "2");
	assert_int_equal(img.cmd_line, 9);
	/* Shell form: the default shell, the text as joined. */
	assert_argv(&img.cmd, "[/bin/sh] [-c] [python3   -m http.server]");
	dockerfile_image_free(&img);

	/* escape=` makes \ an ordinary character (Windows paths). */
	reads(&img,
	      "# escape=`\n"
	      "FROM scratch\n"
	      "WORKDIR C:\\app `\n"
	      "  \\sub\n",
	      NULL, NULL);
	assert_string_equal(img.workdir, "/C:\\app   \\sub");
	dockerfile_image_free(&img);

	/* A directive after the first instruction is a comment. */
	reads(&img, "FROM a\n# escape=`\nWORKDIR /x\\\n/y\n", NULL, NULL);
	assert_string_equal(img.workdir, "/x/y");
	dockerfile_image_free(&img);
}

static void shell_and_json_forms(void **state)
{
	(void)state;
	struct dockerfile_image img;
	reads(&img,
	      "FROM a\n"
	      "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n"
	      "ENTRYPOINT exec python3 serve.py\n"
	      "CMD [\"--port\", \"80\"]\n",
	      NULL, NULL);
	assert_argv(&img.entrypoint, "[/bin/bash] [-o] [pipefail] [-c] [exec python3 serve.py]");
	assert_argv(&img.cmd, "[--port] [80]");
	dockerfile_image_free(&img);

	/* Not valid JSON: the shell form, as docker reads it. */
	reads(&img, "FROM a\nCMD [python, x.py]\n", NULL, NULL);
	assert_argv(&img.cmd, "[/bin/sh] [-c] [[python, x.py]]");
	dockerfile_image_free(&img);

	fails("FROM a\nSHELL /bin/bash -c\n", NULL,
	      "Dockerfile:2: SHELL takes the JSON form: SHELL [\"/bin/bash\", \"-c\"]");
}

static void arg_and_env_substitution(void **state)
{
	(void)state;
	struct dockerfile_image img;
	struct kvvec args = {0};
	kvvec_set(&args, "BASE", "python:3.12");
	kvvec_set(&args, "MODE", "fast");
	reads(&img,
	      "ARG BASE=python:3.11\n"
	      "ARG TAG\n"
	      "FROM ${BASE}-slim\n"
	      "ARG MODE=slow\n"
	      "ARG BASE\n"
	      "ARG UNSET\n"
	      "ENV M=$MODE D=${UNSET:-dflt} P=${MODE:+plus} Q=${UNSET:+no} B=${BASE}\n"
	      "ENV OLD form with spaces\n"
	      "ENV X=1\n"
	      "ENV X=2 Y=$X\n"
	      "ENV QUOTED=\"a b\" SINGLE='$X' ESC=\\$X\n"
	      "ENV PATH=/opt/venv/bin:$PATH\n"
	      "WORKDIR /srv/$M\n"
	      "USER ${UID:-1000}\n",
	      NULL, &args);
	assert_string_equal(img.base, "python:3.12-slim");
	assert_string_equal(env(&img, "M"), "fast");
	assert_string_equal(env(&img, "D"), "dflt");
	assert_string_equal(env(&img, "P"), "plus");
	assert_string_equal(env(&img, "Q"), "");
	assert_string_equal(env(&img, "B"), "python:3.12");
	assert_string_equal(env(&img, "OLD"), "form with spaces");
	assert_string_equal(env(&img, "X"), "2");
	assert_string_equal(env(&img, "Y"), "1"); /* the value before this ENV */
	assert_string_equal(env(&img, "QUOTED"), "a b");
	assert_string_equal(env(&img, "SINGLE"), "$X");
	assert_string_equal(env(&img, "ESC"), "$X");
	/* The base image's PATH is unknown: docker's default stands in. */
	assert_string_equal(env(&img, "PATH"),
			    "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	assert_string_equal(img.workdir, "/srv/fast");
	assert_string_equal(img.user, "1000");
	dockerfile_image_free(&img);
	kvvec_free(&args);

	fails("FROM a\nENV A=${NOPE:?required}\n", NULL, "Dockerfile:2: ENV: NOPE: required");
	fails("FROM a\nENV A=\"open\n", NULL, "Dockerfile:2: ENV: unterminated double quote");
	fails("FROM a\nWORKDIR ${A\n", NULL,
	      "Dockerfile:2: WORKDIR: bad substitution: \"${\" is not closed by \"}\"");
	fails("FROM a\nWORKDIR ${A#x}\n", NULL,
	      "Dockerfile:2: WORKDIR: bad substitution: only ${VAR:-word}, ${VAR:+word} and "
	      "${VAR:?message} (with or without the colon) are supported");
}

static void multi_stage_target_and_inheritance(void **state)
{
	(void)state;
	const char *text = "FROM python:3.11 AS base\n"
			   "WORKDIR /app\n"
			   "ENV A=1\n"
			   "COPY requirements.txt .\n"
			   "RUN pip install -r requirements.txt\n"
			   "CMD [\"python\", \"base.py\"]\n"
			   "\n"
			   "FROM base AS Train\n"
			   "COPY train.py ./\n"
			   "ENV B=2\n"
			   "\n"
			   "FROM base as serve\n"
			   "ENTRYPOINT [\"python\", \"serve.py\"]\n"
			   "FROM golang AS build\n"
			   "RUN go build -o /out/app .\n"
			   "FROM debian\n"
			   "COPY --from=build --chown=1:1 /out/app /usr/local/bin/app\n"
			   "COPY --from=base /app/requirements.txt /r.txt\n"
			   "CMD [\"app\"]\n";
	struct dockerfile_image img;
	reads(&img, text, "train", NULL);
	assert_string_equal(img.stage_name, "train");
	assert_string_equal(img.base, "python:3.11"); /* the chain's root */
	assert_string_equal(img.workdir, "/app");
	assert_string_equal(env(&img, "A"), "1");
	assert_string_equal(env(&img, "B"), "2");
	assert_argv(&img.cmd, "[python] [base.py]");
	assert_int_equal(img.ncopies, 2);
	assert_string_equal(img.copies[0].dest, "/app");
	assert_string_equal(img.copies[1].dest, "/app");
	assert_int_equal(img.nruns, 1);
	assert_int_equal(img.runs[0], 5);
	dockerfile_image_free(&img);

	/* ENTRYPOINT drops the CMD the stage inherited. */
	reads(&img, text, "SERVE", NULL);
	assert_argv(&img.entrypoint, "[python] [serve.py]");
	assert_false(img.has_cmd);
	assert_int_equal(img.cmd.n, 0);
	dockerfile_image_free(&img);

	/* The last stage by default; --from is kept, with what it copied. */
	reads(&img, text, NULL, NULL);
	assert_null(img.stage_name);
	assert_string_equal(img.base, "debian");
	assert_null(img.workdir);
	assert_int_equal(img.nruns, 0);
	assert_int_equal(img.ncopies, 2);
	assert_string_equal(img.copies[0].from, "build");
	assert_string_equal(img.copies[0].chown, "1:1");
	assert_string_equal(img.copies[0].dest, "/usr/local/bin/app");
	assert_false(img.copies[0].dest_dir);
	assert_int_equal(img.copies[0].nfrom_copies, 0);
	assert_int_equal(img.copies[1].nfrom_copies, 1);
	assert_string_equal(img.copies[1].from_copies[0].src.v[0], "requirements.txt");
	dockerfile_image_free(&img);

	/* CMD in the same stage before ENTRYPOINT stays. */
	reads(&img, "FROM a\nCMD [\"x\"]\nENTRYPOINT [\"y\"]\n", NULL, NULL);
	assert_argv(&img.cmd, "[x]");
	dockerfile_image_free(&img);

	fails(text, "tset", "Dockerfile: target stage \"tset\" not found; the stages are \"base\", "
			    "\"train\", \"serve\", \"build\"");
}

static void heredocs_and_relative_paths(void **state)
{
	(void)state;
	struct dockerfile_image img;
	reads(&img,
	      "FROM a\n"
	      "RUN <<EOF\n"
	      "apt-get install x\n"
	      "CMD [\"not\", \"an\", \"instruction\"]\n"
	      "EOF\n"
	      "WORKDIR app\n"
	      "WORKDIR ../srv/./code\n"
	      "COPY <<-END /etc/conf\n"
	      "\tkey=value\n"
	      "\tEND\n"
	      "COPY [\"data dir\", \"in/\"]\n"
	      "ADD https://example.com/x.tgz models\n",
	      NULL, NULL);
	assert_int_equal(img.nruns, 1);
	assert_false(img.has_cmd);
	assert_string_equal(img.workdir, "/srv/code");
	assert_int_equal(img.ncopies, 3);
	assert_true(img.copies[0].heredoc);
	assert_string_equal(img.copies[1].src.v[0], "data dir");
	assert_string_equal(img.copies[1].dest, "/srv/code/in");
	assert_true(img.copies[1].dest_dir);
	assert_true(img.copies[2].add);
	assert_string_equal(img.copies[2].dest, "/srv/code/models");
	dockerfile_image_free(&img);

	fails("FROM a\nRUN <<EOF\nnever closed\n", NULL,
	      "Dockerfile:3: the heredoc ending with \"EOF\" is not closed");
}

static void errors_name_the_line(void **state)
{
	(void)state;
	fails("FROM a\n\nRUNN make\n", NULL,
	      "Dockerfile:3: unknown instruction \"RUNN\" (did you mean \"RUN\"?)");
	fails("WORKDIR /x\nFROM a\n", NULL,
	      "Dockerfile:1: WORKDIR before the first FROM; only ARG may come before it");
	fails("# just a comment\n", NULL, "Dockerfile:1: no FROM: the Dockerfile has no build stage");
	fails("FROM a b\n", NULL,
	      "Dockerfile:1: FROM takes an image and optionally \"AS name\", not \"a b\"");
	fails("FROM a\nCOPY onlyone\n", NULL,
	      "Dockerfile:2: COPY needs a source and a destination");
	fails("# escape=x\nFROM a\n", NULL,
	      "Dockerfile:1: escape directive \"x\": the escape character is \\ or `");
	fails("FROM a\nENV novalue\n", NULL,
	      "Dockerfile:2: ENV novalue needs a value (ENV novalue=value)");
	struct dockerfile_image img;
	struct cp_error err = {0};
	assert_int_equal(dockerfile_read(&img, "FROM a\0", 7, "Dockerfile", NULL, NULL, NULL, &err),
			 -1);
	assert_string_equal(err.msg, "Dockerfile: not a Dockerfile (it holds NUL bytes)");
	dockerfile_image_free(&img);
}

static void build_args_without_value_come_from_the_environment(void **state)
{
	(void)state;
	struct kvvec args = {0}, envv = {0};
	kvvec_set(&args, "TOKEN", NULL);
	kvvec_set(&envv, "TOKEN", "from-env");
	struct dockerfile_image img;
	struct cp_error err = {0};
	const char *text = "FROM a\nARG TOKEN=default\nENV T=$TOKEN\n";
	assert_int_equal(dockerfile_read(&img, text, strlen(text), "Dockerfile", NULL, &args, &envv,
					 &err),
			 0);
	assert_string_equal(env(&img, "T"), "from-env");
	dockerfile_image_free(&img);
	/* Not in the environment either: the default stands. */
	assert_int_equal(dockerfile_read(&img, text, strlen(text), "Dockerfile", NULL, &args, NULL,
					 &err),
			 0);
	assert_string_equal(env(&img, "T"), "default");
	dockerfile_image_free(&img);
	kvvec_free(&args);
	kvvec_free(&envv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(course_dockerfile_gives_workdir_env_copy_and_cmd),
		cmocka_unit_test(continuations_comments_and_escape_directive),
		cmocka_unit_test(shell_and_json_forms),
		cmocka_unit_test(arg_and_env_substitution),
		cmocka_unit_test(multi_stage_target_and_inheritance),
		cmocka_unit_test(heredocs_and_relative_paths),
		cmocka_unit_test(errors_name_the_line),
		cmocka_unit_test(build_args_without_value_come_from_the_environment),
	};
	return cmocka_run_group_tests_name("dockerfile", tests, NULL, NULL);
}
