/* One error convention for all of cpipe: functions that can fail take
 * `struct cp_error *err` last and return -1 (or NULL) after filling it.
 * The message is one line; errors that come from input start with
 * "file:line:col: ". Set an error once, where it happens, with the exit
 * code it maps to as an explicit argument (as crun's libcrun_make_error);
 * nothing of an earlier error carries over. Callers propagate it unchanged,
 * prefix context with cp_error_prefix, or give it another meaning with
 * cp_error_recode. */
#ifndef CPIPE_LIB_ERROR_H
#define CPIPE_LIB_ERROR_H

#include "util.h"

/* Process exit codes (documented in README.md). */
enum {
	EXIT_OK = 0,
	EXIT_STAGE_FAILED = 1, /* a stage failed, or status --check found staleness */
	EXIT_USAGE = 2,        /* bad usage or bad spec; nothing was run */
	EXIT_RUNTIME = 3,      /* runtime unavailable (namespaces, docker daemon) */
	EXIT_BUSY = 4,         /* another cpipe holds the project lock */
	EXIT_INTERRUPTED = 130,
};

struct cp_error {
	int code; /* the exit code this error maps to, as given where it was made */
	char msg[2048];
};

/* A position in an input file; `file` is lent by whoever loaded it. */
struct cp_mark {
	const char *file;
	int line; /* 1-based; 0 = unknown */
	int col;  /* 1-based */
};

/* Makes the error: exit code `code` (EXIT_*), message from fmt. Returns -1. */
int cp_error_set(struct cp_error *err, int code, const char *fmt, ...) CP_PRINTF(3, 4);
/* As cp_error_set, appending ": strerror(errno)". */
int cp_error_errno(struct cp_error *err, int code, const char *fmt, ...) CP_PRINTF(3, 4);
/* As cp_error_set, prefixed with "file:line:col: " when mark is known. */
int cp_error_at(struct cp_error *err, int code, const struct cp_mark *mark, const char *fmt, ...)
	CP_PRINTF(4, 5);
/* Gives an error made elsewhere the exit code it has for this caller (a
 * daemon's refusal is a failed stage to the executor). Returns -1. */
int cp_error_recode(struct cp_error *err, int code);
/* Prepends context to an existing message ("reading X: <old message>"). */
int cp_error_prefix(struct cp_error *err, const char *fmt, ...) CP_PRINTF(2, 3);
void cp_error_clear(struct cp_error *err);

#endif
