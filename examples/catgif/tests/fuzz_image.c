/* libFuzzer target for the /predict body decoders (PGM, GIF, JSON): any
 * input must decode or fail with a 4xx status, never crash. The first byte
 * picks the Content-Type the server would have seen. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = {NULL, "image/gif", "image/x-portable-graymap",
	                                    "application/json", "text/plain"};
	if (size == 0)
		return 0;
	float out[IMAGE_PIXELS];
	const char *format;
	struct cg_error err = {0};
	if (image_decode(out, &format, data + 1, size - 1, types[data[0] % 5], &err) < 0)
		assert(err.code >= 400 && err.code < 500);
	else
		for (int i = 0; i < IMAGE_PIXELS; i++)
			assert(out[i] >= 0.0f && out[i] <= 255.0f);
	return 0;
}
