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
#include "../pipeline/spec.h"

struct runtime; /* opaque, one per runtime instance */

/* Bumped by the executor's signal handler (Ctrl-C, SIGTERM, SIGHUP). A
 * runtime blocked in a call on the executor's thread (an API request to a
 * hung daemon) gives it up when this changes, so the executor gets to
 * stop the run. */
extern volatile sig_atomic_t runtime_interrupts;

/* What the executor asks a runtime to start. */
struct task_spec {
	const struct stage *stage;
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
	const struct stage *stage;
	int out_fd; /* stage stdout, read end, O_NONBLOCK */
	int err_fd; /* stage stderr, read end, O_NONBLOCK */
	pid_t pid;  /* local: the sandbox's init; other runtimes: 0 */
	bool tty;   /* the stage writes to a terminal: lines may end \r\n */
	bool keep_running; /* set before release: free the task, leave it running */
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

struct runtime_ops {
	const char *name;
	/* Opens the runtime for a project. `state_dir` is the absolute path of
	 * the project's .cpipe directory. Fails with err->code EXIT_RUNTIME
	 * when the runtime cannot work here (e.g. namespaces disabled). */
	int (*open)(struct runtime **out, const struct pipeline *p, const char *state_dir,
		    struct cp_error *err);
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

	/* The members below are optional: NULL on runtimes without images or
	 * opaque volumes (local); callers check before calling. */

	/* Makes the stage's image available and gives its ID ("sha256:...",
	 * for provenance) in *digest_out, which the caller owns. With `build`
	 * a stage with build: is built (once per image name for the life of
	 * `rt`, so stages sharing build: + image: build it once per run, and
	 * a missing image: is pulled); without, it is read-only: the existing
	 * image is resolved, and 1 returned (*digest_out NULL) when there is
	 * none, never building or pulling. Build progress streams to stderr.
	 * Fails naming the image and carrying the daemon's message. */
	int (*image_prepare)(struct runtime *rt, const struct stage *s, bool build,
			     char **digest_out, struct cp_error *err);
	/* The host directory holding `volume` (a key under volumes:), when
	 * the runtime's storage is on this host and readable; caller owns
	 * *out. Fails otherwise: read the volume with volume_read_tree. */
	int (*volume_host_path)(struct runtime *rt, const char *volume, char **out,
				struct cp_error *err);
	/* Services. exec runs `argv` inside the task's sandbox or container
	 * (a compose CMD healthcheck) and gives its exit code; a command still
	 * running after timeout_ms is killed and counts as failed (-1 code). */
	int (*exec)(struct runtime *rt, struct task *t, char *const *argv, long timeout_ms,
		    int *exit_code, struct cp_error *err);
	/* A JSON handle by which another cpipe process finds a detached task
	 * again (caller owns), whether it still runs (1 running, 0 gone), and
	 * a blocking stop: SIGTERM, `grace_ms`, SIGKILL, cleanup; a task that
	 * is already gone is fine. */
	cJSON *(*task_handle)(struct runtime *rt, struct task *t);
	int (*handle_alive)(struct runtime *rt, const cJSON *handle, struct cp_error *err);
	int (*handle_stop)(struct runtime *rt, const cJSON *handle, long grace_ms,
			   struct cp_error *err);
	/* The host port bound for `container_port` (docker picks free ones for
	 * ports without a host port); 0 when unknown. NULL: the same port. */
	int (*host_port)(struct runtime *rt, struct task *t, int container_port,
			 const char *protocol);

	/* Whether the runtime itself holds host port `port` on `host_ip` for
	 * the project (its port forwarder, kept between runs), so that a
	 * service publishing it finds it free. */
	bool (*port_forwarded)(struct runtime *rt, const char *host_ip, int port,
			       const char *protocol);

	/* Streams the tree at `path` (absolute, inside `volume`) to `visit`:
	 * the root first (e->path ""), then every entry below it, parents
	 * before children. A regular file's content is read with e->read
	 * during the visit. Returns 0, 1 when `path` does not exist (visit is
	 * never called), -1 on error (visit's own -1 included). */
	int (*volume_read_tree)(struct runtime *rt, const char *volume, const char *path,
				int (*visit)(void *ud, const struct volume_entry *e,
					     struct cp_error *err),
				void *ud, struct cp_error *err);

	/* The output of the detached task `handle` names, from its start, as
	 * the runtime itself keeps it: what the task wrote after the cpipe
	 * that started it exited included. `sink` gets it as it comes, by
	 * stream (1 stdout, 2 stderr). With `follow` it goes on until the
	 * task ends or *stop is set (noticed within about a second). Returns
	 * 0, 1 when the runtime no longer has the task (read its log file
	 * instead), -1 on error. Optional: NULL where the task's log file is
	 * complete (local, whose detached tasks write it themselves). */
	int (*handle_logs)(struct runtime *rt, const cJSON *handle, bool follow,
			   void (*sink)(void *ud, int stream, const char *data, size_t n),
			   void *ud, volatile sig_atomic_t *stop, struct cp_error *err);
	/* `cpipe exec`: runs `argv` in the detached task `handle` names (a
	 * service another cpipe left up), on cpipe's own stdin, stdout and
	 * stderr, and gives its exit code (128 + signo for a signal death).
	 * `ts` gives the stage (working_dir, user) and its environment; a
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
	 * NULL where the project's directory is all there is (local). */
	int (*projects)(cJSON **out, struct cp_error *err);
	/* `cpipe down`, after the services are stopped: removes what the
	 * project's runs left behind (containers of cpipe processes that are
	 * gone, the project network). NULL when there is nothing of the kind. */
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
