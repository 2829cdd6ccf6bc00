/* `cpipe export kubernetes`: the manifests the kubernetes runtime would
 * create, written as files (JSON, which kubectl applies as it does YAML),
 * plus apply.sh, which applies them in dependency order: Kubernetes does
 * not order Jobs, so the script waits for each Job to complete (and each
 * service's Deployment to roll out, i.e. be Ready) before the next. Stages
 * reach services by name: the Service is named after the stage (cluster
 * DNS), and apply.sh also fills in hostAliases with its ClusterIP for
 * clusters without DNS. */
#include "kube_export.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/fs.h"
#include "kube_internal.h"

#define IP_PLACEHOLDER "CPIPE_IP_"

static int write_json(const char *dir, const char *file, const cJSON *doc, struct strvec *written,
		      struct cp_error *err)
{
	char *text = cJSON_Print(doc);
	cleanup_free char *path = path_join(dir, file);
	int rc = fs_write_atomic(path, text, strlen(text), 0644, err);
	free(text);
	if (rc == 0)
		strvec_push(written, path);
	return rc;
}

static cJSON *list_of(void)
{
	cJSON *l = cJSON_CreateObject();
	cJSON_AddStringToObject(l, "apiVersion", "v1");
	cJSON_AddStringToObject(l, "kind", "List");
	cJSON_AddArrayToObject(l, "items");
	return l;
}

static void set_namespace(cJSON *o, const char *ns)
{
	cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
	cJSON_DeleteItemFromObjectCaseSensitive(md, "namespace");
	cJSON_AddStringToObject(md, "namespace", ns);
}

int kube_export(const struct runtime_project *proj, const struct task_spec *tasks, size_t n,
		const char *dir, struct strvec *written, struct cp_error *err)
{
	struct runtime *rt = xcalloc(1, sizeof(*rt));
	rt->images_known = rt->ns_ready = true;
	rt->sink = proj->sink;
	kube_task_project(rt, proj);
	rt->owner = xstrdup("cpipe-export");
	struct strbuf sh = STRBUF_INIT;
	int rc = fs_mkdir_p(dir, 0755, err);
	sb_addf(&sh,
		"#!/bin/sh\n"
		"# Written by cpipe export kubernetes: applies the pipeline of project %s in\n"
		"# dependency order to the cluster kubectl points at, waiting for each job\n"
		"# to complete and each service to be ready. Exit 1 when a job fails.\n"
		"set -eu\n"
		"cd \"$(dirname \"$0\")\"\n"
		"NS=%s\n"
		"SUBST=\"\"\n"
		"wait_job() {\n"
		"\twhile :; do\n"
		"\t\tst=$(kubectl -n \"$NS\" get job \"$1\" -o "
		"jsonpath='{.status.succeeded}/{.status.failed}')\n"
		"\t\tcase $st in\n"
		"\t\t1/*) kubectl -n \"$NS\" logs \"job/$1\"; return 0 ;;\n"
		"\t\t*/[1-9]*) kubectl -n \"$NS\" logs \"job/$1\" || true\n"
		"\t\t\techo \"apply.sh: job $1 failed\" >&2; return 1 ;;\n"
		"\t\tesac\n"
		"\t\tsleep 1\n"
		"\tdone\n"
		"}\n"
		"apply() { sed -e 's/^//' $SUBST \"$1\" | kubectl apply -f - > /dev/null; }\n",
		rt->project, rt->namespace);

	cJSON *ns = cJSON_CreateObject();
	cJSON_AddStringToObject(ns, "apiVersion", "v1");
	cJSON_AddStringToObject(ns, "kind", "Namespace");
	cJSON *nmd = cJSON_AddObjectToObject(ns, "metadata");
	cJSON_AddStringToObject(nmd, "name", rt->namespace);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(nmd, "labels"), KLABEL_PROJECT, rt->project);
	if (rc == 0)
		rc = write_json(dir, "00-namespace.json", ns, written, err);
	cJSON_Delete(ns);
	sb_adds(&sh, "kubectl apply -f 00-namespace.json > /dev/null\n");
	if (rc == 0 && rt->nvolumes) {
		cJSON *vols = list_of();
		for (size_t i = 0; i < rt->nvolumes; i++)
			if (!rt->volumes[i].external)
				cJSON_AddItemToArray(cJSON_GetObjectItem(vols, "items"),
						     kube_manifest_claim(rt, &rt->volumes[i]));
		rc = write_json(dir, "01-volumes.json", vols, written, err);
		cJSON_Delete(vols);
		sb_adds(&sh, "kubectl apply -f 01-volumes.json > /dev/null\n");
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct kube_work w;
		if (kube_task_work(&w, rt, &tasks[i], err) < 0) {
			rc = -1;
			break;
		}
		cleanup_free char *name = kube_object_name(rt, w.stage, NULL);
		cleanup_free char *dns = kube_dns_name(w.stage, 63);
		cJSON *items = list_of();
		cJSON *arr = cJSON_GetObjectItem(items, "items");
		bool files = false;
		for (size_t m = 0; m < w.nmounts; m++)
			files |= w.mounts[m].file_key != NULL;
		if (files)
			cJSON_AddItemToArray(arr, kube_manifest_configmap(rt, &w, name, "export"));
		cJSON *wl = kube_manifest_workload(rt, &w, name, "export", name, err);
		if (!wl)
			rc = -1;
		else
			cJSON_AddItemToArray(arr, wl);
		if (rc == 0 && w.service && w.nports) {
			cJSON *svc = kube_manifest_service(rt, &w, name, "export");
			cJSON *md = cJSON_GetObjectItem(svc, "metadata");
			cJSON_DeleteItemFromObjectCaseSensitive(md, "name");
			cJSON_AddStringToObject(md, "name", dns);
			cJSON_AddItemToArray(arr, svc);
		}
		cJSON *it;
		cJSON_ArrayForEach(it, arr)
		set_namespace(it, rt->namespace);
		cleanup_free char *file = xasprintf("%02zu-%s.json", i + 2, dns);
		if (rc == 0)
			rc = write_json(dir, file, items, written, err);
		cJSON_Delete(items);
		if (w.service && w.nports) {
			/* Later stages (in dependency order) alias its name. */
			rt->ips = xrealloc(rt->ips, (rt->nips + 1) * sizeof(*rt->ips));
			rt->ips[rt->nips++] = (struct kube_service_ip){
				xstrdup(w.stage), xasprintf(IP_PLACEHOLDER "%s", dns)};
		}
		if (w.service)
			sb_addf(&sh,
				"apply %s\n"
				"kubectl -n \"$NS\" rollout status deployment/%s --timeout=600s > "
				"/dev/null\n"
				"SUBST=\"$SUBST -e s/" IP_PLACEHOLDER "%s/$(kubectl -n \"$NS\" get "
				"service %s -o jsonpath='{.spec.clusterIP}' 2> /dev/null || echo "
				"127.0.0.1)/g\"\n",
				file, name, dns, dns);
		else
			sb_addf(&sh, "apply %s\nwait_job %s\n", file, name);
		kube_work_free(&w);
	}
	/* Services stay up; the jobs' objects are left for their logs. */
	sb_adds(&sh, "echo \"apply.sh: done (kubectl delete namespace $NS removes it all)\"\n");
	if (rc == 0) {
		cleanup_free char *path = path_join(dir, "apply.sh");
		rc = fs_write_atomic(path, sh.buf, sh.len, 0755, err);
		if (rc == 0)
			strvec_push(written, path);
	}
	sb_free(&sh);
	kube_runtime_free(rt);
	return rc;
}
