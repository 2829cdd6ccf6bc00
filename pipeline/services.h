/* Services that outlive a cpipe process: one state file per service under
 * .cpipe/services/<stage>.json, so `ps`, `logs` and `down` work from a new
 * shell. The file is written atomically when the service starts and removed
 * when cpipe stops it. */
#ifndef CPIPE_PIPELINE_SERVICES_H
#define CPIPE_PIPELINE_SERVICES_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "../stages/runtime.h"
#include "health.h"
#include "spec.h"

/* {"stage", "run", "runtime", "handle", "ports": [{"host_ip", "host_port",
 *  "container_port", "protocol"}], "started" (ISO time), "started_ms",
 *  "log", "healthy"} */
int service_state_save(const char *state_dir, const cJSON *state, struct cp_error *err);

/* Loads the state of `stage`: 0 and *out set, 1 when there is none. */
int service_state_load(cJSON **out, const char *state_dir, const char *stage,
		       struct cp_error *err);
void service_state_remove(const char *state_dir, const char *stage);

/* Names of every service with a state file, sorted. */
int service_state_names(struct strvec *out, const char *state_dir, struct cp_error *err);

/* The published ports of a running task as state JSON. */
cJSON *service_ports_json(const struct runtime_ops *ops, struct runtime *rt, struct task *t);

/* Checks that every host port the services would publish is free, before
 * anything starts; names the port and, when it can be found, the process
 * holding it. Ports the runtime forwards for the project itself are free. */
int service_ports_free(const struct runtime_ops *ops, struct runtime *rt,
		       const struct stage *const *services, size_t n, struct cp_error *err);

/* ---- a service's life in a run ----
 * The executor holds one struct service per service stage and calls in
 * here to adopt, start, probe, detach and end it; what comes back (a
 * message, a verdict) is the executor's to show. Nothing here calls back
 * into the executor. */

/* What a run's services share: the runtime, where state files go, and
 * the probes in flight. All lent. */
struct service_env {
	const struct runtime_ops *ops;
	struct runtime *rt;
	const char *state_dir;
	const char *run_id;
	struct health_set *probes;
};

struct service {
	const struct stage *s;
	const char *log_path; /* lent */
	struct task *task;    /* lent by the executor while it runs; NULL when adopted */
	bool healthy;         /* passed its health check */
	bool external;        /* was up before this run */
	int tail_fd;          /* the service writes its log itself: we follow it */
	long long started_ms;
	long long next_probe_ms;
	int probe_failures;
	char *last_probe; /* what the last failed probe saw */
	cJSON *state;     /* its state file's content (NULL: none) */
	struct health_probe *probe; /* in flight */
};

void service_init(struct service *sv, const struct stage *s, const char *log_path);
/* Frees what the service holds (a probe in flight is cancelled). */
void service_free(struct service *sv);

/* When a live task of this runtime is named by the service's state file:
 * the service is marked up (external, healthy as the file says) and the
 * id of the run that started it returned (caller owns). NULL otherwise;
 * a state file of a dead task is removed. */
char *service_adopt(struct service *sv, const struct service_env *env);

/* After the service's task `t` started at `started_ms`: follows its log,
 * starts probing, writes its state file. NULL, or what went wrong writing
 * the state (caller owns; the service runs anyway). */
char *service_started(struct service *sv, const struct service_env *env, struct task *t,
		      long long started_ms);

/* Reads up to n bytes the service appended to its log: > 0 bytes, 0 when
 * there is nothing more now. */
size_t service_read_log(struct service *sv, char *buf, size_t n);

enum service_verdict {
	SERVICE_WAITING, /* not healthy yet, probes go on */
	SERVICE_HEALTHY, /* it just passed its check */
	SERVICE_FAILED,  /* out of retries */
};
/* Moves the service's health check on at time `now` (now_ms()): starts a
 * probe when one is due, collects one that ended. Never blocks. With
 * SERVICE_HEALTHY *msg may say the state file could not be updated; with
 * SERVICE_FAILED *msg says why (caller owns both). */
enum service_verdict service_probe(struct service *sv, const struct service_env *env,
				   long long now, char **msg);
/* When service_probe has something to do next (now_ms() clock), 0 when
 * nothing (healthy, or a probe in flight that health_poll wakes for). */
long long service_wake_ms(const struct service *sv);

/* The service ended (or the run stops it): its state file goes, its
 * probe is cancelled, its log no longer followed. */
void service_exited(struct service *sv, const struct service_env *env);
/* The service stays up after cpipe returns: its state file stays, the
 * rest is let go as by service_exited. */
void service_detach(struct service *sv);

/* The last lines of a log, indented, for error messages. Caller owns. */
char *service_log_tail(const char *path, int lines);

#endif
