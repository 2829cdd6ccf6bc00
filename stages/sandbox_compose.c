/* The compose keys of the local runtime's sandbox that act inside it (see
 * sandbox_compose.h). Everything here but sandbox_cgroup_* runs in the
 * sandbox's children. */
#include "sandbox_compose.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "../lib/linux_names.h"
#include "../lib/util.h"

/* ---- pids cgroup ---- */

#define CG_V1 "/sys/fs/cgroup/pids"
#define CG_V2 "/sys/fs/cgroup"

static bool cgroup_base(char *buf, size_t n)
{
	if (access(CG_V1 "/cgroup.procs", F_OK) == 0) {
		snprintf(buf, n, "%s/cpipe", CG_V1);
		return true;
	}
	if (access(CG_V2 "/cgroup.controllers", F_OK) == 0) {
		snprintf(buf, n, "%s/cpipe", CG_V2);
		return true;
	}
	return false;
}

bool sandbox_cgroup_path(char *buf, size_t n, pid_t pid)
{
	char base[128];
	if (!cgroup_base(base, sizeof(base)))
		return false;
	snprintf(buf, n, "%s/%ld", base, (long)pid);
	return true;
}

void sandbox_cgroup_remove(pid_t pid)
{
	char base[128], path[512];
	if (!cgroup_base(base, sizeof(base)))
		return;
	snprintf(path, sizeof(path), "%s/%ld", base, (long)pid);
	rmdir(path);
	/* Cgroups of sandboxes that ended without their cpipe: a cgroup in
	 * use refuses (EBUSY) and stays. */
	DIR *d = opendir(base);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
		rmdir(path);
	}
	if (d)
		closedir(d);
}

static int put(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, data, strlen(data));
	int saved = errno;
	close(fd);
	errno = saved;
	return w == (ssize_t)strlen(data) ? 0 : -1;
}

int sbx_cgroup_join(long limit, char *msg, size_t n)
{
	char self[32] = "";
	ssize_t len = readlink("/proc/self", self, sizeof(self) - 1);
	char base[128], dir[192], file[256], val[32];
	if (len <= 0 || !cgroup_base(base, sizeof(base))) {
		snprintf(msg, n, "no pids cgroup controller is mounted at %s or %s", CG_V1, CG_V2);
		return -1;
	}
	self[len] = '\0';
	bool v2 = strncmp(base, CG_V1, strlen(CG_V1)) != 0;
	if (mkdir(base, 0755) < 0 && errno != EEXIST)
		goto fail_base;
	if (v2) {
		put(CG_V2 "/cgroup.subtree_control", "+pids");
		snprintf(file, sizeof(file), "%s/cgroup.subtree_control", base);
		put(file, "+pids");
	}
	snprintf(dir, sizeof(dir), "%s/%s", base, self);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		goto fail_base;
	snprintf(file, sizeof(file), "%s/pids.max", dir);
	snprintf(val, sizeof(val), "%ld", limit);
	if (put(file, val) < 0) {
		snprintf(msg, n, "writing %s: %s", file, strerror(errno));
		rmdir(dir);
		return -1;
	}
	snprintf(file, sizeof(file), "%s/cgroup.procs", dir);
	if (put(file, "0") < 0) {
		snprintf(msg, n, "joining %s: %s", dir, strerror(errno));
		rmdir(dir);
		return -1;
	}
	return 0;
fail_base:
	snprintf(msg, n, "creating a cgroup in %s: %s", base, strerror(errno));
	return -1;
}

/* ---- ulimits ---- */

void sbx_rlimits(const struct sandbox_config *cfg, int warn_fd)
{
	for (size_t i = 0; i < cfg->nulimits; i++) {
		const struct ulimit *u = &cfg->ulimits[i];
		int res = linux_rlimit_from_name(u->name);
		if (res < 0)
			continue;
		struct rlimit rl = {.rlim_cur = u->soft < 0 ? RLIM_INFINITY : (rlim_t)u->soft,
				    .rlim_max = u->hard < 0 ? RLIM_INFINITY : (rlim_t)u->hard};
		if (setrlimit(res, &rl) == 0)
			continue;
		char line[256];
		int len = snprintf(line, sizeof(line),
				   "cpipe: warning: ulimits: %s cannot be set to %lld:%lld here (%s); "
				   "the stage keeps the limit it inherited\n",
				   u->name, u->soft, u->hard, strerror(errno));
		if (write(warn_fd, line, (size_t)len) < 0) {
			/* Nobody reads the stage's stderr: nothing to tell. */
		}
	}
}

/* ---- read-only root ---- */

static int set_ro(const char *path, bool ro)
{
	struct mount_attr attr = {0};
	if (ro)
		attr.attr_set = MOUNT_ATTR_RDONLY;
	else
		attr.attr_clr = MOUNT_ATTR_RDONLY;
	return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof(attr));
}

int sbx_read_only(const struct sandbox_config *cfg, const size_t *order, char *msg, size_t n)
{
	if (set_ro("/", true) < 0) {
		snprintf(msg, n, "read_only: making the root read-only: %s%s", strerror(errno),
			 errno == ENOSYS ? " (needs Linux 5.12 or later)" : "");
		return -1;
	}
	/* As in a container: /dev and /proc stay as they were. A mount the
	 * host made read-only stays so (EPERM in a user namespace). */
	set_ro("/dev", false);
	set_ro("/proc", false);
	for (size_t k = 0; k < cfg->nmounts; k++) {
		const struct sandbox_mount *m = &cfg->mounts[order[k]];
		if (set_ro(m->target, m->read_only) < 0 && !(errno == EPERM && !m->read_only)) {
			snprintf(msg, n, "read_only: restoring the mode of %s: %s", m->target,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* ---- capabilities ---- */

int sbx_caps_bounding(unsigned long long drop, char *msg, size_t n)
{
	for (int cap = 0; cap <= linux_cap_last(); cap++) {
		if (!(drop & (1ULL << cap)))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
			snprintf(msg, n, "cap_drop: dropping CAP_%s: %s", linux_cap_name(cap),
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* ---- restart ---- */

_Noreturn void sbx_supervise(const struct sandbox_config *cfg, pid_t cmd, pid_t (*start)(void *ud),
			     void *ud, int err_fd)
{
	sigset_t wait_set;
	sigemptyset(&wait_set);
	int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
	for (size_t i = 0; i < ARRAY_LEN(fwd); i++)
		sigaddset(&wait_set, fwd[i]);
	sigaddset(&wait_set, SIGCHLD);
	bool stopping = false;
	int attempts = 0, last = 0;
	long long restart_at = 0; /* 0: the command runs */
	for (;;) {
		siginfo_t si;
		int sig;
		if (restart_at) {
			long long left = restart_at - now_ms();
			struct timespec ts = {left > 0 ? left / 1000 : 0,
					      left > 0 ? (left % 1000) * 1000000 : 0};
			sig = sigtimedwait(&wait_set, &si, &ts);
			if (sig < 0 && errno == EAGAIN) {
				restart_at = 0;
				attempts++;
				char line[160];
				int ln = snprintf(line, sizeof(line),
						  "cpipe: the command exited with %d; restarting it "
						  "(restart %d)\n",
						  last, attempts);
				if (write(err_fd, line, (size_t)ln) < 0) {
					/* Nobody reads the stage's stderr. */
				}
				cmd = start(ud);
				continue;
			}
		} else {
			sig = sigwaitinfo(&wait_set, &si);
		}
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			stopping = true;
			if (restart_at)
				_exit(last);
			int to = sig == SIGTERM && cfg->stop_signal ? cfg->stop_signal : sig;
			if (kill(-cmd, to) < 0)
				kill(cmd, to);
			continue;
		}
		int status;
		pid_t w;
		while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
			if (w != cmd)
				continue;
			last = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
			long delay = sbx_restart_delay(cfg, last, attempts, stopping);
			/* Leaving kills whatever else runs in the namespace. */
			if (delay < 0)
				_exit(last);
			restart_at = now_ms() + delay;
		}
	}
}


long sbx_restart_delay(const struct sandbox_config *cfg, int code, int attempts, bool stopping)
{
	if (stopping || cfg->restart == RESTART_NO)
		return -1;
	if (cfg->restart == RESTART_ON_FAILURE &&
	    (code == 0 || (cfg->restart_max && attempts >= cfg->restart_max)))
		return -1;
	/* Docker's back-off: 100 ms, doubled each time, at most a minute. */
	long delay = 100;
	for (int i = 0; i < attempts && delay < 60000; i++)
		delay *= 2;
	return delay < 60000 ? delay : 60000;
}
