/* `cpipe report`: one run as a self-contained HTML page (inline CSS and
 * SVG, images as data: URIs, no script, nothing fetched).
 *
 * The page is rendered from a model document that report_data.c fills
 * from the run record, the records before it, the store and the logs:
 *   {"run":     the run record,
 *    "graph":   {"nodes": [{"name", "status", "ms", "service"}],
 *                "edges": [{"from", "to", "label"}]},
 *    "history": [{"id", "rows": lineage_metrics_record rows}] oldest first,
 *                ending with the run itself,
 *    "lineage": {artifact: lineage_build tree},
 *    "logs":    {stage: last lines of its log},
 *    "images":  [{"stage", "artifact", "file", "uri", ["class"],
 *                 ["true_class"], ["probability"], ["correct"]}],
 *    "generated": ISO time}
 * Rendering (report_html.c, report_svg.c) is pure: model in, text out. */
#ifndef CPIPE_ARTIFACTS_REPORT_H
#define CPIPE_ARTIFACTS_REPORT_H

#include <cjson/cJSON.h>

#include "../lib/error.h"
#include "../lib/util.h"
#include "redact.h"

/* At most this many runs feed the charts across runs. */
#define REPORT_HISTORY 30
/* At most this many images are embedded, each at most REPORT_IMAGE_MAX. */
#define REPORT_IMAGES    24
#define REPORT_IMAGE_MAX (512u << 10)
/* Lines of each stage's log kept. */
#define REPORT_LOG_LINES 40

/* Fills model fields "history", "lineage", "logs" and "images" for run
 * record `rec` (already in model "run") from `state_dir` (.cpipe) and its
 * store. Text from logs is masked with `r`. What cannot be read (a log
 * gone, an object collected) is left out, not an error. */
void report_data_fill(cJSON *model, const char *state_dir, const struct redactor *r);

/* The page for `model`. Caller owns. */
char *report_html(const cJSON *model);

/* SVG drawings, appended to `sb` (report_svg.c). */
/* The stage graph: layers by longest path from the sources, left to right;
 * each node coloured by its status and labelled with its time. */
void report_svg_dag(struct strbuf *sb, const cJSON *graph);
/* The stages' spans from the run's start, one bar a stage. */
void report_svg_timeline(struct strbuf *sb, const cJSON *run);
/* A line chart of `n` values (NaN where a run lacks the metric), labelled
 * by `labels[i]`; point `mark` (or -1) is drawn larger. */
void report_svg_line(struct strbuf *sb, const double *v, const char *const *labels, size_t n,
		     long mark);
/* Horizontal bars of an object whose members are numbers. */
void report_svg_bars(struct strbuf *sb, const cJSON *map);

/* `s` with &, <, >, " and ' escaped, appended to `sb`. */
void report_escape(struct strbuf *sb, const char *s);
/* "185ms", "2.4s", "1m05s". */
void report_duration(char out[32], long long ms);
/* The fill colour of a stage status. */
const char *report_status_colour(const char *status);

#endif
