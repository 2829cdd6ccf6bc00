/* The fate of every Compose Specification key (schema/compose-spec.json of
 * compose-spec/compose-spec), top level and per service. One entry a key:
 * flipping a key from CK_WARNED to CK_HONOURED is a one-line change here
 * plus the code that gives it meaning. README.md's key reference lists the
 * same keys (tests/bats/compose_keys.bats checks it). */
#include "compose_keys.h"

#include <string.h>

#include "../lib/util.h"

#define H(k, w) {k, CK_HONOURED, w}
#define W(k, w) {k, CK_WARNED, w}
#define C(k, w) {k, CK_CPIPE, w}

#define NO_LIMIT "cpipe ignores it; the stage runs without that resource limit"
#define ONE_NET "cpipe ignores it; the stages share one project network where each resolves by name"

static const struct compose_key top_keys[] = {
	W("version", "cpipe ignores it, as Compose v2 does: the file is read as the Compose Specification"),
	H("name", "the project name (default: the directory's name)"),
	H("include", "other Compose files loaded as part of the project (path, env_file, project_directory)"),
	H("services", "the stages, by name (read as stages:)"),
	W("models", "cpipe ignores it; no AI model is pulled or served for the stages"),
	W("networks", ONE_NET),
	H("volumes", "named volumes: name, external, driver, labels"),
	H("secrets", "file:, environment: or content: sources of the secrets stages mount at /run/secrets/NAME; values masked everywhere"),
	H("configs", "file:, environment: or content: sources of the configs stages mount at /NAME or target:"),
	C("stages", "the stages, by name (cpipe's name for services:)"),
	C("runtime", "local (default), docker or podman"),
};

static const struct compose_key service_keys[] = {
	W("annotations", "cpipe ignores it; no annotations are set on the container"),
	W("attach", "cpipe ignores it; every stage's output is logged and shown"),
	W("blkio_config", NO_LIMIT),
	H("build", "context, dockerfile, target, args; docker and podman build it, the local runtime records it"),
	H("cap_add", "capabilities added (docker: CapAdd; local: a root sandbox holds them, another user is warned)"),
	H("cap_drop", "capabilities dropped (docker: CapDrop; local: from the command's bounding set)"),
	W("cgroup", "cpipe ignores it; the runtime's default cgroup namespace is used"),
	W("cgroup_parent", "cpipe ignores it; the runtime's default cgroup parent is used"),
	H("command", "the command; a string is split as a shell splits words"),
	H("configs", "configs mounted read-only at /NAME or target:"),
	H("container_name", "another name the stage resolves by"),
	W("cpu_count", NO_LIMIT),
	W("cpu_percent", NO_LIMIT),
	W("cpu_period", NO_LIMIT),
	W("cpu_quota", NO_LIMIT),
	W("cpu_rt_period", NO_LIMIT),
	W("cpu_rt_runtime", NO_LIMIT),
	W("cpu_shares", NO_LIMIT),
	W("cpus", NO_LIMIT),
	W("cpuset", NO_LIMIT),
	W("credential_spec", "cpipe ignores it (Windows containers only)"),
	H("depends_on", "order: service_completed_successfully, service_started, service_healthy; without a condition completed on a job, started on a service"),
	H("deploy", "resources.reservations.devices with capabilities [gpu] request GPUs; replicas other than 1 is warned (one instance runs); other deploy keys are warned"),
	W("develop", "cpipe ignores it; files are not watched (cpipe run sees what changed)"),
	W("device_cgroup_rules", "cpipe ignores it; no device rules are added"),
	W("devices", "cpipe ignores it; no host device is passed to the stage"),
	W("dns", ONE_NET),
	W("dns_opt", ONE_NET),
	W("dns_search", ONE_NET),
	W("domainname", "cpipe ignores it; the stage's domain name is not set"),
	H("entrypoint", "the entrypoint; a string is split as a shell splits words"),
	H("env_file", "KEY=VALUE files, relative to the project; environment: overrides them"),
	H("environment", "the stage's environment, map or KEY=VALUE list"),
	W("expose", "cpipe ignores it; every port of a stage is reachable from the other stages"),
	H("extends", "the stage starts as a copy of another one, of this file or of file:"),
	W("external_links", ONE_NET),
	W("extra_hosts", "cpipe ignores it; no /etc/hosts entries are added"),
	H("gpus", "GPU requests: all, a count, or device=IDs"),
	W("group_add", "cpipe ignores it; the stage runs with the user's own groups"),
	H("healthcheck", "test (CMD/CMD-SHELL) run in the stage, or cpipe's http: probe; makes the stage a service"),
	W("hostname", "cpipe ignores it; the stage resolves by its name"),
	H("image", "the image; the local runtime records it"),
	H("init", "docker: Init; local: cpipe's init is always PID 1 (init: false is warned)"),
	H("ipc", "private/shareable: an IPC namespace of its own; host: the host's; service:X is warned"),
	W("isolation", "cpipe ignores it (Windows containers only)"),
	W("label_file", "cpipe ignores it; only labels: are set"),
	H("labels", "container labels (docker, podman); recorded with each run"),
	W("links", ONE_NET),
	W("logging", "cpipe ignores it; logs go to .cpipe/logs"),
	W("mac_address", "cpipe ignores it; the runtime picks the MAC address"),
	W("mem_limit", NO_LIMIT),
	W("mem_reservation", NO_LIMIT),
	W("mem_swappiness", NO_LIMIT),
	W("memswap_limit", NO_LIMIT),
	W("models", "cpipe ignores it; no AI model is bound to the stage"),
	H("network_mode", "host: the host's network instead of the project's; none: only a loopback of its own; other modes are warned"),
	W("networks", ONE_NET),
	W("oom_kill_disable", NO_LIMIT),
	W("oom_score_adj", "cpipe ignores it; the OOM score is the runtime's default"),
	W("pid", "cpipe ignores it; each stage has its own PID namespace"),
	H("pids_limit", "docker: PidsLimit; local: a pids cgroup of the sandbox (needs root, warned otherwise)"),
	H("platform", "docker: ?platform= on create; local: warned when not the host's"),
	H("ports", "published ports; without a host address they bind to 127.0.0.1; make the stage a service unless a stage waits for it to complete"),
	W("post_start", "cpipe ignores it; no lifecycle hook is run"),
	W("pre_stop", "cpipe ignores it; no lifecycle hook is run"),
	W("privileged", "cpipe ignores it; the stage is not privileged"),
	H("profiles", "the stage runs only when one of its profiles is enabled"),
	W("provider", "cpipe ignores it; no provider plugin is run"),
	W("pull_policy", "cpipe ignores it; images are pulled when missing (or with --pull)"),
	W("pull_refresh_after", "cpipe ignores it; images are pulled when missing (or with --pull)"),
	H("read_only", "a read-only root: only writable volumes, tmpfs, /dev and /proc take writes"),
	H("restart", "services are restarted per policy (no, always, unless-stopped, on-failure[:N]); always/unless-stopped make a stage a service; on a job, warned"),
	H("runtime", "nvidia: a GPU request, as gpus: all (recorded); other values are warned"),
	W("scale", "cpipe ignores it; one instance of the stage runs"),
	H("secrets", "secrets mounted read-only at /run/secrets/NAME or target:; values never recorded"),
	W("security_opt", "cpipe ignores it; the runtime's default security options apply"),
	H("shm_size", "the size of the stage's /dev/shm"),
	W("stdin_open", "cpipe ignores it; a stage's stdin is not attached"),
	H("stop_grace_period", "time between SIGTERM and SIGKILL when a stage is stopped"),
	H("stop_signal", "the signal a stop sends the stage's command"),
	W("storage_opt", "cpipe ignores it; the runtime's default storage options apply"),
	W("sysctls", "cpipe ignores it; no sysctl is set"),
	H("tmpfs", "tmpfs mounts, with their options"),
	W("tty", "cpipe ignores it; no terminal is allocated"),
	H("ulimits", "resource limits (docker: Ulimits; local: setrlimit)"),
	W("use_api_socket", "cpipe ignores it; the Docker socket is not mounted"),
	H("user", "the user the stage runs as"),
	W("userns_mode", "cpipe ignores it; the runtime's default user namespace is used"),
	W("uts", "cpipe ignores it; each stage has its own UTS namespace"),
	H("volumes", "named volumes, binds and anonymous volumes, short or long form"),
	H("volumes_from", "the mounts of another stage, stage[:ro|:rw]"),
	H("working_dir", "the working directory"),
	C("service", "true: a long-running service, false: a job (inferred when absent)"),
	C("params", "values for ${params.NAME}, part of the cache key"),
	C("inputs", "artifacts read; a stage whose input is another's output depends on it"),
	C("outputs", "artifacts written, digested and stored"),
	C("metrics", "JSON files recorded with each run"),
};

const struct compose_key *compose_keys(enum compose_scope scope, size_t *n)
{
	if (scope == CK_TOP) {
		*n = ARRAY_LEN(top_keys);
		return top_keys;
	}
	*n = ARRAY_LEN(service_keys);
	return service_keys;
}

const struct compose_key *compose_key_find(enum compose_scope scope, const char *key)
{
	size_t n;
	const struct compose_key *t = compose_keys(scope, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].key, key) == 0)
			return &t[i];
	return NULL;
}

const char *compose_key_suggest(enum compose_scope scope, const char *key)
{
	size_t n;
	const struct compose_key *t = compose_keys(scope, &n);
	const char *names[ARRAY_LEN(service_keys)];
	for (size_t i = 0; i < n; i++)
		names[i] = t[i].key;
	return suggest_nearest(key, names, n);
}
