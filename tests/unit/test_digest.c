/* Content digests and the stat cache: file digests equal sha256sum, the
 * canonical directory listing, symlinks recorded and never followed, the
 * tree builder, and a stat cache that spares reads, notices changes and
 * survives (or safely discards) its file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../artifacts/digest.h"
#include "../../artifacts/statcache.h"
#include "../../lib/fs.h"

#include "tmpdir.h"

static void put(const char *rel, const void *data, size_t len, mode_t mode)
{
	cleanup_free char *p = at(rel);
	cleanup_free char *dir = path_dirname(p);
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(dir, 0755, &err), 0);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(p, mode), 0);
}

static void puts_(const char *rel, const char *text)
{
	put(rel, text, strlen(text), 0644);
}

static void mkdir_(const char *rel, mode_t mode)
{
	cleanup_free char *p = at(rel);
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(p, mode, &err), 0);
	assert_int_equal(chmod(p, mode), 0);
}

static void symlink_(const char *target, const char *rel)
{
	cleanup_free char *p = at(rel);
	unlink(p);
	assert_int_equal(symlink(target, p), 0);
}

/* Deterministic pseudo-random bytes. */
static char *noise(size_t n, uint32_t seed)
{
	char *b = xmalloc(n ? n : 1);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (char)x;
	}
	return b;
}

static void sha256sum_of(char out[DIGEST_BUFLEN], const char *path)
{
	cleanup_free char *cmd = xasprintf("sha256sum -- '%s'", path);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	char hex[65] = "";
	assert_int_equal(fscanf(f, "%64s", hex), 1);
	assert_int_equal(pclose(f), 0);
	snprintf(out, DIGEST_BUFLEN, "sha256:%s", hex);
}

static void tree(struct tree_digest *out, const char *rel, struct statcache *sc)
{
	cleanup_free char *p = at(rel);
	struct cp_error err = {0};
	if (digest_tree(out, p, sc, &err) < 0)
		fail_msg("digest_tree %s: %s", p, err.msg);
}

static void file_digest(char out[DIGEST_BUFLEN], const char *rel, struct statcache *sc)
{
	cleanup_free char *p = at(rel);
	struct cp_error err = {0};
	if (digest_file(out, p, sc, &err) < 0)
		fail_msg("digest_file %s: %s", p, err.msg);
}

/* The stat cache stores a digest only once the file's ctime is older than
 * the racy margin: wait that long after writing what a test wants cached. */
static void wait_past_racy_margin(const char *rel)
{
	cleanup_free char *p = at(rel);
	struct stat st;
	assert_int_equal(lstat(p, &st), 0);
	usleep(st.st_ctim.tv_nsec == 0 ? 2100000 : 150000);
}

static void file_digests_equal_sha256sum(void **state)
{
	(void)state;
	const size_t sizes[] = {0, 1, 55, 64, 4095, 65536, 65537, (1u << 20) - 1, 1u << 20,
				(1u << 20) + 1, 3 * (1u << 20) + 7};
	for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
		cleanup_free char *rel = xasprintf("f%zu", sizes[i]);
		cleanup_free char *data = noise(sizes[i], (uint32_t)i);
		put(rel, data, sizes[i], 0644);
		cleanup_free char *p = at(rel);
		char want[DIGEST_BUFLEN], got[DIGEST_BUFLEN];
		sha256sum_of(want, p);
		file_digest(got, rel, NULL);
		assert_string_equal(got, want);
		assert_true(digest_is_valid(got));
	}
}

static void digest_bytes_and_stream_agree(void **state)
{
	(void)state;
	char one[DIGEST_BUFLEN], streamed[DIGEST_BUFLEN];
	digest_bytes(one, "abc", 3);
	assert_string_equal(one, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f"
				 "20015ad");
	struct digest_ctx c;
	digest_init(&c);
	digest_update(&c, "a", 1);
	digest_update(&c, "", 0);
	digest_update(&c, "bc", 2);
	digest_final(streamed, &c);
	assert_string_equal(streamed, one);
	uint8_t md[32];
	assert_int_equal(digest_parse(md, one), 0);
	char back[DIGEST_BUFLEN];
	digest_format(back, md);
	assert_string_equal(back, one);
	assert_false(digest_is_valid("sha256:BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61"
				     "f20015ad"));
	assert_false(digest_is_valid("sha256:ba78"));
	assert_false(digest_is_valid("md5:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2"
				     "0015ad"));
}

static void add_record(struct strbuf *sb, const char *rel, char type, const char *mode,
		       const char *size, const char *digest)
{
	sb_add(sb, rel, strlen(rel) + 1);
	sb_addc(sb, type);
	sb_addc(sb, '\0');
	sb_add(sb, mode, strlen(mode) + 1);
	sb_add(sb, size, strlen(size) + 1);
	sb_adds(sb, digest);
	sb_addc(sb, '\n');
}

/* The exact bytes of the documented listing, hashed by hand. */
static void directory_digest_is_the_documented_listing(void **state)
{
	(void)state;
	puts_("canon/a", "hi\n");
	mkdir_("canon/sub", 0755);
	put("canon/sub/run", "#!/bin/sh\n", 10, 04755);
	symlink_("../a", "canon/sub/l");
	mkdir_("canon/sub/empty", 0700);
	puts_("canon/a-b", "");

	char hi[DIGEST_BUFLEN], run[DIGEST_BUFLEN], link[DIGEST_BUFLEN], empty[DIGEST_BUFLEN];
	digest_bytes(hi, "hi\n", 3);
	digest_bytes(run, "#!/bin/sh\n", 10);
	digest_bytes(link, "../a", 4);
	digest_bytes(empty, "", 0);
	struct strbuf sb = STRBUF_INIT;
	/* Bytewise order: "a" < "a-b" ('-' 0x2d) < "sub" < "sub/empty" < "sub/l". */
	add_record(&sb, "a", 'f', "644", "3", hi);
	add_record(&sb, "a-b", 'f', "644", "0", empty);
	add_record(&sb, "sub", 'd', "755", "0", "");
	add_record(&sb, "sub/empty", 'd', "700", "0", "");
	add_record(&sb, "sub/l", 'l', "777", "4", link);
	add_record(&sb, "sub/run", 'f', "4755", "10", run);
	char want[DIGEST_BUFLEN];
	digest_bytes(want, sb.buf, sb.len);
	sb_free(&sb);

	struct tree_digest td;
	tree(&td, "canon", NULL);
	assert_string_equal(td.digest, want);
	assert_int_equal(td.type, 'd');
	assert_int_equal(td.nfiles, 3);
	assert_int_equal(td.size, 13);

	struct tree_digest empty_dir;
	mkdir_("nothing", 0755);
	tree(&empty_dir, "nothing", NULL);
	assert_string_equal(empty_dir.digest, empty);
	assert_int_equal(empty_dir.nfiles, 0);
}

static void directory_digest_tracks_content_mode_and_names_not_mtime(void **state)
{
	(void)state;
	puts_("t/a", "alpha\n");
	puts_("t/sub/b", "beta\n");
	put("t/sub/c", "gamma\n", 6, 0755);
	struct tree_digest d0, d;
	tree(&d0, "t", NULL);
	tree(&d, "t", NULL);
	assert_string_equal(d.digest, d0.digest);

	cleanup_free char *b = at("t/sub/b");
	struct timespec ts[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
	assert_int_equal(utimensat(AT_FDCWD, b, ts, 0), 0);
	tree(&d, "t", NULL);
	assert_string_equal(d.digest, d0.digest); /* mtime alone: same */

	puts_("t/sub/b", "BETA\n");
	tree(&d, "t", NULL);
	assert_string_not_equal(d.digest, d0.digest); /* content */
	puts_("t/sub/b", "beta\n");
	tree(&d, "t", NULL);
	assert_string_equal(d.digest, d0.digest);

	assert_int_equal(chmod(b, 0600), 0);
	tree(&d, "t", NULL);
	assert_string_not_equal(d.digest, d0.digest); /* mode */
	assert_int_equal(chmod(b, 0644), 0);

	cleanup_free char *b2 = at("t/sub/b2");
	assert_int_equal(rename(b, b2), 0);
	tree(&d, "t", NULL);
	assert_string_not_equal(d.digest, d0.digest); /* name */
	assert_int_equal(rename(b2, b), 0);
	tree(&d, "t", NULL);
	assert_string_equal(d.digest, d0.digest);

	puts_("t/new", "");
	tree(&d, "t", NULL);
	assert_string_not_equal(d.digest, d0.digest); /* added file */
	cleanup_free char *n = at("t/new");
	unlink(n);
	mkdir_("t/newdir", 0755);
	tree(&d, "t", NULL);
	assert_string_not_equal(d.digest, d0.digest); /* added empty directory */
}

static void symlinks_are_recorded_never_followed(void **state)
{
	(void)state;
	mkdir_("links", 0755);
	symlink_("/etc/passwd", "links/passwd");
	symlink_("/etc", "links/etc");
	unsigned long long before = digest_files_hashed();
	struct tree_digest d0, d;
	tree(&d0, "links", NULL);
	assert_int_equal(digest_files_hashed(), before); /* /etc/passwd was not read */
	assert_int_equal(d0.nfiles, 0);                  /* /etc was not walked */

	char want[DIGEST_BUFLEN];
	digest_bytes(want, "/etc/passwd", 11);
	struct tree_digest one;
	tree(&one, "links/passwd", NULL);
	assert_int_equal(one.type, 'l');
	assert_string_equal(one.digest, want);
	assert_int_equal(one.size, 11);

	symlink_("/etc/group", "links/passwd");
	tree(&d, "links", NULL);
	assert_string_not_equal(d.digest, d0.digest);
	assert_int_equal(digest_files_hashed(), before);
}

static void builder_matches_digest_tree(void **state)
{
	(void)state;
	puts_("bt/x", "x\n");
	mkdir_("bt/d", 0750);
	put("bt/d/y", "yy\n", 3, 0600);
	symlink_("x", "bt/d/z");
	struct tree_digest td;
	tree(&td, "bt", NULL);

	char x[DIGEST_BUFLEN], y[DIGEST_BUFLEN], z[DIGEST_BUFLEN], got[DIGEST_BUFLEN];
	file_digest(x, "bt/x", NULL);
	file_digest(y, "bt/d/y", NULL);
	digest_bytes(z, "x", 1);
	struct tree_builder b = TREE_BUILDER_INIT;
	struct cp_error err = {0};
	/* Any order, as a tar stream might give them. */
	assert_int_equal(tree_builder_add(&b, "d/z", 'l', 0777, 1, z, &err), 0);
	assert_int_equal(tree_builder_add(&b, "x", 'f', 0644, 2, x, &err), 0);
	assert_int_equal(tree_builder_add(&b, "d/y", 'f', 0600, 3, y, &err), 0);
	assert_int_equal(tree_builder_add(&b, "d", 'd', 0750, 0, NULL, &err), 0);
	assert_int_equal(tree_builder_finish(got, &b, &err), 0);
	assert_string_equal(got, td.digest);
	assert_int_equal(b.nfiles, td.nfiles);
	assert_int_equal(b.size, td.size);
	tree_builder_free(&b);
}

static void builder_rejects_malformed_entries(void **state)
{
	(void)state;
	char e[DIGEST_BUFLEN], out[DIGEST_BUFLEN];
	digest_bytes(e, "", 0);
	struct tree_builder b = TREE_BUILDER_INIT;
	struct cp_error err = {0};
	const char *bad[] = {"", "/a", "a/", "a//b", "./a", "a/./b", "a/../b", "..", "."};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_int_equal(tree_builder_add(&b, bad[i], 'f', 0644, 0, e, &err), -1);
	assert_int_equal(tree_builder_add(&b, "a", 'x', 0644, 0, e, &err), -1);
	assert_int_equal(tree_builder_add(&b, "a", 'f', 0644, 0, "sha256:00", &err), -1);
	assert_int_equal(tree_builder_add(&b, "a", 'f', 0644, 0, NULL, &err), -1);
	assert_int_equal(tree_builder_add(&b, "a", 'd', 0755, 0, e, &err), -1);
	assert_int_equal(tree_builder_add(&b, "a", 'f', 010000, 0, e, &err), -1);
	assert_int_equal(b.n, 0);

	assert_int_equal(tree_builder_add(&b, "a", 'f', 0644, 0, e, &err), 0);
	assert_int_equal(tree_builder_add(&b, "a", 'f', 0644, 0, e, &err), 0);
	assert_int_equal(tree_builder_finish(out, &b, &err), -1);
	assert_non_null(strstr(err.msg, "listed twice"));
	tree_builder_free(&b);

	assert_int_equal(tree_builder_add(&b, "dir/a", 'f', 0644, 0, e, &err), 0);
	assert_int_equal(tree_builder_finish(out, &b, &err), -1);
	assert_non_null(strstr(err.msg, "not listed"));
	tree_builder_free(&b);

	assert_int_equal(tree_builder_add(&b, "f", 'f', 0644, 0, e, &err), 0);
	assert_int_equal(tree_builder_add(&b, "f/a", 'f', 0644, 0, e, &err), 0);
	assert_int_equal(tree_builder_finish(out, &b, &err), -1);
	assert_non_null(strstr(err.msg, "not a directory"));
	tree_builder_free(&b);
}

static void special_files_and_inner_hardlinks_are_errors(void **state)
{
	(void)state;
	struct cp_error err = {0};
	struct tree_digest d;
	puts_("sp/ok", "ok\n");
	cleanup_free char *fifo = at("sp/fifo");
	assert_int_equal(mkfifo(fifo, 0644), 0);
	cleanup_free char *root = at("sp");
	assert_int_equal(digest_tree(&d, root, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "sp/fifo is a fifo"));
	assert_int_equal(digest_tree(&d, fifo, NULL, &err), -1); /* and does not block */
	char dg[DIGEST_BUFLEN];
	assert_int_equal(digest_file(dg, fifo, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "not a regular file"));
	unlink(fifo);

	cleanup_free char *sock = at("sp/sock");
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(digest_tree(&d, root, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "sp/sock is a socket"));
	close(s);
	unlink(sock);

	/* A hardlink to a file outside the tree is just a file ... */
	puts_("outside", "o\n");
	cleanup_free char *outside = at("outside");
	cleanup_free char *in1 = at("sp/in1");
	assert_int_equal(link(outside, in1), 0);
	assert_int_equal(digest_tree(&d, root, NULL, &err), 0);
	/* ... two names for one file inside it are an error naming both. */
	cleanup_free char *in2 = at("sp/in2");
	assert_int_equal(link(outside, in2), 0);
	assert_int_equal(digest_tree(&d, root, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "sp/in1 and "));
	assert_non_null(strstr(err.msg, "sp/in2 are hardlinks"));

	cleanup_free char *missing = at("missing");
	assert_int_equal(digest_tree(&d, missing, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "missing"));
}

/* Several files over the threshold for the thread pool: the digest equals
 * the one built from per-file digests, whatever the scheduling. */
static void threaded_hashing_is_deterministic(void **state)
{
	(void)state;
	struct tree_builder b = TREE_BUILDER_INIT;
	struct cp_error err = {0};
	assert_int_equal(tree_builder_add(&b, "d", 'd', 0755, 0, NULL, &err), 0);
	mkdir_("big/d", 0755);
	for (int i = 0; i < 6; i++) {
		size_t n = (size_t)(i + 1) * (1u << 20) + (size_t)i;
		cleanup_free char *rel = xasprintf("big/%sf%d", i % 2 ? "d/" : "", i);
		cleanup_free char *data = noise(n, (uint32_t)(100 + i));
		put(rel, data, n, 0644);
		char dg[DIGEST_BUFLEN];
		cleanup_free char *p = at(rel);
		sha256sum_of(dg, p);
		assert_int_equal(tree_builder_add(&b, rel + 4, 'f', 0644, n, dg, &err), 0);
	}
	char want[DIGEST_BUFLEN];
	assert_int_equal(tree_builder_finish(want, &b, &err), 0);
	tree_builder_free(&b);
	for (int round = 0; round < 3; round++) {
		unsigned long long before = digest_files_hashed();
		struct tree_digest d;
		tree(&d, "big", NULL);
		assert_string_equal(d.digest, want);
		assert_int_equal(d.nfiles, 6);
		assert_int_equal(digest_files_hashed() - before, 6);
	}
}

static struct statcache *cache_open(const char *rel)
{
	cleanup_free char *p = at(rel);
	struct statcache *sc = NULL;
	struct cp_error err = {0};
	if (statcache_open(&sc, p, &err) < 0)
		fail_msg("statcache_open: %s", err.msg);
	return sc;
}

static void cache_save(struct statcache *sc)
{
	struct cp_error err = {0};
	if (statcache_save(sc, &err) < 0)
		fail_msg("statcache_save: %s", err.msg);
}

/* Many roots at once (walked on several threads): each request gets what
 * digest_tree alone gives, and one failure does not hide the others. */
static void batch_of_trees_matches_one_by_one(void **state)
{
	(void)state;
	struct tree_request reqs[20];
	char *paths[20];
	memset(reqs, 0, sizeof(reqs));
	for (int i = 0; i < 20; i++) {
		cleanup_free char *rel = xasprintf("batch/r%02d", i);
		if (i == 7) {
			symlink_("elsewhere", "batch/r07");
		} else if (i == 11) {
			/* r11 is missing */
		} else if (i % 3 == 0) {
			cleanup_free char *f = xasprintf("batch/r%02d", i);
			cleanup_free char *text = xasprintf("file %d\n", i);
			puts_(f, text);
		} else {
			for (int j = 0; j < 5; j++) {
				cleanup_free char *f = xasprintf("batch/r%02d/s%d/f%d", i, j % 2, j);
				cleanup_free char *text = xasprintf("%d.%d\n", i, j);
				puts_(f, text);
			}
		}
		paths[i] = at(rel);
		reqs[i].path = paths[i];
	}
	wait_past_racy_margin("batch/r00");
	struct statcache *sc = cache_open("batch.cache");
	struct cp_error err = {0};
	for (int round = 0; round < 2; round++) {
		unsigned long long n0 = digest_files_hashed();
		assert_int_equal(digest_trees(reqs, 20, sc, &err), -1);
		assert_non_null(strstr(err.msg, "batch/r11"));
		/* Second round: all from the cache. */
		assert_int_equal(digest_files_hashed() - n0, round == 0 ? 7 + 11 * 5 : 0);
		for (int i = 0; i < 20; i++) {
			struct tree_digest one;
			struct cp_error e1 = {0};
			int rc = digest_tree(&one, paths[i], NULL, &e1);
			assert_int_equal(reqs[i].rc, rc);
			if (rc == 0) {
				assert_string_equal(reqs[i].out.digest, one.digest);
				assert_int_equal(reqs[i].out.type, one.type);
				assert_int_equal(reqs[i].out.size, one.size);
				assert_int_equal(reqs[i].out.nfiles, one.nfiles);
			} else {
				assert_string_equal(reqs[i].err.msg, e1.msg);
			}
		}
	}
	assert_int_equal(reqs[7].out.type, 'l');
	assert_int_equal(reqs[3].out.type, 'f');
	assert_int_equal(reqs[1].out.nfiles, 5);
	statcache_free(sc);
	for (int i = 0; i < 20; i++)
		free(paths[i]);
}

static void stat_cache_spares_reads_of_unchanged_files(void **state)
{
	(void)state;
	cleanup_free char *data = noise(200000, 7);
	put("sc/one", data, 200000, 0644);
	puts_("sc/two", "two\n");
	wait_past_racy_margin("sc/two");
	struct statcache *sc = cache_open("state/cache/stat.cache");
	assert_false(statcache_discarded(sc));
	char d1[DIGEST_BUFLEN], d2[DIGEST_BUFLEN], want[DIGEST_BUFLEN];
	cleanup_free char *one = at("sc/one");
	sha256sum_of(want, one);

	unsigned long long n0 = digest_files_hashed();
	file_digest(d1, "sc/one", sc);
	assert_int_equal(digest_files_hashed(), n0 + 1);
	file_digest(d2, "sc/one", sc);
	assert_int_equal(digest_files_hashed(), n0 + 1); /* not read again */
	assert_string_equal(d1, want);
	assert_string_equal(d2, want);

	/* Same size, mtime put back: the ctime still moves, so it is reread. */
	struct stat st;
	assert_int_equal(stat(one, &st), 0);
	data[100] ^= 1;
	put("sc/one", data, 200000, 0644);
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	assert_int_equal(utimensat(AT_FDCWD, one, ts, 0), 0);
	file_digest(d1, "sc/one", sc);
	assert_int_equal(digest_files_hashed(), n0 + 2);
	sha256sum_of(want, one);
	assert_string_equal(d1, want);

	/* A size change is reread; so is a touch. */
	file_digest(d1, "sc/two", sc);
	unsigned long long n1 = digest_files_hashed();
	file_digest(d1, "sc/two", sc);
	assert_int_equal(digest_files_hashed(), n1);
	puts_("sc/two", "two!\n");
	file_digest(d2, "sc/two", sc);
	assert_int_equal(digest_files_hashed(), n1 + 1);
	assert_string_not_equal(d1, d2);
	wait_past_racy_margin("sc/two");
	file_digest(d2, "sc/two", sc);
	file_digest(d2, "sc/two", sc);
	assert_int_equal(digest_files_hashed(), n1 + 2);
	cleanup_free char *two = at("sc/two");
	struct timespec later[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 2000000000}};
	assert_int_equal(utimensat(AT_FDCWD, two, later, 0), 0);
	file_digest(d1, "sc/two", sc);
	assert_int_equal(digest_files_hashed(), n1 + 3);
	assert_string_equal(d1, d2);
	statcache_free(sc);
}

/* The racy rule: a file changed just before it is hashed is not cached,
 * since a write in the same timestamp tick would go unnoticed. */
static void stat_cache_does_not_trust_just_written_files(void **state)
{
	(void)state;
	struct statcache *sc = cache_open("racy.cache");
	puts_("fresh", "fresh\n");
	char d[DIGEST_BUFLEN];
	unsigned long long n0 = digest_files_hashed();
	file_digest(d, "fresh", sc);
	file_digest(d, "fresh", sc);
	assert_int_equal(digest_files_hashed(), n0 + 2);
	assert_int_equal(statcache_count(sc), 0);
	wait_past_racy_margin("fresh");
	file_digest(d, "fresh", sc);
	file_digest(d, "fresh", sc);
	assert_int_equal(digest_files_hashed(), n0 + 3);
	statcache_free(sc);
}

static void stat_cache_survives_save_and_open(void **state)
{
	(void)state;
	puts_("rt/dir/a", "a\n");
	puts_("rt/dir/b", "b\n");
	symlink_("a", "rt/dir/l");
	puts_("rt/file", "f\n");
	wait_past_racy_margin("rt/file");
	struct statcache *sc = cache_open("rt.cache");
	struct tree_digest t1, t2;
	char f1[DIGEST_BUFLEN], f2[DIGEST_BUFLEN];
	unsigned long long n0 = digest_files_hashed();
	tree(&t1, "rt/dir", sc);
	file_digest(f1, "rt/file", sc);
	assert_int_equal(digest_files_hashed(), n0 + 3);
	assert_int_equal(statcache_count(sc), 3);
	cache_save(sc);
	statcache_free(sc);

	sc = cache_open("rt.cache");
	assert_false(statcache_discarded(sc));
	assert_int_equal(statcache_count(sc), 3);
	tree(&t2, "rt/dir", sc);
	file_digest(f2, "rt/file", sc);
	assert_int_equal(digest_files_hashed(), n0 + 3); /* all from the cache */
	assert_string_equal(t1.digest, t2.digest);
	assert_string_equal(f1, f2);

	/* Prune keeps only what this session touched. */
	statcache_free(sc);
	sc = cache_open("rt.cache");
	file_digest(f2, "rt/file", sc);
	statcache_prune(sc);
	cache_save(sc);
	statcache_free(sc);
	sc = cache_open("rt.cache");
	assert_int_equal(statcache_count(sc), 1);
	statcache_free(sc);
}

static void write_bytes(const char *rel, const char *data, size_t len)
{
	cleanup_free char *p = at(rel);
	struct cp_error err = {0};
	assert_int_equal(fs_write_atomic(p, data, len, 0644, &err), 0);
}

static void corrupt_or_truncated_cache_is_discarded(void **state)
{
	(void)state;
	puts_("cc/a", "a\n");
	puts_("cc/b", "b\n");
	wait_past_racy_margin("cc/b");
	struct statcache *sc = cache_open("good.cache");
	struct tree_digest t;
	tree(&t, "cc", sc);
	cache_save(sc);
	statcache_free(sc);
	cleanup_free char *good = at("good.cache");
	char *raw = NULL;
	size_t len = 0;
	struct cp_error err = {0};
	assert_int_equal(fs_read_file(&raw, &len, good, 0, &err), 0);
	assert_true(len > 64);

	struct {
		const char *what;
		size_t len;
		size_t flip; /* byte to flip, or SIZE_MAX */
	} cases[] = {
		{"empty", 0, SIZE_MAX},
		{"header only", 32, SIZE_MAX},
		{"truncated", len - 1, SIZE_MAX},
		{"truncated mid-record", 32 + 40, SIZE_MAX},
		{"bad magic", len, 0},
		{"bad version", len, 8},
		{"flipped record byte", len, 32 + 5},
		{"flipped path byte", len, len - 40},
		{"flipped checksum", len, len - 1},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		cleanup_free char *copy = xmalloc(len);
		memcpy(copy, raw, len);
		if (cases[i].flip != SIZE_MAX)
			copy[cases[i].flip] ^= 0x20;
		write_bytes("bad.cache", copy, cases[i].len);
		sc = cache_open("bad.cache");
		if (!statcache_discarded(sc) || statcache_count(sc) != 0)
			fail_msg("%s: cache not discarded", cases[i].what);
		unsigned long long n0 = digest_files_hashed();
		tree(&t, "cc", sc);
		assert_int_equal(digest_files_hashed(), n0 + 2); /* nothing trusted */
		statcache_free(sc);
	}
	write_bytes("bad.cache", raw, len);
	sc = cache_open("bad.cache");
	assert_false(statcache_discarded(sc));
	assert_int_equal(statcache_count(sc), 2);
	statcache_free(sc);
	free(raw);
}

/* kill -9 in the middle of saves leaves the old or the new cache, whole. */
static void killed_save_leaves_a_whole_cache(void **state)
{
	(void)state;
	char md0[DIGEST_BUFLEN];
	uint8_t md[32];
	digest_bytes(md0, "x", 1);
	digest_parse(md, md0);
	for (int round = 0; round < 10; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct statcache *sc = NULL;
			struct cp_error err = {0};
			cleanup_free char *p = at("kill.cache");
			if (statcache_open(&sc, p, &err) < 0)
				_exit(1);
			for (uint64_t gen = 0;; gen++) {
				for (int i = 0; i < 2000; i++) {
					char path[64];
					snprintf(path, sizeof(path), "/gen/%d/%d", round, i);
					struct statcache_key k = {.dev = 1, .ino = (uint64_t)i,
								  .size = gen};
					statcache_store(sc, path, &k, md);
				}
				if (statcache_save(sc, &err) < 0)
					_exit(1);
			}
		}
		usleep(20000 + (useconds_t)(rand() % 20000));
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		assert_true(WIFSIGNALED(status));
		struct statcache *sc = cache_open("kill.cache");
		assert_false(statcache_discarded(sc));
		statcache_free(sc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(file_digests_equal_sha256sum),
		cmocka_unit_test(digest_bytes_and_stream_agree),
		cmocka_unit_test(directory_digest_is_the_documented_listing),
		cmocka_unit_test(directory_digest_tracks_content_mode_and_names_not_mtime),
		cmocka_unit_test(symlinks_are_recorded_never_followed),
		cmocka_unit_test(builder_matches_digest_tree),
		cmocka_unit_test(builder_rejects_malformed_entries),
		cmocka_unit_test(special_files_and_inner_hardlinks_are_errors),
		cmocka_unit_test(threaded_hashing_is_deterministic),
		cmocka_unit_test(stat_cache_spares_reads_of_unchanged_files),
		cmocka_unit_test(stat_cache_does_not_trust_just_written_files),
		cmocka_unit_test(stat_cache_survives_save_and_open),
		cmocka_unit_test(batch_of_trees_matches_one_by_one),
		cmocka_unit_test(corrupt_or_truncated_cache_is_discarded),
		cmocka_unit_test(killed_save_leaves_a_whole_cache),
	};
	return cmocka_run_group_tests_name("digest", tests, tmpdir_setup, tmpdir_teardown);
}
