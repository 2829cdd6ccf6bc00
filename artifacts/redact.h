/* What cpipe must never write down or print: values of variables whose
 * names say they are secret, values fed by them, and the password of a
 * `scheme://user:password@host` URL. A redactor is the set of secret
 * values one spec knows; it masks them in text and in JSON documents. */
#ifndef CPIPE_ARTIFACTS_REDACT_H
#define CPIPE_ARTIFACTS_REDACT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "../lib/util.h"

#define REDACTED "<redacted>"

/* Values shorter than this are not masked inside other text: they would
 * mask unrelated words ("1", "yes"). Whole values are masked at any length
 * where a secret name says so. */
#define REDACT_MIN_LEN 4

/* True when an environment variable's name says its value is secret. The
 * name is split into words at every character that is not a letter or a
 * digit ("GITHUB_PAT" -> GITHUB, PAT); it is secret when a word is KEY,
 * KEYS, PAT, PASS, CREDS, or ends with TOKEN(S), SECRET(S), PASSWORD(S),
 * PASSWD, PASSPHRASE, CREDENTIAL(S), APIKEY or AUTH (any case). So API_KEY,
 * AWS_ACCESS_KEY_ID, GH_TOKEN, DB_PASSWORD, OAUTH are secret; PATH, KEYBOARD,
 * MONKEY, AUTHOR, TOKENIZERS_PARALLELISM are not. */
bool env_name_is_secret(const char *name);

/* The first URL at or after `s` that carries credentials
 * ("scheme://user@host" or "scheme://user:password@host"): *user points at
 * the user, *at at the '@', *colon at the ':' before the password or NULL.
 * False when there is none. */
bool url_find_userinfo(const char *s, const char **user, const char **colon, const char **at);

struct redactor {
	struct strvec values; /* longest first, so a value inside another is masked whole */
};

/* Adds a secret value (NULL and values shorter than REDACT_MIN_LEN are
 * ignored); a multi-line value is also added line by line, as logs are
 * masked a line at a time. */
void redactor_add(struct redactor *r, const char *value);

/* Adds the password of every credentialed URL inside `text`. */
void redactor_add_urls(struct redactor *r, const char *text);

/* `text` with every secret value replaced by REDACTED and the password of
 * every URL in it too. `r` may be NULL (URLs only). Caller owns. */
char *redactor_text(const struct redactor *r, const char *text);

/* True when redactor_text would change `text`. */
bool redactor_hits(const struct redactor *r, const char *text);

/* Applies redactor_text to every string value below `node`, in place. */
void redactor_json(const struct redactor *r, cJSON *node);

void redactor_free(struct redactor *r);

#endif
