/* Plumbing shared by every catgif subcommand. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

int err_set(struct cg_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->code = code;
	return -1;
}

int err_report(const struct cg_error *err)
{
	fprintf(stderr, "catgif: %s\n", err->msg);
	return err->code ? err->code : EXIT_FAIL;
}

static void oom(size_t n)
{
	fprintf(stderr, "catgif: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		oom(nmemb * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

float *xalloc_floats(size_t n)
{
	size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
	void *p = aligned_alloc(64, bytes ? bytes : 64);
	if (!p)
		oom(bytes);
	return memset(p, 0, bytes);
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (b->max && (n > b->max || b->len > b->max - n))
		return -1;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static int fsync_dir_of(const char *path)
{
	cleanup_free char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	return fsync(fd);
}

int file_write_atomic(const char *path, const void *data, size_t len, struct cg_error *err)
{
	/* Like the outputs of every stage, the file's directory may not exist
	 * yet on a fresh volume. */
	const char *slash = strrchr(path, '/');
	if (slash && slash != path) {
		cleanup_free char *dir = xstrdup(path);
		dir[slash - path] = '\0';
		if (dir_create(dir, err) < 0)
			return -1;
	}
	size_t n = strlen(path) + 16;
	cleanup_free char *tmp = xmalloc(n);
	snprintf(tmp, n, "%s.tmpXXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return err_set(err, EXIT_FAIL, "%s: cannot create temp file: %s", path,
		               strerror(errno));
	const unsigned char *p = data;
	size_t left = len;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		p += w;
		left -= (size_t)w;
	}
	if (fchmod(fd, 0644) < 0 || fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	fsync_dir_of(path);
	return 0;
fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err_set(err, EXIT_FAIL, "%s: cannot write: %s", path, strerror(e));
}

int file_read_all(unsigned char **out, size_t *out_len, const char *path, size_t max,
                  struct cg_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errno == ENOENT ? EXIT_INPUT : EXIT_FAIL, "%s: cannot open: %s",
		               path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return err_set(err, EXIT_FAIL, "%s: cannot stat: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(err, EXIT_INPUT, "%s: not a regular file", path);
	if ((uint64_t)st.st_size > max)
		return err_set(err, EXIT_INPUT, "%s: too large (%lld bytes, at most %zu)", path,
		               (long long)st.st_size, max);
	size_t len = (size_t)st.st_size, got = 0;
	unsigned char *data = xmalloc(len + 1);
	while (got < len) {
		ssize_t r = read(fd, data + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(data);
			return err_set(err, EXIT_FAIL, "%s: read failed: %s", path,
			               r < 0 ? strerror(errno) : "file shrank while reading");
		}
		got += (size_t)r;
	}
	data[len] = 0;
	*out = data;
	*out_len = len;
	return 0;
}

int dir_create(const char *path, struct cg_error *err)
{
	cleanup_free char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return err_set(err, EXIT_FAIL, "%s: cannot create: %s", p, strerror(errno));
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		return err_set(err, EXIT_FAIL, "%s: cannot create: %s", p, strerror(errno));
	struct stat st;
	if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(err, EXIT_INPUT, "%s: not a directory", p);
	return 0;
}

char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = xmalloc(n);
	size_t dl = strlen(dir);
	snprintf(p, n, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
	return p;
}

int sha256_file(char out[65], const char *path, struct cg_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, EXIT_INPUT, "%s: cannot open: %s", path, strerror(errno));
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		return err_set(err, EXIT_FAIL, "sha256: cannot initialise libcrypto digest");
	}
	cleanup_free unsigned char *chunk = xmalloc(1 << 16);
	for (;;) {
		ssize_t r = read(fd, chunk, 1 << 16);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			EVP_MD_CTX_free(ctx);
			return err_set(err, EXIT_FAIL, "%s: read failed: %s", path,
			               strerror(errno));
		}
		if (r == 0)
			break;
		EVP_DigestUpdate(ctx, chunk, (size_t)r);
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
	return 0;
}

int parse_long(long *out, const char *opt, const char *s, long min, long max, struct cg_error *err)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		return err_set(err, EXIT_INPUT, "%s: \"%s\" is not an integer", opt, s);
	if (v < min || v > max)
		return err_set(err, EXIT_INPUT, "%s: %ld is out of range [%ld, %ld]", opt, v, min,
		               max);
	*out = v;
	return 0;
}

int parse_float(float *out, const char *opt, const char *s, float min, float max,
                struct cg_error *err)
{
	char *end;
	errno = 0;
	float v = strtof(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		return err_set(err, EXIT_INPUT, "%s: \"%s\" is not a number", opt, s);
	if (v < min || v > max)
		return err_set(err, EXIT_INPUT, "%s: %g is out of range [%g, %g]", opt, (double)v,
		               (double)min, (double)max);
	*out = v;
	return 0;
}

double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	/* Rejection sampling keeps the draw unbiased. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = rng_next(r);
	while (x >= limit);
	return x % n;
}

float rng_float(struct rng *r)
{
	return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

void rng_shuffle(struct rng *r, uint32_t *idx, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(r, i);
		uint32_t t = idx[i - 1];
		idx[i - 1] = idx[j];
		idx[j] = t;
	}
}
