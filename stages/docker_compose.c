/* The docker runtime's meaning for a stage's compose keys of resources,
 * security and lifecycle: the container create body's members, as
 * docker compose sets them. */
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

#include "compose_rt.h"
#include "docker_internal.h"

/* A JSON array of the strings of `sv`. */
static cJSON *strings(const struct strvec *sv)
{
	return cJSON_CreateStringArray((const char *const *)sv->v, (int)sv->n);
}

static void limits(cJSON *host, const struct task_desc *s)
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

static void security(struct runtime *rt, cJSON *host, const struct task_desc *s)
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
		compose_warn(&rt->sink, s, &s->lifecycle.marks[CM_IPC], "ipc",
			     "\"%s\": cpipe cannot name another stage's container here; the stage "
			     "gets a private IPC namespace",
			     sec->ipc);
	else if (sec->ipc)
		cJSON_AddStringToObject(host, "IpcMode", sec->ipc);
}

static void mount_secrets(cJSON *host, const struct task_desc *s)
{
	const struct stage_security *sec = &s->security;
	cJSON *mounts = cJSON_GetObjectItemCaseSensitive(host, "Mounts");
	for (size_t i = 0; i < sec->nsecrets; i++) {
		const struct stage_secret *x = &sec->secrets[i];
		if (!x->source)
			continue; /* docker_compose_files copies it in */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "Type", "bind");
		cJSON_AddStringToObject(o, "Source", x->source);
		cJSON_AddStringToObject(o, "Target", x->target);
		cJSON_AddBoolToObject(o, "ReadOnly", true);
		cJSON_AddItemToArray(mounts, o);
	}
}

static const char *const policy_names[] = {"no", "always", "on-failure", "unless-stopped"};

void docker_compose_body(struct runtime *rt, cJSON *body, cJSON *host,
			 const struct task_desc *s)
{
	compose_warn_common(&rt->sink, s);
	limits(host, s);
	security(rt, host, s);
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

char *docker_create_path(struct runtime *rt, const char *name, const struct task_desc *s)
{
	if (!s->security.platform)
		return xasprintf("/containers/create?name=%s", name);
	cleanup_free char *p = docker_escape(rt->d, s->security.platform);
	return xasprintf("/containers/create?name=%s&platform=%s", name, p);
}

/* A tar (in memory: it holds secret values) of the value-given secrets and
 * configs of `s`, with their parent directories; NULL when there are none. */
static void *files_tar(const struct task_desc *s, size_t *len, struct cp_error *err)
{
	const struct stage_security *sec = &s->security;
	size_t cap = 0;
	for (size_t i = 0; i < sec->nsecrets; i++)
		if (!sec->secrets[i].source)
			cap += 3 * 1024 + strlen(sec->secrets[i].target) * 4 +
			       (sec->secrets[i].content ? strlen(sec->secrets[i].content) : 0);
	if (!cap)
		return NULL;
	cap += 4 * 10240; /* the writer pads to whole blocks of 10 KiB */
	char *buf = xmalloc(cap);
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	int rc = archive_write_open_memory(a, buf, cap, len);
	struct strvec dirs = {0};
	for (size_t i = 0; rc == ARCHIVE_OK && i < sec->nsecrets; i++) {
		const struct stage_secret *x = &sec->secrets[i];
		if (x->source)
			continue;
		const char *c = x->content ? x->content : "";
		/* Each parent first, so the daemon creates them 0755. */
		for (const char *p = strchr(x->target + 1, '/'); p && rc == ARCHIVE_OK;
		     p = strchr(p + 1, '/')) {
			cleanup_free char *d = xstrndup(x->target + 1, (size_t)(p - x->target - 1));
			if (strvec_contains(&dirs, d))
				continue;
			strvec_push(&dirs, d);
			struct archive_entry *e = archive_entry_new();
			archive_entry_set_pathname(e, d);
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, 0755);
			rc = archive_write_header(a, e);
			archive_entry_free(e);
		}
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, x->target + 1);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0444);
		archive_entry_set_size(e, (la_int64_t)strlen(c));
		if (rc == ARCHIVE_OK)
			rc = archive_write_header(a, e);
		if (rc == ARCHIVE_OK && archive_write_data(a, c, strlen(c)) < 0)
			rc = ARCHIVE_FATAL;
		archive_entry_free(e);
	}
	if (rc == ARCHIVE_OK)
		rc = archive_write_close(a);
	if (rc != ARCHIVE_OK) {
		cp_error_set(err, EXIT_USAGE, "stage \"%s\": packing its secrets and configs: %s",
			     s->name, archive_error_string(a) ? archive_error_string(a) : "failed");
		free(buf);
		buf = NULL;
	}
	archive_write_free(a);
	strvec_free(&dirs);
	return buf;
}

int docker_compose_files(struct runtime *rt, const char *id, const struct task_desc *s,
			 struct cp_error *err)
{
	size_t len = 0;
	cp_error_clear(err);
	char *tar = files_tar(s, &len, err);
	if (!tar)
		return err->msg[0] ? -1 : 0;
	if (s->security.read_only) {
		explicit_bzero(tar, len);
		free(tar);
		return cp_error_set(
		    err, EXIT_USAGE,
		    "stage \"%s\": read_only: the docker runtime copies secrets and "
		    "configs given by value (environment:, content:) into the "
		    "container, which a read-only root refuses; declare them with "
		    "file: or drop read_only",
		    s->name);
	}
	FILE *f = fmemopen(tar, len, "r");
	if (!f) {
		explicit_bzero(tar, len);
		free(tar);
		return cp_error_errno(err, EXIT_USAGE, "stage \"%s\": its secrets and configs",
				      s->name);
	}
	cleanup_free char *path = xasprintf("/containers/%s/archive?path=/", id);
	struct docker_req rq = {.method = "PUT", .path = path, .upload = f,
				.upload_size = (long long)len};
	int rc = docker_call(rt->d, &rq, NULL, NULL, err);
	fclose(f);
	explicit_bzero(tar, len);
	free(tar);
	if (rc < 0)
		return cp_error_prefix(err, "copying the secrets and configs of stage \"%s\"",
				       s->name);
	return 0;
}
