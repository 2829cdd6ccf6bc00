/* Diffs and filtered digests of canonical listings (observe.h). */
#include "observe.h"

#include <stdlib.h>
#include <string.h>

int observe_parse(struct observe_listing *out, struct strbuf *sb, struct cp_error *err)
{
	memset(out, 0, sizeof(*out));
	out->len = sb->len;
	out->buf = sb_detach(sb);
	size_t cap = 0;
	for (size_t at = 0; at < out->len;) {
		const char *rel = out->buf + at;
		const char *nul = memchr(rel, '\0', out->len - at);
		const char *lf =
		    nul ? memchr(nul, '\n', (size_t)(out->buf + out->len - nul)) : NULL;
		if (!nul || !lf || nul == rel) {
			observe_listing_free(out);
			return cp_error_set(err, EXIT_USAGE,
					    "a tree listing is malformed at byte %zu", at);
		}
		if (out->n == cap) {
			cap = cap ? 2 * cap : 64;
			out->v = xrealloc(out->v, cap * sizeof(*out->v));
		}
		out->v[out->n++] =
		    (struct observe_rec){rel, (size_t)(nul - rel), nul + 1, (size_t)(lf - nul - 1)};
		at = (size_t)(lf - out->buf) + 1;
	}
	return 0;
}

void observe_listing_free(struct observe_listing *l)
{
	free(l->buf);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Records [from, to) of `l`: contiguous bytes of its buffer. */
static void digest_run(struct digest_ctx *c, const struct observe_listing *l, size_t from,
		       size_t to)
{
	if (from >= to)
		return;
	const struct observe_rec *last = &l->v[to - 1];
	const char *end = last->rest + last->restlen + 1;
	digest_update(c, l->v[from].rel, (size_t)(end - l->v[from].rel));
}

static size_t lower_bound(const struct observe_listing *l, const char *key, size_t klen);

struct range {
	size_t from, to;
};

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->from < y->from ? -1 : x->from > y->from;
}

/* The records `path` names in `l`: itself, and everything below it (the
 * run of paths starting "path/", up to "path0", '0' being the byte after
 * '/'). "" names them all. */
static void ranges_of(struct range out[2], const struct observe_listing *l, const char *path)
{
	size_t n = strlen(path);
	if (n == 0) {
		out[0] = (struct range){0, l->n};
		out[1] = (struct range){0, 0};
		return;
	}
	size_t at = lower_bound(l, path, n);
	bool hit = at < l->n && l->v[at].rlen == n && memcmp(l->v[at].rel, path, n) == 0;
	out[0] = (struct range){at, at + hit};
	cleanup_free char *key = xmalloc(n + 1);
	memcpy(key, path, n);
	key[n] = '/';
	size_t from = lower_bound(l, key, n + 1);
	key[n] = '0';
	out[1] = (struct range){from, lower_bound(l, key, n + 1)};
}

void observe_digest(char out[DIGEST_BUFLEN], const struct observe_listing *l,
		    const struct strvec *skip)
{
	/* The records are contiguous in the buffer, in order: the digest
	 * hashes the runs between the skipped ranges, a few large updates. */
	size_t nr = skip ? 2 * skip->n : 0;
	cleanup_free struct range *r = xmalloc((nr ? nr : 1) * sizeof(*r));
	for (size_t i = 0; skip && i < skip->n; i++)
		ranges_of(&r[2 * i], l, skip->v[i]);
	if (nr > 1)
		qsort(r, nr, sizeof(*r), cmp_range);
	struct digest_ctx c;
	digest_init(&c);
	size_t at = 0;
	for (size_t i = 0; i < nr; i++) {
		if (r[i].from >= r[i].to)
			continue;
		digest_run(&c, l, at, r[i].from);
		if (r[i].to > at)
			at = r[i].to;
	}
	digest_run(&c, l, at, l->n);
	digest_final(out, &c);
}

/* The listing's order: bytewise on the relative path. */
static int cmp_rel(const struct observe_rec *a, const struct observe_rec *b)
{
	size_t n = a->rlen < b->rlen ? a->rlen : b->rlen;
	int c = memcmp(a->rel, b->rel, n);
	return c ? c : a->rlen < b->rlen ? -1 : a->rlen > b->rlen;
}

static bool is_dir(const struct observe_rec *r)
{
	return r->restlen > 0 && r->rest[0] == 'd';
}

/* Whether an ancestor of `rel` is in `dirs` (sorted by strcmp, which is
 * the listing's bytewise order for strings without NUL). */
static bool covered(const struct strvec *dirs, const char *rel, size_t rlen)
{
	for (size_t k = rlen; k-- > 0;) {
		if (rel[k] != '/')
			continue;
		size_t lo = 0, hi = dirs->n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			int c = strncmp(dirs->v[mid], rel, k);
			if (c == 0 && dirs->v[mid][k] != '\0')
				c = 1;
			if (c == 0)
				return true;
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the entries of `from` but those a directory of `dirs` covers. */
static void add_uncovered(struct strvec *out, struct strvec *from, struct strvec *dirs)
{
	if (dirs->n > 1)
		qsort(dirs->v, dirs->n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < from->n; i++)
		if (!covered(dirs, from->v[i], strlen(from->v[i])))
			strvec_push(out, from->v[i]);
}

struct diff_acc {
	struct strvec w, d, wdirs, ddirs;
};

/* One path's records before and after (either NULL when absent). */
static void diff_one(struct diff_acc *acc, const struct observe_rec *a, const struct observe_rec *b)
{
	if (a && !b) { /* gone */
		cleanup_free char *rel = xstrndup(a->rel, a->rlen);
		strvec_push(&acc->d, rel);
		if (is_dir(a))
			strvec_push(&acc->ddirs, rel);
	} else if (b && !a) { /* new */
		cleanup_free char *rel = xstrndup(b->rel, b->rlen);
		strvec_push(&acc->w, rel);
		if (is_dir(b))
			strvec_push(&acc->wdirs, rel);
	} else if (a && b) {
		bool same = a->restlen == b->restlen && memcmp(a->rest, b->rest, a->restlen) == 0;
		/* A directory turned into a file (or back) is new as a whole. */
		/* A directory kept whose mode alone changed is not an output:
		 * its entries that changed are. */
		if (!same && !(is_dir(a) && is_dir(b))) {
			cleanup_free char *rel = xstrndup(b->rel, b->rlen);
			strvec_push(&acc->w, rel);
			if (is_dir(b) && !is_dir(a))
				strvec_push(&acc->wdirs, rel);
			if (is_dir(a) && !is_dir(b))
				strvec_push(&acc->ddirs, rel);
		}
	}
}

static void diff_finish(struct strvec *written, struct strvec *deleted, struct diff_acc *acc)
{
	add_uncovered(written, &acc->w, &acc->wdirs);
	add_uncovered(deleted, &acc->d, &acc->ddirs);
	strvec_free(&acc->w);
	strvec_free(&acc->d);
	strvec_free(&acc->wdirs);
	strvec_free(&acc->ddirs);
}

void observe_diff(struct strvec *written, struct strvec *deleted,
		  const struct observe_listing *before, const struct observe_listing *after)
{
	struct diff_acc acc = {0};
	size_t i = 0, j = 0;
	while (i < before->n || j < after->n) {
		const struct observe_rec *a = i < before->n ? &before->v[i] : NULL;
		const struct observe_rec *b = j < after->n ? &after->v[j] : NULL;
		int c = !a ? 1 : !b ? -1 : cmp_rel(a, b);
		diff_one(&acc, c <= 0 ? a : NULL, c >= 0 ? b : NULL);
		i += c <= 0;
		j += c >= 0;
	}
	diff_finish(written, deleted, &acc);
}

void observe_diff_paths(struct strvec *written, struct strvec *deleted,
			const struct observe_listing *before, const struct observe_listing *after,
			const struct strvec *paths)
{
	struct diff_acc acc = {0};
	for (size_t k = 0; k < paths->n; k++)
		diff_one(&acc, observe_find(before, paths->v[k]), observe_find(after, paths->v[k]));
	diff_finish(written, deleted, &acc);
}

/* The first record of `l` not ordered before the `klen` bytes of `key`. */
static size_t lower_bound(const struct observe_listing *l, const char *key, size_t klen)
{
	struct observe_rec k = {key, klen, NULL, 0};
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cmp_rel(&l->v[mid], &k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int cmp_rec(const void *a, const void *b)
{
	return cmp_rel(a, b);
}

static bool same_rec(const struct observe_rec *a, const struct observe_rec *b)
{
	return cmp_rel(a, b) == 0 && a->restlen == b->restlen &&
	       memcmp(a->rest, b->rest, a->restlen) == 0;
}

/* Appends `r` to a listing whose buffer and index have room for it. */
static void put_rec(struct observe_listing *out, const struct observe_rec *r)
{
	char *at = out->buf + out->len;
	memcpy(at, r->rel, r->rlen + 1 + r->restlen + 1);
	out->v[out->n++] = (struct observe_rec){at, r->rlen, at + r->rlen + 1, r->restlen};
	out->len += r->rlen + 1 + r->restlen + 1;
}

void observe_patch(struct observe_listing *out, struct strvec *changed,
		   const struct observe_listing *l, const struct observe_cut *cuts, size_t ncuts,
		   struct observe_listing *add)
{
	/* Cut records: `rel` by binary search; everything below it is the
	 * contiguous run of paths starting with "rel/" (up to "rel0", '0'
	 * being the byte after '/'). */
	cleanup_free bool *cut = xcalloc(l->n ? l->n : 1, sizeof(bool));
	for (size_t i = 0; i < ncuts; i++) {
		size_t n = strlen(cuts[i].rel);
		size_t at = lower_bound(l, cuts[i].rel, n);
		if (at < l->n && l->v[at].rlen == n && memcmp(l->v[at].rel, cuts[i].rel, n) == 0)
			cut[at] = true;
		if (!cuts[i].below)
			continue;
		cleanup_free char *key = xmalloc(n + 2);
		memcpy(key, cuts[i].rel, n);
		key[n] = '/';
		size_t from = lower_bound(l, key, n + 1);
		key[n] = '0';
		size_t to = lower_bound(l, key, n + 1);
		for (size_t k = from; k < to; k++)
			cut[k] = true;
	}
	if (add->n > 1)
		qsort(add->v, add->n, sizeof(*add->v), cmp_rec);

	/* One merge writes the new listing (sized up front: the records'
	 * pointers stay put) and sees what differs: a cut record with no
	 * equal added one, an added one with no equal record. */
	memset(out, 0, sizeof(*out));
	out->buf = xmalloc(l->len + add->len + 1);
	out->v = xmalloc((l->n + add->n ? l->n + add->n : 1) * sizeof(*out->v));
	struct strvec diff = {0};
	size_t i = 0, j = 0;
	while (i < l->n || j < add->n) {
		const struct observe_rec *a = i < l->n ? &l->v[i] : NULL;
		const struct observe_rec *b = j < add->n ? &add->v[j] : NULL;
		int c = !a ? 1 : !b ? -1 : cmp_rel(a, b);
		if (c < 0) {
			if (cut[i])
				strvec_push_take(&diff, xstrndup(a->rel, a->rlen));
			else
				put_rec(out, a);
			i++;
			continue;
		}
		if (c > 0 || !same_rec(a, b))
			strvec_push_take(&diff, xstrndup(b->rel, b->rlen));
		put_rec(out, b);
		j++;
		i += c == 0;
	}
	out->buf[out->len] = '\0';
	if (diff.n > 1)
		qsort(diff.v, diff.n, sizeof(char *), cmp_str);
	for (size_t k = 0; k < diff.n; k++)
		if (k == 0 || strcmp(diff.v[k], diff.v[k - 1]) != 0)
			strvec_push(changed, diff.v[k]);
	strvec_free(&diff);
}

const struct observe_rec *observe_find(const struct observe_listing *l, const char *rel)
{
	size_t n = strlen(rel);
	size_t at = lower_bound(l, rel, n);
	if (at < l->n && l->v[at].rlen == n && memcmp(l->v[at].rel, rel, n) == 0)
		return &l->v[at];
	return NULL;
}
