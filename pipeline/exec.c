#include "exec.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "exec_internal.h"
#include "health.h"
#include "task.h"

static volatile sig_atomic_t got_signal;
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	int saved = errno;
	if (sig != SIGCHLD) {
		got_signal = sig;
		runtime_interrupts++;
	}
	if (sig_pipe[1] >= 0) {
		ssize_t rc = write(sig_pipe[1], "x", 1);
		(void)rc;
	}
	errno = saved;
}

char *exec_new_run_id(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
	unsigned short rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (unsigned short)(getpid() ^ ts.tv_nsec);
	return xasprintf("%s%03ldZ-%04x", stamp, ts.tv_nsec / 1000000, rnd);
}

void exec_stage_env(struct kvvec *out, const struct pipeline *p, const struct stage *s,
		    const char *run_id)
{
	for (size_t i = 0; i < s->environment.n; i++)
		if (s->environment.v[i].value)
			kvvec_set(out, s->environment.v[i].key, s->environment.v[i].value);
	for (size_t i = 0; i < s->params.n; i++) {
		cleanup_free char *name = xasprintf("CPIPE_PARAM_%s", s->params.v[i].key);
		for (char *c = name + 12; *c; c++)
			*c = isalnum((unsigned char)*c) ? (char)toupper((unsigned char)*c) : '_';
		kvvec_set(out, name, s->params.v[i].value ? s->params.v[i].value : "");
	}
	kvvec_set(out, "CPIPE_PROJECT", p->name);
	kvvec_set(out, "CPIPE_STAGE", s->name);
	if (run_id)
		kvvec_set(out, "CPIPE_RUN_ID", run_id);
}

static void exec_note(struct run *r, const char *fmt, ...) CP_PRINTF(2, 3);
static void exec_note(struct run *r, const char *fmt, ...)
{
	if (r->o->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	cleanup_free char *masked = redactor_text(&r->p->secrets, msg);
	progress_note(r->pr, masked);
}

/* Prints one complete line with the stage's prefix and, for jobs, keeps it
 * in the stage's log; whole lines, so stdout and stderr never mix inside
 * one. */
static void emit_line(struct run *r, struct slot *sl, int stream, const char *line, size_t n)
{
	/* A terminal's output processing ends lines with \r\n (Docker's). */
	if (n && line[n - 1] == '\r' && sl->task && sl->task->tty)
		n--;
	/* A secret value the stage prints is masked, as CI systems mask theirs. */
	cleanup_free char *masked = NULL;
	if ((r->p->secrets.values.n || memmem(line, n, "://", 3)) && !memchr(line, '\0', n)) {
		cleanup_free char *raw = xstrndup(line, n);
		masked = redactor_text(&r->p->secrets, raw);
		line = masked;
		n = strlen(masked);
	}
	if (sl->log_fd >= 0) {
		struct iovec iov[2] = {{(void *)line, n}, {"\n", 1}};
		ssize_t rc = writev(sl->log_fd, iov, 2);
		(void)rc;
	}
	progress_line(r->pr, (size_t)(sl - r->slots), stream, line, n);
}

static void exec_take_output(struct run *r, struct slot *sl, int stream, const char *data, size_t n)
{
	struct strbuf *pb = &sl->partial[stream];
	const char *p = data, *end = data + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			sb_add(pb, p, (size_t)(end - p));
			if (pb->len >= 65536) {
				emit_line(r, sl, stream, pb->buf, pb->len);
				sb_reset(pb);
			}
			break;
		}
		if (pb->len) {
			sb_add(pb, p, (size_t)(nl - p));
			emit_line(r, sl, stream, pb->buf, pb->len);
			sb_reset(pb);
		} else {
			emit_line(r, sl, stream, p, (size_t)(nl - p));
		}
		p = nl + 1;
	}
	if (pb->len)
		progress_partial(r->pr, (size_t)(sl - r->slots), pb->buf, pb->len);
	progress_flush(r->pr);
}

static void flush_partial(struct run *r, struct slot *sl)
{
	for (int k = 0; k < 2; k++) {
		if (sl->partial[k].len) {
			emit_line(r, sl, k, sl->partial[k].buf, sl->partial[k].len);
			sb_reset(&sl->partial[k]);
		}
	}
	progress_flush(r->pr);
}

/* Reads what is available on one log stream; closes it at EOF. */
static void pump(struct run *r, struct slot *sl, int stream)
{
	int *fdp = stream == 0 ? &sl->task->out_fd : &sl->task->err_fd;
	char buf[65536];
	while (*fdp >= 0) {
		ssize_t n = read(*fdp, buf, sizeof(buf));
		if (n > 0) {
			exec_take_output(r, sl, stream, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close(*fdp);
		*fdp = -1;
	}
}

static void stop_slot(struct run *r, struct slot *sl)
{
	if (sl->state != SLOT_RUNNING || sl->kill_deadline_ms || sl->svc.external)
		return;
	struct cp_error e = {0};
	sl->stopping = true;
	progress_stopping(r->pr, (size_t)(sl - r->slots));
	sl->kill_deadline_ms =
		now_ms() + (sl->s->stop_grace_ms > 0 ? sl->s->stop_grace_ms : CP_STOP_GRACE_MS);
	if (r->ops->kill(r->rt, sl->task, SIGTERM, &e) < 0)
		exec_note(r, "%s: stopping: %s", sl->s->name, e.msg);
}

static void stop_all(struct run *r)
{
	r->stopping = true;
	exec_image_cancel_all(r);
	for (size_t i = 0; i < r->p->nstages; i++)
		stop_slot(r, &r->slots[i]);
}

static void exec_fail(struct run *r, const char *fmt, ...) CP_PRINTF(2, 3);
static void exec_fail(struct run *r, const char *fmt, ...)
{
	if (!r->failed && !r->interrupted) {
		va_list ap;
		va_start(ap, fmt);
		cleanup_free char *msg = xvasprintf(fmt, ap);
		va_end(ap);
		cleanup_free char *masked = redactor_text(&r->p->secrets, msg);
		cp_error_set(r->err, EXIT_STAGE_FAILED, "%s", masked);
	}
	r->failed = true;
	stop_all(r);
}

static void handle_signal(struct run *r);

/* A hook or runtime call that gave up because of Ctrl-C (a build or pull
 * under way): the run is interrupted, not failed. */
static bool gave_up(struct run *r, struct slot *sl, const struct cp_error *e)
{
	if (e->code != EXIT_INTERRUPTED)
		return false;
	sl->state = SLOT_CANCELLED;
	handle_signal(r);
	if (!r->interrupted) {
		r->interrupted = true;
		stop_all(r);
	}
	return true;
}

void exec_image_failed(struct run *r, struct slot *sl, const struct cp_error *e)
{
	if (gave_up(r, sl, e))
		return;
	sl->state = SLOT_FAILED;
	exec_fail(r, "stage \"%s\": %s", sl->s->name, e->msg);
}

static size_t index_of(const struct pipeline *p, const char *name)
{
	return (size_t)pipeline_stage_index(p, name); /* -1 when absent */
}

/* 1 when the dependencies of slot i are satisfied; with `jobs_only`, only
 * those on jobs count (services are started on demand afterwards). */
static int deps_ready(struct run *r, size_t i, bool jobs_only)
{
	const struct stage *s = &r->p->stages[i];
	for (size_t d = 0; d < s->ndeps; d++) {
		size_t j = index_of(r->p, s->deps[d].stage);
		if (j == (size_t)-1 || !r->plan->selected[j])
			continue; /* not part of this run (--no-deps) */
		const struct slot *up = &r->slots[j];
		if (jobs_only && up->s->service)
			continue;
		switch (s->deps[d].condition) {
		case DEP_COMPLETED_SUCCESSFULLY:
			if (up->state != SLOT_DONE)
				return 0;
			break;
		case DEP_STARTED:
			if (up->state != SLOT_RUNNING && up->state != SLOT_DONE)
				return 0;
			break;
		case DEP_HEALTHY:
			if (up->state != SLOT_RUNNING || !up->svc.healthy)
				return 0;
			break;
		}
	}
	return 1;
}

/* Asks for every service the stage at slot i depends on (a job's, or a
 * wanted service's: mlflow needs postgres up); true if one is new. */
static bool want_services(struct run *r, size_t i)
{
	const struct stage *s = &r->p->stages[i];
	bool more = false;
	for (size_t d = 0; d < s->ndeps; d++) {
		size_t j = index_of(r->p, s->deps[d].stage);
		if (j != (size_t)-1 && r->plan->selected[j] && r->slots[j].s->service &&
		    !r->slots[j].wanted) {
			r->slots[j].wanted = true;
			more = true;
		}
	}
	return more;
}

static int count_running_jobs(struct run *r)
{
	int n = 0;
	for (size_t i = 0; i < r->p->nstages; i++)
		if (r->slots[i].state == SLOT_RUNNING && !r->slots[i].s->service)
			n++;
	return n;
}

/* ---- services (their lifecycle is services.c's) ---- */

static void adopt_services(struct run *r)
{
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (sl->state != SLOT_PENDING || !sl->s->service)
			continue;
		cleanup_free char *run = service_adopt(&sl->svc, &r->senv);
		if (run) {
			sl->state = SLOT_RUNNING;
			exec_note(r, "service %s is already up (run %s), using it", sl->s->name, run);
		}
	}
}

/* Fails the run when a port the services would publish is taken. */
static int check_ports(struct run *r)
{
	const struct stage **list = xcalloc(r->p->nstages + 1, sizeof(*list));
	size_t n = 0;
	for (size_t i = 0; i < r->p->nstages; i++)
		if (r->slots[i].state == SLOT_PENDING && r->slots[i].s->service)
			list[n++] = r->slots[i].s;
	int rc = service_ports_free(r->ops, r->rt, list, n, r->err);
	free(list);
	if (rc < 0)
		r->failed = true;
	return rc;
}

/* Shows what services appended to their logs. */
static void follow_service_logs(struct run *r)
{
	char buf[65536];
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		size_t n;
		while ((n = service_read_log(&sl->svc, buf, sizeof(buf))) > 0)
			exec_take_output(r, sl, 0, buf, n);
	}
}

static void probe_services(struct run *r)
{
	long long now = now_ms();
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (!sl->s->service || sl->state != SLOT_RUNNING)
			continue;
		cleanup_free char *msg = NULL;
		switch (service_probe(&sl->svc, &r->senv, now, &msg)) {
		case SERVICE_WAITING:
			break;
		case SERVICE_HEALTHY: {
			double secs = (double)(now_ms() - sl->started_ms) / 1000.0;
			progress_healthy(r->pr, i, secs);
			exec_note(r, "%s is healthy (%.2fs)", sl->s->name, secs);
			if (msg)
				exec_note(r, "%s", msg);
			break;
		}
		case SERVICE_FAILED: {
			follow_service_logs(r);
			cleanup_free char *tail = service_log_tail(sl->log_path, 10);
			exec_fail(r, "%s; log: %s%s", msg, sl->log_path, tail);
			break;
		}
		}
	}
}

/* Leaves a service running after cpipe returns. */
static void detach_service(struct run *r, struct slot *sl)
{
	follow_service_logs(r);
	if (r->o->hooks.after) {
		struct cp_error e = {0};
		r->o->hooks.after(r->o->hooks.ctx, sl->s, 0, &e);
	}
	exec_note(r, "%s keeps running (cpipe ps, cpipe logs %s, cpipe down)", sl->s->name,
		  sl->s->name);
	progress_end(r->pr, (size_t)(sl - r->slots), "kept running", -1,
		     (double)(now_ms() - sl->started_ms) / 1000.0);
	service_detach(&sl->svc);
	sl->task->keep_running = true;
	r->ops->release(r->rt, sl->task);
	sl->task = NULL;
	sl->state = SLOT_DONE;
}

void exec_task_spec(struct run *r, struct slot *sl, struct kvvec *env, struct task_desc *desc,
		    struct task_spec *ts)
{
	exec_stage_env(env, r->p, sl->s, r->o->run_id);
	task_desc_init(desc, r->p, sl->s);
	desc->image_id = sl->image_id; /* what its key and record name */
	*ts = (struct task_spec){.desc = desc, .env = env, .run_id = r->o->run_id};
	if (sl->s->service) {
		ts->detached = true;
		ts->log_path = sl->log_path;
	} else {
		ts->tty = r->pty;
		ts->tty_cols = r->pty_cols;
		ts->tty_rows = r->pty_rows;
	}
}

static int start_slot(struct run *r, struct slot *sl)
{
	struct cp_error e = {0};
	struct kvvec env = {0};
	progress_hide(r->pr); /* hooks and runtimes write to stderr */
	if (r->o->hooks.before && sl->s->service &&
	    r->o->hooks.before(r->o->hooks.ctx, sl->s, sl->image_id, &e) < 0) {
		if (gave_up(r, sl, &e))
			return -1;
		sl->state = SLOT_FAILED;
		exec_fail(r, "stage \"%s\": %s", sl->s->name, e.msg);
		return -1;
	}
	struct task_desc desc;
	struct task_spec ts;
	exec_task_spec(r, sl, &env, &desc, &ts);
	if (!sl->s->service) {
		sl->log_fd = open(sl->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND,
				  0600);
		exec_prepare_ahead(r, sl); /* what follows it, made while it starts */
	}
	r->starts++;
	int rc = r->ops->start(r->rt, &ts, &sl->task, &e);
	sl->prepared = false; /* start() took or dropped what was prepared */
	kvvec_free(&env);
	if (rc < 0 && gave_up(r, sl, &e))
		return -1;
	if (rc < 0) {
		sl->state = SLOT_FAILED;
		if (e.code == EXIT_RUNTIME || e.code == EXIT_USAGE) {
			if (!r->failed)
				*r->err = e;
			r->failed = true;
			stop_all(r);
		} else {
			exec_fail(r, "stage \"%s\" could not start: %s", sl->s->name, e.msg);
		}
		return -1;
	}
	sl->state = SLOT_RUNNING;
	sl->started_ms = now_ms();
	progress_start(r->pr, (size_t)(sl - r->slots), sl->s->service);
	exec_note(r, "%s %s", sl->s->service ? "starting service" : "running", sl->s->name);
	if (sl->s->service) {
		cleanup_free char *msg = service_started(&sl->svc, &r->senv, sl->task, sl->started_ms);
		if (msg)
			exec_note(r, "%s", msg);
	}
	return 0;
}

static bool service_needed(struct run *r, size_t i)
{
	const struct slot *sl = &r->slots[i];
	return sl->wanted || r->plan->named[i] || (r->o->up && !r->any_named);
}

/* One pass over the plan; true when it changed something (a stage started
 * or was skipped, or a service became wanted), so another pass may start
 * more. */
static bool start_pass(struct run *r)
{
	bool progress = false;
	for (size_t k = 0; k < r->plan->n && !r->stopping; k++) {
		size_t i = r->plan->order[k];
		struct slot *sl = &r->slots[i];
		if (sl->state != SLOT_PENDING)
			continue;
		if (sl->s->service) {
			if (service_needed(r, i) && want_services(r, i))
				progress = true;
			if (service_needed(r, i) && deps_ready(r, i, false) &&
			    exec_image_ready(r, sl)) {
				start_slot(r, sl);
				progress = true;
			}
			continue;
		}
		if (!deps_ready(r, i, true))
			continue;
		if (!sl->evaluated) {
			/* Built or pulled first, as work of the loop: its key
			 * names the image ID. */
			if (!exec_image_ready(r, sl)) {
				if (sl->state != SLOT_PENDING)
					return false;
				continue;
			}
			if (r->o->hooks.before) {
				struct cp_error e = {0};
				progress_hide(r->pr);
				int fresh =
				    r->o->hooks.before(r->o->hooks.ctx, sl->s, sl->image_id, &e);
				if (fresh != 0)
					exec_unprepare(r, sl);
				if (fresh < 0 && gave_up(r, sl, &e))
					return false;
				if (fresh < 0) {
					sl->state = SLOT_FAILED;
					exec_fail(r, "stage \"%s\": %s", sl->s->name, e.msg);
					return false;
				}
				if (fresh >= 1) { /* 2: restored (the hook said so) */
					sl->state = SLOT_DONE;
					sl->skipped = true;
					progress_skip(r->pr, i, fresh == 2);
					if (fresh == 1)
						exec_note(r, "%s is up to date, skipped", sl->s->name);
					progress = true;
					continue;
				}
			}
			sl->evaluated = true;
			want_services(r, i);
			progress = true;
		}
		if (count_running_jobs(r) >= r->o->jobs || !deps_ready(r, i, false))
			continue;
		start_slot(r, sl);
		progress = true;
	}
	return progress;
}

static void start_ready(struct run *r)
{
	while (start_pass(r))
		;
}

static void finish_slot(struct run *r, struct slot *sl, int code)
{
	if (sl->s->service) {
		follow_service_logs(r);
	} else {
		pump(r, sl, 0);
		pump(r, sl, 1);
	}
	flush_partial(r, sl);
	progress_hide(r->pr);
	sl->exit_code = code;
	bool hook_failed = false;
	if (r->o->hooks.ran && sl->task && sl->task->ran_image)
		r->o->hooks.ran(r->o->hooks.ctx, sl->s, sl->task->ran_image);
	if (r->o->hooks.after) {
		struct cp_error e = {0};
		if (r->o->hooks.after(r->o->hooks.ctx, sl->s, code, &e) < 0 && code == 0 &&
		    !sl->stopping) {
			hook_failed = true;
			sl->state = SLOT_FAILED;
			exec_fail(r, "%s", e.msg);
		}
	}
	double secs = (double)(now_ms() - sl->started_ms) / 1000.0;
	if (hook_failed) {
		/* already failed */
	} else if (sl->stopping) {
		sl->state = sl->s->service && !r->failed && !r->interrupted ? SLOT_DONE
									    : SLOT_CANCELLED;
		exec_note(r, "%s stopped (%.2fs)", sl->s->name, secs);
	} else if (sl->s->service) {
		sl->state = SLOT_FAILED;
		cleanup_free char *tail = service_log_tail(sl->log_path, 10);
		exec_fail(r, "service \"%s\" exited with code %d%s; log: %s%s", sl->s->name, code,
			  sl->svc.healthy ? " while the run needed it" : " before it became healthy",
			  sl->log_path, tail);
	} else if (code != 0) {
		sl->state = SLOT_FAILED;
		exec_fail(r, "stage \"%s\" failed with exit code %d; log: %s", sl->s->name, code,
			  sl->log_path);
	} else {
		sl->state = SLOT_DONE;
		exec_note(r, "%s done (%.2fs)", sl->s->name, secs);
	}
	const char *how = sl->state == SLOT_FAILED ? "failed" : sl->stopping ? "stopped" : "done";
	progress_end(r->pr, (size_t)(sl - r->slots), how, code, secs);
	if (sl->s->service)
		service_exited(&sl->svc, &r->senv);
	r->ops->release(r->rt, sl->task);
	sl->task = NULL;
	if (sl->log_fd >= 0) {
		close(sl->log_fd);
		sl->log_fd = -1;
	}
}

static bool jobs_left(struct run *r)
{
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (!sl->s->service && (sl->state == SLOT_PENDING || sl->state == SLOT_RUNNING))
			return true;
	}
	return false;
}

static bool running_tasks(struct run *r)
{
	for (size_t i = 0; i < r->p->nstages; i++)
		if (r->slots[i].state == SLOT_RUNNING && !r->slots[i].svc.external)
			return true;
	return false;
}

/* cpipe up is done when every service it wants is up and healthy. */
static bool services_ready(struct run *r)
{
	for (size_t k = 0; k < r->plan->n; k++) {
		size_t i = r->plan->order[k];
		const struct slot *sl = &r->slots[i];
		if (sl->s->service && service_needed(r, i) &&
		    (sl->state != SLOT_RUNNING || !sl->svc.healthy))
			return false;
	}
	return true;
}

static void handle_signal(struct run *r)
{
	int sig = got_signal;
	got_signal = 0;
	if (!sig)
		return;
	if (r->interrupted) {
		/* A second Ctrl-C: no more grace. */
		for (size_t i = 0; i < r->p->nstages; i++) {
			struct slot *sl = &r->slots[i];
			if (sl->state == SLOT_RUNNING && sl->task && !sl->killed) {
				sl->killed = true;
				r->ops->kill(r->rt, sl->task, SIGKILL, NULL);
			}
		}
		return;
	}
	r->interrupted = true;
	exec_note(r, "interrupted (%s), stopping", strsignal(sig));
	stop_all(r);
}

static void loop_once(struct run *r)
{
	struct pollfd pfd[3 * r->p->nstages + 1];
	struct slot *owner[3 * r->p->nstages + 1];
	int stream[3 * r->p->nstages + 1]; /* 0 stdout, 1 stderr, 2 image job */
	nfds_t n = 0;
	pfd[n] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
	owner[n++] = NULL;
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (sl->state != SLOT_RUNNING || !sl->task)
			continue;
		int fds[2] = {sl->task->out_fd, sl->task->err_fd};
		for (int k = 0; k < 2; k++) {
			if (fds[k] < 0)
				continue;
			pfd[n] = (struct pollfd){.fd = fds[k], .events = POLLIN};
			owner[n] = sl;
			stream[n++] = k;
		}
	}
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (sl->img && sl->img_fd >= 0) {
			pfd[n] = (struct pollfd){.fd = sl->img_fd, .events = POLLIN};
			owner[n] = sl;
			stream[n++] = 2;
		}
	}
	/* Wake for the next health probe, probe timeout or kill deadline, else
	 * within 50 ms (followed service logs and exits are noticed on that
	 * tick). Probes in flight are waited for in the same poll. */
	long long wake = now_ms() + 50;
	long long probe_timeout = health_wake_ms(r->senv.probes);
	if (probe_timeout && probe_timeout < wake)
		wake = probe_timeout;
	for (size_t i = 0; i < r->p->nstages; i++) {
		const struct slot *sl = &r->slots[i];
		if (sl->state != SLOT_RUNNING)
			continue;
		long long next_probe = sl->s->service ? service_wake_ms(&sl->svc) : 0;
		if (next_probe && next_probe < wake)
			wake = next_probe;
		if (sl->kill_deadline_ms && !sl->killed && sl->kill_deadline_ms < wake)
			wake = sl->kill_deadline_ms;
	}
	long long wait = wake - now_ms();
	int rc = health_poll(r->senv.probes, pfd, n, wait < 0 ? 0 : (int)wait);
	if (rc > 0) {
		if (pfd[0].revents) {
			char buf[64];
			while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
				;
		}
		for (nfds_t k = 1; k < n; k++) {
			if (!pfd[k].revents)
				continue;
			if (stream[k] == 2)
				exec_image_pump(r, owner[k]);
			else
				pump(r, owner[k], stream[k]);
		}
	}
	handle_signal(r);
	follow_service_logs(r);

	long long now = now_ms();
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (sl->state != SLOT_RUNNING || !sl->task)
			continue;
		int code = 0;
		struct cp_error e = {0};
		int st = r->ops->poll(r->rt, sl->task, &code, &e);
		if (st < 0 && e.code == EXIT_RUNTIME && !r->failed && !r->interrupted) {
			/* The runtime itself went away: exit 3, not a stage failure. */
			cp_error_prefix(&e, "stage \"%s\"", sl->s->name);
			*r->err = e;
			r->failed = true;
			stop_all(r);
			continue;
		}
		if (st < 0) {
			exec_fail(r, "stage \"%s\": %s", sl->s->name, e.msg);
			continue;
		}
		if (st == 1) {
			finish_slot(r, sl, code);
			continue;
		}
		if (sl->kill_deadline_ms && !sl->killed && now >= sl->kill_deadline_ms) {
			exec_note(r, "%s did not stop in time, killing it", sl->s->name);
			sl->killed = true;
			r->ops->kill(r->rt, sl->task, SIGKILL, NULL);
		}
	}
	if (!r->stopping)
		probe_services(r);
	progress_tick(r->pr);
}

/* The jobs are done: stop the services this run started, or leave them up. */
static void finish_services(struct run *r)
{
	r->stopping = true;
	bool keep = r->o->keep_serving || r->o->up;
	progress_hide(r->pr);
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (sl->state != SLOT_RUNNING || sl->svc.external)
			continue;
		if (keep)
			detach_service(r, sl);
		else
			stop_slot(r, sl);
	}
}

int exec_run(const struct plan *plan, const struct runtime_ops *ops, struct runtime *rt,
	     const struct exec_options *opts, struct cp_error *err)
{
	const struct pipeline *p = plan->p;
	struct run r = {.plan = plan, .p = p, .ops = ops, .rt = rt, .o = opts, .err = err};
	cleanup_free char *logdir = xasprintf("%s/logs/%s", opts->state_dir, opts->run_id);
	if (fs_mkdir_p(logdir, 0700, err) < 0)
		return -1;
	r.senv = (struct service_env){.ops = ops, .rt = rt, .state_dir = opts->state_dir,
				      .run_id = opts->run_id, .probes = health_set_new()};

	r.out = opts->logs_to_stderr ? stderr : stdout;
	r.slots = xcalloc(p->nstages ? p->nstages : 1, sizeof(*r.slots));
	for (size_t i = 0; i < p->nstages; i++) {
		struct slot *sl = &r.slots[i];
		sl->s = &p->stages[i];
		sl->log_fd = -1;
		sl->img_fd = -1;
		sl->state = plan->selected[i] ? SLOT_PENDING : SLOT_UNSELECTED;
		sl->log_path = xasprintf("%s/%s.log", logdir, sl->s->name);
		service_init(&sl->svc, sl->s, sl->log_path);
		int w = (int)strlen(sl->s->name);
		if (plan->selected[i] && w > r.name_width)
			r.name_width = w;
	}
	/* -q: no status lines either, unless asked for. */
	enum progress_mode mode = opts->quiet && opts->progress == PROGRESS_AUTO ? PROGRESS_PLAIN
										 : opts->progress;
	r.pr = progress_new(mode, r.out, p->nstages, r.name_width, opts->run_id, &p->secrets);
	if (opts->notes)
		opts->notes->pr = r.pr;
	for (size_t i = 0; i < p->nstages; i++) {
		progress_stage(r.pr, i, p->stages[i].name);
		r.any_named = r.any_named || plan->named[i];
	}
	r.pty = !opts->no_tty && progress_pty(r.pr, &r.pty_cols, &r.pty_rows);
	adopt_services(&r);
	/* Before anything is created: a taken port leaves no trace. */
	if (check_ports(&r) < 0)
		goto cleanup;
	for (size_t v = 0; v < p->nvolumes; v++)
		if (ops->volume_ensure(rt, &p->volumes[v], err) < 0) {
			r.failed = true;
			goto cleanup;
		}

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		cp_error_errno(err, EXIT_USAGE, "creating a pipe");
		r.failed = true; /* nothing ran: that is a failure, not a success */
		goto cleanup;
	}
	got_signal = 0;
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	struct sigaction old[4];
	const int sigs[4] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD};
	for (int k = 0; k < 4; k++)
		sigaction(sigs[k], &sa, &old[k]);

	for (;;) {
		start_ready(&r);
		exec_prepare_ahead(&r, NULL);
		if (!r.stopping && !jobs_left(&r) && (!opts->up || services_ready(&r)))
			finish_services(&r);
		if (!running_tasks(&r) && !exec_images_busy(&r)) {
			if (!r.stopping && jobs_left(&r))
				exec_fail(&r, "no stage can start: the remaining stages wait on "
					      "services that do not complete (check depends_on "
					      "conditions)");
			if (!r.stopping && opts->up && !services_ready(&r))
				exec_fail(&r, "the services did not come up");
			break;
		}
		loop_once(&r);
	}

	for (int k = 0; k < 4; k++)
		sigaction(sigs[k], &old[k], NULL);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
	sig_pipe[0] = sig_pipe[1] = -1;

cleanup:
	exec_unprepare_all(&r);
	for (size_t i = 0; i < p->nstages; i++) {
		struct slot *sl = &r.slots[i];
		sb_free(&sl->partial[0]);
		sb_free(&sl->partial[1]);
		service_free(&sl->svc);
		exec_image_free(sl);
		free(sl->log_path);
	}
	health_set_free(r.senv.probes);
	free(r.slots);
	if (opts->notes)
		opts->notes->pr = NULL;
	progress_free(r.pr, r.interrupted ? "interrupted" : r.failed ? "failed" : "succeeded");
	if (r.interrupted) {
		return cp_error_set(err, EXIT_INTERRUPTED, "interrupted; every stage was stopped");
	}
	return r.failed ? -1 : 0;
}
