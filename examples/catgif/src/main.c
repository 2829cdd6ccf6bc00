/* catgif: a Fashion-MNIST train -> evaluate -> serve -> infer pipeline. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "util.h"

static const struct command {
	const char *name;
	int (*handler)(int argc, char **argv);
	const char *summary;
} commands[] = {
    {"prepare", cmd_prepare, "validate the IDX files and write train.bin / test.bin"},
    {"train", cmd_train, "train (or resume) the MLP; Hogwild with --procs N"},
    {"evaluate", cmd_evaluate, "test-set accuracy, per-class accuracy, confusion matrix"},
    {"serve", cmd_serve, "HTTP server: /healthz, /info, POST /predict"},
    {"infer", cmd_infer, "send test images to a server, save them as GIFs"},
    {"mkfixture", cmd_mkfixture, "write a small IDX subset for tests"},
};

int usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "catgif %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	return EXIT_INPUT;
}

static void print_usage(FILE *f)
{
	fprintf(f, "usage: catgif COMMAND [OPTIONS]   (catgif COMMAND --help for options)\n\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nexit codes: 0 ok, 1 failure, 2 bad usage or bad input\n");
}

/* SIGINT / SIGTERM end a job at once: every output is written atomically,
 * so nothing half-written is left under its final name. A handler (rather
 * than the default action) also makes them work when catgif is PID 1 in a
 * container. serve blocks both and waits for them itself. */
static void on_stop(int sig)
{
	_exit(128 + sig);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	if (argc < 2) {
		print_usage(stderr);
		return EXIT_INPUT;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		print_usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].handler(argc - 1, argv + 1);
	fprintf(stderr, "catgif: unknown command \"%s\"\n", argv[1]);
	print_usage(stderr);
	return EXIT_INPUT;
}
