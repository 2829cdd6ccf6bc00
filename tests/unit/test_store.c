/* The JSON cpipe writes down: canonical text (what cache keys hash) and
 * the pretty form of the lock and the records have their keys sorted
 * bytewise at every level whatever order they were built in, keep array
 * order, and are laid out exactly as documented; written files read back
 * and a torn one is an error naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../artifacts/store.h"
#include "../../lib/fs.h"

static cJSON *parse(const char *text)
{
	cJSON *doc = cJSON_Parse(text);
	assert_non_null(doc);
	return doc;
}

static void canonical_is(const char *in, const char *want)
{
	cJSON *doc = parse(in);
	char *got = json_canonical(doc);
	assert_string_equal(got, want);
	free(got);
	cJSON_Delete(doc);
}

static void canonical_text_sorts_keys_bytewise_at_every_level(void **state)
{
	(void)state;
	/* Bytewise: "B" < "a" < "a.b" < "ab" < "z" < "\xc3\xa9" (é); inside
	 * arrays objects are sorted too, the arrays themselves keep order. */
	canonical_is("{\"z\": 1, \"\xc3\xa9\": 0, \"b\": {\"ab\": \"s\", \"a.b\": null, \"a\": \"t\","
		     " \"B\": true, \"z\": [3, 1, {\"y\": 1, \"x\": [{\"q\": 1, \"p\": 2}]}]}}",
		     "{\"b\":{\"B\":true,\"a\":\"t\",\"a.b\":null,\"ab\":\"s\","
		     "\"z\":[3,1,{\"x\":[{\"p\":2,\"q\":1}],\"y\":1}]},\"z\":1,\"\xc3\xa9\":0}");
	canonical_is("{}", "{}");
	canonical_is("[{\"b\": 1, \"a\": 2}, []]", "[{\"a\":2,\"b\":1},[]]");
	canonical_is("\"plain\"", "\"plain\"");
}

static void insertion_order_does_not_change_the_text(void **state)
{
	(void)state;
	static const char *const keys[] = {"train", "prepare", "evaluate", "Infer", "prepare2"};
	cJSON *fwd = cJSON_CreateObject(), *back = cJSON_CreateObject();
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		cJSON *f = cJSON_AddObjectToObject(fwd, keys[i]);
		cJSON_AddNumberToObject(f, "size", (double)i);
		cJSON_AddStringToObject(f, "digest", keys[i]);
		size_t j = ARRAY_LEN(keys) - 1 - i;
		cJSON *b = cJSON_AddObjectToObject(back, keys[j]);
		cJSON_AddStringToObject(b, "digest", keys[j]);
		cJSON_AddNumberToObject(b, "size", (double)j);
	}
	char *a = json_canonical(fwd), *b = json_canonical(back);
	assert_string_equal(a, b);
	assert_true(strstr(a, "{\"Infer\":") == a);
	char *pa = json_pretty(fwd), *pb = json_pretty(back);
	assert_string_equal(pa, pb);
	free(a);
	free(b);
	free(pa);
	free(pb);
	cJSON_Delete(fwd);
	cJSON_Delete(back);
}

/* cJSON keeps child->prev at the last item: adding and detaching after a
 * sort must still work. */
static void a_sorted_object_stays_a_valid_cjson_list(void **state)
{
	(void)state;
	cJSON *doc = parse("{\"c\": 3, \"a\": 1, \"b\": 2}");
	json_sort_keys(doc);
	assert_int_equal(cJSON_GetArraySize(doc), 3);
	cJSON_AddNumberToObject(doc, "0", 0);
	char *t = cJSON_PrintUnformatted(doc);
	assert_string_equal(t, "{\"a\":1,\"b\":2,\"c\":3,\"0\":0}");
	free(t);
	cJSON_Delete(cJSON_DetachItemFromObject(doc, "0"));
	cJSON_Delete(cJSON_DetachItemFromObject(doc, "c"));
	cJSON_AddNumberToObject(doc, "d", 4);
	t = cJSON_PrintUnformatted(doc);
	assert_string_equal(t, "{\"a\":1,\"b\":2,\"d\":4}");
	free(t);
	cJSON_Delete(doc);
}

static void pretty_text_is_the_documented_layout(void **state)
{
	(void)state;
	cJSON *doc = parse("{\"version\": 1, \"stages\": {\"t\": {\"outputs\": {}, \"cmd\": [\"sh\", \"-c\", \"x\"],"
			   " \"runs\": [{\"b\": 1, \"a\": [2, {\"k\": null}]}], \"e\": [],"
			   " \"say \\\"hi\\\"\": \"tab\\there\"}}}");
	char *got = json_pretty(doc);
	assert_string_equal(got, "{\n"
				 "  \"stages\": {\n"
				 "    \"t\": {\n"
				 "      \"cmd\": [\"sh\", \"-c\", \"x\"],\n"
				 "      \"e\": [],\n"
				 "      \"outputs\": {},\n"
				 "      \"runs\": [\n"
				 "        {\n"
				 "          \"a\": [\n"
				 "            2,\n"
				 "            {\n"
				 "              \"k\": null\n"
				 "            }\n"
				 "          ],\n"
				 "          \"b\": 1\n"
				 "        }\n"
				 "      ],\n"
				 "      \"say \\\"hi\\\"\": \"tab\\there\"\n"
				 "    }\n"
				 "  },\n"
				 "  \"version\": 1\n"
				 "}\n");
	/* It reads back as the same document. */
	cJSON *again = parse(got);
	assert_true(cJSON_Compare(doc, again, true));
	free(got);
	cJSON_Delete(again);
	cJSON_Delete(doc);
}

static void written_json_reads_back_and_a_torn_file_is_named(void **state)
{
	(void)state;
	struct cp_error err = {0};
	char dir[] = "/tmp/cpipe-store-XXXXXX";
	assert_non_null(mkdtemp(dir));
	cleanup_free char *path = path_join(dir, "doc.json");
	cJSON *doc = parse("{\"b\": [1, 2], \"a\": \"x\"}");
	assert_int_equal(json_write_atomic(path, doc, &err), 0);
	cleanup_free char *text = NULL;
	assert_int_equal(fs_read_file(&text, NULL, path, 0, &err), 0);
	assert_string_equal(text, "{\n  \"a\": \"x\",\n  \"b\": [1, 2]\n}\n");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600); /* state under .cpipe is the owner's alone */
	cleanup_free char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	assert_int_equal(access(tmp, F_OK), -1);
	cJSON *back = NULL;
	assert_int_equal(json_read_file(&back, path, 0, &err), 0);
	assert_true(cJSON_Compare(doc, back, true));
	cJSON_Delete(back);
	cJSON_Delete(doc);

	assert_int_equal(fs_write_atomic(path, "{\"a\": [1, ", 10, 0644, &err), 0);
	back = NULL;
	assert_int_equal(json_read_file(&back, path, 0, &err), -1);
	assert_null(back);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "not valid JSON"));
	assert_int_equal(fs_rm_rf(dir, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(canonical_text_sorts_keys_bytewise_at_every_level),
		cmocka_unit_test(insertion_order_does_not_change_the_text),
		cmocka_unit_test(a_sorted_object_stays_a_valid_cjson_list),
		cmocka_unit_test(pretty_text_is_the_documented_layout),
		cmocka_unit_test(written_json_reads_back_and_a_torn_file_is_named),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
