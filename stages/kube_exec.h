/* The kubernetes runtime's commands in running pods (kube_exec.c): `cpipe
 * exec` and `cpipe kill` into a service, and the helper pods that are fed
 * through stdin (kube_restore.c). */
#ifndef CPIPE_STAGES_KUBE_EXEC_H
#define CPIPE_STAGES_KUBE_EXEC_H

#include <stdio.h>

#include "kube_internal.h"

struct kube_exec_io {
	/* Sent to the command's stdin to its end (a file: the protocol
	 * cannot end stdin, see kube_exec.c); -1: no stdin. */
	int in_fd;
	/* The command's output as it comes, by stream (1 stdout, 2 stderr). */
	void (*out)(void *ud, int stream, const char *data, size_t n);
	void *ud;
};

/* Runs `argv` in the (only) container of pod `pod` of rt's namespace and
 * gives its exit code; a command that cannot be started is 126 (127 when
 * not found), the API server's message going to io->out as stderr. Fails
 * (-1) when the exec cannot be opened or ends without a status. */
int kube_exec_pod(struct runtime *rt, const char *pod, char *const *argv,
		  const struct kube_exec_io *io, int *exit_code, struct cp_error *err);
/* When `fd` is a file, pipe or socket: 1, its content read to the end
 * into *out (a temporary file, rewound, caller closes) and its *size;
 * 0 otherwise (a terminal, /dev/null: no stdin). */
int kube_exec_stdin(FILE **out, long long *size, int fd, struct cp_error *err);

/* The runtime_ops handle_exec and handle_kill (see runtime.h). */
int kube_handle_exec(struct runtime *rt, const cJSON *h, const struct task_spec *ts,
		     char *const *argv, int *exit_code, struct cp_error *err);
int kube_handle_kill(struct runtime *rt, const cJSON *h, int sig, struct cp_error *err);

#endif
