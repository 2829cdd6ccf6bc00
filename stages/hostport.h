/* Host ports seen from this host: whether one is taken, and by whom. For
 * the runtimes whose published ports are this host's (local; Docker and
 * Podman on a unix socket). */
#ifndef CPIPE_STAGES_HOSTPORT_H
#define CPIPE_STAGES_HOSTPORT_H

/* 1 when `port` on `ip` cannot be bound here ("tcp" or "udp"), with *who
 * the process holding it ("pid 123 (python3)") when /proc shows it, else
 * NULL (caller owns); 0 when it is free. */
int hostport_in_use(const char *ip, int port, const char *protocol, char **who);

#endif
