#include "fs.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void fs_sync_dir(const char *path)
{
	cleanup_free char *dir = path_dirname(path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* How much of a write_atomic reaches the disk before it returns. */
enum sync_level {
	SYNC_NONE,
	SYNC_DATA, /* the new content, before it replaces the old */
	SYNC_ALL,  /* and the rename, by an fsync of the directory */
};

static int write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			enum sync_level sync, struct cp_error *err)
{
	cleanup_free char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	/* O_EXCL | O_NOFOLLOW: never write through a link planted under the
	 * temporary's name; one left by a killed process of our pid goes. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating %s", tmp);
	if (fs_write_all(fd, data, len) < 0 || (sync >= SYNC_DATA && fsync(fd) < 0)) {
		cp_error_errno(err, EXIT_USAGE, "writing %s", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) < 0) {
		cp_error_errno(err, EXIT_USAGE, "closing %s", tmp);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		cp_error_errno(err, EXIT_USAGE, "renaming %s to %s", tmp, path);
		unlink(tmp);
		return -1;
	}
	if (sync == SYNC_ALL)
		fs_sync_dir(path);
	return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		    struct cp_error *err)
{
	return write_atomic(path, data, len, mode, SYNC_ALL, err);
}

int fs_write_atomic_fast(const char *path, const void *data, size_t len, mode_t mode,
			 struct cp_error *err)
{
	return write_atomic(path, data, len, mode, SYNC_NONE, err);
}

int fs_write_atomic_data(const char *path, const void *data, size_t len, mode_t mode,
			 struct cp_error *err)
{
	return write_atomic(path, data, len, mode, SYNC_DATA, err);
}

int fs_read_fd(char **out, size_t *len_out, int fd, const char *shown, size_t max,
	       struct cp_error *err)
{
	struct strbuf sb = STRBUF_INIT;
	sb.max = max;
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sb_free(&sb);
			return cp_error_errno(err, EXIT_USAGE, "reading %s", shown);
		}
		if (n == 0)
			break;
		if (sb_add(&sb, buf, (size_t)n) < 0) {
			sb_free(&sb);
			return cp_error_set(err, EXIT_USAGE, "%s is larger than %zu bytes", shown,
					    max);
		}
	}
	if (len_out)
		*len_out = sb.len;
	*out = sb_detach(&sb);
	return 0;
}

int fs_read_file(char **out, size_t *len_out, const char *path, size_t max,
		 struct cp_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cp_error_errno(err, EXIT_USAGE, "opening %s", path);
	return fs_read_fd(out, len_out, fd, path, max, err);
}

int fs_mkdir_p(const char *path, mode_t mode, struct cp_error *err)
{
	cleanup_free char *p = xstrdup(path);
	size_t len = strlen(p);
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char saved = p[i];
		p[i] = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return cp_error_errno(err, EXIT_USAGE, "creating directory %s", p);
		p[i] = saved;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating directory %s", path);
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return cp_error_errno(err, EXIT_USAGE, "creating directory %s", path);
	}
	return 0;
}

static int rm_rf_at(int parent, const char *name, dev_t dev, struct cp_error *err,
		    const char *shown)
{
	struct stat st;
	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return cp_error_errno(err, EXIT_USAGE, "removing %s", shown);
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
			return cp_error_errno(err, EXIT_USAGE, "removing %s", shown);
		return 0;
	}
	if (st.st_dev != dev)
		return cp_error_set(err, EXIT_USAGE, "refusing to remove %s: it is a mount point",
				    shown);
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cp_error_errno(err, EXIT_USAGE, "removing %s", shown);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return cp_error_errno(err, EXIT_USAGE, "removing %s", shown);
	}
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = rm_rf_at(dirfd(d), de->d_name, dev, err, shown);
	}
	closedir(d);
	if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return cp_error_errno(err, EXIT_USAGE, "removing %s", shown);
	return rc;
}

void fs_sweep_dead(const char *dir, const char *prefix, const char *marker)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat dst;
	DIR *d = fd >= 0 && fstat(fd, &dst) == 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	size_t pl = strlen(prefix);
	for (struct dirent *de; (de = readdir(d));) {
		const char *dot = strrchr(de->d_name, '.');
		if (!dot || strncmp(de->d_name, prefix, pl) != 0 || !strstr(de->d_name + pl, marker))
			continue;
		long pid = strtol(dot + 1, NULL, 10);
		struct cp_error ignored = {0};
		if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
			rm_rf_at(dirfd(d), de->d_name, dst.st_dev, &ignored, de->d_name);
	}
	closedir(d);
}

int fs_rm_rf(const char *path, struct cp_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : cp_error_errno(err, EXIT_USAGE, "removing %s", path);
	return rm_rf_at(AT_FDCWD, path, st.st_dev, err, path);
}

static long long du_at(int parent, const char *name)
{
	struct stat st;
	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return S_ISREG(st.st_mode) ? (long long)st.st_size : 0;
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	long long total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		total += du_at(dirfd(d), de->d_name);
	}
	closedir(d);
	return total;
}

long long fs_du(const char *path)
{
	return du_at(AT_FDCWD, path);
}

char *path_join(const char *a, const char *b)
{
	if (b[0] == '/' || a[0] == '\0')
		return xstrdup(b);
	size_t la = strlen(a);
	if (la > 0 && a[la - 1] == '/')
		return xasprintf("%s%s", a, b);
	return xasprintf("%s/%s", a, b);
}

char *path_normalize(const char *path)
{
	size_t len = strlen(path);
	char *out = xmalloc(len + 2);
	size_t o = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 1 && p[0] == '.') {
			/* skip */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (o == 0) {
				free(out);
				return NULL;
			}
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else {
			out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return out;
}

char *path_absolute(const char *base, const char *path)
{
	if (path[0] == '/')
		return path_normalize(path);
	cleanup_free char *joined = path_join(base, path);
	return path_normalize(joined);
}

char *path_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

int fs_lock(int *fd_out, const char *path, const char *what, struct cp_error *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return cp_error_errno(err, EXIT_USAGE, "opening lock %s", path);
	/* POSIX record locks: F_GETLK tells who holds one, and a fork does not
	 * inherit it, so stage processes never keep the project locked. */
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(fd, F_SETLK, &fl) == 0) {
		*fd_out = fd;
		return 0;
	}
	int saved = errno;
	struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	long pid = fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK ? (long)who.l_pid : 0;
	close(fd);
	if (saved != EAGAIN && saved != EACCES) {
		errno = saved;
		return cp_error_errno(err, EXIT_BUSY, "locking %s", path);
	}
	if (pid > 0)
		return cp_error_set(err, EXIT_BUSY,
				    "another cpipe (pid %ld) is %s in this project; wait for it "
				    "to finish or stop it (lock: %s)",
				    pid, what, path);
	return cp_error_set(err, EXIT_BUSY, "another cpipe is %s in this project (lock: %s)", what,
			    path);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int fs_list_names(struct strvec *out, const char *dir, const char *suffix, struct cp_error *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : cp_error_errno(err, EXIT_USAGE, "reading %s", dir);
	size_t ls = strlen(suffix);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > ls && strcmp(de->d_name + n - ls, suffix) == 0)
			strvec_push_take(out, xstrndup(de->d_name, n - ls));
	}
	closedir(d);
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(char *), cmp_names);
	return 0;
}

ssize_t fs_readlink_at(char buf[PATH_MAX], int dirfd, const char *name, const char *shown,
		       struct cp_error *err)
{
	ssize_t n = readlinkat(dirfd, name, buf, PATH_MAX);
	if (n < 0 || n == PATH_MAX) {
		if (n >= 0)
			errno = ENAMETOOLONG;
		return cp_error_errno(err, EXIT_USAGE, "reading symlink %s", shown);
	}
	return n;
}

bool fs_type_local(uint32_t type)
{
	switch (type) {
	case 0xEF53u:     /* ext2/3/4 */
	case 0x58465342u: /* xfs */
	case 0x9123683Eu: /* btrfs */
	case 0x01021994u: /* tmpfs */
	case 0x858458F6u: /* ramfs */
	case 0xF2F52010u: /* f2fs */
	case 0x2FC12FC1u: /* zfs */
	case 0xCA451A4Eu: /* bcachefs */
		return true;
	default:
		return false;
	}
}
