/* struct stage's compose keys of resources, security and lifecycle as
 * JSON (see spec_compose.h). */
#include "spec_compose.h"

#include <stdio.h>
#include <string.h>

/* A JSON array of the strings of `sv`. */
static cJSON *strings(const struct strvec *sv)
{
	return cJSON_CreateStringArray((const char *const *)sv->v, (int)sv->n);
}

static cJSON *ulimits_json(const struct stage_limits *l)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < l->nulimits; i++) {
		const struct ulimit *u = &l->ulimits[i];
		if (u->soft == u->hard) {
			cJSON_AddNumberToObject(o, u->name, (double)u->soft);
			continue;
		}
		cJSON *m = cJSON_AddObjectToObject(o, u->name);
		cJSON_AddNumberToObject(m, "soft", (double)u->soft);
		cJSON_AddNumberToObject(m, "hard", (double)u->hard);
	}
	return o;
}

static cJSON *tmpfs_json(const struct stage_limits *l)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < l->ntmpfs; i++) {
		const struct tmpfs_mount *t = &l->tmpfs[i];
		char buf[4096];
		snprintf(buf, sizeof(buf), "%s%s%s", t->target, t->options ? ":" : "",
			 t->options ? t->options : "");
		cJSON_AddItemToArray(a, cJSON_CreateString(buf));
	}
	return a;
}

/* secrets: or configs: entries of the stage, in compose config's long form. */
static void secrets_json(cJSON *o, const struct stage_security *sec)
{
	cJSON *lists[2] = {NULL, NULL};
	for (size_t i = 0; i < sec->nsecrets; i++) {
		const struct stage_secret *s = &sec->secrets[i];
		cJSON **l = &lists[s->config];
		if (!*l)
			*l = cJSON_AddArrayToObject(o, s->config ? "configs" : "secrets");
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "source", s->name);
		cJSON_AddStringToObject(e, "target", s->target);
		cJSON_AddItemToArray(*l, e);
	}
}

static const char *const restart_names[] = {"no", "always", "on-failure", "unless-stopped"};

static void add_key_fields(cJSON *o, const struct stage *s)
{
	const struct stage_security *sec = &s->security;
	const struct stage_limits *l = &s->limits;
	if (sec->platform)
		cJSON_AddStringToObject(o, "platform", sec->platform);
	if (sec->read_only)
		cJSON_AddBoolToObject(o, "read_only", true);
	if (sec->cap_add.n)
		cJSON_AddItemToObject(o, "cap_add", strings(&sec->cap_add));
	if (sec->cap_drop.n)
		cJSON_AddItemToObject(o, "cap_drop", strings(&sec->cap_drop));
	if (sec->ipc)
		cJSON_AddStringToObject(o, "ipc", sec->ipc);
	if (l->nulimits)
		cJSON_AddItemToObject(o, "ulimits", ulimits_json(l));
	if (l->ntmpfs)
		cJSON_AddItemToObject(o, "tmpfs", tmpfs_json(l));
	secrets_json(o, sec);
}

static void add_lifecycle(cJSON *o, const struct stage *s)
{
	const struct stage_lifecycle *lc = &s->lifecycle;
	const struct stage_limits *l = &s->limits;
	if (l->shm_size)
		cJSON_AddNumberToObject(o, "shm_size", (double)l->shm_size);
	if (l->pids_limit)
		cJSON_AddNumberToObject(o, "pids_limit", (double)l->pids_limit);
	if (s->security.has_init)
		cJSON_AddBoolToObject(o, "init", s->security.init);
	if (s->security.runtime)
		cJSON_AddStringToObject(o, "runtime", s->security.runtime);
	if (lc->stop_signal_name)
		cJSON_AddStringToObject(o, "stop_signal", lc->stop_signal_name);
	if (lc->restart != RESTART_NO || lc->marks[CM_RESTART].file) {
		char buf[64];
		snprintf(buf, sizeof(buf), "%s", restart_names[lc->restart]);
		if (lc->restart == RESTART_ON_FAILURE && lc->restart_max)
			snprintf(buf, sizeof(buf), "on-failure:%d", lc->restart_max);
		cJSON_AddStringToObject(o, "restart", buf);
	}
}

void spec_compose_emit(cJSON *o, const struct stage *s)
{
	add_key_fields(o, s);
	add_lifecycle(o, s);
	/* The mounts it brings are under volumes: already; so the printed
	 * spec loads again unchanged, the names go under an x- key. */
	if (s->lifecycle.volumes_from.n)
		cJSON_AddItemToObject(o, "x-volumes-from", strings(&s->lifecycle.volumes_from));
	if (s->lifecycle.has_replicas) {
		cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "deploy");
		if (!d)
			d = cJSON_AddObjectToObject(o, "deploy");
		cJSON_AddNumberToObject(d, "replicas", (double)s->lifecycle.replicas);
	}
}

void spec_compose_emit_top(cJSON *doc, const struct pipeline *p)
{
	cJSON *tops[2] = {NULL, NULL};
	for (size_t i = 0; i < p->nstages; i++) {
		const struct stage_security *sec = &p->stages[i].security;
		for (size_t k = 0; k < sec->nsecrets; k++) {
			const struct stage_secret *x = &sec->secrets[k];
			cJSON **top = &tops[x->config];
			if (!*top)
				*top = cJSON_AddObjectToObject(doc, x->config ? "configs" : "secrets");
			if (cJSON_GetObjectItemCaseSensitive(*top, x->name))
				continue;
			cJSON *d = cJSON_AddObjectToObject(*top, x->name);
			if (x->source)
				cJSON_AddStringToObject(d, "file", x->source);
			else if (x->env)
				cJSON_AddStringToObject(d, "environment", x->env);
			else if (x->config)
				cJSON_AddStringToObject(d, "content", x->content ? x->content : "");
		}
	}
}

void spec_compose_key(cJSON *k, const struct stage *s)
{
	add_key_fields(k, s);
	if (s->gpus.n)
		cJSON_AddItemToObject(k, "gpus", strings(&s->gpus));
}

void spec_compose_record(cJSON *e, const struct pipeline *p, const struct stage *s)
{
	spec_compose_key(e, s);
	add_lifecycle(e, s);
	if (s->lifecycle.volumes_from.n)
		cJSON_AddItemToObject(e, "volumes_from", strings(&s->lifecycle.volumes_from));
	if (s->labels.n) {
		cJSON *o = cJSON_AddObjectToObject(e, "labels");
		for (size_t i = 0; i < s->labels.n; i++) {
			cleanup_free char *v = redactor_text(&p->secrets, s->labels.v[i].value
										  ? s->labels.v[i].value
										  : "");
			cJSON_AddStringToObject(o, s->labels.v[i].key, v);
		}
	}
}
