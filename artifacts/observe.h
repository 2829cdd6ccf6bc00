/* Observing a mount: what a stage created, changed or deleted in it, from
 * two canonical listings of it (digest.h, struct tree_request.listing),
 * and the digest of what it holds with some paths left out (the content a
 * stage could have read: its mounts without its own outputs). Pure
 * functions over listings; reading the files is digest_trees' job. */
#ifndef CPIPE_ARTIFACTS_OBSERVE_H
#define CPIPE_ARTIFACTS_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/util.h"
#include "digest.h"

struct observe_rec {
	const char *rel; /* lent from the listing; not NUL-terminated */
	size_t rlen;
	const char *rest; /* "type NUL mode NUL size NUL digest", without the LF */
	size_t restlen;
};

/* A parsed listing. Owns the listing bytes. */
struct observe_listing {
	char *buf;
	size_t len;
	struct observe_rec *v;
	size_t n;
};

/* Takes the listing in `sb` (reset after) and indexes its records. Fails
 * on bytes that are not a canonical listing. */
int observe_parse(struct observe_listing *out, struct strbuf *sb, struct cp_error *err);
void observe_listing_free(struct observe_listing *l);

/* The digest the listing's tree would have without the paths in `skip`
 * (relative, no leading '/'; each leaves out everything below it too; ""
 * leaves out everything). With no skip, the tree's own digest. */
void observe_digest(char out[DIGEST_BUFLEN], const struct observe_listing *l,
		    const struct strvec *skip);

/* What changed from `before` to `after`: *written gets the paths created
 * or changed, *deleted those gone, both relative and sorted. A path below
 * a directory that was itself created (or deleted) is covered by it and
 * not listed; a directory that only got new entries is not listed, its
 * entries are. */
void observe_diff(struct strvec *written, struct strvec *deleted,
		  const struct observe_listing *before, const struct observe_listing *after);
/* observe_diff when the paths whose records may differ are known (sorted;
 * observe_patch's *changed): only those are looked up. */
void observe_diff_paths(struct strvec *written, struct strvec *deleted,
			const struct observe_listing *before, const struct observe_listing *after,
			const struct strvec *paths);

/* The record of `rel` in `l`, or NULL. Lends. */
const struct observe_rec *observe_find(const struct observe_listing *l, const char *rel);

/* A path a patch replaces the records of: `rel` itself and, with
 * `below`, everything under it too. */
struct observe_cut {
	const char *rel;
	bool below;
};

/* `l` with the records the cuts name taken out and those of `add` (a
 * parsed fragment of records in any order, none of them left in by the
 * cuts; sorted in place) put in, into *out (caller frees). *changed gets
 * the paths whose records differ between `l` and *out, sorted. */
void observe_patch(struct observe_listing *out, struct strvec *changed,
		   const struct observe_listing *l, const struct observe_cut *cuts, size_t ncuts,
		   struct observe_listing *add);

#endif
