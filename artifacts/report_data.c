/* What `cpipe report` shows beyond the run record: metrics of the runs
 * before it, each output's lineage within the run, the logs' last lines and
 * the images among the outputs, read back from the store. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "cas.h"
#include "lineage.h"
#include "report.h"
#include "store.h"

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

/* Metrics rows of up to REPORT_HISTORY runs ending with `rec`. */
static void fill_history(cJSON *model, const char *state_dir, const cJSON *rec)
{
	cJSON *history = cJSON_AddArrayToObject(model, "history");
	struct strvec ids = {0};
	struct cp_error err = {0};
	if (record_ids(&ids, state_dir, &err) < 0) {
		cp_error_clear(&err);
		ids.n = 0;
	}
	const char *id = str_of(rec, "id");
	size_t end = 0;
	while (end < ids.n && strcmp(ids.v[end], id) != 0)
		end++;
	size_t start = end > REPORT_HISTORY - 1 ? end - (REPORT_HISTORY - 1) : 0;
	for (size_t i = start; i < end && i < ids.n; i++) {
		cJSON *old = NULL;
		if (record_load(&old, state_dir, ids.v[i], &err) < 0) {
			cp_error_clear(&err);
			continue;
		}
		cJSON *h = cJSON_CreateObject();
		cJSON_AddStringToObject(h, "id", ids.v[i]);
		cJSON_AddItemToObject(h, "rows", lineage_metrics_record(old));
		cJSON_AddItemToArray(history, h);
		cJSON_Delete(old);
	}
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "id", id);
	cJSON_AddItemToObject(h, "rows", lineage_metrics_record(rec));
	cJSON_AddItemToArray(history, h);
	strvec_free(&ids);
}

/* The chain behind every output and metrics file, as this run made it:
 * the record's stages read as a lock. */
static void fill_lineage(cJSON *model, const cJSON *rec)
{
	cJSON *lock = cJSON_CreateObject(), *runs = cJSON_CreateObject();
	cJSON *stages = cJSON_AddObjectToObject(lock, "stages");
	const cJSON *list = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = list ? list->child : NULL; st; st = st->next) {
		const char *name = str_of(st, "name");
		if (!name || cJSON_GetObjectItem(stages, name))
			continue;
		cJSON *e = cJSON_AddObjectToObject(stages, name);
		static const char *const parts[] = {"key", "inputs", "outputs", "metrics"};
		for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
			const cJSON *part = cJSON_GetObjectItem(st, parts[i]);
			if (part)
				cJSON_AddItemToObject(e, parts[i], cJSON_Duplicate(part, true));
		}
		const char *from = str_of(st, "reused_from") ? str_of(st, "reused_from")
							      : str_of(st, "restored_from");
		cJSON *r = cJSON_AddObjectToObject(runs, name);
		cJSON_AddStringToObject(r, "run", from ? from : str_of(rec, "id"));
		const cJSON *git = cJSON_GetObjectItem(rec, "git");
		cJSON_AddItemToObject(r, "git", git ? cJSON_Duplicate(git, true) : cJSON_CreateNull());
	}
	cJSON *out = cJSON_AddObjectToObject(model, "lineage");
	for (const cJSON *st = stages->child; st; st = st->next)
		for (int kind = 0; kind < 2; kind++) {
			const cJSON *part = cJSON_GetObjectItem(st, kind ? "metrics" : "outputs");
			for (const cJSON *a = part ? part->child : NULL; a; a = a->next) {
				cJSON *tree = NULL;
				struct cp_error err = {0};
				if (lineage_build(&tree, lock, a->string, runs, &err) == 0)
					cJSON_AddItemToObject(out, a->string, tree);
				cp_error_clear(&err);
			}
		}
	cJSON_Delete(lock);
	cJSON_Delete(runs);
}

/* The last REPORT_LOG_LINES lines of `path` (its last 64 KiB at most),
 * masked. NULL when it cannot be read. */
static char *log_tail(const char *path, const struct redactor *r)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		return NULL;
	off_t from = sb.st_size > (64 << 10) ? sb.st_size - (64 << 10) : 0;
	size_t len = (size_t)(sb.st_size - from);
	cleanup_free char *buf = xmalloc(len + 1);
	ssize_t got = pread(fd, buf, len, from);
	if (got < 0)
		return NULL;
	buf[got] = '\0';
	size_t lines = 0;
	char *p = buf + got;
	if (p > buf && p[-1] == '\n')
		p--;
	while (p > buf && lines < REPORT_LOG_LINES)
		if (*--p == '\n' && ++lines == REPORT_LOG_LINES)
			p++;
	return redactor_text(r, p);
}

static void fill_logs(cJSON *model, const cJSON *rec, const struct redactor *r)
{
	cJSON *logs = cJSON_AddObjectToObject(model, "logs");
	const cJSON *list = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = list ? list->child : NULL; st; st = st->next) {
		const char *name = str_of(st, "name"), *path = str_of(st, "log");
		char *text = name && path ? log_tail(path, r) : NULL;
		if (text && !cJSON_GetObjectItem(logs, name))
			cJSON_AddStringToObject(logs, name, text);
		free(text);
	}
}

static const char *image_type(const char *name)
{
	static const char *const types[][2] = {
		{".gif", "image/gif"}, {".png", "image/png"},   {".jpg", "image/jpeg"},
		{".jpeg", "image/jpeg"}, {".webp", "image/webp"},
	};
	size_t n = strlen(name);
	for (size_t i = 0; i < ARRAY_LEN(types); i++) {
		size_t k = strlen(types[i][0]);
		if (n > k && strcasecmp(name + n - k, types[i][0]) == 0)
			return types[i][1];
	}
	return NULL;
}

/* The bytes of object `digest`, at most `max`. Caller owns; NULL when the
 * store does not hold it. */
static char *object_read(size_t *len, const struct cas *c, const char *digest, size_t max)
{
	if (!digest_is_valid(digest))
		return NULL;
	cleanup_free char *path = cas_object_path(c, digest);
	char *data = NULL;
	struct cp_error err = {0};
	if (fs_read_file(&data, len, path, max, &err) < 0) {
		cp_error_clear(&err);
		return NULL;
	}
	return data;
}

static void add_image(cJSON *images, const struct cas *c, const char *stage, const char *artifact,
		      const char *file, const char *digest, const cJSON *labels)
{
	const char *type = image_type(file);
	size_t len = 0;
	cleanup_free char *data = NULL;
	if (!type || cJSON_GetArraySize(images) >= REPORT_IMAGES ||
	    !(data = object_read(&len, c, digest, REPORT_IMAGE_MAX)) || len == 0)
		return;
	size_t plen = strlen("data:;base64,") + strlen(type);
	char *uri = xmalloc(plen + 4 * ((len + 2) / 3) + 1);
	sprintf(uri, "data:%s;base64,", type);
	EVP_EncodeBlock((unsigned char *)uri + plen, (const unsigned char *)data, (int)len);
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "stage", stage);
	cJSON_AddStringToObject(e, "artifact", artifact);
	cJSON_AddStringToObject(e, "file", file);
	cJSON_AddItemToObject(e, "uri", cJSON_CreateString(uri));
	free(uri);
	/* A predictions.json beside the images (catgif infer's) labels them. */
	const cJSON *preds = cJSON_GetObjectItem(labels, "predictions");
	const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
	for (const cJSON *p = preds ? preds->child : NULL; p; p = p->next) {
		if (!str_of(p, "file") || strcmp(str_of(p, "file"), base) != 0)
			continue;
		static const char *const keys[] = {"class", "true_class", "probability", "correct"};
		for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
			const cJSON *v = cJSON_GetObjectItem(p, keys[i]);
			if (v)
				cJSON_AddItemToObject(e, keys[i], cJSON_Duplicate(v, false));
		}
	}
	cJSON_AddItemToArray(images, e);
}

/* The files of directory object `digest`: its canonical listing (digest.h),
 * as {relpath: {"type", "digest"}}. NULL when the store lacks it. */
static cJSON *listing_read(const struct cas *c, const char *digest)
{
	size_t len = 0;
	cleanup_free char *text = object_read(&len, c, digest, 64 << 20);
	if (!text)
		return NULL;
	cJSON *out = cJSON_CreateObject();
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *f[5];
		f[0] = p;
		for (int i = 1; i < 5 && p; i++) {
			p = memchr(p, '\0', (size_t)(end - p));
			f[i] = p ? ++p : NULL;
		}
		const char *lf = p ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		if (!lf)
			break;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddItemToObject(e, "type", cJSON_CreateString((char[]){*f[1], 0}));
		cleanup_free char *dig = xasprintf("%.*s", (int)(lf - f[4]), f[4]);
		cJSON_AddStringToObject(e, "digest", dig);
		cJSON_AddItemToObject(out, f[0], e);
		p = lf + 1;
	}
	return out;
}

static void fill_images(cJSON *model, const char *state_dir, const cJSON *rec)
{
	cJSON *images = cJSON_AddArrayToObject(model, "images");
	struct cas *c = NULL;
	struct cp_error err = {0};
	if (cas_open(&c, state_dir, &err) < 0) {
		cp_error_clear(&err);
		return;
	}
	const cJSON *list = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = list ? list->child : NULL; st; st = st->next) {
		const cJSON *outs = cJSON_GetObjectItem(st, "outputs");
		for (const cJSON *o = outs ? outs->child : NULL; o; o = o->next) {
			const char *digest = str_of(o, "digest");
			if (!cJSON_GetObjectItem(o, "files")) {
				add_image(images, c, str_of(st, "name"), o->string, o->string, digest,
					  NULL);
				continue;
			}
			cJSON *files = listing_read(c, digest);
			cJSON *labels = NULL;
			const cJSON *pj = cJSON_GetObjectItem(files, "predictions.json");
			size_t len = 0;
			char *text = pj ? object_read(&len, c, str_of(pj, "digest"), 16 << 20) : NULL;
			if (text)
				labels = cJSON_ParseWithLength(text, len);
			free(text);
			for (const cJSON *f = files ? files->child : NULL; f; f = f->next)
				if (strcmp(str_of(f, "type"), "f") == 0)
					add_image(images, c, str_of(st, "name"), o->string, f->string,
						  str_of(f, "digest"), labels);
			cJSON_Delete(labels);
			cJSON_Delete(files);
		}
	}
	cas_close(c);
}

void report_data_fill(cJSON *model, const char *state_dir, const struct redactor *r)
{
	const cJSON *rec = cJSON_GetObjectItem(model, "run");
	fill_history(model, state_dir, rec);
	fill_lineage(model, rec);
	fill_logs(model, rec, r);
	fill_images(model, state_dir, rec);
}
