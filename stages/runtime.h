/* The runtime interface: how one stage runs on one runtime. A runtime knows
 * volumes, processes or containers, logs and stopping; it knows nothing of
 * caching, provenance or the order of stages (that is pipeline/). */
#ifndef CPIPE_STAGES_RUNTIME_H
#define CPIPE_STAGES_RUNTIME_H

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../lib/error.h"
#include "task.h"

struct runtime; /* opaque, one per runtime instance */
struct task_exec; /* a command exec_start started in a task; the runtime's */
struct image_job; /* an image image_start is making available; the runtime's */

/* Bumped by the executor's signal handler (Ctrl-C, SIGTERM, SIGHUP). A
 * runtime blocked in a call on the executor's thread (an API request to a
 * hung daemon) gives it up when this changes, so the executor gets to
 * stop the run. */
extern volatile sig_atomic_t runtime_interrupts;

/* What a runtime tells the user beyond a task's output: a warning (a
 * compose key it cannot honour) or a notice (containers a dead cpipe left,
 * removed; a network kept because something still uses it). */
enum runtime_note { RUNTIME_WARNING, RUNTIME_NOTICE };

/* Where a runtime sends its warnings and notices, on the thread that calls
 * it (the executor's). `stage` names the stage it concerns, NULL for the
 * project; `msg` is one line without "cpipe: " or the newline. The caller
 * shows it (stderr, a JSON event) and may keep it (the run record). */
struct runtime_sink {
	void (*note)(void *ud, enum runtime_note kind, const char *stage, const char *msg);
	void *ud;
};

/* The default sink (`ud` unused): "cpipe: warning: MSG" for a warning,
 * "cpipe: MSG" for a notice, on stderr. */
void runtime_sink_stderr(void *ud, enum runtime_note kind, const char *stage, const char *msg);

/* Formats one note and gives it to `sink` (runtime_sink_stderr when sink
 * or its note is NULL). */
void runtime_note(const struct runtime_sink *sink, enum runtime_note kind, const char *stage,
		  const char *fmt, ...) CP_PRINTF(4, 5);

/* A stage of the project that builds its image (has build:): a runtime
 * that builds none refuses it before anything runs. */
struct runtime_build {
	const char *stage;
	const char *image; /* image:, NULL when not given */
	struct cp_mark mark;
};

/* What the runtime is told of the project when it opens: plain data, lent
 * for the call, except `volumes` (and what they point to), lent for the
 * life of the runtime. A runtime copies whatever else it keeps. */
struct runtime_project {
	const char *name;      /* as given (-p, COMPOSE_PROJECT_NAME, name:, the dir) */
	const char *dir;       /* absolute project directory */
	const char *state_dir; /* absolute .cpipe directory; NULL when none may be made */
	const struct volume *volumes; /* declared under volumes:, with driver and name: */
	size_t nvolumes;
	/* The names the project's tasks answer to on its network, in spec
	 * order: each stage's name, then its container_name when another. */
	const char *const *hostnames;
	size_t nhostnames;
	/* Some task is a service or publishes ports: the project needs a
	 * network of its own (the local runtime's is otherwise the host's). */
	bool network;
	/* The task_handle()s of detached tasks the project keeps (services
	 * another cpipe left up), asked each time the runtime sweeps what dead
	 * cpipes left: those are never removed. Caller owns the array; NULL
	 * when there are none. */
	cJSON *(*kept_handles)(const char *state_dir);
	/* Where the runtime's warnings and notices go, for its whole life
	 * (see struct runtime_sink); note NULL: runtime_sink_stderr. */
	struct runtime_sink sink;
	/* The project's x-cpipe: settings the kubernetes runtime reads, NULL
	 * when not given: the namespace to run in, the image of the helper
	 * pod that reads volumes back, and the storage class and size of the
	 * volumes' claims when their driver_opts give none. */
	const char *kube_namespace;
	const char *kube_helper_image;
	const char *kube_storage_class;
	const char *kube_volume_size;
	/* The stages with build:, in spec order. */
	const struct runtime_build *builds;
	size_t nbuilds;
};

/* The volume named `name` among v[0..n) (a project's declared ones), or NULL. */
const struct volume *runtime_volume_find(const struct volume *v, size_t n, const char *name);

/* What the executor asks a runtime to start. */
struct task_spec {
	const struct task_desc *desc; /* lent for the call; the task keeps a copy */
	/* The complete environment of the stage (spec environment, env_file,
	 * params as CPIPE_PARAM_* and bare names); the runtime adds nothing
	 * but PATH/HOME defaults where they are absent (and TERM=xterm with
	 * a tty, as Docker does). */
	const struct kvvec *env;
	const char *run_id;
	/* A detached task outlives cpipe (a service kept up by `cpipe up` or
	 * --keep-serving): its stdout and stderr go to `log_path` (appended),
	 * out_fd/err_fd are -1, and another cpipe finds it again through
	 * task_handle. */
	bool detached;
	const char *log_path;
	/* Not detached: stdout and stderr on one pseudo-terminal of this size,
	 * so the stage's stdio is line-buffered as on a terminal; the task's
	 * output comes on out_fd alone. stdin stays empty on the local
	 * runtime; Docker makes it the terminal too. */
	bool tty;
	unsigned short tty_cols, tty_rows;
};

/* One started stage. The runtime fills it; the executor reads the two log
 * descriptors (set to -1 by the executor once it closed them at EOF). */
struct task {
	struct task_desc desc; /* what it runs: a copy of the task_spec's */
	int out_fd; /* stage stdout, read end, O_NONBLOCK */
	int err_fd; /* stage stderr, read end, O_NONBLOCK */
	bool tty;   /* the stage writes to a terminal: lines may end \r\n */
	bool keep_running; /* set before release: free the task, leave it running */
	/* What the task ran, where the runtime learns it only as the task
	 * runs (kubernetes: the pod's imageID, e.g. docker://sha256:...);
	 * set once poll said it exited, else NULL. The runtime's: freed by
	 * release. */
	char *ran_image;
	void *priv; /* runtime-private */
};

struct volume_info {
	char *name;
	char *mountpoint; /* where the runtime keeps it (a host path when local) */
	long long size;   /* bytes, -1 unknown */
	bool declared;    /* in the current spec */
	bool in_use;      /* a stage of a running cpipe uses it */
};
void volume_info_free(struct volume_info *v, size_t n);

/* One entry of a tree read out of a volume by volume_read_tree; lent for
 * the duration of the visit. */
struct volume_entry {
	const char *path; /* relative to the requested root; "" for the root */
	mode_t mode;      /* file type and permission bits, as st_mode */
	long long size;   /* bytes of a regular file, 0 otherwise */
	long long mtime;  /* seconds since the epoch */
	const char *link; /* symlink target, NULL otherwise */
	/* Regular files: the next bytes of the content, 0 at its end, -1 with
	 * err set on failure. NULL for other types. */
	long (*read)(const struct volume_entry *e, void *buf, size_t n, struct cp_error *err);
	void *priv; /* the runtime's, for read */
};

/* What a runtime can do beyond what every runtime does (open, close,
 * volume_ensure/list/remove, start, poll, kill, release, host_port). Each
 * flag says that the members it names are there; callers ask the flag,
 * never test a member for NULL (a unit test holds the two together). */
struct runtime_caps {
	bool images;        /* image_prepare, image_start, image_cancel, image_end: tasks
			     * run images it builds, pulls, resolves */
	bool detached;      /* task_handle, handle_alive, handle_stop: tasks outlive cpipe */
	bool exec;          /* exec: a command inside a running task (CMD health checks) */
	bool ahead;         /* prepare, unprepare: a job made ready while others run */
	bool attach;        /* handle_exec, handle_kill: `cpipe exec`/`kill` a detached task */
	bool host_volumes;  /* volume_host_path: volumes are host directories cpipe reads */
	bool archive_reads; /* volume_read_tree: volumes are read as streamed trees */
	bool archive_writes; /* volume_write_tree: outputs restored into volumes it holds */
	bool port_alloc;    /* picks a free host port for a port published without one */
	bool port_check;    /* port_in_use: tells, before anything starts, a host port is taken */
	bool logs;          /* handle_logs: it keeps a detached task's output itself */
	bool top;           /* handle_top: the processes of a detached task */
	bool projects;      /* projects: lists the projects it labelled (`cpipe ls`) */
	bool down;          /* down: project-wide leftovers to remove (network, containers) */
	/* The task runs its own health checks, http: ones included (the pod's
	 * readiness probe): exec_start gives their verdict, and cpipe probes
	 * no URL from this host. */
	bool task_probes;
	/* image_prepare's IDs are names, not contents (the cluster reports no
	 * image ID before a pod runs): a stage's key takes its build
	 * context's files, as on a runtime without images. */
	bool image_names;
};

struct runtime_ops {
	const char *name;
	struct runtime_caps caps;
	/* Opens the runtime for a project (see struct runtime_project for
	 * what it lends). Fails with err->code EXIT_RUNTIME when the runtime
	 * cannot work here (e.g. namespaces disabled). */
	int (*open)(struct runtime **out, const struct runtime_project *proj, struct cp_error *err);
	void (*close)(struct runtime *rt);

	int (*volume_ensure)(struct runtime *rt, const struct volume *v, struct cp_error *err);
	/* Lists the project's volumes (declared ones and orphans left on disk). */
	int (*volume_list)(struct runtime *rt, struct volume_info **out, size_t *nout,
			   struct cp_error *err);
	int (*volume_remove)(struct runtime *rt, const char *name, struct cp_error *err);

	/* Starts a stage; returns once it runs. Caller owns *out and must pass it
	 * to release after it has exited. */
	int (*start)(struct runtime *rt, const struct task_spec *ts, struct task **out,
		     struct cp_error *err);
	/* Non-blocking: 1 and *exit_code set when the task has exited (a
	 * signal death is 128 + signo), 0 while it runs, -1 on error. */
	int (*poll)(struct runtime *rt, struct task *t, int *exit_code, struct cp_error *err);
	/* Sends `sig` to everything the task runs. Non-blocking. */
	int (*kill)(struct runtime *rt, struct task *t, int sig, struct cp_error *err);
	/* Frees an exited task and whatever the runtime held for it. */
	void (*release)(struct runtime *rt, struct task *t);

	/* The host port bound for `container_port`: the one the spec gives,
	 * or the one the runtime picked (caps.port_alloc) for a port
	 * published without one; 0 when unknown. */
	int (*host_port)(struct runtime *rt, struct task *t, int container_port,
			 const char *protocol);


	/* The members below are there when caps says so (see runtime_caps). */

	/* caps.ahead. Gets ready, while other stages run, the job `ts` describes, which the
	 * executor expects to start once they succeed: a container runtime
	 * creates and attaches its container now, so that start() with an
	 * equal description only starts it. Best effort and silent: what
	 * cannot be done ahead without changing what the job would see (an
	 * image still to build or pull) start() does as before, and start()
	 * with another description drops what was prepared. unprepare drops
	 * the preparation of a job that will not start (a dependency failed,
	 * it was up to date, the run stopped); close() drops what is left.
	 * prepare says whether it took the job; one it did not take may be
	 * offered again once another stage started. */
	bool (*prepare)(struct runtime *rt, const struct task_spec *ts);
	void (*unprepare)(struct runtime *rt, const char *stage);

	/* Makes the task's image available and gives its ID ("sha256:...",
	 * for provenance) in *digest_out, which the caller owns. With `build`
	 * an image with a desc->build is built (once per image name for the
	 * life of `rt`: stages sharing it build it once per run) and a missing
	 * one without is pulled; without `build` it is read-only: the
	 * existing image is resolved, and 1 returned (*digest_out NULL) when
	 * there is none, never building or pulling. Build progress streams to
	 * stderr. Fails naming the image and carrying the daemon's message. */
	int (*image_prepare)(struct runtime *rt, const struct task_desc *desc, bool build,
			     char **digest_out, struct cp_error *err);
	/* image_prepare with `build`, as work of the executor's loop: starts
	 * making the task's image available (on a thread and a daemon
	 * connection of the runtime's own) and returns at once, so that
	 * other stages' output keeps flowing while it builds or pulls. Its
	 * progress comes on *fd_out (the runtime's, O_NONBLOCK: read it,
	 * never close it) as text lines without a prefix (build steps, pull
	 * statuses), and the descriptor reaches end of file once the job is
	 * over; -1 when it was over at once (the image known or found). The
	 * job's `desc` pointers must stay valid until image_end (they point
	 * into the loaded project). Then image_end frees the job and gives
	 * what image_prepare would: 0 and the image ID in *id_out (caller
	 * owns), which image_prepare gives from then on, or -1 with the
	 * daemon's message. image_cancel gives a job up (its request ended
	 * at once, what a build step left removed): its descriptor reaches
	 * end of file soon after, and image_end fails with EXIT_INTERRUPTED.
	 * Neither image_start nor image_cancel waits for a build or pull;
	 * image_end called before end of file waits for the job. */
	int (*image_start)(struct runtime *rt, const struct task_desc *desc, struct image_job **out,
			   int *fd_out, struct cp_error *err);
	void (*image_cancel)(struct runtime *rt, struct image_job *j);
	int (*image_end)(struct runtime *rt, struct image_job *j, char **id_out,
			 struct cp_error *err);
	/* The host directory holding `volume` (a key under volumes:), when
	 * the runtime's storage is on this host and readable; caller owns
	 * *out. Fails otherwise: read the volume with volume_read_tree. */
	int (*volume_host_path)(struct runtime *rt, const char *volume, char **out,
				struct cp_error *err);
	/* Services. exec_start starts `argv` inside the task's sandbox or
	 * container (a compose CMD healthcheck) and returns at once: *fd_out
	 * (the runtime's; poll it, never read or close it) turns readable
	 * once the command has ended. The caller passes *out to exec_end
	 * until that returns other than 0. exec_end is non-blocking: 1 with
	 * *exit_code once the command ended, 0 while it runs, -1 on error.
	 * With `kill` (its timeout_ms is over, or the run stops) the command
	 * is killed, or left to the runtime to kill at timeout_ms or with its
	 * container, and 1 returned with exit code -1. On 1 and -1 `x` is
	 * freed. Neither waits for a daemon. */
	int (*exec_start)(struct runtime *rt, struct task *t, char *const *argv, long timeout_ms,
			  struct task_exec **out, int *fd_out, struct cp_error *err);
	int (*exec_end)(struct runtime *rt, struct task_exec *x, bool kill, int *exit_code,
			struct cp_error *err);
	/* A JSON handle by which another cpipe process finds a detached task
	 * again (caller owns), whether it still runs (1 running, 0 gone), and
	 * a blocking stop: SIGTERM, `grace_ms`, SIGKILL, cleanup; a task that
	 * is already gone is fine. */
	cJSON *(*task_handle)(struct runtime *rt, struct task *t);
	int (*handle_alive)(struct runtime *rt, const cJSON *handle, struct cp_error *err);
	int (*handle_stop)(struct runtime *rt, const cJSON *handle, long grace_ms,
			   struct cp_error *err);
	/* Whether a task of the project could publish host port `port` on
	 * `host_ip` ("tcp" or "udp"): 0 free (a port the runtime itself holds
	 * for the project, its forwarder kept between runs, is free), 1 taken,
	 * with *who naming the holder ("pid 12 (httpd)") when it can be seen,
	 * else NULL (caller owns). Never fails. */
	int (*port_in_use)(struct runtime *rt, const char *host_ip, int port, const char *protocol,
			   char **who);

	/* Streams the tree at `path` (absolute, inside `volume`) to `visit`:
	 * the root first (e->path ""), then every entry below it, parents
	 * before children. A regular file's content is read with e->read
	 * during the visit. Returns 0, 1 when `path` does not exist (visit is
	 * never called), -1 on error (visit's own -1 included). */
	int (*volume_read_tree)(struct runtime *rt, const char *volume, const char *path,
				int (*visit)(void *ud, const struct volume_entry *e,
					     struct cp_error *err),
				void *ud, struct cp_error *err);

	/* Replaces the tree at `path` (absolute, inside `volume`; "/" is the
	 * volume itself) with a copy of the host tree `src` (a file,
	 * directory or symlink cpipe staged: a restore from the store),
	 * written beside it and renamed into place, so that no reader sees
	 * half of it. Modes and link targets are kept; owners are the
	 * runtime's. */
	int (*volume_write_tree)(struct runtime *rt, const char *volume, const char *path,
				 const char *src, struct cp_error *err);

	/* The output of the detached task `handle` names, from its start, as
	 * the runtime itself keeps it: what the task wrote after the cpipe
	 * that started it exited included. `sink` gets it as it comes, by
	 * stream (1 stdout, 2 stderr). With `follow` it goes on until the
	 * task ends or *stop is set (noticed within about a second). Returns
	 * 0, 1 when the runtime no longer has the task (read its log file
	 * instead), -1 on error. Without caps.logs the task's log file is
	 * complete (local, whose detached tasks write it themselves). */
	int (*handle_logs)(struct runtime *rt, const cJSON *handle, bool follow,
			   void (*sink)(void *ud, int stream, const char *data, size_t n),
			   void *ud, volatile sig_atomic_t *stop, struct cp_error *err);
	/* `cpipe exec`: runs `argv` in the detached task `handle` names (a
	 * service another cpipe left up), on cpipe's own stdin, stdout and
	 * stderr, and gives its exit code (128 + signo for a signal death).
	 * `ts` gives the task (working_dir, user) and its environment; a
	 * runtime whose task keeps its own (a container) may use that instead.
	 * Fails, naming the stage, when the task is gone or cannot be entered;
	 * an argv that cannot be executed is exit code 126 or 127, as in a shell. */
	int (*handle_exec)(struct runtime *rt, const cJSON *handle, const struct task_spec *ts,
			   char *const *argv, int *exit_code, struct cp_error *err);
	/* Sends `sig` to the detached task `handle` names; a gone task is fine. */
	int (*handle_kill)(struct runtime *rt, const cJSON *handle, int sig, struct cp_error *err);
	/* The processes of the detached task `handle` names, as the Engine API
	 * gives them: {"Titles": [...], "Processes": [[...], ...]}, all strings.
	 * Caller owns *out. */
	int (*handle_top)(struct runtime *rt, const cJSON *handle, cJSON **out,
			  struct cp_error *err);
	/* `cpipe ls`: the projects the runtime itself knows of (what it
	 * labelled with a project), as [{"name", "running", "exited"}] counts
	 * of their containers; caller owns *out. Needs no opened runtime.
	 * Without caps.projects the project's directory is all there is. */
	int (*projects)(cJSON **out, struct cp_error *err);
	/* `cpipe down`, after the services are stopped: removes what the
	 * project's runs left behind (containers of cpipe processes that are
	 * gone, the project network). */
	int (*down)(struct runtime *rt, struct cp_error *err);
};

extern const struct runtime_ops runtime_local;
/* The Docker Engine API runtime (stages/docker.c). */
extern const struct runtime_ops runtime_docker;
/* The same over Podman's Docker-compatible API. */
extern const struct runtime_ops runtime_podman;
/* The Kubernetes REST API of the cluster the kubeconfig names
 * (KUBECONFIG, CPIPE_KUBE_CONTEXT; stages/kube.c). */
extern const struct runtime_ops runtime_kubernetes;

/* The names of the runtimes, in the order of the table in runtime.c (a
 * unit test holds them equal), for usage lines and completion. */
#define RUNTIME_CHOICES "local|docker|podman|kubernetes"

/* Visits the entries of the tar `a` reads (one root, named as the path
 * read: "model/", "model/x" or "./", "./x") as volume_read_tree's visit
 * sees them: the root's own name dropped, content read during the visit
 * (stages/runtime_tar.c). 0, or -1 with err set (visit's -1 included). */
struct archive;
int runtime_tar_visit(struct archive *a,
		      int (*visit)(void *ud, const struct volume_entry *e, struct cp_error *err),
		      void *ud, struct cp_error *err);

/* The runtime named `name` ("local", ...), or NULL. */
const struct runtime_ops *runtime_find(const char *name);
/* The name of runtime i (0, 1, ...), NULL past the last. */
const char *runtime_name_at(size_t i);

#endif
