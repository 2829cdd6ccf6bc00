/* digest_tree and digest_trees: walking directories without following
 * links or leaving the root, on a few threads, with the stat cache consulted
 * on the calling thread; entries go to the canonical listing in
 * tree_builder.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "digest.h"
#include "digest_internal.h"
#include "statcache.h"

#define POOL_MAX 4
#define POOL_MIN_BYTES (16ull << 20) /* below this, threads cost more than they save */
#define WINDOW 64 /* trees walked together by digest_trees */

/* Opens `rel` below `rootfd` without following any symlink on the way, so
 * a link swapped in by a running stage cannot lead outside the tree. */
static int open_beneath(int rootfd, const char *rel, int flags)
{
	return fs_openat_beneath(rootfd, rel, flags, false);
}

/* ~90 bytes: every entry of a window of trees is held at once. */
struct wentry {
	char *rel;                /* owned until handed to the builder */
	struct statcache_key key; /* key.size is the listed size (0 for 'd',
				   * the target's length for 'l') */
	uint16_t mode;
	char type;
	bool hash;      /* content still to be read */
	bool linked;    /* st_nlink > 1 */
	bool cacheable; /* hashed and passes the racy rule: store `key` */
	uint8_t md[32];
};

/* One requested path. A directory lists its entries; a regular file is a
 * single entry named by its base name below its parent directory, so both
 * are opened the same way. */
struct walk {
	struct tree_request *req;
	char type;  /* of the root; 0 until known */
	int rootfd; /* 'd': the directory; 'f': its parent; else -1 */
	char *abs;  /* absolute path of the root, when caching */
	char *shown; /* the root's path in messages */
	struct wentry *v;
	size_t n, cap;
	bool failed;
	size_t fail_at; /* position in the hashing order of the first failure */
};

/* "drel/name" (or "name" at the root), without printf's cost: this runs
 * once per entry of every tree. */
static char *join_rel(const char *drel, const char *name)
{
	size_t dl = strlen(drel), nl = strlen(name);
	char *rel = xmalloc(dl + nl + 2);
	char *p = rel;
	if (dl) {
		memcpy(p, drel, dl);
		p[dl] = '/';
		p += dl + 1;
	}
	memcpy(p, name, nl + 1);
	return rel;
}

/* The stat cache's key path of an entry, built in `sb`. */
static const char *abs_of(struct strbuf *sb, const struct walk *w, const struct wentry *e)
{
	sb_reset(sb);
	sb_adds(sb, w->abs);
	if (w->type == 'd') {
		if (sb->len == 0 || sb->buf[sb->len - 1] != '/')
			sb_addc(sb, '/');
		sb_adds(sb, e->rel);
	}
	return sb_str(sb);
}

/* How errors name an entry. Caller frees. */
static char *shown_of(const struct walk *w, const struct wentry *e)
{
	if (w->type == 'f')
		return xstrdup(w->shown);
	return xasprintf("%s/%s", w->shown, e->rel);
}

static struct wentry *walk_push(struct walk *w, char *rel, const struct stat *st)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 16;
		w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
	}
	struct wentry *e = &w->v[w->n++];
	memset(e, 0, sizeof(*e));
	e->rel = rel;
	e->mode = st->st_mode & 07777;
	e->linked = st->st_nlink > 1;
	statcache_key_from_stat(&e->key, st);
	return e;
}

static int read_link(uint8_t md[32], unsigned long long *len, int dirfd, const char *name,
		     const char *shown, struct cp_error *err)
{
	char target[PATH_MAX];
	ssize_t n = fs_readlink_at(target, dirfd, name, shown, err);
	if (n < 0)
		return -1;
	struct digest_ctx c;
	digest_init(&c);
	digest_update(&c, target, (size_t)n);
	digest_final_raw(md, &c);
	*len = (unsigned long long)n;
	return 0;
}

/* Adds the entries of directory `drel` ("" for the root); the indices of
 * directories found are pushed on *stack. */
static int walk_dir(struct walk *w, const char *drel, size_t **stack, size_t *nstack,
		    size_t *stackcap, struct cp_error *err)
{
	const char *shown = w->shown;
	int dfd = drel[0] ? open_beneath(w->rootfd, drel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
			  : openat(w->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return cp_error_errno(err, EXIT_USAGE, "opening %s/%s", shown, drel);
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return cp_error_errno(err, EXIT_USAGE, "opening %s/%s", shown, drel);
	}
	int rc = -1;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno) {
				cp_error_errno(err, EXIT_USAGE, "reading directory %s/%s", shown,
					       drel);
				goto out;
			}
			break;
		}
		const char *name = de->d_name;
		if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
			continue;
		cleanup_free char *rel = join_rel(drel, name);
		if (w->req->skip && strcmp(rel, w->req->skip) == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			cp_error_errno(err, EXIT_USAGE, "%s/%s", shown, rel);
			goto out;
		}
		struct wentry *e;
		if (w->req->on_entry &&
		    (S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink > 1)))
			w->req->on_entry(w->req->on_entry_ctx, dirfd(d), name, rel, &st);
		switch (st.st_mode & S_IFMT) {
		case S_IFDIR:
			e = walk_push(w, rel, &st);
			rel = NULL;
			e->type = 'd';
			e->key.size = 0;
			if (*nstack == *stackcap) {
				*stackcap = *stackcap ? *stackcap * 2 : 16;
				*stack = xrealloc(*stack, *stackcap * sizeof(**stack));
			}
			(*stack)[(*nstack)++] = w->n - 1;
			break;
		case S_IFLNK: {
			cleanup_free char *full = xasprintf("%s/%s", shown, rel);
			e = walk_push(w, rel, &st);
			rel = NULL;
			e->type = 'l';
			unsigned long long len;
			if (read_link(e->md, &len, dirfd(d), name, full, err) < 0)
				goto out;
			e->key.size = len;
			break;
		}
		case S_IFREG:
			e = walk_push(w, rel, &st);
			rel = NULL;
			e->type = 'f';
			e->hash = true;
			break;
		default:
			if (w->req->whole_mount)
				break;
			cp_error_set(err, EXIT_USAGE,
				     "%s/%s is %s; an artifact may hold only regular files, "
				     "directories and symlinks",
				     shown, rel, digest_file_kind(st.st_mode));
			goto out;
		}
	}
	rc = 0;
out:
	closedir(d);
	return rc;
}

static int cmp_wentry(const void *a, const void *b)
{
	return strcmp(((const struct wentry *)a)->rel, ((const struct wentry *)b)->rel);
}

static int cmp_inode(const void *a, const void *b)
{
	const struct wentry *x = *(const struct wentry *const *)a;
	const struct wentry *y = *(const struct wentry *const *)b;
	if (x->key.dev != y->key.dev)
		return x->key.dev < y->key.dev ? -1 : 1;
	if (x->key.ino != y->key.ino)
		return x->key.ino < y->key.ino ? -1 : 1;
	return strcmp(x->rel, y->rel);
}

/* Two names for one inode inside the tree would be a hardlink in a tar
 * stream, which the listing cannot express. Links to outside are fine. */
static int check_hardlinks(const struct walk *w, struct cp_error *err)
{
	size_t n = 0;
	for (size_t k = 0; k < w->n; k++)
		n += w->v[k].type == 'f' && w->v[k].linked;
	if (n < 2)
		return 0;
	cleanup_free const struct wentry **v = xmalloc(n * sizeof(*v));
	n = 0;
	for (size_t k = 0; k < w->n; k++)
		if (w->v[k].type == 'f' && w->v[k].linked)
			v[n++] = &w->v[k];
	qsort(v, n, sizeof(*v), cmp_inode);
	for (size_t k = 1; k < n; k++)
		if (v[k]->key.dev == v[k - 1]->key.dev && v[k]->key.ino == v[k - 1]->key.ino)
			return cp_error_set(
			    err, EXIT_USAGE,
			    "%s/%s and %s/%s are hardlinks to one file; an artifact "
			    "may hold each file once (copy it instead)",
			    w->shown, v[k - 1]->rel, w->shown, v[k]->rel);
	return 0;
}

/* Everything about one root that needs no stat cache: its type, and for a
 * directory its sorted entries. Runs on any thread. With req->root the
 * path is resolved inside it, its last component not followed. */
static int walk_root(struct walk *w, const char *cwd, struct cp_error *err)
{
	const char *path = w->req->path;
	cleanup_close int pfd = -1;
	cleanup_free char *name = NULL;
	int at = AT_FDCWD;
	const char *nm = path;
	if (w->req->root) {
		int rc = fs_resolve_beneath(&pfd, &name, w->req->root, path, err);
		if (rc == 1)
			errno = ENOENT;
		if (rc == 1 || (rc < 0 && errno == ENOENT))
			return cp_error_errno(err, EXIT_USAGE, "%s", w->shown);
		if (rc < 0)
			return -1;
		at = pfd;
		nm = name;
	}
	struct stat st;
	if (fstatat(at, nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return cp_error_errno(err, EXIT_USAGE, "%s", w->shown);
	if (cwd)
		w->abs = w->shown[0] == '/' ? path_normalize(w->shown) : path_absolute(cwd, w->shown);
	struct tree_digest *out = &w->req->out;
	switch (st.st_mode & S_IFMT) {
	case S_IFLNK: {
		uint8_t md[32];
		w->type = out->type = 'l';
		if (read_link(md, &out->size, at, nm, w->shown, err) < 0)
			return -1;
		digest_format(out->digest, md);
		return 0;
	}
	case S_IFREG: {
		w->type = 'f';
		const char *base;
		if (pfd >= 0) {
			w->rootfd = pfd;
			pfd = -1;
			base = name;
		} else {
			cleanup_free char *parent = path_dirname(path);
			const char *slash = strrchr(path, '/');
			w->rootfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (w->rootfd < 0)
				return cp_error_errno(err, EXIT_USAGE, "opening %s", parent);
			base = slash ? slash + 1 : path;
		}
		if (w->req->on_entry && st.st_nlink > 1)
			w->req->on_entry(w->req->on_entry_ctx, w->rootfd, base, "", &st);
		struct wentry *e = walk_push(w, xstrdup(base), &st);
		e->type = 'f';
		e->hash = true;
		return 0;
	}
	case S_IFDIR: {
		w->type = 'd';
		w->rootfd = openat(at, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (w->rootfd < 0)
			return cp_error_errno(err, EXIT_USAGE, "opening %s", w->shown);
		if (w->req->on_entry)
			w->req->on_entry(w->req->on_entry_ctx, w->rootfd, ".", "", &st);
		cleanup_free size_t *stack = NULL;
		size_t nstack = 0, stackcap = 0;
		if (walk_dir(w, "", &stack, &nstack, &stackcap, err) < 0)
			return -1;
		while (nstack > 0) {
			/* The string outlives reallocations of w->v. */
			const char *drel = w->v[stack[--nstack]].rel;
			if (walk_dir(w, drel, &stack, &nstack, &stackcap, err) < 0)
				return -1;
		}
		if (w->n > 1)
			qsort(w->v, w->n, sizeof(*w->v), cmp_wentry);
		return w->req->whole_mount ? 0 : check_hardlinks(w, err);
	}
	default:
		return cp_error_set(err, EXIT_USAGE,
				    "%s is %s; an artifact may be only a regular file, a directory "
				    "or a symlink",
				    w->shown, digest_file_kind(st.st_mode));
	}
}

/* Work shared by a few threads pulling item indices from one counter. Each
 * item writes only its own result, so nothing depends on scheduling. */
struct pool {
	size_t n;
	atomic_size_t next;
	void (*run)(struct pool *p, size_t i, void *buf);
	bool need_buf; /* a BIG_BUF read buffer per thread */
	const char *cwd;
	struct walk *walks;
	struct todo *todo;
	pthread_mutex_t lock; /* guards failure records */
};

struct todo {
	struct walk *w;
	size_t idx;
};

static void *pool_thread(void *arg)
{
	struct pool *p = arg;
	void *buf = p->need_buf ? xmalloc(BIG_BUF) : NULL;
	for (;;) {
		size_t i = atomic_fetch_add(&p->next, 1);
		if (i >= p->n)
			break;
		p->run(p, i, buf);
	}
	free(buf);
	return NULL;
}

static size_t cpu_count(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (size_t)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (size_t)n : 1;
}

/* Runs p->run for every item on up to `want` threads, the calling thread
 * included; a thread that cannot be created leaves more to the others. */
static void pool_run(struct pool *p, size_t want)
{
	size_t nthreads = cpu_count();
	if (nthreads > POOL_MAX)
		nthreads = POOL_MAX;
	if (nthreads > want)
		nthreads = want;
	if (nthreads > p->n)
		nthreads = p->n;
	atomic_init(&p->next, 0);
	pthread_t tids[POOL_MAX];
	size_t started = 0;
	for (size_t i = 1; i < nthreads; i++, started++)
		if (pthread_create(&tids[started], NULL, pool_thread, p) != 0)
			break;
	pool_thread(p);
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
}

static void run_walk(struct pool *p, size_t i, void *buf)
{
	(void)buf;
	struct walk *w = &p->walks[i];
	if (walk_root(w, p->cwd, &w->req->err) < 0)
		w->failed = true;
}

static void run_hash(struct pool *p, size_t i, void *buf)
{
	struct walk *w = p->todo[i].w;
	struct wentry *e = &w->v[p->todo[i].idx];
	pthread_mutex_lock(&p->lock);
	bool skip = w->failed && w->fail_at < i; /* its error is already the first */
	pthread_mutex_unlock(&p->lock);
	if (skip)
		return;
	struct cp_error err;
	cleanup_free char *shown = shown_of(w, e);
	int fd = open_beneath(w->rootfd, e->rel,
			      O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct hashed h;
	int rc = fd < 0 ? cp_error_errno(&err, EXIT_USAGE, "opening %s", shown)
			: digest_fd(&h, fd, shown, w->abs != NULL, buf, BIG_BUF, &err);
	if (fd >= 0)
		close(fd);
	if (rc == 0) {
		memcpy(e->md, h.md, 32);
		e->mode = h.st.st_mode & 07777;
		statcache_key_from_stat(&e->key, &h.st);
		e->cacheable = h.cacheable;
		return;
	}
	pthread_mutex_lock(&p->lock);
	if (!w->failed || i < w->fail_at) {
		w->failed = true;
		w->fail_at = i;
		w->req->err = err;
	}
	pthread_mutex_unlock(&p->lock);
}

static int cmp_todo(const void *a, const void *b)
{
	const struct todo *x = a, *y = b;
	uint64_t xs = x->w->v[x->idx].key.size, ys = y->w->v[y->idx].key.size;
	if (xs != ys)
		return xs < ys ? 1 : -1; /* largest first balances the threads */
	if (x->w != y->w)
		return x->w < y->w ? -1 : 1; /* one array: request order */
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Reads every file the cache could not answer, on several threads when
 * there is enough to read. */
static void hash_pending(struct walk *walks, size_t n)
{
	size_t ntodo = 0;
	unsigned long long bytes = 0;
	for (size_t r = 0; r < n; r++)
		for (size_t k = 0; !walks[r].failed && k < walks[r].n; k++)
			ntodo += walks[r].v[k].hash;
	if (ntodo == 0)
		return;
	struct pool p = {.n = ntodo, .run = run_hash, .need_buf = true};
	p.todo = xmalloc(ntodo * sizeof(*p.todo));
	pthread_mutex_init(&p.lock, NULL);
	ntodo = 0;
	for (size_t r = 0; r < n; r++) {
		for (size_t k = 0; !walks[r].failed && k < walks[r].n; k++) {
			if (walks[r].v[k].hash) {
				p.todo[ntodo++] = (struct todo){&walks[r], k};
				bytes += walks[r].v[k].key.size;
			}
		}
	}
	size_t want = 1;
	if (ntodo >= 2 && bytes >= POOL_MIN_BYTES) {
		want = POOL_MAX;
		qsort(p.todo, ntodo, sizeof(*p.todo), cmp_todo);
	}
	pool_run(&p, want);
	pthread_mutex_destroy(&p.lock);
	free(p.todo);
}

/* The cache's part, on the calling thread: entries in sorted order, which
 * is the order they were stored in, so most are found next to the last. */
static void cache_lookups(struct walk *w, struct statcache *sc, struct strbuf *sb)
{
	for (size_t k = 0; k < w->n; k++) {
		struct wentry *e = &w->v[k];
		if (e->type == 'f' && statcache_lookup(sc, e->md, abs_of(sb, w, e), &e->key))
			e->hash = false;
	}
}

static int finish_root(struct walk *w, struct statcache *sc, struct strbuf *sb)
{
	struct tree_digest *out = &w->req->out;
	for (size_t k = 0; sc && k < w->n; k++)
		if (w->v[k].cacheable)
			statcache_store(sc, abs_of(sb, w, &w->v[k]), &w->v[k].key, w->v[k].md);
	if (w->type == 'f') {
		digest_format(out->digest, w->v[0].md);
		out->type = 'f';
		out->size = w->v[0].key.size;
		out->nfiles = 1;
		return 0;
	}
	struct tree_builder b = TREE_BUILDER_INIT;
	for (size_t k = 0; k < w->n; k++) {
		struct wentry *e = &w->v[k];
		tree_builder_add_raw(&b, e->rel, strlen(e->rel), e->type, e->mode, e->key.size,
				     e->type == 'd' ? NULL : e->md);
		e->rel = NULL;
	}
	int rc = tree_builder_listing(out->digest, w->req->listing, &b, &w->req->err);
	out->type = 'd';
	out->size = b.size;
	out->nfiles = b.nfiles;
	tree_builder_free(&b);
	return rc;
}

/* "root/path" (just root for its top), or path alone without a root. */
static char *shown_path(const char *root, const char *path)
{
	if (!root)
		return xstrdup(path);
	while (*path == '/')
		path++;
	return *path ? xasprintf("%s/%s", root, path) : xstrdup(root);
}

/* digest_trees for one window of requests. */
static int digest_window(struct tree_request *reqs, size_t n, struct statcache *sc,
			 const char *cwd, struct cp_error *err)
{
	struct walk *walks = xcalloc(n, sizeof(*walks));
	for (size_t r = 0; r < n; r++) {
		memset(&reqs[r].out, 0, sizeof(reqs[r].out));
		reqs[r].rc = 0;
		walks[r].req = &reqs[r];
		walks[r].rootfd = -1;
		walks[r].shown = shown_path(reqs[r].root, reqs[r].path);
	}
	/* Walking is mostly stat(2): several threads overlap it when there
	 * are many roots. */
	struct pool p = {.n = n, .run = run_walk, .cwd = cwd, .walks = walks};
	pool_run(&p, n >= 8 ? POOL_MAX : 1);

	struct strbuf sb = STRBUF_INIT;
	for (size_t r = 0; sc && r < n; r++)
		if (!walks[r].failed && walks[r].abs)
			cache_lookups(&walks[r], sc, &sb);
	hash_pending(walks, n);

	int rc = 0;
	for (size_t r = 0; r < n; r++) {
		struct walk *w = &walks[r];
		if (!w->failed && w->type != 'l' && finish_root(w, w->abs ? sc : NULL, &sb) < 0)
			w->failed = true;
		if (w->failed) {
			reqs[r].rc = -1;
			memset(&reqs[r].out, 0, sizeof(reqs[r].out));
			if (rc == 0)
				*err = reqs[r].err;
			rc = -1;
		}
		for (size_t k = 0; k < w->n; k++)
			free(w->v[k].rel);
		free(w->v);
		free(w->abs);
		free(w->shown);
		if (w->rootfd >= 0)
			close(w->rootfd);
	}
	sb_free(&sb);
	free(walks);
	return rc;
}

int digest_trees(struct tree_request *reqs, size_t n, struct statcache *sc, struct cp_error *err)
{
	cleanup_free char *cwd = sc ? getcwd(NULL, 0) : NULL;
	int rc = 0;
	/* Windows bound the memory: the entries of WINDOW trees at a time. */
	for (size_t r = 0; r < n; r += WINDOW) {
		struct cp_error e;
		if (digest_window(reqs + r, n - r < WINDOW ? n - r : WINDOW, sc, cwd, &e) < 0 &&
		    rc == 0) {
			*err = e;
			rc = -1;
		}
	}
	return rc;
}

int digest_tree(struct tree_digest *out, const char *path, struct statcache *sc,
		struct cp_error *err)
{
	return digest_tree_in(out, NULL, path, sc, err);
}

int digest_tree_in(struct tree_digest *out, const char *root, const char *path,
		   struct statcache *sc, struct cp_error *err)
{
	struct tree_request *req = xcalloc(1, sizeof(*req));
	req->root = root;
	req->path = path;
	int rc = digest_trees(req, 1, sc, err);
	*out = req->out;
	free(req);
	return rc;
}
