/* The kubernetes runtime's tasks. A job is a batch/v1 Job (backoffLimit 0,
 * restartPolicy Never), a service a Deployment of one replica and a
 * ClusterIP Service that later pods reach by the stage's name
 * (hostAliases: the cluster may have no DNS). One helper thread per task,
 * with its own client, waits for the pod, follows pods/{name}/log into
 * the task's pipe, and reads the exit code (or the reason the pod could
 * not run) from the pod's status, so poll() never blocks. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kube_internal.h"

#define SCHEDULE_TIMEOUT_S 30

struct ktask {
	struct task t;
	struct kube *k; /* the thread's client */
	struct runtime *rt;
	char *name;  /* Job / Deployment (and Service, ConfigMap) name */
	char *stage; /* its label value */
	char *run;   /* the run label value */
	bool service;
	bool has_files; /* a ConfigMap <name> */
	bool has_svc;   /* a Service <name> */
	char *pod;      /* the pod followed, once known (under mu) */
	int out_w;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	atomic_int cancel;
	atomic_int done;
	atomic_int killed; /* the signal kill() sent, 0 none */
	int exit_code;
	char problem[1024]; /* why the pod did not run, for the log */
	char image_ran[512]; /* the container's status.imageID, once ended */
};

/* ---- the thread ---- */

static void write_out(struct ktask *kt, const char *p, size_t n)
{
	while (n && kt->out_w >= 0) {
		ssize_t w = write(kt->out_w, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			close(kt->out_w);
			kt->out_w = -1;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static int on_log(void *ud, const char *data, size_t n)
{
	write_out(ud, data, n);
	return 0;
}

/* The task's pod (newest), or NULL; caller deletes. */
static cJSON *find_pod(struct ktask *kt, struct cp_error *err)
{
	/* A service's pods: of its stage and run (another run's may be up). */
	cleanup_free char *sel = kube_selector(kt->rt, KLABEL_RUN, kt->run);
	cleanup_free char *base = kube_path(kt->rt, "pods", NULL);
	cleanup_free char *extra = kube_escape(kt->name);
	cleanup_free char *path =
		kt->service ? xasprintf("%s?labelSelector=%s", base, sel)
			    : xasprintf("%s?labelSelector=job-name%%3D%s", base, extra);
	cJSON *list = NULL;
	if (kube_json(kt->k, "GET", path, NULL, NULL, &list, err) < 0)
		return NULL;
	cJSON *items = cJSON_GetObjectItemCaseSensitive(list, "items");
	cJSON *best = NULL;
	const char *best_ts = "";
	cJSON *it;
	cJSON_ArrayForEach(it, items)
	{
		const char *ts = kube_str(it, "metadata.creationTimestamp");
		const char *stage = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			kube_get(it, "metadata.labels"), KLABEL_STAGE));
		if (kube_str(it, "metadata.deletionTimestamp") || !stage ||
		    strcmp(stage, kt->stage) != 0)
			continue;
		if (!best || (ts && strcmp(ts, best_ts) > 0)) {
			best = it;
			best_ts = ts ? ts : "";
		}
	}
	cJSON *out = best ? cJSON_Duplicate(best, true) : NULL;
	cJSON_Delete(list);
	return out;
}

static const char *pod_phase(const cJSON *pod)
{
	const char *p = kube_str(pod, "status.phase");
	return p ? p : "Pending";
}

/* Whether the pod's container ended: its exit code, and (image_ran, of
 * image_len bytes, when given) the image ID it ran. */
static bool terminated(const cJSON *pod, int *code, char *image_ran, size_t image_len)
{
	const cJSON *cs;
	cJSON_ArrayForEach(cs, kube_get(pod, "status.containerStatuses"))
	{
		const cJSON *ec = kube_get(cs, "state.terminated.exitCode");
		if (cJSON_IsNumber(ec)) {
			*code = ec->valueint;
			const char *id = kube_str(cs, "imageID");
			if (image_ran && id && *id)
				snprintf(image_ran, image_len, "%s", id);
			return true;
		}
	}
	return false;
}

static void set_problem(struct ktask *kt, const char *what)
{
	snprintf(kt->problem, sizeof(kt->problem), "%s", what);
	cleanup_free char *line = xasprintf("cpipe: %s %s: %s\n", kt->service ? "deployment" : "job",
					    kt->name, what);
	write_out(kt, line, strlen(line));
}

/* Waits for the pod to run or end; 1 when it can be followed, 0 when it
 * cannot run (problem set, exit code 125), -1 when cancelled. */
static int wait_pod(struct ktask *kt)
{
	const char *tv = getenv("CPIPE_KUBE_SCHEDULE_TIMEOUT");
	long long limit = (tv && atol(tv) > 0 ? atol(tv) : SCHEDULE_TIMEOUT_S) * 1000LL;
	long long t0 = now_ms(), unsched_since = 0;
	while (!atomic_load(&kt->cancel)) {
		struct cp_error e = {0};
		cJSON *pod = find_pod(kt, &e);
		if (pod) {
			pthread_mutex_lock(&kt->mu);
			if (!kt->pod)
				kt->pod = xstrdup(kube_str(pod, "metadata.name"));
			pthread_mutex_unlock(&kt->mu);
			const char *phase = pod_phase(pod);
			int code;
			if (strcmp(phase, "Pending") != 0 || terminated(pod, &code, NULL, 0)) {
				cJSON_Delete(pod);
				return 1;
			}
			cleanup_free char *why = kube_pod_problem(pod);
			cJSON_Delete(pod);
			if (why && !strstr(why, "Unschedulable")) {
				set_problem(kt, why);
				return 0;
			}
			if (why && !unsched_since)
				unsched_since = now_ms();
			if (why && now_ms() - unsched_since > limit) {
				set_problem(kt, why);
				return 0;
			}
		} else if (e.msg[0] && now_ms() - t0 > limit) {
			set_problem(kt, e.msg);
			return 0;
		}
		usleep(200000);
	}
	return -1;
}

static void *task_main(void *arg)
{
	struct ktask *kt = arg;
	kt->exit_code = 125;
	int w = wait_pod(kt);
	if (w == 1) {
		pthread_mutex_lock(&kt->mu);
		cleanup_free char *pod = xstrdup(kt->pod);
		pthread_mutex_unlock(&kt->mu);
		cleanup_free char *base = kube_path(kt->rt, "pods", pod);
		cleanup_free char *path = xasprintf("%s/log?follow=true", base);
		struct kube_req rq = {.method = "GET", .path = path, .on_data = on_log, .ud = kt,
				      .cancel = &kt->cancel, .stream = true};
		struct cp_error e = {0};
		kube_call(kt->k, &rq, NULL, NULL, &e);
		/* The log ends with the container; its status follows shortly. */
		cleanup_free char *ppath = kube_path(kt->rt, "pods", pod);
		while (!atomic_load(&kt->cancel)) {
			cJSON *p = NULL;
			long status = 0;
			cp_error_clear(&e);
			if (kube_json(kt->k, "GET", ppath, NULL, &status, &p, &e) < 0) {
				cJSON_Delete(p);
				if (status == 404)
					break;
				usleep(200000);
				continue;
			}
			int code;
			if (terminated(p, &code, kt->image_ran, sizeof(kt->image_ran))) {
				kt->exit_code = code;
				cleanup_free char *why = kube_pod_problem(p);
				if (why)
					set_problem(kt, why);
				cJSON_Delete(p);
				break;
			}
			cJSON_Delete(p);
			usleep(200000);
		}
	}
	int sig = atomic_load(&kt->killed);
	if (sig && (w != 1 || atomic_load(&kt->cancel)))
		kt->exit_code = 128 + sig;
	atomic_store(&kt->done, 1);
	if (kt->out_w >= 0)
		close(kt->out_w);
	kt->out_w = -1;
	return NULL;
}

/* ---- runtime_ops ---- */

static int create(struct runtime *rt, const char *kind, cJSON *body, struct cp_error *err)
{
	cleanup_free char *path = kube_path(rt, kind, NULL);
	int rc = kube_json(rt->k, "POST", path, body, NULL, NULL, err);
	cJSON_Delete(body);
	return rc;
}

static void delete_objects(struct runtime *rt, struct ktask *kt)
{
	struct cp_error e = {0};
	if (kube_delete(rt->k, rt, kt->service ? "deployments" : "jobs", kt->name, &e) < 0)
		runtime_note(&rt->sink, RUNTIME_WARNING, kt->stage, "%s", e.msg);
	cp_error_clear(&e);
	if (kt->has_svc && kube_delete(rt->k, rt, "services", kt->name, &e) < 0)
		runtime_note(&rt->sink, RUNTIME_WARNING, kt->stage, "%s", e.msg);
	cp_error_clear(&e);
	if (kt->has_files && kube_delete(rt->k, rt, "configmaps", kt->name, &e) < 0)
		runtime_note(&rt->sink, RUNTIME_WARNING, kt->stage, "%s", e.msg);
	if (kt->service)
		kube_forward_stop(rt, kt->stage, kt->name);
}

static void task_free(struct ktask *kt)
{
	if (kt->t.out_fd >= 0)
		close(kt->t.out_fd);
	if (kt->out_w >= 0)
		close(kt->out_w);
	kube_close(kt->k);
	pthread_mutex_destroy(&kt->mu);
	free(kt->name);
	free(kt->stage);
	free(kt->run);
	free(kt->pod);
	free(kt->t.ran_image);
	free(kt);
}

/* One kind's objects of the project matching `extra_sel` (a label
 * selector term, may be NULL), deleted with their ConfigMap of the same
 * name when `with_files`; counts them into *total. */
static void sweep_kind(struct runtime *rt, const char *kind, const char *key, const char *value,
		       bool with_files, int *total)
{
	cleanup_free char *sel = kube_selector(rt, key, value);
	cleanup_free char *base = kube_path(rt, kind, NULL);
	cleanup_free char *path = xasprintf("%s?labelSelector=%s", base, sel);
	cJSON *list = NULL;
	struct cp_error e = {0};
	if (kube_json(rt->k, "GET", path, NULL, NULL, &list, &e) < 0) {
		cJSON_Delete(list);
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
	{
		const char *name = kube_str(it, "metadata.name");
		if (!name || kube_str(it, "metadata.deletionTimestamp"))
			continue;
		if (kube_delete(rt->k, rt, kind, name, &e) == 0)
			(*total)++;
		if (with_files)
			kube_delete(rt->k, rt, "configmaps", name, &e);
	}
	cJSON_Delete(list);
}

/* What a cpipe that is gone (kill -9) left: the project lock says no
 * other cpipe runs the project now, so every Job (its pods go with it)
 * and its ConfigMap, every volume-reading helper pod, and the services
 * whose port forwarder it started (kube_forward.c). Services that `cpipe
 * up` left running are Deployments, and stay. */
static void sweep_leftovers(struct runtime *rt)
{
	if (rt->swept)
		return;
	rt->swept = true;
	int total = kube_forward_sweep(rt);
	sweep_kind(rt, "jobs", NULL, NULL, true, &total);
	sweep_kind(rt, "pods", KLABEL_HELPER, "volume-reader", false, &total);
	if (total)
		runtime_note(&rt->sink, RUNTIME_NOTICE, NULL,
			     "deleted %d object%s left by a cpipe that is gone", total,
			     total == 1 ? "" : "s");
}

int kube_task_start(struct runtime *rt, const struct task_spec *ts, struct task **out,
		    struct cp_error *err)
{
	struct kube_work w;
	if (kube_task_work(&w, rt, ts, err) < 0)
		return -1;
	if (kube_namespace_ensure(rt, err) < 0 || kube_task_check_builds(rt, err) < 0) {
		kube_work_free(&w);
		return -1;
	}
	sweep_leftovers(rt);
	if (kube_service_ips(rt, err) < 0) {
		kube_work_free(&w);
		return -1;
	}
	const char *run = ts->run_id ? ts->run_id : "none";
	struct ktask *kt = xcalloc(1, sizeof(*kt));
	kt->t.desc = *ts->desc;
	kt->t.priv = kt;
	kt->t.out_fd = kt->t.err_fd = kt->out_w = -1;
	kt->t.tty = w.tty;
	kt->rt = rt;
	kt->name = kube_object_name(rt, w.stage, ts->run_id);
	kt->stage = xstrdup(w.stage);
	kt->run = xstrdup(run);
	kt->service = w.service;
	pthread_mutex_init(&kt->mu, NULL);
	kt->k = kube_clone(rt->k);
	if (ts->run_id && !strvec_contains(&rt->runs, ts->run_id))
		strvec_push(&rt->runs, ts->run_id);

	int rc = 0;
	for (size_t i = 0; i < w.nmounts; i++)
		kt->has_files |= w.mounts[i].file_key != NULL;
	if (kt->has_files)
		rc = create(rt, "configmaps", kube_manifest_configmap(rt, &w, kt->name, run), err);
	cJSON *body = rc == 0 ? kube_manifest_workload(rt, &w, kt->name, run, kt->name, err) : NULL;
	if (rc == 0 && !body)
		rc = -1;
	if (rc == 0)
		rc = create(rt, w.service ? "deployments" : "jobs", body, err);
	if (rc == 0 && w.service && w.nports) {
		kt->has_svc = true;
		rc = create(rt, "services", kube_manifest_service(rt, &w, kt->name, run), err);
	}
	kube_work_free(&w);
	if (rc < 0) {
		cp_error_prefix(err, "stage \"%s\": creating %s %s", kt->stage,
				kt->service ? "deployment" : "job", kt->name);
		delete_objects(rt, kt);
		task_free(kt);
		return -1;
	}
	if (kt->service && kube_forward_start(rt, ts->desc, kt->name, err) < 0) {
		delete_objects(rt, kt);
		task_free(kt);
		return -1;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		cp_error_errno(err, EXIT_RUNTIME, "creating a pipe");
		delete_objects(rt, kt);
		task_free(kt);
		return -1;
	}
	kt->t.out_fd = p[0];
	kt->out_w = p[1];
	fcntl(kt->t.out_fd, F_SETFL, O_NONBLOCK);
	if (ts->detached && ts->log_path) {
		/* Detached: the log file gets the output instead of a pipe. */
		close(p[0]);
		close(p[1]);
		kt->t.out_fd = -1;
		kt->out_w = open(ts->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int prc = pthread_create(&kt->thread, NULL, task_main, kt);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (prc != 0) {
		errno = prc;
		cp_error_errno(err, EXIT_RUNTIME, "starting a thread");
		delete_objects(rt, kt);
		task_free(kt);
		return -1;
	}
	kt->thread_started = true;
	strvec_push(&rt->live, kt->name);
	*out = &kt->t;
	return 0;
}

int kube_task_poll(struct runtime *rt, struct task *t, int *exit_code, struct cp_error *err)
{
	(void)rt, (void)err;
	struct ktask *kt = t->priv;
	if (!atomic_load(&kt->done))
		return 0;
	*exit_code = kt->exit_code;
	if (!t->ran_image && kt->image_ran[0])
		t->ran_image = xstrdup(kt->image_ran);
	return 1;
}

int kube_task_kill(struct runtime *rt, struct task *t, int sig, struct cp_error *err)
{
	struct ktask *kt = t->priv;
	struct cp_error local = {0};
	if (!err)
		err = &local;
	if (atomic_load(&kt->done))
		return 0;
	int prev = 0;
	atomic_compare_exchange_strong(&kt->killed, &prev, sig);
	/* The task ends now (128 + sig); what follows deletes its pods. */
	atomic_store(&kt->cancel, 1);
	/* Deleting the Job or Deployment stops its pod (SIGTERM, then the
	 * grace period, then SIGKILL: the kubelet's, as docker stop's). */
	cleanup_free char *path = kube_path(rt, kt->service ? "deployments" : "jobs", kt->name);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "propagationPolicy", "Background");
	if (sig == SIGKILL)
		cJSON_AddNumberToObject(body, "gracePeriodSeconds", 0);
	long status = 0;
	int rc = kube_json(rt->k, "DELETE", path, body, &status, NULL, err);
	cJSON_Delete(body);
	if (rc < 0 && status != 404 && err->code != EXIT_INTERRUPTED)
		return cp_error_prefix(err, "stopping %s", kt->name);
	cp_error_clear(err);
	/* Its pods now, with their grace period (none for SIGKILL): the
	 * garbage collector takes its time. */
	cleanup_free char *sel =
		kt->service ? xasprintf("%s=%s,%s=%s,%s=%s", KLABEL_PROJECT, rt->project, KLABEL_STAGE,
					kt->stage, KLABEL_RUN, kt->run)
			    : xasprintf("job-name=%s", kt->name);
	struct cp_error e = {0};
	if (kt->service)
		kube_delete_pods(rt->k, rt, "/apis/apps/v1", "replicasets", sel, -1, &e);
	kube_delete_pods(rt->k, rt, "/api/v1", "pods", sel, sig == SIGKILL ? 0 : -1, &e);
	atomic_store(&kt->cancel, 1);
	return 0;
}

void kube_task_release(struct runtime *rt, struct task *t)
{
	if (!t)
		return;
	struct ktask *kt = t->priv;
	if (t->keep_running) {
		strvec_push(&rt->kept, kt->stage);
		kube_forward_keep(rt, kt->stage);
	} else {
		delete_objects(rt, kt);
	}
	atomic_store(&kt->cancel, 1);
	if (kt->thread_started)
		pthread_join(kt->thread, NULL);
	for (size_t i = 0; i < rt->live.n; i++)
		if (!strcmp(rt->live.v[i], kt->name)) {
			free(rt->live.v[i]);
			rt->live.v[i] = rt->live.v[--rt->live.n];
			break;
		}
	task_free(kt);
}

/* A health check's verdict, known when exec_start returns: `fd` is an
 * eventfd that is readable at once. */
struct task_exec {
	int fd;
	int exit_code;
};

/* The health check runs in the pod as its readiness probe (the kubelet
 * runs the same command): its verdict is the pod's Ready condition, read
 * with one GET of the pod (bounded as every API call is), so the command
 * `argv` itself is not run again here. */
int kube_task_exec_start(struct runtime *rt, struct task *t, char *const *argv, long timeout_ms,
			 struct task_exec **out, int *fd_out, struct cp_error *err)
{
	(void)argv, (void)timeout_ms;
	struct ktask *kt = t->priv;
	if (!kt->service)
		return cp_error_set(err, EXIT_USAGE,
				    "the kubernetes runtime runs commands in a job's pod only "
				    "as its own command");
	pthread_mutex_lock(&kt->mu);
	cleanup_free char *pod = kt->pod ? xstrdup(kt->pod) : NULL;
	pthread_mutex_unlock(&kt->mu);
	int code = 1;
	if (pod) {
		cleanup_free char *path = kube_path(rt, "pods", pod);
		cJSON *p = NULL;
		if (kube_json(rt->k, "GET", path, NULL, NULL, &p, err) < 0)
			return -1;
		const cJSON *c;
		cJSON_ArrayForEach(c, kube_get(p, "status.conditions"))
		if (kube_str(c, "type") && !strcmp(kube_str(c, "type"), "Ready") &&
		    kube_str(c, "status") && !strcmp(kube_str(c, "status"), "True"))
			code = 0;
		cJSON_Delete(p);
	}
	int fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return cp_error_errno(err, EXIT_RUNTIME, "creating an eventfd");
	struct task_exec *x = xcalloc(1, sizeof(*x));
	x->fd = fd;
	x->exit_code = code;
	*out = x;
	*fd_out = fd;
	return 0;
}

int kube_task_exec_end(struct runtime *rt, struct task_exec *x, bool kill, int *exit_code,
		       struct cp_error *err)
{
	(void)rt, (void)err;
	*exit_code = kill ? -1 : x->exit_code;
	close(x->fd);
	free(x);
	return 1;
}

void kube_task_names(const struct task *t, const char **name, const char **stage)
{
	const struct ktask *kt = t->priv;
	*name = kt->name;
	*stage = kt->stage;
}
