#include "progress.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../artifacts/redact.h"
#include "../artifacts/store.h"
#include "../lib/util.h"

#define REDRAW_MS 100
#define LAST_MAX 512

struct pstage {
	const char *name;
	const char *state; /* NULL: not running */
	const char *image_what; /* its image is being built or pulled: "building", "pulling" */
	long long started_ms;
	char last[LAST_MAX]; /* its last line, printable characters only */
};

struct progress {
	enum progress_mode mode; /* resolved: never AUTO */
	FILE *out;
	bool term; /* out is a terminal */
	bool color;
	bool utf8;
	int name_width;
	const char *run_id;
	const struct redactor *secrets;
	struct pstage *st;
	size_t n;
	int shown;       /* lines of the status block on the screen */
	bool bring_back; /* erased for log lines: redraw at the flush */
	long long drawn_ms;
};

static cJSON *event(struct progress *pr, const char *type, size_t i);
static void emit(struct progress *pr, cJSON *e, bool flush);

int progress_mode_parse(enum progress_mode *out, const char *name, struct cp_error *err)
{
	static const struct {
		const char *name;
		enum progress_mode mode;
	} modes[] = {{"auto", PROGRESS_AUTO}, {"tty", PROGRESS_TTY}, {"plain", PROGRESS_PLAIN},
		     {"json", PROGRESS_JSON}};
	for (size_t i = 0; i < ARRAY_LEN(modes); i++)
		if (strcmp(name, modes[i].name) == 0) {
			*out = modes[i].mode;
			return 0;
		}
	return cp_error_set(err, EXIT_USAGE, "--progress %s: expected auto, tty, plain or json",
			    name);
}

static bool env_set(const char *name)
{
	const char *v = getenv(name);
	return v && *v;
}

/* The first of LC_ALL, LC_CTYPE, LANG that is set says the charset. */
static bool locale_utf8(void)
{
	const char *names[] = {"LC_ALL", "LC_CTYPE", "LANG"};
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		const char *v = getenv(names[i]);
		if (v && *v)
			return strcasestr(v, "utf-8") || strcasestr(v, "utf8");
	}
	return false;
}

struct progress *progress_new(enum progress_mode mode, FILE *out, size_t nstages,
			      int name_width, const char *run_id,
			      const struct redactor *secrets)
{
	struct progress *pr = xcalloc(1, sizeof(*pr));
	pr->out = out;
	pr->term = isatty(fileno(out));
	if (mode == PROGRESS_AUTO) {
		const char *term = getenv("TERM");
		mode = pr->term && term && *term && strcmp(term, "dumb") != 0 ? PROGRESS_TTY
									       : PROGRESS_PLAIN;
	}
	pr->mode = mode;
	/* https://no-color.org: set and not empty means no colour. */
	pr->color = mode != PROGRESS_JSON && (pr->term || mode == PROGRESS_TTY) &&
		    !env_set("NO_COLOR");
	pr->utf8 = locale_utf8();
	pr->name_width = name_width;
	pr->run_id = run_id;
	pr->secrets = secrets;
	pr->n = nstages;
	pr->st = xcalloc(nstages ? nstages : 1, sizeof(*pr->st));
	if (mode == PROGRESS_JSON)
		emit(pr, event(pr, "run", (size_t)-1), true);
	return pr;
}

void progress_stage(struct progress *pr, size_t i, const char *name)
{
	pr->st[i].name = name;
}

/* ---- json events ---------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at p (n bytes left), 0 if none. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return c ? 1 : 0;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	unsigned cp = c & (0x3fu >> (len - 1));
	for (size_t k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[k] & 0x3f);
	}
	return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : len;
}

/* `n` bytes as a valid UTF-8 string: a bad byte (or NUL) becomes U+FFFD,
 * so that every event is valid JSON text. Caller frees. */
static char *valid_utf8(const char *s, size_t n)
{
	struct strbuf sb = STRBUF_INIT;
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		size_t len = utf8_seq(p, (size_t)(end - p));
		if (len) {
			sb_add(&sb, p, len);
			p += len;
		} else {
			sb_adds(&sb, "\xef\xbf\xbd");
			p++;
		}
	}
	return sb_detach(&sb);
}

static cJSON *event(struct progress *pr, const char *type, size_t i)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "event", type);
	cleanup_free char *now = iso_time(realtime_ms());
	cJSON_AddStringToObject(e, "time", now);
	cJSON_AddStringToObject(e, "run", pr->run_id ? pr->run_id : "");
	if (i != (size_t)-1)
		cJSON_AddStringToObject(e, "stage", pr->st[i].name);
	return e;
}

static void emit(struct progress *pr, cJSON *e, bool flush)
{
	char *text = cJSON_PrintUnformatted(e);
	fputs(text, pr->out);
	fputc('\n', pr->out);
	free(text);
	cJSON_Delete(e);
	if (flush)
		fflush(pr->out);
}

/* ---- the status block ------------------------------------------------------ */

/* Skips the escape sequence whose ESC is just before p: CSI (parameters
 * up to a final byte @..~), OSC (up to BEL or ST), or one character. */
static const char *skip_escape(const char *p, const char *end)
{
	if (p == end)
		return p;
	if (*p == '[') {
		for (p++; p < end && !(*p >= 0x40 && *p <= 0x7e); p++)
			;
		return p < end ? p + 1 : p;
	}
	if (*p == ']') {
		for (p++; p < end; p++) {
			if (*p == '\a')
				return p + 1;
			if (*p == 0x1b)
				return p + 1 < end ? p + 2 : end;
		}
		return p;
	}
	return p + 1;
}

/* Copies `s` into dst (cap bytes, NUL included) without control
 * characters, escape sequences (a stage's own colours) or bad UTF-8, tabs
 * as spaces; of text redrawn with \r, only the last part. */
static void clean_copy(char *dst, size_t cap, const char *s, size_t n)
{
	const char *p = s, *end = s + n;
	for (const char *q = s; q + 1 < end; q++)
		if (*q == '\r')
			p = q + 1;
	size_t o = 0;
	while (p < end) {
		unsigned char c = (unsigned char)*p;
		if (c == 0x1b) {
			p = skip_escape(p + 1, end);
			continue;
		}
		size_t len = utf8_seq((const unsigned char *)p, (size_t)(end - p));
		if (len == 0 || (c != '\t' && (c < 0x20 || c == 0x7f))) {
			p++;
			continue;
		}
		if (o + len >= cap)
			break;
		memcpy(dst + o, p, len);
		if (c == '\t')
			dst[o] = ' ';
		o += len;
		p += len;
	}
	dst[o] = '\0';
}

/* Appends at most `cols` columns of UTF-8 text (one column a character). */
static void add_cols(struct strbuf *sb, const char *s, int cols)
{
	const char *p = s;
	if (cols <= 0)
		return;
	for (int c = 0; *p; p++)
		if (((unsigned char)*p & 0xc0) != 0x80 && c++ == cols)
			break;
	sb_add(sb, s, (size_t)(p - s));
}

static int term_size(const struct progress *pr, int *rows)
{
	struct winsize ws = {0};
	if (ioctl(fileno(pr->out), TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0) {
		ws.ws_col = 80;
		ws.ws_row = 24;
	}
	if (rows)
		*rows = ws.ws_row ? ws.ws_row : 24;
	return ws.ws_col;
}

static void add_elapsed(struct strbuf *sb, long long ms)
{
	char buf[32];
	long long s = ms / 1000;
	if (s < 60)
		snprintf(buf, sizeof(buf), "%.1fs", (double)ms / 1000.0);
	else if (s < 3600)
		snprintf(buf, sizeof(buf), "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(buf, sizeof(buf), "%lldh%02lldm", s / 3600, s / 60 % 60);
	sb_addf(sb, "%7s", buf);
}

static void erase(struct progress *pr, struct strbuf *sb)
{
	if (!pr->shown)
		return;
	/* The cursor ends the block's last line: back to its first, clear below. */
	sb_addc(sb, '\r');
	if (pr->shown > 1)
		sb_addf(sb, "\033[%dA", pr->shown - 1);
	sb_adds(sb, "\033[J");
	pr->shown = 0;
}

static void draw(struct progress *pr, struct strbuf *sb)
{
	static const int colors[] = {36, 33, 32, 35, 34, 31};
	static const char *const ascii[] = {"-", "\\", "|", "/"};
	static const char *const braille[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
	long long now = now_ms();
	int rows, cols = term_size(pr, &rows);
	size_t running = 0;
	for (size_t i = 0; i < pr->n; i++)
		running += pr->st[i].state != NULL;
	/* Never taller than the screen, or erasing could not climb back. */
	size_t room = rows > 2 ? (size_t)rows - 1 : 1;
	size_t lines = 0;
	for (size_t i = 0; i < pr->n; i++) {
		const struct pstage *st = &pr->st[i];
		if (!st->state)
			continue;
		if (lines)
			sb_addc(sb, '\n');
		if (lines + 1 == room && running > room) {
			sb_addf(sb, "  %s and %zu more running", pr->utf8 ? "…" : "...",
				running - lines);
			lines++;
			break;
		}
		size_t frame = (size_t)(now / REDRAW_MS);
		const char *spin = pr->utf8 ? braille[frame % ARRAY_LEN(braille)]
					    : ascii[frame % ARRAY_LEN(ascii)];
		struct strbuf line = STRBUF_INIT;
		sb_addf(&line, "%-*s  %-8s ", pr->name_width, st->name, st->state);
		add_elapsed(&line, now - st->started_ms);
		if (st->last[0])
			sb_addf(&line, "  %s", st->last);
		/* Spinner and space take two columns; one spare keeps the
		 * terminal from wrapping at the last column. */
		int avail = cols > 3 ? cols - 3 : 0;
		sb_addf(sb, "%s ", spin);
		if (pr->color) {
			/* The name in the stage's colour, as its log prefix. */
			int w = pr->name_width < avail ? pr->name_width : avail;
			sb_addf(sb, "\033[%dm", colors[i % ARRAY_LEN(colors)]);
			add_cols(sb, line.buf, w);
			sb_adds(sb, "\033[0m");
			if (avail > w)
				add_cols(sb, line.buf + w, avail - w);
		} else {
			add_cols(sb, sb_str(&line), avail);
		}
		sb_free(&line);
		lines++;
	}
	pr->shown = (int)lines;
	pr->drawn_ms = now;
}

static void write_sb(struct progress *pr, struct strbuf *sb)
{
	if (sb->len)
		fwrite(sb->buf, 1, sb->len, pr->out);
	sb_free(sb);
}

static bool any_running(const struct progress *pr)
{
	for (size_t i = 0; i < pr->n; i++)
		if (pr->st[i].state)
			return true;
	return false;
}

void progress_tick(struct progress *pr)
{
	if (pr->mode != PROGRESS_TTY)
		return;
	bool want = any_running(pr);
	if (!want && !pr->shown)
		return;
	if (want && pr->shown && now_ms() - pr->drawn_ms < REDRAW_MS)
		return;
	struct strbuf sb = STRBUF_INIT;
	erase(pr, &sb);
	if (want)
		draw(pr, &sb);
	write_sb(pr, &sb);
	fflush(pr->out);
}

void progress_hide(struct progress *pr)
{
	if (pr->mode != PROGRESS_TTY || !pr->shown)
		return;
	struct strbuf sb = STRBUF_INIT;
	erase(pr, &sb);
	write_sb(pr, &sb);
	fflush(pr->out);
}

/* ---- events ----------------------------------------------------------------- */

bool progress_pty(const struct progress *pr, unsigned short *cols, unsigned short *rows)
{
	if (!pr->term && pr->mode != PROGRESS_TTY)
		return false;
	int r, c = term_size(pr, &r);
	/* What the stage prints is shown after "name | ". */
	c -= pr->name_width + 3;
	*cols = (unsigned short)(c < 20 ? 20 : c);
	*rows = (unsigned short)r;
	return true;
}

void progress_start(struct progress *pr, size_t i, bool service)
{
	struct pstage *st = &pr->st[i];
	st->state = service ? "starting" : "running";
	st->started_ms = now_ms();
	st->last[0] = '\0';
	if (pr->mode == PROGRESS_JSON) {
		cJSON *e = event(pr, "start", i);
		cJSON_AddBoolToObject(e, "service", service);
		emit(pr, e, true);
	}
}

void progress_healthy(struct progress *pr, size_t i, double secs)
{
	if (pr->st[i].state)
		pr->st[i].state = "healthy";
	if (pr->mode == PROGRESS_JSON) {
		cJSON *e = event(pr, "healthy", i);
		cJSON_AddNumberToObject(e, "after", secs);
		emit(pr, e, true);
	}
}

void progress_stopping(struct progress *pr, size_t i)
{
	if (pr->st[i].state)
		pr->st[i].state = "stopping";
}

void progress_skip(struct progress *pr, size_t i, bool restored)
{
	if (pr->mode == PROGRESS_JSON)
		emit(pr, event(pr, restored ? "restore" : "skip", i), true);
}

void progress_end(struct progress *pr, size_t i, const char *state, int exit_code, double secs)
{
	pr->st[i].state = NULL;
	if (pr->mode == PROGRESS_JSON) {
		cJSON *e = event(pr, "end", i);
		cJSON_AddStringToObject(e, "state", state);
		if (exit_code >= 0)
			cJSON_AddNumberToObject(e, "exit_code", exit_code);
		cJSON_AddNumberToObject(e, "duration", secs);
		emit(pr, e, true);
	}
}

/* A line after stage i's prefix (plain and tty). */
static void prefixed_line(struct progress *pr, size_t i, const char *line, size_t n);

/* A line of stage i: in json mode an event `type` with `key`: `value` and
 * the line, else after the stage's prefix. */
static void show_line(struct progress *pr, size_t i, const char *type, const char *key,
		      const char *value, const char *line, size_t n)
{
	if (pr->mode == PROGRESS_JSON) {
		cJSON *e = event(pr, type, i);
		cJSON_AddStringToObject(e, key, value);
		cleanup_free char *text = valid_utf8(line, n);
		cJSON_AddStringToObject(e, "line", text);
		emit(pr, e, false);
		return;
	}
	prefixed_line(pr, i, line, n);
}

void progress_line(struct progress *pr, size_t i, int stream, const char *line, size_t n)
{
	show_line(pr, i, "log", "stream", stream ? "stderr" : "stdout", line, n);
}

void progress_image(struct progress *pr, size_t i, const char *what)
{
	struct pstage *st = &pr->st[i];
	st->image_what = what;
	st->state = what;
	st->started_ms = now_ms();
	st->last[0] = '\0';
	if (pr->mode == PROGRESS_JSON) {
		cJSON *e = event(pr, "image", i);
		cJSON_AddStringToObject(e, "state", what);
		emit(pr, e, true);
	}
}

void progress_image_line(struct progress *pr, size_t i, const char *line, size_t n)
{
	const char *what = pr->st[i].image_what;
	show_line(pr, i, "image", "state", what ? what : "", line, n);
}

void progress_image_end(struct progress *pr, size_t i, const char *state)
{
	struct pstage *st = &pr->st[i];
	if (!st->image_what)
		return;
	if (pr->mode == PROGRESS_JSON) {
		cJSON *e = event(pr, "image", i);
		cJSON_AddStringToObject(e, "state", state);
		cJSON_AddNumberToObject(e, "duration",
					(double)(now_ms() - st->started_ms) / 1000.0);
		emit(pr, e, true);
	}
	st->image_what = NULL;
	st->state = NULL;
}

static void prefixed_line(struct progress *pr, size_t i, const char *line, size_t n)
{
	static const int colors[] = {36, 33, 32, 35, 34, 31};
	if (pr->mode == PROGRESS_TTY) {
		clean_copy(pr->st[i].last, sizeof(pr->st[i].last), line, n);
		if (pr->shown) {
			struct strbuf sb = STRBUF_INIT;
			erase(pr, &sb);
			write_sb(pr, &sb);
			pr->bring_back = true;
		}
	}
	if (pr->color)
		fprintf(pr->out, "\033[%dm%-*s |\033[0m ", colors[i % ARRAY_LEN(colors)],
			pr->name_width, pr->st[i].name);
	else
		fprintf(pr->out, "%-*s | ", pr->name_width, pr->st[i].name);
	fwrite(line, 1, n, pr->out);
	fputc('\n', pr->out);
}

/* Whether the end of s (n bytes) may be a secret or a URL's password
 * still being written, which masking cannot recognise yet. */
static bool unfinished_secret(const struct redactor *r, const char *s, size_t n)
{
	for (size_t k = 0; r && k < r->values.n; k++) {
		const char *v = r->values.v[k];
		size_t len = strlen(v);
		for (size_t j = 1; j < len && j <= n; j++)
			if (memcmp(s + n - j, v, j) == 0)
				return true;
	}
	const char *url = NULL;
	for (const char *p = s; (p = memmem(p, (size_t)(s + n - p), "://", 3)); p += 3)
		url = p + 3;
	if (!url)
		return false;
	for (const char *p = url; p < s + n; p++)
		if (*p == '@' || *p == '/' || *p == ' ' || *p == '\t')
			return false;
	return true; /* scheme://user:pass… with no '@' yet */
}

void progress_partial(struct progress *pr, size_t i, const char *data, size_t n)
{
	char text[LAST_MAX];
	if (pr->mode != PROGRESS_TTY || memchr(data, '\0', n) || unfinished_secret(pr->secrets, data, n))
		return;
	cleanup_free char *raw = xstrndup(data, n);
	cleanup_free char *masked = redactor_text(pr->secrets, raw);
	clean_copy(text, sizeof(text), masked, strlen(masked));
	if (text[0])
		memcpy(pr->st[i].last, text, sizeof(text));
}

void progress_flush(struct progress *pr)
{
	if (pr->bring_back && any_running(pr)) {
		struct strbuf sb = STRBUF_INIT;
		draw(pr, &sb);
		write_sb(pr, &sb);
	}
	pr->bring_back = false;
	fflush(pr->out);
}

void progress_note(struct progress *pr, const char *msg)
{
	progress_hide(pr);
	fflush(pr->out);
	fprintf(stderr, "cpipe: %s\n", msg);
}

void progress_runtime_note(struct progress *pr, bool warning, const char *stage,
			   const char *msg)
{
	if (pr->mode == PROGRESS_JSON) {
		size_t i = (size_t)-1;
		for (size_t k = 0; stage && k < pr->n; k++)
			if (pr->st[k].name && !strcmp(pr->st[k].name, stage))
				i = k;
		cJSON *e = event(pr, warning ? "warning" : "notice", i);
		cJSON_AddStringToObject(e, "message", msg);
		emit(pr, e, true);
		return;
	}
	progress_hide(pr);
	fflush(pr->out);
	fprintf(stderr, "cpipe: %s%s\n", warning ? "warning: " : "", msg);
}

void progress_free(struct progress *pr, const char *status)
{
	if (!pr)
		return;
	progress_hide(pr);
	if (pr->mode == PROGRESS_JSON && status) {
		cJSON *e = event(pr, "run_end", (size_t)-1);
		cJSON_AddStringToObject(e, "status", status);
		emit(pr, e, false);
	}
	fflush(pr->out);
	free(pr->st);
	free(pr);
}
