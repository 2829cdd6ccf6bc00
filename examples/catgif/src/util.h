/* Plumbing shared by every catgif subcommand: errors, memory, files,
 * option parsing, digests and a seeded random generator. */
#ifndef CATGIF_UTIL_H
#define CATGIF_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Exit codes of every subcommand. */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,  /* I/O or runtime failure */
	EXIT_INPUT = 2, /* bad usage, bad data, bad checkpoint */
};

/* One-line error message plus the exit code it maps to. Functions that can
 * fail take it last and return 0 / -1 (or NULL). */
struct cg_error {
	int code;
	char msg[512];
};

/* Sets err (if not NULL) to code and a formatted message; returns -1. */
int err_set(struct cg_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "catgif: <msg>" on stderr and returns err->code. */
int err_report(const struct cg_error *err);

/* Allocators that abort on out of memory. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* 64-byte aligned, for float arrays the compiler vectorizes; free with free(). */
float *xalloc_floats(size_t n);

static inline void cleanup_freep(void *p)
{
	free(*(void **)p);
}
static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void cleanup_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define cleanup_free   __attribute__((cleanup(cleanup_freep)))
#define cleanup_close  __attribute__((cleanup(cleanup_closep)))
#define cleanup_fclose __attribute__((cleanup(cleanup_fclosep)))

/* Growable byte buffer with a size cap. */
struct buf {
	unsigned char *data;
	size_t len, cap, max;
};
/* Appends n bytes; fails (returns -1, buffer unchanged) past b->max when max != 0. */
int buf_append(struct buf *b, const void *p, size_t n);
void buf_free(struct buf *b);

/* Writes len bytes to path atomically: a temp file in the same directory,
 * fsync, rename, fsync of the directory. */
int file_write_atomic(const char *path, const void *data, size_t len, struct cg_error *err);
/* Reads a whole file into *out (caller frees); fails past max bytes. */
int file_read_all(unsigned char **out, size_t *out_len, const char *path, size_t max,
                  struct cg_error *err);
/* mkdir -p. */
int dir_create(const char *path, struct cg_error *err);
/* Joins dir and name with one '/'; caller frees. */
char *path_join(const char *dir, const char *name);

/* Hex sha256 of a file into out (65 bytes). */
int sha256_file(char out[65], const char *path, struct cg_error *err);

/* Strict number parsing of option values; the error names the option. */
int parse_long(long *out, const char *opt, const char *s, long min, long max, struct cg_error *err);
int parse_float(float *out, const char *opt, const char *s, float min, float max,
                struct cg_error *err);

/* Seconds from a monotonic clock. */
double now_seconds(void);

/* splitmix64-seeded xoshiro256** generator: the same stream on every host. */
struct rng {
	uint64_t s[4];
};
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n). */
uint64_t rng_below(struct rng *r, uint64_t n);
/* Uniform float in [0, 1). */
float rng_float(struct rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void rng_shuffle(struct rng *r, uint32_t *idx, size_t n);

/* Little-endian encoding used by the on-disk formats. */
static inline void put_u32(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff, p[1] = (v >> 8) & 0xff, p[2] = (v >> 16) & 0xff, p[3] = v >> 24;
}
static inline uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void put_u64(unsigned char *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t get_u64(const unsigned char *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}
static inline uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

#endif
