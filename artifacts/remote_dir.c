/* A directory remote (a shared disk, an NFS mount): blobs are files under
 * it, written to tmp/ and renamed into place, so a reader never sees one
 * half-written and a kill -9 leaves only a temporary behind. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "remote_internal.h"

#define DIR_BUF (1u << 20)

static void fail(struct xfer *x, const char *what, const char *path)
{
	x->result = XFER_FAILED;
	free(x->error);
	x->error = xasprintf("%s %s: %s", what, path, strerror(errno));
}

static void dir_head(struct remote *r, struct xfer *x)
{
	cleanup_free char *path = path_join(r->dir, x->name);
	struct stat st;
	x->result = stat(path, &st) == 0 && S_ISREG(st.st_mode) ? XFER_OK : XFER_ABSENT;
}

/* Copies `src` into `dst` (a new file) while hashing what it reads. */
static int copy_hashing(struct xfer *x, int dst, int src, void *buf)
{
	struct digest_ctx dc;
	digest_init(&dc);
	int rc = 0;
	for (;;) {
		ssize_t n = read(src, buf, DIR_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -1 : 0;
			break;
		}
		digest_update(&dc, buf, (size_t)n);
		x->bytes += (unsigned long long)n;
		if (x->out ? sb_add(x->out, buf, (size_t)n) : fs_write_all(dst, buf, (size_t)n)) {
			if (x->out)
				errno = EFBIG;
			rc = -1;
			break;
		}
	}
	int e = errno;
	digest_final_raw(x->md, &dc);
	errno = e;
	return rc;
}

static void dir_get(struct remote *r, struct xfer *x, void *buf)
{
	cleanup_free char *path = path_join(r->dir, x->name);
	cleanup_close int src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		if (errno == ENOENT)
			x->result = XFER_ABSENT;
		else
			fail(x, "reading", path);
		return;
	}
	cleanup_close int dst = -1;
	if (!x->out && (dst = open(x->dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		fail(x, "creating", x->dst);
		return;
	}
	if (copy_hashing(x, dst, src, buf) < 0) {
		fail(x, "copying", path);
		return;
	}
	x->result = XFER_OK;
}

static void dir_put(struct remote *r, struct xfer *x, void *buf)
{
	cleanup_free char *final = path_join(r->dir, x->name);
	cleanup_free char *parent = path_dirname(final);
	cleanup_free char *tmp = xasprintf("%s/tmp/%s.%s.tmp.%ld", r->dir, x->sha256,
					   strncmp(x->name, "ac/", 3) ? "cas" : "ac", (long)getpid());
	struct cp_error ignored = {0};
	if (fs_mkdir_p(parent, 0755, &ignored) < 0) {
		fail(x, "creating", parent);
		return;
	}
	cleanup_close int dst = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (dst < 0) {
		fail(x, "creating", tmp);
		return;
	}
	int rc;
	if (x->src) {
		cleanup_close int src = open(x->src, O_RDONLY | O_CLOEXEC);
		struct xfer sink = {0};
		rc = src < 0 ? -1 : copy_hashing(&sink, dst, src, buf);
		x->bytes = sink.bytes;
	} else {
		rc = fs_write_all(dst, x->mem, x->len);
		x->bytes = x->len;
	}
	if (rc < 0 || rename(tmp, final) < 0) {
		fail(x, "writing", final);
		unlink(tmp);
		return;
	}
	x->result = XFER_OK;
}

void remote_dir_run(struct remote *r, enum xfer_op op, struct xfer *v, size_t n)
{
	cleanup_free void *buf = op == XFER_HEAD ? NULL : xmalloc(DIR_BUF);
	cleanup_free char *tmp = path_join(r->dir, "tmp");
	struct cp_error ignored = {0};
	if (op == XFER_PUT)
		fs_mkdir_p(tmp, 0755, &ignored);
	for (size_t i = 0; i < n; i++) {
		v[i].bytes = 0;
		if (op == XFER_HEAD)
			dir_head(r, &v[i]);
		else if (op == XFER_GET)
			dir_get(r, &v[i], buf);
		else
			dir_put(r, &v[i], buf);
	}
}
