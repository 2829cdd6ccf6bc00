#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "../pipeline/spec_image.h"
#include "cli.h"
#include "../stages/kube_forward.h"
#include "../stages/netns.h"
#include "opts.h"

static int cmd_version(struct cli *c, int argc, char **argv);
static int cmd_help(struct cli *c, int argc, char **argv);

static const struct command {
	const char *name;
	int (*handler)(struct cli *c, int argc, char **argv);
	const char *summary;
} commands[] = {
	{"run", cmd_run, "run stages in dependency order"},
	{"status", cmd_status, "why each stage is fresh or stale"},
	{"verify", cmd_verify, "check the outputs against cpipe.lock, or whether rerunning reproduces them"},
	{"build", cmd_build, "build the images of stages with build: (docker runtime)"},
	{"up", cmd_up, "start services (and the jobs they need), return once healthy"},
	{"down", cmd_down, "stop what the project started (-v: also its volumes)"},
	{"ps", cmd_ps, "list the project's services: state, health, ports, uptime"},
	{"logs", cmd_logs, "print the logs of a running service or of a run"},
	{"exec", cmd_exec, "run a command in a running service, exiting with its exit code"},
	{"stop", cmd_stop, "stop services, keeping them for start"},
	{"start", cmd_start, "start stopped services again, from the spec"},
	{"restart", cmd_restart, "stop and start services"},
	{"kill", cmd_kill, "send a signal to running services (default SIGKILL)"},
	{"rm", cmd_rm, "forget stopped services (-s: stop them first)"},
	{"port", cmd_port, "print the host address a service publishes PORT on; 1 if none"},
	{"top", cmd_top, "list the processes of running services"},
	{"images", cmd_images, "list the images of the stages (with their IDs on docker)"},
	{"ls", cmd_ls, "list the projects with state here and below, or on the Docker daemon"},
	{"config", cmd_config, "print the resolved spec, secrets masked"},
	{"graph", cmd_graph, "print the stage graph as DOT or Mermaid"},
	{"export", cmd_export, "write the stages as Kubernetes manifests, with an apply script"},
	{"volume", cmd_volume, "manage the project's volumes: ls, inspect, rm, prune"},
	{"runs", cmd_runs, "the recorded runs, newest first, as an experiment table"},
	{"show", cmd_show, "one run in detail; RUN is an id, a prefix, latest or latest~N"},
	{"lineage", cmd_lineage, "what produced an artifact"},
	{"prov", cmd_prov, "W3C PROV-JSON of a run"},
	{"metrics", cmd_metrics, "metrics of a run, or how two runs differ"},
	{"report", cmd_report, "one run as a self-contained HTML page: graph, timeline, metrics, outputs"},
	{"params", cmd_params, "params of a run, or how two runs' params differ (params diff A B)"},
	{"attest", cmd_attest, "sign an in-toto SLSA provenance of a run's outputs, or verify one"},
	{"checkout", cmd_checkout, "put the outputs of a run or a git revision back into the volumes"},
	{"gc", cmd_gc, "remove stored objects that nothing refers to"},
	{"push", cmd_push, "upload the locked stages' outputs and run cache entries to the remote"},
	{"pull", cmd_pull, "download the locked stages' outputs from the remote and check them out"},
	{"completion", cmd_completion, "print a completion script for bash, zsh or fish"},
	{"version", cmd_version, "print cpipe's version"},
	{"help", cmd_help, "this overview, or a command's help: help COMMAND"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: cpipe [-f FILE]... [-C DIR] [-p NAME] [--env-file FILE]... "
		     "[--runtime " RUNTIME_CHOICES "] [--json] [-q] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nglobal options go before or after the command; cpipe COMMAND --help "
		     "or cpipe help COMMAND lists a command's options\n");
	fprintf(out, "\nexit codes: 0 ok, 1 a stage failed, 2 bad usage or spec, 3 runtime "
		     "unavailable, 4 project busy, 130 interrupted\n");
}

const char *cli_summary(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].summary;
	return NULL;
}

const char *cli_command_name(size_t i)
{
	return i < ARRAY_LEN(commands) ? commands[i].name : NULL;
}

static int unknown_command(const char *name)
{
	const char *names[ARRAY_LEN(commands)];
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		names[i] = commands[i].name;
	const char *near = suggest_nearest(name, names, ARRAY_LEN(commands));
	if (near)
		fprintf(stderr, "cpipe: unknown command \"%s\" (did you mean \"%s\"?)\n", name, near);
	else
		fprintf(stderr, "cpipe: unknown command \"%s\"; see cpipe help\n", name);
	return EXIT_USAGE;
}

static int cmd_version(struct cli *c, int argc, char **argv)
{
	int rc = argc > 0 ? cli_parse_common(c, argc, argv) : -1;
	if (rc >= 0)
		return rc;
	if (c->json)
		printf("{\"version\":\"%s\"}\n", CPIPE_VERSION);
	else
		printf("cpipe %s\n", CPIPE_VERSION);
	return EXIT_OK;
}

static int cmd_help(struct cli *c, int argc, char **argv)
{
	bool man = false;
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) == 'M')
		man = true;
	if (opt != -1)
		return cli_opt_exit(opt);
	if (man) {
		if (optind < argc)
			return cli_usage_error(argv[0]);
		cli_man_commands(stdout);
		return EXIT_OK;
	}
	if (optind >= argc) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc - optind > 1) {
		fprintf(stderr, "cpipe: help takes one command; see cpipe help\n");
		return EXIT_USAGE;
	}
	if (!cli_summary(argv[optind]))
		return unknown_command(argv[optind]);
	cli_verb_help(stdout, argv[optind]);
	return EXIT_OK;
}

int cli_fail(const struct cp_error *err)
{
	/* A URL's password is masked here too; the spec's other secret values
	 * are masked where the pipeline is known (exec.c). */
	cleanup_free char *msg = redactor_text(NULL, err->msg);
	fflush(stdout);
	fprintf(stderr, "cpipe: %s\n", msg);
	return err->code ? err->code : EXIT_USAGE;
}

int cli_common_option(struct cli *c, int opt)
{
	switch (opt) {
	case 'J':
		c->json = true;
		return 1;
	case 'q':
		c->quiet = true;
		return 1;
	default:
		return 0;
	}
}

int cli_parse_common(struct cli *c, int argc, char **argv)
{
	int opt = cli_getopt(c, argc, argv);
	if (opt == -1)
		return -1;
	/* The verb has options of its own, yet parses only the common ones. */
	assert(opt < 0);
	return cli_opt_exit(opt);
}

static const char *runtime_chosen(const struct cli *c, const struct pipeline *p)
{
	const char *name = c->runtime;
	if (!name || !*name)
		name = getenv("CPIPE_RUNTIME");
	if (!name || !*name)
		name = p->runtime;
	if (!name || !*name)
		name = "local";
	return name;
}

int cli_load(struct pipeline **out, struct cli *c, struct cp_error *err)
{
	struct spec_options o = {
		.files = (const char *const *)c->files.v,
		.nfiles = c->files.n,
		.dir = c->dir,
		.sets = &c->sets,
		.project_name = c->project,
		.env_files = (const char *const *)c->env_files.v,
		.nenv_files = c->env_files.n,
		.env_out = &c->env,
		.no_warnings = c->no_warnings,
	};
	if (spec_load(out, &o, err) < 0)
		return -1;
	if (!c->spec_only && strcmp(runtime_chosen(c, *out), "local") == 0 &&
	    spec_image_apply(*out, &c->env, err) < 0) {
		pipeline_free(*out);
		*out = NULL;
		return -1;
	}
	for (size_t i = 0; !c->no_warnings && i < (*out)->warnings.n; i++)
		fprintf(stderr, "cpipe: warning: %s\n", (*out)->warnings.v[i]);
	for (size_t i = 0; c->image_warnings && i < (*out)->image_warnings.n; i++)
		fprintf(stderr, "cpipe: warning: %s\n", (*out)->image_warnings.v[i]);
	return 0;
}

void cli_print_json(const cJSON *doc)
{
	char *text = cJSON_Print(doc);
	puts(text);
	free(text);
}

int cli_runtime(const struct runtime_ops **ops_out, struct cli *c, const struct pipeline *p,
		struct cp_error *err)
{
	const char *name = runtime_chosen(c, p);
	const struct runtime_ops *ops = runtime_find(name);
	if (!ops) {
		return cp_error_set(err, EXIT_USAGE, "unknown runtime \"%s\"; available: %s", name,
				    RUNTIME_CHOICES);
	}
	*ops_out = ops;
	return 0;
}

/* project.json: which project this state is of, for `cpipe ls`. Rewritten
 * only when it changed. */
static int write_project_info(const char *dir, const struct pipeline *p, struct cp_error *err)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", p->name);
	cJSON_AddStringToObject(o, "dir", p->dir);
	cJSON *files = cJSON_AddArrayToObject(o, "files");
	for (size_t i = 0; i < p->files.n; i++)
		cJSON_AddItemToArray(files, cJSON_CreateString(p->files.v[i]));
	char *text = cJSON_Print(o);
	cJSON_Delete(o);
	cleanup_free char *path = path_join(dir, "project.json");
	cleanup_free char *old = NULL;
	struct cp_error ignored = {0};
	int rc = 0;
	if (fs_read_file(&old, NULL, path, 1 << 20, &ignored) < 0 || strcmp(old, text) != 0)
		rc = fs_write_atomic(path, text, strlen(text), 0600, err);
	free(text);
	return rc;
}

char *cli_state_dir(const struct pipeline *p, bool create, struct cp_error *err)
{
	char *top = path_join(p->dir, ".cpipe");
	char *dir = p->name_chosen ? xasprintf("%s/projects/%s", top, p->name) : xstrdup(top);
	bool ok = fs_state_dir_check(top, err) == 0 && fs_state_dir_check(dir, err) == 0;
	struct stat lst;
	cleanup_free char *projects = path_join(top, "projects");
	if (ok && p->name_chosen && lstat(projects, &lst) == 0 && !S_ISDIR(lst.st_mode)) {
		cp_error_set(err, EXIT_USAGE,
			     "%s is not a directory (a symlink?); cpipe will not keep state "
			     "through it: remove it and run again",
			     projects);
		ok = false;
	}
	if (!ok || !create) {
		free(top);
		if (!ok) {
			free(dir);
			return NULL;
		}
		return dir;
	}
	/* Logs, records and caches may hold what a stage printed or read:
	 * the owner's alone, also in a project made by an older cpipe. */
	struct stat st;
	if (lstat(top, &st) == 0) {
		if (S_ISDIR(st.st_mode) && (st.st_mode & 077) && st.st_uid == geteuid())
			chmod(top, 0700);
	} else {
		cleanup_free char *ignore = path_join(top, ".gitignore");
		if (fs_mkdir_p(top, 0700, err) < 0 ||
		    fs_write_atomic(ignore, "*\n", 2, 0644, err) < 0)
			goto fail;
	}
	if (fs_mkdir_p(dir, 0700, err) < 0 || write_project_info(dir, p, err) < 0)
		goto fail;
	free(top);
	return dir;
fail:
	free(top);
	free(dir);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"file", required_argument, NULL, 'f'},
		{"project-directory", required_argument, NULL, 'C'},
		{"project-name", required_argument, NULL, 'p'},
		{"env-file", required_argument, NULL, 'E'},
		{"runtime", required_argument, NULL, 'R'},
		{"context", required_argument, NULL, 'K'},
		{"json", no_argument, NULL, 'J'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct cli c = {0};
	int opt;
	int rc;
	/* The local runtime's network holder is cpipe under another name. */
	if (argc > 0 && strcmp(argv[0], "cpipe-netns") == 0)
		return netns_holder_main(argc, argv);
	/* So is the kubernetes runtime's port forwarder. */
	if (argc > 0 && strcmp(argv[0], KUBE_FORWARD_NAME) == 0)
		return kube_forward_main(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt_long(argc, argv, "+f:C:p:qh", opts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			strvec_push(&c.files, optarg);
			break;
		case 'C':
			c.dir = optarg;
			break;
		case 'p':
			c.project = optarg;
			break;
		case 'E':
			strvec_push(&c.env_files, optarg);
			break;
		case 'R':
			c.runtime = optarg;
			break;
		case 'K':
			setenv("CPIPE_KUBE_CONTEXT", optarg, 1);
			break;
		case 'J':
		case 'q':
			cli_common_option(&c, opt);
			break;
		case 'h':
			usage(stdout);
			rc = EXIT_OK;
			goto out;
		case 'V':
			rc = cmd_version(&c, 0, NULL);
			goto out;
		default:
			usage(stderr);
			rc = EXIT_USAGE;
			goto out;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		rc = EXIT_USAGE;
		goto out;
	}
	const char *name = argv[optind];
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		if (strcmp(commands[i].name, name) == 0) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;
			optind = 0;
			rc = commands[i].handler(&c, sub_argc, sub_argv);
			goto out;
		}
	}
	rc = unknown_command(name);
out:
	strvec_free(&c.files);
	strvec_free(&c.env_files);
	kvvec_free(&c.sets);
	kvvec_free(&c.env);
	return rc;
}
