/* .dockerignore as the docker CLI reads it: patterns cleaned as paths,
 * Go's filepath.Match plus "**", "!" exceptions, the last match deciding. */
#include "dockerignore.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

void dockerignore_free(struct dockerignore *ig)
{
	for (size_t i = 0; i < ig->n; i++)
		free(ig->v[i].glob);
	free(ig->v);
}

int dockerignore_load(struct dockerignore *ig, const char *dir, struct cp_error *err)
{
	cleanup_free char *path = path_join(dir, ".dockerignore");
	cleanup_free char *text = NULL;
	if (access(path, F_OK) < 0)
		return 0;
	if (fs_read_file(&text, NULL, path, 1 << 20, err) < 0)
		return -1;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		size_t n = strlen(line);
		while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!*line || *line == '#')
			continue;
		bool negate = *line == '!';
		if (negate) {
			line++;
			while (*line == ' ' || *line == '\t')
				line++;
		}
		/* Patterns are cleaned as paths and taken relative to the root. */
		cleanup_free char *abs = xasprintf("/%s", line);
		cleanup_free char *clean = path_normalize(abs);
		if (!clean || !clean[1])
			continue;
		ig->v = xrealloc(ig->v, (ig->n + 1) * sizeof(*ig->v));
		ig->v[ig->n].glob = xstrdup(clean + 1);
		ig->v[ig->n].negate = negate;
		ig->n++;
		ig->has_negations |= negate;
	}
	return 0;
}

/* A bracket expression at *pp; advances past it. -1 when malformed. */
static int match_class(const char **pp, char c)
{
	const char *p = *pp + 1;
	bool neg = *p == '^' || *p == '!';
	if (neg)
		p++;
	bool hit = false;
	bool first = true;
	while (*p && (*p != ']' || first)) {
		first = false;
		char lo = *p == '\\' && p[1] ? *++p : *p;
		p++;
		char hi = lo;
		if (*p == '-' && p[1] && p[1] != ']') {
			p++;
			hi = *p == '\\' && p[1] ? *++p : *p;
			p++;
		}
		if (lo <= c && c <= hi)
			hit = true;
	}
	if (*p != ']')
		return -1;
	*pp = p + 1;
	return hit != neg;
}

/* Go's filepath.Match plus "**" for any number of directories. */
static bool glob_match(const char *p, const char *t)
{
	for (;;) {
		if (!*p)
			return !*t;
		if (p[0] == '*' && p[1] == '*') {
			const char *rest = p + 2;
			if (*rest == '/') {
				rest++;
				if (glob_match(rest, t))
					return true;
				for (const char *s = t; *s; s++)
					if (*s == '/' && glob_match(rest, s + 1))
						return true;
				return false;
			}
			for (const char *s = t;; s++) {
				if (glob_match(rest, s))
					return true;
				if (!*s)
					return false;
			}
		}
		if (*p == '*') {
			p++;
			for (const char *s = t;; s++) {
				if (glob_match(p, s))
					return true;
				if (!*s || *s == '/')
					return false;
			}
		}
		if (!*t)
			return false;
		if (*p == '?') {
			if (*t == '/')
				return false;
			p++;
			t++;
			continue;
		}
		if (*p == '[') {
			if (*t == '/')
				return false;
			int m = match_class(&p, *t);
			if (m < 0)
				return false;
			if (!m)
				return false;
			t++;
			continue;
		}
		if (*p == '\\' && p[1])
			p++;
		if (*p != *t)
			return false;
		p++;
		t++;
	}
}

/* True when the pattern matches `rel` or one of its parent directories. */
static bool pattern_matches(const char *glob, const char *rel)
{
	if (glob_match(glob, rel))
		return true;
	cleanup_free char *copy = xstrdup(rel);
	for (char *s = copy; (s = strchr(s, '/')); s++) {
		*s = '\0';
		bool m = glob_match(glob, copy);
		*s = '/';
		if (m)
			return true;
	}
	return false;
}

bool dockerignore_match(const struct dockerignore *ig, const char *rel)
{
	bool ex = false;
	for (size_t i = 0; i < ig->n; i++)
		if (ig->v[i].negate == ex && pattern_matches(ig->v[i].glob, rel))
			ex = !ig->v[i].negate;
	return ex;
}

static int list_dir(struct strvec *out, const struct dockerignore *ig, const char *root,
		    const char *rel, const char *dockerfile, const char *skip,
		    struct cp_error *err)
{
	cleanup_free char *dir = *rel ? path_join(root, rel) : xstrdup(root);
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		return cp_error_errno(err, EXIT_USAGE, "build context: reading %s", dir);
	int rc = 0;
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		if (rc < 0 || !strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		cleanup_free char *r = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
		cleanup_free char *path = path_join(root, r);
		struct stat st;
		if ((skip && !strcmp(r, skip)) || lstat(path, &st) < 0)
			continue;
		bool keep = !strcmp(r, dockerfile) || !strcmp(r, ".dockerignore");
		bool out_of_it = !keep && dockerignore_match(ig, r);
		if (S_ISDIR(st.st_mode) && (!out_of_it || ig->has_negations))
			rc = list_dir(out, ig, root, r, dockerfile, skip, err);
		else if (!out_of_it && S_ISREG(st.st_mode))
			strvec_push(out, r);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int dockerignore_context_files(struct strvec *out, const char *dir, const char *dockerfile,
			 const char *skip, struct cp_error *err)
{
	struct dockerignore ig = {0};
	if (dockerignore_load(&ig, dir, err) < 0)
		return -1;
	int rc = list_dir(out, &ig, dir, "", dockerfile, skip, err);
	dockerignore_free(&ig);
	return rc;
}
