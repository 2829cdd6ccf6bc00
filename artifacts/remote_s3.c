/* An S3 remote, s3://BUCKET/PREFIX: the HTTP remote's transfers, signed
 * with libcurl's SigV4 from the AWS_* environment. A configured endpoint
 * (another S3 server) is addressed path-style, AWS itself per bucket. */
#include <stdlib.h>
#include <string.h>

#include "remote_internal.h"

static const char *env(const char *a, const char *b)
{
	const char *v = getenv(a);
	if ((!v || !*v) && b)
		v = getenv(b);
	return v && *v ? v : NULL;
}

int remote_s3_open(struct remote *r, const char *url, struct cp_error *err)
{
	const char *rest = url + strlen("s3://");
	const char *slash = strchr(rest, '/');
	cleanup_free char *bucket = slash ? xstrndup(rest, (size_t)(slash - rest)) : xstrdup(rest);
	cleanup_free char *prefix = xstrdup(slash ? slash + 1 : "");
	size_t plen = strlen(prefix);
	while (plen && prefix[plen - 1] == '/')
		prefix[--plen] = '\0';
	if (!*bucket || strspn(bucket, "abcdefghijklmnopqrstuvwxyz0123456789.-") != strlen(bucket))
		return cp_error_set(err, EXIT_USAGE,
				    "remote %s: expected s3://BUCKET/PREFIX with a bucket of "
				    "lowercase letters, digits, '.' and '-'",
				    url);
	const char *key = env("AWS_ACCESS_KEY_ID", NULL), *secret = env("AWS_SECRET_ACCESS_KEY", NULL);
	if (!key || !secret)
		return cp_error_set(err, EXIT_USAGE,
				    "remote %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
				    "for an S3 remote",
				    url);
	const char *region = env("AWS_REGION", "AWS_DEFAULT_REGION");
	if (!region)
		region = "us-east-1";
	const char *endpoint = env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
	const char *sep = plen ? "/" : "";
	if (endpoint) {
		size_t elen = strlen(endpoint);
		while (elen && endpoint[elen - 1] == '/')
			elen--;
		r->http.base = xasprintf("%.*s/%s/%s%s", (int)elen, endpoint, bucket, prefix, sep);
	} else {
		r->http.base = xasprintf("https://%s.s3.%s.amazonaws.com/%s%s", bucket, region, prefix,
					 sep);
	}
	r->http.userpwd = xasprintf("%s:%s", key, secret);
	r->http.sigv4 = xasprintf("aws:amz:%s:s3", region);
	const char *token = env("AWS_SESSION_TOKEN", NULL);
	if (token)
		r->http.s3token = xasprintf("x-amz-security-token: %s", token);
	r->shown = xasprintf("s3://%s/%s", bucket, prefix);
	return 0;
}
