/* Where provenance lives on disk: canonical JSON, the run records under
 * .cpipe/runs/, and the lock file beside the spec. Every write is atomic. */
#ifndef CPIPE_ARTIFACTS_STORE_H
#define CPIPE_ARTIFACTS_STORE_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "../lib/error.h"
#include "../lib/util.h"
#include "redact.h"

#define RECORD_SCHEMA "cpipe-run/1"
#define LOCK_VERSION 1

/* Sorts the keys of every object below `node`, bytewise, in place. */
void json_sort_keys(cJSON *node);

/* Compact text with sorted keys: the canonical form cache keys hash.
 * Sorts `node` in place. Caller owns the result. */
char *json_canonical(cJSON *node);

/* Sorted, two-space indented, newline-terminated JSON. Caller owns. */
char *json_pretty(cJSON *doc);

/* json_pretty written atomically, readable by the owner only (0600); the
 * _fast one does not fsync (see fs.h). */
int json_write_atomic(const char *path, cJSON *doc, struct cp_error *err);
int json_write_atomic_fast(const char *path, cJSON *doc, struct cp_error *err);

/* Parses `len` bytes of JSON read from `path` (named in the error, with
 * the byte offset). Caller owns *out. */
int json_parse_text(cJSON **out, const char *text, size_t len, const char *path,
		    struct cp_error *err);
/* Parses a JSON file (at most `max` bytes); errors name the file and the
 * byte offset. Caller owns *out. */
int json_read_file(cJSON **out, const char *path, size_t max, struct cp_error *err);
/* json_read_file of `path` resolved inside `root` (fs_read_file_beneath):
 * a metrics file a stage wrote is never read through a link out of its
 * volume. `root` NULL: json_read_file. */
int json_read_file_in(cJSON **out, const char *root, const char *path, size_t max,
		      struct cp_error *err);

/* "2026-11-29T10:41:58.123Z" for a CLOCK_REALTIME time in ms. Caller owns. */
char *iso_time(long long realtime_ms);
long long realtime_ms(void);

/* Writes the record (its "id" names the file .cpipe/runs/<id>.json). May be
 * called again for the same run: the file is replaced atomically; only a
 * `durable` save (the last one) waits for the disk. */
int record_save(const char *state_dir, cJSON *rec, bool durable, struct cp_error *err);

/* Every run id, oldest first. */
int record_ids(struct strvec *out, const char *state_dir, struct cp_error *err);

int record_load(cJSON **out, const char *state_dir, const char *id, struct cp_error *err);

/* Resolves what a user typed for a run: a full id, a unique prefix,
 * "latest", or "latest~N" (N runs before the latest). Caller owns *out. */
int record_resolve(char **out, const char *state_dir, const char *arg, struct cp_error *err);

/* The lock file: {"version": 1, "stages": {...}}. A missing file gives an
 * empty lock; a corrupt one is an error naming it. */
int lock_load(cJSON **out, const char *path, struct cp_error *err);
/* Without `durable`, the directory is not fsynced (fs_write_atomic_data):
 * the saves while a run goes on, settled by fs_sync_dir when it ends. */
int lock_save(const char *path, cJSON *doc, bool durable, struct cp_error *err);

#endif
