/* The exits of the project's containers as the daemon announces them. A
 * container's "die" event carries its exit code as soon as its process is
 * gone; a wait request answers only once the daemon has also released the
 * container's network and mounts, some 70 ms later on Docker and more on
 * Podman. A job's next stage starts on the event. One watcher per
 * runtime: a thread with its own connection following GET /events for the
 * project's containers, keeping the exit codes until their tasks take
 * them. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "docker_internal.h"

/* Exit codes no task took (other processes' containers, services): the
 * oldest go first. */
#define KEEP_MAX 256
#define OPEN_TIMEOUT_S 5

struct exit_seen {
	char *id;
	int code;
};

struct docker_events {
	struct docker *d; /* the thread's client */
	struct docker_waker *waker;
	char *path;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Under mu: */
	int state; /* 0 connecting, 1 streaming, -1 ended */
	struct exit_seen *seen;
	size_t nseen;
};

static void remember(struct docker_events *ev, const char *id, int code)
{
	pthread_mutex_lock(&ev->mu);
	if (ev->nseen == KEEP_MAX) {
		free(ev->seen[0].id);
		memmove(ev->seen, ev->seen + 1, (KEEP_MAX - 1) * sizeof(*ev->seen));
		ev->nseen--;
	}
	ev->seen[ev->nseen++] = (struct exit_seen){.id = xstrdup(id), .code = code};
	pthread_cond_broadcast(&ev->cv);
	pthread_mutex_unlock(&ev->mu);
}

/* One message: {"Type":"container","Action":"die","Actor":{"ID":...,
 * "Attributes":{"exitCode":"0",...}}} on Docker and Podman alike. */
static int message(void *ud, const cJSON *m)
{
	struct docker_events *ev = ud;
	const char *action = docker_str(m, "Action");
	const cJSON *actor = cJSON_GetObjectItemCaseSensitive(m, "Actor");
	const char *id = docker_str(actor, "ID");
	const char *code =
		docker_str(cJSON_GetObjectItemCaseSensitive(actor, "Attributes"), "exitCode");
	char *end = NULL;
	long c = code ? strtol(code, &end, 10) : 0;
	if (action && strcmp(action, "die") == 0 && id && code && *code && !*end)
		remember(ev, id, (int)c);
	return 0;
}

static void set_state(struct docker_events *ev, int state)
{
	pthread_mutex_lock(&ev->mu);
	if (ev->state >= 0)
		ev->state = state;
	pthread_cond_broadcast(&ev->cv);
	pthread_mutex_unlock(&ev->mu);
}

static void on_headers(void *ud, long status)
{
	set_state(ud, status < 400 ? 1 : -1);
}

static void *watch(void *arg)
{
	struct docker_events *ev = arg;
	struct docker_req rq = {.method = "GET", .path = ev->path, .on_headers = on_headers,
				.ud = ev, .waker = ev->waker, .idle = DOCKER_IDLE_ALWAYS};
	struct cp_error e = {0};
	docker_json_stream(ev->d, &rq, message, ev, NULL, &e);
	set_state(ev, -1);
	return NULL;
}

void docker_timespec_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

struct docker_events *docker_events_open(struct runtime *rt)
{
	struct docker_events *ev = xcalloc(1, sizeof(*ev));
	ev->d = docker_clone(rt->d);
	ev->waker = docker_waker_new();
	ev->seen = xcalloc(KEEP_MAX, sizeof(*ev->seen));
	pthread_mutex_init(&ev->mu, NULL);
	pthread_cond_init(&ev->cv, NULL);
	cJSON *f = cJSON_CreateObject();
	cJSON_AddItemToArray(cJSON_AddArrayToObject(f, "type"), cJSON_CreateString("container"));
	cleanup_free char *label = xasprintf("%s=%s", LABEL_PROJECT, rt->project);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(f, "label"), cJSON_CreateString(label));
	char *text = cJSON_PrintUnformatted(f);
	cJSON_Delete(f);
	cleanup_free char *q = docker_escape(rt->d, text);
	cJSON_free(text);
	ev->path = xasprintf("/events?filters=%s", q);

	if (docker_thread_start(&ev->thread, watch, ev) != 0) {
		docker_events_close(ev);
		return NULL;
	}
	ev->started = true;
	struct timespec deadline;
	docker_timespec_in(&deadline, OPEN_TIMEOUT_S * 1000L);
	pthread_mutex_lock(&ev->mu);
	while (ev->state == 0)
		if (pthread_cond_timedwait(&ev->cv, &ev->mu, &deadline) == ETIMEDOUT)
			break;
	int state = ev->state;
	pthread_mutex_unlock(&ev->mu);
	if (state != 1) {
		docker_events_close(ev);
		return NULL;
	}
	return ev;
}

int docker_events_exit(struct docker_events *ev, const char *id, long timeout_ms,
		       const atomic_int *cancel, int *code)
{
	long long deadline = now_ms() + timeout_ms;
	int found = 0;
	pthread_mutex_lock(&ev->mu);
	for (;;) {
		for (size_t i = 0; i < ev->nseen && !found; i++) {
			if (strcmp(ev->seen[i].id, id) != 0)
				continue;
			*code = ev->seen[i].code;
			free(ev->seen[i].id);
			memmove(ev->seen + i, ev->seen + i + 1, (ev->nseen - i - 1) * sizeof(*ev->seen));
			ev->nseen--;
			found = 1;
		}
		long long left = deadline - now_ms();
		if (found || ev->state < 0 || left <= 0 || (cancel && atomic_load(cancel)))
			break;
		/* Slices: a cancel is a flag, not a signal on this condition. */
		struct timespec ts;
		docker_timespec_in(&ts, left < 100 ? left : 100);
		pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
	}
	pthread_mutex_unlock(&ev->mu);
	return found;
}

void docker_events_close(struct docker_events *ev)
{
	if (!ev)
		return;
	docker_wake(ev->waker);
	if (ev->started)
		pthread_join(ev->thread, NULL);
	for (size_t i = 0; i < ev->nseen; i++)
		free(ev->seen[i].id);
	free(ev->seen);
	free(ev->path);
	pthread_mutex_destroy(&ev->mu);
	pthread_cond_destroy(&ev->cv);
	docker_waker_free(ev->waker);
	docker_close(ev->d);
	free(ev);
}
