/* Health checks of services: compose's CMD / CMD-SHELL tests run inside
 * the stage's sandbox or container, and cpipe's http: form probed from the
 * host through the published port with libcurl. */
#ifndef CPIPE_PIPELINE_HEALTH_H
#define CPIPE_PIPELINE_HEALTH_H

#include "../stages/runtime.h"

/* One probe. 0 = healthy; 1 = not (yet) healthy, *why (caller owns) says
 * what the probe saw; -1 = the probe could not run (err). */
int health_probe(char **why, const struct runtime_ops *ops, struct runtime *rt, struct task *t,
		 const struct healthcheck *h, struct cp_error *err);

/* The URL to probe: a URL naming a container port the runtime published
 * on another host port is rewritten to that port. Caller owns. */
char *health_url(const struct runtime_ops *ops, struct runtime *rt, struct task *t,
		 const char *url);

/* One probe of a service found through its state file (`cpipe ps`): an
 * http: check against the host ports in `ports` (the state's "ports"),
 * with the check's timeout (at most 5 s). Other checks count as healthy.
 * Returns as health_probe. */
int health_probe_state(char **why, const struct healthcheck *h, const cJSON *ports,
		       struct cp_error *err);

#endif
