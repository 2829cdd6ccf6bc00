/* The executor's state (exec.c); a service's lifecycle is services.c's;
 * exec_ahead.c has the runtime get the next jobs ready. */
#ifndef CPIPE_PIPELINE_EXEC_INTERNAL_H
#define CPIPE_PIPELINE_EXEC_INTERNAL_H

#include <cjson/cJSON.h>

#include "exec.h"
#include "progress.h"
#include "services.h"

enum slot_state {
	SLOT_UNSELECTED,
	SLOT_PENDING,
	SLOT_RUNNING,
	SLOT_DONE,      /* job exited 0 or was up to date; service stopped or left up */
	SLOT_FAILED,
	SLOT_CANCELLED, /* stopped because the run stopped */
};

struct slot {
	const struct stage *s;
	enum slot_state state;
	struct task *task;   /* NULL for a service that was already up */
	int log_fd;          /* our copy of the log (jobs) */
	char *log_path;
	struct strbuf partial[2]; /* unterminated line per stream */
	long long started_ms;
	long long kill_deadline_ms; /* 0 = no SIGTERM sent yet */
	bool killed;                /* SIGKILL sent */
	bool stopping;              /* we asked it to stop */
	bool skipped;               /* job: up to date */
	bool evaluated;             /* job: the before hook said it must run */
	bool wanted;                /* service: a job that must run needs it */
	struct service svc;         /* service: health, state file, followed log */
	int exit_code;
	bool prepared; /* job: the runtime is getting it ready (exec_ahead.c) */
	int ahead_tried; /* 1 + run.starts when the runtime last declined that */
};

struct run {
	const struct plan *plan;
	const struct pipeline *p;
	const struct runtime_ops *ops;
	struct runtime *rt;
	const struct exec_options *o;
	struct slot *slots; /* by stage index */
	int name_width;
	FILE *out;        /* where prefixed stage logs go */
	struct progress *pr; /* renders the run on `out` */
	bool pty;            /* jobs get a pseudo-terminal */
	unsigned short pty_cols, pty_rows;
	bool stopping;    /* no new stage starts */
	bool interrupted; /* a signal asked us to stop */
	bool failed;
	bool any_named;   /* stages were named on the command line */
	struct service_env senv;
	int starts;       /* stages started so far */
	struct cp_error *err;
};

/* The task the stage of `sl` starts as, described in `desc`; its
 * environment goes in `env`, which the caller frees. */
void exec_task_spec(struct run *r, struct slot *sl, struct kvvec *env, struct task_desc *desc,
		    struct task_spec *ts);

/* exec_ahead.c */
/* While jobs run (or as `starting`, not NULL, is about to), asks the
 * runtime to get ready the jobs that start once those succeed
 * (runtime_ops prepare), at most -j of them at a time. */
void exec_prepare_ahead(struct run *r, const struct slot *starting);
/* Gives back the preparation of a job that will not start now. */
void exec_unprepare(struct run *r, struct slot *sl);
/* The run is over: gives back every preparation left. */
void exec_unprepare_all(struct run *r);

#endif
