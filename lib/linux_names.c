/* Tables of capability, signal and resource-limit names (see
 * linux_names.h). */
#include "linux_names.h"

#include <ctype.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "util.h"

static const char *const caps[] = {
	"CHOWN",	    "DAC_OVERRIDE",	"DAC_READ_SEARCH", "FOWNER",	       "FSETID",
	"KILL",		    "SETGID",		"SETUID",	   "SETPCAP",	       "LINUX_IMMUTABLE",
	"NET_BIND_SERVICE", "NET_BROADCAST",	"NET_ADMIN",	   "NET_RAW",	       "IPC_LOCK",
	"IPC_OWNER",	    "SYS_MODULE",	"SYS_RAWIO",	   "SYS_CHROOT",       "SYS_PTRACE",
	"SYS_PACCT",	    "SYS_ADMIN",	"SYS_BOOT",	   "SYS_NICE",	       "SYS_RESOURCE",
	"SYS_TIME",	    "SYS_TTY_CONFIG",	"MKNOD",	   "LEASE",	       "AUDIT_WRITE",
	"AUDIT_CONTROL",    "SETFCAP",		"MAC_OVERRIDE",	   "MAC_ADMIN",	       "SYSLOG",
	"WAKE_ALARM",	    "BLOCK_SUSPEND",	"AUDIT_READ",	   "PERFMON",	       "BPF",
	"CHECKPOINT_RESTORE",
};

int linux_cap_from_name(const char *name)
{
	if (!strncasecmp(name, "CAP_", 4))
		name += 4;
	for (size_t i = 0; i < ARRAY_LEN(caps); i++)
		if (!strcasecmp(caps[i], name))
			return (int)i;
	return -1;
}

const char *linux_cap_name(int cap)
{
	return cap >= 0 && (size_t)cap < ARRAY_LEN(caps) ? caps[cap] : NULL;
}

int linux_cap_last(void)
{
	return (int)ARRAY_LEN(caps) - 1;
}

static const struct {
	const char *name;
	int sig;
} sigs[] = {
	{"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},	{"SIGQUIT", SIGQUIT}, {"SIGILL", SIGILL},
	{"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},	{"SIGBUS", SIGBUS},   {"SIGFPE", SIGFPE},
	{"SIGKILL", SIGKILL}, {"SIGUSR1", SIGUSR1},	{"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
	{"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM},	{"SIGTERM", SIGTERM}, {"SIGCHLD", SIGCHLD},
	{"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},	{"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN},
	{"SIGTTOU", SIGTTOU}, {"SIGURG", SIGURG},	{"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
	{"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
	{"SIGIO", SIGIO},     {"SIGPWR", SIGPWR},	{"SIGSYS", SIGSYS},
};

int linux_signal_from_name(const char *name)
{
	if (isdigit((unsigned char)name[0])) {
		char *end;
		long v = strtol(name, &end, 10);
		return *end || v < 1 || v >= NSIG ? -1 : (int)v;
	}
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		if (!strcasecmp(sigs[i].name, name) || !strcasecmp(sigs[i].name + 3, name))
			return sigs[i].sig;
	return -1;
}

const char *linux_signal_name(int sig)
{
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		if (sigs[i].sig == sig)
			return sigs[i].name;
	return NULL;
}

static const char *const rlimit_names[] = {
	"as",	  "core",  "cpu",    "data",   "fsize",	 "locks",      "memlock", "msgqueue",
	"nice",	  "nofile", "nproc", "rss",    "rtprio", "rttime",     "sigpending", "stack",
};
static const int rlimit_ids[] = {
	RLIMIT_AS,	RLIMIT_CORE,  RLIMIT_CPU,    RLIMIT_DATA,   RLIMIT_FSIZE,  RLIMIT_LOCKS,
	RLIMIT_MEMLOCK, RLIMIT_MSGQUEUE, RLIMIT_NICE, RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_RSS,
	RLIMIT_RTPRIO,	RLIMIT_RTTIME, RLIMIT_SIGPENDING, RLIMIT_STACK,
};

int linux_rlimit_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(rlimit_names); i++)
		if (!strcmp(rlimit_names[i], name))
			return rlimit_ids[i];
	return -1;
}

const char *const *linux_rlimit_names(size_t *n)
{
	*n = ARRAY_LEN(rlimit_names);
	return rlimit_names;
}
