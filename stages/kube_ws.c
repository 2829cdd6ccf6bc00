/* The API server's WebSocket streams (see kube_ws.h), on libwebsockets:
 * one context per connection, serviced by the thread that opened it.
 * Other threads queue what they send under `mu` and wake the service loop
 * with lws_cancel_service, the one libwebsockets call that is safe from
 * another thread; the loop writes the queue out when the socket is
 * writable. The kubeconfig's PEM material is loaded into the client TLS
 * context with OpenSSL, as libcurl takes it for the REST calls. */
#include "kube_ws.h"

#include <libwebsockets.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/lazy_lws.h"
#include "runtime.h"

#define SUBPROTOCOL "v4.channel.k8s.io"
#define MSG_MAX     32768u
#define QUEUE_MAX   (1u << 20)
#define TICK_US     200000
#define CONNECT_S   10

struct chunk {
	struct chunk *next;
	size_t n;            /* data bytes after the channel byte */
	unsigned char buf[]; /* LWS_PRE, the channel byte, the data */
};

struct kube_ws {
	struct lws_context *ctx;
	struct lws *wsi;
	char *server; /* as the kubeconfig gives it, for messages */
	char *host, *path;
	int port;
	char *auth;                  /* "Bearer ..." or NULL */
	const char *ca, *cert, *key; /* lent during kube_ws_open */
	size_t ca_len, cert_len, key_len;
	char tls_problem[160];
	kube_ws_recv_fn recv;
	void *ud;
	/* The service thread's. */
	bool established, closed, failed;
	unsigned status;
	char why[200];
	bool mid; /* inside a message: its channel byte was seen */
	int rx_channel;
	/* Shared with senders. */
	pthread_mutex_t mu;
	pthread_cond_t room;
	struct chunk *head, *tail;
	size_t queued;
	bool gone; /* closed: sends fail */
};

/* libwebsockets's own error lines: the last one explains a TLS failure. */
static _Thread_local char lws_last[200];

static void lws_emit(int level, const char *line)
{
	(void)level;
	snprintf(lws_last, sizeof(lws_last), "%s", line);
	size_t n = strlen(lws_last);
	while (n && (lws_last[n - 1] == '\n' || lws_last[n - 1] == ' '))
		lws_last[--n] = '\0';
}

static void mark_gone(struct kube_ws *ws)
{
	pthread_mutex_lock(&ws->mu);
	ws->gone = true;
	pthread_cond_broadcast(&ws->room);
	pthread_mutex_unlock(&ws->mu);
}

/* The CA certificates, client certificate and key of the kubeconfig into
 * the client TLS context `ctx`; -1 with ws->tls_problem set. */
static int load_tls(struct kube_ws *ws, SSL_CTX *ctx)
{
	if (ws->ca) {
		X509_STORE *st = lazy_SSL_CTX_get_cert_store(ctx);
		BIO *b = BIO_new_mem_buf(ws->ca, (int)ws->ca_len);
		X509 *x;
		int n = 0;
		while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
			X509_STORE_add_cert(st, x);
			X509_free(x);
			n++;
		}
		BIO_free(b);
		ERR_clear_error(); /* the end of the PEM data reads as an error */
		if (!n) {
			snprintf(ws->tls_problem, sizeof(ws->tls_problem),
				 "its certificate authority is no PEM certificate");
			return -1;
		}
	}
	if (ws->cert) {
		BIO *b = BIO_new_mem_buf(ws->cert, (int)ws->cert_len);
		X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		BIO *kb = BIO_new_mem_buf(ws->key, (int)ws->key_len);
		EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
		BIO_free(kb);
		bool ok = x && k && lazy_SSL_CTX_use_certificate(ctx, x) == 1 &&
			  lazy_SSL_CTX_use_PrivateKey(ctx, k) == 1;
		X509_free(x);
		EVP_PKEY_free(k);
		ERR_clear_error();
		if (!ok) {
			snprintf(ws->tls_problem, sizeof(ws->tls_problem),
				 "its client certificate and key cannot be used");
			return -1;
		}
	}
	return 0;
}

static void on_receive(struct kube_ws *ws, struct lws *wsi, const char *d, size_t n)
{
	if (!ws->mid) {
		if (!n)
			return;
		ws->rx_channel = (unsigned char)d[0];
		d++;
		n--;
		ws->mid = true;
	}
	if (n)
		ws->recv(ws->ud, ws->rx_channel, d, n);
	if (lws_is_final_fragment(wsi))
		ws->mid = false;
}

/* Writes the first queued message; -1 closes the connection. */
static int on_writable(struct kube_ws *ws, struct lws *wsi)
{
	pthread_mutex_lock(&ws->mu);
	struct chunk *c = ws->head;
	if (c) {
		ws->head = c->next;
		if (!ws->head)
			ws->tail = NULL;
		ws->queued -= c->n;
		pthread_cond_broadcast(&ws->room);
	}
	bool more = ws->head != NULL;
	pthread_mutex_unlock(&ws->mu);
	if (!c)
		return 0;
	size_t len = c->n + 1;
	int w = lws_write(wsi, c->buf + LWS_PRE, len, LWS_WRITE_BINARY);
	free(c);
	if (w < (int)len)
		return -1;
	if (more)
		lws_callback_on_writable(wsi);
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct lws_context *c = wsi ? lws_get_context(wsi) : NULL;
	struct kube_ws *ws = c ? lws_context_user(c) : NULL;
	if (!ws)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS:
		return load_tls(ws, user) < 0 ? 1 : 0;
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (ws->auth) {
			unsigned char **p = in, *end = *p + len;
			if (lws_add_http_header_by_name(
				wsi, (const unsigned char *)"Authorization:",
				(const unsigned char *)ws->auth, (int)strlen(ws->auth), p, end))
				return -1;
		}
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		ws->established = true;
		lws_set_timer_usecs(wsi, TICK_US);
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		ws->failed = true;
		ws->status = lws_http_client_http_response(wsi);
		snprintf(ws->why, sizeof(ws->why), "%s",
			 in && len   ? (const char *)in
			 : *lws_last ? lws_last
				     : "connection failed");
		ws->wsi = NULL;
		mark_gone(ws);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		on_receive(ws, wsi, in, len);
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writable(ws, wsi);
	case LWS_CALLBACK_TIMER:
		lws_set_timer_usecs(wsi, TICK_US); /* kube_ws_run looks at its flags */
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (ws->wsi && ws->established)
			lws_callback_on_writable(ws->wsi);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		ws->closed = true;
		ws->wsi = NULL;
		mark_gone(ws);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
    {SUBPROTOCOL, callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* host, port and path prefix of "https://host[:port][/prefix]". */
static int parse_server(struct kube_ws *ws, const char *server, char **prefix, struct cp_error *err)
{
	const char *h = server + strlen("https://");
	const char *end = h + strcspn(h, "/");
	const char *colon = NULL;
	if (*h == '[') { /* [v6]:port */
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (!rb)
			return cp_error_set(err, EXIT_RUNTIME, "server %s: no ']'", server);
		ws->host = xasprintf("%.*s", (int)(rb - h - 1), h + 1);
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		ws->host = xasprintf("%.*s", (int)((colon ? colon : end) - h), h);
	}
	ws->port = colon ? atoi(colon + 1) : 443;
	if (ws->port <= 0 || ws->port > 65535)
		return cp_error_set(err, EXIT_RUNTIME, "server %s: bad port", server);
	*prefix = xstrdup(end);
	return 0;
}

static void ws_free(struct kube_ws *ws)
{
	if (ws->ctx)
		lws_context_destroy(ws->ctx);
	for (struct chunk *c = ws->head, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	if (ws->auth)
		explicit_bzero(ws->auth, strlen(ws->auth));
	free(ws->auth);
	free(ws->server);
	free(ws->host);
	free(ws->path);
	pthread_mutex_destroy(&ws->mu);
	pthread_cond_destroy(&ws->room);
	free(ws);
}

int kube_ws_open(struct kube_ws **out, const struct kube_config *cfg, const char *path,
		 const char *query, kube_ws_recv_fn recv, void *ud, struct cp_error *err)
{
	*out = NULL;
	struct kube_ws *ws = xcalloc(1, sizeof(*ws));
	pthread_mutex_init(&ws->mu, NULL);
	pthread_cond_init(&ws->room, NULL);
	ws->recv = recv;
	ws->ud = ud;
	ws->server = xstrdup(cfg->server);
	cleanup_free char *prefix = NULL;
	if (parse_server(ws, cfg->server, &prefix, err) < 0) {
		ws_free(ws);
		return -1;
	}
	ws->path = query && *query ? xasprintf("%s%s?%s", prefix, path, query)
				   : xasprintf("%s%s", prefix, path);
	ws->auth = cfg->token ? xasprintf("Bearer %s", cfg->token) : NULL;
	ws->ca = cfg->ca_pem, ws->ca_len = cfg->ca_len;
	ws->cert = cfg->cert_pem, ws->cert_len = cfg->cert_len;
	ws->key = cfg->key_pem, ws->key_len = cfg->key_len;

	lws_set_log_level(LLL_ERR, lws_emit);
	*lws_last = '\0';
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	info.user = ws;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	if (cfg->ca_pem)
		info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
	info.timeout_secs = CONNECT_S;
	info.connect_timeout_secs = CONNECT_S;
	ws->ctx = lws_create_context(&info);
	if (!ws->ctx) {
		cp_error_set(err, EXIT_RUNTIME,
			     "cannot set up TLS for the API server at %s (%s): %s", ws->server,
			     cfg->file,
			     *ws->tls_problem ? ws->tls_problem
			     : *lws_last      ? lws_last
					      : "libwebsockets failed");
		ws_free(ws);
		return -1;
	}

	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = ws->ctx;
	ci.address = ws->host;
	ci.port = ws->port;
	ci.path = ws->path;
	ci.host = ws->host;
	ci.origin = ws->host;
	ci.protocol = SUBPROTOCOL;
	ci.local_protocol_name = SUBPROTOCOL;
	ci.ietf_version_or_minus_one = -1;
	ci.ssl_connection = LCCSCF_USE_SSL;
	if (cfg->insecure)
		ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
				     LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_EXPIRED |
				     LCCSCF_ALLOW_INSECURE;
	ci.pwsi = &ws->wsi;
	sig_atomic_t interrupts = runtime_interrupts;
	if (!lws_client_connect_via_info(&ci) && !ws->failed) {
		ws->failed = true;
		snprintf(ws->why, sizeof(ws->why), "%s", *lws_last ? lws_last : "connect failed");
	}
	while (!ws->established && !ws->failed && !ws->closed) {
		if (interrupts != runtime_interrupts) {
			cp_error_set(err, EXIT_INTERRUPTED, "interrupted");
			ws_free(ws);
			return -1;
		}
		if (lws_service(ws->ctx, 0) < 0)
			break;
	}
	if (!ws->established) {
		if (ws->status >= 400)
			cp_error_set(err,
				     ws->status == 401 || ws->status == 403 ? EXIT_RUNTIME
									    : EXIT_STAGE_FAILED,
				     "the API server at %s answered %s with HTTP %u", ws->server,
				     path, ws->status);
		else
			cp_error_set(err, EXIT_RUNTIME,
				     "cannot open a WebSocket to the API server at %s (context "
				     "\"%s\" of %s): %s",
				     ws->server, cfg->context, cfg->file,
				     *ws->why ? ws->why : "the connection closed");
		ws_free(ws);
		return -1;
	}
	ws->ca = ws->cert = ws->key = NULL;
	*out = ws;
	return 0;
}

int kube_ws_send(struct kube_ws *ws, int channel, const void *buf, size_t n, struct cp_error *err)
{
	const unsigned char *p = buf;
	do {
		size_t k = n > MSG_MAX ? MSG_MAX : n;
		struct chunk *c = xmalloc(sizeof(*c) + LWS_PRE + 1 + k);
		c->next = NULL;
		c->n = k;
		c->buf[LWS_PRE] = (unsigned char)channel;
		if (k)
			memcpy(c->buf + LWS_PRE + 1, p, k);
		pthread_mutex_lock(&ws->mu);
		while (ws->queued >= QUEUE_MAX && !ws->gone)
			pthread_cond_wait(&ws->room, &ws->mu);
		if (ws->gone) {
			pthread_mutex_unlock(&ws->mu);
			free(c);
			return cp_error_set(err, EXIT_RUNTIME,
					    "the WebSocket to the API server at %s is closed",
					    ws->server);
		}
		if (ws->tail)
			ws->tail->next = c;
		else
			ws->head = c;
		ws->tail = c;
		ws->queued += k;
		pthread_mutex_unlock(&ws->mu);
		lws_cancel_service(ws->ctx);
		p += k;
		n -= k;
	} while (n);
	return 0;
}

int kube_ws_run(struct kube_ws *ws, const atomic_int *cancel, struct cp_error *err)
{
	sig_atomic_t interrupts = runtime_interrupts;
	int rc = 0;
	while (!ws->closed && !ws->failed) {
		if (interrupts != runtime_interrupts) {
			rc = cp_error_set(err, EXIT_INTERRUPTED, "interrupted");
			break;
		}
		if (cancel && atomic_load(cancel)) {
			rc = cp_error_set(err, EXIT_RUNTIME, "cancelled");
			break;
		}
		if (lws_service(ws->ctx, 0) < 0) {
			rc = cp_error_set(err, EXIT_RUNTIME, "the WebSocket to %s failed",
					  ws->server);
			break;
		}
	}
	if (rc == 0 && ws->failed)
		rc = cp_error_set(err, EXIT_RUNTIME, "the WebSocket to %s failed: %s", ws->server,
				  ws->why);
	mark_gone(ws);
	return rc;
}

void kube_ws_close(struct kube_ws *ws)
{
	if (!ws)
		return;
	mark_gone(ws);
	ws_free(ws);
}
