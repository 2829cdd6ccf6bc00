/* A small Kubernetes REST client: libcurl over HTTPS to the server a
 * kubeconfig names, with its CA, client certificate and bearer token
 * (kube_config.h), JSON bodies with cJSON. One client is one curl handle,
 * used by one thread at a time: give other threads a kube_clone.
 *
 * Errors: an unreachable server fails with err->code EXIT_RUNTIME and a
 * message naming the server and the kubeconfig; an HTTP status >= 400
 * fails with the API's own Status message and err->code
 * EXIT_STAGE_FAILED; *status_out says which status it was. A client from
 * kube_open gives a request up when runtime_interrupts changes (Ctrl-C),
 * err->code EXIT_INTERRUPTED. Ordinary requests time out after
 * KUBE_ANSWER_MS (CPIPE_KUBE_TIMEOUT seconds replaces it); streams (logs
 * followed, watches) only end by the server or their cancel flag. */
#ifndef CPIPE_STAGES_KUBE_API_H
#define CPIPE_STAGES_KUBE_API_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "../lib/error.h"
#include "kube_config.h"

#define KUBE_CONNECT_MS 10000L
#define KUBE_ANSWER_MS 30000L

struct kube;

/* A client for the cluster `cfg` describes (copied). Connects lazily:
 * never fails but for bad credentials material. */
int kube_open(struct kube **out, const struct kube_config *cfg, struct cp_error *err);
/* A client for another thread; it ignores runtime_interrupts. */
struct kube *kube_clone(const struct kube *k);
void kube_close(struct kube *k);
/* The server's URL and the kubeconfig it came from; lent. */
const char *kube_server(const struct kube *k);

/* URL-escapes a path segment or query value. Caller owns. */
char *kube_escape(const char *s);

struct kube_req {
	const char *method; /* GET, POST, PUT, PATCH, DELETE */
	const char *path;   /* "/api/v1/namespaces/x/pods?labelSelector=..." */
	const cJSON *json;  /* body, or NULL */
	const char *content_type; /* of json: default application/json */
	/* Streamed response (status < 400): the body as it comes; return -1
	 * to stop (the call then returns 0). Else the body is collected. */
	int (*on_data)(void *ud, const char *data, size_t n);
	void *ud;
	const atomic_int *cancel; /* aborts within about a second once != 0 */
	bool stream;              /* may idle: no answer timeout */
};

/* Performs a request: 0 on a 2xx/3xx status, -1 otherwise (see the top).
 * *json_out (may be NULL) gets the parsed body of a collected response;
 * caller deletes it. */
int kube_call(struct kube *k, const struct kube_req *rq, long *status_out, cJSON **json_out,
	      struct cp_error *err);
/* kube_call with a JSON body and a collected response. */
int kube_json(struct kube *k, const char *method, const char *path, const cJSON *body,
	      long *status_out, cJSON **json_out, struct cp_error *err);

/* Sets up curl handle `h` for the client's server: its CA, client
 * certificate and key, and (appended to *hdrs) its bearer token, for a
 * request made outside kube_call (the port forwarder's, kube_forward.c).
 * Free *hdrs with kube_curl_headers_free, which wipes the token. */
void kube_curl_auth(const struct kube *k, CURL *h, struct curl_slist **hdrs);
void kube_curl_headers_free(struct curl_slist *hdrs);

/* The string at `path` ("status.phase": dot-separated object members)
 * inside `o`, or NULL; lent. */
const char *kube_str(const cJSON *o, const char *path);
/* The member at `path` (as kube_str), or NULL; lent. */
const cJSON *kube_get(const cJSON *o, const char *path);

#endif
