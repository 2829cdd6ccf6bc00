/* What the local runtime's files share (stages/local.c, local_attach.c). */
#ifndef CPIPE_STAGES_LOCAL_INTERNAL_H
#define CPIPE_STAGES_LOCAL_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <sys/types.h>

#include "runtime.h"

/* The ids a stage runs with. */
struct ids {
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	int ngroups;
	bool set; /* switch to them (root only) */
	char *home;
};

/* Resolves compose's user: ("uid", "uid:gid", "name", "name:group") against
 * the host's passwd and group files, which the sandbox shares. The caller
 * frees out->groups and out->home. */
int local_resolve_user(struct ids *out, const struct task_desc *s, struct cp_error *err);

/* KEY=VALUE strings of `env` into `out`, with PATH and HOME (`home`)
 * defaults where env has none. */
void local_build_env(struct strvec *out, const struct kvvec *env, const char *home);

/* The sandbox init's PID a service handle names: 0, or -1 when it names none. */
int local_handle_pid(pid_t *pid, const cJSON *handle);
/* 1 while the process a handle names (PID and start time) runs, else 0. */
int local_handle_alive(struct runtime *rt, const cJSON *handle, struct cp_error *err);

/* The project directory: where a relative working_dir starts, and the
 * default one; lent. */
const char *local_project_dir(const struct runtime *rt);

/* The runtime members of stages/local_attach.c (see runtime.h). */
int local_handle_exec(struct runtime *rt, const cJSON *handle, const struct task_spec *ts,
		      char *const *argv, int *exit_code, struct cp_error *err);
int local_handle_kill(struct runtime *rt, const cJSON *handle, int sig, struct cp_error *err);
int local_handle_top(struct runtime *rt, const cJSON *handle, cJSON **out, struct cp_error *err);

#endif
