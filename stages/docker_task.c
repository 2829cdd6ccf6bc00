/* The docker runtime's tasks: one container per started stage, and one
 * helper thread per task with its own API client. The thread attaches to
 * the container before it starts, demultiplexes the log stream into the
 * task's two pipes (or, for a detached service, its log file), waits for
 * the exit code (a job's from its die event, docker_events.c) so that
 * poll() never blocks, and removes the container once a job exited (a
 * service's after release()), off the caller's critical path. A job may
 * be created ahead (prepare): its thread then creates the container too,
 * and start() only starts it. close() joins every thread, so no container
 * of the run outlives cpipe unless a service was explicitly left running. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/linux_names.h"
#include "docker_internal.h"

#define ATTACH_TIMEOUT_S 30
/* How long a job's exit code may take to follow the end of its output
 * before the thread asks with a wait request instead. */
#define EVENT_WAIT_MS 2000

struct dtask {
	struct task t;    /* what the executor sees; t.priv points back here */
	struct docker *d; /* the helper thread's own client */
	struct docker_events *events; /* a job's exit comes from here; NULL: wait */
	/* Prepared (docker_task_prepare): the thread creates the container. */
	cJSON *body;
	char *body_text; /* what start() compares its own body with */
	char *create_path;
	char *run_id;
	char *image_id; /* of the image the container was created from */
	struct docker_waker *waker; /* ends the thread's attach when dropped */
	char *id;         /* container ID; set by the thread when prepared */
	char *name;
	int out_w, err_w; /* write ends (or the log file); the thread's once it runs */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Under mu: */
	int attach; /* 0 pending, 1 attached, -1 failed */
	bool released;
	bool remove; /* the thread removes the container once released */
	char attach_err[2200];

	atomic_int cancel;   /* abort the thread's transfers */
	atomic_int done;     /* exit_code and wait_err are final */
	atomic_int finished; /* the thread has returned */
	int exit_code;
	char wait_err[2200];
	int wait_code; /* err->code of wait_err: EXIT_RUNTIME when the daemon went */
	bool err_reported;
	bool removed; /* by the thread; read after join */
	char remove_err[2200];
	struct docker_demux dm; /* the attach stream into out_w / err_w */
};

/* ---- the thread ---- */

static void write_stream(int *fd, const char *p, size_t n)
{
	while (n && *fd >= 0) {
		ssize_t w = write(*fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) { /* the reader is gone: drop the rest */
			close(*fd);
			*fd = -1;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void demux_emit(void *ud, int stream, const char *data, size_t n)
{
	struct dtask *dt = ud;
	write_stream(stream == 2 ? &dt->err_w : &dt->out_w, data, n);
}

static int demux(void *ud, const char *data, size_t n)
{
	struct dtask *dt = ud;
	/* A container with a tty sends its terminal's bytes as they are. */
	if (dt->t.tty)
		write_stream(&dt->out_w, data, n);
	else
		docker_demux_feed(&dt->dm, data, n);
	return 0;
}

static void set_attach(struct dtask *dt, int state, const char *msg)
{
	pthread_mutex_lock(&dt->mu);
	if (dt->attach == 0) {
		dt->attach = state;
		if (msg)
			snprintf(dt->attach_err, sizeof(dt->attach_err), "%s", msg);
		pthread_cond_broadcast(&dt->cv);
	}
	pthread_mutex_unlock(&dt->mu);
}

static void on_attach_headers(void *ud, long status)
{
	if (status < 400)
		set_attach(ud, 1, NULL);
}

static void thread_wait(struct dtask *dt)
{
	cleanup_free char *path = xasprintf("/containers/%s/wait?condition=not-running", dt->id);
	struct docker_req rq = {.method = "POST", .path = path, .cancel = &dt->cancel,
				.idle = DOCKER_IDLE_ALWAYS};
	struct cp_error e = {0};
	cJSON *j = NULL;
	if (docker_call(dt->d, &rq, NULL, &j, &e) == 0) {
		const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "StatusCode");
		if (cJSON_IsNumber(sc))
			dt->exit_code = sc->valueint;
		else
			snprintf(dt->wait_err, sizeof(dt->wait_err),
				 "waiting for container %s: the daemon gave no exit code", dt->name);
	} else if (!atomic_load(&dt->cancel)) {
		dt->wait_code = e.code;
		snprintf(dt->wait_err, sizeof(dt->wait_err), "waiting for container %s: %s",
			 dt->name, e.msg);
	}
	cJSON_Delete(j);
}

/* A job's exit code from its die event, which the daemon sends before it
 * answers a wait; false when that did not come soon after the output
 * ended (a job that closed its output and runs on, an event the daemon
 * dropped): the wait gives it then. */
static bool exit_from_event(struct dtask *dt)
{
	int code = 0;
	if (!dt->events ||
	    docker_events_exit(dt->events, dt->id, EVENT_WAIT_MS, &dt->cancel, &code) != 1)
		return false;
	dt->exit_code = code;
	return true;
}

/* A service with a restart policy whose output stream ended: while the
 * daemon restarts the container, its output is followed again from the
 * moment the last stream ended. False once the container is done for. */
static bool follow_restarts(struct dtask *dt)
{
	const struct task_desc *s = &dt->t.desc;
	if (!s->service || s->lifecycle.restart == RESTART_NO)
		return false;
	struct timespec since;
	clock_gettime(CLOCK_REALTIME, &since);
	cleanup_free char *ipath = xasprintf("/containers/%s/json", dt->id);
	while (!atomic_load(&dt->cancel)) {
		cJSON *j = NULL;
		struct cp_error e = {0};
		if (docker_json(dt->d, "GET", ipath, NULL, NULL, &j, &e) < 0) {
			cJSON_Delete(j);
			return false;
		}
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "State");
		bool restarting = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "Restarting"));
		bool running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "Running"));
		cJSON_Delete(j);
		if (!restarting && !running)
			return false;
		if (restarting) {
			usleep(100000);
			continue;
		}
		cleanup_free char *lpath = xasprintf(
			"/containers/%s/logs?follow=1&stdout=1&stderr=1&since=%lld.%09ld", dt->id,
			(long long)since.tv_sec, since.tv_nsec);
		struct docker_req rq = {.method = "GET", .path = lpath, .on_data = demux, .ud = dt,
					.cancel = &dt->cancel, .idle = DOCKER_IDLE_AFTER_HEADERS};
		docker_call(dt->d, &rq, NULL, NULL, &e);
		return true;
	}
	return false;
}

/* A prepared task's container, which its thread creates; false, with the
 * reason as the attach error, when it could not or the task was dropped. */
static bool create_ahead(struct dtask *dt)
{
	struct cp_error e = {0};
	cJSON *resp = NULL, *info = NULL;
	if (atomic_load(&dt->cancel)) {
		set_attach(dt, -1, "dropped before its creation");
		return false;
	}
	int rc = docker_json(dt->d, "POST", dt->create_path, dt->body, NULL, &resp, &e);
	const char *id = docker_str(resp, "Id");
	if (rc == 0 && id) {
		cleanup_free char *path = xasprintf("/containers/%s/json", id);
		docker_json(dt->d, "GET", path, NULL, NULL, &info, &e);
		const char *image = docker_str(info, "Image");
		pthread_mutex_lock(&dt->mu);
		dt->id = xstrdup(id);
		dt->image_id = image ? xstrdup(image) : NULL;
		pthread_mutex_unlock(&dt->mu);
	} else {
		set_attach(dt, -1, rc < 0 ? e.msg : "the daemon gave no ID");
	}
	cJSON_Delete(resp);
	cJSON_Delete(info);
	return dt->id != NULL;
}

static void *task_main(void *arg)
{
	struct dtask *dt = arg;
	struct cp_error e = {0};
	int rc = -1;
	if (!dt->create_path || create_ahead(dt)) {
		cleanup_free char *apath =
			xasprintf("/containers/%s/attach?stream=1&stdout=1&stderr=1", dt->id);
		struct docker_req rq = {.method = "POST", .path = apath, .on_data = demux,
					.on_headers = on_attach_headers, .ud = dt,
					.cancel = &dt->cancel, .waker = dt->waker,
					.idle = DOCKER_IDLE_AFTER_HEADERS};
		rc = docker_call(dt->d, &rq, NULL, NULL, &e);
	}
	set_attach(dt, -1, rc < 0 ? e.msg : "the daemon ended the attach stream");
	pthread_mutex_lock(&dt->mu);
	bool attached = dt->attach == 1;
	pthread_mutex_unlock(&dt->mu);

	dt->exit_code = 125;
	while (attached && follow_restarts(dt))
		;
	if (attached && !atomic_load(&dt->cancel) && !exit_from_event(dt))
		thread_wait(dt);
	atomic_store(&dt->done, 1);
	/* Closed after `done`, so the executor, woken by EOF, sees the exit. */
	if (dt->out_w >= 0)
		close(dt->out_w);
	if (dt->err_w >= 0)
		close(dt->err_w);
	dt->out_w = dt->err_w = -1;

	/* A job's container serves nothing once it exited: it goes now, while
	 * the executor records the job, not after. */
	bool job = !dt->t.desc.service;
	pthread_mutex_lock(&dt->mu);
	while (!dt->released && !job)
		pthread_cond_wait(&dt->cv, &dt->mu);
	bool remove = dt->remove || job;
	pthread_mutex_unlock(&dt->mu);
	if (remove) {
		cp_error_clear(&e);
		if (!dt->id || docker_container_remove(dt->d, dt->id, &e) == 0)
			dt->removed = true;
		else
			snprintf(dt->remove_err, sizeof(dt->remove_err), "%s", e.msg);
	}
	atomic_store(&dt->finished, 1);
	return NULL;
}

/* ---- task lifecycle ---- */

int docker_thread_start(pthread_t *out, void *(*fn)(void *), void *arg)
{
	/* The thread takes no signal: the executor's handlers run on its own. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(out, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static struct dtask *task_new(struct runtime *rt, const struct task_desc *s, const char *id,
			      const char *name)
{
	struct dtask *dt = xcalloc(1, sizeof(*dt));
	dt->id = id ? xstrdup(id) : NULL;
	dt->name = xstrdup(name);
	dt->t.desc = *s;
	dt->t.priv = dt;
	dt->t.out_fd = dt->t.err_fd = dt->out_w = dt->err_w = -1;
	dt->dm.emit = demux_emit;
	dt->dm.ud = dt;
	pthread_mutex_init(&dt->mu, NULL);
	pthread_cond_init(&dt->cv, NULL);
	atomic_init(&dt->cancel, 0);
	atomic_init(&dt->done, 0);
	atomic_init(&dt->finished, 0);
	dt->d = docker_clone(rt->d);
	return dt;
}

static void task_free(struct dtask *dt)
{
	int fds[4] = {dt->t.out_fd, dt->t.err_fd, dt->out_w, dt->err_w};
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pthread_mutex_destroy(&dt->mu);
	pthread_cond_destroy(&dt->cv);
	docker_close(dt->d);
	cJSON_Delete(dt->body);
	if (dt->body_text)
		cJSON_free(dt->body_text);
	free(dt->create_path);
	free(dt->run_id);
	free(dt->image_id);
	docker_waker_free(dt->waker);
	free(dt->id);
	free(dt->name);
	free(dt);
}

static void task_release_thread(struct dtask *dt, bool remove)
{
	pthread_mutex_lock(&dt->mu);
	dt->released = true;
	dt->remove = remove;
	pthread_cond_broadcast(&dt->cv);
	pthread_mutex_unlock(&dt->mu);
}

/* Removes the container now, stops the thread and frees the task. */
static void task_destroy(struct runtime *rt, struct dtask *dt)
{
	struct cp_error e = {0};
	if (docker_container_remove(rt->d, dt->id, &e) == 0)
		rt->live--;
	else
		runtime_note(&rt->sink, RUNTIME_NOTICE, dt->t.desc.name, "%s", e.msg);
	atomic_store(&dt->cancel, 1);
	if (dt->thread_started) {
		task_release_thread(dt, false);
		pthread_join(dt->thread, NULL);
	}
	task_free(dt);
}

/* Joins a retired task's thread and accounts for its removal. */
static void task_reap(struct runtime *rt, struct dtask *dt)
{
	pthread_join(dt->thread, NULL);
	if (dt->removed)
		rt->live--;
	else if (dt->remove_err[0])
		runtime_note(&rt->sink, RUNTIME_NOTICE, dt->t.desc.name, "%s", dt->remove_err);
	task_free(dt);
}

/* Reaps the retired tasks whose thread is done (all of them with `all`). */
static void reap_retired(struct runtime *rt, bool all)
{
	size_t k = 0;
	for (size_t i = 0; i < rt->nretired; i++) {
		struct dtask *dt = rt->retired[i];
		if (all || atomic_load(&dt->finished))
			task_reap(rt, dt);
		else
			rt->retired[k++] = dt;
	}
	rt->nretired = k;
}

static int task_outputs(struct dtask *dt, const struct task_spec *ts, struct cp_error *err)
{
	if (ts->detached) {
		dt->out_w = open(ts->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (dt->out_w < 0 || (dt->err_w = fcntl(dt->out_w, F_DUPFD_CLOEXEC, 0)) < 0)
			return cp_error_errno(err, EXIT_USAGE, "opening log %s", ts->log_path);
		return 0;
	}
	int outp[2], errp[2];
	if (pipe2(outp, O_CLOEXEC) < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating a pipe");
	if (dt->t.tty) { /* stdout and stderr are one terminal */
		dt->t.out_fd = outp[0];
		dt->out_w = outp[1];
		fcntl(dt->t.out_fd, F_SETFL, O_NONBLOCK);
		return 0;
	}
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close(outp[0]);
		close(outp[1]);
		return cp_error_errno(err, EXIT_USAGE, "creating a pipe");
	}
	dt->t.out_fd = outp[0];
	dt->t.err_fd = errp[0];
	dt->out_w = outp[1];
	dt->err_w = errp[1];
	fcntl(dt->t.out_fd, F_SETFL, O_NONBLOCK);
	fcntl(dt->t.err_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* Waits for the thread to attach; gives up after ATTACH_TIMEOUT_S, or at
 * once when runtime_interrupts moves (err->code EXIT_INTERRUPTED). */
static int wait_attached(struct dtask *dt, struct cp_error *err)
{
	sig_atomic_t interrupts = runtime_interrupts;
	long long deadline = now_ms() + ATTACH_TIMEOUT_S * 1000L;
	pthread_mutex_lock(&dt->mu);
	while (dt->attach == 0 && interrupts == runtime_interrupts && now_ms() < deadline) {
		struct timespec slice; /* runtime_interrupts signals no condition */
		docker_timespec_in(&slice, 100);
		pthread_cond_timedwait(&dt->cv, &dt->mu, &slice);
	}
	int state = dt->attach;
	pthread_mutex_unlock(&dt->mu);
	if (state == 1)
		return 0;
	if (state == 0 && interrupts != runtime_interrupts) {
		cp_error_set(err, EXIT_INTERRUPTED, "attaching to container %s: interrupted",
			     dt->name);
		return -1;
	}
	if (state == 0)
		cp_error_set(err, EXIT_STAGE_FAILED,
			     "attaching to container %s: no answer from the daemon in %ds",
			     dt->name, ATTACH_TIMEOUT_S);
	else
		cp_error_set(err, EXIT_STAGE_FAILED, "attaching to container %s: %s", dt->name,
			     dt->attach_err);
	return -1;
}

/* Before any job container starts, so that no exit is missed. */
static void events_ensure(struct runtime *rt)
{
	if (rt->events_tried)
		return;
	rt->events_tried = true;
	rt->events = docker_events_open(rt);
}

/* ---- created ahead ---- */

/* Starts the threads of the tasks prepared before the project was ready
 * (the network ensured, the leftovers swept: the first start does it). */
static void ahead_launch(struct runtime *rt)
{
	size_t k = 0;
	for (size_t i = 0; i < rt->nahead; i++) {
		struct dtask *dt = rt->ahead[i];
		if (!dt->thread_started) {
			events_ensure(rt);
			dt->events = rt->events;
			if (docker_thread_start(&dt->thread, task_main, dt) != 0) {
				task_free(dt);
				continue;
			}
			dt->thread_started = true;
			rt->live++; /* until its thread says it removed what it created */
			if (!strvec_contains(&rt->runs, dt->run_id))
				strvec_push(&rt->runs, dt->run_id);
		}
		rt->ahead[k++] = dt;
	}
	rt->nahead = k;
}

/* The thread removes the container while the run goes on; close() joins. */
static void retire(struct runtime *rt, struct dtask *dt)
{
	task_release_thread(dt, true);
	rt->retired = xrealloc(rt->retired, (rt->nretired + 1) * sizeof(*rt->retired));
	rt->retired[rt->nretired++] = dt;
}

/* Takes the prepared task of `stage` off the list; NULL when there is none. */
static struct dtask *ahead_remove(struct runtime *rt, const char *stage)
{
	for (size_t i = 0; i < rt->nahead; i++) {
		struct dtask *dt = rt->ahead[i];
		if (strcmp(dt->t.desc.name, stage) != 0)
			continue;
		memmove(rt->ahead + i, rt->ahead + i + 1, (rt->nahead - i - 1) * sizeof(*rt->ahead));
		rt->nahead--;
		return dt;
	}
	return NULL;
}

/* Ends a prepared task: its thread stops attaching and removes whatever it
 * created, at once with `now` (its name is needed again), else while the
 * run goes on. */
static void ahead_drop(struct runtime *rt, struct dtask *dt, bool now)
{
	if (!dt->thread_started) {
		task_free(dt);
		return;
	}
	atomic_store(&dt->cancel, 1);
	docker_wake(dt->waker);
	if (!now) {
		retire(rt, dt);
		return;
	}
	task_release_thread(dt, true);
	task_reap(rt, dt);
}

/* In *out, the prepared task of the stage `ts` starts, when its container
 * is what `body` creates now, from the image its name gives now, and
 * attached; else NULL, once what was prepared is gone. Fails only when
 * interrupted while its thread was still at it. */
static int ahead_take(struct dtask **out, struct runtime *rt, const struct task_spec *ts,
		      const cJSON *body, struct cp_error *err)
{
	struct dtask *dt = ahead_remove(rt, ts->desc->name);
	*out = NULL;
	if (!dt)
		return 0;
	char *text = cJSON_PrintUnformatted(body);
	bool same = strcmp(text, dt->body_text) == 0 &&
		    strcmp(dt->run_id, ts->run_id ? ts->run_id : "") == 0;
	cJSON_free(text);
	if (same && dt->thread_started && wait_attached(dt, err) == 0) {
		/* The image a name gives may change while a stage runs (one that
		 * builds or pulls through the daemon's socket). */
		cleanup_free char *image = docker_image_current(rt, ts->desc);
		if (image && dt->image_id && strcmp(image, dt->image_id) == 0) {
			*out = dt;
			return 0;
		}
	} else if (same && dt->thread_started && err->code == EXIT_INTERRUPTED) {
		ahead_drop(rt, dt, false);
		return -1;
	}
	cp_error_clear(err);
	ahead_drop(rt, dt, true);
	return 0;
}

/* Whether the container of `ts` can be created before the stages before it
 * ran just as start() would create it after them: a job, an image that no
 * build or pull will change, and bind sources that exist (start() would
 * create a missing one, which a stage before it may be about to). */
static bool can_create_ahead(struct runtime *rt, const struct task_spec *ts)
{
	const struct task_desc *s = ts->desc;
	if (ts->detached || s->service)
		return false;
	for (size_t i = 0; i < s->nmounts; i++) {
		struct stat st;
		if (s->mounts[i].type == MOUNT_BIND && docker_is_local(rt->d) &&
		    stat(s->mounts[i].source, &st) < 0)
			return false;
	}
	return docker_image_settled(rt, s);
}

bool docker_task_prepare(struct runtime *rt, const struct task_spec *ts)
{
	const struct task_desc *s = ts->desc;
	for (size_t i = 0; i < rt->nahead; i++)
		if (strcmp(rt->ahead[i]->t.desc.name, s->name) == 0) /* asked twice: the first stands */
			return true;
	reap_retired(rt, false);
	if (!can_create_ahead(rt, ts))
		return false;
	cleanup_free char *name = docker_container_name(rt, s, ts->run_id);
	struct dtask *dt = task_new(rt, s, NULL, name);
	dt->t.tty = ts->tty;
	dt->body = docker_container_body(rt, ts);
	dt->body_text = cJSON_PrintUnformatted(dt->body);
	dt->create_path = docker_create_path(rt, name, s);
	dt->run_id = xstrdup(ts->run_id ? ts->run_id : "");
	dt->waker = docker_waker_new();
	struct cp_error e = {0};
	if (task_outputs(dt, ts, &e) < 0) {
		task_free(dt);
		return false;
	}
	rt->ahead = xrealloc(rt->ahead, (rt->nahead + 1) * sizeof(*rt->ahead));
	rt->ahead[rt->nahead++] = dt;
	/* Once the project is ready; the first start makes it so. */
	if (rt->network_ready && rt->swept)
		ahead_launch(rt);
	return true;
}

void docker_task_unprepare(struct runtime *rt, const char *stage)
{
	struct dtask *dt = ahead_remove(rt, stage);
	if (dt)
		ahead_drop(rt, dt, false);
}

/* ---- runtime_ops ---- */

int docker_task_start(struct runtime *rt, const struct task_spec *ts, struct task **out,
		      struct cp_error *err)
{
	const struct task_desc *s = ts->desc;
	cleanup_free char *image_id = NULL;
	if (docker_image_prepare(rt, s, true, &image_id, err) < 0 ||
	    docker_network_ensure(rt, err) < 0)
		return -1;
	reap_retired(rt, false);
	if (!rt->swept) {
		/* Before our names are taken: a dead run's container may hold one. */
		rt->swept = true;
		struct cp_error e = {0};
		int removed = 0;
		if (docker_leftovers_remove(rt, &removed, &e) < 0)
			runtime_note(&rt->sink, RUNTIME_NOTICE, NULL, "%s", e.msg);
		else if (removed)
			runtime_note(&rt->sink, RUNTIME_NOTICE, NULL,
				     "removed %d container%s left by a cpipe that is gone", removed,
				     removed == 1 ? "" : "s");
	}

	if (!s->service)
		events_ensure(rt);
	ahead_launch(rt);

	cleanup_free char *name = docker_container_name(rt, s, ts->run_id);
	cleanup_free char *path = docker_create_path(rt, name, s);
	cJSON *body = docker_container_body(rt, ts);
	struct dtask *dt = NULL;
	if (ahead_take(&dt, rt, ts, body, err) < 0) {
		cJSON_Delete(body);
		return -1;
	}
	if (dt) {
		cJSON_Delete(body);
		if (docker_compose_files(rt, dt->id, s, err) < 0)
			goto fail;
		goto created;
	}
	cJSON *resp = NULL;
	int rc = docker_json(rt->d, "POST", path, body, NULL, &resp, err);
	cJSON_Delete(body);
	const char *id = docker_str(resp, "Id");
	if (rc == 0 && !id)
		rc = cp_error_set(err, EXIT_USAGE, "the daemon gave no ID");
	if (rc < 0) {
		cJSON_Delete(resp);
		return cp_error_prefix(err, "creating container %s", name);
	}
	dt = task_new(rt, s, id, name);
	dt->t.tty = ts->tty && !ts->detached;
	dt->events = s->service ? NULL : rt->events;
	cJSON_Delete(resp);
	rt->live++;
	if (ts->run_id && !strvec_contains(&rt->runs, ts->run_id))
		strvec_push(&rt->runs, ts->run_id);
	if (task_outputs(dt, ts, err) < 0 || docker_compose_files(rt, dt->id, s, err) < 0)
		goto fail;

	int prc = docker_thread_start(&dt->thread, task_main, dt);
	if (prc != 0) {
		errno = prc;
		cp_error_errno(err, EXIT_USAGE, "starting a thread");
		goto fail;
	}
	dt->thread_started = true;
	if (wait_attached(dt, err) < 0)
		goto fail;
created:
	{
		/* In a block: the gotos above must not jump into its scope. */
		cleanup_free char *spath = xasprintf("/containers/%s/start", dt->id);
		if (docker_json(rt->d, "POST", spath, NULL, NULL, NULL, err) < 0) {
			cp_error_prefix(err, "starting container %s", name);
			if (s->gpus.n && strstr(err->msg, "could not select device driver")) {
				char msg[sizeof(err->msg)];
				int code = err->code;
				memcpy(msg, err->msg, sizeof(msg));
				cp_error_set(
				    err, code,
				    "%s (the stage asks for a GPU: gpus:, runtime: nvidia or "
				    "deploy devices; this Docker has no GPU driver: install "
				    "the NVIDIA Container Toolkit or drop the request)",
				    msg);
			}
			goto fail;
		}
	}
	if (dt->t.tty) {
		/* The terminal's size (API 1.41 takes it only once it runs); a
		 * container that already exited refuses, which is fine. */
		cleanup_free char *rpath = xasprintf("/containers/%s/resize?h=%u&w=%u", dt->id,
						     ts->tty_rows ? ts->tty_rows : 24u,
						     ts->tty_cols ? ts->tty_cols : 80u);
		struct cp_error ignored = {0};
		docker_json(rt->d, "POST", rpath, NULL, NULL, NULL, &ignored);
	}
	*out = &dt->t;
	return 0;
fail:
	task_destroy(rt, dt);
	return -1;
}

int docker_task_poll(struct runtime *rt, struct task *t, int *exit_code, struct cp_error *err)
{
	(void)rt;
	struct dtask *dt = t->priv;
	if (!atomic_load(&dt->done))
		return 0;
	if (dt->wait_err[0] && !dt->err_reported) {
		dt->err_reported = true;
		int code = dt->wait_code == EXIT_RUNTIME ? EXIT_RUNTIME : EXIT_STAGE_FAILED;
		cp_error_set(err, code, "%s", dt->wait_err);
		return -1;
	}
	*exit_code = dt->exit_code;
	return 1;
}

static const char *signal_name(int sig, char *buf, size_t n)
{
	switch (sig) {
	case SIGTERM:
		return "SIGTERM";
	case SIGKILL:
		return "SIGKILL";
	case SIGINT:
		return "SIGINT";
	case SIGHUP:
		return "SIGHUP";
	case SIGQUIT:
		return "SIGQUIT";
	default:
		if (linux_signal_name(sig))
			return linux_signal_name(sig);
		snprintf(buf, n, "%d", sig);
		return buf;
	}
}

int docker_task_kill(struct runtime *rt, struct task *t, int sig, struct cp_error *err)
{
	struct dtask *dt = t->priv;
	struct cp_error local = {0};
	if (!err)
		err = &local;
	if (atomic_load(&dt->done))
		return 0;
	char buf[16];
	/* A stop is the stage's stop_signal, as docker stop sends it. */
	if (sig == SIGTERM && t->desc.lifecycle.stop_signal)
		sig = t->desc.lifecycle.stop_signal;
	cleanup_free char *path =
		xasprintf("/containers/%s/kill?signal=%s", dt->id, signal_name(sig, buf, sizeof(buf)));
	long status = 0;
	if (docker_json(rt->d, "POST", path, NULL, &status, NULL, err) < 0) {
		if (status == 404 || status == 409) { /* gone, or no longer running */
			cp_error_clear(err);
			return 0;
		}
		/* A daemon that cannot even be asked to stop it (gone, hung, or
		 * the request interrupted by another Ctrl-C): stop following the
		 * container, so the run can end. The thread's streams give up
		 * and the task ends as 125; the container keeps its owner label
		 * and the next run removes it. */
		if (err->code == EXIT_RUNTIME || err->code == EXIT_INTERRUPTED)
			atomic_store(&dt->cancel, 1);
		return cp_error_prefix(err, "stopping container %s", dt->name);
	}
	return 0;
}

void docker_task_release(struct runtime *rt, struct task *t)
{
	if (!t)
		return;
	struct dtask *dt = t->priv;
	if (t->keep_running) {
		/* A service left up: stop following it; its container stays. */
		strvec_push(&rt->kept, dt->id);
		rt->live--;
		atomic_store(&dt->cancel, 1);
		task_release_thread(dt, false);
		pthread_join(dt->thread, NULL);
		task_free(dt);
		return;
	}
	if (!atomic_load(&dt->done)) {
		task_destroy(rt, dt);
		return;
	}
	if (t->out_fd >= 0)
		close(t->out_fd);
	if (t->err_fd >= 0)
		close(t->err_fd);
	t->out_fd = t->err_fd = -1;
	retire(rt, dt);
}

/* Removes whatever container of our runs is still there, except the
 * services deliberately left running. */
static void sweep(struct runtime *rt)
{
	for (size_t r = 0; r < rt->runs.n; r++) {
		cleanup_free char *f =
			docker_label_filter(rt, LABEL_PROJECT, rt->project, LABEL_RUN, rt->runs.v[r]);
		cleanup_free char *path = xasprintf("/containers/json?all=1&filters=%s", f);
		cJSON *list = NULL;
		struct cp_error e = {0};
		if (docker_json(rt->d, "GET", path, NULL, NULL, &list, &e) < 0) {
			runtime_note(&rt->sink, RUNTIME_NOTICE, NULL, "listing leftover containers: %s",
				     e.msg);
			continue;
		}
		const cJSON *c;
		cJSON_ArrayForEach(c, list)
		{
			const char *id = docker_str(c, "Id");
			if (id && !strvec_contains(&rt->kept, id) &&
			    docker_container_remove(rt->d, id, &e) < 0)
				runtime_note(&rt->sink, RUNTIME_NOTICE, NULL, "%s", e.msg);
		}
		cJSON_Delete(list);
	}
}

void docker_tasks_close(struct runtime *rt)
{
	while (rt->nahead)
		ahead_drop(rt, rt->ahead[--rt->nahead], false);
	free(rt->ahead);
	rt->ahead = NULL;
	reap_retired(rt, true);
	free(rt->retired);
	rt->retired = NULL;
	if (rt->live > 0)
		sweep(rt);
	strvec_free(&rt->kept);
	strvec_free(&rt->runs);
	/* Every thread that asked it is joined. */
	docker_events_close(rt->events);
	rt->events = NULL;
}

const char *docker_task_container(const struct task *t, const char **name_out)
{
	const struct dtask *dt = t->priv;
	if (name_out)
		*name_out = dt->name;
	return dt->id;
}
