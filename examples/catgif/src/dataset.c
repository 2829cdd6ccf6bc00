/* Fashion-MNIST IDX files and catgif's compact dataset file. */
#include "dataset.h"

#include <errno.h>
#include <string.h>

#include <zlib.h>

const char *const dataset_class_names[DATASET_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};
const char *const dataset_class_slugs[DATASET_CLASSES] = {
    "t-shirt-top", "trouser", "pullover", "dress", "coat",
    "sandal",      "shirt",   "sneaker",  "bag",   "ankle-boot",
};

#define IDX_UBYTE  0x08
#define DS_MAGIC   "CATGIFDS"
#define DS_VERSION 1
#define DS_HEADER  24
#define MAX_IMAGES 10000000u

static void gz_closep(gzFile *f)
{
	if (*f)
		gzclose(*f);
}

/* Reads exactly n bytes; returns how many were read (short at end of data),
 * or -1 on a decompression error with the zlib message in *why. */
static long long gz_read_full(gzFile f, void *dst, size_t n, const char **why)
{
	size_t got = 0;
	while (got < n) {
		unsigned chunk = n - got > (1u << 30) ? 1u << 30 : (unsigned)(n - got);
		int r = gzread(f, (unsigned char *)dst + got, chunk);
		if (r < 0) {
			int zerr;
			*why = gzerror(f, &zerr);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (long long)got;
}

/* Opens one IDX file and checks its header: element type ubyte, ndims dims. */
static gzFile idx_open(const char *path, int ndims, uint32_t *dims, struct cg_error *err)
{
	gzFile f = gzopen(path, "rb");
	if (!f) {
		err_set(err, EXIT_INPUT, "%s: cannot open: %s", path,
		        errno ? strerror(errno) : "out of memory");
		return NULL;
	}
	gzbuffer(f, 1 << 17);
	unsigned char hdr[16];
	const char *why = "unexpected end of file";
	size_t want = 4 + 4 * (size_t)ndims;
	long long got = gz_read_full(f, hdr, want, &why);
	if (got != (long long)want) {
		err_set(err, EXIT_INPUT, "%s: truncated or corrupt header: %s", path,
		        got < 0 ? why : "file too short");
		gzclose(f);
		return NULL;
	}
	uint32_t magic = get_be32(hdr);
	uint32_t expect = IDX_UBYTE << 8 | (uint32_t)ndims;
	if (magic != expect) {
		err_set(
		    err, EXIT_INPUT,
		    "%s: bad magic number 0x%08x (expected 0x%08x: unsigned bytes, %d dimension%s)",
		    path, magic, expect, ndims, ndims > 1 ? "s" : "");
		gzclose(f);
		return NULL;
	}
	for (int i = 0; i < ndims; i++)
		dims[i] = get_be32(hdr + 4 + 4 * i);
	return f;
}

/* Reads n payload bytes and checks that nothing follows them. */
static int idx_payload(gzFile f, const char *path, const char *what, void *dst, size_t n,
                       struct cg_error *err)
{
	const char *why = NULL;
	long long got = gz_read_full(f, dst, n, &why);
	if (got < 0)
		return err_set(err, EXIT_INPUT, "%s: corrupt %s: %s", path, what, why);
	if ((size_t)got < n)
		return err_set(err, EXIT_INPUT,
		               "%s: truncated: expected %zu bytes of %s, found %lld", path, n, what,
		               got);
	unsigned char extra[64];
	got = gz_read_full(f, extra, sizeof extra, &why);
	if (got < 0)
		return err_set(err, EXIT_INPUT, "%s: corrupt end of file: %s", path, why);
	if (got > 0)
		return err_set(err, EXIT_INPUT,
		               "%s: unexpected data after the %zu bytes of %s the header announces",
		               path, n, what);
	return 0;
}

int dataset_read_idx(struct dataset *out, const char *images_path, const char *labels_path,
                     struct cg_error *err)
{
	memset(out, 0, sizeof *out);
	uint32_t idims[3], ldims[3];
	__attribute__((cleanup(gz_closep))) gzFile fi = idx_open(images_path, 3, idims, err);
	if (!fi)
		return -1;
	__attribute__((cleanup(gz_closep))) gzFile fl = idx_open(labels_path, 1, ldims, err);
	if (!fl)
		return -1;
	if (idims[1] != DATASET_SIDE || idims[2] != DATASET_SIDE)
		return err_set(err, EXIT_INPUT, "%s: images are %ux%u, expected %dx%d", images_path,
		               idims[1], idims[2], DATASET_SIDE, DATASET_SIDE);
	if (idims[0] == 0 || idims[0] > MAX_IMAGES)
		return err_set(err, EXIT_INPUT, "%s: implausible image count %u", images_path,
		               idims[0]);
	if (ldims[0] != idims[0])
		return err_set(err, EXIT_INPUT, "%s: %u labels, but %s has %u images", labels_path,
		               ldims[0], images_path, idims[0]);

	size_t npix = (size_t)idims[0] * DATASET_PIXELS;
	out->pixels = xmalloc(npix);
	out->labels = xmalloc(idims[0]);
	if (idx_payload(fi, images_path, "pixel data", out->pixels, npix, err) < 0 ||
	    idx_payload(fl, labels_path, "labels", out->labels, idims[0], err) < 0)
		goto fail;
	for (uint32_t i = 0; i < idims[0]; i++)
		if (out->labels[i] >= DATASET_CLASSES) {
			err_set(err, EXIT_INPUT, "%s: label %u of item %u is not a class 0..9",
			        labels_path, out->labels[i], i);
			goto fail;
		}
	out->count = idims[0];
	out->rows = out->cols = DATASET_SIDE;
	return 0;
fail:
	dataset_free(out);
	return -1;
}

/* gzip-compresses header + payload into one buffer with fixed header bytes. */
static int gzip_write(const char *path, const unsigned char *hdr, size_t hlen,
                      const unsigned char *data, size_t len, struct cg_error *err)
{
	z_stream z = {0};
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return err_set(err, EXIT_FAIL, "%s: zlib deflateInit2 failed", path);
	size_t cap = deflateBound(&z, hlen + len) + 64;
	cleanup_free unsigned char *outbuf = xmalloc(cap);
	z.next_out = outbuf;
	z.avail_out = (uInt)cap;
	z.next_in = (unsigned char *)hdr;
	z.avail_in = (uInt)hlen;
	int rc = deflate(&z, Z_NO_FLUSH);
	if (rc == Z_OK) {
		z.next_in = (unsigned char *)data;
		z.avail_in = (uInt)len;
		rc = deflate(&z, Z_FINISH);
	}
	size_t outlen = cap - z.avail_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END)
		return err_set(err, EXIT_FAIL, "%s: zlib deflate failed (%d)", path, rc);
	return file_write_atomic(path, outbuf, outlen, err);
}

int dataset_write_idx(const struct dataset *ds, const char *images_path, const char *labels_path,
                      struct cg_error *err)
{
	unsigned char hdr[16];
	put_u32(hdr, 0);
	hdr[2] = IDX_UBYTE, hdr[3] = 3;
	uint32_t dims[3] = {ds->count, ds->rows, ds->cols};
	for (int i = 0; i < 3; i++) {
		uint32_t d = dims[i];
		unsigned char *p = hdr + 4 + 4 * i;
		p[0] = d >> 24, p[1] = (d >> 16) & 0xff, p[2] = (d >> 8) & 0xff, p[3] = d & 0xff;
	}
	if (gzip_write(images_path, hdr, 16, ds->pixels, (size_t)ds->count * ds->rows * ds->cols,
	               err) < 0)
		return -1;
	hdr[3] = 1; /* labels: one dimension, the count already at hdr + 4 */
	return gzip_write(labels_path, hdr, 8, ds->labels, ds->count, err);
}

int dataset_save(const struct dataset *ds, const char *path, struct cg_error *err)
{
	size_t npix = (size_t)ds->count * ds->rows * ds->cols;
	size_t len = DS_HEADER + npix + ds->count + 4;
	cleanup_free unsigned char *b = xmalloc(len);
	memcpy(b, DS_MAGIC, 8);
	put_u32(b + 8, DS_VERSION);
	put_u32(b + 12, ds->count);
	put_u32(b + 16, ds->rows);
	put_u32(b + 20, ds->cols);
	memcpy(b + DS_HEADER, ds->pixels, npix);
	memcpy(b + DS_HEADER + npix, ds->labels, ds->count);
	put_u32(b + len - 4, (uint32_t)crc32_z(0, b, len - 4));
	return file_write_atomic(path, b, len, err);
}

int dataset_load(struct dataset *out, const char *path, struct cg_error *err)
{
	memset(out, 0, sizeof *out);
	cleanup_free unsigned char *b = NULL;
	size_t len;
	if (file_read_all(&b, &len, path, (size_t)4 << 30, err) < 0)
		return -1;
	if (len < DS_HEADER + 4 || memcmp(b, DS_MAGIC, 8) != 0)
		return err_set(err, EXIT_INPUT,
		               "%s: not a catgif dataset (run `catgif prepare` to make one)", path);
	uint32_t version = get_u32(b + 8);
	if (version != DS_VERSION)
		return err_set(err, EXIT_INPUT, "%s: dataset version %u, this catgif reads %u",
		               path, version, DS_VERSION);
	uint32_t count = get_u32(b + 12), rows = get_u32(b + 16), cols = get_u32(b + 20);
	if (rows != DATASET_SIDE || cols != DATASET_SIDE || count == 0 || count > MAX_IMAGES)
		return err_set(err, EXIT_INPUT, "%s: bad shape %u x %u x %u", path, count, rows,
		               cols);
	size_t npix = (size_t)count * rows * cols;
	if (len != DS_HEADER + npix + count + 4)
		return err_set(err, EXIT_INPUT, "%s: %zu bytes, expected %zu (truncated?)", path,
		               len, DS_HEADER + npix + count + 4);
	if (get_u32(b + len - 4) != (uint32_t)crc32_z(0, b, len - 4))
		return err_set(err, EXIT_INPUT, "%s: checksum mismatch (corrupt file)", path);
	for (uint32_t i = 0; i < count; i++)
		if (b[DS_HEADER + npix + i] >= DATASET_CLASSES)
			return err_set(err, EXIT_INPUT, "%s: label of item %u out of range", path,
			               i);
	out->count = count, out->rows = rows, out->cols = cols;
	out->pixels = xmalloc(npix);
	out->labels = xmalloc(count);
	memcpy(out->pixels, b + DS_HEADER, npix);
	memcpy(out->labels, b + DS_HEADER + npix, count);
	return 0;
}

void dataset_truncate(struct dataset *ds, uint32_t n)
{
	if (n < ds->count)
		ds->count = n;
}

void dataset_free(struct dataset *ds)
{
	free(ds->pixels);
	free(ds->labels);
	ds->pixels = ds->labels = NULL;
	ds->count = 0;
}
