/* Shared by the kubernetes runtime's files: kube.c (the runtime, volumes,
 * images, cleanup), kube_job.c (Jobs and Deployments, their pods and logs),
 * kube_tree.c (reading a volume back), kube_exec.c and kube_restore.c
 * (commands in pods over kube_ws.c's WebSocket: `cpipe exec`, writing a
 * volume), and kube_task.c, the one file that
 * reads the task_desc and the runtime_project and turns them into the
 * descriptions below. */
#ifndef CPIPE_STAGES_KUBE_INTERNAL_H
#define CPIPE_STAGES_KUBE_INTERNAL_H

#include <stdio.h>

#include "kube_api.h"
#include "runtime.h"

#define KLABEL_PROJECT "cpipe.dev/project"
#define KLABEL_STAGE "cpipe.dev/stage"
#define KLABEL_RUN "cpipe.dev/run"
#define KLABEL_VOLUME "cpipe.dev/volume"
#define KLABEL_HELPER "cpipe.dev/helper"
/* host-pid-starttime of the cpipe that created the object (annotation). */
#define KANNOT_OWNER "cpipe.dev/owner"

/* A mount of a workload: a claim (named volume) or a ConfigMap (small
 * read-only project files). */
struct kube_mount {
	char *volume; /* key under volumes:, NULL for a ConfigMap */
	char *target;
	bool read_only;
	/* ConfigMap: the file's content and its name inside the map. */
	char *file_key;
	char *content;
	size_t len;
};

struct kube_port {
	int port;
	char *protocol; /* "TCP" / "UDP" */
};

/* What a pod runs: the manifest builder's input. */
struct kube_work {
	char *stage;
	bool service;
	char *image;
	bool has_command; /* entrypoint (k8s command) given */
	struct strvec command;
	bool has_args; /* command (k8s args) given */
	struct strvec args;
	struct kvvec env;
	char *working_dir;
	long long uid, gid; /* -1: the image's */
	char *user_name;    /* a user: that is not numeric (refused) */
	int gpus;           /* nvidia.com/gpu count; -1 = all (refused) */
	struct kvvec node_selector;
	struct kvvec resources; /* cpu, memory */
	struct kube_mount *mounts;
	size_t nmounts;
	struct kube_port *ports;
	size_t nports;
	/* readinessProbe: an exec command, or an httpGet of path and port
	 * (probe_port > 0; https with probe_https), its period, timeout,
	 * threshold */
	struct strvec probe;
	char *probe_path;
	int probe_port;
	bool probe_https;
	long probe_period_ms, probe_timeout_ms, probe_start_ms;
	int probe_retries;
	long grace_ms;
	bool tty;
};

/* A named volume: its claim's name, storage class and size. */
struct kube_volume {
	char *key;
	char *claim;
	char *storage_class; /* NULL: the cluster's default */
	char *size;
	bool external;
};

struct kube_service_ip {
	char *stage;
	char *ip;
};

struct runtime {
	struct kube *k;
	struct kube_config cfg;
	char *project;    /* normalized */
	char *namespace;  /* cpipe-<project> or x-cpipe: namespace */
	char *state_dir;  /* the project's .cpipe, NULL when none */
	char *helper_image;
	struct kube_volume *volumes;
	size_t nvolumes;
	char *owner; /* KANNOT_OWNER value */
	bool ns_ready;
	bool swept;
	struct strvec runs;   /* run ids we created objects for */
	struct strvec kept;   /* names of services left running */
	struct kube_service_ip *ips; /* services started: stage -> ClusterIP */
	size_t nips;
	struct strvec node_images; /* image names every Ready node has */
	bool images_known;
	struct strvec live; /* names of Jobs/Deployments created and not yet deleted */
	struct runtime_sink sink; /* the project's, for warnings and notices */
	/* The project's stages with build: (copied from runtime_project). */
	struct kube_build {
		char *stage, *image, *file;
		int line, col;
	} *builds;
	size_t nbuilds;
};

/* kube_task.c: the only reader of struct task_desc / struct runtime_project. */

/* The project's name, namespace, helper image and volumes from `proj`
 * into rt (project, namespace, helper_image, volumes), copied. */
void kube_task_project(struct runtime *rt, const struct runtime_project *proj);
/* The workload `ts` describes. Fails (err->code EXIT_USAGE, naming the
 * spec's file:line:col) for what the cluster cannot run: a bind mount that
 * is not a small read-only file, a non-numeric user:, gpus: all. Free with
 * kube_work_free. */
int kube_task_work(struct kube_work *out, struct runtime *rt, const struct task_spec *ts,
		   struct cp_error *err);
void kube_work_free(struct kube_work *w);

/* kube.c */

/* Frees a runtime and what it holds (no API call). */
void kube_runtime_free(struct runtime *rt);

/* A DNS-1123 label from `s` (lower case, [a-z0-9-], at most `max`
 * characters, no leading or trailing '-'). Caller owns. */
char *kube_dns_name(const char *s, size_t max);
/* The API path of collection `kind` ("jobs", "pods", ...) in our namespace. */
char *kube_path(const struct runtime *rt, const char *kind, const char *name);
/* The labelSelector query value (escaped) for the project and, when not
 * NULL, label key2=value2. Caller owns. */
char *kube_selector(const struct runtime *rt, const char *key2, const char *value2);
/* Creates the namespace unless it exists (once per runtime). */
int kube_namespace_ensure(struct runtime *rt, struct cp_error *err);
/* The claim of volume key `key`, or NULL; lent. */
const struct kube_volume *kube_volume_of(const struct runtime *rt, const char *key);
/* Deletes object `name` of `kind` at once (grace 0, Background
 * propagation), a Job's or Deployment's pods explicitly too; gone is
 * fine. */
int kube_delete(struct kube *k, const struct runtime *rt, const char *kind, const char *name,
		struct cp_error *err);
/* Deletes the collection `kind` (pods, replicasets) under API prefix
 * `apis` ("/api/v1", "/apis/apps/v1") matching `selector` (unescaped),
 * with grace period `grace_s` (-1: the pods' own). */
int kube_delete_pods(struct kube *k, const struct runtime *rt, const char *apis,
		     const char *kind, const char *selector, int grace_s, struct cp_error *err);
/* Deletes every Job, Deployment, Service, ConfigMap and pod of the
 * project with label `key`=`value` (NULL: all of the project), except
 * services named in rt->kept; *n counts the objects deleted. */
int kube_delete_labelled(struct runtime *rt, const char *key, const char *value, int *n,
			 struct cp_error *err);

/* Whether every Ready node has `image` (so pods never pull it). */
bool kube_image_local(struct runtime *rt, const char *image, struct cp_error *err);
/* The project's stages with build: whose image is on no node: fails
 * (EXIT_USAGE, naming the first at its place) when there is one, since
 * the cluster builds nothing (kube_task.c). */
int kube_task_check_builds(struct runtime *rt, struct cp_error *err);

/* kube_manifest.c. <project>-<stage>-<8 hex digits of the run id>, a
 * DNS label. Caller owns. */
char *kube_object_name(const struct runtime *rt, const char *stage, const char *run_id);
/* The Job (a job) or Deployment (a service) running `w`, named `name`,
 * labelled with run `run`, mounting ConfigMap `files` for its files;
 * rt->ips become hostAliases. NULL with err set when the nodes' images
 * cannot be listed. Caller deletes. */
cJSON *kube_manifest_workload(struct runtime *rt, const struct kube_work *w, const char *name,
			      const char *run, const char *files, struct cp_error *err);
/* The ConfigMap of w's uploaded files (binaryData). Caller deletes. */
cJSON *kube_manifest_configmap(const struct runtime *rt, const struct kube_work *w,
			       const char *name, const char *run);
/* The ClusterIP Service of a service's ports. Caller deletes. */
cJSON *kube_manifest_service(const struct runtime *rt, const struct kube_work *w,
			     const char *name, const char *run);

/* The PersistentVolumeClaim of volume `v` (ReadWriteMany, its class and
 * size). Caller deletes. */
cJSON *kube_manifest_claim(const struct runtime *rt, const struct kube_volume *v);

/* kube_job.c: the runtime_ops task members. */
int kube_task_start(struct runtime *rt, const struct task_spec *ts, struct task **out,
		    struct cp_error *err);
int kube_task_poll(struct runtime *rt, struct task *t, int *exit_code, struct cp_error *err);
int kube_task_kill(struct runtime *rt, struct task *t, int sig, struct cp_error *err);
void kube_task_release(struct runtime *rt, struct task *t);
int kube_task_exec_start(struct runtime *rt, struct task *t, char *const *argv, long timeout_ms,
			 struct task_exec **out, int *fd_out, struct cp_error *err);
int kube_task_exec_end(struct runtime *rt, struct task_exec *x, bool kill, int *exit_code,
		       struct cp_error *err);
/* (kube_manifest.c) A sentence for a pod that cannot run or failed ("the image ... is not
 * on the node (ErrImageNeverPull)"), from its status; NULL when it has
 * none. Caller owns. */
char *kube_pod_problem(const cJSON *pod);

/* The Deployment/Job name and the stage of a started task; lent. */
void kube_task_names(const struct task *t, const char **name, const char **stage);

/* kube_service.c: the runtime_ops handle members (see runtime.h), and
 * rt->ips refreshed from the project's Services in the cluster. */
cJSON *kube_task_handle(struct runtime *rt, struct task *t);
int kube_handle_alive(struct runtime *rt, const cJSON *h, struct cp_error *err);
int kube_handle_stop(struct runtime *rt, const cJSON *h, long grace_ms, struct cp_error *err);
int kube_handle_logs(struct runtime *rt, const cJSON *h, bool follow,
		     void (*sink)(void *ud, int stream, const char *data, size_t n), void *ud,
		     volatile sig_atomic_t *stop, struct cp_error *err);
int kube_service_ips(struct runtime *rt, struct cp_error *err);

/* kube_forward.c: published ports (a forwarder process per service, see
 * there). kube_forward_start binds the host ports `d` publishes and starts
 * their forwarder to Service `name`; nothing when it publishes none.
 * Fails (EXIT_STAGE_FAILED, at the port's place) for a port in use. */
int kube_forward_start(struct runtime *rt, const struct task_desc *d, const char *name,
		       struct cp_error *err);
/* Stops the forwarder of `stage` (only when it forwards to Service `name`,
 * unless NULL) and forgets it; none is fine. */
void kube_forward_stop(struct runtime *rt, const char *stage, const char *name);
/* Marks the forwarder of `stage` as kept with its service (cpipe up). */
void kube_forward_keep(struct runtime *rt, const char *stage);
/* Stops the forwarders a dead cpipe started and deletes their services'
 * Deployments, Services and ConfigMaps; forgets kept ones that died.
 * Returns how many it stopped. */
int kube_forward_sweep(struct runtime *rt);
/* Whether the service `stage` (Deployment `name`) is a dead cpipe's that
 * was not kept: its forwarder's record says so. */
bool kube_forward_orphaned(struct runtime *rt, const char *stage, const char *name);
/* Stops every forwarder of the project (down). */
void kube_forward_stop_all(struct runtime *rt);
/* runtime_ops.port_in_use: the host's view, a port of one of the
 * project's forwarders counting as free. */
int kube_port_in_use(struct runtime *rt, const char *host_ip, int port, const char *protocol,
		     char **who);

/* kube_tree.c: volume_read_tree through a helper pod. */
int kube_volume_read_tree(struct runtime *rt, const char *volume, const char *path,
			  int (*visit)(void *ud, const struct volume_entry *e, struct cp_error *err),
			  void *ud, struct cp_error *err);
/* 'x' with every ' as '\'' for sh. Caller owns. */
char *kube_sh_quote(const char *s);
/* The helper pod `name` (rt->helper_image) mounting `claim` at /v,
 * read-only unless `writer`, running `script` with /bin/sh. Caller
 * deletes. */
cJSON *kube_helper_pod(struct runtime *rt, const char *name, const char *claim,
		       const char *script, bool writer);
/* Waits for helper pod `name` to end (0 and its *exit_code), or with
 * `running` to run (0); -1 when it cannot run, says why, or ended. */
int kube_helper_wait(struct runtime *rt, const char *name, bool running, int *exit_code,
		     struct cp_error *err);
/* Runs a helper pod on `volume`'s claim with the shell script `script`,
 * which writes base64 to stdout; waits for it to end and gives its exit
 * code and, when that is 0, the decoded output in `out` (rewound). */
int kube_helper_run(struct runtime *rt, const char *volume, const char *script, FILE *out,
		    int *exit_code, struct cp_error *err);

/* kube_restore.c: volume_write_tree through a helper pod fed by exec. */
int kube_volume_write_tree(struct runtime *rt, const char *volume, const char *path,
			   const char *src, struct cp_error *err);

#endif
