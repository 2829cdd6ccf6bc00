/* Unit tests of the spec loader: what a user writes in cpipe.yml (or an
 * existing docker-compose.yml) and what cpipe makes of it, errors included
 * with their exact file:line:col. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/fs.h"
#include "../../pipeline/spec.h"
#include "../../stages/runtime.h"

/* A fixed environment so tests never see the caller's. */
static const char *const test_env[] = {
	"HOME=/home/u", "USER_NAME=alice", "EMPTY=", "TAG=v2", "PORT=8000", "FROM_SHELL=shell",
	NULL,
};

static struct spec_options opts_in(const char *dir)
{
	struct spec_options o = {0};
	o.dir = dir;
	o.env = test_env;
	return o;
}

static struct pipeline *load_opts(const char *yaml, const struct spec_options *o)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	int rc = spec_load_string(&p, "cpipe.yml", yaml, strlen(yaml), o, &err);
	if (rc != 0)
		fail_msg("unexpected error: %s", err.msg);
	assert_non_null(p);
	return p;
}

static struct pipeline *load(const char *yaml)
{
	struct spec_options o = opts_in("/proj");
	return load_opts(yaml, &o);
}

static void expect_error_opts(const char *yaml, const struct spec_options *o, const char *msg)
{
	struct pipeline *p = (struct pipeline *)0x1;
	struct cp_error err = {0};
	int rc = spec_load_string(&p, "cpipe.yml", yaml, strlen(yaml), o, &err);
	if (rc == 0)
		pipeline_free(p);
	assert_int_equal(rc, -1);
	assert_null(p);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_string_equal(err.msg, msg);
}

static void expect_error(const char *yaml, const char *msg)
{
	struct spec_options o = opts_in("/proj");
	expect_error_opts(yaml, &o, msg);
}

static const struct stage *stage(const struct pipeline *p, const char *name)
{
	const struct stage *st = pipeline_stage(p, name);
	if (!st)
		fail_msg("no stage %s", name);
	return st;
}

static const char *env_of(const struct stage *st, const char *key)
{
	const struct kv *kv = kvvec_get(&st->environment, key);
	return kv ? kv->value : NULL;
}

static char *tmpdir(void)
{
	char *d = strdup("/tmp/cpipe-test-spec-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	struct cp_error err = {0};
	char *path = path_join(dir, name);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0644, &err), 0);
	free(path);
}

static void rmdir_all(char *dir)
{
	struct cp_error err = {0};
	fs_rm_rf(dir, &err);
	free(dir);
}

/* ---- the model ---- */

static void test_design_example_loads(void **state)
{
	(void)state;
	struct pipeline *p = load("name: catgif\n"
				  "runtime: local\n"
				  "volumes:\n"
				  "  catgif: {}\n"
				  "stages:\n"
				  "  train:\n"
				  "    build: .\n"
				  "    image: catgif:latest\n"
				  "    command: catgif train --data /vol/data\n"
				  "    environment: {OMP_NUM_THREADS: \"2\"}\n"
				  "    volumes: [catgif:/vol, ./data:/data:ro]\n"
				  "    params: {lr: 0.05, epochs: 1}\n"
				  "    inputs: [catgif:/data]\n"
				  "    outputs: [catgif:/model/catgif.ckpt]\n"
				  "    metrics: [catgif:/metrics.json]\n"
				  "  serve:\n"
				  "    service: true\n"
				  "    command: catgif serve --port 8000\n"
				  "    ports: [\"8000:8000\"]\n"
				  "    healthcheck: {http: \"http://localhost:8000/healthz\", "
				  "interval: 1s, retries: 30}\n"
				  "  infer:\n"
				  "    depends_on: {serve: {condition: service_healthy}}\n");
	assert_string_equal(p->name, "catgif");
	assert_string_equal(p->runtime, "local");
	assert_string_equal(p->dir, "/proj");
	assert_int_equal(p->files.n, 1);
	assert_string_equal(p->files.v[0], "/proj/cpipe.yml");
	assert_int_equal(p->nvolumes, 1);
	assert_string_equal(p->volumes[0].name, "catgif");
	assert_int_equal(p->nstages, 3);
	assert_string_equal(p->stages[0].name, "train");
	assert_string_equal(p->stages[1].name, "serve");
	assert_string_equal(p->stages[2].name, "infer");
	for (int i = 0; i < 3; i++)
		assert_int_equal(p->stages[i].index, i);

	const struct stage *t = stage(p, "train");
	assert_int_equal(t->mark.line, 6);
	assert_int_equal(t->mark.col, 3);
	assert_string_equal(t->mark.file, "cpipe.yml");
	assert_string_equal(t->image, "catgif:latest");
	assert_string_equal(t->build->context, "/proj");
	assert_string_equal(t->build->dockerfile, "Dockerfile");
	assert_true(t->has_command);
	assert_int_equal(t->command.n, 4);
	assert_string_equal(t->command.v[3], "/vol/data");
	assert_string_equal(env_of(t, "OMP_NUM_THREADS"), "2");
	assert_int_equal(t->nmounts, 2);
	assert_int_equal(t->mounts[0].type, MOUNT_VOLUME);
	assert_string_equal(t->mounts[0].source, "catgif");
	assert_string_equal(t->mounts[0].target, "/vol");
	assert_false(t->mounts[0].read_only);
	assert_int_equal(t->mounts[1].type, MOUNT_BIND);
	assert_string_equal(t->mounts[1].source, "/proj/data");
	assert_string_equal(t->mounts[1].target, "/data");
	assert_true(t->mounts[1].read_only);
	assert_string_equal(kvvec_get(&t->params, "lr")->value, "0.05");
	assert_string_equal(kvvec_get(&t->params, "epochs")->value, "1");
	assert_int_equal(t->ninputs, 1);
	assert_string_equal(t->inputs[0].volume, "catgif");
	assert_string_equal(t->inputs[0].path, "/data");
	assert_string_equal(t->outputs[0].path, "/model/catgif.ckpt");
	assert_string_equal(t->metrics[0].path, "/metrics.json");
	assert_false(t->service);
	assert_null(t->healthcheck);
	assert_int_equal(t->stop_grace_ms, 10000);

	const struct stage *s = stage(p, "serve");
	assert_true(s->service);
	assert_int_equal(s->nports, 1);
	assert_int_equal(s->ports[0].host_port, 8000);
	assert_int_equal(s->ports[0].container_port, 8000);
	assert_string_equal(s->ports[0].protocol, "tcp");
	assert_string_equal(s->healthcheck->http, "http://localhost:8000/healthz");
	assert_int_equal(s->healthcheck->interval_ms, 1000);
	assert_int_equal(s->healthcheck->timeout_ms, 5000);
	assert_int_equal(s->healthcheck->retries, 30);

	const struct stage *i = stage(p, "infer");
	assert_int_equal(i->ndeps, 1);
	assert_string_equal(i->deps[0].stage, "serve");
	assert_int_equal(i->deps[0].condition, DEP_HEALTHY);
	assert_false(i->deps[0].implicit);
	assert_false(i->has_command);
	pipeline_free(p);
}

static void test_compose_file_loads(void **state)
{
	(void)state;
	/* As ML course material writes it: version:, services:, build:,
	 * a shared named volume, list-form environment and depends_on. */
	struct pipeline *p = load("version: \"3.8\"\n"
				  "services:\n"
				  "  train:\n"
				  "    build:\n"
				  "      context: ./train\n"
				  "      dockerfile: Dockerfile.gpu\n"
				  "    image: mlcourse/train:latest\n"
				  "    container_name: train\n"
				  "    volumes:\n"
				  "      - models:/models\n"
				  "      - ./data:/data\n"
				  "    environment:\n"
				  "      - EPOCHS=10\n"
				  "      - MODEL_DIR=/models\n"
				  "    command: python train.py --epochs 10\n"
				  "  evaluate:\n"
				  "    build: ./evaluate\n"
				  "    volumes:\n"
				  "      - models:/models:ro\n"
				  "    depends_on:\n"
				  "      - train\n"
				  "    command: [\"python\", \"evaluate.py\"]\n"
				  "  infer:\n"
				  "    image: mlcourse/infer\n"
				  "    restart: unless-stopped\n"
				  "    ports:\n"
				  "      - \"5000:5000\"\n"
				  "    volumes:\n"
				  "      - models:/models:ro\n"
				  "    environment:\n"
				  "      MODEL_PATH: /models/model.pkl\n"
				  "    depends_on:\n"
				  "      evaluate:\n"
				  "        condition: service_completed_successfully\n"
				  "    networks: [backend]\n"
				  "volumes:\n"
				  "  models:\n"
				  "networks:\n"
				  "  backend:\n"
				  "    driver: bridge\n");
	assert_int_equal(p->nstages, 3);
	assert_string_equal(p->stages[0].name, "train");
	assert_string_equal(p->stages[1].name, "evaluate");
	assert_string_equal(p->stages[2].name, "infer");
	assert_string_equal(p->name, "proj");

	const struct stage *t = stage(p, "train");
	assert_string_equal(t->build->context, "/proj/train");
	assert_string_equal(t->build->dockerfile, "Dockerfile.gpu");
	assert_string_equal(t->image, "mlcourse/train:latest");
	assert_int_equal(t->nmounts, 2);
	assert_int_equal(t->mounts[0].type, MOUNT_VOLUME);
	assert_string_equal(t->mounts[0].source, "models");
	assert_string_equal(env_of(t, "EPOCHS"), "10");
	assert_string_equal(env_of(t, "MODEL_DIR"), "/models");
	assert_int_equal(t->command.n, 4);
	assert_string_equal(t->command.v[0], "python");

	const struct stage *e = stage(p, "evaluate");
	assert_string_equal(e->build->context, "/proj/evaluate");
	assert_true(e->mounts[0].read_only);
	assert_int_equal(e->ndeps, 1);
	assert_string_equal(e->deps[0].stage, "train");
	assert_int_equal(e->deps[0].condition, DEP_COMPLETED_SUCCESSFULLY);
	assert_int_equal(e->command.n, 2);

	const struct stage *i = stage(p, "infer");
	assert_int_equal(i->ports[0].host_port, 5000);
	assert_string_equal(env_of(i, "MODEL_PATH"), "/models/model.pkl");
	assert_string_equal(i->deps[0].stage, "evaluate");
	pipeline_free(p);
}

static void test_project_name_from_dir(void **state)
{
	(void)state;
	struct spec_options o = opts_in("/work/My Project.v2");
	struct pipeline *p = load_opts("stages: {a: {}}\n", &o);
	assert_string_equal(p->name, "myprojectv2");
	assert_string_equal(p->dir, "/work/My Project.v2");
	pipeline_free(p);
	expect_error("name: My_Proj\n",
		     "cpipe.yml:1:7: project name \"My_Proj\" must be lowercase letters, digits, "
		     "\"_\" and \"-\", starting with a letter or digit");
}

static void test_runtime_must_be_local_or_docker(void **state)
{
	(void)state;
	expect_error("runtime: dokcer\n",
		     "cpipe.yml:1:10: runtime \"dokcer\" is not one of local|docker|podman|kubernetes (did "
		     "you mean \"docker\"?)");
	struct pipeline *p = load("runtime: docker\nstages: {a: {image: x}}\n");
	assert_string_equal(p->runtime, "docker");
	/* The loader and the CLI read one table: every name it lists loads. */
	for (size_t i = 0; runtime_name_at(i); i++) {
		char *text = xasprintf("runtime: %s\nstages: {a: {image: x}}\n", runtime_name_at(i));
		struct pipeline *q = load(text);
		assert_string_equal(q->runtime, runtime_name_at(i));
		assert_non_null(strstr(RUNTIME_CHOICES, runtime_name_at(i)));
		pipeline_free(q);
		free(text);
	}
	assert_int_equal(p->nstages, 1);
	pipeline_free(p);
}

/* ---- errors ---- */

static void test_unknown_stage_key_suggests(void **state)
{
	(void)state;
	expect_error("stages:\n"
		     "  train:\n"
		     "    image: x\n"
		     "    comand: python train.py\n",
		     "cpipe.yml:4:5: stage \"train\": unknown key \"comand\" (did you mean "
		     "\"command\"?)");
	expect_error("stages:\n  train:\n    zzzzzzzz: 1\n",
		     "cpipe.yml:3:5: stage \"train\": unknown key \"zzzzzzzz\"");
	expect_error("stages:\n  a:\n    healthcheck: {intervl: 1s}\n",
		     "cpipe.yml:3:19: stage \"a\": healthcheck: unknown key \"intervl\" (did you "
		     "mean \"interval\"?)");
}

static void test_unknown_top_level_key_suggests(void **state)
{
	(void)state;
	expect_error("stagse:\n  a: {}\n",
		     "cpipe.yml:1:1: unknown top-level key \"stagse\" (did you mean \"stages\"?)");
	expect_error("volumes:\n  v: {drivr: local}\n",
		     "cpipe.yml:2:7: volume \"v\": unknown key \"drivr\" (did you mean "
		     "\"driver\"?)");
}

static void test_wrong_types(void **state)
{
	(void)state;
	expect_error("stages:\n  x:\n    ports: {a: 1}\n",
		     "cpipe.yml:3:12: stage \"x\": key \"ports\" must be a list, got a mapping");
	expect_error("stages:\n  x:\n    image: [a]\n",
		     "cpipe.yml:3:12: stage \"x\": key \"image\" must be a string, got a list");
	expect_error("stages:\n  x:\n    service: 3\n",
		     "cpipe.yml:3:14: stage \"x\": key \"service\" must be true or false, got a "
		     "number");
	expect_error("stages:\n  x:\n    volumes: /data\n",
		     "cpipe.yml:3:14: stage \"x\": key \"volumes\" must be a list, got a string");
	expect_error("stages:\n  x:\n    environment: 5\n",
		     "cpipe.yml:3:18: stage \"x\": key \"environment\" must be a mapping or a "
		     "list, got a number");
	expect_error("stages:\n  x:\n    params: {lr: {a: 1}}\n",
		     "cpipe.yml:3:18: stage \"x\": param \"lr\" must be a string or a number, got "
		     "a mapping");
	expect_error("stages:\n  x: [1]\n", "cpipe.yml:2:6: stage \"x\" must be a mapping, got a list");
	expect_error("stages: [a]\n",
		     "cpipe.yml:1:9: key \"stages\" must be a mapping, got a list");
	expect_error("- a\n", "cpipe.yml:1:1: the spec must be a mapping, got a list");
	expect_error("stages:\n  x:\n    healthcheck: {retries: many}\n",
		     "cpipe.yml:3:28: stage \"x\": healthcheck: key \"retries\" must be a number, "
		     "got a string");
	expect_error("stages:\n  x:\n    stop_grace_period: 10\n",
		     "cpipe.yml:3:24: stage \"x\": key \"stop_grace_period\": \"10\" is not a "
		     "duration (like \"500ms\", \"1m30s\", \"2h\")");
}

static void test_undeclared_volume_suggests(void **state)
{
	(void)state;
	expect_error("volumes: {models: {}}\n"
		     "stages:\n"
		     "  x:\n"
		     "    volumes: [modles:/m]\n",
		     "cpipe.yml:4:15: stage \"x\": undeclared volume \"modles\" (did you mean "
		     "\"models\"?)");
	expect_error("stages:\n  x:\n    outputs: [\"zzz:/m\"]\n",
		     "cpipe.yml:3:15: stage \"x\": undeclared volume \"zzz\" (declare it under the "
		     "top-level \"volumes:\")");
	expect_error("stages:\n  x:\n    volumes:\n      - {type: volume, source: m, target: /m}\n",
		     "cpipe.yml:4:9: stage \"x\": volumes: undeclared volume \"m\" (declare it "
		     "under the top-level \"volumes:\")");
}

static void test_unknown_dependency_suggests(void **state)
{
	(void)state;
	expect_error("stages:\n"
		     "  train: {}\n"
		     "  infer:\n"
		     "    depends_on: [trian]\n",
		     "cpipe.yml:4:18: stage \"infer\": depends on unknown stage \"trian\" (did you "
		     "mean \"train\"?)");
	expect_error("stages:\n"
		     "  train: {}\n"
		     "  infer:\n"
		     "    depends_on:\n"
		     "      train: {condition: service_helthy}\n",
		     "cpipe.yml:5:26: stage \"infer\": depends_on: train: unknown condition "
		     "\"service_helthy\" (did you mean \"service_healthy\"?)");
}

static void test_self_dependency(void **state)
{
	(void)state;
	expect_error("stages:\n  a:\n    depends_on: [a]\n",
		     "cpipe.yml:3:18: stage \"a\": depends on itself");
}

static void test_dependency_cycle(void **state)
{
	(void)state;
	expect_error("stages:\n"
		     "  a:\n"
		     "    depends_on: [b]\n"
		     "  b:\n"
		     "    depends_on: [c]\n"
		     "  c:\n"
		     "    depends_on: [a]\n",
		     "cpipe.yml:7:18: dependency cycle: a -> b -> c -> a");
	/* A cycle closed by an implicit edge (c reads what a writes). */
	expect_error("volumes: {v: {}}\n"
		     "stages:\n"
		     "  a:\n"
		     "    depends_on: [c]\n"
		     "    outputs: [v:/x]\n"
		     "  c:\n"
		     "    inputs: [v:/x/file]\n",
		     "cpipe.yml:7:14: dependency cycle: a -> c -> a");
}

static void test_path_escaping_volume(void **state)
{
	(void)state;
	expect_error("volumes: {v: {}}\n"
		     "stages:\n"
		     "  a:\n"
		     "    outputs: [\"v:/../x\"]\n",
		     "cpipe.yml:4:15: stage \"a\": outputs \"v:/../x\": path escapes volume \"v\"");
	expect_error("volumes: {v: {}}\n"
		     "stages:\n"
		     "  a:\n"
		     "    inputs: [\"v:a/../../etc\"]\n",
		     "cpipe.yml:4:14: stage \"a\": inputs \"v:a/../../etc\": path escapes volume "
		     "\"v\"");
}

static void test_duplicate_stage(void **state)
{
	(void)state;
	expect_error("stages:\n"
		     "  train:\n"
		     "    image: a\n"
		     "  train:\n"
		     "    image: b\n",
		     "cpipe.yml:4:3: duplicate key \"train\" (first defined at line 2, column 3)");
	expect_error("stages:\n  a:\n    image: x\n    image: y\n",
		     "cpipe.yml:4:5: duplicate key \"image\" (first defined at line 3, column 5)");
}

static void test_invalid_yaml_and_names(void **state)
{
	(void)state;
	expect_error("stages:\n  a: [1, 2\n",
		     "cpipe.yml:3:1: invalid YAML: did not find expected ',' or ']' while parsing "
		     "a flow sequence");
	expect_error("stages:\n  ../x: {}\n",
		     "cpipe.yml:2:3: invalid stage name \"../x\" (use letters, digits, \"_\", "
		     "\"-\" and \".\", starting with a letter or digit)");
	expect_error("a: 1\n---\nb: 2\n",
		     "cpipe.yml:2:1: a spec file holds one YAML document, found another");
	expect_error("x: *nope\n", "cpipe.yml:1:4: unknown anchor \"nope\"");
	expect_error("? [a]\n: 1\n", "cpipe.yml:1:3: mapping keys must be strings, got a list");
}

/* ---- interpolation ---- */

static void test_interpolation_forms(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  a:\n"
				  "    environment:\n"
				  "      PLAIN: $USER_NAME\n"
				  "      BRACED: ${USER_NAME}-x\n"
				  "      DEF_UNSET: ${NOPE:-dflt}\n"
				  "      DEF_EMPTY_COLON: ${EMPTY:-dflt}\n"
				  "      DEF_EMPTY_NOCOLON: \"${EMPTY-dflt}\"\n"
				  "      DEF_UNSET_NOCOLON: ${NOPE-dflt}\n"
				  "      ALT_SET: ${USER_NAME:+yes}\n"
				  "      ALT_EMPTY: \"${EMPTY:+yes}\"\n"
				  "      ALT_EMPTY_NOCOLON: ${EMPTY+yes}\n"
				  "      ALT_UNSET: \"${NOPE+yes}\"\n"
				  "      REQ_SET: ${USER_NAME:?must}\n"
				  "      REQ_EMPTY_NOCOLON: \"${EMPTY?must}\"\n"
				  "      NESTED: ${NOPE:-${USER_NAME:-z}/${TAG}}\n"
				  "      DOLLAR: $$HOME and $${TAG}\n"
				  "      LONE: a $ b $1\n"
				  "      UNSET: \"${NOPE}\"\n"
				  "      UNUSED_REQ: ${USER_NAME:-${NOPE:?never}}\n"
				  "    image: app:${TAG}\n");
	const struct stage *a = stage(p, "a");
	assert_string_equal(env_of(a, "PLAIN"), "alice");
	assert_string_equal(env_of(a, "BRACED"), "alice-x");
	assert_string_equal(env_of(a, "DEF_UNSET"), "dflt");
	assert_string_equal(env_of(a, "DEF_EMPTY_COLON"), "dflt");
	assert_string_equal(env_of(a, "DEF_EMPTY_NOCOLON"), "");
	assert_string_equal(env_of(a, "DEF_UNSET_NOCOLON"), "dflt");
	assert_string_equal(env_of(a, "ALT_SET"), "yes");
	assert_string_equal(env_of(a, "ALT_EMPTY"), "");
	assert_string_equal(env_of(a, "ALT_EMPTY_NOCOLON"), "yes");
	assert_string_equal(env_of(a, "ALT_UNSET"), "");
	assert_string_equal(env_of(a, "REQ_SET"), "alice");
	assert_string_equal(env_of(a, "REQ_EMPTY_NOCOLON"), "");
	assert_string_equal(env_of(a, "NESTED"), "alice/v2");
	assert_string_equal(env_of(a, "DOLLAR"), "$HOME and ${TAG}");
	assert_string_equal(env_of(a, "LONE"), "a $ b $1");
	assert_string_equal(env_of(a, "UNSET"), "");
	assert_string_equal(env_of(a, "UNUSED_REQ"), "alice");
	assert_string_equal(a->image, "app:v2");
	pipeline_free(p);
}

static void test_interpolation_errors(void **state)
{
	(void)state;
	expect_error("stages:\n  a:\n    image: app:${TAG_REQ:?set TAG_REQ to the image tag}\n",
		     "cpipe.yml:3:16: required variable TAG_REQ is missing: set TAG_REQ to the "
		     "image tag");
	expect_error("stages:\n  a:\n    image: \"x${EMPTY:?}\"\n",
		     "cpipe.yml:3:14: required variable EMPTY is missing (it is empty)");
	expect_error("stages:\n  a:\n    image: app:${TAG\n",
		     "cpipe.yml:3:16: unterminated \"${\" (missing \"}\")");
	expect_error("stages:\n  a:\n    image: ${A:-${B}\n",
		     "cpipe.yml:3:12: unterminated \"${\" (missing \"}\")");
	expect_error("stages:\n  a:\n    image: \"${1}\"\n",
		     "cpipe.yml:3:13: invalid interpolation: \"${\" must be followed by a "
		     "variable name (use \"$$\" for a literal \"$\")");
	/* Block scalars have no exact columns: the scalar's position. */
	expect_error("stages:\n  a:\n    image: |\n      ${NOPE?}\n",
		     "cpipe.yml:3:12: required variable NOPE is missing");
}

static void test_interpolation_keeps_keys_and_x_fields(void **state)
{
	(void)state;
	struct pipeline *p = load("x-unused: ${NOT_SET:?never evaluated}\n"
				  "stages:\n"
				  "  a:\n"
				  "    environment: {$USER_NAME: v}\n"
				  "    labels: {l: \"${TAG}\"}\n");
	const struct stage *a = stage(p, "a");
	assert_string_equal(env_of(a, "$USER_NAME"), "v");
	assert_string_equal(kvvec_get(&a->labels, "l")->value, "v2");
	pipeline_free(p);
}

static void test_interpolated_values_keep_types(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  a:\n"
				  "    ports: [\"${PORT}:80\", $PORT]\n"
				  "    command: ${NOPE}\n");
	const struct stage *a = stage(p, "a");
	assert_int_equal(a->ports[0].host_port, 8000);
	assert_int_equal(a->ports[1].container_port, 8000);
	/* ${NOPE} unset is the empty string, not null: an empty command. */
	assert_true(a->has_command);
	assert_int_equal(a->command.n, 0);
	pipeline_free(p);
}

static void test_dotenv_file(void **state)
{
	(void)state;
	char *dir = tmpdir();
	write_file(dir, ".env",
		   "# comment\n"
		   "export DOT_A=from-dotenv\n"
		   "DOT_Q='single # not a comment'\n"
		   "DOT_DQ=\"line1\\nline2\"\n"
		   "DOT_C=value # a comment\n"
		   "FROM_SHELL=from-dotenv\n"
		   "\n");
	struct spec_options o = opts_in(dir);
	struct pipeline *p = load_opts("stages:\n"
				       "  a:\n"
				       "    environment:\n"
				       "      A: $DOT_A\n"
				       "      Q: $DOT_Q\n"
				       "      DQ: $DOT_DQ\n"
				       "      C: $DOT_C\n"
				       "      S: $FROM_SHELL\n",
				       &o);
	const struct stage *a = stage(p, "a");
	assert_string_equal(env_of(a, "A"), "from-dotenv");
	assert_string_equal(env_of(a, "Q"), "single # not a comment");
	assert_string_equal(env_of(a, "DQ"), "line1\nline2");
	assert_string_equal(env_of(a, "C"), "value");
	/* The process environment overrides .env. */
	assert_string_equal(env_of(a, "S"), "shell");
	pipeline_free(p);

	write_file(dir, ".env", "OK=1\nBAD KEY=2\n");
	expect_error_opts("stages: {}\n", &o, ".env:2:1: expected KEY=VALUE");
	write_file(dir, ".env", "Q=\"open\n");
	expect_error_opts("stages: {}\n", &o,
			  ".env:1:1: unterminated double quote in the value of Q");
	rmdir_all(dir);
}

/* ---- YAML features ---- */

static void test_anchors_aliases_merge_keys(void **state)
{
	(void)state;
	struct pipeline *p = load("x-base: &base\n"
				  "  image: base:1\n"
				  "  user: root\n"
				  "  environment: {A: \"1\"}\n"
				  "x-more: &more\n"
				  "  image: more:1\n"
				  "  working_dir: /more\n"
				  "  user: more\n"
				  "x-cmd: &cmd [python, run.py]\n"
				  "stages:\n"
				  "  one:\n"
				  "    <<: *base\n"
				  "    user: explicit\n"
				  "    command: *cmd\n"
				  "  two:\n"
				  "    <<: [*more, *base]\n"
				  "  three:\n"
				  "    user: explicit-first\n"
				  "    <<: [*base]\n");
	const struct stage *one = stage(p, "one");
	assert_string_equal(one->image, "base:1");
	assert_string_equal(one->user, "explicit");
	assert_string_equal(env_of(one, "A"), "1");
	assert_int_equal(one->command.n, 2);
	assert_string_equal(one->command.v[1], "run.py");
	const struct stage *two = stage(p, "two");
	assert_string_equal(two->image, "more:1");  /* earlier source wins */
	assert_string_equal(two->user, "more");
	assert_string_equal(two->working_dir, "/more");
	assert_string_equal(env_of(two, "A"), "1"); /* only base has it */
	assert_string_equal(stage(p, "three")->user, "explicit-first");
	assert_string_equal(stage(p, "three")->image, "base:1");
	pipeline_free(p);

	expect_error("x: &a 1\nstages:\n  s:\n    <<: *a\n",
		     "cpipe.yml:1:4: merge key \"<<\" needs a mapping or a list of mappings, got "
		     "a number");
}

static void test_alias_bomb_is_refused(void **state)
{
	(void)state;
	expect_error("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		     "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
		     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
		     "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
		     "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
		     "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
		     "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n",
		     "cpipe.yml:6:36: alias \"e\" expands the spec past 1000000 YAML nodes, the "
		     "most cpipe reads from one file once aliases and \"<<\" merge keys are "
		     "expanded; use fewer aliases");
}

static void test_deep_nesting_is_refused(void **state)
{
	(void)state;
	char yaml[1024] = "x: ";
	for (int i = 0; i < 200; i++)
		strcat(yaml, "[");
	expect_error(yaml, "cpipe.yml:1:131: YAML nested deeper than 128 levels");
	strcpy(yaml, "stages: {a: {image: \"");
	for (int i = 0; i < 40; i++)
		strcat(yaml, "${A:-");
	strcat(yaml, "\"}}\n");
	expect_error(yaml, "cpipe.yml:1:182: interpolation nested deeper than 32 levels");
}

static void test_x_fields_ignored(void **state)
{
	(void)state;
	struct pipeline *p = load("x-anything: {whatever: [1, 2]}\n"
				  "x-other: 3\n"
				  "stages:\n"
				  "  a:\n"
				  "    x-notes: free text\n"
				  "    image: a\n");
	assert_int_equal(p->nstages, 1);
	assert_string_equal(stage(p, "a")->image, "a");
	pipeline_free(p);
}

static void test_services_synonym(void **state)
{
	(void)state;
	struct pipeline *p = load("services:\n  web:\n    image: nginx\n");
	assert_int_equal(p->nstages, 1);
	assert_string_equal(p->stages[0].name, "web");
	pipeline_free(p);
	expect_error("stages:\n  a: {}\nservices:\n  b: {}\n",
		     "cpipe.yml:3:1: both \"stages\" and \"services\" are given; they mean the "
		     "same, use one");
}

/* ---- stage keys ---- */

static void test_volumes_short_and_long(void **state)
{
	(void)state;
	struct pipeline *p = load("volumes:\n"
				  "  data:\n"
				  "  ext: {external: true, name: shared_data}\n"
				  "stages:\n"
				  "  a:\n"
				  "    volumes:\n"
				  "      - data:/data:ro\n"
				  "      - ./rel/../src:/src:rw\n"
				  "      - /abs/path:/abs\n"
				  "      - ~/cache:/cache:ro,z\n"
				  "      - /anon\n"
				  "      - type: volume\n"
				  "        source: ext\n"
				  "        target: /ext/\n"
				  "        read_only: true\n"
				  "      - {type: bind, source: ., target: /app}\n"
				  "      - {type: tmpfs, target: /tmp}\n");
	const struct stage *a = stage(p, "a");
	assert_int_equal(a->nmounts, 8);
	const struct mount *m = a->mounts;
	assert_int_equal(m[0].type, MOUNT_VOLUME);
	assert_string_equal(m[0].source, "data");
	assert_string_equal(m[0].target, "/data");
	assert_true(m[0].read_only);
	assert_int_equal(m[1].type, MOUNT_BIND);
	assert_string_equal(m[1].source, "/proj/src");
	assert_false(m[1].read_only);
	assert_string_equal(m[2].source, "/abs/path");
	assert_string_equal(m[3].source, "/home/u/cache");
	assert_true(m[3].read_only);
	assert_int_equal(m[4].type, MOUNT_TMPFS);
	assert_null(m[4].source);
	assert_string_equal(m[4].target, "/anon");
	assert_int_equal(m[5].type, MOUNT_VOLUME);
	assert_string_equal(m[5].source, "ext");
	assert_string_equal(m[5].target, "/ext");
	assert_true(m[5].read_only);
	assert_int_equal(m[6].type, MOUNT_BIND);
	assert_string_equal(m[6].source, "/proj");
	assert_int_equal(a->mounts[6].mark.line, 16);
	assert_int_equal(m[7].type, MOUNT_TMPFS);
	assert_string_equal(m[7].target, "/tmp");
	assert_true(p->volumes[1].external);
	assert_string_equal(p->volumes[1].ext_name, "shared_data");
	pipeline_free(p);

	expect_error("stages:\n  a:\n    volumes: [\"./x:rel\"]\n",
		     "cpipe.yml:3:15: stage \"a\": volume target \"rel\" must be an absolute path");
	expect_error("stages:\n  a:\n    volumes: [\"./x:/y:rx\"]\n",
		     "cpipe.yml:3:15: stage \"a\": volume \"./x:/y:rx\": unknown mode \"rx\" (use "
		     "ro or rw)");
	expect_error("stages:\n  a:\n    volumes: [{type: npipe, source: x, target: /x}]\n",
		     "cpipe.yml:3:22: stage \"a\": volumes: type \"npipe\" is not volume, bind or "
		     "tmpfs");
}

static void test_ports_short_and_long(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  a:\n"
				  "    ports:\n"
				  "      - \"8000\"\n"
				  "      - 8001:8001\n"
				  "      - 127.0.0.1:8002:80\n"
				  "      - \"127.0.0.1::8003\"\n"
				  "      - 9000-9001:9100-9101\n"
				  "      - 53:53/udp\n"
				  "      - 7000\n"
				  "      - target: 80\n"
				  "        published: \"8080\"\n"
				  "        host_ip: 0.0.0.0\n"
				  "        protocol: tcp\n"
				  "      - {target: 81}\n");
	const struct stage *a = stage(p, "a");
	assert_int_equal(a->nports, 9);
	const struct port *pt = a->ports;
	assert_int_equal(pt[0].container_port, 8000);
	assert_int_equal(pt[0].host_port, 0);
	assert_null(pt[0].host_ip);
	assert_int_equal(pt[1].host_port, 8001);
	assert_string_equal(pt[2].host_ip, "127.0.0.1");
	assert_int_equal(pt[2].host_port, 8002);
	assert_int_equal(pt[2].container_port, 80);
	assert_string_equal(pt[3].host_ip, "127.0.0.1");
	assert_int_equal(pt[3].host_port, 0);
	assert_int_equal(pt[3].container_port, 8003);
	assert_int_equal(pt[4].host_port, 9000);
	assert_int_equal(pt[4].host_port_end, 9001);
	assert_int_equal(pt[4].container_port, 9100);
	assert_int_equal(pt[4].container_port_end, 9101);
	assert_string_equal(pt[5].protocol, "udp");
	assert_int_equal(pt[6].container_port, 7000);
	assert_int_equal(pt[6].container_port_end, 7000);
	assert_int_equal(pt[7].host_port, 8080);
	assert_int_equal(pt[7].container_port, 80);
	assert_string_equal(pt[7].host_ip, "0.0.0.0");
	assert_int_equal(pt[8].container_port, 81);
	assert_int_equal(pt[8].host_port, 0);
	pipeline_free(p);

	expect_error("stages:\n  a:\n    ports: [\"70000:80\"]\n",
		     "cpipe.yml:3:13: stage \"a\": port \"70000:80\": ports must be numbers or "
		     "ranges between 1 and 65535");
	expect_error("stages:\n  a:\n    ports: [\"1-3:1-2\"]\n",
		     "cpipe.yml:3:13: stage \"a\": port \"1-3:1-2\": host and container ranges "
		     "differ in length");
	expect_error("stages:\n  a:\n    ports: [\"80/sctp\"]\n",
		     "cpipe.yml:3:13: stage \"a\": port \"80/sctp\": protocol must be tcp or udp");
	expect_error("stages:\n  a:\n    ports: [{published: 80}]\n",
		     "cpipe.yml:3:13: stage \"a\": ports: \"target\" is required");
}

static void test_environment_forms(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  m:\n"
				  "    environment:\n"
				  "      S: text\n"
				  "      N: 0.50\n"
				  "      B: true\n"
				  "      FROM_SHELL:\n"
				  "      NOT_ANYWHERE:\n"
				  "      E: \"\"\n"
				  "  l:\n"
				  "    environment:\n"
				  "      - S=text\n"
				  "      - EQ=a=b\n"
				  "      - EMPTY_VAL=\n"
				  "      - FROM_SHELL\n"
				  "      - NOT_ANYWHERE\n");
	const struct stage *m = stage(p, "m");
	assert_string_equal(env_of(m, "S"), "text");
	assert_string_equal(env_of(m, "N"), "0.50");
	assert_string_equal(env_of(m, "B"), "true");
	assert_string_equal(env_of(m, "FROM_SHELL"), "shell");
	assert_null(kvvec_get(&m->environment, "NOT_ANYWHERE"));
	assert_string_equal(env_of(m, "E"), "");
	assert_int_equal(m->environment.n, 5);
	const struct stage *l = stage(p, "l");
	assert_string_equal(l->environment.v[0].key, "S");
	assert_string_equal(env_of(l, "EQ"), "a=b");
	assert_string_equal(env_of(l, "EMPTY_VAL"), "");
	assert_string_equal(env_of(l, "FROM_SHELL"), "shell");
	assert_null(kvvec_get(&l->environment, "NOT_ANYWHERE"));
	pipeline_free(p);
	expect_error("stages:\n  a:\n    environment:\n      - {A: 1}\n",
		     "cpipe.yml:4:9: stage \"a\": key \"environment\": entries must be "
		     "\"KEY=VALUE\" strings, got a mapping");
}

static void test_env_file(void **state)
{
	(void)state;
	char *dir = tmpdir();
	write_file(dir, "common.env", "A=from-common\nB=from-common\nFROM_SHELL\n");
	write_file(dir, "train.env", "B=from-train\n");
	struct spec_options o = opts_in(dir);
	struct pipeline *p = load_opts("stages:\n"
				       "  a:\n"
				       "    env_file: common.env\n"
				       "  b:\n"
				       "    environment: {A: explicit}\n"
				       "    env_file:\n"
				       "      - ./common.env\n"
				       "      - path: train.env\n"
				       "      - path: missing.env\n"
				       "        required: false\n",
				       &o);
	const struct stage *a = stage(p, "a");
	assert_string_equal(env_of(a, "A"), "from-common");
	assert_string_equal(env_of(a, "FROM_SHELL"), "shell");
	const struct stage *b = stage(p, "b");
	/* env_file entries first, then environment: overrides them. */
	assert_string_equal(b->environment.v[0].key, "A");
	assert_string_equal(env_of(b, "A"), "explicit");
	assert_string_equal(env_of(b, "B"), "from-train");
	pipeline_free(p);

	expect_error_opts("stages:\n  a:\n    env_file: [gone.env]\n", &o,
			  "cpipe.yml:3:16: stage \"a\": env_file \"gone.env\" not found");
	write_file(dir, "bad.env", "OK=1\n9X=2\n");
	expect_error_opts("stages:\n  a:\n    env_file: bad.env\n", &o,
			  "bad.env:2:1: invalid variable name: expected KEY=VALUE, where KEY is letters, digits, \"_\", \".\" and \"-\", starting with a letter or \"_\"");
	rmdir_all(dir);
}

static void test_depends_on_forms(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  prep: {service: false}\n"
				  "  svc: {service: true}\n"
				  "  list:\n"
				  "    depends_on: [prep, svc]\n"
				  "  map:\n"
				  "    depends_on:\n"
				  "      prep:\n"
				  "      svc: {condition: service_healthy, required: true, restart: "
				  "false}\n"
				  "  started:\n"
				  "    depends_on: {prep: {condition: service_started}}\n");
	const struct stage *l = stage(p, "list");
	assert_int_equal(l->ndeps, 2);
	assert_string_equal(l->deps[0].stage, "prep");
	assert_int_equal(l->deps[0].condition, DEP_COMPLETED_SUCCESSFULLY);
	assert_string_equal(l->deps[1].stage, "svc");
	assert_int_equal(l->deps[1].condition, DEP_STARTED);
	assert_int_equal(l->deps[1].mark.line, 5);
	assert_int_equal(l->deps[1].mark.col, 24);
	const struct stage *m = stage(p, "map");
	assert_int_equal(m->deps[0].condition, DEP_COMPLETED_SUCCESSFULLY);
	assert_int_equal(m->deps[1].condition, DEP_HEALTHY);
	assert_int_equal(stage(p, "started")->deps[0].condition, DEP_STARTED);
	pipeline_free(p);
}

static void test_command_forms(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  s:\n"
				  "    command: python -c 'print(\"a b\")' \"x y\" esc\\ aped \"\"\n"
				  "    entrypoint: [/bin/sh, -c, 1, true]\n"
				  "  n:\n"
				  "    command: null\n"
				  "    entrypoint: \"\"\n");
	const struct stage *s = stage(p, "s");
	assert_int_equal(s->command.n, 6);
	assert_string_equal(s->command.v[0], "python");
	assert_string_equal(s->command.v[2], "print(\"a b\")");
	assert_string_equal(s->command.v[3], "x y");
	assert_string_equal(s->command.v[4], "esc aped");
	assert_string_equal(s->command.v[5], "");
	assert_true(s->has_entrypoint);
	assert_int_equal(s->entrypoint.n, 4);
	assert_string_equal(s->entrypoint.v[2], "1");
	assert_string_equal(s->entrypoint.v[3], "true");
	const struct stage *n = stage(p, "n");
	assert_false(n->has_command);
	assert_true(n->has_entrypoint);
	assert_int_equal(n->entrypoint.n, 0);
	pipeline_free(p);
	expect_error("stages:\n  s:\n    command: echo 'oops\n",
		     "cpipe.yml:3:14: stage \"s\": key \"command\": unterminated single quote");
	expect_error("stages:\n  s:\n    command: [a, [b]]\n",
		     "cpipe.yml:3:18: stage \"s\": key \"command\": entries must be strings, got a "
		     "list");
}

static void test_shell_split(void **state)
{
	(void)state;
	struct strvec v = {0};
	struct cp_error err = {0};
	assert_int_equal(shell_split(&v, "  a\t'b c'  \"d \\\"e\\\" \\$f \\g\" h\\ i j\\\nk \"\" '' ", &err), 0);
	assert_int_equal(v.n, 7);
	assert_string_equal(v.v[0], "a");
	assert_string_equal(v.v[1], "b c");
	assert_string_equal(v.v[2], "d \"e\" $f \\g");
	assert_string_equal(v.v[3], "h i");
	assert_string_equal(v.v[4], "jk");
	assert_string_equal(v.v[5], "");
	assert_string_equal(v.v[6], "");
	assert_null(v.v[7]);
	strvec_free(&v);
	assert_int_equal(shell_split(&v, "$HOME 'it''s' a\"b\"c", &err), 0);
	assert_int_equal(v.n, 3);
	assert_string_equal(v.v[0], "$HOME");
	assert_string_equal(v.v[1], "its");
	assert_string_equal(v.v[2], "abc");
	strvec_free(&v);
	assert_int_equal(shell_split(&v, "echo \"unclosed", &err), -1);
	assert_string_equal(err.msg, "unterminated double quote");
	assert_int_equal(v.n, 0);
	assert_int_equal(shell_split(&v, "echo 'unclosed", &err), -1);
	assert_string_equal(err.msg, "unterminated single quote");
	assert_int_equal(shell_split(&v, "   ", &err), 0);
	assert_int_equal(v.n, 0);
}

static void test_healthcheck_and_durations(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  a:\n"
				  "    healthcheck:\n"
				  "      test: curl -f http://localhost\n"
				  "      interval: 1m30s\n"
				  "      timeout: 500ms\n"
				  "      start_period: 2h\n"
				  "      retries: 3\n"
				  "    stop_grace_period: 1.5s\n"
				  "  b:\n"
				  "    healthcheck: {test: [CMD, pg_isready], disable: false}\n"
				  "  c:\n"
				  "    healthcheck: {test: [NONE]}\n");
	const struct healthcheck *h = stage(p, "a")->healthcheck;
	assert_int_equal(h->test.n, 2);
	assert_string_equal(h->test.v[0], "CMD-SHELL");
	assert_string_equal(h->test.v[1], "curl -f http://localhost");
	assert_int_equal(h->interval_ms, 90000);
	assert_int_equal(h->timeout_ms, 500);
	assert_int_equal(h->start_period_ms, 7200000);
	assert_int_equal(h->retries, 3);
	assert_false(h->disable);
	assert_int_equal(stage(p, "a")->stop_grace_ms, 1500);
	assert_string_equal(stage(p, "b")->healthcheck->test.v[0], "CMD");
	assert_int_equal(stage(p, "b")->healthcheck->retries, 30);
	assert_true(stage(p, "c")->healthcheck->disable);
	pipeline_free(p);
}

static void test_build_gpus_profiles_labels(void **state)
{
	(void)state;
	struct pipeline *p = load("stages:\n"
				  "  a:\n"
				  "    build:\n"
				  "      context: ctx\n"
				  "      target: prod\n"
				  "      args: [V=1, FROM_SHELL, MISSING]\n"
				  "    gpus: all\n"
				  "    profiles: [gpu, train]\n"
				  "    labels: [team=ml, solo]\n"
				  "    user: \"1000:1000\"\n"
				  "    working_dir: /w\n"
				  "  b:\n"
				  "    deploy:\n"
				  "      resources:\n"
				  "        reservations:\n"
				  "          devices:\n"
				  "            - {driver: nvidia, count: 1, capabilities: [gpu]}\n"
				  "            - {capabilities: [gpu], device_ids: [\"0\", \"3\"]}\n"
				  "            - {capabilities: [tpu]}\n");
	const struct stage *a = stage(p, "a");
	assert_string_equal(a->build->context, "/proj/ctx");
	assert_string_equal(a->build->target, "prod");
	assert_string_equal(kvvec_get(&a->build->args, "V")->value, "1");
	assert_string_equal(kvvec_get(&a->build->args, "FROM_SHELL")->value, "shell");
	assert_null(kvvec_get(&a->build->args, "MISSING"));
	assert_int_equal(a->gpus.n, 1);
	assert_string_equal(a->gpus.v[0], "all");
	assert_true(strvec_contains(&a->profiles, "train"));
	assert_string_equal(kvvec_get(&a->labels, "team")->value, "ml");
	assert_string_equal(kvvec_get(&a->labels, "solo")->value, "");
	assert_string_equal(a->user, "1000:1000");
	assert_string_equal(a->working_dir, "/w");
	const struct stage *b = stage(p, "b");
	assert_int_equal(b->gpus.n, 2);
	assert_string_equal(b->gpus.v[0], "1");
	assert_string_equal(b->gpus.v[1], "device=0,3");
	pipeline_free(p);
	expect_error("stages:\n  a:\n    working_dir: rel\n",
		     "cpipe.yml:3:18: stage \"a\": working_dir \"rel\" must be an absolute path");
}

static void test_artifact_refs(void **state)
{
	(void)state;
	struct pipeline *p = load("volumes: {v: {}}\n"
				  "stages:\n"
				  "  a:\n"
				  "    inputs: [./data, /abs/x/, \"v:/a//b/./c\", \"v:rel\", \"v:\", "
				  "data/raw]\n");
	const struct stage *a = stage(p, "a");
	assert_int_equal(a->ninputs, 6);
	assert_null(a->inputs[0].volume);
	assert_string_equal(a->inputs[0].path, "/proj/data");
	assert_string_equal(a->inputs[1].path, "/abs/x");
	assert_string_equal(a->inputs[2].volume, "v");
	assert_string_equal(a->inputs[2].path, "/a/b/c");
	assert_string_equal(a->inputs[3].path, "/rel");
	assert_string_equal(a->inputs[4].path, "/");
	assert_null(a->inputs[5].volume);
	assert_string_equal(a->inputs[5].path, "/proj/data/raw");
	assert_int_equal(a->inputs[2].mark.col, 31);
	pipeline_free(p);
}

/* ---- dependencies from artifacts ---- */

static void test_implicit_dependencies(void **state)
{
	(void)state;
	struct pipeline *p = load("volumes: {v: {}}\n"
				  "stages:\n"
				  "  prepare:\n"
				  "    outputs: [v:/data]\n"
				  "  train:\n"
				  "    inputs: [v:/data/train.csv]\n"
				  "    outputs: [v:/model, ./local/out]\n"
				  "    metrics: [v:/metrics/train.json]\n"
				  "  evaluate:\n"
				  "    depends_on: [train]\n"
				  "    inputs: [v:/]\n"
				  "  report:\n"
				  "    inputs: [\"v:/metrics\", ./local]\n"
				  "  unrelated:\n"
				  "    inputs: [\"v:/datax\", /other]\n");
	const struct stage *t = stage(p, "train");
	assert_int_equal(t->ndeps, 1);
	assert_string_equal(t->deps[0].stage, "prepare");
	assert_true(t->deps[0].implicit);
	assert_int_equal(t->deps[0].condition, DEP_COMPLETED_SUCCESSFULLY);
	assert_int_equal(t->deps[0].mark.line, 6);
	/* Explicit first and not repeated; then the implicit ones. */
	const struct stage *e = stage(p, "evaluate");
	assert_int_equal(e->ndeps, 2);
	assert_string_equal(e->deps[0].stage, "train");
	assert_false(e->deps[0].implicit);
	assert_string_equal(e->deps[1].stage, "prepare");
	assert_true(e->deps[1].implicit);
	const struct stage *r = stage(p, "report");
	assert_int_equal(r->ndeps, 1);
	assert_string_equal(r->deps[0].stage, "train");
	assert_int_equal(stage(p, "unrelated")->ndeps, 0);
	pipeline_free(p);
}

/* ---- params ---- */

static void test_params_set_and_substitution(void **state)
{
	(void)state;
	struct kvvec sets = {0};
	kvvec_set(&sets, "train.lr", "0.1");
	struct spec_options o = opts_in("/proj");
	o.sets = &sets;
	const char *yaml = "stages:\n"
			   "  train:\n"
			   "    params: {lr: 0.05, epochs: 3, tag: \"a b\"}\n"
			   "    command: train --lr ${params.lr} --epochs=${params.epochs} "
			   "${params.tag}\n"
			   "    entrypoint: [\"${params.tag}\"]\n"
			   "    environment: {LR: \"${params.lr}\", KEEP: \"$${params.lr}\"}\n"
			   "    working_dir: /runs/${params.epochs}\n"
			   "    image: \"img:${params.lr}\"\n";
	struct pipeline *p = load_opts(yaml, &o);
	const struct stage *t = stage(p, "train");
	assert_string_equal(kvvec_get(&t->params, "lr")->value, "0.1");
	assert_string_equal(kvvec_get(&t->params, "epochs")->value, "3");
	assert_int_equal(t->param_overrides.n, 1);
	assert_string_equal(t->param_overrides.v[0].key, "lr");
	assert_string_equal(t->param_overrides.v[0].value, "0.1");
	assert_int_equal(t->command.n, 5);
	assert_string_equal(t->command.v[2], "0.1");
	assert_string_equal(t->command.v[3], "--epochs=3");
	assert_string_equal(t->command.v[4], "a b"); /* one word: split before substitution */
	assert_string_equal(t->entrypoint.v[0], "a b");
	assert_string_equal(env_of(t, "LR"), "0.1");
	/* $$ made it a literal "${params.lr}" before params are substituted. */
	assert_string_equal(env_of(t, "KEEP"), "0.1");
	assert_string_equal(t->working_dir, "/runs/3");
	/* Only command, entrypoint, environment and working_dir are substituted. */
	assert_string_equal(t->image, "img:${params.lr}");
	pipeline_free(p);

	kvvec_free(&sets);
	kvvec_set(&sets, "trian.lr", "1");
	expect_error_opts(yaml, &o, "--set trian.lr: unknown stage \"trian\" (did you mean \"train\"?)");
	kvvec_free(&sets);
	kvvec_set(&sets, "train.lrr", "1");
	expect_error_opts(yaml, &o,
			  "--set train.lrr: stage \"train\" has no param \"lrr\" (did you mean "
			  "\"lr\"?)");
	kvvec_free(&sets);
	kvvec_set(&sets, "lr", "1");
	expect_error_opts(yaml, &o, "--set lr: expected STAGE.PARAM=VALUE");
	kvvec_free(&sets);

	expect_error("stages:\n"
		     "  train:\n"
		     "    params: {lr: 1}\n"
		     "    command: run ${params.rl}\n",
		     "cpipe.yml:4:14: stage \"train\": unknown param \"rl\" in \"${params.rl}\" (did "
		     "you mean \"lr\"?)");
}

/* ---- files: discovery, multiple -f ---- */

static void test_discovery(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct spec_options o = opts_in(dir);
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	assert_int_equal(spec_load(&p, &o, &err), -1);
	char *want = NULL;
	assert_true(asprintf(&want,
			     "no spec file in %s (tried cpipe.yml, cpipe.yaml, compose.yaml, "
			     "compose.yml, docker-compose.yml, docker-compose.yaml)",
			     dir) > 0);
	assert_string_equal(err.msg, want);
	assert_int_equal(err.code, EXIT_USAGE);
	free(want);

	write_file(dir, "docker-compose.yml", "services: {old: {}}\n");
	write_file(dir, "compose.yaml", "services:\n  web:\n    image: [x]\n");
	assert_int_equal(spec_load(&p, &o, &err), -1);
	assert_string_equal(err.msg, "compose.yaml:3:12: stage \"web\": key \"image\" must be a "
				     "string, got a list");
	write_file(dir, "cpipe.yml", "stages: {new: {}}\n");
	assert_int_equal(spec_load(&p, &o, &err), 0);
	assert_string_equal(p->stages[0].name, "new");
	char *abs = path_join(dir, "cpipe.yml");
	assert_string_equal(p->files.v[0], abs);
	assert_string_equal(p->dir, dir);
	free(abs);
	pipeline_free(p);
	rmdir_all(dir);
}

static void test_project_dir_is_first_files_dir(void **state)
{
	(void)state;
	char *dir = tmpdir();
	char *sub = path_join(dir, "sub");
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(sub, 0755, &err), 0);
	write_file(sub, "pipe.yml", "stages:\n  a:\n    volumes: [./data:/data]\n");
	write_file(sub, ".env", "GOOD=1\n");
	const char *files[] = {"sub/pipe.yml"};
	struct spec_options o = opts_in(dir);
	o.files = files;
	o.nfiles = 1;
	struct pipeline *p = NULL;
	assert_int_equal(spec_load(&p, &o, &err), 0);
	assert_string_equal(p->dir, sub);
	char *data = path_join(sub, "data");
	assert_string_equal(p->stages[0].mounts[0].source, data);
	assert_string_equal(p->stages[0].mark.file, "sub/pipe.yml");
	free(data);
	pipeline_free(p);
	write_file(sub, ".env", "GOOD=1\n'bad\n");
	assert_int_equal(spec_load(&p, &o, &err), -1);
	assert_string_equal(err.msg, "sub/.env:2:1: invalid variable name: expected KEY=VALUE, where KEY is letters, digits, \"_\", \".\" and \"-\", starting with a letter or \"_\"");
	free(sub);
	rmdir_all(dir);
}

static void test_multiple_files_override(void **state)
{
	(void)state;
	char *dir = tmpdir();
	write_file(dir, "base.yml",
		   "name: proj\n"
		   "volumes: {v: {}}\n"
		   "services:\n"
		   "  train:\n"
		   "    image: train:1\n"
		   "    command: python train.py\n"
		   "    environment: [A=1, B=2]\n"
		   "    labels: {x: \"1\"}\n"
		   "    ports: [\"8000:8000\", \"9000\"]\n"
		   "    volumes: [\"v:/data\", \"./a:/a\"]\n"
		   "    depends_on: [prep]\n"
		   "    build: {context: ., args: {X: \"1\"}}\n"
		   "    healthcheck: {test: [CMD, a], retries: 5}\n"
		   "    inputs: [v:/in1]\n"
		   "    profiles: [p1]\n"
		   "  prep: {}\n");
	write_file(dir, "override.yml",
		   "stages:\n"
		   "  train:\n"
		   "    image: train:2\n"
		   "    command: [python, train.py, --fast]\n"
		   "    environment: {B: \"20\", C: \"3\"}\n"
		   "    ports: [\"9000\", \"9001:9001\"]\n"
		   "    volumes: [\"./b:/a:ro\"]\n"
		   "    depends_on: {prep: {condition: service_started}}\n"
		   "    build: ./other\n"
		   "    healthcheck: {test: \"true\"}\n"
		   "    inputs: [v:/in2]\n"
		   "    profiles: [p1, p2]\n"
		   "  extra:\n"
		   "    image: [bad]\n");
	const char *files[] = {"base.yml", "override.yml"};
	struct spec_options o = opts_in(dir);
	o.files = files;
	o.nfiles = 2;
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	/* Errors in a later file name that file. */
	assert_int_equal(spec_load(&p, &o, &err), -1);
	assert_string_equal(err.msg, "override.yml:14:12: stage \"extra\": key \"image\" must be a "
				     "string, got a list");

	write_file(dir, "override.yml",
		   "stages:\n"
		   "  train:\n"
		   "    image: train:2\n"
		   "    command: [python, train.py, --fast]\n"
		   "    environment: {B: \"20\", C: \"3\"}\n"
		   "    ports: [\"9000\", \"9001:9001\"]\n"
		   "    volumes: [\"./b:/a:ro\"]\n"
		   "    depends_on: {prep: {condition: service_started}}\n"
		   "    build: ./other\n"
		   "    healthcheck: {test: \"true\"}\n"
		   "    inputs: [v:/in2]\n"
		   "    profiles: [p1, p2]\n"
		   "  extra: {image: e}\n");
	/* An empty override of a mapping changes nothing. */
	write_file(dir, "empty.yml", "stages:\n  train:\nvolumes:\n");
	const char *three[] = {"base.yml", "override.yml", "empty.yml"};
	o.files = three;
	o.nfiles = 3;
	assert_int_equal(spec_load(&p, &o, &err), 0);
	assert_int_equal(p->files.n, 3);
	assert_int_equal(p->nvolumes, 1);
	assert_int_equal(p->nstages, 3);
	assert_string_equal(p->stages[0].name, "train");
	assert_string_equal(p->stages[1].name, "prep");
	assert_string_equal(p->stages[2].name, "extra");
	assert_int_equal(p->stages[2].index, 2);
	const struct stage *t = stage(p, "train");
	assert_string_equal(t->image, "train:2");
	assert_string_equal(t->mark.file, "base.yml");
	assert_int_equal(t->command.n, 3);
	assert_string_equal(t->command.v[2], "--fast");
	assert_string_equal(env_of(t, "A"), "1");
	assert_string_equal(env_of(t, "B"), "20");
	assert_string_equal(env_of(t, "C"), "3");
	assert_string_equal(kvvec_get(&t->labels, "x")->value, "1");
	assert_int_equal(t->nports, 3); /* 8000:8000, 9000, 9001:9001 */
	assert_int_equal(t->ports[2].host_port, 9001);
	assert_string_equal(t->ports[2].mark.file, "override.yml");
	assert_int_equal(t->nmounts, 2); /* /a replaced by target */
	assert_string_equal(t->mounts[1].target, "/a");
	char *b = path_join(dir, "b");
	assert_string_equal(t->mounts[1].source, b);
	free(b);
	assert_true(t->mounts[1].read_only);
	assert_int_equal(t->deps[0].condition, DEP_STARTED);
	char *other = path_join(dir, "other");
	assert_string_equal(t->build->context, other);
	free(other);
	assert_string_equal(kvvec_get(&t->build->args, "X")->value, "1");
	assert_string_equal(t->healthcheck->test.v[0], "CMD-SHELL");
	assert_int_equal(t->healthcheck->retries, 5);
	assert_int_equal(t->ninputs, 1);
	assert_string_equal(t->inputs[0].path, "/in2");
	assert_int_equal(t->profiles.n, 2);
	pipeline_free(p);

	const char *missing[] = {"base.yml", "nope.yml"};
	o.files = missing;
	o.nfiles = 2;
	assert_int_equal(spec_load(&p, &o, &err), -1);
	assert_string_equal(err.msg, "spec file nope.yml not found");
	rmdir_all(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_design_example_loads),
		cmocka_unit_test(test_compose_file_loads),
		cmocka_unit_test(test_project_name_from_dir),
		cmocka_unit_test(test_runtime_must_be_local_or_docker),
		cmocka_unit_test(test_unknown_stage_key_suggests),
		cmocka_unit_test(test_unknown_top_level_key_suggests),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_undeclared_volume_suggests),
		cmocka_unit_test(test_unknown_dependency_suggests),
		cmocka_unit_test(test_self_dependency),
		cmocka_unit_test(test_dependency_cycle),
		cmocka_unit_test(test_path_escaping_volume),
		cmocka_unit_test(test_duplicate_stage),
		cmocka_unit_test(test_invalid_yaml_and_names),
		cmocka_unit_test(test_interpolation_forms),
		cmocka_unit_test(test_interpolation_errors),
		cmocka_unit_test(test_interpolation_keeps_keys_and_x_fields),
		cmocka_unit_test(test_interpolated_values_keep_types),
		cmocka_unit_test(test_dotenv_file),
		cmocka_unit_test(test_anchors_aliases_merge_keys),
		cmocka_unit_test(test_alias_bomb_is_refused),
		cmocka_unit_test(test_deep_nesting_is_refused),
		cmocka_unit_test(test_x_fields_ignored),
		cmocka_unit_test(test_services_synonym),
		cmocka_unit_test(test_volumes_short_and_long),
		cmocka_unit_test(test_ports_short_and_long),
		cmocka_unit_test(test_environment_forms),
		cmocka_unit_test(test_env_file),
		cmocka_unit_test(test_depends_on_forms),
		cmocka_unit_test(test_command_forms),
		cmocka_unit_test(test_shell_split),
		cmocka_unit_test(test_healthcheck_and_durations),
		cmocka_unit_test(test_build_gpus_profiles_labels),
		cmocka_unit_test(test_artifact_refs),
		cmocka_unit_test(test_implicit_dependencies),
		cmocka_unit_test(test_params_set_and_substitution),
		cmocka_unit_test(test_discovery),
		cmocka_unit_test(test_project_dir_is_first_files_dir),
		cmocka_unit_test(test_multiple_files_override),
	};
	return cmocka_run_group_tests_name("spec", tests, NULL, NULL);
}
