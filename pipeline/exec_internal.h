/* State shared by the executor's files (exec.c drives the run,
 * exec_service.c handles what is particular to long-running services,
 * exec_ahead.c has the runtime get the next jobs ready). */
#ifndef CPIPE_PIPELINE_EXEC_INTERNAL_H
#define CPIPE_PIPELINE_EXEC_INTERNAL_H

#include <cjson/cJSON.h>

#include "exec.h"
#include "progress.h"

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
	int tail_fd;         /* services write their log themselves: we follow it */
	char *log_path;
	struct strbuf partial[2]; /* unterminated line per stream */
	long long started_ms;
	long long kill_deadline_ms; /* 0 = no SIGTERM sent yet */
	bool killed;                /* SIGKILL sent */
	bool stopping;              /* we asked it to stop */
	bool skipped;               /* job: up to date */
	bool evaluated;             /* job: the before hook said it must run */
	bool wanted;                /* service: a job that must run needs it */
	bool healthy;               /* service: passed its health check */
	bool external;              /* service: was up before this run */
	long long next_probe_ms;
	int probe_failures;
	char *last_probe;           /* what the last failed probe saw */
	cJSON *svc_state;           /* service: its state file's content (NULL: none) */
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
	int starts;       /* stages started so far */
	struct cp_error *err;
};

void exec_note(struct run *r, const char *fmt, ...) CP_PRINTF(2, 3);
void exec_fail(struct run *r, const char *fmt, ...) CP_PRINTF(2, 3);
void exec_take_output(struct run *r, struct slot *sl, int stream, const char *data, size_t n);
/* The task the stage of `sl` starts as; its environment goes in `env`,
 * which the caller frees. */
void exec_task_spec(struct run *r, struct slot *sl, struct kvvec *env, struct task_spec *ts);

/* exec_ahead.c */
/* While jobs run (or as `starting`, not NULL, is about to), asks the
 * runtime to get ready the jobs that start once those succeed
 * (runtime_ops prepare), at most -j of them at a time. */
void exec_prepare_ahead(struct run *r, const struct slot *starting);
/* Gives back the preparation of a job that will not start now. */
void exec_unprepare(struct run *r, struct slot *sl);
/* The run is over: gives back every preparation left. */
void exec_unprepare_all(struct run *r);

/* exec_service.c */
/* Marks services whose state file names a live task as already up. */
void service_adopt_running(struct run *r);
/* Fails the run when a port the services would publish is taken. */
int service_check_ports(struct run *r);
/* After a service started: state file, log following, first health. */
void service_started(struct run *r, struct slot *sl);
/* Probes services that are not healthy yet; fails those out of retries. */
void service_probe(struct run *r);
/* Reads what services appended to their logs. */
void service_follow_logs(struct run *r);
/* A service exited: drop its state file; say what its log ended with. */
void service_exited(struct run *r, struct slot *sl);
/* Leaves a service running after cpipe returns. */
void service_detach(struct run *r, struct slot *sl);
/* The last lines of a log, indented, for error messages. Caller owns. */
char *service_log_tail(const char *path, int lines);

#endif
