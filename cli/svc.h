/* What the service verbs (cli/cmd_services.c, cli/cmd_compose.c) share:
 * the spec, state dir and runtime opened once, and the runtime that
 * started a given service. */
#ifndef CPIPE_CLI_SVC_H
#define CPIPE_CLI_SVC_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "cli.h"

struct svc_ctx {
	struct pipeline *p;
	const struct runtime_ops *ops;
	struct runtime *rt;
	char *state;
	int lock_fd;
};

/* Loads the spec, makes the state dir, takes the project lock when `lock`
 * and opens the runtime. svc_close frees whatever was opened, also after
 * a failure. */
int svc_open(struct svc_ctx *x, struct cli *c, bool lock, struct cp_error *err);
void svc_close(struct svc_ctx *x);

/* The runtime that started the service of state `st` (the one opened, or
 * another opened into *owned, which the caller closes with ops->close),
 * lent through *rt_out. NULL with err set on an unknown runtime. */
const struct runtime_ops *svc_state_ops(struct svc_ctx *x, const cJSON *st,
					struct runtime **rt_out, struct runtime **owned,
					struct cp_error *err);

/* Whether the service of state `st` still runs. */
bool svc_alive(struct svc_ctx *x, const cJSON *st);

#endif
