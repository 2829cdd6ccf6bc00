/* The canonical directory listing (format in digest.h): entries from any
 * source — the directory walk in digest.c, or a tar stream — sorted and
 * hashed the same way. */
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "digest.h"

static const char digits[] = "0123456789abcdef";

struct tree_entry {
	char *rel; /* owned */
	size_t len;
	unsigned long long size;
	unsigned mode;
	char type;
	uint8_t md[32];
};

void tree_builder_add_raw(struct tree_builder *b, char *rel, size_t len, char type, unsigned mode,
			  unsigned long long size, const uint8_t *md)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	struct tree_entry *e = &b->v[b->n++];
	e->rel = rel;
	e->len = len;
	e->type = type;
	e->mode = mode;
	e->size = size;
	if (md)
		memcpy(e->md, md, 32);
	else
		memset(e->md, 0, 32);
	if (type == 'f') {
		b->size += size;
		b->nfiles++;
	}
}

static bool relpath_ok(const char *rel, size_t len)
{
	if (len == 0 || rel[0] == '/' || rel[len - 1] == '/')
		return false;
	const char *p = rel, *end = rel + len;
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n + 1;
	}
	return true;
}

int tree_builder_add(struct tree_builder *b, const char *relpath, char type, unsigned mode,
		     unsigned long long size, const char *digest, struct cp_error *err)
{
	size_t len = strlen(relpath);
	if (!relpath_ok(relpath, len))
		return cp_error_set(err, EXIT_USAGE, "tree entry \"%s\": not a clean relative path",
				    relpath);
	if (mode > 07777)
		return cp_error_set(err, EXIT_USAGE, "tree entry %s: mode %o has bits beyond 07777",
				    relpath, mode);
	uint8_t md[32];
	switch (type) {
	case 'd':
		if (digest || size != 0)
			return cp_error_set(err, EXIT_USAGE,
					    "tree entry %s: a directory has no digest or size",
					    relpath);
		tree_builder_add_raw(b, xstrndup(relpath, len), len, type, mode, 0, NULL);
		return 0;
	case 'f':
	case 'l':
		if (!digest || digest_parse(md, digest) < 0)
			return cp_error_set(err, EXIT_USAGE, "tree entry %s: invalid digest \"%s\"",
					    relpath, digest ? digest : "(none)");
		tree_builder_add_raw(b, xstrndup(relpath, len), len, type, mode, size, md);
		return 0;
	default:
		return cp_error_set(err, EXIT_USAGE, "tree entry %s: type '%c' is not f, d or l",
				    relpath, type);
	}
}

static int cmp_rel(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return (alen > blen) - (alen < blen);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct tree_entry *x = a, *y = b;
	return cmp_rel(x->rel, x->len, y->rel, y->len);
}

static const struct tree_entry *find_entry(const struct tree_builder *b, const char *rel,
					   size_t len)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_rel(rel, len, b->v[mid].rel, b->v[mid].len);
		if (c == 0)
			return &b->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Batches the many small pieces of the listing into few EVP updates. */
struct hbuf {
	struct digest_ctx c;
	struct strbuf *copy; /* also keeps the listing's bytes, when set */
	size_t n;
	char b[32768];
};

static void hb_put(struct hbuf *h, const void *p, size_t len)
{
	if (h->copy)
		sb_add(h->copy, p, len);
	if (h->n + len > sizeof(h->b)) {
		digest_update(&h->c, h->b, h->n);
		h->n = 0;
		if (len > sizeof(h->b)) {
			digest_update(&h->c, p, len);
			return;
		}
	}
	memcpy(h->b + h->n, p, len);
	h->n += len;
}

/* Writes `v` in `base` (8 or 10) before `end`; returns the first digit. */
static char *utoa_end(char *end, unsigned long long v, unsigned base)
{
	do {
		*--end = digits[v % base];
		v /= base;
	} while (v);
	return end;
}

int tree_builder_finish(char out[DIGEST_BUFLEN], struct tree_builder *b, struct cp_error *err)
{
	return tree_builder_listing(out, NULL, b, err);
}

int tree_builder_listing(char out[DIGEST_BUFLEN], struct strbuf *listing, struct tree_builder *b,
			 struct cp_error *err)
{
	size_t sorted = 1;
	while (sorted < b->n && cmp_entry(&b->v[sorted - 1], &b->v[sorted]) < 0)
		sorted++;
	if (sorted < b->n)
		qsort(b->v, b->n, sizeof(*b->v), cmp_entry);
	for (size_t k = 0; k < b->n; k++) {
		const struct tree_entry *e = &b->v[k];
		if (k > 0 && cmp_entry(&b->v[k - 1], e) == 0)
			return cp_error_set(err, EXIT_USAGE, "tree entry %s is listed twice",
					    e->rel);
		const char *slash = memrchr(e->rel, '/', e->len);
		if (slash) {
			const struct tree_entry *parent =
				find_entry(b, e->rel, (size_t)(slash - e->rel));
			if (!parent || parent->type != 'd')
				return cp_error_set(err, EXIT_USAGE,
						    "tree entry %s: its directory %.*s is %s",
						    e->rel, (int)(slash - e->rel), e->rel,
						    parent ? "not a directory" : "not listed");
		}
	}
	struct hbuf *h = xmalloc(sizeof(*h));
	h->n = 0;
	h->copy = listing;
	digest_init(&h->c);
	for (size_t k = 0; k < b->n; k++) {
		const struct tree_entry *e = &b->v[k];
		char tail[128], num[32];
		size_t t = 0;
		tail[t++] = '\0';
		tail[t++] = e->type;
		tail[t++] = '\0';
		char *s = utoa_end(num + sizeof(num), e->mode, 8);
		memcpy(tail + t, s, (size_t)(num + sizeof(num) - s));
		t += (size_t)(num + sizeof(num) - s);
		tail[t++] = '\0';
		s = utoa_end(num + sizeof(num), e->size, 10);
		memcpy(tail + t, s, (size_t)(num + sizeof(num) - s));
		t += (size_t)(num + sizeof(num) - s);
		tail[t++] = '\0';
		if (e->type != 'd') {
			digest_format(tail + t, e->md);
			t += DIGEST_STRLEN;
		}
		tail[t++] = '\n';
		hb_put(h, e->rel, e->len);
		hb_put(h, tail, t);
	}
	digest_update(&h->c, h->b, h->n);
	digest_final(out, &h->c);
	free(h);
	return 0;
}

void tree_builder_free(struct tree_builder *b)
{
	for (size_t k = 0; k < b->n; k++)
		free(b->v[k].rel);
	free(b->v);
	*b = (struct tree_builder)TREE_BUILDER_INIT;
}

