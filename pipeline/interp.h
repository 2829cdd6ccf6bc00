/* Variable interpolation (`$VAR`, `${VAR:-default}`, ...) as compose does it,
 * the `.env` / env_file line format, and `${params.NAME}` substitution. */
#ifndef CPIPE_PIPELINE_INTERP_H
#define CPIPE_PIPELINE_INTERP_H

#include <stdbool.h>

#include "../artifacts/redact.h"
#include "../lib/error.h"
#include "../lib/util.h"
#include "yaml_tree.h"

/* Parses `.env` format (KEY=VALUE lines, `#` comments, optional `export `,
 * single or double quotes) into `out`; later lines win. A bare `KEY` line
 * gives a NULL value. `file` names the input in errors ("file:line:col:").
 * Returns -1 with err set on a malformed line. */
int envfile_parse(struct kvvec *out, const char *file, const char *data, struct cp_error *err);

/* Builds the interpolation environment into `out` (caller frees): the
 * entries of the env files `files` in order, later ones winning (`shown`
 * names them in errors; a missing one is skipped, or fails when
 * `must_exist`), overridden by `env` (NULL-terminated KEY=VALUE strings;
 * NULL = the process environment). */
int interp_env_build(struct kvvec *out, const char *const *env, const char *const *files,
		     const char *const *shown, size_t nfiles, bool must_exist, struct cp_error *err);

/* Interpolates `s`. *out is a new string the caller owns; *changed tells
 * whether any `$` form was replaced. `${params.NAME}` is kept verbatim.
 * Errors (required variable missing, unterminated `${`, bad syntax) are
 * placed at `mark`, moved to the exact column when `exact_col` > 0. */
int interp_string(char **out, bool *changed, const char *s, const struct kvvec *env,
		  const struct cp_mark *mark, int exact_col, struct cp_error *err);

/* Interpolates every scalar value below `root` in place (mapping keys and
 * top-level `x-*` entries are left alone). The value of every variable
 * read whose name is secret (env_name_is_secret) is added to `secrets`
 * (may be NULL), so whatever it fed can be masked. An unset variable read
 * without a default becomes "" and, unless `warned` (the names already
 * warned about, updated) is NULL, is warned about on stderr once, with
 * where it is used. Fails on the first error. */
int interp_tree(struct ynode *root, const struct kvvec *env, struct redactor *secrets,
		struct strvec *warned, struct cp_error *err);

/* Replaces every `${params.NAME}` in `s` with the value of NAME in
 * `params`; *out is new and owned by the caller. An unknown NAME fails at
 * `mark` with `stage "<stage>": unknown param "NAME"` and a suggestion. */
int interp_params(char **out, const char *s, const struct kvvec *params, const char *stage,
		  const struct cp_mark *mark, struct cp_error *err);

#endif
