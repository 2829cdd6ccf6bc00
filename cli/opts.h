/* Every verb's options, one table each, and the one parser the verbs share:
 * options go anywhere among the operands as compose accepts (the global
 * ones too), `--` ends them, -h/--help prints the verb's help. The help text
 * is derived from these tables and the command table's summaries. */
#ifndef CPIPE_CLI_OPTS_H
#define CPIPE_CLI_OPTS_H

#include <stdio.h>

#include "cli.h"

struct cli_opt {
	const char *name; /* long name, without the -- */
	char letter;      /* short letter, 0 = none */
	const char *arg;  /* the argument's name; NULL = takes none */
	const char *help; /* one line */
	int id;           /* what cli_getopt returns for it; a verb's ids are < 256 */
};

struct cli_verb {
	const char *name;
	const char *operands;       /* after [OPTIONS] in the usage line */
	const struct cli_opt *opts; /* ends with a zeroed entry */
	const char *exits;          /* the exit codes, when the verb's own; NULL = the usual */
};

/* The options every verb accepts, before or after the verb; zero-terminated. */
extern const struct cli_opt cli_global_opts[];

/* cli_getopt's results besides an option id and -1 (no more options). */
#define CLI_OPT_HELP (-2) /* help was printed: exit 0 */
#define CLI_OPT_BAD (-3)  /* a usage error was printed: exit 2 */

/* The option table of verb `name`, NULL if it has none. */
const struct cli_verb *cli_verb_find(const char *name);

/* The command table's one-line summary of verb `name`, NULL if no such verb
 * (cli/main.c). */
const char *cli_summary(const char *name);

/* The name of the command table's verb number i, in table order; NULL past
 * the last (cli/main.c). */
const char *cli_command_name(size_t i);

/* Prints cpipe(1)'s COMMANDS and GLOBAL OPTIONS sections as roff, from the
 * command and option tables (cli/cmd_completion.c). */
void cli_man_commands(FILE *out);

/* Like getopt_long over argv, argv[0] being the verb: returns the id of the
 * next option of the verb's table (its argument in optarg), -1 when the
 * options are done (operands from optind, permuted there), or CLI_OPT_HELP /
 * CLI_OPT_BAD after printing the help or the error. Global options are
 * applied to `c` and not returned. Reset optind to 0 before the first call. */
int cli_getopt(struct cli *c, int argc, char **argv);

/* The exit code for a cli_getopt result other than -1 or an id. */
int cli_opt_exit(int opt);

/* Prints verb `verb`'s usage line to stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *verb);

/* Prints verb `name`'s help: usage line, summary, options, global options. */
void cli_verb_help(FILE *out, const char *name);

#endif
