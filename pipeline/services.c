#include "services.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/store.h"
#include "../lib/fs.h"

static char *state_path(const char *state_dir, const char *stage)
{
	return xasprintf("%s/services/%s.json", state_dir, stage);
}

int service_state_save(const char *state_dir, const cJSON *state, struct cp_error *err)
{
	const char *stage = cJSON_GetStringValue(cJSON_GetObjectItem(state, "stage"));
	cleanup_free char *dir = path_join(state_dir, "services");
	if (fs_mkdir_p(dir, 0700, err) < 0)
		return -1;
	cleanup_free char *path = state_path(state_dir, stage);
	cJSON *copy = cJSON_Duplicate(state, true);
	int rc = json_write_atomic(path, copy, err);
	cJSON_Delete(copy);
	return rc;
}

int service_state_load(cJSON **out, const char *state_dir, const char *stage,
		       struct cp_error *err)
{
	cleanup_free char *path = state_path(state_dir, stage);
	if (access(path, F_OK) < 0)
		return 1;
	return json_read_file(out, path, 1 << 20, err) < 0 ? -1 : 0;
}

void service_state_remove(const char *state_dir, const char *stage)
{
	cleanup_free char *path = state_path(state_dir, stage);
	unlink(path);
}

int service_state_names(struct strvec *out, const char *state_dir, struct cp_error *err)
{
	cleanup_free char *dir = path_join(state_dir, "services");
	return fs_list_names(out, dir, ".json", err);
}

cJSON *service_ports_json(const struct runtime_ops *ops, struct runtime *rt, struct task *t)
{
	cJSON *arr = cJSON_CreateArray();
	const struct task_desc *s = &t->desc;
	for (size_t i = 0; i < s->nports; i++) {
		const struct port *pt = &s->ports[i];
		for (int k = 0; k <= pt->container_port_end - pt->container_port; k++) {
			int cport = pt->container_port + k;
			int hport = pt->host_port ? pt->host_port + k : 0;
			const char *proto = pt->protocol ? pt->protocol : "tcp";
			int bound = ops->host_port(rt, t, cport, proto);
			if (bound > 0)
				hport = bound;
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "host_ip",
						pt->host_ip ? pt->host_ip : CP_DEFAULT_HOST_IP);
			cJSON_AddNumberToObject(o, "host_port", hport);
			cJSON_AddNumberToObject(o, "container_port", cport);
			cJSON_AddStringToObject(o, "protocol", pt->protocol ? pt->protocol : "tcp");
			cJSON_AddItemToArray(arr, o);
		}
	}
	return arr;
}

int service_ports_free(const struct runtime_ops *ops, struct runtime *rt,
		       const struct stage *const *services, size_t n, struct cp_error *err)
{
	/* Without the capability the runtime's own start says it (a remote
	 * daemon's ports are not this host's). */
	for (size_t i = 0; ops->caps.port_check && i < n; i++) {
		const struct stage *s = services[i];
		for (size_t k = 0; k < s->nports; k++) {
			const struct port *pt = &s->ports[k];
			if (!pt->host_port)
				continue;
			const char *ip = pt->host_ip ? pt->host_ip : CP_DEFAULT_HOST_IP;
			for (int port = pt->host_port; port <= pt->host_port_end; port++) {
				cleanup_free char *who = NULL;
				const char *proto = pt->protocol ? pt->protocol : "tcp";
				if (ops->port_in_use(rt, ip, port, proto, &who) == 0)
					continue;
				return cp_error_at(
				    err, EXIT_STAGE_FAILED, &pt->mark,
				    "service \"%s\": port %d on %s is already in use%s%s; "
				    "stop it or publish another port (nothing was started)",
				    s->name, port, ip, who ? " by " : "", who ? who : "");
			}
		}
	}
	return 0;
}

/* ---- a service's life in a run ---- */

void service_init(struct service *sv, const struct stage *s, const char *log_path)
{
	*sv = (struct service){.s = s, .log_path = log_path, .tail_fd = -1};
}

static void let_go(struct service *sv)
{
	health_cancel(sv->probe);
	sv->probe = NULL;
	if (sv->tail_fd >= 0) {
		close(sv->tail_fd);
		sv->tail_fd = -1;
	}
	sv->task = NULL;
}

void service_free(struct service *sv)
{
	let_go(sv);
	free(sv->last_probe);
	sv->last_probe = NULL;
	cJSON_Delete(sv->state);
	sv->state = NULL;
}

char *service_adopt(struct service *sv, const struct service_env *env)
{
	if (!env->ops->caps.detached)
		return NULL;
	cJSON *st = NULL;
	struct cp_error e = {0};
	if (service_state_load(&st, env->state_dir, sv->s->name, &e) != 0)
		return NULL;
	char *run = NULL;
	const char *rt_name = cJSON_GetStringValue(cJSON_GetObjectItem(st, "runtime"));
	/* Another runtime's service: leave it (and its state) alone. */
	int alive = rt_name && strcmp(rt_name, env->ops->name) == 0
			    ? env->ops->handle_alive(env->rt, cJSON_GetObjectItem(st, "handle"), &e)
			    : -1;
	if (alive == 1) {
		sv->external = true;
		sv->healthy = cJSON_IsTrue(cJSON_GetObjectItem(st, "healthy"));
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(st, "run"));
		run = xstrdup(id ? id : "?");
	} else if (alive == 0) {
		/* A state file of a service that died since: forget it. */
		service_state_remove(env->state_dir, sv->s->name);
	}
	cJSON_Delete(st);
	return run;
}

static char *save_state(struct service *sv, const struct service_env *env)
{
	struct cp_error e = {0};
	if (sv->state && service_state_save(env->state_dir, sv->state, &e) < 0)
		return xasprintf("%s: %s", sv->s->name, e.msg);
	return NULL;
}

char *service_started(struct service *sv, const struct service_env *env, struct task *t,
		      long long started_ms)
{
	sv->task = t;
	sv->started_ms = started_ms;
	sv->tail_fd = open(sv->log_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	const struct healthcheck *h = sv->s->healthcheck;
	sv->healthy = !h || h->disable || (!h->http && h->test.n == 0);
	sv->next_probe_ms = started_ms;
	if (!env->ops->caps.detached)
		return NULL;
	cJSON *st = cJSON_CreateObject();
	cJSON_AddStringToObject(st, "stage", sv->s->name);
	cJSON_AddStringToObject(st, "run", env->run_id);
	cJSON_AddStringToObject(st, "runtime", env->ops->name);
	cJSON_AddItemToObject(st, "handle", env->ops->task_handle(env->rt, t));
	cJSON_AddItemToObject(st, "ports", service_ports_json(env->ops, env->rt, t));
	long long now = realtime_ms();
	cleanup_free char *iso = iso_time(now);
	cJSON_AddStringToObject(st, "started", iso);
	cJSON_AddNumberToObject(st, "started_ms", (double)now);
	cJSON_AddStringToObject(st, "log", sv->log_path);
	cJSON_AddBoolToObject(st, "healthy", sv->healthy);
	sv->state = st;
	return save_state(sv, env);
}

size_t service_read_log(struct service *sv, char *buf, size_t n)
{
	if (sv->tail_fd < 0)
		return 0;
	ssize_t got;
	while ((got = read(sv->tail_fd, buf, n)) < 0 && errno == EINTR)
		;
	return got > 0 ? (size_t)got : 0;
}

enum service_verdict service_probe(struct service *sv, const struct service_env *env,
				   long long now, char **msg)
{
	*msg = NULL;
	if (sv->healthy || sv->external || !sv->task)
		return SERVICE_WAITING;
	const struct healthcheck *h = sv->s->healthcheck;
	char *why = NULL;
	struct cp_error e = {0};
	int rc;
	if (sv->probe) {
		rc = health_result(sv->probe, &why, &e);
		if (rc == 2)
			return SERVICE_WAITING;
		sv->probe = NULL;
	} else {
		if (now < sv->next_probe_ms)
			return SERVICE_WAITING;
		rc = health_start(&sv->probe, env->probes, env->ops, env->rt, sv->task, h, &e);
		if (rc == 0)
			return SERVICE_WAITING;
		sv->probe = NULL;
		rc = rc == 1 ? 0 : -1;
	}
	/* The interval runs from the end of a probe, as compose's does. */
	sv->next_probe_ms = now_ms() + (h->interval_ms > 0 ? h->interval_ms : CP_HEALTH_INTERVAL_MS);
	if (rc == 0) {
		sv->healthy = true;
		free(why);
		if (!sv->state)
			return SERVICE_HEALTHY;
		cJSON_ReplaceItemInObject(sv->state, "healthy", cJSON_CreateTrue());
		*msg = save_state(sv, env);
		return SERVICE_HEALTHY;
	}
	free(sv->last_probe);
	sv->last_probe = rc < 0 ? xstrdup(e.msg) : why;
	if (now - sv->started_ms < h->start_period_ms)
		return SERVICE_WAITING;
	if (++sv->probe_failures < (h->retries > 0 ? h->retries : CP_HEALTH_RETRIES))
		return SERVICE_WAITING;
	*msg = xasprintf("service \"%s\" did not become healthy after %d checks (%s)",
			 sv->s->name, sv->probe_failures, sv->last_probe);
	return SERVICE_FAILED;
}

long long service_wake_ms(const struct service *sv)
{
	if (sv->healthy || sv->external || !sv->task || sv->probe)
		return 0;
	return sv->next_probe_ms;
}

void service_exited(struct service *sv, const struct service_env *env)
{
	service_state_remove(env->state_dir, sv->s->name);
	let_go(sv);
}

void service_detach(struct service *sv)
{
	let_go(sv);
}

char *service_log_tail(const char *path, int lines)
{
	cleanup_free char *text = NULL;
	size_t len = 0;
	struct cp_error e = {0};
	if (fs_read_file(&text, &len, path, 0, &e) < 0 || len == 0)
		return xstrdup("");
	size_t start = len;
	if (start && text[start - 1] == '\n')
		start--;
	for (int k = 0; k < lines && start > 0; start--)
		if (text[start - 1] == '\n' && ++k == lines)
			break;
	struct strbuf sb = STRBUF_INIT;
	sb_addf(&sb, "\nlast log lines:");
	for (char *line = strtok(text + start, "\n"); line; line = strtok(NULL, "\n"))
		sb_addf(&sb, "\n  %s", line);
	return sb_detach(&sb);
}
