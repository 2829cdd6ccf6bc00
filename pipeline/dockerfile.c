/* The Dockerfile reader: logical lines (parser directives, comments, line
 * continuations, heredocs), then the instructions of every build stage,
 * each stage's image config kept so a later FROM of it inherits it. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "../lib/fs.h"
#include "dockerfile.h"
#include "dockerfile_internal.h"

/* Bigger than any Dockerfile written by hand; keeps the reader linear. */
#define DOCKERFILE_MAX (1 << 20)

struct instr {
	char *kw; /* upper case */
	char *args;
	int line;
	bool heredoc;
};

struct reader {
	const char *name;
	char esc;
	struct instr *v;
	size_t n;
	struct cp_error *err;
};

static int fail_at(struct reader *r, int line, const char *fmt, ...) CP_PRINTF(3, 4);
static int fail_at(struct reader *r, int line, const char *fmt, ...)
{
	char msg[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cp_error_set(r->err, EXIT_USAGE, "%s:%d: %s", r->name, line, msg);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_blank(const char *s)
{
	while (blank(*s))
		s++;
	return s;
}

/* "# key=value" before anything else: the escape and syntax directives.
 * Returns 1 for a directive, 0 for anything else. */
static int directive(struct reader *r, const char *line, int lineno, bool *seen_escape)
{
	const char *p = skip_blank(line);
	if (*p != '#')
		return 0;
	p = skip_blank(p + 1);
	const char *k = p;
	while (isalpha((unsigned char)*p))
		p++;
	size_t klen = (size_t)(p - k);
	p = skip_blank(p);
	if (!klen || *p != '=')
		return 0;
	p = skip_blank(p + 1);
	size_t vlen = strlen(p);
	while (vlen && (blank(p[vlen - 1]) || p[vlen - 1] == '\r'))
		vlen--;
	if (klen == 6 && strncasecmp(k, "escape", 6) == 0) {
		if (*seen_escape)
			return fail_at(r, lineno, "the escape directive is given twice");
		if (vlen != 1 || (*p != '\\' && *p != '`'))
			return fail_at(r, lineno, "escape directive \"%.*s\": the escape "
				       "character is \\ or `", (int)vlen, p);
		*seen_escape = true;
		r->esc = *p;
	}
	return 1; /* syntax=, check= and unknown ones: nothing to do locally */
}

static void push_instr(struct reader *r, const char *text, int line)
{
	const char *p = skip_blank(text);
	if (!*p)
		return;
	const char *k = p;
	while (*p && !blank(*p))
		p++;
	struct instr in = {.kw = xstrndup(k, (size_t)(p - k)), .line = line};
	for (char *c = in.kw; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	p = skip_blank(p);
	size_t n = strlen(p);
	while (n && (blank(p[n - 1]) || p[n - 1] == '\r'))
		n--;
	in.args = xstrndup(p, n);
	r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
	r->v[r->n++] = in;
}

/* The terminators of the heredocs ("<<EOF", "<<-'EOF'") an instruction
 * opens, in order. */
static void heredoc_words(struct strvec *out, const char *args)
{
	if (*args == '[')
		return;
	for (const char *p = args; (p = strstr(p, "<<"));) {
		p += 2;
		bool dash = *p == '-';
		if (dash)
			p++;
		char q = *p == '"' || *p == '\'' ? *p++ : 0;
		const char *w = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		if (p == w || (q && *p != q))
			continue;
		strvec_push_take(out, xasprintf("%c%.*s", dash ? '-' : ' ', (int)(p - w), w));
	}
}

/* Splits the text into instructions. */
static int read_lines(struct reader *r, const char *text, size_t len)
{
	bool directives = true, seen_escape = false;
	struct strbuf cur = STRBUF_INIT;
	struct strvec heredocs = {0};
	size_t hd = 0;
	int start = 0, lineno = 0;
	for (size_t off = 0; off < len;) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		cleanup_free char *line = xstrndup(text + off, n);
		off += n + (nl ? 1 : 0);
		lineno++;
		if (n && line[n - 1] == '\r')
			line[--n] = '\0';
		if (hd < heredocs.n) { /* inside a heredoc: lines until its word */
			const char *w = heredocs.v[hd];
			const char *l = line;
			while (w[0] == '-' && *l == '\t')
				l++;
			if (strcmp(l, w + 1) == 0 && ++hd == heredocs.n) {
				strvec_free(&heredocs);
				hd = 0;
			}
			continue;
		}
		if (directives) {
			int d = directive(r, line, lineno, &seen_escape);
			if (d < 0)
				goto fail;
			if (d)
				continue;
			directives = false;
		}
		const char *p = skip_blank(line);
		if (*p == '#' || (!*p && !cur.len))
			continue;
		if (!cur.len)
			start = lineno;
		size_t m = strlen(line);
		while (m && blank(line[m - 1]))
			m--;
		if (m && line[m - 1] == r->esc) {
			sb_add(&cur, line, m - 1);
			if (!cur.len)
				sb_addc(&cur, ' '); /* a lone escape still continues */
			continue;
		}
		sb_add(&cur, line, m);
		push_instr(r, sb_str(&cur), start);
		sb_reset(&cur);
		if (r->n && strcmp(r->v[r->n - 1].kw, "RUN") == 0) {
			heredoc_words(&heredocs, r->v[r->n - 1].args);
		} else if (r->n && (strcmp(r->v[r->n - 1].kw, "COPY") == 0 ||
				    strcmp(r->v[r->n - 1].kw, "ADD") == 0)) {
			heredoc_words(&heredocs, r->v[r->n - 1].args);
			r->v[r->n - 1].heredoc = heredocs.n > 0;
		}
	}
	if (cur.len)
		push_instr(r, sb_str(&cur), start);
	if (hd < heredocs.n) {
		fail_at(r, lineno, "the heredoc ending with \"%s\" is not closed",
			heredocs.v[hd] + 1);
		goto fail;
	}
	sb_free(&cur);
	strvec_free(&heredocs);
	return 0;
fail:
	sb_free(&cur);
	strvec_free(&heredocs);
	return -1;
}

/* ---- build stages ---- */

struct bstage {
	char *name; /* AS name, lower case; NULL = unnamed */
	struct dockerfile_image img;
	struct kvvec args; /* ARGs in scope; NULL value = declared, unset */
	struct strvec shell;
	bool cmd_set;      /* CMD given in this stage */
};

struct build {
	struct reader *r;
	const struct kvvec *build_args;
	const struct kvvec *env;
	struct kvvec meta; /* ARGs before the first FROM */
	struct bstage *v;
	size_t n;
};

static void copy_dup(struct dockerfile_copy *d, const struct dockerfile_copy *s)
{
	*d = *s;
	d->src = (struct strvec){0};
	strvec_copy(&d->src, &s->src);
	d->dest = xstrdup(s->dest);
	d->from = s->from ? xstrdup(s->from) : NULL;
	d->chown = s->chown ? xstrdup(s->chown) : NULL;
	d->chmod = s->chmod ? xstrdup(s->chmod) : NULL;
	d->from_copies = xcalloc(s->nfrom_copies + 1, sizeof(*d->from_copies));
	for (size_t i = 0; i < s->nfrom_copies; i++)
		copy_dup(&d->from_copies[i], &s->from_copies[i]);
}

static void copy_free(struct dockerfile_copy *c)
{
	strvec_free(&c->src);
	free(c->dest);
	free(c->from);
	free(c->chown);
	free(c->chmod);
	for (size_t i = 0; i < c->nfrom_copies; i++)
		copy_free(&c->from_copies[i]);
	free(c->from_copies);
}

static void image_copy(struct dockerfile_image *dst, const struct dockerfile_image *src)
{
	dst->base = src->base ? xstrdup(src->base) : NULL;
	dst->base_line = src->base_line;
	dst->workdir = src->workdir ? xstrdup(src->workdir) : NULL;
	dst->workdir_line = src->workdir_line;
	for (size_t i = 0; i < src->env.n; i++)
		kvvec_set(&dst->env, src->env.v[i].key, src->env.v[i].value);
	dst->env_line = src->env_line;
	dst->user = src->user ? xstrdup(src->user) : NULL;
	dst->user_line = src->user_line;
	strvec_copy(&dst->entrypoint, &src->entrypoint);
	dst->has_entrypoint = src->has_entrypoint;
	dst->entrypoint_line = src->entrypoint_line;
	strvec_copy(&dst->cmd, &src->cmd);
	dst->has_cmd = src->has_cmd;
	dst->cmd_line = src->cmd_line;
	dst->copies = xcalloc(src->ncopies + 1, sizeof(*dst->copies));
	for (size_t i = 0; i < src->ncopies; i++)
		copy_dup(&dst->copies[i], &src->copies[i]);
	dst->ncopies = src->ncopies;
	dst->runs = xcalloc(src->nruns + 1, sizeof(int));
	if (src->nruns)
		memcpy(dst->runs, src->runs, src->nruns * sizeof(int));
	dst->nruns = src->nruns;
}

static void bstage_free(struct bstage *s)
{
	free(s->name);
	dockerfile_image_free(&s->img);
	kvvec_free(&s->args);
	strvec_free(&s->shell);
}

void dockerfile_image_free(struct dockerfile_image *img)
{
	free(img->stage_name);
	free(img->base);
	free(img->workdir);
	kvvec_free(&img->env);
	free(img->user);
	strvec_free(&img->entrypoint);
	strvec_free(&img->cmd);
	for (size_t i = 0; i < img->ncopies; i++)
		copy_free(&img->copies[i]);
	free(img->copies);
	free(img->runs);
	strvec_free(&img->notes);
	memset(img, 0, sizeof(*img));
}

/* The variables an instruction's words see: ARGs, then ENV over them. */
static void stage_vars(struct kvvec *out, const struct bstage *s)
{
	for (size_t i = 0; i < s->args.n; i++)
		kvvec_set(out, s->args.v[i].key, s->args.v[i].value);
	for (size_t i = 0; i < s->img.env.n; i++)
		kvvec_set(out, s->img.env.v[i].key, s->img.env.v[i].value);
	/* The base image's PATH is unknown here; docker's default stands in. */
	if (!kvvec_get(out, "PATH") || !kvvec_get(out, "PATH")->value)
		kvvec_set(out, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
}

static char *expand(struct build *b, const struct instr *in, const struct kvvec *vars,
		    const char *word)
{
	char *v = dockerfile_expand(word, vars, b->r->esc, b->r->err);
	if (!v)
		cp_error_prefix(b->r->err, "%s:%d: %s", b->r->name, in->line, in->kw);
	return v;
}

/* JSON form ["a", "b"]: 1 with *out filled, 0 when not JSON (shell form). */
static int json_form(struct strvec *out, const char *args)
{
	if (*args != '[')
		return 0;
	cJSON *a = cJSON_Parse(args);
	if (!cJSON_IsArray(a)) {
		cJSON_Delete(a);
		return 0;
	}
	const cJSON *x;
	bool strings = true;
	cJSON_ArrayForEach(x, a)
	{
		strings &= cJSON_IsString(x);
	}
	cJSON_ArrayForEach(x, a)
	{
		if (strings)
			strvec_push(out, x->valuestring);
	}
	cJSON_Delete(a);
	return strings;
}

/* Leading "--name=value" / "--name" flags; *rest points past them. */
static void take_flags(struct kvvec *flags, struct strvec *words, size_t *rest)
{
	size_t i = 0;
	for (; i < words->n && str_has_prefix(words->v[i], "--") && words->v[i][2]; i++) {
		char *eq = strchr(words->v[i], '=');
		if (eq) {
			*eq = '\0';
			kvvec_set(flags, words->v[i] + 2, eq + 1);
			*eq = '=';
		} else {
			kvvec_set(flags, words->v[i] + 2, NULL);
		}
	}
	*rest = i;
}

static char *abs_against(const char *base, const char *p)
{
	char *joined = p[0] == '/' ? xstrdup(p) : path_join(base ? base : "/", p);
	char *n = path_normalize(joined);
	free(joined);
	return n ? n : xstrdup("/"); /* as docker: ".." stops at the root */
}

static int do_from(struct build *b, const struct instr *in)
{
	struct strvec w = {0};
	struct kvvec flags = {0};
	dockerfile_split_words(&w, in->args, b->r->esc);
	size_t k;
	take_flags(&flags, &w, &k);
	int rc = -1;
	cleanup_free char *image = NULL, *as = NULL;
	if (k >= w.n || (w.n - k != 1 && w.n - k != 3) ||
	    (w.n - k == 3 && strcasecmp(w.v[k + 1], "AS") != 0)) {
		fail_at(b->r, in->line, "FROM takes an image and optionally \"AS name\", not \"%s\"",
			in->args);
		goto out;
	}
	if (!(image = expand(b, in, &b->meta, w.v[k])))
		goto out;
	if (w.n - k == 3) {
		as = xstrdup(w.v[k + 2]);
		for (char *c = as; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	struct bstage st = {.name = as ? xstrdup(as) : NULL};
	const struct bstage *parent = NULL;
	for (size_t i = 0; i < b->n && *image; i++)
		if (b->v[i].name && strcasecmp(b->v[i].name, image) == 0)
			parent = &b->v[i];
	if (parent) {
		image_copy(&st.img, &parent->img);
		strvec_copy(&st.shell, &parent->shell);
	} else {
		st.img.base = xstrdup(image);
		st.img.base_line = in->line;
		strvec_push(&st.shell, "/bin/sh");
		strvec_push(&st.shell, "-c");
	}
	st.img.stage_name = as ? xstrdup(as) : NULL;
	b->v = xrealloc(b->v, (b->n + 1) * sizeof(*b->v));
	b->v[b->n++] = st;
	rc = 0;
out:
	strvec_free(&w);
	kvvec_free(&flags);
	return rc;
}

/* Value of build arg `name`, or NULL when not given. */
static const char *build_arg(const struct build *b, const char *name, bool *given)
{
	const struct kv *kv = b->build_args ? kvvec_get(b->build_args, name) : NULL;
	*given = kv != NULL;
	if (kv && !kv->value) {
		const struct kv *e = b->env ? kvvec_get(b->env, name) : NULL;
		*given = e && e->value;
		return e ? e->value : NULL;
	}
	return kv ? kv->value : NULL;
}

static int do_arg(struct build *b, const struct instr *in, struct bstage *s)
{
	struct strvec w = {0};
	dockerfile_split_words(&w, in->args, b->r->esc);
	int rc = 0;
	if (!w.n)
		rc = fail_at(b->r, in->line, "ARG needs a name");
	struct kvvec vars = {0};
	if (s)
		stage_vars(&vars, s);
	for (size_t i = 0; rc == 0 && i < w.n; i++) {
		char *eq = strchr(w.v[i], '=');
		cleanup_free char *name = eq ? xstrndup(w.v[i], (size_t)(eq - w.v[i]))
					     : xstrdup(w.v[i]);
		cleanup_free char *def = NULL;
		if (eq && !(def = expand(b, in, s ? &vars : &b->meta, eq + 1))) {
			rc = -1;
			break;
		}
		bool given;
		const char *v = build_arg(b, name, &given);
		if (!given && !eq && s) {
			const struct kv *m = kvvec_get(&b->meta, name);
			v = m ? m->value : NULL;
		} else if (!given) {
			v = def;
		}
		kvvec_set(s ? &s->args : &b->meta, name, v);
		if (s)
			kvvec_set(&vars, name, v);
	}
	kvvec_free(&vars);
	strvec_free(&w);
	return rc;
}

static int do_env(struct build *b, const struct instr *in, struct bstage *s)
{
	struct strvec w = {0};
	struct kvvec vars = {0}, set = {0};
	dockerfile_split_words(&w, in->args, b->r->esc);
	stage_vars(&vars, s);
	int rc = 0;
	if (!w.n)
		rc = fail_at(b->r, in->line, "ENV needs NAME=value");
	else if (!strchr(w.v[0], '=')) { /* the old form: ENV NAME the rest */
		const char *rest = skip_blank(in->args + strlen(w.v[0]));
		char *v = *rest ? expand(b, in, &vars, rest) : NULL;
		if (!*rest)
			rc = fail_at(b->r, in->line, "ENV %s needs a value (ENV %s=value)", w.v[0],
				     w.v[0]);
		else if (!v)
			rc = -1;
		else
			kvvec_set(&set, w.v[0], v);
		free(v);
	} else {
		for (size_t i = 0; rc == 0 && i < w.n; i++) {
			char *eq = strchr(w.v[i], '=');
			if (!eq || eq == w.v[i]) {
				rc = fail_at(b->r, in->line, "ENV \"%s\" is not NAME=value", w.v[i]);
				break;
			}
			*eq = '\0';
			char *v = expand(b, in, &vars, eq + 1);
			if (!v)
				rc = -1;
			else
				kvvec_set(&set, w.v[i], v);
			free(v);
		}
	}
	for (size_t i = 0; rc == 0 && i < set.n; i++)
		kvvec_set(&s->img.env, set.v[i].key, set.v[i].value);
	if (rc == 0)
		s->img.env_line = in->line;
	kvvec_free(&vars);
	kvvec_free(&set);
	strvec_free(&w);
	return rc;
}

static int do_command(const struct instr *in, struct bstage *s,
		      bool entrypoint)
{
	struct strvec argv = {0};
	if (!json_form(&argv, in->args)) {
		if (*in->args) {
			strvec_copy(&argv, &s->shell);
			strvec_push(&argv, in->args);
		}
	}
	struct dockerfile_image *img = &s->img;
	if (entrypoint) {
		strvec_free(&img->entrypoint);
		img->entrypoint = argv;
		img->has_entrypoint = true;
		img->entrypoint_line = in->line;
		if (!s->cmd_set) { /* as docker: a new ENTRYPOINT drops the base's CMD */
			strvec_free(&img->cmd);
			img->has_cmd = false;
			img->cmd_line = 0;
		}
	} else {
		strvec_free(&img->cmd);
		img->cmd = argv;
		img->has_cmd = true;
		img->cmd_line = in->line;
		s->cmd_set = true;
	}
	return 0;
}

/* An earlier stage by AS name or index, as --from names it; NULL for an
 * image. The stage being built is not yet "earlier": b->n - 1 is left out. */
static const struct bstage *find_stage(const struct build *b, const char *name)
{
	char *end;
	long idx = strtol(name, &end, 10);
	if (*name && !*end)
		return idx >= 0 && (size_t)idx + 1 < b->n ? &b->v[idx] : NULL;
	for (size_t i = 0; i + 1 < b->n; i++)
		if (b->v[i].name && strcasecmp(b->v[i].name, name) == 0)
			return &b->v[i];
	return NULL;
}

static int do_copy(struct build *b, const struct instr *in, struct bstage *s)
{
	struct strvec w = {0}, words = {0};
	struct kvvec flags = {0}, vars = {0};
	dockerfile_split_words(&w, in->args, b->r->esc);
	size_t k;
	take_flags(&flags, &w, &k);
	stage_vars(&vars, s);
	int rc = -1;
	bool add = strcmp(in->kw, "ADD") == 0;
	cleanup_free char *rest = NULL;
	{
		struct strbuf sb = STRBUF_INIT;
		for (size_t i = k; i < w.n; i++)
			sb_addf(&sb, "%s%s", i > k ? " " : "", w.v[i]);
		rest = sb_detach(&sb);
	}
	struct strvec raw = {0};
	if (!json_form(&raw, rest))
		for (size_t i = k; i < w.n; i++)
			strvec_push(&raw, w.v[i]);
	for (size_t i = 0; i < raw.n; i++) {
		char *x = expand(b, in, &vars, raw.v[i]);
		if (!x) {
			strvec_free(&raw);
			goto out;
		}
		strvec_push_take(&words, x);
	}
	strvec_free(&raw);
	if (words.n < 2 && !in->heredoc) {
		fail_at(b->r, in->line, "%s needs a source and a destination", in->kw);
		goto out;
	}
	if (!words.n)
		strvec_push(&words, "/");
	struct dockerfile_copy c = {.add = add, .line = in->line, .heredoc = in->heredoc};
	for (size_t i = 0; i + 1 < words.n; i++)
		strvec_push(&c.src, words.v[i]);
	const char *dest = words.v[words.n - 1];
	size_t dl = strlen(dest);
	c.dest_dir = words.n > 2 || (dl && dest[dl - 1] == '/') || strcmp(dest, ".") == 0 ||
		     (dl >= 2 && strcmp(dest + dl - 2, "/.") == 0);
	c.dest = abs_against(s->img.workdir, dest);
	const struct kv *f;
	if ((f = kvvec_get(&flags, "from"))) {
		c.from = xstrdup(f->value ? f->value : "");
		const struct bstage *from = find_stage(b, c.from);
		for (size_t i = 0; from && i < from->img.ncopies; i++) {
			const struct dockerfile_copy *fc = &from->img.copies[i];
			if (fc->from || fc->heredoc)
				continue;
			c.from_copies = xrealloc(c.from_copies,
						 (c.nfrom_copies + 1) * sizeof(*c.from_copies));
			copy_dup(&c.from_copies[c.nfrom_copies++], fc);
		}
	}
	if ((f = kvvec_get(&flags, "chown")))
		c.chown = xstrdup(f->value ? f->value : "");
	if ((f = kvvec_get(&flags, "chmod")))
		c.chmod = xstrdup(f->value ? f->value : "");
	struct dockerfile_image *img = &s->img;
	img->copies = xrealloc(img->copies, (img->ncopies + 1) * sizeof(*img->copies));
	img->copies[img->ncopies++] = c;
	rc = 0;
out:
	strvec_free(&w);
	strvec_free(&words);
	kvvec_free(&flags);
	kvvec_free(&vars);
	return rc;
}

static int do_simple(struct build *b, const struct instr *in, struct bstage *s)
{
	struct dockerfile_image *img = &s->img;
	if (strcmp(in->kw, "RUN") == 0) {
		img->runs = xrealloc(img->runs, (img->nruns + 1) * sizeof(int));
		img->runs[img->nruns++] = in->line;
		return 0;
	}
	if (strcmp(in->kw, "SHELL") == 0) {
		struct strvec sh = {0};
		if (!json_form(&sh, in->args) || !sh.n) {
			strvec_free(&sh);
			return fail_at(b->r, in->line, "SHELL takes the JSON form: SHELL "
				       "[\"/bin/bash\", \"-c\"]");
		}
		strvec_free(&s->shell);
		s->shell = sh;
		return 0;
	}
	bool wd = strcmp(in->kw, "WORKDIR") == 0;
	if (!*in->args)
		return fail_at(b->r, in->line, "%s needs a value", in->kw);
	struct kvvec vars = {0};
	stage_vars(&vars, s);
	char *v = expand(b, in, &vars, in->args);
	kvvec_free(&vars);
	if (!v)
		return -1;
	if (wd) {
		char *abs = abs_against(img->workdir, v);
		free(v);
		free(img->workdir);
		img->workdir = abs;
		img->workdir_line = in->line;
	} else {
		free(img->user);
		img->user = v;
		img->user_line = in->line;
	}
	return 0;
}

static const char *const instructions[] = {
	"ADD",	    "ARG",   "CMD",	"COPY",	      "ENTRYPOINT", "ENV",
	"EXPOSE",   "FROM",  "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
	"RUN",	    "SHELL", "STOPSIGNAL",  "USER",  "VOLUME",     "WORKDIR",
};

static int dispatch(struct build *b, const struct instr *in)
{
	const char *kw = in->kw;
	bool known = false;
	for (size_t i = 0; i < sizeof(instructions) / sizeof(*instructions); i++)
		known |= strcmp(kw, instructions[i]) == 0;
	if (!known) {
		const char *near = suggest_nearest(kw, instructions,
						   sizeof(instructions) / sizeof(*instructions));
		return fail_at(b->r, in->line, "unknown instruction \"%s\"%s%s%s", kw,
			       near ? " (did you mean \"" : "", near ? near : "", near ? "\"?)" : "");
	}
	if (strcmp(kw, "FROM") == 0)
		return do_from(b, in);
	if (!b->n) {
		if (strcmp(kw, "ARG") == 0)
			return do_arg(b, in, NULL);
		return fail_at(b->r, in->line, "%s before the first FROM; only ARG may come "
			       "before it", kw);
	}
	struct bstage *s = &b->v[b->n - 1];
	if (strcmp(kw, "ARG") == 0)
		return do_arg(b, in, s);
	if (strcmp(kw, "ENV") == 0)
		return do_env(b, in, s);
	if (strcmp(kw, "CMD") == 0 || strcmp(kw, "ENTRYPOINT") == 0)
		return do_command(in, s, kw[0] == 'E');
	if (strcmp(kw, "COPY") == 0 || strcmp(kw, "ADD") == 0)
		return do_copy(b, in, s);
	if (strcmp(kw, "RUN") == 0 || strcmp(kw, "SHELL") == 0 || strcmp(kw, "WORKDIR") == 0 ||
	    strcmp(kw, "USER") == 0)
		return do_simple(b, in, s);
	if (strcmp(kw, "ONBUILD") == 0)
		strvec_push_take(&s->img.notes,
				 xasprintf("line %d: ONBUILD applies to images built FROM this "
					   "one, not to it",
					   in->line));
	return 0; /* EXPOSE, LABEL, VOLUME, ...: no meaning for a local process */
}

int dockerfile_read(struct dockerfile_image *out, const char *text, size_t len,
		    const char *name, const char *target, const struct kvvec *args,
		    const struct kvvec *env, struct cp_error *err)
{
	memset(out, 0, sizeof(*out));
	struct reader r = {.name = name, .esc = '\\', .err = err};
	struct build b = {.r = &r, .build_args = args, .env = env};
	int rc = -1;
	if (len > DOCKERFILE_MAX || memchr(text, '\0', len)) {
		cp_error_set(err, EXIT_USAGE, "%s: not a Dockerfile (%s)", name,
			     len > DOCKERFILE_MAX ? "over 1 MiB" : "it holds NUL bytes");
		goto out;
	}
	if (read_lines(&r, text, len) < 0)
		goto out;
	for (size_t i = 0; i < r.n; i++)
		if (dispatch(&b, &r.v[i]) < 0)
			goto out;
	if (!b.n) {
		fail_at(&r, r.n ? r.v[r.n - 1].line : 1, "no FROM: the Dockerfile has no build stage");
		goto out;
	}
	size_t pick = b.n - 1;
	if (target && *target) {
		size_t i = 0;
		while (i < b.n && !(b.v[i].name && strcasecmp(b.v[i].name, target) == 0))
			i++;
		if (i == b.n) {
			struct strbuf names = STRBUF_INIT;
			for (size_t j = 0; j < b.n; j++)
				if (b.v[j].name)
					sb_addf(&names, "%s\"%s\"", names.len ? ", " : "", b.v[j].name);
			cp_error_set(err, EXIT_USAGE,
				     "%s: target stage \"%s\" not found; the stages are %s", name,
				     target, names.len ? sb_str(&names) : "unnamed");
			sb_free(&names);
			goto out;
		}
		pick = i;
	}
	*out = b.v[pick].img;
	memset(&b.v[pick].img, 0, sizeof(b.v[pick].img));
	rc = 0;
out:
	for (size_t i = 0; i < b.n; i++)
		bstage_free(&b.v[i]);
	free(b.v);
	kvvec_free(&b.meta);
	for (size_t i = 0; i < r.n; i++) {
		free(r.v[i].kw);
		free(r.v[i].args);
	}
	free(r.v);
	return rc;
}
