/* The secret values a spec uses, gathered once it is built, so records,
 * the lock, config output and logs can mask them (see redact.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/fs.h"
#include "spec_build.h"

static void add_named(struct redactor *r, const struct kvvec *kv)
{
	for (size_t i = 0; i < kv->n; i++) {
		if (!kv->v[i].value)
			continue;
		if (env_name_is_secret(kv->v[i].key))
			redactor_add(r, kv->v[i].value);
		redactor_add_urls(r, kv->v[i].value);
	}
}

static void add_urls(struct redactor *r, const struct strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		redactor_add_urls(r, sv->v[i]);
}

/* Top-level compose secrets: `NAME: {environment: VAR}` or `{file: PATH}`.
 * cpipe does not mount them, but a value they name is secret wherever else
 * the spec uses it. An unreadable file is left to what mounts it. */
static void add_declared(struct spec_builder *b, const struct ynode *secrets)
{
	struct redactor *r = &b->p->secrets;
	for (size_t i = 0; secrets && secrets->kind == YNODE_MAP && i < secrets->npairs; i++) {
		const struct ynode *v = secrets->pairs[i].value;
		if (!v || v->kind != YNODE_MAP)
			continue;
		const struct ynode *env = ymap_get(v, "environment");
		if (env && env->kind == YNODE_SCALAR && !ynode_is_null(env))
			redactor_add(r, spb_env_lookup(b, env->str));
		const struct ynode *file = ymap_get(v, "file");
		if (file && file->kind == YNODE_SCALAR && !ynode_is_null(file)) {
			cleanup_free char *abs = spb_host_path(b, file->str);
			cleanup_free char *data = NULL;
			struct cp_error ignored = {0};
			struct stat st;
			if (abs && stat(abs, &st) == 0 && S_ISREG(st.st_mode) &&
			    fs_read_file(&data, NULL, abs, 1 << 20, &ignored) == 0)
				redactor_add(r, data);
		}
	}
}

void spb_secrets(struct spec_builder *b, const struct ynode *secrets)
{
	struct redactor *r = &b->p->secrets;
	add_declared(b, secrets);
	for (size_t i = 0; i < b->p->nstages; i++) {
		const struct stage *s = &b->p->stages[i];
		add_named(r, &s->environment);
		for (size_t k = 0; k < s->params.n; k++)
			redactor_add_urls(r, s->params.v[k].value);
		if (s->build)
			add_named(r, &s->build->args);
		add_urls(r, &s->command);
		add_urls(r, &s->entrypoint);
		if (s->healthcheck && s->healthcheck->http)
			redactor_add_urls(r, s->healthcheck->http);
	}
}
