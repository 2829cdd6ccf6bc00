/* The content-addressed store: cas_commit gives digest_tree's digest while
 * storing every object under its own sha256 (a tree as its listing),
 * checkout rebuilds the same tree, a missing object or a symlink out of
 * the root stops it before anything changes, the run cache round-trips,
 * and gc keeps exactly what is reachable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../artifacts/cas.h"
#include "../../artifacts/digest.h"
#include "../../lib/fs.h"

static char *tmpdir;
static struct cas *store;

static int setup(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/cpipe-cas-XXXXXX";
	if (!mkdtemp(tmpl))
		return -1;
	tmpdir = xstrdup(tmpl);
	unsetenv("CPIPE_STORE");
	struct cp_error err = {0};
	return cas_open(&store, tmpdir, &err);
}

static int teardown(void **state)
{
	(void)state;
	struct cp_error err = {0};
	cas_close(store);
	fs_rm_rf(tmpdir, &err);
	free(tmpdir);
	return 0;
}

static char *at(const char *rel)
{
	return path_join(tmpdir, rel);
}

static void put(const char *rel, const char *text, mode_t mode)
{
	cleanup_free char *p = at(rel);
	cleanup_free char *dir = path_dirname(p);
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(dir, 0755, &err), 0);
	assert_int_equal(fs_write_atomic_fast(p, text, strlen(text), mode, &err), 0);
	assert_int_equal(chmod(p, mode), 0);
}

/* A tree with every kind of entry: modes, nesting, an empty file and
 * directory, a symlink (dangling, so never followed). */
static char *make_tree(const char *rel)
{
	cleanup_free char *f1 = xasprintf("%s/a.txt", rel);
	cleanup_free char *f2 = xasprintf("%s/bin/run.sh", rel);
	cleanup_free char *f3 = xasprintf("%s/deep/er/empty", rel);
	put(f1, "hello\n", 0644);
	put(f2, "#!/bin/sh\necho hi\n", 0755);
	put(f3, "", 0600);
	char *root = at(rel);
	cleanup_free char *empty = xasprintf("%s/void", root);
	cleanup_free char *link = xasprintf("%s/deep/link", root);
	assert_int_equal(mkdir(empty, 0700), 0);
	assert_int_equal(symlink("../nowhere", link), 0);
	return root;
}

static void assert_objects_named_by_content(void)
{
	cleanup_free char *objs = path_join(tmpdir, "store/objects/sha256");
	DIR *top = opendir(objs);
	assert_non_null(top);
	int n = 0;
	for (struct dirent *de; (de = readdir(top));) {
		if (de->d_name[0] == '.')
			continue;
		cleanup_free char *sub = path_join(objs, de->d_name);
		DIR *d = opendir(sub);
		for (struct dirent *oe; d && (oe = readdir(d));) {
			if (oe->d_name[0] == '.')
				continue;
			cleanup_free char *p = path_join(sub, oe->d_name);
			cleanup_free char *want = xasprintf("sha256:%s%s", de->d_name, oe->d_name);
			char got[DIGEST_BUFLEN];
			struct cp_error err = {0};
			assert_int_equal(digest_file(got, p, NULL, &err), 0);
			assert_string_equal(got, want);
			struct stat st;
			assert_int_equal(stat(p, &st), 0);
			assert_int_equal(st.st_mode & 0777, 0600);
			n++;
		}
		if (d)
			closedir(d);
	}
	closedir(top);
	assert_true(n > 0);
}

static void commit_equals_digest_tree(void **state)
{
	(void)state;
	cleanup_free char *root = make_tree("t1");
	struct tree_digest want, got;
	struct cp_error err = {0};
	assert_int_equal(digest_tree(&want, root, NULL, &err), 0);
	assert_int_equal(cas_commit(&got, store, root, NULL, &err), 0);
	assert_string_equal(got.digest, want.digest);
	assert_int_equal(got.type, 'd');
	assert_int_equal(got.size, want.size);
	assert_int_equal(got.nfiles, want.nfiles);
	/* The tree's digest names its listing object. */
	assert_true(cas_has(store, got.digest));
	assert_int_equal(cas_check(store, 'd', got.digest, "t1", &err), 0);
	assert_objects_named_by_content();

	cleanup_free char *file = at("t1/a.txt");
	assert_int_equal(cas_commit(&got, store, file, NULL, &err), 0);
	assert_int_equal(got.type, 'f');
	assert_string_equal(got.digest,
			    "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
}

static void checkout_rebuilds_the_tree(void **state)
{
	(void)state;
	cleanup_free char *root = make_tree("t2");
	struct tree_digest td, back;
	struct cp_error err = {0};
	assert_int_equal(cas_commit(&td, store, root, NULL, &err), 0);
	cleanup_free char *vol = at("vol");
	struct cas_checkout co = CAS_CHECKOUT_INIT;
	assert_int_equal(cas_checkout_stage(&co, store, vol, "/out/model", 'd', td.digest, "m", &err), 0);
	/* Nothing visible before the commit step. */
	cleanup_free char *dest = at("vol/out/model");
	struct stat st;
	assert_int_equal(lstat(dest, &st), -1);
	assert_int_equal(cas_checkout_commit(&co, &err), 0);
	assert_int_equal(digest_tree(&back, dest, NULL, &err), 0);
	assert_string_equal(back.digest, td.digest);
	/* Over an existing, different tree: replaced whole. */
	cleanup_free char *stray = at("vol/out/model/stray");
	put("vol/out/model/stray", "x", 0644);
	assert_int_equal(cas_checkout_stage(&co, store, vol, "out/model", 'd', td.digest, "m", &err), 0);
	assert_int_equal(cas_checkout_commit(&co, &err), 0);
	assert_int_equal(lstat(stray, &st), -1);
	assert_int_equal(digest_tree(&back, dest, NULL, &err), 0);
	assert_string_equal(back.digest, td.digest);
}

static void missing_object_changes_nothing(void **state)
{
	(void)state;
	put("t3/keep.txt", "kept in the store\n", 0644);
	put("t3/lost.txt", "lost from the store\n", 0644);
	cleanup_free char *root = at("t3");
	struct tree_digest td;
	struct cp_error err = {0};
	assert_int_equal(cas_commit(&td, store, root, NULL, &err), 0);
	char lost[DIGEST_BUFLEN];
	digest_bytes(lost, "lost from the store\n", 20);
	cleanup_free char *obj = cas_object_path(store, lost);
	assert_int_equal(unlink(obj), 0);

	put("vol3/first.txt", "old\n", 0644);
	cleanup_free char *vol = at("vol3");
	struct tree_digest before, after;
	assert_int_equal(digest_tree(&before, vol, NULL, &err), 0);
	struct cas_checkout co = CAS_CHECKOUT_INIT;
	char ok[DIGEST_BUFLEN];
	digest_bytes(ok, "kept in the store\n", 18);
	assert_int_equal(cas_checkout_stage(&co, store, vol, "first.txt", 'f', ok, "first", &err), 0);
	assert_int_equal(cas_checkout_stage(&co, store, vol, "model", 'd', td.digest, "stage \"s\": vol:/model", &err), -1);
	assert_non_null(strstr(err.msg, "stage \"s\": vol:/model/lost.txt"));
	assert_non_null(strstr(err.msg, lost));
	cas_checkout_abort(&co);
	assert_int_equal(digest_tree(&after, vol, NULL, &err), 0);
	assert_string_equal(after.digest, before.digest);
}

static void restore_never_follows_a_symlink_out(void **state)
{
	(void)state;
	cleanup_free char *outside = at("outside");
	cleanup_free char *vol = at("vol4");
	cleanup_free char *link = at("vol4/escape");
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(outside, 0755, &err), 0);
	assert_int_equal(fs_mkdir_p(vol, 0755, &err), 0);
	assert_int_equal(symlink(outside, link), 0);
	char d[DIGEST_BUFLEN];
	assert_int_equal(cas_put_bytes(d, store, "payload", 7, &err), 0);
	struct cas_checkout co = CAS_CHECKOUT_INIT;
	assert_int_equal(cas_checkout_stage(&co, store, vol, "escape/x", 'f', d, "x", &err), -1);
	cas_checkout_abort(&co);
	DIR *dir = opendir(outside);
	int n = 0;
	for (struct dirent *de; (de = readdir(dir));)
		n += de->d_name[0] != '.';
	closedir(dir);
	assert_int_equal(n, 0);
}

static void hardlinks_and_specials_fail_as_digest_tree_does(void **state)
{
	(void)state;
	put("t5/a", "same inode\n", 0644);
	cleanup_free char *a = at("t5/a");
	cleanup_free char *b = at("t5/b");
	assert_int_equal(link(a, b), 0);
	cleanup_free char *root = at("t5");
	struct tree_digest td;
	struct cp_error err = {0};
	assert_int_equal(cas_commit(&td, store, root, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "hardlinks"));
	unlink(b);
	assert_int_equal(mkfifo(b, 0600), 0);
	assert_int_equal(cas_commit(&td, store, root, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "a fifo"));
}

static void run_cache_round_trips(void **state)
{
	(void)state;
	char key[DIGEST_BUFLEN];
	digest_bytes(key, "key", 3);
	cJSON *doc = cJSON_Parse("{\"run\":\"r1\",\"outputs\":{\"v:/m\":{\"digest\":\"x\",\"type\":\"f\"}}}");
	struct cp_error err = {0};
	cJSON *back = NULL;
	assert_int_equal(runcache_load(&back, store, key), 0);
	assert_int_equal(runcache_save(store, key, doc, &err), 0);
	assert_int_equal(runcache_load(&back, store, key), 1);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(back, "run")), "r1");
	cJSON_Delete(back);
	cJSON_Delete(doc);
}

static void gc_keeps_what_is_reachable(void **state)
{
	(void)state;
	put("t6/kept/inner.txt", "inner\n", 0644);
	put("t6/gone.txt", "gone\n", 0644);
	cleanup_free char *kept = at("t6/kept");
	cleanup_free char *gone = at("t6/gone.txt");
	struct tree_digest k, g;
	struct cp_error err = {0};
	assert_int_equal(cas_commit(&k, store, kept, NULL, &err), 0);
	assert_int_equal(cas_commit(&g, store, gone, NULL, &err), 0);
	cJSON *keep = cJSON_CreateArray();
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "digest", k.digest);
	cJSON_AddStringToObject(e, "type", "d");
	cJSON_AddItemToArray(keep, e);
	unsigned long long n1, b1, n2, b2;
	assert_int_equal(cas_gc(&n1, &b1, store, keep, true, &err), 0);
	assert_true(cas_has(store, g.digest));
	assert_int_equal(cas_gc(&n2, &b2, store, keep, false, &err), 0);
	assert_true(n1 > 0);
	assert_int_equal(n1, n2);
	assert_int_equal(b1, b2);
	assert_false(cas_has(store, g.digest));
	assert_int_equal(cas_check(store, 'd', k.digest, "kept", &err), 0);
	cJSON_Delete(keep);
}

/* A file big enough to be copied through mappings, over more than one
 * 64 MiB window and ending mid-chunk: the same digest as digest_file, and
 * its object holds the same bytes. */
static void big_file_commit_equals_digest_file(void **state)
{
	(void)state;
	size_t len = (65u << 20) + 3;
	cleanup_free char *data = xmalloc(len);
	uint32_t x = 12345;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (char)(x >> 24);
	}
	cleanup_free char *p = at("big.bin");
	struct cp_error err = {0};
	assert_int_equal(fs_write_atomic_fast(p, data, len, 0644, &err), 0);
	char want[DIGEST_BUFLEN];
	assert_int_equal(digest_file(want, p, NULL, &err), 0);
	struct tree_digest got;
	assert_int_equal(cas_commit(&got, store, p, NULL, &err), 0);
	assert_string_equal(got.digest, want);
	assert_int_equal(got.size, len);
	cleanup_free char *obj = cas_object_path(store, want);
	cleanup_free char *back = NULL;
	size_t blen = 0;
	assert_int_equal(fs_read_file(&back, &blen, obj, 0, &err), 0);
	assert_int_equal(blen, len);
	assert_memory_equal(back, data, len);
	assert_objects_named_by_content();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(commit_equals_digest_tree),
		cmocka_unit_test(big_file_commit_equals_digest_file),
		cmocka_unit_test(checkout_rebuilds_the_tree),
		cmocka_unit_test(missing_object_changes_nothing),
		cmocka_unit_test(restore_never_follows_a_symlink_out),
		cmocka_unit_test(hardlinks_and_specials_fail_as_digest_tree_does),
		cmocka_unit_test(run_cache_round_trips),
		cmocka_unit_test(gc_keeps_what_is_reachable),
	};
	return cmocka_run_group_tests_name("cas", tests, setup, teardown);
}
