/* cpipe lineage VOLUME:PATH|DIGEST: the chain of stages and artifacts that
 * produced an artifact, each stage named with the run that produced the
 * very digest shown (artifacts/lineage.h over cpipe.lock and the records). */
#include <stdlib.h>
#include <string.h>

#include "../artifacts/lineage.h"
#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "history.h"
#include "opts.h"

/* Who produced what, from every run record, oldest first. */
static cJSON *producers_load(const char *state)
{
	cJSON *producers = cJSON_CreateObject();
	struct strvec ids = {0};
	struct cp_error err = {0};
	if (record_ids(&ids, state, &err) < 0) {
		cp_error_clear(&err);
		return producers;
	}
	for (size_t i = 0; i < ids.n; i++) {
		cJSON *rec = NULL;
		if (record_load(&rec, state, ids.v[i], &err) < 0) {
			cp_error_clear(&err);
			continue;
		}
		lineage_producers_add(producers, rec);
		cJSON_Delete(rec);
	}
	strvec_free(&ids);
	return producers;
}

static void tree_line(const struct strbuf *indent, bool root, bool last)
{
	printf("%s%s", indent->buf ? indent->buf : "", root ? "" : last ? "└─ " : "├─ ");
}

static void print_stage(const cJSON *n)
{
	printf("stage %s", hist_str(n, "stage"));
	if (cJSON_IsTrue(cJSON_GetObjectItem(n, "repeated"))) {
		printf("  (shown above)");
	} else if (cJSON_IsTrue(cJSON_GetObjectItem(n, "cycle"))) {
		printf("  (cycle)");
	} else {
		cleanup_free char *commit = hist_commit_text(cJSON_GetObjectItem(n, "git"));
		printf("  run %s  commit %s", hist_str(n, "run") ? hist_str(n, "run") : "unknown",
		       commit);
		int again = cJSON_GetArraySize(cJSON_GetObjectItem(n, "reproduced_by"));
		if (again > 0)
			printf("  (reproduced by %d later run%s)", again, again == 1 ? "" : "s");
	}
	putchar('\n');
}

static void tree_node(const cJSON *n, struct strbuf *indent, bool root, bool last)
{
	tree_line(indent, root, last);
	const cJSON *kids = NULL;
	const cJSON *producer = cJSON_GetObjectItem(n, "produced_by");
	cJSON *list = cJSON_CreateArray();
	if (hist_str(n, "artifact")) {
		char d[16], sz[32];
		hist_short_digest(d, hist_str(n, "digest"));
		hist_human_size(sz, cJSON_GetObjectItem(n, "size"));
		printf("%s  %s  %s", hist_str(n, "artifact"), d, sz);
		if (hist_str(n, "within"))
			printf("  (inside %s)", hist_str(n, "within"));
		if (cJSON_IsTrue(cJSON_GetObjectItem(n, "stale")))
			printf("  (changed since: its producer made another version)");
		if (!cJSON_IsObject(producer) && !cJSON_GetObjectItem(n, "parts"))
			printf("  external");
		putchar('\n');
		if (cJSON_IsObject(producer))
			cJSON_AddItemReferenceToArray(list, (cJSON *)producer);
		kids = cJSON_GetObjectItem(n, "parts");
	} else {
		print_stage(n);
		kids = cJSON_GetObjectItem(n, "inputs");
	}
	for (const cJSON *k = kids ? kids->child : NULL; k; k = k->next)
		cJSON_AddItemReferenceToArray(list, (cJSON *)k);
	size_t keep = indent->len;
	if (!root)
		sb_adds(indent, last ? "   " : "│  ");
	for (const cJSON *k = list->child; k; k = k->next)
		tree_node(k, indent, false, k->next == NULL);
	indent->len = keep;
	if (indent->buf)
		indent->buf[keep] = '\0';
	cJSON_Delete(list);
}

int cmd_lineage(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	int prc = cli_parse_common(c, argc, argv);
	if (prc >= 0)
		return prc;
	if (argc - optind != 1)
		return cli_usage_error(argv[0]);
	cleanup_free char *dir = NULL, *state = NULL;
	cleanup_json cJSON *lock = NULL, *producers = NULL, *tree = NULL;
	if (hist_open_project(&dir, &state, c, &err) < 0)
		return cli_fail(&err);
	cleanup_free char *lock_path = path_join(dir, "cpipe.lock");
	if (lock_load(&lock, lock_path, &err) < 0)
		return cli_fail(&err);
	/* An absolute path inside the project is named as the lock names it. */
	const char *query = argv[optind];
	cleanup_free char *rel = NULL;
	size_t n = strlen(dir);
	if (query[0] == '/' && strncmp(query, dir, n) == 0 && query[n] == '/')
		query = rel = xasprintf(".%s", query + n);
	producers = producers_load(state);
	if (lineage_build(&tree, lock, query, producers, &err) < 0)
		return cli_fail(&err);
	if (c->json) {
		cli_print_json(tree);
	} else {
		struct strbuf indent = STRBUF_INIT;
		tree_node(tree, &indent, true, true);
		sb_free(&indent);
	}
	return EXIT_OK;
}
