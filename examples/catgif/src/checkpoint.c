/* Checkpoint file, all integers and floats little-endian:
 *
 *   0  "CATGIFCK"                 8 bytes
 *   8  version                    u32 (1)
 *  12  inputs, outputs            u32 x 2 (784, 10)
 *  20  arch, channels, hidden     u32 x 3 (arch 1 = mlp, 2 = cnn)
 *  32  epoch, batch               u32 x 2
 *  40  seed, images_seen          u64 x 2
 *  56  lr, momentum, lr_decay     f32 x 3
 *  68  procs                      u32
 *  72  train_loss, train_accuracy f32 x 2
 *  80  optimizer                  u32 (1 = SGD with momentum)
 *  84  parameter count            u32
 *  88  parameters, velocity       f32 x count x 2
 *  ..  CRC32 of all the above     u32
 */
#include "checkpoint.h"

#include <math.h>
#include <string.h>

#include <zlib.h>

#define MAGIC            "CATGIFCK"
#define HEADER           88
#define OPT_SGD_MOMENTUM 1

static uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

int checkpoint_save(const char *path, const struct checkpoint *ck, struct cg_error *err)
{
	size_t n = model_param_count(ck->arch, ck->channels, ck->hidden);
	size_t len = HEADER + 8 * n + 4;
	cleanup_free unsigned char *b = xcalloc(1, len);
	memcpy(b, MAGIC, 8);
	put_u32(b + 8, CHECKPOINT_VERSION);
	put_u32(b + 12, MODEL_INPUTS);
	put_u32(b + 16, MODEL_OUTPUTS);
	put_u32(b + 20, ck->arch);
	put_u32(b + 24, ck->channels);
	put_u32(b + 28, ck->hidden);
	put_u32(b + 32, ck->epoch);
	put_u32(b + 36, ck->batch);
	put_u64(b + 40, ck->seed);
	put_u64(b + 48, ck->images_seen);
	put_u32(b + 56, f2u(ck->lr));
	put_u32(b + 60, f2u(ck->momentum));
	put_u32(b + 64, f2u(ck->lr_decay));
	put_u32(b + 68, ck->procs);
	put_u32(b + 72, f2u(ck->train_loss));
	put_u32(b + 76, f2u(ck->train_accuracy));
	put_u32(b + 80, OPT_SGD_MOMENTUM);
	put_u32(b + 84, (uint32_t)n);
	unsigned char *p = b + HEADER;
	for (size_t i = 0; i < n; i++, p += 4)
		put_u32(p, f2u(ck->params[i]));
	for (size_t i = 0; i < n; i++, p += 4)
		put_u32(p, f2u(ck->velocity[i]));
	put_u32(p, (uint32_t)crc32_z(0, b, len - 4));
	return file_write_atomic(path, b, len, err);
}

static int all_finite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

int checkpoint_load(struct checkpoint *out, const char *path, struct cg_error *err)
{
	memset(out, 0, sizeof *out);
	cleanup_free unsigned char *b = NULL;
	size_t len;
	if (file_read_all(&b, &len, path, (size_t)1 << 30, err) < 0)
		return -1;
	if (len < 8 || memcmp(b, MAGIC, 8) != 0)
		return err_set(err, EXIT_INPUT, "%s: not a catgif checkpoint (bad magic)", path);
	if (len < HEADER + 4)
		return err_set(err, EXIT_INPUT, "%s: truncated checkpoint (%zu bytes)", path, len);
	uint32_t version = get_u32(b + 8);
	if (version != CHECKPOINT_VERSION)
		return err_set(err, EXIT_INPUT,
		               "%s: checkpoint version %u, this catgif reads version %u", path,
		               version, CHECKPOINT_VERSION);
	struct checkpoint ck = {
	    .arch = get_u32(b + 20),
	    .channels = get_u32(b + 24),
	    .hidden = get_u32(b + 28),
	    .epoch = get_u32(b + 32),
	    .batch = get_u32(b + 36),
	    .seed = get_u64(b + 40),
	    .images_seen = get_u64(b + 48),
	    .lr = u2f(get_u32(b + 56)),
	    .momentum = u2f(get_u32(b + 60)),
	    .lr_decay = u2f(get_u32(b + 64)),
	    .procs = get_u32(b + 68),
	    .train_loss = u2f(get_u32(b + 72)),
	    .train_accuracy = u2f(get_u32(b + 76)),
	};
	if (get_u32(b + 12) != MODEL_INPUTS || get_u32(b + 16) != MODEL_OUTPUTS)
		return err_set(err, EXIT_INPUT,
		               "%s: model maps %u inputs to %u classes, expected %d to %d", path,
		               get_u32(b + 12), get_u32(b + 16), MODEL_INPUTS, MODEL_OUTPUTS);
	if (!model_shape_valid(ck.arch, ck.channels, ck.hidden))
		return err_set(err, EXIT_INPUT,
		               "%s: unsupported model: arch %u, %u channels, hidden size %u", path,
		               ck.arch, ck.channels, ck.hidden);
	size_t n = model_param_count(ck.arch, ck.channels, ck.hidden);
	if (get_u32(b + 84) != n)
		return err_set(err, EXIT_INPUT,
		               "%s: parameter count %u does not match the shape (%zu)", path,
		               get_u32(b + 84), n);
	if (get_u32(b + 80) != OPT_SGD_MOMENTUM)
		return err_set(err, EXIT_INPUT, "%s: unknown optimizer %u", path, get_u32(b + 80));
	if (len != HEADER + 8 * n + 4)
		return err_set(err, EXIT_INPUT, "%s: %zu bytes, expected %zu for this shape%s",
		               path, len, HEADER + 8 * n + 4,
		               len < HEADER + 8 * n + 4 ? " (truncated)" : "");
	if (get_u32(b + len - 4) != (uint32_t)crc32_z(0, b, len - 4))
		return err_set(err, EXIT_INPUT, "%s: checksum mismatch (corrupt checkpoint)", path);
	if (!isfinite(ck.lr) || !isfinite(ck.momentum) || !isfinite(ck.lr_decay) || ck.batch == 0)
		return err_set(err, EXIT_INPUT, "%s: invalid hyperparameters", path);
	ck.params = xalloc_floats(n);
	ck.velocity = xalloc_floats(n);
	const unsigned char *p = b + HEADER;
	for (size_t i = 0; i < n; i++, p += 4)
		ck.params[i] = u2f(get_u32(p));
	for (size_t i = 0; i < n; i++, p += 4)
		ck.velocity[i] = u2f(get_u32(p));
	if (!all_finite(ck.params, n) || !all_finite(ck.velocity, n)) {
		checkpoint_free(&ck);
		return err_set(err, EXIT_INPUT,
		               "%s: parameters are not finite (training diverged; lower --lr)",
		               path);
	}
	*out = ck;
	return 0;
}

void checkpoint_model(struct model *m, const struct checkpoint *ck)
{
	model_bind(m, ck->arch, ck->channels, ck->hidden, ck->params);
}

void checkpoint_free(struct checkpoint *ck)
{
	free(ck->params);
	free(ck->velocity);
	ck->params = ck->velocity = NULL;
}
