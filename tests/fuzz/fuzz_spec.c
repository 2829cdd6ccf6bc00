/* libFuzzer target for the spec loader: any bytes as a cpipe.yml. The
 * project dir is a path that does not exist, so no .env or env_file is
 * read; the environment is fixed so runs are reproducible. A spec that
 * loads is also planned (every stage, and the last one with its upstream)
 * and checked against both runtimes, so the name index, the planner and
 * the expansion caps see the same inputs. */
#include <stddef.h>
#include <stdint.h>

#include "../../pipeline/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const env[] = {"HOME=/home/fuzz", "A=1", "EMPTY=", NULL};
	static struct kvvec sets;
	if (!sets.n)
		kvvec_set(&sets, "train.lr", "0.5");
	struct spec_options opts = {.dir = "/nonexistent/cpipe-fuzz", .env = env};
	/* Half of the inputs also exercise --set. */
	if (size && (data[0] & 1))
		opts.sets = &sets;
	struct pipeline *p = NULL;
	struct cp_error err = {0};
	if (spec_load_string(&p, "cpipe.yml", (const char *)data, size, &opts, &err) < 0)
		return 0;
	struct plan plan;
	if (plan_build(&plan, p, NULL, 0, false, NULL, &err) == 0) {
		plan_check_runnable(&plan, "local", false, &err);
		plan_check_runnable(&plan, "docker", true, &err);
		plan_free(&plan);
	}
	const char *last[] = {p->stages[p->nstages - 1].name};
	if (plan_build(&plan, p, last, 1, false, NULL, &err) == 0)
		plan_free(&plan);
	pipeline_free(p);
	return 0;
}
