/* The kubernetes runtime: the REST API of the cluster the kubeconfig
 * names. A project lives in one namespace (cpipe-<project>, or x-cpipe:
 * {namespace}), created when missing; a named volume is a
 * PersistentVolumeClaim (ReadWriteMany), a job a batch/v1 Job, a service a
 * Deployment and a Service (kube_job.c). Everything carries the project's
 * and the run's labels, so that failures, Ctrl-C and the next run after a
 * kill -9 delete what a run created. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kube_exec.h"
#include "kube_internal.h"

#define BIND_TIMEOUT_S 60

char *kube_dns_name(const char *s, size_t max)
{
	char *out = xmalloc(max + 1);
	size_t n = 0;
	for (; *s && n < max; s++) {
		char c = *s;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			c = '-';
		if (c == '-' && (n == 0 || out[n - 1] == '-'))
			continue;
		out[n++] = c;
	}
	while (n && out[n - 1] == '-')
		n--;
	if (!n)
		out[n++] = 'x';
	out[n] = '\0';
	return out;
}

char *kube_path(const struct runtime *rt, const char *kind, const char *name)
{
	const char *group = !strcmp(kind, "jobs")	     ? "/apis/batch/v1"
			    : !strcmp(kind, "deployments") ? "/apis/apps/v1"
							   : "/api/v1";
	return xasprintf("%s/namespaces/%s/%s%s%s", group, rt->namespace, kind, name ? "/" : "",
			 name ? name : "");
}

char *kube_selector(const struct runtime *rt, const char *key2, const char *value2)
{
	cleanup_free char *sel = key2 ? xasprintf("%s=%s,%s=%s", KLABEL_PROJECT, rt->project, key2,
						  value2)
				      : xasprintf("%s=%s", KLABEL_PROJECT, rt->project);
	return kube_escape(sel);
}

const struct kube_volume *kube_volume_of(const struct runtime *rt, const char *key)
{
	for (size_t i = 0; i < rt->nvolumes; i++)
		if (strcmp(rt->volumes[i].key, key) == 0)
			return &rt->volumes[i];
	return NULL;
}

/* Pods are refused until the namespace's default ServiceAccount exists,
 * which the controller manager makes a moment after the namespace. */
static int default_account(struct runtime *rt, struct cp_error *err)
{
	cleanup_free char *path = kube_path(rt, "serviceaccounts", "default");
	for (int tries = 0; tries < 100; tries++) {
		long status = 0;
		if (kube_json(rt->k, "GET", path, NULL, &status, NULL, err) == 0)
			return 0;
		if (status != 404)
			return cp_error_prefix(err, "namespace %s", rt->namespace);
		cp_error_clear(err);
		usleep(100000);
	}
	return cp_error_set(err, EXIT_RUNTIME,
			    "namespace %s has no default service account after 10s: is the "
			    "cluster's controller manager running?",
			    rt->namespace);
}

int kube_namespace_ensure(struct runtime *rt, struct cp_error *err)
{
	if (rt->ns_ready)
		return 0;
	cleanup_free char *path = xasprintf("/api/v1/namespaces/%s", rt->namespace);
	for (int tries = 0; tries < 120; tries++) {
		long status = 0;
		cJSON *ns = NULL;
		if (kube_json(rt->k, "GET", path, NULL, &status, &ns, err) == 0) {
			const char *phase = kube_str(ns, "status.phase");
			bool terminating = phase && strcmp(phase, "Terminating") == 0;
			cJSON_Delete(ns);
			if (!terminating) {
				rt->ns_ready = true;
				return default_account(rt, err);
			}
			usleep(500000); /* a namespace being deleted: wait it out */
			continue;
		}
		if (status != 404)
			return cp_error_prefix(err, "namespace %s", rt->namespace);
		cp_error_clear(err);
		cJSON *body = cJSON_CreateObject();
		cJSON *md = cJSON_AddObjectToObject(body, "metadata");
		cJSON_AddStringToObject(md, "name", rt->namespace);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(md, "labels"), KLABEL_PROJECT,
					rt->project);
		int rc = kube_json(rt->k, "POST", "/api/v1/namespaces", body, &status, NULL, err);
		cJSON_Delete(body);
		if (rc < 0 && status != 409)
			return cp_error_prefix(err, "creating namespace %s", rt->namespace);
		cp_error_clear(err);
	}
	return cp_error_set(err, EXIT_RUNTIME,
			    "namespace %s stays Terminating; wait for it to go, or choose "
			    "another with x-cpipe: {namespace: ...}",
			    rt->namespace);
}

/* DeleteOptions: dependents in the background, grace `grace_s` (-1: the
 * object's own). */
static cJSON *delete_options(int grace_s)
{
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "kind", "DeleteOptions");
	cJSON_AddStringToObject(body, "apiVersion", "v1");
	cJSON_AddStringToObject(body, "propagationPolicy", "Background");
	if (grace_s >= 0)
		cJSON_AddNumberToObject(body, "gracePeriodSeconds", grace_s);
	return body;
}

/* DELETE `path` with delete_options(grace_s); a 404 is fine. */
static int delete_path(struct kube *k, const char *path, int grace_s, struct cp_error *err)
{
	cJSON *body = delete_options(grace_s);
	long status = 0;
	int rc = kube_json(k, "DELETE", path, body, &status, NULL, err);
	cJSON_Delete(body);
	if (rc < 0 && status == 404) {
		cp_error_clear(err);
		return 0;
	}
	return rc;
}

int kube_delete_pods(struct kube *k, const struct runtime *rt, const char *apis,
		     const char *kind, const char *selector, int grace_s, struct cp_error *err)
{
	cleanup_free char *sel = kube_escape(selector);
	cleanup_free char *path = xasprintf("%s/namespaces/%s/%s?labelSelector=%s", apis,
					    rt->namespace, kind, sel);
	return delete_path(k, path, grace_s, err);
}

/* The selector of a Deployment's pods ("k=v,k2=v2"), or NULL. Caller owns. */
static char *deployment_selector(struct kube *k, const struct runtime *rt, const char *name)
{
	cleanup_free char *path = kube_path(rt, "deployments", name);
	cJSON *d = NULL;
	struct cp_error e = {0};
	if (kube_json(k, "GET", path, NULL, NULL, &d, &e) < 0)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	const cJSON *l;
	cJSON_ArrayForEach(l, kube_get(d, "spec.selector.matchLabels"))
	if (cJSON_IsString(l))
		sb_addf(&sb, "%s%s=%s", sb.len ? "," : "", l->string, l->valuestring);
	cJSON_Delete(d);
	return sb.len ? sb_detach(&sb) : (sb_free(&sb), NULL);
}

int kube_delete(struct kube *k, const struct runtime *rt, const char *kind, const char *name,
		struct cp_error *err)
{
	cleanup_free char *pods = !strcmp(kind, "jobs") ? xasprintf("job-name=%s", name)
				  : !strcmp(kind, "deployments") ? deployment_selector(k, rt, name)
								 : NULL;
	cleanup_free char *path = kube_path(rt, kind, name);
	if (delete_path(k, path, 0, err) < 0)
		return cp_error_prefix(err, "deleting %s %s", kind, name);
	/* The garbage collector would delete the pods too, but in its own
	 * time (tens of seconds on a busy cluster): now, so that nothing of
	 * the run is left when cpipe exits. A Deployment's ReplicaSet first,
	 * or it makes the pod again. */
	if (pods && !strcmp(kind, "deployments") &&
	    kube_delete_pods(k, rt, "/apis/apps/v1", "replicasets", pods, 0, err) < 0)
		return cp_error_prefix(err, "deleting the pods of %s %s", kind, name);
	if (pods && kube_delete_pods(k, rt, "/api/v1", "pods", pods, 0, err) < 0)
		return cp_error_prefix(err, "deleting the pods of %s %s", kind, name);
	return 0;
}

int kube_delete_labelled(struct runtime *rt, const char *key, const char *value, int *n,
			 struct cp_error *err)
{
	static const char *const kinds[] = {"jobs", "deployments", "services", "configmaps", "pods"};
	cleanup_free char *sel = kube_selector(rt, key, value);
	*n = 0;
	for (size_t i = 0; i < ARRAY_LEN(kinds); i++) {
		cleanup_free char *base = kube_path(rt, kinds[i], NULL);
		cleanup_free char *path = xasprintf("%s?labelSelector=%s", base, sel);
		cJSON *list = NULL;
		long status = 0;
		if (kube_json(rt->k, "GET", path, NULL, &status, &list, err) < 0) {
			if (status == 404) { /* no namespace: nothing to delete */
				cp_error_clear(err);
				return 0;
			}
			return cp_error_prefix(err, "listing %s", kinds[i]);
		}
		const cJSON *it;
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
		{
			const char *name = kube_str(it, "metadata.name");
			const char *stage = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
				kube_get(it, "metadata.labels"), KLABEL_STAGE));
			if (!name || (stage && strvec_contains(&rt->kept, stage)))
				continue;
			if (kube_str(it, "metadata.deletionTimestamp"))
				continue;
			if (kube_delete(rt->k, rt, kinds[i], name, err) < 0) {
				cJSON_Delete(list);
				return -1;
			}
			(*n)++;
		}
		cJSON_Delete(list);
	}
	return 0;
}

/* ---- open / close ---- */

static char *owner_value(void)
{
	char host[64] = "";
	gethostname(host, sizeof(host) - 1);
	cleanup_free char *raw = xasprintf("%s-%ld", host, (long)getpid());
	return kube_dns_name(raw, 63);
}

void kube_runtime_free(struct runtime *rt)
{
	kube_close(rt->k);
	kube_config_free(&rt->cfg);
	free(rt->project);
	free(rt->namespace);
	free(rt->state_dir);
	free(rt->helper_image);
	for (size_t i = 0; i < rt->nvolumes; i++) {
		free(rt->volumes[i].key);
		free(rt->volumes[i].claim);
		free(rt->volumes[i].storage_class);
		free(rt->volumes[i].size);
	}
	free(rt->volumes);
	for (size_t i = 0; i < rt->nbuilds; i++) {
		free(rt->builds[i].stage);
		free(rt->builds[i].image);
		free(rt->builds[i].file);
	}
	free(rt->builds);
	for (size_t i = 0; i < rt->nips; i++) {
		free(rt->ips[i].stage);
		free(rt->ips[i].ip);
	}
	free(rt->ips);
	free(rt->owner);
	strvec_free(&rt->runs);
	strvec_free(&rt->kept);
	strvec_free(&rt->node_images);
	strvec_free(&rt->live);
	free(rt);
}

static int kube_rt_open(struct runtime **out, const struct runtime_project *proj,
			struct cp_error *err)
{
	struct runtime *rt = xcalloc(1, sizeof(*rt));
	rt->sink = proj->sink;
	const char *ctx = getenv("CPIPE_KUBE_CONTEXT");
	if (kube_config_load(&rt->cfg, getenv("KUBECONFIG"), ctx, err) < 0 ||
	    kube_open(&rt->k, &rt->cfg, err) < 0) {
		kube_config_free(&rt->cfg);
		free(rt);
		return -1;
	}
	kube_task_project(rt, proj);
	if (rt->cfg.namespace && !(proj->kube_namespace && *proj->kube_namespace)) {
		/* The context's namespace: is the user's choice of a place. */
		free(rt->namespace);
		rt->namespace = xstrdup(rt->cfg.namespace);
	}
	char *o = owner_value();
	rt->owner = o;
	cJSON *v = NULL;
	if (kube_json(rt->k, "GET", "/version", NULL, NULL, &v, err) < 0) {
		cJSON_Delete(v);
		*out = NULL;
		cp_error_recode(err, err->code == EXIT_INTERRUPTED ? EXIT_INTERRUPTED : EXIT_RUNTIME);
		kube_runtime_free(rt);
		return -1;
	}
	cJSON_Delete(v);
	*out = rt;
	return 0;
}

static void kube_rt_close(struct runtime *rt)
{
	if (!rt)
		return;
	for (size_t r = 0; r < rt->runs.n; r++) {
		struct cp_error e = {0};
		int n = 0;
		if (kube_delete_labelled(rt, KLABEL_RUN, rt->runs.v[r], &n, &e) < 0)
			runtime_note(&rt->sink, RUNTIME_WARNING, NULL, "cleaning up run %s: %s",
				     rt->runs.v[r], e.msg);
	}
	kube_runtime_free(rt);
}

/* ---- volumes ---- */

static int claim_wait_bound(struct runtime *rt, const struct kube_volume *v, struct cp_error *err)
{
	cleanup_free char *path = kube_path(rt, "persistentvolumeclaims", v->claim);
	const char *tv = getenv("CPIPE_KUBE_BIND_TIMEOUT");
	long secs = tv && atol(tv) > 0 ? atol(tv) : BIND_TIMEOUT_S;
	long long deadline = now_ms() + secs * 1000;
	for (;;) {
		cJSON *c = NULL;
		if (kube_json(rt->k, "GET", path, NULL, NULL, &c, err) < 0)
			return cp_error_prefix(err, "volume \"%s\"", v->key);
		const char *phase = kube_str(c, "status.phase");
		bool bound = phase && strcmp(phase, "Bound") == 0;
		cJSON_Delete(c);
		if (bound)
			return 0;
		if (now_ms() > deadline || runtime_interrupts)
			break;
		usleep(250000);
	}
	cp_error_set(err, EXIT_STAGE_FAILED,
		     "volume \"%s\": the cluster bound no PersistentVolume to claim %s in %lds "
		     "(it asks for %s, ReadWriteMany, storage class %s): give the cluster a "
		     "provisioner or a matching PersistentVolume, or choose the class and size "
		     "with driver_opts: {storage_class, size} or x-cpipe: {storage_class, "
		     "volume_size} (kubectl -n %s describe pvc %s says more)",
		     v->key, v->claim, secs, v->size,
		     v->storage_class ? v->storage_class : "(default)", rt->namespace, v->claim);
	return -1;
}

static int kube_volume_ensure(struct runtime *rt, const struct volume *vol, struct cp_error *err)
{
	const struct kube_volume *v = kube_volume_of(rt, vol->name);
	if (!v)
		return cp_error_set(err, EXIT_USAGE, "volume \"%s\" is not declared", vol->name);
	if (kube_namespace_ensure(rt, err) < 0)
		return -1;
	cleanup_free char *path = kube_path(rt, "persistentvolumeclaims", v->claim);
	long status = 0;
	if (kube_json(rt->k, "GET", path, NULL, &status, NULL, err) == 0)
		return claim_wait_bound(rt, v, err);
	if (status != 404)
		return cp_error_prefix(err, "volume \"%s\"", v->key);
	cp_error_clear(err);
	if (v->external) {
		cp_error_set(err, EXIT_STAGE_FAILED,
			     "external volume \"%s\": no PersistentVolumeClaim %s in namespace %s",
			     v->key, v->claim, rt->namespace);
		return -1;
	}
	cJSON *body = kube_manifest_claim(rt, v);
	cleanup_free char *coll = kube_path(rt, "persistentvolumeclaims", NULL);
	int rc = kube_json(rt->k, "POST", coll, body, NULL, NULL, err);
	cJSON_Delete(body);
	if (rc < 0)
		return cp_error_prefix(err, "creating claim %s for volume \"%s\"", v->claim, v->key);
	return claim_wait_bound(rt, v, err);
}

static int kube_volume_list(struct runtime *rt, struct volume_info **out, size_t *nout,
			    struct cp_error *err)
{
	*out = NULL;
	*nout = 0;
	cleanup_free char *sel = kube_selector(rt, NULL, NULL);
	cleanup_free char *base = kube_path(rt, "persistentvolumeclaims", NULL);
	cleanup_free char *path = xasprintf("%s?labelSelector=%s", base, sel);
	cJSON *list = NULL;
	long status = 0;
	if (kube_json(rt->k, "GET", path, NULL, &status, &list, err) < 0) {
		if (status == 404) {
			cp_error_clear(err);
			return 0;
		}
		return cp_error_prefix(err, "listing claims");
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
	{
		const char *claim = kube_str(it, "metadata.name");
		const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			kube_get(it, "metadata.labels"), KLABEL_VOLUME));
		if (!claim)
			continue;
		*out = xrealloc(*out, (*nout + 1) * sizeof(**out));
		struct volume_info *vi = &(*out)[(*nout)++];
		vi->name = xstrdup(key ? key : claim);
		vi->mountpoint = xasprintf("pvc/%s/%s", rt->namespace, claim);
		vi->size = -1;
		vi->declared = key && kube_volume_of(rt, key);
		vi->in_use = false;
	}
	cJSON_Delete(list);
	return 0;
}

static int kube_volume_remove(struct runtime *rt, const char *name, struct cp_error *err)
{
	const struct kube_volume *v = kube_volume_of(rt, name);
	if (v && v->external) {
		return cp_error_set(err, EXIT_USAGE,
				    "volume \"%s\" is external: cpipe does not remove it", name);
	}
	cleanup_free char *claim = v ? xstrdup(v->claim)
				     : kube_dns_name(xasprintf("%s-%s", rt->project, name), 63);
	if (kube_delete(rt->k, rt, "persistentvolumeclaims", claim, err) < 0)
		return cp_error_recode(err, EXIT_STAGE_FAILED);
	return 0;
}

/* ---- images ---- */

static bool same_image(const char *a, const char *b)
{
	static const char *const prefixes[] = {"docker.io/library/", "docker.io/"};
	if (strcmp(a, b) == 0)
		return true;
	for (size_t i = 0; i < ARRAY_LEN(prefixes); i++) {
		size_t n = strlen(prefixes[i]);
		if (strncmp(a, prefixes[i], n) == 0 && strcmp(a + n, b) == 0)
			return true;
		if (strncmp(b, prefixes[i], n) == 0 && strcmp(b + n, a) == 0)
			return true;
	}
	return false;
}

/* The image names every Ready node reports having (node status.images). */
static int node_images(struct runtime *rt, struct cp_error *err)
{
	if (rt->images_known)
		return 0;
	cJSON *nodes = NULL;
	if (kube_json(rt->k, "GET", "/api/v1/nodes", NULL, NULL, &nodes, err) < 0)
		return cp_error_prefix(err, "listing the cluster's nodes");
	struct strvec common = {0};
	bool first = true;
	const cJSON *n;
	cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(nodes, "items"))
	{
		bool ready = false;
		const cJSON *c;
		cJSON_ArrayForEach(c, kube_get(n, "status.conditions"))
		ready |= kube_str(c, "type") && !strcmp(kube_str(c, "type"), "Ready") &&
			 kube_str(c, "status") && !strcmp(kube_str(c, "status"), "True");
		if (!ready)
			continue;
		struct strvec here = {0};
		const cJSON *img, *name;
		cJSON_ArrayForEach(img, kube_get(n, "status.images"))
		cJSON_ArrayForEach(name, cJSON_GetObjectItemCaseSensitive(img, "names"))
		if (cJSON_IsString(name))
			strvec_push(&here, name->valuestring);
		if (first) {
			common = here;
			first = false;
			continue;
		}
		struct strvec keep = {0};
		for (size_t i = 0; i < common.n; i++)
			if (strvec_contains(&here, common.v[i]))
				strvec_push(&keep, common.v[i]);
		strvec_free(&common);
		strvec_free(&here);
		common = keep;
	}
	cJSON_Delete(nodes);
	rt->node_images = common;
	rt->images_known = true;
	return 0;
}

/* Whether every Ready node has image `ref` (with ":latest" when untagged). */
static bool on_nodes(const struct runtime *rt, const char *ref)
{
	const char *slash = strrchr(ref, '/');
	bool tagged = strchr(slash ? slash : ref, ':') || strchr(ref, '@');
	cleanup_free char *full = tagged ? xstrdup(ref) : xasprintf("%s:latest", ref);
	for (size_t i = 0; i < rt->node_images.n; i++)
		if (same_image(rt->node_images.v[i], full))
			return true;
	return false;
}

/* A stage's image: with build:, only when it is on every node already
 * (the cluster builds nothing); otherwise the reference itself, which
 * the nodes pull (IfNotPresent). The "ID" is the reference. */
static int kube_image_prepare(struct runtime *rt, const struct task_desc *d, bool build,
			      char **id_out, struct cp_error *err)
{
	const char *image = d->image && *d->image ? d->image : NULL;
	*id_out = NULL;
	if (node_images(rt, err) < 0)
		return -1;
	if (image && on_nodes(rt, image)) {
		*id_out = xasprintf("kubernetes:%s", image);
		return 0;
	}
	if (d->build) {
		if (!build)
			return 1;
		if (kube_task_check_builds(rt, err) < 0)
			return -1;
	}
	if (!image)
		return cp_error_at(err, EXIT_USAGE, &d->mark, "stage \"%s\" has no image:", d->name);
	*id_out = xasprintf("kubernetes:%s", image);
	return 0;
}

/* The cluster builds and pulls nothing cpipe waits for (its nodes pull as
 * the pod starts): the job is over as it starts, with image_prepare's
 * outcome. */
struct image_job {
	int rc;
	char *id;
	struct cp_error err;
};

static int kube_image_start(struct runtime *rt, const struct task_desc *d, struct image_job **out,
			    int *fd_out, struct cp_error *err)
{
	(void)err;
	struct image_job *j = xcalloc(1, sizeof(*j));
	j->rc = kube_image_prepare(rt, d, true, &j->id, &j->err);
	*out = j;
	*fd_out = -1;
	return 0;
}

static void kube_image_cancel(struct runtime *rt, struct image_job *j)
{
	(void)rt, (void)j;
}

static int kube_image_end(struct runtime *rt, struct image_job *j, char **id_out,
			  struct cp_error *err)
{
	(void)rt;
	int rc = j->rc < 0 ? -1 : 0;
	if (rc < 0)
		*err = j->err;
	else
		*id_out = j->id;
	if (rc < 0)
		free(j->id);
	free(j);
	return rc;
}

bool kube_image_local(struct runtime *rt, const char *image, struct cp_error *err)
{
	return node_images(rt, err) == 0 && on_nodes(rt, image);
}

/* A port the spec publishes with a host port is that port (through the
 * forwarder, kube_forward.c); one without is reached in the cluster only,
 * by the Service's name. */
static int kube_host_port(struct runtime *rt, struct task *t, int container_port,
			  const char *protocol)
{
	(void)rt;
	const struct task_desc *s = &t->desc;
	for (size_t i = 0; i < s->nports; i++) {
		const struct port *pt = &s->ports[i];
		const char *proto = pt->protocol ? pt->protocol : "tcp";
		if (pt->host_port && !strcmp(proto, protocol ? protocol : "tcp") &&
		    container_port >= pt->container_port && container_port <= pt->container_port_end)
			return pt->host_port + (container_port - pt->container_port);
	}
	return 0;
}

static int kube_rt_down(struct runtime *rt, struct cp_error *err)
{
	int n = 0;
	kube_forward_stop_all(rt);
	if (kube_delete_labelled(rt, NULL, NULL, &n, err) < 0)
		return -1;
	if (n)
		runtime_note(&rt->sink, RUNTIME_NOTICE, NULL,
			     "deleted %d object%s of project %s in namespace %s", n,
			     n == 1 ? "" : "s", rt->project, rt->namespace);
	return 0;
}

const struct runtime_ops runtime_kubernetes = {
	.name = "kubernetes",
	.caps = {.images = true, .detached = true, .exec = true, .attach = true,
		 .archive_reads = true, .archive_writes = true, .logs = true, .down = true,
		 .port_check = true, .task_probes = true, .image_names = true},
	.open = kube_rt_open,
	.close = kube_rt_close,
	.volume_ensure = kube_volume_ensure,
	.volume_list = kube_volume_list,
	.volume_remove = kube_volume_remove,
	.start = kube_task_start,
	.poll = kube_task_poll,
	.kill = kube_task_kill,
	.release = kube_task_release,
	.image_prepare = kube_image_prepare,
	.image_start = kube_image_start,
	.image_cancel = kube_image_cancel,
	.image_end = kube_image_end,
	.host_port = kube_host_port,
	.exec_start = kube_task_exec_start,
	.exec_end = kube_task_exec_end,
	.volume_read_tree = kube_volume_read_tree,
	.volume_write_tree = kube_volume_write_tree,
	.task_handle = kube_task_handle,
	.handle_alive = kube_handle_alive,
	.handle_stop = kube_handle_stop,
	.handle_logs = kube_handle_logs,
	.port_in_use = kube_port_in_use,
	.handle_exec = kube_handle_exec,
	.handle_kill = kube_handle_kill,
	.down = kube_rt_down,
};
