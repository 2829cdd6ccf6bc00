/* Commands in a running pod: pods/NAME/exec over a WebSocket (kube_ws.c).
 * stdout and stderr come on channels 1 and 2; the closing Status on
 * channel 3 carries the exit code. The v4.channel.k8s.io protocol has no
 * way to close stdin short of closing the connection (the output with
 * it), so stdin is a file read to its end first and the command is run
 * as `sh -c 'head -c SIZE | "$@"'`: head ends the command's stdin where
 * the file ends. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube_exec.h"
#include "kube_ws.h"

#define POD_WAIT_S 60

struct exec_run {
	struct kube_ws *ws;
	const struct kube_exec_io *io;
	struct strbuf status; /* channel 3 */
	int in_fd;
	struct cp_error send_err;
	int send_rc;
};

static void on_recv(void *ud, int channel, const char *data, size_t n)
{
	struct exec_run *x = ud;
	if (channel == 1 || channel == 2)
		x->io->out(x->io->ud, channel, data, n);
	else if (channel == 3)
		sb_add(&x->status, data, n);
}

/* Sends in_fd to its end on channel 0 (the feeding thread). */
static void *feed(void *ud)
{
	struct exec_run *x = ud;
	char buf[32768];
	ssize_t n;
	while ((n = read(x->in_fd, buf, sizeof(buf))) > 0)
		if (kube_ws_send(x->ws, 0, buf, (size_t)n, &x->send_err) < 0) {
			x->send_rc = -1;
			return NULL;
		}
	if (n < 0)
		x->send_rc = cp_error_errno(&x->send_err, EXIT_RUNTIME, "reading stdin");
	return NULL;
}

/* The exit code the closing Status gives: 0 for Success, the ExitCode
 * cause of a NonZeroExitCode, else 126 (127 when the command was not
 * found) with the Status's message on stderr through io. */
static int status_code(const struct exec_run *x, int *exit_code, struct cp_error *err)
{
	cJSON *st = x->status.len ? cJSON_ParseWithLength(x->status.buf, x->status.len) : NULL;
	const char *s = kube_str(st, "status");
	int rc = 0;
	if (!s) {
		rc = cp_error_set(err, EXIT_RUNTIME,
				  "the API server ended the exec without an exit status");
	} else if (!strcmp(s, "Success")) {
		*exit_code = 0;
	} else {
		const char *code = NULL;
		const cJSON *c;
		cJSON_ArrayForEach(
		    c,
		    kube_get(st, "details.causes")) if (kube_str(c, "reason") &&
							!strcmp(kube_str(c, "reason"), "ExitCode"))
		    code = kube_str(c, "message");
		if (code) {
			*exit_code = atoi(code);
		} else {
			const char *msg = kube_str(st, "message");
			cleanup_free char *line = xasprintf("cpipe: exec: %s\n", msg ? msg : s);
			x->io->out(x->io->ud, 2, line, strlen(line));
			*exit_code =
			    msg && (strstr(msg, "not found") || strstr(msg, "no such file")) ? 127
											     : 126;
		}
	}
	cJSON_Delete(st);
	return rc;
}

int kube_exec_pod(struct runtime *rt, const char *pod, char *const *argv,
		  const struct kube_exec_io *io, int *exit_code, struct cp_error *err)
{
	struct strbuf q = STRBUF_INIT;
	for (size_t i = 0; argv[i]; i++) {
		cleanup_free char *a = kube_escape(argv[i]);
		sb_addf(&q, "%scommand=%s", i ? "&" : "", a);
	}
	sb_addf(&q, "&stdin=%s&stdout=true&stderr=true&tty=false",
		io->in_fd >= 0 ? "true" : "false");
	cleanup_free char *path = kube_path(rt, "pods", pod);
	cleanup_free char *epath = xasprintf("%s/exec", path);
	struct exec_run x = {.io = io, .status = {.max = 1 << 20}, .in_fd = io->in_fd};
	int rc = kube_ws_open(&x.ws, &rt->cfg, epath, sb_str(&q), on_recv, &x, err);
	sb_free(&q);
	if (rc < 0)
		return -1;
	pthread_t feeder;
	bool feeding = false;
	if (io->in_fd >= 0) {
		if (pthread_create(&feeder, NULL, feed, &x) != 0) {
			kube_ws_close(x.ws);
			sb_free(&x.status);
			return cp_error_set(err, EXIT_RUNTIME, "cannot start a thread");
		}
		feeding = true;
	}
	rc = kube_ws_run(x.ws, NULL, err);
	if (feeding)
		pthread_join(feeder, NULL); /* kube_ws_run marked the connection gone */
	kube_ws_close(x.ws);
	if (rc == 0)
		rc = status_code(&x, exit_code, err);
	sb_free(&x.status);
	return rc;
}

int kube_exec_stdin(FILE **out, long long *size, int fd, struct cp_error *err)
{
	*out = NULL;
	*size = 0;
	struct stat st;
	if (fstat(fd, &st) < 0 ||
	    !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return 0;
	FILE *f = tmpfile();
	if (!f)
		return cp_error_errno(err, EXIT_RUNTIME, "creating a temporary file");
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (fwrite(buf, 1, (size_t)n, f) != (size_t)n) {
			n = -1;
			break;
		}
	if (n < 0 || fflush(f) != 0) {
		fclose(f);
		return cp_error_errno(err, EXIT_RUNTIME, "reading stdin into a temporary file");
	}
	*size = ftell(f);
	rewind(f);
	*out = f;
	return 1;
}

/* A Running pod of the service's Deployment `name` (stage `stage`), or
 * NULL; caller owns. */
static char *service_pod(struct runtime *rt, const char *name, const char *stage,
			 struct cp_error *err)
{
	cleanup_free char *sel = kube_selector(rt, KLABEL_STAGE, stage);
	cleanup_free char *base = kube_path(rt, "pods", NULL);
	cleanup_free char *path = xasprintf("%s?labelSelector=%s", base, sel);
	cJSON *list = NULL;
	if (kube_json(rt->k, "GET", path, NULL, NULL, &list, err) < 0)
		return NULL;
	size_t n = strlen(name);
	char *pod = NULL;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
	{
		const char *pn = kube_str(it, "metadata.name");
		const char *phase = kube_str(it, "status.phase");
		if (pod || !pn || strncmp(pn, name, n) != 0 || pn[n] != '-' || !phase ||
		    strcmp(phase, "Running") != 0 || kube_str(it, "metadata.deletionTimestamp"))
			continue;
		pod = xstrdup(pn);
	}
	cJSON_Delete(list);
	return pod;
}

static void to_stdio(void *ud, int stream, const char *data, size_t n)
{
	(void)ud;
	FILE *f = stream == 2 ? stderr : stdout;
	fwrite(data, 1, n, f);
	fflush(f);
}

/* The pod of the detached service `h` names, once it runs (within
 * POD_WAIT_S while its Deployment is there): 0 and *pod (caller owns), or
 * -1 (EXIT_USAGE when it is not running). */
static int handle_pod(char **pod, struct runtime *rt, const cJSON *h, const char *shown,
		      struct cp_error *err)
{
	const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "namespace"));
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "deployment"));
	const char *stage = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "stage"));
	if (!ns || !name || !stage || strcmp(ns, rt->namespace) != 0)
		return cp_error_set(err, EXIT_USAGE, "service %s is not running", shown);
	/* A Deployment `up` just made may still be starting its pod. */
	long long deadline = now_ms() + POD_WAIT_S * 1000LL;
	while (!(*pod = service_pod(rt, name, stage, err)) && !err->msg[0] && now_ms() < deadline &&
	       !runtime_interrupts) {
		int alive = kube_handle_alive(rt, h, err);
		if (alive <= 0)
			break;
		usleep(250000);
	}
	if (*pod)
		return 0;
	if (err->msg[0])
		return cp_error_prefix(err, "service %s", shown);
	return cp_error_set(err, EXIT_USAGE,
			    "service %s is not running: Deployment %s in namespace %s has no "
			    "running pod (see cpipe ps; start it with cpipe up %s)",
			    shown, name, rt->namespace, shown);
}

int kube_handle_exec(struct runtime *rt, const cJSON *h, const struct task_spec *ts,
		     char *const *argv, int *exit_code, struct cp_error *err)
{
	const char *shown = ts->desc->name;
	cleanup_free char *pod = NULL;
	if (handle_pod(&pod, rt, h, shown, err) < 0)
		return -1;
	cleanup_fclose FILE *in = NULL;
	long long size = 0;
	int given = kube_exec_stdin(&in, &size, STDIN_FILENO, err);
	if (given < 0)
		return -1;
	struct strvec cmd = {0};
	if (given) {
		cleanup_free char *script = xasprintf("head -c %lld | \"$@\"", size);
		strvec_push(&cmd, "/bin/sh");
		strvec_push(&cmd, "-c");
		strvec_push(&cmd, script);
		strvec_push(&cmd, "cpipe-exec");
	}
	for (size_t i = 0; argv[i]; i++)
		strvec_push(&cmd, argv[i]);
	struct kube_exec_io io = {.in_fd = in ? fileno(in) : -1, .out = to_stdio};
	int rc = kube_exec_pod(rt, pod, cmd.v, &io, exit_code, err);
	strvec_free(&cmd);
	return rc < 0 ? cp_error_prefix(err, "exec in service %s (pod %s)", shown, pod) : 0;
}

static void discard(void *ud, int stream, const char *data, size_t n)
{
	(void)ud, (void)stream, (void)data, (void)n;
}

int kube_handle_kill(struct runtime *rt, const cJSON *h, int sig, struct cp_error *err)
{
	/* The API has no signal for a container: the signals that end a
	 * process end the service as the kubelet stops it (its Deployment
	 * deleted; `cpipe start` brings it up again); others reach its
	 * process 1 from inside, as `kill` in the pod. */
	if (sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
		return kube_handle_stop(rt, h, 0, err);
	const char *stage = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "stage"));
	cleanup_free char *pod = NULL;
	if (handle_pod(&pod, rt, h, stage ? stage : "?", err) < 0) {
		cp_error_clear(err); /* gone is fine */
		return 0;
	}
	cleanup_free char *script = xasprintf("kill -%d 1", sig);
	char *argv[] = {"/bin/sh", "-c", script, NULL};
	struct kube_exec_io io = {.in_fd = -1, .out = discard};
	int code = 0;
	if (kube_exec_pod(rt, pod, argv, &io, &code, err) < 0)
		return cp_error_prefix(err, "signalling pod %s", pod);
	if (code != 0)
		return cp_error_set(err, EXIT_STAGE_FAILED,
				    "signalling pod %s: `kill -%d 1` in it exited %d", pod, sig,
				    code);
	return 0;
}
