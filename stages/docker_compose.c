/* The docker runtime's meaning for a stage's compose keys of resources,
 * security and lifecycle: the container create body's members, as
 * docker compose sets them. */
#include <stdlib.h>
#include <string.h>

#include "compose_rt.h"
#include "docker_internal.h"

/* A JSON array of the strings of `sv`. */
static cJSON *strings(const struct strvec *sv)
{
	return cJSON_CreateStringArray((const char *const *)sv->v, (int)sv->n);
}

static void limits(cJSON *host, const struct stage *s)
{
	const struct stage_limits *l = &s->limits;
	if (l->ntmpfs) {
		cJSON *t = cJSON_AddObjectToObject(host, "Tmpfs");
		for (size_t i = 0; i < l->ntmpfs; i++)
			cJSON_AddStringToObject(t, l->tmpfs[i].target,
						l->tmpfs[i].options ? l->tmpfs[i].options : "");
	}
	if (l->shm_size)
		cJSON_AddNumberToObject(host, "ShmSize", (double)l->shm_size);
	if (l->pids_limit)
		cJSON_AddNumberToObject(host, "PidsLimit", (double)l->pids_limit);
	if (l->nulimits) {
		cJSON *a = cJSON_AddArrayToObject(host, "Ulimits");
		for (size_t i = 0; i < l->nulimits; i++) {
			cJSON *u = cJSON_CreateObject();
			cJSON_AddStringToObject(u, "Name", l->ulimits[i].name);
			cJSON_AddNumberToObject(u, "Soft", (double)l->ulimits[i].soft);
			cJSON_AddNumberToObject(u, "Hard", (double)l->ulimits[i].hard);
			cJSON_AddItemToArray(a, u);
		}
	}
}

static void security(cJSON *host, const struct stage *s)
{
	const struct stage_security *sec = &s->security;
	if (sec->cap_add.n)
		cJSON_AddItemToObject(host, "CapAdd", strings(&sec->cap_add));
	if (sec->cap_drop.n)
		cJSON_AddItemToObject(host, "CapDrop", strings(&sec->cap_drop));
	if (sec->read_only)
		cJSON_AddBoolToObject(host, "ReadonlyRootfs", true);
	if (sec->has_init)
		cJSON_AddBoolToObject(host, "Init", sec->init);
	if (sec->ipc && str_has_prefix(sec->ipc, "service:"))
		compose_warn(s, &s->lifecycle.marks[CM_IPC], "ipc",
			     "\"%s\": cpipe cannot name another stage's container here; the stage "
			     "gets a private IPC namespace",
			     sec->ipc);
	else if (sec->ipc)
		cJSON_AddStringToObject(host, "IpcMode", sec->ipc);
}

static void mount_secrets(cJSON *host, const struct stage *s)
{
	const struct stage_security *sec = &s->security;
	cJSON *mounts = cJSON_GetObjectItemCaseSensitive(host, "Mounts");
	for (size_t i = 0; i < sec->nsecrets; i++) {
		const struct stage_secret *x = &sec->secrets[i];
		if (!x->source) {
			compose_warn(s, &x->mark, x->config ? "configs" : "secrets",
				     "\"%s\" is given by value; the docker runtime mounts those "
				     "given by file: only, so %s is missing in the container",
				     x->name, x->target);
			continue;
		}
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "Type", "bind");
		cJSON_AddStringToObject(o, "Source", x->source);
		cJSON_AddStringToObject(o, "Target", x->target);
		cJSON_AddBoolToObject(o, "ReadOnly", true);
		cJSON_AddItemToArray(mounts, o);
	}
}

static const char *const policy_names[] = {"no", "always", "on-failure", "unless-stopped"};

void docker_compose_body(cJSON *body, cJSON *host, const struct stage *s)
{
	compose_warn_common(s);
	limits(host, s);
	security(host, s);
	mount_secrets(host, s);
	const struct stage_lifecycle *lc = &s->lifecycle;
	if (lc->stop_signal_name)
		cJSON_AddStringToObject(body, "StopSignal", lc->stop_signal_name);
	cJSON_AddNumberToObject(body, "StopTimeout",
				(double)((s->stop_grace_ms > 0 ? s->stop_grace_ms + 999 : 10000) / 1000));
	if (s->service && lc->restart != RESTART_NO) {
		cJSON *r = cJSON_AddObjectToObject(host, "RestartPolicy");
		cJSON_AddStringToObject(r, "Name", policy_names[lc->restart]);
		if (lc->restart == RESTART_ON_FAILURE)
			cJSON_AddNumberToObject(r, "MaximumRetryCount", lc->restart_max);
	}
}

char *docker_create_path(struct runtime *rt, const char *name, const struct stage *s)
{
	if (!s->security.platform)
		return xasprintf("/containers/create?name=%s", name);
	cleanup_free char *p = docker_escape(rt->d, s->security.platform);
	return xasprintf("/containers/create?name=%s&platform=%s", name, p);
}
