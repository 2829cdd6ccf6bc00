/* Remotes of the artifact store: where a teammate's or CI's results are
 * shared. Three kinds, one layout (the Bazel HTTP remote cache's):
 *   <remote>/cas/<hex>   an object, named by the sha256 of its bytes
 *   <remote>/ac/<hex>    a run cache entry, named by the stage key
 * - a directory (a path, or file://PATH): files renamed into place;
 * - http(s)://HOST/PREFIX: GET/PUT/HEAD, so bazel-remote, nginx with
 *   WebDAV or any such server works; Basic auth from the URL's user:password
 *   or CPIPE_REMOTE_USER / CPIPE_REMOTE_PASSWORD, a bearer token from
 *   CPIPE_REMOTE_TOKEN;
 * - s3://BUCKET/PREFIX: S3 with libcurl's SigV4; AWS_ACCESS_KEY_ID,
 *   AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN), AWS_REGION (default
 *   us-east-1), AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for another server.
 * Transfers run in parallel (CPIPE_REMOTE_JOBS, default 8) and retry
 * transient failures with backoff. Every download is hashed as it arrives
 * and installed into the store only when its sha256 is its name; a big
 * file (HTTP, S3) is written to a spare copy in the same pass, which the
 * checkout that follows renames into the volume (cas_spare_name). No
 * credential appears in a message: remote_shown() has none. */
#ifndef CPIPE_ARTIFACTS_REMOTE_H
#define CPIPE_ARTIFACTS_REMOTE_H

#include "../lib/error.h"
#include "../lib/util.h"
#include "cas.h"

struct remote;

/* What a push or fetch moved. */
struct remote_stats {
	unsigned long long sent, received; /* objects and entries transferred */
	unsigned long long skipped;        /* already on the other side */
	unsigned long long bytes;          /* payload bytes transferred */
};

/* Parses `url` (a relative directory is taken from `base_dir`); contacts
 * nothing. Bad URLs are usage errors. Caller frees with remote_close. */
int remote_open(struct remote **out, const char *url, const char *base_dir,
		struct cp_error *err);
void remote_close(struct remote *r);

/* The URL without credentials, for messages. Lends. */
const char *remote_shown(const struct remote *r);

/* The remote to use: `flag` (--remote), else $CPIPE_REMOTE, else `spec`
 * (x-cpipe.remote); NULL when none is set. Lends. */
const char *remote_choose(const char *flag, const char *spec);

/* Uploads the local run cache entries of `keys` ("sha256:<hex>" stage
 * keys) and every object they name, skipping what the remote holds: the
 * objects first, the entries after, so a remote entry's objects are always
 * there. A key without a complete local entry is an error naming it. */
int remote_push(struct remote_stats *st, struct remote *r, struct cas *c,
		const struct strvec *keys, struct cp_error *err);

/* Downloads the remote's entries of `keys` and the objects they name
 * that the store lacks, each verified against its digest, then saves the
 * entries in the local run cache. found[i] says whether key i was on the
 * remote (and is now whole in the store). A corrupted object or entry is
 * an error and is never installed. */
int remote_fetch(struct remote_stats *st, bool *found, struct remote *r, struct cas *c,
		 const struct strvec *keys, struct cp_error *err);

#endif
