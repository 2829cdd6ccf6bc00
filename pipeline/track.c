#include "track_internal.h"

#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "task.h"


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
		struct memo bigger = {.cap = m->cap ? 2 * m->cap : 256, .scans = m->scans,
				      .nscans = m->nscans};
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

void track_memo_clear(struct memo *m)
{
	track_scans_clear(m);
	for (size_t i = 0; i < m->cap; i++) {
		free(m->keys[i]);
		cJSON_Delete(m->vals[i]);
	}
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

size_t track_stage_pos(const struct pipeline *p, const struct stage *s)
{
	return (size_t)(s - p->stages);
}

const struct stage *track_stage_named(const struct pipeline *p, const char *name)
{
	return pipeline_stage(p, name);
}

/* How an artifact is named in records and the lock: "vol:/path", or a host
 * path relative to the project ("./data") so the lock does not depend on
 * where the project is checked out. */
char *track_ref_name(const struct pipeline *p, const char *volume, const char *path)
{
	if (volume)
		return xasprintf("%s:%s", volume, path);
	size_t n = strlen(p->dir);
	if (strncmp(path, p->dir, n) == 0 && (path[n] == '/' || path[n] == '\0'))
		return path[n] ? xasprintf(".%s", path + n) : xstrdup(".");
	return xstrdup(path);
}

int track_ref_host_path(char **out, struct tracker *t, const char *volume, const char *path,
			 struct cp_error *err)
{
	if (!volume) {
		*out = xstrdup(path);
		return 0;
	}
	if (!t->ops->caps.host_volumes)
		return cp_error_set(err, EXIT_USAGE, "the %s runtime cannot read volume \"%s\"",
				    t->ops->name, volume);
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
 * read as written (NULL root). Call after track_ref_host_path succeeded. */
const char *track_ref_root(const struct tracker *t, const char *volume, const char *path,
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

int track_archive_visit(void *ud, const struct volume_entry *e, struct cp_error *err)
{
	struct track_archive_walk *w = ud;
	char type = S_ISREG(e->mode) ? 'f' : S_ISDIR(e->mode) ? 'd' : S_ISLNK(e->mode) ? 'l' : 0;
	if (!type && w->whole_mount)
		return 0; /* a socket or fifo in an observed mount: no content */
	if (!type)
		return cp_error_set(err, EXIT_USAGE, "%s: not a regular file, directory or symlink",
				    *e->path ? e->path : "artifact");
	char d[DIGEST_BUFLEN] = "";
	unsigned long long size = 0;
	if (type == 'f') {
		struct digest_ctx c;
		struct cas_writer *cw = NULL;
		digest_init(&c);
		if (w->cas && cas_writer_open(&cw, w->cas, err) < 0)
			return -1;
		char buf[65536];
		long n;
		while ((n = e->read(e, buf, sizeof(buf), err)) > 0) {
			digest_update(&c, buf, (size_t)n);
			size += (unsigned long long)n;
			if (cw && cas_writer_write(cw, buf, (size_t)n, err) < 0) {
				n = -1;
				break;
			}
		}
		digest_final(d, &c);
		if (n < 0) {
			cas_writer_abort(cw);
			return -1;
		}
		char stored[DIGEST_BUFLEN];
		if (cw && cas_writer_finish(stored, cw, err) < 0)
			return -1;
	} else if (type == 'l') {
		size = strlen(e->link);
		digest_bytes(d, e->link, size);
		if (w->cas && cas_put_bytes(d, w->cas, e->link, size, err) < 0)
			return -1;
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

struct file_grab {
	struct strbuf sb;
	size_t max;
	bool seen;
};

static int grab_visit(void *ud, const struct volume_entry *e, struct cp_error *err)
{
	struct file_grab *g = ud;
	if (*e->path)
		return 0;
	if (!S_ISREG(e->mode))
		return cp_error_set(err, EXIT_USAGE, "not a regular file");
	g->seen = true;
	char buf[65536];
	long n;
	while ((n = e->read(e, buf, sizeof(buf), err)) > 0) {
		if (g->sb.len + (size_t)n > g->max)
			return cp_error_set(err, EXIT_USAGE, "larger than %zu bytes", g->max);
		if (sb_add(&g->sb, buf, (size_t)n) < 0)
			return cp_error_set(err, EXIT_STAGE_FAILED, "out of memory");
	}
	return n < 0 ? -1 : 0;
}

int track_read_volume_file(char **out, size_t *len, struct tracker *t, const char *volume,
			   const char *path, size_t max, struct cp_error *err)
{
	struct file_grab g = {.max = max};
	int rc = t->ops->volume_read_tree(t->rt, volume, path, grab_visit, &g, err);
	if (rc == 1 || (rc == 0 && !g.seen))
		rc = cp_error_set(err, EXIT_USAGE, "%s:%s does not exist", volume, path);
	if (rc < 0) {
		sb_free(&g.sb);
		return -1;
	}
	*len = g.sb.len;
	*out = sb_detach(&g.sb);
	return 0;
}

/* The entry of `path` in `volume` read through the runtime; with `cas`
 * its objects are stored as they are read and *type says its type. */
static int via_archive(cJSON **out, char *type, struct cas *cas, struct tracker *t,
		       const char *volume, const char *path, struct cp_error *err)
{
	struct track_archive_walk w = {.b = TREE_BUILDER_INIT, .cas = cas};
	int rc = t->ops->volume_read_tree(t->rt, volume, path, track_archive_visit, &w, err);
	cJSON *o = cJSON_CreateObject();
	if (rc == 1) {
		cJSON_AddBoolToObject(o, "missing", true);
	} else if (rc == 0 && w.type == 'd') {
		struct strbuf listing = STRBUF_INIT;
		if (tree_builder_listing(w.digest, cas ? &listing : NULL, &w.b, err) < 0)
			rc = -1;
		char stored[DIGEST_BUFLEN];
		if (rc == 0 && cas && cas_put_bytes(stored, cas, listing.buf, listing.len, err) < 0)
			rc = -1;
		sb_free(&listing);
		w.size = w.b.size;
	}
	if (type)
		*type = rc == 0 ? w.type : 0;
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

int track_commit_via_archive(cJSON **out, char *type, struct tracker *t, const char *volume,
			     const char *path, struct cp_error *err)
{
	return via_archive(out, type, t->cas, t, volume, path, err);
}

cJSON *track_entry_json(const struct tree_digest *td)
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
int track_digest_ref(cJSON **out, struct tracker *t, const char *volume, const char *path,
		      struct cp_error *err)
{
	cleanup_free char *host = NULL;
	const char *force = getenv("CPIPE_ARTIFACTS_VIA_ARCHIVE");
	if (volume && t->ops->caps.archive_reads && (force && strcmp(force, "1") == 0))
		return via_archive(out, NULL, NULL, t, volume, path, err);
	if (track_ref_host_path(&host, t, volume, path, err) < 0) {
		if (!volume || !t->ops->caps.archive_reads)
			return -1;
		return via_archive(out, NULL, NULL, t, volume, path, err);
	}
	const cJSON *seen = memo_get(&t->memo, host);
	if (seen && !cJSON_IsNull(seen)) { /* null: a prefetch that failed */
		*out = cJSON_Duplicate(seen, true);
		return 0;
	}
	const char *rel;
	const char *root = track_ref_root(t, volume, path, &rel);
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
	cJSON *o = track_entry_json(&td);
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
				if (track_ref_host_path(&host, t, lists[l][i].volume, lists[l][i].path,
						  &ignored) < 0)
					continue; /* digested on demand (archive path) */
				struct stat st;
				const char *rel;
				const char *root =
					track_ref_root(t, lists[l][i].volume, lists[l][i].path, &rel);
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
			memo_put(&t->memo, paths.v[i], track_entry_json(&reqs[i].out));
	free(reqs);
	strvec_free(&paths);
	strvec_free(&roots);
	strvec_free(&rels);
	return rc;
}

struct cas *track_store(struct tracker *t)
{
	return t->cas;
}

const char *track_entry_digest(const cJSON *e)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(e, "digest"));
}

/* The inputs of a stage: what it declares, its code (track_code.c), for
 * an observed stage what its mounts hold (track_observe.c), plus the
 * outputs of the jobs it depends on. Object: name -> digest entry. */
int track_stage_inputs(cJSON **out, struct tracker *t, const struct stage *s,
			struct cp_error *err)
{
	cJSON *in = cJSON_CreateObject();
	for (size_t i = 0; i < s->ninputs; i++) {
		cleanup_free char *name = track_ref_name(t->p, s->inputs[i].volume, s->inputs[i].path);
		if (cJSON_GetObjectItem(in, name))
			continue;
		cJSON *e;
		if (track_digest_ref(&e, t, s->inputs[i].volume, s->inputs[i].path, err) < 0)
			goto fail;
		cJSON_AddItemToObject(in, name, e);
	}
	struct strvec code = {0};
	bool local = !t->ops->caps.images;
	if (track_code_files(&code, t->p, s, t->o.state_dir, t->lock_path, local,
			     local || t->ops->caps.image_names, err) < 0)
		goto fail;
	for (size_t i = 0; i < code.n; i++) {
		cleanup_free char *name = track_ref_name(t->p, NULL, code.v[i]);
		cJSON *e;
		if (cJSON_GetObjectItem(in, name))
			continue;
		if (track_digest_ref(&e, t, NULL, code.v[i], err) < 0) {
			strvec_free(&code);
			goto fail;
		}
		cJSON_AddItemToObject(in, name, e);
	}
	strvec_free(&code);
	if (track_observes(s) && track_observed_reads(in, t, s, NULL, err) < 0)
		goto fail;
	for (size_t d = 0; d < s->ndeps; d++) {
		const struct stage *up = track_stage_named(t->p, s->deps[d].stage);
		if (!up || up->service || s->deps[d].condition != DEP_COMPLETED_SUCCESSFULLY)
			continue;
		struct artifact_ref *seen = NULL;
		size_t nseen = 0;
		if (track_observes(up))
			track_part_refs(&seen, &nseen, t->p,
					cJSON_GetObjectItem(track_lock_entry(t, up->name), "outputs"));
		for (int kind = 0; kind < 3; kind++) {
			const struct artifact_ref *refs = kind == 2 ? seen : kind ? up->metrics : up->outputs;
			size_t n = kind == 2 ? nseen : kind ? up->nmetrics : up->noutputs;
			for (size_t i = 0; i < n; i++) {
				cleanup_free char *name = track_ref_name(t->p, refs[i].volume, refs[i].path);
				if (cJSON_GetObjectItem(in, name))
					continue;
				cJSON *e;
				if (track_digest_ref(&e, t, refs[i].volume, refs[i].path, err) < 0) {
					track_refs_free(seen, nseen);
					goto fail;
				}
				cJSON_AddItemToObject(in, name, e);
			}
		}
		track_refs_free(seen, nseen);
	}
	*out = in;
	return 0;
fail:
	cJSON_Delete(in);
	return -1;
}

/* The image a stage runs in, for its key and record: "local" on the
 * local runtime; else the image ID, built first during a run when the
 * stage has build: (so a changed Dockerfile changes the key, and an
 * identical rebuild does not). Outside a run nothing is built or pulled:
 * an image not there yet is "absent", which makes the stage stale. */
int track_resolve_image(struct tracker *t, const struct stage *s, struct cp_error *err)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	if (ts->image)
		return 0;
	if (!t->ops->caps.images) {
		ts->image = xstrdup("local");
		return 0;
	}
	struct task_desc desc;
	task_desc_init(&desc, t->p, s);
	int rc = t->ops->image_prepare(t->rt, &desc, t->o.run_id != NULL, &ts->image, err);
	if (rc == 1) {
		ts->image = xstrdup("absent");
		ts->image_absent = true;
	}
	return rc < 0 ? -1 : 0;
}

const char *track_image_id(struct tracker *t, const struct stage *s)
{
	const char *id = t->st[track_stage_pos(t->p, s)].image;
	return id ? id : "unknown";
}

int track_verify(cJSON **out, struct tracker *t, struct cp_error *err)
{
	cJSON *bad = cJSON_CreateArray();
	const cJSON *stages = cJSON_GetObjectItem(t->lock, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const struct stage *s = track_stage_named(t->p, st->string);
		struct artifact_ref *seen = NULL;
		size_t nseen = 0;
		if (s && track_observes(s))
			track_part_refs(&seen, &nseen, t->p, cJSON_GetObjectItem(st, "outputs"));
		for (int kind = 0; s && kind < 2; kind++) {
			const struct artifact_ref *refs = kind ? s->metrics : seen ? seen : s->outputs;
			size_t n = kind ? s->nmetrics : seen ? nseen : s->noutputs;
			const cJSON *locked = cJSON_GetObjectItem(st, kind ? "metrics" : "outputs");
			for (size_t i = 0; i < n; i++) {
				cleanup_free char *name = track_ref_name(t->p, refs[i].volume, refs[i].path);
				const cJSON *le = cJSON_GetObjectItem(locked, name);
				const char *want = track_entry_digest(le);
				cJSON *now;
				if (track_digest_ref(&now, t, refs[i].volume, refs[i].path, err) < 0) {
					track_refs_free(seen, nseen);
					cJSON_Delete(bad);
					return -1;
				}
				const char *have = track_entry_digest(now);
				if (track_entry_deleted(le) && !have) {
					/* deleted by the stage, and still gone */
				} else if (!want || !have || strcmp(want, have) != 0) {
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
		track_refs_free(seen, nseen);
	}
	*out = bad;
	return 0;
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
	if (o->run_id) {
		/* Where cpipe writes state files (the store sweeps its own;
		 * run/ goes whole with its task). */
		static const char *const dirs[] = {".", "cache", "runs", "services", "kube-forward"};
		fs_sweep_dead(p->dir, "cpipe.lock.tmp.", "");
		for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
			cleanup_free char *dir = path_join(o->state_dir, dirs[i]);
			fs_sweep_dead(dir, "", ".tmp.");
		}
	}
	if (fs_mkdir_p(cache_dir, 0700, err) < 0 || lock_load(&t->lock, t->lock_path, err) < 0)
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
	if (cas_open(&t->cas, o->state_dir, o->run_id ? err : &cache_err) < 0) {
		if (o->run_id)
			goto fail; /* a run must be able to keep its outputs */
		t->cas = NULL;
	}
	for (size_t k = 0; o->run_id && o->plan && k < o->plan->n; k++)
		if (p->stages[o->plan->order[k]].param_overrides.n)
			t->experiment = true;
	if (o->run_id && o->one_off)
		t->experiment = true;
	else if (t->experiment && !o->quiet)
		fprintf(stderr, "cpipe: --set given: an experiment; cpipe.lock is left as the "
				"spec describes (see cpipe runs)\n");
	if (o->run_id) {
		if (!(t->record = track_new_record(t, err)) || track_record_save(t, false, err) < 0)
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
		cJSON *stages = track_record_stages(t);
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
		rc = track_record_save(t, true, err);
	}
	if (t->lock_unsynced)
		fs_sync_dir(t->lock_path);
	if (t->sc) {
		struct cp_error ignored = {0};
		statcache_save(t->sc, &ignored);
	}
	for (size_t i = 0; i < t->p->nstages; i++) {
		cJSON_Delete(t->st[i].keyobj);
		cJSON_Delete(t->st[i].inputs);
		free(t->st[i].image);
		free(t->st[i].image_ran);
		free(t->st[i].restorable_from);
		track_snapshot_free(&t->st[i]);
	}
	cas_close(t->cas);
	free(t->st);
	cJSON_Delete(t->lock);
	track_memo_clear(&t->memo);
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

