/* Fashion-MNIST images and labels: the IDX files the dataset ships as
 * (read and written with zlib) and catgif's compact dataset file. */
#ifndef CATGIF_DATASET_H
#define CATGIF_DATASET_H

#include <stdint.h>

#include "util.h"

#define DATASET_CLASSES 10
#define DATASET_SIDE    28
#define DATASET_PIXELS  (DATASET_SIDE * DATASET_SIDE)

/* Class names as Fashion-MNIST publishes them, and file-name slugs. */
extern const char *const dataset_class_names[DATASET_CLASSES];
extern const char *const dataset_class_slugs[DATASET_CLASSES];

/* count images of rows x cols uint8 pixels (row-major), one label each. */
struct dataset {
	uint32_t count, rows, cols;
	uint8_t *pixels;
	uint8_t *labels;
};

/* Reads an IDX image file and its IDX label file (gzip or plain), checking
 * magic numbers, 28x28 dimensions, equal counts, labels 0..9, truncation and
 * trailing bytes. Errors name the file and what is wrong (EXIT_INPUT).
 * Free *out with dataset_free. */
int dataset_read_idx(struct dataset *out, const char *images_path, const char *labels_path,
                     struct cg_error *err);

/* Writes ds as gzip-compressed IDX files (deterministic bytes, atomic). */
int dataset_write_idx(const struct dataset *ds, const char *images_path, const char *labels_path,
                      struct cg_error *err);

/* Compact file: "CATGIFDS", version, count, rows, cols, pixels, labels,
 * CRC32 of everything before it. Written atomically. */
int dataset_save(const struct dataset *ds, const char *path, struct cg_error *err);
/* Loads and validates a compact file written by dataset_save. */
int dataset_load(struct dataset *out, const char *path, struct cg_error *err);

/* Keeps the first n images (no-op when n >= count). */
void dataset_truncate(struct dataset *ds, uint32_t n);
void dataset_free(struct dataset *ds);

#endif
