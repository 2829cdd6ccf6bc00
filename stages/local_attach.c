/* cpipe exec, kill and top on a local service another cpipe left up: the
 * sandbox's init is found by the PID (and start time) its handle gives,
 * and a command entered into the namespaces the sandbox has of its own
 * (user, PID, network, mount), with the stage's user, environment and
 * working directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "local_internal.h"

static int open_ns(pid_t pid, const char *ns)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/ns/%s", (long)pid, ns);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* Whether namespace `ns` of `pid` is another than ours: 1, 0, -1 unreadable. */
static int ns_differs(pid_t pid, const char *ns)
{
	char path[64];
	struct stat a, b;
	snprintf(path, sizeof(path), "/proc/%ld/ns/%s", (long)pid, ns);
	if (stat(path, &a) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/self/ns/%s", ns);
	if (stat(path, &b) < 0)
		return -1;
	return a.st_ino != b.st_ino || a.st_dev != b.st_dev;
}

/* The child that enters the sandbox's namespaces; the PID namespace takes
 * effect for its own child, which runs argv. Exits with argv's code. */
static void exec_child(const int *fds, size_t nfds, const int *types, const struct ids *ids,
		       const char *wd, char *const *argv, char *const *envp)
{
	for (size_t i = 0; i < nfds; i++)
		if (fds[i] >= 0 && setns(fds[i], types[i]) < 0) {
			fprintf(stderr, "cpipe: entering the sandbox: %s\n", strerror(errno));
			_exit(126);
		}
	pid_t pid = fork();
	if (pid < 0)
		_exit(126);
	if (pid == 0) {
		if (ids->set && (setgroups((size_t)ids->ngroups, ids->groups) < 0 ||
				 setgid(ids->gid) < 0 || setuid(ids->uid) < 0)) {
			fprintf(stderr, "cpipe: switching to the stage's user: %s\n", strerror(errno));
			_exit(126);
		}
		if (chdir(wd) < 0 && chdir("/") < 0)
			_exit(126);
		execvpe(argv[0], argv, envp);
		int e = errno;
		fprintf(stderr, "cpipe: exec %s: %s\n", argv[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			_exit(126);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

int local_handle_exec(struct runtime *rt, const cJSON *handle, const struct task_spec *ts,
			     char *const *argv, int *exit_code, struct cp_error *err)
{
	const struct task_desc *s = ts->desc;
	pid_t pid;
	if (local_handle_pid(&pid, handle) < 0 || local_handle_alive(rt, handle, err) != 1)
		return cp_error_set(err, EXIT_USAGE, "service %s is not running", s->name);
	struct ids ids = {0};
	struct strvec envp = {0};
	int fds[4] = {-1, -1, -1, -1};
	static const int types[4] = {CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWNS};
	static const char *const names[4] = {"user", "pid", "net", "mnt"};
	int rc = -1;
	const char *dir = local_project_dir(rt);
	char *wd = path_absolute(dir, s->working_dir && *s->working_dir ? s->working_dir : dir);
	if (!wd) {
		cp_error_set(err, EXIT_USAGE,
			     "stage \"%s\": working_dir \"%s\" is not a valid path", s->name,
			     s->working_dir);
		goto out;
	}
	if (local_resolve_user(&ids, s, err) < 0)
		goto out;
	local_build_env(&envp, ts->env, ids.home);
	for (size_t i = 0; i < ARRAY_LEN(fds); i++) {
		/* Only the namespaces the sandbox has of its own are entered:
		 * setns into one's own user namespace fails. */
		int d = ns_differs(pid, names[i]);
		if (d == 1)
			fds[i] = open_ns(pid, names[i]);
		if (d < 0 || (d == 1 && fds[i] < 0)) {
			cp_error_errno(err, EXIT_USAGE, "entering the sandbox of stage \"%s\"",
				       s->name);
			goto out;
		}
	}
	pid_t child = fork();
	if (child < 0) {
		cp_error_errno(err, EXIT_USAGE, "fork");
		goto out;
	}
	if (child == 0)
		exec_child(fds, ARRAY_LEN(fds), types, &ids, wd, argv, envp.v);
	/* Ctrl-C reaches the command through the terminal; cpipe stays to
	 * report how it ended. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	int status;
	pid_t w;
	while ((w = waitpid(child, &status, 0)) < 0 && errno == EINTR)
		;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (w < 0) {
		cp_error_errno(err, EXIT_USAGE, "waiting for exec in stage \"%s\"", s->name);
		goto out;
	}
	*exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	rc = 0;
out:
	for (size_t i = 0; i < ARRAY_LEN(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	strvec_free(&envp);
	free(ids.groups);
	free(ids.home);
	free(wd);
	return rc;
}

int local_handle_kill(struct runtime *rt, const cJSON *handle, int sig,
			     struct cp_error *err)
{
	pid_t pid;
	/* The sandbox's init passes the signal on to the service. */
	if (local_handle_pid(&pid, handle) < 0 || local_handle_alive(rt, handle, err) != 1)
		return 0;
	if (kill(pid, sig) < 0 && errno != ESRCH)
		return cp_error_errno(err, EXIT_USAGE, "signalling process %ld", (long)pid);
	return 0;
}

/* The number after `key` (e.g. "PPid:", "Uid:") in /proc/PID/status, or -1. */
static long proc_status_num(const char *status, const char *key)
{
	const char *at = status ? strstr(status, key) : NULL;
	return at ? strtol(at + strlen(key), NULL, 10) : -1;
}

int local_handle_top(struct runtime *rt, const cJSON *handle, cJSON **out,
			    struct cp_error *err)
{
	pid_t init;
	if (local_handle_pid(&init, handle) < 0 || local_handle_alive(rt, handle, err) != 1)
		return cp_error_set(err, EXIT_USAGE, "the service is not running");
	char path[64];
	struct stat want;
	snprintf(path, sizeof(path), "/proc/%ld/ns/pid", (long)init);
	if (stat(path, &want) < 0)
		return cp_error_errno(err, EXIT_USAGE, "reading %s", path);
	DIR *d = opendir("/proc");
	if (!d)
		return cp_error_errno(err, EXIT_USAGE, "reading /proc");
	cJSON *top = cJSON_CreateObject();
	cJSON *titles = cJSON_AddArrayToObject(top, "Titles");
	static const char *const cols[] = {"UID", "PID", "PPID", "CMD"};
	for (size_t i = 0; i < ARRAY_LEN(cols); i++)
		cJSON_AddItemToArray(titles, cJSON_CreateString(cols[i]));
	cJSON *procs = cJSON_AddArrayToObject(top, "Processes");
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		struct stat st;
		if (*end || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/ns/pid", pid);
		if (stat(path, &st) < 0 || st.st_ino != want.st_ino || st.st_dev != want.st_dev)
			continue;
		cleanup_free char *cmdline = NULL, *status = NULL;
		size_t len = 0;
		struct cp_error ignored = {0};
		char cpath[80], spath[80];
		snprintf(cpath, sizeof(cpath), "/proc/%ld/cmdline", pid);
		snprintf(spath, sizeof(spath), "/proc/%ld/status", pid);
		if (fs_read_file(&cmdline, &len, cpath, 1 << 16, &ignored) < 0 ||
		    fs_read_file(&status, NULL, spath, 1 << 16, &ignored) < 0)
			continue;
		for (size_t i = 0; i + 1 < len; i++)
			if (cmdline[i] == '\0')
				cmdline[i] = ' ';
		char num[3][24];
		snprintf(num[0], sizeof(num[0]), "%ld", proc_status_num(status, "Uid:"));
		snprintf(num[1], sizeof(num[1]), "%ld", pid);
		snprintf(num[2], sizeof(num[2]), "%ld", proc_status_num(status, "PPid:"));
		cJSON *row = cJSON_CreateArray();
		for (size_t i = 0; i < 3; i++)
			cJSON_AddItemToArray(row, cJSON_CreateString(num[i]));
		cJSON_AddItemToArray(row, cJSON_CreateString(len ? cmdline : ""));
		cJSON_AddItemToArray(procs, row);
	}
	closedir(d);
	*out = top;
	return 0;
}

