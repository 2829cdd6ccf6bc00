/* The sandbox of the local runtime: namespaces, the new root, the stage's
 * mounts and the init that runs the command. Everything below `init_main`
 * runs in the forked child; it reports failures as one line on a CLOEXEC
 * status pipe ("<code> <message>") and _exits, so that sandbox_start can
 * turn them into an error. EOF without a message means exec succeeded. */
#include "sandbox.h"
#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/cmd_hint.h"
#include "../lib/fs.h"
#include "sandbox_compose.h"
#include "sandbox_overlay.h"

/* Where the old root hangs while the stage's mounts are made (their
 * sources are reached through descriptors opened before the pivot, which
 * must still be attached to this namespace to be bind-mounted). */
#define OLDROOT "/.cpipe-oldroot"
#define HOSTS_TMP "/.cpipe-hosts"
/* Files of secrets and configs given by value, N appended, until mounted. */
#define FILE_TMP "/.cpipe-file-"

/* What a directory of the new root is backed by, to decide how a missing
 * mount target may be created. */
enum region_kind {
	REGION_PRIVATE, /* a tmpfs of this sandbox: creating entries is harmless */
	REGION_HOST,    /* the host filesystem: never create anything there */
	REGION_SHARED,  /* a volume or bind mount: mountpoints are created in it,
			 * as docker does for nested mounts */
};

struct region {
	char *path; /* a real path (no symlinks) inside the new root */
	enum region_kind kind;
};

struct init {
	const struct sandbox_config *cfg;
	int status_fd;
	int out_fd;
	int err_fd;
	struct region *regions;
	size_t nregions;
	size_t cap;
};

/* ---- reporting from the child ------------------------------------------ */

__attribute__((noreturn)) CP_PRINTF(3, 4) static void die_code(struct init *in, int code,
								 const char *fmt, ...)
{
	char msg[1536];
	int n = snprintf(msg, sizeof(msg), "%d ", code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strlen(msg);
	for (size_t i = 0; i < len; i++)
		if (msg[i] == '\n')
			msg[i] = ' ';
	if (in->status_fd < 0) {
		/* A restart: no one waits on the status pipe; the log tells. */
		char line[1600];
		int ln = snprintf(line, sizeof(line), "cpipe: %s\n", msg + n);
		if (write(in->err_fd, line, (size_t)ln) < 0) {
			/* Nobody reads the stage's stderr: nothing to tell. */
		}
	} else if (write(in->status_fd, msg, len) < 0) {
		/* The parent is gone; nothing left to tell. */
	}
	_exit(127);
}

#define die(in, ...) die_code(in, EXIT_STAGE_FAILED, __VA_ARGS__)
#define die_ns(in, ...) die_code(in, EXIT_RUNTIME, __VA_ARGS__)

/* ---- regions ------------------------------------------------------------ */

static struct region *region_exact(struct init *in, const char *path)
{
	for (size_t i = 0; i < in->nregions; i++)
		if (strcmp(in->regions[i].path, path) == 0)
			return &in->regions[i];
	return NULL;
}

static void region_set(struct init *in, const char *path, enum region_kind kind)
{
	struct region *r = region_exact(in, path);
	if (r) {
		r->kind = kind;
		return;
	}
	if (in->nregions == in->cap) {
		in->cap = in->cap ? 2 * in->cap : 64;
		in->regions = xrealloc(in->regions, in->cap * sizeof(*in->regions));
	}
	in->regions[in->nregions++] = (struct region){xstrdup(path), kind};
}

/* The kind of the innermost region holding `path` (a real path). */
static enum region_kind region_lookup(struct init *in, const char *path)
{
	size_t best_len = 0;
	enum region_kind kind = REGION_HOST;
	for (size_t i = 0; i < in->nregions; i++) {
		const char *rp = in->regions[i].path;
		size_t n = strlen(rp);
		bool inside = strcmp(rp, "/") == 0 ||
			      (strncmp(path, rp, n) == 0 && (path[n] == '\0' || path[n] == '/'));
		if (inside && n >= best_len) {
			best_len = n;
			kind = in->regions[i].kind;
		}
	}
	return kind;
}

/* ---- filesystem helpers -------------------------------------------------- */

static int write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t len = strlen(data);
	ssize_t n = write(fd, data, len);
	int saved = errno;
	close(fd);
	errno = saved;
	return n == (ssize_t)len ? 0 : -1;
}

static int make_readonly(const char *path)
{
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
	if (mount_setattr(AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof(attr)) == 0)
		return 0;
	if (errno != ENOSYS)
		return -1;
	/* Before Linux 5.12: a bind remount, keeping the flags a user namespace
	 * may not clear (they are locked on mounts inherited from the host). */
	struct statvfs sv;
	if (statvfs(path, &sv) < 0)
		return -1;
	unsigned long keep = 0;
	if (sv.f_flag & ST_NOSUID)
		keep |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		keep |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		keep |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		keep |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		keep |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		keep |= MS_RELATIME;
	return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL);
}

/* Mounts a tmpfs on the directory `dst` and recreates in it every entry of
 * the directory `src` (as it is before the tmpfs hides it): directories and
 * other files are bind-mounted back (recursively, so mounts below them
 * stay), symlinks are copied. The result looks like `src`, but new entries
 * made directly in `dst` land on the tmpfs. `shown` is dst's path inside
 * the sandbox; for the new root (`is_root`) /proc is left for a fresh
 * procfs and the tmpfs is made unbindable so that the recursive binds of
 * the host (which holds the tmpfs's mountpoint) do not copy it into itself. */
static void shadow_dir(struct init *in, const char *src, const char *dst, const char *shown,
		       bool is_root)
{
	int fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		die(in, "opening %s: %s", shown, strerror(errno));
	DIR *d = fdopendir(fd);
	if (!d)
		die(in, "opening %s: %s", shown, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		die(in, "stat %s: %s", shown, strerror(errno));

	char opts[64];
	snprintf(opts, sizeof(opts), "mode=%o", (unsigned)(st.st_mode & 07777));
	if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
		if (is_root && errno == EPERM)
			die_ns(in, "mounting a tmpfs for the sandbox's root: %s", strerror(errno));
		die(in, "mounting a tmpfs at %s: %s", shown, strerror(errno));
	}
	if (is_root && mount(NULL, dst, NULL, MS_UNBINDABLE, NULL) < 0)
		die(in, "making the sandbox's root unbindable: %s", strerror(errno));
	if (chown(dst, st.st_uid, st.st_gid) < 0) {
		/* Unmapped owner in a user namespace: the tmpfs stays ours. */
	}

	struct region *saved_kinds = NULL;
	size_t nsaved = 0, cap = 0;
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		cleanup_free char *to = path_join(dst, name);
		cleanup_free char *from = xasprintf("/proc/self/fd/%d/%s", dirfd(d), name);
		cleanup_free char *where = path_join(shown, name);
		unsigned char type = de->d_type;
		if (type == DT_UNKNOWN) {
			struct stat est;
			if (fstatat(dirfd(d), name, &est, AT_SYMLINK_NOFOLLOW) < 0)
				die(in, "stat %s: %s", where, strerror(errno));
			type = S_ISDIR(est.st_mode) ? DT_DIR : S_ISLNK(est.st_mode) ? DT_LNK : DT_REG;
		}
		if (type == DT_LNK) {
			char target[PATH_MAX];
			ssize_t n = readlinkat(dirfd(d), name, target, sizeof(target) - 1);
			if (n < 0)
				die(in, "reading symlink %s: %s", where, strerror(errno));
			target[n] = '\0';
			if (symlink(target, to) < 0)
				die(in, "copying symlink %s: %s", where, strerror(errno));
			continue;
		}
		if (type == DT_DIR) {
			if (mkdir(to, 0755) < 0)
				die(in, "creating %s in the sandbox: %s", where, strerror(errno));
		} else {
			int f = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
			if (f < 0)
				die(in, "creating %s in the sandbox: %s", where, strerror(errno));
			close(f);
		}
		if (is_root && strcmp(name, "proc") == 0) {
			/* A procfs of the sandbox's PID namespace goes here. */
		} else if (mount(from, to, NULL, MS_BIND | MS_REC, NULL) < 0) {
			die(in, "bind-mounting %s into the sandbox: %s", where, strerror(errno));
		}
		if (nsaved == cap) {
			cap = cap ? 2 * cap : 32;
			saved_kinds = xrealloc(saved_kinds, cap * sizeof(*saved_kinds));
		}
		/* Each entry keeps the kind it had before the shadow. */
		saved_kinds[nsaved++] =
			(struct region){xstrdup(where), region_lookup(in, where)};
	}
	if (errno)
		die(in, "listing %s: %s", shown, strerror(errno));
	closedir(d);
	for (size_t i = 0; i < nsaved; i++) {
		if (!region_exact(in, saved_kinds[i].path))
			region_set(in, saved_kinds[i].path, saved_kinds[i].kind);
		free(saved_kinds[i].path);
	}
	free(saved_kinds);
	region_set(in, shown, REGION_PRIVATE);
}

/* Makes `path` exist in the new root, as a directory or (!dir) an empty
 * file, for a mount to land on. Runs after the pivot, so symlinks resolve
 * inside the sandbox.
 *
 * A missing target must never be created on the host. Under a tmpfs of the
 * sandbox (e.g. /vol on the root tmpfs) it is a plain mkdir. Under a host
 * directory (e.g. /usr/share/foo) the deepest existing ancestor is shadowed
 * (shadow_dir): a tmpfs on it that binds every existing entry back, so
 * the host's contents, its submounts and device nodes stay usable (which
 * an overlayfs would not give in a user namespace: no submounts, nodev),
 * writes to existing entries still reach them, and only the new entries
 * live on the tmpfs. Under a volume or bind mount the mountpoint is made
 * in it, as docker does, unless it is read-only, which is shadowed too. */
static void ensure_target(struct init *in, const char *path, bool dir, const char *what)
{
	struct stat st;
	if (stat(path, &st) == 0)
		return;
	if (errno != ENOENT)
		die(in, "mount point %s for %s: %s", path, what, strerror(errno));
	cleanup_free char *anc = path_dirname(path);
	while (stat(anc, &st) < 0) {
		if (errno != ENOENT)
			die(in, "mount point %s for %s: %s", anc, what, strerror(errno));
		char *up = path_dirname(anc);
		free(anc);
		anc = up;
	}
	if (!S_ISDIR(st.st_mode))
		die(in, "mount point %s for %s: %s is not a directory", path, what, anc);
	cleanup_free char *real = realpath(anc, NULL);
	if (!real)
		die(in, "mount point %s for %s: %s", anc, what, strerror(errno));
	const char *rest = path + strlen(anc);
	while (*rest == '/')
		rest++;

	enum region_kind kind = region_lookup(in, real);
	if (kind == REGION_HOST)
		shadow_dir(in, real, real, real, false);

	cleanup_free char *cur = xstrdup(real);
	bool retried = kind == REGION_HOST;
	while (*rest) {
		const char *slash = strchr(rest, '/');
		size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
		cleanup_free char *comp = xstrndup(rest, n);
		char *next = path_join(cur, comp);
		bool last = rest[n] == '\0';
		int rc;
		if (last && !dir) {
			int f = open(next, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
			rc = f < 0 ? -1 : close(f);
		} else {
			rc = mkdir(next, 0755);
		}
		if (rc < 0 && errno == EROFS && !retried) {
			retried = true;
			free(next);
			shadow_dir(in, cur, cur, cur, false);
			continue;
		}
		if (rc < 0 && errno != EEXIST)
			die(in, "creating mount point %s for %s: %s", next, what, strerror(errno));
		retried = true;
		free(cur);
		cur = next;
		rest += n;
		while (*rest == '/')
			rest++;
	}
}

/* ---- the init ------------------------------------------------------------ */

static void map_ids(struct init *in)
{
	char buf[64];
	if (write_file("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
		die_ns(in, "writing /proc/self/setgroups: %s", strerror(errno));
	snprintf(buf, sizeof(buf), "%u %u 1\n", (unsigned)in->cfg->uid, (unsigned)in->cfg->uid);
	if (write_file("/proc/self/uid_map", buf) < 0)
		die_ns(in, "writing /proc/self/uid_map: %s", strerror(errno));
	snprintf(buf, sizeof(buf), "%u %u 1\n", (unsigned)in->cfg->gid, (unsigned)in->cfg->gid);
	if (write_file("/proc/self/gid_map", buf) < 0)
		die_ns(in, "writing /proc/self/gid_map: %s", strerror(errno));
}

/* Keeps the three descriptors the init needs, moved above 2, closes every
 * other one inherited from cpipe (log files, other tasks' pipes, its lock)
 * and points 0, 1 and 2 at /dev/null. */
static void tidy_fds(struct init *in)
{
	int *keep[3] = {&in->status_fd, &in->out_fd, &in->err_fd};
	for (int i = 0; i < 3; i++) {
		int fd = fcntl(*keep[i], F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			die(in, "duplicating a descriptor: %s", strerror(errno));
		*keep[i] = fd;
	}
	int v[3] = {in->status_fd, in->out_fd, in->err_fd};
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (v[j] < v[i]) {
				int t = v[i];
				v[i] = v[j];
				v[j] = t;
			}
	unsigned lo = 0;
	for (int i = 0; i < 3; i++) {
		if ((unsigned)v[i] > lo)
			close_range(lo, (unsigned)v[i] - 1, 0);
		lo = (unsigned)v[i] + 1;
	}
	close_range(lo, ~0U, 0);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
}

/* Tells the user of a fallback: a line "0 <sentence>" on the status pipe,
 * which sandbox_start prints once per cpipe (restarts tell no one). */
static void note(struct init *in, const char *sentence)
{
	if (in->status_fd < 0 || !*sentence)
		return;
	cleanup_free char *line = xasprintf("0 %s\n", sentence);
	if (write(in->status_fd, line, strlen(line)) < 0) {
		/* The parent is gone; nothing left to tell. */
	}
}

/* The new root as a throwaway layer over the host (sandbox_overlay.c), or
 * NULL where the kernel refuses one (the note says so): the host's
 * directories, bound, are the root as before. */
static char *layered_root(struct init *in)
{
	struct sbx_layers l;
	char msg[512];
	int rc = sbx_layers_build(&l, in->cfg->root_dir, in->cfg->project_dir, msg, sizeof(msg));
	note(in, l.note);
	if (rc < 0)
		die(in, "%s", msg);
	for (size_t i = 0; i < l.nplaces; i++)
		region_set(in, l.places[i].path, l.places[i].layered ? REGION_PRIVATE : REGION_HOST);
	char *root = l.root;
	l.root = NULL;
	sbx_layers_free(&l);
	return root;
}

static void build_root(struct init *in, int *srcfds, const size_t *order)
{
	const struct sandbox_config *cfg = in->cfg;
	const char *root = cfg->root_dir;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		die_ns(in, "making mounts private in the sandbox: %s", strerror(errno));
	/* read_only: true needs no writable layer. */
	cleanup_free char *layered = cfg->read_only ? NULL : layered_root(in);
	if (layered)
		root = layered;
	else /* No region yet: every host entry is recorded as REGION_HOST. */
		shadow_dir(in, "/", root, "/", true);

	cleanup_free char *proc = path_join(root, "proc");
	if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 &&
	    mount("/proc", proc, NULL, MS_BIND | MS_REC, NULL) < 0)
		die(in, "mounting /proc in the sandbox: %s", strerror(errno));

	cleanup_free char *hosts = path_join(root, &HOSTS_TMP[1]);
	if (write_file(hosts, cfg->hosts) < 0)
		die(in, "writing the sandbox's /etc/hosts: %s", strerror(errno));
	for (size_t i = 0; i < cfg->nfiles; i++) {
		cleanup_free char *f = xasprintf("%s%s%zu", root, FILE_TMP, i);
		if (write_file(f, cfg->files[i].content) < 0 || chmod(f, cfg->files[i].mode) < 0)
			die(in, "writing %s in the sandbox: %s", cfg->files[i].target, strerror(errno));
	}

	/* Sources are opened from the host's view, before the pivot. */
	for (size_t k = 0; k < cfg->nmounts; k++) {
		const struct sandbox_mount *m = &cfg->mounts[order[k]];
		srcfds[k] = -1;
		if (!m->source)
			continue;
		srcfds[k] = open(m->source, O_PATH | O_CLOEXEC);
		if (srcfds[k] < 0)
			die(in, "opening %s for %s: %s",
			    m->type == MOUNT_VOLUME ? "volume" : "bind source", m->what,
			    strerror(errno));
	}

	cleanup_free char *old = path_join(root, &OLDROOT[1]);
	if (mkdir(old, 0700) < 0)
		die(in, "creating %s: %s", old, strerror(errno));
	if (chdir(root) < 0)
		die(in, "entering the sandbox's root: %s", strerror(errno));
	if (syscall(SYS_pivot_root, ".", &OLDROOT[1]) < 0)
		die(in, "pivot_root into the sandbox: %s", strerror(errno));
	if (chdir("/") < 0 || mount(NULL, "/", NULL, MS_PRIVATE, NULL) < 0)
		die(in, "entering the sandbox's root: %s", strerror(errno));
}

static void apply_mounts(struct init *in, const int *srcfds, const size_t *order)
{
	const struct sandbox_config *cfg = in->cfg;
	bool hosts_mounted = false;

	for (size_t k = 0; k < cfg->nmounts; k++) {
		const struct sandbox_mount *m = &cfg->mounts[order[k]];
		hosts_mounted |= strcmp(m->target, "/etc/hosts") == 0;
		bool dir = true;
		struct stat st;
		if (srcfds[k] >= 0 && fstat(srcfds[k], &st) == 0)
			dir = S_ISDIR(st.st_mode);
		cleanup_free char *what =
			xasprintf("%s%s", m->type == MOUNT_VOLUME ? "volume " : "", m->what);
		ensure_target(in, m->target, dir, what);
		int rc;
		if (m->type == MOUNT_TMPFS) {
			cleanup_free char *data = m->options && strstr(m->options, "mode=")
							  ? xstrdup(m->options)
						  : m->options ? xasprintf("mode=1777,%s", m->options)
							       : xstrdup("mode=1777");
			rc = mount("tmpfs", m->target, "tmpfs", MS_NOSUID | MS_NODEV, data);
		} else {
			char from[64];
			snprintf(from, sizeof(from), "/proc/self/fd/%d", srcfds[k]);
			rc = mount(from, m->target, NULL, MS_BIND | MS_REC, NULL);
		}
		if (rc < 0)
			die(in, "mounting %s at %s: %s", what, m->target, strerror(errno));
		cleanup_free char *real = realpath(m->target, NULL);
		region_set(in, real ? real : m->target,
			   m->type == MOUNT_TMPFS ? REGION_PRIVATE : REGION_SHARED);
		if (m->read_only && make_readonly(m->target) < 0)
			die(in, "making %s at %s read-only: %s", what, m->target, strerror(errno));
	}

	for (size_t i = 0; i < cfg->nfiles; i++) {
		const char *target = cfg->files[i].target;
		cleanup_free char *f = xasprintf("%s%zu", FILE_TMP, i);
		ensure_target(in, target, false, target);
		if (mount(f, target, NULL, MS_BIND, NULL) < 0 || make_readonly(target) < 0)
			die(in, "mounting %s: %s", target, strerror(errno));
		unlink(f);
	}

	struct stat st;
	if (stat(cfg->working_dir, &st) < 0 && errno == ENOENT)
		ensure_target(in, cfg->working_dir, true, "working_dir");

	/* Last, because a bind of the unlinked HOSTS_TMP cannot be copied by a
	 * later shadow_dir of /etc. A stage's own /etc/hosts mount wins, as
	 * with docker. */
	if (!hosts_mounted) {
		ensure_target(in, "/etc/hosts", false, "/etc/hosts");
		if (mount(HOSTS_TMP, "/etc/hosts", NULL, MS_BIND, NULL) < 0)
			die(in, "mounting the sandbox's /etc/hosts: %s", strerror(errno));
	}
	unlink(HOSTS_TMP);

	if (umount2(OLDROOT, MNT_DETACH) < 0)
		die(in, "detaching the host's root: %s", strerror(errno));
	rmdir(OLDROOT);
}

static _Noreturn void exec_command(struct init *in)
{
	const struct sandbox_config *cfg = in->cfg;
	setpgid(0, 0);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (dup2(in->out_fd, 1) < 0 || dup2(in->err_fd, 2) < 0)
		die(in, "redirecting output: %s", strerror(errno));
	char msg[256];
	if (sbx_caps_bounding(cfg->cap_drop, msg, sizeof(msg)) < 0)
		die(in, "%s", msg);
	if (cfg->set_ids) {
		if (setgroups(cfg->ngroups, cfg->groups) < 0 || setgid(cfg->gid) < 0 ||
		    setuid(cfg->uid) < 0)
			die(in, "switching to user %u:%u: %s", (unsigned)cfg->uid,
			    (unsigned)cfg->gid, strerror(errno));
	}

	if (chdir(cfg->working_dir) < 0)
		die(in, "working_dir %s: %s", cfg->working_dir, strerror(errno));

	environ = (char **)cfg->envp;
	const char *cmd = cfg->argv[0];
	execvp(cmd, cfg->argv);
	if (errno == ENOENT && !strchr(cmd, '/')) {
		const char *path = getenv("PATH");
		die(in, "command \"%s\" not found in PATH (%s)%s", cmd, path ? path : "",
		    cmd_hint(cmd, path));
	}
	if (errno == ENOENT)
		die(in, "command \"%s\" not found", cmd);
	die(in, "cannot execute \"%s\": %s", cmd, strerror(errno));
}

static pid_t start_command(struct init *in)
{
	pid_t cmd = fork();
	if (cmd < 0)
		die(in, "starting the command: %s", strerror(errno));
	if (cmd == 0)
		exec_command(in);
	return cmd;
}

static pid_t start_again(void *ud)
{
	return start_command(ud);
}

/* Starts the command and supervises it (sbx_supervise); exits with its
 * status. */
static _Noreturn void supervise(struct init *in)
{
	const struct sandbox_config *cfg = in->cfg;
	pid_t cmd = start_command(in);
	close(in->status_fd);
	in->status_fd = -1;
	if (cfg->restart == RESTART_NO) {
		close(in->out_fd);
		close(in->err_fd);
	}
	sbx_supervise(cfg, cmd, start_again, in, in->err_fd);
}

/* network_mode: none gives a namespace of its own with only lo, up (as
 * Docker's "none" network does). */
static int loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (rc == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* PID 1 of the sandbox. Signals were all blocked by the parent before the
 * clone and stay blocked: the init takes them with sigwaitinfo. (A PID 1
 * drops signals it has no handler for unless they are blocked.) */
static _Noreturn void init_main(const struct sandbox_config *cfg, int status_fd)
{
	struct init in = {.cfg = cfg, .status_fd = status_fd, .out_fd = cfg->out_fd,
			  .err_fd = cfg->err_fd};
	if (cfg->join_net && setns(cfg->net_fd, CLONE_NEWNET) < 0)
		die_ns(&in, "entering the project's network namespace: %s", strerror(errno));
	if (cfg->new_net && !cfg->join_net && loopback_up() < 0)
		die_ns(&in, "bringing up lo in the stage's network namespace: %s", strerror(errno));
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	tidy_fds(&in);
	if (cfg->userns)
		map_ids(&in);
	if (!cfg->detached) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* cpipe may have died before that (kill -9 just after the
		 * clone), and no signal comes then: its end of the status pipe
		 * is closed, which the write end reports as POLLERR. */
		struct pollfd pf = {.fd = in.status_fd};
		if (poll(&pf, 1, 0) == 1 && (pf.revents & POLLERR))
			_exit(127);
	}
	prctl(PR_SET_NAME, "cpipe-init");
	setsid();

	size_t *order = xcalloc(cfg->nmounts + 1, sizeof(*order));
	int *srcfds = xcalloc(cfg->nmounts + 1, sizeof(*srcfds));
	for (size_t i = 0; i < cfg->nmounts; i++) {
		size_t j = i;
		size_t len = strlen(cfg->mounts[i].target);
		while (j > 0 && strlen(cfg->mounts[order[j - 1]].target) > len) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	char msg[512];
	if (cfg->pids_limit > 0 && sbx_cgroup_join(cfg->pids_limit, msg, sizeof(msg)) < 0) {
		char line[600];
		int ln = snprintf(line, sizeof(line),
				  "cpipe: warning: pids_limit: %s; the stage runs without a "
				  "process limit\n",
				  msg);
		if (write(in.err_fd, line, (size_t)ln) < 0) {
			/* Nobody reads the stage's stderr: nothing to tell. */
		}
	}
	build_root(&in, srcfds, order);
	apply_mounts(&in, srcfds, order);
	for (size_t k = 0; k < cfg->nmounts; k++)
		if (srcfds[k] >= 0)
			close(srcfds[k]);
	if (cfg->read_only && sbx_read_only(cfg, order, msg, sizeof(msg)) < 0)
		die(&in, "%s", msg);
	/* Last: a low nofile or nproc must not fail the setup above. */
	sbx_rlimits(cfg, in.err_fd);
	supervise(&in);
}

/* The first child of a rootless sandbox in the project's network: enters
 * the network's user namespace (owned by our uid, so allowed) and then
 * its network namespace, creates the init in new mount and PID namespaces
 * as a sibling (a child of cpipe), reports its pid and exits. A user
 * namespace of the sandbox's own could not enter that network. */
static _Noreturn void join_then_clone(const struct sandbox_config *cfg, int status_fd,
				      int pid_fd)
{
	struct init in = {.cfg = cfg, .status_fd = status_fd};
	if (setns(cfg->user_fd, CLONE_NEWUSER) < 0 || setns(cfg->net_fd, CLONE_NEWNET) < 0)
		die_ns(&in, "entering the project's network namespace: %s", strerror(errno));
	struct sandbox_config joined = *cfg;
	joined.userns = false;
	joined.join_net = false;
	unsigned long ipc = cfg->new_ipc ? CLONE_NEWIPC : 0;
	pid_t pid = (pid_t)syscall(SYS_clone,
				   CLONE_PARENT | CLONE_NEWNS | CLONE_NEWPID | ipc | SIGCHLD, NULL,
				   NULL, NULL, NULL);
	if (pid == 0) {
		close(pid_fd);
		init_main(&joined, status_fd);
	}
	if (pid < 0)
		die_ns(&in, "creating the sandbox's namespaces: %s", strerror(errno));
	if (write(pid_fd, &pid, sizeof(pid)) != (ssize_t)sizeof(pid))
		kill(pid, SIGKILL);
	_exit(0);
}

/* ---- the parent side ----------------------------------------------------- */

static bool read_sysctl(const char *name, long *out)
{
	char path[128], buf[32];
	snprintf(path, sizeof(path), "/proc/sys/%s", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	*out = strtol(buf, NULL, 10);
	return true;
}

/* The kernel setting that keeps unprivileged user namespaces off, or NULL. */
static const char *userns_blocker(char *buf, size_t n)
{
	long v;
	if (read_sysctl("kernel/unprivileged_userns_clone", &v) && v == 0) {
		snprintf(buf, n, "kernel.unprivileged_userns_clone is 0 (enable it with "
				 "`sysctl -w kernel.unprivileged_userns_clone=1`)");
		return buf;
	}
	if (read_sysctl("user/max_user_namespaces", &v) && v == 0) {
		snprintf(buf, n, "user.max_user_namespaces is 0 (raise it with "
				 "`sysctl -w user.max_user_namespaces=15000`)");
		return buf;
	}
	if (read_sysctl("kernel/apparmor_restrict_unprivileged_userns", &v) && v != 0) {
		snprintf(buf, n, "kernel.apparmor_restrict_unprivileged_userns is %ld (AppArmor "
				 "denies unprivileged user namespaces; set it to 0 or give cpipe "
				 "an AppArmor profile that allows userns)", v);
		return buf;
	}
	return NULL;
}

static void ns_hint(char *buf, size_t n, bool userns)
{
	char why[256];
	if (!userns)
		snprintf(buf, n, "cpipe runs as root but may not create mount and PID "
				 "namespaces; inside a container it needs CAP_SYS_ADMIN (or "
				 "--privileged); or use --runtime docker");
	else if (userns_blocker(why, sizeof(why)))
		snprintf(buf, n, "%s; or run cpipe as root, or use --runtime docker", why);
	else
		snprintf(buf, n, "check the sysctls kernel.unprivileged_userns_clone, "
				 "user.max_user_namespaces and "
				 "kernel.apparmor_restrict_unprivileged_userns; or run cpipe as "
				 "root, or use --runtime docker");
}

int sandbox_check(bool userns, struct cp_error *err)
{
	char why[256];
	if (!userns || !userns_blocker(why, sizeof(why)))
		return 0;
	return cp_error_set(err, EXIT_RUNTIME,
			    "the local runtime needs unprivileged user namespaces, but %s; or "
			    "run cpipe as root, or use --runtime docker",
			    why);
}

/* Gives the init's notes (the "0 <sentence>" lines before any error) to
 * cfg's sink as warnings, each sentence once per cpipe; returns what
 * follows them. */
static const char *take_notes(const struct sandbox_config *cfg, char *msg)
{
	static char said[4][768];
	static size_t nsaid;
	while (strncmp(msg, "0 ", 2) == 0) {
		char *end = strchr(msg, '\n');
		if (!end)
			break;
		*end = '\0';
		const char *sentence = msg + 2;
		bool seen = false;
		for (size_t i = 0; i < nsaid && !seen; i++)
			seen = strcmp(said[i], sentence) == 0;
		if (!seen) {
			runtime_note(cfg->sink, RUNTIME_WARNING, cfg->stage, "%s", sentence);
			if (nsaid < ARRAY_LEN(said))
				snprintf(said[nsaid++], sizeof(said[0]), "%s", sentence);
		}
		msg = end + 1;
	}
	return msg;
}

int sandbox_start(pid_t *out, const struct sandbox_config *cfg, struct cp_error *err)
{
	int st[2];
	if (pipe2(st, O_CLOEXEC) < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating a pipe");

	/* The child starts with every signal blocked, so that cpipe's handlers
	 * never run in it and no signal slips by before the init waits. */
	sigset_t all, saved;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	bool two_step = cfg->userns && cfg->join_net;
	unsigned long ipc = cfg->new_ipc ? CLONE_NEWIPC : 0;
	unsigned long net = cfg->new_net && !cfg->join_net ? CLONE_NEWNET : 0;
	unsigned long flags = two_step ? 0
				       : CLONE_NEWNS | CLONE_NEWPID | ipc | net |
						 (cfg->userns ? CLONE_NEWUSER : 0);
	int pidp[2] = {-1, -1};
	if (two_step && pipe2(pidp, O_CLOEXEC) < 0) {
		sigprocmask(SIG_SETMASK, &saved, NULL);
		close(st[0]);
		close(st[1]);
		return cp_error_errno(err, EXIT_USAGE, "creating a pipe");
	}
	/* clone without a new stack behaves as fork; the child is PID 1 of the
	 * new PID namespace and our own child, so waitpid works on it. */
	pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		close(st[0]);
		if (two_step)
			join_then_clone(cfg, st[1], pidp[1]);
		init_main(cfg, st[1]);
	}
	int clone_errno = errno;
	if (two_step && pid > 0) {
		/* The intermediate child hands over the init, a child of ours
		 * too (CLONE_PARENT), and exits. */
		close(pidp[1]);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		pid_t init = -1;
		if (read(pidp[0], &init, sizeof(init)) != (ssize_t)sizeof(init))
			init = -1;
		close(pidp[0]);
		pid = init;
		clone_errno = errno;
		if (pid < 0)
			pid = 0; /* the reason is on the status pipe */
	} else if (two_step) {
		close(pidp[0]);
		close(pidp[1]);
	}
	sigprocmask(SIG_SETMASK, &saved, NULL);
	close(st[1]);
	if (pid < 0) {
		close(st[0]);
		errno = clone_errno;
		if (errno == EPERM || errno == EINVAL || errno == ENOSPC || errno == EUSERS) {
			char hint[512];
			ns_hint(hint, sizeof(hint), cfg->userns);
			return cp_error_set(err, EXIT_STAGE_FAILED,
					    "the local runtime cannot create namespaces "
					    "(clone: %s); %s",
					    strerror(clone_errno), hint);
		}
		return cp_error_errno(err, EXIT_STAGE_FAILED, "starting the sandbox");
	}

	char msg[4096]; /* a note (sandbox_overlay.c) and an error */
	size_t len = 0;
	for (;;) {
		ssize_t n = read(st[0], msg + len, sizeof(msg) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(msg) - 1)
			break;
	}
	msg[len] = '\0';
	close(st[0]);
	const char *rest = take_notes(cfg, msg);
	if (!*rest && pid > 0) {
		*out = pid;
		return 0;
	}

	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	char *text = NULL;
	long code = strtol(rest, &text, 10);
	if (*text == ' ')
		text++;
	if (code == EXIT_RUNTIME) {
		char hint[512];
		ns_hint(hint, sizeof(hint), cfg->userns);
		return cp_error_set(err, EXIT_STAGE_FAILED,
				    "the local runtime cannot set up its sandbox: %s; %s", text,
				    hint);
	}
	return cp_error_set(err, EXIT_STAGE_FAILED, "%s", text);
}
