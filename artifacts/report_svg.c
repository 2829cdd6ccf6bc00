/* The report's drawings as inline SVG: the stage graph, the timeline, line
 * charts across runs and per-class bars. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "lineage.h"
#include "report.h"

#define NODE_W 150
#define NODE_H 46
#define GAP_X  60
#define GAP_Y  22

void report_escape(struct strbuf *sb, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&': sb_adds(sb, "&amp;"); break;
		case '<': sb_adds(sb, "&lt;"); break;
		case '>': sb_adds(sb, "&gt;"); break;
		case '"': sb_adds(sb, "&quot;"); break;
		case '\'': sb_adds(sb, "&#39;"); break;
		default: sb_addc(sb, *s);
		}
	}
}

void report_duration(char out[32], long long ms)
{
	if (ms < 0)
		snprintf(out, 32, "-");
	else if (ms < 1000)
		snprintf(out, 32, "%lldms", ms);
	else if (ms < 60000)
		snprintf(out, 32, "%.1fs", (double)ms / 1000);
	else
		snprintf(out, 32, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
}

const char *report_status_colour(const char *status)
{
	static const struct {
		const char *status, *colour;
	} map[] = {
		{"ran", "#2e9d57"},      {"skipped", "#8a94a6"}, {"restored", "#3b7dd8"},
		{"failed", "#d64545"},   {"service", "#8e5bd0"}, {"running", "#e0a030"},
		{"succeeded", "#2e9d57"}, {"interrupted", "#e0a030"},
	};
	for (size_t i = 0; status && i < ARRAY_LEN(map); i++)
		if (strcmp(map[i].status, status) == 0)
			return map[i].colour;
	return "#b0b7c3";
}

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

/* An <svg> element of `w` x `h` pixels with class `cls`. */
static void svg_open(struct strbuf *sb, const char *cls, int w, int h)
{
	sb_addf(sb,
		"<svg class=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">\n",
		cls, w, h, w, h, cls);
}

static long node_index(const cJSON *nodes, const char *name)
{
	long i = 0;
	for (const cJSON *n = nodes ? nodes->child : NULL; n; n = n->next, i++)
		if (name && str_of(n, "name") && strcmp(str_of(n, "name"), name) == 0)
			return i;
	return -1;
}

void report_svg_dag(struct strbuf *sb, const cJSON *graph)
{
	const cJSON *nodes = cJSON_GetObjectItem(graph, "nodes");
	const cJSON *edges = cJSON_GetObjectItem(graph, "edges");
	size_t n = (size_t)cJSON_GetArraySize(nodes);
	if (n == 0)
		return;
	/* Longest path from a source: relaxing every edge n times settles it
	 * on a DAG; a cycle (the loader refuses them) only stops growing. */
	int *layer = xcalloc(n, sizeof(*layer)), *row = xcalloc(n, sizeof(*row));
	for (size_t round = 0; round < n; round++)
		for (const cJSON *e = edges ? edges->child : NULL; e; e = e->next) {
			long a = node_index(nodes, str_of(e, "from")), b = node_index(nodes, str_of(e, "to"));
			if (a >= 0 && b >= 0 && layer[b] < layer[a] + 1 && layer[a] + 1 < (int)n)
				layer[b] = layer[a] + 1;
		}
	int layers = 0, rows = 0;
	int *fill = xcalloc(n, sizeof(*fill));
	for (size_t i = 0; i < n; i++) {
		row[i] = fill[layer[i]]++;
		if (layer[i] + 1 > layers)
			layers = layer[i] + 1;
		if (row[i] + 1 > rows)
			rows = row[i] + 1;
	}
	int w = layers * (NODE_W + GAP_X) - GAP_X + 20, h = rows * (NODE_H + GAP_Y) - GAP_Y + 20;
	svg_open(sb, "dag", w, h);
	sb_adds(sb,
		"<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" "
		"markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">"
		"<path d=\"M0,0L10,5L0,10z\" fill=\"#66708a\"/></marker></defs>\n");
	for (const cJSON *e = edges ? edges->child : NULL; e; e = e->next) {
		long a = node_index(nodes, str_of(e, "from")), b = node_index(nodes, str_of(e, "to"));
		if (a < 0 || b < 0)
			continue;
		int x1 = 10 + layer[a] * (NODE_W + GAP_X) + NODE_W, y1 = 10 + row[a] * (NODE_H + GAP_Y) + NODE_H / 2;
		int x2 = 10 + layer[b] * (NODE_W + GAP_X), y2 = 10 + row[b] * (NODE_H + GAP_Y) + NODE_H / 2;
		int mx = (x1 + x2) / 2;
		sb_addf(sb,
			"<path class=\"edge\" d=\"M%d,%d C%d,%d %d,%d %d,%d\" fill=\"none\" "
			"stroke=\"#66708a\" stroke-width=\"1.5\"%s marker-end=\"url(#arrow)\">"
			"<title>",
			x1, y1, mx, y1, mx, y2, x2, y2,
			str_of(e, "label") ? " stroke-dasharray=\"5,3\"" : "");
		report_escape(sb, str_of(e, "from"));
		sb_adds(sb, " → ");
		report_escape(sb, str_of(e, "to"));
		if (str_of(e, "label")) {
			sb_adds(sb, " (");
			report_escape(sb, str_of(e, "label"));
			sb_adds(sb, ")");
		}
		sb_adds(sb, "</title></path>\n");
	}
	size_t i = 0;
	for (const cJSON *nd = nodes->child; nd; nd = nd->next, i++) {
		int x = 10 + layer[i] * (NODE_W + GAP_X), y = 10 + row[i] * (NODE_H + GAP_Y);
		const char *status = str_of(nd, "status") ? str_of(nd, "status") : "not run";
		const cJSON *ms = cJSON_GetObjectItem(nd, "ms");
		char took[32] = "";
		if (cJSON_IsNumber(ms))
			report_duration(took, (long long)ms->valuedouble);
		sb_adds(sb, "<g class=\"stage\" data-stage=\"");
		report_escape(sb, str_of(nd, "name"));
		sb_adds(sb, "\" data-status=\"");
		report_escape(sb, status);
		sb_adds(sb, "\">");
		sb_addf(sb,
			"<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"%d\" fill=\"%s\" "
			"stroke=\"#2b3142\" stroke-width=\"1\"/>",
			x, y, NODE_W, NODE_H,
			cJSON_IsTrue(cJSON_GetObjectItem(nd, "service")) ? 20 : 5,
			report_status_colour(status));
		sb_addf(sb, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"n\">",
			x + NODE_W / 2, y + 19);
		report_escape(sb, str_of(nd, "name"));
		sb_addf(sb, "</text><text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"s\">",
			x + NODE_W / 2, y + 36);
		report_escape(sb, status);
		sb_addf(sb, "%s%s</text></g>\n", *took ? " · " : "", took);
	}
	sb_adds(sb, "</svg>\n");
	free(layer);
	free(row);
	free(fill);
}

void report_svg_timeline(struct strbuf *sb, const cJSON *run)
{
	const cJSON *stages = cJSON_GetObjectItem(run, "stages");
	long long t0 = lineage_time_ms(str_of(run, "started"));
	long long t1 = lineage_time_ms(str_of(run, "ended"));
	int n = 0;
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next, n++) {
		long long e = lineage_time_ms(str_of(st, "ended"));
		if (e > t1)
			t1 = e;
	}
	if (t0 < 0 || n == 0)
		return;
	double span = t1 > t0 ? (double)(t1 - t0) : 1;
	const int left = 110, width = 560, bar = 20;
	int h = n * (bar + 6) + 30;
	svg_open(sb, "timeline", left + width + 80, h);
	int y = 4;
	for (const cJSON *st = stages->child; st; st = st->next, y += bar + 6) {
		long long a = lineage_time_ms(str_of(st, "started"));
		long long b = lineage_time_ms(str_of(st, "ended"));
		if (a < 0)
			continue;
		if (b < a)
			b = a;
		double x = left + (double)(a - t0) / span * width;
		double w = (double)(b - a) / span * width;
		char took[32];
		report_duration(took, b - a);
		sb_adds(sb, "<g class=\"span\"><text x=\"0\" y=\"");
		sb_addf(sb, "%d\" class=\"l\">", y + 15);
		report_escape(sb, str_of(st, "name"));
		sb_addf(sb,
			"</text><rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" rx=\"3\" "
			"fill=\"%s\"/><text x=\"%.1f\" y=\"%d\" class=\"l\">%s</text></g>\n",
			x, y, w < 2 ? 2 : w, bar, report_status_colour(str_of(st, "status")),
			x + (w < 2 ? 2 : w) + 5, y + 15, took);
	}
	char total[32];
	report_duration(total, t1 - t0);
	sb_addf(sb,
		"<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#66708a\"/>"
		"<text x=\"%d\" y=\"%d\" class=\"l\">0</text>"
		"<text x=\"%d\" y=\"%d\" class=\"l\" text-anchor=\"end\">%s</text></svg>\n",
		left, y, left + width, y, left, y + 16, left + width, y + 16, total);
}

void report_svg_line(struct strbuf *sb, const double *v, const char *const *labels, size_t n,
		     long mark)
{
	const int w = 320, h = 140, pl = 60, pr = 10, pt = 10, pb = 24;
	double lo = INFINITY, hi = -INFINITY;
	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i])) {
			lo = v[i] < lo ? v[i] : lo;
			hi = v[i] > hi ? v[i] : hi;
		}
	if (lo > hi)
		return;
	if (hi - lo < 1e-12) {
		double pad = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
		lo -= pad;
		hi += pad;
	}
	svg_open(sb, "line", w, h);
	sb_addf(sb,
		"<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f6f7fa\"/>"
		"<text x=\"%d\" y=\"%d\" class=\"l\" text-anchor=\"end\">%.6g</text>"
		"<text x=\"%d\" y=\"%d\" class=\"l\" text-anchor=\"end\">%.6g</text>",
		pl, pt, w - pl - pr, h - pt - pb, pl - 4, pt + 10, hi, pl - 4, h - pb, lo);
	double xs = n > 1 ? (double)(w - pl - pr) / (double)(n - 1) : 0;
#define PX(i) (pl + (n > 1 ? xs * (double)(i) : (w - pl - pr) / 2.0))
#define PY(x) (pt + (hi - (x)) / (hi - lo) * (h - pt - pb))
	sb_adds(sb, "<polyline fill=\"none\" stroke=\"#3b7dd8\" stroke-width=\"2\" points=\"");
	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			sb_addf(sb, "%.1f,%.1f ", PX(i), PY(v[i]));
	sb_adds(sb, "\"/>");
	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i]))
			continue;
		sb_addf(sb, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"><title>", PX(i),
			PY(v[i]), (long)i == mark ? 5 : 3, (long)i == mark ? "#d64545" : "#3b7dd8");
		report_escape(sb, labels[i]);
		sb_addf(sb, ": %.6g</title></circle>", v[i]);
	}
#undef PX
#undef PY
	sb_addf(sb,
		"<text x=\"%d\" y=\"%d\" class=\"l\">%zu run%s</text></svg>\n", pl, h - 6, n,
		n == 1 ? "" : "s");
}

void report_svg_bars(struct strbuf *sb, const cJSON *map)
{
	int n = 0;
	double hi = 0;
	for (const cJSON *m = map ? map->child : NULL; m; m = m->next, n++)
		if (cJSON_IsNumber(m) && fabs(m->valuedouble) > hi)
			hi = fabs(m->valuedouble);
	if (n == 0)
		return;
	if (hi <= 0)
		hi = 1;
	const int left = 110, width = 220, bar = 16;
	int h = n * (bar + 4) + 4;
	svg_open(sb, "bars", left + width + 60, h);
	int y = 2;
	for (const cJSON *m = map->child; m; m = m->next, y += bar + 4) {
		double v = cJSON_IsNumber(m) ? m->valuedouble : 0;
		sb_addf(sb, "<text x=\"%d\" y=\"%d\" class=\"l\" text-anchor=\"end\">", left - 6,
			y + 12);
		report_escape(sb, m->string);
		sb_addf(sb,
			"</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#3b7dd8\"/>"
			"<text x=\"%.1f\" y=\"%d\" class=\"l\">%.4g</text>",
			left, y, fabs(v) / hi * width, bar, left + fabs(v) / hi * width + 4, y + 12, v);
	}
	sb_adds(sb, "</svg>\n");
}
