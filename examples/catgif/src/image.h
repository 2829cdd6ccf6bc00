/* 28x28 grayscale images in and out: decoders for what POST /predict
 * accepts (PGM P5, GIF via giflib, JSON via cJSON) and encoders for what
 * infer writes and sends (GIF, PGM). */
#ifndef CATGIF_IMAGE_H
#define CATGIF_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define IMAGE_SIDE   28
#define IMAGE_PIXELS (IMAGE_SIDE * IMAGE_SIDE)

/* Decodes a 28x28 grayscale image into out[784], values 0..255. The format
 * comes from the magic bytes ("P5", "GIF87a"/"GIF89a", a JSON '[' or '{'),
 * else from content_type (may be NULL). JSON is an array of 784 numbers in
 * 0..255, or an object whose "pixels" member is one. *format names the
 * decoder used. On failure err->code is the HTTP status to answer: 400
 * malformed, 415 unknown format, 422 well-formed but not 28x28. */
int image_decode(float out[IMAGE_PIXELS], const char **format, const unsigned char *data,
                 size_t len, const char *content_type, struct cg_error *err);

/* Appends a GIF of the w x h 8-bit image, each pixel scale x scale, with a
 * 256-level gray palette. Deterministic bytes. */
int image_encode_gif(struct buf *out, const uint8_t *pixels, int w, int h, int scale,
                     struct cg_error *err);
/* Appends a binary PGM (P5, maxval 255) of the w x h image. */
void image_encode_pgm(struct buf *out, const uint8_t *pixels, int w, int h);

#endif
