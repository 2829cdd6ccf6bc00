#include "store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/fs.h"

static int cmp_items(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(x->string, y->string);
}

void json_sort_keys(cJSON *node)
{
	if (!node)
		return;
	for (cJSON *c = node->child; c; c = c->next)
		json_sort_keys(c);
	if (!cJSON_IsObject(node) || !node->child)
		return;
	size_t n = 0;
	for (cJSON *c = node->child; c; c = c->next)
		n++;
	cJSON **items = xmalloc(n * sizeof(*items));
	size_t i = 0;
	for (cJSON *c = node->child; c; c = c->next)
		items[i++] = c;
	qsort(items, n, sizeof(*items), cmp_items);
	/* Relink in order; cJSON keeps child->prev pointing at the last item. */
	for (i = 0; i < n; i++) {
		items[i]->next = i + 1 < n ? items[i + 1] : NULL;
		items[i]->prev = i > 0 ? items[i - 1] : items[n - 1];
	}
	node->child = items[0];
	free(items);
}

char *json_canonical(cJSON *node)
{
	json_sort_keys(node);
	return cJSON_PrintUnformatted(node);
}

static bool is_scalar_array(const cJSON *n)
{
	for (const cJSON *c = n->child; c; c = c->next)
		if (cJSON_IsObject(c) || cJSON_IsArray(c))
			return false;
	return true;
}

/* Two-space indented JSON, arrays of scalars on one line: the form that
 * reads and diffs well in a lock file. */
static void pretty(struct strbuf *sb, const cJSON *n, int depth)
{
	if (cJSON_IsObject(n) || (cJSON_IsArray(n) && !is_scalar_array(n))) {
		bool obj = cJSON_IsObject(n);
		if (!n->child) {
			sb_adds(sb, obj ? "{}" : "[]");
			return;
		}
		sb_adds(sb, obj ? "{\n" : "[\n");
		for (const cJSON *c = n->child; c; c = c->next) {
			sb_addf(sb, "%*s", 2 * (depth + 1), "");
			if (obj) {
				cJSON *key = cJSON_CreateString(c->string);
				char *k = cJSON_PrintUnformatted(key);
				sb_addf(sb, "%s: ", k);
				free(k);
				cJSON_Delete(key);
			}
			pretty(sb, c, depth + 1);
			sb_adds(sb, c->next ? ",\n" : "\n");
		}
		sb_addf(sb, "%*s%s", 2 * depth, "", obj ? "}" : "]");
		return;
	}
	if (cJSON_IsArray(n)) {
		sb_addc(sb, '[');
		for (const cJSON *c = n->child; c; c = c->next) {
			char *t = cJSON_PrintUnformatted(c);
			sb_addf(sb, "%s%s", t, c->next ? ", " : "");
			free(t);
		}
		sb_addc(sb, ']');
		return;
	}
	char *t = cJSON_PrintUnformatted(n);
	sb_adds(sb, t);
	free(t);
}

char *json_pretty(cJSON *doc)
{
	json_sort_keys(doc);
	struct strbuf sb = STRBUF_INIT;
	pretty(&sb, doc, 0);
	sb_addc(&sb, '\n');
	return sb_detach(&sb);
}

int json_write_atomic(const char *path, cJSON *doc, struct cp_error *err)
{
	cleanup_free char *text = json_pretty(doc);
	return fs_write_atomic(path, text, strlen(text), 0600, err);
}

int json_write_atomic_fast(const char *path, cJSON *doc, struct cp_error *err)
{
	cleanup_free char *text = json_pretty(doc);
	return fs_write_atomic_fast(path, text, strlen(text), 0600, err);
}

int json_parse_text(cJSON **out, const char *text, size_t len, const char *path,
		    struct cp_error *err)
{
	const char *end = NULL;
	cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!doc)
		return cp_error_set(err, EXIT_USAGE, "%s: not valid JSON (near byte %ld)", path,
				    end ? (long)(end - text) : 0L);
	*out = doc;
	return 0;
}

int json_read_file(cJSON **out, const char *path, size_t max, struct cp_error *err)
{
	cleanup_free char *text = NULL;
	size_t len;
	if (fs_read_file(&text, &len, path, max, err) < 0)
		return -1;
	return json_parse_text(out, text, len, path, err);
}

int json_read_file_in(cJSON **out, const char *root, const char *path, size_t max,
		      struct cp_error *err)
{
	if (!root)
		return json_read_file(out, path, max, err);
	cleanup_free char *text = NULL;
	cleanup_free char *shown = xasprintf("%s%s", root, path);
	size_t len;
	if (fs_read_file_beneath(&text, &len, root, path, max, err) < 0)
		return -1;
	return json_parse_text(out, text, len, shown, err);
}

long long realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *iso_time(long long ms)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char buf[32];
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	return xasprintf("%s.%03lldZ", buf, ms % 1000);
}

static char *runs_dir(const char *state_dir)
{
	return path_join(state_dir, "runs");
}

static bool valid_id(const char *id)
{
	if (!*id || strlen(id) > 64)
		return false;
	for (const char *c = id; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
			return false;
	return true;
}

int record_save(const char *state_dir, cJSON *rec, bool durable, struct cp_error *err)
{
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "id"));
	if (!id || !valid_id(id))
		return cp_error_set(err, EXIT_USAGE, "run record without a valid id");
	cleanup_free char *dir = runs_dir(state_dir);
	if (fs_mkdir_p(dir, 0700, err) < 0)
		return -1;
	cleanup_free char *path = xasprintf("%s/%s.json", dir, id);
	return durable ? json_write_atomic(path, rec, err) : json_write_atomic_fast(path, rec, err);
}

int record_ids(struct strvec *out, const char *state_dir, struct cp_error *err)
{
	cleanup_free char *dir = runs_dir(state_dir);
	return fs_list_names(out, dir, ".json", err);
}

int record_load(cJSON **out, const char *state_dir, const char *id, struct cp_error *err)
{
	if (!valid_id(id))
		return cp_error_set(err, EXIT_USAGE, "invalid run id \"%s\"", id);
	cleanup_free char *path = xasprintf("%s/runs/%s.json", state_dir, id);
	return json_read_file(out, path, 64 << 20, err);
}

int record_resolve(char **out, const char *state_dir, const char *arg, struct cp_error *err)
{
	struct strvec ids = {0};
	if (record_ids(&ids, state_dir, err) < 0)
		return -1;
	int rc = -1;
	if (ids.n == 0) {
		cp_error_set(err, EXIT_USAGE, "no runs recorded yet in %s/runs", state_dir);
		goto out;
	}
	if (str_has_prefix(arg, "latest")) {
		long back = 0;
		if (arg[6] == '~') {
			char *end;
			back = strtol(arg + 7, &end, 10);
			if (*end || back < 0)
				back = -1;
		} else if (arg[6]) {
			back = -1;
		}
		if (back < 0 || (size_t)back >= ids.n) {
			cp_error_set(err, EXIT_USAGE, "no run \"%s\" (%zu runs recorded)", arg,
				     ids.n);
			goto out;
		}
		*out = xstrdup(ids.v[ids.n - 1 - (size_t)back]);
		rc = 0;
		goto out;
	}
	const char *match = NULL;
	size_t matches = 0;
	for (size_t i = 0; i < ids.n; i++) {
		if (strcmp(ids.v[i], arg) == 0) {
			match = ids.v[i];
			matches = 1;
			break;
		}
		if (str_has_prefix(ids.v[i], arg)) {
			match = ids.v[i];
			matches++;
		}
	}
	if (matches == 1) {
		*out = xstrdup(match);
		rc = 0;
	} else if (matches > 1) {
		cp_error_set(err, EXIT_USAGE, "run \"%s\" is ambiguous: %zu runs start with it",
			     arg, matches);
	} else {
		cp_error_set(err, EXIT_USAGE, "no run \"%s\"; see cpipe runs", arg);
	}
out:
	strvec_free(&ids);
	return rc;
}

int lock_load(cJSON **out, const char *path, struct cp_error *err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno != ENOENT)
			return cp_error_errno(err, EXIT_USAGE, "opening %s", path);
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddNumberToObject(doc, "version", LOCK_VERSION);
		cJSON_AddObjectToObject(doc, "stages");
		*out = doc;
		return 0;
	}
	fclose(f);
	cJSON *doc = NULL;
	if (json_read_file(&doc, path, 256 << 20, err) < 0)
		return -1;
	cJSON *stages = cJSON_GetObjectItem(doc, "stages");
	if (!cJSON_IsObject(doc) || !cJSON_IsObject(stages)) {
		cJSON_Delete(doc);
		return cp_error_set(err, EXIT_USAGE,
				    "%s: not a cpipe lock file (no \"stages\" object); "
				    "delete it and run again",
				    path);
	}
	*out = doc;
	return 0;
}

int lock_save(const char *path, cJSON *doc, bool durable, struct cp_error *err)
{
	/* Committed and shared: readable by all, and it holds no secret. */
	cleanup_free char *text = json_pretty(doc);
	return durable ? fs_write_atomic(path, text, strlen(text), 0644, err)
		       : fs_write_atomic_data(path, text, strlen(text), 0644, err);
}
