/* Filling an empty directory from a list of host files, as Docker fills an
 * empty named volume from the image's content at its mount point. */
#ifndef CPIPE_LIB_FS_FILL_H
#define CPIPE_LIB_FS_FILL_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct fs_fill_item {
	char *source; /* absolute host path: a file, directory or symlink */
	char *path;   /* where it goes, relative to the filled directory */
};

/* When directory `dir` is empty, copies the items into it (directories
 * made, files copied with their mode, symlinks recreated; later items
 * replace earlier ones) and sets *filled. The copy is made in a sibling
 * directory renamed over `dir`, so `dir` is either still empty or full.
 * A `dir` with any entry is left alone. */
int fs_fill_empty(const char *dir, const struct fs_fill_item *items, size_t n, bool *filled,
		  struct cp_error *err);

#endif
