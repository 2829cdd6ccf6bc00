/* The report's pure parts over hand-made models: the stage graph is laid
 * out in layers by longest path, text from records is escaped, charts
 * appear only for metrics that changed, and the page refers to nothing
 * outside itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../artifacts/report.h"

/* The x of the <rect> of the node named `name` in an SVG from
 * report_svg_dag; -1 when absent. */
static int node_x(const char *svg, const char *name)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "data-stage=\"%s\"", name);
	const char *g = strstr(svg, pat);
	const char *r = g ? strstr(g, "<rect x=\"") : NULL;
	return r ? atoi(r + strlen("<rect x=\"")) : -1;
}

static void dag_layers_by_longest_path(void **state)
{
	(void)state;
	/* a -> b -> c and a -> c, listed so that the first edge seen gives c
	 * the wrong layer: c sits after b, not beside it; d, alone, starts the
	 * first layer. */
	cJSON *g = cJSON_Parse("{\"nodes\": [{\"name\": \"c\"}, {\"name\": \"b\"}, {\"name\": \"a\"},"
			       " {\"name\": \"d\", \"status\": \"ran\", \"ms\": 1500}],"
			       " \"edges\": [{\"from\": \"a\", \"to\": \"c\", \"label\": \"inputs\"},"
			       " {\"from\": \"b\", \"to\": \"c\"}, {\"from\": \"a\", \"to\": \"b\"}]}");
	struct strbuf sb = STRBUF_INIT;
	report_svg_dag(&sb, g);
	const char *svg = sb_str(&sb);
	int a = node_x(svg, "a"), b = node_x(svg, "b"), c = node_x(svg, "c"), d = node_x(svg, "d");
	assert_int_equal(a, d);
	assert_true(a < b);
	assert_true(b < c);
	assert_int_equal(c - b, b - a);
	assert_non_null(strstr(svg, "ran · 1.5s"));
	assert_non_null(strstr(svg, "data-stage=\"a\" data-status=\"not run\""));
	/* Three edges, the implicit one dashed. */
	int edges = 0;
	for (const char *p = svg; (p = strstr(p, "class=\"edge\"")); p++)
		edges++;
	assert_int_equal(edges, 3);
	assert_non_null(strstr(svg, "stroke-dasharray"));
	sb_free(&sb);
	cJSON_Delete(g);
}

static void record_text_is_escaped(void **state)
{
	(void)state;
	cJSON *m = cJSON_Parse(
		"{\"run\": {\"id\": \"r1\", \"project\": \"<script>alert(1)</script>\","
		" \"status\": \"succeeded\", \"stages\": [{\"name\": \"s&t\", \"status\": \"ran\","
		" \"params\": {\"p\": \"\\\"x\\\"\"}}]},"
		" \"graph\": {\"nodes\": [{\"name\": \"s&t\", \"status\": \"ran\"}], \"edges\": []},"
		" \"history\": [], \"logs\": {\"s&t\": \"<b>done</b>\"}, \"images\": []}");
	char *html = report_html(m);
	assert_null(strstr(html, "<script"));
	assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_non_null(strstr(html, "data-stage=\"s&amp;t\""));
	assert_non_null(strstr(html, "&quot;x&quot;"));
	assert_non_null(strstr(html, "&lt;b&gt;done&lt;/b&gt;"));
	assert_null(strstr(html, "src=\"http"));
	assert_null(strstr(html, "href=\"http"));
	free(html);
	cJSON_Delete(m);
}

static cJSON *metrics_model(double acc_before, double acc_now)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"run\": {\"id\": \"r2\", \"stages\": [{\"name\": \"eval\", \"status\": \"ran\","
		 " \"metrics\": {\"w:/m.json\": {\"values\": {\"acc\": %g, \"n\": 10,"
		 " \"per_class\": {\"cat\": 0.5, \"dog\": 1}, \"cm\": [[1, 2], [3, 4]]}}}}]},"
		 " \"graph\": {\"nodes\": [], \"edges\": []},"
		 " \"history\": [{\"id\": \"r1\", \"rows\": [{\"stage\": \"eval\", \"file\": \"w:/m.json\","
		 " \"metric\": \"acc\", \"value\": %g}, {\"stage\": \"eval\", \"file\": \"w:/m.json\","
		 " \"metric\": \"n\", \"value\": 10}]},"
		 " {\"id\": \"r2\", \"rows\": [{\"stage\": \"eval\", \"file\": \"w:/m.json\","
		 " \"metric\": \"acc\", \"value\": %g}, {\"stage\": \"eval\", \"file\": \"w:/m.json\","
		 " \"metric\": \"n\", \"value\": 10}]}]}",
		 acc_now, acc_before, acc_now);
	return cJSON_Parse(text);
}

static void charts_for_what_changed(void **state)
{
	(void)state;
	cJSON *m = metrics_model(0.5, 0.75);
	char *html = report_html(m);
	const char *acc = strstr(html, "data-chart=\"acc\"");
	assert_non_null(acc);
	assert_non_null(strstr(acc, "<polyline"));
	/* n did not change: a value in the table, no chart. */
	assert_non_null(strstr(html, "<tr data-metric=\"n\">"));
	assert_null(strstr(html, "data-chart=\"n\""));
	/* The map is bars, the matrix a heat map. */
	const char *bars = strstr(html, "data-chart=\"per_class\"");
	assert_non_null(bars);
	assert_non_null(strstr(bars, "class=\"bars\""));
	assert_non_null(strstr(html, "data-chart=\"cm\""));
	assert_non_null(strstr(html, "<table class=\"matrix\">"));
	free(html);
	cJSON_Delete(m);

	m = metrics_model(0.75, 0.75);
	html = report_html(m);
	assert_null(strstr(html, "data-chart=\"acc\""));
	free(html);
	cJSON_Delete(m);
}

static void durations(void **state)
{
	(void)state;
	char out[32];
	report_duration(out, 185);
	assert_string_equal(out, "185ms");
	report_duration(out, 2400);
	assert_string_equal(out, "2.4s");
	report_duration(out, 65000);
	assert_string_equal(out, "1m05s");
	report_duration(out, -1);
	assert_string_equal(out, "-");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dag_layers_by_longest_path),
		cmocka_unit_test(record_text_is_escaped),
		cmocka_unit_test(charts_for_what_changed),
		cmocka_unit_test(durations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
