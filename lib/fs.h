/* Filesystem plumbing: atomic writes, whole-file reads, directories, paths. */
#ifndef CPIPE_LIB_FS_H
#define CPIPE_LIB_FS_H

#include <stdbool.h>
#include <stdint.h>
#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "error.h"
#include "util.h"

/* Writes `len` bytes to `path` atomically: a temporary file beside it,
 * fsync, rename over `path`, fsync of the directory. A crash leaves either
 * the old or the new content, never a torn file. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		    struct cp_error *err);

/* As fs_write_atomic, without the fsyncs: still never torn when the
 * process is killed (rename is atomic), but after a power loss the file
 * may be empty or old. For caches and intermediate states that a later
 * durable write supersedes. */
int fs_write_atomic_fast(const char *path, const void *data, size_t len, mode_t mode,
			 struct cp_error *err);

/* As fs_write_atomic, without the fsync of the directory: the new content
 * is on the disk before it replaces the old, so even a power loss leaves
 * the old or the new file, never a torn or empty one; which of the two is
 * settled by fs_sync_dir. For a file rewritten while a run goes on, made
 * durable once when it ends. */
int fs_write_atomic_data(const char *path, const void *data, size_t len, mode_t mode,
			 struct cp_error *err);

/* fsync of the directory holding `path` (what fs_write_atomic does after
 * its rename); errors are ignored, as there. */
void fs_sync_dir(const char *path);

/* write(2) until all `len` bytes are written (EINTR retried): 0, or -1
 * with errno set. */
int fs_write_all(int fd, const void *data, size_t len);

/* Reads a whole file (at most `max` bytes, 0 = no limit) into a new
 * NUL-terminated buffer the caller owns; `len_out` may be NULL. */
int fs_read_file(char **out, size_t *len_out, const char *path, size_t max,
		 struct cp_error *err);

/* As fs_read_file, from the open file `fd`; errors name `shown`. */
int fs_read_fd(char **out, size_t *len_out, int fd, const char *shown, size_t max,
	       struct cp_error *err);

/* mkdir -p; existing directories are fine. */
int fs_mkdir_p(const char *path, mode_t mode, struct cp_error *err);

/* rm -rf without following symlinks and without crossing mount points. */
int fs_rm_rf(const char *path, struct cp_error *err);

/* Removes (rm -rf) what writers killed midway left in directory `dir`
 * (not followed when a symlink): the entries whose name starts with
 * `prefix`, holds `marker` after it, and ends ".PID" of a process that is
 * gone (name.tmp.PID of fs_write_atomic; "" matches any). */
void fs_sweep_dead(const char *dir, const char *prefix, const char *marker);

/* Total apparent size of the files below `path` (0 when missing). */
long long fs_du(const char *path);

/* Joins two path pieces with one '/'; b absolute → copy of b. Caller owns. */
char *path_join(const char *a, const char *b);

/* Lexically normalizes an absolute path: collapses //, ., and .. Returns
 * NULL if `..` would climb above the root (the path escapes). Caller owns. */
char *path_normalize(const char *path);

/* Absolute form of `path`, relative ones taken from `base`. Normalized;
 * NULL when it escapes the root. Caller owns. */
char *path_absolute(const char *base, const char *path);

/* Parent directory of `path` (a new string; "/" for top-level entries). */
char *path_dirname(const char *path);



/* The names in `dir` ending in `suffix`, without it, sorted bytewise (a
 * missing directory gives none). Temporaries of interrupted atomic writes
 * (name.tmp.PID) never match. */
int fs_list_names(struct strvec *out, const char *dir, const char *suffix, struct cp_error *err);

/* Takes an exclusive lock on `path` (created if missing) without waiting.
 * Held until *fd_out is closed; not inherited by children. When another
 * process holds it, fails with err->code EXIT_BUSY naming its pid. */
int fs_lock(int *fd_out, const char *path, const char *what, struct cp_error *err);

/* ---- path safety (fs_safe.c) ---- */

/* Opens `rel` (leading '/' ignored; "" is `dirfd` itself) below the
 * directory `dirfd` with openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS:
 * symlinks are followed only while they stay below it (an absolute one, or
 * one climbing out with "..", fails with EXDEV); `symlinks` false refuses
 * every one (ELOOP). Where openat2 is missing or filtered, every symlink
 * is refused. Returns the fd, or -1 with errno set. */
int fs_openat_beneath(int dirfd, const char *rel, int flags, bool symlinks);

/* Resolves `path` (relative to `root`, a leading '/' allowed) inside the
 * directory `root`: *dirfd_out is its parent, opened O_PATH beneath root
 * (caller closes), *name_out its last component ("." for root itself;
 * caller frees), for *at() calls that do not follow it. Returns 0, 1 when
 * root or a directory on the way is missing, or -1 when a symlink on the
 * way leads outside root (the error names it and its target). */
int fs_resolve_beneath(int *dirfd_out, char **name_out, const char *root, const char *path,
		       struct cp_error *err);

/* lstat of `path` resolved inside `root` as above: 0, 1 when missing, -1. */
int fs_lstat_beneath(struct stat *st, const char *root, const char *path, struct cp_error *err);

/* fs_read_file of `path` resolved inside `root`, the last component too
 * (links followed only while they stay inside); only a regular file. */
int fs_read_file_beneath(char **out, size_t *len_out, const char *root, const char *path,
			 size_t max, struct cp_error *err);

/* Refuses (err->code EXIT_USAGE, naming the link and saying to remove it)
 * a state directory that is a symlink or holds one where cpipe writes,
 * mounts or removes: volumes, run, runs, logs, cache, services, lock,
 * .gitignore, and every volumes/NAME. A missing directory passes. */
int fs_state_dir_check(const char *dir, struct cp_error *err);
/* Reads the target of symlink `name` in `dirfd` into buf (PATH_MAX bytes,
 * not NUL-terminated): its length, or -1 with "reading symlink SHOWN". */
ssize_t fs_readlink_at(char buf[PATH_MAX], int dirfd, const char *name, const char *shown,
		       struct cp_error *err);

/* Whether a filesystem of statfs f_type `type` is one this kernel writes
 * itself (ext2/3/4, xfs, btrfs, tmpfs, ramfs, f2fs, zfs, bcachefs): its
 * times come from this kernel's clock and every write to it passes
 * through this kernel's VFS. Not overlayfs (a write to a lower layer is
 * no event above), NFS, SMB or FUSE (another host or a daemon writes). */
bool fs_type_local(uint32_t type);
#define FS_TYPE_OVERLAYFS 0x794C7630u

#endif
