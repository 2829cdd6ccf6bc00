/* The executor: drives one run of a plan on a runtime. */
#ifndef CPIPE_PIPELINE_EXEC_H
#define CPIPE_PIPELINE_EXEC_H

#include <stdbool.h>

#include "../stages/runtime.h"
#include "plan.h"
#include "progress.h"

struct task_notes;

/* Hooks the executor calls around each stage (all may be NULL). */
struct exec_hooks {
	void *ctx;
	/* Before a stage starts, once its image is ready: `image_id` is the
	 * ID the executor resolved it to and the task is created from
	 * (runtime_ops image_start; NULL when the runtime has no images).
	 * 1 = it is up to date, skip it; 2 = its outputs were restored (the
	 * hook told the user), skip it; 0 = run it; -1 = error (the run
	 * fails). Services are never skipped. */
	int (*before)(void *ctx, const struct stage *s, const char *image_id, struct cp_error *err);
	/* After a stage ended with `exit_code` (a service left running: 0);
	 * -1 fails a job that exited 0 (e.g. a declared output is missing). */
	int (*after)(void *ctx, const struct stage *s, int exit_code, struct cp_error *err);
	/* Just before after, when the runtime learnt what image the task ran
	 * (struct task ran_image). NULL: not wanted. */
	void (*ran)(void *ctx, const struct stage *s, const char *ran_image);
};

struct exec_options {
	int jobs;          /* independent jobs running at once, >= 1 */
	bool quiet;        /* no progress lines, stage logs still stream */
	bool keep_serving; /* leave the services this run started running */
	bool up;           /* cpipe up: start the wanted services, return once healthy */
	bool logs_to_stderr; /* --json: stdout carries only the run's record */
	enum progress_mode progress; /* how the run shows itself (progress.h) */
	bool no_tty; /* jobs write to pipes even when the output is a terminal */
	const char *run_id;
	const char *state_dir; /* absolute .cpipe */
	struct exec_hooks hooks;
	/* The runtime's notes (task_runtime_open_notes): shown by the run's
	 * progress while it goes. Lent; NULL: they stay on stderr. */
	struct task_notes *notes;
};

/* Runs the plan's stages in dependency order, at most `jobs` jobs at once;
 * streams their logs prefixed with the stage name (and into
 * <state_dir>/logs/<run_id>/<stage>.log). A failing stage stops the run:
 * nothing downstream starts, running stages are stopped, and the result is
 * -1 with err->code EXIT_STAGE_FAILED naming stage, exit code and log.
 * SIGINT/SIGTERM stop every task and give EXIT_INTERRUPTED.
 *
 * Services start when a job that must run needs them (or when named, or
 * with `up`), are health-gated for service_healthy, and are stopped when
 * the jobs are done unless keep_serving/up, in which case they stay up
 * with a state file under <state_dir>/services/. A service already up
 * before the run (its state file names a live task) is used as it is and
 * left running. */
int exec_run(const struct plan *plan, const struct runtime_ops *ops, struct runtime *rt,
	     const struct exec_options *opts, struct cp_error *err);

/* Makes a run id that sorts by time: 20261129T104158123Z-3fa1. Caller owns. */
char *exec_new_run_id(void);

/* The environment a stage's process gets: its spec environment plus its
 * params as CPIPE_PARAM_<NAME> and CPIPE_STAGE / CPIPE_PROJECT /
 * CPIPE_RUN_ID. */
void exec_stage_env(struct kvvec *out, const struct pipeline *p, const struct stage *s,
		    const char *run_id);

#endif
