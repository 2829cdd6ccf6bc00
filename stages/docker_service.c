/* The docker runtime's service members: health-check commands by exec,
 * published ports, and the handle by which another cpipe finds a service
 * left running again, follows its output and stops it. The handle is the
 * container's ID (and name, for people); the container is the service. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "../lib/defaults.h"
#include "docker_internal.h"

/* Extra time an exec API call gets beyond the check's own timeout. */
#define EXEC_API_SLACK_MS 5000

static cJSON *container_inspect(struct docker *d, const char *id, long *status,
				struct cp_error *err)
{
	cleanup_free char *path = xasprintf("/containers/%s/json", id);
	cJSON *j = NULL;
	if (docker_json(d, "GET", path, NULL, status, &j, err) < 0) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/* ---- exec ---- */

static int discard(void *ud, const char *data, size_t n)
{
	(void)ud, (void)data, (void)n;
	return 0;
}

/* A health check's exec, run by a thread of its own on a client of its
 * own, so that the executor's loop never waits for the daemon. The thread
 * keeps the check's deadline itself (killing the command there, as
 * exec_kill can) and writes a byte to `done_pipe` when it is over;
 * whoever comes last (the thread, or exec_end giving it up) frees it. */
struct task_exec {
	struct docker *d; /* the thread's client */
	bool local;       /* the daemon's process IDs are ours */
	char *id, *name;  /* the container */
	struct strvec argv;
	long long deadline;
	pthread_t thread;
	int done_pipe[2];
	pthread_mutex_t mu;
	bool over;      /* the thread is done */
	bool abandoned; /* exec_end gave up on it: the thread frees it */
	int exit_code;
	struct cp_error err;
	int rc;
};

/* One exec API call, bounded: a daemon that stops answering cannot hold
 * the executor longer than the check's timeout and some slack. */
static int exec_call(struct task_exec *x, const char *method, const char *path, const cJSON *body,
		     cJSON **out, struct cp_error *err)
{
	long long left = x->deadline - now_ms();
	struct docker_req rq = {.method = method, .path = path, .json = body,
				.timeout_ms = (long)(left > 0 ? left : 0) + EXEC_API_SLACK_MS};
	return docker_call(x->d, &rq, NULL, out, err);
}

/* The parent of `pid` from /proc/PID/stat, or -1. */
static pid_t proc_ppid(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	cleanup_free char *text = NULL;
	struct cp_error ignored = {0};
	if (fs_read_file(&text, NULL, path, 1 << 16, &ignored) < 0)
		return -1;
	const char *p = strrchr(text, ')');
	long ppid;
	if (!p || sscanf(p + 1, " %*c %ld", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

/* True when process `pid` runs in the cgroup of container `id`. */
static bool in_container(pid_t pid, const char *id)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/cgroup", (long)pid);
	cleanup_free char *text = NULL;
	struct cp_error ignored = {0};
	return fs_read_file(&text, NULL, path, 1 << 16, &ignored) == 0 && strstr(text, id);
}

/* The Engine API cannot kill an exec'd process. When the daemon runs on
 * this host and its process IDs are ours, a timed-out check is killed
 * here: the exec's process and everything it started, each only when it
 * is in the container's cgroup (so a pid from another namespace or one
 * reused since is never touched). Otherwise the check runs on until it
 * ends by itself or the container is removed, which kills whatever runs
 * in it; it never holds up the executor, which stopped waiting for it. */
static void exec_kill(bool local, const char *container_id, pid_t root)
{
	if (root <= 1 || !local || !in_container(root, container_id))
		return;
	struct {
		pid_t pid, ppid;
	} *procs = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			procs = xrealloc(procs, cap * sizeof(*procs));
		}
		procs[n].pid = (pid_t)atol(de->d_name);
		procs[n].ppid = proc_ppid(procs[n].pid);
		n++;
	}
	closedir(d);
	/* The tree under root, collected before anything is killed (a child
	 * whose parent dies is reparented and could no longer be found). */
	pid_t *tree = xcalloc(n + 1, sizeof(*tree));
	size_t ntree = 0;
	tree[ntree++] = root;
	for (size_t k = 0; k < ntree; k++)
		for (size_t i = 0; i < n; i++)
			if (procs[i].ppid == tree[k] && ntree <= n)
				tree[ntree++] = procs[i].pid;
	for (size_t k = 0; k < ntree; k++)
		if (in_container(tree[k], container_id))
			kill(tree[k], SIGKILL);
	free(tree);
	free(procs);
}

static int exec_run(struct task_exec *x, int *exit_code, struct cp_error *err)
{
	const char *id = x->id, *name = x->name;
	cJSON *body = cJSON_CreateObject();
	cJSON *cmd = cJSON_AddArrayToObject(body, "Cmd");
	for (size_t i = 0; i < x->argv.n; i++)
		cJSON_AddItemToArray(cmd, cJSON_CreateString(x->argv.v[i]));
	/* Attached, its output discarded: Podman (4.3) never reports a detached
	 * exec as ended, and the end of the stream is the end of the check. */
	cJSON_AddBoolToObject(body, "AttachStdout", true);
	cJSON_AddBoolToObject(body, "AttachStderr", true);
	cleanup_free char *path = xasprintf("/containers/%s/exec", id);
	cJSON *resp = NULL;
	int rc = exec_call(x, "POST", path, body, &resp, err);
	cJSON_Delete(body);
	const char *eid = docker_str(resp, "Id");
	if (rc == 0 && !eid)
		rc = cp_error_set(err, EXIT_USAGE, "the daemon gave no exec ID");
	if (rc < 0) {
		cJSON_Delete(resp);
		return cp_error_prefix(err, "exec in container %s", name);
	}
	cleanup_free char *spath = xasprintf("/exec/%s/start", eid);
	cleanup_free char *ipath = xasprintf("/exec/%s/json", eid);
	cJSON_Delete(resp);
	cJSON *start = cJSON_CreateObject();
	cJSON_AddBoolToObject(start, "Detach", false);
	cJSON_AddBoolToObject(start, "Tty", false);
	long long left = x->deadline - now_ms();
	struct docker_req rq = {.method = "POST", .path = spath, .json = start,
				.on_data = discard, .timeout_ms = left > 0 ? (long)left : 1,
				.idle = DOCKER_IDLE_ALWAYS};
	rc = docker_call(x->d, &rq, NULL, NULL, err);
	cJSON_Delete(start);
	if (rc < 0 && now_ms() < x->deadline)
		return cp_error_prefix(err, "exec in container %s", name);
	cp_error_clear(err); /* timed out: the loop below kills it */
	pid_t pid = 0;
	for (;;) {
		cJSON *j = NULL;
		if (exec_call(x, "GET", ipath, NULL, &j, err) < 0)
			return cp_error_prefix(err, "exec in container %s", name);
		const cJSON *running = cJSON_GetObjectItemCaseSensitive(j, "Running");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "ExitCode");
		const cJSON *jpid = cJSON_GetObjectItemCaseSensitive(j, "Pid");
		if (cJSON_IsNumber(jpid) && jpid->valueint > 0)
			pid = (pid_t)jpid->valueint;
		bool over = cJSON_IsFalse(running) && cJSON_IsNumber(code);
		if (over)
			*exit_code = code->valueint;
		cJSON_Delete(j);
		if (over)
			return 0;
		if (now_ms() >= x->deadline) {
			exec_kill(x->local, id, pid);
			*exit_code = -1;
			return 0;
		}
		usleep(20000);
	}
}

static void exec_free(struct task_exec *x)
{
	docker_close(x->d);
	free(x->id);
	free(x->name);
	strvec_free(&x->argv);
	close(x->done_pipe[0]);
	close(x->done_pipe[1]);
	pthread_mutex_destroy(&x->mu);
	free(x);
}

static void *exec_thread(void *arg)
{
	struct task_exec *x = arg;
	x->rc = exec_run(x, &x->exit_code, &x->err);
	pthread_mutex_lock(&x->mu);
	x->over = true;
	bool abandoned = x->abandoned;
	ssize_t n = write(x->done_pipe[1], "x", 1);
	(void)n;
	pthread_mutex_unlock(&x->mu);
	if (abandoned)
		exec_free(x);
	return NULL;
}

int docker_task_exec_start(struct runtime *rt, struct task *t, char *const *argv,
			   long timeout_ms, struct task_exec **out, int *fd_out,
			   struct cp_error *err)
{
	const char *name = NULL;
	const char *id = docker_task_container(t, &name);
	struct task_exec *x = xcalloc(1, sizeof(*x));
	if (pipe2(x->done_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(x);
		return cp_error_errno(err, EXIT_USAGE, "creating a pipe");
	}
	x->d = docker_clone(rt->d);
	x->local = docker_is_local(rt->d);
	x->id = xstrdup(id);
	x->name = xstrdup(name ? name : id);
	for (size_t i = 0; argv[i]; i++)
		strvec_push(&x->argv, argv[i]);
	x->deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : CP_EXEC_TIMEOUT_MS);
	pthread_mutex_init(&x->mu, NULL);
	int rc = pthread_create(&x->thread, NULL, exec_thread, x);
	if (rc != 0) {
		exec_free(x);
		errno = rc;
		return cp_error_errno(err, EXIT_USAGE, "starting a health check thread");
	}
	*out = x;
	*fd_out = x->done_pipe[0];
	return 0;
}

int docker_task_exec_end(struct runtime *rt, struct task_exec *x, bool kill, int *exit_code,
			 struct cp_error *err)
{
	(void)rt;
	pthread_mutex_lock(&x->mu);
	bool over = x->over;
	if (!over && kill) {
		/* Left to end by itself: the thread kills the command at its
		 * deadline (or it goes with the container) and frees x. */
		x->abandoned = true;
	}
	pthread_mutex_unlock(&x->mu);
	if (!over) {
		if (!kill)
			return 0;
		pthread_detach(x->thread);
		*exit_code = -1;
		return 1;
	}
	pthread_join(x->thread, NULL);
	int rc = x->rc;
	if (rc < 0)
		*err = x->err;
	else
		*exit_code = x->exit_code;
	exec_free(x);
	return rc < 0 ? -1 : 1;
}

/* ---- ports ---- */

int docker_task_host_port(struct runtime *rt, struct task *t, int container_port,
			  const char *protocol)
{
	struct cp_error e = {0};
	cJSON *j = container_inspect(rt->d, docker_task_container(t, NULL), NULL, &e);
	char key[48];
	snprintf(key, sizeof(key), "%d/%s", container_port, protocol ? protocol : "tcp");
	const cJSON *ports = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(j, "NetworkSettings"), "Ports");
	const cJSON *bindings = cJSON_GetObjectItemCaseSensitive(ports, key);
	const char *hp = docker_str(cJSON_GetArrayItem(bindings, 0), "HostPort");
	int port = hp ? atoi(hp) : 0;
	cJSON_Delete(j);
	return port;
}

/* ---- handles ---- */

cJSON *docker_task_handle(struct runtime *rt, struct task *t)
{
	(void)rt;
	const char *name = NULL;
	const char *id = docker_task_container(t, &name);
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "container", id);
	cJSON_AddStringToObject(h, "name", name);
	return h;
}

int docker_handle_alive(struct runtime *rt, const cJSON *handle, struct cp_error *err)
{
	const char *id = docker_str(handle, "container");
	if (!id)
		return 0;
	long status = 0;
	cJSON *j = container_inspect(rt->d, id, &status, err);
	if (!j) {
		if (status == 404) {
			cp_error_clear(err);
			return 0;
		}
		return -1;
	}
	bool running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(j, "State"), "Running"));
	cJSON_Delete(j);
	return running ? 1 : 0;
}

int docker_handle_stop(struct runtime *rt, const cJSON *handle, long grace_ms,
		       struct cp_error *err)
{
	const char *id = docker_str(handle, "container");
	if (!id)
		return 0;
	/* The daemon counts the grace in whole seconds: SIGTERM (or the
	 * image's StopSignal), then SIGKILL once they are over. */
	long secs = grace_ms > 0 ? (grace_ms + 999) / 1000 : 10;
	cleanup_free char *path = xasprintf("/containers/%s/stop?t=%ld", id, secs);
	struct docker_req rq = {.method = "POST", .path = path,
				.answer_ms = secs * 1000 + DOCKER_ANSWER_MS};
	long status = 0;
	/* 304: already stopped; 404: gone. */
	if (docker_call(rt->d, &rq, &status, NULL, err) < 0 && status != 404 && status != 304)
		return cp_error_prefix(err, "stopping container %.12s", id);
	cp_error_clear(err);
	return docker_container_remove(rt->d, id, err);
}

static int logs_data(void *ud, const char *data, size_t n);

/* ---- cpipe ls ---- */

int docker_projects(cJSON **out, struct cp_error *err)
{
	struct docker *d = NULL;
	if (docker_open(&d, err) < 0)
		return -1;
	cJSON *f = cJSON_CreateObject();
	cJSON_AddItemToArray(cJSON_AddArrayToObject(f, "label"), cJSON_CreateString(LABEL_PROJECT));
	char *ftext = cJSON_PrintUnformatted(f);
	cJSON_Delete(f);
	cleanup_free char *q = docker_escape(d, ftext);
	free(ftext);
	cleanup_free char *path = xasprintf("/containers/json?all=1&filters=%s", q);
	cJSON *list = NULL;
	int rc = docker_json(d, "GET", path, NULL, NULL, &list, err);
	docker_close(d);
	if (rc < 0) {
		cJSON_Delete(list);
		return cp_error_prefix(err, "listing the daemon's containers");
	}
	cJSON *projects = cJSON_CreateArray();
	const cJSON *c;
	cJSON_ArrayForEach(c, list)
	{
		const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
		const char *name = docker_str(labels, LABEL_PROJECT);
		if (!name || docker_str(labels, LABEL_HELPER))
			continue;
		cJSON *e = NULL, *it;
		cJSON_ArrayForEach(it, projects)
			if (strcmp(docker_str(it, "name"), name) == 0)
				e = it;
		if (!e) {
			e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "name", name);
			cJSON_AddNumberToObject(e, "running", 0);
			cJSON_AddNumberToObject(e, "exited", 0);
			cJSON_AddItemToArray(projects, e);
		}
		const char *state = docker_str(c, "State");
		cJSON *n = cJSON_GetObjectItem(e, state && !strcmp(state, "running") ? "running"
										     : "exited");
		if (n)
			cJSON_SetNumberHelper(n, n->valuedouble + 1);
	}
	cJSON_Delete(list);
	*out = projects;
	return 0;
}

/* ---- cpipe exec, kill, top ---- */

static void exec_out(void *ud, int stream, const char *data, size_t n)
{
	(void)ud;
	FILE *f = stream == 2 ? stderr : stdout;
	fwrite(data, 1, n, f);
	fflush(f);
}

/* The container's own environment, working directory and user apply, as
 * in docker compose exec; stdin is not attached. */
int docker_handle_exec(struct runtime *rt, const cJSON *handle, const struct task_spec *ts,
		       char *const *argv, int *exit_code, struct cp_error *err)
{
	const char *id = docker_str(handle, "container");
	if (!id || docker_handle_alive(rt, handle, err) != 1)
		return cp_error_set(err, EXIT_USAGE, "service %s is not running", ts->desc->name);
	cJSON *body = cJSON_CreateObject();
	cJSON *cmd = cJSON_AddArrayToObject(body, "Cmd");
	for (size_t i = 0; argv[i]; i++)
		cJSON_AddItemToArray(cmd, cJSON_CreateString(argv[i]));
	cJSON_AddBoolToObject(body, "AttachStdout", true);
	cJSON_AddBoolToObject(body, "AttachStderr", true);
	cleanup_free char *path = xasprintf("/containers/%s/exec", id);
	cJSON *resp = NULL;
	int rc = docker_json(rt->d, "POST", path, body, NULL, &resp, err);
	cJSON_Delete(body);
	const char *eid = docker_str(resp, "Id");
	if (rc == 0 && !eid)
		rc = cp_error_set(err, EXIT_USAGE, "the daemon gave no exec ID");
	if (rc < 0) {
		cJSON_Delete(resp);
		return cp_error_prefix(err, "exec in service %s", ts->desc->name);
	}
	cleanup_free char *spath = xasprintf("/exec/%s/start", eid);
	cleanup_free char *ipath = xasprintf("/exec/%s/json", eid);
	cJSON_Delete(resp);
	cJSON *start = cJSON_CreateObject();
	cJSON_AddBoolToObject(start, "Detach", false);
	cJSON_AddBoolToObject(start, "Tty", false);
	struct docker_demux dm = {.emit = exec_out};
	struct docker_req rq = {.method = "POST", .path = spath, .json = start,
				.on_data = logs_data, .ud = &dm, .idle = DOCKER_IDLE_ALWAYS};
	rc = docker_call(rt->d, &rq, NULL, NULL, err);
	cJSON_Delete(start);
	if (rc < 0)
		return cp_error_prefix(err, "exec in service %s", ts->desc->name);
	cJSON *j = NULL;
	if (docker_json(rt->d, "GET", ipath, NULL, NULL, &j, err) < 0)
		return cp_error_prefix(err, "exec in service %s", ts->desc->name);
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "ExitCode");
	/* The daemon says 126/127 itself when argv cannot be executed. */
	*exit_code = cJSON_IsNumber(code) ? code->valueint : 126;
	cJSON_Delete(j);
	return 0;
}

int docker_handle_kill(struct runtime *rt, const cJSON *handle, int sig, struct cp_error *err)
{
	const char *id = docker_str(handle, "container");
	if (!id)
		return 0;
	cleanup_free char *path = xasprintf("/containers/%s/kill?signal=%d", id, sig);
	long status = 0;
	/* 404: gone; 409: not running. */
	if (docker_json(rt->d, "POST", path, NULL, &status, NULL, err) < 0 && status != 404 &&
	    status != 409)
		return cp_error_prefix(err, "signalling container %.12s", id);
	cp_error_clear(err);
	return 0;
}

int docker_handle_top(struct runtime *rt, const cJSON *handle, cJSON **out, struct cp_error *err)
{
	const char *id = docker_str(handle, "container");
	if (!id)
		return cp_error_set(err, EXIT_USAGE, "the service is not running");
	cleanup_free char *path = xasprintf("/containers/%s/top", id);
	cJSON *j = NULL;
	if (docker_json(rt->d, "GET", path, NULL, NULL, &j, err) < 0) {
		cJSON_Delete(j);
		return cp_error_prefix(err, "processes of container %.12s", id);
	}
	*out = j;
	return 0;
}

/* ---- logs ---- */

static int logs_data(void *ud, const char *data, size_t n)
{
	docker_demux_feed(ud, data, n);
	return 0;
}

int docker_handle_logs(struct runtime *rt, const cJSON *handle, bool follow,
		       void (*sink)(void *ud, int stream, const char *data, size_t n), void *ud,
		       volatile sig_atomic_t *stop, struct cp_error *err)
{
	const char *id = docker_str(handle, "container");
	if (!id)
		return 1;
	struct docker_demux dm = {.emit = sink, .ud = ud};
	cleanup_free char *path = xasprintf(
		"/containers/%s/logs?follow=%d&stdout=1&stderr=1&timestamps=0", id, follow ? 1 : 0);
	struct docker_req rq = {.method = "GET", .path = path, .on_data = logs_data, .ud = &dm,
				.stop = stop,
				.idle = follow ? DOCKER_IDLE_ALWAYS : DOCKER_IDLE_AFTER_HEADERS};
	long status = 0;
	if (docker_call(rt->d, &rq, &status, NULL, err) == 0)
		return 0;
	if (status == 404 || (stop && *stop)) {
		cp_error_clear(err);
		return status == 404 ? 1 : 0;
	}
	return cp_error_prefix(err, "the logs of container %.12s", id);
}
