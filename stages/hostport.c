/* Is a host port taken, and by which process: a trial bind, then the
 * listening socket's inode from /proc/net/tcp{,6} and the process whose
 * descriptors hold it. */
#include "hostport.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/fs.h"

/* The socket inode listening on `port` from /proc/net/tcp{,6}, or 0. */
static unsigned long listening_inode(int port)
{
	static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	for (size_t t = 0; t < ARRAY_LEN(tables); t++) {
		FILE *f = fopen(tables[t], "r");
		if (!f)
			continue;
		char line[512];
		unsigned long found = 0;
		if (!fgets(line, sizeof(line), f)) {
			fclose(f);
			continue;
		}
		while (!found && fgets(line, sizeof(line), f)) {
			char local[128];
			unsigned st;
			unsigned long inode;
			if (sscanf(line, "%*d: %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st,
				   &inode) != 3)
				continue;
			const char *colon = strrchr(local, ':');
			if (colon && strtol(colon + 1, NULL, 16) == port && st == 0x0A)
				found = inode;
		}
		fclose(f);
		if (found)
			return found;
	}
	return 0;
}

/* "pid 123 (python3)" for the process holding socket `inode`; NULL when it
 * cannot be seen (another user's process, another namespace). */
static char *socket_owner(unsigned long inode)
{
	if (!inode)
		return NULL;
	char want[64];
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	DIR *proc = opendir("/proc");
	if (!proc)
		return NULL;
	struct dirent *de;
	char *found = NULL;
	while (!found && (de = readdir(proc))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char fddir[64];
		snprintf(fddir, sizeof(fddir), "/proc/%ld/fd", pid);
		DIR *fds = opendir(fddir);
		if (!fds)
			continue;
		struct dirent *fe;
		while (!found && (fe = readdir(fds))) {
			char link[320], target[128];
			snprintf(link, sizeof(link), "%s/%s", fddir, fe->d_name);
			ssize_t n = readlink(link, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			if (strcmp(target, want) != 0)
				continue;
			char comm_path[64];
			snprintf(comm_path, sizeof(comm_path), "/proc/%ld/comm", pid);
			cleanup_free char *comm = NULL;
			struct cp_error ignored = {0};
			if (fs_read_file(&comm, NULL, comm_path, 256, &ignored) == 0)
				comm[strcspn(comm, "\n")] = '\0';
			found = xasprintf("pid %ld (%s)", pid, comm ? comm : "?");
		}
		closedir(fds);
	}
	closedir(proc);
	return found;
}

static int port_in_use(const char *ip, int port, int proto)
{
	int fd = socket(strchr(ip, ':') ? AF_INET6 : AF_INET, proto | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int rc;
	if (strchr(ip, ':')) {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6,
					 .sin6_port = htons((uint16_t)port)};
		inet_pton(AF_INET6, ip, &a.sin6_addr);
		rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
			a.sin_addr.s_addr = htonl(INADDR_ANY);
		rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	}
	int in_use = rc < 0 && errno == EADDRINUSE;
	close(fd);
	return in_use;
}

int hostport_in_use(const char *ip, int port, const char *protocol, char **who)
{
	int proto = protocol && strcmp(protocol, "udp") == 0 ? SOCK_DGRAM : SOCK_STREAM;
	*who = NULL;
	if (!port_in_use(ip, port, proto))
		return 0;
	if (proto == SOCK_STREAM)
		*who = socket_owner(listening_inode(port));
	return 1;
}
