/* Services that outlive a cpipe process: one state file per service under
 * .cpipe/services/<stage>.json, so `ps`, `logs` and `down` work from a new
 * shell. The file is written atomically when the service starts and removed
 * when cpipe stops it. */
#ifndef CPIPE_PIPELINE_SERVICES_H
#define CPIPE_PIPELINE_SERVICES_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "../stages/runtime.h"
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

#endif
