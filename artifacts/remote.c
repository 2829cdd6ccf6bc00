/* What moves between the store and a remote: push uploads run cache
 * entries and the objects they name (what the remote lacks), fetch
 * downloads them, verifying every object against its name before it is
 * renamed into the store. The backends (remote_dir.c, remote_http.c) only
 * move named blobs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "remote_internal.h"
#include "store.h"

#define DEFAULT_JOBS 8
#define MAX_ENTRY (64u << 20)

const char *remote_choose(const char *flag, const char *spec)
{
	const char *env = getenv("CPIPE_REMOTE");
	if (flag && *flag)
		return flag;
	if (env && *env)
		return env;
	return spec && *spec ? spec : NULL;
}

int remote_open(struct remote **out, const char *url, const char *base_dir,
		struct cp_error *err)
{
	struct remote *r = xcalloc(1, sizeof(*r));
	const char *jobs = getenv("CPIPE_REMOTE_JOBS");
	r->jobs = jobs && atoi(jobs) > 0 && atoi(jobs) <= 256 ? atoi(jobs) : DEFAULT_JOBS;
	int rc = 0;
	if (str_has_prefix(url, "http://") || str_has_prefix(url, "https://")) {
		rc = remote_http_open(r, url, err);
	} else if (str_has_prefix(url, "s3://")) {
		rc = remote_s3_open(r, url, err);
	} else if (strstr(url, "://") && !str_has_prefix(url, "file://")) {
		rc = cp_error_set(err, EXIT_USAGE,
				  "remote %.*s://...: not a directory, file://, http(s):// or "
				  "s3:// URL",
				  (int)(strstr(url, "://") - url), url);
	} else {
		const char *path = str_has_prefix(url, "file://") ? url + strlen("file://") : url;
		if (!*path) {
			rc = cp_error_set(err, EXIT_USAGE, "remote %s: no directory named", url);
		} else {
			r->dir = path[0] == '/' ? path_normalize(path) : path_absolute(base_dir, path);
			r->shown = xstrdup(r->dir);
		}
	}
	if (rc < 0) {
		remote_close(r);
		return -1;
	}
	*out = r;
	return 0;
}

void remote_close(struct remote *r)
{
	if (!r)
		return;
	free(r->shown);
	free(r->dir);
	free(r->http.base);
	free(r->http.userpwd);
	free(r->http.bearer);
	free(r->http.sigv4);
	free(r->http.s3token);
	free(r);
}

const char *remote_shown(const struct remote *r)
{
	return r->shown;
}

static void run_batch(struct remote *r, enum xfer_op op, struct xfer *v, size_t n)
{
	if (r->dir)
		remote_dir_run(r, op, v, n);
	else
		remote_curl_run(r, op, v, n);
}

static void xfers_free(struct xfer *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].error);
	free(v);
}

/* The first failure of a batch as the error; -1 if there was one. */
static int batch_error(struct remote *r, const char *verb, const struct xfer *v, size_t n,
		       struct cp_error *err)
{
	size_t failed = 0, first = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].result == XFER_FAILED && failed++ == 0)
			first = i;
	if (!failed)
		return 0;
	if (failed == 1)
		return cp_error_set(err, EXIT_STAGE_FAILED, "%s %s: %s", verb, r->shown,
				    v[first].error);
	return cp_error_set(err, EXIT_STAGE_FAILED, "%s %s: %s (and %zu more failed)", verb,
			    r->shown, v[first].error, failed - 1);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strvec_sort_unique(struct strvec *sv)
{
	if (sv->n < 2)
		return;
	qsort(sv->v, sv->n, sizeof(char *), cmp_str);
	size_t k = 1;
	for (size_t i = 1; i < sv->n; i++) {
		if (strcmp(sv->v[i], sv->v[k - 1]) == 0)
			free(sv->v[i]);
		else
			sv->v[k++] = sv->v[i];
	}
	sv->n = k;
}

/* Calls fn for each {"digest", "type"} of an entry's outputs and metrics;
 * -1 when one is not a valid digest and type. */
static int entry_each(const cJSON *doc, int (*fn)(void *, const char *, char), void *arg)
{
	static const char *const parts[] = {"outputs", "metrics"};
	for (size_t p = 0; p < ARRAY_LEN(parts); p++) {
		const cJSON *part = cJSON_GetObjectItem(doc, parts[p]);
		if (part && !cJSON_IsObject(part))
			return -1;
		for (const cJSON *e = part ? part->child : NULL; e; e = e->next) {
			const char *d = cJSON_GetStringValue(cJSON_GetObjectItem(e, "digest"));
			const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));
			if (!d || !digest_is_valid(d) || !t || strlen(t) != 1 || !strchr("fdl", t[0]) ||
			    fn(arg, d, t[0]) < 0)
				return -1;
		}
	}
	return 0;
}

struct collect {
	const struct cas *c;
	struct strvec *out;
	struct strvec *trees; /* listings whose children to add; NULL: add them now */
	struct cp_error *err;
};

static int collect_one(void *arg, const char *digest, char type)
{
	struct collect *k = arg;
	strvec_push(k->out, digest);
	if (type != 'd')
		return 0;
	if (k->trees) {
		strvec_push(k->trees, digest);
		return 0;
	}
	return cas_tree_objects(k->out, k->c, digest, k->err);
}

/* Pushes `names` whose sources `src` (files) or `mem` are given, after a
 * HEAD of each: only what the remote lacks is sent. */
static int push_batch(struct remote_stats *st, struct remote *r, struct xfer *v, size_t n,
		      struct cp_error *err)
{
	run_batch(r, XFER_HEAD, v, n);
	if (batch_error(r, "push to", v, n, err) < 0)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].result == XFER_OK) {
			st->skipped++;
			continue;
		}
		struct xfer x = v[i];
		x.error = NULL;
		v[k++] = x;
	}
	run_batch(r, XFER_PUT, v, k);
	for (size_t i = 0; i < k; i++)
		if (v[i].result == XFER_OK) {
			st->sent++;
			st->bytes += v[i].bytes;
		}
	return batch_error(r, "push to", v, k, err);
}

int remote_push(struct remote_stats *st, struct remote *r, struct cas *c,
		const struct strvec *keys, struct cp_error *err)
{
	memset(st, 0, sizeof(*st));
	struct strvec objs = {0}, texts = {0};
	struct xfer *v = NULL;
	size_t n = 0;
	int rc = -1;
	for (size_t i = 0; i < keys->n; i++) {
		cJSON *doc = NULL;
		if (runcache_load(&doc, c, keys->v[i]) != 1) {
			cp_error_set(err, EXIT_USAGE,
				     "push: the store has no run cache entry for key %s (run its "
				     "stage here first)",
				     keys->v[i]);
			goto out;
		}
		struct collect k = {c, &objs, NULL, err};
		int e = entry_each(doc, collect_one, &k);
		strvec_push_take(&texts, json_canonical(doc));
		cJSON_Delete(doc);
		if (e < 0) {
			if (!err->msg[0])
				cp_error_set(err, EXIT_USAGE,
					     "push: the run cache entry for key %s is corrupt",
					     keys->v[i]);
			goto out;
		}
	}
	strvec_sort_unique(&objs);
	v = xcalloc(objs.n + 1, sizeof(*v));
	for (size_t i = 0; i < objs.n; i++) {
		const char *hex = objs.v[i] + strlen(DIGEST_PREFIX);
		if (!cas_has(c, objs.v[i])) {
			cp_error_set(err, EXIT_USAGE,
				     "push: object %s is not in the store %s (gc removed it? "
				     "run its stage again)",
				     objs.v[i], c->root);
			goto out;
		}
		snprintf(v[i].name, sizeof(v[i].name), "cas/%s", hex);
		snprintf(v[i].sha256, sizeof(v[i].sha256), "%s", hex);
		v[i].src = cas_object_path(c, objs.v[i]);
	}
	n = objs.n;
	int prc = push_batch(st, r, v, n, err);
	for (size_t i = 0; i < n; i++)
		free((char *)v[i].src);
	xfers_free(v, n);
	v = NULL;
	if (prc < 0)
		goto out;
	/* The entries last: one on the remote promises its objects. */
	n = keys->n;
	v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		char d[DIGEST_BUFLEN];
		snprintf(v[i].name, sizeof(v[i].name), "ac/%s", keys->v[i] + strlen(DIGEST_PREFIX));
		v[i].mem = texts.v[i];
		v[i].len = strlen(texts.v[i]);
		digest_bytes(d, v[i].mem, v[i].len);
		snprintf(v[i].sha256, sizeof(v[i].sha256), "%s", d + strlen(DIGEST_PREFIX));
	}
	rc = push_batch(st, r, v, n, err);
out:
	if (v)
		xfers_free(v, n);
	strvec_free(&objs);
	strvec_free(&texts);
	return rc;
}

/* Downloads the objects `digests` (none in the store) into its tmp/,
 * then renames each whose sha256 matches into place. A big file object
 * (not one of the listings `trees`) is written to a spare copy as well
 * (cas_spare_name), which is kept only when the bytes are verified. */
static int fetch_objects(struct remote_stats *st, struct remote *r, struct cas *c,
			 const struct strvec *digests, const struct strvec *trees,
			 struct cp_error *err)
{
	size_t n = digests->n;
	if (n == 0)
		return 0;
	struct xfer *v = xcalloc(n, sizeof(*v));
	char **tmp = xcalloc(n, sizeof(*tmp)), **spare = xcalloc(n, sizeof(*spare));
	for (size_t i = 0; i < n; i++) {
		const char *hex = digests->v[i] + strlen(DIGEST_PREFIX);
		snprintf(v[i].name, sizeof(v[i].name), "cas/%s", hex);
		/* name.tmp.PID: cas_open sweeps what a killed pull left. */
		tmp[i] = xasprintf("%s/tmp/pull-%.16s.tmp.%ld", c->root, hex, (long)getpid());
		v[i].dst = tmp[i];
		if (!strvec_contains(trees, digests->v[i])) {
			cleanup_free char *name = cas_spare_name(digests->v[i]);
			v[i].spare = spare[i] = xasprintf("%s/tmp/%s", c->root, name);
		}
	}
	run_batch(r, XFER_GET, v, n);
	int rc = batch_error(r, "pull from", v, n, err);
	for (size_t i = 0; i < n; i++) {
		char got[DIGEST_BUFLEN];
		digest_format(got, v[i].md);
		if (rc == 0 && v[i].result == XFER_ABSENT) {
			rc = cp_error_set(err, EXIT_STAGE_FAILED,
					  "pull from %s: the remote lacks object %s that its entry "
					  "names (push it again from where it was made)",
					  r->shown, digests->v[i]);
		} else if (rc == 0 && strcmp(got, digests->v[i]) != 0) {
			rc = cp_error_set(err, EXIT_STAGE_FAILED,
					  "pull from %s: object %s arrived with sha256 %s: the "
					  "remote's copy is corrupt; it was not installed",
					  r->shown, digests->v[i], got + strlen(DIGEST_PREFIX));
		} else if (rc == 0) {
			cleanup_free char *final = cas_object_path(c, digests->v[i]);
			cleanup_free char *dir = path_dirname(final);
			if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || rename(tmp[i], final) < 0) {
				rc = cp_error_errno(err, EXIT_STAGE_FAILED, "installing %s", final);
			} else {
				st->received++;
				st->bytes += v[i].bytes;
			}
		}
		/* A spare stays only beside its verified, installed object. */
		if (spare[i] && (rc < 0 || !v[i].spared))
			unlink(spare[i]);
		unlink(tmp[i]);
		free(tmp[i]);
		free(spare[i]);
	}
	free(tmp);
	free(spare);
	xfers_free(v, n);
	return rc;
}

/* The digests among `all` that the store lacks. */
static void missing_only(struct strvec *out, struct remote_stats *st, const struct cas *c,
			 struct strvec *all)
{
	strvec_sort_unique(all);
	for (size_t i = 0; i < all->n; i++)
		if (!cas_has(c, all->v[i]))
			strvec_push(out, all->v[i]);
		else
			st->skipped++;
}

/* A remote's entry for `key`, checked before anything is trusted: JSON,
 * its own key, outputs with valid digests and types. */
static cJSON *entry_parse(const struct strbuf *text, const char *key)
{
	cJSON *doc = cJSON_ParseWithLength(text->buf ? text->buf : "", text->len);
	const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(doc, "key"));
	struct strvec sink = {0};
	struct collect none = {NULL, &sink, &sink, NULL};
	if (!cJSON_IsObject(doc) || (k && strcmp(k, key) != 0) ||
	    entry_each(doc, collect_one, &none) < 0) {
		cJSON_Delete(doc);
		doc = NULL;
	}
	strvec_free(&sink);
	return doc;
}

int remote_fetch(struct remote_stats *st, bool *found, struct remote *r, struct cas *c,
		 const struct strvec *keys, struct cp_error *err)
{
	memset(st, 0, sizeof(*st));
	size_t n = keys->n;
	struct xfer *v = xcalloc(n + 1, sizeof(*v));
	struct strbuf *bodies = xcalloc(n + 1, sizeof(*bodies));
	cJSON **docs = xcalloc(n + 1, sizeof(*docs));
	struct strvec want = {0}, trees = {0}, need = {0};
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		found[i] = false;
		snprintf(v[i].name, sizeof(v[i].name), "ac/%s", keys->v[i] + strlen(DIGEST_PREFIX));
		bodies[i].max = MAX_ENTRY;
		v[i].out = &bodies[i];
	}
	run_batch(r, XFER_GET, v, n);
	if (batch_error(r, "pull from", v, n, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (v[i].result != XFER_OK)
			continue;
		st->received++;
		st->bytes += v[i].bytes;
		docs[i] = entry_parse(&bodies[i], keys->v[i]);
		if (!docs[i]) {
			cp_error_set(err, EXIT_STAGE_FAILED,
				     "pull from %s: the entry for key %s is corrupt; refused",
				     r->shown, keys->v[i]);
			goto out;
		}
		struct collect k = {c, &want, &trees, err};
		entry_each(docs[i], collect_one, &k);
	}
	/* Listings first: what they name is known once they are here. */
	missing_only(&need, st, c, &want);
	if (fetch_objects(st, r, c, &need, &trees, err) < 0)
		goto out;
	strvec_free(&want);
	strvec_free(&need);
	for (size_t i = 0; i < trees.n; i++)
		if (cas_tree_objects(&want, c, trees.v[i], err) < 0)
			goto out;
	missing_only(&need, st, c, &want);
	if (fetch_objects(st, r, c, &need, &trees, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!docs[i])
			continue;
		if (runcache_save(c, keys->v[i], docs[i], err) < 0)
			goto out;
		found[i] = true;
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++) {
		cJSON_Delete(docs[i]);
		sb_free(&bodies[i]);
	}
	free(docs);
	free(bodies);
	xfers_free(v, n);
	strvec_free(&want);
	strvec_free(&trees);
	strvec_free(&need);
	return rc;
}
