/* `cpipe export kubernetes`: the manifests of a pipeline's stages, as the
 * kubernetes runtime makes them, written to a directory with an apply.sh
 * that applies them in order with kubectl (stages/kube_export.c). */
#ifndef CPIPE_STAGES_KUBE_EXPORT_H
#define CPIPE_STAGES_KUBE_EXPORT_H

#include "runtime.h"

/* Writes into `dir` (created if missing; files replaced atomically) the
 * namespace, the claims of proj's volumes, one file per task in `tasks`
 * (dependency order, each with its stage's environment) and apply.sh;
 * `written` gets their paths. `proj` is read as runtime_ops.open reads
 * it. Fails on what the cluster cannot run, as a run would (EXIT_USAGE at
 * the spec's place), or on I/O. Contacts no cluster. */
int kube_export(const struct runtime_project *proj, const struct task_spec *tasks, size_t n,
		const char *dir, struct strvec *written, struct cp_error *err);

#endif
