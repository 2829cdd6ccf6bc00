/* The spec model: what a cpipe.yml (or docker-compose.yml) says, resolved,
 * interpolated, merged and validated. Everything here is owned by the
 * struct pipeline and freed by pipeline_free. */
#ifndef CPIPE_PIPELINE_SPEC_H
#define CPIPE_PIPELINE_SPEC_H

#include <stdbool.h>

#include "../artifacts/redact.h"
#include "../lib/error.h"
#include "../lib/fs_fill.h"
#include "../lib/util.h"
#include "../stages/task.h"

enum dep_condition {
	DEP_COMPLETED_SUCCESSFULLY, /* service_completed_successfully */
	DEP_STARTED,                /* service_started */
	DEP_HEALTHY,                /* service_healthy */
};

struct dep {
	char *stage;
	enum dep_condition condition;
	bool implicit; /* derived from inputs/outputs, not written in depends_on */
	struct cp_mark mark;
};

/* An artifact reference: "VOLUME:/path" or a bind path ("./data", "/abs"). */
struct artifact_ref {
	char *volume; /* NULL for a host path */
	char *path;   /* absolute and normalized: inside the volume, or on the host */
	struct cp_mark mark;
};

struct stage {
	char *name;
	struct cp_mark mark; /* where the stage's key is */
	int index;           /* position in the spec, for deterministic order */

	char *image;
	struct build *build; /* NULL without build: */
	struct strvec command;    /* empty = image default */
	bool has_command;
	struct strvec entrypoint;
	bool has_entrypoint;
	struct kvvec environment; /* env_file entries first, then environment: */
	char *working_dir;
	char *user;

	struct mount *mounts;
	size_t nmounts;
	struct port *ports;
	size_t nports;
	struct dep *deps; /* explicit depends_on first, then implicit ones */
	size_t ndeps;

	struct kvvec params; /* values as strings; overrides applied */
	struct kvvec param_overrides; /* the --set ones, for the record */
	struct artifact_ref *inputs;
	size_t ninputs;
	struct artifact_ref *outputs;
	size_t noutputs;
	struct artifact_ref *metrics;
	size_t nmetrics;
	/* outputs: or metrics: was written (`outputs: []` included). Without
	 * either, what the stage writes into its mounts is observed and
	 * tracked as its outputs (pipeline/track_observe.c). */
	bool outputs_declared;

	bool service; /* long-running: service: true, or inferred (spec_infer.c) */
	char *service_why; /* why it is a service or a job, for config --explain */
	struct healthcheck *healthcheck;
	struct strvec profiles;
	struct kvvec labels;
	long stop_grace_ms; /* stop_grace_period, default CP_STOP_GRACE_MS */
	struct strvec gpus; /* raw gpus:/device requests; used by docker */
	char *network_mode;   /* compose's; the local runtime honours "host" */
	char *container_name; /* another name the stage resolves by */
	struct stage_limits limits;
	struct stage_security security;
	struct stage_lifecycle lifecycle;
	/* On the local runtime, what the build: Dockerfile gave the stage
	 * (spec_image.h); NULL otherwise. */
	struct stage_image *image_cfg;
	/* x-cpipe: {node_selector: {...}, resources: {cpu, memory}}: read by
	 * the kubernetes runtime (nodeSelector; requests = limits). */
	struct kvvec x_node_selector;
	struct kvvec x_resources;
};

/* Longest stage name: logs are "<name>.log" (and ".log.tmp.<pid>" while
 * written) in a directory, and a file name has at most 255 bytes. */
#define SPEC_STAGE_NAME_MAX 200

struct pipeline {
	char *name;    /* project name: -p, COMPOSE_PROJECT_NAME, name:, the dir's basename */
	bool name_chosen; /* by -p or COMPOSE_PROJECT_NAME: its state is its own */
	char *runtime; /* runtime: from the spec, NULL if absent */
	char *remote;  /* x-cpipe: {remote: URL}, NULL if absent */
	/* x-cpipe: the kubernetes runtime's namespace (default cpipe-<name>),
	 * storage_class and volume_size of its claims, and helper_image (the
	 * image of the pods that read volumes back: needs sh, tar, base64);
	 * NULL when absent. */
	char *x_namespace, *x_storage_class, *x_volume_size, *x_helper_image;
	char *dir;     /* absolute project directory (of the first spec file) */
	struct strvec files; /* absolute paths of the spec files, in order */
	struct volume *volumes;
	size_t nvolumes;
	struct stage *stages; /* in spec order */
	size_t nstages;
	/* Stage indices sorted by name (nstages of them) once the loader has
	 * named every stage, so lookups by name are binary searches. */
	size_t *stage_by_name;
	/* The file names as shown in messages; every cp_mark.file above lends
	 * from here. */
	struct strvec mark_files;
	/* Secret values the spec uses (see redact.h): of secret-named
	 * variables interpolated, environment entries and build args, of
	 * top-level secrets:, and passwords of URLs in commands and values. */
	struct redactor secrets;
	/* "file:line:col: ..." about keys accepted but not honoured, one per
	 * key, for the CLI to print (cli_load). */
	struct strvec warnings;
	/* "Dockerfile:line: stage \"x\": ..." about what the local runtime
	 * does not reproduce of an image (spec_image_apply); the CLI says them
	 * on the commands that run or show a stage's config, not on every one. */
	struct strvec image_warnings;
};

struct spec_options {
	const char *const *files; /* -f files; none = discover */
	size_t nfiles;
	const char *dir;          /* -C DIR; NULL = cwd */
	const char *const *env;   /* NULL-terminated KEY=VALUE; NULL = environ */
	const struct kvvec *sets; /* --set "stage.param" = value */
	const char *project_name; /* -p; NULL = COMPOSE_PROJECT_NAME, name:, the dir's name */
	const char *const *env_files; /* --env-file, in order; none = <project dir>/.env */
	size_t nenv_files;
	struct kvvec *env_out; /* when set, gets the interpolation environment */
	bool no_warnings;      /* say nothing of unset variables (another project's spec) */
};

/* Loads, interpolates, merges and validates the spec. On error `err` holds
 * "file:line:col: stage \"x\": ..." with a suggestion where one fits, and
 * err->code is EXIT_USAGE. Caller frees *out with pipeline_free. */
int spec_load(struct pipeline **out, const struct spec_options *opts, struct cp_error *err);
void pipeline_free(struct pipeline *p);
/* Frees what struct stage's limits, security and lifecycle hold
 * (spec_compose.c; pipeline_free calls it). */
void stage_compose_free(struct stage *st);

/* As spec_load, from YAML in memory (tests, fuzzing): `display_name` names
 * it in messages and, resolved against the project dir (opts->dir, else
 * the cwd; opts may be NULL), becomes files[0]. opts->files is ignored;
 * `.env`, env_file and bind paths are read relative to the project dir. */
int spec_load_string(struct pipeline **out, const char *display_name, const char *yaml,
		     size_t len, const struct spec_options *opts, struct cp_error *err);

/* The spec file names tried, in order, when no -f is given. */
extern const char *const spec_default_files[];
extern const size_t spec_ndefault_files;

/* Lends the stage or volume named `name`, or NULL. Stages are found in
 * O(log n) once the loader has indexed them. */
const struct stage *pipeline_stage(const struct pipeline *p, const char *name);
/* The index in p->stages of the stage named `name`, or -1. */
long pipeline_stage_index(const struct pipeline *p, const char *name);
/* Sorts the stage names into p->stage_by_name (the loader calls it once
 * every stage is named). */
void pipeline_index_stages(struct pipeline *p);
const struct volume *pipeline_volume(const struct pipeline *p, const char *name);

/* Fills err with "unknown stage \"x\" (did you mean \"y\"?)" and returns -1. */
int pipeline_unknown_stage(const struct pipeline *p, const char *name, struct cp_error *err);

/* Splits a command string as a POSIX shell would split words (quotes,
 * backslashes; no expansion). */
int shell_split(struct strvec *out, const char *s, struct cp_error *err);

#endif
