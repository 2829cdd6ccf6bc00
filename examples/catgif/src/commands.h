/* The subcommands of catgif: each parses its own options and returns the
 * process exit code (EXIT_OK, EXIT_FAIL, EXIT_INPUT). */
#ifndef CATGIF_COMMANDS_H
#define CATGIF_COMMANDS_H

int cmd_prepare(int argc, char **argv);
int cmd_mkfixture(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_infer(int argc, char **argv);

/* Prints "catgif: <cmd>: <msg>" and the usage hint; returns EXIT_INPUT. */
int usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
