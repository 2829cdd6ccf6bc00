/* Shared between digest.c, tree_walk.c and cas.c; not for other modules. */
#ifndef CPIPE_ARTIFACTS_DIGEST_INTERNAL_H
#define CPIPE_ARTIFACTS_DIGEST_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../lib/error.h"

#define BIG_BUF (256u << 10) /* read size: fits L2, so the copy and the hash share it */

struct hashed {
	uint8_t md[32];
	struct stat st; /* as it was before and after the read */
	bool cacheable; /* passes the stat cache's racy rule */
};

/* Hashes the regular file open as `fd`, reading through `buf`. A file that
 * changes while it is read is read again, a few times, then is an error
 * naming `shown`. `want_cacheable`: also apply the racy rule. */
int digest_fd(struct hashed *out, int fd, const char *shown, bool want_cacheable, void *buf,
	      size_t bufsz, struct cp_error *err);

/* Whether a file was left alone between two fstat calls (size, inode,
 * mtime, ctime): a read in between saw one version of it. */
bool digest_same_state(const struct stat *a, const struct stat *b);

/* "a directory", "a fifo", ... for messages. */
const char *digest_file_kind(mode_t mode);

#endif
