#include "track.h"

#include <glob.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../artifacts/digest.h"
#include "../artifacts/git.h"
#include "../artifacts/statcache.h"
#include "../artifacts/store.h"
#include "../lib/fs.h"

#define CPIPE_VERSION_STRING "0.1.0"

struct tstate {
	char key[DIGEST_BUFLEN];
	cJSON *keyobj; /* what the key hashes; owned */
	cJSON *inputs; /* name -> {digest, size}; owned */
	char *image;   /* image ID ("sha256:...", "local"); owned */
	bool evaluated;
	bool stale;
	long long started_ms; /* realtime */
};

/* Open-addressing map of host path -> digest entry: status asks for the
 * same artifacts many times (an output is the next stage's input). */
struct memo {
	char **keys;
	cJSON **vals;
	size_t cap, n;
};

static size_t memo_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static cJSON *memo_get(const struct memo *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = memo_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return NULL;
		if (strcmp(m->keys[i], key) == 0)
			return m->vals[i];
	}
}

static void memo_put(struct memo *m, const char *key, cJSON *val)
{
	if (2 * (m->n + 1) > m->cap) {
		struct memo bigger = {.cap = m->cap ? 2 * m->cap : 256};
		bigger.keys = xcalloc(bigger.cap, sizeof(char *));
		bigger.vals = xcalloc(bigger.cap, sizeof(cJSON *));
		for (size_t i = 0; i < m->cap; i++)
			if (m->keys[i])
				memo_put(&bigger, m->keys[i], m->vals[i]);
		for (size_t i = 0; i < m->cap; i++)
			free(m->keys[i]);
		free(m->keys);
		free(m->vals);
		*m = bigger;
	}
	size_t i = memo_hash(key) & (m->cap - 1);
	while (m->keys[i] && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	if (m->keys[i]) {
		cJSON_Delete(m->vals[i]);
	} else {
		m->keys[i] = xstrdup(key);
		m->n++;
	}
	m->vals[i] = val;
}

static void memo_clear(struct memo *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		free(m->keys[i]);
		cJSON_Delete(m->vals[i]);
	}
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

struct tracker {
	const struct pipeline *p;
	const struct runtime_ops *ops;
	struct runtime *rt;
	struct track_options o;
	char *lock_path;
	char *index_path;
	cJSON *lock;
	cJSON *index; /* stage -> {"key", "run"}: which run produced the locked outputs */
	cJSON *record;
	struct statcache *sc;
	struct tstate *st;
	struct memo memo;     /* host path -> digest entry, until the next stage ends */
	struct kvvec roots;   /* volume -> host path, as the runtime said */
};

static size_t stage_pos(const struct pipeline *p, const struct stage *s)
{
	return (size_t)(s - p->stages);
}

static const struct stage *stage_named(const struct pipeline *p, const char *name)
{
	for (size_t i = 0; i < p->nstages; i++)
		if (strcmp(p->stages[i].name, name) == 0)
			return &p->stages[i];
	return NULL;
}

/* How an artifact is named in records and the lock: "vol:/path", or a host
 * path relative to the project ("./data") so the lock does not depend on
 * where the project is checked out. */
static char *ref_name(const struct tracker *t, const char *volume, const char *path)
{
	if (volume)
		return xasprintf("%s:%s", volume, path);
	size_t n = strlen(t->p->dir);
	if (strncmp(path, t->p->dir, n) == 0 && (path[n] == '/' || path[n] == '\0'))
		return path[n] ? xasprintf(".%s", path + n) : xstrdup(".");
	return xstrdup(path);
}

static int ref_host_path(char **out, struct tracker *t, const char *volume, const char *path,
			 struct cp_error *err)
{
	if (!volume) {
		*out = xstrdup(path);
		return 0;
	}
	if (!t->ops->volume_host_path)
		return cp_error_set(err, "the %s runtime cannot read volume \"%s\"", t->ops->name,
				    volume);
	const struct kv *known = kvvec_get(&t->roots, volume);
	if (!known) {
		cleanup_free char *found = NULL;
		if (t->ops->volume_host_path(t->rt, volume, &found, err) < 0)
			return -1;
		kvvec_set(&t->roots, volume, found);
		known = kvvec_get(&t->roots, volume);
	}
	const char *root = known->value;
	*out = strcmp(path, "/") == 0 ? xstrdup(root) : xasprintf("%s%s", root, path);
	return 0;
}

/* The directory an artifact is resolved inside (see digest_tree_in) and
 * its path there: a volume's root, or the project for a path in it. An
 * absolute host path the spec names outside the project is the user's,
 * read as written (NULL root). Call after ref_host_path succeeded. */
static const char *ref_root(const struct tracker *t, const char *volume, const char *path,
			    const char **rel)
{
	*rel = path;
	if (volume)
		return kvvec_get(&t->roots, volume)->value;
	size_t n = strlen(t->p->dir);
	if (strncmp(path, t->p->dir, n) != 0 || (path[n] != '/' && path[n] != '\0'))
		return NULL;
	*rel = path[n] ? path + n : "/";
	return t->p->dir;
}

struct archive_walk {
	struct tree_builder b;
	char type;
	char digest[DIGEST_BUFLEN];
	unsigned long long size;
};

/* One entry of a volume tree streamed by the runtime (no host path):
 * hashed into the same canonical listing digest_tree makes. */
static int archive_visit(void *ud, const struct volume_entry *e, struct cp_error *err)
{
	struct archive_walk *w = ud;
	char type = S_ISREG(e->mode) ? 'f' : S_ISDIR(e->mode) ? 'd' : S_ISLNK(e->mode) ? 'l' : 0;
	if (!type)
		return cp_error_set(err, "%s: not a regular file, directory or symlink",
				    *e->path ? e->path : "artifact");
	char d[DIGEST_BUFLEN] = "";
	unsigned long long size = 0;
	if (type == 'f') {
		struct digest_ctx c;
		digest_init(&c);
		char buf[65536];
		long n;
		while ((n = e->read(e, buf, sizeof(buf), err)) > 0) {
			digest_update(&c, buf, (size_t)n);
			size += (unsigned long long)n;
		}
		digest_final(d, &c);
		if (n < 0)
			return -1;
	} else if (type == 'l') {
		size = strlen(e->link);
		digest_bytes(d, e->link, size);
	}
	if (!*e->path) {
		w->type = type;
		memcpy(w->digest, d, sizeof(d));
		w->size = size;
		return 0;
	}
	return tree_builder_add(&w->b, e->path, type, (unsigned)(e->mode & 07777), size,
				type == 'd' ? NULL : d, err);
}

static int digest_via_archive(cJSON **out, struct tracker *t, const char *volume,
			      const char *path, struct cp_error *err)
{
	struct archive_walk w = {.b = TREE_BUILDER_INIT};
	int rc = t->ops->volume_read_tree(t->rt, volume, path, archive_visit, &w, err);
	cJSON *o = cJSON_CreateObject();
	if (rc == 1) {
		cJSON_AddBoolToObject(o, "missing", true);
	} else if (rc == 0 && w.type == 'd') {
		if (tree_builder_finish(w.digest, &w.b, err) < 0)
			rc = -1;
		w.size = w.b.size;
	}
	if (rc == 0) {
		cJSON_AddStringToObject(o, "digest", w.digest);
		cJSON_AddNumberToObject(o, "size", (double)w.size);
		if (w.type == 'd')
			cJSON_AddNumberToObject(o, "files", (double)w.b.nfiles);
	}
	tree_builder_free(&w.b);
	if (rc < 0) {
		cJSON_Delete(o);
		return -1;
	}
	*out = o;
	return 0;
}

static cJSON *entry_json(const struct tree_digest *td)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "digest", td->digest);
	cJSON_AddNumberToObject(o, "size", (double)td->size);
	if (td->type == 'd')
		cJSON_AddNumberToObject(o, "files", (double)td->nfiles);
	return o;
}

/* {"digest", "size", "files"} of an artifact, or {"missing": true}. A
 * volume is read through its host path when the runtime has one, else
 * streamed from the runtime (CPIPE_ARTIFACTS_VIA_ARCHIVE=1 forces that). */
static int digest_ref(cJSON **out, struct tracker *t, const char *volume, const char *path,
		      struct cp_error *err)
{
	cleanup_free char *host = NULL;
	const char *force = getenv("CPIPE_ARTIFACTS_VIA_ARCHIVE");
	if (volume && t->ops->volume_read_tree && (force && strcmp(force, "1") == 0))
		return digest_via_archive(out, t, volume, path, err);
	if (ref_host_path(&host, t, volume, path, err) < 0) {
		if (!volume || !t->ops->volume_read_tree)
			return -1;
		return digest_via_archive(out, t, volume, path, err);
	}
	const cJSON *seen = memo_get(&t->memo, host);
	if (seen && !cJSON_IsNull(seen)) { /* null: a prefetch that failed */
		*out = cJSON_Duplicate(seen, true);
		return 0;
	}
	const char *rel;
	const char *root = ref_root(t, volume, path, &rel);
	struct stat st;
	int there = root ? fs_lstat_beneath(&st, root, rel, err) : lstat(host, &st) < 0;
	if (there < 0)
		return -1;
	if (there == 1) {
		*out = cJSON_CreateObject();
		cJSON_AddBoolToObject(*out, "missing", true);
		return 0;
	}
	struct tree_digest td;
	if (digest_tree_in(&td, root, rel, t->sc, err) < 0)
		return -1;
	cJSON *o = entry_json(&td);
	memo_put(&t->memo, host, cJSON_Duplicate(o, true));
	*out = o;
	return 0;
}

int track_prefetch(struct tracker *t, const struct plan *plan, struct cp_error *err)
{
	struct strvec paths = {0}, roots = {0}, rels = {0};
	for (size_t k = 0; k < plan->n; k++) {
		const struct stage *s = &t->p->stages[plan->order[k]];
		const struct artifact_ref *lists[3] = {s->inputs, s->outputs, s->metrics};
		size_t counts[3] = {s->ninputs, s->noutputs, s->nmetrics};
		for (int l = 0; l < 3; l++) {
			for (size_t i = 0; i < counts[l]; i++) {
				char *host = NULL;
				struct cp_error ignored = {0};
				if (ref_host_path(&host, t, lists[l][i].volume, lists[l][i].path,
						  &ignored) < 0)
					continue; /* digested on demand (archive path) */
				struct stat st;
				const char *rel;
				const char *root =
					ref_root(t, lists[l][i].volume, lists[l][i].path, &rel);
				if (memo_get(&t->memo, host) ||
				    (root ? fs_lstat_beneath(&st, root, rel, &ignored) != 0
					  : lstat(host, &st) < 0)) {
					free(host);
					continue;
				}
				memo_put(&t->memo, host, cJSON_CreateNull());
				strvec_push_take(&paths, host);
				strvec_push(&roots, root ? root : "");
				strvec_push(&rels, rel);
			}
		}
	}
	struct tree_request *reqs = xcalloc(paths.n + 1, sizeof(*reqs));
	for (size_t i = 0; i < paths.n; i++) {
		reqs[i].root = *roots.v[i] ? roots.v[i] : NULL;
		reqs[i].path = rels.v[i];
	}
	int rc = digest_trees(reqs, paths.n, t->sc, err);
	for (size_t i = 0; i < paths.n; i++)
		if (reqs[i].rc == 0)
			memo_put(&t->memo, paths.v[i], entry_json(&reqs[i].out));
	free(reqs);
	strvec_free(&paths);
	strvec_free(&roots);
	strvec_free(&rels);
	return rc;
}

static const char *entry_digest(const cJSON *e)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(e, "digest"));
}

/* The inputs of a stage: what it declares, plus the declared outputs of
 * the jobs it depends on. Object: name -> digest entry. */
static int stage_inputs(cJSON **out, struct tracker *t, const struct stage *s,
			struct cp_error *err)
{
	cJSON *in = cJSON_CreateObject();
	for (size_t i = 0; i < s->ninputs; i++) {
		cleanup_free char *name = ref_name(t, s->inputs[i].volume, s->inputs[i].path);
		if (cJSON_GetObjectItem(in, name))
			continue;
		cJSON *e;
		if (digest_ref(&e, t, s->inputs[i].volume, s->inputs[i].path, err) < 0)
			goto fail;
		cJSON_AddItemToObject(in, name, e);
	}
	for (size_t d = 0; d < s->ndeps; d++) {
		const struct stage *up = stage_named(t->p, s->deps[d].stage);
		if (!up || up->service || s->deps[d].condition != DEP_COMPLETED_SUCCESSFULLY)
			continue;
		for (int kind = 0; kind < 2; kind++) {
			const struct artifact_ref *refs = kind ? up->metrics : up->outputs;
			size_t n = kind ? up->nmetrics : up->noutputs;
			for (size_t i = 0; i < n; i++) {
				cleanup_free char *name = ref_name(t, refs[i].volume, refs[i].path);
				if (cJSON_GetObjectItem(in, name))
					continue;
				cJSON *e;
				if (digest_ref(&e, t, refs[i].volume, refs[i].path, err) < 0)
					goto fail;
				cJSON_AddItemToObject(in, name, e);
			}
		}
	}
	*out = in;
	return 0;
fail:
	cJSON_Delete(in);
	return -1;
}

static cJSON *strvec_array(const struct strvec *sv)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < sv->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(sv->v[i]));
	return a;
}

static cJSON *redacted_env(const struct stage *s)
{
	cJSON *env = cJSON_CreateObject();
	for (size_t i = 0; i < s->environment.n; i++) {
		const struct kv *kv = &s->environment.v[i];
		if (!kv->value)
			continue;
		cJSON_AddStringToObject(env, kv->key,
					env_name_is_secret(kv->key) ? "<redacted>" : kv->value);
	}
	return env;
}

/* A string with every secret environment value of the stage replaced, so
 * a token interpolated into a command line is not written down either. */
static char *redact_text(const struct stage *s, const char *text)
{
	char *out = xstrdup(text);
	for (size_t i = 0; i < s->environment.n; i++) {
		const struct kv *kv = &s->environment.v[i];
		if (!kv->value || strlen(kv->value) < 4 || !env_name_is_secret(kv->key))
			continue;
		char *hit;
		while ((hit = strstr(out, kv->value))) {
			char *next = xasprintf("%.*s<redacted>%s", (int)(hit - out), out,
					       hit + strlen(kv->value));
			free(out);
			out = next;
		}
	}
	return out;
}

static cJSON *redacted_argv(const struct stage *s, const struct strvec *sv)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < sv->n; i++) {
		cleanup_free char *r = redact_text(s, sv->v[i]);
		cJSON_AddItemToArray(a, cJSON_CreateString(r));
	}
	return a;
}

static cJSON *mounts_array(struct tracker *t, const struct stage *s)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount *m = &s->mounts[i];
		cleanup_free char *src = m->type == MOUNT_VOLUME ? xstrdup(m->source)
					 : m->type == MOUNT_BIND ? ref_name(t, NULL, m->source)
								 : xstrdup("tmpfs");
		cleanup_free char *text = xasprintf("%s:%s%s", src, m->target, m->read_only ? ":ro" : "");
		cJSON_AddItemToArray(a, cJSON_CreateString(text));
	}
	return a;
}

static cJSON *kv_object(const struct kvvec *kv)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < kv->n; i++)
		cJSON_AddStringToObject(o, kv->v[i].key, kv->v[i].value ? kv->v[i].value : "");
	return o;
}

/* The image a stage runs in, for its key and record: "local" on the
 * local runtime; else the image ID, built first during a run when the
 * stage has build: (so a changed Dockerfile changes the key, and an
 * identical rebuild does not). */
static int resolve_image(struct tracker *t, const struct stage *s, struct cp_error *err)
{
	struct tstate *ts = &t->st[stage_pos(t->p, s)];
	if (ts->image)
		return 0;
	if (!t->ops->image_prepare) {
		ts->image = xstrdup("local");
		return 0;
	}
	return t->ops->image_prepare(t->rt, s, t->o.run_id != NULL, &ts->image, err);
}

static const char *image_id(struct tracker *t, const struct stage *s)
{
	const char *id = t->st[stage_pos(t->p, s)].image;
	return id ? id : "unknown";
}

/* Everything that determines a stage's result. Secret values never enter
 * it: changing a token does not change what a stage computes. */
static cJSON *key_object(struct tracker *t, const struct stage *s, const cJSON *inputs)
{
	cJSON *k = cJSON_CreateObject();
	cJSON_AddNumberToObject(k, "v", 1);
	cJSON_AddStringToObject(k, "image", image_id(t, s));
	cJSON_AddItemToObject(k, "command", redacted_argv(s, &s->command));
	cJSON_AddItemToObject(k, "entrypoint", redacted_argv(s, &s->entrypoint));
	cJSON_AddItemToObject(k, "environment", redacted_env(s));
	cJSON_AddStringToObject(k, "working_dir", s->working_dir ? s->working_dir : "");
	cJSON_AddStringToObject(k, "user", s->user ? s->user : "");
	cJSON_AddItemToObject(k, "mounts", mounts_array(t, s));
	cJSON_AddItemToObject(k, "params", kv_object(&s->params));
	cJSON *in = cJSON_AddObjectToObject(k, "inputs");
	for (const cJSON *e = inputs ? inputs->child : NULL; e; e = e->next)
		cJSON_AddStringToObject(in, e->string, entry_digest(e) ? entry_digest(e) : "missing");
	return k;
}

static void short_digest(char out[24], const char *d)
{
	if (!d) {
		snprintf(out, 24, "missing");
		return;
	}
	snprintf(out, 24, "%.15s…", d);
}

static void add_reason(cJSON *reasons, const char *fmt, ...) CP_PRINTF(2, 3);
static void add_reason(cJSON *reasons, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	cJSON_AddItemToArray(reasons, cJSON_CreateString(s));
	free(s);
}

static bool json_equal(const cJSON *a, const cJSON *b)
{
	if (!a || !b)
		return a == b;
	return cJSON_Compare(a, b, true);
}

/* Concrete reasons why the current key differs from the locked one. */
static void key_reasons(cJSON *reasons, const cJSON *old, const cJSON *cur)
{
	const cJSON *op = cJSON_GetObjectItem(old, "params"), *cp = cJSON_GetObjectItem(cur, "params");
	for (const cJSON *e = cp ? cp->child : NULL; e; e = e->next) {
		const cJSON *was = cJSON_GetObjectItem(op, e->string);
		if (!was)
			add_reason(reasons, "params.%s added (%s)", e->string, e->valuestring);
		else if (strcmp(cJSON_GetStringValue(was) ? was->valuestring : "", e->valuestring))
			add_reason(reasons, "params.%s %s → %s", e->string,
				   cJSON_GetStringValue(was) ? was->valuestring : "?", e->valuestring);
	}
	for (const cJSON *e = op ? op->child : NULL; e; e = e->next)
		if (!cJSON_GetObjectItem(cp, e->string))
			add_reason(reasons, "params.%s removed", e->string);

	const cJSON *oe = cJSON_GetObjectItem(old, "environment"),
		    *ce = cJSON_GetObjectItem(cur, "environment");
	for (const cJSON *e = ce ? ce->child : NULL; e; e = e->next) {
		const cJSON *was = cJSON_GetObjectItem(oe, e->string);
		if (!was || !json_equal(was, e))
			add_reason(reasons, "environment %s %s", e->string, was ? "changed" : "added");
	}
	for (const cJSON *e = oe ? oe->child : NULL; e; e = e->next)
		if (!cJSON_GetObjectItem(ce, e->string))
			add_reason(reasons, "environment %s removed", e->string);

	static const char *const fields[] = {"image", "command", "entrypoint", "working_dir",
					     "user", "mounts"};
	for (size_t i = 0; i < ARRAY_LEN(fields); i++)
		if (!json_equal(cJSON_GetObjectItem(old, fields[i]), cJSON_GetObjectItem(cur, fields[i])))
			add_reason(reasons, "%s changed", fields[i]);

	const cJSON *oi = cJSON_GetObjectItem(old, "inputs"), *ci = cJSON_GetObjectItem(cur, "inputs");
	for (const cJSON *e = ci ? ci->child : NULL; e; e = e->next) {
		const cJSON *was = cJSON_GetObjectItem(oi, e->string);
		const char *now = cJSON_GetStringValue(e);
		const char *then = entry_digest(was);
		if (strcmp(now, "missing") == 0) {
			add_reason(reasons, "input %s missing", e->string);
		} else if (!was) {
			add_reason(reasons, "input %s added", e->string);
		} else if (strcmp(then ? then : "", now)) {
			char a[24], b[24];
			short_digest(a, then);
			short_digest(b, now);
			add_reason(reasons, "input %s changed (%s → %s)", e->string, a, b);
		}
	}
	for (const cJSON *e = oi ? oi->child : NULL; e; e = e->next)
		if (!cJSON_GetObjectItem(ci, e->string))
			add_reason(reasons, "input %s removed", e->string);
}

static cJSON *lock_entry(struct tracker *t, const char *stage)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(t->lock, "stages"), stage);
}

/* Adds reasons for locked outputs that are gone or differ. */
static int output_reasons(cJSON *reasons, struct tracker *t, const struct stage *s,
			  const cJSON *le, struct cp_error *err)
{
	for (int kind = 0; kind < 2; kind++) {
		const struct artifact_ref *refs = kind ? s->metrics : s->outputs;
		size_t n = kind ? s->nmetrics : s->noutputs;
		const cJSON *locked = cJSON_GetObjectItem(le, kind ? "metrics" : "outputs");
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *name = ref_name(t, refs[i].volume, refs[i].path);
			const cJSON *want = cJSON_GetObjectItem(locked, name);
			if (!want) {
				add_reason(reasons, "output %s is not in the lock", name);
				continue;
			}
			cJSON *now;
			if (digest_ref(&now, t, refs[i].volume, refs[i].path, err) < 0)
				return -1;
			const char *nd = entry_digest(now), *wd = entry_digest(want);
			if (!nd) {
				add_reason(reasons, "output %s missing", name);
			} else if (!wd || strcmp(nd, wd)) {
				char a[24], b[24];
				short_digest(a, wd);
				short_digest(b, nd);
				add_reason(reasons, "output %s changed (%s → %s)", name, a, b);
			}
			cJSON_Delete(now);
		}
	}
	return 0;
}

/* Computes the stage's current key and why it is stale (empty = fresh). */
static int evaluate(cJSON **reasons_out, struct tracker *t, const struct stage *s,
		    struct cp_error *err)
{
	struct tstate *ts = &t->st[stage_pos(t->p, s)];
	cJSON *inputs = NULL;
	if (resolve_image(t, s, err) < 0 || stage_inputs(&inputs, t, s, err) < 0)
		return -1;
	cJSON_Delete(ts->keyobj);
	cJSON_Delete(ts->inputs);
	ts->keyobj = key_object(t, s, inputs);
	ts->inputs = inputs;
	cleanup_free char *canon = json_canonical(ts->keyobj);
	digest_bytes(ts->key, canon, strlen(canon));
	ts->evaluated = true;

	cJSON *reasons = cJSON_CreateArray();
	const cJSON *le = lock_entry(t, s->name);
	if (t->o.force)
		add_reason(reasons, "--force");
	if (s->noutputs + s->nmetrics == 0) {
		/* Nothing to check it against, so nothing to trust: as in DVC,
		 * such a stage always runs. */
		add_reason(reasons, "declares no outputs, so it always runs");
	} else if (!le) {
		add_reason(reasons, "never ran");
	} else {
		const char *lk = cJSON_GetStringValue(cJSON_GetObjectItem(le, "key"));
		if (!lk || strcmp(lk, ts->key) != 0) {
			size_t before = (size_t)cJSON_GetArraySize(reasons);
			key_reasons(reasons, le, ts->keyobj);
			if ((size_t)cJSON_GetArraySize(reasons) == before)
				add_reason(reasons, "cache key changed");
		}
		if (output_reasons(reasons, t, s, le, err) < 0) {
			cJSON_Delete(reasons);
			return -1;
		}
	}
	ts->stale = cJSON_GetArraySize(reasons) > 0;
	*reasons_out = reasons;
	return 0;
}

int track_status(cJSON **reasons, struct tracker *t, const struct stage *s, struct cp_error *err)
{
	if (s->service) {
		*reasons = cJSON_CreateArray();
		return 0;
	}
	if (evaluate(reasons, t, s, err) < 0)
		return -1;
	for (size_t d = 0; d < s->ndeps; d++) {
		const struct stage *up = stage_named(t->p, s->deps[d].stage);
		if (up && !up->service && t->st[stage_pos(t->p, up)].stale)
			add_reason(*reasons, "upstream %s is stale", up->name);
	}
	t->st[stage_pos(t->p, s)].stale = cJSON_GetArraySize(*reasons) > 0;
	return 0;
}

static cJSON *record_stages(struct tracker *t)
{
	return cJSON_GetObjectItem(t->record, "stages");
}

/* Progress saves need not wait for the disk: a kill leaves the last one
 * whole, and the final save (durable) supersedes them. */
static int save_record(struct tracker *t, struct cp_error *err)
{
	return t->record ? record_save(t->o.state_dir, t->record, false, err) : 0;
}

/* The record entry of a stage: what ran (or was reused) and with what. */
static cJSON *stage_entry(struct tracker *t, const struct stage *s, const char *status)
{
	struct tstate *ts = &t->st[stage_pos(t->p, s)];
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "name", s->name);
	cJSON_AddStringToObject(e, "status", status);
	cJSON_AddBoolToObject(e, "service", s->service);
	if (ts->evaluated)
		cJSON_AddStringToObject(e, "key", ts->key);
	cJSON_AddItemToObject(e, "command", redacted_argv(s, &s->command));
	cJSON_AddItemToObject(e, "entrypoint", redacted_argv(s, &s->entrypoint));
	cJSON_AddItemToObject(e, "environment", redacted_env(s));
	if (s->working_dir)
		cJSON_AddStringToObject(e, "working_dir", s->working_dir);
	if (s->user)
		cJSON_AddStringToObject(e, "user", s->user);
	cJSON_AddItemToObject(e, "mounts", mounts_array(t, s));
	cJSON_AddItemToObject(e, "params", kv_object(&s->params));
	cJSON_AddItemToObject(e, "param_overrides", kv_object(&s->param_overrides));
	cJSON *img = cJSON_AddObjectToObject(e, "image");
	if (s->image)
		cJSON_AddStringToObject(img, "ref", s->image);
	cJSON_AddStringToObject(img, "digest", image_id(t, s));
	return e;
}

static void add_times(cJSON *e, long long start, long long end)
{
	cleanup_free char *a = iso_time(start);
	cleanup_free char *b = iso_time(end);
	cJSON_AddStringToObject(e, "started", a);
	cJSON_AddStringToObject(e, "ended", b);
}

static char *log_path(struct tracker *t, const struct stage *s)
{
	return xasprintf("%s/logs/%s/%s.log", t->o.state_dir, t->o.run_id, s->name);
}

int track_before(void *ctx, const struct stage *s, struct cp_error *err)
{
	struct tracker *t = ctx;
	struct tstate *ts = &t->st[stage_pos(t->p, s)];
	ts->started_ms = realtime_ms();
	if (s->service)
		return 0;
	cJSON *reasons = NULL;
	if (evaluate(&reasons, t, s, err) < 0)
		return -1;
	bool fresh = cJSON_GetArraySize(reasons) == 0;
	cJSON_Delete(reasons);
	if (!fresh)
		return 0;

	/* Up to date: record the reuse with what the lock says was produced. */
	const cJSON *le = lock_entry(t, s->name);
	cJSON *e = stage_entry(t, s, "skipped");
	const cJSON *ix = cJSON_GetObjectItem(t->index, s->name);
	const char *from = cJSON_GetStringValue(cJSON_GetObjectItem(ix, "run"));
	const char *ixkey = cJSON_GetStringValue(cJSON_GetObjectItem(ix, "key"));
	if (from && ixkey && strcmp(ixkey, ts->key) == 0)
		cJSON_AddStringToObject(e, "reused_from", from);
	static const char *const parts[] = {"inputs", "outputs", "metrics"};
	for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
		const cJSON *part = cJSON_GetObjectItem(le, parts[i]);
		cJSON_AddItemToObject(e, parts[i],
				      part ? cJSON_Duplicate(part, true) : cJSON_CreateObject());
	}
	add_times(e, ts->started_ms, realtime_ms());
	if (t->record) {
		cJSON_AddItemToArray(record_stages(t), e);
		if (save_record(t, err) < 0)
			return -1;
	} else {
		cJSON_Delete(e);
	}
	return 1;
}

/* Digests every declared output (and metrics file, parsed) of a job that
 * succeeded; fails naming an output it did not write. */
static int collect_outputs(cJSON *outputs, cJSON *metrics, struct tracker *t,
			   const struct stage *s, struct cp_error *err)
{
	for (int kind = 0; kind < 2; kind++) {
		const struct artifact_ref *refs = kind ? s->metrics : s->outputs;
		size_t n = kind ? s->nmetrics : s->noutputs;
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *name = ref_name(t, refs[i].volume, refs[i].path);
			cJSON *e;
			if (digest_ref(&e, t, refs[i].volume, refs[i].path, err) < 0)
				return cp_error_prefix(err, "stage \"%s\": %s %s", s->name,
						       kind ? "metrics" : "output", name);
			if (!entry_digest(e)) {
				cJSON_Delete(e);
				return cp_error_set(err,
						    "stage \"%s\" exited 0 but did not write its "
						    "declared %s %s",
						    s->name, kind ? "metrics file" : "output", name);
			}
			if (kind) {
				cleanup_free char *host = NULL;
				cJSON *values = NULL;
				const char *rel = NULL, *root = NULL;
				if (ref_host_path(&host, t, refs[i].volume, refs[i].path, err) == 0)
					root = ref_root(t, refs[i].volume, refs[i].path, &rel);
				if (!rel || json_read_file_in(&values, root, rel, 16 << 20, err) < 0) {
					cJSON_Delete(e);
					return cp_error_prefix(err, "stage \"%s\": metrics %s", s->name,
							       name);
				}
				cJSON_AddItemToObject(e, "values", values);
			}
			cJSON_AddItemToObject(kind ? metrics : outputs, name, e);
		}
	}
	return 0;
}

static int update_lock(struct tracker *t, const struct stage *s, const cJSON *outputs,
		       const cJSON *metrics, struct cp_error *err)
{
	struct tstate *ts = &t->st[stage_pos(t->p, s)];
	cJSON *le = cJSON_CreateObject();
	cJSON_AddStringToObject(le, "key", ts->key);
	static const char *const copied[] = {"image", "command", "entrypoint", "environment",
					     "working_dir", "user", "mounts", "params"};
	for (size_t i = 0; i < ARRAY_LEN(copied); i++)
		cJSON_AddItemToObject(le, copied[i],
				      cJSON_Duplicate(cJSON_GetObjectItem(ts->keyobj, copied[i]), true));
	cJSON_AddItemToObject(le, "inputs", cJSON_Duplicate(ts->inputs, true));
	cJSON_AddItemToObject(le, "outputs", cJSON_Duplicate(outputs, true));
	cJSON_AddItemToObject(le, "metrics", cJSON_Duplicate(metrics, true));
	cJSON *stages = cJSON_GetObjectItem(t->lock, "stages");
	cJSON_DeleteItemFromObject(stages, s->name);
	cJSON_AddItemToObject(stages, s->name, le);
	/* Stages no longer in the spec leave the lock. */
	for (cJSON *e = stages->child, *next; e; e = next) {
		next = e->next;
		if (!stage_named(t->p, e->string))
			cJSON_Delete(cJSON_DetachItemViaPointer(stages, e));
	}
	if (lock_save(t->lock_path, t->lock, err) < 0)
		return -1;

	cJSON *ix = cJSON_CreateObject();
	cJSON_AddStringToObject(ix, "key", ts->key);
	cJSON_AddStringToObject(ix, "run", t->o.run_id);
	cJSON_DeleteItemFromObject(t->index, s->name);
	cJSON_AddItemToObject(t->index, s->name, ix);
	return json_write_atomic_fast(t->index_path, t->index, err);
}

int track_after(void *ctx, const struct stage *s, int exit_code, struct cp_error *err)
{
	struct tracker *t = ctx;
	struct tstate *ts = &t->st[stage_pos(t->p, s)];
	bool ok = exit_code == 0;
	/* The stage may have written anything it mounts: digest afresh. */
	memo_clear(&t->memo);
	cJSON *outputs = cJSON_CreateObject(), *metrics = cJSON_CreateObject();
	int rc = 0;
	if (!ts->evaluated) {
		/* Services are not cached, but their record says what they served. */
		cJSON *r = NULL;
		if (evaluate(&r, t, s, err) < 0)
			rc = -1;
		cJSON_Delete(r);
	}
	if (rc == 0 && ok && !s->service) {
		rc = collect_outputs(outputs, metrics, t, s, err);
		if (rc == 0)
			rc = update_lock(t, s, outputs, metrics, err);
	}
	const char *status = s->service ? "service" : rc < 0 || !ok ? "failed" : "ran";
	cJSON *e = stage_entry(t, s, status);
	cJSON_AddItemToObject(e, "inputs",
			      ts->inputs ? cJSON_Duplicate(ts->inputs, true) : cJSON_CreateObject());
	cJSON_AddItemToObject(e, "outputs", outputs);
	cJSON_AddItemToObject(e, "metrics", metrics);
	cJSON_AddNumberToObject(e, "exit_code", exit_code);
	cleanup_free char *log = log_path(t, s);
	cJSON_AddStringToObject(e, "log", log);
	add_times(e, ts->started_ms ? ts->started_ms : realtime_ms(), realtime_ms());
	if (t->record) {
		cJSON_AddItemToArray(record_stages(t), e);
		if (save_record(t, rc < 0 ? NULL : err) < 0 && rc == 0)
			rc = -1;
	} else {
		cJSON_Delete(e);
	}
	return rc;
}

int track_verify(cJSON **out, struct tracker *t, struct cp_error *err)
{
	cJSON *bad = cJSON_CreateArray();
	const cJSON *stages = cJSON_GetObjectItem(t->lock, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const struct stage *s = stage_named(t->p, st->string);
		for (int kind = 0; s && kind < 2; kind++) {
			const struct artifact_ref *refs = kind ? s->metrics : s->outputs;
			size_t n = kind ? s->nmetrics : s->noutputs;
			const cJSON *locked = cJSON_GetObjectItem(st, kind ? "metrics" : "outputs");
			for (size_t i = 0; i < n; i++) {
				cleanup_free char *name = ref_name(t, refs[i].volume, refs[i].path);
				const char *want = entry_digest(cJSON_GetObjectItem(locked, name));
				cJSON *now;
				if (digest_ref(&now, t, refs[i].volume, refs[i].path, err) < 0) {
					cJSON_Delete(bad);
					return -1;
				}
				const char *have = entry_digest(now);
				if (!want || !have || strcmp(want, have) != 0) {
					cJSON *m = cJSON_CreateObject();
					cJSON_AddStringToObject(m, "stage", s->name);
					cJSON_AddStringToObject(m, "artifact", name);
					cJSON_AddStringToObject(m, "expected", want ? want : "not locked");
					cJSON_AddStringToObject(m, "actual", have ? have : "missing");
					cJSON_AddItemToArray(bad, m);
				}
				cJSON_Delete(now);
			}
		}
	}
	*out = bad;
	return 0;
}

static char *spec_digest(const struct pipeline *p)
{
	struct digest_ctx c;
	digest_init(&c);
	for (size_t i = 0; i < p->files.n; i++) {
		cleanup_free char *text = NULL;
		size_t len = 0;
		struct cp_error e = {0};
		if (fs_read_file(&text, &len, p->files.v[i], 0, &e) == 0)
			digest_update(&c, text, len);
	}
	char out[DIGEST_BUFLEN];
	digest_final(out, &c);
	return xstrdup(out);
}

static cJSON *new_record(struct tracker *t, struct cp_error *err)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "schema", RECORD_SCHEMA);
	cJSON_AddStringToObject(r, "id", t->o.run_id);
	cJSON_AddStringToObject(r, "cpipe_version", CPIPE_VERSION_STRING);
	cJSON_AddStringToObject(r, "project", t->p->name);
	cJSON_AddStringToObject(r, "runtime", t->o.runtime_name ? t->o.runtime_name : t->ops->name);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	cJSON_AddStringToObject(r, "host", host);
	struct passwd *pw = getpwuid(geteuid());
	cJSON_AddStringToObject(r, "user", pw ? pw->pw_name : "unknown");
	cJSON_AddNumberToObject(r, "pid", getpid());
	if (t->o.argv)
		cJSON_AddItemToObject(r, "argv", strvec_array(t->o.argv));
	cJSON *files = cJSON_AddArrayToObject(r, "spec_files");
	for (size_t i = 0; i < t->p->files.n; i++) {
		cleanup_free char *rel = ref_name(t, NULL, t->p->files.v[i]);
		cJSON_AddItemToArray(files, cJSON_CreateString(rel));
	}
	cleanup_free char *sd = spec_digest(t->p);
	cJSON_AddStringToObject(r, "spec_digest", sd);
	cleanup_free char *now = iso_time(realtime_ms());
	cJSON_AddStringToObject(r, "started", now);
	cJSON_AddStringToObject(r, "status", "running");

	struct git_facts g;
	if (git_facts_read(&g, t->p->dir, err) < 0)
		return cJSON_Delete(r), NULL;
	if (g.present) {
		cJSON *gj = cJSON_AddObjectToObject(r, "git");
		if (g.commit)
			cJSON_AddStringToObject(gj, "commit", g.commit);
		else
			cJSON_AddNullToObject(gj, "commit");
		if (g.branch)
			cJSON_AddStringToObject(gj, "branch", g.branch);
		cJSON_AddBoolToObject(gj, "dirty", g.dirty);
		if (g.remote)
			cJSON_AddStringToObject(gj, "remote", g.remote);
	} else {
		cJSON_AddNullToObject(r, "git");
	}
	git_facts_free(&g);

	cJSON *ov = cJSON_AddObjectToObject(r, "overrides");
	for (size_t i = 0; i < t->p->nstages; i++) {
		const struct stage *s = &t->p->stages[i];
		for (size_t k = 0; k < s->param_overrides.n; k++) {
			cleanup_free char *name = xasprintf("%s.%s", s->name, s->param_overrides.v[k].key);
			cJSON_AddStringToObject(ov, name, s->param_overrides.v[k].value);
		}
	}
	cJSON_AddArrayToObject(r, "stages");
	return r;
}

/* Temporary files of atomic writes interrupted by kill -9 carry the pid of
 * their writer; remove those whose writer is gone. */
static void sweep_temporaries(const char *pattern)
{
	glob_t g;
	if (glob(pattern, 0, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *dot = strrchr(g.gl_pathv[i], '.');
		long pid = dot ? strtol(dot + 1, NULL, 10) : 0;
		if (pid > 0 && kill((pid_t)pid, 0) < 0)
			unlink(g.gl_pathv[i]);
	}
	globfree(&g);
}

int track_open(struct tracker **out, const struct pipeline *p, const struct runtime_ops *ops,
	       struct runtime *rt, const struct track_options *o, struct cp_error *err)
{
	struct tracker *t = xcalloc(1, sizeof(*t));
	t->p = p;
	t->ops = ops;
	t->rt = rt;
	t->o = *o;
	t->st = xcalloc(p->nstages ? p->nstages : 1, sizeof(*t->st));
	t->lock_path = path_join(p->dir, "cpipe.lock");
	cleanup_free char *cache_dir = path_join(o->state_dir, "cache");
	t->index_path = path_join(cache_dir, "executions.json");
	cleanup_free char *stat_path = path_join(cache_dir, "stat.cache");
	cleanup_free char *pat1 = xasprintf("%s.tmp.*", t->lock_path);
	cleanup_free char *pat2 = xasprintf("%s/*.tmp.*", cache_dir);
	cleanup_free char *pat3 = xasprintf("%s/runs/*.tmp.*", o->state_dir);
	if (o->run_id) {
		sweep_temporaries(pat1);
		sweep_temporaries(pat2);
		sweep_temporaries(pat3);
	}
	if (fs_mkdir_p(cache_dir, 0755, err) < 0 || lock_load(&t->lock, t->lock_path, err) < 0)
		goto fail;
	struct stat st;
	if (stat(t->index_path, &st) == 0) {
		struct cp_error ignored = {0};
		if (json_read_file(&t->index, t->index_path, 64 << 20, &ignored) < 0)
			t->index = NULL; /* a cache: rebuilt as stages run */
	}
	if (!t->index)
		t->index = cJSON_CreateObject();
	struct cp_error cache_err = {0};
	if (statcache_open(&t->sc, stat_path, &cache_err) < 0)
		t->sc = NULL; /* unreadable cache: hash everything, still correct */
	if (o->run_id) {
		if (!(t->record = new_record(t, err)) || save_record(t, err) < 0)
			goto fail;
	}
	*out = t;
	return 0;
fail:
	track_close(t, NULL, NULL);
	return -1;
}

int track_close(struct tracker *t, const char *status, struct cp_error *err)
{
	if (!t)
		return 0;
	int rc = 0;
	if (status && t->record) {
		cJSON_ReplaceItemInObject(t->record, "status", cJSON_CreateString(status));
		cleanup_free char *now = iso_time(realtime_ms());
		cJSON_AddStringToObject(t->record, "ended", now);
		/* Stages the plan selected that never got to run. */
		cJSON *stages = record_stages(t);
		for (size_t k = 0; t->o.plan && k < t->o.plan->n; k++) {
			const struct stage *s = &t->p->stages[t->o.plan->order[k]];
			bool seen = false;
			for (const cJSON *e = stages->child; e && !seen; e = e->next)
				seen = strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")),
					      s->name) == 0;
			if (!seen) {
				cJSON *e = cJSON_CreateObject();
				cJSON_AddStringToObject(e, "name", s->name);
				cJSON_AddStringToObject(e, "status", "not-run");
				cJSON_AddItemToArray(stages, e);
			}
		}
		rc = record_save(t->o.state_dir, t->record, true, err);
	}
	if (t->sc) {
		struct cp_error ignored = {0};
		statcache_save(t->sc, &ignored);
	}
	for (size_t i = 0; i < t->p->nstages; i++) {
		cJSON_Delete(t->st[i].keyobj);
		cJSON_Delete(t->st[i].inputs);
		free(t->st[i].image);
	}
	free(t->st);
	cJSON_Delete(t->lock);
	memo_clear(&t->memo);
	kvvec_free(&t->roots);
	cJSON_Delete(t->index);
	cJSON_Delete(t->record);
	if (t->sc)
		statcache_free(t->sc);
	free(t->lock_path);
	free(t->index_path);
	free(t);
	return rc;
}
