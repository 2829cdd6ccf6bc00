/* Shared by remote.c (what to move), remote_dir.c (a directory) and
 * remote_http.c (HTTP and S3 through libcurl); not for other modules. A
 * backend moves a batch of named blobs and reports each one's fate. */
#ifndef CPIPE_ARTIFACTS_REMOTE_INTERNAL_H
#define CPIPE_ARTIFACTS_REMOTE_INTERNAL_H

#include <stdint.h>

#include "remote.h"

enum xfer_op { XFER_HEAD, XFER_GET, XFER_PUT };

/* A download this big is written twice as it arrives (xfer.spare), so
 * that its checkout is a rename, not a second pass over the bytes. */
#define SPARE_MIN (1u << 20)
enum { XFER_OK, XFER_ABSENT, XFER_FAILED };

struct xfer {
	char name[80];     /* "cas/<hex>" or "ac/<hex>" */
	char sha256[65];   /* PUT: the payload's sha256 hex (S3 signs it) */
	const char *src;   /* PUT: from this file, */
	const char *mem;   /* or from these bytes */
	size_t len;
	const char *dst;   /* GET: into this file (created; truncated at each attempt), */
	const char *spare; /* and, when it is big (SPARE_MIN), into this one too */
	bool spared;       /* GET done: the spare holds every byte as well */
	struct strbuf *out; /* or into memory (out->max caps it) */
	uint8_t md[32];    /* GET: sha256 of what arrived */
	unsigned long long bytes;
	int result;        /* XFER_OK, XFER_ABSENT (HEAD/GET: not there), XFER_FAILED */
	char *error;       /* XFER_FAILED: why, without credentials; owned */
};

struct remote_curl {
	char *base;    /* URL that names are appended to, ending in '/' */
	char *userpwd; /* Basic auth, or the S3 key:secret */
	char *bearer;  /* "Authorization: Bearer ..." header */
	char *sigv4;   /* CURLOPT_AWS_SIGV4 parameter; NULL: not S3 */
	char *s3token; /* "x-amz-security-token: ..." header */
};

struct remote {
	char *shown; /* without credentials */
	char *dir;   /* a directory remote; NULL: curl */
	struct remote_curl http;
	int jobs;    /* transfers at once */
};

/* Each performs op on every v[i], setting its result. Never fails as a
 * whole; a failed item carries its error. */
void remote_dir_run(struct remote *r, enum xfer_op op, struct xfer *v, size_t n);
void remote_curl_run(struct remote *r, enum xfer_op op, struct xfer *v, size_t n);

/* Fill r->http from an http(s):// or s3:// URL and the environment. */
int remote_http_open(struct remote *r, const char *url, struct cp_error *err);
int remote_s3_open(struct remote *r, const char *url, struct cp_error *err);

#endif
