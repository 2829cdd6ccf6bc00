/* The docker runtime: every stage a container on the project's network,
 * driven through the Engine API (docker_api.h). This file holds names,
 * images, the network, the container configuration and the runtime_ops
 * table; docker_task.c runs containers, docker_service.c serves,
 * docker_volume.c keeps volumes, docker_build.c builds images. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "docker_internal.h"
#include "hostport.h"

/* ---- names ---- */

/* Compose's project name rule: lowercase letters, digits, '-' and '_'. */
static char *project_name(const char *name)
{
	struct strbuf sb = STRBUF_INIT;
	for (const char *c = name ? name : ""; *c; c++) {
		int ch = tolower((unsigned char)*c);
		if (isalnum(ch) || ((ch == '-' || ch == '_') && sb.len))
			sb_addc(&sb, (char)ch);
	}
	if (!sb.len)
		sb_adds(&sb, "default");
	return sb_detach(&sb);
}

/* Container names allow [a-zA-Z0-9_.-]; image names only lowercase. */
static char *name_part(const char *s, bool lower)
{
	char *out = xstrdup(s);
	for (char *c = out; *c; c++) {
		if (lower)
			*c = (char)tolower((unsigned char)*c);
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != '.' && *c != '-')
			*c = '_';
		if (lower && *c == '_' && c == out)
			*c = 'x';
	}
	return out;
}

char *docker_container_name(const struct runtime *rt, const struct task_desc *s,
			    const char *run_id)
{
	unsigned int h = 2166136261u;
	for (const char *c = run_id ? run_id : ""; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	cleanup_free char *stage = name_part(s->name, false);
	return xasprintf("%s-%s-%08x", rt->project, stage, h);
}

char *docker_volume_name(const struct runtime *rt, const char *key)
{
	const struct volume *v = runtime_volume_find(rt->volumes, rt->nvolumes, key);
	if (v && v->ext_name)
		return xstrdup(v->ext_name);
	return xasprintf("%s_%s", rt->project, key);
}

char *docker_label_filter(struct runtime *rt, const char *key, const char *value,
			  const char *key2, const char *value2)
{
	cJSON *f = cJSON_CreateObject();
	cJSON *labels = cJSON_AddArrayToObject(f, "label");
	cleanup_free char *l1 = xasprintf("%s=%s", key, value);
	cJSON_AddItemToArray(labels, cJSON_CreateString(l1));
	if (key2) {
		cleanup_free char *l2 = xasprintf("%s=%s", key2, value2);
		cJSON_AddItemToArray(labels, cJSON_CreateString(l2));
	}
	char *text = cJSON_PrintUnformatted(f);
	cJSON_Delete(f);
	char *out = docker_escape(rt->d, text);
	cJSON_free(text);
	return out;
}

/* An image reference with its implicit ":latest" spelled out. */
static char *normalize_ref(const char *ref)
{
	const char *slash = strrchr(ref, '/');
	const char *last = slash ? slash + 1 : ref;
	if (strchr(ref, '@') || strchr(last, ':'))
		return xstrdup(ref);
	return xasprintf("%s:latest", ref);
}

/* The image a stage runs: image:, else the tag its build: produces. */
char *docker_stage_image_ref(const struct runtime *rt, const struct task_desc *s)
{
	if (s->image && *s->image)
		return normalize_ref(s->image);
	cleanup_free char *stage = name_part(s->name, true);
	return xasprintf("%s-%s:latest", rt->project, stage);
}

/* ---- images ---- */

static struct image_entry *image_cached(const struct runtime *rt, const char *ref)
{
	for (size_t i = 0; i < rt->nimages; i++)
		if (strcmp(rt->images[i].ref, ref) == 0)
			return &rt->images[i];
	return NULL;
}

static void image_remember(struct runtime *rt, const char *ref, const char *id, bool built)
{
	struct image_entry *e = image_cached(rt, ref);
	if (!e) {
		rt->images = xrealloc(rt->images, (rt->nimages + 1) * sizeof(*rt->images));
		e = &rt->images[rt->nimages++];
		e->ref = xstrdup(ref);
	} else {
		free(e->id);
	}
	e->id = xstrdup(id);
	e->built = built;
}

/* The local image's ID; 1 when there is no such image. */
static int image_inspect(struct docker *d, const char *ref, char **id_out, struct cp_error *err)
{
	cleanup_free char *path = xasprintf("/images/%s/json", ref);
	cJSON *j = NULL;
	long status = 0;
	if (docker_json(d, "GET", path, NULL, &status, &j, err) < 0) {
		if (status == 404) {
			cp_error_clear(err);
			return 1;
		}
		return -1;
	}
	const char *id = docker_str(j, "Id");
	if (!id) {
		cJSON_Delete(j);
		return cp_error_set(err, EXIT_USAGE, "image \"%s\": the daemon gave no ID", ref);
	}
	*id_out = xstrdup(id);
	cJSON_Delete(j);
	return 0;
}

/* What a build or pull needs, copied out of the runtime and the task (its
 * build stays lent: it points into the loaded project), so that a thread
 * can do it on a client of its own. */
struct image_want {
	char *ref;     /* normalized */
	char *image;   /* image: as written, NULL when none */
	char *builder; /* the stage whose build: makes it, NULL: pulled */
	const struct build *build;
	char *project;
	char *state_dir;
};

static void want_free(struct image_want *w)
{
	free(w->ref);
	free(w->image);
	free(w->builder);
	free(w->project);
	free(w->state_dir);
}

static void want_init(struct image_want *w, const struct runtime *rt, const struct task_desc *s,
		      const char *ref)
{
	*w = (struct image_want){
		.ref = xstrdup(ref),
		.image = s->image && *s->image ? xstrdup(s->image) : NULL,
		.builder = s->build ? xstrdup(s->build_stage ? s->build_stage : s->name) : NULL,
		.build = s->build,
		.project = xstrdup(rt->project),
		.state_dir = rt->state_dir ? xstrdup(rt->state_dir) : NULL,
	};
}

struct pull_ctx {
	FILE *out;
	const char *prefix;
};

static int pull_msg(void *ud, const cJSON *msg)
{
	const struct pull_ctx *pc = ud;
	const char *status = docker_str(msg, "status");
	if (!status || cJSON_GetObjectItemCaseSensitive(msg, "progress"))
		return 0;
	const char *id = docker_str(msg, "id");
	if (pc->out == stderr)
		fflush(stdout); /* keep order with what was printed before */
	fprintf(pc->out, "%s%s%s%s\n", pc->prefix, id ? id : "", id ? ": " : "", status);
	fflush(pc->out);
	return 0;
}

/* Builds or pulls the image `w` wants on client `d`, its progress going to
 * `out` (each line after `prefix`); *built says which. `waker` (may be
 * NULL) ends it at once. */
static int image_make(struct docker *d, const struct image_want *w, FILE *out, const char *prefix,
		      struct docker_waker *waker, char **id_out, bool *built, struct cp_error *err)
{
	*built = w->builder != NULL;
	if (w->builder) {
		/* One label: the classic builder adds a step (a container) for each. */
		struct kvvec labels = {0};
		kvvec_set(&labels, LABEL_PROJECT, w->project);
		int rc = docker_build_image(id_out, d, w->build, w->ref, &labels, w->state_dir, out,
					    prefix, waker, err);
		kvvec_free(&labels);
		if (rc < 0)
			cp_error_prefix(err, "building image \"%s\" for stage \"%s\"", w->ref,
					w->builder);
		return rc;
	}
	cleanup_free char *q = docker_escape(d, w->ref);
	cleanup_free char *path = xasprintf("/images/create?fromImage=%s", q);
	struct docker_req rq = {.method = "POST", .path = path, .idle = DOCKER_IDLE_AFTER_HEADERS,
				.answer_ms = DOCKER_BUILD_ANSWER_MS, .waker = waker};
	struct pull_ctx pc = {.out = out, .prefix = prefix};
	int rc = docker_json_stream(d, &rq, pull_msg, &pc, NULL, err);
	if (rc == 0 && (rc = image_inspect(d, w->ref, id_out, err)) == 1)
		rc = cp_error_set(err, EXIT_USAGE, "the pull gave no image");
	if (rc < 0) {
		cp_error_prefix(
		    err, "image \"%s\" is not available locally and could not be pulled", w->image);
		if (err->code != EXIT_INTERRUPTED) /* Ctrl-C stopped the pull */
			cp_error_recode(err, EXIT_STAGE_FAILED);
	}
	return rc;
}

/* The image entry image_prepare settles on without a build or pull (what
 * it built, or found when nothing builds it), NULL when there is none. */
static const struct image_entry *image_known(const struct runtime *rt, const char *ref,
					     const struct task_desc *s)
{
	const struct image_entry *cached = image_cached(rt, ref);
	return cached && (cached->built || !s->build) ? cached : NULL;
}

static int no_image(const struct task_desc *s, struct cp_error *err)
{
	return cp_error_at(err, EXIT_STAGE_FAILED, &s->mark,
			   "stage \"%s\" has neither image: nor build:, and the docker runtime "
			   "needs one",
			   s->name);
}

int docker_image_prepare(struct runtime *rt, const struct task_desc *s, bool build, char **id_out,
			 struct cp_error *err)
{
	cleanup_free char *ref = docker_stage_image_ref(rt, s);
	/* The executor chose which stage's build: makes this image. */
	const struct image_entry *known = image_known(rt, ref, s);
	const struct image_entry *cached = image_cached(rt, ref);
	if (known || (cached && !build)) {
		*id_out = xstrdup((known ? known : cached)->id);
		return 0;
	}
	if (!s->build && !(s->image && *s->image))
		return no_image(s, err);
	char *id = NULL;
	int rc = 1;
	if (!(s->build && build) && (rc = image_inspect(rt->d, ref, &id, err)) < 0)
		return -1;
	if (rc == 1 && !build) /* status: never build nor pull */
		return 1;
	bool built = false;
	if (rc == 1) {
		struct image_want w;
		want_init(&w, rt, s, ref);
		cleanup_free char *prefix = xasprintf("%s | ", s->name);
		rc = image_make(rt->d, &w, stderr, prefix, NULL, &id, &built, err);
		want_free(&w);
		if (rc < 0)
			return -1;
	}
	image_remember(rt, ref, id, built);
	*id_out = id;
	return 0;
}

/* ---- image jobs: builds and pulls on a thread of their own ---- */

struct image_job {
	struct image_want w;
	struct docker *d; /* the thread's client */
	struct docker_waker *waker;
	atomic_int cancel;
	FILE *out; /* the thread's end of the progress pipe */
	int read_fd;
	pthread_t thread;
	bool thread_started;
	/* The outcome: set by the thread before it closes `out`, or at once. */
	int rc;
	char *id;
	bool built;
	struct cp_error err;
};

static void *image_job_main(void *arg)
{
	struct image_job *j = arg;
	j->rc = image_make(j->d, &j->w, j->out, "", j->waker, &j->id, &j->built, &j->err);
	if (j->rc < 0 && atomic_load(&j->cancel)) {
		cp_error_set(&j->err, EXIT_INTERRUPTED, "%s of image \"%s\": interrupted",
			     j->w.builder ? "the build" : "the pull", j->w.ref);
	}
	fclose(j->out); /* end of file: the job is over */
	j->out = NULL;
	return NULL;
}

static void image_job_free(struct image_job *j)
{
	want_free(&j->w);
	docker_close(j->d);
	docker_waker_free(j->waker);
	if (j->out)
		fclose(j->out);
	if (j->read_fd >= 0)
		close(j->read_fd);
	free(j->id);
	free(j);
}

int docker_image_start(struct runtime *rt, const struct task_desc *s, struct image_job **out,
		       int *fd_out, struct cp_error *err)
{
	cleanup_free char *ref = docker_stage_image_ref(rt, s);
	struct image_job *j = xcalloc(1, sizeof(*j));
	j->read_fd = -1;
	*fd_out = -1;
	const struct image_entry *known = image_cached(rt, ref);
	if (known && known->built) {
		j->id = xstrdup(known->id);
		*out = j;
		return 0;
	}
	if (!s->build && !(s->image && *s->image)) {
		free(j);
		return no_image(s, err);
	}
	if (!s->build) {
		/* Looked up afresh: a stage before may have pulled or built it
		 * through the daemon's socket. */
		int rc = image_inspect(rt->d, ref, &j->id, err);
		if (rc < 0) {
			free(j);
			return -1;
		}
		if (rc == 0) {
			image_remember(rt, ref, j->id, false);
			*out = j;
			return 0;
		}
	}
	want_init(&j->w, rt, s, ref);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		image_job_free(j);
		return cp_error_errno(err, EXIT_USAGE, "creating a pipe");
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	j->read_fd = p[0];
	j->out = fdopen(p[1], "w");
	if (!j->out) {
		close(p[1]);
		image_job_free(j);
		return cp_error_errno(err, EXIT_USAGE, "opening a pipe");
	}
	j->d = docker_clone(rt->d);
	j->waker = docker_waker_new();
	int rc = docker_thread_start(&j->thread, image_job_main, j);
	if (rc != 0) {
		image_job_free(j);
		errno = rc;
		return cp_error_errno(err, EXIT_USAGE, "starting a thread");
	}
	j->thread_started = true;
	*out = j;
	*fd_out = j->read_fd;
	return 0;
}

void docker_image_cancel(struct runtime *rt, struct image_job *j)
{
	(void)rt;
	if (!j->thread_started)
		return;
	atomic_store(&j->cancel, 1);
	docker_wake(j->waker);
}

int docker_image_end(struct runtime *rt, struct image_job *j, char **id_out, struct cp_error *err)
{
	if (j->thread_started) {
		pthread_join(j->thread, NULL);
		if (j->rc == 0)
			image_remember(rt, j->w.ref, j->id, j->built);
	} else {
		j->rc = 0; /* known at once */
	}
	int rc = j->rc < 0 ? -1 : 0;
	if (rc < 0) {
		*err = j->err;
	} else {
		*id_out = j->id;
		j->id = NULL;
	}
	image_job_free(j);
	return rc;
}

bool docker_image_settled(struct runtime *rt, const struct task_desc *s)
{
	cleanup_free char *ref = docker_stage_image_ref(rt, s);
	const struct image_entry *cached = image_cached(rt, ref);
	bool builds = s->build != NULL; /* the executor named its builder */
	if (cached || builds)
		return cached && (cached->built || !builds);
	char *id = NULL;
	struct cp_error e = {0};
	if (image_inspect(rt->d, ref, &id, &e) != 0)
		return false;
	image_remember(rt, ref, id, false);
	free(id);
	return true;
}

char *docker_image_current(struct runtime *rt, const struct task_desc *s)
{
	cleanup_free char *ref = docker_stage_image_ref(rt, s);
	char *id = NULL;
	struct cp_error e = {0};
	return image_inspect(rt->d, ref, &id, &e) == 0 ? id : NULL;
}

/* ---- network ---- */

int docker_network_ensure(struct runtime *rt, struct cp_error *err)
{
	if (rt->network_ready)
		return 0;
	if (!rt->own_network) {
		rt->network_ready = true;
		return 0;
	}
	cleanup_free char *path = xasprintf("/networks/%s", rt->network);
	long status = 0;
	if (docker_json(rt->d, "GET", path, NULL, &status, NULL, err) == 0) {
		rt->network_ready = true;
		return 0;
	}
	if (status != 404)
		return cp_error_prefix(err, "network \"%s\"", rt->network);
	cp_error_clear(err);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "Name", rt->network);
	cJSON_AddBoolToObject(body, "CheckDuplicate", true);
	cJSON_AddStringToObject(body, "Driver", "bridge");
	cJSON *labels = cJSON_AddObjectToObject(body, "Labels");
	cJSON_AddStringToObject(labels, LABEL_PROJECT, rt->project);
	int rc = docker_json(rt->d, "POST", "/networks/create", body, &status, NULL, err);
	cJSON_Delete(body);
	if (rc < 0 && status != 409)
		return cp_error_prefix(err, "creating network \"%s\"", rt->network);
	cp_error_clear(err);
	rt->network_ready = true;
	return 0;
}

/* ---- container configuration ---- */

static cJSON *string_array(const struct strvec *sv)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < sv->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(sv->v[i]));
	return a;
}

static void add_mounts(struct runtime *rt, cJSON *host, const struct task_desc *s)
{
	cJSON *mounts = cJSON_AddArrayToObject(host, "Mounts");
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount *m = &s->mounts[i];
		cJSON *o = cJSON_CreateObject();
		if (m->type == MOUNT_VOLUME) {
			cleanup_free char *name = docker_volume_name(rt, m->source);
			cJSON_AddStringToObject(o, "Type", "volume");
			cJSON_AddStringToObject(o, "Source", name);
		} else if (m->type == MOUNT_BIND) {
			/* As compose's short syntax does: a missing host
			 * directory is created rather than refused. */
			struct stat st;
			if (docker_is_local(rt->d) && stat(m->source, &st) < 0 && errno == ENOENT) {
				struct cp_error ignored = {0};
				fs_mkdir_p(m->source, 0755, &ignored);
			}
			cJSON_AddStringToObject(o, "Type", "bind");
			cJSON_AddStringToObject(o, "Source", m->source);
		} else {
			cJSON_AddStringToObject(o, "Type", "tmpfs");
		}
		cJSON_AddStringToObject(o, "Target", m->target);
		cJSON_AddBoolToObject(o, "ReadOnly", m->read_only);
		cJSON_AddItemToArray(mounts, o);
	}
}

static void add_ports(cJSON *body, cJSON *host, const struct task_desc *s)
{
	if (!s->nports)
		return;
	cJSON *exposed = cJSON_AddObjectToObject(body, "ExposedPorts");
	cJSON *bindings = cJSON_AddObjectToObject(host, "PortBindings");
	for (size_t i = 0; i < s->nports; i++) {
		const struct port *p = &s->ports[i];
		int cn = p->container_port_end > p->container_port
				 ? p->container_port_end - p->container_port + 1
				 : 1;
		int hn = p->host_port_end > p->host_port ? p->host_port_end - p->host_port + 1 : 1;
		for (int k = 0; k < cn; k++) {
			char key[48], hp[32] = "";
			snprintf(key, sizeof(key), "%d/%s", p->container_port + k,
				 p->protocol ? p->protocol : "tcp");
			if (p->host_port && cn == 1 && hn > 1)
				snprintf(hp, sizeof(hp), "%d-%d", p->host_port, p->host_port_end);
			else if (p->host_port)
				snprintf(hp, sizeof(hp), "%d", p->host_port + k);
			if (!cJSON_GetObjectItemCaseSensitive(exposed, key))
				cJSON_AddObjectToObject(exposed, key);
			cJSON *list = cJSON_GetObjectItemCaseSensitive(bindings, key);
			if (!list)
				list = cJSON_AddArrayToObject(bindings, key);
			cJSON *b = cJSON_CreateObject();
			cJSON_AddStringToObject(b, "HostIp",
						p->host_ip ? p->host_ip : CP_DEFAULT_HOST_IP);
			cJSON_AddStringToObject(b, "HostPort", hp);
			cJSON_AddItemToArray(list, b);
		}
	}
}

/* gpus entries as the loader keeps them: "all", a count, "device=a,b". */
static void add_gpus(cJSON *host, const struct task_desc *s)
{
	if (!s->gpus.n)
		return;
	cJSON *reqs = cJSON_AddArrayToObject(host, "DeviceRequests");
	for (size_t i = 0; i < s->gpus.n; i++) {
		const char *g = s->gpus.v[i];
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "Driver", "");
		if (str_has_prefix(g, "device=")) {
			cJSON *ids = cJSON_AddArrayToObject(r, "DeviceIDs");
			cleanup_free char *copy = xstrdup(g + 7);
			char *save = NULL;
			for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
				cJSON_AddItemToArray(ids, cJSON_CreateString(t));
		} else {
			const char *n = str_has_prefix(g, "count=") ? g + 6 : g;
			char *end;
			long count = strtol(n, &end, 10);
			cJSON_AddNumberToObject(r, "Count", *n && !*end ? (double)count : -1);
		}
		cJSON *caps = cJSON_AddArrayToObject(r, "Capabilities");
		cJSON *gpu = cJSON_CreateArray();
		cJSON_AddItemToArray(gpu, cJSON_CreateString("gpu"));
		cJSON_AddItemToArray(caps, gpu);
		cJSON_AddItemToArray(reqs, r);
	}
}

cJSON *docker_container_body(struct runtime *rt, const struct task_spec *ts)
{
	const struct task_desc *s = ts->desc;
	cJSON *b = cJSON_CreateObject();
	/* By ID, the one resolved for its key and record (else the one the
	 * image is known by): a tag moved since runs nothing else. */
	cleanup_free char *image = docker_stage_image_ref(rt, s);
	const struct image_entry *known = image_known(rt, image, s);
	cJSON_AddStringToObject(b, "Image", s->image_id ? s->image_id : known ? known->id : image);
	if (s->has_command)
		cJSON_AddItemToObject(b, "Cmd", string_array(&s->command));
	if (s->has_entrypoint && s->entrypoint.n)
		cJSON_AddItemToObject(b, "Entrypoint", string_array(&s->entrypoint));
	else if (s->has_entrypoint) /* entrypoint: [] clears the image's */
		cJSON_AddItemToObject(b, "Entrypoint", cJSON_CreateStringArray((const char *[]){""}, 1));
	cJSON *env = cJSON_AddArrayToObject(b, "Env");
	for (size_t i = 0; ts->env && i < ts->env->n; i++) {
		if (!ts->env->v[i].value)
			continue;
		cleanup_free char *kv = xasprintf("%s=%s", ts->env->v[i].key, ts->env->v[i].value);
		cJSON_AddItemToArray(env, cJSON_CreateString(kv));
	}
	if (s->working_dir)
		cJSON_AddStringToObject(b, "WorkingDir", s->working_dir);
	if (s->user)
		cJSON_AddStringToObject(b, "User", s->user);
	cJSON *labels = cJSON_AddObjectToObject(b, "Labels");
	for (size_t i = 0; i < s->labels.n; i++)
		cJSON_AddStringToObject(labels, s->labels.v[i].key,
					s->labels.v[i].value ? s->labels.v[i].value : "");
	cJSON_AddStringToObject(labels, LABEL_PROJECT, rt->project);
	cJSON_AddStringToObject(labels, LABEL_STAGE, s->name);
	cJSON_AddStringToObject(labels, LABEL_RUN, ts->run_id ? ts->run_id : "");
	cJSON_AddStringToObject(labels, LABEL_OWNER, rt->owner);
	cJSON_AddBoolToObject(b, "AttachStdin", false);
	cJSON_AddBoolToObject(b, "AttachStdout", true);
	cJSON_AddBoolToObject(b, "AttachStderr", true);
	cJSON_AddBoolToObject(b, "Tty", ts->tty && !ts->detached);
	cJSON_AddBoolToObject(b, "OpenStdin", false);

	cJSON *host = cJSON_AddObjectToObject(b, "HostConfig");
	add_mounts(rt, host, s);
	add_ports(b, host, s);
	add_gpus(host, s);
	docker_compose_body(rt, b, host, s);
	/* network_mode: host or none as compose passes them; otherwise the
	 * project network, where the stage answers to its name and its
	 * container_name, or the default bridge when only jobs run. */
	if (s->network_mode && (!strcmp(s->network_mode, "host") || !strcmp(s->network_mode, "none"))) {
		cJSON_AddStringToObject(host, "NetworkMode", s->network_mode);
		return b;
	}
	if (!rt->own_network) {
		cJSON_AddStringToObject(host, "NetworkMode", "bridge");
		return b;
	}
	cJSON_AddStringToObject(host, "NetworkMode", rt->network);
	cJSON *eps = cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "NetworkingConfig"),
					     "EndpointsConfig");
	cJSON *ep = cJSON_AddObjectToObject(eps, rt->network);
	cJSON *aliases = cJSON_AddArrayToObject(ep, "Aliases");
	cJSON_AddItemToArray(aliases, cJSON_CreateString(s->name));
	if (s->container_name && *s->container_name && strcmp(s->container_name, s->name) != 0)
		cJSON_AddItemToArray(aliases, cJSON_CreateString(s->container_name));
	return b;
}

int docker_container_remove(struct docker *d, const char *id, struct cp_error *err)
{
	cleanup_free char *path = xasprintf("/containers/%s?force=1&v=0", id);
	long status = 0;
	if (docker_json(d, "DELETE", path, NULL, &status, NULL, err) < 0) {
		if (status == 404 || status == 409) { /* gone, or being removed */
			cp_error_clear(err);
			return 0;
		}
		return cp_error_prefix(err, "removing container %.12s", id);
	}
	return 0;
}

/* ---- runtime_ops ---- */

static int engine_rt_open(struct runtime **out, const struct docker_engine *engine,
			  const struct runtime_project *proj, struct cp_error *err)
{
	struct docker *d = NULL;
	if (docker_open_engine(&d, engine, err) < 0)
		return -1;
	struct runtime *rt = xcalloc(1, sizeof(*rt));
	rt->d = d;
	rt->volumes = proj->volumes;
	rt->nvolumes = proj->nvolumes;
	rt->kept_handles = proj->kept_handles;
	rt->sink = proj->sink;
	rt->project = project_name(proj->name);
	rt->network = xasprintf("%s_default", rt->project);
	rt->own_network = proj->network;
	rt->owner = docker_owner_label();
	rt->state_dir = proj->state_dir ? xstrdup(proj->state_dir) : NULL;
	*out = rt;
	return 0;
}

static int docker_rt_open(struct runtime **out, const struct runtime_project *proj,
			  struct cp_error *err)
{
	return engine_rt_open(out, &docker_engine_docker, proj, err);
}

static int podman_rt_open(struct runtime **out, const struct runtime_project *proj,
			  struct cp_error *err)
{
	return engine_rt_open(out, &docker_engine_podman, proj, err);
}

static void docker_rt_close(struct runtime *rt)
{
	if (!rt)
		return;
	docker_tasks_close(rt);
	for (size_t i = 0; i < rt->nimages; i++) {
		free(rt->images[i].ref);
		free(rt->images[i].id);
	}
	free(rt->images);
	free(rt->project);
	free(rt->network);
	free(rt->owner);
	free(rt->state_dir);
	docker_close(rt->d);
	free(rt);
}

/* Published ports are this host's when the daemon is (its unix socket);
 * a remote daemon's refusal comes when the container starts. */
static int docker_port_in_use(struct runtime *rt, const char *host_ip, int port,
			      const char *protocol, char **who)
{
	*who = NULL;
	return docker_is_local(rt->d) ? hostport_in_use(host_ip, port, protocol, who) : 0;
}

/* Podman serves the same API: the same operations, found elsewhere. */
#define ENGINE_OPS \
	.caps = {.images = true, .detached = true, .exec = true, .ahead = true, .attach = true, \
		 .host_volumes = true, .archive_reads = true, .port_alloc = true, \
		 .port_check = true, .logs = true, .top = true, .projects = true, .down = true}, \
	.close = docker_rt_close, \
	.volume_ensure = docker_volume_ensure, \
	.volume_list = docker_volume_list, \
	.volume_remove = docker_volume_remove, \
	.start = docker_task_start, \
	.poll = docker_task_poll, \
	.kill = docker_task_kill, \
	.release = docker_task_release, \
	.prepare = docker_task_prepare, \
	.unprepare = docker_task_unprepare, \
	.image_prepare = docker_image_prepare, \
	.image_start = docker_image_start, \
	.image_cancel = docker_image_cancel, \
	.image_end = docker_image_end, \
	.volume_host_path = docker_volume_host_path, \
	.exec_start = docker_task_exec_start, \
	.exec_end = docker_task_exec_end, \
	.task_handle = docker_task_handle, \
	.handle_alive = docker_handle_alive, \
	.handle_stop = docker_handle_stop, \
	.handle_exec = docker_handle_exec, \
	.handle_kill = docker_handle_kill, \
	.handle_top = docker_handle_top, \
	.projects = docker_projects, \
	.host_port = docker_task_host_port, \
	.port_in_use = docker_port_in_use, \
	.volume_read_tree = docker_volume_read_tree, \
	.handle_logs = docker_handle_logs, \
	.down = docker_rt_down,

const struct runtime_ops runtime_docker = {
	.name = "docker",
	.open = docker_rt_open,
	ENGINE_OPS
};

const struct runtime_ops runtime_podman = {
	.name = "podman",
	.open = podman_rt_open,
	ENGINE_OPS
};
