/* The table of runtimes and what they share. */
#include "runtime.h"

#include <stdarg.h>
#include <stdio.h>
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

void runtime_sink_stderr(void *ud, enum runtime_note kind, const char *stage, const char *msg)
{
	(void)ud;
	(void)stage;
	fprintf(stderr, "cpipe: %s%s\n", kind == RUNTIME_WARNING ? "warning: " : "", msg);
}

void runtime_note(const struct runtime_sink *sink, enum runtime_note kind, const char *stage,
		  const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sink && sink->note)
		sink->note(sink->ud, kind, stage, msg);
	else
		runtime_sink_stderr(NULL, kind, stage, msg);
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

/* The volume named `name` among v[0..n), lent; NULL when absent. */
const struct volume *runtime_volume_find(const struct volume *v, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}
