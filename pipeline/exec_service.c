/* What the executor does for long-running services: adopt those already
 * up, check ports before anything starts, follow their logs, gate on
 * health, keep their state files, leave them up or stop them. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "exec_internal.h"
#include "health.h"
#include "services.h"

void service_adopt_running(struct run *r)
{
	if (!r->ops->caps.detached)
		return;
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (sl->state != SLOT_PENDING || !sl->s->service)
			continue;
		cJSON *st = NULL;
		struct cp_error e = {0};
		if (service_state_load(&st, r->o->state_dir, sl->s->name, &e) != 0)
			continue;
		const char *rt_name = cJSON_GetStringValue(cJSON_GetObjectItem(st, "runtime"));
		if (!rt_name || strcmp(rt_name, r->ops->name) != 0) {
			/* Another runtime's service: leave it (and its state) alone. */
			cJSON_Delete(st);
			continue;
		}
		int alive = r->ops->handle_alive(r->rt, cJSON_GetObjectItem(st, "handle"), &e);
		if (alive == 1) {
			sl->state = SLOT_RUNNING;
			sl->external = true;
			sl->healthy = cJSON_IsTrue(cJSON_GetObjectItem(st, "healthy"));
			exec_note(r, "service %s is already up (run %s), using it", sl->s->name,
				  cJSON_GetStringValue(cJSON_GetObjectItem(st, "run")));
		} else if (alive == 0) {
			/* A state file of a service that died since: forget it. */
			service_state_remove(r->o->state_dir, sl->s->name);
		}
		cJSON_Delete(st);
	}
}

int service_check_ports(struct run *r)
{
	const struct stage **list = xcalloc(r->p->nstages + 1, sizeof(*list));
	size_t n = 0;
	for (size_t i = 0; i < r->p->nstages; i++)
		if (r->slots[i].state == SLOT_PENDING && r->slots[i].s->service)
			list[n++] = r->slots[i].s;
	int rc = service_ports_free(r->ops, r->rt, list, n, r->err);
	free(list);
	if (rc < 0)
		r->failed = true;
	return rc;
}

static void save_state(struct run *r, struct slot *sl)
{
	struct cp_error e = {0};
	if (sl->svc_state && service_state_save(r->o->state_dir, sl->svc_state, &e) < 0)
		exec_note(r, "%s: %s", sl->s->name, e.msg);
}

void service_started(struct run *r, struct slot *sl)
{
	sl->tail_fd = open(sl->log_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	const struct healthcheck *h = sl->s->healthcheck;
	sl->healthy = !h || h->disable || (!h->http && h->test.n == 0);
	sl->next_probe_ms = now_ms();
	if (r->ops->caps.detached) {
		cJSON *st = cJSON_CreateObject();
		cJSON_AddStringToObject(st, "stage", sl->s->name);
		cJSON_AddStringToObject(st, "run", r->o->run_id);
		cJSON_AddStringToObject(st, "runtime", r->ops->name);
		cJSON_AddItemToObject(st, "handle", r->ops->task_handle(r->rt, sl->task));
		cJSON_AddItemToObject(st, "ports", service_ports_json(r->ops, r->rt, sl->task));
		long long now = realtime_ms();
		cleanup_free char *iso = iso_time(now);
		cJSON_AddStringToObject(st, "started", iso);
		cJSON_AddNumberToObject(st, "started_ms", (double)now);
		cJSON_AddStringToObject(st, "log", sl->log_path);
		cJSON_AddBoolToObject(st, "healthy", sl->healthy);
		sl->svc_state = st;
		save_state(r, sl);
	}
}

void service_follow_logs(struct run *r)
{
	char buf[65536];
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (sl->tail_fd < 0)
			continue;
		ssize_t n;
		while ((n = read(sl->tail_fd, buf, sizeof(buf))) > 0)
			exec_take_output(r, sl, 0, buf, (size_t)n);
	}
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

void service_probe(struct run *r)
{
	long long now = now_ms();
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (!sl->s->service || sl->state != SLOT_RUNNING || sl->external || sl->healthy || !sl->task ||
		    now < sl->next_probe_ms)
			continue;
		const struct healthcheck *h = sl->s->healthcheck;
		char *why = NULL;
		struct cp_error e = {0};
		int rc = health_probe(&why, r->ops, r->rt, sl->task, h, &e);
		sl->next_probe_ms =
			now_ms() + (h->interval_ms > 0 ? h->interval_ms : CP_HEALTH_INTERVAL_MS);
		if (rc == 0) {
			sl->healthy = true;
			double secs = (double)(now_ms() - sl->started_ms) / 1000.0;
			progress_healthy(r->pr, i, secs);
			exec_note(r, "%s is healthy (%.2fs)", sl->s->name, secs);
			if (sl->svc_state) {
				cJSON_ReplaceItemInObject(sl->svc_state, "healthy", cJSON_CreateTrue());
				save_state(r, sl);
			}
			free(why);
			continue;
		}
		free(sl->last_probe);
		sl->last_probe = rc < 0 ? xstrdup(e.msg) : why;
		if (now - sl->started_ms < h->start_period_ms)
			continue;
		if (++sl->probe_failures >= (h->retries > 0 ? h->retries : CP_HEALTH_RETRIES)) {
			service_follow_logs(r);
			cleanup_free char *tail = service_log_tail(sl->log_path, 10);
			exec_fail(r, "service \"%s\" did not become healthy after %d checks (%s); log: "
				     "%s%s",
				  sl->s->name, sl->probe_failures, sl->last_probe, sl->log_path, tail);
		}
	}
}

void service_exited(struct run *r, struct slot *sl)
{
	service_state_remove(r->o->state_dir, sl->s->name);
	if (sl->tail_fd >= 0) {
		close(sl->tail_fd);
		sl->tail_fd = -1;
	}
}

void service_detach(struct run *r, struct slot *sl)
{
	service_follow_logs(r);
	if (r->o->hooks.after) {
		struct cp_error e = {0};
		r->o->hooks.after(r->o->hooks.ctx, sl->s, 0, &e);
	}
	exec_note(r, "%s keeps running (cpipe ps, cpipe logs %s, cpipe down)", sl->s->name,
		  sl->s->name);
	progress_end(r->pr, (size_t)(sl - r->slots), "kept running", -1,
		     (double)(now_ms() - sl->started_ms) / 1000.0);
	sl->task->keep_running = true;
	r->ops->release(r->rt, sl->task);
	sl->task = NULL;
	sl->state = SLOT_DONE;
	if (sl->tail_fd >= 0) {
		close(sl->tail_fd);
		sl->tail_fd = -1;
	}
}
