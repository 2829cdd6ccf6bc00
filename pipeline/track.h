/* Tracking: what each stage read and wrote, whether it is up to date, and
 * the run record and lock file that remember it. Bridges the spec model
 * (pipeline/), the runtimes (where volumes live) and artifacts/ (digests,
 * records, the lock). */
#ifndef CPIPE_PIPELINE_TRACK_H
#define CPIPE_PIPELINE_TRACK_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "../stages/runtime.h"
#include "plan.h"

struct task_notes;

struct tracker;

struct track_options {
	const char *state_dir; /* absolute .cpipe */
	const char *run_id;    /* NULL: no run record (status, verify) */
	/* --force: per stage index (p->stages), true = stale whatever the
	 * lock says, and run rather than restored. NULL: nothing forced. Lent. */
	const bool *forced;
	const struct plan *plan;
	const char *runtime_name;
	const struct strvec *argv; /* the command line, for the record */
	const char *name;          /* run --name, for the record; NULL: none */
	bool quiet;                /* -q: no "restored from" notes */
	bool one_off;              /* run STAGE -- CMD: recorded, the lock left alone */
	/* run --pull: a stale job's key missing from the store is looked up
	 * there before the job is run (artifacts/remote.h). Lent; NULL: none. */
	struct remote *remote;
	/* The runtime's warnings, by stage, for the record's stage entries
	 * ("warnings"). Lent; NULL: none. */
	const struct task_notes *notes;
};

/* Opens the lock, the stat cache and (with a run id) starts the run
 * record, written at once with status "running". Caller frees with
 * track_close. */
int track_open(struct tracker **out, const struct pipeline *p, const struct runtime_ops *ops,
	       struct runtime *rt, const struct track_options *o, struct cp_error *err);

/* Executor hooks (see exec.h). before: 1 = the job is up to date and was
 * recorded as skipped, 2 = its outputs for the current key were restored
 * from the store (recorded as restored), 0 = run it, -1 = error. after: records the
 * outcome; for a job that exited 0 it digests the outputs and metrics,
 * updates the lock, and fails (-1) when a declared output is missing. */
int track_before(void *ctx, const struct stage *s, const char *image_id, struct cp_error *err);
int track_after(void *ctx, const struct stage *s, int exit_code, struct cp_error *err);
/* The exec hook `ran`: the record's image.ran of the stage. */
void track_ran(void *ctx, const struct stage *s, const char *ran_image);

/* Why `s` is stale, as an array of strings (empty = fresh). Stages must be
 * evaluated in dependency order: a stale upstream makes it stale too.
 * Caller owns *reasons. */
int track_status(cJSON **reasons, struct tracker *t, const struct stage *s, struct cp_error *err);

/* Whether track_options.forced names `s`. */
bool track_forced(const struct tracker *t, const struct stage *s);

/* Digests every artifact the plan's stages name, on a few threads, ahead
 * of track_status asking for them one by one. */
int track_prefetch(struct tracker *t, const struct plan *plan, struct cp_error *err);

/* Checks every output recorded in the lock against the files: an array of
 * {"stage", "artifact", "expected", "actual"} mismatches. Caller owns it. */
int track_verify(cJSON **out, struct tracker *t, struct cp_error *err);

/* After track_status said `s` is stale: the run whose outputs for the
 * current key the store holds whole, or NULL. Lent until the next call. */
const char *track_restorable(struct tracker *t, const struct stage *s);

/* Puts the outputs that `stages` records back into the volumes: a run
 * record's "stages" array or a lock's "stages" object; `what` names it in
 * errors. Everything is staged first, then renamed into place, so a
 * missing object (an error naming the stage and artifact) changes
 * nothing. Returns the number of stages restored, or -1. */
int track_checkout(struct tracker *t, const cJSON *stages, const char *what,
		   struct cp_error *err);

/* The tracker's store (for gc). Lends; NULL when it could not be opened. */
struct cas *track_store(struct tracker *t);

/* Ends the run record with `status` ("succeeded", "failed",
 * "interrupted"), saves the stat cache, frees everything. NULL is fine. */
int track_close(struct tracker *t, const char *status, struct cp_error *err);

#endif
