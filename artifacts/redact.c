#include "redact.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static bool word_is_secret(const char *w, size_t n)
{
	static const char *const whole[] = {"KEY", "KEYS", "PAT", "PASS", "CREDS"};
	static const char *const endings[] = {
		"TOKEN",  "TOKENS", "SECRET",	  "SECRETS",	 "PASSWORD", "PASSWORDS",
		"PASSWD", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS", "APIKEY",   "AUTH",
	};
	for (size_t i = 0; i < ARRAY_LEN(whole); i++)
		if (strlen(whole[i]) == n && memcmp(w, whole[i], n) == 0)
			return true;
	for (size_t i = 0; i < ARRAY_LEN(endings); i++) {
		size_t m = strlen(endings[i]);
		if (m <= n && memcmp(w + n - m, endings[i], m) == 0)
			return true;
	}
	return false;
}

bool env_name_is_secret(const char *name)
{
	cleanup_free char *up = xstrdup(name);
	for (char *c = up; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	for (const char *p = up; *p;) {
		while (*p && !isalnum((unsigned char)*p))
			p++;
		const char *w = p;
		while (isalnum((unsigned char)*p))
			p++;
		if (p > w && word_is_secret(w, (size_t)(p - w)))
			return true;
	}
	return false;
}

static bool scheme_char(char c)
{
	return isalnum((unsigned char)c) || c == '+' || c == '-' || c == '.';
}

/* Where a URL's authority ends: the path, query or fragment, or anything
 * that cannot be inside a URL written in a command or a config value. */
static bool authority_end(char c)
{
	return !c || c == '/' || c == '?' || c == '#' || isspace((unsigned char)c) || c == '"' ||
	       c == '\'' || c == '<' || c == '>' || c == '`';
}

bool url_find_userinfo(const char *s, const char **user, const char **colon, const char **at)
{
	for (const char *sep = strstr(s, "://"); sep; sep = strstr(sep + 3, "://")) {
		if (sep == s || !scheme_char(sep[-1]))
			continue;
		const char *host = sep + 3, *last_at = NULL, *p;
		for (p = host; !authority_end(*p); p++)
			if (*p == '@')
				last_at = p;
		if (!last_at || last_at == host)
			continue;
		*user = host;
		*at = last_at;
		const char *c = memchr(host, ':', (size_t)(last_at - host));
		*colon = c;
		return true;
	}
	return false;
}

static int longest_first(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_one(struct redactor *r, const char *v, size_t n)
{
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n'))
		n--;
	if (n < REDACT_MIN_LEN)
		return;
	cleanup_free char *s = xstrndup(v, n);
	/* Masking must be idempotent: a value inside the mask would grow it. */
	if (strstr(REDACTED, s) || strvec_contains(&r->values, s))
		return;
	strvec_push(&r->values, s);
	qsort(r->values.v, r->values.n, sizeof(char *), longest_first);
}

void redactor_add(struct redactor *r, const char *value)
{
	if (!value)
		return;
	add_one(r, value, strlen(value));
	if (!strchr(value, '\n'))
		return;
	for (const char *p = value; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		add_one(r, p, n);
		p += n + (nl ? 1 : 0);
	}
}

void redactor_add_urls(struct redactor *r, const char *text)
{
	const char *user, *colon, *at;
	for (const char *p = text; p && url_find_userinfo(p, &user, &colon, &at); p = at + 1)
		if (colon && at > colon + 1)
			add_one(r, colon + 1, (size_t)(at - colon - 1));
}

static char *mask_urls(const char *text)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = text, *user, *colon, *at;
	while (url_find_userinfo(p, &user, &colon, &at)) {
		if (colon && at > colon + 1 && strncmp(colon + 1, REDACTED, strlen(REDACTED))) {
			sb_add(&sb, p, (size_t)(colon + 1 - p));
			sb_adds(&sb, REDACTED);
		} else {
			sb_add(&sb, p, (size_t)(at - p));
		}
		p = at;
	}
	sb_adds(&sb, p);
	return sb_detach(&sb);
}

bool redactor_hits(const struct redactor *r, const char *text)
{
	const char *user, *colon, *at;
	for (const char *p = text; url_find_userinfo(p, &user, &colon, &at); p = at + 1)
		if (colon && at > colon + 1 && strncmp(colon + 1, REDACTED, strlen(REDACTED)))
			return true;
	for (size_t i = 0; r && i < r->values.n; i++)
		if (strstr(text, r->values.v[i]))
			return true;
	return false;
}

char *redactor_text(const struct redactor *r, const char *text)
{
	if (!redactor_hits(r, text))
		return xstrdup(text);
	char *out = mask_urls(text);
	for (size_t i = 0; r && i < r->values.n; i++) {
		const char *v = r->values.v[i];
		size_t n = strlen(v);
		if (!strstr(out, v))
			continue;
		struct strbuf sb = STRBUF_INIT;
		const char *p = out, *hit;
		while ((hit = strstr(p, v))) {
			sb_add(&sb, p, (size_t)(hit - p));
			sb_adds(&sb, REDACTED);
			p = hit + n;
		}
		sb_adds(&sb, p);
		free(out);
		out = sb_detach(&sb);
	}
	return out;
}

void redactor_json(const struct redactor *r, cJSON *node)
{
	for (cJSON *c = node ? node->child : NULL; c; c = c->next) {
		if (cJSON_IsString(c) && c->valuestring) {
			if (!redactor_hits(r, c->valuestring))
				continue;
			char *masked = redactor_text(r, c->valuestring);
			cJSON_SetValuestring(c, masked);
			free(masked);
		} else {
			redactor_json(r, c);
		}
	}
}

void redactor_free(struct redactor *r)
{
	strvec_free(&r->values);
}
