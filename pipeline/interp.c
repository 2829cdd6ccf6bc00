#include "interp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/redact.h"
#include "../lib/fs.h"

extern char **environ;

#define PARAMS_PREFIX "${params."

static bool name_start(char c)
{
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/* ---- .env format ---- */

static const char *skip_blank(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* After a closing quote only blanks and a comment may follow. */
static int rest_of_line(const char **pp, const struct cp_mark *mk, struct cp_error *err)
{
	const char *p = skip_blank(*pp);
	if (*p == '#')
		while (*p && *p != '\n')
			p++;
	if (*p == '\r')
		p++;
	if (*p && *p != '\n')
		return cp_error_at(err, EXIT_USAGE, mk, "unexpected text after the closing quote");
	*pp = p;
	return 0;
}

int envfile_parse(struct kvvec *out, const char *file, const char *data, struct cp_error *err)
{
	const char *p = data;
	int line = 1;
	struct strbuf val = STRBUF_INIT;
	char *k = NULL;
	int rc = -1;

	while (*p) {
		struct cp_mark mk = {file, line, 1};
		const char *start = p;
		p = skip_blank(p);
		if (*p == '#' || *p == '\n' || *p == '\r' || !*p)
			goto next_line;
		if (str_has_prefix(p, "export ") || str_has_prefix(p, "export\t"))
			p = skip_blank(p + 7);
		mk.col = (int)(p - start) + 1;
		const char *key = p;
		while (*p && *p != '=' && *p != '\n' && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
		size_t klen = (size_t)(p - key);
		size_t bad = klen > 0 && name_start(key[0]) ? 1 : 0;
		while (bad && bad < klen && (name_char(key[bad]) || key[bad] == '.' || key[bad] == '-'))
			bad++;
		if (bad < klen || klen == 0) {
			/* The line is not shown: a line without "=" may well be a
			 * pasted secret. The column says where to look. */
			mk.col += (int)bad;
			cp_error_at(
			    err, EXIT_USAGE, &mk,
			    "invalid variable name: expected KEY=VALUE, where KEY is letters, "
			    "digits, \"_\", \".\" and \"-\", starting with a letter or \"_\"");
			goto out;
		}
		free(k);
		k = xstrndup(key, klen);
		p = skip_blank(p);
		if (*p != '=') {
			if (rest_of_line(&p, &mk, err) < 0) {
				cp_error_clear(err);
				cp_error_at(err, EXIT_USAGE, &mk, "expected KEY=VALUE");
				goto out;
			}
			kvvec_set(out, k, NULL);
			goto next_line;
		}
		p = skip_blank(p + 1);
		sb_reset(&val);
		if (*p == '\'' || *p == '"') {
			char q = *p++;
			int open_line = line;
			while (*p && *p != q) {
				if (*p == '\n')
					line++;
				if (q == '"' && *p == '\\' && p[1]) {
					p++;
					switch (*p) {
					case 'n':
						sb_addc(&val, '\n');
						break;
					case 't':
						sb_addc(&val, '\t');
						break;
					case 'r':
						sb_addc(&val, '\r');
						break;
					case '"':
					case '\\':
					case '$':
						sb_addc(&val, *p);
						break;
					default:
						sb_addc(&val, '\\');
						sb_addc(&val, *p);
					}
					p++;
					continue;
				}
				sb_addc(&val, *p++);
			}
			if (!*p) {
				mk.line = open_line;
				cp_error_at(err, EXIT_USAGE, &mk,
					    "unterminated %s quote in the value of %s",
					    q == '"' ? "double" : "single", k);
				goto out;
			}
			p++;
			if (rest_of_line(&p, &mk, err) < 0)
				goto out;
		} else {
			const char *v = p;
			while (*p && *p != '\n') {
				if (*p == '#' && p > v && (p[-1] == ' ' || p[-1] == '\t'))
					break;
				p++;
			}
			const char *e = p;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
				e--;
			sb_add(&val, v, (size_t)(e - v));
		}
		kvvec_set(out, k, sb_str(&val));
	next_line:
		while (*p && *p != '\n')
			p++;
		if (*p == '\n') {
			p++;
			line++;
		}
	}
	rc = 0;
out:
	free(k);
	sb_free(&val);
	return rc;
}

int interp_env_build(struct kvvec *out, const char *const *env, const char *const *files,
		     const char *const *shown, size_t nfiles, bool must_exist, struct cp_error *err)
{
	for (size_t f = 0; f < nfiles; f++) {
		if (access(files[f], F_OK) != 0) {
			if (!must_exist)
				continue;
			return cp_error_errno(err, EXIT_USAGE,
					      "env file %s (given with --env-file)", shown[f]);
		}
		cleanup_free char *data = NULL;
		if (fs_read_file(&data, NULL, files[f], 16 << 20, err) < 0)
			return -1;
		struct kvvec dot = {0};
		if (envfile_parse(&dot, shown[f], data, err) < 0) {
			kvvec_free(&dot);
			return -1;
		}
		for (size_t i = 0; i < dot.n; i++)
			if (dot.v[i].value)
				kvvec_set(out, dot.v[i].key, dot.v[i].value);
		kvvec_free(&dot);
	}
	const char *const *e = env ? env : (const char *const *)environ;
	for (; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq || eq == *e)
			continue;
		cleanup_free char *k = xstrndup(*e, (size_t)(eq - *e));
		kvvec_set(out, k, eq + 1);
	}
	return 0;
}

/* ---- interpolation ---- */

struct interp {
	const char *start;
	const struct kvvec *env;
	const struct cp_mark *mark;
	int exact_col;
	bool changed;
	int depth; /* of nested ${...}, capped: the parser recurses */
	struct redactor *secrets; /* gets the values of secret variables read; may be NULL */
	struct strvec *warned;    /* unset variables already warned about; NULL = no warnings */
	struct cp_error *err;
};

#define INTERP_MAX_DEPTH 32

static struct cp_mark pos(const struct interp *in, const char *at)
{
	struct cp_mark mk = *in->mark;
	if (in->exact_col > 0) {
		int cols = 0;
		for (const char *q = in->start; q < at; q++)
			if (((unsigned char)*q & 0xC0) != 0x80)
				cols++;
		mk.col = in->exact_col + cols;
	}
	return mk;
}

static const char *lookup(const struct interp *in, const char *name, size_t n)
{
	cleanup_free char *k = xstrndup(name, n);
	const struct kv *kv = kvvec_get(in->env, k);
	/* A value fed by a secret variable is secret wherever it lands: the
	 * redactor masks it in records, the lock, config output and logs. */
	if (kv && kv->value && in->secrets && env_name_is_secret(k))
		redactor_add(in->secrets, kv->value);
	return kv ? kv->value : NULL;
}

/* An unset variable read bare (`$X`, `${X}`) becomes "", as in compose,
 * with one warning per name naming it. */
static void warn_unset(struct interp *in, const char *name, size_t n)
{
	if (!in->warned)
		return;
	cleanup_free char *k = xstrndup(name, n);
	for (size_t i = 0; i < in->warned->n; i++)
		if (strcmp(in->warned->v[i], k) == 0)
			return;
	strvec_push(in->warned, k);
	fprintf(stderr, "cpipe: warning: %s:%d:%d: the \"%s\" variable is not set; defaulting to "
			"a blank string\n", in->mark->file, in->mark->line, in->mark->col, k);
}

static int interp_word(struct interp *in, const char **pp, bool in_brace, bool active,
		       struct strbuf *out);

static int interp_braced(struct interp *in, const char **pp, bool active, struct strbuf *out)
{
	const char *dollar = *pp;
	const char *p = dollar + 2;
	struct cp_mark at = pos(in, dollar);

	if (str_has_prefix(dollar, PARAMS_PREFIX)) {
		const char *close = strchr(p, '}');
		if (!close)
			return cp_error_at(in->err, EXIT_USAGE, &at,
					   "unterminated \"${\" (missing \"}\")");
		if (active)
			sb_add(out, dollar, (size_t)(close + 1 - dollar));
		*pp = close + 1;
		return 0;
	}
	in->changed = true;
	const char *name = p;
	while (name_char(*p))
		p++;
	size_t nlen = (size_t)(p - name);
	if (!*p)
		return cp_error_at(in->err, EXIT_USAGE, &at, "unterminated \"${\" (missing \"}\")");
	if (nlen == 0 || !name_start(name[0]))
		return cp_error_at(in->err, EXIT_USAGE, &at,
				   "invalid interpolation: \"${\" must be followed by a variable "
				   "name (use \"$$\" for a literal \"$\")");
	const char *value = lookup(in, name, nlen);
	if (*p == '}') {
		if (active && value)
			sb_adds(out, value);
		else if (active)
			warn_unset(in, name, nlen);
		*pp = p + 1;
		return 0;
	}
	bool colon = *p == ':';
	if (colon)
		p++;
	char op = *p;
	if (op != '-' && op != '?' && op != '+') {
		if (!*p)
			return cp_error_at(in->err, EXIT_USAGE, &at,
					   "unterminated \"${\" (missing \"}\")");
		struct cp_mark bad = pos(in, p);
		return cp_error_at(in->err, EXIT_USAGE, &bad,
				   "invalid interpolation: unexpected \"%c\" in \"${%.*s\"", *p,
				   (int)nlen, name);
	}
	p++;
	if (in->depth >= INTERP_MAX_DEPTH)
		return cp_error_at(in->err, EXIT_USAGE, &at,
				   "interpolation nested deeper than %d levels", INTERP_MAX_DEPTH);
	bool set = value && (!colon || *value);
	bool use_word = (op == '-' && !set) || (op == '+' && set) || (op == '?' && !set);
	struct strbuf word = STRBUF_INIT;
	in->depth++;
	int rc = interp_word(in, &p, true, active && use_word, &word);
	in->depth--;
	if (rc < 0) {
		sb_free(&word);
		return -1;
	}
	if (*p != '}') {
		sb_free(&word);
		return cp_error_at(in->err, EXIT_USAGE, &at, "unterminated \"${\" (missing \"}\")");
	}
	*pp = p + 1;
	if (!active) {
		sb_free(&word);
		return 0;
	}
	if (op == '?' && !set) {
		cp_error_at(in->err, EXIT_USAGE, &at, "required variable %.*s is missing%s%s",
			    (int)nlen, name, word.len ? ": " : (value ? " (it is empty)" : ""),
			    word.len ? sb_str(&word) : "");
		sb_free(&word);
		return -1;
	}
	if (use_word && op != '?')
		sb_add(out, word.buf ? word.buf : "", word.len);
	else if (value && op != '+')
		sb_adds(out, value);
	sb_free(&word);
	return 0;
}

/* Copies text from *pp to out, expanding `$` forms, up to the end of the
 * string or (in_brace) an unmatched '}'. With !active nothing is looked up
 * and nothing fails but syntax. */
static int interp_word(struct interp *in, const char **pp, bool in_brace, bool active,
		       struct strbuf *out)
{
	const char *p = *pp;
	while (*p) {
		if (in_brace && *p == '}')
			break;
		if (*p != '$') {
			const char *run = p;
			while (*p && *p != '$' && !(in_brace && *p == '}'))
				p++;
			if (active)
				sb_add(out, run, (size_t)(p - run));
			continue;
		}
		if (p[1] == '$') {
			in->changed = true;
			if (active)
				sb_addc(out, '$');
			p += 2;
		} else if (p[1] == '{') {
			if (interp_braced(in, &p, active, out) < 0)
				return -1;
		} else if (name_start(p[1])) {
			in->changed = true;
			const char *name = ++p;
			while (name_char(*p))
				p++;
			const char *value = lookup(in, name, (size_t)(p - name));
			if (active && value)
				sb_adds(out, value);
			else if (active)
				warn_unset(in, name, (size_t)(p - name));
		} else {
			if (active)
				sb_addc(out, '$');
			p++;
		}
	}
	*pp = p;
	return 0;
}

static int interp_one(char **out, bool *changed, const char *s, const struct kvvec *env,
		      const struct cp_mark *mark, int exact_col, struct redactor *secrets,
		      struct strvec *warned, struct cp_error *err)
{
	struct interp in = {s, env, mark, exact_col, false, 0, secrets, warned, err};
	struct strbuf sb = STRBUF_INIT;
	const char *p = s;
	*out = NULL;
	if (interp_word(&in, &p, false, true, &sb) < 0) {
		sb_free(&sb);
		return -1;
	}
	*out = sb_detach(&sb);
	if (changed)
		*changed = in.changed;
	return 0;
}

int interp_string(char **out, bool *changed, const char *s, const struct kvvec *env,
		  const struct cp_mark *mark, int exact_col, struct cp_error *err)
{
	return interp_one(out, changed, s, env, mark, exact_col, NULL, NULL, err);
}

static int interp_node(struct ynode *n, const struct kvvec *env, bool top,
		       struct redactor *secrets, struct strvec *warned, struct cp_error *err)
{
	switch (n->kind) {
	case YNODE_SCALAR: {
		if (!strchr(n->str, '$'))
			return 0;
		char *s;
		bool changed;
		if (interp_one(&s, &changed, n->str, env, &n->mark, n->exact_col, secrets, warned,
			       err) < 0)
			return -1;
		free(n->str);
		n->str = s;
		if (changed) {
			n->quoted = true;
			n->exact_col = 0;
		}
		return 0;
	}
	case YNODE_SEQ:
		for (size_t i = 0; i < n->nitems; i++)
			if (interp_node(n->items[i], env, false, secrets, warned, err) < 0)
				return -1;
		return 0;
	case YNODE_MAP:
		for (size_t i = 0; i < n->npairs; i++) {
			if (top && str_has_prefix(n->pairs[i].key->str, "x-"))
				continue;
			if (interp_node(n->pairs[i].value, env, false, secrets, warned, err) < 0)
				return -1;
		}
		return 0;
	}
	return 0;
}

int interp_tree(struct ynode *root, const struct kvvec *env, struct redactor *secrets,
		struct strvec *warned, struct cp_error *err)
{
	return root ? interp_node(root, env, true, secrets, warned, err) : 0;
}

int interp_params(char **out, const char *s, const struct kvvec *params, const char *stage,
		  const struct cp_mark *mark, struct cp_error *err)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = s;
	*out = NULL;
	for (;;) {
		const char *ref = strstr(p, PARAMS_PREFIX);
		if (!ref) {
			sb_adds(&sb, p);
			break;
		}
		sb_add(&sb, p, (size_t)(ref - p));
		const char *name = ref + strlen(PARAMS_PREFIX);
		const char *close = strchr(name, '}');
		if (!close) {
			sb_free(&sb);
			return cp_error_at(err, EXIT_USAGE, mark,
					   "stage \"%s\": unterminated \"${\"", stage);
		}
		cleanup_free char *k = xstrndup(name, (size_t)(close - name));
		const struct kv *kv = kvvec_get(params, k);
		if (!kv) {
			const char **cands = xcalloc(params->n + 1, sizeof(*cands));
			for (size_t i = 0; i < params->n; i++)
				cands[i] = params->v[i].key;
			const char *near = suggest_nearest(k, cands, params->n);
			if (near)
				cp_error_at(
				    err, EXIT_USAGE, mark,
				    "stage \"%s\": unknown param \"%s\" in \"${params.%s}\" "
				    "(did you mean \"%s\"?)",
				    stage, k, k, near);
			else
				cp_error_at(
				    err, EXIT_USAGE, mark,
				    "stage \"%s\": unknown param \"%s\" in \"${params.%s}\"", stage,
				    k, k);
			free(cands);
			sb_free(&sb);
			return -1;
		}
		sb_adds(&sb, kv->value ? kv->value : "");
		p = close + 1;
	}
	*out = sb_detach(&sb);
	return 0;
}
