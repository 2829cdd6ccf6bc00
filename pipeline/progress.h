/* How a run shows itself while it goes: the executor tells this renderer
 * when a stage starts, prints a line, becomes healthy, is skipped or ends,
 * and the renderer writes it in one of three forms.
 *
 *   plain  every log line prefixed with its stage's name (coloured on a
 *          terminal unless NO_COLOR is set), cpipe's own notes on stderr;
 *   tty    the same lines, and below them a block of one status line per
 *          running stage (spinner, name, state, elapsed time, its last log
 *          line cut to the terminal's width), redrawn at most ten times a
 *          second and erased before anything else is written and at the
 *          end, so the terminal is left with the plain lines only;
 *   json   one JSON object per line per event (run, start, log, healthy,
 *          skip, restore, end, run_end, image), no colour.
 *
 * auto picks tty when the output is a terminal and TERM is not "dumb",
 * else plain. Single-threaded: the executor's thread only. */
#ifndef CPIPE_PIPELINE_PROGRESS_H
#define CPIPE_PIPELINE_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../lib/error.h"

enum progress_mode { PROGRESS_AUTO, PROGRESS_PLAIN, PROGRESS_TTY, PROGRESS_JSON };

/* "auto", "tty", "plain" or "json"; anything else fails with EXIT_USAGE
 * naming the accepted values. */
int progress_mode_parse(enum progress_mode *out, const char *name, struct cp_error *err);

struct progress;

struct redactor;

/* A renderer writing to `out` for `nstages` stages (addressed by index,
 * named by progress_stage), prefixes padded to `name_width`. `run_id` and
 * `secrets` (masked in what progress_partial shows; may be NULL) are lent
 * and must outlive it. Caller frees with progress_free. */
struct progress *progress_new(enum progress_mode mode, FILE *out, size_t nstages,
			      int name_width, const char *run_id,
			      const struct redactor *secrets);
/* Erases the status block, writes the json run_end event with `status`
 * (NULL: none) and frees. NULL is a no-op. */
void progress_free(struct progress *pr, const char *status);

/* Names stage `i` (lent; must outlive pr). */
void progress_stage(struct progress *pr, size_t i, const char *name);

/* Whether stages should get a pseudo-terminal: the output is a terminal
 * (or tty mode was asked for). Then *cols and *rows are the size their
 * terminal should have: the output's, less the log prefix. */
bool progress_pty(const struct progress *pr, unsigned short *cols, unsigned short *rows);

void progress_start(struct progress *pr, size_t i, bool service);
void progress_healthy(struct progress *pr, size_t i, double secs);
void progress_stopping(struct progress *pr, size_t i);
/* A job not run: up to date, or (`restored`) its outputs put back. */
void progress_skip(struct progress *pr, size_t i, bool restored);
/* Stage i ended: `state` is "done", "failed", "stopped" or "kept running";
 * `exit_code` < 0 when there is none. */
void progress_end(struct progress *pr, size_t i, const char *state, int exit_code, double secs);

/* Stage i's image is being made ready before it starts: `what` is
 * "building" or "pulling" (a string constant), its status line's state;
 * an "image" event with that state. */
void progress_image(struct progress *pr, size_t i, const char *what);
/* One line of that build's or pull's progress, already masked: after the
 * stage's prefix as its log lines are, or an "image" event with "line". */
void progress_image_line(struct progress *pr, size_t i, const char *line, size_t n);
/* The build or pull ended: an "image" event with `state` ("ready",
 * "failed" or "stopped") and its duration. No-op without progress_image. */
void progress_image_end(struct progress *pr, size_t i, const char *state);

/* One complete log line of stage i (stream 0 stdout, 1 stderr), already
 * masked. The caller calls progress_flush after a batch of lines. */
void progress_line(struct progress *pr, size_t i, int stream, const char *line, size_t n);
/* What stage i printed since its last newline (a progress bar redrawing
 * itself with \r): the status line shows it, secrets masked, and not
 * while its end could be the start of a secret or of a URL's password. */
void progress_partial(struct progress *pr, size_t i, const char *data, size_t n);
/* After a batch of lines: brings the status block back and flushes. */
void progress_flush(struct progress *pr);
/* One of cpipe's notes ("cpipe: MSG" on stderr), already masked. */
void progress_note(struct progress *pr, const char *msg);
/* A runtime's warning (`warning`) or notice, already masked, about stage
 * `stage` (NULL: the project): a "warning" or "notice" event in json mode,
 * else "cpipe: warning: MSG" or "cpipe: MSG" on stderr. */
void progress_runtime_note(struct progress *pr, bool warning, const char *stage,
			   const char *msg);
/* Erases the status block before someone else writes to the terminal; the
 * next progress_tick draws it again. */
void progress_hide(struct progress *pr);
/* Called on every turn of the executor's loop: redraws the block when it
 * is due (every 100 ms, or when it was erased). */
void progress_tick(struct progress *pr);

#endif
