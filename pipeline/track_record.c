#include "track_internal.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/git.h"
#include "../lib/fs.h"
#include "../lib/defaults.h"
#include "task.h"

static cJSON *strvec_array(const struct strvec *sv)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < sv->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(sv->v[i]));
	return a;
}

cJSON *track_record_stages(struct tracker *t)
{
	return cJSON_GetObjectItem(t->record, "stages");
}

int track_record_save(struct tracker *t, bool durable, struct cp_error *err)
{
	return t->record ? record_save(t->o.state_dir, t->record, durable, err) : 0;
}

/* The record entry of a stage: what ran (or was reused) and with what. */
static cJSON *stage_entry(struct tracker *t, const struct stage *s, const char *status)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "name", s->name);
	cJSON_AddStringToObject(e, "status", status);
	cJSON_AddBoolToObject(e, "service", s->service);
	if (ts->evaluated)
		cJSON_AddStringToObject(e, "key", ts->key);
	track_stage_fields(e, t->p, s);
	cJSON *img = cJSON_AddObjectToObject(e, "image");
	if (s->image)
		cJSON_AddStringToObject(img, "ref", s->image);
	cJSON_AddStringToObject(img, "digest", track_image_id(t, s));
	if (ts->image_ran)
		cJSON_AddStringToObject(img, "ran", ts->image_ran);
	const cJSON *warnings = task_notes_stage(t->o.notes, s->name);
	if (warnings)
		cJSON_AddItemToObject(e, "warnings", cJSON_Duplicate(warnings, true));
	/* Whatever else a field holds (an image ref, a --set value), no secret
	 * value is written down. */
	redactor_json(&t->p->secrets, e);
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

/* A stale job whose key the run cache knows: its outputs are put back
 * and it is recorded as restored (2); 0 when the store cannot. */
static int restore_stage(struct tracker *t, const struct stage *s, struct cp_error *err)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	cJSON *used = NULL;
	int r = track_restore(&used, t, s, err);
	if (r <= 0)
		return r;
	const cJSON *outputs = cJSON_GetObjectItem(used, "outputs");
	const cJSON *metrics = cJSON_GetObjectItem(used, "metrics");
	const char *from = cJSON_GetStringValue(cJSON_GetObjectItem(used, "run"));
	if (track_update_lock(t, s, outputs, metrics, from, err) < 0) {
		cJSON_Delete(used);
		return -1;
	}
	cJSON *e = stage_entry(t, s, "restored");
	if (from)
		cJSON_AddStringToObject(e, "restored_from", from);
	cJSON_AddItemToObject(e, "inputs",
			      ts->inputs ? cJSON_Duplicate(ts->inputs, true) : cJSON_CreateObject());
	cJSON_AddItemToObject(e, "outputs", cJSON_Duplicate(outputs, true));
	cJSON_AddItemToObject(e, "metrics", cJSON_Duplicate(metrics, true));
	add_times(e, ts->started_ms, realtime_ms());
	if (!t->o.quiet) {
		fflush(stdout);
		fprintf(stderr, "cpipe: %s restored from run %s (key %s)\n", s->name,
			from ? from : "?", ts->key);
	}
	cJSON_Delete(used);
	cJSON_AddItemToArray(track_record_stages(t), e);
	return track_record_save(t, false, err) < 0 ? -1 : 2;
}

void track_ran(void *ctx, const struct stage *s, const char *ran_image)
{
	struct tracker *t = ctx;
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	free(ts->image_ran);
	ts->image_ran = xstrdup(ran_image);
}

int track_before(void *ctx, const struct stage *s, const char *image_id, struct cp_error *err)
{
	struct tracker *t = ctx;
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	ts->started_ms = realtime_ms();
	if (image_id) {
		/* What the key and the record name is what the task runs. */
		free(ts->image);
		ts->image = xstrdup(image_id);
		ts->image_absent = false;
	}
	if (s->service)
		return 0;
	cJSON *reasons = NULL;
	if (track_evaluate(&reasons, t, s, err) < 0)
		return -1;
	bool fresh = cJSON_GetArraySize(reasons) == 0;
	cJSON_Delete(reasons);
	if (!fresh && t->ops->caps.image_names) {
		/* The key saw the edit; the image the nodes run may not have. */
		cleanup_free char *changed =
			track_build_change(t->p, s, track_lock_entry(t, s->name), ts->keyobj);
		if (changed) {
			/* An image reference may be interpolated from a secret. */
			cleanup_free char *image =
				redactor_text(&t->p->secrets, s->image ? s->image : "its image");
			fprintf(stderr,
				"cpipe: warning: stage %s: its build context changed (%s); the %s "
				"runtime builds no image and runs %s as the nodes have it: rebuild "
				"it and import or push it first if it does not hold the change\n",
				s->name, changed, t->ops->name, image);
		}
	}
	if (!fresh) {
		int r = track_forced(t, s) || !t->o.run_id ? 0 : restore_stage(t, s, err);
		if (r == 0 && t->o.run_id && track_observes(s) && track_snapshot(t, s, err) < 0)
			return -1;
		return r;
	}

	/* Up to date: record the reuse with what the lock says was produced. */
	const cJSON *le = track_lock_entry(t, s->name);
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
		cJSON_AddItemToArray(track_record_stages(t), e);
		if (track_record_save(t, false, err) < 0)
			return -1;
	} else {
		cJSON_Delete(e);
	}
	return 1;
}

/* The parsed content of metrics file `r` (named `name` in errors): from
 * its host path, or, on a runtime whose volumes are not host directories,
 * read through the runtime as it was digested. */
static int metrics_values(cJSON **out, struct tracker *t, const struct artifact_ref *r,
			  const char *name, struct cp_error *err)
{
	const size_t max = 16 << 20;
	if (r->volume && !t->ops->caps.host_volumes && t->ops->caps.archive_reads) {
		cleanup_free char *text = NULL;
		size_t len = 0;
		if (track_read_volume_file(&text, &len, t, r->volume, r->path, max, err) < 0)
			return -1;
		return json_parse_text(out, text, len, name, err);
	}
	cleanup_free char *host = NULL;
	const char *rel = NULL, *root = NULL;
	if (track_ref_host_path(&host, t, r->volume, r->path, err) < 0)
		return -1;
	root = track_ref_root(t, r->volume, r->path, &rel);
	return rel ? json_read_file_in(out, root, rel, max, err) : -1;
}

/* Digests every declared output (and metrics file, parsed) of a job that
 * succeeded; fails naming an output it did not write. */
static int collect_outputs(cJSON *outputs, cJSON *metrics, cJSON *types, struct tracker *t,
			   const struct stage *s, struct cp_error *err)
{
	for (int kind = 0; kind < 2; kind++) {
		const struct artifact_ref *refs = kind ? s->metrics : s->outputs;
		size_t n = kind ? s->nmetrics : s->noutputs;
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *name = track_ref_name(t->p, refs[i].volume, refs[i].path);
			cJSON *e;
			char type;
			if (track_commit_ref(&e, &type, t, refs[i].volume, refs[i].path, err) < 0)
				return cp_error_prefix(err, "stage \"%s\": %s %s", s->name,
						       kind ? "metrics" : "output", name);
			if (type)
				cJSON_AddItemToObject(types, name, cJSON_CreateString((char[]){type, 0}));
			if (!track_entry_digest(e)) {
				cJSON_Delete(e);
				return cp_error_set(err, EXIT_USAGE,
						    "stage \"%s\" exited 0 but did not write its "
						    "declared %s %s",
						    s->name, kind ? "metrics file" : "output",
						    name);
			}
			if (kind) {
				cJSON *values = NULL;
				if (metrics_values(&values, t, &refs[i], name, err) < 0) {
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

int track_update_lock(struct tracker *t, const struct stage *s, const cJSON *outputs,
		      const cJSON *metrics, const char *producer, struct cp_error *err)
{
	/* An experiment's outputs live in its record and the store; the lock
	 * (and the index of who produced the locked outputs) keeps describing
	 * the spec as written. */
	if (t->experiment)
		return 0;
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
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
		if (!track_stage_named(t->p, e->string))
			cJSON_Delete(cJSON_DetachItemViaPointer(stages, e));
	}
	/* Between one stage's end and the next one's start: one fsync there,
	 * not two; track_close settles the rename (fs_write_atomic_data). */
	if (lock_save(t->lock_path, t->lock, false, err) < 0)
		return -1;
	t->lock_unsynced = true;

	cJSON *ix = cJSON_CreateObject();
	cJSON_AddStringToObject(ix, "key", ts->key);
	cJSON_AddStringToObject(ix, "run", producer ? producer : t->o.run_id);
	cJSON_DeleteItemFromObject(t->index, s->name);
	cJSON_AddItemToObject(t->index, s->name, ix);
	return json_write_atomic_fast(t->index_path, t->index, err);
}

int track_after(void *ctx, const struct stage *s, int exit_code, struct cp_error *err)
{
	struct tracker *t = ctx;
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	bool ok = exit_code == 0;
	/* The stage may have written anything it mounts: digest afresh. */
	track_memo_clear(&t->memo);
	cJSON *outputs = cJSON_CreateObject(), *metrics = cJSON_CreateObject();
	int rc = 0;
	if (!ts->evaluated) {
		/* Services are not cached, but their record says what they served. */
		cJSON *r = NULL;
		if (track_evaluate(&r, t, s, err) < 0)
			rc = -1;
		cJSON_Delete(r);
	}
	if (rc == 0 && ok && !s->service) {
		cJSON *types = cJSON_CreateObject();
		rc = track_observes(s) ? track_collect_observed(outputs, types, t, s, err)
				       : collect_outputs(outputs, metrics, types, t, s, err);
		if (rc == 0)
			rc = track_update_lock(t, s, outputs, metrics, NULL, err);
		if (rc == 0)
			track_runcache_save(t, s, outputs, metrics, types);
		cJSON_Delete(types);
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
		cJSON_AddItemToArray(track_record_stages(t), e);
		if (track_record_save(t, false, rc < 0 ? NULL : err) < 0 && rc == 0)
			rc = -1;
	} else {
		cJSON_Delete(e);
	}
	return rc;
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

cJSON *track_new_record(struct tracker *t, struct cp_error *err)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "schema", RECORD_SCHEMA);
	cJSON_AddStringToObject(r, "id", t->o.run_id);
	cJSON_AddStringToObject(r, "cpipe_version", CPIPE_VERSION);
	cJSON_AddStringToObject(r, "project", t->p->name);
	cJSON_AddStringToObject(r, "runtime", t->o.runtime_name ? t->o.runtime_name : t->ops->name);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	cJSON_AddStringToObject(r, "host", host);
	struct passwd *pw = getpwuid(geteuid());
	cJSON_AddStringToObject(r, "user", pw ? pw->pw_name : "unknown");
	cJSON_AddNumberToObject(r, "pid", getpid());
	if (t->o.name)
		cJSON_AddStringToObject(r, "name", t->o.name);
	if (t->o.argv)
		cJSON_AddItemToObject(r, "argv", strvec_array(t->o.argv));
	cJSON *files = cJSON_AddArrayToObject(r, "spec_files");
	for (size_t i = 0; i < t->p->files.n; i++) {
		cleanup_free char *rel = track_ref_name(t->p, NULL, t->p->files.v[i]);
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
	cJSON_AddBoolToObject(r, "experiment", t->experiment);
	cJSON_AddArrayToObject(r, "stages");
	redactor_json(&t->p->secrets, r); /* cpipe's own argv, --set values */
	return r;
}
