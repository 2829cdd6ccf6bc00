/* The compose keys the sandbox applies in its child processes (see
 * sandbox_config): pids cgroup, resource limits, a read-only root,
 * capabilities, and the init's supervision of the command (stop_signal,
 * restart). Internal to sandbox.c. Functions
 * that fail return -1 with a one-line reason in msg. */
#ifndef CPIPE_STAGES_SANDBOX_COMPOSE_H
#define CPIPE_STAGES_SANDBOX_COMPOSE_H

#include "sandbox.h"

/* Moves the calling process (the init, before the pivot: the host's /proc
 * and /sys are still there) into a new pids cgroup limited to `limit`. */
int sbx_cgroup_join(long limit, char *msg, size_t n);
/* Applies cfg's ulimits to the calling process (inherited by the
 * command); one that cannot be set is reported on warn_fd, not fatal. */
void sbx_rlimits(const struct sandbox_config *cfg, int warn_fd);
/* Makes every mount of the new root read-only, then gives the writable
 * stage mounts (in `order`, shortest target first), /dev and /proc their
 * write access back. */
int sbx_read_only(const struct sandbox_config *cfg, const size_t *order, char *msg, size_t n);
/* Removes the capabilities of `drop` from the bounding set, before the
 * exec: a root command's permitted and effective sets are then its
 * bounding set, and another user's are empty anyway. */
int sbx_caps_bounding(unsigned long long drop, char *msg, size_t n);
/* Milliseconds to wait before the command, which exited with `code`
 * after `attempts` restarts, starts again; -1 when
 * it does not (no policy, limit reached, or the sandbox is stopping). */
long sbx_restart_delay(const struct sandbox_config *cfg, int code, int attempts, bool stopping);

/* The init's loop once the command `cmd` runs: forwards the stop signals
 * to its process group (a SIGTERM as cfg->stop_signal), reaps, and, as
 * the restart policy says, starts it again with start(ud) after the
 * back-off, telling err_fd; exits with the command's last status once it
 * is stopped or done. */
_Noreturn void sbx_supervise(const struct sandbox_config *cfg, pid_t cmd, pid_t (*start)(void *ud),
			     void *ud, int err_fd);

#endif
