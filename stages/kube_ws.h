/* A WebSocket client to the Kubernetes API server (libwebsockets), for
 * the subresources that stream both ways (pods/exec): one connection,
 * over TLS with the kubeconfig's CA, client certificate and key or bearer
 * token, speaking subprotocol v4.channel.k8s.io, where every binary
 * message is one channel byte (0 stdin, 1 stdout, 2 stderr, 3 the
 * closing Status, 4 resize) and the data.
 *
 * One thread runs the connection (kube_ws_open, kube_ws_run,
 * kube_ws_close); kube_ws_send may be called from any other thread. */
#ifndef CPIPE_STAGES_KUBE_WS_H
#define CPIPE_STAGES_KUBE_WS_H

#include <stdatomic.h>
#include <stddef.h>

#include "../lib/error.h"
#include "kube_config.h"

struct kube_ws;

/* Data of channel `channel`, on the thread in kube_ws_run, in order; one
 * message may come in several calls. */
typedef void (*kube_ws_recv_fn)(void *ud, int channel, const char *data, size_t n);

/* Connects to `path` ("/api/v1/namespaces/NS/pods/P/exec") with query
 * `query` (escaped, without '?'; may be NULL) on the server `cfg` names
 * (copied what it needs), and returns once the server accepted the
 * upgrade. Fails with err->code EXIT_RUNTIME naming the server when it
 * cannot connect, and with the HTTP status the server answered the
 * upgrade with otherwise. Caller frees with kube_ws_close. */
int kube_ws_open(struct kube_ws **out, const struct kube_config *cfg, const char *path,
		 const char *query, kube_ws_recv_fn recv, void *ud, struct cp_error *err);
/* Queues `n` bytes for `channel` (split into messages of at most 32 KiB)
 * and wakes the connection's thread; blocks while 1 MiB is queued. Fails
 * once the connection is closed. */
int kube_ws_send(struct kube_ws *ws, int channel, const void *buf, size_t n, struct cp_error *err);
/* Runs the connection until the server closes it (0), or it fails, or
 * `cancel` (may be NULL) or runtime_interrupts changes (-1, EXIT_INTERRUPTED
 * for the latter); both are seen within 200 ms. */
int kube_ws_run(struct kube_ws *ws, const atomic_int *cancel, struct cp_error *err);
/* Closes the connection and frees `ws`; NULL is fine. */
void kube_ws_close(struct kube_ws *ws);

#endif
