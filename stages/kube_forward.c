/* Published ports of the kubernetes runtime's services: cpipe binds each
 * host address:port the spec gives, before the service runs, and hands
 * the sockets to a forwarder process (kube_forward_http.c) that relays
 * HTTP through the API server to the service. The forwarder is detached
 * (its own session) and recorded in <state>/kube-forward/<stage>.json by
 * pid and start time, with the cpipe that started it: the run stops it
 * when the service ends, `cpipe up` leaves it (kept) with the service,
 * `down` stops it, and the next run after a kill -9 stops it and deletes
 * the dead run's service. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/defaults.h"
#include "../lib/fs.h"
#include "hostport.h"
#include "kube_forward.h"
#include "kube_internal.h"
#include "netns.h"

#define READY_TIMEOUT_MS 10000

struct published {
	char *ip;
	int host_port, port;
	struct cp_mark mark;
};

static char *records_dir(const struct runtime *rt)
{
	return path_join(rt->state_dir, "kube-forward");
}

static char *record_path(const struct runtime *rt, const char *stage, const char *ext)
{
	cleanup_free char *dir = records_dir(rt);
	cleanup_free char *file = xasprintf("%s%s", stage, ext);
	return path_join(dir, file);
}

/* SIGTERM, then SIGKILL after 2 s; returns once it is gone (its sockets
 * closed) or 3 s passed. */
static void end_process(pid_t pid, unsigned long long start)
{
	if (!proc_alive(pid, start))
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 300 && proc_alive(pid, start); i++) {
		if (i == 200)
			kill(pid, SIGKILL);
		waitpid(pid, NULL, WNOHANG);
		usleep(10000);
	}
	waitpid(pid, NULL, WNOHANG);
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static cJSON *record_load(const struct runtime *rt, const char *stage)
{
	cleanup_free char *path = record_path(rt, stage, ".json");
	cleanup_free char *text = NULL;
	struct cp_error ignored = {0};
	if (fs_read_file(&text, NULL, path, 1 << 20, &ignored) < 0)
		return NULL;
	return cJSON_Parse(text);
}

static int record_save(const struct runtime *rt, const char *stage, const cJSON *r,
		       struct cp_error *err)
{
	cleanup_free char *path = record_path(rt, stage, ".json");
	char *text = cJSON_Print(r);
	int rc = fs_write_atomic_fast(path, text, strlen(text), 0600, err);
	cJSON_free(text);
	return rc;
}

static const char *rstr(const cJSON *r, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, k));
}

/* Ends the forwarder record `r` names and removes the record. */
static void record_end(const struct runtime *rt, const char *stage, const cJSON *r)
{
	end_process((pid_t)num(r, "pid"), (unsigned long long)num(r, "start"));
	cleanup_free char *path = record_path(rt, stage, ".json");
	cleanup_free char *log = record_path(rt, stage, ".log");
	unlink(path);
	unlink(log);
}

/* The ports of `d` published on the host: those with a host port. */
static size_t published_ports(struct published **out, const struct task_desc *d)
{
	size_t n = 0;
	*out = NULL;
	for (size_t i = 0; i < d->nports; i++) {
		const struct port *pt = &d->ports[i];
		if (!pt->host_port)
			continue;
		for (int k = 0; k <= pt->container_port_end - pt->container_port; k++) {
			*out = xrealloc(*out, (n + 1) * sizeof(**out));
			(*out)[n++] = (struct published){
			    xstrdup(pt->host_ip ? pt->host_ip : CP_DEFAULT_HOST_IP),
			    pt->host_port + k, pt->container_port + k, pt->mark};
		}
	}
	return n;
}

static void published_free(struct published *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].ip);
	free(p);
}

/* A listening TCP socket on ip:port (close-on-exec), or -1 with err set
 * (EXIT_STAGE_FAILED, naming the holder, for a port in use). */
static int listen_on(const char *stage, const struct published *p, struct cp_error *err)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, p->ip, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p->host_port);
		len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, p->ip, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p->host_port);
		len = sizeof(*v6);
	} else {
		return cp_error_at(err, EXIT_USAGE, &p->mark,
				   "service \"%s\": host address %s is no IP address", stage,
				   p->ip);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cp_error_errno(err, EXIT_RUNTIME, "creating a socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
		int e = errno;
		close(fd);
		if (e == EADDRINUSE) {
			cleanup_free char *who = NULL;
			hostport_in_use(p->ip, p->host_port, "tcp", &who);
			return cp_error_at(err, EXIT_STAGE_FAILED, &p->mark,
					   "service \"%s\": port %d on %s is already in use%s%s; "
					   "stop it or publish another port",
					   stage, p->host_port, p->ip, who ? " by " : "",
					   who ? who : "");
		}
		errno = e;
		return cp_error_errno(err, EXIT_STAGE_FAILED, "service \"%s\": binding %s:%d",
				      stage, p->ip, p->host_port);
	}
	return fd;
}

/* Waits for the forwarder's "ok" on `fd`: 0, or -1 when it exited first
 * or stayed silent (its log says why). */
static int wait_ready(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	long long deadline = now_ms() + READY_TIMEOUT_MS;
	char buf[8];
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return -1;
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		return n >= 2 && !memcmp(buf, "ok", 2) ? 0 : -1;
	}
}

/* The last line of the forwarder's log, for an error; caller owns. */
static char *log_tail(const char *path)
{
	cleanup_free char *text = NULL;
	struct cp_error ignored = {0};
	if (fs_read_file(&text, NULL, path, 1 << 20, &ignored) < 0 || !*text)
		return xstrdup("it wrote nothing");
	size_t n = strlen(text);
	while (n && text[n - 1] == '\n')
		text[--n] = '\0';
	const char *nl = strrchr(text, '\n');
	return xstrdup(nl ? nl + 1 : text);
}

/* Starts the forwarder on the listening sockets fds[0..n) for ports p:
 * its pid in *pid. */
static int spawn(pid_t *pid, const struct runtime *rt, const char *stage, const char *name,
		 const struct published *p, const int *fds, size_t n, struct cp_error *err)
{
	cleanup_free char *log = record_path(rt, stage, ".log");
	int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int rp[2];
	if (logfd < 0 || null < 0 || pipe2(rp, O_CLOEXEC) < 0) {
		cp_error_errno(err, EXIT_RUNTIME, "starting the port forwarder of \"%s\"", stage);
		if (logfd >= 0)
			close(logfd);
		if (null >= 0)
			close(null);
		return -1;
	}
	struct strvec argv = {0};
	strvec_push(&argv, KUBE_FORWARD_NAME);
	strvec_push(&argv, rt->namespace);
	strvec_push(&argv, name);
	char num_buf[32];
	snprintf(num_buf, sizeof(num_buf), "%d", rp[1]);
	strvec_push(&argv, num_buf);
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *a = xasprintf("%d:%d", fds[i], p[i].port);
		strvec_push(&argv, a);
	}
	pid_t child = fork();
	if (child == 0) {
		/* Only async-signal-safe calls until exec. */
		setsid();
		/* Nothing else of cpipe's (the project lock, API connections)
		 * outlives it in the forwarder. */
		if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
			for (int fd = 3; fd < 1024; fd++)
				fcntl(fd, F_SETFD, FD_CLOEXEC);
		for (size_t i = 0; i < n; i++)
			fcntl(fds[i], F_SETFD, 0);
		fcntl(rp[1], F_SETFD, 0);
		dup2(null, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv("/proc/self/exe", argv.v);
		_exit(127);
	}
	int fork_errno = errno;
	strvec_free(&argv);
	close(rp[1]);
	close(null);
	close(logfd);
	if (child < 0) {
		close(rp[0]);
		errno = fork_errno;
		return cp_error_errno(err, EXIT_RUNTIME, "starting the port forwarder of \"%s\"",
				      stage);
	}
	int ok = wait_ready(rp[0]);
	close(rp[0]);
	if (ok < 0) {
		end_process(child, proc_starttime(child, NULL));
		waitpid(child, NULL, WNOHANG);
		cleanup_free char *why = log_tail(log);
		return cp_error_set(err, EXIT_RUNTIME,
				    "service \"%s\": the port forwarder did not start: %s (%s)",
				    stage, why, log);
	}
	*pid = child;
	return 0;
}

int kube_forward_start(struct runtime *rt, const struct task_desc *d, const char *name,
		       struct cp_error *err)
{
	struct published *p = NULL;
	size_t n = published_ports(&p, d);
	if (!n)
		return 0;
	if (!rt->state_dir) {
		published_free(p, n);
		return cp_error_at(err, EXIT_USAGE, &d->mark,
				   "service \"%s\" publishes ports, which needs the project's "
				   "state directory (.cpipe) for the port forwarder's record",
				   d->name);
	}
	/* A forwarder the stage still has (its service went away under it)
	 * holds the ports: the new service's takes them over. */
	kube_forward_stop(rt, d->name, NULL);
	cleanup_free char *dir = records_dir(rt);
	int *fds = xcalloc(n, sizeof(*fds));
	size_t nfd = 0;
	pid_t pid = 0;
	int rc = fs_mkdir_p(dir, 0700, err);
	for (; rc == 0 && nfd < n; nfd++) {
		fds[nfd] = listen_on(d->name, &p[nfd], err);
		if (fds[nfd] < 0)
			rc = -1;
	}
	if (rc == 0)
		rc = spawn(&pid, rt, d->name, name, p, fds, n, err);
	for (size_t i = 0; i < nfd; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	if (rc == 0) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "stage", d->name);
		cJSON_AddStringToObject(r, "deployment", name);
		cJSON_AddNumberToObject(r, "pid", pid);
		cJSON_AddNumberToObject(r, "start", (double)proc_starttime(pid, NULL));
		cJSON_AddNumberToObject(r, "owner", getpid());
		cJSON_AddNumberToObject(r, "owner_start", (double)proc_starttime(getpid(), NULL));
		cJSON_AddBoolToObject(r, "kept", false);
		cJSON *arr = cJSON_AddArrayToObject(r, "ports");
		for (size_t i = 0; i < n; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "host_ip", p[i].ip);
			cJSON_AddNumberToObject(o, "host_port", p[i].host_port);
			cJSON_AddNumberToObject(o, "container_port", p[i].port);
			cJSON_AddItemToArray(arr, o);
		}
		rc = record_save(rt, d->name, r, err);
		if (rc < 0)
			record_end(rt, d->name, r);
		cJSON_Delete(r);
	}
	published_free(p, n);
	return rc;
}

void kube_forward_stop(struct runtime *rt, const char *stage, const char *name)
{
	if (!rt->state_dir)
		return;
	cJSON *r = record_load(rt, stage);
	const char *dep = rstr(r, "deployment");
	if (r && (!name || (dep && !strcmp(dep, name))))
		record_end(rt, stage, r);
	cJSON_Delete(r);
}

void kube_forward_keep(struct runtime *rt, const char *stage)
{
	if (!rt->state_dir)
		return;
	cJSON *r = record_load(rt, stage);
	if (!r)
		return;
	cJSON_ReplaceItemInObjectCaseSensitive(r, "kept", cJSON_CreateTrue());
	struct cp_error e = {0};
	if (record_save(rt, stage, r, &e) < 0)
		runtime_note(&rt->sink, RUNTIME_WARNING, stage, "%s", e.msg);
	cJSON_Delete(r);
}

bool kube_forward_orphaned(struct runtime *rt, const char *stage, const char *name)
{
	if (!rt->state_dir)
		return false;
	cJSON *r = record_load(rt, stage);
	const char *dep = rstr(r, "deployment");
	pid_t owner = (pid_t)num(r, "owner");
	bool orphan = r && dep && !strcmp(dep, name) &&
		      !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "kept")) &&
		      owner != getpid() &&
		      !proc_alive(owner, (unsigned long long)num(r, "owner_start"));
	cJSON_Delete(r);
	return orphan;
}

/* Visits every record: `fn` gets the stage and the record. */
static void each_record(struct runtime *rt,
			void (*fn)(struct runtime *rt, const char *stage, const cJSON *r, void *ud),
			void *ud)
{
	if (!rt->state_dir)
		return;
	cleanup_free char *dir = records_dir(rt);
	struct strvec names = {0};
	struct cp_error ignored = {0};
	if (fs_list_names(&names, dir, ".json", &ignored) < 0)
		return;
	for (size_t i = 0; i < names.n; i++) {
		cJSON *r = record_load(rt, names.v[i]);
		if (r)
			fn(rt, names.v[i], r, ud);
		cJSON_Delete(r);
	}
	strvec_free(&names);
}

static void sweep_one(struct runtime *rt, const char *stage, const cJSON *r, void *ud)
{
	int *total = ud;
	pid_t owner = (pid_t)num(r, "owner");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "kept"))) {
		/* The service another cpipe left up keeps its forwarder, while both last. */
		if (!proc_alive((pid_t)num(r, "pid"), (unsigned long long)num(r, "start")))
			record_end(rt, stage, r);
		return;
	}
	if (owner == getpid() || proc_alive(owner, (unsigned long long)num(r, "owner_start")))
		return;
	record_end(rt, stage, r);
	(*total)++;
	const char *dep = rstr(r, "deployment");
	static const char *const kinds[] = {"deployments", "services", "configmaps"};
	for (size_t i = 0; dep && i < ARRAY_LEN(kinds); i++) {
		struct cp_error e = {0};
		if (kube_delete(rt->k, rt, kinds[i], dep, &e) < 0)
			runtime_note(&rt->sink, RUNTIME_WARNING, stage, "%s", e.msg);
	}
}

int kube_forward_sweep(struct runtime *rt)
{
	int total = 0;
	each_record(rt, sweep_one, &total);
	return total;
}

static void end_one(struct runtime *rt, const char *stage, const cJSON *r, void *ud)
{
	(void)ud;
	record_end(rt, stage, r);
}

void kube_forward_stop_all(struct runtime *rt)
{
	each_record(rt, end_one, NULL);
}

struct port_query {
	const char *ip;
	int port;
	bool ours;
};

static void holds(struct runtime *rt, const char *stage, const cJSON *r, void *ud)
{
	(void)rt, (void)stage;
	struct port_query *q = ud;
	if (!proc_alive((pid_t)num(r, "pid"), (unsigned long long)num(r, "start")))
		return;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "ports"))
	{
		const char *ip = rstr(it, "host_ip");
		if (ip && !strcmp(ip, q->ip) && (int)num(it, "host_port") == q->port)
			q->ours = true;
	}
}

int kube_port_in_use(struct runtime *rt, const char *host_ip, int port, const char *protocol,
		     char **who)
{
	*who = NULL;
	if (!hostport_in_use(host_ip, port, protocol, who))
		return 0;
	struct port_query q = {host_ip, port, false};
	if (protocol && strcmp(protocol, "tcp") != 0)
		return 1;
	each_record(rt, holds, &q);
	if (!q.ours)
		return 1;
	free(*who);
	*who = NULL;
	return 0;
}
