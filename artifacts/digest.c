/* Content digests: sha256 through OpenSSL EVP (SHA-NI where the CPU has it),
 * the canonical directory listing, and the walk that feeds it. */
#include "digest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/fs.h"
#include "statcache.h"

#define BIG_BUF (256u << 10) /* read size: fits L2, so the copy and the hash share it */
#define SMALL_BUF (64u << 10) /* on the stack, for files that fit */
#define POOL_MAX 4
#define POOL_MIN_BYTES (16ull << 20) /* below this, threads cost more than they save */

static atomic_ullong files_hashed;
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void crypto_die(const char *what)
{
	fprintf(stderr, "cpipe: libcrypto: %s failed\n", what);
	abort();
}

/* Fetched once: the implicit fetch behind EVP_sha256() costs a lock and a
 * lookup on every EVP_DigestInit_ex. */
static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!sha256_md)
		crypto_die("EVP_MD_fetch(SHA256)");
}

void digest_init(struct digest_ctx *c)
{
	pthread_once(&sha256_once, sha256_fetch);
	c->md = EVP_MD_CTX_new();
	if (!c->md || EVP_DigestInit_ex(c->md, sha256_md, NULL) != 1)
		crypto_die("EVP_DigestInit_ex");
}

void digest_update(struct digest_ctx *c, const void *data, size_t n)
{
	if (n && EVP_DigestUpdate(c->md, data, n) != 1)
		crypto_die("EVP_DigestUpdate");
}

void digest_final_raw(uint8_t out[32], struct digest_ctx *c)
{
	unsigned len = 0;
	if (EVP_DigestFinal_ex(c->md, out, &len) != 1 || len != 32)
		crypto_die("EVP_DigestFinal_ex");
	EVP_MD_CTX_free(c->md);
	c->md = NULL;
}

void digest_final(char out[DIGEST_BUFLEN], struct digest_ctx *c)
{
	uint8_t md[32];
	digest_final_raw(md, c);
	digest_format(out, md);
}

int digest_bytes(char out[DIGEST_BUFLEN], const void *data, size_t n)
{
	struct digest_ctx c;
	digest_init(&c);
	digest_update(&c, data, n);
	digest_final(out, &c);
	return 0;
}

static const char hexdig[] = "0123456789abcdef";

void digest_format(char out[DIGEST_BUFLEN], const uint8_t md[32])
{
	memcpy(out, DIGEST_PREFIX, 7);
	for (int i = 0; i < 32; i++) {
		out[7 + 2 * i] = hexdig[md[i] >> 4];
		out[8 + 2 * i] = hexdig[md[i] & 15];
	}
	out[DIGEST_STRLEN] = '\0';
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int digest_parse(uint8_t out[32], const char *s)
{
	if (strncmp(s, DIGEST_PREFIX, 7) != 0 || strlen(s) != DIGEST_STRLEN)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(s[7 + 2 * i]), lo = hexval(s[8 + 2 * i]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

bool digest_is_valid(const char *s)
{
	uint8_t md[32];
	return digest_parse(md, s) == 0;
}

unsigned long long digest_files_hashed(void)
{
	return atomic_load(&files_hashed);
}

/* ---- files ---- */

static const char *file_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return "a directory";
	case S_IFLNK:
		return "a symlink";
	case S_IFIFO:
		return "a fifo";
	case S_IFSOCK:
		return "a socket";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	default:
		return "a special file";
	}
}

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct hashed {
	uint8_t md[32];
	struct stat st;  /* as it was before and after the read */
	bool cacheable;  /* passes the stat cache's racy rule */
};

static bool same_state(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Hashes the regular file open as `fd` through `buf`. A file that changes
 * while it is read is read again, a few times, then is an error. */
static int hash_fd(struct hashed *out, int fd, const char *shown, bool want_cacheable, void *buf,
		   size_t bufsz, struct cp_error *err)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		int64_t started = realtime_ns();
		struct stat before, after;
		if (fstat(fd, &before) < 0)
			return cp_error_errno(err, "reading %s", shown);
		if (!S_ISREG(before.st_mode))
			return cp_error_set(err, "%s is %s, not a regular file", shown,
					    file_kind(before.st_mode));
		if (attempt == 0)
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		struct digest_ctx c;
		digest_init(&c);
		off_t off = 0;
		for (;;) {
			ssize_t n = pread(fd, buf, bufsz, off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				int e = errno;
				digest_final_raw(out->md, &c);
				errno = e;
				return cp_error_errno(err, "reading %s", shown);
			}
			if (n == 0)
				break;
			digest_update(&c, buf, (size_t)n);
			off += n;
		}
		digest_final_raw(out->md, &c);
		if (fstat(fd, &after) < 0)
			return cp_error_errno(err, "reading %s", shown);
		if (off == before.st_size && same_state(&before, &after)) {
			atomic_fetch_add(&files_hashed, 1);
			out->st = before;
			out->cacheable = false;
			if (want_cacheable) {
				struct statcache_key k;
				statcache_key_from_stat(&k, &before);
				out->cacheable = statcache_cacheable(&k, fd, started);
			}
			return 0;
		}
	}
	return cp_error_set(err, "%s changed while it was being hashed (is something still writing it?)",
			    shown);
}

/* Lexical absolute form of `path` for cache keys; NULL if it cannot be had
 * (then nothing is cached: the key's inode and times keep any path sound). */
static char *absolute_path(const char *path)
{
	if (path[0] == '/')
		return path_normalize(path);
	cleanup_free char *cwd = getcwd(NULL, 0);
	return cwd ? path_absolute(cwd, path) : NULL;
}

/* Digest of the regular file `name` under `dirfd`, answered from `sc` when
 * its key matches. `nofollow`: a symlink there is an error. */
static int digest_reg(uint8_t md[32], struct stat *st_out, int dirfd, const char *name,
		      bool nofollow, struct statcache *sc, struct cp_error *err)
{
	cleanup_free char *abs = NULL;
	struct statcache_key k;
	if (sc) {
		struct stat st;
		if (fstatat(dirfd, name, &st, nofollow ? AT_SYMLINK_NOFOLLOW : 0) < 0)
			return cp_error_errno(err, "%s", name);
		if (!S_ISREG(st.st_mode))
			return cp_error_set(err, "%s is %s, not a regular file", name,
					    file_kind(st.st_mode));
		abs = absolute_path(name);
		statcache_key_from_stat(&k, &st);
		if (abs && statcache_lookup(sc, md, abs, &k)) {
			*st_out = st;
			return 0;
		}
	}
	cleanup_close int fd = openat(dirfd, name,
				      O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
					      (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0)
		return cp_error_errno(err, "opening %s", name);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cp_error_errno(err, "reading %s", name);
	char small[SMALL_BUF];
	cleanup_free void *big = NULL;
	void *buf = small;
	size_t bufsz = sizeof(small);
	if (st.st_size > (off_t)sizeof(small)) {
		buf = big = xmalloc(BIG_BUF);
		bufsz = BIG_BUF;
	}
	struct hashed h;
	if (hash_fd(&h, fd, name, abs != NULL, buf, bufsz, err) < 0)
		return -1;
	if (h.cacheable) {
		statcache_key_from_stat(&k, &h.st);
		statcache_store(sc, abs, &k, h.md);
	}
	memcpy(md, h.md, 32);
	*st_out = h.st;
	return 0;
}

int digest_file(char out[DIGEST_BUFLEN], const char *path, struct statcache *sc,
		struct cp_error *err)
{
	uint8_t md[32];
	struct stat st;
	if (digest_reg(md, &st, AT_FDCWD, path, false, sc, err) < 0)
		return -1;
	digest_format(out, md);
	return 0;
}

/* ---- walking a directory ---- */

static atomic_int openat2_missing;

static int open_by_components(int rootfd, const char *rel, int flags)
{
	cleanup_free char *copy = xstrdup(rel);
	int dfd = rootfd;
	char *p = copy;
	for (char *slash; (slash = strchr(p, '/')); p = slash + 1) {
		*slash = '\0';
		int nfd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		if (dfd != rootfd)
			close(dfd);
		if (nfd < 0) {
			errno = e;
			return -1;
		}
		dfd = nfd;
	}
	int fd = openat(dfd, p, flags | O_NOFOLLOW);
	int e = errno;
	if (dfd != rootfd)
		close(dfd);
	errno = e;
	return fd;
}

/* Opens `rel` below `rootfd` without following any symlink on the way, so
 * a link swapped in by a running stage cannot lead outside the tree. */
static int open_beneath(int rootfd, const char *rel, int flags)
{
	if (!atomic_load_explicit(&openat2_missing, memory_order_relaxed)) {
		struct open_how how = {
			.flags = (uint64_t)flags,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		for (int tries = 0; tries < 8; tries++) {
			long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
			if (fd >= 0)
				return (int)fd;
			if (errno != EINTR && errno != EAGAIN)
				break;
		}
		if (errno == ENOSYS)
			atomic_store(&openat2_missing, 1);
		/* ENOSYS, or EPERM from a seccomp filter that does not know
		 * openat2: walk the components instead. */
		if (errno != ENOSYS && errno != EPERM && errno != EAGAIN && errno != EINTR)
			return -1;
	}
	return open_by_components(rootfd, rel, flags);
}

struct wentry {
	char *rel; /* owned until handed to the builder */
	unsigned long long size;
	uint64_t dev, ino;
	unsigned mode;
	char type;
	bool hash;      /* content still to be read */
	bool linked;    /* st_nlink > 1 */
	bool cacheable; /* hashed, and passes the racy rule: store `key` */
	struct statcache_key key;
	uint8_t md[32];
};

struct walk {
	int rootfd;
	const char *shown; /* the root as the caller named it */
	const char *abs;   /* its absolute form, when caching */
	struct statcache *sc;
	struct wentry *v;
	size_t n, cap;
	struct strbuf key; /* scratch: absolute path of an entry */
};

static const char *abs_of(struct walk *w, const char *rel)
{
	sb_reset(&w->key);
	sb_adds(&w->key, w->abs);
	if (w->key.len == 0 || w->key.buf[w->key.len - 1] != '/')
		sb_addc(&w->key, '/');
	sb_adds(&w->key, rel);
	return w->key.buf;
}

static void wentry_fill(struct wentry *e, const struct stat *st)
{
	e->size = (unsigned long long)st->st_size;
	e->mode = st->st_mode & 07777;
	e->dev = (uint64_t)st->st_dev;
	e->ino = (uint64_t)st->st_ino;
	e->linked = st->st_nlink > 1;
}

/* Adds the entries of directory `drel` ("" for the root); directories found
 * are appended to *stack. */
static int walk_dir(struct walk *w, const char *drel, size_t **stack, size_t *nstack,
		    size_t *stackcap, struct cp_error *err)
{
	int dfd = drel[0] ? open_beneath(w->rootfd, drel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
			  : openat(w->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return cp_error_errno(err, "opening %s/%s", w->shown, drel);
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return cp_error_errno(err, "opening %s/%s", w->shown, drel);
	}
	int rc = -1;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno) {
				cp_error_errno(err, "reading directory %s/%s", w->shown, drel);
				goto out;
			}
			break;
		}
		const char *name = de->d_name;
		if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
			continue;
		char *rel = drel[0] ? xasprintf("%s/%s", drel, name) : xstrdup(name);
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 64;
			w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
		}
		struct wentry *e = &w->v[w->n++];
		memset(e, 0, sizeof(*e));
		e->rel = rel;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			cp_error_errno(err, "%s/%s", w->shown, rel);
			goto out;
		}
		wentry_fill(e, &st);
		switch (st.st_mode & S_IFMT) {
		case S_IFDIR:
			e->type = 'd';
			e->size = 0;
			if (*nstack == *stackcap) {
				*stackcap = *stackcap ? *stackcap * 2 : 16;
				*stack = xrealloc(*stack, *stackcap * sizeof(**stack));
			}
			(*stack)[(*nstack)++] = w->n - 1;
			break;
		case S_IFLNK: {
			char target[PATH_MAX];
			ssize_t n = readlinkat(dirfd(d), name, target, sizeof(target));
			if (n < 0 || (size_t)n == sizeof(target)) {
				if (n >= 0)
					errno = ENAMETOOLONG;
				cp_error_errno(err, "reading symlink %s/%s", w->shown, rel);
				goto out;
			}
			e->type = 'l';
			e->size = (unsigned long long)n;
			struct digest_ctx c;
			digest_init(&c);
			digest_update(&c, target, (size_t)n);
			digest_final_raw(e->md, &c);
			break;
		}
		case S_IFREG:
			e->type = 'f';
			e->hash = true;
			if (w->sc) {
				struct statcache_key k;
				statcache_key_from_stat(&k, &st);
				if (statcache_lookup(w->sc, e->md, abs_of(w, rel), &k))
					e->hash = false;
			}
			break;
		default:
			cp_error_set(err,
				     "%s/%s is %s; an artifact may hold only regular files, "
				     "directories and symlinks",
				     w->shown, rel, file_kind(st.st_mode));
			goto out;
		}
	}
	rc = 0;
out:
	closedir(d);
	return rc;
}

static int walk_tree(struct walk *w, struct cp_error *err)
{
	cleanup_free size_t *stack = NULL;
	size_t nstack = 0, stackcap = 0;
	if (walk_dir(w, "", &stack, &nstack, &stackcap, err) < 0)
		return -1;
	while (nstack > 0) {
		/* The string outlives reallocations of w->v: copy the pointer. */
		const char *drel = w->v[stack[--nstack]].rel;
		if (walk_dir(w, drel, &stack, &nstack, &stackcap, err) < 0)
			return -1;
	}
	return 0;
}

/* Hashing the files the stat cache could not answer, on up to POOL_MAX
 * threads pulling from one counter. Each result lands in its own entry and
 * the error reported is the first in `todo` order, so nothing depends on
 * scheduling: every index below a failing one was claimed, hence done. */
struct pool {
	struct walk *w;
	const size_t *todo;
	size_t ntodo;
	atomic_size_t next;
	atomic_bool stop;
};

struct worker {
	struct pool *p;
	pthread_t tid;
	size_t failed; /* index into todo; SIZE_MAX when none */
	struct cp_error err;
};

static int hash_entry(struct wentry *e, const struct walk *w, void *buf, struct cp_error *err)
{
	cleanup_free char *shown = xasprintf("%s/%s", w->shown, e->rel);
	cleanup_close int fd = open_beneath(w->rootfd, e->rel,
					    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cp_error_errno(err, "opening %s", shown);
	struct hashed h;
	if (hash_fd(&h, fd, shown, w->sc != NULL, buf, BIG_BUF, err) < 0)
		return -1;
	memcpy(e->md, h.md, 32);
	wentry_fill(e, &h.st);
	statcache_key_from_stat(&e->key, &h.st);
	e->cacheable = h.cacheable;
	return 0;
}

static void *worker_run(void *arg)
{
	struct worker *wk = arg;
	struct pool *p = wk->p;
	void *buf = xmalloc(BIG_BUF);
	while (!atomic_load(&p->stop)) {
		size_t i = atomic_fetch_add(&p->next, 1);
		if (i >= p->ntodo)
			break;
		if (hash_entry(&p->w->v[p->todo[i]], p->w, buf, &wk->err) < 0) {
			wk->failed = i;
			atomic_store(&p->stop, true);
			break;
		}
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

static const struct walk *sort_walk; /* qsort has no context argument */

static int cmp_todo(const void *a, const void *b)
{
	const struct wentry *x = &sort_walk->v[*(const size_t *)a];
	const struct wentry *y = &sort_walk->v[*(const size_t *)b];
	if (x->size != y->size)
		return x->size < y->size ? 1 : -1; /* largest first balances the threads */
	return strcmp(x->rel, y->rel);
}

static int cmp_wentry(const void *a, const void *b)
{
	return strcmp(((const struct wentry *)a)->rel, ((const struct wentry *)b)->rel);
}

static int hash_pending(struct walk *w, struct cp_error *err)
{
	cleanup_free size_t *todo = xmalloc((w->n ? w->n : 1) * sizeof(*todo));
	size_t ntodo = 0;
	unsigned long long bytes = 0;
	for (size_t k = 0; k < w->n; k++) {
		if (w->v[k].hash) {
			todo[ntodo++] = k;
			bytes += w->v[k].size;
		}
	}
	if (ntodo == 0)
		return 0;
	size_t nworkers = 1;
	if (ntodo >= 2 && bytes >= POOL_MIN_BYTES) {
		nworkers = cpu_count();
		if (nworkers > POOL_MAX)
			nworkers = POOL_MAX;
		if (nworkers > ntodo)
			nworkers = ntodo;
		sort_walk = w;
		qsort(todo, ntodo, sizeof(*todo), cmp_todo);
	}
	struct pool p = {.w = w, .todo = todo, .ntodo = ntodo};
	atomic_init(&p.next, 0);
	atomic_init(&p.stop, false);
	struct worker *wk = xcalloc(nworkers, sizeof(*wk));
	size_t started = 1;
	for (size_t i = 0; i < nworkers; i++) {
		wk[i].p = &p;
		wk[i].failed = SIZE_MAX;
	}
	/* The calling thread is worker 0; a thread that cannot be created
	 * just leaves more work to the others. */
	for (size_t i = 1; i < nworkers; i++, started++)
		if (pthread_create(&wk[i].tid, NULL, worker_run, &wk[i]) != 0)
			break;
	worker_run(&wk[0]);
	for (size_t i = 1; i < started; i++)
		pthread_join(wk[i].tid, NULL);
	size_t first = 0;
	for (size_t i = 1; i < started; i++)
		if (wk[i].failed < wk[first].failed)
			first = i;
	int rc = 0;
	if (wk[first].failed != SIZE_MAX) {
		*err = wk[first].err;
		rc = -1;
	}
	free(wk);
	return rc;
}

static int cmp_inode(const void *a, const void *b)
{
	const struct wentry *x = *(const struct wentry *const *)a;
	const struct wentry *y = *(const struct wentry *const *)b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
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
		if (v[k]->dev == v[k - 1]->dev && v[k]->ino == v[k - 1]->ino)
			return cp_error_set(err,
					    "%s/%s and %s/%s are hardlinks to one file; an artifact "
					    "may hold each file once (copy it instead)",
					    w->shown, v[k - 1]->rel, w->shown, v[k]->rel);
	return 0;
}

static int digest_dir(struct tree_digest *out, const char *path, struct statcache *sc,
		      struct cp_error *err)
{
	cleanup_close int rootfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0)
		return cp_error_errno(err, "opening %s", path);
	cleanup_free char *abs = sc ? absolute_path(path) : NULL;
	struct walk w = {.rootfd = rootfd, .shown = path, .abs = abs, .sc = abs ? sc : NULL,
			 .key = STRBUF_INIT};
	struct tree_builder b = TREE_BUILDER_INIT;
	int rc = -1;
	if (walk_tree(&w, err) < 0)
		goto out;
	if (w.n > 1)
		qsort(w.v, w.n, sizeof(*w.v), cmp_wentry);
	if (hash_pending(&w, err) < 0 || check_hardlinks(&w, err) < 0)
		goto out;
	for (size_t k = 0; k < w.n; k++) {
		struct wentry *e = &w.v[k];
		if (e->cacheable)
			statcache_store(sc, abs_of(&w, e->rel), &e->key, e->md);
		tree_builder_add_raw(&b, e->rel, strlen(e->rel), e->type, e->mode, e->size,
			     e->type == 'd' ? NULL : e->md);
		e->rel = NULL;
	}
	if (tree_builder_finish(out->digest, &b, err) < 0)
		goto out;
	out->type = 'd';
	out->size = b.size;
	out->nfiles = b.nfiles;
	rc = 0;
out:
	for (size_t k = 0; k < w.n; k++)
		free(w.v[k].rel);
	free(w.v);
	sb_free(&w.key);
	tree_builder_free(&b);
	return rc;
}

int digest_tree(struct tree_digest *out, const char *path, struct statcache *sc,
		struct cp_error *err)
{
	struct stat st;
	memset(out, 0, sizeof(*out));
	if (lstat(path, &st) < 0)
		return cp_error_errno(err, "%s", path);
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR:
		return digest_dir(out, path, sc, err);
	case S_IFLNK: {
		char target[PATH_MAX];
		ssize_t n = readlink(path, target, sizeof(target));
		if (n < 0 || (size_t)n == sizeof(target)) {
			if (n >= 0)
				errno = ENAMETOOLONG;
			return cp_error_errno(err, "reading symlink %s", path);
		}
		digest_bytes(out->digest, target, (size_t)n);
		out->type = 'l';
		out->size = (unsigned long long)n;
		return 0;
	}
	case S_IFREG: {
		uint8_t md[32];
		if (digest_reg(md, &st, AT_FDCWD, path, true, sc, err) < 0)
			return -1;
		digest_format(out->digest, md);
		out->type = 'f';
		out->size = (unsigned long long)st.st_size;
		out->nfiles = 1;
		return 0;
	}
	default:
		return cp_error_set(err,
				    "%s is %s; an artifact may be only a regular file, a directory "
				    "or a symlink",
				    path, file_kind(st.st_mode));
	}
}
