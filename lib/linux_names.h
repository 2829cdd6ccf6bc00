/* Names Compose files give to Linux things: capabilities (CAP_ prefix
 * optional), signals (SIG prefix optional, or a number) and the resource
 * limits of ulimits:. Shared by the loader, which checks them, and the
 * runtimes, which apply them. */
#ifndef CPIPE_LIB_LINUX_NAMES_H
#define CPIPE_LIB_LINUX_NAMES_H

#include <stddef.h>

/* The capability number of "NET_RAW" / "CAP_NET_RAW" (any case), or -1. */
int linux_cap_from_name(const char *name);
/* Canonical upper-case name without CAP_ of capability `cap`, or NULL. */
const char *linux_cap_name(int cap);
/* The highest capability number known here. */
int linux_cap_last(void);

/* The signal number of "SIGUSR1", "USR1" or "10", or -1. */
int linux_signal_from_name(const char *name);
/* "SIGUSR1" for 10; NULL for an unknown number. */
const char *linux_signal_name(int sig);

/* The RLIMIT_* of a ulimits: name ("nofile", ...), or -1. */
int linux_rlimit_from_name(const char *name);
/* The ulimits: names, for suggestions; *n is set to their count. */
const char *const *linux_rlimit_names(size_t *n);

#endif
