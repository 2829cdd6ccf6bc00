/* What cpipe assumes where the spec, the command line and the environment
 * say nothing: one table for every layer (the loader fills the spec model
 * with these, the executor and the runtimes fall back on them), and the
 * version, defined once. */
#ifndef CPIPE_LIB_DEFAULTS_H
#define CPIPE_LIB_DEFAULTS_H

/* cpipe's version: `cpipe version`, run records, attestations, man page. */
#define CPIPE_VERSION "0.1.0"

/* stop_grace_period: from the stop signal to SIGKILL. */
#define CP_STOP_GRACE_MS 10000L
/* After SIGKILL, how long a stop waits for the task to be gone. */
#define CP_KILL_WAIT_MS 5000L

/* healthcheck: interval, timeout and retries (compose's start_period: 0). */
#define CP_HEALTH_INTERVAL_MS 1000L
#define CP_HEALTH_TIMEOUT_MS 5000L
#define CP_HEALTH_RETRIES 30
/* An http: probe never waits longer than this for an answer. */
#define CP_HEALTH_HTTP_TIMEOUT_MS 5000L

/* A command run inside a task (a CMD health check) with no timeout given. */
#define CP_EXEC_TIMEOUT_MS 30000L

/* The host address a port is published on when the spec names none. */
#define CP_DEFAULT_HOST_IP "127.0.0.1"

#endif
