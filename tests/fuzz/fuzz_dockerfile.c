/* libFuzzer target for the Dockerfile reader: any bytes as a Dockerfile,
 * read for the last stage and for a stage named by the first line, with
 * build args; the bytes are also expanded as one word. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../pipeline/dockerfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kvvec args, env;
	if (!args.n) {
		kvvec_set(&args, "BASE", "python:3.11");
		kvvec_set(&args, "FROM_ENV", NULL);
		kvvec_set(&env, "FROM_ENV", "e");
		kvvec_set(&env, "PATH", "/bin");
	}
	const char *text = (const char *)data;
	struct dockerfile_image img;
	struct cp_error err = {0};
	dockerfile_read(&img, text, size, "Dockerfile", NULL, &args, &env, &err);
	dockerfile_image_free(&img);

	/* A target named by the input's first word, so stage lookups and
	 * FROM-an-earlier-stage chains get exercised. */
	const char *nl = memchr(text, '\n', size);
	size_t tn = nl ? (size_t)(nl - text) : size;
	if (tn > 0 && tn < 64 && !memchr(text, '\0', tn)) {
		char *target = xstrndup(text, tn);
		dockerfile_read(&img, text, size, "Dockerfile", target, &args, &env, &err);
		dockerfile_image_free(&img);
		free(target);
	}
	if (size < 4096 && !memchr(text, '\0', size)) {
		char *word = xstrndup(text, size);
		free(dockerfile_expand(word, &env, size && data[0] & 1 ? '`' : '\\', &err));
		free(word);
	}
	return 0;
}
