/* .dockerignore patterns (the docker build context's, also read by the
 * local runtime for COPY/ADD). */
#ifndef CPIPE_LIB_DOCKERIGNORE_H
#define CPIPE_LIB_DOCKERIGNORE_H

#include <stdbool.h>

#include "error.h"
#include "util.h"

struct dockerignore_pattern {
	char *glob;
	bool negate; /* "!pattern": include again */
};

struct dockerignore {
	struct dockerignore_pattern *v;
	size_t n;
	bool has_negations;
};

/* Reads <dir>/.dockerignore; a missing file means no patterns. Free with
 * dockerignore_free. */
int dockerignore_load(struct dockerignore *ig, const char *dir, struct cp_error *err);
void dockerignore_free(struct dockerignore *ig);
/* True when `rel` (relative to the context, no leading "/") is excluded:
 * the last matching pattern decides, as in moby's patternmatcher. */
bool dockerignore_match(const struct dockerignore *ig, const char *rel);

/* The regular files of the build context `dir` a build would send: all
 * but what .dockerignore excludes, always `dockerfile` (relative to dir)
 * and .dockerignore itself, never `skip` (relative, may be NULL: cpipe's
 * state directory). Relative paths, sorted per directory. */
int dockerignore_context_files(struct strvec *out, const char *dir, const char *dockerfile,
				const char *skip, struct cp_error *err);

#endif
