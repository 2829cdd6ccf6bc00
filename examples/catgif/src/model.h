/* The catgif models, float32, softmax cross-entropy over 10 classes:
 *   mlp: 784 -> hidden (ReLU) -> 10
 *   cnn: 28x28 -> conv 5x5 x channels (ReLU) -> max-pool 2x2 -> hidden (ReLU) -> 10
 * trained by SGD with momentum. Inputs are standardised pixels. */
#ifndef CATGIF_MODEL_H
#define CATGIF_MODEL_H

#include <stddef.h>
#include <stdint.h>

enum model_arch { MODEL_MLP = 1, MODEL_CNN = 2 };

#define MODEL_SIDE         28
#define MODEL_INPUTS       (MODEL_SIDE * MODEL_SIDE)
#define MODEL_OUTPUTS      10
#define MODEL_KERNEL       5
#define MODEL_CONV_SIDE    (MODEL_SIDE - MODEL_KERNEL + 1) /* 24 */
#define MODEL_POOL_SIDE    (MODEL_CONV_SIDE / 2)           /* 12 */
#define MODEL_MAX_HIDDEN   4096
#define MODEL_MAX_CHANNELS 64

/* A view of the parameters (or of a gradient or velocity with the same
 * layout) inside one caller-owned array of model_param_count floats:
 * conv_w [channels][5][5], conv_b [channels] (cnn only), then
 * w1 [dense_in][hidden], b1 [hidden], w2 [hidden][10], b2 [10]. */
struct model {
	enum model_arch arch;
	uint32_t channels, hidden;
	uint32_t dense_in; /* 784 for mlp, channels * 12 * 12 for cnn */
	float *base;
	float *conv_w, *conv_b, *w1, *b1, *w2, *b2;
};

/* Scratch for a batch of up to `batch` inputs: x the standardised inputs,
 * pooled / pool_at the conv features and where each max came from (cnn), h
 * the hidden activations, p the class probabilities; dh, dpooled and grad
 * only when made for training. */
struct model_work {
	uint32_t batch;
	float *x, *pooled, *conv, *h, *p, *dh, *dpooled;
	uint16_t *pool_at;
	struct model grad;
};

/* Parses "mlp" / "cnn"; returns 0 when unknown. */
enum model_arch model_arch_parse(const char *s);
const char *model_arch_name(enum model_arch arch);
/* Whether the shape is one this code builds (arch known, sizes in range). */
int model_shape_valid(enum model_arch arch, uint32_t channels, uint32_t hidden);

size_t model_param_count(enum model_arch arch, uint32_t channels, uint32_t hidden);
/* Points m's tensors into base, which holds model_param_count floats. */
void model_bind(struct model *m, enum model_arch arch, uint32_t channels, uint32_t hidden,
                float *base);
/* Seeded initialisation: He-uniform for layers followed by ReLU,
 * Glorot-uniform for the output layer, zero biases. */
void model_init(struct model *m, uint64_t seed);

/* Allocates scratch for m and batch inputs; with_grad adds backward space.
 * Release with model_work_free. */
void model_work_init(struct model_work *w, const struct model *m, uint32_t batch, int with_grad);
void model_work_free(struct model_work *w);
/* Fills input row b from 784 pixels in 0..255 (standardised). */
void model_load_u8(struct model_work *w, uint32_t b, const uint8_t *pixels);
void model_load_f32(struct model_work *w, uint32_t b, const float *pixels);

/* Forward pass of rows 0..n into w->p. Reads m only, so threads may share
 * one model with a work area each. */
void model_forward(const struct model *m, struct model_work *w, uint32_t n);
/* Cross-entropy of row b against label; the arg-max class of row b. */
float model_loss(const struct model_work *w, uint32_t b, uint8_t label);
uint32_t model_argmax(const struct model_work *w, uint32_t b);
/* After model_forward: the gradient of the mean loss over rows 0..n into
 * w->grad (overwrites w->p). */
void model_backward(const struct model *m, struct model_work *w, const uint8_t *labels, uint32_t n);
/* v = momentum * v + g; params -= lr * v, over every parameter. */
void model_sgd_step(struct model *params, struct model *velocity, const struct model *grad,
                    float lr, float momentum);

#endif
