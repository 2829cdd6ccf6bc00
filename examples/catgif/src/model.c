/* Forward and backward passes. The inner loops are axpy operations over
 * contiguous floats, or dot products split into a fixed number of lanes, so
 * they vectorize without the compiler reassociating sums: results do not
 * depend on the vector width, and --procs 1 training is reproducible. */
#include "model.h"

#include <math.h>
#include <string.h>

#include "util.h"

/* Fashion-MNIST training-set pixel mean and standard deviation (of p / 255). */
#define PIXEL_MEAN  0.2860f
#define PIXEL_STD   0.3530f
#define CONV_AREA   (MODEL_CONV_SIDE * MODEL_CONV_SIDE)
#define POOL_AREA   (MODEL_POOL_SIDE * MODEL_POOL_SIDE)
#define KERNEL_AREA (MODEL_KERNEL * MODEL_KERNEL)

enum model_arch model_arch_parse(const char *s)
{
	if (!strcmp(s, "mlp"))
		return MODEL_MLP;
	if (!strcmp(s, "cnn"))
		return MODEL_CNN;
	return 0;
}

const char *model_arch_name(enum model_arch arch)
{
	return arch == MODEL_CNN ? "cnn" : arch == MODEL_MLP ? "mlp" : "unknown";
}

int model_shape_valid(enum model_arch arch, uint32_t channels, uint32_t hidden)
{
	if (hidden < 1 || hidden > MODEL_MAX_HIDDEN)
		return 0;
	if (arch == MODEL_MLP)
		return channels == 0;
	return arch == MODEL_CNN && channels >= 1 && channels <= MODEL_MAX_CHANNELS;
}

static uint32_t dense_inputs(enum model_arch arch, uint32_t channels)
{
	return arch == MODEL_CNN ? channels * POOL_AREA : MODEL_INPUTS;
}

size_t model_param_count(enum model_arch arch, uint32_t channels, uint32_t hidden)
{
	size_t conv = arch == MODEL_CNN ? (size_t)channels * (KERNEL_AREA + 1) : 0;
	return conv + (size_t)dense_inputs(arch, channels) * hidden + hidden +
	       (size_t)hidden * MODEL_OUTPUTS + MODEL_OUTPUTS;
}

void model_bind(struct model *m, enum model_arch arch, uint32_t channels, uint32_t hidden,
                float *base)
{
	m->arch = arch;
	m->channels = arch == MODEL_CNN ? channels : 0;
	m->hidden = hidden;
	m->dense_in = dense_inputs(arch, m->channels);
	m->base = base;
	m->conv_w = base;
	m->conv_b = m->conv_w + (size_t)m->channels * KERNEL_AREA;
	m->w1 = m->conv_b + m->channels;
	m->b1 = m->w1 + (size_t)m->dense_in * hidden;
	m->w2 = m->b1 + hidden;
	m->b2 = m->w2 + (size_t)hidden * MODEL_OUTPUTS;
}

static void fill_uniform(float *p, size_t n, float bound, struct rng *r)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (2.0f * rng_float(r) - 1.0f) * bound;
}

void model_init(struct model *m, uint64_t seed)
{
	struct rng r;
	rng_seed(&r, seed);
	memset(m->base, 0, model_param_count(m->arch, m->channels, m->hidden) * sizeof(float));
	fill_uniform(m->conv_w, (size_t)m->channels * KERNEL_AREA, sqrtf(6.0f / KERNEL_AREA), &r);
	fill_uniform(m->w1, (size_t)m->dense_in * m->hidden, sqrtf(6.0f / (float)m->dense_in), &r);
	fill_uniform(m->w2, (size_t)m->hidden * MODEL_OUTPUTS,
	             sqrtf(6.0f / (float)(m->hidden + MODEL_OUTPUTS)), &r);
}

void model_work_init(struct model_work *w, const struct model *m, uint32_t batch, int with_grad)
{
	memset(w, 0, sizeof *w);
	w->batch = batch;
	w->x = xalloc_floats((size_t)batch * MODEL_INPUTS);
	w->h = xalloc_floats((size_t)batch * m->hidden);
	w->p = xalloc_floats((size_t)batch * MODEL_OUTPUTS);
	if (m->arch == MODEL_CNN) {
		w->conv = xalloc_floats(CONV_AREA);
		w->pooled = xalloc_floats((size_t)batch * m->dense_in);
		w->pool_at = xcalloc((size_t)batch * m->dense_in, sizeof *w->pool_at);
	}
	if (with_grad) {
		w->dh = xalloc_floats((size_t)batch * m->hidden);
		if (m->arch == MODEL_CNN)
			w->dpooled = xalloc_floats((size_t)batch * m->dense_in);
		model_bind(&w->grad, m->arch, m->channels, m->hidden,
		           xalloc_floats(model_param_count(m->arch, m->channels, m->hidden)));
	}
}

void model_work_free(struct model_work *w)
{
	free(w->x);
	free(w->pooled);
	free(w->conv);
	free(w->pool_at);
	free(w->h);
	free(w->p);
	free(w->dh);
	free(w->dpooled);
	free(w->grad.base);
	memset(w, 0, sizeof *w);
}

void model_load_u8(struct model_work *w, uint32_t b, const uint8_t *pixels)
{
	float *x = w->x + (size_t)b * MODEL_INPUTS;
	for (uint32_t i = 0; i < MODEL_INPUTS; i++)
		x[i] = ((float)pixels[i] * (1.0f / 255.0f) - PIXEL_MEAN) * (1.0f / PIXEL_STD);
}

void model_load_f32(struct model_work *w, uint32_t b, const float *pixels)
{
	float *x = w->x + (size_t)b * MODEL_INPUTS;
	for (uint32_t i = 0; i < MODEL_INPUTS; i++)
		x[i] = (pixels[i] * (1.0f / 255.0f) - PIXEL_MEAN) * (1.0f / PIXEL_STD);
}

/* y[0..n) += a * x[0..n) */
static inline void axpy(float *restrict y, float a, const float *restrict x, uint32_t n)
{
	for (uint32_t j = 0; j < n; j++)
		y[j] += a * x[j];
}

/* Dot product summed in 8 fixed lanes, then the lanes in order. */
static inline float dot(const float *restrict a, const float *restrict b, uint32_t n)
{
	float s[8] = {0};
	uint32_t j = 0;
	for (; j + 8 <= n; j += 8)
		for (int k = 0; k < 8; k++)
			s[k] += a[j + k] * b[j + k];
	for (; j < n; j++)
		s[0] += a[j] * b[j];
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* conv 5x5 + ReLU + 2x2 max-pool of one image into pooled / pool_at. */
static void conv_pool(const struct model *m, float *conv, const float *x, float *pooled,
                      uint16_t *pool_at)
{
	for (uint32_t c = 0; c < m->channels; c++) {
		const float *k = m->conv_w + (size_t)c * KERNEL_AREA;
		for (int i = 0; i < CONV_AREA; i++)
			conv[i] = m->conv_b[c];
		for (int ky = 0; ky < MODEL_KERNEL; ky++)
			for (int kx = 0; kx < MODEL_KERNEL; kx++)
				for (int y = 0; y < MODEL_CONV_SIDE; y++)
					axpy(conv + y * MODEL_CONV_SIDE, k[ky * MODEL_KERNEL + kx],
					     x + (y + ky) * MODEL_SIDE + kx, MODEL_CONV_SIDE);
		float *out = pooled + (size_t)c * POOL_AREA;
		uint16_t *at = pool_at + (size_t)c * POOL_AREA;
		for (int py = 0; py < MODEL_POOL_SIDE; py++)
			for (int px = 0; px < MODEL_POOL_SIDE; px++) {
				int best = 2 * py * MODEL_CONV_SIDE + 2 * px;
				static const int off[3] = {1, MODEL_CONV_SIDE, MODEL_CONV_SIDE + 1};
				int base = best;
				for (int q = 0; q < 3; q++)
					if (conv[base + off[q]] > conv[best])
						best = base + off[q];
				out[py * MODEL_POOL_SIDE + px] =
				    conv[best] > 0.0f ? conv[best] : 0.0f;
				at[py * MODEL_POOL_SIDE + px] = (uint16_t)best;
			}
	}
}

void model_forward(const struct model *m, struct model_work *w, uint32_t n)
{
	const uint32_t in = m->dense_in, hid = m->hidden;
	const float *din = w->x;
	if (m->arch == MODEL_CNN) {
		for (uint32_t b = 0; b < n; b++)
			conv_pool(m, w->conv, w->x + (size_t)b * MODEL_INPUTS,
			          w->pooled + (size_t)b * in, w->pool_at + (size_t)b * in);
		din = w->pooled;
	}
	for (uint32_t b = 0; b < n; b++)
		memcpy(w->h + (size_t)b * hid, m->b1, hid * sizeof(float));
	/* Input-major: one row of w1 stays in L1 while every sample of the batch
	 * adds its share; zero inputs (ReLU outputs) cost nothing. */
	for (uint32_t i = 0; i < in; i++) {
		const float *wr = m->w1 + (size_t)i * hid;
		for (uint32_t b = 0; b < n; b++) {
			float xi = din[(size_t)b * in + i];
			if (xi != 0.0f)
				axpy(w->h + (size_t)b * hid, xi, wr, hid);
		}
	}
	for (uint32_t b = 0; b < n; b++) {
		float *h = w->h + (size_t)b * hid, *z = w->p + (size_t)b * MODEL_OUTPUTS;
		for (uint32_t j = 0; j < hid; j++)
			h[j] = h[j] > 0.0f ? h[j] : 0.0f;
		memcpy(z, m->b2, MODEL_OUTPUTS * sizeof(float));
		for (uint32_t j = 0; j < hid; j++)
			if (h[j] != 0.0f)
				axpy(z, h[j], m->w2 + (size_t)j * MODEL_OUTPUTS, MODEL_OUTPUTS);
		float zmax = z[0], sum = 0.0f;
		for (int o = 1; o < MODEL_OUTPUTS; o++)
			zmax = z[o] > zmax ? z[o] : zmax;
		for (int o = 0; o < MODEL_OUTPUTS; o++)
			sum += z[o] = expf(z[o] - zmax);
		for (int o = 0; o < MODEL_OUTPUTS; o++)
			z[o] /= sum;
	}
}

float model_loss(const struct model_work *w, uint32_t b, uint8_t label)
{
	float p = w->p[(size_t)b * MODEL_OUTPUTS + label];
	return -logf(p > 1e-30f ? p : 1e-30f);
}

uint32_t model_argmax(const struct model_work *w, uint32_t b)
{
	const float *p = w->p + (size_t)b * MODEL_OUTPUTS;
	uint32_t best = 0;
	for (uint32_t o = 1; o < MODEL_OUTPUTS; o++)
		if (p[o] > p[best])
			best = o;
	return best;
}

/* Conv weight gradients: each pooled unit's gradient flows to the one conv
 * output that won the max (and only if it was positive, the ReLU). */
static void conv_backward(const struct model *m, struct model_work *w, uint32_t n)
{
	struct model *g = &w->grad;
	for (uint32_t b = 0; b < n; b++) {
		const float *x = w->x + (size_t)b * MODEL_INPUTS;
		const float *dp = w->dpooled + (size_t)b * m->dense_in;
		const uint16_t *at = w->pool_at + (size_t)b * m->dense_in;
		for (uint32_t c = 0; c < m->channels; c++) {
			float *gk = g->conv_w + (size_t)c * KERNEL_AREA;
			for (int q = 0; q < POOL_AREA; q++) {
				float d = dp[c * POOL_AREA + q];
				if (d == 0.0f)
					continue;
				int pos = at[c * POOL_AREA + q];
				const float *src = x + (pos / MODEL_CONV_SIDE) * MODEL_SIDE +
				                   pos % MODEL_CONV_SIDE;
				g->conv_b[c] += d;
				for (int ky = 0; ky < MODEL_KERNEL; ky++)
					axpy(gk + ky * MODEL_KERNEL, d, src + ky * MODEL_SIDE,
					     MODEL_KERNEL);
			}
		}
	}
}

void model_backward(const struct model *m, struct model_work *w, const uint8_t *labels, uint32_t n)
{
	const uint32_t in = m->dense_in, hid = m->hidden;
	struct model *g = &w->grad;
	const float scale = 1.0f / (float)n;
	const float *din = m->arch == MODEL_CNN ? w->pooled : w->x;
	memset(g->base, 0, model_param_count(m->arch, m->channels, hid) * sizeof(float));
	for (uint32_t b = 0; b < n; b++) {
		float *d = w->p + (size_t)b * MODEL_OUTPUTS; /* becomes dLoss/dlogits */
		const float *h = w->h + (size_t)b * hid;
		float *dh = w->dh + (size_t)b * hid;
		for (uint32_t o = 0; o < MODEL_OUTPUTS; o++)
			d[o] = (d[o] - (o == labels[b] ? 1.0f : 0.0f)) * scale;
		axpy(g->b2, 1.0f, d, MODEL_OUTPUTS);
		for (uint32_t j = 0; j < hid; j++) {
			float s = 0.0f;
			if (h[j] != 0.0f) { /* ReLU: no gradient where the unit was off */
				const float *wr = m->w2 + (size_t)j * MODEL_OUTPUTS;
				axpy(g->w2 + (size_t)j * MODEL_OUTPUTS, h[j], d, MODEL_OUTPUTS);
				for (uint32_t o = 0; o < MODEL_OUTPUTS; o++)
					s += wr[o] * d[o];
			}
			dh[j] = s;
		}
		axpy(g->b1, 1.0f, dh, hid);
	}
	for (uint32_t i = 0; i < in; i++) {
		const float *wr = m->w1 + (size_t)i * hid;
		float *gr = g->w1 + (size_t)i * hid;
		for (uint32_t b = 0; b < n; b++) {
			float xi = din[(size_t)b * in + i];
			const float *dh = w->dh + (size_t)b * hid;
			if (xi != 0.0f)
				axpy(gr, xi, dh, hid);
			/* A pooled unit of 0 is a ReLU that was off: no gradient. */
			if (w->dpooled)
				w->dpooled[(size_t)b * in + i] =
				    xi != 0.0f ? dot(wr, dh, hid) : 0.0f;
		}
	}
	if (m->arch == MODEL_CNN)
		conv_backward(m, w, n);
}

void model_sgd_step(struct model *params, struct model *velocity, const struct model *grad,
                    float lr, float momentum)
{
	size_t n = model_param_count(params->arch, params->channels, params->hidden);
	float *restrict p = params->base, *restrict v = velocity->base;
	const float *restrict g = grad->base;
	for (size_t i = 0; i < n; i++) {
		v[i] = momentum * v[i] + g[i];
		p[i] -= lr * v[i];
	}
}
