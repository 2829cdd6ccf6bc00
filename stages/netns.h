/* The local runtime's project network: one network namespace per project,
 * shared by its stages as a compose network is, held by a small process
 * ("cpipe-netns") and connected to the host by pasta (Debian's passt),
 * which NATs outbound traffic and forwards exactly the published ports
 * from their host addresses into the namespace. Its state is a record in
 * the project's run directory, so that every cpipe of the project (an
 * `up` in one shell, a `run` in another) joins the same namespace, and a
 * namespace left by a killed cpipe is found and removed. */
#ifndef CPIPE_STAGES_NETNS_H
#define CPIPE_STAGES_NETNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../lib/error.h"

/* One published port (a range when host_port_end > host_port). */
struct netns_port {
	const char *host_ip; /* NULL: 127.0.0.1 */
	int host_port, host_port_end;
	int container_port;
	bool udp;
};

/* A joined namespace: descriptors for the sandbox to enter, and the
 * project's network lock, held until netns_release. */
struct netns {
	int net_fd;
	int user_fd; /* the namespace's user namespace when rootless, else -1 */
	int lock_fd;
};

/* Makes sure the project's namespace under `run_dir` is up and forwards
 * `ports` (as well as those it forwarded already), creating it or
 * replacing a stale one, and opens it for a sandbox to join. Fails with
 * EXIT_RUNTIME when pasta is missing or cannot work here, with
 * EXIT_STAGE_FAILED naming the port when a host port is taken. The
 * caller passes *out to netns_release once the sandbox is started. */
int netns_join(struct netns *out, const char *run_dir, bool rootless,
	       const struct netns_port *ports, size_t nports, struct cp_error *err);
void netns_release(struct netns *ns);

/* Removes the project's namespace (pasta, holder, record) when no process
 * but the holder and pasta is left in it, or when it is stale. */
void netns_cleanup_if_idle(const char *run_dir);

/* Whether the project's live pasta forwards `host_ip`:`port`. */
bool netns_forwards(const char *run_dir, const char *host_ip, int port, bool udp);

/* The entry point of the holder process (cpipe run as "cpipe-netns"). */
int netns_holder_main(int argc, char **argv);

/* Field 22 of /proc/PID/stat (when the process started, so a recycled pid
 * is never mistaken for another), and its state letter in *state when
 * non-NULL. 0 when the process is gone. */
unsigned long long proc_starttime(pid_t pid, char *state);
/* Whether process `pid` with start time `start` (proc_starttime's) still
 * runs: not gone, not another process with its pid, not a zombie. */
bool proc_alive(pid_t pid, unsigned long long start);

#endif
