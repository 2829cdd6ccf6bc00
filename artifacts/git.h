/* Git facts for provenance, read with libgit2 (never the git CLI). */
#ifndef CPIPE_ARTIFACTS_GIT_H
#define CPIPE_ARTIFACTS_GIT_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/error.h"

struct git_facts {
	bool present;  /* the directory is inside a git work tree */
	char *commit;  /* HEAD's full hex id; NULL on an unborn branch */
	char *branch;  /* short name; NULL when HEAD is detached */
	bool dirty;    /* tracked files differ from HEAD, ignoring .cpipe/ */
	char *remote;  /* origin's URL (else the first remote's), credentials stripped */
	char *workdir; /* the work tree's absolute path, with a trailing '/' */
};

/* Reads the facts of the repository containing `dir`. Not being in a
 * repository is not an error (present = false). */
int git_facts_read(struct git_facts *out, const char *dir, struct cp_error *err);
void git_facts_free(struct git_facts *g);

/* The URL with any user:password@ removed. Caller owns. */
char *git_strip_credentials(const char *url);

/* The content of `abspath` as committed at revision `rev` (any rev-parse
 * form: a commit, HEAD~1, a tag, a branch). Caller owns *out. */
int git_read_at(char **out, size_t *len, const char *abspath, const char *rev,
		struct cp_error *err);

#endif
