#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "opts.h"

enum { G_FILE = 256, G_DIR, G_RUNTIME, G_JSON, G_QUIET, G_HELP };

const struct cli_opt cli_global_opts[] = {
	{"file", 'f', "FILE", "the spec file; repeat to merge overrides (default cpipe.yml)", G_FILE},
	{"project-directory", 'C', "DIR", "the project's directory (default: the current one)", G_DIR},
	{"runtime", 0, "local|docker", "local or docker (default: CPIPE_RUNTIME, the spec's runtime:)",
	 G_RUNTIME},
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
	{"profile", 0, "NAME", "enable the stages of profile NAME (repeatable, or a,b)", 'p'}

static const struct cli_opt run_opts[] = {
	RUN_OPTS,
	{"keep-serving", 0, NULL, "leave the services this run started running", 'K'},
	{"rm", 0, NULL, "accepted for compose's sake; a no-op: cpipe keeps no stopped containers",
	 'r'},
	{0},
};

static const struct cli_opt up_opts[] = {
	RUN_OPTS,
	{"detach", 'd', NULL, "accepted for compose's sake; a no-op: up returns once healthy", 'D'},
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
	{0},
};

static const struct cli_opt graph_opts[] = {
	{"format", 0, "dot|mermaid", "the output format (default dot)", 'F'},
	{0},
};

static const struct cli_opt volume_opts[] = {
	{"all", 'a', NULL, "prune: also the volumes the spec still declares", 'a'},
	{0},
};

static const struct cli_opt metrics_opts[] = {
	{"diff", 0, "RUN|REV", "compare with another run, or the run that made git REV's lock",
	 'd'},
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

static const struct cli_opt help_opts[] = {
	{"man", 0, NULL, "print the commands and their options as roff, for cpipe(1)", 'M'},
	{0},
};

static const struct cli_opt no_opts[] = {{0}};

static const struct cli_verb verbs[] = {
	{"run", "[STAGE...]", run_opts},
	{"status", "[STAGE...]", status_opts},
	{"verify", "[STAGE...]", verify_opts},
	{"build", "[STAGE...]", no_opts},
	{"up", "[SERVICE...]", up_opts},
	{"down", "", down_opts},
	{"ps", "", no_opts},
	{"logs", "[STAGE]", logs_opts},
	{"config", "", config_opts},
	{"graph", "", graph_opts},
	{"volume", "ls | inspect VOLUME... | rm VOLUME... | prune", volume_opts},
	{"runs", "", no_opts},
	{"show", "RUN", no_opts},
	{"lineage", "VOLUME:PATH|DIGEST", no_opts},
	{"prov", "RUN", no_opts},
	{"metrics", "[RUN]", metrics_opts},
	{"checkout", "RUN|REV", no_opts},
	{"gc", "", gc_opts},
	{"completion", "bash|zsh|fish", no_opts},
	{"version", "", no_opts},
	{"help", "[COMMAND]", help_opts},
};

const struct cli_verb *cli_verb_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
}

static void print_opts(FILE *out, const struct cli_opt *o, const struct cli_opt *shadow)
{
	for (; o && o->name; o++) {
		char letter = o->letter;
		for (const struct cli_opt *s = shadow; letter && s && s->name; s++)
			if (s->letter == letter)
				letter = 0; /* the verb's own -X wins after the verb */
		char left[64];
		snprintf(left, sizeof(left), "%c%c%c --%s%s%s", letter ? '-' : ' ',
			 letter ? letter : ' ', letter ? ',' : ' ', o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		if (strlen(left) > 30)
			fprintf(out, "  %s\n  %-30s %s\n", left, "", o->help);
		else
			fprintf(out, "  %-30s %s\n", left, o->help);
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
		case G_RUNTIME:
			c->runtime = optarg;
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
