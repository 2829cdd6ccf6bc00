/* The kubernetes runtime's services seen from another cpipe: a handle
 * names the Deployment (and its Service and ConfigMap) in the namespace,
 * so `cpipe up` can leave one running and `ps`, `logs -f`, `down` and the
 * next run find it again. The stage names later pods resolve come from
 * the project's Services in the cluster, so a service another cpipe left
 * up is reachable too. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube_internal.h"

cJSON *kube_task_handle(struct runtime *rt, struct task *t)
{
	const char *name = NULL, *stage = NULL;
	kube_task_names(t, &name, &stage);
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "namespace", rt->namespace);
	cJSON_AddStringToObject(h, "deployment", name);
	cJSON_AddStringToObject(h, "stage", stage);
	return h;
}

/* The handle's Deployment name, in our namespace; NULL when it is not ours. */
static const char *handle_name(const struct runtime *rt, const cJSON *h, struct cp_error *err)
{
	const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "namespace"));
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "deployment"));
	if (!ns || !name || strcmp(ns, rt->namespace) != 0) {
		cp_error_set(err, EXIT_RUNTIME,
			     "the service's state names no deployment of namespace %s",
			     rt->namespace);
		return NULL;
	}
	return name;
}

int kube_handle_alive(struct runtime *rt, const cJSON *h, struct cp_error *err)
{
	const char *name = handle_name(rt, h, err);
	if (!name)
		return 0;
	/* A killed run's service is no service up: the next run replaces it
	 * (and its sweep deletes it). */
	const char *stage = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "stage"));
	if (stage && kube_forward_orphaned(rt, stage, name))
		return 0;
	cleanup_free char *path = kube_path(rt, "deployments", name);
	long status = 0;
	cJSON *d = NULL;
	if (kube_json(rt->k, "GET", path, NULL, &status, &d, err) < 0) {
		if (status == 404) {
			cp_error_clear(err);
			return 0;
		}
		return -1;
	}
	bool deleting = kube_str(d, "metadata.deletionTimestamp") != NULL;
	cJSON_Delete(d);
	return deleting ? 0 : 1;
}

int kube_handle_stop(struct runtime *rt, const cJSON *h, long grace_ms, struct cp_error *err)
{
	(void)grace_ms; /* the pod's terminationGracePeriodSeconds says it */
	const char *name = handle_name(rt, h, err);
	if (!name)
		return -1;
	const char *stage = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "stage"));
	if (stage)
		kube_forward_stop(rt, stage, name);
	static const char *const kinds[] = {"deployments", "services", "configmaps"};
	for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
		if (kube_delete(rt->k, rt, kinds[i], name, err) < 0)
			return -1;
	return 0;
}

struct log_sink {
	void (*sink)(void *ud, int stream, const char *data, size_t n);
	void *ud;
	volatile sig_atomic_t *stop;
};

static int to_sink(void *ud, const char *data, size_t n)
{
	struct log_sink *s = ud;
	s->sink(s->ud, 1, data, n);
	return s->stop && *s->stop ? -1 : 0;
}

int kube_handle_logs(struct runtime *rt, const cJSON *h, bool follow,
		     void (*sink)(void *ud, int stream, const char *data, size_t n), void *ud,
		     volatile sig_atomic_t *stop, struct cp_error *err)
{
	const char *stage = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "stage"));
	if (!handle_name(rt, h, err) || !stage)
		return -1;
	cleanup_free char *sel = kube_selector(rt, KLABEL_STAGE, stage);
	cleanup_free char *base = kube_path(rt, "pods", NULL);
	cleanup_free char *lpath = xasprintf("%s?labelSelector=%s", base, sel);
	cJSON *list = NULL;
	if (kube_json(rt->k, "GET", lpath, NULL, NULL, &list, err) < 0)
		return -1;
	const char *pod = NULL;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
	if (!kube_str(it, "metadata.deletionTimestamp"))
		pod = kube_str(it, "metadata.name");
	if (!pod) {
		cJSON_Delete(list);
		return 1;
	}
	cleanup_free char *ppath = kube_path(rt, "pods", pod);
	cJSON_Delete(list);
	cleanup_free char *path = xasprintf("%s/log%s", ppath, follow ? "?follow=true" : "");
	struct log_sink s = {sink, ud, stop};
	/* A stop flag set by a signal handler is seen at the next chunk, or
	 * through the interrupted request. */
	struct kube_req rq = {.method = "GET", .path = path, .on_data = to_sink, .ud = &s,
			      .stream = follow};
	return kube_call(rt->k, &rq, NULL, NULL, err);
}

int kube_service_ips(struct runtime *rt, struct cp_error *err)
{
	cleanup_free char *sel = kube_selector(rt, NULL, NULL);
	cleanup_free char *base = kube_path(rt, "services", NULL);
	cleanup_free char *path = xasprintf("%s?labelSelector=%s", base, sel);
	cJSON *list = NULL;
	if (kube_json(rt->k, "GET", path, NULL, NULL, &list, err) < 0)
		return cp_error_prefix(err, "listing the project's services");
	for (size_t i = 0; i < rt->nips; i++) {
		free(rt->ips[i].stage);
		free(rt->ips[i].ip);
	}
	rt->nips = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
	{
		const char *stage = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			kube_get(it, "metadata.labels"), KLABEL_STAGE));
		const char *ip = kube_str(it, "spec.clusterIP");
		if (!stage || !ip || !*ip || !strcmp(ip, "None") ||
		    kube_str(it, "metadata.deletionTimestamp"))
			continue;
		rt->ips = xrealloc(rt->ips, (rt->nips + 1) * sizeof(*rt->ips));
		rt->ips[rt->nips++] = (struct kube_service_ip){xstrdup(stage), xstrdup(ip)};
	}
	cJSON_Delete(list);
	return 0;
}
