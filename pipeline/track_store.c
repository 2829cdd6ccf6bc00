/* The tracker's side of the artifact store: committing outputs as they are
 * digested, the run cache (key -> outputs), restoring a stage from it
 * instead of running it, and checking out a run's or a lock's outputs. */
#include "track_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../artifacts/remote.h"
#include "../lib/fs.h"

int track_commit_ref(cJSON **out, char *type, struct tracker *t, const char *volume,
		     const char *path, struct cp_error *err)
{
	cleanup_free char *host = NULL;
	struct cp_error ignored = {0};
	const char *force = getenv("CPIPE_ARTIFACTS_VIA_ARCHIVE");
	struct stat st;
	*type = 0;
	if (t->cas && volume && t->ops->caps.archive_writes &&
	    ((force && strcmp(force, "1") == 0) || !t->ops->caps.host_volumes))
		return track_commit_via_archive(out, type, t, volume, path, err);
	if (!t->cas || (force && strcmp(force, "1") == 0) ||
	    track_ref_host_path(&host, t, volume, path, &ignored) < 0)
		return track_digest_ref(out, t, volume, path, err);
	/* Resolved inside its volume (or the project), as the container saw
	 * it: a link a stage left there never leads the copy onto the host.
	 * The store then reads the resolved parent, whose path has no link. */
	const char *rel;
	const char *root = track_ref_root(t, volume, path, &rel);
	cleanup_free char *real = NULL;
	if (root) {
		cleanup_close int pfd = -1;
		cleanup_free char *name = NULL;
		int r = fs_resolve_beneath(&pfd, &name, root, rel, err);
		if (r < 0)
			return -1;
		if (r == 1)
			return track_digest_ref(out, t, volume, path, err);
		cleanup_free char *proc = xasprintf("/proc/self/fd/%d", pfd);
		cleanup_free char *parent = realpath(proc, NULL);
		if (!parent)
			return cp_error_errno(err, EXIT_USAGE, "resolving %s", host);
		real = strcmp(name, ".") == 0 ? xstrdup(parent) : path_join(parent, name);
	} else {
		real = xstrdup(host);
	}
	if (lstat(real, &st) < 0)
		return track_digest_ref(out, t, volume, path, err);
	struct tree_digest td;
	if (cas_commit(&td, t->cas, real, t->sc, err) < 0)
		return -1;
	*type = td.type;
	*out = track_entry_json(&td);
	return 0;
}

void track_runcache_save(struct tracker *t, const struct stage *s, const cJSON *outputs,
			 const cJSON *metrics, const cJSON *types)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	if (!t->cas || !t->o.run_id)
		return;
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "key", ts->key);
	cJSON_AddStringToObject(doc, "stage", s->name);
	cJSON_AddStringToObject(doc, "run", t->o.run_id);
	const cJSON *parts[2] = {outputs, metrics};
	for (int k = 0; k < 2; k++) {
		cJSON *o = cJSON_AddObjectToObject(doc, k ? "metrics" : "outputs");
		for (const cJSON *e = parts[k]->child; e; e = e->next) {
			const char *ty = cJSON_GetStringValue(cJSON_GetObjectItem(types, e->string));
			if (!ty) { /* not committed (read through the runtime): no entry */
				cJSON_Delete(doc);
				return;
			}
			cJSON *c = cJSON_Duplicate(e, true);
			cJSON_AddStringToObject(c, "type", ty);
			cJSON_AddItemToObject(o, e->string, c);
		}
	}
	struct cp_error ignored = {0};
	runcache_save(t->cas, ts->key, doc, &ignored); /* a cache: a failed save costs a rerun */
	cJSON_Delete(doc);
}

/* Where a ref is restored: the volume's host directory and the path in it,
 * or the project directory for a bind path inside the project. */
static int restore_place(char **root, const char **rel, struct tracker *t,
			 const struct artifact_ref *r, struct cp_error *err)
{
	if (r->volume) {
		*rel = r->path;
		return track_ref_host_path(root, t, r->volume, "/", err);
	}
	size_t n = strlen(t->p->dir);
	if (strncmp(r->path, t->p->dir, n) != 0 || (r->path[n] != '/' && r->path[n] != '\0'))
		return cp_error_set(err, EXIT_USAGE,
				    "%s is outside the project; it cannot be restored", r->path);
	*root = xstrdup(t->p->dir);
	*rel = r->path + n;
	return 0;
}

/* Outputs restored into volumes the runtime holds itself (no host path,
 * caps.archive_writes): checked out on the host first, in a directory of
 * the store's tmp/ (swept after a kill -9), then written into the volume
 * by the runtime once every output is there. */
struct far_write {
	char *volume, *path, *dir;
};
struct far_writes {
	struct far_write *v;
	size_t n;
};

static bool far_volume(const struct tracker *t, const struct artifact_ref *r)
{
	return r->volume && !t->ops->caps.host_volumes && t->ops->caps.archive_writes;
}

/* A staging directory for output `r`: *root, and *rel below it. */
static int far_stage(struct far_writes *fw, char **root, const char **rel, struct tracker *t,
		     const struct artifact_ref *r, struct cp_error *err)
{
	static unsigned seq;
	char *dir = xasprintf("%s/tmp/restore%x.tmp.%ld", t->cas->root, seq++, (long)getpid());
	if (mkdir(dir, 0700) < 0) {
		cp_error_errno(err, EXIT_USAGE, "creating %s", dir);
		free(dir);
		return -1;
	}
	fw->v = xrealloc(fw->v, (fw->n + 1) * sizeof(*fw->v));
	fw->v[fw->n++] = (struct far_write){xstrdup(r->volume), xstrdup(r->path), dir};
	*root = xstrdup(dir);
	*rel = "t";
	return 0;
}

static void far_free(struct far_writes *fw)
{
	for (size_t i = 0; i < fw->n; i++) {
		struct cp_error ignored = {0};
		fs_rm_rf(fw->v[i].dir, &ignored);
		free(fw->v[i].volume);
		free(fw->v[i].path);
		free(fw->v[i].dir);
	}
	free(fw->v);
	*fw = (struct far_writes){0};
}

/* Writes what was staged into the volumes, then drops the staging. */
static int far_commit(struct far_writes *fw, struct tracker *t, struct cp_error *err)
{
	int rc = 0;
	for (size_t i = 0; i < fw->n && rc == 0; i++) {
		cleanup_free char *src = xasprintf("%s/t", fw->v[i].dir);
		if (t->ops->volume_write_tree(t->rt, fw->v[i].volume, fw->v[i].path, src, err) < 0)
			rc = cp_error_prefix(err, "restoring %s:%s", fw->v[i].volume, fw->v[i].path);
	}
	far_free(fw);
	return rc;
}

/* The type of a locked or recorded entry: the run cache's when it knows
 * this digest, else a directory when it counts files. */
static char entry_type(const cJSON *e, const cJSON *cached)
{
	const char *d = track_entry_digest(e), *cd = track_entry_digest(cached);
	const char *ty = cJSON_GetStringValue(cJSON_GetObjectItem(cached, "type"));
	if (d && cd && ty && strcmp(d, cd) == 0)
		return ty[0];
	return cJSON_GetObjectItem(e, "files") ? 'd' : 'f';
}

/* Stages every declared output and metrics file of `s` that `entry` (lock
 * form: "outputs", "metrics") names; `cached` (may be NULL) is the run
 * cache entry for types. */
static int stage_outputs(struct cas_checkout *co, struct far_writes *fw, struct tracker *t,
			 const struct stage *s, const cJSON *entry, const cJSON *cached,
			 struct cp_error *err)
{
	struct artifact_ref *seen = NULL;
	size_t nseen = 0;
	if (track_observes(s))
		track_part_refs(&seen, &nseen, t->p, cJSON_GetObjectItem(entry, "outputs"));
	int rc = 0;
	for (int kind = 0; kind < 2 && rc == 0; kind++) {
		const struct artifact_ref *refs = kind ? s->metrics : seen ? seen : s->outputs;
		size_t n = kind ? s->nmetrics : seen ? nseen : s->noutputs;
		const char *part = kind ? "metrics" : "outputs";
		const cJSON *have = cJSON_GetObjectItem(entry, part);
		for (size_t i = 0; i < n && rc == 0; i++) {
			cleanup_free char *name = track_ref_name(t->p, refs[i].volume, refs[i].path);
			const cJSON *e = cJSON_GetObjectItem(have, name);
			const char *d = track_entry_digest(e);
			if (track_entry_deleted(e))
				continue; /* what the stage deleted stays as it is */
			if (!d) {
				rc = cp_error_set(err, EXIT_USAGE,
						  "stage \"%s\": %s %s has no recorded digest",
						  s->name, kind ? "metrics" : "output", name);
				break;
			}
			cleanup_free char *root = NULL;
			const char *rel = NULL;
			cleanup_free char *shown = xasprintf("stage \"%s\": %s", s->name, name);
			if ((far_volume(t, &refs[i]) ? far_stage(fw, &root, &rel, t, &refs[i], err)
						     : restore_place(&root, &rel, t, &refs[i], err)) < 0 ||
			    cas_checkout_stage(co, t->cas, root, rel,
					       entry_type(e, cJSON_GetObjectItem(cJSON_GetObjectItem(cached, part), name)),
					       d, shown, err) < 0)
				rc = -1;
		}
	}
	track_refs_free(seen, nseen);
	return rc;
}

/* The run cache entry for `s`'s current key whose objects are all in the
 * store, or NULL. Caller owns. */
static cJSON *usable_entry(struct tracker *t, const struct stage *s)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	cJSON *doc = NULL;
	if (!t->cas || !ts->evaluated || (s->noutputs + s->nmetrics == 0 && !track_observes(s)) ||
	    runcache_load(&doc, t->cas, ts->key) != 1)
		return NULL;
	struct artifact_ref *seen = NULL;
	size_t nseen = 0;
	if (track_observes(s))
		track_part_refs(&seen, &nseen, t->p, cJSON_GetObjectItem(doc, "outputs"));
	for (int kind = 0; kind < 2 && doc; kind++) {
		const cJSON *part = cJSON_GetObjectItem(doc, kind ? "metrics" : "outputs");
		const struct artifact_ref *refs = kind ? s->metrics : seen ? seen : s->outputs;
		size_t n = kind ? s->nmetrics : seen ? nseen : s->noutputs;
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *name = track_ref_name(t->p, refs[i].volume, refs[i].path);
			const cJSON *e = cJSON_GetObjectItem(part, name);
			const char *ty = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));
			struct cp_error ignored = {0};
			if (track_entry_deleted(e))
				continue;
			if (!e || !ty || cas_check(t->cas, ty[0], track_entry_digest(e), name, &ignored) < 0) {
				cJSON_Delete(doc);
				doc = NULL;
				break;
			}
		}
	}
	track_refs_free(seen, nseen);
	return doc;
}

const char *track_restorable(struct tracker *t, const struct stage *s)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	free(ts->restorable_from);
	ts->restorable_from = NULL;
	cJSON *doc = usable_entry(t, s);
	if (doc) {
		const char *run = cJSON_GetStringValue(cJSON_GetObjectItem(doc, "run"));
		ts->restorable_from = xstrdup(run ? run : "?");
	}
	cJSON_Delete(doc);
	return ts->restorable_from;
}

/* run --pull: the remote's entry and objects for the stage's key, when
 * the store lacks them. 0 whether or not the remote had them. */
static int pull_key(struct tracker *t, const struct stage *s, struct cp_error *err)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	struct strvec keys = {0};
	strvec_push(&keys, ts->key);
	struct remote_stats st;
	bool found = false;
	int rc = remote_fetch(&st, &found, t->o.remote, t->cas, &keys, err);
	strvec_free(&keys);
	if (rc < 0)
		return cp_error_prefix(err, "stage \"%s\"", s->name);
	if (found && !t->o.quiet) {
		fflush(stdout);
		fprintf(stderr, "cpipe: %s pulled from %s (%llu bytes)\n", s->name,
			remote_shown(t->o.remote), st.bytes);
	}
	return 0;
}

int track_restore(cJSON **used, struct tracker *t, const struct stage *s, struct cp_error *err)
{
	*used = NULL;
	cJSON *doc = usable_entry(t, s);
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	if (!doc && t->o.remote && t->cas && ts->evaluated &&
	    (s->noutputs + s->nmetrics > 0 || track_observes(s))) {
		if (pull_key(t, s, err) < 0)
			return -1;
		doc = usable_entry(t, s);
	}
	if (!doc)
		return 0;
	struct cas_checkout co = CAS_CHECKOUT_INIT;
	struct far_writes fw = {0};
	if (stage_outputs(&co, &fw, t, s, doc, doc, err) < 0) {
		cas_checkout_abort(&co);
		far_free(&fw);
		cJSON_Delete(doc);
		return -1;
	}
	if (cas_checkout_commit(&co, err) < 0 || far_commit(&fw, t, err) < 0) {
		far_free(&fw);
		cJSON_Delete(doc);
		return -1;
	}
	track_memo_clear(&t->memo); /* the volumes changed */
	for (int kind = 0; kind < 2; kind++)
		for (cJSON *e = cJSON_GetObjectItem(doc, kind ? "metrics" : "outputs")->child; e;
		     e = e->next)
			cJSON_DeleteItemFromObject(e, "type");
	*used = doc;
	return 1;
}

int track_checkout(struct tracker *t, const cJSON *stages, const char *what,
		   struct cp_error *err)
{
	struct cas_checkout co = CAS_CHECKOUT_INIT;
	struct far_writes fw = {0};
	int count = 0;
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const char *name = cJSON_IsArray(stages)
					   ? cJSON_GetStringValue(cJSON_GetObjectItem(st, "name"))
					   : st->string;
		const struct stage *s = name ? track_stage_named(t->p, name) : NULL;
		const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(st, "status"));
		if (!s || s->service || !cJSON_GetObjectItem(st, "outputs") ||
		    (status && strcmp(status, "ran") && strcmp(status, "skipped") &&
		     strcmp(status, "restored")))
			continue;
		if (s->noutputs + s->nmetrics == 0 && !track_observes(s))
			continue;
		const char *key = cJSON_GetStringValue(cJSON_GetObjectItem(st, "key"));
		cJSON *cached = NULL;
		if (key)
			runcache_load(&cached, t->cas, key);
		int rc = stage_outputs(&co, &fw, t, s, st, cached, err);
		cJSON_Delete(cached);
		if (rc < 0) {
			cas_checkout_abort(&co);
			far_free(&fw);
			return cp_error_prefix(err, "checkout %s (nothing was changed)", what);
		}
		count++;
	}
	if (count == 0) {
		cas_checkout_abort(&co);
		far_free(&fw);
		return cp_error_set(err, EXIT_USAGE,
				    "checkout %s: it records no outputs of this project's stages",
				    what);
	}
	if (cas_checkout_commit(&co, err) < 0 || far_commit(&fw, t, err) < 0) {
		far_free(&fw);
		return -1;
	}
	track_memo_clear(&t->memo);
	return count;
}
