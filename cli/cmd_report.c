/* cpipe report [RUN] [-o FILE]: one run as a self-contained HTML page
 * (artifacts/report.h). Without -o it goes to .cpipe/reports/<run>.html;
 * `-o -` prints it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/lineage.h"
#include "../artifacts/report.h"
#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "cli.h"
#include "opts.h"

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

/* The spec's stage graph, each node with what the run did to it. */
static cJSON *graph_of(const struct pipeline *p, const cJSON *rec)
{
	cJSON *g = cJSON_CreateObject();
	cJSON *nodes = cJSON_AddArrayToObject(g, "nodes");
	cJSON *edges = cJSON_AddArrayToObject(g, "edges");
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (size_t i = 0; i < p->nstages; i++) {
		const struct stage *s = &p->stages[i];
		const cJSON *done = NULL;
		for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next)
			if (str_of(st, "name") && strcmp(str_of(st, "name"), s->name) == 0)
				done = st;
		cJSON *n = cJSON_CreateObject();
		cJSON_AddStringToObject(n, "name", s->name);
		cJSON_AddBoolToObject(n, "service", s->service);
		if (done) {
			const char *status = str_of(done, "status");
			cJSON_AddStringToObject(n, "status", status ? status : "?");
			long long a = lineage_time_ms(str_of(done, "started"));
			long long b = lineage_time_ms(str_of(done, "ended"));
			if (a >= 0 && b >= a)
				cJSON_AddNumberToObject(n, "ms", (double)(b - a));
		} else {
			cJSON_AddStringToObject(n, "status", "not run");
		}
		cJSON_AddItemToArray(nodes, n);
		for (size_t d = 0; d < s->ndeps; d++) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "from", s->deps[d].stage);
			cJSON_AddStringToObject(e, "to", s->name);
			if (s->deps[d].implicit)
				cJSON_AddStringToObject(e, "label", "inputs");
			cJSON_AddItemToArray(edges, e);
		}
	}
	return g;
}

int cmd_report(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	const char *out = NULL;
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) == 'o')
		out = optarg;
	if (opt != -1)
		return cli_opt_exit(opt);
	if (argc - optind > 1)
		return cli_usage_error(argv[0]);
	const char *arg = optind < argc ? argv[optind] : "latest";

	struct pipeline *p = NULL;
	if (cli_load(&p, c, &err) < 0)
		return cli_fail(&err);
	cleanup_free char *state = cli_state_dir(p, false, &err);
	cleanup_free char *id = NULL, *path = NULL, *html = NULL;
	cJSON *rec = NULL, *model = NULL;
	int rc = EXIT_OK;
	if (!state || record_resolve(&id, state, arg, &err) < 0 ||
	    record_load(&rec, state, id, &err) < 0) {
		cp_error_recode(&err, EXIT_USAGE);
		cp_error_prefix(&err, "report %s", arg);
		rc = cli_fail(&err);
		goto out;
	}
	model = cJSON_CreateObject();
	/* Whatever a record or a graph holds, no secret value reaches the page. */
	redactor_json(&p->secrets, rec);
	cJSON_AddItemToObject(model, "run", rec);
	cJSON *graph = graph_of(p, rec);
	redactor_json(&p->secrets, graph);
	cJSON_AddItemToObject(model, "graph", graph);
	char *now = iso_time(realtime_ms());
	cJSON_AddStringToObject(model, "generated", now);
	free(now);
	report_data_fill(model, state, &p->secrets);
	html = report_html(model);
	if (out && strcmp(out, "-") == 0) {
		fputs(html, stdout);
		goto out;
	}
	if (!out) {
		cleanup_free char *dir = path_join(state, "reports");
		path = xasprintf("%s/%s.html", dir, id);
		if (fs_mkdir_p(dir, 0755, &err) < 0) {
			rc = cli_fail(&err);
			goto out;
		}
	}
	if (fs_write_atomic(path ? path : out, html, strlen(html), 0644, &err) < 0) {
		cp_error_prefix(&err, "report: writing %s", path ? path : out);
		rc = cli_fail(&err);
		goto out;
	}
	if (!c->quiet)
		printf("%s\n", path ? path : out);
out:
	cJSON_Delete(model ? model : rec);
	pipeline_free(p);
	return rc;
}
