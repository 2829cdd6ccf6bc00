/* Remotes: which URL is chosen, how one is parsed and shown (never with
 * credentials), and a push/fetch round trip through a directory remote
 * that refuses a corrupted object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../artifacts/remote.h"
#include "tmpdir.h"

static void flag_beats_environment_beats_spec(void **state)
{
	(void)state;
	unsetenv("CPIPE_REMOTE");
	assert_null(remote_choose(NULL, NULL));
	assert_string_equal(remote_choose(NULL, "spec"), "spec");
	setenv("CPIPE_REMOTE", "env", 1);
	assert_string_equal(remote_choose(NULL, "spec"), "env");
	assert_string_equal(remote_choose("flag", "spec"), "flag");
	setenv("CPIPE_REMOTE", "", 1);
	assert_string_equal(remote_choose("", "spec"), "spec");
	unsetenv("CPIPE_REMOTE");
}

static void urls_are_shown_without_credentials(void **state)
{
	(void)state;
	struct remote *r = NULL;
	struct cp_error err = {0};
	assert_int_equal(remote_open(&r, "https://me:hunter22@cache.example/p?x=1", "/", &err), 0);
	assert_null(strstr(remote_shown(r), "hunter22"));
	assert_null(strstr(remote_shown(r), "me@"));
	assert_non_null(strstr(remote_shown(r), "cache.example/p"));
	remote_close(r);
	assert_int_equal(remote_open(&r, "rel/dir", "/base", &err), 0);
	assert_string_equal(remote_shown(r), "/base/rel/dir");
	remote_close(r);
	assert_int_equal(remote_open(&r, "file:///srv/cache/", "/base", &err), 0);
	assert_string_equal(remote_shown(r), "/srv/cache");
	remote_close(r);
}

static void bad_urls_are_usage_errors(void **state)
{
	(void)state;
	struct remote *r = NULL;
	struct cp_error err = {0};
	assert_int_equal(remote_open(&r, "ftp://x/y", "/", &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	memset(&err, 0, sizeof(err));
	setenv("AWS_ACCESS_KEY_ID", "k", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "s3cr3tvalue", 1);
	assert_int_equal(remote_open(&r, "s3://Bad_Bucket/x", "/", &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	memset(&err, 0, sizeof(err));
	assert_int_equal(remote_open(&r, "s3://good-bucket/a/b/", "/", &err), 0);
	assert_string_equal(remote_shown(r), "s3://good-bucket/a/b");
	remote_close(r);
	unsetenv("AWS_SECRET_ACCESS_KEY");
	memset(&err, 0, sizeof(err));
	assert_int_equal(remote_open(&r, "s3://good-bucket/a", "/", &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_non_null(strstr(err.msg, "AWS_SECRET_ACCESS_KEY"));
	unsetenv("AWS_ACCESS_KEY_ID");
}

/* A store holding one run cache entry under `key`: a file output. */
static struct cas *store_with_entry(const char *name, const char *key, char digest[DIGEST_BUFLEN])
{
	struct cas *c = NULL;
	struct cp_error err = {0};
	cleanup_free char *state = at(name);
	assert_int_equal(cas_open(&c, state, &err), 0);
	assert_int_equal(cas_put_bytes(digest, c, "model bytes\n", 12, &err), 0);
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "key", key);
	cJSON_AddStringToObject(doc, "run", "r1");
	cJSON *e = cJSON_AddObjectToObject(cJSON_AddObjectToObject(doc, "outputs"), "vol:/m");
	cJSON_AddStringToObject(e, "digest", digest);
	cJSON_AddStringToObject(e, "type", "f");
	cJSON_AddObjectToObject(doc, "metrics");
	assert_int_equal(runcache_save(c, key, doc, &err), 0);
	cJSON_Delete(doc);
	return c;
}

static void directory_round_trip_refuses_corruption(void **state)
{
	(void)state;
	char key[DIGEST_BUFLEN], digest[DIGEST_BUFLEN];
	digest_bytes(key, "a stage key", 11);
	struct cas *a = store_with_entry("a", key, digest);
	struct remote *r = NULL;
	struct cp_error err = {0};
	cleanup_free char *rdir = at("remote");
	assert_int_equal(remote_open(&r, rdir, "/", &err), 0);
	struct strvec keys = {0};
	strvec_push(&keys, key);
	struct remote_stats st;
	assert_int_equal(remote_push(&st, r, a, &keys, &err), 0);
	assert_int_equal(st.sent, 2); /* the object, the entry */
	assert_int_equal(remote_push(&st, r, a, &keys, &err), 0);
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.skipped, 2);

	struct cas *b = NULL;
	cleanup_free char *bstate = at("b");
	assert_int_equal(cas_open(&b, bstate, &err), 0);
	bool found = false;
	assert_int_equal(remote_fetch(&st, &found, r, b, &keys, &err), 0);
	assert_true(found);
	assert_true(cas_has(b, digest));
	cJSON *doc = NULL;
	assert_int_equal(runcache_load(&doc, b, key), 1);
	cJSON_Delete(doc);

	/* Same size, other bytes, same name: refused, nothing installed. */
	struct cas *c = NULL;
	cleanup_free char *cstate = at("c");
	assert_int_equal(cas_open(&c, cstate, &err), 0);
	cleanup_free char *obj = xasprintf("%s/cas/%s", rdir, digest + strlen(DIGEST_PREFIX));
	FILE *f = fopen(obj, "w");
	assert_non_null(f);
	fputs("model bytez\n", f);
	fclose(f);
	assert_int_equal(remote_fetch(&st, &found, r, c, &keys, &err), -1);
	assert_int_equal(err.code, EXIT_STAGE_FAILED);
	assert_non_null(strstr(err.msg, "corrupt"));
	assert_false(cas_has(c, digest));
	assert_int_equal(runcache_load(&doc, c, key), 0);

	/* A key the remote lacks is not found, and not an error. */
	char other[DIGEST_BUFLEN];
	digest_bytes(other, "another key", 11);
	strvec_free(&keys);
	strvec_push(&keys, other);
	memset(&err, 0, sizeof(err));
	assert_int_equal(remote_fetch(&st, &found, r, c, &keys, &err), 0);
	assert_false(found);
	strvec_free(&keys);
	remote_close(r);
	cas_close(a);
	cas_close(b);
	cas_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(flag_beats_environment_beats_spec),
		cmocka_unit_test(urls_are_shown_without_credentials),
		cmocka_unit_test(bad_urls_are_usage_errors),
		cmocka_unit_test_setup_teardown(directory_round_trip_refuses_corruption, tmpdir_setup,
						tmpdir_teardown),
	};
	return cmocka_run_group_tests_name("remote", tests, NULL, NULL);
}
