/* The spec model's lifetime and lookups. */
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "spec_image.h"

static void refs_free(struct artifact_ref *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].volume);
		free(r[i].path);
	}
	free(r);
}

static void stage_free(struct stage *st)
{
	free(st->name);
	free(st->image);
	if (st->build) {
		free(st->build->context);
		free(st->build->dockerfile);
		free(st->build->target);
		kvvec_free(&st->build->args);
		free(st->build);
	}
	strvec_free(&st->command);
	strvec_free(&st->entrypoint);
	kvvec_free(&st->environment);
	free(st->working_dir);
	free(st->user);
	free(st->network_mode);
	free(st->container_name);
	free(st->service_why);
	spec_image_free(st->image_cfg);
	for (size_t i = 0; i < st->nmounts; i++) {
		free(st->mounts[i].source);
		free(st->mounts[i].target);
		for (size_t k = 0; k < st->mounts[i].nfill; k++) {
			free(st->mounts[i].fill[k].source);
			free(st->mounts[i].fill[k].path);
		}
		free(st->mounts[i].fill);
	}
	free(st->mounts);
	for (size_t i = 0; i < st->nports; i++) {
		free(st->ports[i].host_ip);
		free(st->ports[i].protocol);
	}
	free(st->ports);
	for (size_t i = 0; i < st->ndeps; i++)
		free(st->deps[i].stage);
	free(st->deps);
	kvvec_free(&st->params);
	kvvec_free(&st->param_overrides);
	refs_free(st->inputs, st->ninputs);
	refs_free(st->outputs, st->noutputs);
	refs_free(st->metrics, st->nmetrics);
	if (st->healthcheck) {
		strvec_free(&st->healthcheck->test);
		free(st->healthcheck->http);
		free(st->healthcheck);
	}
	strvec_free(&st->profiles);
	kvvec_free(&st->labels);
	kvvec_free(&st->x_node_selector);
	kvvec_free(&st->x_resources);
	strvec_free(&st->gpus);
	stage_compose_free(st);
}

void pipeline_free(struct pipeline *p)
{
	if (!p)
		return;
	free(p->name);
	free(p->runtime);
	free(p->remote);
	free(p->x_namespace);
	free(p->x_storage_class);
	free(p->x_volume_size);
	free(p->x_helper_image);
	free(p->dir);
	strvec_free(&p->files);
	for (size_t i = 0; i < p->nvolumes; i++) {
		free(p->volumes[i].name);
		free(p->volumes[i].ext_name);
		free(p->volumes[i].driver);
		kvvec_free(&p->volumes[i].labels);
		kvvec_free(&p->volumes[i].driver_opts);
	}
	free(p->volumes);
	for (size_t i = 0; i < p->nstages; i++)
		stage_free(&p->stages[i]);
	free(p->stages);
	free(p->stage_by_name);
	strvec_free(&p->mark_files);
	strvec_free(&p->warnings);
	strvec_free(&p->image_warnings);
	redactor_free(&p->secrets);
	free(p);
}

static int cmp_stage_names(const void *x, const void *y, void *ud)
{
	const struct pipeline *p = ud;
	return strcmp(p->stages[*(const size_t *)x].name, p->stages[*(const size_t *)y].name);
}

void pipeline_index_stages(struct pipeline *p)
{
	free(p->stage_by_name);
	p->stage_by_name = xcalloc(p->nstages + 1, sizeof(size_t));
	for (size_t i = 0; i < p->nstages; i++)
		p->stage_by_name[i] = i;
	qsort_r(p->stage_by_name, p->nstages, sizeof(size_t), cmp_stage_names, p);
}

long pipeline_stage_index(const struct pipeline *p, const char *name)
{
	if (!p->stage_by_name) {
		for (size_t i = 0; i < p->nstages; i++)
			if (p->stages[i].name && strcmp(p->stages[i].name, name) == 0)
				return (long)i;
		return -1;
	}
	size_t lo = 0, hi = p->nstages;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->stages[p->stage_by_name[mid]].name, name);
		if (c == 0)
			return (long)p->stage_by_name[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

const struct stage *pipeline_stage(const struct pipeline *p, const char *name)
{
	long i = pipeline_stage_index(p, name);
	return i < 0 ? NULL : &p->stages[i];
}

const struct volume *pipeline_volume(const struct pipeline *p, const char *name)
{
	for (size_t i = 0; i < p->nvolumes; i++)
		if (p->volumes[i].name && strcmp(p->volumes[i].name, name) == 0)
			return &p->volumes[i];
	return NULL;
}

int pipeline_unknown_stage(const struct pipeline *p, const char *name, struct cp_error *err)
{
	const char **cands = xcalloc(p->nstages + 1, sizeof(*cands));
	for (size_t i = 0; i < p->nstages; i++)
		cands[i] = p->stages[i].name;
	const char *near = suggest_nearest(name, cands, p->nstages);
	if (near)
		cp_error_set(err, EXIT_USAGE, "unknown stage \"%s\" (did you mean \"%s\"?)", name,
			     near);
	else
		cp_error_set(err, EXIT_USAGE, "unknown stage \"%s\"", name);
	free(cands);
	return -1;
}
