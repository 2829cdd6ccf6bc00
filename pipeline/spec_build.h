/* The state and helpers shared by spec_build.c (top level, value helpers),
 * spec_stage.c (stage keys), spec_mounts.c and spec_deps.c. Internal to
 * the loader.
 * Every helper that fails fills b->err ("file:line:col: <where>...") and
 * returns -1; `where` is a prefix such as `stage "train": ` or "".
 * Its names start with spb_ (spec builder); sb_ is lib/'s string buffer. */
#ifndef CPIPE_PIPELINE_SPEC_BUILD_H
#define CPIPE_PIPELINE_SPEC_BUILD_H

#include "spec_internal.h"

struct spb_set {
	const char *key;   /* "stage.param" as given (lent from opts->sets) */
	const char *value;
	struct stage *stage;
	const char *param; /* points into key */
};

/* A warning about one key, printed once however many stages use it. */
struct spb_warning {
	char *id;   /* what makes two warnings the same, e.g. "service shm_size" */
	char *text; /* the message at the first use */
	size_t more; /* uses after the first */
	const char *unit; /* what `more` counts, e.g. "stages" */
};

struct spec_builder {
	struct pipeline *p;
	const struct spec_ctx *ctx;
	struct cp_error *err;
	const char *stages_key; /* "stages" or "services", for messages */
	char *home;
	const char **stage_names;  /* lent from p->stages, NULL-terminated */
	const char **volume_names; /* lent from p->volumes, NULL-terminated */
	struct spb_set *sets;
	size_t nsets;
	struct spb_warning *warnings;
	size_t nwarnings;
	/* Per stage: a service by inference (no service:, no inputs:), whose
	 * start waits for the jobs writing the volumes it mounts. */
	bool *ordered_by_volumes;
};

/* What a null value in a KEY: VALUE mapping means. */
enum spb_null {
	SB_NULL_FROM_ENV, /* take it from the interpolation environment, else omit */
	SB_NULL_EMPTY,    /* the empty string */
};

int spb_type_error(struct spec_builder *b, const struct ynode *v, const char *where,
		  const char *key, const char *want);
int spb_unknown_key(struct spec_builder *b, const struct ynode *k, const char *where,
		   const char *const *cands, size_t n);
/* True for keys in `keys` and for any `x-*` key. */
bool spb_key_known(const char *key, const char *const *keys, size_t n);
/* Rejects the first key of `map` not in `keys` (x-* allowed). */
int spb_check_keys(struct spec_builder *b, const struct ynode *map, const char *where,
		  const char *const *keys, size_t n);

/* Checks the keys of `map` against the Compose Specification table of
 * `scope` (compose_keys.h): x-* keys pass, unknown keys fail with a
 * suggestion, keys cpipe does not honour are warned about (once per key). */
int spb_compose_keys(struct spec_builder *b, const struct ynode *map, int scope, const char *where);
/* Records a warning at `mark`, once per `id`; later ones with the same id
 * only count (`unit` names what is counted, e.g. "stages"). */
void spb_warn(struct spec_builder *b, const char *id, const char *unit, const struct cp_mark *mark,
	     const char *fmt, ...) CP_PRINTF(5, 6);

/* Scalar getters; *dst is replaced (null → NULL). */
int spb_string(struct spec_builder *b, const struct ynode *v, const char *where, const char *key,
	      char **dst);
int spb_bool(struct spec_builder *b, const struct ynode *v, const char *where, const char *key,
	    bool *out);
int spb_long(struct spec_builder *b, const struct ynode *v, const char *where, const char *key,
	    long min, long max, long *out);
int spb_duration(struct spec_builder *b, const struct ynode *v, const char *where,
		const char *key, long *out);
/* A list of strings, appended to out. */
int spb_strlist(struct spec_builder *b, const struct ynode *v, const char *where,
	       const char *key, struct strvec *out);
/* A KEY: VALUE mapping or a ["KEY=VALUE", "KEY"] list, set into out. With
 * params_of, ${params.NAME} in values is replaced from that stage. */
int spb_kv(struct spec_builder *b, const struct ynode *v, const char *where, const char *key,
	  struct kvvec *out, enum spb_null null_policy, const struct stage *params_of);

/* The interpolation environment's value of name, or NULL (lent). */
const char *spb_env_lookup(const struct spec_builder *b, const char *name);
/* A path relative to the project dir as shown in messages (caller frees). */
char *spb_shown(const struct spec_builder *b, const char *path);
/* A host path (`~/x`, `./x`, `/x`) made absolute against the project dir;
 * NULL when it climbs above `/`. Caller frees. */
char *spb_host_path(const struct spec_builder *b, const char *path);

/* spec_stage.c: fills one stage from its mapping (after pass 1 set name,
 * mark, index and service). */
int spb_stage(struct spec_builder *b, struct stage *st, const struct ynode *v);
/* spec_mounts.c: `volumes`, `ports`, and `inputs`/`outputs`/`metrics`
 * (key names the list) of one stage. */
int spb_mounts(struct spec_builder *b, struct stage *st, const struct ynode *v, const char *where);
int spb_ports(struct spec_builder *b, struct stage *st, const struct ynode *v, const char *where);
int spb_artifacts(struct spec_builder *b, const struct ynode *v, const char *where,
		 const char *key, struct artifact_ref **out, size_t *n);
/* Fails when two ports entries (of one stage or two) publish the same host
 * port on the same address and protocol. */
int spb_check_ports(struct spec_builder *b);
/* spec_deps.c: explicit `depends_on` of one stage. */
int spb_deps(struct spec_builder *b, struct stage *st, const struct ynode *v, const char *where);
/* Applies the --set overrides aimed at `st`; unknown params fail. */
int spb_apply_sets(struct spec_builder *b, struct stage *st);
/* Adds implicit dependencies from inputs onto outputs and metrics. */
int spb_implicit_deps(struct spec_builder *b);
/* Makes each service in b->ordered_by_volumes start after the jobs that
 * mount one of its named volumes writable and do not depend on it: a
 * compose file says nothing of what a server reads, but it reads what the
 * jobs before it wrote (e.g. a checkpoint). */
void spb_volume_order(struct spec_builder *b);
/* Fails with "dependency cycle: a -> b -> a" when the graph has a cycle. */
int spb_check_cycles(struct spec_builder *b);

/* spec_infer.c: decides job or service for every stage without
 * `service:` (after pass 1), as compose would run it. */
int spb_infer_services(struct spec_builder *b, const struct ynode *stages);

/* spec_compose.c: the compose keys of resources, security and lifecycle of
 * one stage (see struct stage_limits), and, once every stage is built,
 * the sources of their secrets and configs (from `root`'s secrets: and
 * configs:), volumes_from and runtime: nvidia. */
int spb_compose(struct spec_builder *b, struct stage *st, const struct ynode *v, const char *where);
int spb_compose_finish(struct spec_builder *b, const struct ynode *root);

/* spec_secrets.c: adds the secret values of the built stages and of the
 * top-level `secrets:` mapping (may be NULL) to b->p->secrets. */
void spb_secrets(struct spec_builder *b, const struct ynode *secrets);

#endif
