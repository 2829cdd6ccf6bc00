/* pngcolours FILE.png: prints "WIDTHxHEIGHT COLOURS NONWHITE" for an 8-bit
 * RGB or RGBA, non-interlaced PNG (what Chromium's --screenshot writes):
 * the number of distinct colours and of pixels that are not pure white.
 * Exit 2 when the file is not such a PNG. For tests/bats/report.bats, so a
 * blank screenshot (one colour) is told from a drawn page without needing
 * python or ImageMagick. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int fail(const char *what)
{
	fprintf(stderr, "pngcolours: %s\n", what);
	return 2;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int paeth(int a, int b, int c)
{
	int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return fail("usage: pngcolours FILE.png");
	FILE *f = fopen(argv[1], "rb");
	if (!f)
		return fail("cannot open the file");
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	rewind(f);
	unsigned char *buf = malloc((size_t)size);
	if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size)
		return fail("cannot read the file");
	fclose(f);
	if (size < 8 || memcmp(buf, "\x89PNG\r\n\x1a\n", 8) != 0)
		return fail("not a PNG");
	uint32_t w = 0, h = 0;
	int bpp = 0;
	unsigned char *idat = NULL;
	size_t idat_len = 0;
	for (long off = 8; off + 12 <= size;) {
		uint32_t len;
		memcpy(&len, buf + off, 4);
		len = ntohl(len);
		const unsigned char *type = buf + off + 4, *data = buf + off + 8;
		if (len > (uint32_t)(size - off - 12))
			return fail("truncated chunk");
		if (!memcmp(type, "IHDR", 4)) {
			memcpy(&w, data, 4);
			memcpy(&h, data + 4, 4);
			w = ntohl(w), h = ntohl(h);
			if (data[8] != 8 || (data[9] != 2 && data[9] != 6) || data[12] != 0)
				return fail("only 8-bit RGB/RGBA non-interlaced PNGs");
			bpp = data[9] == 6 ? 4 : 3;
		} else if (!memcmp(type, "IDAT", 4)) {
			idat = realloc(idat, idat_len + len);
			memcpy(idat + idat_len, data, len);
			idat_len += len;
		}
		off += 12 + (long)len;
	}
	if (!bpp || !w || !h || w > 20000 || h > 20000)
		return fail("no usable IHDR");
	size_t stride = (size_t)w * (size_t)bpp;
	uLongf raw_len = (uLongf)((stride + 1) * h);
	unsigned char *raw = malloc(raw_len);
	if (uncompress(raw, &raw_len, idat, (uLong)idat_len) != Z_OK || raw_len != (stride + 1) * h)
		return fail("bad image data");
	uint32_t *px = malloc(sizeof(*px) * (size_t)w * h);
	unsigned long nonwhite = 0;
	unsigned char *prev = NULL;
	for (uint32_t y = 0; y < h; y++) {
		unsigned char *row = raw + y * (stride + 1) + 1;
		int filter = row[-1];
		for (size_t i = 0; i < stride; i++) {
			int a = i >= (size_t)bpp ? row[i - bpp] : 0, b = prev ? prev[i] : 0;
			int c = prev && i >= (size_t)bpp ? prev[i - bpp] : 0;
			int add = filter == 1 ? a : filter == 2 ? b : filter == 3 ? (a + b) / 2
				  : filter == 4 ? paeth(a, b, c) : 0;
			row[i] = (unsigned char)(row[i] + add);
		}
		for (uint32_t x = 0; x < w; x++) {
			const unsigned char *p = row + (size_t)x * bpp;
			uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
			px[(size_t)y * w + x] = v;
			nonwhite += v != 0xffffff;
		}
		prev = row;
	}
	qsort(px, (size_t)w * h, sizeof(*px), cmp_u32);
	unsigned long colours = 1;
	for (size_t i = 1; i < (size_t)w * h; i++)
		colours += px[i] != px[i - 1];
	printf("%ux%u %lu %lu\n", w, h, colours, nonwhite);
	free(px);
	free(raw);
	free(idat);
	free(buf);
	return 0;
}
