/* The project network of the local runtime (see netns.h). The holder is
 * cpipe itself executed as "cpipe-netns": it unshares a network namespace
 * (with a user namespace mapping the caller's ids when not root), brings
 * up lo and sleeps; pasta attaches to it. The record <run>/netns.json
 * names both by pid and start time; <run>/netns.lock serializes joining
 * and removing. */
#include "netns.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <linux/capability.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/defaults.h"
#include "../lib/fs.h"

#define HOLDER_NAME "cpipe-netns"

struct fwd {
	char *ip;
	int hport, hend, cport;
	bool udp;
};

struct record {
	pid_t holder, pasta;
	unsigned long long holder_start, pasta_start;
	bool rootless;
	struct fwd *fwd;
	size_t nfwd;
};

unsigned long long proc_starttime(pid_t pid, char *state)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	cleanup_free char *text = NULL;
	struct cp_error ignored = {0};
	if (fs_read_file(&text, NULL, path, 1 << 16, &ignored) < 0)
		return 0;
	const char *p = strrchr(text, ')');
	if (!p)
		return 0;
	p += 2;
	if (state)
		*state = *p;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return p ? strtoull(p, NULL, 10) : 0;
}

bool proc_alive(pid_t pid, unsigned long long start)
{
	char state = 0;
	return pid > 1 && start && proc_starttime(pid, &state) == start && state != 'Z';
}

/* SIGKILL (neither pasta nor the holder keeps state worth a clean exit);
 * returns once the process is gone, its ports closed (or after 3 s). */
static void proc_end(pid_t pid, unsigned long long start)
{
	if (!proc_alive(pid, start))
		return;
	kill(pid, SIGKILL);
	for (int i = 0; i < 3000 && proc_alive(pid, start); i++) {
		waitpid(pid, NULL, WNOHANG);
		usleep(1000);
	}
	waitpid(pid, NULL, WNOHANG); /* our own child (the holder) is reaped */
}

/* ---- the record ------------------------------------------------------------ */

static void record_free(struct record *r)
{
	for (size_t i = 0; i < r->nfwd; i++)
		free(r->fwd[i].ip);
	free(r->fwd);
	memset(r, 0, sizeof(*r));
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* 0 loaded, 1 none or unreadable. */
static int record_load(struct record *r, const char *run_dir)
{
	memset(r, 0, sizeof(*r));
	cleanup_free char *path = path_join(run_dir, "netns.json");
	cleanup_free char *text = NULL;
	struct cp_error ignored = {0};
	if (fs_read_file(&text, NULL, path, 1 << 20, &ignored) < 0)
		return 1;
	cJSON *doc = cJSON_Parse(text);
	if (!doc)
		return 1;
	r->holder = (pid_t)num(doc, "holder");
	r->holder_start = (unsigned long long)num(doc, "holder_start");
	r->pasta = (pid_t)num(doc, "pasta");
	r->pasta_start = (unsigned long long)num(doc, "pasta_start");
	r->rootless = cJSON_IsTrue(cJSON_GetObjectItem(doc, "rootless"));
	const cJSON *ports = cJSON_GetObjectItem(doc, "ports");
	size_t n = (size_t)cJSON_GetArraySize(ports);
	r->fwd = xcalloc(n + 1, sizeof(*r->fwd));
	const cJSON *it;
	cJSON_ArrayForEach(it, ports) {
		const char *ip = cJSON_GetStringValue(cJSON_GetObjectItem(it, "ip"));
		r->fwd[r->nfwd++] = (struct fwd){xstrdup(ip ? ip : CP_DEFAULT_HOST_IP),
						 (int)num(it, "host_port"), (int)num(it, "host_port_end"),
						 (int)num(it, "container_port"),
						 cJSON_IsTrue(cJSON_GetObjectItem(it, "udp"))};
	}
	cJSON_Delete(doc);
	return 0;
}

static int record_save(const struct record *r, const char *run_dir, struct cp_error *err)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddNumberToObject(doc, "holder", r->holder);
	cJSON_AddNumberToObject(doc, "holder_start", (double)r->holder_start);
	cJSON_AddNumberToObject(doc, "pasta", r->pasta);
	cJSON_AddNumberToObject(doc, "pasta_start", (double)r->pasta_start);
	cJSON_AddBoolToObject(doc, "rootless", r->rootless);
	cJSON *ports = cJSON_AddArrayToObject(doc, "ports");
	for (size_t i = 0; i < r->nfwd; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "ip", r->fwd[i].ip);
		cJSON_AddNumberToObject(o, "host_port", r->fwd[i].hport);
		cJSON_AddNumberToObject(o, "host_port_end", r->fwd[i].hend);
		cJSON_AddNumberToObject(o, "container_port", r->fwd[i].cport);
		cJSON_AddBoolToObject(o, "udp", r->fwd[i].udp);
		cJSON_AddItemToArray(ports, o);
	}
	char *text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	cleanup_free char *path = path_join(run_dir, "netns.json");
	int rc = fs_write_atomic_fast(path, text, strlen(text), 0644, err);
	free(text);
	return rc;
}

static bool fwd_has(const struct record *r, const char *ip, int port, bool udp)
{
	for (size_t i = 0; i < r->nfwd; i++)
		if (r->fwd[i].udp == udp && strcmp(r->fwd[i].ip, ip) == 0 &&
		    port >= r->fwd[i].hport && port <= r->fwd[i].hend)
			return true;
	return false;
}

/* ---- the holder ------------------------------------------------------------ */

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int holder_fail(const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "%s: %s", what, strerror(errno));
	if (write(3, msg, (size_t)n) < 0) {
		/* The parent is gone. */
	}
	return 1;
}

int netns_holder_main(int argc, char **argv)
{
	bool user = argc > 1 && strcmp(argv[1], "user") == 0;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (unshare(CLONE_NEWNET | (user ? CLONE_NEWUSER : 0)) < 0)
		return holder_fail("creating the project's network namespace");
	if (user) {
		char map[64];
		if (write_text("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
			return holder_fail("writing /proc/self/setgroups");
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
		if (write_text("/proc/self/uid_map", map) < 0)
			return holder_fail("writing /proc/self/uid_map");
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
		if (write_text("/proc/self/gid_map", map) < 0)
			return holder_fail("writing /proc/self/gid_map");
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return holder_fail("reading the flags of lo");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return holder_fail("bringing up lo");
	close(s);
	/* Without capabilities, pasta (which keeps only a few as root) may
	 * open this process's namespaces: /proc's access check wants the
	 * opener's capabilities to cover the target's. */
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct caps[2] = {{0}};
	if (!user && syscall(SYS_capset, &hdr, caps) < 0)
		return holder_fail("dropping capabilities");
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	prctl(PR_SET_NAME, HOLDER_NAME);
	if (write(3, "ok", 2) != 2)
		return 1;
	close(3);
	for (;;)
		pause();
}

static int holder_start(struct record *r, struct cp_error *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating a pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return cp_error_errno(err, EXIT_USAGE, "fork");
	}
	if (pid == 0) {
		setsid();
		if (dup2(p[1], 3) < 0)
			_exit(127);
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		close_range(4, ~0U, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		char *const argv[] = {HOLDER_NAME, r->rootless ? "user" : "root", NULL};
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(p[1]);
	char msg[512];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(msg) - 1 &&
	       ((n = read(p[0], msg + len, sizeof(msg) - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	close(p[0]);
	msg[len] = '\0';
	if (strcmp(msg, "ok") != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return cp_error_set(err, EXIT_RUNTIME,
				    "the local runtime cannot create the project's network: %s",
				    len ? msg : "its holder process failed to start");
	}
	r->holder = pid;
	r->holder_start = proc_starttime(pid, NULL);
	return 0;
}

/* ---- pasta --------------------------------------------------------------------- */

static char *fwd_spec(const struct fwd *f)
{
	bool any = strcmp(f->ip, "0.0.0.0") == 0 || strcmp(f->ip, "::") == 0;
	cleanup_free char *addr = any ? xstrdup("") : xasprintf("%s/", f->ip);
	int cend = f->cport + (f->hend - f->hport);
	if (f->hend != f->hport)
		return xasprintf("%s%d-%d:%d-%d", addr, f->hport, f->hend, f->cport, cend);
	return xasprintf("%s%d:%d", addr, f->hport, f->cport);
}

/* pasta's own message from its log, without the syslog noise. */
static char *pasta_message(const char *log)
{
	cleanup_free char *text = NULL;
	struct cp_error ignored = {0};
	if (fs_read_file(&text, NULL, log, 1 << 16, &ignored) < 0)
		return xstrdup("pasta failed");
	struct strbuf sb = STRBUF_INIT;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (strstr(line, "to syslog") || !*line)
			continue;
		sb_addf(&sb, "%s%s", sb.len ? "; " : "", line);
	}
	return sb.len ? sb_detach(&sb) : (sb_free(&sb), xstrdup("pasta failed"));
}

static int pasta_start(struct record *r, const char *run_dir, struct cp_error *err)
{
	struct strvec argv = {0};
	cleanup_free char *pidfile = path_join(run_dir, "pasta.pid");
	cleanup_free char *log = path_join(run_dir, "pasta.log");
	strvec_push(&argv, "pasta");
	strvec_push(&argv, "--quiet");
	strvec_push(&argv, "--config-net");
	strvec_push(&argv, "--pid");
	strvec_push(&argv, pidfile);
	bool tcp = false, udp = false;
	for (size_t i = 0; i < r->nfwd; i++) {
		strvec_push(&argv, r->fwd[i].udp ? "-u" : "-t");
		strvec_push_take(&argv, fwd_spec(&r->fwd[i]));
		tcp |= !r->fwd[i].udp;
		udp |= r->fwd[i].udp;
	}
	/* Without "none" pasta forwards every port bound in the namespace
	 * ("auto"), and every host port into it (-T/-U). */
	const char *none[][2] = {{"-t", tcp ? NULL : "none"}, {"-u", udp ? NULL : "none"},
				 {"-T", "none"}, {"-U", "none"}};
	for (size_t i = 0; i < ARRAY_LEN(none); i++)
		if (none[i][1]) {
			strvec_push(&argv, none[i][0]);
			strvec_push(&argv, none[i][1]);
		}
	if (r->rootless) {
		strvec_push_take(&argv, xasprintf("%ld", (long)r->holder));
	} else {
		/* As root pasta would switch to nobody, who may not enter the
		 * namespace; it still drops every capability it does not need. */
		strvec_push(&argv, "--runas");
		strvec_push(&argv, "0");
		strvec_push(&argv, "--netns");
		strvec_push_take(&argv, xasprintf("/proc/%ld/ns/net", (long)r->holder));
	}
	unlink(pidfile);
	pid_t pid = fork();
	if (pid < 0) {
		strvec_free(&argv);
		return cp_error_errno(err, EXIT_USAGE, "fork");
	}
	if (pid == 0) {
		setsid();
		int null = open("/dev/null", O_RDWR);
		int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		if (logfd >= 0)
			dup2(logfd, 2);
		close_range(3, ~0U, 0);
		/* pasta refuses to start with SIGPIPE ignored, as cpipe has it. */
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigset_t none_set;
		sigemptyset(&none_set);
		sigprocmask(SIG_SETMASK, &none_set, NULL);
		execvp(argv.v[0], argv.v);
		_exit(127);
	}
	strvec_free(&argv);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (code == 127) {
		return cp_error_set(err, EXIT_RUNTIME,
				    "the local runtime connects the project's network with pasta, "
				    "which is not installed: `apt-get install passt`, or give the "
				    "stages `network_mode: host`");
	}
	cleanup_free char *pidtext = NULL;
	struct cp_error ignored = {0};
	long ppid = 0;
	if (code == 0 && fs_read_file(&pidtext, NULL, pidfile, 64, &ignored) == 0)
		ppid = strtol(pidtext, NULL, 10);
	if (code != 0 || ppid <= 1) {
		cleanup_free char *msg = pasta_message(log);
		if (strstr(msg, "bind")) {
			return cp_error_set(
			    err, EXIT_RUNTIME,
			    "cannot forward the published ports (%s): a host port "
			    "is already in use; stop what holds it or publish another",
			    msg);
		}
		if (strstr(msg, "tun"))
			return cp_error_set(
			    err, EXIT_RUNTIME,
			    "pasta cannot connect the project's network: %s; as a "
			    "user pasta needs /dev/net/tun to be readable and writable "
			    "(mode 0666, as Debian installs it); or run as root, or give "
			    "the stages `network_mode: host`",
			    msg);
		return cp_error_set(err, EXIT_RUNTIME,
				    "pasta cannot connect the project's network: %s; or give "
				    "the stages `network_mode: host`",
				    msg);
	}
	r->pasta = (pid_t)ppid;
	r->pasta_start = proc_starttime(r->pasta, NULL);
	return 0;
}

/* ---- join, remove ---------------------------------------------------------- */

static void teardown(struct record *r, const char *run_dir)
{
	proc_end(r->pasta, r->pasta_start);
	proc_end(r->holder, r->holder_start);
	const char *files[] = {"netns.json", "pasta.pid", "pasta.log"};
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		cleanup_free char *path = path_join(run_dir, files[i]);
		unlink(path);
	}
	record_free(r);
}

static int lock_network(const char *run_dir, struct cp_error *err)
{
	if (fs_mkdir_p(run_dir, 0755, err) < 0)
		return -1;
	cleanup_free char *path = path_join(run_dir, "netns.lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return cp_error_errno(err, EXIT_USAGE, "opening %s", path);
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			close(fd);
			return cp_error_errno(err, EXIT_USAGE, "locking %s", path);
		}
	return fd;
}

static bool record_live(const struct record *r)
{
	return proc_alive(r->holder, r->holder_start) && proc_alive(r->pasta, r->pasta_start);
}

/* Adds the ports `r` does not forward yet; true when any was added. */
static bool add_ports(struct record *r, const struct netns_port *ports, size_t n)
{
	bool added = false;
	for (size_t i = 0; i < n; i++) {
		const char *ip = ports[i].host_ip ? ports[i].host_ip : CP_DEFAULT_HOST_IP;
		if (fwd_has(r, ip, ports[i].host_port, ports[i].udp) &&
		    fwd_has(r, ip, ports[i].host_port_end, ports[i].udp))
			continue;
		r->fwd = xrealloc(r->fwd, (r->nfwd + 1) * sizeof(*r->fwd));
		r->fwd[r->nfwd++] = (struct fwd){xstrdup(ip), ports[i].host_port,
						 ports[i].host_port_end, ports[i].container_port,
						 ports[i].udp};
		added = true;
	}
	return added;
}

int netns_join(struct netns *out, const char *run_dir, bool rootless,
	       const struct netns_port *ports, size_t nports, struct cp_error *err)
{
	*out = (struct netns){-1, -1, -1};
	int lock = lock_network(run_dir, err);
	if (lock < 0)
		return -1;
	struct record r;
	bool have = record_load(&r, run_dir) == 0;
	if (have && (!record_live(&r) || r.rootless != rootless)) {
		teardown(&r, run_dir);
		have = false;
	}
	if (!have) {
		memset(&r, 0, sizeof(r));
		r.rootless = rootless;
		add_ports(&r, ports, nports);
		if (holder_start(&r, err) < 0 || pasta_start(&r, run_dir, err) < 0 ||
		    record_save(&r, run_dir, err) < 0)
			goto fail;
	} else {
		size_t old_n = r.nfwd;
		if (add_ports(&r, ports, nports)) {
			/* pasta's forwards are fixed when it starts: a new pasta
			 * replaces it (connections through the old one drop). */
			proc_end(r.pasta, r.pasta_start);
			if (pasta_start(&r, run_dir, err) < 0) {
				struct cp_error keep = *err;
				for (size_t i = old_n; i < r.nfwd; i++)
					free(r.fwd[i].ip);
				r.nfwd = old_n;
				struct cp_error ignored = {0};
				if (pasta_start(&r, run_dir, &ignored) == 0)
					record_save(&r, run_dir, &ignored);
				*err = keep;
				record_free(&r);
				close(lock);
				return -1;
			}
			if (record_save(&r, run_dir, err) < 0)
				goto fail;
		}
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/ns/net", (long)r.holder);
	out->net_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (rootless) {
		snprintf(path, sizeof(path), "/proc/%ld/ns/user", (long)r.holder);
		out->user_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (out->net_fd < 0 || (rootless && out->user_fd < 0)) {
		cp_error_errno(err, EXIT_USAGE, "opening the project's network namespace");
		netns_release(out);
		goto fail;
	}
	out->lock_fd = lock;
	record_free(&r);
	return 0;
fail:
	teardown(&r, run_dir);
	close(lock);
	return -1;
}

void netns_release(struct netns *ns)
{
	int *fds[] = {&ns->net_fd, &ns->user_fd, &ns->lock_fd};
	for (size_t i = 0; i < ARRAY_LEN(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* Whether a process other than the holder and pasta is in the namespace. */
static bool has_members(const struct record *r)
{
	char path[64];
	struct stat ns;
	snprintf(path, sizeof(path), "/proc/%ld/ns/net", (long)r->holder);
	if (stat(path, &ns) < 0)
		return false;
	DIR *d = opendir("/proc");
	if (!d)
		return true;
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 1 || pid == r->holder || pid == r->pasta)
			continue;
		struct stat st;
		snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
		found = stat(path, &st) == 0 && st.st_ino == ns.st_ino && st.st_dev == ns.st_dev;
	}
	closedir(d);
	return found;
}

void netns_cleanup_if_idle(const char *run_dir)
{
	cleanup_free char *path = path_join(run_dir, "netns.json");
	if (access(path, F_OK) < 0)
		return;
	struct cp_error ignored = {0};
	int lock = lock_network(run_dir, &ignored);
	if (lock < 0)
		return;
	struct record r;
	if (record_load(&r, run_dir) == 0) {
		if (!record_live(&r) || !has_members(&r))
			teardown(&r, run_dir);
		record_free(&r);
	}
	close(lock);
}

bool netns_forwards(const char *run_dir, const char *host_ip, int port, bool udp)
{
	struct record r;
	if (record_load(&r, run_dir) != 0)
		return false;
	bool yes = record_live(&r) &&
		   fwd_has(&r, host_ip ? host_ip : CP_DEFAULT_HOST_IP, port, udp);
	record_free(&r);
	return yes;
}
