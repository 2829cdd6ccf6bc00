/* The Kubernetes REST client (see kube_api.h). */
#include "kube_api.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime.h"

#define BODY_MAX (64u << 20)

struct kube {
	struct kube_config cfg; /* the strings are the client's own copies */
	bool interruptible;
	CURL *h;
};

struct xfer {
	const struct kube_req *rq;
	struct strbuf body;
	long status;
	bool aborted, too_big, interrupted, stalled;
	bool interruptible;
	sig_atomic_t interrupts;
	long answer_ms;
	long long started;
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static long answer_ms(void)
{
	const char *v = getenv("CPIPE_KUBE_TIMEOUT");
	char *end = NULL;
	double secs = v && *v ? strtod(v, &end) : 0;
	return end && !*end && secs > 0 ? (long)(secs * 1000) : KUBE_ANSWER_MS;
}

static char *dup_mem(const char *p, size_t n)
{
	if (!p)
		return NULL;
	char *c = xmalloc(n + 1);
	memcpy(c, p, n);
	c[n] = '\0';
	return c;
}

static void copy_config(struct kube_config *to, const struct kube_config *from)
{
	*to = (struct kube_config){
		.file = xstrdup(from->file ? from->file : ""),
		.context = xstrdup(from->context ? from->context : ""),
		.cluster = xstrdup(from->cluster ? from->cluster : ""),
		.server = xstrdup(from->server),
		.namespace = from->namespace ? xstrdup(from->namespace) : NULL,
		.insecure = from->insecure,
		.ca_pem = dup_mem(from->ca_pem, from->ca_len),
		.ca_len = from->ca_len,
		.cert_pem = dup_mem(from->cert_pem, from->cert_len),
		.cert_len = from->cert_len,
		.key_pem = dup_mem(from->key_pem, from->key_len),
		.key_len = from->key_len,
		.token = from->token ? xstrdup(from->token) : NULL,
	};
}

int kube_open(struct kube **out, const struct kube_config *cfg, struct cp_error *err)
{
	pthread_once(&curl_once, curl_init_once);
	if (!cfg->server || strncmp(cfg->server, "https://", 8) != 0) {
		return cp_error_set(err, EXIT_RUNTIME,
				    "%s: cluster \"%s\": server %s is not https://; cpipe "
				    "talks to the API server over TLS only",
				    cfg->file, cfg->cluster, cfg->server ? cfg->server : "(none)");
	}
	if (!!cfg->cert_pem != !!cfg->key_pem) {
		return cp_error_set(
		    err, EXIT_RUNTIME,
		    "%s: a client certificate needs its key and the other way round", cfg->file);
	}
	struct kube *k = xcalloc(1, sizeof(*k));
	copy_config(&k->cfg, cfg);
	k->interruptible = true;
	k->h = curl_easy_init();
	if (!k->h)
		abort();
	*out = k;
	return 0;
}

struct kube *kube_clone(const struct kube *k)
{
	struct kube *c = xcalloc(1, sizeof(*c));
	copy_config(&c->cfg, &k->cfg);
	c->h = curl_easy_init();
	if (!c->h)
		abort();
	return c;
}

void kube_close(struct kube *k)
{
	if (!k)
		return;
	curl_easy_cleanup(k->h);
	kube_config_free(&k->cfg);
	free(k);
}

const char *kube_server(const struct kube *k)
{
	return k->cfg.server;
}

char *kube_escape(const char *s)
{
	pthread_once(&curl_once, curl_init_once);
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e)
		abort();
	char *out = xstrdup(e);
	curl_free(e);
	return out;
}

void kube_curl_auth(const struct kube *k, CURL *h, struct curl_slist **hdrs)
{
	if (k->cfg.ca_pem) {
		struct curl_blob b = {k->cfg.ca_pem, k->cfg.ca_len, CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	}
	if (k->cfg.cert_pem) {
		struct curl_blob c = {k->cfg.cert_pem, k->cfg.cert_len, CURL_BLOB_COPY};
		struct curl_blob kb = {k->cfg.key_pem, k->cfg.key_len, CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &c);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (k->cfg.insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (k->cfg.token) {
		cleanup_free char *auth = xasprintf("Authorization: Bearer %s", k->cfg.token);
		*hdrs = curl_slist_append(*hdrs, auth);
		explicit_bzero(auth, strlen(auth));
	}
}

void kube_curl_headers_free(struct curl_slist *hdrs)
{
	for (struct curl_slist *l = hdrs; l; l = l->next)
		if (strncasecmp(l->data, "Authorization:", 14) == 0)
			explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(hdrs);
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	if (!x->status)
		x->status = -1;
	if (x->rq->on_data && x->status < 400) {
		if (x->rq->on_data(x->rq->ud, data, len) < 0) {
			x->aborted = true;
			return 0;
		}
		return len;
	}
	if (sb_add(&x->body, data, len) < 0) {
		x->too_big = true;
		return 0;
	}
	return len;
}

static size_t header_cb(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	int code = 0;
	if (len > 9 && strncmp(data, "HTTP/", 5) == 0 && sscanf(strchr(data, ' ') ? strchr(data, ' ') : data, "%d", &code) == 1)
		x->status = code;
	return len;
}

static int xferinfo_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	struct xfer *x = ud;
	if (x->rq->cancel && atomic_load(x->rq->cancel))
		return 1;
	if (x->interruptible && x->interrupts != runtime_interrupts) {
		x->interrupted = true;
		return 1;
	}
	if (!x->rq->stream && now_ms() - x->started > x->answer_ms) {
		x->stalled = true;
		return 1;
	}
	return 0;
}

/* The API's Status message, else the status and a short body. */
static int status_error(struct kube *k, const struct kube_req *rq, const struct xfer *x,
			struct cp_error *err)
{
	cJSON *j = x->body.len ? cJSON_Parse(x->body.buf) : NULL;
	const char *msg = kube_str(j, "message");
	/* Refused credentials: the runtime cannot work here; anything else
	 * the server refused fails the stage that asked. */
	int code = x->status == 401 || x->status == 403 ? EXIT_RUNTIME : EXIT_STAGE_FAILED;
	if (msg)
		cp_error_set(err, code, "%s", msg);
	else if (x->status == 401)
		cp_error_set(err, code,
			     "the API server at %s refused the credentials of %s (HTTP 401)",
			     k->cfg.server, k->cfg.file);
	else if (x->body.len && x->body.len < 300)
		cp_error_set(err, code, "%s %s: HTTP %ld: %s", rq->method, rq->path, x->status,
			     x->body.buf);
	else
		cp_error_set(err, code, "%s %s: HTTP %ld", rq->method, rq->path, x->status);
	cJSON_Delete(j);
	return -1;
}

int kube_call(struct kube *k, const struct kube_req *rq, long *status_out, cJSON **json_out,
	      struct cp_error *err)
{
	CURL *h = k->h;
	struct xfer x = {.rq = rq, .body = {.max = BODY_MAX}, .interruptible = k->interruptible,
			 .interrupts = runtime_interrupts, .answer_ms = answer_ms(),
			 .started = now_ms()};
	if (status_out)
		*status_out = 0;
	if (json_out)
		*json_out = NULL;
	curl_easy_reset(h);
	cleanup_free char *url = xasprintf("%s%s", k->cfg.server, rq->path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x.errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, KUBE_CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);

	struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
	kube_curl_auth(k, h, &hdrs);
	char *text = NULL;
	if (rq->json) {
		text = cJSON_PrintUnformatted(rq->json);
		cleanup_free char *ct = xasprintf("Content-Type: %s", rq->content_type
									 ? rq->content_type
									 : "application/json");
		hdrs = curl_slist_append(hdrs, ct);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
	}
	if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	else if (strcmp(rq->method, "POST") == 0 && !text)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	x.status = status ? status : x.status > 0 ? x.status : 0;
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	kube_curl_headers_free(hdrs);
	if (text)
		cJSON_free(text);
	if (status_out)
		*status_out = x.status;

	int ret = 0;
	if (x.aborted) {
		ret = 0; /* on_data had what it wanted */
	} else if (rq->cancel && atomic_load(rq->cancel) && rc != CURLE_OK) {
		ret = cp_error_set(err, EXIT_RUNTIME, "%s %s: cancelled", rq->method, rq->path);
	} else if (x.interrupted && rc != CURLE_OK) {
		ret =
		    cp_error_set(err, EXIT_INTERRUPTED, "%s %s: interrupted", rq->method, rq->path);
	} else if (x.stalled && rc != CURLE_OK) {
		ret = cp_error_set(err, EXIT_RUNTIME,
				   "the API server at %s did not answer %s %s within %.0fs",
				   k->cfg.server, rq->method, rq->path, (double)x.answer_ms / 1000);
	} else if (rc != CURLE_OK && x.status == 0) {
		ret =
		    cp_error_set(err, EXIT_RUNTIME,
				 "cannot reach the Kubernetes API server at %s (context \"%s\" of "
				 "%s): %s (is the cluster up? KUBECONFIG and --context select "
				 "another one)",
				 k->cfg.server, k->cfg.context, k->cfg.file,
				 *x.errbuf ? x.errbuf : curl_easy_strerror(rc));
	} else if (x.too_big) {
		ret = cp_error_set(err, EXIT_RUNTIME, "%s %s: response larger than %u bytes",
				   rq->method, rq->path, BODY_MAX);
	} else if (x.status >= 400) {
		ret = status_error(k, rq, &x, err);
	} else if (rc != CURLE_OK) {
		ret = cp_error_set(err, EXIT_RUNTIME, "%s %s: %s", rq->method, rq->path,
				   *x.errbuf ? x.errbuf : curl_easy_strerror(rc));
	} else if (json_out && x.body.len) {
		*json_out = cJSON_Parse(x.body.buf);
	}
	if (getenv("CPIPE_KUBE_TRACE"))
		fprintf(stderr, "cpipe: kube %s %s: %ld (%lld ms)\n", rq->method, rq->path, x.status,
			now_ms() - x.started);
	sb_free(&x.body);
	return ret;
}

int kube_json(struct kube *k, const char *method, const char *path, const cJSON *body,
	      long *status_out, cJSON **json_out, struct cp_error *err)
{
	struct kube_req rq = {.method = method, .path = path, .json = body};
	return kube_call(k, &rq, status_out, json_out, err);
}

const cJSON *kube_get(const cJSON *o, const char *path)
{
	char key[128];
	while (o && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		o = cJSON_GetObjectItemCaseSensitive(o, key);
		path += n + (path[n] == '.');
	}
	return o;
}

const char *kube_str(const cJSON *o, const char *path)
{
	const cJSON *v = kube_get(o, path);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}
