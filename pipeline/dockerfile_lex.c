/* The Dockerfile's words: variable expansion as moby's shell lexer does it
 * (quotes, the escape character, $VAR and ${VAR<op>word}), and splitting an
 * instruction's arguments into words without expanding them. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "dockerfile.h"
#include "dockerfile_internal.h"

/* Nested ${A:-${B:-...}} deeper than this is refused rather than recursed. */
#define EXPAND_DEPTH 32

struct lexer {
	const char *p;
	const struct kvvec *vars;
	char esc;
	int depth;
	struct cp_error *err;
	bool failed;
};

static int lex_fail(struct lexer *L, const char *what)
{
	if (!L->failed)
		cp_error_set(L->err, EXIT_USAGE, "%s", what);
	L->failed = true;
	return -1;
}

static const char *var_value(const struct lexer *L, const char *name)
{
	const struct kv *kv = kvvec_get(L->vars, name);
	return kv ? kv->value : NULL; /* an ARG declared without value is unset */
}

static int lex_word(struct lexer *L, struct strbuf *out, char stop);

static bool name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* At '$'. Appends the expansion. */
static int lex_dollar(struct lexer *L, struct strbuf *out)
{
	L->p++;
	if (*L->p != '{') {
		size_t n = 0;
		while (name_char(L->p[n]))
			n++;
		if (!n) {
			sb_addc(out, '$');
			return 0;
		}
		cleanup_free char *name = xstrndup(L->p, n);
		L->p += n;
		const char *v = var_value(L, name);
		if (v)
			sb_adds(out, v);
		return 0;
	}
	L->p++;
	size_t n = 0;
	while (name_char(L->p[n]))
		n++;
	if (!n)
		return lex_fail(L, "bad substitution: \"${\" without a variable name");
	cleanup_free char *name = xstrndup(L->p, n);
	L->p += n;
	const char *v = var_value(L, name);
	if (*L->p == '}') {
		L->p++;
		if (v)
			sb_adds(out, v);
		return 0;
	}
	if (!*L->p)
		return lex_fail(L, "bad substitution: \"${\" is not closed by \"}\"");
	bool colon = *L->p == ':';
	if (colon)
		L->p++;
	char op = *L->p;
	if (op != '-' && op != '+' && op != '?')
		return lex_fail(L, "bad substitution: only ${VAR:-word}, ${VAR:+word} and "
				   "${VAR:?message} (with or without the colon) are supported");
	L->p++;
	if (++L->depth > EXPAND_DEPTH)
		return lex_fail(L, "substitutions nested too deeply");
	struct strbuf word = STRBUF_INIT;
	int rc = lex_word(L, &word, '}');
	L->depth--;
	if (rc < 0) {
		sb_free(&word);
		return -1;
	}
	if (*L->p != '}') {
		sb_free(&word);
		return lex_fail(L, "bad substitution: \"${\" is not closed by \"}\"");
	}
	L->p++;
	bool set = v && (!colon || *v);
	if (op == '-')
		sb_adds(out, set ? v : sb_str(&word));
	else if (op == '+')
		sb_adds(out, set ? sb_str(&word) : "");
	else if (set)
		sb_adds(out, v);
	else {
		cp_error_set(L->err, EXIT_USAGE, "%s: %s", name,
			     word.len ? sb_str(&word) : "is not set");
		L->failed = true;
		rc = -1;
	}
	sb_free(&word);
	return rc;
}

/* Expands up to `stop` (0 = the end), leaving L->p at it. */
static int lex_word(struct lexer *L, struct strbuf *out, char stop)
{
	while (*L->p && *L->p != stop) {
		char c = *L->p;
		if (c == '\'') {
			const char *end = strchr(L->p + 1, '\'');
			if (!end)
				return lex_fail(L, "unterminated single quote");
			sb_add(out, L->p + 1, (size_t)(end - L->p - 1));
			L->p = end + 1;
		} else if (c == '"') {
			L->p++;
			while (*L->p && *L->p != '"') {
				if (*L->p == L->esc && L->p[1] &&
				    (L->p[1] == '"' || L->p[1] == '$' || L->p[1] == L->esc)) {
					sb_addc(out, L->p[1]);
					L->p += 2;
				} else if (*L->p == '$') {
					if (lex_dollar(L, out) < 0)
						return -1;
				} else {
					sb_addc(out, *L->p++);
				}
			}
			if (*L->p != '"')
				return lex_fail(L, "unterminated double quote");
			L->p++;
		} else if (c == L->esc) {
			L->p++;
			if (!*L->p) {
				sb_addc(out, c);
				break;
			}
			sb_addc(out, *L->p++);
		} else if (c == '$') {
			if (lex_dollar(L, out) < 0)
				return -1;
		} else {
			sb_addc(out, c);
			L->p++;
		}
	}
	return 0;
}

char *dockerfile_expand(const char *word, const struct kvvec *vars, char esc,
			struct cp_error *err)
{
	struct lexer L = {.p = word, .vars = vars, .esc = esc, .err = err};
	struct strbuf out = STRBUF_INIT;
	if (lex_word(&L, &out, 0) < 0) {
		sb_free(&out);
		return NULL;
	}
	return sb_detach(&out);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

void dockerfile_split_words(struct strvec *out, const char *s, char esc)
{
	struct strbuf w = STRBUF_INIT;
	bool in_word = false;
	char quote = 0;
	for (const char *p = s; *p; p++) {
		if (!quote && blank(*p)) {
			if (in_word)
				strvec_push(out, sb_str(&w));
			sb_reset(&w);
			in_word = false;
			continue;
		}
		in_word = true;
		if (*p == esc && p[1] && quote != '\'') {
			sb_addc(&w, *p++);
			sb_addc(&w, *p);
			continue;
		}
		if (quote && *p == quote)
			quote = 0;
		else if (!quote && (*p == '"' || *p == '\''))
			quote = *p;
		sb_addc(&w, *p);
	}
	if (in_word)
		strvec_push(out, sb_str(&w));
	sb_free(&w);
}
