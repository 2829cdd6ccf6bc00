/* The change journal: after any mix of changes, the listing a refresh
 * makes from the events is byte for byte the listing a full walk gives
 * (created, modified, deleted, renamed files; new directories with files;
 * a rewrite of the same size within the same second; a write through a
 * hardlink outside the tree or a descriptor still open), a second round
 * stays exact (what the first one walked is watched), and what it cannot
 * vouch for puts it in doubt instead of being guessed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../artifacts/digest.h"
#include "../../artifacts/journal.h"
#include "../../artifacts/observe.h"
#include "../../artifacts/statcache.h"
#include "../../lib/fs.h"

#include "tmpdir.h"

/* Written in place (opened with O_TRUNC, not renamed): a change of
 * content, not of name, as the listings and the journal must see it. */
static void put(const char *rel, const char *text)
{
	tmpdir_put(rel, text);
}

static void mv(const char *from, const char *to)
{
	cleanup_free char *a = at(from), *b = at(to);
	assert_int_equal(rename(a, b), 0);
}

static void rm(const char *rel)
{
	cleanup_free char *p = at(rel);
	struct cp_error err = {0};
	assert_int_equal(fs_rm_rf(p, &err), 0);
}

static void pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* A full listing of `rel` below the test directory, watched by `j` when
 * set. */
static void list(struct observe_listing *out, struct journal *j, const char *rel, const char *skip,
		 struct statcache *sc)
{
	cleanup_free char *p = at(rel);
	struct strbuf sb = STRBUF_INIT;
	struct tree_request req = {.path = p, .listing = &sb, .skip = skip, .whole_mount = true};
	struct journal_walk hook;
	if (j)
		journal_hook(&req, &hook, j, "");
	struct cp_error err = {0};
	assert_int_equal(digest_trees(&req, 1, sc, &err), 0);
	assert_int_equal(observe_parse(out, &sb, &err), 0);
	sb_free(&sb);
}

static struct journal *watched(struct observe_listing *out, const char *rel, const char *skip,
			       struct statcache *sc)
{
	cleanup_free char *p = at(rel);
	const char *why = NULL;
	struct journal *j = journal_open(p, &why);
	assert_non_null(j);
	list(out, j, rel, skip, sc);
	assert_null(journal_doubt(j));
	return j;
}

/* Refreshes *l from the journal and checks it against a full listing;
 * *l becomes the refreshed one. Returns how many paths changed. */
static size_t refresh_exact(struct observe_listing *l, struct journal *j, const char *rel,
			    const char *skip, struct statcache *sc)
{
	struct observe_listing now, full;
	struct strvec changed = {0};
	struct cp_error err = {0};
	int rc = journal_refresh(&now, &changed, j, l, skip, sc, &err);
	if (rc != 0)
		fail_msg("refresh: %d (%s)", rc, journal_doubt(j) ? journal_doubt(j) : err.msg);
	list(&full, NULL, rel, skip, sc);
	if (now.len != full.len || memcmp(now.buf, full.buf, now.len) != 0) {
		fwrite(now.buf, 1, now.len, stderr);
		fprintf(stderr, "---- full:\n");
		fwrite(full.buf, 1, full.len, stderr);
		fail_msg("the journal's listing differs from a full one");
	}
	size_t n = changed.n;
	strvec_free(&changed);
	observe_listing_free(&full);
	observe_listing_free(l);
	*l = now;
	return n;
}

/* The digest field of `rel`'s record. Caller frees. */
static char *digest_of(const struct observe_listing *l, const char *rel)
{
	const struct observe_rec *r = observe_find(l, rel);
	assert_non_null(r);
	const char *end = r->rest + r->restlen, *p = end;
	while (p > r->rest && p[-1] != '\0')
		p--;
	return xstrndup(p, (size_t)(end - p));
}

static void refresh_equals_full_listing(void **state)
{
	(void)state;
	put("v/keep.txt", "same");
	put("v/change.txt", "before");
	put("v/gone.txt", "x");
	put("v/old/a", "a");
	put("v/old/b", "b");
	put("v/movedir/x", "x");
	put("v/mode.sh", "echo");
	put("v/becomes_dir", "f");
	put("v/d1/d2/deep.txt", "deep");
	put("outside/brought_in", "in");
	put("v/src/full.txt", "full");
	cleanup_free char *target = at("v/target");
	assert_int_equal(mkdir(target, 0755), 0);
	struct observe_listing l;
	struct journal *j = watched(&l, "v", NULL, NULL);
	assert_int_equal(refresh_exact(&l, j, "v", NULL, NULL), 0);

	put("v/change.txt", "after!");
	rm("v/gone.txt");
	rm("v/old");
	put("v/results/out1.txt", "1");
	put("v/results/deep/out2.txt", "2");
	mv("v/movedir", "v/moved");
	mv("v/keep.txt", "v/d1/kept.txt");
	cleanup_free char *mode = at("v/mode.sh");
	assert_int_equal(chmod(mode, 0755), 0);
	rm("v/becomes_dir");
	put("v/becomes_dir/inner", "i");
	put("v/d1/d2/deep.txt", "deeper");
	mv("outside/brought_in", "v/d1/brought_in");
	cleanup_free char *link = at("v/link");
	assert_int_equal(symlink("change.txt", link), 0);
	mv("v/src", "v/target"); /* over an empty directory: a new inode there */
	cleanup_free char *fifo = at("v/fifo");
	assert_int_equal(mkfifo(fifo, 0644), 0);
	assert_true(refresh_exact(&l, j, "v", NULL, NULL) > 0);

	/* Second round: inside what the first one walked (it watches it). */
	put("v/results/deep/out3.txt", "3");
	put("v/moved/y", "y");
	put("v/becomes_dir/inner", "j");
	mv("v/moved", "outside/moved");
	assert_true(refresh_exact(&l, j, "v", NULL, NULL) > 0);
	/* A directory moved out is not watched into: its changes are not
	 * the tree's. */
	put("outside/moved/z", "z");
	assert_int_equal(refresh_exact(&l, j, "v", NULL, NULL), 0);
	observe_listing_free(&l);
	journal_free(j);
}

/* The stat cache's racy rule still holds: a rewrite of the same size
 * with the mtime put back is read again, and a cached digest serves. */
static void same_size_rewrite_is_seen_through_the_stat_cache(void **state)
{
	(void)state;
	cleanup_free char *cpath = at("stat.cache");
	struct statcache *sc = NULL;
	struct cp_error err = {0};
	assert_int_equal(statcache_open(&sc, cpath, &err), 0);
	put("v/w.bin", "aaaa");
	put("v/other.bin", "cccc");
	pause_ms(250); /* past the racy margin: the digests are cached */
	struct observe_listing l;
	struct journal *j = watched(&l, "v", NULL, sc);
	cleanup_free char *was = digest_of(&l, "w.bin");
	cleanup_free char *p = at("v/w.bin");
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	put("v/w.bin", "bbbb");
	struct timespec times[2] = {st.st_atim, st.st_mtim};
	assert_int_equal(utimensat(AT_FDCWD, p, times, 0), 0);
	assert_int_equal(refresh_exact(&l, j, "v", NULL, sc), 1);
	cleanup_free char *now = digest_of(&l, "w.bin");
	assert_string_not_equal(now, was);
	observe_listing_free(&l);
	journal_free(j);
	statcache_free(sc);
}

/* Writes that name no path of the tree: through a hardlink outside it,
 * and through a descriptor still open (no close yet). */
static void writes_through_other_names_are_seen(void **state)
{
	(void)state;
	put("v/linked", "one");
	put("v/open", "one");
	cleanup_free char *in = at("v/linked"), *out = at("elsewhere");
	assert_int_equal(link(in, out), 0);
	struct observe_listing l;
	struct journal *j = watched(&l, "v", NULL, NULL);
	put("elsewhere", "two, longer");
	cleanup_free char *op = at("v/open");
	int fd = open(op, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "more", 4), 4);
	assert_int_equal(refresh_exact(&l, j, "v", NULL, NULL), 2);
	close(fd);
	observe_listing_free(&l);
	journal_free(j);
}

/* The skipped path (the state directory) is neither watched nor listed. */
static void skipped_path_stays_out(void **state)
{
	(void)state;
	put("p/train.sh", "echo");
	put("p/.cpipe/runs/r1", "{}");
	struct observe_listing l;
	struct journal *j = watched(&l, "p", ".cpipe", NULL);
	put("p/.cpipe/runs/r2", "{}");
	put("p/.cpipe/new/x", "x");
	put("p/out.txt", "o");
	assert_int_equal(refresh_exact(&l, j, "p", ".cpipe", NULL), 1);
	observe_listing_free(&l);
	journal_free(j);
}

static void doubt_gives_up(void **state)
{
	(void)state;
	put("v/a", "a");
	struct observe_listing l, now;
	struct strvec changed = {0};
	struct cp_error err = {0};
	/* More events than the queue holds. */
	struct journal *j = watched(&l, "v", NULL, NULL);
	for (int i = 0; i < 6000; i++) {
		char rel[32];
		snprintf(rel, sizeof(rel), "v/f%05d", i);
		put(rel, "x");
	}
	assert_int_equal(journal_refresh(&now, &changed, j, &l, NULL, NULL, &err), 1);
	assert_non_null(journal_doubt(j));
	journal_free(j);
	observe_listing_free(&l);
	/* The root moved away. */
	j = watched(&l, "v", NULL, NULL);
	mv("v", "w");
	assert_int_equal(journal_refresh(&now, &changed, j, &l, NULL, NULL, &err), 1);
	assert_non_null(journal_doubt(j));
	journal_free(j);
	observe_listing_free(&l);
	assert_int_equal(changed.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(refresh_equals_full_listing, tmpdir_setup,
					    tmpdir_teardown),
	    cmocka_unit_test_setup_teardown(same_size_rewrite_is_seen_through_the_stat_cache,
					    tmpdir_setup, tmpdir_teardown),
	    cmocka_unit_test_setup_teardown(writes_through_other_names_are_seen, tmpdir_setup,
					    tmpdir_teardown),
	    cmocka_unit_test_setup_teardown(skipped_path_stays_out, tmpdir_setup, tmpdir_teardown),
	    cmocka_unit_test_setup_teardown(doubt_gives_up, tmpdir_setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
