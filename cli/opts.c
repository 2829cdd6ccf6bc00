#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"
#include "../stages/runtime.h"

enum { G_FILE = 256, G_DIR, G_RUNTIME, G_JSON, G_QUIET, G_HELP, G_PROJECT, G_ENV_FILE, G_CONTEXT };

const struct cli_opt cli_global_opts[] = {
	{"file", 'f', "FILE", "the spec file; repeat to merge overrides (default cpipe.yml)", G_FILE},
	{"project-directory", 'C', "DIR", "the project's directory (default: the current one)", G_DIR},
	{"project-name", 'p', "NAME",
	 "the project's name (default: COMPOSE_PROJECT_NAME, the spec's name:, the directory's)",
	 G_PROJECT},
	{"env-file", 0, "FILE", "read variables from FILE instead of .env (repeatable)", G_ENV_FILE},
	{"runtime", 0, RUNTIME_CHOICES, "where stages run (default: CPIPE_RUNTIME, the spec's runtime:)",
	 G_RUNTIME},
	{"context", 0, "NAME",
	 "the kubeconfig context of the kubernetes runtime (default: CPIPE_KUBE_CONTEXT, "
	 "current-context)",
	 G_CONTEXT},
	{"json", 0, NULL, "print JSON on stdout", G_JSON},
	{"quiet", 'q', NULL, "print less", G_QUIET},
	{"help", 'h', NULL, "print this help and exit", G_HELP},
	{0},
};

#define RUN_OPTS                                                                              \
	{"no-deps", 0, NULL, "run only the named stages, not what they depend on", 'n'},      \
	{"force", 0, NULL, "rerun the named jobs (none named: all selected) even if fresh", 'F'}, \
	{"force-all", 0, NULL, "rerun every selected job, upstream included, even if fresh",  \
	 'A'},                                                                                  \
	{"dry-run", 0, NULL, "say per stage run (why), restore, skip or service; run nothing", \
	 'd'},                                                                                  \
	{"jobs", 'j', "N", "run up to N stages at once (default 1)", 'j'},                    \
	{"set", 0, "STAGE.PARAM=VALUE", "override a param for this run (repeatable)", 's'},   \
	{"profile", 0, "NAME", "enable the stages of profile NAME (repeatable, or a,b)", 'p'},   \
	{"progress", 0, "auto|tty|plain|json",                                                \
	 "tty: a live line per running stage, plain: logs only, json: events (auto: tty on a " \
	 "terminal)",                                                                           \
	 'G'},                                                                                  \
	{"no-tty", 'T', NULL, "give the jobs pipes, not a terminal, even on one (as compose run -T)", 'T'}

static const struct cli_opt run_opts[] = {
	RUN_OPTS,
	{"pull", 0, NULL, "restore from the remote any stale job whose key it holds, before running it",
	 'P'},
	{"remote", 0, "URL", "the remote for --pull (default: CPIPE_REMOTE, the spec's x-cpipe.remote)",
	 'E'},
	{"keep-serving", 0, NULL, "leave the services this run started running", 'K'},
	{"name", 0, "NAME", "label the run (runs shows it; RUN operands accept it)", 'N'},
	{"rm", 0, NULL, "accepted for compose's sake; a no-op: cpipe keeps no stopped containers",
	 'r'},
	{"detach", 'd', NULL, "accepted for compose's sake; a no-op: run stays in the foreground",
	 'D'},
	{0},
};

static const struct cli_opt up_opts[] = {
	RUN_OPTS,
	{"detach", 'd', NULL, "accepted for compose's sake; a no-op: up returns once healthy", 'D'},
	{"wait", 0, NULL, "accepted for compose's sake; a no-op: up always waits for health", 'W'},
	{"build", 0, NULL, "accepted for compose's sake; a no-op: up builds what has build:",
	 'B'},
	{0},
};

static const struct cli_opt status_opts[] = {
	{"check", 0, NULL, "exit 1 if any shown stage is stale", 'c'},
	{"set", 0, "STAGE.PARAM=VALUE", "evaluate with a param overridden (repeatable)", 's'},
	{0},
};

static const struct cli_opt down_opts[] = {
	{"volumes", 'v', NULL, "also remove the project's volumes", 'v'},
	{0},
};

static const struct cli_opt logs_opts[] = {
	{"follow", 'f', NULL,
	 "keep printing: a service until it exits, a job of the running run until it ends, "
	 "without STAGE all that runs; with nothing running, print and exit",
	 'f'},
	{"run", 0, "ID", "the logs of run ID (default: a running service's, else the latest run)",
	 'r'},
	{0},
};

static const struct cli_opt config_opts[] = {
	{"no-redact", 0, NULL, "print secret values instead of masking them", 'N'},
	{"services", 0, NULL, "print the stage names, one a line", 'S'},
	{"volumes", 0, NULL, "print the volume names, one a line", 'V'},
	{"images", 0, NULL, "print the images of the stages that name one, one a line", 'I'},
	{"explain", 0, NULL, "say of each stage whether it is a job or a service, and why", 'E'},
	{0},
};

static const struct cli_opt graph_opts[] = {
	{"format", 0, "dot|mermaid", "the output format (default dot)", 'F'},
	{0},
};

static const struct cli_opt export_opts[] = {
	{"output", 'o', "DIR", "the directory to write (default ./kubernetes)", 'o'},
	{0},
};

static const struct cli_opt volume_opts[] = {
	{"all", 'a', NULL, "prune: also the volumes the spec still declares", 'a'},
	{0},
};

#define METRIC_FILTER_OPTS                                                                    \
	{"all", 'a', NULL, "every metric value, nested ones too (default: top-level scalars)",  \
	 'a'},                                                                                  \
	{"metric", 0, "GLOB", "only metrics whose path (or STAGE.PATH) matches (repeatable)", 'm'}

static const struct cli_opt metrics_opts[] = {
	{"diff", 0, "RUN|REV", "compare with another run, or the run that made git REV's lock",
	 'd'},
	METRIC_FILTER_OPTS,
	{0},
};

static const struct cli_opt show_opts[] = {
	METRIC_FILTER_OPTS,
	{0},
};

static const struct cli_opt runs_opts[] = {
	{"param", 0, "GLOB", "param columns (STAGE.PARAM) matching GLOB (default: those that differ)",
	 'P'},
	{"metric", 0, "GLOB", "metric columns matching GLOB (default: top-level numbers that differ)", 'm'},
	{"sort", 0, "[-]COLUMN", "sort by a column: a param, a metric, started, status... (- descending)",
	 'S'},
	{"csv", 0, NULL, "print CSV with every param and metric column", 'c'},
	{0},
};

static const struct cli_opt params_opts[] = {
	{"all", 'a', NULL, "diff: list unchanged params too", 'a'},
	{"param", 0, "GLOB", "only params (STAGE.PARAM) matching GLOB (repeatable)", 'P'},
	{0},
};

static const struct cli_opt attest_opts[] = {
	{"output", 'o', "FILE", "write the signed envelope to FILE (default: stdout)", 'o'},
	{"key", 0, "FILE", "Ed25519 private key, PEM (default: CPIPE_SIGNING_KEY, a file or PEM)",
	 'k'},
	{"verify", 0, "FILE", "check the envelope FILE: its signature and its subjects on disk", 'v'},
	{"pub", 0, "FILE", "with --verify: the Ed25519 public key, PEM", 'u'},
	{0},
};

static const struct cli_opt report_opts[] = {
	{"output", 'o', "FILE", "write the page to FILE (- prints it; default .cpipe/reports/RUN.html)",
	 'o'},
	{0},
};

static const struct cli_opt verify_opts[] = {
	{"rerun", 0, NULL,
	 "rerun the STAGEs (default: every locked job) on scratch copies; compare with cpipe.lock",
	 'r'},
	{0},
};

static const struct cli_opt gc_opts[] = {
	{"keep-runs", 0, "N", "keep what the last N runs refer to (default 10)", 'k'},
	{"keep-rev", 0, "REV", "keep what cpipe.lock at git revision REV refers to (repeatable)",
	 'R'},
	{"dry-run", 'n', NULL, "say what would be freed, remove nothing", 'n'},
	{0},
};

static const struct cli_opt remote_opts[] = {
	{"remote", 0, "URL", "a directory, http(s):// or s3:// URL (default: CPIPE_REMOTE, the "
	 "spec's x-cpipe.remote)", 'E'},
	{0},
};

static const struct cli_opt help_opts[] = {
	{"man", 0, NULL, "print the commands and their options as roff, for cpipe(1)", 'M'},
	{0},
};

static const struct cli_opt exec_opts[] = {
	{"no-tty", 'T', NULL, "accepted for compose's sake: no terminal is allocated anyway", 'T'},
	{0},
};

static const struct cli_opt kill_opts[] = {
	{"signal", 's', "SIG", "the signal, a name (TERM, SIGHUP) or a number (default KILL)", 's'},
	{0},
};

static const struct cli_opt rm_opts[] = {
	{"stop", 's', NULL, "stop running services first, then remove them", 's'},
	{"force", 'f', NULL, "accepted for compose's sake: rm asks nothing anyway", 'f'},
	{0},
};

static const struct cli_opt port_opts[] = {
	{"protocol", 0, "tcp|udp", "the protocol of PORT (default tcp)", 'P'},
	{0},
};

static const struct cli_opt no_opts[] = {{0}};

#define SVC_EXITS                                                                            \
	"0 ok (also with nothing to do), 1 the runtime refused, 2 bad usage or spec, 3 runtime " \
	"unavailable, 4 project busy"

static const struct cli_verb verbs[] = {
	{"run", "[STAGE...] | STAGE -- CMD [ARGS...]", run_opts,
	 "0 ok, 1 a stage (or the one-off CMD) failed, 2 bad usage or spec, 3 runtime unavailable, "
	 "4 project busy, 130 interrupted"},
	{"status", "[STAGE...]", status_opts, NULL},
	{"verify", "[STAGE...]", verify_opts, NULL},
	{"build", "[STAGE...]", no_opts, NULL},
	{"up", "[SERVICE...]", up_opts, NULL},
	{"down", "", down_opts, NULL},
	{"ps", "", no_opts, NULL},
	{"logs", "[STAGE]", logs_opts, NULL},
	{"exec", "STAGE CMD [ARGS...]", exec_opts,
	 "CMD's own (126/127: it cannot be run), 1 the service is not up, 2 bad usage or spec, "
	 "3 runtime unavailable"},
	{"stop", "[SERVICE...]", no_opts, SVC_EXITS},
	{"start", "[SERVICE...]", no_opts,
	 "0 ok (also with nothing stopped), 1 a service failed to start, 2 bad usage or spec, "
	 "3 runtime unavailable, 4 project busy"},
	{"restart", "[SERVICE...]", no_opts,
	 "0 ok, 1 a service failed to start, 2 bad usage or spec, 3 runtime unavailable, "
	 "4 project busy"},
	{"kill", "[SERVICE...]", kill_opts, SVC_EXITS},
	{"rm", "[SERVICE...]", rm_opts, SVC_EXITS},
	{"port", "SERVICE PORT[/PROTOCOL]", port_opts,
	 "0 printed, 1 the service is not up or does not publish PORT, 2 bad usage or spec"},
	{"top", "[SERVICE...]", no_opts, NULL},
	{"images", "[STAGE...]", no_opts, NULL},
	{"ls", "", no_opts, NULL},
	{"config", "", config_opts, NULL},
	{"graph", "", graph_opts, NULL},
	{"export", "kubernetes [STAGE...]", export_opts, NULL},
	{"volume", "ls | inspect VOLUME... | rm VOLUME... | prune", volume_opts, NULL},
	{"runs", "", runs_opts, NULL},
	{"show", "RUN", show_opts, NULL},
	{"lineage", "VOLUME:PATH|DIGEST", no_opts, NULL},
	{"prov", "RUN", no_opts, NULL},
	{"metrics", "[RUN]", metrics_opts, NULL},
	{"params", "[RUN] | diff [A] [B]", params_opts, NULL},
	{"attest", "RUN | --verify FILE --pub KEY", attest_opts, NULL},
	{"report", "[RUN]", report_opts, NULL},
	{"checkout", "RUN|REV", no_opts, NULL},
	{"gc", "", gc_opts, NULL},
	{"push", "[STAGE...]", remote_opts, NULL},
	{"pull", "[STAGE...]", remote_opts, NULL},
	{"completion", "bash|zsh|fish", no_opts, NULL},
	{"version", "", no_opts, NULL},
	{"help", "[COMMAND]", help_opts, NULL},
};

const struct cli_verb *cli_verb_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
}

static void opt_left(char *buf, size_t n, const struct cli_opt *o, const struct cli_opt *shadow)
{
	char letter = o->letter;
	for (const struct cli_opt *s = shadow; letter && s && s->name; s++)
		if (s->letter == letter)
			letter = 0; /* the verb's own -X wins after the verb */
	snprintf(buf, n, "%c%c%c --%s%s%s", letter ? '-' : ' ', letter ? letter : ' ',
		 letter ? ',' : ' ', o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

static void print_opts(FILE *out, const struct cli_opt *o, const struct cli_opt *shadow)
{
	char left[64];
	/* The column fits the table's options up to 36 characters. */
	int width = 30;
	for (const struct cli_opt *w = o; w && w->name; w++) {
		opt_left(left, sizeof(left), w, shadow);
		if ((int)strlen(left) >= width && strlen(left) < 36)
			width = (int)strlen(left) + 1;
	}
	for (; o && o->name; o++) {
		opt_left(left, sizeof(left), o, shadow);
		if ((int)strlen(left) > width)
			fprintf(out, "  %s\n  %-*s %s\n", left, width, "", o->help);
		else
			fprintf(out, "  %-*s %s\n", width, left, o->help);
	}
}

void cli_verb_help(FILE *out, const char *name)
{
	const struct cli_verb *v = cli_verb_find(name);
	const char *summary = cli_summary(name);
	const char *operands = v ? v->operands : "[ARGS...]";
	fprintf(out, "usage: cpipe %s [OPTIONS]%s%s\n\n", name, *operands ? " " : "", operands);
	if (summary)
		fprintf(out, "%s\n\n", summary);
	if (v && v->opts[0].name) {
		fprintf(out, "options:\n");
		print_opts(out, v->opts, NULL);
		fputc('\n', out);
	}
	fprintf(out, "global options (before or after the command; -- ends options):\n");
	print_opts(out, cli_global_opts, v ? v->opts : NULL);
	if (v && v->exits)
		fprintf(out, "\nexit codes: %s\n", v->exits);
}

/* Which table entry getopt's result `r` stands for. Long options carry
 * 1000 + index (the verb's) or 2000 + index (global); short ones their
 * letter, the verb's taking precedence. */
static const struct cli_opt *opt_of(int r, const struct cli_opt *vo)
{
	if (r >= 2000)
		return &cli_global_opts[r - 2000];
	if (r >= 1000)
		return &vo[r - 1000];
	for (const struct cli_opt *o = vo; o->name; o++)
		if (o->letter == r)
			return o;
	for (const struct cli_opt *o = cli_global_opts; o->name; o++)
		if (o->letter == r)
			return o;
	return NULL;
}

int cli_getopt(struct cli *c, int argc, char **argv)
{
	const struct cli_verb *v = cli_verb_find(argv[0]);
	const struct cli_opt *vo = v ? v->opts : no_opts;
	struct option lopts[64];
	char shorts[64] = ":"; /* ':' first: a missing argument is told from an unknown option */
	size_t n = 0, ns = 1;
	const struct cli_opt *tables[] = {vo, cli_global_opts};
	for (size_t t = 0; t < 2; t++) {
		for (size_t i = 0; tables[t][i].name; i++) {
			const struct cli_opt *o = &tables[t][i];
			if (n + 2 > ARRAY_LEN(lopts) || ns + 3 > sizeof(shorts))
				abort(); /* a table outgrew the arrays */
			lopts[n++] = (struct option){o->name, o->arg ? required_argument : no_argument,
						     NULL, (int)(1000 * (t + 1) + i)};
			if (o->letter && !strchr(shorts + 1, o->letter)) {
				shorts[ns++] = o->letter;
				if (o->arg)
					shorts[ns++] = ':';
			}
		}
	}
	lopts[n] = (struct option){0};
	shorts[ns] = '\0';
	opterr = 0;
	for (;;) {
		int r = getopt_long(argc, argv, shorts, lopts, NULL);
		if (r == -1)
			return -1;
		if (r == '?' || r == ':') {
			const char *bad = argv[optind - 1];
			char s[3] = {'-', (char)optopt, '\0'};
			/* A bad short option in a cluster (-qz) is optopt, not the word. */
			if (optopt && !str_has_prefix(bad, "--"))
				bad = s;
			if (r == '?' && optopt >= 1000) /* --force=1 */
				fprintf(stderr, "cpipe: option --%s of cpipe %s takes no argument; see "
						"cpipe %s --help\n", opt_of(optopt, vo)->name, argv[0], argv[0]);
			else if (r == '?')
				fprintf(stderr, "cpipe: unknown option %s for cpipe %s; see cpipe %s --help\n",
					bad, argv[0], argv[0]);
			else
				fprintf(stderr, "cpipe: option %s of cpipe %s needs an argument; see cpipe "
						"%s --help\n", bad, argv[0], argv[0]);
			return CLI_OPT_BAD;
		}
		const struct cli_opt *o = opt_of(r, vo);
		switch (o->id) {
		case G_FILE:
			strvec_push(&c->files, optarg);
			break;
		case G_DIR:
			c->dir = optarg;
			break;
		case G_PROJECT:
			c->project = optarg;
			break;
		case G_ENV_FILE:
			strvec_push(&c->env_files, optarg);
			break;
		case G_RUNTIME:
			c->runtime = optarg;
			break;
		case G_CONTEXT:
			/* The runtime reads it where it reads KUBECONFIG. */
			setenv("CPIPE_KUBE_CONTEXT", optarg, 1);
			break;
		case G_JSON:
			c->json = true;
			break;
		case G_QUIET:
			c->quiet = true;
			break;
		case G_HELP:
			cli_verb_help(stdout, argv[0]);
			return CLI_OPT_HELP;
		default:
			return o->id;
		}
	}
}

int cli_usage_error(const char *verb)
{
	const struct cli_verb *v = cli_verb_find(verb);
	const char *operands = v ? v->operands : "[ARGS...]";
	fprintf(stderr, "usage: cpipe %s [OPTIONS]%s%s; see cpipe %s --help\n", verb,
		*operands ? " " : "", operands, verb);
	return EXIT_USAGE;
}

int cli_opt_exit(int opt)
{
	return opt == CLI_OPT_HELP ? EXIT_OK : EXIT_USAGE;
}
