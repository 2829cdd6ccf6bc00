/* The run renderer: plain lines byte for byte, JSON events that are valid
 * UTF-8 whatever a stage printed, and the tty status block: drawn cut to
 * the width, free of the stage's own escape sequences, erased before a log
 * line and at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../artifacts/redact.h"
#include "../../pipeline/progress.h"

struct capture {
	FILE *f;
	char *buf;
	size_t len;
	size_t mark; /* what take() returned so far */
};

static struct progress *open_capture_masking(struct capture *c, enum progress_mode mode,
					     const struct redactor *secrets)
{
	c->mark = 0;
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
	struct progress *pr = progress_new(mode, c->f, 2, 5, "RUN1", secrets);
	progress_stage(pr, 0, "train");
	progress_stage(pr, 1, "eval");
	return pr;
}

static struct progress *open_capture(struct capture *c, enum progress_mode mode)
{
	return open_capture_masking(c, mode, NULL);
}

/* What was written since the last call, as a string the caller frees. */
static char *take(struct capture *c)
{
	fflush(c->f);
	char *s = strndup(c->buf + c->mark, c->len - c->mark);
	c->mark = c->len;
	return s;
}

static void close_capture(struct capture *c)
{
	fclose(c->f);
	free(c->buf);
}

static void plain_lines_are_prefixed_and_nothing_else(void **state)
{
	(void)state;
	setenv("NO_COLOR", "1", 1);
	struct capture c;
	struct progress *pr = open_capture(&c, PROGRESS_PLAIN);
	progress_start(pr, 0, false);
	progress_line(pr, 0, 0, "epoch 1", 7);
	progress_line(pr, 1, 1, "oops", 4);
	progress_tick(pr);
	progress_flush(pr);
	progress_end(pr, 0, "done", 0, 1.5);
	progress_free(pr, "succeeded");
	assert_string_equal(c.buf, "train | epoch 1\neval  | oops\n");
	close_capture(&c);
}

static void json_events_are_valid_utf8_lines(void **state)
{
	(void)state;
	struct capture c;
	struct progress *pr = open_capture(&c, PROGRESS_JSON);
	free(take(&c)); /* the run event */
	progress_start(pr, 0, false);
	char *start = take(&c);
	assert_non_null(strstr(start, "\"event\":\"start\""));
	assert_non_null(strstr(start, "\"stage\":\"train\""));
	assert_non_null(strstr(start, "\"run\":\"RUN1\""));
	free(start);
	/* A stray byte, a truncated sequence and a NUL. */
	progress_line(pr, 0, 1, "a\xff" "b\xe2\x82" "\0c", 7);
	progress_flush(pr);
	char *log = take(&c);
	assert_non_null(strstr(log, "\"stream\":\"stderr\""));
	assert_non_null(strstr(log, "\"line\":\"a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "c\""));
	assert_int_equal(log[strlen(log) - 1], '\n');
	free(log);
	progress_end(pr, 0, "failed", 3, 2.0);
	char *end = take(&c);
	assert_non_null(strstr(end, "\"state\":\"failed\",\"exit_code\":3,\"duration\":2"));
	free(end);
	progress_free(pr, "failed");
	assert_non_null(strstr(c.buf, "\"event\":\"run_end\""));
	assert_non_null(strstr(c.buf, "\"status\":\"failed\""));
	close_capture(&c);
}

/* The visible columns of s: UTF-8 characters, escape sequences not counted. */
static int columns(const char *s)
{
	int n = 0;
	for (const char *p = s; *p; p++) {
		if (*p == '\033') {
			while (*p && !(*p >= 0x40 && *p <= 0x7e && *p != '['))
				p++;
			continue;
		}
		n += ((unsigned char)*p & 0xc0) != 0x80;
	}
	return n;
}

static void tty_block_is_cut_cleaned_and_erased(void **state)
{
	(void)state;
	setenv("NO_COLOR", "1", 1);
	setenv("LC_ALL", "C", 1);
	struct capture c;
	struct progress *pr = open_capture(&c, PROGRESS_TTY);
	progress_start(pr, 0, false);
	progress_start(pr, 1, false);
	char line[400];
	snprintf(line, sizeof(line), "\033[1mbold\033[0m\tstep %0300d", 7);
	progress_line(pr, 0, 0, line, strlen(line));
	progress_partial(pr, 1, "10%\r50%", 7);
	free(take(&c));
	progress_tick(pr);
	char *block = take(&c);
	/* Two lines, no newline after the last; each within 80 columns less one. */
	char *nl = strchr(block, '\n');
	assert_non_null(nl);
	assert_null(strchr(nl + 1, '\n'));
	*nl = '\0';
	assert_true(columns(block) <= 79);
	assert_non_null(strstr(block, "train  running "));
	assert_non_null(strstr(block, "s  bold step 000"));
	assert_null(strchr(block, '\033'));
	assert_non_null(strstr(nl + 1, "eval   running "));
	assert_non_null(strstr(nl + 1, "s  50%"));
	free(block);
	/* A log line first erases the two lines, then the block comes back. */
	progress_line(pr, 1, 0, "done", 4);
	progress_flush(pr);
	char *again = take(&c);
	assert_memory_equal(again, "\r\033[1A\033[Jeval  | done\n", 21);
	assert_non_null(strstr(again + 21, "eval   running "));
	free(again);
	progress_end(pr, 0, "done", 0, 1.0);
	progress_end(pr, 1, "done", 0, 1.0);
	free(take(&c));
	progress_free(pr, "succeeded");
	char *last = take(&c);
	assert_string_equal(last, "\r\033[1A\033[J");
	free(last);
	close_capture(&c);
	unsetenv("LC_ALL");
}

/* The status line of stage 0 after `partial`, drawn. Caller frees. */
static char *status_after(struct progress *pr, struct capture *c, const char *partial)
{
	progress_partial(pr, 0, partial, strlen(partial));
	progress_hide(pr);
	free(take(c));
	progress_tick(pr);
	return take(c);
}

static void partial_lines_show_no_secret(void **state)
{
	(void)state;
	setenv("NO_COLOR", "1", 1);
	struct redactor secrets = {0};
	redactor_add(&secrets, "hunter22");
	struct capture c;
	struct progress *pr = open_capture_masking(&c, PROGRESS_TTY, &secrets);
	progress_start(pr, 0, false);
	char *s = status_after(pr, &c, "login as hunter22 ok");
	assert_non_null(strstr(s, "login as <redacted> ok"));
	free(s);
	/* Its start alone is not shown: the rest may follow. */
	s = status_after(pr, &c, "step 2 token hunt");
	assert_null(strstr(s, "hunt"));
	assert_non_null(strstr(s, "<redacted> ok"));
	free(s);
	/* Nor a URL whose '@' has not come yet. */
	s = status_after(pr, &c, "db postgres://u:se");
	assert_null(strstr(s, "postgres"));
	free(s);
	s = status_after(pr, &c, "db postgres://u:secretpw@db/x done");
	assert_non_null(strstr(s, "db postgres://u:<redacted>@db/x done"));
	free(s);
	progress_end(pr, 0, "done", 0, 1.0);
	progress_free(pr, NULL);
	close_capture(&c);
	redactor_free(&secrets);
}

static void bad_mode_names_the_choices(void **state)
{
	(void)state;
	enum progress_mode m = PROGRESS_PLAIN;
	struct cp_error err = {0};
	assert_int_equal(progress_mode_parse(&m, "json", &err), 0);
	assert_int_equal(m, PROGRESS_JSON);
	assert_int_equal(progress_mode_parse(&m, "fancy", &err), -1);
	assert_string_equal(err.msg, "--progress fancy: expected auto, tty, plain or json");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_lines_are_prefixed_and_nothing_else),
		cmocka_unit_test(json_events_are_valid_utf8_lines),
		cmocka_unit_test(tty_block_is_cut_cleaned_and_erased),
		cmocka_unit_test(partial_lines_show_no_secret),
		cmocka_unit_test(bad_mode_names_the_choices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
