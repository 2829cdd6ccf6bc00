/* The kubernetes runtime's port forwarder process: cpipe executed as
 * "cpipe-kube-forward" (kube_forward.c starts it). It serves HTTP on the
 * listening sockets it inherits and relays each request, with its method,
 * path, query, headers and body, through the API server's services proxy
 * (/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH) to the service's
 * ready pods, streaming the status, headers and body back. HTTP only: the
 * proxy subresource carries requests, not bytes. */
#include "kube_forward.h"

#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kube_api.h"
#include "kube_config.h"

/* A request body is collected before it is relayed. */
#define BODY_MAX (256u << 20)

struct fwd {
	struct kube *k;
	const char *ns, *service;
	volatile sig_atomic_t stopping;
};

struct fwd_port {
	struct fwd *f;
	int port; /* the Service's (= the container's) port */
	struct MHD_Daemon *d;
};

/* A client connection's transfer handles (one thread each): kept from
 * one request to the next, so its connection to the API server, TLS
 * handshake done, serves them all. Freed when the thread ends. */
struct conn {
	CURL *h;
	CURLM *m;
	bool added; /* h is in m (the last request's transfer) */
};

static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;

static void conn_free(void *p)
{
	struct conn *c = p;
	if (c->added)
		curl_multi_remove_handle(c->m, c->h);
	curl_multi_cleanup(c->m);
	curl_easy_cleanup(c->h);
	free(c);
}

static void conn_key_make(void)
{
	if (pthread_key_create(&conn_key, conn_free) != 0)
		abort();
}

/* This thread's handles, ready for a new transfer. */
static struct conn *conn_get(void)
{
	pthread_once(&conn_once, conn_key_make);
	struct conn *c = pthread_getspecific(conn_key);
	if (!c) {
		c = xcalloc(1, sizeof(*c));
		c->h = curl_easy_init();
		c->m = curl_multi_init();
		if (!c->h || !c->m || pthread_setspecific(conn_key, c) != 0)
			abort();
	}
	if (c->added)
		curl_multi_remove_handle(c->m, c->h);
	c->added = false;
	curl_easy_reset(c->h);
	return c;
}

/* One request and its relay. */
struct exchange {
	struct fwd *f;
	struct strbuf body;
	bool too_big;
	CURL *h;
	CURLM *m;
	struct curl_slist *req_hdrs;
	long status;
	struct strvec resp_hdrs; /* "Name: value" */
	bool headers_done, done;
	CURLcode result;
	struct strbuf out; /* body bytes not yet given to the client */
	size_t out_off;
	char errbuf[CURL_ERROR_SIZE];
};

static bool hop_by_hop(const char *name, size_t n)
{
	static const char *const skip[] = {"Connection",
					   "Keep-Alive",
					   "Proxy-Authenticate",
					   "Proxy-Authorization",
					   "TE",
					   "Trailer",
					   "Transfer-Encoding",
					   "Upgrade",
					   "Content-Length",
					   "Host",
					   "Authorization",
					   "Expect",
					   "Date"};
	for (size_t i = 0; i < ARRAY_LEN(skip); i++)
		if (strlen(skip[i]) == n && strncasecmp(name, skip[i], n) == 0)
			return true;
	return false;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
	struct exchange *x = ud;
	size_t len = size * n;
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		const char *sp = memchr(data, ' ', len);
		x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		strvec_free(&x->resp_hdrs);
		return len;
	}
	size_t l = len;
	while (l && (data[l - 1] == '\r' || data[l - 1] == '\n'))
		l--;
	if (l == 0) {
		/* The end of a head: a 1xx (100 Continue) is followed by another. */
		if (x->status >= 200)
			x->headers_done = true;
		return len;
	}
	const char *colon = memchr(data, ':', l);
	if (colon && !hop_by_hop(data, (size_t)(colon - data))) {
		cleanup_free char *line = xmalloc(l + 1);
		memcpy(line, data, l);
		line[l] = '\0';
		strvec_push(&x->resp_hdrs, line);
	}
	return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
	struct exchange *x = ud;
	if (sb_add(&x->out, data, size * n) < 0)
		return 0;
	return size * n;
}

/* Runs the transfer until it has more to give (headers, body bytes) or is
 * done; -1 when the forwarder stops. */
static int pump(struct exchange *x, bool want_body)
{
	while (!x->done) {
		if (x->f->stopping)
			return -1;
		int running = 0;
		curl_multi_perform(x->m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(x->m, &left)))
			if (msg->msg == CURLMSG_DONE) {
				x->done = true;
				x->result = msg->data.result;
			}
		if (x->done || (want_body ? x->out.len > x->out_off : x->headers_done))
			return 0;
		curl_multi_poll(x->m, NULL, 0, 1000, NULL);
	}
	return 0;
}

static enum MHD_Result copy_header(void *ud, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	(void)kind;
	struct exchange *x = ud;
	if (!hop_by_hop(key, strlen(key))) {
		cleanup_free char *line = xasprintf("%s: %s", key, value ? value : "");
		x->req_hdrs = curl_slist_append(x->req_hdrs, line);
	}
	return MHD_YES;
}

static enum MHD_Result copy_arg(void *ud, enum MHD_ValueKind kind, const char *key,
				const char *value)
{
	(void)kind;
	struct strbuf *q = ud;
	sb_addf(q, "%c%s%s%s", q->len ? '&' : '?', key, value ? "=" : "", value ? value : "");
	return MHD_YES;
}

/* The path and arguments as the client sent them: libmicrohttpd would
 * decode them, and the API server decodes once more. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls, (void)c;
	return strlen(s);
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned int status, const char *msg)
{
	cleanup_free char *text = xasprintf("cpipe port forwarder: %s\n", msg);
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct exchange *x = cls;
	if (x->out_off == x->out.len) {
		sb_reset(&x->out);
		x->out_off = 0;
		if (pump(x, true) < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (x->out.len == 0)
			return x->result == CURLE_OK ? MHD_CONTENT_READER_END_OF_STREAM
						     : MHD_CONTENT_READER_END_WITH_ERROR;
	}
	size_t n = x->out.len - x->out_off;
	if (n > max)
		n = max;
	memcpy(buf, x->out.buf + x->out_off, n);
	x->out_off += n;
	return (ssize_t)n;
}

/* Starts the relay of the collected request. */
static void start(struct exchange *x, const struct fwd_port *fp, struct MHD_Connection *c,
		  const char *url, const char *method)
{
	struct strbuf q = STRBUF_INIT;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, copy_arg, &q);
	cleanup_free char *full =
	    xasprintf("%s/api/v1/namespaces/%s/services/%s:%d/proxy%s%s", kube_server(fp->f->k),
		      fp->f->ns, fp->f->service, fp->port, url, sb_str(&q));
	sb_free(&q);
	struct conn *cn = conn_get();
	x->h = cn->h;
	x->m = cn->m;
	CURL *h = x->h;
	curl_easy_setopt(h, CURLOPT_URL, full);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, KUBE_CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	MHD_get_connection_values(c, MHD_HEADER_KIND, copy_header, x);
	x->req_hdrs = curl_slist_append(x->req_hdrs, "Expect:");
	kube_curl_auth(fp->f->k, h, &x->req_hdrs);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->req_hdrs);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		if (x->body.len || !strcmp(method, "POST") || !strcmp(method, "PUT") ||
		    !strcmp(method, "PATCH")) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, sb_str(&x->body));
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
		}
	}
	cn->added = curl_multi_add_handle(x->m, h) == CURLM_OK;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	(void)version;
	struct fwd_port *fp = cls;
	struct exchange *x = *con_cls;
	if (!x) {
		x = xcalloc(1, sizeof(*x));
		x->f = fp->f;
		x->body.max = BODY_MAX;
		*con_cls = x;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!x->too_big && sb_add(&x->body, upload, *upload_size) < 0)
			x->too_big = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (x->too_big)
		return reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body over 256 MiB");
	start(x, fp, c, url, method);
	if (pump(x, false) < 0)
		return MHD_NO;
	if (!x->headers_done) {
		cleanup_free char *msg =
		    xasprintf("the API server at %s: %s", kube_server(fp->f->k),
			      *x->errbuf ? x->errbuf : curl_easy_strerror(x->result));
		fprintf(stderr, "cpipe-kube-forward: %s %s: %s\n", method, url, msg);
		return reply_text(c, MHD_HTTP_BAD_GATEWAY, msg);
	}
	curl_off_t cl = -1;
	curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	uint64_t size =
	    cl >= 0 && x->status != 204 && x->status != 304 ? (uint64_t)cl : MHD_SIZE_UNKNOWN;
	struct MHD_Response *r = MHD_create_response_from_callback(size, 16384, read_body, x, NULL);
	for (size_t i = 0; i < x->resp_hdrs.n; i++) {
		char *line = x->resp_hdrs.v[i];
		char *colon = strchr(line, ':');
		*colon = '\0';
		const char *value = colon + 1 + strspn(colon + 1, " \t");
		MHD_add_response_header(r, line, value);
		*colon = ':';
	}
	enum MHD_Result rc = MHD_queue_response(c, (unsigned int)x->status, r);
	MHD_destroy_response(r);
	return rc;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)c, (void)toe;
	struct exchange *x = *con_cls;
	if (!x)
		return;
	/* The handles stay with the connection's thread (conn_get); the
	 * headers they point to go, so detach them first. */
	if (x->h)
		curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, NULL);
	kube_curl_headers_free(x->req_hdrs);
	strvec_free(&x->resp_hdrs);
	sb_free(&x->body);
	sb_free(&x->out);
	free(x);
	*con_cls = NULL;
}

int kube_forward_main(int argc, char **argv)
{
	/* argv: cpipe-kube-forward NAMESPACE SERVICE READY_FD FD:PORT... */
	if (argc < 5) {
		fprintf(stderr, "cpipe-kube-forward: started by cpipe only\n");
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL); /* the daemons' threads inherit it */
	int ready = atoi(argv[3]);
	struct cp_error err = {0};
	struct kube_config cfg = {0};
	struct fwd f = {.ns = argv[1], .service = argv[2]};
	if (kube_config_load(&cfg, getenv("KUBECONFIG"), getenv("CPIPE_KUBE_CONTEXT"), &err) < 0 ||
	    kube_open(&f.k, &cfg, &err) < 0) {
		fprintf(stderr, "cpipe-kube-forward: %s\n", err.msg);
		kube_config_free(&cfg);
		return err.code ? err.code : EXIT_RUNTIME;
	}
	kube_config_free(&cfg);
	/* Loaded: the project directory (a relative KUBECONFIG) is not needed
	 * any more, and is not kept busy. */
	if (chdir("/") < 0)
		return EXIT_RUNTIME;
	size_t n = (size_t)argc - 4;
	struct fwd_port *ports = xcalloc(n, sizeof(*ports));
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		int fd = -1, port = 0;
		if (sscanf(argv[4 + i], "%d:%d", &fd, &port) != 2) {
			fprintf(stderr, "cpipe-kube-forward: bad argument %s\n", argv[4 + i]);
			rc = EXIT_USAGE;
			break;
		}
		ports[i] = (struct fwd_port){.f = &f, .port = port};
		ports[i].d =
		    MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
					 MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
				     0, NULL, NULL, answer, &ports[i], MHD_OPTION_LISTEN_SOCKET, fd,
				     MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
				     MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
		if (!ports[i].d) {
			fprintf(stderr, "cpipe-kube-forward: cannot serve port %d\n", port);
			rc = EXIT_RUNTIME;
			break;
		}
	}
	if (rc == 0) {
		if (write(ready, "ok\n", 3) != 3)
			rc = EXIT_RUNTIME;
		close(ready);
	}
	if (rc == 0) {
		int sig = 0;
		sigwait(&stop, &sig);
	}
	f.stopping = 1;
	for (size_t i = 0; i < n; i++)
		if (ports[i].d)
			MHD_stop_daemon(ports[i].d);
	free(ports);
	kube_close(f.k);
	return rc;
}
