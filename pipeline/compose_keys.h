/* Every key of the Compose Specification, top-level and per service, with
 * what cpipe does with it: one table (compose_keys.c), one entry per key.
 * The loader asks it for every key it reads; a key in no table is an error
 * with a suggestion, a key cpipe does not honour is accepted with one
 * warning naming it, where it is and what cpipe does instead. */
#ifndef CPIPE_PIPELINE_COMPOSE_KEYS_H
#define CPIPE_PIPELINE_COMPOSE_KEYS_H

#include <stddef.h>

enum compose_fate {
	CK_HONOURED, /* compose meaning, kept by cpipe */
	CK_WARNED,   /* accepted; one warning says what cpipe does instead */
	CK_CPIPE,    /* cpipe's own key, not in the Compose Specification */
};

struct compose_key {
	const char *key;
	enum compose_fate fate;
	/* HONOURED / CPIPE: what cpipe does with it; WARNED: what it does
	 * instead, as the warning ends ("cpipe ignores it; ..."). */
	const char *what;
};

enum compose_scope {
	CK_TOP,     /* the file's top level */
	CK_SERVICE, /* a service (stage) */
};

/* The table of a scope, and its length (lent, static). */
const struct compose_key *compose_keys(enum compose_scope scope, size_t *n);

/* The entry of `key` in `scope`, or NULL for a key the specification does
 * not have (x-* keys included: the caller ignores those). */
const struct compose_key *compose_key_find(enum compose_scope scope, const char *key);

/* The nearest key of `scope` to `key` for a "did you mean" (lent), or NULL. */
const char *compose_key_suggest(enum compose_scope scope, const char *key);

#endif
