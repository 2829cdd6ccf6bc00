#include "lineage.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

static const cJSON *lock_stages(const cJSON *lock)
{
	return cJSON_GetObjectItem(lock, "stages");
}

char *lineage_normalize_name(const char *name)
{
	struct strbuf sb = STRBUF_INIT;
	const char *colon = strchr(name, ':');
	const char *slash = strchr(name, '/');
	if (colon && (!slash || colon < slash)) {
		/* VOLUME:PATH */
		sb_add(&sb, name, (size_t)(colon - name) + 1);
		if (colon[1] != '/')
			sb_addc(&sb, '/');
		sb_adds(&sb, colon + 1);
	} else if (name[0] == '/' || str_has_prefix(name, "./") || strcmp(name, ".") == 0) {
		sb_adds(&sb, name);
	} else {
		sb_addf(&sb, "./%s", name);
	}
	/* Trailing slashes go, but not the one a root ("vol:/", "/") needs. */
	while (sb.len > 1 && sb.buf[sb.len - 1] == '/' && sb.buf[sb.len - 2] != ':')
		sb.buf[--sb.len] = '\0';
	return sb_detach(&sb);
}

bool lineage_within(const char *name, const char *dir)
{
	size_t n = strlen(dir);
	if (strncmp(name, dir, n) != 0)
		return false;
	if (name[n] == '\0')
		return true;
	return (n > 0 && dir[n - 1] == '/') || name[n] == '/';
}

/* Calls fn for every (stage, artifact name, entry) of the given parts
 * ("outputs", "metrics", "inputs") until it returns true. */
typedef bool (*visit_fn)(void *ctx, const char *stage, const char *name, const cJSON *entry);
static void each_artifact(const cJSON *lock, const char *const *parts, size_t nparts, visit_fn fn,
			  void *ctx)
{
	for (const cJSON *st = lock_stages(lock) ? lock_stages(lock)->child : NULL; st; st = st->next)
		for (size_t k = 0; k < nparts; k++) {
			const cJSON *part = cJSON_GetObjectItem(st, parts[k]);
			for (const cJSON *e = part ? part->child : NULL; e; e = e->next)
				if (e->string && fn(ctx, st->string, e->string, e))
					return;
		}
}

static const char *const produced_parts[] = {"outputs", "metrics"};
static const char *const input_parts[] = {"inputs"};

struct name_search {
	const char *name;
	const char *skip;
	struct lineage_hit hit;
	size_t best; /* length of the best containing directory so far */
	bool found;
};

static bool visit_exact(void *ctx, const char *stage, const char *name, const cJSON *entry)
{
	struct name_search *s = ctx;
	if ((s->skip && strcmp(stage, s->skip) == 0) || strcmp(name, s->name) != 0)
		return false;
	s->hit = (struct lineage_hit){stage, name, entry, false};
	s->found = true;
	return true;
}

static bool visit_container(void *ctx, const char *stage, const char *name, const cJSON *entry)
{
	struct name_search *s = ctx;
	if ((s->skip && strcmp(stage, s->skip) == 0) || !lineage_within(s->name, name))
		return false;
	/* The innermost directory is the most specific producer. */
	if (!s->found || strlen(name) > s->best) {
		s->hit = (struct lineage_hit){stage, name, entry, true};
		s->best = strlen(name);
		s->found = true;
	}
	return false;
}

static bool visit_input(void *ctx, const char *stage, const char *name, const cJSON *entry)
{
	(void)stage;
	struct name_search *s = ctx;
	if (strcmp(name, s->name) != 0)
		return false;
	s->hit = (struct lineage_hit){NULL, name, entry, false};
	s->found = true;
	return true;
}

int lineage_find_name(struct lineage_hit *out, const cJSON *lock, const char *name,
		      const char *skip)
{
	struct name_search s = {.name = name, .skip = skip};
	each_artifact(lock, produced_parts, 2, visit_exact, &s);
	if (!s.found)
		each_artifact(lock, produced_parts, 2, visit_container, &s);
	if (!s.found)
		each_artifact(lock, input_parts, 1, visit_input, &s);
	if (s.found)
		*out = s.hit;
	return s.found ? 1 : 0;
}

struct digest_search {
	const char *hex; /* lowercase, without "sha256:" */
	size_t len;
	struct lineage_hit hit;
	bool found;
	const char *other; /* a second, different digest that also matches */
};

static bool visit_digest(void *ctx, const char *stage, const char *name, const cJSON *entry)
{
	struct digest_search *s = ctx;
	const char *d = str_of(entry, "digest");
	if (!d || !str_has_prefix(d, "sha256:") || strncmp(d + 7, s->hex, s->len) != 0)
		return false;
	if (!s->found) {
		s->hit = (struct lineage_hit){stage, name, entry, false};
		s->found = true;
	} else if (strcmp(str_of(s->hit.entry, "digest"), d) != 0 && !s->other) {
		s->other = d;
	}
	return false;
}

int lineage_find_digest(struct lineage_hit *out, const cJSON *lock, const char *query,
			struct cp_error *err)
{
	const char *q = str_has_prefix(query, "sha256:") ? query + 7 : query;
	size_t n = strlen(q);
	if (n == 0 || n > 64)
		return 0;
	char hex[65];
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)q[i]))
			return 0;
		hex[i] = (char)tolower((unsigned char)q[i]);
	}
	hex[n] = '\0';
	if (n < LINEAGE_MIN_PREFIX) {
		err->code = EXIT_USAGE;
		return cp_error_set(err,
				    "no artifact \"%s\", and as a digest prefix it is too short: "
				    "give at least %d hex digits",
				    query, LINEAGE_MIN_PREFIX);
	}
	struct digest_search s = {.hex = hex, .len = n};
	each_artifact(lock, produced_parts, 2, visit_digest, &s);
	/* Only inputs no stage produced are left to look at. */
	struct digest_search in = {.hex = hex, .len = n};
	each_artifact(lock, input_parts, 1, visit_digest, &in);
	if (!s.found && in.found) {
		in.hit.stage = NULL;
		s = in;
	} else if (s.found && in.found && !s.other &&
		   strcmp(str_of(in.hit.entry, "digest"), str_of(s.hit.entry, "digest")) != 0) {
		s.other = str_of(in.hit.entry, "digest");
	}
	if (!s.found)
		return 0;
	if (s.other || in.other) {
		err->code = EXIT_USAGE;
		return cp_error_set(err, "digest prefix \"%s\" is ambiguous: %s and %s both match; "
					 "give more digits",
				    query, str_of(s.hit.entry, "digest"), s.other ? s.other : in.other);
	}
	*out = s.hit;
	return 1;
}

static bool visit_collect(void *ctx, const char *stage, const char *name, const cJSON *entry)
{
	(void)stage;
	(void)entry;
	struct strvec *sv = ctx;
	if (!strvec_contains(sv, name))
		strvec_push(sv, name);
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void lineage_names(struct strvec *out, const cJSON *lock)
{
	static const char *const all[] = {"outputs", "metrics", "inputs"};
	each_artifact(lock, all, 3, visit_collect, out);
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(char *), cmp_str);
}

/* "no artifact ...; nearest: a, b" or the names that exist. */
static int not_found(const cJSON *lock, const char *query, struct cp_error *err)
{
	struct strvec names = {0};
	lineage_names(&names, lock);
	struct strbuf sb = STRBUF_INIT;
	const char **cands = xcalloc(names.n + 1, sizeof(*cands));
	for (size_t i = 0; i < names.n; i++)
		cands[i] = names.v[i];
	cleanup_free char *norm = lineage_normalize_name(query);
	for (int k = 0; k < 3; k++) {
		const char *near = suggest_nearest(norm, cands, names.n);
		if (!near)
			near = suggest_nearest(query, cands, names.n);
		if (!near)
			break;
		sb_addf(&sb, "%s\"%s\"", k ? ", " : "; nearest: ", near);
		for (size_t i = 0; i < names.n; i++)
			if (cands[i] == near)
				cands[i] = NULL;
	}
	if (sb.len == 0 && names.n == 0)
		sb_adds(&sb, "; the lock records no artifacts yet (run the pipeline first)");
	if (sb.len == 0) {
		for (size_t i = 0; i < names.n && i < 8; i++)
			sb_addf(&sb, "%s%s", i ? ", " : "; known artifacts: ", names.v[i]);
		if (names.n > 8)
			sb_addf(&sb, " (and %zu more)", names.n - 8);
	}
	err->code = EXIT_USAGE;
	cp_error_set(err, "no artifact or digest \"%s\" in the lock%s", query, sb_str(&sb));
	free(cands);
	sb_free(&sb);
	strvec_free(&names);
	return -1;
}

struct walk {
	const cJSON *lock;
	const cJSON *stage_runs;
	struct strvec expanded; /* stages whose inputs were already listed */
	struct strvec path;     /* stages being expanded, outermost first */
};

static cJSON *artifact_node(struct walk *w, const char *name, const cJSON *entry,
			    const char *consumer);

static cJSON *stage_node(struct walk *w, const char *stage)
{
	cJSON *n = cJSON_CreateObject();
	cJSON_AddStringToObject(n, "stage", stage);
	if (strvec_contains(&w->path, stage)) {
		cJSON_AddBoolToObject(n, "cycle", true);
		return n;
	}
	if (strvec_contains(&w->expanded, stage)) {
		cJSON_AddBoolToObject(n, "repeated", true);
		return n;
	}
	strvec_push(&w->expanded, stage);
	strvec_push(&w->path, stage);
	const cJSON *le = cJSON_GetObjectItem(lock_stages(w->lock), stage);
	const char *key = str_of(le, "key");
	if (key)
		cJSON_AddStringToObject(n, "key", key);
	const cJSON *sr = cJSON_GetObjectItem(w->stage_runs, stage);
	const cJSON *run = cJSON_GetObjectItem(sr, "run");
	const cJSON *git = cJSON_GetObjectItem(sr, "git");
	cJSON_AddItemToObject(n, "run", run ? cJSON_Duplicate(run, true) : cJSON_CreateNull());
	cJSON_AddItemToObject(n, "git", git ? cJSON_Duplicate(git, true) : cJSON_CreateNull());
	cJSON *inputs = cJSON_AddArrayToObject(n, "inputs");
	const cJSON *in = cJSON_GetObjectItem(le, "inputs");
	for (const cJSON *e = in ? in->child : NULL; e; e = e->next)
		cJSON_AddItemToArray(inputs, artifact_node(w, e->string, e, stage));
	free(w->path.v[--w->path.n]);
	w->path.v[w->path.n] = NULL;
	return n;
}

struct parts_search {
	const char *dir;
	const char *skip;
	cJSON *hits; /* array of names */
	const cJSON *lock;
};

static bool visit_part(void *ctx, const char *stage, const char *name, const cJSON *entry)
{
	(void)entry;
	struct parts_search *s = ctx;
	if ((!s->skip || strcmp(stage, s->skip) != 0) && lineage_within(name, s->dir))
		cJSON_AddItemToArray(s->hits, cJSON_CreateString(name));
	return false;
}

static cJSON *artifact_node(struct walk *w, const char *name, const cJSON *entry,
			    const char *consumer)
{
	cJSON *n = cJSON_CreateObject();
	cJSON_AddStringToObject(n, "artifact", name);
	static const char *const copied[] = {"digest", "size", "files", "missing"};
	for (size_t i = 0; i < ARRAY_LEN(copied); i++) {
		const cJSON *v = cJSON_GetObjectItem(entry, copied[i]);
		if (v)
			cJSON_AddItemToObject(n, copied[i], cJSON_Duplicate(v, true));
	}
	struct lineage_hit hit;
	if (lineage_find_name(&hit, w->lock, name, consumer) && hit.stage) {
		if (hit.within)
			cJSON_AddStringToObject(n, "within", hit.artifact);
		const char *have = str_of(entry, "digest"), *made = str_of(hit.entry, "digest");
		/* The consumer read another version than the producer last made. */
		if (!hit.within && have && made && strcmp(have, made) != 0)
			cJSON_AddBoolToObject(n, "stale", true);
		cJSON_AddItemToObject(n, "produced_by", stage_node(w, hit.stage));
		return n;
	}
	cJSON_AddNullToObject(n, "produced_by");
	/* A directory no stage wrote as a whole may hold outputs of stages. */
	struct parts_search s = {name, consumer, cJSON_CreateArray(), w->lock};
	each_artifact(w->lock, produced_parts, 2, visit_part, &s);
	if (s.hits->child) {
		cJSON *parts = cJSON_AddArrayToObject(n, "parts");
		for (const cJSON *h = s.hits->child; h; h = h->next) {
			struct lineage_hit ph;
			if (lineage_find_name(&ph, w->lock, h->valuestring, consumer) && ph.stage)
				cJSON_AddItemToArray(parts,
						     artifact_node(w, h->valuestring, ph.entry, consumer));
		}
	}
	cJSON_Delete(s.hits);
	return n;
}

int lineage_build(cJSON **out, const cJSON *lock, const char *query, const cJSON *stage_runs,
		  struct cp_error *err)
{
	cleanup_free char *name = lineage_normalize_name(query);
	struct lineage_hit hit;
	const char *shown = name;
	if (!lineage_find_name(&hit, lock, name, NULL)) {
		int rc = lineage_find_digest(&hit, lock, query, err);
		if (rc < 0)
			return -1;
		if (rc == 0)
			return not_found(lock, query, err);
		shown = hit.artifact;
	}
	struct walk w = {.lock = lock, .stage_runs = stage_runs};
	*out = artifact_node(&w, shown, hit.entry, NULL);
	strvec_free(&w.expanded);
	strvec_free(&w.path);
	return 0;
}

bool lineage_record_ran(const cJSON *rec, const char *stage, const char *key)
{
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *e = stages ? stages->child : NULL; e; e = e->next) {
		const char *n = str_of(e, "name"), *st = str_of(e, "status"), *k = str_of(e, "key");
		if (n && st && k && strcmp(n, stage) == 0 && strcmp(st, "ran") == 0 &&
		    strcmp(k, key) == 0)
			return true;
	}
	return false;
}

cJSON *lineage_stage_counts(const cJSON *rec)
{
	static const char *const statuses[] = {"ran", "skipped", "failed", "not-run", "service",
					       "restored"};
	static const char *const keys[] = {"ran", "skipped", "failed", "not_run", "service",
					   "restored"};
	int counts[ARRAY_LEN(statuses)] = {0};
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *e = stages ? stages->child : NULL; e; e = e->next) {
		const char *st = str_of(e, "status");
		for (size_t i = 0; st && i < ARRAY_LEN(statuses); i++)
			if (strcmp(st, statuses[i]) == 0)
				counts[i]++;
	}
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		cJSON_AddNumberToObject(o, keys[i], counts[i]);
	return o;
}

long long lineage_time_ms(const char *iso)
{
	if (!iso)
		return -1;
	struct tm tm = {0};
	int ms = 0, used = 0;
	if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &used) != 7 ||
	    iso[used] != '\0')
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm) * 1000 + ms;
}

static void flatten(cJSON *rows, const char *stage, const char *file, const char *prefix,
		    const cJSON *v)
{
	if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
		int i = 0;
		for (const cJSON *c = v->child; c; c = c->next, i++) {
			cleanup_free char *key = cJSON_IsObject(v) ? xstrdup(c->string)
								   : xasprintf("%d", i);
			cleanup_free char *full = prefix ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
			flatten(rows, stage, file, full, c);
		}
		return;
	}
	cJSON *row = cJSON_CreateObject();
	cJSON_AddStringToObject(row, "stage", stage);
	cJSON_AddStringToObject(row, "file", file);
	cJSON_AddStringToObject(row, "metric", prefix ? prefix : "value");
	cJSON_AddItemToObject(row, "value", cJSON_Duplicate(v, true));
	cJSON_AddItemToArray(rows, row);
}

static void metrics_of(cJSON *rows, const char *stage, const cJSON *metrics)
{
	for (const cJSON *f = metrics ? metrics->child : NULL; f; f = f->next) {
		const cJSON *values = cJSON_GetObjectItem(f, "values");
		if (values)
			flatten(rows, stage, f->string, NULL, values);
	}
}

cJSON *lineage_metrics_record(const cJSON *rec)
{
	cJSON *rows = cJSON_CreateArray();
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *e = stages ? stages->child : NULL; e; e = e->next)
		if (str_of(e, "name"))
			metrics_of(rows, str_of(e, "name"), cJSON_GetObjectItem(e, "metrics"));
	return rows;
}

cJSON *lineage_metrics_lock(const cJSON *lock)
{
	cJSON *rows = cJSON_CreateArray();
	for (const cJSON *st = lock_stages(lock) ? lock_stages(lock)->child : NULL; st; st = st->next)
		metrics_of(rows, st->string, cJSON_GetObjectItem(st, "metrics"));
	return rows;
}

static bool same_metric(const cJSON *a, const cJSON *b)
{
	static const char *const keys[] = {"stage", "file", "metric"};
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		const char *x = str_of(a, keys[i]), *y = str_of(b, keys[i]);
		if (!x || !y || strcmp(x, y) != 0)
			return false;
	}
	return true;
}

static const cJSON *find_metric(const cJSON *rows, const cJSON *like)
{
	for (const cJSON *r = rows ? rows->child : NULL; r; r = r->next)
		if (same_metric(r, like))
			return r;
	return NULL;
}

/* Decimal places of x as written shortly (2.0578 → 4); -1 for exponent
 * notation. */
static int decimals(double x)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%.15g", x);
	if (strpbrk(buf, "eEni"))
		return -1;
	const char *dot = strchr(buf, '.');
	return dot ? (int)strlen(dot + 1) : 0;
}

/* b - a without binary noise: rounded to the decimals the operands are
 * written with, so 2.0044 - 2.0578 is -0.0534, not -0.05339999999999989. */
static double delta(double a, double b)
{
	char buf[400];
	int da = decimals(a), db = decimals(b);
	if (da >= 0 && db >= 0)
		snprintf(buf, sizeof(buf), "%.*f", da > db ? da : db, b - a);
	else
		snprintf(buf, sizeof(buf), "%.12g", b - a);
	double d = strtod(buf, NULL);
	return d == 0 ? 0 : d; /* no -0 */
}

static cJSON *diff_row(const cJSON *key, const cJSON *old, const cJSON *cur)
{
	cJSON *row = cJSON_CreateObject();
	static const char *const keys[] = {"stage", "file", "metric"};
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		cJSON_AddStringToObject(row, keys[i], str_of(key, keys[i]));
	const cJSON *ov = cJSON_GetObjectItem(old, "value"), *nv = cJSON_GetObjectItem(cur, "value");
	cJSON_AddItemToObject(row, "old", ov ? cJSON_Duplicate(ov, true) : cJSON_CreateNull());
	cJSON_AddItemToObject(row, "new", nv ? cJSON_Duplicate(nv, true) : cJSON_CreateNull());
	if (cJSON_IsNumber(ov) && cJSON_IsNumber(nv))
		cJSON_AddNumberToObject(row, "delta", delta(ov->valuedouble, nv->valuedouble));
	return row;
}

cJSON *lineage_metrics_diff(const cJSON *old, const cJSON *cur)
{
	cJSON *rows = cJSON_CreateArray();
	for (const cJSON *r = cur ? cur->child : NULL; r; r = r->next)
		cJSON_AddItemToArray(rows, diff_row(r, find_metric(old, r), r));
	for (const cJSON *r = old ? old->child : NULL; r; r = r->next)
		if (!find_metric(cur, r))
			cJSON_AddItemToArray(rows, diff_row(r, r, NULL));
	return rows;
}
