/* Shared by the docker runtime's files: docker.c (runtime, images,
 * containers), docker_task.c (running containers), docker_service.c
 * (services), docker_volume.c (volumes) and docker_build.c (builds). */
#ifndef CPIPE_STAGES_DOCKER_INTERNAL_H
#define CPIPE_STAGES_DOCKER_INTERNAL_H

#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "docker_api.h"
#include "runtime.h"

#define LABEL_PROJECT "com.cpipe.project"
#define LABEL_STAGE "com.cpipe.stage"
#define LABEL_RUN "com.cpipe.run"
#define LABEL_VOLUME "com.cpipe.volume"
#define LABEL_HELPER "com.cpipe.helper"
/* host/pid/start-time of the cpipe that created the container. */
#define LABEL_OWNER "com.cpipe.owner"

struct dtask;
struct docker_events;

struct image_entry {
	char *ref; /* normalized: always with a tag or digest */
	char *id;
	bool built; /* by this runtime, not merely found */
};

struct runtime {
	struct docker *d; /* the main thread's client */
	const struct volume *volumes; /* the project's declared ones, lent */
	size_t nvolumes;
	cJSON *(*kept_handles)(const char *state_dir); /* see struct runtime_project */
	struct runtime_sink sink; /* the project's, for warnings and notices */
	char *project; /* the project name, normalized as compose does */
	char *network; /* <project>_default */
	bool network_ready;
	/* A stage is a service or publishes ports: the project gets a network of
	 * its own, on which stages answer to their names. Jobs alone run on the
	 * engine's default bridge: nothing has to reach them, and a container on
	 * a user-defined network starts ~150 ms slower (bench/docker-stages). */
	bool own_network;
	char *owner;      /* our LABEL_OWNER value */
	bool swept;       /* leftovers of dead cpipes removed */
	struct image_entry *images; /* prepared during this runtime's life */
	size_t nimages;
	char *state_dir;    /* absolute .cpipe, left out of build contexts */
	struct strvec runs; /* run ids we created containers for */
	int live;           /* containers created and not yet removed */
	struct strvec kept; /* container IDs of services left running */
	struct dtask **retired; /* released; their threads remove the containers */
	size_t nretired;
	struct dtask **ahead; /* prepared: created ahead of their start */
	size_t nahead;
	struct docker_events *events; /* the exits of our containers, once opened */
	bool events_tried;
};

/* docker.c */

/* The image a stage runs: image:, else the tag its build: produces, always
 * with a tag. Caller owns. */
char *docker_stage_image_ref(const struct runtime *rt, const struct task_desc *s);
/* <project>-<stage>-<8 hex digits of the run id>. Caller owns. */
char *docker_container_name(const struct runtime *rt, const struct task_desc *s,
			    const char *run_id);
/* The runtime_ops image_prepare (see runtime.h). */
int docker_image_prepare(struct runtime *rt, const struct task_desc *s, bool build, char **id_out,
			 struct cp_error *err);
/* The runtime_ops image_start, image_cancel and image_end (see runtime.h). */
int docker_image_start(struct runtime *rt, const struct task_desc *s, struct image_job **out,
		       int *fd_out, struct cp_error *err);
void docker_image_cancel(struct runtime *rt, struct image_job *j);
int docker_image_end(struct runtime *rt, struct image_job *j, char **id_out, struct cp_error *err);
/* Whether the stage's image is known for the rest of the run, without a
 * build or a pull: found by its name (and remembered) when no stage builds
 * it, or built already by this runtime. */
bool docker_image_settled(struct runtime *rt, const struct task_desc *s);
/* The ID the stage's image name resolves to right now, or NULL. Caller
 * owns. */
char *docker_image_current(struct runtime *rt, const struct task_desc *s);
/* Creates <project>_default unless it exists (once per runtime). */
int docker_network_ensure(struct runtime *rt, struct cp_error *err);
/* The POST /containers/create body for a task. Caller deletes. */
cJSON *docker_container_body(struct runtime *rt, const struct task_spec *ts);

/* The Docker name of volume `key`: its name:, else <project>_<key>. Caller
 * owns. */
char *docker_volume_name(const struct runtime *rt, const char *key);

/* A JSON filters= value selecting label `key=value` (and `key2=value2`
 * when key2 is not NULL), URL-escaped. Caller owns. */
char *docker_label_filter(struct runtime *rt, const char *key, const char *value,
			  const char *key2, const char *value2);

/* Removes a container and its anonymous volumes' references (force=1,
 * v=0); a container that is already gone is fine. */
int docker_container_remove(struct docker *d, const char *id, struct cp_error *err);

/* docker_task.c: the runtime_ops task members, and the end of every task
 * at close (threads joined, leftovers removed). */
int docker_task_start(struct runtime *rt, const struct task_spec *ts, struct task **out,
		      struct cp_error *err);
int docker_task_poll(struct runtime *rt, struct task *t, int *exit_code, struct cp_error *err);
int docker_task_kill(struct runtime *rt, struct task *t, int sig, struct cp_error *err);
void docker_task_release(struct runtime *rt, struct task *t);
bool docker_task_prepare(struct runtime *rt, const struct task_spec *ts);
void docker_task_unprepare(struct runtime *rt, const char *stage);
void docker_tasks_close(struct runtime *rt);
/* pthread_create for a helper thread, which takes no signal. */
int docker_thread_start(pthread_t *out, void *(*fn)(void *), void *arg);
/* The container ID of a started task (and its name in *name_out, when not
 * NULL); lent for the task's life. */
const char *docker_task_container(const struct task *t, const char **name_out);

/* docker_service.c: the runtime_ops service members (see runtime.h). */
int docker_task_exec_start(struct runtime *rt, struct task *t, char *const *argv,
			   long timeout_ms, struct task_exec **out, int *fd_out,
			   struct cp_error *err);
int docker_task_exec_end(struct runtime *rt, struct task_exec *x, bool kill, int *exit_code,
			 struct cp_error *err);
cJSON *docker_task_handle(struct runtime *rt, struct task *t);
int docker_handle_alive(struct runtime *rt, const cJSON *handle, struct cp_error *err);
int docker_handle_stop(struct runtime *rt, const cJSON *handle, long grace_ms,
		       struct cp_error *err);
int docker_task_host_port(struct runtime *rt, struct task *t, int container_port,
			  const char *protocol);
/* cpipe ls: the projects of the daemon's labelled containers (docker_service.c). */
int docker_projects(cJSON **out, struct cp_error *err);
/* cpipe exec, kill and top on a service's container (docker_service.c). */
int docker_handle_exec(struct runtime *rt, const cJSON *handle, const struct task_spec *ts,
		       char *const *argv, int *exit_code, struct cp_error *err);
int docker_handle_kill(struct runtime *rt, const cJSON *handle, int sig, struct cp_error *err);
int docker_handle_top(struct runtime *rt, const cJSON *handle, cJSON **out, struct cp_error *err);
int docker_handle_logs(struct runtime *rt, const cJSON *handle, bool follow,
		       void (*sink)(void *ud, int stream, const char *data, size_t n), void *ud,
		       volatile sig_atomic_t *stop, struct cp_error *err);

/* docker_compose.c: adds the stage's compose keys of resources, security
 * and lifecycle (tmpfs, shm_size, ulimits, pids_limit, caps, read_only,
 * init, ipc, file secrets, stop_signal, restart) to a create body and its
 * HostConfig (whose Mounts exist already), warning about what cannot
 * apply. */
void docker_compose_body(struct runtime *rt, cJSON *body, cJSON *host,
			 const struct task_desc *s);
/* Copies the secrets and configs of `s` given by value (environment:,
 * content:) into the created container `id`, mode 0444, before it starts;
 * the values pass through memory only. */
int docker_compose_files(struct runtime *rt, const char *id, const struct task_desc *s,
			 struct cp_error *err);
/* "/containers/create?name=NAME[&platform=P]". Caller owns. */
char *docker_create_path(struct runtime *rt, const char *name, const struct task_desc *s);

/* docker_volume.c: the runtime_ops volume members. */
int docker_volume_ensure(struct runtime *rt, const struct volume *v, struct cp_error *err);
int docker_volume_list(struct runtime *rt, struct volume_info **out, size_t *nout,
		       struct cp_error *err);
int docker_volume_remove(struct runtime *rt, const char *name, struct cp_error *err);
int docker_volume_host_path(struct runtime *rt, const char *volume, char **out,
			    struct cp_error *err);
int docker_volume_read_tree(struct runtime *rt, const char *volume, const char *path,
			    int (*visit)(void *ud, const struct volume_entry *e, struct cp_error *err),
			    void *ud, struct cp_error *err);

/* docker_events.c: the exit codes of the project's containers from the
 * daemon's "die" events, which come before a wait request answers (the
 * daemon answers it only once it has released the container's network).
 * docker_events_open starts the watcher and returns once the daemon
 * streams, so that no later exit is missed; NULL when it cannot: wait
 * instead. docker_events_exit gives container `id`'s code (1, *code set)
 * once its event came, waiting up to timeout_ms, less once *cancel is set
 * or the stream ended (0). Thread-safe; close after the last user. */
struct docker_events *docker_events_open(struct runtime *rt);
int docker_events_exit(struct docker_events *ev, const char *id, long timeout_ms,
		       const atomic_int *cancel, int *code);
void docker_events_close(struct docker_events *ev);
/* CLOCK_REALTIME in `ms` milliseconds, for pthread_cond_timedwait. */
void docker_timespec_in(struct timespec *ts, long ms);

/* docker_leftovers.c. The LABEL_OWNER value for this process; caller
 * owns. */
char *docker_owner_label(void);
/* Removes the project's containers whose owning cpipe is gone, except
 * those a service state file names; *removed counts them. */
int docker_leftovers_remove(struct runtime *rt, int *removed, struct cp_error *err);
/* The runtime_ops down: leftovers, then the project network. */
int docker_rt_down(struct runtime *rt, struct cp_error *err);

/* docker_build.c: builds `b` as image `tag` with `labels`, streaming the
 * builder's output to `out`, each line prefixed with `prefix`. `skip`
 * (absolute, may be NULL) is left out of the context: cpipe's state
 * directory. `waker` (may be NULL) ends the build at once from another
 * thread. *id_out is the image ID; caller owns it. */
int docker_build_image(char **id_out, struct docker *d, const struct build *b, const char *tag,
		       const struct kvvec *labels, const char *skip, FILE *out, const char *prefix,
		       struct docker_waker *waker, struct cp_error *err);

/* Writes the build context `dir` as a tar to `f`, leaving out `skip`
 * (absolute, may be NULL) and what .dockerignore excludes, but always
 * keeping `dockerfile` (relative to dir) and .dockerignore itself. */
int docker_context_tar(FILE *f, const char *dir, const char *dockerfile, const char *skip,
		       struct cp_error *err);

#endif
