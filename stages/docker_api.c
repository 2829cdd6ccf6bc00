#include "docker_api.h"

#include "runtime.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_HOST "unix:///var/run/docker.sock"
#define PODMAN_ROOTFUL "/run/podman/podman.sock"
/* The newest API version cpipe speaks; older daemons get their own. */
#define MAX_API_MAJOR 1
#define MAX_API_MINOR 41
/* Mounts, DeviceRequests-less create, condition=not-running wait. */
#define MIN_API_MINOR 25
#define BODY_MAX (64u << 20)

struct docker {
	char *host;   /* as configured, for messages */
	char *socket; /* unix socket path, or NULL for tcp */
	char *base;   /* URL scheme and authority */
	char *cert_dir; /* TLS client certificates, or NULL */
	bool tls_verify;
	char version[16];
	char prefix[24]; /* "/v1.41", "" before negotiation */
	bool interruptible; /* gives up a request when runtime_interrupts moves */
	const struct docker_engine *engine;
	CURL *h;
};

const struct docker_engine docker_engine_docker = {
	.what = "Docker daemon", .var = "DOCKER_HOST", .server = "dockerd"};
const struct docker_engine docker_engine_podman = {
	.what = "Podman service", .var = "CONTAINER_HOST", .server = "podman system service"};

struct xfer {
	const struct docker_req *rq;
	struct strbuf body;
	CURL *h;
	long status;
	bool headers_done;
	bool aborted; /* on_data asked to stop */
	bool too_big;
	bool stalled;     /* no byte within the answer window */
	bool interruptible;
	bool interrupted; /* runtime_interrupts moved */
	sig_atomic_t interrupts; /* its value when the request began */
	long answer_ms;
	long long last_ms; /* when a byte last went either way */
	curl_off_t last_dn, last_un;
	struct curl_slist *hdrs;
	char *json_text;
	char errbuf[CURL_ERROR_SIZE];
};

struct docker_waker {
	pthread_mutex_t mu;
	CURLM *m; /* the transfer under way, or NULL */
	bool woken;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* CPIPE_DOCKER_TRACE=1 prints every API request with its status and time. */
static bool trace_enabled(void)
{
	static int on = -1;
	if (on < 0) {
		const char *v = getenv("CPIPE_DOCKER_TRACE");
		on = v && *v && strcmp(v, "0") != 0;
	}
	return on;
}

/* CPIPE_DOCKER_TIMEOUT=SECONDS replaces the connect and answer timeouts. */
static long timeout_override_ms(void)
{
	static long ms = -1;
	if (ms < 0) {
		const char *v = getenv("CPIPE_DOCKER_TIMEOUT");
		char *end = NULL;
		double secs = v && *v ? strtod(v, &end) : 0;
		ms = end && !*end && secs > 0 ? (long)(secs * 1000) : 0;
	}
	return ms;
}

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *docker_host(const struct docker *d)
{
	return d->host;
}

bool docker_is_local(const struct docker *d)
{
	return d->socket != NULL;
}

const char *docker_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

char *docker_escape(struct docker *d, const char *s)
{
	char *e = curl_easy_escape(d->h, s, 0);
	if (!e)
		abort();
	char *out = xstrdup(e);
	curl_free(e);
	return out;
}

static int parse_host(struct docker *d, const char *host, struct cp_error *err)
{
	d->host = xstrdup(host);
	const char *tls = getenv("DOCKER_TLS_VERIFY");
	d->tls_verify = tls && *tls && strcmp(tls, "0") != 0;
	if (str_has_prefix(host, "unix://")) {
		if (!host[7]) {
			return cp_error_set(err, EXIT_RUNTIME, "%s=%s: no socket path",
					    d->engine->var, host);
		}
		d->socket = xstrdup(host + 7);
		d->base = xstrdup("http://localhost");
		return 0;
	}
	if (str_has_prefix(host, "tcp://") || str_has_prefix(host, "http://") ||
	    str_has_prefix(host, "https://")) {
		const char *rest = strstr(host, "://") + 3;
		size_t n = strcspn(rest, "/");
		bool https = d->tls_verify || str_has_prefix(host, "https://");
		d->base = xasprintf("%s://%.*s", https ? "https" : "http", (int)n, rest);
		if (https) {
			const char *dir = getenv("DOCKER_CERT_PATH");
			const char *home = getenv("HOME");
			if (dir && *dir)
				d->cert_dir = xstrdup(dir);
			else if (home)
				d->cert_dir = xasprintf("%s/.docker", home);
		}
		return 0;
	}
	return cp_error_set(err, EXIT_RUNTIME,
			    "%s=%s: unsupported; use unix://PATH or tcp://HOST:PORT",
			    d->engine->var, host);
}

static size_t header_cb(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	if (x->rq->on_header_line)
		x->rq->on_header_line(x->rq->ud, data, len);
	if (len <= 2 && (len == 0 || data[0] == '\r' || data[0] == '\n')) {
		long status = 0;
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && !x->headers_done) {
			x->headers_done = true;
			x->status = status;
			if (x->rq->on_headers)
				x->rq->on_headers(x->rq->ud, status);
		}
	}
	return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
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

struct docker_waker *docker_waker_new(void)
{
	struct docker_waker *w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	return w;
}

void docker_waker_free(struct docker_waker *w)
{
	if (!w)
		return;
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void docker_wake(struct docker_waker *w)
{
	pthread_mutex_lock(&w->mu);
	w->woken = true;
	if (w->m)
		curl_multi_wakeup(w->m);
	pthread_mutex_unlock(&w->mu);
}

static bool woken(struct docker_waker *w)
{
	pthread_mutex_lock(&w->mu);
	bool on = w->woken;
	pthread_mutex_unlock(&w->mu);
	return on;
}

static bool cancelled(const struct docker_req *rq)
{
	return (rq->cancel && atomic_load(rq->cancel)) || (rq->stop && *rq->stop) ||
	       (rq->waker && woken(rq->waker));
}

/* curl_easy_perform, but through a multi handle that docker_wake can
 * interrupt in its poll. */
static CURLcode perform_wakeable(CURL *h, struct docker_waker *w)
{
	CURLM *m = curl_multi_init();
	if (!m)
		abort();
	curl_multi_add_handle(m, h);
	pthread_mutex_lock(&w->mu);
	w->m = m;
	pthread_mutex_unlock(&w->mu);
	CURLcode rc = CURLE_ABORTED_BY_CALLBACK;
	for (bool done = false; !done;) {
		int running = 0, left = 0;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left)))
			if (msg->msg == CURLMSG_DONE) {
				rc = msg->data.result;
				done = true;
			}
		if (!done && woken(w))
			break;
		if (!done)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	pthread_mutex_lock(&w->mu);
	w->m = NULL;
	pthread_mutex_unlock(&w->mu);
	curl_multi_remove_handle(m, h);
	curl_multi_cleanup(m);
	return rc;
}

/* libcurl calls this at least once a second, data flowing or not. */
static int xferinfo_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt;
	(void)ut;
	struct xfer *x = ud;
	long long now = now_ms();
	if (dn != x->last_dn || un != x->last_un) {
		x->last_dn = dn;
		x->last_un = un;
		x->last_ms = now;
	}
	if (cancelled(x->rq))
		return 1;
	if (x->interruptible && x->interrupts != runtime_interrupts) {
		x->interrupted = true;
		return 1;
	}
	enum docker_idle idle = x->rq->idle;
	bool may_idle = idle == DOCKER_IDLE_ALWAYS ||
			(idle == DOCKER_IDLE_AFTER_HEADERS && x->headers_done);
	if (!may_idle && now - x->last_ms > x->answer_ms) {
		x->stalled = true;
		return 1;
	}
	return 0;
}

static int connect_error(struct docker *d, CURLcode rc, struct cp_error *err)
{
	long os_errno = 0;
	curl_easy_getinfo(d->h, CURLINFO_OS_ERRNO, &os_errno);
	const char *why = os_errno ? strerror((int)os_errno) : curl_easy_strerror(rc);
	cp_error_set(err, EXIT_RUNTIME,
		     "cannot connect to the %s at %s: %s (is %s running? "
		     "%s selects another one)",
		     d->engine->what, d->host, why, d->engine->server, d->engine->var);
	return -1;
}

static int stall_error(struct docker *d, const struct docker_req *rq, const struct xfer *x,
		       struct cp_error *err)
{
	cp_error_set(err, EXIT_RUNTIME,
		     "the %s at %s did not answer %s %s within %.1fs (is %s hung? "
		     "%s selects another one)",
		     d->engine->what, d->host, rq->method, rq->path, (double)x->answer_ms / 1000,
		     d->engine->server, d->engine->var);
	return -1;
}

/* The daemon's message from an error body, else a generic one. */
static int status_error(const struct docker_req *rq, const struct xfer *x, struct cp_error *err)
{
	cJSON *j = x->body.len ? cJSON_Parse(x->body.buf) : NULL;
	const char *msg = docker_str(j, "message");
	if (msg)
		cp_error_set(err, EXIT_STAGE_FAILED, "%s", msg);
	else if (x->body.len && x->body.len < 512)
		cp_error_set(err, EXIT_STAGE_FAILED, "%s %s: HTTP %ld: %s", rq->method, rq->path,
			     x->status, x->body.buf);
	else
		cp_error_set(err, EXIT_STAGE_FAILED, "%s %s: HTTP %ld", rq->method, rq->path, x->status);
	/* Strip a trailing newline some daemons add. */
	size_t n = strlen(err->msg);
	while (n && (err->msg[n - 1] == '\n' || err->msg[n - 1] == '\r'))
		err->msg[--n] = '\0';
	cJSON_Delete(j);
	return -1;
}

/* Sets every option of one request on d->h; undone by finish(). */
static void prepare(struct docker *d, const struct docker_req *rq, struct xfer *x)
{
	CURL *h = d->h;
	long override = timeout_override_ms();
	*x = (struct xfer){.rq = rq, .h = h, .body = {.max = BODY_MAX}, .last_ms = now_ms(),
			   .interruptible = d->interruptible, .interrupts = runtime_interrupts,
			   .answer_ms = rq->answer_ms > 0 ? rq->answer_ms
					: override	  ? override
							  : DOCKER_ANSWER_MS};
	curl_easy_reset(h);
	cleanup_free char *url = xasprintf("%s%s%s", d->base, d->prefix, rq->path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (d->socket)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->socket);
	if (d->cert_dir) {
		cleanup_free char *cert = xasprintf("%s/cert.pem", d->cert_dir);
		cleanup_free char *key = xasprintf("%s/key.pem", d->cert_dir);
		cleanup_free char *ca = xasprintf("%s/ca.pem", d->cert_dir);
		curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, key);
		if (d->tls_verify)
			curl_easy_setopt(h, CURLOPT_CAINFO, ca);
		else
			curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, override ? override : DOCKER_CONNECT_MS);
	if (rq->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	/* Large uploads would otherwise wait for "100 Continue". */
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");

	const char *m = rq->method;
	if (rq->upload) {
		cleanup_free char *ct = xasprintf("Content-Type: %s",
						  rq->content_type ? rq->content_type
								   : "application/x-tar");
		x->hdrs = curl_slist_append(x->hdrs, ct);
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_READDATA, rq->upload);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->upload_size);
	} else if (rq->json) {
		x->json_text = cJSON_PrintUnformatted(rq->json);
		x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->json_text);
	} else if (strcmp(m, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	}
	if (strcmp(m, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
}

/* Maps the outcome of a transfer to 0 / -1 and err; frees x. */
static int finish(struct docker *d, const struct docker_req *rq, struct xfer *x, CURLcode rc,
		  long *status_out, cJSON **json_out, struct cp_error *err)
{
	CURL *h = d->h;
	const char *m = rq->method;
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (!x->status)
		x->status = status;
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	if (x->json_text)
		cJSON_free(x->json_text);
	x->json_text = NULL;
	if (status_out)
		*status_out = x->status;

	int ret = 0;
	if (x->aborted) {
		ret = -1; /* on_data set err */
	} else if (cancelled(rq) && rc != CURLE_OK) {
		cp_error_set(err, EXIT_RUNTIME, "%s %s: cancelled", m, rq->path);
		ret = -1;
	} else if (x->interrupted && rc != CURLE_OK) {
		cp_error_set(err, EXIT_INTERRUPTED, "%s %s: interrupted", m, rq->path);
		ret = -1;
	} else if (x->stalled && rc != CURLE_OK) {
		ret = stall_error(d, rq, x, err);
	} else if (rc != CURLE_OK && x->status == 0 &&
		   (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
		    rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_SSL_CONNECT_ERROR ||
		    rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING)) {
		ret = connect_error(d, rc, err);
	} else if (x->too_big) {
		cp_error_set(err, EXIT_RUNTIME, "%s %s: response larger than %u bytes", m, rq->path,
			     BODY_MAX);
		ret = -1;
	} else if (x->status >= 400) {
		ret = status_error(rq, x, err);
	} else if (rc != CURLE_OK) {
		cp_error_set(err, EXIT_RUNTIME, "%s at %s: %s %s: %s", d->engine->what, d->host, m,
			     rq->path, *x->errbuf ? x->errbuf : curl_easy_strerror(rc));
		ret = -1;
	} else if (json_out && x->body.len) {
		*json_out = cJSON_Parse(x->body.buf);
	}
	sb_free(&x->body);
	return ret;
}

int docker_call(struct docker *d, const struct docker_req *rq, long *status_out,
		cJSON **json_out, struct cp_error *err)
{
	struct xfer x;
	if (status_out)
		*status_out = 0;
	if (json_out)
		*json_out = NULL;
	prepare(d, rq, &x);
	long long t0 = now_ms();
	CURLcode rc = rq->waker ? perform_wakeable(d->h, rq->waker) : curl_easy_perform(d->h);
	int ret = finish(d, rq, &x, rc, status_out, json_out, err);
	if (trace_enabled())
		fprintf(stderr, "cpipe: docker [%lld] %s %s%s: %ld (%lld ms)\n", t0 % 100000,
			rq->method, d->prefix, rq->path, x.status, now_ms() - t0);
	return ret;
}

int docker_json(struct docker *d, const char *method, const char *path, const cJSON *body,
		long *status_out, cJSON **json_out, struct cp_error *err)
{
	struct docker_req rq = {.method = method, .path = path, .json = body};
	return docker_call(d, &rq, status_out, json_out, err);
}

struct stream {
	int (*on_msg)(void *ud, const cJSON *msg);
	void *ud;
	struct cp_error *err;
	struct strbuf line;
	const struct docker_req *user;
};

static int stream_line(struct stream *s, char *line)
{
	while (*line == ' ' || *line == '\r')
		line++;
	if (!*line)
		return 0;
	cJSON *msg = cJSON_Parse(line);
	if (!msg)
		return 0; /* not JSON: nothing we understand */
	int rc = 0;
	const cJSON *detail = cJSON_GetObjectItemCaseSensitive(msg, "errorDetail");
	const char *e = docker_str(msg, "error");
	if (!e)
		e = docker_str(detail, "message");
	if (e) {
		cp_error_set(s->err, EXIT_STAGE_FAILED, "%s", e);
		size_t n = strlen(s->err->msg);
		while (n && (s->err->msg[n - 1] == '\n' || s->err->msg[n - 1] == '\r'))
			s->err->msg[--n] = '\0';
		rc = -1;
	} else if (s->on_msg) {
		rc = s->on_msg(s->ud, msg);
	}
	cJSON_Delete(msg);
	return rc;
}

static int stream_data(void *ud, const char *data, size_t n)
{
	struct stream *s = ud;
	const char *p = data, *end = data + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			if (sb_add(&s->line, p, (size_t)(end - p)) < 0) {
				return cp_error_set(s->err, EXIT_RUNTIME, "%s %s: message too long",
						    s->user->method, s->user->path);
			}
			return 0;
		}
		sb_add(&s->line, p, (size_t)(nl - p));
		char *line = sb_detach(&s->line);
		int rc = stream_line(s, line);
		free(line);
		if (rc < 0)
			return -1;
		p = nl + 1;
	}
	return 0;
}

static void stream_headers(void *ud, long status)
{
	struct stream *s = ud;
	s->user->on_headers(s->user->ud, status);
}

int docker_json_stream(struct docker *d, const struct docker_req *rq,
		       int (*on_msg)(void *ud, const cJSON *msg), void *ud, long *status_out,
		       struct cp_error *err)
{
	struct stream s = {.on_msg = on_msg, .ud = ud, .err = err, .line = {.max = 16u << 20},
			   .user = rq};
	struct docker_req r = *rq;
	r.on_data = stream_data;
	r.on_headers = rq->on_headers ? stream_headers : NULL;
	r.ud = &s;
	int rc = docker_call(d, &r, status_out, NULL, err);
	if (rc == 0 && s.line.len) {
		char *line = sb_detach(&s.line);
		rc = stream_line(&s, line);
		free(line);
	}
	sb_free(&s.line);
	return rc;
}

struct docker_stream {
	struct docker *d;
	struct docker_req rq;
	char *path;
	struct xfer x;
	CURLM *m;
	struct strbuf buf; /* received, not yet read */
	size_t off;
	bool done;        /* the transfer ended */
	bool finished;    /* finish() ran */
	CURLcode result;
};

static int stream_append(void *ud, const char *data, size_t n)
{
	struct docker_stream *s = ud;
	sb_add(&s->buf, data, n);
	return 0;
}

/* One round of the transfer: waits up to a second for the socket. */
static void stream_drive(struct docker_stream *s)
{
	int running = 0, left = 0;
	curl_multi_perform(s->m, &running);
	CURLMsg *msg;
	while ((msg = curl_multi_info_read(s->m, &left)))
		if (msg->msg == CURLMSG_DONE) {
			s->done = true;
			s->result = msg->data.result;
		}
	if (!s->done && s->off == s->buf.len)
		curl_multi_poll(s->m, NULL, 0, 1000, NULL);
}

static int stream_end(struct docker_stream *s, long *status_out, struct cp_error *err)
{
	curl_multi_remove_handle(s->m, s->d->h);
	s->finished = true;
	return finish(s->d, &s->rq, &s->x, s->result, status_out, NULL, err);
}

int docker_stream_open(struct docker_stream **out, struct docker *d, const char *path,
		       long *status_out, struct cp_error *err)
{
	struct docker_stream *s = xcalloc(1, sizeof(*s));
	s->d = d;
	s->path = xstrdup(path);
	s->rq = (struct docker_req){.method = "GET", .path = s->path, .on_data = stream_append,
				    .ud = s, .idle = DOCKER_IDLE_AFTER_HEADERS};
	if (status_out)
		*status_out = 0;
	prepare(d, &s->rq, &s->x);
	s->m = curl_multi_init();
	curl_multi_add_handle(s->m, d->h);
	while (!s->done && !s->x.headers_done)
		stream_drive(s);
	if (status_out)
		*status_out = s->x.status;
	if (s->done || s->x.status >= 400) {
		while (!s->done)
			stream_drive(s);
		if (stream_end(s, status_out, err) < 0) {
			docker_stream_close(s);
			return -1;
		}
	}
	*out = s;
	return 0;
}

long docker_stream_read(struct docker_stream *s, void *buf, size_t n, struct cp_error *err)
{
	while (s->off == s->buf.len) {
		sb_reset(&s->buf);
		s->off = 0;
		if (s->done) {
			if (!s->finished && stream_end(s, NULL, err) < 0)
				return -1;
			return 0;
		}
		stream_drive(s);
	}
	size_t k = s->buf.len - s->off;
	if (k > n)
		k = n;
	memcpy(buf, s->buf.buf + s->off, k);
	s->off += k;
	return (long)k;
}

void docker_stream_close(struct docker_stream *s)
{
	if (!s)
		return;
	if (!s->finished) {
		struct cp_error ignored = {0};
		stream_end(s, NULL, &ignored);
	}
	curl_multi_cleanup(s->m);
	sb_free(&s->buf);
	free(s->path);
	free(s);
}

void docker_demux_feed(struct docker_demux *dm, const char *data, size_t n)
{
	while (n) {
		if (!dm->left) {
			size_t k = 8 - dm->hdr_len < n ? 8 - dm->hdr_len : n;
			memcpy(dm->hdr + dm->hdr_len, data, k);
			dm->hdr_len += k;
			data += k;
			n -= k;
			if (dm->hdr_len < 8)
				break;
			dm->hdr_len = 0;
			dm->stream = dm->hdr[0];
			dm->left = (size_t)dm->hdr[4] << 24 | (size_t)dm->hdr[5] << 16 |
				   (size_t)dm->hdr[6] << 8 | dm->hdr[7];
			continue;
		}
		size_t k = dm->left < n ? dm->left : n;
		if (dm->stream == 1 || dm->stream == 2)
			dm->emit(dm->ud, dm->stream, data, k);
		data += k;
		n -= k;
		dm->left -= k;
	}
}

/* GET /_ping's "Api-Version: 1.41" into the char[16] at ud. */
static void api_version_line(void *ud, const char *line, size_t n)
{
	char *out = ud;
	if (n <= 12 || strncasecmp(line, "Api-Version:", 12) != 0)
		return;
	line += 12;
	n -= 12;
	while (n && (*line == ' ' || *line == '\t')) {
		line++;
		n--;
	}
	while (n && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' '))
		n--;
	snprintf(out, 16, "%.*s", (int)n, line);
}

static int parse_version(const char *v, int *major, int *minor)
{
	return v && sscanf(v, "%d.%d", major, minor) == 2 ? 0 : -1;
}

/* Where Podman listens: CONTAINER_HOST, else the rootful socket, else
 * the rootless one of this user; the rootful path when none exists, so
 * the error names where it looked first. Caller frees. */
static char *podman_host(void)
{
	const char *host = getenv("CONTAINER_HOST");
	if (host && *host)
		return xstrdup(host);
	struct stat st;
	if (stat(PODMAN_ROOTFUL, &st) == 0 && S_ISSOCK(st.st_mode))
		return xstrdup("unix://" PODMAN_ROOTFUL);
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char *rootless = xdg && *xdg ? xasprintf("%s/podman/podman.sock", xdg)
				     : xasprintf("/run/user/%ld/podman/podman.sock", (long)getuid());
	if (stat(rootless, &st) == 0 && S_ISSOCK(st.st_mode)) {
		char *h = xasprintf("unix://%s", rootless);
		free(rootless);
		return h;
	}
	free(rootless);
	return xstrdup("unix://" PODMAN_ROOTFUL);
}

const struct docker_engine *docker_engine_of(const struct docker *d)
{
	return d->engine;
}

int docker_open(struct docker **out, struct cp_error *err)
{
	return docker_open_engine(out, &docker_engine_docker, err);
}

int docker_open_engine(struct docker **out, const struct docker_engine *engine,
		       struct cp_error *err)
{
	pthread_once(&curl_once, curl_init_once);
	struct docker *d = xcalloc(1, sizeof(*d));
	d->engine = engine;
	cleanup_free char *host = NULL;
	if (engine == &docker_engine_podman) {
		host = podman_host();
	} else {
		const char *h = getenv("DOCKER_HOST");
		host = xstrdup(h && *h ? h : DEFAULT_HOST);
	}
	if (parse_host(d, host, err) < 0)
		goto fail;
	d->interruptible = true;
	if (!(d->h = curl_easy_init())) {
		cp_error_set(err, EXIT_RUNTIME, "libcurl: cannot create a handle");
		goto fail;
	}
	/* As the docker CLI negotiates: the daemon answers /_ping at once,
	 * /version only after asking containerd for its versions. */
	char api[16] = "";
	struct docker_req ping = {.method = "GET", .path = "/_ping",
				  .on_header_line = api_version_line, .ud = api};
	cJSON *v = NULL;
	if (docker_call(d, &ping, NULL, NULL, err) < 0 ||
	    (!*api && docker_json(d, "GET", "/version", NULL, NULL, &v, err) < 0)) {
		if (err->code == EXIT_INTERRUPTED)
			goto fail;
		if (err->code != EXIT_RUNTIME)
			cp_error_prefix(err, "%s at %s", d->engine->what, d->host);
		cp_error_recode(err, EXIT_RUNTIME);
		goto fail;
	}
	int major = 0, minor = 0;
	if (parse_version(*api ? api : docker_str(v, "ApiVersion"), &major, &minor) < 0) {
		cJSON_Delete(v);
		cp_error_set(err, EXIT_RUNTIME, "%s at %s: GET /version gave no ApiVersion",
			     d->engine->what, d->host);
		goto fail;
	}
	cJSON_Delete(v);
	if (major > MAX_API_MAJOR || (major == MAX_API_MAJOR && minor > MAX_API_MINOR)) {
		major = MAX_API_MAJOR;
		minor = MAX_API_MINOR;
	}
	if (major < 1 || (major == 1 && minor < MIN_API_MINOR)) {
		cp_error_set(err, EXIT_RUNTIME,
			     "%s at %s speaks API %d.%d; cpipe needs 1.%d or newer",
			     d->engine->what, d->host, major, minor, MIN_API_MINOR);
		goto fail;
	}
	snprintf(d->version, sizeof(d->version), "%d.%d", major, minor);
	snprintf(d->prefix, sizeof(d->prefix), "/v%d.%d", major, minor);
	*out = d;
	return 0;
fail:
	docker_close(d);
	return -1;
}

struct docker *docker_clone(const struct docker *src)
{
	struct docker *d = xcalloc(1, sizeof(*d));
	d->engine = src->engine;
	d->host = xstrdup(src->host);
	d->socket = src->socket ? xstrdup(src->socket) : NULL;
	d->base = xstrdup(src->base);
	d->cert_dir = src->cert_dir ? xstrdup(src->cert_dir) : NULL;
	d->tls_verify = src->tls_verify;
	memcpy(d->version, src->version, sizeof(d->version));
	memcpy(d->prefix, src->prefix, sizeof(d->prefix));
	if (!(d->h = curl_easy_init()))
		abort();
	return d;
}

void docker_close(struct docker *d)
{
	if (!d)
		return;
	if (d->h)
		curl_easy_cleanup(d->h);
	free(d->host);
	free(d->socket);
	free(d->base);
	free(d->cert_dir);
	free(d);
}
