/* Out of the store: checking a tree's objects are there, staging trees
 * into volumes and renaming them into place, the run cache, and gc. */
#include "cas.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "store.h"

/* One record of a canonical listing (format in digest.h). */
struct lrec {
	char *rel; /* NUL-terminated inside the parsed copy */
	char type;
	unsigned mode;
	char *digest; /* "" for 'd' */
};

/* Splits the listing `buf` (len bytes, modified in place) into records.
 * Caller frees *out (the strings point into buf). */
static int listing_parse(struct lrec **out, size_t *n, char *buf, size_t len, const char *shown,
			 struct cp_error *err)
{
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	char *p = buf, *end = buf + len;
	while (p < end) {
		char *f[5];
		for (int i = 0; i < 4; i++) {
			char *z = memchr(p, '\0', (size_t)(end - p));
			if (!z)
				goto bad;
			f[i] = p;
			p = z + 1;
		}
		char *lf = memchr(p, '\n', (size_t)(end - p));
		if (!lf)
			goto bad;
		*lf = '\0';
		f[4] = p;
		p = lf + 1;
		if (strlen(f[1]) != 1 || (f[1][0] == 'd' ? *f[4] != '\0' : !digest_is_valid(f[4])) ||
		    strchr("fdl", f[1][0]) == NULL || !*f[0] || strstr(f[0], "..") == f[0] ||
		    f[0][0] == '/')
			goto bad;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		(*out)[(*n)++] = (struct lrec){f[0], f[1][0], (unsigned)strtoul(f[2], NULL, 8) & 07777,
					       f[4]};
	}
	return 0;
bad:
	free(*out);
	*out = NULL;
	return cp_error_set(err, EXIT_USAGE, "%s: the store's listing object is corrupt", shown);
}

static int read_object(char **out, size_t *len, const struct cas *c, const char *digest,
		       const char *shown, struct cp_error *err)
{
	cleanup_free char *path = cas_object_path(c, digest);
	struct cp_error e = {0};
	if (fs_read_file(out, len, path, 0, &e) < 0)
		return cp_error_set(err, EXIT_USAGE, "%s: object %s is not in the store %s", shown,
				    digest, c->root);
	return 0;
}

/* The records of the listing object `digest`; *buf holds their strings.
 * Caller frees both. */
static int load_listing(char **buf, struct lrec **v, size_t *n, const struct cas *c,
			const char *digest, const char *shown, struct cp_error *err)
{
	size_t len = 0;
	*v = NULL;
	*n = 0;
	return read_object(buf, &len, c, digest, shown, err) < 0 ||
			       listing_parse(v, n, *buf, len, shown, err) < 0
		       ? -1
		       : 0;
}

int cas_check(const struct cas *c, char type, const char *digest, const char *shown,
	      struct cp_error *err)
{
	if (!cas_has(c, digest))
		return cp_error_set(err, EXIT_USAGE, "%s: object %s is not in the store %s", shown,
				    digest, c->root);
	if (type != 'd')
		return 0;
	cleanup_free char *buf = NULL;
	size_t n = 0;
	cleanup_free struct lrec *v = NULL;
	if (load_listing(&buf, &v, &n, c, digest, shown, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (v[i].type != 'd' && !cas_has(c, v[i].digest))
			return cp_error_set(err, EXIT_USAGE,
					    "%s/%s: object %s is not in the store %s", shown,
					    v[i].rel, v[i].digest, c->root);
	return 0;
}

int cas_tree_objects(struct strvec *out, const struct cas *c, const char *digest,
		     struct cp_error *err)
{
	cleanup_free char *buf = NULL;
	size_t n = 0;
	cleanup_free struct lrec *v = NULL;
	if (load_listing(&buf, &v, &n, c, digest, digest, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (v[i].type != 'd')
			strvec_push(out, v[i].digest);
	return 0;
}

struct cas_pending {
	int dirfd;     /* the parent directory */
	char *dirpath; /* its path, for removing what a rename displaced */
	char *tmp;     /* staged name in dirfd */
	char *name;    /* final name in dirfd */
};

/* Opens `rel`'s parent below `root` component by component, creating
 * missing directories, never following a symlink. */
static int open_parent(int *out, const char *root, const char *rel, struct cp_error *err)
{
	int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT && fs_mkdir_p(root, 0755, err) == 0)
		dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return cp_error_errno(err, EXIT_USAGE, "opening %s", root);
	cleanup_free char *copy = xstrdup(rel);
	char *p = copy;
	for (char *slash; (slash = strchr(p, '/')); p = slash + 1) {
		*slash = '\0';
		if (!*p)
			continue;
		if (mkdirat(dfd, p, 0755) < 0 && errno != EEXIST) {
			close(dfd);
			return cp_error_errno(err, EXIT_USAGE, "creating %s/%s", root, copy);
		}
		int nfd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(dfd);
		if (nfd < 0) {
			errno = e;
			return cp_error_errno(err, EXIT_USAGE,
					      "opening %s/%s (a symlink is not followed)", root,
					      copy);
		}
		dfd = nfd;
	}
	*out = dfd;
	return 0;
}

/* Moves this process's verified spare copy of `digest` (cas_spare_name)
 * to `name` in `dfd`, with `mode`: 1; 0 when there is none, or it is on
 * another file system. */
static int take_spare(const struct cas *c, int dfd, const char *name, unsigned mode,
		      const char *digest)
{
	cleanup_free char *spare = cas_spare_name(digest);
	cleanup_close int fd = openat(c->tmpfd, spare, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchmod(fd, mode) < 0 ||
	    renameat2(c->tmpfd, spare, dfd, name, RENAME_NOREPLACE) < 0)
		return 0;
	return 1;
}

/* Writes object `digest` as a new file `name` in `dfd`. */
static int make_file(const struct cas *c, int dfd, const char *name, unsigned mode,
		     const char *digest, const char *shown, struct cp_error *err)
{
	if (take_spare(c, dfd, name, mode, digest))
		return 0;
	cleanup_free char *obj = cas_object_path(c, digest);
	cleanup_close int src = open(obj, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return cp_error_set(err, EXIT_USAGE, "%s: object %s is not in the store %s", shown,
				    digest, c->root);
	cleanup_close int dst =
		openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating %s", shown);
	if (ioctl(dst, FICLONE, src) < 0) {
		struct stat st;
		if (fstat(src, &st) < 0)
			return cp_error_errno(err, EXIT_USAGE, "reading %s", obj);
		/* As cp: an in-kernel copy, the source read ahead. */
		(void)posix_fadvise(src, 0, 0, POSIX_FADV_SEQUENTIAL);
		for (off_t left = st.st_size; left > 0;) {
			ssize_t n = copy_file_range(src, NULL, dst, NULL, (size_t)left, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return cp_error_errno(err, EXIT_USAGE, "writing %s", shown);
			left -= n;
		}
	}
	if (fchmod(dst, mode) < 0)
		return cp_error_errno(err, EXIT_USAGE, "writing %s", shown);
	return 0;
}

static int make_link(const struct cas *c, int dfd, const char *name, const char *digest,
		     const char *shown, struct cp_error *err)
{
	cleanup_free char *target = NULL;
	size_t len = 0;
	if (read_object(&target, &len, c, digest, shown, err) < 0)
		return -1;
	if (symlinkat(target, dfd, name) < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating symlink %s", shown);
	return 0;
}

/* Opens the parent of `rel` inside the staged tree `top`. */
static int open_in_tree(int top, const char *rel, const char **base)
{
	const char *slash = strrchr(rel, '/');
	*base = slash ? slash + 1 : rel;
	if (!slash)
		return dup(top);
	cleanup_free char *dir = xstrndup(rel, (size_t)(slash - rel));
	return openat(top, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int make_tree(const struct cas *c, int dfd, const char *name, const char *digest,
		     const char *shown, struct cp_error *err)
{
	cleanup_free char *buf = NULL;
	size_t n = 0;
	cleanup_free struct lrec *v = NULL;
	if (load_listing(&buf, &v, &n, c, digest, shown, err) < 0)
		return -1;
	if (mkdirat(dfd, name, 0700) < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating %s", shown);
	cleanup_close int top = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (top < 0)
		return cp_error_errno(err, EXIT_USAGE, "opening %s", shown);
	/* Sorted: a directory comes before what it holds. */
	for (size_t i = 0; i < n; i++) {
		const char *base;
		cleanup_close int pfd = open_in_tree(top, v[i].rel, &base);
		cleanup_free char *what = xasprintf("%s/%s", shown, v[i].rel);
		if (pfd < 0)
			return cp_error_errno(err, EXIT_USAGE, "opening the directory of %s", what);
		int rc =
		    v[i].type == 'd'   ? (mkdirat(pfd, base, 0700) < 0
					      ? cp_error_errno(err, EXIT_USAGE, "creating %s", what)
					      : 0)
		    : v[i].type == 'l' ? make_link(c, pfd, base, v[i].digest, what, err)
				       : make_file(c, pfd, base, v[i].mode, v[i].digest, what, err);
		if (rc < 0)
			return -1;
	}
	/* Modes last, deepest first: a read-only directory is filled before. */
	for (size_t i = n; i-- > 0;)
		if (v[i].type == 'd' && fchmodat(top, v[i].rel, v[i].mode, 0) < 0)
			return cp_error_errno(err, EXIT_USAGE, "setting the mode of %s/%s", shown,
					      v[i].rel);
	if (fchmod(top, 0755) < 0)
		return cp_error_errno(err, EXIT_USAGE, "setting the mode of %s", shown);
	return 0;
}

int cas_checkout_stage(struct cas_checkout *co, const struct cas *c, const char *root,
		       const char *rel, char type, const char *digest, const char *shown,
		       struct cp_error *err)
{
	if (cas_check(c, type, digest, shown, err) < 0)
		return -1;
	while (*rel == '/')
		rel++;
	cleanup_free char *parent_root = NULL;
	cleanup_free char *rel_copy = NULL;
	if (!*rel) { /* the root itself: stage beside it */
		parent_root = path_dirname(root);
		const char *slash = strrchr(root, '/');
		rel_copy = xstrdup(slash ? slash + 1 : root);
		root = parent_root;
		rel = rel_copy;
	}
	int dfd = -1;
	if (open_parent(&dfd, root, rel, err) < 0)
		return -1;
	const char *slash = strrchr(rel, '/');
	const char *name = slash ? slash + 1 : rel;
	struct cas_pending pe = {
		.dirfd = dfd,
		.dirpath = slash ? xasprintf("%s/%.*s", root, (int)(slash - rel), rel) : xstrdup(root),
		.tmp = xasprintf(".%s.cpipe-restore.tmp.%ld", name, (long)getpid()),
		.name = xstrdup(name),
	};
	if (co->n == co->cap) {
		co->cap = co->cap ? 2 * co->cap : 8;
		co->v = xrealloc(co->v, co->cap * sizeof(*co->v));
	}
	co->v[co->n++] = pe;
	int rc = type == 'd'   ? make_tree(c, dfd, pe.tmp, digest, shown, err)
		 : type == 'l' ? make_link(c, dfd, pe.tmp, digest, shown, err)
			       : make_file(c, dfd, pe.tmp, 0644, digest, shown, err);
	return rc;
}

static void pending_free(struct cas_pending *pe)
{
	close(pe->dirfd);
	free(pe->dirpath);
	free(pe->tmp);
	free(pe->name);
}

static void remove_at(const struct cas_pending *pe)
{
	cleanup_free char *path = path_join(pe->dirpath, pe->tmp);
	struct cp_error ignored = {0};
	fs_rm_rf(path, &ignored);
}

void cas_checkout_abort(struct cas_checkout *co)
{
	for (size_t i = 0; i < co->n; i++) {
		remove_at(&co->v[i]);
		pending_free(&co->v[i]);
	}
	free(co->v);
	*co = (struct cas_checkout)CAS_CHECKOUT_INIT;
}

int cas_checkout_commit(struct cas_checkout *co, struct cp_error *err)
{
	int rc = 0;
	for (size_t i = 0; i < co->n; i++) {
		struct cas_pending *pe = &co->v[i];
		struct stat st;
		bool exists = fstatat(pe->dirfd, pe->name, &st, AT_SYMLINK_NOFOLLOW) == 0;
		/* Exchange, then remove the old tree: the name always holds
		 * a whole artifact, the old or the new. */
		int r = exists ? renameat2(pe->dirfd, pe->tmp, pe->dirfd, pe->name, RENAME_EXCHANGE)
			       : renameat(pe->dirfd, pe->tmp, pe->dirfd, pe->name);
		if (r < 0 && rc == 0)
			rc = cp_error_errno(err, EXIT_USAGE, "moving %s/%s into place", pe->dirpath,
					    pe->name);
		if (r < 0 || exists)
			remove_at(pe);
		pending_free(pe);
	}
	free(co->v);
	*co = (struct cas_checkout)CAS_CHECKOUT_INIT;
	return rc;
}

/* ---- run cache ---- */

static char *runcache_path(const struct cas *c, const char *key)
{
	return xasprintf("%s/runs/sha256/%s.json", c->root, key + strlen(DIGEST_PREFIX));
}

int runcache_save(struct cas *c, const char *key, cJSON *doc, struct cp_error *err)
{
	if (!digest_is_valid(key))
		return cp_error_set(err, EXIT_USAGE, "run cache: invalid key %s", key);
	cleanup_free char *path = runcache_path(c, key);
	return json_write_atomic_fast(path, doc, err);
}

int runcache_load(cJSON **out, const struct cas *c, const char *key)
{
	if (!digest_is_valid(key))
		return 0;
	cleanup_free char *path = runcache_path(c, key);
	struct stat st;
	struct cp_error ignored = {0};
	if (stat(path, &st) < 0 || json_read_file(out, path, 64 << 20, &ignored) < 0)
		return 0;
	return 1;
}

/* ---- gc ---- */

struct dset {
	struct strvec v; /* sorted after collection */
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool dset_has(const struct dset *s, const char *d)
{
	return s->v.n && bsearch(&d, s->v.v, s->v.n, sizeof(char *), cmp_str);
}

/* Adds `digest` and, for a tree, everything its listing names. */
static void keep_tree(struct dset *s, const struct cas *c, char type, const char *digest)
{
	if (!digest_is_valid(digest))
		return;
	strvec_push(&s->v, digest);
	if (type != 'd')
		return;
	cleanup_free char *buf = NULL;
	size_t n = 0;
	cleanup_free struct lrec *v = NULL;
	struct cp_error ignored = {0};
	if (load_listing(&buf, &v, &n, c, digest, "", &ignored) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (v[i].type != 'd')
			strvec_push(&s->v, v[i].digest);
}

/* Whether every object a run cache entry names is kept. */
static bool runcache_kept(const cJSON *doc, const struct dset *s)
{
	static const char *const parts[] = {"outputs", "metrics"};
	for (size_t p = 0; p < 2; p++)
		for (const cJSON *e = cJSON_GetObjectItem(doc, parts[p]) ? cJSON_GetObjectItem(doc, parts[p])->child : NULL;
		     e; e = e->next)
			if (!dset_has(s, cJSON_GetStringValue(cJSON_GetObjectItem(e, "digest"))))
				return false;
	return true;
}

int cas_gc(unsigned long long *nobjects, unsigned long long *nbytes, struct cas *c,
	   const cJSON *keep, bool dry_run, struct cp_error *err)
{
	*nobjects = *nbytes = 0;
	struct dset s = {0};
	for (const cJSON *k = keep ? keep->child : NULL; k; k = k->next) {
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(k, "type"));
		keep_tree(&s, c, t ? t[0] : 'f', cJSON_GetStringValue(cJSON_GetObjectItem(k, "digest")));
	}
	qsort(s.v.v, s.v.n, sizeof(char *), cmp_str);
	DIR *top = opendir(c->objects);
	if (!top) {
		strvec_free(&s.v);
		return cp_error_errno(err, EXIT_USAGE, "reading %s", c->objects);
	}
	for (struct dirent *de; (de = readdir(top));) {
		if (strlen(de->d_name) != 2)
			continue;
		cleanup_free char *sub = path_join(c->objects, de->d_name);
		DIR *d = opendir(sub);
		for (struct dirent *oe; d && (oe = readdir(d));) {
			if (strlen(oe->d_name) != 62)
				continue;
			cleanup_free char *digest = xasprintf("%s%s%s", DIGEST_PREFIX, de->d_name, oe->d_name);
			if (dset_has(&s, digest))
				continue;
			struct stat st;
			if (fstatat(dirfd(d), oe->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			(*nobjects)++;
			*nbytes += (unsigned long long)st.st_size;
			if (!dry_run)
				unlinkat(dirfd(d), oe->d_name, 0);
		}
		if (d)
			closedir(d);
	}
	closedir(top);
	/* Run cache entries whose objects are gone would only be misses. */
	cleanup_free char *runs = path_join(c->root, "runs/sha256");
	struct strvec names = {0};
	int rc = fs_list_names(&names, runs, ".json", err);
	for (size_t i = 0; rc == 0 && !dry_run && i < names.n; i++) {
		cleanup_free char *path = xasprintf("%s/%s.json", runs, names.v[i]);
		cJSON *doc = NULL;
		struct cp_error ignored = {0};
		if (json_read_file(&doc, path, 64 << 20, &ignored) < 0 || !runcache_kept(doc, &s))
			unlink(path);
		cJSON_Delete(doc);
	}
	strvec_free(&names);
	strvec_free(&s.v);
	return rc;
}
