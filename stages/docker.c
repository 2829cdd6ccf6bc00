/* The docker runtime: every stage a container on the project's network,
 * driven through the Engine API (docker_api.h). Each started task has one
 * helper thread with its own API client: it attaches to the container
 * before it starts, demultiplexes the log stream into two pipes (the
 * task's out_fd/err_fd read ends), then waits for the exit code, so that
 * poll() never blocks. Everything else runs on the caller's thread. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "docker_internal.h"

#define ATTACH_TIMEOUT_S 30

struct dtask {
	struct task t;      /* what the executor sees; t.priv points back here */
	struct docker *d;   /* the helper thread's own client */
	char *id;           /* container ID */
	int out_w, err_w;   /* pipe write ends; the thread's once it runs */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int attach; /* under mu: 0 pending, 1 attached, -1 failed */
	char attach_err[2200];
	atomic_int cancel;
	atomic_int done; /* exit_code and wait_err are final once set */
	int exit_code;
	char wait_err[2200];
	bool err_reported;
	/* Log demultiplexer: 8-byte frame headers, then `left` payload bytes
	 * for stream `stream` (1 stdout, 2 stderr). */
	unsigned char hdr[8];
	size_t hdr_len;
	size_t left;
	int stream;
};

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

static char *short_run_id(const char *run_id)
{
	unsigned int h = 2166136261u;
	for (const char *c = run_id ? run_id : ""; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	return xasprintf("%08x", h);
}

char *docker_volume_name(const struct runtime *rt, const char *key)
{
	const struct volume *v = pipeline_volume(rt->p, key);
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
static char *stage_image_ref(const struct runtime *rt, const struct stage *s)
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
static int image_inspect(struct runtime *rt, const char *ref, char **id_out, struct cp_error *err)
{
	cleanup_free char *path = xasprintf("/images/%s/json", ref);
	cJSON *j = NULL;
	long status = 0;
	if (docker_json(rt->d, "GET", path, NULL, &status, &j, err) < 0) {
		if (status == 404) {
			cp_error_clear(err);
			return 1;
		}
		return -1;
	}
	const char *id = docker_str(j, "Id");
	if (!id) {
		cJSON_Delete(j);
		return cp_error_set(err, "image \"%s\": the daemon gave no ID", ref);
	}
	*id_out = xstrdup(id);
	cJSON_Delete(j);
	return 0;
}

struct pull_ctx {
	const char *prefix;
};

static int pull_msg(void *ud, const cJSON *msg)
{
	const struct pull_ctx *pc = ud;
	const char *status = docker_str(msg, "status");
	if (!status || cJSON_GetObjectItemCaseSensitive(msg, "progress"))
		return 0;
	const char *id = docker_str(msg, "id");
	printf("%s%s%s%s\n", pc->prefix, id ? id : "", id ? ": " : "", status);
	fflush(stdout);
	return 0;
}

static int image_pull(struct runtime *rt, const char *ref, const char *prefix,
		      struct cp_error *err)
{
	cleanup_free char *q = docker_escape(rt->d, ref);
	cleanup_free char *path = xasprintf("/images/create?fromImage=%s", q);
	struct docker_req rq = {.method = "POST", .path = path};
	struct pull_ctx pc = {.prefix = prefix};
	return docker_json_stream(rt->d, &rq, pull_msg, &pc, NULL, err);
}

static int image_build(struct runtime *rt, const struct stage *s, const char *ref,
		       const char *prefix, char **id_out, struct cp_error *err)
{
	/* One label: the classic builder adds a step (a container) for each. */
	struct kvvec labels = {0};
	kvvec_set(&labels, LABEL_PROJECT, rt->project);
	int rc = docker_build_image(id_out, rt->d, s->build, ref, &labels, rt->state_dir, stdout,
				    prefix, err);
	kvvec_free(&labels);
	if (rc < 0)
		cp_error_prefix(err, "building image \"%s\" for stage \"%s\"", ref, s->name);
	return rc;
}

/* The stage that builds `ref`: s itself, or another with the same image. */
static const struct stage *image_builder(const struct runtime *rt, const struct stage *s,
					 const char *ref)
{
	if (s->build)
		return s;
	for (size_t i = 0; i < rt->p->nstages; i++) {
		const struct stage *o = &rt->p->stages[i];
		if (!o->build)
			continue;
		cleanup_free char *oref = stage_image_ref(rt, o);
		if (strcmp(oref, ref) == 0)
			return o;
	}
	return NULL;
}

static int image_prepare(struct runtime *rt, const struct stage *s, bool build, char **id_out,
			 struct cp_error *err)
{
	cleanup_free char *ref = stage_image_ref(rt, s);
	const struct stage *builder = image_builder(rt, s, ref);
	const struct image_entry *cached = image_cached(rt, ref);
	if (cached && (cached->built || !builder || !build)) {
		*id_out = xstrdup(cached->id);
		return 0;
	}
	if (!s->build && !(s->image && *s->image)) {
		err->code = EXIT_STAGE_FAILED;
		cp_error_at(err, &s->mark, "stage \"%s\" has neither image: nor build:", s->name);
		err->code = EXIT_STAGE_FAILED;
		return -1;
	}
	cleanup_free char *prefix = xasprintf("%s | ", s->name);
	char *id = NULL;
	int rc = 1;
	if (!(builder && build) && (rc = image_inspect(rt, ref, &id, err)) < 0)
		return -1;
	if (rc == 1 && builder) {
		if (image_build(rt, builder, ref, prefix, &id, err) < 0)
			return -1;
	} else if (rc == 1) {
		rc = image_pull(rt, ref, prefix, err);
		if (rc == 0 && (rc = image_inspect(rt, ref, &id, err)) == 1)
			rc = cp_error_set(err, "the pull gave no image");
		if (rc < 0) {
			cp_error_prefix(err, "image \"%s\" is not available locally and could not be "
					     "pulled",
					s->image);
			err->code = EXIT_STAGE_FAILED;
			return -1;
		}
	}
	image_remember(rt, ref, id, builder && rc == 1);
	*id_out = id;
	return 0;
}

/* ---- network ---- */

static int network_ensure(struct runtime *rt, struct cp_error *err)
{
	if (rt->network_ready)
		return 0;
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

static void add_mounts(struct runtime *rt, cJSON *host, const struct stage *s)
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

static void add_ports(cJSON *body, cJSON *host, const struct stage *s)
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
			cJSON_AddStringToObject(b, "HostIp", p->host_ip ? p->host_ip : "127.0.0.1");
			cJSON_AddStringToObject(b, "HostPort", hp);
			cJSON_AddItemToArray(list, b);
		}
	}
}

/* gpus entries as the loader keeps them: "all", a count, "device=a,b". */
static void add_gpus(cJSON *host, const struct stage *s)
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

static cJSON *container_body(struct runtime *rt, const struct task_spec *ts, const char *image)
{
	const struct stage *s = ts->stage;
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "Image", image);
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
	cJSON_AddBoolToObject(b, "AttachStdin", false);
	cJSON_AddBoolToObject(b, "AttachStdout", true);
	cJSON_AddBoolToObject(b, "AttachStderr", true);
	cJSON_AddBoolToObject(b, "Tty", false);
	cJSON_AddBoolToObject(b, "OpenStdin", false);

	cJSON *host = cJSON_AddObjectToObject(b, "HostConfig");
	add_mounts(rt, host, s);
	add_ports(b, host, s);
	add_gpus(host, s);
	cJSON_AddStringToObject(host, "NetworkMode", rt->network);
	cJSON *eps = cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "NetworkingConfig"),
					     "EndpointsConfig");
	cJSON *ep = cJSON_AddObjectToObject(eps, rt->network);
	cJSON *aliases = cJSON_AddArrayToObject(ep, "Aliases");
	cJSON_AddItemToArray(aliases, cJSON_CreateString(s->name));
	return b;
}

int docker_container_remove(struct docker *d, const char *id, struct cp_error *err)
{
	cleanup_free char *path = xasprintf("/containers/%s?force=1&v=0", id);
	long status = 0;
	if (docker_json(d, "DELETE", path, NULL, &status, NULL, err) < 0) {
		if (status == 404)
			return 0;
		return cp_error_prefix(err, "removing container %.12s", id);
	}
	return 0;
}

/* ---- the task thread ---- */

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

static int demux(void *ud, const char *data, size_t n)
{
	struct dtask *dt = ud;
	while (n) {
		if (!dt->left) {
			size_t k = 8 - dt->hdr_len < n ? 8 - dt->hdr_len : n;
			memcpy(dt->hdr + dt->hdr_len, data, k);
			dt->hdr_len += k;
			data += k;
			n -= k;
			if (dt->hdr_len < 8)
				break;
			dt->hdr_len = 0;
			dt->stream = dt->hdr[0];
			dt->left = (size_t)dt->hdr[4] << 24 | (size_t)dt->hdr[5] << 16 |
				   (size_t)dt->hdr[6] << 8 | dt->hdr[7];
			continue;
		}
		size_t k = dt->left < n ? dt->left : n;
		if (dt->stream == 2)
			write_stream(&dt->err_w, data, k);
		else if (dt->stream == 1)
			write_stream(&dt->out_w, data, k);
		data += k;
		n -= k;
		dt->left -= k;
	}
	return 0;
}

static void set_attach(struct dtask *dt, int state, const char *msg)
{
	pthread_mutex_lock(&dt->mu);
	if (dt->attach == 0) {
		dt->attach = state;
		if (msg)
			snprintf(dt->attach_err, sizeof(dt->attach_err), "%s", msg);
		pthread_cond_signal(&dt->cv);
	}
	pthread_mutex_unlock(&dt->mu);
}

static void on_attach_headers(void *ud, long status)
{
	if (status < 400)
		set_attach(ud, 1, NULL);
}

static void *task_main(void *arg)
{
	struct dtask *dt = arg;
	struct cp_error e = {0};
	cleanup_free char *apath =
		xasprintf("/containers/%s/attach?stream=1&stdout=1&stderr=1", dt->id);
	struct docker_req rq = {.method = "POST", .path = apath, .on_data = demux,
				.on_headers = on_attach_headers, .ud = dt, .cancel = &dt->cancel};
	int rc = docker_call(dt->d, &rq, NULL, NULL, &e);
	set_attach(dt, -1, rc < 0 ? e.msg : "the daemon ended the attach stream");
	pthread_mutex_lock(&dt->mu);
	bool attached = dt->attach == 1;
	pthread_mutex_unlock(&dt->mu);

	int code = 125;
	if (attached) {
		cleanup_free char *wpath = xasprintf("/containers/%s/wait?condition=not-running",
						     dt->id);
		struct docker_req wq = {.method = "POST", .path = wpath, .cancel = &dt->cancel};
		cJSON *j = NULL;
		cp_error_clear(&e);
		if (docker_call(dt->d, &wq, NULL, &j, &e) == 0) {
			const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "StatusCode");
			if (cJSON_IsNumber(sc))
				code = sc->valueint;
			else
				snprintf(dt->wait_err, sizeof(dt->wait_err),
					 "waiting for the container: the daemon gave no exit code");
		} else {
			snprintf(dt->wait_err, sizeof(dt->wait_err), "waiting for the container: %s",
				 e.msg);
		}
		cJSON_Delete(j);
	}
	dt->exit_code = code;
	atomic_store(&dt->done, 1);
	/* Closed after `done` so the executor, woken by EOF, sees the exit. */
	if (dt->out_w >= 0)
		close(dt->out_w);
	if (dt->err_w >= 0)
		close(dt->err_w);
	dt->out_w = dt->err_w = -1;
	return NULL;
}

static int wait_attached(struct dtask *dt, struct cp_error *err)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ATTACH_TIMEOUT_S;
	pthread_mutex_lock(&dt->mu);
	while (dt->attach == 0)
		if (pthread_cond_timedwait(&dt->cv, &dt->mu, &deadline) == ETIMEDOUT)
			break;
	int state = dt->attach;
	pthread_mutex_unlock(&dt->mu);
	if (state == 1)
		return 0;
	err->code = EXIT_RUNTIME;
	if (state == 0)
		cp_error_set(err, "attaching to container %.12s: no answer from the daemon in %ds",
			     dt->id, ATTACH_TIMEOUT_S);
	else
		cp_error_set(err, "attaching to container %.12s: %s", dt->id, dt->attach_err);
	err->code = EXIT_STAGE_FAILED;
	return -1;
}

/* Removes the container, stops the thread and frees the task. */
static void task_destroy(struct runtime *rt, struct dtask *dt)
{
	if (dt->id) {
		struct cp_error e = {0};
		if (docker_container_remove(rt->d, dt->id, &e) == 0)
			rt->live--;
		else
			fprintf(stderr, "cpipe: %s\n", e.msg);
	}
	atomic_store(&dt->cancel, 1);
	if (dt->thread_started)
		pthread_join(dt->thread, NULL);
	int fds[4] = {dt->t.out_fd, dt->t.err_fd, dt->out_w, dt->err_w};
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pthread_mutex_destroy(&dt->mu);
	pthread_cond_destroy(&dt->cv);
	docker_close(dt->d);
	free(dt->id);
	free(dt);
}

static int task_pipes(struct dtask *dt, struct cp_error *err)
{
	int outp[2], errp[2];
	if (pipe2(outp, O_CLOEXEC) < 0)
		return cp_error_errno(err, "creating a pipe");
	if (pipe2(errp, O_CLOEXEC) < 0) {
		close(outp[0]);
		close(outp[1]);
		return cp_error_errno(err, "creating a pipe");
	}
	dt->t.out_fd = outp[0];
	dt->t.err_fd = errp[0];
	dt->out_w = outp[1];
	dt->err_w = errp[1];
	fcntl(dt->t.out_fd, F_SETFL, O_NONBLOCK);
	fcntl(dt->t.err_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* ---- runtime_ops ---- */

static int docker_rt_open(struct runtime **out, const struct pipeline *p, const char *state_dir,
			  struct cp_error *err)
{
	struct docker *d = NULL;
	if (docker_open(&d, err) < 0)
		return -1;
	struct runtime *rt = xcalloc(1, sizeof(*rt));
	rt->d = d;
	rt->p = p;
	rt->project = project_name(p->name);
	rt->network = xasprintf("%s_default", rt->project);
	rt->state_dir = state_dir ? xstrdup(state_dir) : NULL;
	*out = rt;
	return 0;
}

/* Removes whatever container of our runs is still there. */
static void sweep(struct runtime *rt)
{
	for (size_t r = 0; r < rt->runs.n; r++) {
		cleanup_free char *f =
			docker_label_filter(rt, LABEL_PROJECT, rt->project, LABEL_RUN, rt->runs.v[r]);
		cleanup_free char *path = xasprintf("/containers/json?all=1&filters=%s", f);
		cJSON *list = NULL;
		struct cp_error e = {0};
		if (docker_json(rt->d, "GET", path, NULL, NULL, &list, &e) < 0) {
			fprintf(stderr, "cpipe: listing leftover containers: %s\n", e.msg);
			continue;
		}
		const cJSON *c;
		cJSON_ArrayForEach(c, list)
		{
			const char *id = docker_str(c, "Id");
			if (id && docker_container_remove(rt->d, id, &e) < 0)
				fprintf(stderr, "cpipe: %s\n", e.msg);
		}
		cJSON_Delete(list);
	}
}

static void docker_rt_close(struct runtime *rt)
{
	if (!rt)
		return;
	if (rt->live > 0)
		sweep(rt);
	for (size_t i = 0; i < rt->nimages; i++) {
		free(rt->images[i].ref);
		free(rt->images[i].id);
	}
	free(rt->images);
	strvec_free(&rt->runs);
	free(rt->project);
	free(rt->network);
	free(rt->state_dir);
	docker_close(rt->d);
	free(rt);
}

static int docker_rt_start(struct runtime *rt, const struct task_spec *ts, struct task **out,
			   struct cp_error *err)
{
	const struct stage *s = ts->stage;
	cleanup_free char *image_id = NULL;
	if (image_prepare(rt, s, true, &image_id, err) < 0 || network_ensure(rt, err) < 0)
		return -1;

	cleanup_free char *ref = stage_image_ref(rt, s);
	cleanup_free char *stage = name_part(s->name, false);
	cleanup_free char *shortid = short_run_id(ts->run_id);
	cleanup_free char *name = xasprintf("%s-%s-%s", rt->project, stage, shortid);
	cleanup_free char *path = xasprintf("/containers/create?name=%s", name);
	cJSON *body = container_body(rt, ts, ref);
	cJSON *resp = NULL;
	int rc = docker_json(rt->d, "POST", path, body, NULL, &resp, err);
	cJSON_Delete(body);
	if (rc < 0) {
		cJSON_Delete(resp);
		return cp_error_prefix(err, "creating container %s", name);
	}
	const char *id = docker_str(resp, "Id");
	if (!id) {
		cJSON_Delete(resp);
		return cp_error_set(err, "creating container %s: the daemon gave no ID", name);
	}
	struct dtask *dt = xcalloc(1, sizeof(*dt));
	dt->id = xstrdup(id);
	cJSON_Delete(resp);
	rt->live++;
	if (ts->run_id && !strvec_contains(&rt->runs, ts->run_id))
		strvec_push(&rt->runs, ts->run_id);
	dt->t.stage = s;
	dt->t.priv = dt;
	dt->t.out_fd = dt->t.err_fd = dt->out_w = dt->err_w = -1;
	pthread_mutex_init(&dt->mu, NULL);
	pthread_cond_init(&dt->cv, NULL);
	atomic_init(&dt->cancel, 0);
	atomic_init(&dt->done, 0);
	dt->d = docker_clone(rt->d);
	if (task_pipes(dt, err) < 0)
		goto fail;

	/* The thread takes no signal: the executor's handler runs here. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int prc = pthread_create(&dt->thread, NULL, task_main, dt);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (prc != 0) {
		errno = prc;
		cp_error_errno(err, "starting a thread");
		goto fail;
	}
	dt->thread_started = true;
	if (wait_attached(dt, err) < 0)
		goto fail;
	cleanup_free char *spath = xasprintf("/containers/%s/start", dt->id);
	if (docker_json(rt->d, "POST", spath, NULL, NULL, NULL, err) < 0) {
		cp_error_prefix(err, "starting container %s", name);
		goto fail;
	}
	*out = &dt->t;
	return 0;
fail:
	task_destroy(rt, dt);
	return -1;
}

static int docker_rt_poll(struct runtime *rt, struct task *t, int *exit_code,
			  struct cp_error *err)
{
	(void)rt;
	struct dtask *dt = t->priv;
	if (!atomic_load(&dt->done))
		return 0;
	if (dt->wait_err[0] && !dt->err_reported) {
		dt->err_reported = true;
		err->code = EXIT_STAGE_FAILED;
		cp_error_set(err, "%s", dt->wait_err);
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
		snprintf(buf, n, "%d", sig);
		return buf;
	}
}

static int docker_rt_kill(struct runtime *rt, struct task *t, int sig, struct cp_error *err)
{
	struct dtask *dt = t->priv;
	struct cp_error local = {0};
	if (!err)
		err = &local;
	if (atomic_load(&dt->done))
		return 0;
	char buf[16];
	cleanup_free char *path =
		xasprintf("/containers/%s/kill?signal=%s", dt->id, signal_name(sig, buf, sizeof(buf)));
	long status = 0;
	if (docker_json(rt->d, "POST", path, NULL, &status, NULL, err) < 0) {
		if (status == 404 || status == 409) { /* gone, or no longer running */
			cp_error_clear(err);
			return 0;
		}
		return -1;
	}
	return 0;
}

static void docker_rt_release(struct runtime *rt, struct task *t)
{
	if (t)
		task_destroy(rt, t->priv);
}

static int docker_rt_image_prepare(struct runtime *rt, const struct stage *s, bool build,
				   char **digest_out, struct cp_error *err)
{
	return image_prepare(rt, s, build, digest_out, err);
}

const struct runtime_ops runtime_docker = {
	.name = "docker",
	.open = docker_rt_open,
	.close = docker_rt_close,
	.volume_ensure = docker_volume_ensure,
	.volume_list = docker_volume_list,
	.volume_remove = docker_volume_remove,
	.start = docker_rt_start,
	.poll = docker_rt_poll,
	.kill = docker_rt_kill,
	.release = docker_rt_release,
	.image_prepare = docker_rt_image_prepare,
	.volume_host_path = docker_volume_host_path,
	.volume_read_tree = docker_volume_read_tree,
};
