#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../pipeline/task.h"
#include "../pipeline/plan.h"
#include "../pipeline/track.h"
#include "cli.h"
#include "opts.h"

/* Opens the spec, runtime and tracker that status and verify read. */
static int open_tracking(struct pipeline **p, const struct runtime_ops **ops, struct runtime **rt,
			 struct tracker **t, char **state, struct cli *c, struct cp_error *err)
{
	if (cli_load(p, c, err) < 0 || cli_runtime(ops, c, *p, err) < 0 ||
	    !(*state = cli_state_dir(*p, true, err)) ||
	    task_runtime_open(*ops, rt, *p, *state, err) < 0)
		return -1;
	struct track_options to = {.state_dir = *state};
	return track_open(t, *p, *ops, *rt, &to, err);
}

static void close_tracking(struct pipeline *p, const struct runtime_ops *ops, struct runtime *rt,
			   struct tracker *t, char *state)
{
	track_close(t, NULL, NULL);
	if (rt)
		ops->close(rt);
	pipeline_free(p);
	free(state);
}

int cmd_status(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	bool check = false;
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0) {
		if (opt == 'c')
			check = true;
		else if (opt == 's' && cli_parse_set(c, optarg, &err) < 0)
			return cli_fail(&err);
	}
	if (opt != -1)
		return cli_opt_exit(opt);
	struct pipeline *p = NULL;
	const struct runtime_ops *ops = NULL;
	struct runtime *rt = NULL;
	struct tracker *t = NULL;
	char *state = NULL;
	struct plan all = {0};
	int rc = EXIT_OK;
	cJSON *doc = cJSON_CreateObject();
	cJSON *list = cJSON_AddArrayToObject(doc, "stages");
	int stale = 0;
	if (open_tracking(&p, &ops, &rt, &t, &state, c, &err) < 0)
		goto fail;
	/* Named stages and their upstream are evaluated; only named ones shown. */
	if (plan_build(&all, p, (const char *const *)argv + optind, (size_t)(argc - optind), false,
		       NULL, &err) < 0)
		goto fail;
	if (track_prefetch(t, &all, &err) < 0)
		goto fail;
	size_t width = 5;
	for (size_t k = 0; k < all.n; k++)
		if (strlen(p->stages[all.order[k]].name) > width)
			width = strlen(p->stages[all.order[k]].name);
	if (!c->json && !c->quiet)
		printf("%-*s  %-7s %s\n", (int)width, "STAGE", "STATE", "WHY");
	for (size_t k = 0; k < all.n; k++) {
		const struct stage *s = &p->stages[all.order[k]];
		cJSON *reasons = NULL;
		if (track_status(&reasons, t, s, &err) < 0)
			goto fail;
		bool shown = argc == optind;
		for (int i = optind; i < argc && !shown; i++)
			shown = strcmp(argv[i], s->name) == 0;
		if (!shown) {
			cJSON_Delete(reasons);
			continue;
		}
		const char *st = s->service ? "service" : cJSON_GetArraySize(reasons) ? "stale" : "fresh";
		const char *from = strcmp(st, "stale") == 0 ? track_restorable(t, s) : NULL;
		if (strcmp(st, "stale") == 0)
			stale++;
		if (from) {
			st = "restorable";
			cleanup_free char *why = xasprintf("restorable from run %s", from);
			cJSON_AddItemToArray(reasons, cJSON_CreateString(why));
		}
		if (!c->json && !c->quiet) {
			printf(reasons->child ? "%-*s  %-7s" : "%-*s  %s", (int)width, s->name, st);
			int n = 0;
			for (const cJSON *r = reasons->child; r; r = r->next) {
				if (n++ == 0)
					printf(" %s", r->valuestring);
				else
					printf("\n%-*s  %-7s %s", (int)width, "", "", r->valuestring);
			}
			putchar('\n');
		}
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", s->name);
		cJSON_AddStringToObject(e, "state", st);
		cJSON_AddItemToObject(e, "reasons", reasons);
		cJSON_AddItemToArray(list, e);
	}
	cJSON_AddNumberToObject(doc, "stale", stale);
	if (c->json) {
		cli_print_json(doc);
	}
	if (check && stale > 0) {
		if (!c->json)
			fprintf(stderr, "cpipe: %d stage%s stale\n", stale, stale == 1 ? " is" : "s are");
		rc = EXIT_STAGE_FAILED;
	}
	goto out;
fail:
	rc = cli_fail(&err);
out:
	cJSON_Delete(doc);
	plan_free(&all);
	close_tracking(p, ops, rt, t, state);
	return rc;
}
