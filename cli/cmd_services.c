/* Detached services: up, ps, logs, down. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "../pipeline/task.h"
#include "../pipeline/health.h"
#include "../pipeline/services.h"
#include "cli.h"
#include "opts.h"
#include "svc.h"

int svc_open(struct svc_ctx *x, struct cli *c, bool lock, struct cp_error *err)
{
	memset(x, 0, sizeof(*x));
	x->lock_fd = -1;
	if (cli_load(&x->p, c, err) < 0 || cli_runtime(&x->ops, c, x->p, err) < 0 ||
	    !(x->state = cli_state_dir(x->p, true, err)))
		return -1;
	if (lock) {
		cleanup_free char *path = path_join(x->state, "lock");
		if (fs_lock(&x->lock_fd, path, "running", err) < 0)
			return -1;
	}
	return task_runtime_open(x->ops, &x->rt, x->p, x->state, err);
}

void svc_close(struct svc_ctx *x)
{
	if (x->rt)
		x->ops->close(x->rt);
	if (x->lock_fd >= 0)
		close(x->lock_fd);
	pipeline_free(x->p);
	free(x->state);
}

/* The runtime that started a service (its state file says), so ps/down
 * work whatever --runtime says now. */
const struct runtime_ops *svc_state_ops(struct svc_ctx *x, const cJSON *st,
					struct runtime **rt_out, struct runtime **owned,
					struct cp_error *err)
{
	const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(st, "runtime"));
	const struct runtime_ops *ops = name ? runtime_find(name) : NULL;
	if (!ops) {
		cp_error_set(err, EXIT_USAGE, "unknown runtime \"%s\" in a service state file",
			     name ? name : "");
		return NULL;
	}
	*owned = NULL;
	if (ops == x->ops) {
		*rt_out = x->rt;
		return ops;
	}
	if (task_runtime_open(ops, owned, x->p, x->state, err) < 0)
		return NULL;
	*rt_out = *owned;
	return ops;
}

bool svc_alive(struct svc_ctx *x, const cJSON *st)
{
	struct cp_error e = {0};
	struct runtime *rt = NULL, *owned = NULL;
	const struct runtime_ops *ops = svc_state_ops(x, st, &rt, &owned, &e);
	int rc = ops && ops->caps.detached
			 ? ops->handle_alive(rt, cJSON_GetObjectItem(st, "handle"), &e)
			 : 0;
	if (owned)
		ops->close(owned);
	return rc == 1;
}

static void format_ports(char *buf, size_t n, const cJSON *ports)
{
	buf[0] = '\0';
	size_t used = 0;
	for (const cJSON *pt = ports ? ports->child : NULL; pt; pt = pt->next) {
		int w = snprintf(buf + used, n - used, "%s%s:%d->%d/%s", used ? ", " : "",
				 cJSON_GetStringValue(cJSON_GetObjectItem(pt, "host_ip")),
				 (int)cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "host_port")),
				 (int)cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "container_port")),
				 cJSON_GetStringValue(cJSON_GetObjectItem(pt, "protocol")));
		if (w < 0 || (size_t)w >= n - used)
			break;
		used += (size_t)w;
	}
}

static void format_uptime(char *buf, size_t n, long long secs)
{
	if (secs < 60)
		snprintf(buf, n, "%llds", secs);
	else if (secs < 3600)
		snprintf(buf, n, "%lldm%02llds", secs / 60, secs % 60);
	else
		snprintf(buf, n, "%lldh%02lldm", secs / 3600, secs / 60 % 60);
}

/* A service that was healthy is probed again: a hung server shows. A
 * runtime that probes its tasks itself (kubernetes: the readiness probe)
 * was asked already: its URL need not be reachable from here. */
static bool service_healthy_now(struct svc_ctx *x, const char *name, const cJSON *st)
{
	const char *rname = cJSON_GetStringValue(cJSON_GetObjectItem(st, "runtime"));
	const struct runtime_ops *ops = rname ? runtime_find(rname) : NULL;
	if (ops && ops->caps.task_probes)
		return true;
	for (size_t i = 0; i < x->p->nstages; i++) {
		if (strcmp(x->p->stages[i].name, name) != 0)
			continue;
		char *why = NULL;
		struct cp_error e = {0};
		int rc = health_probe_state(&why, x->p->stages[i].healthcheck,
					    cJSON_GetObjectItem(st, "ports"), &e);
		free(why);
		return rc == 0;
	}
	return true;
}

int cmd_ps(struct cli *c, int argc, char **argv)
{
	int rc = cli_parse_common(c, argc, argv);
	if (rc >= 0)
		return rc;
	rc = EXIT_OK;
	struct cp_error err = {0};
	struct svc_ctx x;
	struct strvec names = {0};
	cJSON *arr = cJSON_CreateArray();
	if (svc_open(&x, c, false, &err) < 0 || service_state_names(&names, x.state, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (!c->json && !c->quiet)
		printf("%-12s %-8s %-10s %-28s %-8s %s\n", "STAGE", "STATE", "HEALTH", "PORTS",
		       "UPTIME", "RUN");
	for (size_t i = 0; i < names.n; i++) {
		cJSON *st = NULL;
		if (service_state_load(&st, x.state, names.v[i], &err) != 0)
			continue;
		bool up = svc_alive(&x, st);
		bool healthy = cJSON_IsTrue(cJSON_GetObjectItem(st, "healthy"));
		const char *health = !up ? "-" : healthy ? "healthy" : "starting";
		if (up && healthy && !service_healthy_now(&x, names.v[i], st))
			health = "unhealthy";
		long long started = (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(st, "started_ms"));
		long long secs = up ? (realtime_ms() - started) / 1000 : 0;
		const char *run = cJSON_GetStringValue(cJSON_GetObjectItem(st, "run"));
		if (c->json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "stage", names.v[i]);
			cJSON_AddStringToObject(o, "state", up ? "running" : "exited");
			cJSON_AddStringToObject(o, "health", health);
			cJSON_AddItemToObject(o, "ports",
					      cJSON_Duplicate(cJSON_GetObjectItem(st, "ports"), true));
			cJSON_AddNumberToObject(o, "uptime_s", (double)secs);
			cJSON_AddStringToObject(o, "run", run ? run : "");
			cJSON_AddStringToObject(o, "log",
						cJSON_GetStringValue(cJSON_GetObjectItem(st, "log")));
			cJSON_AddItemToArray(arr, o);
		} else if (!c->quiet) {
			char ports[256], uptime[32] = "-";
			format_ports(ports, sizeof(ports), cJSON_GetObjectItem(st, "ports"));
			if (up)
				format_uptime(uptime, sizeof(uptime), secs);
			printf("%-12s %-8s %-10s %-28s %-8s %s\n", names.v[i], up ? "running" : "exited",
			       health, *ports ? ports : "-", uptime, run ? run : "");
		}
		cJSON_Delete(st);
	}
	if (c->json) {
		cli_print_json(arr);
	}
out:
	cJSON_Delete(arr);
	strvec_free(&names);
	svc_close(&x);
	return rc;
}

int cmd_down(struct cli *c, int argc, char **argv)
{
	bool volumes = false;
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) == 'v')
		volumes = true;
	if (opt != -1)
		return cli_opt_exit(opt);
	struct cp_error err = {0};
	struct svc_ctx x;
	struct strvec names = {0};
	struct volume_info *vols = NULL;
	size_t nvols = 0;
	int rc = EXIT_OK;
	if (svc_open(&x, c, true, &err) < 0 || service_state_names(&names, x.state, &err) < 0)
		goto fail;
	for (size_t i = 0; i < names.n; i++) {
		cJSON *st = NULL;
		if (service_state_load(&st, x.state, names.v[i], &err) != 0)
			continue;
		struct runtime *rt = NULL, *owned = NULL;
		const struct runtime_ops *ops = svc_state_ops(&x, st, &rt, &owned, &err);
		const struct stage *s = pipeline_stage(x.p, names.v[i]);
		long grace = s ? s->stop_grace_ms : CP_STOP_GRACE_MS;
		int stopped = ops && ops->caps.detached
				      ? ops->handle_stop(rt, cJSON_GetObjectItem(st, "handle"), grace, &err)
				      : -1;
		if (owned)
			ops->close(owned);
		cJSON_Delete(st);
		if (stopped < 0)
			goto fail;
		service_state_remove(x.state, names.v[i]);
		if (!c->quiet)
			printf("stopped %s\n", names.v[i]);
	}
	if (x.ops->caps.down && x.ops->down(x.rt, &err) < 0)
		goto fail;
	if (volumes) {
		if (x.ops->volume_list(x.rt, &vols, &nvols, &err) < 0)
			goto fail;
		for (size_t i = 0; i < nvols; i++) {
			if (!vols[i].declared)
				continue;
			if (x.ops->volume_remove(x.rt, vols[i].name, &err) < 0)
				goto fail;
			if (!c->quiet)
				printf("removed volume %s\n", vols[i].name);
		}
	}
	goto out;
fail:
	rc = cli_fail(&err);
out:
	volume_info_free(vols, nvols);
	strvec_free(&names);
	svc_close(&x);
	return rc;
}

static volatile sig_atomic_t stop_following;

static void on_stop(int sig)
{
	(void)sig;
	stop_following = 1;
}

/* Lines of one stream to stdout, each prefixed with the stage's name. */
struct line_out {
	const char *prefix;
	int width;
	struct strbuf line; /* the unterminated rest */
	const struct redactor *mask; /* the spec's secrets, masked as exec.c does */
};

static void line_print(struct line_out *lo)
{
	cleanup_free char *text = redactor_text(lo->mask, sb_str(&lo->line));
	printf("%-*s | %s\n", lo->width, lo->prefix, text);
	sb_reset(&lo->line);
}

static void line_out_feed(struct line_out *lo, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			sb_addc(&lo->line, buf[i]);
			continue;
		}
		line_print(lo);
	}
	fflush(stdout);
}

static void line_out_end(struct line_out *lo)
{
	if (lo->line.len)
		line_print(lo);
	sb_free(&lo->line);
	fflush(stdout);
}

/* Copies a log to stdout, prefixed; with `follow`, keeps reading until
 * `st` (a service) has exited or Ctrl-C. */
static int print_log(struct svc_ctx *x, const char *path, const char *prefix, int width,
		     bool follow, const cJSON *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct line_out lo = {.prefix = prefix, .width = width, .line = STRBUF_INIT,
			      .mask = &x->p->secrets};
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR && !stop_following)
			continue;
		if (n > 0) {
			line_out_feed(&lo, buf, (size_t)n);
			continue;
		}
		if (!follow || stop_following || (st && !svc_alive(x, st)))
			break;
		usleep(100000);
	}
	line_out_end(&lo);
	close(fd);
	return 0;
}

static void runtime_log_sink(void *ud, int stream, const char *data, size_t n)
{
	struct line_out *lo = ud;
	line_out_feed(&lo[stream == 2 ? 1 : 0], data, n);
}

/* A service's output as the runtime that runs it keeps it (what it wrote
 * after the cpipe that started it exited included), prefixed; with
 * `follow`, until it ends or Ctrl-C. 1 when that runtime keeps none or
 * no longer has the service: its log file is all there is. */
static int print_runtime_log(struct svc_ctx *x, const cJSON *st, const char *prefix, bool follow,
			     struct cp_error *err)
{
	struct runtime *rt = NULL, *owned = NULL;
	const struct runtime_ops *ops = svc_state_ops(x, st, &rt, &owned, err);
	if (!ops)
		return -1;
	int rc = 1;
	if (ops->caps.logs) {
		struct line_out lo[2] = {
			{.prefix = prefix, .width = (int)strlen(prefix), .line = STRBUF_INIT,
			 .mask = &x->p->secrets},
			{.prefix = prefix, .width = (int)strlen(prefix), .line = STRBUF_INIT,
			 .mask = &x->p->secrets},
		};
		rc = ops->handle_logs(rt, cJSON_GetObjectItem(st, "handle"), follow, runtime_log_sink,
				      lo, &stop_following, err);
		line_out_end(&lo[0]);
		line_out_end(&lo[1]);
	}
	if (owned)
		ops->close(owned);
	return rc;
}

/* Whether run `id` is still going: its record says "running" and the
 * cpipe that wrote it still holds the project lock. */
static bool run_live(struct svc_ctx *x, const char *id, cJSON **rec_out)
{
	struct cp_error e = {0};
	cJSON *rec = NULL;
	if (record_load(&rec, x->state, id, &e) < 0) {
		cp_error_clear(&e);
		return false;
	}
	const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "status"));
	long pid = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(rec, "pid"));
	bool live = false;
	cleanup_free char *lock = path_join(x->state, "lock");
	int fd = status && strcmp(status, "running") == 0 && pid > 0
			 ? open(lock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
			 : -1;
	if (fd >= 0) {
		struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
		live = fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK && who.l_pid == pid;
		close(fd);
	}
	if (rec_out)
		*rec_out = rec;
	else
		cJSON_Delete(rec);
	return live;
}

/* Whether run record `rec` has an entry for stage `name`: it has ended. */
static bool record_has_stage(const cJSON *rec, const char *name)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItem(rec, "stages"))
	{
		const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
		if (n && strcmp(n, name) == 0)
			return true;
	}
	return false;
}

/* One log `logs -f` follows: a job of the running run (done when the
 * record lists it or the run ends) or a service (done when it exits). */
struct follow_src {
	const char *name;
	char *path;
	cJSON *st; /* a service's state; NULL for a job */
	int fd;
	bool done;
	struct line_out lo;
};

/* Reads what `f` has now; opens its log once the stage has created it. */
static void follow_drain(struct follow_src *f)
{
	if (f->fd < 0 && (f->fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	char buf[65536];
	ssize_t n;
	while ((n = read(f->fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR && !stop_following))
		if (n > 0)
			line_out_feed(&f->lo, buf, (size_t)n);
}

/* Follows the logs `srcs` of run `run` (NULL: services only) until every
 * one has ended or Ctrl-C: whether a source ended is looked at before its
 * last read, so no line written before the end is lost. */
static void follow_logs(struct svc_ctx *x, const char *run, struct follow_src *srcs, size_t n)
{
	for (;;) {
		cJSON *rec = NULL;
		bool live = run && run_live(x, run, &rec);
		size_t left = 0;
		for (size_t i = 0; i < n; i++) {
			struct follow_src *f = &srcs[i];
			if (f->done)
				continue;
			bool ended = stop_following || (f->st ? !svc_alive(x, f->st)
							      : !live || record_has_stage(rec, f->name));
			follow_drain(f);
			if (ended)
				f->done = true;
			else
				left++;
		}
		cJSON_Delete(rec);
		if (!left)
			break;
		usleep(100000);
	}
	for (size_t i = 0; i < n; i++) {
		line_out_end(&srcs[i].lo);
		if (srcs[i].fd >= 0)
			close(srcs[i].fd);
		free(srcs[i].path);
		cJSON_Delete(srcs[i].st);
	}
}

/* `logs -f [STAGE]` while something runs: the stage (or every stage) of the
 * running run and the running services. 1 when nothing named is running. */
static int follow_running(struct svc_ctx *x, const char *stage, int width)
{
	cleanup_free char *run = NULL;
	struct cp_error e = {0};
	if (record_resolve(&run, x->state, "latest", &e) < 0)
		cp_error_clear(&e);
	bool live = run && run_live(x, run, NULL);
	struct follow_src *srcs = xcalloc(x->p->nstages, sizeof(*srcs));
	size_t n = 0;
	for (size_t i = 0; i < x->p->nstages; i++) {
		const char *name = x->p->stages[i].name;
		if (stage && strcmp(stage, name) != 0)
			continue;
		cJSON *st = NULL;
		const char *path = NULL;
		if (service_state_load(&st, x->state, name, &e) == 0 && svc_alive(x, st))
			path = cJSON_GetStringValue(cJSON_GetObjectItem(st, "log"));
		cp_error_clear(&e);
		if (!path) {
			cJSON_Delete(st);
			st = NULL;
		}
		if (!path && !live)
			continue;
		srcs[n++] = (struct follow_src){
			.name = name,
			.path = path ? xstrdup(path) : xasprintf("%s/logs/%s/%s.log", x->state, run, name),
			.st = st,
			.fd = -1,
			.lo = {.prefix = name, .width = width, .line = STRBUF_INIT,
			       .mask = &x->p->secrets},
		};
	}
	if (n)
		follow_logs(x, live ? run : NULL, srcs, n);
	free(srcs);
	return n ? 0 : 1;
}

int cmd_logs(struct cli *c, int argc, char **argv)
{
	bool follow = false;
	const char *run_arg = NULL;
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0) {
		if (opt == 'f')
			follow = true;
		else
			run_arg = optarg;
	}
	if (opt != -1)
		return cli_opt_exit(opt);
	if (argc - optind > 1)
		return cli_usage_error(argv[0]);
	const char *stage = optind < argc ? argv[optind] : NULL;
	struct cp_error err = {0};
	struct svc_ctx x;
	cleanup_free char *run = NULL;
	int rc = EXIT_OK;
	if (svc_open(&x, c, false, &err) < 0)
		goto fail;
	if (stage && !pipeline_stage(x.p, stage)) {
		pipeline_unknown_stage(x.p, stage, &err);
		goto fail;
	}
	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* A running service's log comes from its state file, unless a run is named. */
	cJSON *st = NULL;
	if (stage && !run_arg && service_state_load(&st, x.state, stage, &err) == 0) {
		int lrc = print_runtime_log(&x, st, stage, follow, &err);
		const char *path = cJSON_GetStringValue(cJSON_GetObjectItem(st, "log"));
		if (lrc < 0) {
			fprintf(stderr, "cpipe: %s; showing the log cpipe kept\n", err.msg);
			cp_error_clear(&err);
		}
		if (lrc != 0 && path)
			print_log(&x, path, stage, (int)strlen(stage), follow, st);
		cJSON_Delete(st);
		goto out;
	}
	int width = 0;
	for (size_t i = 0; i < x.p->nstages; i++)
		if ((int)strlen(x.p->stages[i].name) > width)
			width = (int)strlen(x.p->stages[i].name);
	if (follow && !run_arg && follow_running(&x, stage, stage ? (int)strlen(stage) : width) == 0)
		goto out;
	if (record_resolve(&run, x.state, run_arg ? run_arg : "latest", &err) < 0)
		goto fail;
	bool any = false;
	for (size_t i = 0; i < x.p->nstages; i++) {
		const char *name = x.p->stages[i].name;
		if (stage && strcmp(stage, name) != 0)
			continue;
		cleanup_free char *path = xasprintf("%s/logs/%s/%s.log", x.state, run, name);
		if (print_log(&x, path, name, stage ? (int)strlen(name) : width, false, NULL) == 0)
			any = true;
	}
	if (!any) {
		cp_error_set(&err, EXIT_USAGE, "run %s has no log%s%s", run, stage ? " for " : "s",
			     stage ? stage : "");
		goto fail;
	}
	goto out;
fail:
	rc = cli_fail(&err);
out:
	svc_close(&x);
	return rc;
}
