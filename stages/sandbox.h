/* The local runtime's sandbox: a process in new mount and PID namespaces
 * (plus a user namespace when cpipe is not root) whose first process is a
 * small init from cpipe itself. The init builds a root that mirrors the
 * host filesystem (as root: read-only under a throwaway overlay, see
 * sandbox_overlay.c; else on a tmpfs binding the host's directories),
 * applies the stage's mounts, pivots into it, runs the command and exits
 * with its status. */
#ifndef CPIPE_STAGES_SANDBOX_H
#define CPIPE_STAGES_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../lib/error.h"
#include "task.h"

struct runtime_sink;

struct sandbox_mount {
	enum mount_type type;
	const char *what;   /* for messages: volume name, host path or "tmpfs" */
	const char *source; /* absolute host path; NULL for tmpfs */
	const char *target; /* absolute, normalized path inside the sandbox */
	bool read_only;
	const char *options; /* tmpfs mount data ("size=64m"), NULL = none */
};

/* A file whose content the sandbox writes itself, on a tmpfs of its own,
 * and mounts read-only at `target` (a secret or config from a value). */
struct sandbox_file {
	const char *target;
	const char *content;
	unsigned mode;
};

struct sandbox_config {
	const char *root_dir; /* empty host directory the new root is mounted on */
	const struct sandbox_mount *mounts;
	size_t nmounts;       /* any order: applied shortest target first */
	const char *hosts;    /* the sandbox's /etc/hosts */

	char *const *argv;    /* argv[0] is looked up in envp's PATH */
	char *const *envp;
	const char *working_dir;
	const char *project_dir; /* bound from the host, writable, over the
				  * throwaway layer (sandbox_overlay.c) */

	bool userns;          /* new user namespace mapping uid/gid to themselves */
	uid_t uid;            /* the caller's ids when userns, else the target ones */
	gid_t gid;
	bool set_ids;         /* setgroups/setgid/setuid to groups/gid/uid (root only) */
	const gid_t *groups;
	size_t ngroups;

	int out_fd;           /* write ends for the command's stdout and stderr */
	int err_fd;
	bool detached;        /* outlive the caller (no parent-death signal) */
	/* Where the init's notes go (the runtime's sink), about stage `stage`. */
	const struct runtime_sink *sink;
	const char *stage;

	bool join_net;        /* enter the network namespace net_fd (the project's) */
	bool new_net;         /* network_mode: none: a namespace of its own, loopback only */
	int net_fd;
	int user_fd;          /* with userns: its user namespace, entered instead
			       * of creating one */

	/* Compose keys the sandbox applies (sandbox_compose.c). */
	const struct ulimit *ulimits; /* setrlimit before the command */
	size_t nulimits;
	long pids_limit;              /* a pids cgroup of the sandbox's own, 0 = none */
	bool new_ipc;                 /* an IPC namespace of its own */
	bool read_only;               /* the root read-only; mounts keep their mode */
	unsigned long long cap_drop;  /* capabilities (bit numbers) the command loses */
	int stop_signal;              /* what a SIGTERM to the init becomes, 0 = SIGTERM */
	enum restart_policy restart;  /* the init restarts the command per policy */
	int restart_max;              /* on-failure:N, 0 = no limit */
	const struct sandbox_file *files;
	size_t nfiles;
};

/* The pids cgroup directory of the sandbox whose init is `pid` (the host's
 * pid), into `buf`; false without a usable pids controller. Removing it
 * once the sandbox has exited is the caller's (sandbox_cgroup_remove). */
bool sandbox_cgroup_path(char *buf, size_t n, pid_t pid);
/* Removes the pids cgroup of `pid` and of any other sandbox that is gone;
 * a cgroup still in use stays. */
void sandbox_cgroup_remove(pid_t pid);

/* Starts the sandbox and returns once the command has been exec'd, with
 * *out the pid of the sandbox's init (a child of the caller, to be reaped
 * with waitpid). Setup and exec failures come back as an error carrying
 * the message the sandbox reported; err->code is EXIT_RUNTIME when
 * namespaces are unavailable (with the kernel setting to check),
 * EXIT_STAGE_FAILED otherwise. The caller is single-threaded. */
int sandbox_start(pid_t *out, const struct sandbox_config *cfg, struct cp_error *err);

/* Checks the sysctls that disable unprivileged user namespaces. Fails with
 * EXIT_RUNTIME naming the setting; always succeeds when `userns` is false. */
int sandbox_check(bool userns, struct cp_error *err);

#endif
