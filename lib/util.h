/* Shared plumbing: allocation that aborts on OOM, cleanup helpers, a capped
 * growable buffer, string and key/value vectors, nearest-name suggestions.
 * Nothing domain-specific lives here. */
#ifndef CPIPE_LIB_UTIL_H
#define CPIPE_LIB_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: out of memory aborts with a message, as a CLI tool may. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) CP_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) CP_PRINTF(1, 0);

/* Cleanup attributes: `cleanup_free char *s = ...;` frees on scope exit. */
void cleanup_free_fn(void *p);
void cleanup_close_fn(int *fd);
void cleanup_fclose_fn(FILE **f);
#define cleanup_free __attribute__((cleanup(cleanup_free_fn)))
#define cleanup_close __attribute__((cleanup(cleanup_close_fn)))
#define cleanup_fclose __attribute__((cleanup(cleanup_fclose_fn)))

/* Growable byte buffer, always NUL-terminated. `max` (0 = unlimited) caps
 * the length: sb_add past it returns -1 and leaves the buffer unchanged. */
struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
	size_t max;
};
#define STRBUF_INIT {NULL, 0, 0, 0}
int sb_add(struct strbuf *sb, const void *data, size_t n);
int sb_adds(struct strbuf *sb, const char *s);
int sb_addc(struct strbuf *sb, char c);
int sb_addf(struct strbuf *sb, const char *fmt, ...) CP_PRINTF(2, 3);
const char *sb_str(struct strbuf *sb); /* "" when empty; lent */
char *sb_detach(struct strbuf *sb);    /* caller owns; buffer reset */
void sb_reset(struct strbuf *sb);
void sb_free(struct strbuf *sb);

/* Vector of owned strings, kept NULL-terminated so it can serve as argv. */
struct strvec {
	char **v;
	size_t n;
	size_t cap;
};
void strvec_push(struct strvec *sv, const char *s);   /* copies s */
void strvec_push_take(struct strvec *sv, char *s);     /* takes ownership */
void strvec_copy(struct strvec *out, const struct strvec *src);
bool strvec_contains(const struct strvec *sv, const char *s);
void strvec_free(struct strvec *sv);

/* Ordered key/value list of owned strings (environment, params, args). */
struct kv {
	char *key;
	char *value; /* may be NULL: key present without a value */
};
struct kvvec {
	struct kv *v;
	size_t n;
	size_t cap;
};
/* Sets key to value, replacing an existing entry in place (order kept). */
void kvvec_set(struct kvvec *kv, const char *key, const char *value);
const struct kv *kvvec_get(const struct kvvec *kv, const char *key);
void kvvec_free(struct kvvec *kv);

/* The candidate closest to `word` by edit distance, if close enough to be
 * a plausible typo; NULL otherwise. Lends a pointer into `cands`. */
const char *suggest_nearest(const char *word, const char *const *cands, size_t n);

bool str_has_prefix(const char *s, const char *prefix);

/* Milliseconds since an arbitrary monotonic origin. */
long long now_ms(void);

#endif
