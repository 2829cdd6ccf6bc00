#include "error.h"

#include <errno.h>
#include <string.h>

static void copy_msg(struct cp_error *err, const char *s)
{
	size_t n = strlen(s);
	if (n >= sizeof(err->msg))
		n = sizeof(err->msg) - 1;
	memcpy(err->msg, s, n);
	err->msg[n] = '\0';
}

static int error_vset(struct cp_error *err, int code, const char *prefix, const char *suffix,
		      const char *fmt, va_list ap) CP_PRINTF(5, 0);
static int error_vset(struct cp_error *err, int code, const char *prefix, const char *suffix,
		      const char *fmt, va_list ap)
{
	if (!err)
		return -1;
	cleanup_free char *body = xvasprintf(fmt, ap);
	cleanup_free char *full = xasprintf("%s%s%s", prefix, body, suffix);
	copy_msg(err, full);
	err->code = code;
	return -1;
}

int cp_error_set(struct cp_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, code, "", "", fmt, ap);
	va_end(ap);
	return -1;
}

int cp_error_errno(struct cp_error *err, int code, const char *fmt, ...)
{
	char suffix[256];
	snprintf(suffix, sizeof(suffix), ": %s", strerror(errno));
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, code, "", suffix, fmt, ap);
	va_end(ap);
	return -1;
}

int cp_error_at(struct cp_error *err, int code, const struct cp_mark *mark, const char *fmt,
		...)
{
	char prefix[512] = "";
	if (mark && mark->file && mark->line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d:%d: ", mark->file, mark->line,
			 mark->col);
	else if (mark && mark->file)
		snprintf(prefix, sizeof(prefix), "%s: ", mark->file);
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, code, prefix, "", fmt, ap);
	va_end(ap);
	return -1;
}

int cp_error_prefix(struct cp_error *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	cleanup_free char *head = xvasprintf(fmt, ap);
	va_end(ap);
	cleanup_free char *full = xasprintf("%s: %s", head, err->msg);
	copy_msg(err, full);
	return -1;
}

int cp_error_recode(struct cp_error *err, int code)
{
	if (err)
		err->code = code;
	return -1;
}

void cp_error_clear(struct cp_error *err)
{
	err->code = 0;
	err->msg[0] = '\0';
}
