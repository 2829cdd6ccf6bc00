/* Looking back: pure functions over run records and the lock file (cJSON
 * documents as artifacts/store.h writes them). Which stage produced an
 * artifact and from what, a run's PROV-JSON, flattened metrics and their
 * differences. Nothing here touches a process or the filesystem. */
#ifndef CPIPE_ARTIFACTS_LINEAGE_H
#define CPIPE_ARTIFACTS_LINEAGE_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "../lib/error.h"
#include "../lib/util.h"

/* Digest prefixes shorter than this are refused as too ambiguous. */
#define LINEAGE_MIN_PREFIX 12

/* How a user's artifact name is normalized to the lock's spelling:
 * "vol:path" gains the '/' ("vol:/path"), a trailing '/' goes, a relative
 * host path gains "./". Caller owns the result. */
char *lineage_normalize_name(const char *name);

/* True when artifact `name` is `dir` itself or lies below it
 * ("work:/results/a.gif" is within "work:/results"; all of "work:" is
 * within "work:/"). */
bool lineage_within(const char *name, const char *dir);

/* Where an artifact was found in the lock. All pointers are lent from it. */
struct lineage_hit {
	const char *stage;    /* producing stage; NULL for an external input */
	const char *artifact; /* the locked name (an output directory holding the
			       * asked-for path, when `within` is true) */
	const cJSON *entry;   /* its {"digest", "size", ...} */
	bool within;          /* the asked-for name lies inside `artifact` */
};

/* Finds what produced artifact `name` (normalized): the stage whose outputs
 * or metrics hold it exactly, else one holding an output directory that
 * contains it; `skip` (may be NULL) is a stage never to answer with. When
 * no stage produced it but some stage reads it, the hit is external
 * (stage NULL). Returns 1 when found, 0 when not. */
int lineage_find_name(struct lineage_hit *out, const cJSON *lock, const char *name,
		      const char *skip);

/* Finds the artifact whose digest is `query`: a full digest or a prefix of
 * at least LINEAGE_MIN_PREFIX hex digits, with or without "sha256:".
 * Produced outputs win over external inputs. Returns 1 found, 0 not found
 * (or `query` does not look like a digest), -1 with `err` when the prefix
 * is too short or matches several different digests. */
int lineage_find_digest(struct lineage_hit *out, const cJSON *lock, const char *query,
			struct cp_error *err);

/* Every artifact name the lock knows (outputs, metrics, inputs), sorted and
 * without duplicates, for suggestions. */
void lineage_names(struct strvec *out, const cJSON *lock);

/* The chain that produced `query` (an artifact name or a digest), as a
 * nested document:
 *   artifact node: {"artifact", "digest", "size", ["files"], ["within"],
 *                   ["stale"], "produced_by": stage node | null, ["parts"]}
 *   stage node:    {"stage", "key", "run", "git", "inputs": [artifact nodes]}
 *                  or {"stage", "repeated": true} when expanded earlier, or
 *                  {"stage", "cycle": true} on a loop.
 * `producers` (may be NULL; see lineage_producers_add) names, for each
 * stage node, the run that produced the digest the node was reached by,
 * with its git facts, and lists the inputs that run read; a stage whose
 * digest no record made is shown as the lock has it, run null. A digest
 * the lock does not hold (an experiment's output) is looked up there too.
 * Caller owns *out. Fails (EXIT_USAGE) naming the nearest known artifacts
 * when nothing matches. */
int lineage_build(cJSON **out, const cJSON *lock, const char *query, const cJSON *producers,
		  struct cp_error *err);

/* Adds what run record `rec` produced to `producers`, an object
 * stage -> artifact -> digest -> {"run", "git", "key", "inputs", "entry",
 * ["reproduced_by"]}: every output and metrics file of a stage that ran
 * (skipped and restored stages reused what another run made). Feed the
 * records oldest first: the first run to make a digest is its producer,
 * later ones are listed in "reproduced_by". */
void lineage_producers_add(cJSON *producers, const cJSON *rec);

/* True when run record `rec` holds stage `stage` with status "ran" and
 * cache key `key`: that run produced the outputs the key locks. */
bool lineage_record_ran(const cJSON *rec, const char *stage, const char *key);

/* Counts of a record's stages by status: {"ran", "skipped", "failed",
 * "not_run", "service", "restored"} as numbers, in a new object the caller
 * owns. */
cJSON *lineage_stage_counts(const cJSON *rec);

/* Milliseconds since the epoch of an ISO time as iso_time writes it
 * ("2026-11-29T10:41:58.123Z"); -1 when it does not parse. */
long long lineage_time_ms(const char *iso);

/* W3C PROV-JSON of one run record: entities (artifact digests), activities
 * (stage executions, skipped ones marked), agents (cpipe, the user) and
 * the relations between them. Caller owns the document. */
cJSON *lineage_prov(const cJSON *rec);

/* Metrics as rows {"stage", "file", "metric", "value"}: the metrics values
 * of every stage, nested keys joined with '.', array items by index.
 * From a run record (stage order as run) or a lock (stage name order).
 * Caller owns the array. */
cJSON *lineage_metrics_record(const cJSON *rec);
cJSON *lineage_metrics_lock(const cJSON *lock);

/* Rows {"stage", "file", "metric", "old", "new", ["delta"]} comparing two
 * row arrays from the functions above: `cur`'s order, then metrics only
 * `old` has. A side without the metric has null; "delta" is present when
 * both are numbers. Caller owns the array. */
cJSON *lineage_metrics_diff(const cJSON *old, const cJSON *cur);

#endif
