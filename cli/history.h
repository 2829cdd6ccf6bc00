/* Helpers the looking-back verbs share (cli/cmd_history.c defines them):
 * runs, show, prov (cmd_history.c), lineage (cmd_lineage.c), metrics and
 * params (cmd_metrics.c), attest (cmd_attest.c). Formatting and lookups
 * only; what they compute lives in artifacts/lineage.h. */
#ifndef CPIPE_CLI_HISTORY_H
#define CPIPE_CLI_HISTORY_H

#include <cjson/cJSON.h>

#include "cli.h"

void hist_json_cleanup(cJSON **j);
#define cleanup_json __attribute__((cleanup(hist_json_cleanup)))

/* The string member `key` of `o`, NULL when absent or not a string. Lends. */
const char *hist_str(const cJSON *o, const char *key);

/* The project directory and its .cpipe, found the way every verb finds the
 * spec (-C, -f). Both owned by the caller. */
int hist_open_project(char **dir, char **state, struct cli *c, struct cp_error *err);

/* The record of RUN `arg`: an id, a unique prefix, latest, latest~N, or the
 * --name of a run (the newest so named). Caller owns *rec. */
int hist_load_run(cJSON **rec, const char *state, const char *arg, struct cp_error *err);

/* A scalar as the tables print it: %.15g, the string, true/false, "-". */
void hist_print_value(const cJSON *v);
/* The same into a new string; caller owns. */
char *hist_value_text(const cJSON *v);
/* The first 12 hex digits of a sha256 digest ("missing" for NULL). */
void hist_short_digest(char out[16], const char *d);
void hist_human_size(char out[32], const cJSON *size);
/* "b7ce8aa+dirty", "-" outside git. Caller owns. */
char *hist_commit_text(const cJSON *git);
/* A record's status, "aborted" for a running run whose process is gone. */
const char *hist_run_status(const cJSON *rec);
/* "train.lr=0.1 train.epochs=2", "" without overrides. Caller owns. */
char *hist_overrides_text(const cJSON *rec);

/* "stage.param" -> value over every stage of a record, in run order (the
 * first entry of a stage that appears twice). Caller owns. */
cJSON *hist_record_params(const cJSON *rec);

/* Whether metric row `r` ({"stage", "file", "metric"}) is shown: with
 * globs (fnmatch over the metric's path, or "stage.path"), when one
 * matches; without, when `all` or the metric is a top-level scalar. */
bool hist_metric_shown(const cJSON *r, const struct strvec *globs, bool all);

#endif
