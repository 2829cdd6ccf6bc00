/* A fresh temporary directory per cmocka test: tmpdir_setup makes it,
 * tmpdir_teardown removes it and all below it, at() names a path in it. */
#ifndef CPIPE_TESTS_TMPDIR_H
#define CPIPE_TESTS_TMPDIR_H

#include <stdlib.h>

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

#endif
