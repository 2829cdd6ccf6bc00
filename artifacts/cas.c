/* The store's objects: opening it, writing objects atomically, and
 * cas_commit, which hashes a tree while copying it in (one read pass).
 * Checkout, the run cache and gc are in cas_restore.c. */
#include "cas.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "digest_internal.h"
#include "statcache.h"

#define COPY_BUF (256u << 10) /* stays in L2 between read, hash and write */

static int mkdir_private(const char *path, struct cp_error *err)
{
	if (fs_mkdir_p(path, 0700, err) < 0)
		return -1;
	return 0;
}

int cas_open(struct cas **out, const char *state_dir, struct cp_error *err)
{
	const char *env = getenv("CPIPE_STORE");
	struct cas *c = xcalloc(1, sizeof(*c));
	c->tmpfd = -1;
	c->root = env && *env ? xstrdup(env) : path_join(state_dir, "store");
	c->objects = path_join(c->root, "objects/sha256");
	cleanup_free char *tmp = path_join(c->root, "tmp");
	cleanup_free char *runs = path_join(c->root, "runs/sha256");
	if (mkdir_private(c->objects, err) < 0 || mkdir_private(tmp, err) < 0 ||
	    mkdir_private(runs, err) < 0)
		goto fail;
	c->tmpfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->tmpfd < 0) {
		cp_error_errno(err, EXIT_USAGE, "opening the store %s", tmp);
		goto fail;
	}
	/* What writers killed midway left: temporaries and a restore's
	 * staging directories (track_store.c) in tmp, run cache entries
	 * renamed into runs/sha256. */
	fs_sweep_dead(tmp, "", ".tmp.");
	fs_sweep_dead(runs, "", ".tmp.");
	*out = c;
	return 0;
fail:
	cp_error_prefix(err, "the artifact store (CPIPE_STORE=%s)", c->root);
	cas_close(c);
	return -1;
}

/* ".<nonce>.tmp.<pid>": this process's spares, never a dead one's whose
 * pid came back. */
static char spare_tag[64];
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spare_tag_init(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(spare_tag, sizeof(spare_tag), ".%llx%lx.tmp.%ld", (unsigned long long)ts.tv_sec,
		 (unsigned long)ts.tv_nsec, (long)getpid());
}

char *cas_spare_name(const char *digest)
{
	pthread_once(&spare_once, spare_tag_init);
	return xasprintf("spare-%s%s", digest + strlen(DIGEST_PREFIX), spare_tag);
}

/* Removes the spares no checkout took. */
static void drop_spares(int tmpfd)
{
	int fd = spare_tag[0] ? dup(tmpfd) : -1;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d); /* the dup shares tmpfd's offset */
	size_t tl = strlen(spare_tag);
	for (struct dirent *de; (de = readdir(d));) {
		size_t l = strlen(de->d_name);
		if (str_has_prefix(de->d_name, "spare-") && l > tl &&
		    strcmp(de->d_name + l - tl, spare_tag) == 0)
			unlinkat(tmpfd, de->d_name, 0);
	}
	closedir(d);
}

void cas_close(struct cas *c)
{
	if (!c)
		return;
	if (c->tmpfd >= 0) {
		drop_spares(c->tmpfd);
		close(c->tmpfd);
	}
	free(c->root);
	free(c->objects);
	free(c);
}

char *cas_object_path(const struct cas *c, const char *digest)
{
	const char *hex = digest + strlen(DIGEST_PREFIX);
	return xasprintf("%s/%.2s/%s", c->objects, hex, hex + 2);
}

bool cas_has(const struct cas *c, const char *digest)
{
	if (!digest_is_valid(digest))
		return false;
	cleanup_free char *p = cas_object_path(c, digest);
	struct stat st;
	return lstat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* A fresh temporary in tmp/: its name in `name` (PATH_MAX). */
static int tmp_create(char *name, const struct cas *c, struct cp_error *err)
{
	static unsigned seq;
	for (int tries = 0; tries < 100; tries++) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(name, PATH_MAX, "obj%lx%x.tmp.%ld", (unsigned long)ts.tv_nsec, seq++,
			 (long)getpid());
		int fd = openat(c->tmpfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd
				       : cp_error_errno(err, EXIT_USAGE,
							"creating a temporary in %s/tmp", c->root);
	}
	return cp_error_set(err, EXIT_USAGE, "creating a temporary in %s/tmp: too many collisions",
			    c->root);
}

/* Moves the temporary `name` to the object `md`, or drops it when the
 * store has that object already (same bytes). */
static int tmp_install(const struct cas *c, const char *name, const uint8_t md[32],
		       struct cp_error *err)
{
	char d[DIGEST_BUFLEN];
	digest_format(d, md);
	cleanup_free char *final = cas_object_path(c, d);
	struct stat st;
	if (lstat(final, &st) == 0 && S_ISREG(st.st_mode)) {
		unlinkat(c->tmpfd, name, 0);
		return 0;
	}
	cleanup_free char *dir = path_dirname(final);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		unlinkat(c->tmpfd, name, 0);
		return cp_error_errno(err, EXIT_USAGE, "creating %s", dir);
	}
	cleanup_free char *tmp = xasprintf("%s/tmp/%s", c->root, name);
	if (rename(tmp, final) < 0) {
		unlinkat(c->tmpfd, name, 0);
		return cp_error_errno(err, EXIT_USAGE, "storing %s", final);
	}
	return 0;
}

int cas_put_bytes(char out[DIGEST_BUFLEN], struct cas *c, const void *data, size_t len,
		  struct cp_error *err)
{
	uint8_t md[32];
	struct digest_ctx dc;
	digest_init(&dc);
	digest_update(&dc, data, len);
	digest_final_raw(md, &dc);
	digest_format(out, md);
	if (cas_has(c, out))
		return 0;
	char name[PATH_MAX];
	int fd = tmp_create(name, c, err);
	if (fd < 0)
		return -1;
	const char *p = data;
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cp_error_errno(err, EXIT_USAGE, "writing to the store %s", c->root);
			close(fd);
			unlinkat(c->tmpfd, name, 0);
			return -1;
		}
		done += (size_t)n;
	}
	close(fd);
	return tmp_install(c, name, md, err);
}

struct cas_writer {
	struct cas *c;
	int fd;
	struct digest_ctx dc;
	char name[PATH_MAX];
};

int cas_writer_open(struct cas_writer **out, struct cas *c, struct cp_error *err)
{
	struct cas_writer *w = xcalloc(1, sizeof(*w));
	w->c = c;
	w->fd = tmp_create(w->name, c, err);
	if (w->fd < 0) {
		free(w);
		return -1;
	}
	digest_init(&w->dc);
	*out = w;
	return 0;
}

int cas_writer_write(struct cas_writer *w, const void *data, size_t n, struct cp_error *err)
{
	digest_update(&w->dc, data, n);
	const char *p = data;
	while (n > 0) {
		ssize_t k = write(w->fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return cp_error_errno(err, EXIT_USAGE, "writing to the store %s", w->c->root);
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

void cas_writer_abort(struct cas_writer *w)
{
	if (!w)
		return;
	close(w->fd);
	unlinkat(w->c->tmpfd, w->name, 0);
	free(w);
}

int cas_writer_finish(char out[DIGEST_BUFLEN], struct cas_writer *w, struct cp_error *err)
{
	uint8_t md[32];
	digest_final_raw(md, &w->dc);
	digest_format(out, md);
	close(w->fd);
	int rc = tmp_install(w->c, w->name, md, err);
	free(w);
	return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Big files are hashed straight from a mapping of their page cache and
 * each chunk written from that mapping right after it was hashed: one copy
 * of the bytes (into the object's page cache) besides the hash, where a
 * read into a buffer and a write of it make two. A chunk of 256 KiB stays
 * in the core's L2 cache between the hash and the write, and is hashed and
 * written microseconds apart; a change to the file meanwhile moves its
 * ctime, which put_fd's before/after check catches. Measured with
 * bench/store: 1 MiB buffers handed to a writer thread cost 0.9 s of system
 * time per GiB against 0.5 s for this, and lose the overlap whenever the
 * machine's cores are busy. */
#define MAP_MIN (8ll << 20)
#define MAP_WINDOW (64ll << 20)
#define MAP_CHUNK (256u << 10)

/* A file truncated under the mapping raises SIGBUS on access: the copy of
 * this thread gives up (the truncation is then reported as a change). */
static _Thread_local sigjmp_buf *map_jmp;

static void on_sigbus(int sig)
{
	if (map_jmp)
		siglongjmp(*map_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int map_window(const char **out, int src, off_t off, size_t len)
{
	void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, src, off);
	if (m == MAP_FAILED)
		return -1;
	(void)madvise(m, len, MADV_SEQUENTIAL);
	*out = m;
	return 0;
}

/* Hashes and copies `size` bytes of `src` into `dst` through mappings.
 * Returns the bytes copied (fewer when the file shrank meanwhile), -1 with
 * errno set, -2 when the file cannot be mapped (then nothing was done). */
static off_t copy_hash_mapped(struct digest_ctx *dc, int dst, int src, off_t size)
{
	struct sigaction sa = {.sa_handler = on_sigbus}, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	sigjmp_buf jb;
	const char *volatile m = NULL;
	volatile size_t mlen = 0;
	volatile off_t off = 0;
	volatile int e = 0;
	if (sigsetjmp(jb, 1) == 0) {
		map_jmp = &jb;
		for (; off < size; off += (off_t)mlen) {
			mlen = (size_t)(size - off < MAP_WINDOW ? size - off : MAP_WINDOW);
			const char *w;
			if (map_window(&w, src, off, mlen) < 0) {
				e = off == 0 ? -2 : errno;
				break;
			}
			m = w;
			for (size_t done = 0; done < mlen && !e; done += MAP_CHUNK) {
				size_t n = mlen - done < MAP_CHUNK ? mlen - done : MAP_CHUNK;
				digest_update(dc, m + done, n);
				if (write_all(dst, m + done, n) < 0)
					e = errno ? errno : EIO;
			}
			munmap((void *)m, mlen);
			m = NULL;
			if (e)
				break;
		}
	} else if (m) { /* SIGBUS: the file is shorter than it was */
		munmap((void *)m, mlen);
	}
	map_jmp = NULL;
	sigaction(SIGBUS, &old, NULL);
	if (e == -2)
		return -2;
	if (e) {
		errno = e;
		return -1;
	}
	return off;
}

/* One attempt at copying `src` into `dst` (both at offset 0) while hashing:
 * a reflink where the filesystem can, then the clone is hashed; else
 * a big file through mappings; else read, hash and write the same
 * buffers. Returns bytes read, -1 on error. */
static off_t copy_hash(uint8_t md[32], int dst, int src, off_t size, void *buf)
{
	struct digest_ctx dc;
	digest_init(&dc);
	bool cloned = ioctl(dst, FICLONE, src) == 0;
	if (!cloned && size >= MAP_MIN) {
		off_t n = copy_hash_mapped(&dc, dst, src, size);
		int e = errno;
		if (n != -2) {
			digest_final_raw(md, &dc);
			errno = e;
			return n;
		}
	}
	int from = cloned ? dst : src;
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(from, buf, COPY_BUF, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n > 0 && !cloned && write_all(dst, buf, (size_t)n) < 0)) {
			int e = errno;
			digest_final_raw(md, &dc);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		digest_update(&dc, buf, (size_t)n);
		off += n;
	}
	digest_final_raw(md, &dc);
	return off;
}

/* Copies the regular file open as `fd` into the store; `md` its digest,
 * `st` its state as read. A file that keeps changing is an error. */
static int put_fd(uint8_t md[32], struct stat *st, bool *cacheable, struct cas *c, int fd,
		  const char *shown, void *buf, struct cp_error *err)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t started = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		struct stat before, after;
		if (fstat(fd, &before) < 0)
			return cp_error_errno(err, EXIT_USAGE, "reading %s", shown);
		if (!S_ISREG(before.st_mode))
			return cp_error_set(err, EXIT_USAGE, "%s is %s, not a regular file", shown,
					    digest_file_kind(before.st_mode));
		char name[PATH_MAX];
		int tfd = tmp_create(name, c, err);
		if (tfd < 0)
			return -1;
		if (attempt == 0)
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		off_t n = copy_hash(md, tfd, fd, before.st_size, buf);
		int e = errno;
		close(tfd);
		if (n < 0) {
			unlinkat(c->tmpfd, name, 0);
			errno = e;
			return cp_error_errno(err, EXIT_USAGE, "copying %s into the store", shown);
		}
		if (fstat(fd, &after) < 0) {
			unlinkat(c->tmpfd, name, 0);
			return cp_error_errno(err, EXIT_USAGE, "reading %s", shown);
		}
		if (n == before.st_size && digest_same_state(&before, &after)) {
			*st = before;
			struct statcache_key k;
			statcache_key_from_stat(&k, &before);
			*cacheable = statcache_cacheable(&k, fd, started);
			return tmp_install(c, name, md, err);
		}
		unlinkat(c->tmpfd, name, 0);
	}
	return cp_error_set(err, EXIT_USAGE,
			    "%s changed while it was being stored (is something still writing it?)",
			    shown);
}

/* The walk of cas_commit: entries go to `b`, objects to the store. */
struct cwalk {
	struct cas *c;
	struct statcache *sc;
	const char *top; /* as given, for messages */
	char *abs;       /* absolute path of the top, for the stat cache; may be NULL */
	struct tree_builder b;
	struct { dev_t dev; ino_t ino; char *rel; } *links; /* files with st_nlink > 1 */
	size_t nlinks, caplinks;
	void *buf;
};

/* A regular file: from the stat cache when it knows it and the store has
 * it, else copied in. */
static int commit_file(uint8_t md[32], struct stat *st, struct cwalk *w, int dirfd,
		       const char *name, const char *rel, const char *shown, struct cp_error *err)
{
	cleanup_free char *abs = NULL;
	struct statcache_key k;
	if (w->sc && w->abs) {
		abs = *rel ? xasprintf("%s/%s", w->abs, rel) : xstrdup(w->abs);
		statcache_key_from_stat(&k, st);
		char d[DIGEST_BUFLEN];
		if (statcache_lookup(w->sc, md, abs, &k)) {
			digest_format(d, md);
			if (cas_has(w->c, d))
				return 0;
		}
	}
	cleanup_close int fd =
		openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cp_error_errno(err, EXIT_USAGE, "opening %s", shown);
	bool cacheable = false;
	if (put_fd(md, st, &cacheable, w->c, fd, shown, w->buf, err) < 0)
		return -1;
	if (abs && cacheable) {
		statcache_key_from_stat(&k, st);
		statcache_store(w->sc, abs, &k, md);
	}
	return 0;
}

static int commit_link(uint8_t md[32], unsigned long long *len, struct cwalk *w, int dirfd,
		       const char *name, const char *shown, struct cp_error *err)
{
	char target[PATH_MAX];
	ssize_t n = fs_readlink_at(target, dirfd, name, shown, err);
	if (n < 0)
		return -1;
	char d[DIGEST_BUFLEN];
	if (cas_put_bytes(d, w->c, target, (size_t)n, err) < 0)
		return -1;
	digest_parse(md, d);
	*len = (unsigned long long)n;
	return 0;
}

static int note_link(struct cwalk *w, const struct stat *st, const char *rel, struct cp_error *err)
{
	for (size_t i = 0; i < w->nlinks; i++)
		if (w->links[i].dev == st->st_dev && w->links[i].ino == st->st_ino)
			return cp_error_set(
			    err, EXIT_USAGE,
			    "%s/%s and %s/%s are hardlinks to one file; an artifact "
			    "may hold each file once (copy it instead)",
			    w->top, w->links[i].rel, w->top, rel);
	if (w->nlinks == w->caplinks) {
		w->caplinks = w->caplinks ? 2 * w->caplinks : 16;
		w->links = xrealloc(w->links, w->caplinks * sizeof(*w->links));
	}
	w->links[w->nlinks].dev = st->st_dev;
	w->links[w->nlinks].ino = st->st_ino;
	w->links[w->nlinks++].rel = xstrdup(rel);
	return 0;
}

/* Adds the entries below the directory open as `dfd` (`drel` "" at the top). */
static int commit_dir(struct cwalk *w, int dfd, const char *drel, struct cp_error *err)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return cp_error_errno(err, EXIT_USAGE, "opening %s/%s", w->top, drel);
	}
	int rc = -1;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno) {
				cp_error_errno(err, EXIT_USAGE, "reading directory %s/%s", w->top,
					       drel);
				goto out;
			}
			break;
		}
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		char *rel = *drel ? xasprintf("%s/%s", drel, name) : xstrdup(name);
		cleanup_free char *shown = xasprintf("%s/%s", w->top, rel);
		struct stat st;
		uint8_t md[32];
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			cp_error_errno(err, EXIT_USAGE, "%s", shown);
			free(rel);
			goto out;
		}
		int r = 0;
		if (S_ISDIR(st.st_mode)) {
			tree_builder_add_raw(&w->b, rel, strlen(rel), 'd', st.st_mode & 07777, 0, NULL);
			int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			r = sub < 0 ? cp_error_errno(err, EXIT_USAGE, "opening %s", shown)
				    : commit_dir(w, sub, rel, err);
		} else if (S_ISLNK(st.st_mode)) {
			unsigned long long len;
			r = commit_link(md, &len, w, dirfd(d), name, shown, err);
			if (r == 0)
				tree_builder_add_raw(&w->b, rel, strlen(rel), 'l', st.st_mode & 07777, len, md);
			else
				free(rel);
		} else if (S_ISREG(st.st_mode)) {
			r = st.st_nlink > 1 ? note_link(w, &st, rel, err) : 0;
			if (r == 0)
				r = commit_file(md, &st, w, dirfd(d), name, rel, shown, err);
			if (r == 0)
				tree_builder_add_raw(&w->b, rel, strlen(rel), 'f', st.st_mode & 07777,
						     (unsigned long long)st.st_size, md);
			else
				free(rel);
		} else {
			cp_error_set(err, EXIT_USAGE,
				     "%s is %s; an artifact may hold only regular files, "
				     "directories and symlinks",
				     shown, digest_file_kind(st.st_mode));
			free(rel);
			goto out;
		}
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	closedir(d);
	return rc;
}

int cas_commit(struct tree_digest *out, struct cas *c, const char *path, struct statcache *sc,
	       struct cp_error *err)
{
	memset(out, 0, sizeof(*out));
	struct cwalk w = {.c = c, .sc = sc, .top = path, .b = TREE_BUILDER_INIT};
	if (sc) {
		cleanup_free char *cwd = path[0] == '/' ? NULL : getcwd(NULL, 0);
		w.abs = path[0] == '/' ? path_normalize(path) : cwd ? path_absolute(cwd, path) : NULL;
	}
	w.buf = xmalloc(COPY_BUF);
	struct stat st;
	uint8_t md[32];
	int rc = -1;
	if (lstat(path, &st) < 0) {
		cp_error_errno(err, EXIT_USAGE, "%s", path);
		goto out;
	}
	if (S_ISLNK(st.st_mode)) {
		cleanup_free char *parent = path_dirname(path);
		const char *slash = strrchr(path, '/');
		cleanup_close int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0 || commit_link(md, &out->size, &w, pfd, slash ? slash + 1 : path, path, err) < 0) {
			if (pfd < 0)
				cp_error_errno(err, EXIT_USAGE, "opening %s", parent);
			goto out;
		}
		out->type = 'l';
	} else if (S_ISREG(st.st_mode)) {
		cleanup_free char *parent = path_dirname(path);
		const char *slash = strrchr(path, '/');
		cleanup_close int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0) {
			cp_error_errno(err, EXIT_USAGE, "opening %s", parent);
			goto out;
		}
		if (commit_file(md, &st, &w, pfd, slash ? slash + 1 : path, "", path, err) < 0)
			goto out;
		out->type = 'f';
		out->size = (unsigned long long)st.st_size;
		out->nfiles = 1;
	} else if (S_ISDIR(st.st_mode)) {
		int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0) {
			cp_error_errno(err, EXIT_USAGE, "opening %s", path);
			goto out;
		}
		if (commit_dir(&w, dfd, "", err) < 0)
			goto out;
		struct strbuf listing = STRBUF_INIT;
		int r = tree_builder_listing(out->digest, &listing, &w.b, err);
		char stored[DIGEST_BUFLEN];
		if (r == 0)
			r = cas_put_bytes(stored, c, listing.buf ? listing.buf : "", listing.len, err);
		sb_free(&listing);
		if (r < 0)
			goto out;
		out->type = 'd';
		out->size = w.b.size;
		out->nfiles = w.b.nfiles;
		rc = 0;
		goto out;
	} else {
		cp_error_set(err, EXIT_USAGE,
			     "%s is %s; an artifact may be only a regular file, a directory or a "
			     "symlink",
			     path, digest_file_kind(st.st_mode));
		goto out;
	}
	digest_format(out->digest, md);
	rc = 0;
out:
	tree_builder_free(&w.b);
	for (size_t i = 0; i < w.nlinks; i++)
		free(w.links[i].rel);
	free(w.links);
	free(w.abs);
	free(w.buf);
	return rc;
}
