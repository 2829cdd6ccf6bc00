/* The sandbox's throwaway layer over the host (sandbox_overlay.c). */
#ifndef CPIPE_STAGES_SANDBOX_OVERLAY_H
#define CPIPE_STAGES_SANDBOX_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/util.h"

/* A part of the layered root: `layered` under a throwaway overlay (what
 * is created there is harmless), else a host directory bound as it is. */
struct sbx_layer_place {
	char *path;
	bool layered;
};

struct sbx_layers {
	char *root; /* the directory to pivot into */
	struct sbx_layer_place *places;
	size_t nplaces;
	char note[768]; /* a fallback to tell the user, one sentence, or "" */
};

/* Builds, in the sandbox's private mount namespace and before the pivot, a
 * root below `root_dir` made of overlays with the host's filesystems as
 * read-only lower layers and a tmpfs (mounted on `root_dir`, seen by this
 * namespace only) as upper ones; /dev, /sys and `project_dir` (when not
 * NULL) are bound from the host as they are. Returns 1 with l->root and
 * l->places set, 0 when the kernel refuses a layered root (l->note says
 * why; nothing is left mounted), -1 with `msg` on a set-up failure. A
 * mounted filesystem overlayfs refuses is bound as it is, said in
 * l->note. Free with sbx_layers_free. */
int sbx_layers_build(struct sbx_layers *l, const char *root_dir, const char *project_dir,
		     char *msg, size_t n);

void sbx_layers_free(struct sbx_layers *l);

/* Removes the empty root.* directories in `run_dir` that no sandbox has
 * used for a minute: a cpipe killed while it set up a sandbox leaves one
 * (the layers on it went with the sandbox's namespace). Best effort. */
void sandbox_sweep_roots(const char *run_dir);

#endif
