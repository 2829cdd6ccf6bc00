/* Content digests: sha256 through OpenSSL EVP (SHA-NI where the CPU has it)
 * of bytes and of files. Trees are in tree_walk.c and tree_builder.c. */
#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../lib/fs.h"
#include "digest_internal.h"
#include "statcache.h"

#define SMALL_BUF (64u << 10) /* on the stack, for files that fit */

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

const char *digest_file_kind(mode_t mode)
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

bool digest_same_state(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

int digest_fd(struct hashed *out, int fd, const char *shown, bool want_cacheable, void *buf,
		   size_t bufsz, struct cp_error *err)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		int64_t started = realtime_ns();
		struct stat before, after;
		if (fstat(fd, &before) < 0)
			return cp_error_errno(err, EXIT_USAGE, "reading %s", shown);
		if (!S_ISREG(before.st_mode))
			return cp_error_set(err, EXIT_USAGE, "%s is %s, not a regular file", shown,
					    digest_file_kind(before.st_mode));
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
				return cp_error_errno(err, EXIT_USAGE, "reading %s", shown);
			}
			if (n == 0)
				break;
			digest_update(&c, buf, (size_t)n);
			off += n;
		}
		digest_final_raw(out->md, &c);
		if (fstat(fd, &after) < 0)
			return cp_error_errno(err, EXIT_USAGE, "reading %s", shown);
		if (off == before.st_size && digest_same_state(&before, &after)) {
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
	return cp_error_set(err, EXIT_USAGE,
			    "%s changed while it was being hashed (is something still writing it?)",
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

int digest_file(char out[DIGEST_BUFLEN], const char *path, struct statcache *sc,
		struct cp_error *err)
{
	cleanup_free char *abs = NULL;
	struct statcache_key k;
	uint8_t md[32];
	if (sc) {
		struct stat st;
		if (stat(path, &st) < 0)
			return cp_error_errno(err, EXIT_USAGE, "%s", path);
		if (!S_ISREG(st.st_mode))
			return cp_error_set(err, EXIT_USAGE, "%s is %s, not a regular file", path,
					    digest_file_kind(st.st_mode));
		abs = absolute_path(path);
		statcache_key_from_stat(&k, &st);
		if (abs && statcache_lookup(sc, md, abs, &k)) {
			digest_format(out, md);
			return 0;
		}
	}
	/* O_NONBLOCK: opening a fifo must not wait for a writer. */
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return cp_error_errno(err, EXIT_USAGE, "opening %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cp_error_errno(err, EXIT_USAGE, "reading %s", path);
	char small[SMALL_BUF];
	cleanup_free void *big = NULL;
	void *buf = small;
	size_t bufsz = sizeof(small);
	if (st.st_size > (off_t)sizeof(small)) {
		buf = big = xmalloc(BIG_BUF);
		bufsz = BIG_BUF;
	}
	struct hashed h;
	if (digest_fd(&h, fd, path, abs != NULL, buf, bufsz, err) < 0)
		return -1;
	if (h.cacheable) {
		statcache_key_from_stat(&k, &h.st);
		statcache_store(sc, abs, &k, h.md);
	}
	digest_format(out, h.md);
	return 0;
}
