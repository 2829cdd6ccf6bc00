/* The kubernetes runtime's one reader of the task description and the
 * project: a task_desc and its environment become a struct kube_work
 * (what a pod runs), the project's volumes and x-cpipe settings a
 * namespace, claims and a helper image. Everything the cluster cannot do is refused here, before
 * anything runs, naming the spec's place. */
#include <curl/curl.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/fs.h"
#include "kube_internal.h"

/* All the ConfigMap data of one stage's files: the API's limit is 1 MiB
 * per object, less what the manifest takes. */
#define CONFIGMAP_MAX (900 * 1024)
#define DEFAULT_VOLUME_SIZE "1Gi"
#define DEFAULT_HELPER_IMAGE "busybox:stable"

void kube_task_project(struct runtime *rt, const struct runtime_project *proj)
{
	rt->project = kube_dns_name(proj->name, 40);
	rt->state_dir = proj->state_dir ? xstrdup(proj->state_dir) : NULL;
	if (proj->kube_namespace && *proj->kube_namespace)
		rt->namespace = xstrdup(proj->kube_namespace);
	else
		rt->namespace = xasprintf("cpipe-%s", rt->project);
	const char *helper = getenv("CPIPE_KUBE_HELPER_IMAGE");
	const char *x_helper = proj->kube_helper_image;
	rt->helper_image = xstrdup(helper && *helper	       ? helper
				   : x_helper && *x_helper ? x_helper
							   : DEFAULT_HELPER_IMAGE);
	rt->volumes = xcalloc(proj->nvolumes ? proj->nvolumes : 1, sizeof(*rt->volumes));
	rt->nvolumes = proj->nvolumes;
	for (size_t i = 0; i < proj->nvolumes; i++) {
		const struct volume *v = &proj->volumes[i];
		struct kube_volume *kv = &rt->volumes[i];
		const struct kv *sc = kvvec_get(&v->driver_opts, "storage_class");
		const struct kv *size = kvvec_get(&v->driver_opts, "size");
		kv->key = xstrdup(v->name);
		cleanup_free char *base = v->ext_name ? xstrdup(v->ext_name)
						      : xasprintf("%s-%s", rt->project, v->name);
		kv->claim = kube_dns_name(base, 63);
		kv->storage_class = sc && sc->value && *sc->value ? xstrdup(sc->value)
				    : proj->kube_storage_class	   ? xstrdup(proj->kube_storage_class)
								   : NULL;
		kv->size = xstrdup(size && size->value && *size->value ? size->value
				   : proj->kube_volume_size		? proj->kube_volume_size
									: DEFAULT_VOLUME_SIZE);
		kv->external = v->external;
	}
	rt->builds = xcalloc(proj->nbuilds ? proj->nbuilds : 1, sizeof(*rt->builds));
	rt->nbuilds = proj->nbuilds;
	for (size_t i = 0; i < proj->nbuilds; i++) {
		const struct runtime_build *b = &proj->builds[i];
		rt->builds[i] = (struct kube_build){
			.stage = xstrdup(b->stage),
			.image = b->image ? xstrdup(b->image) : NULL,
			.file = b->mark.file ? xstrdup(b->mark.file) : NULL,
			.line = b->mark.line,
			.col = b->mark.col,
		};
	}
}

int kube_task_check_builds(struct runtime *rt, struct cp_error *err)
{
	for (size_t i = 0; i < rt->nbuilds; i++) {
		const struct kube_build *b = &rt->builds[i];
		struct cp_error e = {0};
		if (b->image && kube_image_local(rt, b->image, &e))
			continue;
		if (e.msg[0]) {
			*err = e;
			return -1;
		}
		struct cp_mark mark = {.file = b->file, .line = b->line, .col = b->col};
		return cp_error_at(err, EXIT_USAGE, &mark,
				   "stage \"%s\" has build:, and the kubernetes runtime cannot build "
				   "images on the cluster%s%s%s: build it elsewhere and push it to a "
				   "registry the nodes pull from, or import it into every node, then "
				   "run again",
				   b->stage, b->image ? " (image " : "", b->image ? b->image : "",
				   b->image ? " is on no node)" : "");
	}
	return 0;
}

static int refuse(struct cp_error *err, const struct cp_mark *mark, const char *stage,
		  const char *fmt, ...) CP_PRINTF(4, 5);
static int refuse(struct cp_error *err, const struct cp_mark *mark, const char *stage,
		  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	cp_error_at(err, EXIT_USAGE, mark, "stage \"%s\": %s", stage, msg);
	return -1;
}

static bool configmap_key_ok(const char *k)
{
	return *k && strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") ==
			     strlen(k);
}

static void add_file(struct kube_work *w, const char *target, const char *key, char *content,
		     size_t len)
{
	w->mounts = xrealloc(w->mounts, (w->nmounts + 1) * sizeof(*w->mounts));
	w->mounts[w->nmounts++] = (struct kube_mount){.target = xstrdup(target), .read_only = true,
						      .file_key = xstrdup(key), .content = content,
						      .len = len};
}

/* A read-only bind of a project file, or of a directory of files (not
 * below), uploaded as ConfigMap entries. */
static int bind_mount(struct kube_work *w, const struct task_desc *s, const struct mount *m,
		      size_t *total, struct cp_error *err)
{
#define HOW                                                                              \
	"bind mount %s: the kubernetes runtime uploads read-only project files (as a "    \
	"ConfigMap: %s); put the data in a named volume instead"
	struct stat st;
	if (stat(m->source, &st) < 0)
		return refuse(err, &m->mark, s->name, "bind mount %s does not exist", m->source);
	if (!m->read_only)
		return refuse(err, &m->mark, s->name,
			      "a writable bind mount of %s cannot reach the cluster's nodes; the "
			      "kubernetes runtime uploads read-only files only (mount it :ro, or "
			      "use a named volume)",
			      m->source);
	if (S_ISREG(st.st_mode)) {
		const char *base = strrchr(m->source, '/');
		base = base ? base + 1 : m->source;
		char *content = NULL;
		size_t len = 0;
		*total += (size_t)st.st_size;
		if (*total > CONFIGMAP_MAX)
			return refuse(err, &m->mark, s->name, HOW, m->source, "at most 900 KiB in all");
		if (fs_read_file(&content, &len, m->source, CONFIGMAP_MAX, err) < 0)
			return -1;
		add_file(w, m->target, configmap_key_ok(base) ? base : "file", content, len);
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return refuse(err, &m->mark, s->name, HOW, m->source,
			      "regular files and directories only");
	DIR *d = opendir(m->source);
	if (!d)
		return cp_error_errno(err, EXIT_USAGE, "reading %s", m->source);
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		cleanup_free char *path = xasprintf("%s/%s", m->source, de->d_name);
		cleanup_free char *target = xasprintf("%s/%s", m->target, de->d_name);
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || !configmap_key_ok(de->d_name)) {
			rc = refuse(err, &m->mark, s->name, HOW, m->source,
				    "a directory of plain files with simple names, no subdirectories");
			break;
		}
		*total += (size_t)st.st_size;
		if (*total > CONFIGMAP_MAX) {
			rc = refuse(err, &m->mark, s->name, HOW, m->source, "at most 900 KiB in all");
			break;
		}
		char *content = NULL;
		size_t len = 0;
		rc = fs_read_file(&content, &len, path, CONFIGMAP_MAX, err);
		if (rc == 0)
			add_file(w, target, de->d_name, content, len);
	}
	closedir(d);
	return rc;
}

static int mounts(struct kube_work *w, const struct task_desc *s, struct cp_error *err)
{
	size_t total = 0;
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount *m = &s->mounts[i];
		if (m->type == MOUNT_BIND) {
			if (bind_mount(w, s, m, &total, err) < 0)
				return -1;
			continue;
		}
		w->mounts = xrealloc(w->mounts, (w->nmounts + 1) * sizeof(*w->mounts));
		w->mounts[w->nmounts++] = (struct kube_mount){
			.volume = m->type == MOUNT_VOLUME ? xstrdup(m->source) : NULL,
			.target = xstrdup(m->target),
			.read_only = m->read_only,
		};
	}
	for (size_t i = 0; i < s->limits.ntmpfs; i++) {
		w->mounts = xrealloc(w->mounts, (w->nmounts + 1) * sizeof(*w->mounts));
		w->mounts[w->nmounts++] =
			(struct kube_mount){.target = xstrdup(s->limits.tmpfs[i].target)};
	}
	return 0;
}

static int user(struct kube_work *w, const struct task_desc *s, struct cp_error *err)
{
	w->uid = w->gid = -1;
	if (!s->user || !*s->user)
		return 0;
	char *end = NULL;
	long long uid = strtoll(s->user, &end, 10);
	long long gid = -1;
	if (end != s->user && *end == ':') {
		const char *g = end + 1;
		gid = strtoll(g, &end, 10);
		if (end == g)
			end = (char *)"x";
	}
	if (end == s->user || *end)
		return refuse(err, &s->mark, s->name,
			      "user: \"%s\" is a name; Kubernetes runs pods as numeric IDs only "
			      "(runAsUser): give uid[:gid]",
			      s->user);
	w->uid = uid;
	w->gid = gid;
	return 0;
}

static int gpus(struct kube_work *w, const struct task_desc *s, struct cp_error *err)
{
	for (size_t i = 0; i < s->gpus.n; i++) {
		const char *g = s->gpus.v[i];
		char *end = NULL;
		long n = strtol(g, &end, 10);
		if (end != g && !*end && n > 0) {
			w->gpus += (int)n;
			continue;
		}
		return refuse(err, s->lifecycle.marks[CM_GPUS].file ? &s->lifecycle.marks[CM_GPUS]
								      : &s->mark,
			      s->name,
			      "a GPU request of \"%s\": Kubernetes schedules a count of "
			      "nvidia.com/gpu; give gpus: N (a number)",
			      g);
	}
	return 0;
}

/* healthcheck: {http: URL}: the kubelet GETs the URL's path (and query)
 * at its port on the pod, as the other runtimes GET it from the host. */
static int probe_http(struct kube_work *w, const struct task_desc *s, const char *url,
		      struct cp_error *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *port = NULL, *path = NULL, *query = NULL;
	int rc = 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		rc = refuse(err, &s->mark, s->name,
			    "healthcheck: {http: %s} is no http:// or https:// URL", url);
	} else {
		curl_url_get(u, CURLUPART_QUERY, &query, 0);
		w->probe_path = query ? xasprintf("%s?%s", path, query) : xstrdup(path);
		w->probe_port = atoi(port);
		w->probe_https = strcmp(scheme, "https") == 0;
	}
	curl_free(scheme);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}

static int probe(struct kube_work *w, const struct task_desc *s, struct cp_error *err)
{
	const struct healthcheck *h = s->healthcheck;
	if (!h || h->disable)
		return 0;
	if (h->http) {
		if (probe_http(w, s, h->http, err) < 0)
			return -1;
	} else {
		if (!h->test.n || strcmp(h->test.v[0], "NONE") == 0)
			return 0;
		bool shell = strcmp(h->test.v[0], "CMD-SHELL") == 0;
		if (shell) {
			strvec_push(&w->probe, "/bin/sh");
			strvec_push(&w->probe, "-c");
		}
		for (size_t i = shell || strcmp(h->test.v[0], "CMD") == 0; i < h->test.n; i++)
			strvec_push(&w->probe, h->test.v[i]);
	}
	w->probe_period_ms = h->interval_ms > 0 ? h->interval_ms : 1000;
	w->probe_timeout_ms = h->timeout_ms > 0 ? h->timeout_ms : 5000;
	w->probe_start_ms = h->start_period_ms;
	w->probe_retries = h->retries > 0 ? h->retries : 30;
	return 0;
}

int kube_task_work(struct kube_work *w, struct runtime *rt, const struct task_spec *ts,
		   struct cp_error *err)
{
	const struct task_desc *s = ts->desc;
	memset(w, 0, sizeof(*w));
	w->stage = xstrdup(s->name);
	w->service = s->service;
	w->image = xstrdup(s->image && *s->image ? s->image : "");
	w->has_command = s->has_entrypoint;
	strvec_copy(&w->command, &s->entrypoint);
	w->has_args = s->has_command;
	strvec_copy(&w->args, &s->command);
	for (size_t i = 0; ts->env && i < ts->env->n; i++)
		kvvec_set(&w->env, ts->env->v[i].key, ts->env->v[i].value ? ts->env->v[i].value : "");
	w->working_dir = s->working_dir ? xstrdup(s->working_dir) : NULL;
	for (size_t i = 0; i < s->node_selector.n; i++)
		kvvec_set(&w->node_selector, s->node_selector.v[i].key,
			  s->node_selector.v[i].value);
	for (size_t i = 0; i < s->resources.n; i++)
		kvvec_set(&w->resources, s->resources.v[i].key, s->resources.v[i].value);
	for (size_t i = 0; i < s->nports; i++) {
		const struct port *pt = &s->ports[i];
		if (pt->host_port && pt->protocol && !strcmp(pt->protocol, "udp")) {
			refuse(err, &pt->mark, s->name,
			       "port %d/udp is published on the host; the kubernetes runtime "
			       "forwards published ports as HTTP through the API server, so TCP "
			       "only (drop the host port to reach it in the cluster by the "
			       "stage's name)",
			       pt->container_port);
			kube_work_free(w);
			return -1;
		}
		for (int p = pt->container_port; p <= pt->container_port_end; p++) {
			w->ports = xrealloc(w->ports, (w->nports + 1) * sizeof(*w->ports));
			w->ports[w->nports++] = (struct kube_port){
				.port = p,
				.protocol = xstrdup(pt->protocol && !strcmp(pt->protocol, "udp")
							    ? "UDP"
							    : "TCP")};
		}
	}
	w->grace_ms = s->stop_grace_ms;
	w->tty = ts->tty && !ts->detached;
	if (!*w->image) {
		refuse(err, &s->mark, s->name,
		       "no image: to run; the kubernetes runtime runs images the nodes have or "
		       "pull, and builds none");
		kube_work_free(w);
		return -1;
	}
	if (user(w, s, err) < 0 || gpus(w, s, err) < 0 || probe(w, s, err) < 0 ||
	    mounts(w, s, err) < 0) {
		kube_work_free(w);
		return -1;
	}
	for (size_t i = 0; i < w->nmounts; i++)
		if (w->mounts[i].volume && !kube_volume_of(rt, w->mounts[i].volume)) {
			refuse(err, &s->mark, s->name, "volume \"%s\" is not declared under volumes:",
			       w->mounts[i].volume);
			kube_work_free(w);
			return -1;
		}
	return 0;
}

void kube_work_free(struct kube_work *w)
{
	free(w->stage);
	free(w->image);
	strvec_free(&w->command);
	strvec_free(&w->args);
	kvvec_free(&w->env);
	free(w->working_dir);
	free(w->user_name);
	kvvec_free(&w->node_selector);
	kvvec_free(&w->resources);
	for (size_t i = 0; i < w->nmounts; i++) {
		free(w->mounts[i].volume);
		free(w->mounts[i].target);
		free(w->mounts[i].file_key);
		free(w->mounts[i].content);
	}
	free(w->mounts);
	for (size_t i = 0; i < w->nports; i++)
		free(w->ports[i].protocol);
	free(w->ports);
	strvec_free(&w->probe);
	free(w->probe_path);
	memset(w, 0, sizeof(*w));
}
