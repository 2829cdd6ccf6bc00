#include <stdlib.h>
#include <string.h>

#include "spec.h"

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Splits like POSIX sh's token recognition restricted to words: blanks
 * separate, backslash quotes the next character (backslash-newline joins
 * lines), '...' is literal, "..." keeps backslash only before $ ` " \ and
 * newline. No expansion, no operators, no comments. On error `out` is left
 * unchanged. */
int shell_split(struct strvec *out, const char *s, struct cp_error *err)
{
	struct strvec words = {0};
	struct strbuf w = STRBUF_INIT;
	const char *p = s;
	char quote = 0;

	for (;;) {
		while (is_blank(*p))
			p++;
		if (!*p)
			break;
		bool have = false;
		sb_reset(&w);
		while (*p && !is_blank(*p)) {
			if (*p == '\\') {
				if (p[1] == '\n') {
					p += 2;
					continue;
				}
				have = true;
				if (!p[1]) {
					sb_addc(&w, '\\');
					p++;
					continue;
				}
				sb_addc(&w, p[1]);
				p += 2;
			} else if (*p == '\'') {
				const char *end = strchr(p + 1, '\'');
				quote = '\'';
				if (!end)
					goto unterminated;
				sb_add(&w, p + 1, (size_t)(end - p - 1));
				have = true;
				p = end + 1;
			} else if (*p == '"') {
				quote = '"';
				p++;
				while (*p && *p != '"') {
					if (*p == '\\' && p[1] && strchr("$`\"\\\n", p[1])) {
						if (p[1] != '\n')
							sb_addc(&w, p[1]);
						p += 2;
					} else {
						sb_addc(&w, *p++);
					}
				}
				if (!*p)
					goto unterminated;
				have = true;
				p++;
			} else {
				sb_addc(&w, *p++);
				have = true;
			}
		}
		if (have)
			strvec_push(&words, sb_str(&w));
	}
	sb_free(&w);
	for (size_t i = 0; i < words.n; i++)
		strvec_push_take(out, words.v[i]);
	free(words.v);
	return 0;

unterminated:
	sb_free(&w);
	strvec_free(&words);
	return cp_error_set(err, EXIT_USAGE, "unterminated %s quote",
			    quote == '\'' ? "single" : "double");
}
