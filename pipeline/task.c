/* A stage as a runtime sees it: the task description and the project's
 * plain data (stages/runtime.h). The runtimes never see struct stage or
 * struct pipeline; what they read of them is gathered here. */
#include "task.h"

#include <stdlib.h>
#include <string.h>

#include "../artifacts/redact.h"
#include "progress.h"
#include "services.h"

/* Docker's reading of an image name: without a tag or digest it is
 * ":latest", so "app" and "app:latest" are the same image. */
static bool same_image(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	const char *last_a = strrchr(a, '/'), *last_b = strrchr(b, '/');
	bool tag_a = strchr(a, '@') || strchr(last_a ? last_a : a, ':');
	bool tag_b = strchr(b, '@') || strchr(last_b ? last_b : b, ':');
	if (tag_a == tag_b)
		return strcmp(a, b) == 0;
	if (tag_a) /* swap so that a is the one without a tag */
		return same_image(b, a);
	return lb == la + strlen(":latest") && strncmp(a, b, la) == 0 &&
	       strcmp(b + la, ":latest") == 0;
}

/* The stage whose build: produces s's image: s itself, or the first stage
 * with build: and the same image name; NULL when the image is pulled. */
static const struct stage *image_builder(const struct pipeline *p, const struct stage *s)
{
	if (s->build)
		return s;
	if (!s->image || !*s->image)
		return NULL;
	for (size_t i = 0; i < p->nstages; i++) {
		const struct stage *o = &p->stages[i];
		if (o->build && o->image && *o->image && same_image(o->image, s->image))
			return o;
	}
	return NULL;
}

void task_desc_init(struct task_desc *out, const struct pipeline *p, const struct stage *s)
{
	const struct stage *builder = image_builder(p, s);
	*out = (struct task_desc){
		.name = s->name,
		.mark = s->mark,
		.image = s->image,
		.build = builder ? builder->build : NULL,
		.build_stage = builder ? builder->name : NULL,
		.command = s->command,
		.has_command = s->has_command,
		.entrypoint = s->entrypoint,
		.has_entrypoint = s->has_entrypoint,
		.working_dir = s->working_dir,
		.user = s->user,
		.mounts = s->mounts,
		.nmounts = s->nmounts,
		.ports = s->ports,
		.nports = s->nports,
		.service = s->service,
		.healthcheck = s->healthcheck,
		.labels = s->labels,
		.stop_grace_ms = s->stop_grace_ms,
		.gpus = s->gpus,
		.network_mode = s->network_mode,
		.container_name = s->container_name,
		.limits = s->limits,
		.security = s->security,
		.lifecycle = s->lifecycle,
		.node_selector = s->x_node_selector,
		.resources = s->x_resources,
	};
}

/* The handles the project's service state files name: services left up. */
static cJSON *kept_handles(const char *state_dir)
{
	struct strvec names = {0};
	struct cp_error ignored = {0};
	if (!state_dir || service_state_names(&names, state_dir, &ignored) < 0)
		return NULL;
	cJSON *out = cJSON_CreateArray();
	for (size_t i = 0; i < names.n; i++) {
		cJSON *st = NULL;
		if (service_state_load(&st, state_dir, names.v[i], &ignored) != 0)
			continue;
		cJSON *h = cJSON_DetachItemFromObject(st, "handle");
		if (h)
			cJSON_AddItemToArray(out, h);
		cJSON_Delete(st);
	}
	strvec_free(&names);
	return out;
}

/* The runtime_sink of a task_notes. */
static void notes_sink(void *ud, enum runtime_note kind, const char *stage, const char *msg)
{
	struct task_notes *n = ud;
	cleanup_free char *masked = redactor_text(n->secrets, msg);
	if (kind == RUNTIME_WARNING && stage) {
		if (!n->warnings)
			n->warnings = cJSON_CreateObject();
		cJSON *a = cJSON_GetObjectItemCaseSensitive(n->warnings, stage);
		if (!a)
			a = cJSON_AddArrayToObject(n->warnings, stage);
		cJSON_AddItemToArray(a, cJSON_CreateString(masked));
	}
	if (n->pr)
		progress_runtime_note(n->pr, kind == RUNTIME_WARNING, stage, masked);
	else
		runtime_sink_stderr(NULL, kind, stage, masked);
}

const cJSON *task_notes_stage(const struct task_notes *notes, const char *stage)
{
	return notes ? cJSON_GetObjectItemCaseSensitive(notes->warnings, stage) : NULL;
}

void task_notes_free(struct task_notes *notes)
{
	cJSON_Delete(notes->warnings);
	notes->warnings = NULL;
}

int task_runtime_open(const struct runtime_ops *ops, struct runtime **out,
		      const struct pipeline *p, const char *state_dir, struct cp_error *err)
{
	return task_runtime_open_notes(ops, out, p, state_dir, NULL, err);
}

void task_project_init(struct task_project *out, const struct pipeline *p, const char *state_dir)
{
	memset(out, 0, sizeof(*out));
	bool network = false;
	out->builds = xcalloc(p->nstages ? p->nstages : 1, sizeof(*out->builds));
	size_t nbuilds = 0;
	for (size_t i = 0; i < p->nstages; i++) {
		const struct stage *s = &p->stages[i];
		strvec_push(&out->hosts, s->name);
		if (s->container_name && *s->container_name &&
		    strcmp(s->container_name, s->name) != 0)
			strvec_push(&out->hosts, s->container_name);
		network |= s->service || s->nports > 0;
		if (s->build)
			out->builds[nbuilds++] = (struct runtime_build){
				.stage = s->name,
				.image = s->image && *s->image ? s->image : NULL,
				.mark = s->mark,
			};
	}
	out->proj = (struct runtime_project){
		.name = p->name,
		.dir = p->dir,
		.state_dir = state_dir,
		.volumes = p->volumes,
		.nvolumes = p->nvolumes,
		.hostnames = (const char *const *)out->hosts.v,
		.nhostnames = out->hosts.n,
		.network = network,
		.kept_handles = kept_handles,
		.kube_namespace = p->x_namespace,
		.kube_helper_image = p->x_helper_image,
		.kube_storage_class = p->x_storage_class,
		.kube_volume_size = p->x_volume_size,
		.builds = out->builds,
		.nbuilds = nbuilds,
	};
}

void task_project_free(struct task_project *tp)
{
	strvec_free(&tp->hosts);
	free(tp->builds);
	memset(tp, 0, sizeof(*tp));
}

int task_runtime_open_notes(const struct runtime_ops *ops, struct runtime **out,
			    const struct pipeline *p, const char *state_dir,
			    struct task_notes *notes, struct cp_error *err)
{
	struct task_project tp;
	task_project_init(&tp, p, state_dir);
	tp.proj.sink = (struct runtime_sink){.note = notes ? notes_sink : NULL, .ud = notes};
	int rc = ops->open(out, &tp.proj, err);
	task_project_free(&tp);
	return rc;
}
