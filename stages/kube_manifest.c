/* The kubernetes runtime's manifests: what a struct kube_work becomes as
 * a Job, a Deployment, its Service and ConfigMap, with the project's
 * labels and the owner annotation; and a failed pod's status in words.
 * Shared by the runtime (kube_job.c) and `cpipe export kubernetes`
 * (kube_export.c). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "kube_internal.h"

char *kube_object_name(const struct runtime *rt, const char *stage, const char *run_id)
{
	cleanup_free char *st = kube_dns_name(stage, 30);
	/* The run id's last 8 hex digits: its first are the day's date
	 * (20261202T...), the same for every run of a day. */
	char run[9] = "";
	size_t n = 0;
	for (const char *r = run_id ? run_id : ""; *r; r++)
		if ((*r >= '0' && *r <= '9') || (*r >= 'a' && *r <= 'f')) {
			if (n == 8) {
				memmove(run, run + 1, 7);
				n = 7;
			}
			run[n++] = *r;
		}
	run[n] = '\0';
	cleanup_free char *raw = xasprintf("%s-%s-%s", rt->project, st, n ? run : "run");
	return kube_dns_name(raw, 63);
}

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
	if (!w->probe.n && !w->probe_port)
		return;
	cJSON *p = cJSON_AddObjectToObject(c, "readinessProbe");
	if (w->probe_port) {
		cJSON *g = cJSON_AddObjectToObject(p, "httpGet");
		cJSON_AddStringToObject(g, "path", w->probe_path);
		cJSON_AddNumberToObject(g, "port", w->probe_port);
		cJSON_AddStringToObject(g, "scheme", w->probe_https ? "HTTPS" : "HTTP");
	} else {
		cJSON_AddItemToObject(cJSON_AddObjectToObject(p, "exec"), "command",
				      strings(&w->probe));
	}
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

cJSON *kube_manifest_configmap(const struct runtime *rt, const struct kube_work *w, const char *name,
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

cJSON *kube_manifest_workload(struct runtime *rt, const struct kube_work *w, const char *name,
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

cJSON *kube_manifest_service(const struct runtime *rt, const struct kube_work *w,
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


cJSON *kube_manifest_claim(const struct runtime *rt, const struct kube_volume *v)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "apiVersion", "v1");
	cJSON_AddStringToObject(c, "kind", "PersistentVolumeClaim");
	cJSON *md = cJSON_AddObjectToObject(c, "metadata");
	cJSON_AddStringToObject(md, "name", v->claim);
	cJSON_AddStringToObject(md, "namespace", rt->namespace);
	cJSON *l = cJSON_AddObjectToObject(md, "labels");
	cJSON_AddStringToObject(l, KLABEL_PROJECT, rt->project);
	cJSON_AddStringToObject(l, KLABEL_VOLUME, v->key);
	cJSON *spec = cJSON_AddObjectToObject(c, "spec");
	cJSON_AddItemToObject(spec, "accessModes",
			      cJSON_CreateStringArray((const char *[]){"ReadWriteMany"}, 1));
	if (v->storage_class)
		cJSON_AddStringToObject(spec, "storageClassName", v->storage_class);
	cJSON_AddStringToObject(
		cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "resources"), "requests"),
		"storage", v->size);
	return c;
}
