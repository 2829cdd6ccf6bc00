/* The table of runtimes and what they share. */
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t runtime_interrupts;

static const struct runtime_ops *const runtimes[] = {
	&runtime_local,
	&runtime_docker,
	&runtime_podman,
	&runtime_kubernetes,
};

const char *runtime_name_at(size_t i)
{
	return i < ARRAY_LEN(runtimes) ? runtimes[i]->name : NULL;
}

/* The runtime named `name`, or NULL; lends a static table entry. */
const struct runtime_ops *runtime_find(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_LEN(runtimes); i++)
		if (strcmp(runtimes[i]->name, name) == 0)
			return runtimes[i];
	return NULL;
}

/* Frees an array of `n` volume_info as returned by volume_list; NULL is fine. */
void volume_info_free(struct volume_info *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].mountpoint);
	}
	free(v);
}
