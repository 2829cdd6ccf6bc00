/* The kubernetes runtime's port forwarder process (kube_forward_http.c):
 * cpipe executed as "cpipe-kube-forward" by the runtime (kube_forward.c),
 * which keeps its pid in the project's state. */
#ifndef CPIPE_STAGES_KUBE_FORWARD_H
#define CPIPE_STAGES_KUBE_FORWARD_H

#define KUBE_FORWARD_NAME "cpipe-kube-forward"

/* The forwarder's entry point: serves the listening sockets it inherited
 * until SIGTERM, SIGINT or SIGHUP; returns the exit code. */
int kube_forward_main(int argc, char **argv);

#endif
