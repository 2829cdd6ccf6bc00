/* libwebsockets, loaded on first use (see dynlib.h), as libcurl is: only
 * `cpipe exec` on the kubernetes runtime and restores into its claims
 * use it. Each function cpipe calls forwards to the real one; a new call
 * fails to link until it is added to the table below. The three libssl
 * functions stages/kube_ws.c loads the kubeconfig's PEM material with
 * come from the libssl libwebsockets itself loads. */
#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <pthread.h>

#include "dynlib.h"
#include "lazy_lws.h"

/* R: functions returning a value; V: returning nothing.
 * (return type, name, parameters, arguments) */
#define LWS_FUNCTIONS(R, V)                                                                       \
	R(int, lws_add_http_header_by_name,                                                        \
	  (struct lws * wsi, const unsigned char *name, const unsigned char *value, int length,    \
	   unsigned char **p, unsigned char *end),                                                 \
	  (wsi, name, value, length, p, end))                                                      \
	R(int, lws_callback_on_writable, (struct lws * wsi), (wsi))                                \
	V(void, lws_cancel_service, (struct lws_context * c), (c))                                 \
	R(struct lws *, lws_client_connect_via_info, (const struct lws_client_connect_info *i),    \
	  (i))                                                                                     \
	V(void, lws_context_destroy, (struct lws_context * c), (c))                                \
	R(void *, lws_context_user, (struct lws_context * c), (c))                                 \
	R(struct lws_context *, lws_create_context, (const struct lws_context_creation_info *i),   \
	  (i))                                                                                     \
	R(struct lws_context *, lws_get_context, (const struct lws *wsi), (wsi))                   \
	R(unsigned int, lws_http_client_http_response, (struct lws * wsi), (wsi))                  \
	R(int, lws_is_final_fragment, (struct lws * wsi), (wsi))                                   \
	R(int, lws_service, (struct lws_context * c, int timeout_ms), (c, timeout_ms))             \
	V(void, lws_set_log_level, (int level, void (*emit)(int level, const char *line)),         \
	  (level, emit))                                                                           \
	V(void, lws_set_timer_usecs, (struct lws * wsi, lws_usec_t usecs), (wsi, usecs))           \
	R(int, lws_write,                                                                          \
	  (struct lws * wsi, unsigned char *buf, size_t len, enum lws_write_protocol wp),          \
	  (wsi, buf, len, wp))

#define SSL_FUNCTIONS(R, V)                                                                       \
	R(X509_STORE *, SSL_CTX_get_cert_store, (const SSL_CTX *ctx), (ctx))                       \
	R(int, SSL_CTX_use_certificate, (SSL_CTX * ctx, X509 *x), (ctx, x))                        \
	R(int, SSL_CTX_use_PrivateKey, (SSL_CTX * ctx, EVP_PKEY *k), (ctx, k))

#define POINTER(ret, name, params, args) ret(*name) params;
static struct {
	LWS_FUNCTIONS(POINTER, POINTER)
	SSL_FUNCTIONS(POINTER, POINTER)
} real;

static struct dynlib liblws = {"libwebsockets.so.17", "libwebsockets17", NULL};
static struct dynlib libssl = {"libssl.so.3", "libssl3", NULL};
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define RESOLVE(ret, name, params, args) *(void **)&real.name = dynlib_sym(&liblws, #name);
#define RESOLVE_SSL(ret, name, params, args) *(void **)&real.name = dynlib_sym(&libssl, #name);
static void load(void)
{
	LWS_FUNCTIONS(RESOLVE, RESOLVE)
	SSL_FUNCTIONS(RESOLVE_SSL, RESOLVE_SSL)
}

LWS_FUNCTIONS(DYNLIB_FORWARD, DYNLIB_FORWARD_VOID)

/* The libssl ones under other names (lazy_lws.h): libcurl, loaded too,
 * must never bind to these instead of its own libssl. */
#define FORWARD_SSL(ret, name, params, args)                                                      \
	ret lazy_##name params                                                                    \
	{                                                                                          \
		pthread_once(&once, load);                                                         \
		return real.name args;                                                             \
	}
SSL_FUNCTIONS(FORWARD_SSL, FORWARD_SSL)
