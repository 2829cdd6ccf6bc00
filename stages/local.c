/* The embedded local runtime: named volumes are directories under
 * <state_dir>/volumes/, and each stage runs as a process in its own
 * sandbox (sandbox.c) where volumes and bind mounts appear at the paths
 * they have under docker. This file turns a stage into a sandbox_config,
 * and tracks the sandbox's init as the task. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "../lib/defaults.h"
#include "local_internal.h"
#include "compose_rt.h"
#include "hostport.h"
#include "netns.h"
#include "runtime.h"
#include "sandbox.h"
#include "sandbox_overlay.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct runtime {
	const struct volume *volumes; /* the project's declared ones, lent */
	size_t nvolumes;
	char *dir;         /* the project directory */
	char *volumes_dir; /* <state_dir>/volumes */
	char *run_dir;     /* <state_dir>/run: mountpoints of sandbox roots */
	char *hosts;       /* the sandboxes' /etc/hosts */
	bool userns;       /* not root: sandboxes need a user namespace */
	bool use_netns;    /* the project has services: stages share a network */
	struct runtime_sink sink; /* the project's, for warnings and notices */
};

struct local_task {
	pid_t pid;          /* the sandbox's init, our child */
	bool reaped;
	int code;
	struct strvec envp; /* for exec inside the sandbox */
	char *working_dir;
	bool in_netns;      /* in the project's network namespace */
};


/* ---- volumes ------------------------------------------------------------- */

/* Docker's rule for volume names, which also keeps them inside volumes/. */
static bool valid_volume_name(const char *name)
{
	if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
		       (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (const char *c = name; *c; c++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *c))
			return false;
	return true;
}

static char *volume_path(const struct runtime *rt, const char *name, struct cp_error *err)
{
	if (!valid_volume_name(name)) {
		cp_error_set(err, EXIT_USAGE,
			     "invalid volume name \"%s\": use letters, digits, '_', '.' and '-', "
			     "starting with a letter or digit",
			     name ? name : "");
		return NULL;
	}
	return path_join(rt->volumes_dir, name);
}

static const struct volume *find_volume(const struct runtime *rt, const char *name)
{
	return runtime_volume_find(rt->volumes, rt->nvolumes, name);
}

static int ensure_volume_dir(struct runtime *rt, const char *name, const struct volume *v,
			     struct cp_error *err)
{
	cleanup_free char *path = volume_path(rt, name, err);
	if (!path)
		return -1;
	struct stat st;
	bool exists = lstat(path, &st) == 0;
	if (exists && S_ISDIR(st.st_mode))
		return 0;
	if (exists && S_ISLNK(st.st_mode))
		return cp_error_set(err, EXIT_USAGE,
				    "volume \"%s\": %s is a symlink; cpipe will not mount or write "
				    "through it: remove it and run again",
				    name, path);
	if (v && v->external)
		return cp_error_set(err, EXIT_USAGE,
				    "external volume \"%s\" not found: the local runtime keeps it "
				    "in %s; create that directory first",
				    name, path);
	return fs_mkdir_p(path, 0755, err);
}

static int local_volume_ensure(struct runtime *rt, const struct volume *v, struct cp_error *err)
{
	return ensure_volume_dir(rt, v->name, v, err);
}

static int cmp_info(const void *a, const void *b)
{
	return strcmp(((const struct volume_info *)a)->name, ((const struct volume_info *)b)->name);
}

static int local_volume_list(struct runtime *rt, struct volume_info **out, size_t *nout,
			     struct cp_error *err)
{
	struct volume_info *v = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < rt->nvolumes; i++) {
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			v = xrealloc(v, cap * sizeof(*v));
		}
		char *path = path_join(rt->volumes_dir, rt->volumes[i].name);
		v[n++] = (struct volume_info){.name = xstrdup(rt->volumes[i].name),
					      .mountpoint = path,
					      .size = fs_du(path),
					      .declared = true};
	}
	size_t ndeclared = n;
	DIR *d = opendir(rt->volumes_dir);
	if (!d && errno != ENOENT) {
		cp_error_errno(err, EXIT_USAGE, "listing %s", rt->volumes_dir);
		volume_info_free(v, n);
		return -1;
	}
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || find_volume(rt, de->d_name))
			continue;
		cleanup_free char *path = path_join(rt->volumes_dir, de->d_name);
		struct stat st;
		if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = (struct volume_info){.name = xstrdup(de->d_name),
					      .mountpoint = xstrdup(path),
					      .size = fs_du(path)};
	}
	if (d)
		closedir(d);
	if (n > ndeclared)
		qsort(v + ndeclared, n - ndeclared, sizeof(*v), cmp_info);
	*out = v;
	*nout = n;
	return 0;
}

static int local_volume_remove(struct runtime *rt, const char *name, struct cp_error *err)
{
	cleanup_free char *path = volume_path(rt, name, err);
	if (!path)
		return -1;
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return cp_error_set(err, EXIT_USAGE,
					    "no such volume \"%s\" (no directory %s)", name, path);
		return cp_error_errno(err, EXIT_USAGE, "volume \"%s\": %s", name, path);
	}
	return fs_rm_rf(path, err);
}

/* ---- open / close -------------------------------------------------------- */

static char *make_hosts(const struct runtime_project *proj)
{
	struct strbuf sb = STRBUF_INIT;
	char *host = NULL;
	struct cp_error ignored = {0};
	if (fs_read_file(&host, NULL, "/etc/hosts", 1 << 20, &ignored) == 0) {
		sb_adds(&sb, host);
		if (sb.len && sb.buf[sb.len - 1] != '\n')
			sb_addc(&sb, '\n');
		free(host);
	} else {
		sb_adds(&sb, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	}
	if (proj->nhostnames > 0) {
		/* All stages share one network namespace (or the host's). */
		sb_adds(&sb, "# cpipe: the pipeline's stages, as on a compose network\n127.0.0.1\t");
		for (size_t i = 0; i < proj->nhostnames; i++)
			sb_addf(&sb, "%s%s", i ? " " : "", proj->hostnames[i]);
		sb_addc(&sb, '\n');
	}
	return sb_detach(&sb);
}

static int local_open(struct runtime **out, const struct runtime_project *proj,
		      struct cp_error *err)
{
	bool userns = geteuid() != 0;
	if (sandbox_check(userns, err) < 0)
		return -1;
	struct runtime *rt = xcalloc(1, sizeof(*rt));
	rt->volumes = proj->volumes;
	rt->nvolumes = proj->nvolumes;
	rt->dir = xstrdup(proj->dir);
	rt->volumes_dir = path_join(proj->state_dir, "volumes");
	rt->run_dir = path_join(proj->state_dir, "run");
	sandbox_sweep_roots(rt->run_dir);
	rt->hosts = make_hosts(proj);
	rt->userns = userns;
	/* A network is for services: a pipeline of jobs alone talks through
	 * its volumes and keeps the host's network (and costs no pasta). */
	rt->use_netns = proj->network;
	rt->sink = proj->sink;
	*out = rt;
	return 0;
}

static void local_close(struct runtime *rt)
{
	if (!rt)
		return;
	netns_cleanup_if_idle(rt->run_dir);
	free(rt->dir);
	free(rt->volumes_dir);
	free(rt->run_dir);
	free(rt->hosts);
	free(rt);
}

/* ---- start --------------------------------------------------------------- */

static bool parse_id(const char *s, unsigned long *out)
{
	if (!*s)
		return false;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || errno || s[0] == '-' || v > 0x7fffffffUL)
		return false;
	*out = v;
	return true;
}

/* Resolves compose's user: ("uid", "uid:gid", "name", "name:group") against
 * the host's passwd and group files, which the sandbox shares. */
int local_resolve_user(struct ids *out, const struct task_desc *s, struct cp_error *err)
{
	uid_t me = geteuid();
	gid_t mygid = getegid();
	memset(out, 0, sizeof(*out));
	if (!s->user || !*s->user) {
		struct passwd *pw = getpwuid(me);
		out->uid = me;
		out->gid = mygid;
		out->home = xstrdup(pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
		return 0;
	}
	cleanup_free char *u = xstrdup(s->user);
	char *g = strchr(u, ':');
	if (g)
		*g++ = '\0';
	unsigned long id;
	struct passwd *pw;
	if (parse_id(u, &id)) {
		out->uid = (uid_t)id;
		pw = getpwuid(out->uid);
	} else {
		pw = getpwnam(u);
		if (!pw)
			return cp_error_set(err, EXIT_USAGE,
					    "stage \"%s\": user \"%s\" not found in /etc/passwd",
					    s->name, u);
		out->uid = pw->pw_uid;
	}
	if (g && *g) {
		if (parse_id(g, &id)) {
			out->gid = (gid_t)id;
		} else {
			struct group *gr = getgrnam(g);
			if (!gr)
				return cp_error_set(
				    err, EXIT_USAGE,
				    "stage \"%s\": group \"%s\" not found in /etc/group", s->name,
				    g);
			out->gid = gr->gr_gid;
		}
	} else {
		out->gid = pw ? pw->pw_gid : 0;
	}
	if (me != 0) {
		if (out->uid != me || out->gid != mygid)
			return cp_error_set(
			    err, EXIT_USAGE,
			    "stage \"%s\": user \"%s\" is uid %u gid %u, but cpipe "
			    "is not root, so the local runtime can run stages only "
			    "as uid %u gid %u (yours); remove user: or run cpipe as "
			    "root",
			    s->name, s->user, (unsigned)out->uid, (unsigned)out->gid, (unsigned)me,
			    (unsigned)mygid);
	} else {
		out->set = true;
		int n = 32;
		out->groups = xmalloc((size_t)n * sizeof(gid_t));
		if (!pw) {
			out->groups[0] = out->gid;
			out->ngroups = 1;
		} else {
			while (getgrouplist(pw->pw_name, out->gid, out->groups, &n) < 0)
				out->groups = xrealloc(out->groups, (size_t)n * sizeof(gid_t));
			out->ngroups = n;
		}
	}
	out->home = xstrdup(pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
	return 0;
}

void local_build_env(struct strvec *out, const struct kvvec *env, const char *home)
{
	bool has_path = false, has_home = false;
	for (size_t i = 0; env && i < env->n; i++) {
		const struct kv *kv = &env->v[i];
		if (!kv->value)
			continue;
		has_path |= strcmp(kv->key, "PATH") == 0;
		has_home |= strcmp(kv->key, "HOME") == 0;
		strvec_push_take(out, xasprintf("%s=%s", kv->key, kv->value));
	}
	if (!has_path)
		strvec_push(out, "PATH=" DEFAULT_PATH);
	if (!has_home)
		strvec_push_take(out, xasprintf("HOME=%s", home));
}

/* Fills `out` (sources and targets owned by `keep`) from the stage's
 * mounts, creating volume directories and missing bind sources. */
static int prepare_mounts(struct runtime *rt, const struct task_desc *s, struct sandbox_mount *out,
			  struct strvec *keep, struct cp_error *err)
{
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount *m = &s->mounts[i];
		char *target = m->target ? path_normalize(m->target) : NULL;
		if (!target || target[0] != '/' || strcmp(target, "/") == 0) {
			free(target);
			return cp_error_at(err, EXIT_USAGE, &m->mark,
					   "stage \"%s\": mount target \"%s\" must be an absolute "
					   "path below /",
					   s->name, m->target ? m->target : "");
		}
		strvec_push_take(keep, target);
		out[i] = (struct sandbox_mount){.type = m->type, .target = target,
						.read_only = m->read_only};
		if (m->type == MOUNT_TMPFS) {
			out[i].what = "tmpfs";
			continue;
		}
		char *source;
		if (m->type == MOUNT_VOLUME) {
			if (ensure_volume_dir(rt, m->source, find_volume(rt, m->source), err) < 0)
				return -1;
			source = path_join(rt->volumes_dir, m->source);
			/* As docker fills an empty named volume from the image. */
			bool filled;
			if (fs_fill_empty(source, m->fill, m->nfill, &filled, err) < 0) {
				free(source);
				return -1;
			}
		} else {
			source = xstrdup(m->source);
			struct stat st;
			/* Docker's short syntax creates a missing bind source. */
			if (stat(source, &st) < 0 && fs_mkdir_p(source, 0755, err) < 0) {
				free(source);
				return -1;
			}
		}
		strvec_push_take(keep, source);
		out[i].source = source;
		out[i].what = m->source;
	}
	return 0;
}

static bool no_network(const struct task_desc *s)
{
	return s->network_mode && strcmp(s->network_mode, "none") == 0;
}

static bool host_network(const struct runtime *rt, const struct task_desc *s)
{
	return no_network(s) || !rt->use_netns ||
	       (s->network_mode && strcmp(s->network_mode, "host") == 0);
}

/* A stage with network_mode: host runs on the host's network: a published
 * port cannot be remapped, so host and container port must agree. */
static int check_ports(const struct task_desc *s, struct cp_error *err)
{
	for (size_t i = 0; i < s->nports; i++) {
		const struct port *pt = &s->ports[i];
		if (pt->host_port && pt->host_port != pt->container_port)
			return cp_error_at(
			    err, EXIT_USAGE, &pt->mark,
			    "stage \"%s\": port %d:%d maps host port %d to %d, but with "
			    "network_mode: host the stage listens on the host's "
			    "network on %d; publish %d:%d or drop network_mode",
			    s->name, pt->host_port, pt->container_port, pt->host_port,
			    pt->container_port, pt->container_port, pt->container_port,
			    pt->container_port);
	}
	return 0;
}

/* A pseudo-terminal for a stage's stdout and stderr: *master for cpipe,
 * the slave in both out[1] and err[1]. Output processing is off, so the
 * stage's "\n" arrives as it would through a pipe. It is nobody's
 * controlling terminal: Ctrl-C and hangups reach the stage as before,
 * through cpipe. */
static int open_pty(int *master, int out[2], int err[2], const struct task_spec *ts,
		    struct cp_error *e)
{
	struct winsize ws = {.ws_row = ts->tty_rows ? ts->tty_rows : 24,
			     .ws_col = ts->tty_cols ? ts->tty_cols : 80};
	int slave;
	if (openpty(master, &slave, NULL, NULL, &ws) < 0)
		return cp_error_errno(e, EXIT_USAGE, "opening a pseudo-terminal");
	struct termios tio;
	if (tcgetattr(slave, &tio) == 0) {
		tio.c_oflag &= ~(tcflag_t)OPOST;
		tcsetattr(slave, TCSANOW, &tio);
	}
	fcntl(*master, F_SETFD, FD_CLOEXEC);
	fcntl(slave, F_SETFD, FD_CLOEXEC);
	out[1] = slave;
	if ((err[1] = fcntl(slave, F_DUPFD_CLOEXEC, 0)) < 0)
		return cp_error_errno(e, EXIT_USAGE, "duplicating a descriptor");
	return 0;
}

static int local_start(struct runtime *rt, const struct task_spec *ts, struct task **out,
		       struct cp_error *err)
{
	const struct task_desc *s = ts->desc;
	struct strvec argv = {0}, envp = {0}, keep = {0};
	struct ids ids = {0};
	struct sandbox_mount *mounts = xcalloc(s->nmounts + 1, sizeof(*mounts));
	struct netns net = {-1, -1, -1};
	char *root = NULL;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1};
	int rc = -1;

	for (size_t i = 0; i < s->entrypoint.n; i++)
		strvec_push(&argv, s->entrypoint.v[i]);
	for (size_t i = 0; i < s->command.n; i++)
		strvec_push(&argv, s->command.v[i]);
	if (argv.n == 0) {
		cp_error_set(err, EXIT_USAGE,
			     "stage %s has no command, and the local runtime does not run images; "
			     "add \"command: ...\" to it, or run it with --runtime docker",
			     s->name);
		goto out;
	}
	if (local_resolve_user(&ids, s, err) < 0)
		goto out;
	local_build_env(&envp, ts->env, ids.home);
	if (prepare_mounts(rt, s, mounts, &keep, err) < 0)
		goto out;
	char *wd = path_absolute(rt->dir, s->working_dir && *s->working_dir ? s->working_dir
									      : rt->dir);
	if (!wd) {
		cp_error_set(err, EXIT_USAGE,
			     "stage \"%s\": working_dir \"%s\" is not a valid path", s->name,
			     s->working_dir);
		goto out;
	}
	strvec_push_take(&keep, wd);

	if (fs_mkdir_p(rt->run_dir, 0755, err) < 0)
		goto out;
	root = xasprintf("%s/root.XXXXXX", rt->run_dir);
	if (!mkdtemp(root)) {
		cp_error_errno(err, EXIT_USAGE, "creating a directory in %s", rt->run_dir);
		free(root);
		root = NULL;
		goto out;
	}
	bool in_netns = !host_network(rt, s);
	if (!in_netns && s->service && check_ports(s, err) < 0)
		goto out;
	if (in_netns) {
		struct netns_port *np = xcalloc(s->nports + 1, sizeof(*np));
		for (size_t i = 0; i < s->nports; i++) {
			const struct port *pt = &s->ports[i];
			int width = pt->container_port_end - pt->container_port;
			np[i] = (struct netns_port){
				.host_ip = pt->host_ip,
				.host_port = pt->host_port ? pt->host_port : pt->container_port,
				.host_port_end = (pt->host_port ? pt->host_port : pt->container_port) + width,
				.container_port = pt->container_port,
				.udp = pt->protocol && strcmp(pt->protocol, "udp") == 0};
		}
		int jrc = netns_join(&net, rt->run_dir, rt->userns, np, s->nports, err);
		free(np);
		if (jrc < 0)
			goto out;
	}
	if (ts->detached) {
		outp[1] = open(ts->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (outp[1] < 0 || (errp[1] = dup(outp[1])) < 0) {
			cp_error_errno(err, EXIT_USAGE, "opening log %s", ts->log_path);
			goto out;
		}
	} else if (ts->tty) {
		if (open_pty(&outp[0], outp, errp, ts, err) < 0)
			goto out;
		if (!kvvec_get(ts->env, "TERM")) /* as Docker gives a container with a tty */
			strvec_push(&envp, "TERM=xterm");
	} else if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		cp_error_errno(err, EXIT_USAGE, "creating pipes");
		goto out;
	}

	struct sandbox_config cfg = {
		.root_dir = root,
		.mounts = mounts,
		.nmounts = s->nmounts,
		.hosts = rt->hosts,
		.argv = argv.v,
		.envp = envp.v,
		.working_dir = wd,
		.project_dir = rt->dir,
		.userns = rt->userns,
		.uid = ids.uid,
		.gid = ids.gid,
		.set_ids = ids.set,
		.groups = ids.groups,
		.ngroups = ids.set ? (size_t)ids.ngroups : 0,
		.out_fd = outp[1],
		.err_fd = errp[1],
		.detached = ts->detached,
		.sink = &rt->sink,
		.stage = s->name,
		.join_net = in_netns,
		.new_net = no_network(s),
		.net_fd = net.net_fd,
		.user_fd = net.user_fd,
	};
	struct local_compose lc;
	local_compose_apply(&lc, &cfg, s, mounts, s->nmounts, rt->userns, &rt->sink);
	pid_t pid;
	int src = sandbox_start(&pid, &cfg, err);
	local_compose_free(&lc);
	if (src < 0)
		goto out;

	struct task *t = xcalloc(1, sizeof(*t));
	struct local_task *lt = xcalloc(1, sizeof(*lt));
	t->desc = *s;
	t->out_fd = outp[0];
	t->err_fd = errp[0];
	lt->pid = pid;
	t->tty = ts->tty && !ts->detached;
	t->priv = lt;
	if (t->out_fd >= 0)
		fcntl(t->out_fd, F_SETFL, O_NONBLOCK);
	if (t->err_fd >= 0)
		fcntl(t->err_fd, F_SETFL, O_NONBLOCK);
	outp[0] = errp[0] = -1;
	strvec_copy(&lt->envp, &envp);
	lt->working_dir = xstrdup(wd);
	lt->in_netns = in_netns;
	*out = t;
	rc = 0;

out:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	netns_release(&net);
	/* After the pivot the sandbox's root no longer sits on this directory. */
	if (root)
		rmdir(root);
	free(root);
	free(mounts);
	free(ids.groups);
	free(ids.home);
	strvec_free(&argv);
	strvec_free(&envp);
	strvec_free(&keep);
	return rc;
}

/* ---- poll / kill / release ----------------------------------------------- */

static int local_poll(struct runtime *rt, struct task *t, int *exit_code, struct cp_error *err)
{
	(void)rt;
	struct local_task *lt = t->priv;
	if (!lt->reaped) {
		int status;
		pid_t w;
		while ((w = waitpid(lt->pid, &status, WNOHANG)) < 0 && errno == EINTR)
			;
		if (w < 0)
			return cp_error_errno(err, EXIT_USAGE, "waiting for stage \"%s\" (pid %ld)",
					      t->desc.name, (long)lt->pid);
		if (w == 0)
			return 0;
		lt->reaped = true;
		if (t->desc.limits.pids_limit)
			sandbox_cgroup_remove(lt->pid);
		lt->code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
	}
	*exit_code = lt->code;
	return 1;
}

static int local_kill(struct runtime *rt, struct task *t, int sig, struct cp_error *err)
{
	(void)rt;
	struct local_task *lt = t->priv;
	/* The init forwards the signal to the command's process group; SIGKILL
	 * kills the init and with it the whole PID namespace. */
	if (lt->reaped || kill(lt->pid, sig) == 0 || errno == ESRCH)
		return 0;
	return cp_error_errno(err, EXIT_USAGE, "signalling stage \"%s\" (pid %ld)", t->desc.name,
			      (long)lt->pid);
}

static void local_release(struct runtime *rt, struct task *t)
{
	(void)rt;
	if (!t)
		return;
	struct local_task *lt = t->priv;
	if (!lt->reaped && !t->keep_running) {
		kill(lt->pid, SIGKILL);
		while (waitpid(lt->pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (t->desc.limits.pids_limit)
			sandbox_cgroup_remove(lt->pid);
	}
	strvec_free(&lt->envp);
	free(lt->working_dir);
	if (t->out_fd >= 0)
		close(t->out_fd);
	if (t->err_fd >= 0)
		close(t->err_fd);
	free(lt);
	free(t);
}

/* ---- services ------------------------------------------------------------ */

static int open_ns(pid_t pid, const char *ns)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/ns/%s", (long)pid, ns);
	return open(path, O_RDONLY | O_CLOEXEC);
}

struct task_exec {
	pid_t pid;  /* the command, leader of its own process group */
	int pidfd;  /* readable once it exited */
};

/* Starts argv in the sandbox's user (when any), network (when the
 * project's) and mount namespaces, with the stage's environment and
 * working directory, in a process group of its own that a kill ends
 * whole. The caller polls a pidfd; the timeout is the caller's to keep. */
static int local_exec_start(struct runtime *rt, struct task *t, char *const *argv,
			    long timeout_ms, struct task_exec **out, int *fd_out,
			    struct cp_error *err)
{
	(void)timeout_ms;
	struct local_task *lt = t->priv;
	int userfd = rt->userns ? open_ns(lt->pid, "user") : -1;
	int netfd = lt->in_netns ? open_ns(lt->pid, "net") : -1;
	int mntfd = open_ns(lt->pid, "mnt");
	int fds[] = {userfd, netfd, mntfd};
	if (mntfd < 0 || (rt->userns && userfd < 0) || (lt->in_netns && netfd < 0)) {
		int saved = errno;
		for (size_t i = 0; i < ARRAY_LEN(fds); i++)
			if (fds[i] >= 0)
				close(fds[i]);
		errno = saved;
		return cp_error_errno(err, EXIT_USAGE, "entering the sandbox of stage \"%s\"",
				      t->desc.name);
	}
	pid_t pid = fork();
	if (pid < 0) {
		for (size_t i = 0; i < ARRAY_LEN(fds); i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return cp_error_errno(err, EXIT_USAGE, "fork");
	}
	if (pid == 0) {
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		setpgid(0, 0);
		if ((userfd >= 0 && setns(userfd, CLONE_NEWUSER) < 0) ||
		    (netfd >= 0 && setns(netfd, CLONE_NEWNET) < 0) || setns(mntfd, CLONE_NEWNS) < 0)
			_exit(126);
		if (chdir(lt->working_dir) < 0 && chdir("/") < 0)
			_exit(126);
		execvpe(argv[0], argv, lt->envp.v);
		_exit(127);
	}
	/* Also here: the group must exist before a kill signals it. */
	setpgid(pid, pid);
	for (size_t i = 0; i < ARRAY_LEN(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		int saved = errno;
		kill(-pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		errno = saved;
		return cp_error_errno(err, EXIT_USAGE, "pidfd_open for a health check");
	}
	fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	struct task_exec *x = xcalloc(1, sizeof(*x));
	x->pid = pid;
	x->pidfd = pidfd;
	*out = x;
	*fd_out = pidfd;
	return 0;
}

static int local_exec_end(struct runtime *rt, struct task_exec *x, bool kill_it, int *exit_code,
			  struct cp_error *err)
{
	(void)rt;
	int status = 0;
	pid_t w;
	while ((w = waitpid(x->pid, &status, WNOHANG)) < 0 && errno == EINTR)
		;
	if (w == 0 && !kill_it)
		return 0;
	int rc = 0;
	if (w == x->pid) {
		*exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	} else if (w == 0) {
		/* The whole group: a shell's children too, not only the shell. */
		kill(-x->pid, SIGKILL);
		while (waitpid(x->pid, NULL, 0) < 0 && errno == EINTR)
			;
		*exit_code = -1;
	} else {
		rc = cp_error_errno(err, EXIT_USAGE, "waiting for a health check");
	}
	close(x->pidfd);
	free(x);
	return rc < 0 ? -1 : 1;
}

static cJSON *local_task_handle(struct runtime *rt, struct task *t)
{
	(void)rt;
	const struct local_task *lt = t->priv;
	cJSON *h = cJSON_CreateObject();
	cJSON_AddNumberToObject(h, "pid", lt->pid);
	cJSON_AddNumberToObject(h, "starttime", (double)proc_starttime(lt->pid, NULL));
	return h;
}

int local_handle_pid(pid_t *pid, const cJSON *handle)
{
	const cJSON *p = cJSON_GetObjectItem(handle, "pid");
	if (!cJSON_IsNumber(p) || p->valuedouble < 2)
		return -1;
	*pid = (pid_t)p->valuedouble;
	return 0;
}

int local_handle_alive(struct runtime *rt, const cJSON *handle, struct cp_error *err)
{
	(void)rt;
	(void)err;
	pid_t pid;
	if (local_handle_pid(&pid, handle) < 0)
		return 0;
	char state = 0;
	unsigned long long st = proc_starttime(pid, &state);
	const cJSON *want = cJSON_GetObjectItem(handle, "starttime");
	if (!st || state == 'Z' || !cJSON_IsNumber(want) || (unsigned long long)want->valuedouble != st)
		return 0;
	return 1;
}

static int local_handle_stop(struct runtime *rt, const cJSON *handle, long grace_ms,
			     struct cp_error *err)
{
	pid_t pid;
	if (local_handle_pid(&pid, handle) < 0 || local_handle_alive(rt, handle, err) != 1)
		return 0;
	/* The init forwards SIGTERM to the service; SIGKILL to the init ends
	 * the whole PID namespace. A zombie left for our parent counts as gone. */
	kill(pid, SIGTERM);
	long long deadline = now_ms() + (grace_ms > 0 ? grace_ms : CP_STOP_GRACE_MS);
	while (local_handle_alive(rt, handle, err) == 1 && now_ms() < deadline) {
		waitpid(pid, NULL, WNOHANG);
		usleep(10000);
	}
	if (local_handle_alive(rt, handle, err) == 1) {
		kill(pid, SIGKILL);
		deadline = now_ms() + CP_KILL_WAIT_MS;
		while (local_handle_alive(rt, handle, err) == 1 && now_ms() < deadline) {
			waitpid(pid, NULL, WNOHANG);
			usleep(10000);
		}
	}
	if (local_handle_alive(rt, handle, err) == 1)
		return cp_error_set(err, EXIT_USAGE, "process %ld does not stop", (long)pid);
	sandbox_cgroup_remove(pid);
	return 0;
}

const char *local_project_dir(const struct runtime *rt)
{
	return rt->dir;
}

static int local_volume_host_path(struct runtime *rt, const char *volume, char **out,
				  struct cp_error *err)
{
	char *path = volume_path(rt, volume, err);
	if (!path)
		return -1;
	*out = path;
	return 0;
}

/* Published ports: the host side of `container_port` (the same port when
 * the spec gives none). */
static int local_host_port(struct runtime *rt, struct task *t, int container_port,
			   const char *protocol)
{
	(void)rt;
	const struct task_desc *s = &t->desc;
	for (size_t i = 0; i < s->nports; i++) {
		const struct port *pt = &s->ports[i];
		const char *proto = pt->protocol ? pt->protocol : "tcp";
		if (strcmp(proto, protocol ? protocol : "tcp") != 0 ||
		    container_port < pt->container_port || container_port > pt->container_port_end)
			continue;
		return pt->host_port ? pt->host_port + (container_port - pt->container_port)
				     : container_port;
	}
	return 0;
}

/* Taken unless free on the host or held by the project's own forwarder
 * (kept between runs). */
static int local_port_in_use(struct runtime *rt, const char *host_ip, int port,
			     const char *protocol, char **who)
{
	*who = NULL;
	if (!hostport_in_use(host_ip, port, protocol, who))
		return 0;
	if (!netns_forwards(rt->run_dir, host_ip, port, protocol && strcmp(protocol, "udp") == 0))
		return 1;
	free(*who);
	*who = NULL;
	return 0;
}

const struct runtime_ops runtime_local = {
	.name = "local",
	.caps = {.detached = true, .exec = true, .attach = true, .host_volumes = true,
		 .port_check = true, .top = true},
	.open = local_open,
	.close = local_close,
	.volume_ensure = local_volume_ensure,
	.volume_list = local_volume_list,
	.volume_remove = local_volume_remove,
	.start = local_start,
	.poll = local_poll,
	.kill = local_kill,
	.release = local_release,
	.volume_host_path = local_volume_host_path,
	.exec_start = local_exec_start,
	.exec_end = local_exec_end,
	.task_handle = local_task_handle,
	.handle_alive = local_handle_alive,
	.handle_stop = local_handle_stop,
	.handle_exec = local_handle_exec,
	.handle_kill = local_handle_kill,
	.handle_top = local_handle_top,
	.host_port = local_host_port,
	.port_in_use = local_port_in_use,
};
