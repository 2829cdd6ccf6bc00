#include "services.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/store.h"
#include "../lib/fs.h"

static char *state_path(const char *state_dir, const char *stage)
{
	return xasprintf("%s/services/%s.json", state_dir, stage);
}

int service_state_save(const char *state_dir, const cJSON *state, struct cp_error *err)
{
	const char *stage = cJSON_GetStringValue(cJSON_GetObjectItem(state, "stage"));
	cleanup_free char *dir = path_join(state_dir, "services");
	if (fs_mkdir_p(dir, 0700, err) < 0)
		return -1;
	cleanup_free char *path = state_path(state_dir, stage);
	cJSON *copy = cJSON_Duplicate(state, true);
	int rc = json_write_atomic(path, copy, err);
	cJSON_Delete(copy);
	return rc;
}

int service_state_load(cJSON **out, const char *state_dir, const char *stage,
		       struct cp_error *err)
{
	cleanup_free char *path = state_path(state_dir, stage);
	if (access(path, F_OK) < 0)
		return 1;
	return json_read_file(out, path, 1 << 20, err) < 0 ? -1 : 0;
}

void service_state_remove(const char *state_dir, const char *stage)
{
	cleanup_free char *path = state_path(state_dir, stage);
	unlink(path);
}

int service_state_names(struct strvec *out, const char *state_dir, struct cp_error *err)
{
	cleanup_free char *dir = path_join(state_dir, "services");
	return fs_list_names(out, dir, ".json", err);
}

cJSON *service_ports_json(const struct runtime_ops *ops, struct runtime *rt, struct task *t)
{
	cJSON *arr = cJSON_CreateArray();
	const struct task_desc *s = &t->desc;
	for (size_t i = 0; i < s->nports; i++) {
		const struct port *pt = &s->ports[i];
		for (int k = 0; k <= pt->container_port_end - pt->container_port; k++) {
			int cport = pt->container_port + k;
			int hport = pt->host_port ? pt->host_port + k : 0;
			const char *proto = pt->protocol ? pt->protocol : "tcp";
			int bound = ops->host_port(rt, t, cport, proto);
			if (bound > 0)
				hport = bound;
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "host_ip",
						pt->host_ip ? pt->host_ip : CP_DEFAULT_HOST_IP);
			cJSON_AddNumberToObject(o, "host_port", hport);
			cJSON_AddNumberToObject(o, "container_port", cport);
			cJSON_AddStringToObject(o, "protocol", pt->protocol ? pt->protocol : "tcp");
			cJSON_AddItemToArray(arr, o);
		}
	}
	return arr;
}

int service_ports_free(const struct runtime_ops *ops, struct runtime *rt,
		       const struct stage *const *services, size_t n, struct cp_error *err)
{
	/* Without the capability the runtime's own start says it (a remote
	 * daemon's ports are not this host's). */
	for (size_t i = 0; ops->caps.port_check && i < n; i++) {
		const struct stage *s = services[i];
		for (size_t k = 0; k < s->nports; k++) {
			const struct port *pt = &s->ports[k];
			if (!pt->host_port)
				continue;
			const char *ip = pt->host_ip ? pt->host_ip : CP_DEFAULT_HOST_IP;
			for (int port = pt->host_port; port <= pt->host_port_end; port++) {
				cleanup_free char *who = NULL;
				const char *proto = pt->protocol ? pt->protocol : "tcp";
				if (ops->port_in_use(rt, ip, port, proto, &who) == 0)
					continue;
				err->code = EXIT_STAGE_FAILED;
				return cp_error_at(err, &pt->mark,
						   "service \"%s\": port %d on %s is already in use%s%s; "
						   "stop it or publish another port (nothing was started)",
						   s->name, port, ip, who ? " by " : "", who ? who : "");
			}
		}
	}
	return 0;
}
