/* What the runtimes share about a stage's compose keys of resources,
 * security and lifecycle (struct stage_limits and friends, stages/task.h): the warnings
 * both give, and the local runtime's translation into a sandbox_config
 * (local_compose.c). */
#ifndef CPIPE_STAGES_COMPOSE_RT_H
#define CPIPE_STAGES_COMPOSE_RT_H

#include <stdio.h>

#include "../lib/util.h"
#include "runtime.h"
#include "sandbox.h"

/* Warns "FILE:LINE:COL: stage "x": KEY: ..." through `sink` (shown as
 * "cpipe: warning: ..." on stderr by default), at `mark` (the stage's own
 * when mark has no file). */
void compose_warn(const struct runtime_sink *sink, const struct task_desc *s,
		  const struct cp_mark *mark, const char *key, const char *fmt, ...)
	CP_PRINTF(5, 6);
/* The warnings of every runtime: deploy.replicas other than 1 (cpipe runs
 * one instance), restart: on a job (jobs run once). */
void compose_warn_common(const struct runtime_sink *sink, const struct task_desc *s);

/* What local_compose_apply adds to a sandbox_config; freed by
 * local_compose_free. */
struct local_compose {
	struct sandbox_mount *mounts; /* the stage's mounts, then tmpfs:, /dev/shm, secrets */
	size_t nmounts;
	struct sandbox_file *files;
	size_t nfiles;
	struct strvec keep; /* strings the two arrays lend */
};

/* Fills cfg's compose members (ulimits, pids_limit, ipc, read_only,
 * capabilities, stop_signal, restart, files) and cfg->mounts with `base`
 * plus the stage's tmpfs:, shm_size and file secrets; warns (once per
 * call) about what the local runtime cannot do. `userns`: cpipe is not
 * root; warnings go to `sink`. Never fails. */
void local_compose_apply(struct local_compose *lc, struct sandbox_config *cfg,
			 const struct task_desc *s, const struct sandbox_mount *base, size_t nbase,
			 bool userns, const struct runtime_sink *sink);
void local_compose_free(struct local_compose *lc);

#endif
