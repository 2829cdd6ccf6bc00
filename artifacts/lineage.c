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
		return cp_error_set(err, EXIT_USAGE,
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
		return cp_error_set(err, EXIT_USAGE,
				    "digest prefix \"%s\" is ambiguous: %s and %s both match; "
				    "give more digits",
				    query, str_of(s.hit.entry, "digest"),
				    s.other ? s.other : in.other);
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
	cp_error_set(err, EXIT_USAGE, "no artifact or digest \"%s\" in the lock%s", query,
		     sb_str(&sb));
	free(cands);
	sb_free(&sb);
	strvec_free(&names);
	return -1;
}

struct walk {
	const cJSON *lock;
	const cJSON *producers;
	struct strvec expanded; /* "stage@run" of stage nodes already listed */
	struct strvec path;     /* stages being expanded, outermost first */
};

/* What producers (lineage_producers_add) knows of `digest` of artifact
 * `name` as stage `stage` made it, or NULL. Lends. */
static const cJSON *producer_of(const cJSON *producers, const char *stage, const char *name,
				const char *digest)
{
	if (!digest)
		return NULL;
	return cJSON_GetObjectItem(
		cJSON_GetObjectItem(cJSON_GetObjectItem(producers, stage), name), digest);
}

static cJSON *artifact_node(struct walk *w, const char *name, const cJSON *entry,
			    const char *consumer);

/* The node of `stage` having made `digest` of its output `via`: the run
 * that produced that digest and the inputs it read (from its record),
 * else what the lock says with the run unknown. */
static cJSON *stage_node(struct walk *w, const char *stage, const char *via, const char *digest)
{
	cJSON *n = cJSON_CreateObject();
	cJSON_AddStringToObject(n, "stage", stage);
	if (strvec_contains(&w->path, stage)) {
		cJSON_AddBoolToObject(n, "cycle", true);
		return n;
	}
	const cJSON *made = producer_of(w->producers, stage, via, digest);
	const char *run = str_of(made, "run");
	cleanup_free char *seen = xasprintf("%s@%s", stage, run ? run : "");
	if (strvec_contains(&w->expanded, seen)) {
		cJSON_AddBoolToObject(n, "repeated", true);
		if (run)
			cJSON_AddStringToObject(n, "run", run);
		return n;
	}
	strvec_push(&w->expanded, seen);
	strvec_push(&w->path, stage);
	const cJSON *le = cJSON_GetObjectItem(lock_stages(w->lock), stage);
	const char *key = made ? str_of(made, "key") : str_of(le, "key");
	if (key)
		cJSON_AddStringToObject(n, "key", key);
	const cJSON *git = cJSON_GetObjectItem(made, "git");
	cJSON_AddItemToObject(n, "run", run ? cJSON_CreateString(run) : cJSON_CreateNull());
	cJSON_AddItemToObject(n, "git", git ? cJSON_Duplicate(git, true) : cJSON_CreateNull());
	const cJSON *again = cJSON_GetObjectItem(made, "reproduced_by");
	if (cJSON_GetArraySize(again) > 0)
		cJSON_AddItemToObject(n, "reproduced_by", cJSON_Duplicate(again, true));
	cJSON *inputs = cJSON_AddArrayToObject(n, "inputs");
	const cJSON *in = cJSON_GetObjectItem(made ? made : le, "inputs");
	for (const cJSON *e = in ? in->child : NULL; e; e = e->next)
		if (e->string)
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

/* The stage (not `skip`) that producers says made an artifact named
 * exactly `name`, for what the lock does not name. Lends. */
static const char *recorded_stage_of(const cJSON *producers, const char *name, const char *skip)
{
	for (const cJSON *st = producers ? producers->child : NULL; st; st = st->next)
		if ((!skip || strcmp(st->string, skip) != 0) && cJSON_GetObjectItem(st, name))
			return st->string;
	return NULL;
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
	const char *have = str_of(entry, "digest");
	struct lineage_hit hit;
	if (lineage_find_name(&hit, w->lock, name, consumer) && hit.stage) {
		if (hit.within)
			cJSON_AddStringToObject(n, "within", hit.artifact);
		const char *made = str_of(hit.entry, "digest");
		/* The consumer read another version than the producer last made. */
		if (!hit.within && have && made && strcmp(have, made) != 0)
			cJSON_AddBoolToObject(n, "stale", true);
		/* Inside a directory the file's digest says nothing of the
		 * directory's: the locked version is the one shown. */
		const char *via = hit.within || !have ? made : have;
		cJSON_AddItemToObject(n, "produced_by", stage_node(w, hit.stage, hit.artifact, via));
		return n;
	}
	const char *recorded = recorded_stage_of(w->producers, name, consumer);
	if (recorded && producer_of(w->producers, recorded, name, have)) {
		cJSON_AddItemToObject(n, "produced_by", stage_node(w, recorded, name, have));
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

/* A digest (or prefix, `hex` lowercase) only the records know, such as an
 * experiment's output: 1 with *stage, *name, *entry lent from producers,
 * 0 when none, -1 when the prefix matches several digests. */
static int recorded_digest(const char **stage, const char **name, const cJSON **entry,
			   const cJSON *producers, const char *query, struct cp_error *err)
{
	const char *q = str_has_prefix(query, "sha256:") ? query + 7 : query;
	size_t n = strlen(q);
	if (n < LINEAGE_MIN_PREFIX || n > 64 || q[strspn(q, "0123456789abcdefABCDEF")])
		return 0;
	const char *found = NULL;
	for (const cJSON *st = producers ? producers->child : NULL; st; st = st->next)
		for (const cJSON *a = st->child; a; a = a->next)
			for (const cJSON *d = a->child; d; d = d->next) {
				if (!str_has_prefix(d->string, "sha256:") ||
				    strncasecmp(d->string + 7, q, n) != 0)
					continue;
				if (found && strcmp(found, d->string) != 0) {
					return cp_error_set(err, EXIT_USAGE,
							    "digest prefix \"%s\" is ambiguous: %s "
							    "and %s both match; give more digits",
							    query, found, d->string);
				}
				if (!found) {
					found = d->string;
					*stage = st->string;
					*name = a->string;
					*entry = cJSON_GetObjectItem(d, "entry");
				}
			}
	return found ? 1 : 0;
}

int lineage_build(cJSON **out, const cJSON *lock, const char *query, const cJSON *producers,
		  struct cp_error *err)
{
	cleanup_free char *name = lineage_normalize_name(query);
	struct lineage_hit hit;
	const char *shown = name;
	const cJSON *entry = NULL;
	if (lineage_find_name(&hit, lock, name, NULL)) {
		entry = hit.entry;
	} else {
		int rc = lineage_find_digest(&hit, lock, query, err);
		const char *stage = NULL;
		if (rc == 0)
			rc = recorded_digest(&stage, &shown, &entry, producers, query, err);
		else
			shown = hit.artifact, entry = hit.entry;
		if (rc < 0)
			return -1;
		if (rc == 0)
			return not_found(lock, query, err);
	}
	struct walk w = {.lock = lock, .producers = producers};
	*out = artifact_node(&w, shown, entry, NULL);
	strvec_free(&w.expanded);
	strvec_free(&w.path);
	return 0;
}

static void add_production(cJSON *producers, const cJSON *rec, const cJSON *st, const char *name,
			   const cJSON *entry)
{
	const char *digest = str_of(entry, "digest");
	const char *stage = str_of(st, "name"), *run = str_of(rec, "id");
	if (!digest || !stage || !run)
		return;
	cJSON *by_stage = cJSON_GetObjectItem(producers, stage);
	if (!by_stage)
		by_stage = cJSON_AddObjectToObject(producers, stage);
	cJSON *by_name = cJSON_GetObjectItem(by_stage, name);
	if (!by_name)
		by_name = cJSON_AddObjectToObject(by_stage, name);
	cJSON *p = cJSON_GetObjectItem(by_name, digest);
	if (p) {
		/* The first run made it; later ones reproduced it. */
		cJSON *again = cJSON_GetObjectItem(p, "reproduced_by");
		if (!again)
			again = cJSON_AddArrayToObject(p, "reproduced_by");
		cJSON_AddItemToArray(again, cJSON_CreateString(run));
		return;
	}
	p = cJSON_AddObjectToObject(by_name, digest);
	cJSON_AddStringToObject(p, "run", run);
	const cJSON *git = cJSON_GetObjectItem(rec, "git");
	cJSON_AddItemToObject(p, "git", git ? cJSON_Duplicate(git, true) : cJSON_CreateNull());
	if (str_of(st, "key"))
		cJSON_AddStringToObject(p, "key", str_of(st, "key"));
	const cJSON *in = cJSON_GetObjectItem(st, "inputs");
	cJSON_AddItemToObject(p, "inputs",
			      cJSON_IsObject(in) ? cJSON_Duplicate(in, true) : cJSON_CreateObject());
	cJSON_AddItemToObject(p, "entry", cJSON_Duplicate(entry, true));
}

void lineage_producers_add(cJSON *producers, const cJSON *rec)
{
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const char *status = str_of(st, "status");
		/* Skipped and restored stages made nothing: they reused. */
		if (!status || strcmp(status, "ran") != 0)
			continue;
		for (size_t k = 0; k < ARRAY_LEN(produced_parts); k++) {
			const cJSON *part = cJSON_GetObjectItem(st, produced_parts[k]);
			for (const cJSON *e = part ? part->child : NULL; e; e = e->next)
				if (e->string)
					add_production(producers, rec, st, e->string, e);
		}
	}
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
