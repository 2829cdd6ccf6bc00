#include "track_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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

void track_key_reasons(cJSON *reasons, const cJSON *old, const cJSON *cur)
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
		const char *then = track_entry_digest(was);
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

cJSON *track_lock_entry(struct tracker *t, const char *stage)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(t->lock, "stages"), stage);
}

/* Adds reasons for locked outputs that are gone or differ. */
static int output_reasons(cJSON *reasons, struct tracker *t, const struct stage *s,
			  const cJSON *le, struct cp_error *err)
{
	struct artifact_ref *seen = NULL;
	size_t nseen = 0;
	if (track_observes(s))
		track_part_refs(&seen, &nseen, t->p, cJSON_GetObjectItem(le, "outputs"));
	int rc = 0;
	for (int kind = 0; kind < 2 && rc == 0; kind++) {
		const struct artifact_ref *refs = kind ? s->metrics : seen ? seen : s->outputs;
		size_t n = kind ? s->nmetrics : seen ? nseen : s->noutputs;
		const cJSON *locked = cJSON_GetObjectItem(le, kind ? "metrics" : "outputs");
		for (size_t i = 0; i < n; i++) {
			cleanup_free char *name = track_ref_name(t->p, refs[i].volume, refs[i].path);
			const cJSON *want = cJSON_GetObjectItem(locked, name);
			if (!want) {
				add_reason(reasons, "output %s is not in the lock", name);
				continue;
			}
			cJSON *now;
			if (track_digest_ref(&now, t, refs[i].volume, refs[i].path, err) < 0) {
				rc = -1;
				break;
			}
			const char *nd = track_entry_digest(now), *wd = track_entry_digest(want);
			if (track_entry_deleted(want)) {
				if (nd)
					add_reason(reasons, "output %s is back (the stage deleted it)",
						   name);
			} else if (!nd) {
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
	track_refs_free(seen, nseen);
	return rc;
}

void track_stale_reasons(cJSON *reasons, const struct stage *s, const cJSON *le,
			 const cJSON *keyobj, const char *key, bool force)
{
	if (force)
		add_reason(reasons, "--force");
	if (s->noutputs + s->nmetrics == 0 && !track_observes(s)) {
		/* Nothing to check it against, so nothing to trust: as in DVC,
		 * such a stage always runs. */
		add_reason(reasons, "declares no outputs, so it always runs");
	} else if (!le) {
		add_reason(reasons, "never ran");
	} else {
		const char *lk = cJSON_GetStringValue(cJSON_GetObjectItem(le, "key"));
		if (!lk || strcmp(lk, key) != 0) {
			size_t before = (size_t)cJSON_GetArraySize(reasons);
			track_key_reasons(reasons, le, keyobj);
			if ((size_t)cJSON_GetArraySize(reasons) == before)
				add_reason(reasons, "cache key changed");
		}
	}
}

/* Computes the stage's current key and why it is stale (empty = fresh). */
int track_evaluate(cJSON **reasons_out, struct tracker *t, const struct stage *s,
		    struct cp_error *err)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	cJSON *inputs = NULL;
	if (track_resolve_image(t, s, err) < 0 || track_stage_inputs(&inputs, t, s, err) < 0)
		return -1;
	cJSON_Delete(ts->keyobj);
	cJSON_Delete(ts->inputs);
	ts->keyobj = track_key_object(t->p, s, track_image_id(t, s), inputs);
	ts->inputs = inputs;
	track_key_digest(ts->key, ts->keyobj);
	ts->evaluated = true;

	cJSON *reasons = cJSON_CreateArray();
	const cJSON *le = track_lock_entry(t, s->name);
	if (ts->image_absent && s->build)
		add_reason(reasons, "image not built yet (cpipe build, or cpipe run builds it)");
	else if (ts->image_absent)
		add_reason(reasons, "image %s not pulled yet (cpipe run pulls it)", s->image);
	track_stale_reasons(reasons, s, le, ts->keyobj, ts->key, track_forced(t, s));
	if (le && (s->noutputs + s->nmetrics > 0 || track_observes(s)) && output_reasons(reasons, t, s, le, err) < 0) {
		cJSON_Delete(reasons);
		return -1;
	}
	ts->stale = cJSON_GetArraySize(reasons) > 0;
	*reasons_out = reasons;
	return 0;
}

bool track_forced(const struct tracker *t, const struct stage *s)
{
	return t->o.forced && t->o.forced[track_stage_pos(t->p, s)];
}

int track_status(cJSON **reasons, struct tracker *t, const struct stage *s, struct cp_error *err)
{
	if (s->service) {
		*reasons = cJSON_CreateArray();
		return 0;
	}
	if (track_evaluate(reasons, t, s, err) < 0)
		return -1;
	for (size_t d = 0; d < s->ndeps; d++) {
		const struct stage *up = track_stage_named(t->p, s->deps[d].stage);
		if (up && !up->service && t->st[track_stage_pos(t->p, up)].stale)
			add_reason(*reasons, "upstream %s is stale", up->name);
	}
	t->st[track_stage_pos(t->p, s)].stale = cJSON_GetArraySize(*reasons) > 0;
	return 0;
}
