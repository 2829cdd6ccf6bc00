/* libarchive, loaded on first use (see dynlib.h): each function cpipe calls
 * forwards to the real one. Only what cpipe uses is here; a new call to
 * libarchive fails to link until it is added to the table below. */
#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "dynlib.h"

/* R: functions returning a value; V: returning nothing.
 * (return type, name, parameters, arguments) */
#define ARCHIVE_FUNCTIONS(R, V)                                                                   \
	V(void, archive_entry_copy_stat, (struct archive_entry * e, const struct stat *st), (e, st)) \
	V(void, archive_entry_free, (struct archive_entry * e), (e))                              \
	R(mode_t, archive_entry_mode, (struct archive_entry * e), (e))                             \
	R(time_t, archive_entry_mtime, (struct archive_entry * e), (e))                            \
	R(struct archive_entry *, archive_entry_new, (void), ())                                   \
	R(const char *, archive_entry_pathname, (struct archive_entry * e), (e))                   \
	V(void, archive_entry_set_filetype, (struct archive_entry * e, unsigned int t), (e, t))    \
	V(void, archive_entry_set_gid, (struct archive_entry * e, la_int64_t g), (e, g))           \
	V(void, archive_entry_set_nlink, (struct archive_entry * e, unsigned int n), (e, n))       \
	V(void, archive_entry_set_pathname, (struct archive_entry * e, const char *p), (e, p))     \
	V(void, archive_entry_set_perm, (struct archive_entry * e, mode_t m), (e, m))              \
	V(void, archive_entry_set_size, (struct archive_entry * e, la_int64_t n), (e, n))          \
	V(void, archive_entry_set_symlink, (struct archive_entry * e, const char *p), (e, p))      \
	V(void, archive_entry_set_uid, (struct archive_entry * e, la_int64_t u), (e, u))           \
	R(la_int64_t, archive_entry_size, (struct archive_entry * e), (e))                         \
	R(const char *, archive_entry_symlink, (struct archive_entry * e), (e))                    \
	R(const char *, archive_error_string, (struct archive * a), (a))                           \
	R(la_ssize_t, archive_read_data, (struct archive * a, void *buf, size_t n), (a, buf, n))  \
	R(int, archive_read_free, (struct archive * a), (a))                                       \
	R(struct archive *, archive_read_new, (void), ())                                          \
	R(int, archive_read_next_header, (struct archive * a, struct archive_entry * *e), (a, e)) \
	R(la_int64_t, archive_entry_uid, (struct archive_entry * e), (e))                          \
	R(int, archive_read_open_FILE, (struct archive * a, FILE *f), (a, f))                      \
	R(int, archive_read_open,                                                                  \
	  (struct archive * a, void *ud, archive_open_callback *o, archive_read_callback *r,       \
	   archive_close_callback *c),                                                             \
	  (a, ud, o, r, c))                                                                        \
	R(int, archive_read_support_format_tar, (struct archive * a), (a))                         \
	R(int, archive_write_close, (struct archive * a), (a))                                     \
	R(la_ssize_t, archive_write_data, (struct archive * a, const void *buf, size_t n),         \
	  (a, buf, n))                                                                             \
	R(int, archive_write_free, (struct archive * a), (a))                                      \
	R(int, archive_write_header, (struct archive * a, struct archive_entry * e), (a, e))      \
	R(struct archive *, archive_write_new, (void), ())                                         \
	R(int, archive_write_open_FILE, (struct archive * a, FILE *f), (a, f))                     \
	R(int, archive_write_open_memory, (struct archive * a, void *buf, size_t n, size_t *used),  \
	  (a, buf, n, used))                                                                       \
	R(int, archive_write_set_format_pax_restricted, (struct archive * a), (a))

#define POINTER(ret, name, params, args) ret(*name) params;
static struct {
	ARCHIVE_FUNCTIONS(POINTER, POINTER)
	void (*archive_set_error)(struct archive *a, int code, const char *fmt, ...);
} real;

static struct dynlib libarchive = {"libarchive.so.13", "libarchive13", NULL};
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define RESOLVE(ret, name, params, args) *(void **)&real.name = dynlib_sym(&libarchive, #name);
static void load(void)
{
	ARCHIVE_FUNCTIONS(RESOLVE, RESOLVE)
	*(void **)&real.archive_set_error = dynlib_sym(&libarchive, "archive_set_error");
}

ARCHIVE_FUNCTIONS(DYNLIB_FORWARD, DYNLIB_FORWARD_VOID)

/* Formatted here: libarchive has no va_list form to forward to. */
void archive_set_error(struct archive *a, int code, const char *fmt, ...)
{
	pthread_once(&once, load);
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	real.archive_set_error(a, code, "%s", msg);
}
