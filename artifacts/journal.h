/* A change journal over a directory tree: inotify watches on every
 * directory of a listing (and on every regular file with more than one
 * link, which may be written through a name outside the tree), set before
 * the directory is read, so that the listing plus what the events name is
 * exactly what listing the tree again would give. Inode-based: writes from
 * containers into bind-mounted or volume directories are seen too.
 *
 * Doubt is never guessed away: a queue overflow, a watch that cannot be
 * set (ENOSPC past fs.inotify.max_user_watches, a name swapped while it
 * was watched), the root deleted, moved or unmounted, a filesystem whose
 * writes need not pass through this kernel (NFS, FUSE, overlayfs...), or
 * more changes than JOURNAL_MAX_CHANGES put the journal in doubt, and the
 * caller lists the tree in full instead.
 *
 * A journal outlives one refresh: journal_refresh watches what it walks,
 * so the listing it returns is again covered from then on. */
#ifndef CPIPE_ARTIFACTS_JOURNAL_H
#define CPIPE_ARTIFACTS_JOURNAL_H

#include <stdbool.h>
#include <sys/stat.h>

#include "../lib/util.h"
#include "digest.h"
#include "observe.h"

/* Past this many changed paths a refresh gives up: listing in full is as
 * cheap, and dropping watches under many moved directories is not. */
#define JOURNAL_MAX_CHANGES 10000

struct journal;
struct statcache;

/* A journal for the directory `root` (a host path), no watch set yet.
 * NULL with *why set (a static string) when the tree cannot be watched. */
struct journal *journal_open(const char *root, const char **why);
void journal_free(struct journal *j);

/* Why the journal is in doubt (a static string), or NULL while it holds. */
const char *journal_doubt(const struct journal *j);

/* Sets the hook of `req` (a digest_trees request of the journal's root,
 * or of a path below it) so that the walk watches what it lists; `ctx`
 * lives as long as the request. `prefix`: the request's path relative to
 * the journal's root ("" for the root). */
struct journal_walk {
	struct journal *j;
	const char *prefix;
};
void journal_hook(struct tree_request *req, struct journal_walk *ctx, struct journal *j,
		  const char *prefix);

/* The listing of the journal's root now: `before` (the listing the
 * journal has covered since its watches were set, with `skip` left out as
 * digest_trees left it) with every path an event named read again through
 * `sc`. Returns 0 with *out (caller frees) and in *changed the paths whose
 * records differ, sorted; 1 when the journal is in doubt (journal_doubt
 * says why: list in full); -1 on an error reading a path. */
int journal_refresh(struct observe_listing *out, struct strvec *changed, struct journal *j,
		    const struct observe_listing *before, const char *skip, struct statcache *sc,
		    struct cp_error *err);

#endif
