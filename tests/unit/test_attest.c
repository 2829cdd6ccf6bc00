/* Attestations over hand-made records: the Statement's subjects and
 * dependencies, the DSSE pre-authentication encoding of the spec's
 * example, and Ed25519 envelopes that verify until a byte changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "../../artifacts/attest.h"
#include "../../lib/util.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define D4 "sha256:4444444444444444444444444444444444444444444444444444444444444444"

static const char record[] =
	"{\"id\": \"r1\", \"status\": \"succeeded\", \"runtime\": \"local\","
	" \"git\": {\"commit\": \"abc123\", \"dirty\": false, \"remote\": \"https://example.com/p.git\"},"
	" \"overrides\": {\"train.lr\": \"0.2\"},"
	" \"stages\": ["
	"  {\"name\": \"train\", \"status\": \"ran\", \"params\": {\"lr\": \"0.2\"},"
	"   \"image\": {\"ref\": \"img:1\", \"digest\": \"" D4 "\"},"
	"   \"inputs\": {\"./data.csv\": {\"digest\": \"" D1 "\"}},"
	"   \"outputs\": {\"vol:/model\": {\"digest\": \"" D2 "\", \"files\": 2}}, \"metrics\": {}},"
	"  {\"name\": \"evaluate\", \"status\": \"skipped\", \"image\": {\"digest\": \"local\"},"
	"   \"inputs\": {\"vol:/model/w.bin\": {\"digest\": \"" D1 "\"}},"
	"   \"outputs\": {}, \"metrics\": {\"vol:/m.json\": {\"digest\": \"" D3 "\"}}}"
	"]}";

static const char *str_of(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
}

static void the_statement_names_outputs_and_what_they_came_from(void **state)
{
	(void)state;
	cJSON *rec = cJSON_Parse(record), *st = NULL;
	struct cp_error err = {0};
	assert_int_equal(attest_statement(&st, rec, "9.9", &err), 0);
	assert_string_equal(str_of(st, "_type"), "https://in-toto.io/Statement/v1");
	assert_string_equal(str_of(st, "predicateType"), "https://slsa.dev/provenance/v1");
	const cJSON *subj = cJSON_GetObjectItem(st, "subject");
	assert_int_equal(cJSON_GetArraySize(subj), 2);
	assert_string_equal(str_of(cJSON_GetArrayItem(subj, 0), "name"), "vol:/model");
	assert_string_equal(str_of(cJSON_GetObjectItem(cJSON_GetArrayItem(subj, 0), "digest"), "sha256"),
			    &D2[7]);
	assert_string_equal(str_of(cJSON_GetArrayItem(subj, 1), "name"), "vol:/m.json");
	const cJSON *bd = cJSON_GetObjectItem(cJSON_GetObjectItem(st, "predicate"), "buildDefinition");
	const cJSON *deps = cJSON_GetObjectItem(bd, "resolvedDependencies");
	/* The commit, the one image with an ID, data.csv; not w.bin, which
	 * lies inside the vol:/model subject. */
	assert_int_equal(cJSON_GetArraySize(deps), 3);
	assert_string_equal(str_of(cJSON_GetArrayItem(deps, 0), "uri"),
			    "git+https://example.com/p.git@abc123");
	assert_string_equal(str_of(cJSON_GetArrayItem(deps, 1), "name"), "image:img:1");
	assert_string_equal(str_of(cJSON_GetArrayItem(deps, 2), "name"), "./data.csv");
	assert_string_equal(str_of(cJSON_GetObjectItem(cJSON_GetObjectItem(bd, "externalParameters"),
						       "overrides"),
				   "train.lr"),
			    "0.2");
	cJSON_Delete(st);
	/* A failed run is no provenance of anything. */
	cJSON_ReplaceItemInObject(rec, "status", cJSON_CreateString("failed"));
	st = NULL;
	assert_int_equal(attest_statement(&st, rec, "9.9", &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_null(st);
	cp_error_clear(&err);
	cJSON_Delete(rec);
}

static void pae_follows_the_dsse_spec(void **state)
{
	(void)state;
	size_t n = 0;
	unsigned char *p = attest_pae(&n, "http://example.com/HelloWorld", "hello world", 11);
	static const char want[] = "DSSEv1 29 http://example.com/HelloWorld 11 hello world";
	assert_int_equal(n, strlen(want));
	assert_memory_equal(p, want, n);
	free(p);
}

static void an_envelope_verifies_until_a_byte_changes(void **state)
{
	(void)state;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(key);
	struct cp_error err = {0};
	static const char payload[] = "{\"_type\":\"https://in-toto.io/Statement/v1\","
				      "\"predicateType\":\"https://slsa.dev/provenance/v1\","
				      "\"subject\":[]}";
	cJSON *env = NULL, *st = NULL;
	assert_int_equal(attest_sign(&env, payload, strlen(payload), key, &err), 0);
	char *text = cJSON_PrintUnformatted(env);
	assert_int_equal(attest_verify(&st, text, strlen(text), key, &err), 0);
	assert_non_null(st);
	cJSON_Delete(st);
	st = NULL;
	assert_int_equal(attest_verify(&st, text, strlen(text), other, &err), -1);
	assert_int_equal(err.code, EXIT_STAGE_FAILED);
	cp_error_clear(&err);
	/* One character of the base64 payload changed. */
	char *p = strstr(text, "\"payload\":\"") + 11;
	p[5] = p[5] == 'A' ? 'B' : 'A';
	assert_int_equal(attest_verify(&st, text, strlen(text), key, &err), -1);
	assert_int_equal(err.code, EXIT_STAGE_FAILED);
	cp_error_clear(&err);
	p[5] = '\n'; /* no longer base64 */
	assert_int_equal(attest_verify(&st, text, strlen(text), key, &err), -1);
	cp_error_clear(&err);
	assert_int_equal(attest_verify(&st, "[]", 2, key, &err), -1);
	assert_int_equal(err.code, EXIT_STAGE_FAILED);
	cp_error_clear(&err);
	free(text);
	cJSON_Delete(env);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_statement_names_outputs_and_what_they_came_from),
		cmocka_unit_test(pae_follows_the_dsse_spec),
		cmocka_unit_test(an_envelope_verifies_until_a_byte_changes),
	};
	return cmocka_run_group_tests_name("attest", tests, NULL, NULL);
}
