/* The report page: the sections around report_svg.c's drawings. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lineage.h"
#include "report.h"

static const char CSS[] =
	"body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1f2430;"
	"background:#fff}"
	"header{background:#1f2430;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;"
	"font-size:22px}header .meta{color:#c8cdd8}main{padding:8px 28px 40px;max-width:1200px}"
	"section{margin-top:26px}h2{font-size:17px;border-bottom:1px solid #dde1e8;"
	"padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px}"
	"table{border-collapse:collapse}td,th{padding:3px 10px 3px 0;text-align:left;"
	"vertical-align:top}th{color:#596175;font-weight:600}"
	"code,pre,.mono{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px}"
	"pre{background:#f6f7fa;padding:8px;overflow:auto;max-height:360px;white-space:pre-wrap}"
	".badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-weight:600}"
	".tiles{display:flex;gap:14px;flex-wrap:wrap;margin-top:14px}.tile{background:#f6f7fa;"
	"border-radius:6px;padding:8px 14px}.tile b{display:block;font-size:20px}"
	".mfile{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start}.charts{display:flex;gap:18px;flex-wrap:wrap}.chart{margin:0}.chart figcaption{"
	"font-weight:600;font-size:13px}"
	".gallery{display:flex;gap:16px;flex-wrap:wrap}.gallery figure{margin:0;text-align:center;width:150px}"
	".gallery img{width:112px;height:112px;image-rendering:pixelated;border:3px solid #2e9d57}"
	".gallery figure.wrong img{border-color:#d64545}.gallery figcaption{font-size:12px}.gallery .mono{font-size:10px;color:#596175;word-break:break-all}"
	".wrong .pred{color:#d64545;font-weight:600}.over{background:#fff3c4}"
	"ul.lineage{margin:2px 0 8px;padding-left:18px}ul.lineage ul{padding-left:18px}"
	"svg text{font-family:system-ui,sans-serif}svg .n{font-size:13px;font-weight:600;fill:#fff}"
	"svg .s{font-size:11px;fill:#f0f2f6}svg .l{font-size:11px;fill:#3a4152}"
	"td.heat{width:26px;text-align:center;font-size:11px;padding:2px}";

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

static void esc(struct strbuf *sb, const char *s)
{
	report_escape(sb, s ? s : "-");
}

/* A table cell holding `text`, of class `cls` (may be NULL). */
static void cell(struct strbuf *sb, const char *cls, const char *text)
{
	sb_adds(sb, cls ? "<td class=\"" : "<td>");
	if (cls) {
		sb_adds(sb, cls);
		sb_adds(sb, "\">");
	}
	esc(sb, text);
	sb_adds(sb, "</td>");
}

static void value_text(struct strbuf *sb, const cJSON *v)
{
	if (cJSON_IsNumber(v))
		sb_addf(sb, "%.6g", v->valuedouble);
	else if (cJSON_IsString(v))
		esc(sb, v->valuestring);
	else if (cJSON_IsBool(v))
		sb_adds(sb, cJSON_IsTrue(v) ? "true" : "false");
	else if (v) {
		char *t = cJSON_PrintUnformatted(v);
		esc(sb, t);
		free(t);
	} else
		sb_adds(sb, "-");
}

static long long span_ms(const cJSON *o)
{
	long long a = lineage_time_ms(str_of(o, "started")), b = lineage_time_ms(str_of(o, "ended"));
	return a < 0 || b < a ? -1 : b - a;
}

static void size_text(struct strbuf *sb, const cJSON *size)
{
	if (!cJSON_IsNumber(size)) {
		sb_adds(sb, "?");
		return;
	}
	double v = size->valuedouble;
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_LEN(units))
		v /= 1024, u++;
	sb_addf(sb, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void header(struct strbuf *sb, const cJSON *run)
{
	const char *status = str_of(run, "status");
	char took[32];
	report_duration(took, span_ms(run));
	sb_adds(sb, "<header><h1>");
	esc(sb, str_of(run, "project"));
	sb_adds(sb, " · run <span id=\"run-id\" class=\"mono\">");
	esc(sb, str_of(run, "id"));
	sb_addf(sb, "</span> <span class=\"badge\" id=\"run-status\" style=\"background:%s\">",
		report_status_colour(status));
	esc(sb, status);
	sb_adds(sb, "</span></h1><div class=\"meta\">started ");
	esc(sb, str_of(run, "started"));
	sb_addf(sb, " · took %s · runtime ", took);
	esc(sb, str_of(run, "runtime"));
	sb_adds(sb, " · ");
	esc(sb, str_of(run, "user"));
	sb_adds(sb, "@");
	esc(sb, str_of(run, "host"));
	if (cJSON_IsTrue(cJSON_GetObjectItem(run, "experiment")))
		sb_adds(sb, " · experiment");
	const cJSON *git = cJSON_GetObjectItem(run, "git");
	if (cJSON_IsObject(git)) {
		sb_addf(sb, " · commit %.7s", str_of(git, "commit") ? str_of(git, "commit") : "(unborn)");
		if (str_of(git, "branch")) {
			sb_adds(sb, " on ");
			esc(sb, str_of(git, "branch"));
		}
		if (cJSON_IsTrue(cJSON_GetObjectItem(git, "dirty")))
			sb_adds(sb, ", dirty");
	}
	sb_adds(sb, "</div><div class=\"meta mono\">$");
	const cJSON *av = cJSON_GetObjectItem(run, "argv");
	for (const cJSON *a = av ? av->child : NULL; a; a = a->next) {
		sb_addc(sb, ' ');
		esc(sb, cJSON_GetStringValue(a));
	}
	sb_adds(sb, "</div></header>\n<main>\n");
}

/* One tile per stage status count and the run's top-level numeric metrics. */
static void tiles(struct strbuf *sb, const cJSON *run)
{
	cJSON *counts = lineage_stage_counts(run);
	sb_adds(sb, "<div class=\"tiles\">");
	for (const cJSON *c = counts->child; c; c = c->next)
		if (cJSON_IsNumber(c) && c->valueint > 0)
			sb_addf(sb, "<div class=\"tile\"><b>%d</b>%s</div>", c->valueint, c->string);
	cJSON_Delete(counts);
	const cJSON *stages = cJSON_GetObjectItem(run, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const cJSON *m = cJSON_GetObjectItem(st, "metrics");
		for (const cJSON *f = m ? m->child : NULL; f; f = f->next) {
			const cJSON *vals = cJSON_GetObjectItem(f, "values");
			for (const cJSON *v = vals ? vals->child : NULL; v; v = v->next)
				if (cJSON_IsNumber(v) && (strstr(v->string, "acc") || strstr(v->string, "loss"))) {
					sb_addf(sb, "<div class=\"tile\" data-metric-tile=\"");
					esc(sb, v->string);
					sb_addf(sb, "\"><b>%.4g</b>", v->valuedouble);
					esc(sb, v->string);
					sb_adds(sb, "</div>");
				}
		}
	}
	sb_adds(sb, "</div>\n");
}

static void graph_section(struct strbuf *sb, const cJSON *model)
{
	sb_adds(sb, "<section id=\"graph\"><h2>Stages</h2>\n");
	report_svg_dag(sb, cJSON_GetObjectItem(model, "graph"));
	sb_adds(sb, "</section>\n<section id=\"timeline\"><h2>Timeline</h2>\n");
	report_svg_timeline(sb, cJSON_GetObjectItem(model, "run"));
	sb_adds(sb, "</section>\n");
}

static void gallery(struct strbuf *sb, const cJSON *images)
{
	if (cJSON_GetArraySize(images) == 0)
		return;
	int labelled = 0, correct = 0;
	for (const cJSON *im = images->child; im; im = im->next)
		if (cJSON_GetObjectItem(im, "correct")) {
			labelled++;
			correct += cJSON_IsTrue(cJSON_GetObjectItem(im, "correct"));
		}
	sb_adds(sb, "<section id=\"images\"><h2>Images</h2>\n");
	if (labelled)
		sb_addf(sb, "<p id=\"images-correct\">%d of %d predicted correctly</p>\n", correct,
			labelled);
	sb_adds(sb, "<div class=\"gallery\">\n");
	for (const cJSON *im = images->child; im; im = im->next) {
		const cJSON *ok = cJSON_GetObjectItem(im, "correct");
		sb_addf(sb, "<figure class=\"image%s\" data-file=\"", cJSON_IsFalse(ok) ? " wrong" : "");
		esc(sb, str_of(im, "file"));
		sb_adds(sb, "\"><img alt=\"");
		esc(sb, str_of(im, "file"));
		sb_adds(sb, "\" src=\"");
		sb_adds(sb, str_of(im, "uri"));
		sb_adds(sb, "\"><figcaption>");
		if (str_of(im, "class")) {
			sb_adds(sb, "<span class=\"pred\">predicted ");
			esc(sb, str_of(im, "class"));
			const cJSON *p = cJSON_GetObjectItem(im, "probability");
			if (cJSON_IsNumber(p))
				sb_addf(sb, " (p=%.3f)", p->valuedouble);
			sb_adds(sb, "</span><br><span class=\"truth\">true ");
			esc(sb, str_of(im, "true_class"));
			sb_adds(sb, "</span><br>");
		}
		sb_adds(sb, "<span class=\"mono\">");
		esc(sb, str_of(im, "file"));
		sb_adds(sb, "</span></figcaption></figure>\n");
	}
	sb_adds(sb, "</div></section>\n");
}

/* The values of (stage, file, metric) across the history, NaN where absent.
 * True when two of them differ: a chart of one flat value says nothing. */
static bool series(double *v, const char **labels, const cJSON *history, const char *stage,
		   const char *file, const char *metric)
{
	size_t i = 0;
	for (const cJSON *h = history->child; h; h = h->next, i++) {
		v[i] = NAN;
		labels[i] = str_of(h, "id");
		const cJSON *rows = cJSON_GetObjectItem(h, "rows");
		for (const cJSON *r = rows ? rows->child : NULL; r; r = r->next) {
			const cJSON *val = cJSON_GetObjectItem(r, "value");
			if (cJSON_IsNumber(val) && !strcmp(str_of(r, "stage"), stage) &&
			    !strcmp(str_of(r, "file"), file) && !strcmp(str_of(r, "metric"), metric))
				v[i] = val->valuedouble;
		}
	}
	for (size_t k = 1; k < i; k++)
		if (!isnan(v[k]) && !isnan(v[k - 1]) && v[k] != v[k - 1])
			return true;
	return false;
}

static bool numbers_map(const cJSON *v)
{
	if (!cJSON_IsObject(v) || !v->child)
		return false;
	for (const cJSON *m = v->child; m; m = m->next)
		if (!cJSON_IsNumber(m))
			return false;
	return true;
}

static bool matrix(const cJSON *v)
{
	if (!cJSON_IsArray(v) || !v->child)
		return false;
	for (const cJSON *r = v->child; r; r = r->next) {
		if (!cJSON_IsArray(r))
			return false;
		for (const cJSON *c = r->child; c; c = c->next)
			if (!cJSON_IsNumber(c))
				return false;
	}
	return true;
}

static void heatmap(struct strbuf *sb, const cJSON *v)
{
	double hi = 0;
	for (const cJSON *r = v->child; r; r = r->next)
		for (const cJSON *c = r->child; c; c = c->next)
			hi = c->valuedouble > hi ? c->valuedouble : hi;
	sb_adds(sb, "<table class=\"matrix\">");
	for (const cJSON *r = v->child; r; r = r->next) {
		sb_adds(sb, "<tr>");
		for (const cJSON *c = r->child; c; c = c->next) {
			double t = hi > 0 ? c->valuedouble / hi : 0;
			sb_addf(sb, "<td class=\"heat\" style=\"background:rgba(59,125,216,%.2f);color:%s\">%.4g</td>",
				t, t > 0.55 ? "#fff" : "#1f2430", c->valuedouble);
		}
		sb_adds(sb, "</tr>");
	}
	sb_adds(sb, "</table>\n");
}

static void metrics_section(struct strbuf *sb, const cJSON *model)
{
	const cJSON *run = cJSON_GetObjectItem(model, "run");
	const cJSON *history = cJSON_GetObjectItem(model, "history");
	size_t n = (size_t)cJSON_GetArraySize(history);
	double *v = xcalloc(n ? n : 1, sizeof(*v));
	const char **labels = xcalloc(n ? n : 1, sizeof(*labels));
	sb_adds(sb, "<section id=\"metrics\"><h2>Metrics</h2>\n");
	bool any = false;
	const cJSON *stages = cJSON_GetObjectItem(run, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const cJSON *m = cJSON_GetObjectItem(st, "metrics");
		for (const cJSON *f = m ? m->child : NULL; f; f = f->next) {
			const cJSON *vals = cJSON_GetObjectItem(f, "values");
			any = true;
			sb_adds(sb, "<h3>");
			esc(sb, str_of(st, "name"));
			sb_adds(sb, " · <span class=\"mono\">");
			esc(sb, f->string);
			sb_adds(sb, "</span></h3>\n<div class=\"mfile\"><table class=\"values\">");
			for (const cJSON *x = vals ? vals->child : NULL; x; x = x->next) {
				if (numbers_map(x) || matrix(x))
					continue;
				sb_adds(sb, "<tr data-metric=\"");
				esc(sb, x->string);
				sb_adds(sb, "\"><th>");
				esc(sb, x->string);
				sb_adds(sb, "</th><td class=\"mono\">");
				value_text(sb, x);
				sb_adds(sb, "</td></tr>");
			}
			sb_adds(sb, "</table>\n<div class=\"charts\">\n");
			for (const cJSON *x = vals ? vals->child : NULL; x; x = x->next) {
				if (!cJSON_IsNumber(x) && !numbers_map(x) && !matrix(x))
					continue;
				if (cJSON_IsNumber(x) &&
				    !series(v, labels, history, str_of(st, "name"), f->string, x->string))
					continue;
				sb_adds(sb, "<figure class=\"chart\" data-chart=\"");
				esc(sb, x->string);
				sb_adds(sb, "\"><figcaption>");
				esc(sb, x->string);
				if (cJSON_IsNumber(x)) {
					sb_addf(sb, " across runs</figcaption>");
					report_svg_line(sb, v, labels, n, (long)n - 1);
				} else if (numbers_map(x)) {
					sb_adds(sb, "</figcaption>");
					report_svg_bars(sb, x);
				} else {
					sb_adds(sb, "</figcaption>");
					heatmap(sb, x);
				}
				sb_adds(sb, "</figure>\n");
			}
			sb_adds(sb, "</div></div>\n");
		}
	}
	if (!any)
		sb_adds(sb, "<p>This run recorded no metrics.</p>\n");
	sb_adds(sb, "</section>\n");
	free(v);
	free(labels);
}

static void params_section(struct strbuf *sb, const cJSON *run)
{
	sb_adds(sb, "<section id=\"params\"><h2>Params</h2>\n<table><tr><th>stage</th><th>param</th>"
		    "<th>value</th></tr>\n");
	const cJSON *stages = cJSON_GetObjectItem(run, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const cJSON *params = cJSON_GetObjectItem(st, "params");
		const cJSON *over = cJSON_GetObjectItem(st, "param_overrides");
		for (const cJSON *p = params ? params->child : NULL; p; p = p->next) {
			bool o = cJSON_GetObjectItem(over, p->string) != NULL;
			sb_addf(sb, "<tr%s><td>", o ? " class=\"over\" title=\"--set\"" : "");
			esc(sb, str_of(st, "name"));
			sb_adds(sb, "</td><td>");
			esc(sb, p->string);
			sb_adds(sb, "</td><td class=\"mono\">");
			value_text(sb, p);
			sb_adds(sb, o ? " (--set)</td></tr>\n" : "</td></tr>\n");
		}
	}
	sb_adds(sb, "</table></section>\n");
}

static void lineage_node(struct strbuf *sb, const cJSON *n)
{
	sb_adds(sb, "<li>");
	const cJSON *kids;
	if (str_of(n, "artifact")) {
		sb_adds(sb, "<span class=\"mono\">");
		esc(sb, str_of(n, "artifact"));
		sb_adds(sb, "</span> <span class=\"mono\" title=\"");
		esc(sb, str_of(n, "digest"));
		sb_addf(sb, "\">%.19s</span> ", str_of(n, "digest") ? str_of(n, "digest") : "");
		size_text(sb, cJSON_GetObjectItem(n, "size"));
		const cJSON *by = cJSON_GetObjectItem(n, "produced_by");
		if (!cJSON_IsObject(by))
			sb_adds(sb, " · external");
		sb_adds(sb, "<ul>");
		if (cJSON_IsObject(by))
			lineage_node(sb, by);
		kids = cJSON_GetObjectItem(n, "parts");
	} else {
		sb_adds(sb, "stage <b>");
		esc(sb, str_of(n, "stage"));
		sb_adds(sb, "</b>");
		if (cJSON_IsTrue(cJSON_GetObjectItem(n, "repeated")))
			sb_adds(sb, " (shown above)");
		else if (str_of(n, "run")) {
			sb_adds(sb, " · run <span class=\"mono\">");
			esc(sb, str_of(n, "run"));
			sb_adds(sb, "</span>");
		}
		sb_adds(sb, "<ul>");
		kids = cJSON_GetObjectItem(n, "inputs");
	}
	for (const cJSON *k = kids ? kids->child : NULL; k; k = k->next)
		lineage_node(sb, k);
	sb_adds(sb, "</ul></li>");
}

static void outputs_section(struct strbuf *sb, const cJSON *model)
{
	const cJSON *run = cJSON_GetObjectItem(model, "run");
	const cJSON *lineage = cJSON_GetObjectItem(model, "lineage");
	sb_adds(sb, "<section id=\"outputs\"><h2>Outputs</h2>\n<table><tr><th>stage</th>"
		    "<th>artifact</th><th>digest</th><th>size</th></tr>\n");
	const cJSON *stages = cJSON_GetObjectItem(run, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next)
		for (int kind = 0; kind < 2; kind++) {
			const cJSON *part = cJSON_GetObjectItem(st, kind ? "metrics" : "outputs");
			for (const cJSON *a = part ? part->child : NULL; a; a = a->next) {
				sb_adds(sb, "<tr class=\"output\" data-artifact=\"");
				esc(sb, a->string);
				sb_adds(sb, "\">");
				cell(sb, NULL, str_of(st, "name"));
				cell(sb, "mono", a->string);
				cell(sb, "mono", str_of(a, "digest"));
				sb_adds(sb, "<td>");
				size_text(sb, cJSON_GetObjectItem(a, "size"));
				const cJSON *files = cJSON_GetObjectItem(a, "files");
				if (cJSON_IsNumber(files))
					sb_addf(sb, ", %d files", files->valueint);
				sb_adds(sb, "</td></tr>\n");
				const cJSON *tree = cJSON_GetObjectItem(lineage, a->string);
				if (!tree)
					continue;
				sb_adds(sb, "<tr><td></td><td colspan=\"3\"><details><summary>lineage"
					    "</summary><ul class=\"lineage\">");
				lineage_node(sb, tree);
				sb_adds(sb, "</ul></details></td></tr>\n");
			}
		}
	sb_adds(sb, "</table></section>\n");
}

static void git_section(struct strbuf *sb, const cJSON *run)
{
	const cJSON *git = cJSON_GetObjectItem(run, "git");
	sb_adds(sb, "<section id=\"git\"><h2>Git</h2>\n");
	if (!cJSON_IsObject(git)) {
		sb_adds(sb, "<p>The project was not in a git work tree.</p></section>\n");
		return;
	}
	sb_adds(sb, "<table>");
	static const char *const keys[] = {"commit", "branch", "remote"};
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		sb_addf(sb, "<tr><th>%s</th><td class=\"mono\">", keys[i]);
		esc(sb, str_of(git, keys[i]) ? str_of(git, keys[i])
					     : i == 0 ? "(unborn)" : i == 1 ? "(detached)" : "-");
		sb_adds(sb, "</td></tr>");
	}
	sb_addf(sb, "<tr><th>work tree</th><td>%s</td></tr></table></section>\n",
		cJSON_IsTrue(cJSON_GetObjectItem(git, "dirty")) ? "dirty (uncommitted changes)"
								: "clean");
}

static void logs_section(struct strbuf *sb, const cJSON *model)
{
	const cJSON *logs = cJSON_GetObjectItem(model, "logs");
	sb_addf(sb, "<section id=\"logs\"><h2>Logs</h2>\n<p>The last %d lines of each stage's "
		    "log.</p>\n", REPORT_LOG_LINES);
	for (const cJSON *l = logs ? logs->child : NULL; l; l = l->next) {
		sb_adds(sb, "<details class=\"log\" data-log=\"");
		esc(sb, l->string);
		sb_adds(sb, "\"><summary>");
		esc(sb, l->string);
		sb_adds(sb, "</summary><pre>");
		esc(sb, l->valuestring);
		sb_adds(sb, "</pre></details>\n");
	}
	sb_adds(sb, "</section>\n");
}

char *report_html(const cJSON *model)
{
	const cJSON *run = cJSON_GetObjectItem(model, "run");
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		     "<meta name=\"viewport\" content=\"width=device-width\">"
		     "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
		     "img-src data:; style-src 'unsafe-inline'\"><title>cpipe report ");
	esc(&sb, str_of(run, "id"));
	sb_addf(&sb, "</title><style>%s</style></head><body>\n", CSS);
	header(&sb, run);
	tiles(&sb, run);
	graph_section(&sb, model);
	gallery(&sb, cJSON_GetObjectItem(model, "images"));
	metrics_section(&sb, model);
	params_section(&sb, run);
	outputs_section(&sb, model);
	git_section(&sb, run);
	logs_section(&sb, model);
	sb_adds(&sb, "</main><footer style=\"padding:0 28px 20px;color:#596175\">cpipe ");
	esc(&sb, str_of(run, "cpipe_version"));
	sb_adds(&sb, " · generated ");
	esc(&sb, str_of(model, "generated"));
	sb_adds(&sb, "</footer></body></html>\n");
	return sb_detach(&sb);
}
