/* What a runtime is given to run one stage: the task description, built by
 * pipeline/task.c from a stage, and the plain pieces of the spec it is made
 * of (mounts, ports, health check, build, compose's resource, security and
 * lifecycle keys, volumes). pipeline/spec.h uses these types for the spec
 * model; nothing here knows of a stage or a pipeline. */
#ifndef CPIPE_STAGES_TASK_H
#define CPIPE_STAGES_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/defaults.h"
#include "../lib/error.h"
#include "../lib/fs_fill.h"
#include "../lib/util.h"

enum mount_type {
	MOUNT_VOLUME, /* source = named volume (key under top-level volumes:) */
	MOUNT_BIND,   /* source = absolute host path */
	MOUNT_TMPFS,  /* source = NULL */
};

struct mount {
	enum mount_type type;
	char *source;
	char *target; /* absolute path inside the stage */
	bool read_only;
	struct cp_mark mark;
	/* A named volume on a path the image fills (local runtime): what the
	 * volume gets when it is empty as the stage starts (spec_image.c). */
	struct fs_fill_item *fill;
	size_t nfill;
};

struct port {
	char *host_ip;      /* NULL = CP_DEFAULT_HOST_IP (see README) */
	int host_port;      /* 0 = pick a free port */
	int host_port_end;  /* == host_port unless a range */
	int container_port;
	int container_port_end;
	char *protocol;     /* "tcp" or "udp" */
	struct cp_mark mark;
};

struct healthcheck {
	struct strvec test; /* compose test: ["CMD", ...] / ["CMD-SHELL", "..."] */
	char *http;         /* cpipe: URL probed from the host */
	long interval_ms;   /* default CP_HEALTH_INTERVAL_MS */
	long timeout_ms;    /* default CP_HEALTH_TIMEOUT_MS */
	long start_period_ms;
	int retries;        /* default CP_HEALTH_RETRIES */
	bool disable;
};

struct build {
	char *context;    /* absolute */
	char *dockerfile; /* relative to context, default "Dockerfile" */
	char *target;
	struct kvvec args;
};

/* ---- compose keys of resources, security and lifecycle (spec_compose.c) ---- */

struct ulimit {
	char *name;     /* compose's: nofile, nproc, core, ... */
	long long soft; /* -1 = unlimited */
	long long hard;
};

struct tmpfs_mount {
	char *target;  /* absolute */
	char *options; /* mount data as given ("size=64m,mode=1777"), NULL = none */
};

/* A top-level secret or config mounted into the stage. The value is never
 * kept here: `source` is the host file, or `env` the variable holding it. */
struct stage_secret {
	char *name;
	char *source;  /* absolute host file; NULL when from env/content */
	char *content; /* configs' content: / a secret's environment: value (redacted) */
	char *env;     /* the environment: variable's name, NULL otherwise */
	char *target;  /* absolute path in the stage */
	bool config;   /* configs: (mode 0444) rather than secrets: */
	struct cp_mark mark;
};

struct stage_limits {
	long long shm_size; /* bytes of /dev/shm, 0 = runtime default */
	long pids_limit;    /* 0 = none */
	struct ulimit *ulimits;
	size_t nulimits;
	struct tmpfs_mount *tmpfs;
	size_t ntmpfs;
};

struct stage_security {
	struct strvec cap_add; /* upper case, without CAP_ */
	struct strvec cap_drop;
	bool read_only;
	char *ipc;      /* compose's ipc:, NULL = runtime default */
	bool has_init;  /* init: given */
	bool init;
	char *platform; /* "linux/amd64", NULL = the host's */
	char *runtime;  /* compose's runtime: ("nvidia" adds a GPU request) */
	struct stage_secret *secrets; /* secrets: then configs: */
	size_t nsecrets;
};

enum restart_policy { RESTART_NO, RESTART_ALWAYS, RESTART_ON_FAILURE, RESTART_UNLESS_STOPPED };

/* Where each honoured compose key was written, for warnings. */
enum compose_mark {
	CM_IPC, CM_INIT, CM_PIDS, CM_PLATFORM, CM_GPUS, CM_REPLICAS, CM_RESTART, CM_ULIMITS,
	CM_CAPS, CM_SHM, CM_VOLUMES_FROM, CM_COUNT
};

struct stage_lifecycle {
	int stop_signal;       /* 0 = SIGTERM */
	char *stop_signal_name; /* as docker takes it: "SIGUSR1" */
	enum restart_policy restart;
	int restart_max;       /* on-failure:N, 0 = no limit */
	bool has_replicas;
	long replicas;         /* deploy.replicas */
	struct strvec volumes_from; /* "stage[:ro|:rw]" as written, resolved into mounts */
	struct cp_mark marks[CM_COUNT];
};

/* A named volume of the project (a key under top-level volumes:). */
struct volume {
	char *name;     /* the key under volumes: */
	char *ext_name; /* name: (docker); NULL = default */
	bool external;
	char *driver;
	struct kvvec labels;
	/* driver_opts the kubernetes runtime reads (size, storage_class). */
	struct kvvec driver_opts;
	struct cp_mark mark;
};

/* Everything a runtime reads about the stage it runs, lent: every pointer
 * points into the stage the description was made from (task_desc_init in
 * pipeline/task.c), valid while the project is loaded. The field names are
 * those of the spec model's. */
struct task_desc {
	const char *name;    /* the stage: messages, labels, container names, hostnames */
	struct cp_mark mark; /* where the stage is written, for messages */

	const char *image;          /* image:, NULL = the runtime's name for a built one */
	/* The build that produces `image`: the stage's own build:, or that of
	 * the first stage (in spec order) building the same image name, which
	 * the executor chose; NULL = pull or use `image` as it is. */
	const struct build *build;
	const char *build_stage;    /* the stage whose build: `build` is */
	/* The ID the executor resolved the image to (runtime_ops image_start,
	 * after the build or pull), which its key and record name: a runtime
	 * that runs images by ID creates the task from it, so a tag moved
	 * since cannot run another image. NULL = not resolved (the runtime
	 * resolves the name itself). Owned by the executor. */
	const char *image_id;

	struct strvec command;      /* argv after the entrypoint; empty = image default */
	bool has_command;
	struct strvec entrypoint;
	bool has_entrypoint;
	const char *working_dir;    /* NULL = image default (local: the project dir) */
	const char *user;           /* compose's user:, NULL = image default */

	const struct mount *mounts; /* volumes (by key under volumes:), binds, tmpfs */
	size_t nmounts;
	const struct port *ports;   /* published ports */
	size_t nports;
	bool service;               /* long-running: kept up, health-checked, restarted */
	const struct healthcheck *healthcheck; /* NULL = none */
	struct kvvec labels;
	long stop_grace_ms;         /* SIGTERM to SIGKILL */
	struct strvec gpus;         /* gpus: / device requests as written */
	const char *network_mode;   /* compose's network_mode:, NULL = the project network */
	const char *container_name; /* another name the task answers to on that network */
	struct stage_limits limits;       /* shm_size, pids_limit, ulimits, tmpfs */
	struct stage_security security;   /* caps, read_only, ipc, init, platform, secrets */
	struct stage_lifecycle lifecycle; /* stop signal, restart, replicas */
	/* The stage's x-cpipe: keys the kubernetes runtime reads: the pod's
	 * nodeSelector, and its resources (cpu, memory: requests = limits). */
	struct kvvec node_selector;
	struct kvvec resources;
};

#endif
