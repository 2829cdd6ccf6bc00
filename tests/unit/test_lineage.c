/* Looking back over hand-made records and locks: artifact names and
 * digests find the stage that produced them, the lineage tree reaches the
 * external inputs, PROV-JSON references only what it declares with valid
 * QNames, and metrics flatten and compare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../../artifacts/lineage.h"

/* Parses JSON where "@X" stands for "sha256:" and 64 times the hex digit
 * X; "@p" and "@q" are two digests sharing their first 16 digits. */
static cJSON *parse(const char *text)
{
	struct strbuf sb = STRBUF_INIT;
	for (const char *c = text; *c; c++) {
		if (*c != '@') {
			sb_addc(&sb, *c);
			continue;
		}
		char x = *++c;
		sb_adds(&sb, "sha256:");
		if (x == 'p' || x == 'q') {
			sb_adds(&sb, "abcdef0123456789");
			for (int i = 0; i < 48; i++)
				sb_addc(&sb, x == 'p' ? '1' : '2');
		} else {
			for (int i = 0; i < 64; i++)
				sb_addc(&sb, x);
		}
	}
	cJSON *doc = cJSON_Parse(sb_str(&sb));
	sb_free(&sb);
	assert_non_null(doc);
	return doc;
}

/* prepare → train → evaluate, plus publish reading the directory prepare
 * writes into, and infer writing a directory of results. */
static const char lock_text[] =
	"{\"version\": 1, \"stages\": {"
	" \"prepare\": {\"key\": \"@a\","
	"   \"inputs\": {\"./bin/prep.sh\": {\"digest\": \"@1\", \"size\": 10}},"
	"   \"outputs\": {\"work:/data/train.csv\": {\"digest\": \"@2\", \"size\": 3600}},"
	"   \"metrics\": {}},"
	" \"train\": {\"key\": \"@b\","
	"   \"inputs\": {\"./bin/train.sh\": {\"digest\": \"@3\", \"size\": 20},"
	"              \"work:/data/train.csv\": {\"digest\": \"@2\", \"size\": 3600}},"
	"   \"outputs\": {\"work:/model\": {\"digest\": \"@4\", \"size\": 18, \"files\": 1}},"
	"   \"metrics\": {}},"
	" \"evaluate\": {\"key\": \"@c\","
	"   \"inputs\": {\"work:/data/train.csv\": {\"digest\": \"@9\", \"size\": 3600},"
	"              \"work:/model/model.txt\": {\"digest\": \"@5\", \"size\": 18}},"
	"   \"outputs\": {},"
	"   \"metrics\": {\"work:/metrics.json\": {\"digest\": \"@6\", \"size\": 30,"
	"      \"values\": {\"acc\": 0.9, \"loss\": {\"train\": 0.2, \"val\": 0.25}}}}},"
	" \"publish\": {\"key\": \"@d\","
	"   \"inputs\": {\"work:/data\": {\"digest\": \"@7\", \"size\": 3600, \"files\": 1}},"
	"   \"outputs\": {\"work:/pub/a.txt\": {\"digest\": \"@p\", \"size\": 1}},"
	"   \"metrics\": {}},"
	" \"infer\": {\"key\": \"@e\","
	"   \"inputs\": {\"./bin/train.sh\": {\"digest\": \"@q\", \"size\": 20}},"
	"   \"outputs\": {\"work:/results\": {\"digest\": \"@8\", \"size\": 40, \"files\": 2}},"
	"   \"metrics\": {}}"
	"}}";

static void names_are_normalized_to_the_lock_spelling(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{"work:metrics.json", "work:/metrics.json"}, {"work:/results/", "work:/results"},
		{"work:/", "work:/"},                        {"bin/train.sh", "./bin/train.sh"},
		{"./data/", "./data"},                       {"/abs/path", "/abs/path"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *n = lineage_normalize_name(cases[i][0]);
		assert_string_equal(n, cases[i][1]);
		free(n);
	}
}

static void within_means_the_path_or_below_it(void **state)
{
	(void)state;
	assert_true(lineage_within("catgif:/results/03.gif", "catgif:/results"));
	assert_true(lineage_within("catgif:/results", "catgif:/results"));
	assert_true(lineage_within("catgif:/anything", "catgif:/"));
	assert_false(lineage_within("catgif:/results2", "catgif:/results"));
	assert_false(lineage_within("other:/results/x", "catgif:/results"));
}

static void an_output_name_finds_its_stage(void **state)
{
	(void)state;
	cJSON *lock = parse(lock_text);
	struct lineage_hit h;
	assert_int_equal(lineage_find_name(&h, lock, "work:/data/train.csv", NULL), 1);
	assert_string_equal(h.stage, "prepare");
	assert_false(h.within);
	/* Metrics files are produced artifacts too. */
	assert_int_equal(lineage_find_name(&h, lock, "work:/metrics.json", NULL), 1);
	assert_string_equal(h.stage, "evaluate");
	/* A file inside an output directory belongs to that directory's stage. */
	assert_int_equal(lineage_find_name(&h, lock, "work:/results/03.gif", NULL), 1);
	assert_string_equal(h.stage, "infer");
	assert_string_equal(h.artifact, "work:/results");
	assert_true(h.within);
	/* Read but produced by no stage: external. */
	assert_int_equal(lineage_find_name(&h, lock, "./bin/train.sh", NULL), 1);
	assert_null(h.stage);
	/* A stage is never its own producer when skipped. */
	assert_int_equal(lineage_find_name(&h, lock, "work:/data/train.csv", "prepare"), 1);
	assert_null(h.stage);
	assert_int_equal(lineage_find_name(&h, lock, "work:/nothing", NULL), 0);
	cJSON_Delete(lock);
}

static void a_digest_or_a_long_enough_prefix_finds_its_artifact(void **state)
{
	(void)state;
	cJSON *lock = parse(lock_text);
	struct lineage_hit h;
	struct cp_error err = {0};
	char full[80];
	snprintf(full, sizeof(full), "sha256:%064d", 0);
	memset(full + 7, '4', 64);
	assert_int_equal(lineage_find_digest(&h, lock, full, &err), 1);
	assert_string_equal(h.stage, "train");
	assert_string_equal(h.artifact, "work:/model");
	assert_int_equal(lineage_find_digest(&h, lock, "444444444444", &err), 1);
	assert_string_equal(h.stage, "train");
	assert_int_equal(lineage_find_digest(&h, lock, "2222222222222222", &err), 1);
	assert_string_equal(h.stage, "prepare");
	/* External inputs answer when no stage produced the digest. */
	assert_int_equal(lineage_find_digest(&h, lock, "sha256:111111111111", &err), 1);
	assert_null(h.stage);
	assert_string_equal(h.artifact, "./bin/prep.sh");
	/* Not hex: not a digest at all. */
	assert_int_equal(lineage_find_digest(&h, lock, "work:/model", &err), 0);
	/* Too short, and ambiguous, are errors that say so. */
	assert_int_equal(lineage_find_digest(&h, lock, "44444", &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_non_null(strstr(err.msg, "at least 12"));
	cp_error_clear(&err);
	assert_int_equal(lineage_find_digest(&h, lock, "abcdef0123456789", &err), -1);
	assert_non_null(strstr(err.msg, "ambiguous"));
	cp_error_clear(&err);
	assert_int_equal(lineage_find_digest(&h, lock, "abcdef01234567891", &err), 1);
	assert_string_equal(h.stage, "publish");
	cJSON_Delete(lock);
}

static const cJSON *input_named(const cJSON *stage_node, const char *name)
{
	const cJSON *in = cJSON_GetObjectItem(stage_node, "inputs");
	for (const cJSON *n = in ? in->child : NULL; n; n = n->next)
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(n, "artifact")), name) == 0)
			return n;
	return NULL;
}

static const char *stage_of(const cJSON *artifact_node)
{
	return cJSON_GetStringValue(
		cJSON_GetObjectItem(cJSON_GetObjectItem(artifact_node, "produced_by"), "stage"));
}

static void the_tree_reaches_the_external_inputs(void **state)
{
	(void)state;
	cJSON *lock = parse(lock_text);
	/* r0 made the train.csv evaluate read (@9), r1 the model, r2 the
	 * metrics; r3 reproduced the model and r4 only restored it. */
	cJSON *runs = cJSON_CreateObject();
	static const char *const recs[] = {
		"{\"id\": \"r0\", \"git\": null, \"stages\": [{\"name\": \"prepare\", \"status\": \"ran\","
		" \"inputs\": {\"./bin/prep.sh\": {\"digest\": \"@1\"}},"
		" \"outputs\": {\"work:/data/train.csv\": {\"digest\": \"@9\"}}}]}",
		"{\"id\": \"r1\", \"git\": null, \"stages\": [{\"name\": \"train\", \"status\": \"ran\","
		" \"inputs\": {\"./bin/train.sh\": {\"digest\": \"@3\"},"
		"   \"work:/data/train.csv\": {\"digest\": \"@2\"}},"
		" \"outputs\": {\"work:/model\": {\"digest\": \"@4\"}}}]}",
		"{\"id\": \"r2\", \"git\": {\"commit\": \"c2\"}, \"stages\": [{\"name\": \"evaluate\","
		" \"status\": \"ran\", \"inputs\": {\"work:/data/train.csv\": {\"digest\": \"@9\"},"
		"   \"work:/model/model.txt\": {\"digest\": \"@5\"}},"
		" \"metrics\": {\"work:/metrics.json\": {\"digest\": \"@6\"}}}]}",
		"{\"id\": \"r3\", \"stages\": [{\"name\": \"train\", \"status\": \"ran\","
		" \"outputs\": {\"work:/model\": {\"digest\": \"@4\"}}}]}",
		"{\"id\": \"r4\", \"stages\": [{\"name\": \"train\", \"status\": \"restored\","
		" \"outputs\": {\"work:/model\": {\"digest\": \"@4\"}}}]}",
	};
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		cJSON *rec = parse(recs[i]);
		lineage_producers_add(runs, rec);
		cJSON_Delete(rec);
	}
	cJSON *tree = NULL;
	struct cp_error err = {0};
	assert_int_equal(lineage_build(&tree, lock, "work:metrics.json", runs, &err), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(tree, "artifact")),
			    "work:/metrics.json");
	assert_string_equal(stage_of(tree), "evaluate");
	const cJSON *ev = cJSON_GetObjectItem(tree, "produced_by");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(ev, "run")), "r2");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				    cJSON_GetObjectItem(ev, "git"), "commit")),
			    "c2");
	/* evaluate read another train.csv than prepare last made: stale. */
	const cJSON *csv = input_named(ev, "work:/data/train.csv");
	assert_string_equal(stage_of(csv), "prepare");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(csv, "stale")));
	/* model.txt lies inside train's output directory. */
	const cJSON *model = input_named(ev, "work:/model/model.txt");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(model, "within")),
			    "work:/model");
	const cJSON *tr = cJSON_GetObjectItem(model, "produced_by");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(tr, "run")), "r1");
	/* r3 made the same digest again; r4's restore made nothing. */
	const cJSON *again_by = cJSON_GetObjectItem(tr, "reproduced_by");
	assert_int_equal(cJSON_GetArraySize(again_by), 1);
	assert_string_equal(cJSON_GetArrayItem(again_by, 0)->valuestring, "r3");
	/* The stale train.csv evaluate read is the one r0 made, not the lock's. */
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				    cJSON_GetObjectItem(csv, "produced_by"), "run")),
			    "r0");
	/* train's own script is external. */
	const cJSON *script = input_named(tr, "./bin/train.sh");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(script, "produced_by")));
	const cJSON *again = cJSON_GetObjectItem(input_named(tr, "work:/data/train.csv"),
						 "produced_by");
	/* train read another version (@2) than evaluate (@9): prepare is
	 * shown again, for that version, whose producer no record names. */
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(again, "repeated")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(again, "run")));
	const cJSON *prep = cJSON_GetObjectItem(csv, "produced_by");
	const cJSON *ext = input_named(prep, "./bin/prep.sh");
	assert_non_null(ext);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(ext, "produced_by")));
	cJSON_Delete(tree);
	cJSON_Delete(runs);
	cJSON_Delete(lock);
}

static void a_directory_input_lists_the_outputs_inside_it(void **state)
{
	(void)state;
	cJSON *lock = parse(lock_text);
	cJSON *tree = NULL;
	struct cp_error err = {0};
	/* By digest prefix this time. */
	assert_int_equal(lineage_build(&tree, lock, "abcdef01234567891", NULL, &err), 0);
	assert_string_equal(stage_of(tree), "publish");
	const cJSON *dir = input_named(cJSON_GetObjectItem(tree, "produced_by"), "work:/data");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(dir, "produced_by")));
	const cJSON *parts = cJSON_GetObjectItem(dir, "parts");
	assert_int_equal(cJSON_GetArraySize(parts), 1);
	assert_string_equal(stage_of(parts->child), "prepare");
	cJSON_Delete(tree);
	cJSON_Delete(lock);
}

static void loops_in_the_lock_end_the_walk(void **state)
{
	(void)state;
	cJSON *lock = parse("{\"stages\": {"
			    " \"a\": {\"inputs\": {\"v:/b\": {\"digest\": \"@2\"}},"
			    "        \"outputs\": {\"v:/a\": {\"digest\": \"@1\"}}},"
			    " \"b\": {\"inputs\": {\"v:/a\": {\"digest\": \"@1\"}},"
			    "        \"outputs\": {\"v:/b\": {\"digest\": \"@2\"}}}}}");
	cJSON *tree = NULL;
	struct cp_error err = {0};
	assert_int_equal(lineage_build(&tree, lock, "v:/a", NULL, &err), 0);
	const cJSON *a = cJSON_GetObjectItem(tree, "produced_by");
	const cJSON *b = cJSON_GetObjectItem(input_named(a, "v:/b"), "produced_by");
	const cJSON *a2 = cJSON_GetObjectItem(input_named(b, "v:/a"), "produced_by");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a2, "cycle")));
	cJSON_Delete(tree);
	cJSON_Delete(lock);
}

static void an_unknown_artifact_names_the_nearest(void **state)
{
	(void)state;
	cJSON *lock = parse(lock_text);
	cJSON *tree = NULL;
	struct cp_error err = {0};
	assert_int_equal(lineage_build(&tree, lock, "work:/metric.json", NULL, &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_non_null(strstr(err.msg, "\"work:/metric.json\""));
	assert_non_null(strstr(err.msg, "nearest: \"work:/metrics.json\""));
	cp_error_clear(&err);
	assert_int_equal(lineage_build(&tree, lock, "zzzzzzzzzzzzzzzzzzzzzz:/q", NULL, &err), -1);
	assert_non_null(strstr(err.msg, "known artifacts: ./bin/prep.sh"));
	assert_null(tree);
	cJSON_Delete(lock);
}

/* A run: prepare reused, train ran, evaluate failed, deploy never ran. */
static const char record_text[] =
	"{\"id\": \"20261129T110102316Z-ccb8\", \"cpipe_version\": \"0.1.0\", \"user\": \"ann\","
	" \"host\": \"vm\", \"git\": {\"commit\": \"b7ce8aa0\", \"dirty\": true},"
	" \"stages\": ["
	"  {\"name\": \"prepare\", \"status\": \"skipped\", \"key\": \"@a\","
	"   \"reused_from\": \"20261128T000000000Z-0000\","
	"   \"started\": \"2026-11-29T11:01:02.328Z\", \"ended\": \"2026-11-29T11:01:02.329Z\","
	"   \"inputs\": {\"./bin/prep.sh\": {\"digest\": \"@1\", \"size\": 10}},"
	"   \"outputs\": {\"work:/data/train.csv\": {\"digest\": \"@2\", \"size\": 3600}},"
	"   \"metrics\": {}},"
	"  {\"name\": \"train\", \"status\": \"ran\", \"key\": \"@b\", \"exit_code\": 0,"
	"   \"started\": \"2026-11-29T11:01:02.384Z\", \"ended\": \"2026-11-29T11:01:02.447Z\","
	"   \"inputs\": {\"work:/data/train.csv\": {\"digest\": \"@2\", \"size\": 3600},"
	"              \"work:/copy.csv\": {\"digest\": \"@2\", \"size\": 3600},"
	"              \"./gone\": {\"missing\": true}},"
	"   \"outputs\": {\"work:/model.txt\": {\"digest\": \"@4\", \"size\": 18}},"
	"   \"metrics\": {\"work:/m.json\": {\"digest\": \"@6\", \"size\": 9,"
	"      \"values\": {\"acc\": 0.5, \"hist\": [1, 2], \"tag\": \"x\"}}}},"
	"  {\"name\": \"9-evaluate\", \"status\": \"failed\", \"exit_code\": 3, \"key\": \"@c\","
	"   \"started\": \"2026-11-29T11:01:02.458Z\", \"ended\": \"2026-11-29T11:01:02.507Z\","
	"   \"inputs\": {\"work:/model.txt\": {\"digest\": \"@4\", \"size\": 18}},"
	"   \"outputs\": {}, \"metrics\": {}},"
	"  {\"name\": \"deploy\", \"status\": \"not-run\"}"
	"]}";

static bool valid_qname(const cJSON *prefix, const char *q)
{
	const char *colon = strchr(q, ':');
	if (!colon)
		return false;
	char pre[64];
	snprintf(pre, sizeof(pre), "%.*s", (int)(colon - q), q);
	if (strcmp(pre, "prov") != 0 && !cJSON_GetObjectItem(prefix, pre))
		return false;
	const char *local = colon + 1;
	if (!isalpha((unsigned char)*local) && *local != '_')
		return false;
	for (const char *c = local; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("._-", *c))
			return false;
	return true;
}

static void check_refs(const cJSON *doc, const char *relation, const char *key,
		       const char *section)
{
	const cJSON *rel = cJSON_GetObjectItem(doc, relation);
	assert_non_null(rel);
	for (const cJSON *r = rel->child; r; r = r->next) {
		const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(r, key));
		assert_non_null(ref);
		assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, section), ref));
	}
}

static void prov_declares_what_it_references_with_valid_qnames(void **state)
{
	(void)state;
	cJSON *rec = parse(record_text);
	cJSON *doc = lineage_prov(rec);
	const cJSON *prefix = cJSON_GetObjectItem(doc, "prefix");
	static const char *const sections[] = {"entity", "activity", "agent"};
	for (size_t i = 0; i < ARRAY_LEN(sections); i++)
		for (const cJSON *e = cJSON_GetObjectItem(doc, sections[i])->child; e; e = e->next)
			assert_true(valid_qname(prefix, e->string));
	check_refs(doc, "used", "prov:activity", "activity");
	check_refs(doc, "used", "prov:entity", "entity");
	check_refs(doc, "wasGeneratedBy", "prov:activity", "activity");
	check_refs(doc, "wasGeneratedBy", "prov:entity", "entity");
	check_refs(doc, "wasAssociatedWith", "prov:activity", "activity");
	check_refs(doc, "wasAssociatedWith", "prov:agent", "agent");
	check_refs(doc, "wasDerivedFrom", "prov:generatedEntity", "entity");
	check_refs(doc, "wasDerivedFrom", "prov:usedEntity", "entity");
	check_refs(doc, "actedOnBehalfOf", "prov:delegate", "agent");
	check_refs(doc, "actedOnBehalfOf", "prov:responsible", "agent");

	/* Entities: one per digest; the missing input is not one. */
	const cJSON *ents = cJSON_GetObjectItem(doc, "entity");
	assert_int_equal(cJSON_GetArraySize(ents), 4);
	char id[80] = "art:sha256-";
	memset(id + 11, '2', 64);
	const cJSON *csv = cJSON_GetObjectItem(ents, id);
	assert_non_null(csv);
	assert_int_equal(cJSON_GetObjectItem(csv, "cpipe:size")->valueint, 3600);
	/* The same content under two names carries both labels. */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(csv, "prov:label")), 2);

	/* Activities: not-run stages are absent; skipped ones say so. */
	const cJSON *acts = cJSON_GetObjectItem(doc, "activity");
	assert_int_equal(cJSON_GetArraySize(acts), 3);
	const cJSON *prep = cJSON_GetObjectItem(acts, "run:prepare");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(prep, "cpipe:status")),
			    "skipped");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(prep, "cpipe:reusedFrom")),
			    "20261128T000000000Z-0000");
	const cJSON *train = cJSON_GetObjectItem(acts, "run:train");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(train, "prov:startTime")),
			    "2026-11-29T11:01:02.384Z");
	assert_non_null(cJSON_GetObjectItem(acts, "run:_9-evaluate"));
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(prefix, "run")),
			    "urn:cpipe:run:20261129T110102316Z-ccb8:");

	/* Agents: cpipe as software, the user as a person. */
	const cJSON *agents = cJSON_GetObjectItem(doc, "agent");
	const cJSON *sw = cJSON_GetObjectItem(agents, "cpipe:cpipe-0.1.0");
	const cJSON *user = cJSON_GetObjectItem(agents, "cpipe:user-ann");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				    cJSON_GetObjectItem(sw, "prov:type"), "$")),
			    "prov:SoftwareAgent");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				    cJSON_GetObjectItem(user, "prov:type"), "$")),
			    "prov:Person");
	/* train used two names of one entity (2 relations) and skipped
	 * prepare one; evaluate used the model. */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "used")), 4);
	/* Outputs: train.csv (prepare), model and metrics (train). */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "wasGeneratedBy")), 3);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "wasAssociatedWith")), 6);
	cJSON_Delete(doc);
	cJSON_Delete(rec);
}

static void records_answer_which_run_ran_a_key_and_how_many_ran(void **state)
{
	(void)state;
	cJSON *rec = parse(record_text);
	char key[80] = "sha256:";
	memset(key + 7, 'b', 64);
	key[71] = '\0';
	assert_true(lineage_record_ran(rec, "train", key));
	memset(key + 7, 'a', 64);
	assert_false(lineage_record_ran(rec, "prepare", key)); /* skipped, not ran */
	cJSON *c = lineage_stage_counts(rec);
	assert_int_equal(cJSON_GetObjectItem(c, "ran")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItem(c, "skipped")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItem(c, "failed")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItem(c, "not_run")->valueint, 1);
	cJSON_Delete(c);
	cJSON_Delete(rec);
	assert_int_equal(lineage_time_ms("1970-01-01T00:00:01.250Z"), 1250);
	assert_int_equal(lineage_time_ms("2026-11-29T11:01:02.447Z") -
				 lineage_time_ms("2026-11-29T11:01:02.384Z"),
			 63);
	assert_int_equal(lineage_time_ms("yesterday"), -1);
}

static const cJSON *row(const cJSON *rows, const char *metric)
{
	for (const cJSON *r = rows->child; r; r = r->next)
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "metric")), metric) == 0)
			return r;
	return NULL;
}

static void metrics_flatten_and_compare(void **state)
{
	(void)state;
	cJSON *rec = parse(record_text);
	cJSON *cur = lineage_metrics_record(rec);
	assert_int_equal(cJSON_GetArraySize(cur), 4); /* acc, hist.0, hist.1, tag */
	assert_non_null(row(cur, "hist.1"));
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(row(cur, "acc"), "stage")),
			    "train");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(row(cur, "acc"), "file")),
			    "work:/m.json");

	cJSON *lock = parse(lock_text);
	cJSON *old = lineage_metrics_lock(lock);
	assert_int_equal(cJSON_GetArraySize(old), 3); /* acc, loss.train, loss.val */
	assert_non_null(row(old, "loss.val"));
	cJSON_Delete(old);
	cJSON_Delete(lock);

	/* Same stage and file: numbers get a delta without binary noise. */
	old = parse("[{\"stage\": \"train\", \"file\": \"work:/m.json\", \"metric\": \"acc\","
		    "  \"value\": 0.4213},"
		    " {\"stage\": \"train\", \"file\": \"work:/m.json\", \"metric\": \"tag\","
		    "  \"value\": \"y\"},"
		    " {\"stage\": \"train\", \"file\": \"work:/m.json\", \"metric\": \"gone\","
		    "  \"value\": 1}]");
	cJSON *diff = lineage_metrics_diff(old, cur);
	assert_int_equal(cJSON_GetArraySize(diff), 5);
	const cJSON *acc = row(diff, "acc");
	assert_true(cJSON_GetObjectItem(acc, "delta")->valuedouble == 0.0787);
	assert_null(cJSON_GetObjectItem(row(diff, "tag"), "delta"));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(row(diff, "hist.0"), "old")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(row(diff, "gone"), "new")));
	cJSON_Delete(diff);
	cJSON_Delete(old);
	cJSON_Delete(cur);
	cJSON_Delete(rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_are_normalized_to_the_lock_spelling),
		cmocka_unit_test(within_means_the_path_or_below_it),
		cmocka_unit_test(an_output_name_finds_its_stage),
		cmocka_unit_test(a_digest_or_a_long_enough_prefix_finds_its_artifact),
		cmocka_unit_test(the_tree_reaches_the_external_inputs),
		cmocka_unit_test(a_directory_input_lists_the_outputs_inside_it),
		cmocka_unit_test(loops_in_the_lock_end_the_walk),
		cmocka_unit_test(an_unknown_artifact_names_the_nearest),
		cmocka_unit_test(prov_declares_what_it_references_with_valid_qnames),
		cmocka_unit_test(records_answer_which_run_ran_a_key_and_how_many_ran),
		cmocka_unit_test(metrics_flatten_and_compare),
	};
	return cmocka_run_group_tests_name("lineage", tests, NULL, NULL);
}
