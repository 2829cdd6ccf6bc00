/* From the spec model to what a runtime receives: a stage becomes a
 * task_desc, the project a runtime_project (stages/runtime.h). */
#ifndef CPIPE_PIPELINE_TASK_H
#define CPIPE_PIPELINE_TASK_H

#include "../stages/runtime.h"
#include "spec.h"

/* Fills *out with what a runtime needs to run stage `s` of `p`. Lends
 * from `s` (and from the stage whose build: makes s's image): nothing to
 * free, valid while `p` is. The build is the stage's own, else that of the
 * first stage in spec order that builds the same image name, so stages
 * sharing an image build it once. */
void task_desc_init(struct task_desc *out, const struct pipeline *p, const struct stage *s);

/* Opens `ops` for project `p` with `state_dir` (its .cpipe; NULL when
 * none may be made): ops->open with the project as plain data, the
 * runtime's notes on stderr. Fails as ops->open does (err->code
 * EXIT_RUNTIME when the runtime cannot work). */
int task_runtime_open(const struct runtime_ops *ops, struct runtime **out,
		      const struct pipeline *p, const char *state_dir, struct cp_error *err);

/* The project `p` as a runtime's open gets it: `proj` (state_dir as
 * given, notes on stderr) and the arrays it points to, lending from `p`.
 * Free with task_project_free. */
struct task_project {
	struct runtime_project proj;
	struct strvec hosts;
	struct runtime_build *builds;
};
void task_project_init(struct task_project *out, const struct pipeline *p, const char *state_dir);
void task_project_free(struct task_project *tp);

struct progress;

/* What a run does with its runtime's warnings and notices: masked with
 * `secrets`, shown by `pr` while the executor has one (a JSON event with
 * --progress json), else on stderr as runtime_sink_stderr does; a stage's
 * warnings are kept for its entry in the run record. */
struct task_notes {
	const struct redactor *secrets; /* lent; NULL: nothing to mask */
	struct progress *pr;            /* set by exec_run while it runs */
	cJSON *warnings;                /* {"stage": ["message", ...]}, owned */
};

/* task_runtime_open with the runtime's notes going to `notes` (lent: it
 * must outlive the runtime; NULL: stderr). */
int task_runtime_open_notes(const struct runtime_ops *ops, struct runtime **out,
			    const struct pipeline *p, const char *state_dir,
			    struct task_notes *notes, struct cp_error *err);
/* The warnings kept for stage `stage` (lent), NULL when none. */
const cJSON *task_notes_stage(const struct task_notes *notes, const char *stage);
void task_notes_free(struct task_notes *notes);

#endif
