/* The tracker's state, shared by track.c (artifacts: digests, inputs, the
 * lock's verification, open/close), track_key.c (what a key hashes),
 * track_stale.c (why a stage is stale) and track_record.c (run records and
 * the lock's updates). Internal to pipeline/; unit tests use the pure
 * functions (track_key_object, track_key_reasons, track_stale_reasons). */
#ifndef CPIPE_PIPELINE_TRACK_INTERNAL_H
#define CPIPE_PIPELINE_TRACK_INTERNAL_H

#include "../artifacts/cas.h"
#include "../artifacts/digest.h"
#include "../artifacts/journal.h"
#include "../artifacts/observe.h"
#include "../artifacts/statcache.h"
#include "../artifacts/store.h"
#include "track.h"

/* A mount's parsed listing, shared by the memo and the snapshots that
 * copied it (a snapshot of 100,000 entries is not copied). */
struct obs_listing {
	struct observe_listing l;
	unsigned refs;
};

/* One mount listed for observation (track_observe.c). */
struct obs_scan {
	char *name; /* the mount's ref name: "vol:/" or "./dir" */
	bool missing;
	char type; /* 'd' with a listing; else `digest` is the root's own */
	char digest[DIGEST_BUFLEN];
	struct obs_listing *ls; /* 'd': its listing; else NULL */
	/* In a run: watches set as it was listed, so that after a stage the
	 * listing is refreshed from what changed instead of made again
	 * (artifacts/journal.h); NULL when it cannot be watched. Owned. */
	struct journal *j;
	char *host; /* where it was listed from, and the path left out */
	char *skip;
	/* The last filtered digest of the listing (observe_digest): the
	 * reads' digest with the same paths left out is not hashed again. */
	bool dmemo;
	struct strvec dskip;
	char ddigest[DIGEST_BUFLEN];
	/* Refreshed from `base` (held): the paths whose records differ. */
	struct obs_listing *base;
	struct strvec changed;
};

struct tstate {
	char key[DIGEST_BUFLEN];
	cJSON *keyobj; /* what the key hashes; owned */
	cJSON *inputs; /* name -> {digest, size}; owned */
	char *image;   /* image ID ("sha256:...", "local", "absent"); owned */
	char *image_ran; /* what the runtime says the task ran (track_ran); owned */
	bool image_absent; /* not built or pulled yet (status never does either) */
	bool evaluated;
	bool stale;
	long long started_ms; /* realtime */
	char *restorable_from; /* run id, set by track_restorable; owned */
	struct obs_scan *snap; /* observed stage: its writable mounts before it ran */
	size_t nsnap;
};

/* Open-addressing map of host path -> digest entry: status asks for the
 * same artifacts many times (an output is the next stage's input). */
struct memo {
	char **keys;
	cJSON **vals;
	size_t cap, n;
	struct obs_scan *scans; /* mounts listed for observation */
	size_t nscans;
};

struct tracker {
	const struct pipeline *p;
	const struct runtime_ops *ops;
	struct runtime *rt;
	struct track_options o;
	char *lock_path;
	char *index_path;
	cJSON *lock;
	cJSON *index; /* stage -> {"key", "run"}: which run produced the locked outputs */
	cJSON *record;
	struct statcache *sc;
	struct cas *cas;      /* the artifact store; NULL when it cannot be opened */
	struct tstate *st;
	struct memo memo;     /* host path -> digest entry, until the next stage ends */
	struct kvvec roots;   /* volume -> host path, as the runtime said */
	bool experiment;      /* a --set aims at a planned stage: the lock stays as written */
	bool lock_unsynced;   /* renamed during the run, its directory not fsynced yet */
};

/* track.c */
void track_memo_clear(struct memo *m);
size_t track_stage_pos(const struct pipeline *p, const struct stage *s);
/* Lends the stage named `name`, or NULL. */
const struct stage *track_stage_named(const struct pipeline *p, const char *name);
/* How an artifact is named in records and the lock: "vol:/path", or a host
 * path relative to the project ("./data") so the lock does not depend on
 * where the project is checked out. Caller owns. */
char *track_ref_name(const struct pipeline *p, const char *volume, const char *path);
/* Where an artifact is on the host. Caller owns *out. */
int track_ref_host_path(char **out, struct tracker *t, const char *volume, const char *path,
			struct cp_error *err);
/* {"digest", "size", "files"} of an artifact, or {"missing": true}. Caller owns. */
/* The directory an artifact is resolved inside (a volume's root, or the
 * project for a path in it; NULL for a host path outside the project) and,
 * in *rel, its path there. Call after track_ref_host_path succeeded. */
const char *track_ref_root(const struct tracker *t, const char *volume, const char *path,
			   const char **rel);
int track_digest_ref(cJSON **out, struct tracker *t, const char *volume, const char *path,
		     struct cp_error *err);
/* {"digest", "size", "files"} of a tree digest. Caller owns. */
cJSON *track_entry_json(const struct tree_digest *td);
/* A volume tree streamed by the runtime (no host path), hashed into the
 * canonical listing digest_tree makes: the root's own type and digest,
 * the entries below it in `b`. */
struct track_archive_walk {
	struct tree_builder b;
	char type;
	char digest[DIGEST_BUFLEN];
	unsigned long long size;
	bool whole_mount; /* an observed mount: special files are left out */
	struct cas *cas;  /* when set, what is read is stored too */
};
/* As track_digest_ref of a volume read through the runtime, storing its
 * objects in t->cas as they are read; *type its 'f', 'd' or 'l' (0 when
 * missing). */
int track_commit_via_archive(cJSON **out, char *type, struct tracker *t, const char *volume,
			     const char *path, struct cp_error *err);
/* volume_read_tree's visitor for a struct track_archive_walk. */
int track_archive_visit(void *ud, const struct volume_entry *e, struct cp_error *err);
/* The regular file at `path` in `volume` (at most `max` bytes), read
 * through the runtime's volume_read_tree: for a runtime whose volumes are
 * not host directories (kubernetes). Caller owns *out (NUL-terminated). */
int track_read_volume_file(char **out, size_t *len, struct tracker *t, const char *volume,
			   const char *path, size_t max, struct cp_error *err);
/* The "digest" of a digest entry, NULL when missing. Lends. */
const char *track_entry_digest(const cJSON *e);
/* name -> digest entry of what the stage reads. Caller owns. */
int track_stage_inputs(cJSON **out, struct tracker *t, const struct stage *s,
		       struct cp_error *err);
int track_resolve_image(struct tracker *t, const struct stage *s, struct cp_error *err);
/* The resolved image ID, "unknown" before track_resolve_image. Lends. */
const char *track_image_id(struct tracker *t, const struct stage *s);

/* track_key.c */
/* Everything that determines a stage's result, as the key hashes it:
 * image, command, entrypoint, environment, working_dir, user, mounts,
 * params and the digests of `inputs` (name -> digest entry, may be NULL).
 * Secret values (p->secrets and secret-named variables) are masked, so a
 * rotated token changes neither the key nor the lock. Caller owns. */
cJSON *track_key_object(const struct pipeline *p, const struct stage *s, const char *image,
			const cJSON *inputs);
/* The key of a key object: sha256 of its canonical JSON (sorts it). */
void track_key_digest(char out[DIGEST_BUFLEN], cJSON *keyobj);
/* Adds what a record says a stage ran with (command, entrypoint,
 * environment, working_dir, user, mounts, params), masked as the key is. */
void track_stage_fields(cJSON *e, const struct pipeline *p, const struct stage *s);

/* track_stale.c */
cJSON *track_lock_entry(struct tracker *t, const char *stage);
/* Concrete reasons why the key object `cur` differs from the lock entry
 * `old` (params, environment, image, command, ..., inputs). */
void track_key_reasons(cJSON *reasons, const cJSON *old, const cJSON *cur);
/* The reasons that need no file: --force, no outputs, never ran (`le`
 * NULL), key changed (then the concrete ones). Output checks come after. */
void track_stale_reasons(cJSON *reasons, const struct stage *s, const cJSON *le,
			 const cJSON *keyobj, const char *key, bool force);
/* Computes the stage's current key and why it is stale. Caller owns. */
int track_evaluate(cJSON **reasons_out, struct tracker *t, const struct stage *s,
		   struct cp_error *err);

/* track_record.c */
/* A new run record with status "running" and no stages yet. Caller owns. */
cJSON *track_new_record(struct tracker *t, struct cp_error *err);
/* The record's "stages" array. Lends. */
cJSON *track_record_stages(struct tracker *t);
/* Saves the record (masked as its parts were added). Progress saves need not be `durable`: a kill
 * leaves the last one whole, and the final save supersedes them. */
int track_record_save(struct tracker *t, bool durable, struct cp_error *err);

/* track_record.c */
/* Writes the stage's lock entry (its key, what the key hashes, inputs,
 * `outputs`, `metrics`) and the executions index, which names `producer`
 * (the run a restore took the outputs from; NULL: this run) as the run
 * that made them; an experiment (a --set run) leaves both alone. */
int track_update_lock(struct tracker *t, const struct stage *s, const cJSON *outputs,
		      const cJSON *metrics, const char *producer, struct cp_error *err);

/* track_code.c */
/* The project files a stage's result depends on as code (host paths,
 * appended to *out): with `build_files` (the runtime builds no image, or
 * knows images by name only) and build:, the Dockerfile and the build
 * context .dockerignore leaves in; on any runtime, the files of the
 * project its command names (`local`: the host's paths are the stage's). The state
 * directory and the lock are never ones. The seam for the Dockerfile reader: it narrows
 * the build context to what COPY/ADD take. */
int track_code_files(struct strvec *out, const struct pipeline *p, const struct stage *s,
		     const char *state_dir, const char *lock_path, bool local, bool build_files,
		     struct cp_error *err);

/* The name of the first file of `s`'s build context (an input of keyobj)
 * whose digest differs from the lock entry le's, or that le lacks; NULL
 * when none, or without build: or le. Caller frees. */
char *track_build_change(const struct pipeline *p, const struct stage *s, const cJSON *le,
			 const cJSON *keyobj);

/* track_observe.c */
/* Whether the job's outputs are observed: it declares neither outputs:
 * nor metrics:. */
bool track_observes(const struct stage *s);
/* The stage's mounts an observer lists, as refs ("vol" + "/", or a bind
 * source inside the project): all, or only the writable ones. Caller frees
 * with track_refs_free. */
void track_observed_mounts(struct artifact_ref **out, size_t *n, const struct pipeline *p,
			   const struct stage *s, bool writable_only);
void track_refs_free(struct artifact_ref *v, size_t n);
/* The ref a record or lock names "vol:/path", "./rel" or "/abs"; -1 when
 * `name` is none of these. Caller frees out's strings. */
int track_ref_parse(struct artifact_ref *out, const struct pipeline *p, const char *name);
/* The refs an "outputs" object names (NULL: none). Caller frees. */
void track_part_refs(struct artifact_ref **out, size_t *n, const struct pipeline *p,
		     const cJSON *part);
/* Whether an observed output entry records a deletion. */
bool track_entry_deleted(const cJSON *e);
/* Adds to `inputs` one entry per mount of an observed stage: the digest
 * of what it holds but the stage's outputs (`own`, an "outputs" object;
 * NULL: the lock's) and those of the stages downstream of it. */
int track_observed_reads(cJSON *inputs, struct tracker *t, const struct stage *s,
			 const cJSON *own, struct cp_error *err);
/* Lists the writable mounts of `s` before it runs. */
int track_snapshot(struct tracker *t, const struct stage *s, struct cp_error *err);
void track_snapshot_free(struct tstate *ts);
/* After `s` exited 0: what it created or changed, committed to the store
 * (name -> entry into `outputs`, its type into `types`), and what it
 * deleted ({"deleted": true}); then its key recomputed as the next
 * evaluation will compute it. */
int track_collect_observed(cJSON *outputs, cJSON *types, struct tracker *t,
			   const struct stage *s, struct cp_error *err);
/* Frees the mount listings of the memo. */
void track_scans_clear(struct memo *m);

/* track_store.c */
/* As track_digest_ref, committing the artifact to the store as it is
 * read when the store is open and the artifact has a host path; *type is
 * then its 'f', 'd' or 'l' (else 0). Caller owns *out. */
int track_commit_ref(cJSON **out, char *type, struct tracker *t, const char *volume,
		     const char *path, struct cp_error *err);
/* Remembers in the run cache that the stage's current key produced
 * `outputs` and `metrics` (types: name -> "f"|"d"|"l"); skipped when an
 * output was not committed. Best effort. */
void track_runcache_save(struct tracker *t, const struct stage *s, const cJSON *outputs,
			 const cJSON *metrics, const cJSON *types);
/* Puts the run cache's outputs for the stage's current key back into the
 * volumes: 1 and *used (the run cache entry, caller owns) when it did, 0
 * when the store has no complete entry for the key, -1 on error. */
int track_restore(cJSON **used, struct tracker *t, const struct stage *s, struct cp_error *err);

#endif
