#include "cmd_hint.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "util.h"

/* Commands Debian names differently, and the package that adds the name. */
static const struct {
	const char *name, *near, *package;
} renamed[] = {
	{"python", "python3", "python-is-python3"},
	{"pip", "pip3", "python3-pip"},
};

/* The first "dir/name" on `path` that is an executable file; NULL if none. */
static char *find(const char *path, const char *name)
{
	cleanup_free char *copy = xstrdup(path ? path : "");
	char *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *f = path_join(d, name);
		struct stat st;
		if (d[0] == '/' && stat(f, &st) == 0 && S_ISREG(st.st_mode) && access(f, X_OK) == 0)
			return f;
		free(f);
	}
	return NULL;
}

char *cmd_hint(const char *name, const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	const char *pkg = NULL;
	struct strvec cands = {0};
	for (size_t i = 0; i < sizeof(renamed) / sizeof(*renamed); i++)
		if (strcmp(name, renamed[i].name) == 0) {
			strvec_push(&cands, renamed[i].near);
			pkg = renamed[i].package;
		}
	strvec_push_take(&cands, xasprintf("%s3", name));
	size_t n = strlen(name);
	while (n && (name[n - 1] == '.' || (name[n - 1] >= '0' && name[n - 1] <= '9')))
		n--;
	if (n && n < strlen(name))
		strvec_push_take(&cands, xstrndup(name, n));
	for (size_t i = 0; i < cands.n; i++) {
		char *where = find(path, cands.v[i]);
		if (where) {
			sb_addf(&sb, "; the host has %s (%s): use \"%s\" in the stage's command",
				cands.v[i], where, cands.v[i]);
			free(where);
			break;
		}
	}
	if (pkg)
		sb_addf(&sb, "%s Debian's package %s, which provides \"%s\"",
			sb.len ? ", or install" : "; install", pkg, name);
	strvec_free(&cands);
	return sb_detach(&sb);
}
