/* What a stage's cache key hashes, and what its record says it ran with:
 * the same fields, masked the same way. */
#include "track_internal.h"

#include "spec_compose.h"

#include <stdlib.h>
#include <string.h>

/* Secret-named variables are masked whole, at any length; every other
 * value has the spec's secret values masked inside it. */
static cJSON *masked_env(const struct pipeline *p, const struct stage *s)
{
	cJSON *env = cJSON_CreateObject();
	for (size_t i = 0; i < s->environment.n; i++) {
		const struct kv *kv = &s->environment.v[i];
		if (!kv->value)
			continue;
		if (env_name_is_secret(kv->key)) {
			cJSON_AddStringToObject(env, kv->key, REDACTED);
			continue;
		}
		cleanup_free char *v = redactor_text(&p->secrets, kv->value);
		cJSON_AddStringToObject(env, kv->key, v);
	}
	return env;
}

static cJSON *masked_argv(const struct pipeline *p, const struct strvec *sv)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < sv->n; i++) {
		cleanup_free char *r = redactor_text(&p->secrets, sv->v[i]);
		cJSON_AddItemToArray(a, cJSON_CreateString(r));
	}
	return a;
}

static cJSON *mounts_array(const struct pipeline *p, const struct stage *s)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount *m = &s->mounts[i];
		cleanup_free char *src = m->type == MOUNT_VOLUME ? xstrdup(m->source)
					 : m->type == MOUNT_BIND ? track_ref_name(p, NULL, m->source)
								 : xstrdup("tmpfs");
		cleanup_free char *text = xasprintf("%s:%s%s", src, m->target, m->read_only ? ":ro" : "");
		cJSON_AddItemToArray(a, cJSON_CreateString(text));
	}
	return a;
}

static cJSON *masked_kv(const struct pipeline *p, const struct kvvec *kv)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < kv->n; i++) {
		cleanup_free char *v = redactor_text(&p->secrets, kv->v[i].value ? kv->v[i].value : "");
		cJSON_AddStringToObject(o, kv->v[i].key, v);
	}
	return o;
}

static void add_masked(cJSON *o, const struct pipeline *p, const char *key, const char *value)
{
	cleanup_free char *v = redactor_text(&p->secrets, value);
	cJSON_AddStringToObject(o, key, v);
}

cJSON *track_key_object(const struct pipeline *p, const struct stage *s, const char *image,
			const cJSON *inputs)
{
	cJSON *k = cJSON_CreateObject();
	cJSON_AddNumberToObject(k, "v", 1);
	cJSON_AddStringToObject(k, "image", image);
	cJSON_AddItemToObject(k, "command", masked_argv(p, &s->command));
	cJSON_AddItemToObject(k, "entrypoint", masked_argv(p, &s->entrypoint));
	cJSON_AddItemToObject(k, "environment", masked_env(p, s));
	add_masked(k, p, "working_dir", s->working_dir ? s->working_dir : "");
	add_masked(k, p, "user", s->user ? s->user : "");
	cJSON_AddItemToObject(k, "mounts", mounts_array(p, s));
	cJSON_AddItemToObject(k, "params", masked_kv(p, &s->params));
	spec_compose_key(k, s);
	cJSON *in = cJSON_AddObjectToObject(k, "inputs");
	for (const cJSON *e = inputs ? inputs->child : NULL; e; e = e->next) {
		const char *d = track_entry_digest(e);
		cJSON_AddStringToObject(in, e->string, d ? d : "missing");
	}
	return k;
}

void track_key_digest(char out[DIGEST_BUFLEN], cJSON *keyobj)
{
	cleanup_free char *canon = json_canonical(keyobj);
	digest_bytes(out, canon, strlen(canon));
}

void track_stage_fields(cJSON *e, const struct pipeline *p, const struct stage *s)
{
	cJSON_AddItemToObject(e, "command", masked_argv(p, &s->command));
	cJSON_AddItemToObject(e, "entrypoint", masked_argv(p, &s->entrypoint));
	cJSON_AddItemToObject(e, "environment", masked_env(p, s));
	if (s->working_dir)
		add_masked(e, p, "working_dir", s->working_dir);
	if (s->user)
		add_masked(e, p, "user", s->user);
	cJSON_AddItemToObject(e, "mounts", mounts_array(p, s));
	cJSON_AddItemToObject(e, "params", masked_kv(p, &s->params));
	cJSON_AddItemToObject(e, "param_overrides", masked_kv(p, &s->param_overrides));
	spec_compose_record(e, p, s);
}
