/* cpipe runs: the recorded runs as an experiment table, newest first: the
 * counts, status and commit of each, its --name, the params that differ
 * between the runs listed and the top-level numeric metrics that do (--param
 * and --metric GLOB pick others), sortable by any column (--sort). --json and
 * --csv carry every param and every metric leaf. */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "../artifacts/lineage.h"
#include "../artifacts/store.h"
#include "../lib/cleanup.h"
#include "history.h"
#include "opts.h"

struct runs_opts {
	struct strvec params, metrics; /* --param, --metric globs */
	const char *sort;              /* --sort [-]COLUMN */
	bool csv;
};

/* One listed run: its record, and its params and metric values flattened
 * to column -> value. */
struct row {
	char *id;
	cJSON *rec;
	cJSON *params;  /* "stage.param" -> value */
	cJSON *metrics; /* "metric" (or "stage.metric" on a clash) -> value */
	cJSON *counts;
};

static bool glob_any(const struct strvec *globs, const char *name)
{
	for (size_t i = 0; i < globs->n; i++)
		if (fnmatch(globs->v[i], name, 0) == 0)
			return true;
	return false;
}

/* Metric paths that more than one stage or file defines get the stage's
 * name in front, so no column mixes two metrics. */
static cJSON *metrics_of(const cJSON *rows, const cJSON *clashes)
{
	cJSON *out = cJSON_CreateObject();
	for (const cJSON *r = rows->child; r; r = r->next) {
		const char *m = hist_str(r, "metric");
		cleanup_free char *col = cJSON_IsTrue(cJSON_GetObjectItem(clashes, m))
						 ? xasprintf("%s.%s", hist_str(r, "stage"), m)
						 : xstrdup(m);
		if (!cJSON_GetObjectItem(out, col))
			cJSON_AddItemToObject(out, col,
					      cJSON_Duplicate(cJSON_GetObjectItem(r, "value"), true));
	}
	return out;
}

/* metric path -> true when two (stage, file) pairs define it. */
static cJSON *metric_clashes(cJSON *const *rows, size_t n)
{
	cJSON *where = cJSON_CreateObject(), *clashes = cJSON_CreateObject();
	for (size_t i = 0; i < n; i++)
		for (const cJSON *r = rows[i]->child; r; r = r->next) {
			const char *m = hist_str(r, "metric");
			cleanup_free char *at =
				xasprintf("%s\t%s", hist_str(r, "stage"), hist_str(r, "file"));
			const char *seen = hist_str(where, m);
			if (!seen)
				cJSON_AddStringToObject(where, m, at);
			else if (strcmp(seen, at) != 0 && !cJSON_GetObjectItem(clashes, m))
				cJSON_AddTrueToObject(clashes, m);
		}
	cJSON_Delete(where);
	return clashes;
}

/* The param or metric columns in first-seen order: those the globs match,
 * else (`all`) every one, else those whose value differs between the runs
 * listed, for metrics only top-level numbers (all of them for one run). */
static void columns(struct strvec *out, const struct row *rows, size_t n, bool params,
		    const struct strvec *globs, bool all)
{
	for (size_t i = 0; i < n; i++) {
		const cJSON *o = params ? rows[i].params : rows[i].metrics;
		for (const cJSON *v = o->child; v; v = v->next) {
			if (strvec_contains(out, v->string))
				continue;
			bool keep;
			if (globs->n)
				keep = glob_any(globs, v->string);
			else if (all)
				keep = true;
			else if (!params && (strchr(v->string, '.') || !cJSON_IsNumber(v)))
				keep = false;
			else if (!params && n == 1)
				keep = true;
			else {
				keep = false;
				for (size_t k = 0; k < n && !keep; k++) {
					const cJSON *o2 = params ? rows[k].params : rows[k].metrics;
					const cJSON *w = cJSON_GetObjectItem(o2, v->string);
					keep = !w || !cJSON_Compare(v, w, true);
				}
			}
			if (keep)
				strvec_push(out, v->string);
		}
	}
}

static const char *const fixed_cols[] = {"id",     "name",   "started", "status", "commit",
					 "ran",    "skipped", "failed", "overrides"};

/* The value a row has in column `col`, or NULL; a new item. */
static cJSON *cell(const struct row *r, const char *col)
{
	const cJSON *v = cJSON_GetObjectItem(r->params, col);
	if (!v)
		v = cJSON_GetObjectItem(r->metrics, col);
	if (v)
		return cJSON_Duplicate(v, true);
	if (strcmp(col, "id") == 0)
		return cJSON_CreateString(r->id);
	if (strcmp(col, "status") == 0)
		return cJSON_CreateString(hist_run_status(r->rec));
	if (strcmp(col, "commit") == 0) {
		cleanup_free char *t = hist_commit_text(cJSON_GetObjectItem(r->rec, "git"));
		return cJSON_CreateString(t);
	}
	if (strcmp(col, "overrides") == 0) {
		cleanup_free char *t = hist_overrides_text(r->rec);
		return cJSON_CreateString(t);
	}
	if (strcmp(col, "ran") == 0 || strcmp(col, "skipped") == 0 || strcmp(col, "failed") == 0)
		return cJSON_Duplicate(cJSON_GetObjectItem(r->counts, col), true);
	const cJSON *f = cJSON_GetObjectItem(r->rec, col); /* name, started */
	return cJSON_IsString(f) ? cJSON_Duplicate(f, true) : NULL;
}

/* A number, or a string that reads fully as one. */
static bool numeric(const cJSON *v, double *out)
{
	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return true;
	}
	if (!cJSON_IsString(v) || !*v->valuestring)
		return false;
	char *end;
	*out = strtod(v->valuestring, &end);
	return *end == '\0';
}

static const char *sort_col;
static bool sort_desc;

/* Missing values sort last either way; numbers numerically. */
static int cmp_rows(const void *a, const void *b)
{
	cleanup_cjson cJSON *x = cell(a, sort_col), *y = cell(b, sort_col);
	int r;
	double dx, dy;
	if (!x || !y)
		r = !x && !y ? 0 : !x ? 1 : -1;
	else if (numeric(x, &dx) && numeric(y, &dy))
		r = (dx > dy) - (dx < dy);
	else {
		cleanup_free char *sx = hist_value_text(x), *sy = hist_value_text(y);
		r = strcmp(sx, sy);
	}
	if (x && y && sort_desc)
		r = -r;
	return r;
}

static bool known_column(const struct row *rows, size_t n, const char *col)
{
	for (size_t i = 0; i < ARRAY_LEN(fixed_cols); i++)
		if (strcmp(fixed_cols[i], col) == 0)
			return true;
	for (size_t i = 0; i < n; i++)
		if (cJSON_GetObjectItem(rows[i].params, col) ||
		    cJSON_GetObjectItem(rows[i].metrics, col))
			return true;
	return false;
}

static int sort_rows(struct row *rows, size_t n, const char *spec, struct cp_error *err)
{
	sort_desc = spec[0] == '-';
	sort_col = spec + (sort_desc || spec[0] == '+');
	if (!known_column(rows, n, sort_col)) {
		return cp_error_set(
		    err, EXIT_USAGE,
		    "--sort %s: no column \"%s\"; sort by id, name, started, status, "
		    "ran, skipped, failed, a param (STAGE.PARAM) or a metric, with - "
		    "in front for descending",
		    spec, sort_col);
	}
	qsort(rows, n, sizeof(*rows), cmp_rows);
	return 0;
}

static void csv_field(const char *s, bool first)
{
	if (!first)
		putchar(',');
	if (!s[strcspn(s, ",\"\r\n")]) {
		fputs(s, stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

static void print_csv(const struct row *rows, size_t n, const struct strvec *cols)
{
	for (size_t k = 0; k < cols->n; k++)
		csv_field(cols->v[k], k == 0);
	putchar('\n');
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < cols->n; k++) {
			cJSON *v = cell(&rows[i], cols->v[k]);
			cleanup_free char *t = v ? hist_value_text(v) : xstrdup("");
			csv_field(t, k == 0);
			cJSON_Delete(v);
		}
		putchar('\n');
	}
}

static cJSON *json_row(const struct row *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", r->id);
	static const char *const copied[] = {"name", "started", "ended", "git", "overrides", "argv",
					     "experiment"};
	for (size_t k = 0; k < ARRAY_LEN(copied); k++) {
		const cJSON *v = cJSON_GetObjectItem(r->rec, copied[k]);
		if (v)
			cJSON_AddItemToObject(o, copied[k], cJSON_Duplicate(v, true));
	}
	cJSON_AddStringToObject(o, "status", hist_run_status(r->rec));
	cJSON_AddItemToObject(o, "stages", cJSON_Duplicate(r->counts, true));
	cJSON_AddItemToObject(o, "params", cJSON_Duplicate(r->params, true));
	cJSON_AddItemToObject(o, "metrics", cJSON_Duplicate(r->metrics, true));
	return o;
}

/* Keeps only the members of `o` the globs match (none given: all). */
static void filter(cJSON *o, const struct strvec *globs)
{
	for (cJSON *v = globs->n ? o->child : NULL, *next; v; v = next) {
		next = v->next;
		if (!glob_any(globs, v->string))
			cJSON_Delete(cJSON_DetachItemViaPointer(o, v));
	}
}

static void print_table(const struct row *rows, size_t n, const struct strvec *pcols,
			const struct strvec *mcols)
{
	bool named = false;
	for (size_t i = 0; i < n; i++)
		named = named || hist_str(rows[i].rec, "name");
	struct strvec cols = {0};
	strvec_push(&cols, "commit");
	if (named)
		strvec_push(&cols, "name");
	for (size_t k = 0; k < pcols->n; k++)
		strvec_push(&cols, pcols->v[k]);
	for (size_t k = 0; k < mcols->n; k++)
		strvec_push(&cols, mcols->v[k]);
	char **text = xcalloc(n * cols.n + 1, sizeof(*text));
	size_t *w = xcalloc(cols.n + 1, sizeof(*w));
	for (size_t k = 0; k < cols.n; k++) {
		w[k] = strlen(cols.v[k]);
		for (size_t i = 0; i < n; i++) {
			cJSON *v = cell(&rows[i], cols.v[k]);
			text[i * cols.n + k] = v ? hist_value_text(v) : xstrdup("-");
			cJSON_Delete(v);
			if (strlen(text[i * cols.n + k]) > w[k])
				w[k] = strlen(text[i * cols.n + k]);
		}
	}
	printf("%-26s %-20s %4s %4s %4s  %-11s", "ID", "STARTED (UTC)", "RAN", "SKIP", "FAIL",
	       "STATUS");
	for (size_t k = 0; k < cols.n; k++) {
		/* The fixed columns shout; params and metrics keep their names. */
		bool fixed = k == 0 || (named && k == 1);
		printf(" %-*s", (int)w[k], fixed ? (k == 0 ? "COMMIT" : "NAME") : cols.v[k]);
	}
	printf("  OVERRIDES\n");
	for (size_t i = 0; i < n; i++) {
		const char *started = hist_str(rows[i].rec, "started");
		char when[20] = "-";
		if (started && strlen(started) >= 19)
			snprintf(when, sizeof(when), "%.10s %.8s", started, started + 11);
		printf("%-26s %-20s %4d %4d %4d  %-11s", rows[i].id, when,
		       cJSON_GetObjectItem(rows[i].counts, "ran")->valueint,
		       cJSON_GetObjectItem(rows[i].counts, "skipped")->valueint,
		       cJSON_GetObjectItem(rows[i].counts, "failed")->valueint,
		       hist_run_status(rows[i].rec));
		for (size_t k = 0; k < cols.n; k++)
			printf(" %-*s", (int)w[k], text[i * cols.n + k]);
		cleanup_free char *ov = hist_overrides_text(rows[i].rec);
		printf("  %s\n", ov);
	}
	for (size_t i = 0; i < n * cols.n; i++)
		free(text[i]);
	free(text);
	free(w);
	strvec_free(&cols);
}

static int parse(struct runs_opts *o, struct cli *c, int argc, char **argv)
{
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0) {
		if (opt == 'P')
			strvec_push(&o->params, optarg);
		else if (opt == 'm')
			strvec_push(&o->metrics, optarg);
		else if (opt == 'S')
			o->sort = optarg;
		else if (opt == 'c')
			o->csv = true;
	}
	if (opt != -1)
		return cli_opt_exit(opt);
	if (optind != argc)
		return cli_usage_error(argv[0]);
	if (o->csv && c->json) {
		fprintf(stderr, "cpipe: runs: --csv and --json exclude each other\n");
		return EXIT_USAGE;
	}
	return -1;
}

static void rows_free(struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].id);
		cJSON_Delete(rows[i].rec);
		cJSON_Delete(rows[i].params);
		cJSON_Delete(rows[i].metrics);
		cJSON_Delete(rows[i].counts);
	}
	free(rows);
}

/* The rows of every readable record, newest first. */
static size_t load_rows(struct row **out, const struct strvec *ids, const char *state)
{
	struct row *rows = xcalloc(ids->n + 1, sizeof(*rows));
	cJSON **mrows = xcalloc(ids->n + 1, sizeof(*mrows));
	size_t n = 0;
	for (size_t i = ids->n; i-- > 0;) {
		struct cp_error err = {0};
		cJSON *rec = NULL;
		if (record_load(&rec, state, ids->v[i], &err) < 0) {
			/* One unreadable record must not hide the others. */
			fprintf(stderr, "cpipe: %s\n", err.msg);
			cp_error_clear(&err);
			continue;
		}
		rows[n] = (struct row){.id = xstrdup(ids->v[i]), .rec = rec,
				       .params = hist_record_params(rec), .counts = lineage_stage_counts(rec)};
		mrows[n++] = lineage_metrics_record(rec);
	}
	cJSON *clashes = metric_clashes(mrows, n);
	for (size_t i = 0; i < n; i++) {
		rows[i].metrics = metrics_of(mrows[i], clashes);
		cJSON_Delete(mrows[i]);
	}
	cJSON_Delete(clashes);
	free(mrows);
	*out = rows;
	return n;
}

int cmd_runs(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	struct runs_opts o = {0};
	int rc = parse(&o, c, argc, argv);
	cleanup_free char *dir = NULL, *state = NULL;
	struct strvec ids = {0}, pcols = {0}, mcols = {0};
	struct row *rows = NULL;
	size_t n = 0;
	if (rc >= 0)
		goto out;
	if (hist_open_project(&dir, &state, c, &err) < 0 || record_ids(&ids, state, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	n = load_rows(&rows, &ids, state);
	if (o.sort && sort_rows(rows, n, o.sort, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	rc = EXIT_OK;
	if (c->json) {
		cJSON *list = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++) {
			cJSON *r = json_row(&rows[i]);
			filter(cJSON_GetObjectItem(r, "params"), &o.params);
			filter(cJSON_GetObjectItem(r, "metrics"), &o.metrics);
			cJSON_AddItemToArray(list, r);
		}
		cli_print_json(list);
		cJSON_Delete(list);
		goto out;
	}
	if (c->quiet && !o.csv) {
		for (size_t i = 0; i < n; i++)
			puts(rows[i].id);
		goto out;
	}
	if (n == 0 && !o.csv) {
		printf("no runs yet; cpipe run records one\n");
		goto out;
	}
	columns(&pcols, rows, n, true, &o.params, o.csv);
	columns(&mcols, rows, n, false, &o.metrics, o.csv);
	if (o.csv) {
		struct strvec cols = {0};
		for (size_t k = 0; k < ARRAY_LEN(fixed_cols); k++)
			strvec_push(&cols, fixed_cols[k]);
		for (size_t k = 0; k < pcols.n; k++)
			strvec_push(&cols, pcols.v[k]);
		for (size_t k = 0; k < mcols.n; k++)
			strvec_push(&cols, mcols.v[k]);
		print_csv(rows, n, &cols);
		strvec_free(&cols);
	} else {
		print_table(rows, n, &pcols, &mcols);
	}
out:
	rows_free(rows, n);
	strvec_free(&ids);
	strvec_free(&pcols);
	strvec_free(&mcols);
	strvec_free(&o.params);
	strvec_free(&o.metrics);
	return rc;
}
