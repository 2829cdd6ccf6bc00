/* Redaction: which variable names are secret, URL passwords, and masking
 * of secret values in text and JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../artifacts/git.h"
#include "../../artifacts/redact.h"

static void secret_names_are_words_not_substrings(void **state)
{
	(void)state;
	static const char *const secret[] = {
		"TOKEN",	 "GH_TOKEN",	   "HOST_API_TOKEN", "api_key",	     "API_KEY",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GITHUB_PAT", "DB_PASSWORD",
		"MYSQL_PASSWD", "SSH_PASSPHRASE", "GOOGLE_APPLICATION_CREDENTIALS", "APIKEY",
		"OPENAI_APIKEY", "BASIC_AUTH",	 "OAUTH",	   "authToken",	     "client-secret",
		"DB_PASS",	 "REGISTRY_CREDS", "HF_TOKENS",	   "app.secret",
	};
	static const char *const plain[] = {
		"PATH",	       "PYTHONPATH", "KEYBOARD", "MONKEY",	 "AUTHOR",
		"TOKENIZERS_PARALLELISM", "HOME", "PWD",	   "PASSTHROUGH", "COMPOSE_PROJECT_NAME",
		"OMP_NUM_THREADS", "KEYMAP", "PATCH_LEVEL", "SPATIAL", "",
	};
	for (size_t i = 0; i < ARRAY_LEN(secret); i++)
		if (!env_name_is_secret(secret[i]))
			fail_msg("%s should be secret", secret[i]);
	for (size_t i = 0; i < ARRAY_LEN(plain); i++)
		if (env_name_is_secret(plain[i]))
			fail_msg("%s should not be secret", plain[i]);
}

static void expect_masked(const struct redactor *r, const char *in, const char *want)
{
	char *got = redactor_text(r, in);
	assert_string_equal(got, want);
	free(got);
}

static void url_passwords_are_masked_anywhere(void **state)
{
	(void)state;
	expect_masked(NULL, "postgres://u:hunter2@db/x", "postgres://u:<redacted>@db/x");
	expect_masked(NULL, "--db=postgres://u:hunter2@db:5432/x?ssl=1 and https://a:b@h",
		      "--db=postgres://u:<redacted>@db:5432/x?ssl=1 and https://a:<redacted>@h");
	expect_masked(NULL, "https://user@host/path", "https://user@host/path");
	expect_masked(NULL, "https://host/p@th", "https://host/p@th");
	expect_masked(NULL, "no url: a:b@c", "no url: a:b@c");
	/* Idempotent: records are masked again on every save. */
	expect_masked(NULL, "postgres://u:<redacted>@db/x", "postgres://u:<redacted>@db/x");
}

static void git_remote_credentials_use_the_same_parser(void **state)
{
	(void)state;
	char *s = git_strip_credentials("https://bot:ghp_abc123@github.com/o/r.git");
	assert_string_equal(s, "https://github.com/o/r.git");
	free(s);
	s = git_strip_credentials("git@github.com:o/r.git");
	assert_string_equal(s, "git@github.com:o/r.git");
	free(s);
}

static void values_are_masked_longest_first(void **state)
{
	(void)state;
	struct redactor r = {0};
	redactor_add(&r, "abc");		/* too short to mask inside text */
	redactor_add(&r, "tok-123");
	redactor_add(&r, "tok-123-long");
	redactor_add(&r, "redacted");		/* inside the mask itself: ignored */
	redactor_add(&r, "-----BEGIN KEY-----\nline-two-secret\n");
	redactor_add_urls(&r, "mysql://root:pw-9876@db");
	expect_masked(&r, "a tok-123-long b tok-123 c abc", "a <redacted> b <redacted> c abc");
	expect_masked(&r, "echo line-two-secret", "echo <redacted>");
	expect_masked(&r, "password is pw-9876", "password is <redacted>");
	expect_masked(&r, "<redacted>", "<redacted>");
	assert_true(redactor_hits(&r, "x tok-123"));
	assert_false(redactor_hits(&r, "nothing here"));

	cJSON *doc = cJSON_Parse("{\"argv\": [\"--auth\", \"tok-123\"], \"n\": 1,"
				 " \"env\": {\"U\": \"x tok-123-long\"}}");
	redactor_json(&r, doc);
	char *text = cJSON_PrintUnformatted(doc);
	assert_string_equal(text,
			    "{\"argv\":[\"--auth\",\"<redacted>\"],\"n\":1,\"env\":{\"U\":\"x "
			    "<redacted>\"}}");
	free(text);
	cJSON_Delete(doc);
	redactor_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(secret_names_are_words_not_substrings),
		cmocka_unit_test(url_passwords_are_masked_anywhere),
		cmocka_unit_test(git_remote_credentials_use_the_same_parser),
		cmocka_unit_test(values_are_masked_longest_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
