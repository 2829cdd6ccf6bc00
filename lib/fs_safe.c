/* Path safety. cpipe often runs as root and reads what stages left in
 * volumes: a path inside a volume is resolved inside it (openat2
 * RESOLVE_BENEATH), so a symlink a stage planted cannot lead cpipe onto the
 * host. And the state directory must not be reached through a symlink a
 * checkout carried, or cpipe would write, mount and delete elsewhere. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs.h"

static atomic_int openat2_missing;

/* Opens `rel` one component at a time, never following a symlink. */
static int open_by_components(int rootfd, const char *rel, int flags)
{
	cleanup_free char *copy = xstrdup(rel);
	int dfd = rootfd;
	char *p = copy;
	for (char *slash; (slash = strchr(p, '/')); p = slash + 1) {
		*slash = '\0';
		if (!*p)
			continue;
		int nfd = openat(dfd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		if (dfd != rootfd)
			close(dfd);
		if (nfd < 0) {
			errno = e;
			return -1;
		}
		dfd = nfd;
	}
	int fd = openat(dfd, *p ? p : ".", flags | O_NOFOLLOW);
	int e = errno;
	if (dfd != rootfd)
		close(dfd);
	errno = e;
	return fd;
}

int fs_openat_beneath(int dirfd, const char *rel, int flags, bool symlinks)
{
	while (*rel == '/')
		rel++;
	if (!*rel)
		rel = ".";
	if (!atomic_load_explicit(&openat2_missing, memory_order_relaxed)) {
		struct open_how how = {
			.flags = (uint64_t)flags,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
				   (symlinks ? 0 : RESOLVE_NO_SYMLINKS),
		};
		for (int tries = 0; tries < 8; tries++) {
			long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
			if (fd >= 0)
				return (int)fd;
			if (errno != EINTR && errno != EAGAIN)
				break;
		}
		if (errno == ENOSYS)
			atomic_store(&openat2_missing, 1);
		/* ENOSYS, or EPERM from a seccomp filter that does not know
		 * openat2: walk the components instead, refusing every link. */
		if (errno != ENOSYS && errno != EPERM && errno != EAGAIN && errno != EINTR)
			return -1;
	}
	return open_by_components(dirfd, rel, flags);
}

/* After `rel` failed to resolve inside `root` with EXDEV or ELOOP: finds
 * the symlink on the way that leads out and says so. */
static int escape_error(struct cp_error *err, int rootfd, const char *root, const char *rel)
{
	cleanup_free char *copy = xstrdup(rel);
	for (char *p = copy;;) {
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		char target[PATH_MAX];
		ssize_t n = readlinkat(rootfd, copy, target, sizeof(target) - 1);
		if (n >= 0) {
			target[n] = '\0';
			int fd = fs_openat_beneath(rootfd, copy, O_PATH | O_CLOEXEC, true);
			if (fd < 0)
				return cp_error_set(
				    err, EXIT_USAGE,
				    "%s/%s: the symlink %s/%s (-> %s) leads outside "
				    "%s; cpipe follows links only while they stay "
				    "inside it (use a relative link within it)",
				    root, rel, root, copy, target, root);
			close(fd);
		}
		if (!slash)
			break;
		*slash = '/';
		p = slash + 1;
	}
	errno = ELOOP;
	return cp_error_errno(err, EXIT_USAGE, "%s/%s", root, rel);
}

int fs_resolve_beneath(int *dirfd_out, char **name_out, const char *root, const char *path,
		       struct cp_error *err)
{
	cleanup_free char *rooted = xasprintf("/%s", path);
	cleanup_free char *norm = path_normalize(rooted);
	if (!norm)
		return cp_error_set(err, EXIT_USAGE, "%s: the path %s climbs out of %s", root, path,
				    root);
	cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return errno == ENOENT ? 1 : cp_error_errno(err, EXIT_USAGE, "opening %s", root);
	const char *rel = norm + 1;
	if (!*rel) {
		*dirfd_out = rootfd;
		rootfd = -1;
		*name_out = xstrdup(".");
		return 0;
	}
	const char *slash = strrchr(rel, '/');
	cleanup_free char *parent = slash ? xstrndup(rel, (size_t)(slash - rel)) : xstrdup(".");
	int pfd = fs_openat_beneath(rootfd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC, true);
	if (pfd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 1;
		if (errno == EXDEV || errno == ELOOP)
			return escape_error(err, rootfd, root, rel);
		return cp_error_errno(err, EXIT_USAGE, "%s/%s", root, parent);
	}
	*dirfd_out = pfd;
	*name_out = xstrdup(slash ? slash + 1 : rel);
	return 0;
}

int fs_lstat_beneath(struct stat *st, const char *root, const char *path, struct cp_error *err)
{
	int dfd;
	cleanup_free char *name = NULL;
	int rc = fs_resolve_beneath(&dfd, &name, root, path, err);
	if (rc != 0)
		return rc;
	rc = fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW);
	int e = errno;
	close(dfd);
	if (rc == 0)
		return 0;
	if (e == ENOENT)
		return 1;
	errno = e;
	return cp_error_errno(err, EXIT_USAGE, "%s%s", root, path);
}

int fs_read_file_beneath(char **out, size_t *len_out, const char *root, const char *path,
			 size_t max, struct cp_error *err)
{
	cleanup_free char *shown = xasprintf("%s%s", root, path);
	cleanup_close int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return cp_error_errno(err, EXIT_USAGE, "opening %s", root);
	/* O_NONBLOCK: a fifo must not wait for a writer. */
	cleanup_close int fd =
		fs_openat_beneath(rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, true);
	if (fd < 0) {
		if (errno == EXDEV || errno == ELOOP) {
			while (*path == '/')
				path++;
			return escape_error(err, rootfd, root, path);
		}
		return cp_error_errno(err, EXIT_USAGE, "opening %s", shown);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cp_error_errno(err, EXIT_USAGE, "reading %s", shown);
	if (!S_ISREG(st.st_mode))
		return cp_error_set(err, EXIT_USAGE, "%s is not a regular file", shown);
	return fs_read_fd(out, len_out, fd, shown, max, err);
}

/* ---- the state directory ---- */

/* What cpipe keeps in the state directory: every one is created, written,
 * mounted or removed by cpipe, so none may be a symlink. */
static const char *const state_entries[] = {"volumes", "run",      "runs", "logs",
					    "cache",   "services", "lock", ".gitignore"};

static int refuse_link(struct cp_error *err, const char *path)
{
	char target[PATH_MAX];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	return cp_error_set(err, EXIT_USAGE,
			    "%s is a symlink (-> %s); cpipe keeps its state there and will not "
			    "follow it: remove the link (rm %s) and run again",
			    path, target, path);
}

/* Refuses a symlink at `path`; a missing entry is fine. */
static int check_entry(const char *path, struct cp_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : cp_error_errno(err, EXIT_USAGE, "%s", path);
	return S_ISLNK(st.st_mode) ? refuse_link(err, path) : 0;
}

int fs_state_dir_check(const char *dir, struct cp_error *err)
{
	if (check_entry(dir, err) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_LEN(state_entries); i++) {
		cleanup_free char *p = path_join(dir, state_entries[i]);
		if (check_entry(p, err) < 0)
			return -1;
	}
	/* Each volume directory is mounted into stages and removed by
	 * `down -v`: a link there would hand a stage, or rm, another dir. */
	cleanup_free char *vols = path_join(dir, "volumes");
	struct strvec names = {0};
	int rc = fs_list_names(&names, vols, "", err);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		if (strcmp(names.v[i], ".") == 0 || strcmp(names.v[i], "..") == 0)
			continue;
		cleanup_free char *p = path_join(vols, names.v[i]);
		rc = check_entry(p, err);
	}
	strvec_free(&names);
	return rc;
}
