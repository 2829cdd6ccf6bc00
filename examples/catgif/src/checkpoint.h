/* Versioned model checkpoints: shapes, training progress, hyperparameters,
 * parameters and optimizer state, closed by a CRC32. */
#ifndef CATGIF_CHECKPOINT_H
#define CATGIF_CHECKPOINT_H

#include <stdint.h>

#include "util.h"

#include "model.h"

#define CHECKPOINT_VERSION 1

struct checkpoint {
	enum model_arch arch;
	uint32_t channels, hidden;
	uint32_t epoch;       /* epochs completed */
	uint64_t images_seen; /* training images processed, over all epochs */
	/* hyperparameters of the latest training run */
	float lr, momentum, lr_decay;
	uint32_t batch, procs;
	uint64_t seed;
	/* statistics of the latest epoch */
	float train_loss, train_accuracy;
	/* model_param_count(arch, channels, hidden) floats each, model layout */
	float *params, *velocity;
};

/* Writes ck to path atomically. Byte-for-byte a function of ck: no
 * timestamps, no host facts. */
int checkpoint_save(const char *path, const struct checkpoint *ck, struct cg_error *err);

/* Reads and validates path (magic, version, shapes, size, checksum, finite
 * values); EXIT_INPUT errors say which check failed. Allocates
 * out->params and out->velocity: release with checkpoint_free. */
int checkpoint_load(struct checkpoint *out, const char *path, struct cg_error *err);
void checkpoint_free(struct checkpoint *ck);
/* Binds m to ck->params. */
void checkpoint_model(struct model *m, const struct checkpoint *ck);

#endif
