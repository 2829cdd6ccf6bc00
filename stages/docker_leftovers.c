/* What a cpipe that died (kill -9, a crash, a lost machine) left in the
 * daemon. Every container carries LABEL_OWNER, naming the host, process
 * ID and start time of the cpipe that created it; the next run's first
 * start, and `down`, remove the project's containers whose owner is gone.
 * A container the project keeps (runtime_project's kept_handles: the
 * services its state files name) is never touched here: it is a service
 * meant to outlive cpipe, which `down` stops and the next run adopts. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "docker_internal.h"

/* The start time of process `pid` in clock ticks since boot (field 22 of
 * /proc/PID/stat), or -1 when there is no such process. */
static long long proc_start_time(long pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	cleanup_free char *text = NULL;
	struct cp_error ignored = {0};
	if (fs_read_file(&text, NULL, path, 1 << 16, &ignored) < 0)
		return -1;
	const char *p = strrchr(text, ')'); /* the name may hold spaces */
	if (!p)
		return -1;
	/* After ") ": state is field 3, starttime field 22. */
	long long start = -1;
	int field = 2;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field == 22 && sscanf(p, "%lld", &start) != 1)
		return -1;
	return start;
}

static void host_name(char *buf, size_t n)
{
	if (gethostname(buf, n) < 0 || !*buf)
		snprintf(buf, n, "localhost");
	buf[n - 1] = '\0';
}

char *docker_owner_label(void)
{
	char host[256];
	host_name(host, sizeof(host));
	long pid = (long)getpid();
	return xasprintf("%s/%ld/%lld", host, pid, proc_start_time(pid));
}

/* True when the owner label names a cpipe of this host that is gone
 * (a reused process ID has another start time). Another host's cpipe
 * cannot be judged from here: false. */
static bool owner_gone(const char *label)
{
	char host[256];
	host_name(host, sizeof(host));
	const char *slash = label ? strrchr(label, '/') : NULL;
	if (!slash || slash == label)
		return false;
	const char *mid = slash - 1;
	while (mid > label && *mid != '/')
		mid--;
	if (*mid != '/' || (size_t)(mid - label) != strlen(host) ||
	    strncmp(label, host, (size_t)(mid - label)) != 0)
		return false;
	char *end = NULL;
	long pid = strtol(mid + 1, &end, 10);
	long long start = strtoll(slash + 1, NULL, 10);
	if (end != slash || pid <= 0)
		return false;
	long long now = proc_start_time(pid);
	return now < 0 || now != start;
}

/* True when `id` is, or starts with, one of `ids` (a short ID). */
static bool named_by(const struct strvec *ids, const char *id)
{
	for (size_t i = 0; i < ids->n; i++)
		if (*ids->v[i] && str_has_prefix(id, ids->v[i]))
			return true;
	return false;
}

/* The container IDs of the services the project keeps (its state files). */
static void service_containers(struct runtime *rt, struct strvec *out)
{
	cJSON *handles = rt->kept_handles && rt->state_dir ? rt->kept_handles(rt->state_dir) : NULL;
	const cJSON *h;
	cJSON_ArrayForEach(h, handles)
	{
		const char *id = docker_str(h, "container");
		if (id)
			strvec_push(out, id);
	}
	cJSON_Delete(handles);
}

int docker_leftovers_remove(struct runtime *rt, int *removed, struct cp_error *err)
{
	*removed = 0;
	cleanup_free char *f = docker_label_filter(rt, LABEL_PROJECT, rt->project, NULL, NULL);
	cleanup_free char *path = xasprintf("/containers/json?all=1&filters=%s", f);
	cJSON *list = NULL;
	if (docker_json(rt->d, "GET", path, NULL, NULL, &list, err) < 0)
		return cp_error_prefix(err, "listing the containers of project %s", rt->project);
	struct strvec services = {0};
	service_containers(rt, &services);
	int rc = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, list)
	{
		const char *id = docker_str(c, "Id");
		const char *owner = docker_str(cJSON_GetObjectItem(c, "Labels"), LABEL_OWNER);
		if (!id || !owner_gone(owner) || named_by(&services, id))
			continue;
		if (docker_container_remove(rt->d, id, err) < 0) {
			rc = -1;
			break;
		}
		(*removed)++;
	}
	strvec_free(&services);
	cJSON_Delete(list);
	return rc;
}

int docker_rt_down(struct runtime *rt, struct cp_error *err)
{
	int removed = 0;
	if (docker_leftovers_remove(rt, &removed, err) < 0)
		return -1;
	cleanup_free char *path = xasprintf("/networks/%s", rt->network);
	long status = 0;
	if (docker_json(rt->d, "DELETE", path, NULL, &status, NULL, err) < 0) {
		if (status == 404) {
			cp_error_clear(err);
			return 0;
		}
		/* Still in use: by a container of another host's cpipe. */
		if (status == 403 || status == 409) {
			runtime_note(&rt->sink, RUNTIME_NOTICE, NULL, "network %s is kept: %s",
				     rt->network, err->msg);
			cp_error_clear(err);
			return 0;
		}
		return cp_error_prefix(err, "removing network %s", rt->network);
	}
	rt->network_ready = false;
	return 0;
}
