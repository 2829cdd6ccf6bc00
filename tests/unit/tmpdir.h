/* A fresh temporary directory per cmocka test: tmpdir_setup makes it,
 * tmpdir_teardown removes it and all below it, at() names a path in it. */
#ifndef CPIPE_TESTS_TMPDIR_H
#define CPIPE_TESTS_TMPDIR_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/fs.h"
#include "../../lib/util.h"

static char *tmpdir;

static inline int tmpdir_setup(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/cpipe-test-XXXXXX";
	if (!mkdtemp(tmpl))
		return -1;
	tmpdir = xstrdup(tmpl);
	return 0;
}

static inline int tmpdir_teardown(void **state)
{
	(void)state;
	struct cp_error err = {0};
	fs_rm_rf(tmpdir, &err);
	free(tmpdir);
	tmpdir = NULL;
	return 0;
}

/* A path below the test's directory; caller frees. */
static inline char *at(const char *rel)
{
	return path_join(tmpdir, rel);
}

/* Writes `text` to `rel` below the test's directory in place (open with
 * O_TRUNC, then write: the same inode when it exists), making its
 * directories; aborts the test on failure. Needs <cmocka.h> first. */
static inline void tmpdir_put(const char *rel, const char *text)
{
	char *p = at(rel);
	char *dir = path_dirname(p);
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(dir, 0755, &err), 0);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	free(dir);
	free(p);
}

#endif
