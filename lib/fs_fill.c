#include "fs_fill.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

static int dir_empty(const char *dir, bool *empty, struct cp_error *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return cp_error_errno(err, EXIT_USAGE, "reading volume %s", dir);
	struct dirent *e;
	*empty = true;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			*empty = false;
			break;
		}
	closedir(d);
	return 0;
}

static int copy_file(const char *from, const char *to, mode_t mode, struct cp_error *err)
{
	cleanup_close int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return cp_error_errno(err, EXIT_USAGE, "reading %s", from);
	unlink(to);
	cleanup_close int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 07777);
	if (out < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating %s", to);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cp_error_errno(err, EXIT_USAGE, "reading %s", from);
		if (fs_write_all(out, buf, (size_t)n) < 0)
			return cp_error_errno(err, EXIT_USAGE, "writing %s", to);
	}
	if (fchmod(out, mode & 07777) < 0)
		return cp_error_errno(err, EXIT_USAGE, "setting the mode of %s", to);
	return 0;
}

static int fill_one(const char *root, const struct fs_fill_item *it, struct cp_error *err)
{
	struct stat st;
	if (lstat(it->source, &st) < 0)
		return cp_error_errno(err, EXIT_USAGE, "filling the volume: %s", it->source);
	cleanup_free char *to = *it->path ? path_join(root, it->path) : xstrdup(root);
	cleanup_free char *parent = path_dirname(to);
	if (fs_mkdir_p(parent, 0755, err) < 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		if (mkdir(to, st.st_mode & 07777) < 0 && errno != EEXIST)
			return cp_error_errno(err, EXIT_USAGE, "creating %s", to);
		return 0;
	}
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlink(it->source, target, sizeof(target) - 1);
		if (n < 0)
			return cp_error_errno(err, EXIT_USAGE, "reading link %s", it->source);
		target[n] = '\0';
		unlink(to);
		if (symlink(target, to) < 0)
			return cp_error_errno(err, EXIT_USAGE, "creating link %s", to);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return 0; /* sockets, fifos: not image content */
	return copy_file(it->source, to, st.st_mode, err);
}

int fs_fill_empty(const char *dir, const struct fs_fill_item *items, size_t n, bool *filled,
		  struct cp_error *err)
{
	*filled = false;
	bool empty = false;
	struct stat st;
	if (!n)
		return 0;
	if (dir_empty(dir, &empty, err) < 0)
		return -1;
	if (!empty)
		return 0;
	if (stat(dir, &st) < 0)
		return cp_error_errno(err, EXIT_USAGE, "volume %s", dir);
	cleanup_free char *tmp = xasprintf("%s.fill.XXXXXX", dir);
	if (!mkdtemp(tmp))
		return cp_error_errno(err, EXIT_USAGE, "creating a directory next to %s", dir);
	for (size_t i = 0; i < n; i++)
		if (fill_one(tmp, &items[i], err) < 0)
			goto fail;
	if (chmod(tmp, st.st_mode & 07777) < 0) {
		cp_error_errno(err, EXIT_USAGE, "filling volume %s", dir);
		goto fail;
	}
	if (rename(tmp, dir) < 0) {
		if (errno != ENOTEMPTY && errno != EEXIST) {
			cp_error_errno(err, EXIT_USAGE, "filling volume %s", dir);
			goto fail;
		}
		/* Another stage filled it first: its content stands. */
		struct cp_error ignored = {0};
		fs_rm_rf(tmp, &ignored);
		return 0;
	}
	*filled = true;
	return 0;
fail:;
	struct cp_error ignored = {0};
	fs_rm_rf(tmp, &ignored);
	return -1;
}
