/* Pieces of the spec loader shared by its files (merge.c, spec_load.c,
 * spec_build.c). Not for use outside pipeline/spec*.c and merge.c. */
#ifndef CPIPE_PIPELINE_SPEC_INTERNAL_H
#define CPIPE_PIPELINE_SPEC_INTERNAL_H

#include "spec.h"
#include "yaml_tree.h"

/* Brings one file's tree to the shape the merge expects: `services:` is
 * renamed `stages:` (both in one file is an error), a string `build:`
 * becomes {context: ...}, and the list forms of `environment`, `labels`,
 * `build.args` and `depends_on` become mappings. Malformed values are left
 * alone for spec_build to report. */
int spec_normalize(struct ynode *root, struct cp_error *err);

/* Merges `over` into `base` with compose's override rules and frees what
 * of `over` it does not keep. Both are normalized mappings. */
void spec_merge(struct ynode *base, struct ynode *over);

/* Merges the service mapping `over` into *slot (extends), with the rules
 * spec_merge applies to one stage. Takes over. */
void spec_merge_service(struct ynode **slot, struct ynode *over);

/* Removes every mapping entry whose value is tagged `!reset` (what it
 * reset is gone once the files are merged). */
void spec_strip_resets(struct ynode *n);

/* Resolves one loaded file's top-level `include:` and its services'
 * `extends:` in place. `path` is the file's absolute path, `opts` gives
 * the environment; files read on the way are appended to `read` (absolute
 * paths) and their names to p->mark_files. */
int spec_resolve(struct ynode *root, struct pipeline *p, const char *path,
		 const struct spec_options *opts, const struct kvvec *env, struct strvec *read,
		 struct cp_error *err);

/* Everything spec_build needs besides the tree. */
struct spec_ctx {
	const struct spec_options *opts;
	const struct kvvec *env;  /* interpolation environment */
	const char *shown_base;   /* prefix for names of files beside the spec ("" or "dir/") */
};

/* Fills `p` (whose dir, files and mark_files are set) from the merged,
 * interpolated tree `root` (NULL = empty spec): validates every key,
 * applies --set, substitutes ${params.NAME}, adds implicit dependencies and
 * rejects cycles. On error p is partly filled; the caller frees it. */
int spec_build(struct pipeline *p, const struct ynode *root, const struct spec_ctx *ctx,
	       struct cp_error *err);

/* Fills `out` (zeroed by the caller) from a short or long ports entry. */
int spec_parse_port(struct port *out, const struct ynode *v, const char *stage,
		    struct cp_error *err);

/* Parses a compose duration ("1m30s", "500ms", "2h", "0") into ms. */
int spec_parse_duration(long *out, const char *s);

#endif
