/* libFuzzer target for the spec loader: any bytes as a cpipe.yml. The
 * project dir is a path that does not exist, so no .env or env_file is
 * read; the environment is fixed so runs are reproducible. */
#include <stddef.h>
#include <stdint.h>

#include "../../pipeline/spec.h"

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
	if (spec_load_string(&p, "cpipe.yml", (const char *)data, size, &opts, &err) == 0)
		pipeline_free(p);
	return 0;
}
