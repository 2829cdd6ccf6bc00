/* The docker runtime's pieces that need no container: the build context tar
 * (.dockerignore semantics as the docker CLI applies them), and, when a
 * daemon answers, reading a volume back through the API (host path and the
 * helper-container archive stream). */
#include <archive.h>
#include <archive_entry.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/fs.h"
#include "../../pipeline/task.h"
#include "../../stages/docker_internal.h"

static void put(const char *dir, const char *rel, const char *content)
{
	char *path = path_join(dir, rel);
	char *parent = path_dirname(path);
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(parent, 0755, &err), 0);
	assert_int_equal(fs_write_atomic(path, content, strlen(content), 0644, &err), 0);
	free(parent);
	free(path);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The tar's entry names, sorted, one a line (directories end in '/'). */
static char *context_listing(const char *dir, const char *dockerfile, const char *skip)
{
	FILE *f = tmpfile();
	assert_non_null(f);
	struct cp_error err = {0};
	if (docker_context_tar(f, dir, dockerfile, skip, &err) < 0)
		fail_msg("context tar: %s", err.msg);
	rewind(f);
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_FILE(a, f), ARCHIVE_OK);
	struct strvec names = {0};
	struct archive_entry *e;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		assert_int_equal(archive_entry_uid(e), 0);
		const char *n = archive_entry_pathname(e);
		int len = (int)strlen(n);
		if (len && n[len - 1] == '/')
			len--;
		bool dir_entry = S_ISDIR(archive_entry_mode(e));
		strvec_push_take(&names, xasprintf("%.*s%s", len, n, dir_entry ? "/" : ""));
	}
	archive_read_free(a);
	fclose(f);
	qsort(names.v, names.n, sizeof(char *), str_cmp);
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < names.n; i++)
		sb_addf(&sb, "%s\n", names.v[i]);
	strvec_free(&names);
	return sb_detach(&sb);
}

static char *make_tmpdir(void)
{
	char *d = xstrdup("/tmp/cpipe-test-docker-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rm_tmpdir(char *d)
{
	struct cp_error err = {0};
	fs_rm_rf(d, &err);
	free(d);
}

static void context_without_dockerignore_has_everything(void **state)
{
	(void)state;
	char *d = make_tmpdir();
	put(d, "Dockerfile", "FROM scratch\n");
	put(d, "src/a.py", "a");
	put(d, ".hidden", "h");
	char *got = context_listing(d, NULL, NULL);
	assert_string_equal(got, ".hidden\nDockerfile\nsrc/\nsrc/a.py\n");
	free(got);
	rm_tmpdir(d);
}

static void dockerignore_patterns_negations_and_double_star(void **state)
{
	(void)state;
	char *d = make_tmpdir();
	put(d, "Dockerfile", "FROM scratch\n");
	put(d, ".dockerignore", "# comment\n\n  *.log  \ndata\n!data/keep.txt\n**/__pycache__\n"
				"/secret?.txt\nbuild/**\n[xy].bin\n");
	put(d, "app.log", "x");
	put(d, "sub/app.log", "x"); /* "*.log" does not cross directories */
	put(d, "data/keep.txt", "k");
	put(d, "data/drop.txt", "d");
	put(d, "data/deep/drop.txt", "d");
	put(d, "pkg/__pycache__/m.pyc", "c");
	put(d, "__pycache__/top.pyc", "c");
	put(d, "secret1.txt", "s");
	put(d, "secret12.txt", "s");
	put(d, "build/out.o", "o");
	put(d, "x.bin", "b");
	put(d, "z.bin", "b");
	char *got = context_listing(d, NULL, NULL);
	assert_string_equal(got, ".dockerignore\n"
				 "Dockerfile\n"
				 "build/\n"
				 "data/keep.txt\n"
				 "pkg/\n"
				 "secret12.txt\n"
				 "sub/\n"
				 "sub/app.log\n"
				 "z.bin\n");
	free(got);
	rm_tmpdir(d);
}

static void dockerfile_and_dockerignore_are_kept_even_when_ignored(void **state)
{
	(void)state;
	char *d = make_tmpdir();
	put(d, "docker/train.Dockerfile", "FROM scratch\n");
	put(d, ".dockerignore", "*\n");
	put(d, "big.bin", "b");
	char *got = context_listing(d, "docker/train.Dockerfile", NULL);
	assert_string_equal(got, ".dockerignore\ndocker/train.Dockerfile\n");
	free(got);
	rm_tmpdir(d);
}

static void state_dir_and_outside_dockerfile(void **state)
{
	(void)state;
	char *d = make_tmpdir();
	char *ctx = path_join(d, "ctx");
	put(d, "Dockerfile.outside", "FROM scratch\n");
	put(ctx, "a", "a");
	put(ctx, ".cpipe/volumes/v/huge", "x");
	char *skip = path_join(ctx, ".cpipe");
	char *got = context_listing(ctx, "../Dockerfile.outside", skip);
	assert_string_equal(got, ".cpipe.Dockerfile\na\n");
	free(got);
	free(skip);
	free(ctx);
	rm_tmpdir(d);
}

/* ---- against a daemon ---- */

struct daemon {
	struct pipeline *p;
	struct runtime *rt;
	char *dir;
};

static int daemon_setup(void **state)
{
	struct daemon *dm = xcalloc(1, sizeof(*dm));
	struct cp_error err = {0};
	char name[64];
	snprintf(name, sizeof(name), "cpu-%d", (int)getpid());
	dm->dir = make_tmpdir();
	char *yaml = xasprintf("name: %s\nvolumes:\n  data: {}\n"
			       "stages:\n  a: {image: cpipe-test/absent-image:1, command: 'true'}\n",
			       name);
	struct spec_options o = {.dir = dm->dir};
	if (spec_load_string(&dm->p, "cpipe.yml", yaml, strlen(yaml), &o, &err) < 0)
		fail_msg("load: %s", err.msg);
	free(yaml);
	if (task_runtime_open(&runtime_docker, &dm->rt, dm->p, dm->dir, &err) < 0)
		dm->rt = NULL; /* no daemon: the tests skip */
	*state = dm;
	return 0;
}

static int daemon_teardown(void **state)
{
	struct daemon *dm = *state;
	if (dm->rt) {
		struct cp_error err = {0};
		runtime_docker.volume_remove(dm->rt, "data", &err);
		runtime_docker.close(dm->rt);
	}
	pipeline_free(dm->p);
	rm_tmpdir(dm->dir);
	free(dm);
	return 0;
}

struct collect {
	struct strvec lines;
};

static int collect_visit(void *ud, const struct volume_entry *e, struct cp_error *err)
{
	struct collect *c = ud;
	struct strbuf content = STRBUF_INIT;
	if (e->read) {
		char buf[7];
		long n;
		while ((n = e->read(e, buf, sizeof(buf), err)) > 0)
			sb_add(&content, buf, (size_t)n);
		if (n < 0)
			return -1;
	}
	char type = S_ISDIR(e->mode) ? 'd' : S_ISLNK(e->mode) ? 'l' : S_ISREG(e->mode) ? 'f' : '?';
	strvec_push_take(&c->lines, xasprintf("%c %s %lld %s", type, e->path, e->size,
					      e->link ? e->link : sb_str(&content)));
	sb_free(&content);
	return 0;
}

static char *joined(struct strvec *sv)
{
	qsort(sv->v, sv->n, sizeof(char *), str_cmp);
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < sv->n; i++)
		sb_addf(&sb, "%s\n", sv->v[i]);
	return sb_detach(&sb);
}

static void volume_reads_back_through_host_path_and_archive(void **state)
{
	struct daemon *dm = *state;
	if (!dm->rt)
		skip();
	struct cp_error err = {0};
	const struct volume *v = pipeline_volume(dm->p, "data");
	assert_int_equal(runtime_docker.volume_ensure(dm->rt, v, &err), 0);
	char *host = NULL;
	if (runtime_docker.volume_host_path(dm->rt, "data", &host, &err) < 0)
		fail_msg("host path: %s", err.msg);
	put(host, "model/ckpt.bin", "weights-0123456789");
	put(host, "model/meta/info.json", "{}");
	char *link = path_join(host, "model/latest");
	assert_int_equal(symlink("ckpt.bin", link), 0);
	free(link);
	free(host);

	struct collect c = {0};
	if (runtime_docker.volume_read_tree(dm->rt, "data", "/model", collect_visit, &c, &err) != 0)
		fail_msg("read tree: %s", err.msg);
	char *got = joined(&c.lines);
	assert_string_equal(got, "d  0 \n"
				 "d meta 0 \n"
				 "f ckpt.bin 18 weights-0123456789\n"
				 "f meta/info.json 2 {}\n"
				 "l latest 0 ckpt.bin\n");
	free(got);
	strvec_free(&c.lines);

	/* A single file is its own root. */
	assert_int_equal(runtime_docker.volume_read_tree(dm->rt, "data", "/model/ckpt.bin",
							 collect_visit, &c, &err),
			 0);
	got = joined(&c.lines);
	assert_string_equal(got, "f  18 weights-0123456789\n");
	free(got);
	strvec_free(&c.lines);

	assert_int_equal(runtime_docker.volume_read_tree(dm->rt, "data", "/absent", collect_visit,
							 &c, &err),
			 1);
	assert_int_equal(c.lines.n, 0);
}

static void missing_image_names_image_and_daemon_reason(void **state)
{
	struct daemon *dm = *state;
	if (!dm->rt)
		skip();
	struct cp_error err = {0};
	char *id = NULL;
	struct task_desc desc;
	task_desc_init(&desc, dm->p, &dm->p->stages[0]);
	/* Without `build` (status) nothing is pulled: 1, no image, no error. */
	assert_int_equal(runtime_docker.image_prepare(dm->rt, &desc, false, &id, &err), 1);
	assert_null(id);
	assert_string_equal(err.msg, "");
	assert_int_equal(runtime_docker.image_prepare(dm->rt, &desc, true, &id, &err), -1);
	assert_null(id);
	assert_non_null(strstr(err.msg, "image \"cpipe-test/absent-image:1\" is not available "
					"locally and could not be pulled: "));
	assert_int_equal(err.code, EXIT_STAGE_FAILED);
}

/* A unix socket that takes connections (the kernel's backlog) and never
 * answers: a wedged daemon. Its path is in DOCKER_HOST. */
struct hung {
	char *dir;
	int fd;
};

static int hung_setup(void **state)
{
	struct hung *h = xcalloc(1, sizeof(*h));
	h->dir = make_tmpdir();
	cleanup_free char *path = path_join(h->dir, "sock");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(h->fd >= 0);
	assert_int_equal(bind(h->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(h->fd, 16), 0);
	cleanup_free char *host = xasprintf("unix://%s", path);
	setenv("DOCKER_HOST", host, 1);
	*state = h;
	return 0;
}

static int hung_teardown(void **state)
{
	struct hung *h = *state;
	unsetenv("DOCKER_HOST");
	close(h->fd);
	rm_tmpdir(h->dir);
	free(h);
	return 0;
}

static void hung_daemon_is_unreachable_once_the_window_is_over(void **state)
{
	struct hung *h = *state;
	struct docker *d = NULL;
	struct cp_error err = {0};
	long long t0 = now_ms();
	assert_int_equal(docker_open(&d, &err), -1);
	long long took = now_ms() - t0;
	assert_null(d);
	assert_int_equal(err.code, EXIT_RUNTIME);
	assert_non_null(strstr(err.msg, "did not answer GET /_ping within 3.0s"));
	assert_non_null(strstr(err.msg, h->dir));
	assert_true(took >= 2500 && took < 15000);
}

static void *interrupt_soon(void *arg)
{
	(void)arg;
	usleep(300 * 1000);
	runtime_interrupts++;
	return NULL;
}

static void a_signal_ends_a_request_to_a_hung_daemon(void **state)
{
	(void)state;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, interrupt_soon, NULL), 0);
	struct docker *d = NULL;
	struct cp_error err = {0};
	long long t0 = now_ms();
	assert_int_equal(docker_open(&d, &err), -1);
	long long took = now_ms() - t0;
	pthread_join(th, NULL);
	assert_int_equal(err.code, EXIT_INTERRUPTED);
	assert_non_null(strstr(err.msg, "interrupted"));
	/* Well before the 3 s window: the signal, not the timeout, ended it. */
	assert_true(took < 2500);
}

static void owner_label_names_host_pid_and_start_time(void **state)
{
	(void)state;
	cleanup_free char *label = docker_owner_label();
	char host[256] = "";
	gethostname(host, sizeof(host));
	cleanup_free char *want = xasprintf("%s/%ld/", host, (long)getpid());
	assert_true(str_has_prefix(label, want));
	const char *start = label + strlen(want);
	assert_true(*start >= '0' && *start <= '9');
}

int main(void)
{
	/* Short answer windows for the hung-socket tests; real daemons answer
	 * in milliseconds. Read once, before any request. */
	setenv("CPIPE_DOCKER_TIMEOUT", "3", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(hung_daemon_is_unreachable_once_the_window_is_over,
						hung_setup, hung_teardown),
		cmocka_unit_test_setup_teardown(a_signal_ends_a_request_to_a_hung_daemon, hung_setup,
						hung_teardown),
		cmocka_unit_test(owner_label_names_host_pid_and_start_time),
		cmocka_unit_test(context_without_dockerignore_has_everything),
		cmocka_unit_test(dockerignore_patterns_negations_and_double_star),
		cmocka_unit_test(dockerfile_and_dockerignore_are_kept_even_when_ignored),
		cmocka_unit_test(state_dir_and_outside_dockerfile),
		cmocka_unit_test_setup_teardown(volume_reads_back_through_host_path_and_archive,
						daemon_setup, daemon_teardown),
		cmocka_unit_test_setup_teardown(missing_image_names_image_and_daemon_reason,
						daemon_setup, daemon_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
