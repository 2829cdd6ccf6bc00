/* Path safety: artifacts resolved inside their root never leave it through
 * a symlink, atomic writes never write through a link planted under their
 * temporary's name, and a state directory reached through a link is
 * refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../artifacts/digest.h"
#include "../../lib/fs.h"

#include "tmpdir.h"

static void put(const char *rel, const char *text)
{
	cleanup_free char *p = at(rel);
	cleanup_free char *dir = path_dirname(p);
	struct cp_error err = {0};
	if (fs_mkdir_p(dir, 0755, &err) < 0 || fs_write_atomic(p, text, strlen(text), 0644, &err) < 0)
		fail_msg("writing %s: %s", p, err.msg);
}

static void link_(const char *target, const char *rel)
{
	cleanup_free char *p = at(rel);
	if (symlink(target, p) < 0)
		fail_msg("symlink %s: %s", p, strerror(errno));
}

static char *slurp(const char *rel)
{
	cleanup_free char *p = at(rel);
	char *text = NULL;
	struct cp_error err = {0};
	if (fs_read_file(&text, NULL, p, 0, &err) < 0)
		fail_msg("%s", err.msg);
	return text;
}

/* A volume "vol" holding links a stage could leave: absolute to the host,
 * relative inside, relative climbing out. */
static char *make_volume(void)
{
	put("victim/creds.json", "{\"secret\": 1}\n");
	put("vol/real/f", "inside\n");
	cleanup_free char *victim = at("victim");
	link_(victim, "vol/abs");
	link_("real", "vol/rel");
	link_("../victim", "vol/up");
	return at("vol");
}

static void volume_paths_never_leave_the_volume(void **state)
{
	(void)state;
	cleanup_free char *vol = make_volume();
	struct tree_digest d, want;
	struct cp_error err = {0};
	unsigned long long n0 = digest_files_hashed();
	assert_int_equal(digest_tree_in(&d, vol, "/abs/creds.json", NULL, &err), -1);
	assert_non_null(strstr(err.msg, "/vol/abs (-> "));
	assert_non_null(strstr(err.msg, "leads outside"));
	assert_int_equal(digest_tree_in(&d, vol, "/up/creds.json", NULL, &err), -1);
	assert_non_null(strstr(err.msg, "/vol/up (-> ../victim) leads outside"));
	assert_int_equal(digest_tree_in(&d, vol, "/up/../../victim", NULL, &err), -1);
	assert_int_equal(digest_files_hashed(), n0); /* the host file was never read */

	/* A relative link inside the volume resolves as the stage saw it. */
	cleanup_free char *real = at("vol/real/f");
	assert_int_equal(digest_tree(&want, real, NULL, &err), 0);
	assert_int_equal(digest_tree_in(&d, vol, "/rel/f", NULL, &err), 0);
	assert_string_equal(d.digest, want.digest);
	assert_int_equal(d.type, 'f');

	/* The last component is recorded as the link it is. */
	assert_int_equal(digest_tree_in(&d, vol, "/abs", NULL, &err), 0);
	assert_int_equal(d.type, 'l');
	/* The volume itself, with its links, digests as digest_tree does. */
	assert_int_equal(digest_tree(&want, vol, NULL, &err), 0);
	assert_int_equal(digest_tree_in(&d, vol, "/", NULL, &err), 0);
	assert_string_equal(d.digest, want.digest);

	struct stat st;
	assert_int_equal(fs_lstat_beneath(&st, vol, "/abs/creds.json", &err), -1);
	assert_int_equal(fs_lstat_beneath(&st, vol, "/missing/x", &err), 1);
	assert_int_equal(fs_lstat_beneath(&st, vol, "/rel/f", &err), 0);
}

static void metrics_reads_stay_inside_the_volume(void **state)
{
	(void)state;
	cleanup_free char *vol = make_volume();
	struct cp_error err = {0};
	char *text = NULL;
	assert_int_equal(fs_read_file_beneath(&text, NULL, vol, "/abs/creds.json", 1 << 20, &err),
			 -1);
	assert_non_null(strstr(err.msg, "leads outside"));
	assert_null(text);
	link_("abs/creds.json", "vol/m.json"); /* the last component, through a link */
	assert_int_equal(fs_read_file_beneath(&text, NULL, vol, "/m.json", 1 << 20, &err), -1);
	assert_int_equal(fs_read_file_beneath(&text, NULL, vol, "/rel/f", 1 << 20, &err), 0);
	assert_string_equal(text, "inside\n");
	free(text);
}

static void atomic_write_replaces_links_never_writes_through_them(void **state)
{
	(void)state;
	put("victim/creds.json", "canary\n");
	cleanup_free char *victim = at("victim/creds.json");
	cleanup_free char *tmpname = xasprintf("lock.tmp.%ld", (long)getpid());
	link_(victim, tmpname);
	link_(victim, "lock");
	cleanup_free char *lock = at("lock");
	struct cp_error err = {0};
	assert_int_equal(fs_write_atomic(lock, "new\n", 4, 0644, &err), 0);
	cleanup_free char *v = slurp("victim/creds.json");
	assert_string_equal(v, "canary\n");
	struct stat st;
	assert_int_equal(lstat(lock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	cleanup_free char *l = slurp("lock");
	assert_string_equal(l, "new\n");
	/* The project lock is not created or opened through a link either. */
	cleanup_free char *plock = at("plock");
	link_(victim, "plock");
	int fd = -1;
	assert_int_equal(fs_lock(&fd, plock, "running", &err), -1);
}

static void a_state_dir_reached_through_a_link_is_refused(void **state)
{
	(void)state;
	put("victim/canary", "x\n");
	cleanup_free char *victim = at("victim");
	cleanup_free char *state_dir = at("proj/.cpipe");
	struct cp_error err = {0};
	assert_int_equal(fs_state_dir_check(state_dir, &err), 0); /* missing is fine */
	put("proj/.cpipe/volumes/ok/f", "x\n");
	assert_int_equal(fs_state_dir_check(state_dir, &err), 0);
	link_(victim, "proj/.cpipe/volumes/bad");
	err = (struct cp_error){0};
	assert_int_equal(fs_state_dir_check(state_dir, &err), -1);
	assert_int_equal(err.code, EXIT_USAGE);
	assert_non_null(strstr(err.msg, "/proj/.cpipe/volumes/bad is a symlink"));
	assert_non_null(strstr(err.msg, "remove the link"));
	cleanup_free char *bad = at("proj/.cpipe/volumes/bad");
	unlink(bad);
	link_(victim, "proj/.cpipe/runs");
	assert_int_equal(fs_state_dir_check(state_dir, &err), -1);
	assert_non_null(strstr(err.msg, "/proj/.cpipe/runs is a symlink"));
	cleanup_free char *proj_state = at("proj2/.cpipe");
	put("proj2/x", "x\n");
	link_(victim, "proj2/.cpipe");
	assert_int_equal(fs_state_dir_check(proj_state, &err), -1);
	assert_non_null(strstr(err.msg, "/proj2/.cpipe is a symlink"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(volume_paths_never_leave_the_volume, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(metrics_reads_stay_inside_the_volume, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(atomic_write_replaces_links_never_writes_through_them,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(a_state_dir_reached_through_a_link_is_refused, tmpdir_setup,
						tmpdir_teardown),
	};
	return cmocka_run_group_tests_name("paths", tests, NULL, NULL);
}
