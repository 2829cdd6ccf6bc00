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
	/* Its image (caps.images; exec_image.c): the job making it ready, its
	 * progress descriptor (-1 none), the build: stage it builds with, the
	 * unterminated progress line; then the ID it resolved to. */
	struct image_job *img;
	int img_fd;
	bool img_cancelled;
	char *img_build_stage;
	struct strbuf img_line;
	bool image_ready;
	char *image_id;
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

/* A stage's image could not be made ready: the stage fails with `e`
 * (and so the run), or the run was interrupted (exec.c). */
void exec_image_failed(struct run *r, struct slot *sl, const struct cp_error *e);

/* exec_image.c */
/* Whether the stage's image is ready (or the runtime needs none); if not,
 * starts the job that makes it so, unless one for the same image is under
 * way, or it builds and -j builds are (or the run stops). False too when
 * that failed (the stage failed). */
bool exec_image_ready(struct run *r, struct slot *sl);
/* Reads the job's progress lines (the loop saw its descriptor readable);
 * at end of file ends the job: the image is ready, or the stage failed. */
void exec_image_pump(struct run *r, struct slot *sl);
/* The run stops: every job under way is given up (the loop reads them
 * to their end). */
void exec_image_cancel_all(struct run *r);
/* A job is under way: the loop goes on. */
bool exec_images_busy(const struct run *r);
void exec_image_free(struct slot *sl);

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
