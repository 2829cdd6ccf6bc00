/* The tracker's pure parts: what changes a stage's cache key and what
 * does not (secrets never do), and the reasons status gives for a stale
 * stage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../pipeline/track_internal.h"

static struct pipeline *load_env(const char *yaml, const char *const *env)
{
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	static const char *const none[] = {NULL};
	struct spec_options o = {.dir = "/tmp", .env = env ? env : none};
	if (spec_load_string(&p, "cpipe.yml", yaml, strlen(yaml), &o, &err) < 0)
		fail_msg("load failed: %s", err.msg);
	return p;
}

/* name -> {"digest": d} for one input, or NULL. */
static cJSON *inputs_of(const char *name, const char *digest)
{
	if (!name)
		return NULL;
	cJSON *in = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(in, name);
	cJSON_AddStringToObject(e, "digest", digest);
	return in;
}

struct keyed {
	char key[DIGEST_BUFLEN];
	char *text; /* the canonical key object, for "the token is not in it" */
};

static struct keyed key_for(const char *yaml, const char *const *env, const char *image,
			    const char *input, const char *digest)
{
	struct pipeline *p = load_env(yaml, env);
	cJSON *in = inputs_of(input, digest);
	cJSON *k = track_key_object(p, &p->stages[0], image, in);
	struct keyed out;
	track_key_digest(out.key, k);
	out.text = json_canonical(k);
	cJSON_Delete(k);
	cJSON_Delete(in);
	pipeline_free(p);
	return out;
}

static void expect_keys(bool equal, const char *y1, const char *const *e1, const char *y2,
			const char *const *e2)
{
	struct keyed a = key_for(y1, e1, "local", NULL, NULL);
	struct keyed b = key_for(y2, e2, "local", NULL, NULL);
	if (equal)
		assert_string_equal(a.key, b.key);
	else
		assert_string_not_equal(a.key, b.key);
	free(a.text);
	free(b.text);
}

/* Two loads that differ only in a secret: equal keys, `secret` in neither
 * key object, and `shown` (the masked form) in it. */
static void expect_masked_key(const char *y1, const char *const *e1, const char *y2,
			      const char *const *e2, const char *secret, const char *shown)
{
	struct keyed a = key_for(y1, e1, "local", NULL, NULL);
	struct keyed b = key_for(y2, e2, "local", NULL, NULL);
	assert_string_equal(a.key, b.key);
	assert_null(strstr(a.text, secret));
	assert_non_null(strstr(a.text, shown));
	free(a.text);
	free(b.text);
}

#define STAGE(body) "stages:\n  a:\n" body

static void key_is_deterministic(void **state)
{
	(void)state;
	const char *y = STAGE("    command: train --lr 1\n    environment: {A: x}\n"
			      "    params: {lr: 1}\n");
	expect_keys(true, y, NULL, y, NULL);
}

static void key_changes_with_what_determines_the_result(void **state)
{
	(void)state;
	const char *base = STAGE("    command: train\n    environment: {MODE: fast}\n"
				 "    params: {lr: 1}\n    working_dir: /w\n");
	expect_keys(false, base, NULL,
		    STAGE("    command: train --more\n    environment: {MODE: fast}\n"
			  "    params: {lr: 1}\n    working_dir: /w\n"),
		    NULL);
	expect_keys(false, base, NULL,
		    STAGE("    command: train\n    environment: {MODE: slow}\n"
			  "    params: {lr: 1}\n    working_dir: /w\n"),
		    NULL);
	expect_keys(false, base, NULL,
		    STAGE("    command: train\n    environment: {MODE: fast}\n"
			  "    params: {lr: 2}\n    working_dir: /w\n"),
		    NULL);
	expect_keys(false, base, NULL,
		    STAGE("    command: train\n    environment: {MODE: fast}\n"
			  "    params: {lr: 1}\n    working_dir: /x\n"),
		    NULL);
	/* A variable that only looks like a secret to a substring match. */
	static const char *const t1[] = {"TOKENIZERS_PARALLELISM=true", NULL};
	static const char *const t2[] = {"TOKENIZERS_PARALLELISM=false", NULL};
	const char *tok = STAGE("    command: train\n    environment: [TOKENIZERS_PARALLELISM]\n");
	expect_keys(false, tok, t1, tok, t2);
}

static void key_changes_with_image_and_input_digests(void **state)
{
	(void)state;
	const char *y = STAGE("    command: train\n");
	struct keyed a = key_for(y, NULL, "sha256:1111", "./data", "sha256:aaaa");
	struct keyed b = key_for(y, NULL, "sha256:2222", "./data", "sha256:aaaa");
	struct keyed c = key_for(y, NULL, "sha256:1111", "./data", "sha256:bbbb");
	struct keyed d = key_for(y, NULL, "sha256:1111", "./data", "sha256:aaaa");
	assert_string_not_equal(a.key, b.key);
	assert_string_not_equal(a.key, c.key);
	assert_string_equal(a.key, d.key);
	free(a.text);
	free(b.text);
	free(c.text);
	free(d.text);
}

static void secret_environment_never_enters_the_key(void **state)
{
	(void)state;
	expect_keys(true, STAGE("    command: train\n    environment: {API_TOKEN: tok-one-1111}\n"),
		    NULL,
		    STAGE("    command: train\n    environment: {API_TOKEN: tok-two-2222}\n"),
		    NULL);
	/* A short secret too: a secret name masks the whole value. */
	expect_keys(true, STAGE("    command: train\n    environment: {DB_PASSWORD: a}\n"), NULL,
		    STAGE("    command: train\n    environment: {DB_PASSWORD: b}\n"), NULL);
}

static void secret_fed_command_argument_never_enters_the_key(void **state)
{
	(void)state;
	static const char *const e1[] = {"HOST_API_TOKEN=tok-first-abcdef", NULL};
	static const char *const e2[] = {"HOST_API_TOKEN=tok-second-123456", NULL};
	const char *y = STAGE("    command: fetch --auth ${HOST_API_TOKEN} --lr 1\n"
			      "    environment: {HEADER: \"Bearer ${HOST_API_TOKEN}\"}\n"
			      "    params: {auth: \"${HOST_API_TOKEN}\"}\n");
	expect_masked_key(y, e1, y, e2, "tok-first", "\"--auth\",\"<redacted>\"");
	expect_masked_key(y, e1, y, e2, "tok-second", "Bearer <redacted>");
	/* The same variable under a non-secret name is part of the key. */
	static const char *const m1[] = {"HOST_MODE=fast", NULL};
	static const char *const m2[] = {"HOST_MODE=slow", NULL};
	const char *ym = STAGE("    command: fetch --mode ${HOST_MODE}\n");
	expect_keys(false, ym, m1, ym, m2);
}

static void url_password_never_enters_the_key(void **state)
{
	(void)state;
	expect_masked_key(STAGE("    command: load postgres://u:hunter2@db/x\n"
				"    environment: {DATABASE_URL: \"postgres://u:hunter2@db/x\"}\n"),
			  NULL,
			  STAGE("    command: load postgres://u:rotated9@db/x\n"
				"    environment: {DATABASE_URL: \"postgres://u:rotated9@db/x\"}\n"),
			  NULL, "hunter2", "postgres://u:<redacted>@db/x");
}

static void declared_secrets_are_masked(void **state)
{
	(void)state;
	static const char *const e1[] = {"DEPLOY_THING=plain-but-declared-1", NULL};
	static const char *const e2[] = {"DEPLOY_THING=plain-but-declared-2", NULL};
	const char *y = "secrets:\n  thing: {environment: DEPLOY_THING}\n"
			STAGE("    command: push ${DEPLOY_THING}\n");
	expect_masked_key(y, e1, y, e2, "plain-but-declared", "\"push\",\"<redacted>\"");
}

/* ---- staleness reasons ---- */

static char *reasons_text(const cJSON *reasons)
{
	struct strbuf sb = STRBUF_INIT;
	for (const cJSON *r = reasons->child; r; r = r->next)
		sb_addf(&sb, "%s%s", sb.len ? "; " : "", r->valuestring);
	return sb_detach(&sb);
}

/* The lock entry a run of `yaml` with one input would leave. */
static cJSON *locked(const char *yaml, const char *digest, char key[DIGEST_BUFLEN])
{
	struct pipeline *p = load_env(yaml, NULL);
	cJSON *in = inputs_of("./data", digest);
	cJSON *le = track_key_object(p, &p->stages[0], "local", in);
	track_key_digest(key, le);
	cJSON_AddStringToObject(le, "key", key);
	cJSON_ReplaceItemInObject(le, "inputs", in);
	pipeline_free(p);
	return le;
}

static char *stale_reasons(const char *locked_yaml, const char *locked_digest, const char *yaml,
			   const char *digest, bool force, bool never_ran)
{
	char lk[DIGEST_BUFLEN], key[DIGEST_BUFLEN];
	cJSON *le = locked(locked_yaml, locked_digest, lk);
	struct pipeline *p = load_env(yaml, NULL);
	cJSON *in = inputs_of(digest ? "./data" : NULL, digest);
	cJSON *k = track_key_object(p, &p->stages[0], "local", in);
	track_key_digest(key, k);
	cJSON *reasons = cJSON_CreateArray();
	track_stale_reasons(reasons, &p->stages[0], never_ran ? NULL : le, k, key, force);
	char *text = reasons_text(reasons);
	cJSON_Delete(reasons);
	cJSON_Delete(k);
	cJSON_Delete(in);
	cJSON_Delete(le);
	pipeline_free(p);
	return text;
}

#define OUT "    outputs: [./model]\n"

static void expect_reasons(const char *want, const char *ly, const char *ld, const char *y,
			   const char *d, bool force, bool never_ran)
{
	char *got = stale_reasons(ly, ld, y, d, force, never_ran);
	assert_string_equal(got, want);
	free(got);
}

static void fresh_when_nothing_changed(void **state)
{
	(void)state;
	const char *y = STAGE("    command: train\n    params: {lr: 1}\n" OUT);
	expect_reasons("", y, "sha256:aaaa", y, "sha256:aaaa", false, false);
}

static void reasons_without_a_key_comparison(void **state)
{
	(void)state;
	const char *y = STAGE("    command: train\n" OUT);
	expect_reasons("never ran", y, "sha256:aaaa", y, "sha256:aaaa", false, true);
	expect_reasons("--force", y, "sha256:aaaa", y, "sha256:aaaa", true, false);
	/* outputs: [] says there is nothing to track; no outputs: at all
	 * means they are observed, and the key decides. */
	const char *empty = STAGE("    command: train\n    outputs: []\n");
	expect_reasons("declares no outputs, so it always runs", empty, "sha256:aaaa", empty,
		       "sha256:aaaa", false, false);
	const char *no_out = STAGE("    command: train\n");
	expect_reasons("", no_out, "sha256:aaaa", no_out, "sha256:aaaa", false, false);
	expect_reasons("never ran", no_out, "sha256:aaaa", no_out, "sha256:aaaa", false, true);
}

static void reasons_name_what_changed(void **state)
{
	(void)state;
	const char *y = STAGE("    command: train\n    params: {lr: 1}\n"
			      "    environment: {MODE: fast}\n" OUT);
	expect_reasons("params.lr 1 → 2", y, "sha256:aaaa",
		       STAGE("    command: train\n    params: {lr: 2}\n"
			     "    environment: {MODE: fast}\n" OUT),
		       "sha256:aaaa", false, false);
	expect_reasons("params.seed added (7)", y, "sha256:aaaa",
		       STAGE("    command: train\n    params: {lr: 1, seed: 7}\n"
			     "    environment: {MODE: fast}\n" OUT),
		       "sha256:aaaa", false, false);
	expect_reasons("environment MODE changed", y, "sha256:aaaa",
		       STAGE("    command: train\n    params: {lr: 1}\n"
			     "    environment: {MODE: slow}\n" OUT),
		       "sha256:aaaa", false, false);
	expect_reasons("command changed", y, "sha256:aaaa",
		       STAGE("    command: train --x\n    params: {lr: 1}\n"
			     "    environment: {MODE: fast}\n" OUT),
		       "sha256:aaaa", false, false);
	expect_reasons("input ./data changed (sha256:aaaa… → sha256:bbbb…)", y, "sha256:aaaa", y,
		       "sha256:bbbb", false, false);
	expect_reasons("input ./data removed", y, "sha256:aaaa", y, NULL, false, false);
}

static void a_rotated_secret_is_not_a_reason(void **state)
{
	(void)state;
	expect_reasons("",
		       STAGE("    command: train\n    environment: {API_KEY: key-one-1111}\n" OUT),
		       "sha256:aaaa",
		       STAGE("    command: train\n    environment: {API_KEY: key-two-2222}\n" OUT),
		       "sha256:aaaa", false, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(key_is_deterministic),
		cmocka_unit_test(key_changes_with_what_determines_the_result),
		cmocka_unit_test(key_changes_with_image_and_input_digests),
		cmocka_unit_test(secret_environment_never_enters_the_key),
		cmocka_unit_test(secret_fed_command_argument_never_enters_the_key),
		cmocka_unit_test(url_password_never_enters_the_key),
		cmocka_unit_test(declared_secrets_are_masked),
		cmocka_unit_test(fresh_when_nothing_changed),
		cmocka_unit_test(reasons_without_a_key_comparison),
		cmocka_unit_test(reasons_name_what_changed),
		cmocka_unit_test(a_rotated_secret_is_not_a_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
