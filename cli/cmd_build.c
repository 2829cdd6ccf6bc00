#include <cjson/cJSON.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "../pipeline/task.h"
#include "cli.h"

/* The stages to build: the named ones, else every stage with build:. */
static int pick_stages(const struct stage ***out, size_t *nout, const struct pipeline *p,
		       char **names, size_t nnames, bool quiet, struct cp_error *err)
{
	const struct stage **v = xcalloc(p->nstages + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < nnames; i++) {
		const struct stage *s = pipeline_stage(p, names[i]);
		if (!s) {
			free(v);
			return pipeline_unknown_stage(p, names[i], err);
		}
		if (!s->build) {
			if (!quiet)
				fprintf(stderr, "cpipe: %s uses image %s, nothing to build\n", s->name,
					s->image ? s->image : "(none)");
			continue;
		}
		bool seen = false;
		for (size_t k = 0; k < n; k++)
			seen |= v[k] == s;
		if (!seen)
			v[n++] = s;
	}
	for (size_t i = 0; !nnames && i < p->nstages; i++)
		if (p->stages[i].build)
			v[n++] = &p->stages[i];
	*out = v;
	*nout = n;
	return 0;
}

/* Ctrl-C gives up the build under way (the runtime watches the counter):
 * exit 130 with nothing tagged, as in a run. */
static void on_interrupt(int sig)
{
	(void)sig;
	runtime_interrupts++;
}

int cmd_build(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	int prc = cli_parse_common(c, argc, argv);
	if (prc >= 0)
		return prc;
	struct pipeline *p = NULL;
	const struct runtime_ops *ops = NULL;
	struct runtime *rt = NULL;
	const struct stage **stages = NULL;
	size_t n = 0;
	cleanup_free char *state = NULL;
	cJSON *doc = c->json ? cJSON_CreateArray() : NULL;
	int rc = EXIT_OK;
	if (cli_load(&p, c, &err) < 0 || cli_runtime(&ops, c, p, &err) < 0)
		goto fail;
	if (!ops->caps.images) {
		cp_error_set(&err, EXIT_USAGE,
			     "build: the %s runtime runs no images; use --runtime docker",
			     ops->name);
		goto fail;
	}
	if (pick_stages(&stages, &n, p, argv + optind, (size_t)(argc - optind), c->quiet, &err) < 0)
		goto fail;
	state = cli_state_dir(p, false, &err);
	if (task_runtime_open(ops, &rt, p, state, &err) < 0)
		goto fail;
	struct sigaction sa = {.sa_handler = on_interrupt};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *id = NULL;
		if (runtime_interrupts) {
			cp_error_set(&err, EXIT_INTERRUPTED, "interrupted");
			goto fail;
		}
		struct task_desc desc;
		task_desc_init(&desc, p, stages[i]);
		if (ops->image_prepare(rt, &desc, true, &id, &err) < 0)
			goto fail;
		if (doc) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "stage", stages[i]->name);
			cJSON_AddStringToObject(o, "id", id);
			cJSON_AddItemToArray(doc, o);
		} else if (!c->quiet) {
			printf("built %s: %s\n", stages[i]->name, id);
		}
	}
	if (doc) {
		cli_print_json(doc);
	}
	goto out;
fail:
	rc = cli_fail(&err);
out:
	cJSON_Delete(doc);
	free(stages);
	if (rt)
		ops->close(rt);
	pipeline_free(p);
	return rc;
}
