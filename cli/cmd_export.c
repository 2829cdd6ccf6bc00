/* cpipe export kubernetes [-o DIR] [STAGE...]: the manifests the kubernetes
 * runtime would create, written to files (stages/kube_export.c). */
#include <stdlib.h>
#include <string.h>

#include "../pipeline/exec.h"
#include "../pipeline/plan.h"
#include "../pipeline/task.h"
#include "../stages/kube_export.h"
#include "cli.h"
#include "opts.h"

int cmd_export(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	const char *dir = "kubernetes";
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) == 'o')
		dir = optarg;
	if (opt != -1)
		return cli_opt_exit(opt);
	if (optind >= argc || strcmp(argv[optind], "kubernetes") != 0) {
		fprintf(stderr, "cpipe: export writes kubernetes manifests only: cpipe export "
				"kubernetes [-o DIR] [STAGE...]\n");
		return EXIT_USAGE;
	}
	optind++;
	struct pipeline *p = NULL;
	if (cli_load(&p, c, &err) < 0)
		return cli_fail(&err);
	struct plan plan = {0};
	struct strvec written = {0};
	int rc = EXIT_OK;
	if (plan_build(&plan, p, (const char *const *)argv + optind, (size_t)(argc - optind), false,
		       NULL, &err) < 0 ||
	    plan_check_runnable(&plan, "kubernetes", true, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	struct task_spec *tasks = xcalloc(plan.n ? plan.n : 1, sizeof(*tasks));
	struct task_desc *descs = xcalloc(plan.n ? plan.n : 1, sizeof(*descs));
	struct kvvec *envs = xcalloc(plan.n ? plan.n : 1, sizeof(*envs));
	for (size_t i = 0; i < plan.n; i++) {
		const struct stage *s = &p->stages[plan.order[i]];
		exec_stage_env(&envs[i], p, s, "export");
		task_desc_init(&descs[i], p, s);
		tasks[i] =
		    (struct task_spec){.desc = &descs[i], .env = &envs[i], .run_id = "export"};
	}
	struct task_project tp;
	task_project_init(&tp, p, NULL);
	if (kube_export(&tp.proj, tasks, plan.n, dir, &written, &err) < 0)
		rc = cli_fail(&err);
	else if (!c->quiet)
		for (size_t i = 0; i < written.n; i++)
			printf("%s\n", written.v[i]);
	for (size_t i = 0; i < plan.n; i++)
		kvvec_free(&envs[i]);
	free(envs);
	free(descs);
	free(tasks);
	task_project_free(&tp);
out:
	strvec_free(&written);
	plan_free(&plan);
	pipeline_free(p);
	return rc;
}
