/* Image decoders and encoders for 28x28 grayscale pictures. */
#include "image.h"

#include <ctype.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <gif_lib.h>

enum { HTTP_BAD_REQUEST = 400, HTTP_UNSUPPORTED = 415, HTTP_UNPROCESSABLE = 422 };

/* --- PGM ------------------------------------------------------------------ */

/* Reads one header number of a PGM, skipping whitespace and # comments. */
static int pgm_number(long *out, const unsigned char *d, size_t len, size_t *pos)
{
	for (;;) {
		while (*pos < len && isspace(d[*pos]))
			(*pos)++;
		if (*pos < len && d[*pos] == '#') {
			while (*pos < len && d[*pos] != '\n')
				(*pos)++;
			continue;
		}
		break;
	}
	long v = 0;
	size_t start = *pos;
	while (*pos < len && isdigit(d[*pos]) && *pos - start < 6)
		v = v * 10 + (d[(*pos)++] - '0');
	if (*pos == start || (*pos < len && !isspace(d[*pos]) && d[*pos] != '#'))
		return -1;
	*out = v;
	return 0;
}

static int decode_pgm(float *out, const unsigned char *d, size_t len, struct cg_error *err)
{
	size_t pos = 2;
	long w, h, maxval;
	if (pgm_number(&w, d, len, &pos) < 0 || pgm_number(&h, d, len, &pos) < 0 ||
	    pgm_number(&maxval, d, len, &pos) < 0 || pos >= len)
		return err_set(err, HTTP_BAD_REQUEST, "malformed PGM header");
	pos++; /* the single whitespace byte before the raster */
	if (maxval < 1 || maxval > 65535)
		return err_set(err, HTTP_BAD_REQUEST, "PGM maxval %ld out of range 1..65535",
		               maxval);
	if (w != IMAGE_SIDE || h != IMAGE_SIDE)
		return err_set(err, HTTP_UNPROCESSABLE, "PGM image is %ldx%ld, expected %dx%d", w,
		               h, IMAGE_SIDE, IMAGE_SIDE);
	size_t bpp = maxval > 255 ? 2 : 1, need = (size_t)IMAGE_PIXELS * bpp;
	if (len - pos != need)
		return err_set(err, HTTP_BAD_REQUEST, "PGM raster is %zu bytes, expected %zu",
		               len - pos, need);
	for (int i = 0; i < IMAGE_PIXELS; i++) {
		const unsigned char *p = d + pos + (size_t)i * bpp;
		long v = bpp == 2 ? (long)p[0] << 8 | p[1] : p[0];
		if (v > maxval)
			return err_set(err, HTTP_BAD_REQUEST, "PGM pixel %d exceeds maxval", i);
		out[i] = (float)v * 255.0f / (float)maxval;
	}
	return 0;
}

/* --- GIF ------------------------------------------------------------------ */

struct mem_reader {
	const unsigned char *data;
	size_t len, pos;
};

static int gif_read(GifFileType *gif, GifByteType *dst, int n)
{
	struct mem_reader *r = gif->UserData;
	size_t left = r->len - r->pos, k = (size_t)n < left ? (size_t)n : left;
	memcpy(dst, r->data + r->pos, k);
	r->pos += k;
	return (int)k;
}

static int gif_fail(struct cg_error *err, int code, const char *what, int gif_err)
{
	const char *why = GifErrorString(gif_err);
	return err_set(err, code, "%s%s%s", what, why ? ": " : "", why ? why : "");
}

/* Reads the first image's raster (de-interlacing) and maps it to gray. */
static int gif_image(float *out, GifFileType *gif, struct cg_error *err)
{
	if (DGifGetImageDesc(gif) == GIF_ERROR)
		return gif_fail(err, HTTP_BAD_REQUEST, "malformed GIF image descriptor",
		                gif->Error);
	GifImageDesc *desc = &gif->Image;
	if (desc->Width != IMAGE_SIDE || desc->Height != IMAGE_SIDE)
		return err_set(err, HTTP_UNPROCESSABLE, "GIF image is %dx%d, expected %dx%d",
		               desc->Width, desc->Height, IMAGE_SIDE, IMAGE_SIDE);
	const ColorMapObject *cmap = desc->ColorMap ? desc->ColorMap : gif->SColorMap;
	if (!cmap)
		return err_set(err, HTTP_BAD_REQUEST, "GIF has no color map");
	GifPixelType idx[IMAGE_PIXELS] = {0};
	static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
	int passes = desc->Interlace ? 4 : 1;
	for (int p = 0; p < passes; p++)
		for (int y = desc->Interlace ? start[p] : 0; y < IMAGE_SIDE;
		     y += desc->Interlace ? step[p] : 1)
			if (DGifGetLine(gif, idx + y * IMAGE_SIDE, IMAGE_SIDE) == GIF_ERROR)
				return gif_fail(err, HTTP_BAD_REQUEST,
				                "truncated or corrupt GIF raster", gif->Error);
	for (int i = 0; i < IMAGE_PIXELS; i++) {
		if (idx[i] >= cmap->ColorCount)
			return err_set(err, HTTP_BAD_REQUEST, "GIF pixel %d uses color %d of %d", i,
			               idx[i], cmap->ColorCount);
		GifColorType c = cmap->Colors[idx[i]];
		out[i] = (299.0f * c.Red + 587.0f * c.Green + 114.0f * c.Blue) / 1000.0f;
	}
	return 0;
}

static int decode_gif(float *out, const unsigned char *d, size_t len, struct cg_error *err)
{
	struct mem_reader r = {d, len, 0};
	int gerr = 0;
	GifFileType *gif = DGifOpen(&r, gif_read, &gerr);
	if (!gif)
		return gif_fail(err, HTTP_BAD_REQUEST, "malformed GIF header", gerr);
	int rc = -1;
	for (;;) {
		GifRecordType type;
		if (DGifGetRecordType(gif, &type) == GIF_ERROR) {
			gif_fail(err, HTTP_BAD_REQUEST, "malformed GIF", gif->Error);
			break;
		}
		if (type == IMAGE_DESC_RECORD_TYPE) {
			rc = gif_image(out, gif, err);
			break;
		}
		if (type == TERMINATE_RECORD_TYPE) {
			err_set(err, HTTP_BAD_REQUEST, "GIF holds no image");
			break;
		}
		if (type == EXTENSION_RECORD_TYPE) {
			int code;
			GifByteType *ext;
			int ok = DGifGetExtension(gif, &code, &ext) != GIF_ERROR;
			while (ok && ext)
				ok = DGifGetExtensionNext(gif, &ext) != GIF_ERROR;
			if (!ok) {
				gif_fail(err, HTTP_BAD_REQUEST, "malformed GIF extension",
				         gif->Error);
				break;
			}
		}
	}
	DGifCloseFile(gif, &gerr);
	return rc;
}

/* --- JSON ----------------------------------------------------------------- */

static int decode_json(float *out, const unsigned char *d, size_t len, struct cg_error *err)
{
	cJSON *root = cJSON_ParseWithLength((const char *)d, len);
	if (!root)
		return err_set(err, HTTP_BAD_REQUEST, "malformed JSON");
	const cJSON *arr =
	    cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "pixels") : root;
	int rc = 0;
	if (!cJSON_IsArray(arr)) {
		rc = err_set(err, HTTP_BAD_REQUEST,
		             "JSON must be an array of 784 numbers or {\"pixels\": [...]}");
	} else if (cJSON_GetArraySize(arr) != IMAGE_PIXELS) {
		rc = err_set(err, HTTP_UNPROCESSABLE, "JSON has %d values, expected %d (28x28)",
		             cJSON_GetArraySize(arr), IMAGE_PIXELS);
	} else {
		int i = 0;
		const cJSON *v;
		cJSON_ArrayForEach(v, arr)
		{
			double x = cJSON_GetNumberValue(v);
			if (!cJSON_IsNumber(v) || !isfinite(x) || x < 0 || x > 255) {
				rc = err_set(err, HTTP_BAD_REQUEST,
				             "JSON value %d is not a number in 0..255", i);
				break;
			}
			out[i++] = (float)x;
		}
	}
	cJSON_Delete(root);
	return rc;
}

/* --- dispatch ------------------------------------------------------------- */

static int type_is(const char *content_type, const char *want)
{
	size_t n = strlen(want);
	return content_type && !strncasecmp(content_type, want, n) &&
	       (content_type[n] == '\0' || content_type[n] == ';' || isspace(content_type[n]));
}

int image_decode(float out[IMAGE_PIXELS], const char **format, const unsigned char *data,
                 size_t len, const char *content_type, struct cg_error *err)
{
	size_t ws = 0;
	while (ws < len && isspace(data[ws]))
		ws++;
	if (len >= 2 && data[0] == 'P' && data[1] == '5') {
		*format = "pgm";
		return decode_pgm(out, data, len, err);
	}
	if (len >= 6 && (!memcmp(data, "GIF87a", 6) || !memcmp(data, "GIF89a", 6))) {
		*format = "gif";
		return decode_gif(out, data, len, err);
	}
	if ((ws < len && (data[ws] == '[' || data[ws] == '{')) ||
	    type_is(content_type, "application/json")) {
		*format = "json";
		return decode_json(out, data, len, err);
	}
	*format = "unknown";
	if (type_is(content_type, "image/gif"))
		return err_set(err, HTTP_BAD_REQUEST,
		               "body is not a GIF (no GIF87a/GIF89a signature)");
	if (type_is(content_type, "image/x-portable-graymap") ||
	    type_is(content_type, "image/x-portable-anymap"))
		return err_set(err, HTTP_BAD_REQUEST, "body is not a binary PGM (no P5 signature)");
	return err_set(err, HTTP_UNSUPPORTED,
	               "unsupported image format: send a 28x28 PGM (P5), a GIF, or a JSON array of "
	               "784 numbers in 0..255");
}

/* --- encoders ------------------------------------------------------------- */

static int gif_write(GifFileType *gif, const GifByteType *src, int n)
{
	buf_append(gif->UserData, src, (size_t)n);
	return n;
}

int image_encode_gif(struct buf *out, const uint8_t *pixels, int w, int h, int scale,
                     struct cg_error *err)
{
	int gerr = 0, W = w * scale, H = h * scale;
	GifFileType *gif = EGifOpen(out, gif_write, &gerr);
	if (!gif)
		return gif_fail(err, EXIT_FAIL, "EGifOpen", gerr);
	ColorMapObject *cmap = GifMakeMapObject(256, NULL);
	if (!cmap) {
		EGifCloseFile(gif, &gerr);
		return err_set(err, EXIT_FAIL, "GifMakeMapObject: out of memory");
	}
	for (int i = 0; i < 256; i++)
		cmap->Colors[i].Red = cmap->Colors[i].Green = cmap->Colors[i].Blue = (GifByteType)i;
	cleanup_free GifPixelType *row = xmalloc((size_t)W);
	int ok = EGifPutScreenDesc(gif, W, H, 8, 0, cmap) != GIF_ERROR &&
	         EGifPutImageDesc(gif, 0, 0, W, H, false, NULL) != GIF_ERROR;
	for (int y = 0; ok && y < H; y++) {
		for (int x = 0; x < W; x++)
			row[x] = pixels[(y / scale) * w + x / scale];
		ok = EGifPutLine(gif, row, W) != GIF_ERROR;
	}
	if (!ok)
		gerr = gif->Error;
	GifFreeMapObject(cmap);
	int cerr = 0;
	if (EGifCloseFile(gif, &cerr) == GIF_ERROR && ok) {
		ok = 0;
		gerr = cerr;
	}
	return ok ? 0 : gif_fail(err, EXIT_FAIL, "GIF encoding failed", gerr);
}

void image_encode_pgm(struct buf *out, const uint8_t *pixels, int w, int h)
{
	char hdr[32];
	int n = snprintf(hdr, sizeof hdr, "P5\n%d %d\n255\n", w, h);
	buf_append(out, hdr, (size_t)n);
	buf_append(out, pixels, (size_t)w * h);
}
