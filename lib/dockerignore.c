/* .dockerignore as the docker CLI reads it: patterns cleaned as paths,
 * Go's filepath.Match plus "**", "!" exceptions, the last match deciding. */
#include "dockerignore.h"

#include <stdlib.h>
#include <string.h>
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

