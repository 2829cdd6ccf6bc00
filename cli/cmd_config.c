#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "../pipeline/emit.h"
#include "cli.h"

int cmd_config(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'J'},
		{"quiet", no_argument, NULL, 'q'},
		{"no-redact", no_argument, NULL, 'N'},
		{NULL, 0, NULL, 0},
	};
	struct cp_error err = {0};
	bool redact = true;
	int opt;
	while ((opt = getopt_long(argc, argv, "+q", opts, NULL)) != -1) {
		if (opt == 'N') {
			redact = false;
			continue;
		}
		if (!cli_common_option(c, opt)) {
			fprintf(stderr, "usage: cpipe config [--json] [-q] [--no-redact]\n");
			return EXIT_USAGE;
		}
	}
	struct pipeline *p = NULL;
	if (cli_load(&p, c, &err) < 0)
		return cli_fail(&err);
	int rc = EXIT_OK;
	if (!c->quiet) {
		/* -q only validates, as compose's config --quiet does. */
		cJSON *doc = emit_spec_json(p);
		if (redact)
			emit_redact(doc, p);
		if (c->json) {
			char *text = cJSON_Print(doc);
			puts(text);
			free(text);
		} else if (emit_yaml(stdout, doc, &err) < 0) {
			rc = cli_fail(&err);
		}
		cJSON_Delete(doc);
	}
	pipeline_free(p);
	return rc;
}

int cmd_graph(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"format", required_argument, NULL, 'F'},
		{NULL, 0, NULL, 0},
	};
	struct cp_error err = {0};
	const char *format = "dot";
	int opt;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (opt == 'F') {
			format = optarg;
			continue;
		}
		fprintf(stderr, "usage: cpipe graph [--format dot|mermaid]\n");
		return EXIT_USAGE;
	}
	if (strcmp(format, "dot") != 0 && strcmp(format, "mermaid") != 0) {
		fprintf(stderr, "cpipe: unknown graph format \"%s\"; use dot or mermaid\n", format);
		return EXIT_USAGE;
	}
	struct pipeline *p = NULL;
	if (cli_load(&p, c, &err) < 0)
		return cli_fail(&err);
	int rc = emit_graph(stdout, p, format, &err) < 0 ? cli_fail(&err) : EXIT_OK;
	pipeline_free(p);
	return rc;
}
