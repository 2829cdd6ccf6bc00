/* The local runtime's meaning for a stage's compose keys of resources,
 * security and lifecycle: most become members of the sandbox_config that
 * sandbox_compose.c applies; what Linux does not give a sandbox is warned
 * about, naming the key, where it is written and what runs instead. */
#include "compose_rt.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../lib/linux_names.h"

void compose_warn(const struct runtime_sink *sink, const struct task_desc *s,
		  const struct cp_mark *mark, const char *key, const char *fmt, ...)
{
	const struct cp_mark *m = mark && mark->file ? mark : &s->mark;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m->file)
		runtime_note(sink, RUNTIME_WARNING, s->name, "%s:%d:%d: stage \"%s\": %s: %s",
			     m->file, m->line, m->col, s->name, key, msg);
	else
		runtime_note(sink, RUNTIME_WARNING, s->name, "stage \"%s\": %s: %s", s->name, key,
			     msg);
}

void compose_warn_common(const struct runtime_sink *sink, const struct task_desc *s)
{
	const struct stage_lifecycle *lc = &s->lifecycle;
	if (lc->has_replicas && lc->replicas != 1)
		compose_warn(sink, s, &lc->marks[CM_REPLICAS], "deploy.replicas",
			     "%ld asked for; cpipe runs one instance of %s", lc->replicas,
			     s->service ? "a service" : "a job, once");
	if (!s->service && lc->restart != RESTART_NO)
		compose_warn(sink, s, &lc->marks[CM_RESTART], "restart",
			     "applies to services; \"%s\" is a job, which cpipe runs once",
			     s->name);
}

/* "linux/amd64" for this machine. */
static void host_platform(char *buf, size_t n)
{
	struct utsname u;
	const char *arch = "unknown";
	if (uname(&u) == 0) {
		arch = u.machine;
		if (!strcmp(arch, "x86_64"))
			arch = "amd64";
		else if (!strcmp(arch, "aarch64"))
			arch = "arm64";
		else if (!strcmp(arch, "i686") || !strcmp(arch, "i386"))
			arch = "386";
		else if (str_has_prefix(arch, "armv7"))
			arch = "arm";
	}
	snprintf(buf, n, "linux/%s", arch);
}

static void warn_platform(const struct runtime_sink *sink, const struct task_desc *s)
{
	const char *want = s->security.platform;
	if (!want)
		return;
	char host[128];
	host_platform(host, sizeof(host));
	size_t n = strlen(host);
	if (!strncmp(want, host, n) && (want[n] == '\0' || want[n] == '/'))
		return;
	compose_warn(sink, s, &s->lifecycle.marks[CM_PLATFORM], "platform",
		     "\"%s\" is not this host's (%s); the local runtime runs the host's programs "
		     "natively, without emulation",
		     want, host);
}

static void warn_gpus(const struct runtime_sink *sink, const struct task_desc *s)
{
	if (!s->gpus.n)
		return;
	if (access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0 ||
	    access("/dev/dri", F_OK) == 0)
		return; /* the sandbox shares the host's /dev: the GPUs are there */
	compose_warn(sink, s, &s->lifecycle.marks[CM_GPUS], s->security.runtime ? "runtime" : "gpus",
		     "the stage asks for a GPU (%s) but this host has none (no /dev/nvidia0, "
		     "/dev/nvidiactl or /dev/dri); it runs on the CPU",
		     s->gpus.v[0]);
}

static void security(const struct runtime_sink *sink, struct sandbox_config *cfg,
		     const struct task_desc *s, bool userns)
{
	const struct stage_security *sec = &s->security;
	for (size_t i = 0; i < sec->cap_drop.n; i++) {
		int cap = linux_cap_from_name(sec->cap_drop.v[i]);
		cfg->cap_drop |= cap < 0 ? ~0ULL >> (63 - linux_cap_last()) : 1ULL << cap;
	}
	for (size_t i = 0; i < sec->cap_add.n; i++) {
		int cap = linux_cap_from_name(sec->cap_add.v[i]);
		bool all = cap < 0;
		if (all || !(cfg->cap_drop & (1ULL << cap)))
			cfg->cap_drop &= all ? 0 : ~(1ULL << cap);
		if (!all && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
			compose_warn(sink, s, &s->lifecycle.marks[CM_CAPS], "cap_add",
				     "CAP_%s is not in cpipe's own bounding set, so the stage cannot "
				     "have it; it runs without",
				     sec->cap_add.v[i]);
		else if (userns || (s->user && strcmp(s->user, "0") && strcmp(s->user, "root") &&
				    !str_has_prefix(s->user, "0:") && !str_has_prefix(s->user, "root:")))
			compose_warn(sink, s, &s->lifecycle.marks[CM_CAPS], "cap_add",
				     "the local runtime gives capabilities to a root stage only; "
				     "this one runs as %s without CAP_%s",
				     userns ? "your user" : s->user, sec->cap_add.v[i]);
	}
	cfg->read_only = sec->read_only;
	if (sec->has_init && !sec->init)
		compose_warn(sink, s, &s->lifecycle.marks[CM_INIT], "init",
			     "false: the local runtime always runs its own init as PID 1 of the "
			     "sandbox; the command runs as its child");
	if (sec->ipc && !strcmp(sec->ipc, "host"))
		return;
	if (sec->ipc && strcmp(sec->ipc, "private") && strcmp(sec->ipc, "shareable") &&
	    strcmp(sec->ipc, "none"))
		compose_warn(sink, s, &s->lifecycle.marks[CM_IPC], "ipc",
			     "\"%s\": the local runtime cannot join another's IPC namespace; the "
			     "stage gets a private one",
			     sec->ipc);
	cfg->new_ipc = sec->ipc != NULL;
}

void local_compose_apply(struct local_compose *lc, struct sandbox_config *cfg,
			 const struct task_desc *s, const struct sandbox_mount *base, size_t nbase,
			 bool userns, const struct runtime_sink *sink)
{
	const struct stage_limits *l = &s->limits;
	const struct stage_security *sec = &s->security;
	memset(lc, 0, sizeof(*lc));
	compose_warn_common(sink, s);
	warn_platform(sink, s);
	warn_gpus(sink, s);
	security(sink, cfg, s, userns);
	cfg->ulimits = l->ulimits;
	cfg->nulimits = l->nulimits;
	cfg->pids_limit = l->pids_limit;
	if (l->pids_limit && userns)
		compose_warn(sink, s, &s->lifecycle.marks[CM_PIDS], "pids_limit",
			     "a pids cgroup needs root; the stage runs without a process limit");
	cfg->stop_signal = s->lifecycle.stop_signal;
	if (s->service) {
		cfg->restart = s->lifecycle.restart;
		cfg->restart_max = s->lifecycle.restart_max;
	}

	lc->mounts = xcalloc(nbase + l->ntmpfs + sec->nsecrets + 2, sizeof(*lc->mounts));
	memcpy(lc->mounts, base, nbase * sizeof(*base));
	lc->nmounts = nbase;
	for (size_t i = 0; i < l->ntmpfs; i++)
		lc->mounts[lc->nmounts++] = (struct sandbox_mount){
			.type = MOUNT_TMPFS, .what = "tmpfs", .target = l->tmpfs[i].target,
			.options = l->tmpfs[i].options};
	if (l->shm_size || cfg->new_ipc) {
		/* Docker's default size for a private /dev/shm: 64 MiB. */
		char *opts = xasprintf("size=%lld", l->shm_size ? l->shm_size : 64LL << 20);
		strvec_push_take(&lc->keep, opts);
		lc->mounts[lc->nmounts++] = (struct sandbox_mount){
			.type = MOUNT_TMPFS, .what = "shm_size", .target = "/dev/shm", .options = opts};
	}
	lc->files = xcalloc(sec->nsecrets + 1, sizeof(*lc->files));
	for (size_t i = 0; i < sec->nsecrets; i++) {
		const struct stage_secret *x = &sec->secrets[i];
		if (x->source)
			lc->mounts[lc->nmounts++] = (struct sandbox_mount){
				.type = MOUNT_BIND, .what = x->name, .source = x->source,
				.target = x->target, .read_only = true};
		else
			lc->files[lc->nfiles++] = (struct sandbox_file){
				.target = x->target, .content = x->content ? x->content : "",
				.mode = 0444};
	}
	cfg->mounts = lc->mounts;
	cfg->nmounts = lc->nmounts;
	cfg->files = lc->files;
	cfg->nfiles = lc->nfiles;
}

void local_compose_free(struct local_compose *lc)
{
	free(lc->mounts);
	free(lc->files);
	strvec_free(&lc->keep);
}
