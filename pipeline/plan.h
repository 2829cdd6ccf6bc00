/* The planner: which stages a command touches and in which order. */
#ifndef CPIPE_PIPELINE_PLAN_H
#define CPIPE_PIPELINE_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "spec.h"

struct plan {
	const struct pipeline *p; /* lent */
	size_t *order;            /* selected stage indices, dependency order */
	size_t n;
	bool *selected;           /* by stage index */
	bool *named;              /* by stage index: named on the command line */
};

/* Builds the plan for `names` (none = every stage not hidden behind an
 * inactive profile). Named stages bring their upstream stages unless
 * `no_deps`. Order is topological; ties keep spec order, so it is
 * deterministic. Unknown names fail with a suggestion. `profiles` are the active profiles (may be NULL). */
int plan_build(struct plan *out, const struct pipeline *p, const char *const *names,
	       size_t nnames, bool no_deps, const struct strvec *profiles,
	       struct cp_error *err);
void plan_free(struct plan *plan);

/* Fails (EXIT_USAGE, at the stage's file:line:col) on the first planned
 * stage the runtime cannot start: without `images` (local) one whose
 * Dockerfile could not be read or with no command or entrypoint
 * (spec_image_check_local); with images (docker)
 * one with neither image: nor build:. Callers check before anything is
 * written. */
int plan_check_runnable(const struct plan *plan, const char *runtime, bool images,
			struct cp_error *err);

/* Every stage in dependency order (ties in spec order), in O(E log n).
 * The loader has rejected cycles with their path; one left fails with
 * "dependency cycle among stages". *out is caller-owned. */
int plan_topo_order(size_t **out, const struct pipeline *p, struct cp_error *err);

#endif
