/* Health checks of services: compose's CMD / CMD-SHELL tests run inside
 * the stage's sandbox or container, and cpipe's http: form probed from the
 * host through the published port with libcurl. */
#ifndef CPIPE_PIPELINE_HEALTH_H
#define CPIPE_PIPELINE_HEALTH_H

#include <poll.h>

#include "../stages/runtime.h"

/* The probes in flight during one run, waited for in the executor's one
 * poll: http probes are transfers of one curl multi handle, command
 * probes the runtime's exec_start descriptors. Nothing here blocks. */
struct health_set;
struct health_probe;
struct health_set *health_set_new(void);
/* Cancels whatever is still in flight (commands killed) and frees. */
void health_set_free(struct health_set *hs);

/* Starts one probe of task `t` by check `h`: 0 and *out (in `hs` until
 * health_result or health_cancel), 1 when the check has nothing to run
 * (healthy), -1 when it cannot start (err). */
int health_start(struct health_probe **out, struct health_set *hs,
		 const struct runtime_ops *ops, struct runtime *rt, struct task *t,
		 const struct healthcheck *h, struct cp_error *err);
/* Non-blocking: 2 while the probe runs; else it is over and freed: 0 =
 * healthy; 1 = not (yet) healthy, *why (caller owns) says what it saw;
 * -1 = the probe could not run (err). A command past its timeout is
 * killed here and counts as not healthy. */
int health_result(struct health_probe *pr, char **why, struct cp_error *err);
/* Stops a probe in flight and frees it; NULL is fine. */
void health_cancel(struct health_probe *pr);
/* When the first command probe times out (now_ms() clock), 0 if none. */
long long health_wake_ms(const struct health_set *hs);
/* poll(2) over `fds` and everything the set's probes wait on at once,
 * then moves the http transfers on. Returns as poll; revents of `fds`
 * are set. */
int health_poll(struct health_set *hs, struct pollfd *fds, size_t n, int timeout_ms);

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
