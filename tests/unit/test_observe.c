/* Observing a mount: the diff of two listings names what was created,
 * changed and deleted (a new directory as one output), the filtered digest
 * equals the digest of the tree without the skipped paths, and a skipped
 * path (the state directory) is never walked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../artifacts/digest.h"
#include "../../artifacts/observe.h"
#include "../../lib/fs.h"

#include "tmpdir.h"

/* Written in place (opened with O_TRUNC, not renamed): a change of
 * content, not of name, as the listings and the journal must see it. */
static void put(const char *rel, const char *text)
{
	tmpdir_put(rel, text);
}

/* Lists `rel` below the test directory, leaving out `skip`. */
static void list(struct observe_listing *out, char digest[DIGEST_BUFLEN], const char *rel,
		 const char *skip)
{
	cleanup_free char *p = at(rel);
	struct strbuf sb = STRBUF_INIT;
	struct tree_request req = {.path = p, .listing = &sb, .skip = skip, .whole_mount = true};
	struct cp_error err = {0};
	assert_int_equal(digest_trees(&req, 1, NULL, &err), 0);
	if (digest)
		memcpy(digest, req.out.digest, DIGEST_BUFLEN);
	assert_int_equal(observe_parse(out, &sb, &err), 0);
	sb_free(&sb);
}

static void diff_names_created_changed_deleted(void **state)
{
	(void)state;
	put("v/keep.txt", "same");
	put("v/change.txt", "before");
	put("v/gone.txt", "x");
	put("v/old/a", "a");
	put("v/old/b", "b");
	struct observe_listing before, after;
	list(&before, NULL, "v", NULL);
	put("v/change.txt", "after");
	cleanup_free char *gone = at("v/gone.txt");
	unlink(gone);
	cleanup_free char *olda = at("v/old/a"), *oldb = at("v/old/b"), *old = at("v/old");
	unlink(olda);
	unlink(oldb);
	rmdir(old);
	put("v/results/out1.txt", "1");
	put("v/results/deep/out2.txt", "2");
	put("v/new.txt", "n");
	list(&after, NULL, "v", NULL);
	struct strvec w = {0}, d = {0};
	observe_diff(&w, &d, &before, &after);
	/* The new directory is one output; keep.txt is not one. */
	assert_int_equal(w.n, 3);
	assert_string_equal(w.v[0], "change.txt");
	assert_string_equal(w.v[1], "new.txt");
	assert_string_equal(w.v[2], "results");
	assert_int_equal(d.n, 2);
	assert_string_equal(d.v[0], "gone.txt");
	assert_string_equal(d.v[1], "old");
	strvec_free(&w);
	strvec_free(&d);
	/* Nothing changed: nothing observed. */
	observe_diff(&w, &d, &after, &after);
	assert_int_equal(w.n + d.n, 0);
	observe_listing_free(&before);
	observe_listing_free(&after);
}

static void filtered_digest_is_the_tree_without_the_paths(void **state)
{
	(void)state;
	put("v/data/x.csv", "1,2");
	put("v/model.ckpt", "w");
	put("v/results/out.txt", "r");
	put("w/data/x.csv", "1,2");
	struct observe_listing l, bare;
	char full[DIGEST_BUFLEN], want[DIGEST_BUFLEN], got[DIGEST_BUFLEN];
	list(&l, full, "v", NULL);
	list(&bare, want, "w", NULL);
	observe_digest(got, &l, NULL);
	assert_string_equal(got, full);
	struct strvec skip = {0};
	strvec_push(&skip, "model.ckpt");
	strvec_push(&skip, "results");
	observe_digest(got, &l, &skip);
	assert_string_equal(got, want);
	/* Overlapping paths leave out the same. */
	strvec_push(&skip, "results/out.txt");
	observe_digest(got, &l, &skip);
	assert_string_equal(got, want);
	/* "" leaves out everything: the empty tree's digest. */
	struct strvec all = {0};
	strvec_push(&all, "");
	char empty[DIGEST_BUFLEN];
	digest_bytes(empty, "", 0);
	observe_digest(got, &l, &all);
	assert_string_equal(got, empty);
	strvec_free(&all);
	/* "results" leaves out what is below it, not "results2". */
	put("v/results2", "z");
	observe_listing_free(&l);
	list(&l, NULL, "v", NULL);
	observe_digest(got, &l, &skip);
	assert_string_not_equal(got, want);
	strvec_free(&skip);
	observe_listing_free(&l);
	observe_listing_free(&bare);
}

static void skip_is_never_walked_and_special_files_are_left_out(void **state)
{
	(void)state;
	put("p/train.sh", "echo");
	put("p/.cpipe/store/obj", "big");
	cleanup_free char *fifo = at("p/pipe");
	assert_int_equal(mkfifo(fifo, 0644), 0);
	struct observe_listing l;
	list(&l, NULL, "p", ".cpipe");
	assert_int_equal(l.n, 1);
	assert_memory_equal(l.v[0].rel, "train.sh", 8);
	observe_listing_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(diff_names_created_changed_deleted, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(filtered_digest_is_the_tree_without_the_paths,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(skip_is_never_walked_and_special_files_are_left_out,
						tmpdir_setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
