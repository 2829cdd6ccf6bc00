/* The content-addressed store: every output's bytes kept under their
 * digest, so a stage whose key was seen before is restored instead of run,
 * and an earlier run's or git revision's outputs can be checked out.
 *
 * Layout (default <project>/.cpipe/store, or $CPIPE_STORE to share one
 * between projects), the owner's alone (dirs 0700, objects 0600):
 *   objects/sha256/ab/cdef...  a file's bytes, a symlink's target text, or
 *                              a directory's canonical listing (digest.h),
 *                              so every object's sha256 is its name
 *   runs/sha256/<hex>.json     the run cache: a stage key -> its outputs
 *   tmp/                       objects being written (name.tmp.PID)
 * Objects are written to tmp/ and renamed into place: a kill -9 never
 * leaves a torn object under its final name. They are not fsynced (that
 * would double the cost of committing a big output): after a power loss an
 * object may be short, which `sha256sum` of it against its name shows. */
#ifndef CPIPE_ARTIFACTS_CAS_H
#define CPIPE_ARTIFACTS_CAS_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "../lib/error.h"
#include "digest.h"

struct statcache;

struct cas {
	char *root;    /* the store directory */
	char *objects; /* root/objects/sha256 */
	int tmpfd;     /* root/tmp */
};

/* Opens (creating) the store: $CPIPE_STORE, else <state_dir>/store.
 * Removes temporaries whose writer is gone. Caller frees with cas_close. */
int cas_open(struct cas **out, const char *state_dir, struct cp_error *err);
void cas_close(struct cas *c);

/* The path of the object `digest` ("sha256:<hex>"). Caller owns. */
char *cas_object_path(const struct cas *c, const char *digest);
bool cas_has(const struct cas *c, const char *digest);

/* A spare copy of object `digest`: its name in the store's tmp/, where a
 * pull (remote.c) leaves a second copy of a big download, written from
 * the same bytes and kept only once they are verified. A checkout of the
 * object renames the spare into place instead of copying the object.
 * Named for this process alone (swept as any temporary); cas_close
 * removes the spares no checkout took. Caller owns. */
char *cas_spare_name(const char *digest);

/* Stores `len` bytes as an object; `out` gets its digest. */
int cas_put_bytes(char out[DIGEST_BUFLEN], struct cas *c, const void *data, size_t len,
		  struct cp_error *err);

/* An object written as its bytes come (a file read from a stream):
 * open, write, then finish (its digest in `out`; the writer is freed
 * either way) or abort (nothing stored). */
struct cas_writer;
int cas_writer_open(struct cas_writer **out, struct cas *c, struct cp_error *err);
int cas_writer_write(struct cas_writer *w, const void *data, size_t n, struct cp_error *err);
int cas_writer_finish(char out[DIGEST_BUFLEN], struct cas_writer *w, struct cp_error *err);
void cas_writer_abort(struct cas_writer *w);

/* Digests `path` exactly as digest_tree does (same rules, same result)
 * while copying every file, link target and directory listing into the
 * store: one read pass over the data. A file the stat cache `sc` (may be
 * NULL) knows and the store already holds is not read. Fails as
 * digest_tree fails, naming the path. */
int cas_commit(struct tree_digest *out, struct cas *c, const char *path, struct statcache *sc,
	       struct cp_error *err);

/* Every object a tree needs (its listing and, for 'd', what it lists) is
 * present: 0; else -1 with err naming `shown` and the missing digest. */
int cas_check(const struct cas *c, char type, const char *digest, const char *shown,
	      struct cp_error *err);

/* Appends the digests of the files and link targets the directory
 * listing object `digest` names (its listing must be in the store). */
int cas_tree_objects(struct strvec *out, const struct cas *c, const char *digest,
		     struct cp_error *err);

/* Restoring artifacts into volumes in two steps: stage each one under a
 * temporary name beside its final place, then rename them all in. Paths
 * are created and opened below `root` with O_NOFOLLOW, so a symlink in a
 * volume cannot lead the restore outside it. */
struct cas_pending;
struct cas_checkout {
	struct cas_pending *v;
	size_t n, cap;
};
#define CAS_CHECKOUT_INIT {NULL, 0, 0}

/* Stages the object tree `digest` of `type` ('f', 'd', 'l') as `rel`
 * (relative, no leading '/'; "" is the root itself, then `root` is
 * replaced) below `root`. `shown` names it in errors. Nothing is visible
 * at `rel` until cas_checkout_commit. */
int cas_checkout_stage(struct cas_checkout *co, const struct cas *c, const char *root,
		       const char *rel, char type, const char *digest, const char *shown,
		       struct cp_error *err);
/* Renames every staged artifact into place (replacing what was there) and
 * frees the list. */
int cas_checkout_commit(struct cas_checkout *co, struct cp_error *err);
/* Removes what was staged; the volumes are as they were. */
void cas_checkout_abort(struct cas_checkout *co);

/* The run cache. `doc` is {"stage", "run", "outputs", "metrics"} where
 * each output entry has "digest", "size", "type" (and "files"). */
int runcache_save(struct cas *c, const char *key, cJSON *doc, struct cp_error *err);
/* 1 and *out (caller owns) when the store has outputs for `key`, 0 when
 * not (or its entry is unreadable). */
int runcache_load(cJSON **out, const struct cas *c, const char *key);

/* Garbage collection: removes every object not reachable from the
 * digests in `keep` (entries {"digest", "type"}), and run cache entries
 * naming a removed object. With `dry_run` nothing is removed. Counts what
 * is (or would be) freed. */
int cas_gc(unsigned long long *nobjects, unsigned long long *nbytes, struct cas *c,
	   const cJSON *keep, bool dry_run, struct cp_error *err);

#endif
