/* verify --rerun: does the lock reproduce? Each stage runs again with its
 * writable mounts (volumes and bind mounts) replaced by scratch copies
 * under <state_dir>/tmp, from which its declared outputs were left out, so
 * it sees its inputs as usual and produces its outputs afresh; their
 * digests are compared with cpipe.lock. The real volumes, the run records,
 * the store and cpipe.lock are never written. */
#ifndef CPIPE_PIPELINE_RERUN_H
#define CPIPE_PIPELINE_RERUN_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "../stages/runtime.h"
#include "spec.h"

struct rerun_options {
	const char *state_dir; /* absolute .cpipe */
	const cJSON *lock;     /* cpipe.lock as loaded; lent */
	bool quiet;
	bool logs_to_stderr; /* --json: stdout carries only the result */
};

/* Reruns `names` (none: every job cpipe.lock records outputs for), one at
 * a time in spec order, each with the services it depends on. `p`'s
 * mounts are rewritten while a stage runs and put back after. *out gets
 * an array of {"stage", "reproduced", "outputs": [{"artifact", "expected",
 * "actual"}]} (only the differing outputs), caller owns. A stage that
 * fails, a name not in the lock, or an interrupt is an error (err->code
 * EXIT_STAGE_FAILED, EXIT_USAGE, EXIT_INTERRUPTED); scratch copies are
 * removed in every case. */
int rerun_verify(cJSON **out, struct pipeline *p, const struct runtime_ops *ops,
		 struct runtime *rt, const char *const *names, size_t nnames,
		 const struct rerun_options *o, struct cp_error *err);

#endif
