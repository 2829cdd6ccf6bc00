#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pipeline/emit.h"
#include "../pipeline/spec_image.h"
#include "cli.h"
#include "opts.h"

/* config --services, --volumes, --images: one name a line, in spec order,
 * as docker compose config prints them. */
static void print_names(const struct pipeline *p, int list)
{
	if (list == 'V')
		for (size_t i = 0; i < p->nvolumes; i++)
			puts(p->volumes[i].name);
	for (size_t i = 0; list != 'V' && i < p->nstages; i++) {
		const char *name = list == 'S' ? p->stages[i].name : p->stages[i].image;
		if (name)
			puts(name);
	}
}

static const char *const image_fields[IMAGE_FIELDS] = {"command", "entrypoint", "working_dir",
							"user", "environment"};

/* config --explain: "NAME: job|service: why", one stage a line, then for a
 * stage whose Dockerfile the local runtime read, "  FIELD: Dockerfile:N"
 * for each field it gave and "  /dest: from SOURCE (read-only)" for each
 * file; with --json an object per stage. */
static void print_explain(const struct pipeline *p, bool json)
{
	cJSON *doc = json ? cJSON_CreateObject() : NULL;
	for (size_t i = 0; i < p->nstages; i++) {
		const struct stage *s = &p->stages[i];
		const struct stage_image *si = s->image_cfg;
		const char *why = s->service_why ? s->service_why : "";
		cJSON *o = json ? cJSON_AddObjectToObject(doc, s->name) : NULL;
		if (!json)
			printf("%s: %s: %s\n", s->name, s->service ? "service" : "job", why);
		else {
			cJSON_AddBoolToObject(o, "service", s->service);
			cJSON_AddStringToObject(o, "why", why);
		}
		if (!si)
			continue;
		cJSON *img = json ? cJSON_AddObjectToObject(o, "image") : NULL;
		if (img) {
			cJSON_AddStringToObject(img, "dockerfile", si->shown);
			if (si->error)
				cJSON_AddStringToObject(img, "error", si->error);
		} else if (si->error) {
			printf("  %s: %s\n", si->shown, si->error);
		}
		for (int f = 0; f < IMAGE_FIELDS; f++) {
			if (!si->origin[f])
				continue;
			if (img)
				cJSON_AddStringToObject(img, image_fields[f], si->origin[f]);
			else
				printf("  %s: %s\n", image_fields[f], si->origin[f]);
		}
		cJSON *files = img ? cJSON_AddObjectToObject(img, "files") : NULL;
		for (size_t k = 0; k < si->nentries; k++) {
			const struct image_entry *e = &si->entries[k];
			if (files)
				cJSON_AddStringToObject(files, e->dest, e->source);
			else
				printf("  %s: %s:%d, from %s\n", e->dest, si->shown, e->line, e->source);
		}
	}
	if (doc) {
		cli_print_json(doc);
		cJSON_Delete(doc);
	}
}

int cmd_config(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	bool redact = true;
	int list = 0; /* --services, --volumes, --images or --explain */
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0) {
		if (opt == 'N')
			redact = false;
		else if (list && list != opt)
			return cli_usage_error(argv[0]);
		else
			list = opt;
	}
	if (opt != -1)
		return cli_opt_exit(opt);
	if (optind < argc)
		return cli_usage_error(argv[0]);
	struct pipeline *p = NULL;
	/* The spec as compose prints it; --explain also says what a Dockerfile
	 * gives a stage on the local runtime. */
	c->spec_only = list != 'E';
	c->image_warnings = true;
	if (cli_load(&p, c, &err) < 0)
		return cli_fail(&err);
	int rc = EXIT_OK;
	if (list == 'E') {
		print_explain(p, c->json);
	} else if (list) {
		print_names(p, list);
	} else if (!c->quiet) {
		/* -q only validates, as compose's config --quiet does. */
		cJSON *doc = emit_spec_json(p);
		if (redact)
			emit_redact(doc, p);
		if (c->json) {
			cli_print_json(doc);
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
	struct cp_error err = {0};
	const char *format = "dot";
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) == 'F')
		format = optarg;
	if (opt != -1)
		return cli_opt_exit(opt);
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
