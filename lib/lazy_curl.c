/* libcurl, loaded on first use (see dynlib.h): each function cpipe calls
 * forwards to the real one. Only what cpipe uses is here; a new call to
 * libcurl fails to link until it is added to the table below. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>

#include "dynlib.h"

#define CURL_FUNCTIONS(X)                                                                        \
	X(void, curl_easy_cleanup, (CURL * c))                                                   \
	X(char *, curl_easy_escape, (CURL * c, const char *s, int n))                            \
	X(CURLcode, curl_easy_getinfo, (CURL * c, CURLINFO info, ...))                           \
	X(CURL *, curl_easy_init, (void))                                                        \
	X(CURLcode, curl_easy_perform, (CURL * c))                                               \
	X(void, curl_easy_reset, (CURL * c))                                                     \
	X(CURLcode, curl_easy_setopt, (CURL * c, CURLoption o, ...))                             \
	X(const char *, curl_easy_strerror, (CURLcode rc))                                       \
	X(void, curl_free, (void *p))                                                            \
	X(CURLcode, curl_global_init, (long flags))                                              \
	X(CURLMcode, curl_multi_add_handle, (CURLM * m, CURL *c))                                \
	X(CURLMcode, curl_multi_cleanup, (CURLM * m))                                            \
	X(CURLMsg *, curl_multi_info_read, (CURLM * m, int *left))                               \
	X(CURLM *, curl_multi_init, (void))                                                      \
	X(CURLMcode, curl_multi_perform, (CURLM * m, int *running))                              \
	X(CURLMcode, curl_multi_poll,                                                            \
	  (CURLM * m, struct curl_waitfd *fds, unsigned int nfds, int timeout_ms, int *ret))     \
	X(CURLMcode, curl_multi_remove_handle, (CURLM * m, CURL *c))                             \
	X(CURLMcode, curl_multi_wakeup, (CURLM * m))                                             \
	X(struct curl_slist *, curl_slist_append, (struct curl_slist * l, const char *s))        \
	X(void, curl_slist_free_all, (struct curl_slist * l))                                    \
	X(CURLU *, curl_url, (void))                                                             \
	X(void, curl_url_cleanup, (CURLU * u))                                                   \
	X(CURLUcode, curl_url_get, (CURLU * u, CURLUPart what, char **part, unsigned int flags)) \
	X(CURLUcode, curl_url_set, (CURLU * u, CURLUPart what, const char *part, unsigned int flags))

#define POINTER(ret, name, params) ret(*name) params;
static struct {
	CURL_FUNCTIONS(POINTER)
} real;

static struct dynlib libcurl = {"libcurl.so.4", "libcurl4", NULL};
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define RESOLVE(ret, name, params) *(void **)&real.name = dynlib_sym(&libcurl, #name);
static void load(void)
{
	CURL_FUNCTIONS(RESOLVE)
}

#define READY() pthread_once(&once, load)

void curl_easy_cleanup(CURL *c)
{
	READY();
	real.curl_easy_cleanup(c);
}

char *curl_easy_escape(CURL *c, const char *s, int n)
{
	READY();
	return real.curl_easy_escape(c, s, n);
}

/* Every CURLINFO takes one pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
	READY();
	va_list ap;
	va_start(ap, info);
	void *out = va_arg(ap, void *);
	va_end(ap);
	return real.curl_easy_getinfo(c, info, out);
}

CURL *curl_easy_init(void)
{
	READY();
	return real.curl_easy_init();
}

CURLcode curl_easy_perform(CURL *c)
{
	READY();
	return real.curl_easy_perform(c);
}

void curl_easy_reset(CURL *c)
{
	READY();
	real.curl_easy_reset(c);
}

/* An option's number says the type of its argument, as libcurl itself
 * reads it: long, object pointer, function pointer, curl_off_t, blob. */
CURLcode curl_easy_setopt(CURL *c, CURLoption o, ...)
{
	READY();
	va_list ap;
	va_start(ap, o);
	CURLcode rc;
	if (o < CURLOPTTYPE_OBJECTPOINT)
		rc = real.curl_easy_setopt(c, o, va_arg(ap, long));
	else if (o < CURLOPTTYPE_FUNCTIONPOINT)
		rc = real.curl_easy_setopt(c, o, va_arg(ap, void *));
	else if (o < CURLOPTTYPE_OFF_T)
		rc = real.curl_easy_setopt(c, o, va_arg(ap, void (*)(void)));
	else if (o < CURLOPTTYPE_BLOB)
		rc = real.curl_easy_setopt(c, o, va_arg(ap, curl_off_t));
	else
		rc = real.curl_easy_setopt(c, o, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

const char *curl_easy_strerror(CURLcode rc)
{
	READY();
	return real.curl_easy_strerror(rc);
}

void curl_free(void *p)
{
	READY();
	real.curl_free(p);
}

CURLcode curl_global_init(long flags)
{
	READY();
	return real.curl_global_init(flags);
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *c)
{
	READY();
	return real.curl_multi_add_handle(m, c);
}

CURLMcode curl_multi_cleanup(CURLM *m)
{
	READY();
	return real.curl_multi_cleanup(m);
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
	READY();
	return real.curl_multi_info_read(m, left);
}

CURLM *curl_multi_init(void)
{
	READY();
	return real.curl_multi_init();
}

CURLMcode curl_multi_perform(CURLM *m, int *running)
{
	READY();
	return real.curl_multi_perform(m, running);
}

CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd *fds, unsigned int nfds, int timeout_ms,
			  int *ret)
{
	READY();
	return real.curl_multi_poll(m, fds, nfds, timeout_ms, ret);
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *c)
{
	READY();
	return real.curl_multi_remove_handle(m, c);
}

CURLMcode curl_multi_wakeup(CURLM *m)
{
	READY();
	return real.curl_multi_wakeup(m);
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
	READY();
	return real.curl_slist_append(l, s);
}

void curl_slist_free_all(struct curl_slist *l)
{
	READY();
	real.curl_slist_free_all(l);
}

CURLU *curl_url(void)
{
	READY();
	return real.curl_url();
}

void curl_url_cleanup(CURLU *u)
{
	READY();
	real.curl_url_cleanup(u);
}

CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags)
{
	READY();
	return real.curl_url_get(u, what, part, flags);
}

CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
	READY();
	return real.curl_url_set(u, what, part, flags);
}
