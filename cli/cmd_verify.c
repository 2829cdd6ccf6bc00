/* cpipe verify [--rerun [STAGE...]]: do the outputs still match cpipe.lock,
 * and, with --rerun, does running the stages again reproduce them? */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "../pipeline/task.h"
#include "../pipeline/rerun.h"
#include "../pipeline/track.h"
#include "cli.h"
#include "opts.h"

static void print_json(const cJSON *doc)
{
	cli_print_json(doc);
}

/* Rehashes every locked output: the mismatches, exit 1 if any. */
static int verify_files(struct cli *c, struct pipeline *p, const struct runtime_ops *ops,
			struct runtime *rt, const char *state, struct cp_error *err)
{
	struct tracker *t = NULL;
	cJSON *bad = NULL;
	struct track_options to = {.state_dir = state};
	if (track_open(&t, p, ops, rt, &to, err) < 0 || track_verify(&bad, t, err) < 0) {
		track_close(t, NULL, NULL);
		return -1;
	}
	if (c->json)
		print_json(bad);
	else
		for (const cJSON *m = bad->child; m; m = m->next)
			printf("%s: %s: expected %s, found %s\n",
			       cJSON_GetStringValue(cJSON_GetObjectItem(m, "stage")),
			       cJSON_GetStringValue(cJSON_GetObjectItem(m, "artifact")),
			       cJSON_GetStringValue(cJSON_GetObjectItem(m, "expected")),
			       cJSON_GetStringValue(cJSON_GetObjectItem(m, "actual")));
	if (!c->json && !c->quiet && cJSON_GetArraySize(bad) == 0)
		printf("every locked output matches cpipe.lock\n");
	int rc = cJSON_GetArraySize(bad) > 0 ? EXIT_STAGE_FAILED : EXIT_OK;
	cJSON_Delete(bad);
	track_close(t, NULL, NULL);
	return rc;
}

/* Reruns the stages on scratch copies: exit 1 if one does not reproduce. */
static int verify_rerun(struct cli *c, struct pipeline *p, const struct runtime_ops *ops,
			struct runtime *rt, const char *state, char **names, size_t n,
			struct cp_error *err)
{
	cJSON *lock = NULL;
	cJSON *res = NULL;
	cleanup_free char *lock_path = path_join(p->dir, "cpipe.lock");
	struct rerun_options ro = {.state_dir = state, .quiet = c->quiet, .logs_to_stderr = c->json};
	if (lock_load(&lock, lock_path, err) < 0)
		return -1;
	ro.lock = lock;
	int rc = rerun_verify(&res, p, ops, rt, (const char *const *)names, n, &ro, err);
	cJSON_Delete(lock);
	if (rc < 0)
		return -1;
	int differ = 0;
	for (const cJSON *e = res->child; e; e = e->next) {
		const char *stage = cJSON_GetStringValue(cJSON_GetObjectItem(e, "stage"));
		if (cJSON_IsTrue(cJSON_GetObjectItem(e, "reproduced"))) {
			if (!c->json && !c->quiet)
				printf("%s: reproduced: every output matches cpipe.lock\n", stage);
			continue;
		}
		differ++;
		for (const cJSON *m = cJSON_GetObjectItem(e, "outputs")->child; !c->json && m;
		     m = m->next)
			printf("%s: not reproduced: %s: locked %s, rerun gave %s\n", stage,
			       cJSON_GetStringValue(cJSON_GetObjectItem(m, "artifact")),
			       cJSON_GetStringValue(cJSON_GetObjectItem(m, "expected")),
			       cJSON_GetStringValue(cJSON_GetObjectItem(m, "actual")));
	}
	if (c->json)
		print_json(res);
	else if (differ)
		fprintf(stderr, "cpipe: %d stage%s did not reproduce cpipe.lock\n", differ,
			differ == 1 ? "" : "s");
	else if (!c->quiet && !res->child)
		printf("no stage to rerun: cpipe.lock records no job's outputs\n");
	cJSON_Delete(res);
	return differ ? EXIT_STAGE_FAILED : EXIT_OK;
}

int cmd_verify(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	bool rerun = false;
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0)
		if (opt == 'r')
			rerun = true;
	if (opt != -1)
		return cli_opt_exit(opt);
	if (!rerun && optind != argc)
		return cli_usage_error(argv[0]);
	struct pipeline *p = NULL;
	const struct runtime_ops *ops = NULL;
	struct runtime *rt = NULL;
	cleanup_free char *state = NULL;
	int lock_fd = -1;
	int rc = -1;
	c->image_warnings = true;
	if (cli_load(&p, c, &err) < 0 || cli_runtime(&ops, c, p, &err) < 0 ||
	    !(state = cli_state_dir(p, true, &err)))
		goto out;
	if (rerun) {
		/* A run going on meanwhile would change the volumes copied. */
		cleanup_free char *lock = path_join(state, "lock");
		if (fs_lock(&lock_fd, lock, "running", &err) < 0)
			goto out;
	}
	if (task_runtime_open(ops, &rt, p, state, &err) < 0)
		goto out;
	rc = rerun ? verify_rerun(c, p, ops, rt, state, argv + optind, (size_t)(argc - optind), &err)
		   : verify_files(c, p, ops, rt, state, &err);
out:
	if (rc < 0)
		rc = cli_fail(&err);
	if (lock_fd >= 0)
		close(lock_fd);
	if (rt)
		ops->close(rt);
	pipeline_free(p);
	return rc;
}
