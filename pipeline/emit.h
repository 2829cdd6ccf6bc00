/* Printing a loaded pipeline: the normalized spec (`cpipe config`) as JSON
 * or YAML, and the stage graph (`cpipe graph`) as DOT or Mermaid. */
#ifndef CPIPE_PIPELINE_EMIT_H
#define CPIPE_PIPELINE_EMIT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "spec.h"

/* The resolved, normalized spec as a JSON tree (compose's long forms,
 * defaults filled in). Caller owns it (cJSON_Delete). */
cJSON *emit_spec_json(const struct pipeline *p);

/* Masks the secrets in a tree from emit_spec_json, in place: environment
 * entries and build args with secret names, and every secret value or URL
 * password the spec holds, wherever it appears (see redact.h). */
void emit_redact(cJSON *doc, const struct pipeline *p);

/* "VOLUME:/path" or the absolute host path. Caller owns. */
char *emit_artifact_ref(const struct artifact_ref *a);

/* Writes a JSON tree as block-style YAML via libyaml's emitter. */
int emit_yaml(FILE *out, const cJSON *doc, struct cp_error *err);

/* Writes the dependency graph; `format` is "dot" or "mermaid". */
int emit_graph(FILE *out, const struct pipeline *p, const char *format, struct cp_error *err);

#endif
