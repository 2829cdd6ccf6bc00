/* The command line: global options, the command table, and the helpers every
 * verb uses to load the spec and open the runtime. No logic of its own. */
#ifndef CPIPE_CLI_H
#define CPIPE_CLI_H

#include <stdbool.h>

#include "../lib/error.h"
#include "../lib/defaults.h"
#include "../pipeline/spec.h"
#include "../stages/runtime.h"

struct cli {
	struct strvec files; /* -f */
	const char *dir;     /* -C */
	const char *runtime; /* --runtime */
	bool json;
	bool quiet;
	struct kvvec sets;   /* --set stage.param=value */
	const char *project; /* -p */
	struct strvec env_files; /* --env-file */
	struct kvvec env;    /* after cli_load: the spec's interpolation environment */
	bool no_warnings;    /* loading another project's spec (ls): no unset-variable warnings */
	bool spec_only;      /* config: the spec as written, without what a Dockerfile gives */
	bool image_warnings; /* run, up, build, config, verify: say what a Dockerfile's image
				has that the local runtime does not reproduce */
};

/* Loads the spec the global options point at; on the local runtime (see
 * cli_runtime) stages with build: also take their Dockerfile's config
 * (spec_image_apply) unless c->spec_only. */
int cli_load(struct pipeline **out, struct cli *c, struct cp_error *err);

/* The runtime to use: --runtime, CPIPE_RUNTIME, the spec's runtime:, local. */
int cli_runtime(const struct runtime_ops **ops_out, struct cli *c, const struct pipeline *p,
		struct cp_error *err);

/* <project dir>/.cpipe (.cpipe/projects/<name> for a project named by -p or
 * COMPOSE_PROJECT_NAME otherwise than the spec names it), created with a
 * .gitignore on first use; with `create` it also gets project.json, the
 * project's name and spec files, for `cpipe ls`. Caller owns. */
char *cli_state_dir(const struct pipeline *p, bool create, struct cp_error *err);

/* Parses the options of a verb with none of its own (only the global ones,
 * anywhere, and --help; see cli/opts.h). Returns -1 to go on, operands from
 * optind, or the exit code to return now: 0 after printing the help, 2 after
 * printing a usage error. */
int cli_parse_common(struct cli *c, int argc, char **argv);

/* Applies a global --json or -q that main() parsed before the verb (after
 * it, cli/opts.c applies them); returns 1 if `opt` was one. */
int cli_common_option(struct cli *c, int opt);

/* Records a --set STAGE.PARAM=VALUE for the loader. */
int cli_parse_set(struct cli *c, const char *arg, struct cp_error *err);

/* Prints an error the way every verb does and returns its exit code. */
int cli_fail(const struct cp_error *err);

int cmd_run(struct cli *c, int argc, char **argv);
int cmd_config(struct cli *c, int argc, char **argv);
int cmd_graph(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_volume(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_up(struct cli *c, int argc, char **argv);
int cmd_down(struct cli *c, int argc, char **argv);
int cmd_ps(struct cli *c, int argc, char **argv);
int cmd_logs(struct cli *c, int argc, char **argv);
/* cpipe verify [--rerun [STAGE...]] (cli/cmd_verify.c). */
int cmd_verify(struct cli *c, int argc, char **argv);
/* Compose's verbs on the services left up (cli/cmd_compose.c): exec STAGE
 * CMD..., stop, start, restart, kill [-s SIG], rm [-s], port STAGE PORT,
 * top, images; and ls, the projects under the current directory. */
int cmd_exec(struct cli *c, int argc, char **argv);
int cmd_stop(struct cli *c, int argc, char **argv);
int cmd_start(struct cli *c, int argc, char **argv);
int cmd_restart(struct cli *c, int argc, char **argv);
int cmd_kill(struct cli *c, int argc, char **argv);
int cmd_rm(struct cli *c, int argc, char **argv);
int cmd_port(struct cli *c, int argc, char **argv);
int cmd_top(struct cli *c, int argc, char **argv);
int cmd_images(struct cli *c, int argc, char **argv);
int cmd_ls(struct cli *c, int argc, char **argv);
/* cpipe completion bash|zsh|fish: the shell's completion script, generated
 * from the command and option tables (cli/cmd_completion.c). */
int cmd_completion(struct cli *c, int argc, char **argv);
/* cpipe build [STAGE...]: builds the images of stages with build: (cli/cmd_build.c). */
int cmd_build(struct cli *c, int argc, char **argv);

/* Looking back: show RUN, prov RUN (cli/cmd_history.c); runs, the
 * experiment table (cli/cmd_runs.c); lineage VOLUME:PATH|DIGEST
 * (cli/cmd_lineage.c); metrics [RUN] [--diff RUN|REV] and params [RUN] |
 * diff [A] [B] (cli/cmd_metrics.c); attest RUN | --verify FILE
 * (cli/cmd_attest.c). */
int cmd_runs(struct cli *c, int argc, char **argv);
int cmd_show(struct cli *c, int argc, char **argv);
int cmd_lineage(struct cli *c, int argc, char **argv);
int cmd_prov(struct cli *c, int argc, char **argv);
int cmd_metrics(struct cli *c, int argc, char **argv);
/* cpipe report [RUN] [-o FILE]: the run as one HTML page (cli/cmd_report.c). */
int cmd_report(struct cli *c, int argc, char **argv);
int cmd_params(struct cli *c, int argc, char **argv);
int cmd_attest(struct cli *c, int argc, char **argv);

/* The artifact store (cli/cmd_store.c): checkout RUN|REV; gc [--keep-runs N]
 * [--keep-rev REV...] [--dry-run]. */
int cmd_checkout(struct cli *c, int argc, char **argv);
int cmd_gc(struct cli *c, int argc, char **argv);

/* The remote (cli/cmd_remote.c): push [STAGE...]; pull [STAGE...]; both
 * take --remote URL. */
int cmd_push(struct cli *c, int argc, char **argv);
int cmd_pull(struct cli *c, int argc, char **argv);

/* Prints doc as indented JSON and a newline on stdout (every --json). */
void cli_print_json(const cJSON *doc);

#endif
