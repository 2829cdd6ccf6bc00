/* The compose keys of struct stage_limits, stage_security and
 * stage_lifecycle as JSON: for `cpipe config` (compose's names and
 * shapes), for the cache key (only what can change what a stage writes),
 * and for the run record. Secret values never appear: a secret is its
 * name and target. */
#ifndef CPIPE_PIPELINE_SPEC_COMPOSE_H
#define CPIPE_PIPELINE_SPEC_COMPOSE_H

#include <cjson/cJSON.h>

#include "spec.h"

/* Adds the keys `s` sets to the stage object `o` of config output. */
void spec_compose_emit(cJSON *o, const struct stage *s);
/* Adds the top-level secrets: and configs: the stages use to config
 * output: file: (absolute), environment: (the variable's name) or a
 * config's content:. Never a secret's value. */
void spec_compose_emit_top(cJSON *doc, const struct pipeline *p);
/* Adds to a cache key object the fields that change results, and only
 * when set, so a stage without them keeps its key: platform, gpus,
 * read_only, cap_add/cap_drop, ulimits, tmpfs, ipc, secrets and configs
 * (name and target, never the value). */
void spec_compose_key(cJSON *k, const struct stage *s);
/* Adds to a stage's record what it asked the runtime for: the key's
 * fields plus labels (masked with p's secrets), shm_size, pids_limit, init, stop_signal, restart. */
void spec_compose_record(cJSON *e, const struct pipeline *p, const struct stage *s);

#endif
