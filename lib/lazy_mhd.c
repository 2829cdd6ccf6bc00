/* libmicrohttpd, loaded on first use (see dynlib.h): only the kubernetes
 * runtime's port forwarder (stages/kube_forward.c) serves HTTP. Each
 * function cpipe calls forwards to the real one; a new call fails to link
 * until it is added to the table below. */
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>

#include "dynlib.h"

/* R: functions returning a value; V: returning nothing.
 * (return type, name, parameters, arguments) */
#define MHD_FUNCTIONS(R, V)                                                                      \
	V(void, MHD_stop_daemon, (struct MHD_Daemon * d), (d))                                   \
	R(struct MHD_Response *, MHD_create_response_from_buffer,                                \
	  (size_t size, void *buffer, enum MHD_ResponseMemoryMode mode), (size, buffer, mode))   \
	R(struct MHD_Response *, MHD_create_response_from_callback,                              \
	  (uint64_t size, size_t block, MHD_ContentReaderCallback crc, void *cls,                \
	   MHD_ContentReaderFreeCallback crfc),                                                  \
	  (size, block, crc, cls, crfc))                                                         \
	R(enum MHD_Result, MHD_add_response_header,                                              \
	  (struct MHD_Response * r, const char *header, const char *content), (r, header, content)) \
	R(enum MHD_Result, MHD_queue_response,                                                   \
	  (struct MHD_Connection * c, unsigned int status, struct MHD_Response *r), (c, status, r)) \
	V(void, MHD_destroy_response, (struct MHD_Response * r), (r))                            \
	R(int, MHD_get_connection_values,                                                        \
	  (struct MHD_Connection * c, enum MHD_ValueKind kind, MHD_KeyValueIterator it, void *cls), \
	  (c, kind, it, cls))

#define POINTER(ret, name, params, args) ret(*name) params;
static struct {
	MHD_FUNCTIONS(POINTER, POINTER)
	struct MHD_Daemon *(*MHD_start_daemon_va)(unsigned int flags, uint16_t port,
						  MHD_AcceptPolicyCallback apc, void *apc_cls,
						  MHD_AccessHandlerCallback dh, void *dh_cls,
						  va_list ap);
} real;

static struct dynlib libmhd = {"libmicrohttpd.so.12", "libmicrohttpd12", NULL};
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define RESOLVE(ret, name, params, args) *(void **)&real.name = dynlib_sym(&libmhd, #name);
static void load(void)
{
	MHD_FUNCTIONS(RESOLVE, RESOLVE)
	*(void **)&real.MHD_start_daemon_va = dynlib_sym(&libmhd, "MHD_start_daemon_va");
}

MHD_FUNCTIONS(DYNLIB_FORWARD, DYNLIB_FORWARD_VOID)

/* The options list goes on as a va_list (libmicrohttpd's own _va form). */
struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port,
				    MHD_AcceptPolicyCallback apc, void *apc_cls,
				    MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
	pthread_once(&once, load);
	va_list ap;
	va_start(ap, dh_cls);
	struct MHD_Daemon *d = real.MHD_start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
	va_end(ap);
	return d;
}
