/* Unit tests of the local runtime (stages/local.c, stages/sandbox.c): what a
 * stage observes inside its sandbox and what the host observes outside.
 * Pipelines are built by hand in a fresh project directory per test. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/fs.h"
#include "../../pipeline/task.h"
#include "../../stages/runtime.h"

struct fixture {
	char dir[64];
	char *state;
	struct pipeline p;
	struct stage stages[2]; /* "work" and "serve" */
	struct volume volumes[1];
	struct mount mounts[4];
	struct kvvec env;
	struct runtime *rt;
	struct task_desc desc; /* the last desc_of */
};

/* Stage s of the fixture as the runtime receives it; lent from f. */
static const struct task_desc *desc_of(struct fixture *f, const struct stage *s)
{
	task_desc_init(&f->desc, &f->p, s);
	return &f->desc;
}

/* The sandbox's init, as the task's handle names it. */
static pid_t task_pid(struct task *t)
{
	cJSON *h = runtime_local.task_handle(NULL, t);
	pid_t pid = (pid_t)cJSON_GetNumberValue(cJSON_GetObjectItem(h, "pid"));
	cJSON_Delete(h);
	return pid;
}

struct result {
	char *out;
	char *err;
	int code;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/cpipe-local-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->state = path_join(f->dir, ".cpipe");
	f->p.name = "t";
	f->p.dir = f->dir;
	f->p.stages = f->stages;
	f->p.nstages = 2;
	f->stages[0].name = "work";
	f->stages[1].name = "serve";
	f->volumes[0].name = "data";
	f->p.volumes = f->volumes;
	f->p.nvolumes = 1;
	struct cp_error err = {0};
	if (task_runtime_open(&runtime_local, &f->rt, &f->p, f->state, &err) < 0)
		fail_msg("open: %s", err.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	runtime_local.close(f->rt);
	for (size_t i = 0; i < ARRAY_LEN(f->stages); i++) {
		strvec_free(&f->stages[i].command);
		strvec_free(&f->stages[i].entrypoint);
	}
	kvvec_free(&f->env);
	struct cp_error err = {0};
	fs_rm_rf(f->dir, &err);
	free(f->state);
	free(f);
	return 0;
}

/* Sets the stage's command to `sh -c SCRIPT` and its mounts to `n` of the
 * fixture's. */
static struct stage *shell_stage(struct fixture *f, const char *script, size_t nmounts)
{
	struct stage *s = &f->stages[0];
	strvec_free(&s->command);
	strvec_push(&s->command, "sh");
	strvec_push(&s->command, "-c");
	strvec_push(&s->command, script);
	s->mounts = nmounts ? f->mounts : NULL;
	s->nmounts = nmounts;
	return s;
}

static void set_mount(struct mount *m, enum mount_type type, const char *source,
		      const char *target, bool ro)
{
	m->type = type;
	m->source = (char *)source;
	m->target = (char *)target;
	m->read_only = ro;
}

static void drain(int fd, struct strbuf *sb, bool *open_)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		sb_add(sb, buf, (size_t)n);
	if (n == 0)
		*open_ = false;
}

/* Reads both streams to EOF, then waits for the exit code. */
static void finish(struct task *t, struct result *r)
{
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	bool oo = true, eo = true;
	long long deadline = now_ms() + 20000;
	while ((oo || eo) && now_ms() < deadline) {
		struct pollfd pfd[2] = {{.fd = oo ? t->out_fd : -1, .events = POLLIN},
					{.fd = eo ? t->err_fd : -1, .events = POLLIN}};
		poll(pfd, 2, 100);
		if (oo)
			drain(t->out_fd, &out, &oo);
		if (eo)
			drain(t->err_fd, &err, &eo);
	}
	struct cp_error e = {0};
	int rc;
	while ((rc = runtime_local.poll(NULL, t, &r->code, &e)) == 0 && now_ms() < deadline)
		usleep(1000);
	assert_int_equal(rc, 1);
	r->out = sb_detach(&out);
	r->err = sb_detach(&err);
	runtime_local.release(NULL, t);
}

static int run(struct fixture *f, const struct stage *s, struct result *r, struct cp_error *err)
{
	struct task_spec ts = {.desc = desc_of(f, s), .env = &f->env, .run_id = "test"};
	struct task *t;
	memset(r, 0, sizeof(*r));
	if (runtime_local.start(f->rt, &ts, &t, err) < 0)
		return -1;
	finish(t, r);
	return 0;
}

static void run_ok(struct fixture *f, const struct stage *s, struct result *r)
{
	struct cp_error err = {0};
	if (run(f, s, r, &err) < 0)
		fail_msg("start failed: %s", err.msg);
}

static void result_free(struct result *r)
{
	free(r->out);
	free(r->err);
}

static const char *my_home(void)
{
	struct passwd *pw = getpwuid(geteuid());
	return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/";
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void test_output_goes_to_out_and_err_fds(void **state)
{
	struct fixture *f = *state;
	struct result r;
	run_ok(f, shell_stage(f, "echo to-out; echo to-err >&2", 0), &r);
	assert_string_equal(r.out, "to-out\n");
	assert_string_equal(r.err, "to-err\n");
	assert_int_equal(r.code, 0);
	result_free(&r);
	/* The sandbox root's mountpoint is gone once the stage started. */
	cleanup_free char *run_dir = path_join(f->state, "run");
	DIR *d = opendir(run_dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)))
		assert_true(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0);
	closedir(d);
}

static void test_exit_codes(void **state)
{
	struct fixture *f = *state;
	struct result r;
	run_ok(f, shell_stage(f, "exit 3", 0), &r);
	assert_int_equal(r.code, 3);
	result_free(&r);
	run_ok(f, shell_stage(f, "kill -TERM $$", 0), &r);
	assert_int_equal(r.code, 128 + SIGTERM);
	result_free(&r);
	run_ok(f, shell_stage(f, "kill -KILL $$", 0), &r);
	assert_int_equal(r.code, 128 + SIGKILL);
	result_free(&r);
}

static void test_stage_runs_in_own_pid_namespace(void **state)
{
	struct fixture *f = *state;
	struct result r;
	/* The init is PID 1, the command PID 2, with a /proc of its own. */
	run_ok(f, shell_stage(f, "read pid rest < /proc/self/stat; echo $pid; echo /proc/[0-9]*", 0),
	       &r);
	assert_string_equal(r.out, "2\n/proc/1 /proc/2\n");
	result_free(&r);
}

static void test_named_volume_shared_between_tasks(void **state)
{
	struct fixture *f = *state;
	struct result r;
	set_mount(&f->mounts[0], MOUNT_VOLUME, "data", "/vol", false);
	run_ok(f, shell_stage(f, "echo hello > /vol/greeting", 1), &r);
	assert_int_equal(r.code, 0);
	result_free(&r);
	/* The read comes a moment after start returned, once the host side
	 * cleaned up the root's mountpoint. */
	run_ok(f, shell_stage(f, "sleep 0.2; cat /vol/greeting", 1), &r);
	assert_string_equal(r.out, "hello\n");
	assert_int_equal(r.code, 0);
	result_free(&r);

	cleanup_free char *path = xasprintf("%s/volumes/data/greeting", f->state);
	char *content = NULL;
	struct cp_error err = {0};
	assert_int_equal(fs_read_file(&content, NULL, path, 0, &err), 0);
	assert_string_equal(content, "hello\n");
	free(content);
}

static void test_bind_mount_of_project_subdir(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *sub = path_join(f->dir, "sub");
	cleanup_free char *in = path_join(sub, "in.txt");
	cleanup_free char *outp = path_join(sub, "out.txt");
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(sub, 0755, &err), 0);
	assert_int_equal(fs_write_atomic(in, "input\n", 6, 0644, &err), 0);
	set_mount(&f->mounts[0], MOUNT_BIND, sub, "/data", false);
	struct result r;
	run_ok(f, shell_stage(f, "cat /data/in.txt && echo output > /data/out.txt", 1), &r);
	assert_string_equal(r.out, "input\n");
	assert_int_equal(r.code, 0);
	result_free(&r);
	assert_true(exists(outp));

	/* A missing bind source is created, as docker's short syntax does. */
	cleanup_free char *fresh = path_join(f->dir, "fresh");
	set_mount(&f->mounts[0], MOUNT_BIND, fresh, "/fresh", false);
	run_ok(f, shell_stage(f, "touch /fresh/made", 1), &r);
	assert_int_equal(r.code, 0);
	result_free(&r);
	cleanup_free char *made = path_join(fresh, "made");
	assert_true(exists(made));
}

static void test_read_only_mounts_refuse_writes(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *sub = path_join(f->dir, "ro");
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(sub, 0755, &err), 0);
	set_mount(&f->mounts[0], MOUNT_BIND, sub, "/data", true);
	set_mount(&f->mounts[1], MOUNT_VOLUME, "data", "/vol", true);
	struct result r;
	run_ok(f, shell_stage(f, "echo x > /data/y", 2), &r);
	assert_int_not_equal(r.code, 0);
	assert_non_null(strstr(r.err, "Read-only file system"));
	result_free(&r);
	run_ok(f, shell_stage(f, "mkdir /vol/d", 2), &r);
	assert_int_not_equal(r.code, 0);
	assert_non_null(strstr(r.err, "Read-only file system"));
	result_free(&r);
	cleanup_free char *y = path_join(sub, "y");
	assert_false(exists(y));
}

static void test_missing_targets_never_appear_on_host(void **state)
{
	struct fixture *f = *state;
	assert_false(exists("/cpipe-test-target"));
	assert_false(exists("/usr/share/cpipe-test-target"));
	assert_false(exists("/tmp/cpipe-test-target"));
	set_mount(&f->mounts[0], MOUNT_VOLUME, "data", "/cpipe-test-target", false);
	set_mount(&f->mounts[1], MOUNT_VOLUME, "data", "/usr/share/cpipe-test-target/deep", false);
	set_mount(&f->mounts[2], MOUNT_TMPFS, NULL, "/tmp/cpipe-test-target/t", false);
	struct result r;
	/* The shadowed /usr/share keeps the host's contents. */
	run_ok(f, shell_stage(f, "echo v > /cpipe-test-target/f && "
				 "cat /usr/share/cpipe-test-target/deep/f && "
				 "touch /tmp/cpipe-test-target/t/x && "
				 "test -d /usr/share/common-licenses && test -d /usr/share/doc && "
				 "test -f /usr/share/common-licenses/GPL-3 && echo ok",
			      3),
	       &r);
	assert_string_equal(r.out, "v\nok\n");
	assert_int_equal(r.code, 0);
	result_free(&r);
	assert_false(exists("/cpipe-test-target"));
	assert_false(exists("/usr/share/cpipe-test-target"));
	assert_false(exists("/tmp/cpipe-test-target"));
}

static void test_nested_and_file_mounts(void **state)
{
	struct fixture *f = *state;
	cleanup_free char *sub = path_join(f->dir, "sub");
	cleanup_free char *conf = path_join(f->dir, "app.conf");
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(sub, 0755, &err), 0);
	assert_int_equal(fs_write_atomic(conf, "conf\n", 5, 0644, &err), 0);
	/* Listed deepest first: they are applied shortest target first. */
	set_mount(&f->mounts[0], MOUNT_BIND, sub, "/vol/in", true);
	set_mount(&f->mounts[1], MOUNT_VOLUME, "data", "/vol", false);
	set_mount(&f->mounts[2], MOUNT_BIND, conf, "/etc/cpipe-test.conf", false);
	struct result r;
	run_ok(f, shell_stage(f, "cat /etc/cpipe-test.conf; touch /vol/top; test -d /vol/in && "
				 "! touch /vol/in/x 2>/dev/null && getent hosts serve >/dev/null && "
				 "test -f /etc/passwd && echo ok",
			      3),
	       &r);
	assert_string_equal(r.out, "conf\nok\n");
	result_free(&r);
	assert_false(exists("/etc/cpipe-test.conf"));
	/* As with docker, the nested mountpoint is made inside the volume. */
	cleanup_free char *in_vol = xasprintf("%s/volumes/data/in", f->state);
	assert_true(exists(in_vol));
}

static void test_two_tasks_at_once(void **state)
{
	struct fixture *f = *state;
	set_mount(&f->mounts[0], MOUNT_VOLUME, "data", "/vol", false);
	struct task_spec ts = {
		.desc = desc_of(f, shell_stage(f, "echo $$ >> /vol/log; sleep 0.2; echo done", 1)),
		.env = &f->env};
	struct task *a, *b;
	struct cp_error err = {0};
	assert_int_equal(runtime_local.start(f->rt, &ts, &a, &err), 0);
	assert_int_equal(runtime_local.start(f->rt, &ts, &b, &err), 0);
	assert_int_not_equal(task_pid(a), task_pid(b));
	struct result ra, rb;
	finish(b, &rb);
	finish(a, &ra);
	assert_string_equal(ra.out, "done\n");
	assert_string_equal(rb.out, "done\n");
	result_free(&ra);
	result_free(&rb);
	cleanup_free char *log = xasprintf("%s/volumes/data/log", f->state);
	char *content = NULL;
	assert_int_equal(fs_read_file(&content, NULL, log, 0, &err), 0);
	assert_string_equal(content, "2\n2\n"); /* each in its own PID namespace */
	free(content);
}

static void test_signals_are_forwarded_to_the_command(void **state)
{
	struct fixture *f = *state;
	struct task_spec ts = {
		.desc = desc_of(f, shell_stage(f, "trap 'echo got-INT; exit 5' INT; echo ready; "
						  "while :; do sleep 0.01; done",
					       0)),
		.env = &f->env};
	struct task *t;
	struct cp_error err = {0};
	assert_int_equal(runtime_local.start(f->rt, &ts, &t, &err), 0);
	/* The sandbox is a session of its own: a terminal's Ctrl-C reaches
	 * only cpipe, which stops its tasks itself. */
	assert_int_equal(getsid(task_pid(t)), task_pid(t));
	char buf[64];
	struct pollfd pfd = {.fd = t->out_fd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_true(read(t->out_fd, buf, sizeof(buf)) > 0);
	assert_int_equal(runtime_local.kill(NULL, t, SIGINT, &err), 0);
	struct result r;
	finish(t, &r);
	assert_string_equal(r.out, "got-INT\n");
	assert_int_equal(r.code, 5);
	result_free(&r);
}

static void test_stage_names_resolve_to_loopback(void **state)
{
	struct fixture *f = *state;
	struct result r;
	run_ok(f, shell_stage(f, "getent hosts serve | cut -d' ' -f1; getent ahostsv4 work | head -1",
			      0),
	       &r);
	assert_true(str_has_prefix(r.out, "127.0.0.1\n127.0.0.1 "));
	assert_int_equal(r.code, 0);
	result_free(&r);
	/* The host's /etc/hosts is untouched. */
	char *hosts = NULL;
	struct cp_error err = {0};
	assert_int_equal(fs_read_file(&hosts, NULL, "/etc/hosts", 0, &err), 0);
	assert_null(strstr(hosts, "cpipe"));
	free(hosts);
}

static void test_working_dir_and_environment(void **state)
{
	struct fixture *f = *state;
	setenv("CPIPE_TEST_LEAK", "host", 1);
	kvvec_set(&f->env, "FOO", "bar baz");
	kvvec_set(&f->env, "NOVALUE", NULL);
	struct result r;
	struct stage *s = shell_stage(f, "pwd; echo \"$FOO|$HOME|$PATH|${CPIPE_TEST_LEAK-unset}\"", 0);
	run_ok(f, s, &r);
	cleanup_free char *want = xasprintf("%s\nbar baz|%s|%s|unset\n", f->dir,
					    my_home(),
					    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
					    "/sbin:/bin");
	assert_string_equal(r.out, want);
	result_free(&r);

	/* A stage PATH is used to find argv[0]; HOME from the spec wins. */
	cleanup_free char *bin = path_join(f->dir, "bin");
	cleanup_free char *tool = path_join(bin, "mytool");
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(bin, 0755, &err), 0);
	assert_int_equal(fs_write_atomic(tool, "#!/bin/sh\necho tool $HOME\n", 26, 0755, &err), 0);
	kvvec_set(&f->env, "PATH", bin);
	kvvec_set(&f->env, "HOME", "/h");
	strvec_free(&s->command);
	strvec_push(&s->command, "mytool");
	run_ok(f, s, &r);
	assert_string_equal(r.out, "tool /h\n");
	result_free(&r);

	/* An explicit working_dir, also one that does not exist yet (made
	 * inside the sandbox only). */
	kvvec_free(&f->env);
	s = shell_stage(f, "pwd", 0);
	s->working_dir = "/usr/share";
	run_ok(f, s, &r);
	assert_string_equal(r.out, "/usr/share\n");
	result_free(&r);
	s->working_dir = "/cpipe-test-wd/sub";
	run_ok(f, s, &r);
	assert_string_equal(r.out, "/cpipe-test-wd/sub\n");
	result_free(&r);
	assert_false(exists("/cpipe-test-wd"));
	s->working_dir = NULL;
}

static bool sleeper_running(const char *arg)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	struct dirent *de;
	bool found = false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		char path[300], buf[256];
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* cmdline is "sleep\0<arg>\0" */
		if (strcmp(buf, "sleep") == 0 && (size_t)n > 6 && strcmp(buf + 6, arg) == 0)
			found = true;
	}
	closedir(d);
	return found;
}

/* Starts `sh -c 'sleep N & sleep N'`, waits until both run, sends `sig`. */
static void kill_backgrounded(struct fixture *f, int sig, const char *secs, int want)
{
	cleanup_free char *script =
		xasprintf("sleep %s & echo started; sleep %s", secs, secs);
	struct task_spec ts = {.desc = desc_of(f, shell_stage(f, script, 0)), .env = &f->env};
	struct task *t;
	struct cp_error err = {0};
	if (runtime_local.start(f->rt, &ts, &t, &err) < 0)
		fail_msg("start: %s", err.msg);
	char buf[64];
	long long deadline = now_ms() + 5000;
	while (now_ms() < deadline) {
		struct pollfd pfd = {.fd = t->out_fd, .events = POLLIN};
		poll(&pfd, 1, 100);
		if (read(t->out_fd, buf, sizeof(buf)) > 0)
			break;
	}
	while (now_ms() < deadline && !sleeper_running(secs))
		usleep(2000);
	assert_true(sleeper_running(secs));
	usleep(50000); /* let the foreground sleep start too */
	assert_int_equal(runtime_local.kill(NULL, t, sig, &err), 0);
	int code = -1, rc;
	while ((rc = runtime_local.poll(NULL, t, &code, &err)) == 0 && now_ms() < deadline + 5000)
		usleep(1000);
	assert_int_equal(rc, 1);
	assert_int_equal(code, want);
	runtime_local.release(NULL, t);
	assert_false(sleeper_running(secs));
}

static void test_kill_leaves_no_process_behind(void **state)
{
	struct fixture *f = *state;
	kill_backgrounded(f, SIGTERM, "300.25", 128 + SIGTERM);
	kill_backgrounded(f, SIGKILL, "300.75", 128 + SIGKILL);
}

static void test_release_of_running_task_kills_it(void **state)
{
	struct fixture *f = *state;
	struct task_spec ts = {.desc = desc_of(f, shell_stage(f, "sleep 300.5", 0)),
			       .env = &f->env};
	struct task *t;
	struct cp_error err = {0};
	if (runtime_local.start(f->rt, &ts, &t, &err) < 0)
		fail_msg("start: %s", err.msg);
	/* Released while it runs, not before it started. */
	long long deadline = now_ms() + 5000;
	while (now_ms() < deadline && !sleeper_running("300.5"))
		usleep(2000);
	assert_true(sleeper_running("300.5"));
	runtime_local.release(NULL, t);
	assert_false(sleeper_running("300.5"));
}

static void test_start_errors_are_reported(void **state)
{
	struct fixture *f = *state;
	struct stage *s = shell_stage(f, "", 0);
	struct result r;
	struct cp_error err = {0};

	strvec_free(&s->command);
	strvec_push(&s->command, "cpipe-no-such-command");
	assert_int_equal(run(f, s, &r, &err), -1);
	assert_non_null(strstr(err.msg, "command \"cpipe-no-such-command\" not found in PATH"));

	cleanup_free char *script = path_join(f->dir, "noexec.sh");
	assert_int_equal(fs_write_atomic(script, "#!/bin/sh\n", 10, 0644, &err), 0);
	strvec_free(&s->command);
	strvec_push(&s->command, "./noexec.sh");
	cp_error_clear(&err);
	assert_int_equal(run(f, s, &r, &err), -1);
	assert_non_null(strstr(err.msg, "cannot execute \"./noexec.sh\": Permission denied"));

	strvec_free(&s->command);
	cp_error_clear(&err);
	assert_int_equal(run(f, s, &r, &err), -1);
	assert_string_equal(err.msg, "stage work has no command, and the local runtime does not "
				     "run images; add \"command: ...\" to it, or run it with "
				     "--runtime docker");

	/* A mount that cannot be made names the volume and the target. */
	s = shell_stage(f, "true", 1);
	set_mount(&f->mounts[0], MOUNT_BIND, script, "/usr", false);
	cp_error_clear(&err);
	assert_int_equal(run(f, s, &r, &err), -1);
	cleanup_free char *want = xasprintf("mounting %s at /usr: Not a directory", script);
	assert_string_equal(err.msg, want);

	s->working_dir = "/etc/hostname";
	s->nmounts = 0;
	cp_error_clear(&err);
	assert_int_equal(run(f, s, &r, &err), -1);
	assert_string_equal(err.msg, "working_dir /etc/hostname: Not a directory");
	s->working_dir = NULL;
}

static void test_user(void **state)
{
	struct fixture *f = *state;
	struct stage *s = shell_stage(f, "id -u; id -g", 0);
	s->working_dir = "/"; /* the project dir is 0700 */
	struct result r;
	struct cp_error err = {0};
	if (geteuid() != 0) {
		s->user = "0";
		assert_int_equal(run(f, s, &r, &err), -1);
		assert_non_null(strstr(err.msg, "cpipe is not root"));
		s->user = NULL;
		s->working_dir = NULL;
		return;
	}
	s->user = "65534:65534";
	run_ok(f, s, &r);
	assert_string_equal(r.out, "65534\n65534\n");
	result_free(&r);
	s->user = "nobody";
	run_ok(f, s, &r);
	assert_string_equal(r.out, "65534\n65534\n");
	result_free(&r);
	s->user = "cpipe-no-such-user";
	assert_int_equal(run(f, s, &r, &err), -1);
	assert_non_null(strstr(err.msg, "user \"cpipe-no-such-user\" not found"));
	s->user = NULL;
	s->working_dir = NULL;
}

static void test_volume_list_and_remove(void **state)
{
	struct fixture *f = *state;
	struct cp_error err = {0};
	assert_int_equal(runtime_local.volume_ensure(f->rt, &f->volumes[0], &err), 0);
	cleanup_free char *file = xasprintf("%s/volumes/data/f", f->state);
	assert_int_equal(fs_write_atomic(file, "12345", 5, 0644, &err), 0);
	cleanup_free char *orphan = xasprintf("%s/volumes/old", f->state);
	assert_int_equal(fs_mkdir_p(orphan, 0755, &err), 0);

	struct volume_info *v;
	size_t n;
	assert_int_equal(runtime_local.volume_list(f->rt, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "data");
	assert_true(v[0].declared);
	assert_int_equal(v[0].size, 5);
	assert_string_equal(v[1].name, "old");
	assert_false(v[1].declared);
	assert_string_equal(v[1].mountpoint, orphan);
	volume_info_free(v, n);

	assert_int_equal(runtime_local.volume_remove(f->rt, "old", &err), 0);
	assert_false(exists(orphan));
	assert_int_equal(runtime_local.volume_remove(f->rt, "old", &err), -1);
	assert_non_null(strstr(err.msg, "no such volume \"old\""));
	assert_int_equal(runtime_local.volume_remove(f->rt, "../x", &err), -1);
	assert_int_equal(runtime_find("local"), &runtime_local);
	assert_null(runtime_find("nope"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_output_goes_to_out_and_err_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_runs_in_own_pid_namespace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_named_volume_shared_between_tasks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_mount_of_project_subdir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_mounts_refuse_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_targets_never_appear_on_host, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nested_and_file_mounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_tasks_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signals_are_forwarded_to_the_command, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stage_names_resolve_to_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_working_dir_and_environment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill_leaves_no_process_behind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_of_running_task_kills_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_errors_are_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_volume_list_and_remove, setup, teardown),
	};
	return cmocka_run_group_tests_name("local", tests, NULL, NULL);
}
