/* The kubernetes runtime's tasks. A job is a batch/v1 Job (backoffLimit 0,
 * restartPolicy Never), a service a Deployment of one replica and a
 * ClusterIP Service that later pods reach by the stage's name
 * (hostAliases: the cluster may have no DNS). One helper thread per task,
 * with its own client, waits for the pod, follows pods/{name}/log into
 * the task's pipe, and reads the exit code (or the reason the pod could
 * not run) from the pod's status, so poll() never blocks. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube_internal.h"

#define SCHEDULE_TIMEOUT_S 30

struct ktask {
	struct task t;
	struct kube *k; /* the thread's client */
	struct runtime *rt;
	char *name;  /* Job / Deployment (and Service, ConfigMap) name */
	char *stage; /* its label value */
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
};

/* ---- manifests ---- */

static cJSON *labels_of(const struct runtime *rt, const char *stage, const char *run)
{
	cJSON *l = cJSON_CreateObject();
	cJSON_AddStringToObject(l, KLABEL_PROJECT, rt->project);
	cJSON_AddStringToObject(l, KLABEL_STAGE, stage);
	cJSON_AddStringToObject(l, KLABEL_RUN, run);
	return l;
}

static cJSON *metadata(const struct runtime *rt, const char *name, const char *stage,
		       const char *run)
{
	cJSON *md = cJSON_CreateObject();
	cJSON_AddStringToObject(md, "name", name);
	cJSON_AddItemToObject(md, "labels", labels_of(rt, stage, run));
	cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "annotations"), KANNOT_OWNER,
				rt->owner);
	return md;
}

static cJSON *strings(const struct strvec *v)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < v->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v->v[i]));
	return a;
}

static void add_resources(cJSON *c, const struct kube_work *w)
{
	if (!w->resources.n && !w->gpus)
		return;
	cJSON *res = cJSON_AddObjectToObject(c, "resources");
	cJSON *lim = cJSON_AddObjectToObject(res, "limits");
	cJSON *req = cJSON_AddObjectToObject(res, "requests");
	for (size_t i = 0; i < w->resources.n; i++) {
		cJSON_AddStringToObject(lim, w->resources.v[i].key, w->resources.v[i].value);
		cJSON_AddStringToObject(req, w->resources.v[i].key, w->resources.v[i].value);
	}
	if (w->gpus) {
		char n[16];
		snprintf(n, sizeof(n), "%d", w->gpus);
		cJSON_AddStringToObject(lim, "nvidia.com/gpu", n);
	}
}

static void add_probe(cJSON *c, const struct kube_work *w)
{
	if (!w->probe.n)
		return;
	cJSON *p = cJSON_AddObjectToObject(c, "readinessProbe");
	cJSON_AddItemToObject(cJSON_AddObjectToObject(p, "exec"), "command", strings(&w->probe));
	long period = (w->probe_period_ms + 999) / 1000;
	long timeout = (w->probe_timeout_ms + 999) / 1000;
	cJSON_AddNumberToObject(p, "periodSeconds", period > 0 ? (double)period : 1);
	cJSON_AddNumberToObject(p, "timeoutSeconds", timeout > 0 ? (double)timeout : 1);
	cJSON_AddNumberToObject(p, "failureThreshold", w->probe_retries);
	cJSON_AddNumberToObject(p, "initialDelaySeconds", (double)(w->probe_start_ms / 1000));
}

/* The pod template's spec for `w`; `files` names its ConfigMap. */
static cJSON *pod_spec(struct runtime *rt, const struct kube_work *w, const char *files,
		       struct cp_error *err)
{
	cJSON *spec = cJSON_CreateObject();
	cJSON_AddStringToObject(spec, "restartPolicy", w->service ? "Always" : "Never");
	cJSON_AddBoolToObject(spec, "enableServiceLinks", false);
	cJSON_AddBoolToObject(spec, "automountServiceAccountToken", false);
	cJSON_AddNumberToObject(spec, "terminationGracePeriodSeconds",
				(double)((w->grace_ms > 0 ? w->grace_ms : 10000) / 1000));
	if (w->node_selector.n) {
		cJSON *ns = cJSON_AddObjectToObject(spec, "nodeSelector");
		for (size_t i = 0; i < w->node_selector.n; i++)
			cJSON_AddStringToObject(ns, w->node_selector.v[i].key,
						w->node_selector.v[i].value);
	}
	if (rt->nips) {
		cJSON *ha = cJSON_AddArrayToObject(spec, "hostAliases");
		for (size_t i = 0; i < rt->nips; i++) {
			cJSON *a = cJSON_CreateObject();
			cJSON_AddStringToObject(a, "ip", rt->ips[i].ip);
			cJSON_AddItemToObject(a, "hostnames",
					      cJSON_CreateStringArray((const char *[]){rt->ips[i].stage}, 1));
			cJSON_AddItemToArray(ha, a);
		}
	}
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "name", "stage");
	cJSON_AddStringToObject(c, "image", w->image);
	struct cp_error e = {0};
	bool local = kube_image_local(rt, w->image, &e);
	if (e.msg[0]) {
		*err = e;
		cJSON_Delete(c);
		cJSON_Delete(spec);
		return NULL;
	}
	cJSON_AddStringToObject(c, "imagePullPolicy", local ? "Never" : "IfNotPresent");
	if (w->has_command)
		cJSON_AddItemToObject(c, "command", strings(&w->command));
	if (w->has_args)
		cJSON_AddItemToObject(c, "args", strings(&w->args));
	if (w->working_dir)
		cJSON_AddStringToObject(c, "workingDir", w->working_dir);
	cJSON *env = cJSON_AddArrayToObject(c, "env");
	for (size_t i = 0; i < w->env.n; i++) {
		cJSON *ev = cJSON_CreateObject();
		cJSON_AddStringToObject(ev, "name", w->env.v[i].key);
		cJSON_AddStringToObject(ev, "value", w->env.v[i].value ? w->env.v[i].value : "");
		cJSON_AddItemToArray(env, ev);
	}
	if (w->uid >= 0 || w->gid >= 0) {
		cJSON *sc = cJSON_AddObjectToObject(c, "securityContext");
		if (w->uid >= 0)
			cJSON_AddNumberToObject(sc, "runAsUser", (double)w->uid);
		if (w->gid >= 0)
			cJSON_AddNumberToObject(sc, "runAsGroup", (double)w->gid);
	}
	if (w->tty)
		cJSON_AddBoolToObject(c, "tty", true);
	add_resources(c, w);
	add_probe(c, w);
	if (w->nports) {
		cJSON *ports = cJSON_AddArrayToObject(c, "ports");
		for (size_t i = 0; i < w->nports; i++) {
			cJSON *p = cJSON_CreateObject();
			cJSON_AddNumberToObject(p, "containerPort", w->ports[i].port);
			cJSON_AddStringToObject(p, "protocol", w->ports[i].protocol);
			cJSON_AddItemToArray(ports, p);
		}
	}
	cJSON *vols = cJSON_AddArrayToObject(spec, "volumes");
	cJSON *vms = cJSON_AddArrayToObject(c, "volumeMounts");
	bool files_added = false;
	for (size_t i = 0; i < w->nmounts; i++) {
		const struct kube_mount *m = &w->mounts[i];
		char vname[32];
		snprintf(vname, sizeof(vname), m->file_key ? "files" : "v%zu", i);
		cJSON *vm = cJSON_CreateObject();
		cJSON_AddStringToObject(vm, "name", vname);
		cJSON_AddStringToObject(vm, "mountPath", m->target);
		cJSON_AddBoolToObject(vm, "readOnly", m->read_only);
		if (m->file_key)
			cJSON_AddStringToObject(vm, "subPath", m->file_key);
		cJSON_AddItemToArray(vms, vm);
		if (m->file_key && files_added)
			continue;
		cJSON *v = cJSON_CreateObject();
		cJSON_AddStringToObject(v, "name", vname);
		if (m->file_key) {
			files_added = true;
			cJSON_AddStringToObject(cJSON_AddObjectToObject(v, "configMap"), "name", files);
		} else if (m->volume) {
			cJSON_AddStringToObject(cJSON_AddObjectToObject(v, "persistentVolumeClaim"),
						"claimName", kube_volume_of(rt, m->volume)->claim);
		} else {
			cJSON_AddStringToObject(cJSON_AddObjectToObject(v, "emptyDir"), "medium",
						"Memory");
		}
		cJSON_AddItemToArray(vols, v);
	}
	cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "containers"), c);
	return spec;
}

static cJSON *configmap(const struct runtime *rt, const struct kube_work *w, const char *name,
			const char *run)
{
	cJSON *cm = cJSON_CreateObject();
	cJSON_AddStringToObject(cm, "apiVersion", "v1");
	cJSON_AddStringToObject(cm, "kind", "ConfigMap");
	cJSON_AddItemToObject(cm, "metadata", metadata(rt, name, w->stage, run));
	cJSON *data = cJSON_AddObjectToObject(cm, "binaryData");
	for (size_t i = 0; i < w->nmounts; i++) {
		const struct kube_mount *m = &w->mounts[i];
		if (!m->file_key || cJSON_GetObjectItemCaseSensitive(data, m->file_key))
			continue;
		char *b64 = xmalloc(4 * ((m->len + 2) / 3) + 1);
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)m->content, (int)m->len);
		cJSON_AddStringToObject(data, m->file_key, b64);
		free(b64);
	}
	return cm;
}

static cJSON *workload(struct runtime *rt, const struct kube_work *w, const char *name,
		       const char *run, const char *files, struct cp_error *err)
{
	cJSON *ps = pod_spec(rt, w, files, err);
	if (!ps)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "apiVersion", w->service ? "apps/v1" : "batch/v1");
	cJSON_AddStringToObject(o, "kind", w->service ? "Deployment" : "Job");
	cJSON_AddItemToObject(o, "metadata", metadata(rt, name, w->stage, run));
	cJSON *spec = cJSON_AddObjectToObject(o, "spec");
	if (w->service) {
		cJSON_AddNumberToObject(spec, "replicas", 1);
		cJSON_AddItemToObject(cJSON_AddObjectToObject(spec, "selector"), "matchLabels",
				      labels_of(rt, w->stage, run));
	} else {
		cJSON_AddNumberToObject(spec, "backoffLimit", 0);
	}
	cJSON *tpl = cJSON_AddObjectToObject(spec, "template");
	cJSON_AddItemToObject(cJSON_AddObjectToObject(tpl, "metadata"), "labels",
			      labels_of(rt, w->stage, run));
	cJSON_AddItemToObject(tpl, "spec", ps);
	return o;
}

static cJSON *service_object(const struct runtime *rt, const struct kube_work *w,
			     const char *name, const char *run)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "apiVersion", "v1");
	cJSON_AddStringToObject(o, "kind", "Service");
	cJSON_AddItemToObject(o, "metadata", metadata(rt, name, w->stage, run));
	cJSON *spec = cJSON_AddObjectToObject(o, "spec");
	cJSON_AddItemToObject(spec, "selector", labels_of(rt, w->stage, run));
	cJSON *ports = cJSON_AddArrayToObject(spec, "ports");
	for (size_t i = 0; i < w->nports; i++) {
		cJSON *p = cJSON_CreateObject();
		char pname[24];
		snprintf(pname, sizeof(pname), "p%d-%s", w->ports[i].port,
			 !strcmp(w->ports[i].protocol, "UDP") ? "udp" : "tcp");
		cJSON_AddStringToObject(p, "name", pname);
		cJSON_AddNumberToObject(p, "port", w->ports[i].port);
		cJSON_AddNumberToObject(p, "targetPort", w->ports[i].port);
		cJSON_AddStringToObject(p, "protocol", w->ports[i].protocol);
		cJSON_AddItemToArray(ports, p);
	}
	return o;
}

/* ---- pod status in words ---- */

char *kube_pod_problem(const cJSON *pod)
{
	static const char *const fatal[] = {"ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull",
					    "InvalidImageName", "CreateContainerConfigError",
					    "CreateContainerError", "RunContainerError"};
	const cJSON *cs;
	cJSON_ArrayForEach(cs, kube_get(pod, "status.containerStatuses"))
	{
		const char *reason = kube_str(cs, "state.waiting.reason");
		const char *msg = kube_str(cs, "state.waiting.message");
		for (size_t i = 0; reason && i < ARRAY_LEN(fatal); i++)
			if (!strcmp(reason, fatal[i])) {
				const char *image = kube_str(cs, "image");
				const char *words =
					!strcmp(reason, "ErrImageNeverPull")
						? "is not on the node, and cpipe does not let it pull an image it found on every node"
					: strstr(reason, "Pull") ? "could not be pulled by the node"
					: !strcmp(reason, "InvalidImageName") ? "is not a valid image name"
									     : "could not be run";
				return xasprintf("the image %s %s (%s%s%s)", image ? image : "?", words,
						 reason, msg ? ": " : "", msg ? msg : "");
			}
		const char *treason = kube_str(cs, "state.terminated.reason");
		if (treason && !strcmp(treason, "OOMKilled"))
			return xstrdup("the container ran out of memory and was killed (OOMKilled): "
				       "raise x-cpipe: {resources: {memory: ...}} or use less");
		if (treason && strcmp(treason, "Completed") && strcmp(treason, "Error"))
			return xasprintf("the container ended: %s%s%s", treason,
					 kube_str(cs, "state.terminated.message") ? ": " : "",
					 kube_str(cs, "state.terminated.message")
						 ? kube_str(cs, "state.terminated.message")
						 : "");
	}
	const cJSON *c;
	cJSON_ArrayForEach(c, kube_get(pod, "status.conditions"))
	{
		const char *type = kube_str(c, "type");
		const char *reason = kube_str(c, "reason");
		if (type && !strcmp(type, "PodScheduled") && reason && !strcmp(reason, "Unschedulable"))
			return xasprintf("no node can run the pod (Unschedulable): %s",
					 kube_str(c, "message") ? kube_str(c, "message") : "");
	}
	const char *reason = kube_str(pod, "status.reason");
	if (reason)
		return xasprintf("the pod failed: %s%s%s", reason,
				 kube_str(pod, "status.message") ? ": " : "",
				 kube_str(pod, "status.message") ? kube_str(pod, "status.message") : "");
	return NULL;
}

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
	cleanup_free char *sel = kube_selector(kt->rt, KLABEL_STAGE, kt->stage);
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
		if (kube_str(it, "metadata.deletionTimestamp"))
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

static bool terminated(const cJSON *pod, int *code)
{
	const cJSON *cs;
	cJSON_ArrayForEach(cs, kube_get(pod, "status.containerStatuses"))
	{
		const cJSON *ec = kube_get(cs, "state.terminated.exitCode");
		if (cJSON_IsNumber(ec)) {
			*code = ec->valueint;
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
			if (strcmp(phase, "Pending") != 0 || terminated(pod, &code)) {
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
			if (terminated(p, &code)) {
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

static char *object_name(const struct runtime *rt, const char *stage, const char *run_id)
{
	cleanup_free char *st = kube_dns_name(stage, 30);
	char run[9] = "";
	size_t n = 0;
	for (const char *r = run_id ? run_id : ""; *r && n < 8; r++)
		if ((*r >= '0' && *r <= '9') || (*r >= 'a' && *r <= 'f'))
			run[n++] = *r;
	run[n] = '\0';
	cleanup_free char *raw = xasprintf("%s-%s-%s", rt->project, st, n ? run : "run");
	return kube_dns_name(raw, 63);
}

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
		fprintf(stderr, "cpipe: %s\n", e.msg);
	cp_error_clear(&e);
	if (kt->has_svc && kube_delete(rt->k, rt, "services", kt->name, &e) < 0)
		fprintf(stderr, "cpipe: %s\n", e.msg);
	cp_error_clear(&e);
	if (kt->has_files && kube_delete(rt->k, rt, "configmaps", kt->name, &e) < 0)
		fprintf(stderr, "cpipe: %s\n", e.msg);
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
	free(kt->pod);
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
 * and its ConfigMap, and every volume-reading helper pod. Services that
 * `cpipe up` left running are Deployments, and stay. */
static void sweep_leftovers(struct runtime *rt)
{
	if (rt->swept)
		return;
	rt->swept = true;
	int total = 0;
	sweep_kind(rt, "jobs", NULL, NULL, true, &total);
	sweep_kind(rt, "pods", KLABEL_HELPER, "volume-reader", false, &total);
	if (total)
		fprintf(stderr, "cpipe: deleted %d object%s left by a cpipe that is gone\n", total,
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
	kt->t.stage = ts->stage;
	kt->t.priv = kt;
	kt->t.out_fd = kt->t.err_fd = kt->out_w = -1;
	kt->t.tty = w.tty;
	kt->rt = rt;
	kt->name = object_name(rt, w.stage, ts->run_id);
	kt->stage = xstrdup(w.stage);
	kt->service = w.service;
	pthread_mutex_init(&kt->mu, NULL);
	kt->k = kube_clone(rt->k);
	if (ts->run_id && !strvec_contains(&rt->runs, ts->run_id))
		strvec_push(&rt->runs, ts->run_id);

	int rc = 0;
	for (size_t i = 0; i < w.nmounts; i++)
		kt->has_files |= w.mounts[i].file_key != NULL;
	if (kt->has_files)
		rc = create(rt, "configmaps", configmap(rt, &w, kt->name, run), err);
	cJSON *body = rc == 0 ? workload(rt, &w, kt->name, run, kt->name, err) : NULL;
	if (rc == 0 && !body)
		rc = -1;
	if (rc == 0)
		rc = create(rt, w.service ? "deployments" : "jobs", body, err);
	if (rc == 0 && w.service && w.nports) {
		kt->has_svc = true;
		rc = create(rt, "services", service_object(rt, &w, kt->name, run), err);
	}
	kube_work_free(&w);
	if (rc < 0) {
		cp_error_prefix(err, "stage \"%s\": creating %s %s", kt->stage,
				kt->service ? "deployment" : "job", kt->name);
		delete_objects(rt, kt);
		task_free(kt);
		return -1;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		cp_error_errno(err, "creating a pipe");
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
		cp_error_errno(err, "starting a thread");
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
	return 1;
}

int kube_task_kill(struct runtime *rt, struct task *t, int sig, struct cp_error *err)
{
	struct ktask *kt = t->priv;
	if (atomic_load(&kt->done))
		return 0;
	int prev = 0;
	atomic_compare_exchange_strong(&kt->killed, &prev, sig);
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
	pthread_mutex_lock(&kt->mu);
	cleanup_free char *pod = kt->pod ? xstrdup(kt->pod) : NULL;
	pthread_mutex_unlock(&kt->mu);
	if (pod && sig == SIGKILL) {
		struct cp_error e = {0};
		kube_delete(rt->k, rt, "pods", pod, &e);
	}
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

/* The health check runs in the pod as its readiness probe (the kubelet
 * runs the same command): its verdict is the pod's Ready condition. */
int kube_task_exec(struct runtime *rt, struct task *t, char *const *argv, long timeout_ms,
		   int *exit_code, struct cp_error *err)
{
	(void)argv, (void)timeout_ms;
	struct ktask *kt = t->priv;
	if (!kt->service)
		return cp_error_set(err, "the kubernetes runtime runs commands in a job's pod only "
					 "as its own command");
	pthread_mutex_lock(&kt->mu);
	cleanup_free char *pod = kt->pod ? xstrdup(kt->pod) : NULL;
	pthread_mutex_unlock(&kt->mu);
	*exit_code = 1;
	if (!pod)
		return 0;
	cleanup_free char *path = kube_path(rt, "pods", pod);
	cJSON *p = NULL;
	if (kube_json(rt->k, "GET", path, NULL, NULL, &p, err) < 0)
		return -1;
	const cJSON *c;
	cJSON_ArrayForEach(c, kube_get(p, "status.conditions"))
	if (kube_str(c, "type") && !strcmp(kube_str(c, "type"), "Ready") && kube_str(c, "status") &&
	    !strcmp(kube_str(c, "status"), "True"))
		*exit_code = 0;
	cJSON_Delete(p);
	return 0;
}

void kube_task_names(const struct task *t, const char **name, const char **stage)
{
	const struct ktask *kt = t->priv;
	*name = kt->name;
	*stage = kt->stage;
}
