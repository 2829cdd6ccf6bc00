#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "../pipeline/task.h"
#include "cli.h"
#include "opts.h"

static cJSON *volume_json(const struct volume_info *v)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", v->name);
	cJSON_AddStringToObject(o, "mountpoint", v->mountpoint);
	cJSON_AddNumberToObject(o, "size", (double)v->size);
	cJSON_AddBoolToObject(o, "declared", v->declared);
	return o;
}

static void print_json(cJSON *doc)
{
	cli_print_json(doc);
	cJSON_Delete(doc);
}

static void human_size(char *buf, size_t n, long long size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)size;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_LEN(units)) {
		v /= 1024;
		u++;
	}
	if (size < 0)
		snprintf(buf, n, "-");
	else if (u == 0)
		snprintf(buf, n, "%lld B", size);
	else
		snprintf(buf, n, "%.1f %s", v, units[u]);
}

static int volume_ls(struct cli *c, struct volume_info *vols, size_t n)
{
	if (c->json) {
		cJSON *arr = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++)
			cJSON_AddItemToArray(arr, volume_json(&vols[i]));
		print_json(arr);
		return EXIT_OK;
	}
	printf("%-20s %-10s %-9s %s\n", "NAME", "SIZE", "DECLARED", "MOUNTPOINT");
	for (size_t i = 0; i < n; i++) {
		char size[32];
		human_size(size, sizeof(size), vols[i].size);
		printf("%-20s %-10s %-9s %s\n", vols[i].name, size, vols[i].declared ? "yes" : "no",
		       vols[i].mountpoint);
	}
	return EXIT_OK;
}

static const struct volume_info *find_volume(const struct volume_info *vols, size_t n,
					     const char *name, struct cp_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(vols[i].name, name) == 0)
			return &vols[i];
	const char **names = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		names[i] = vols[i].name;
	const char *near = suggest_nearest(name, names, n);
	if (near)
		cp_error_set(err, EXIT_USAGE, "no such volume \"%s\" (did you mean \"%s\"?)", name,
			     near);
	else
		cp_error_set(err, EXIT_USAGE, "no such volume \"%s\"; see cpipe volume ls", name);
	free(names);
	return NULL;
}

static void volume_usage(void)
{
	fprintf(stderr, "usage: cpipe volume ls | inspect NAME... | rm NAME... | prune; "
			"see cpipe volume --help\n");
}

int cmd_volume(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	bool all = false;
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) == 'a')
		all = true;
	if (opt != -1)
		return cli_opt_exit(opt);
	if (optind >= argc) {
		volume_usage();
		return EXIT_USAGE;
	}
	const char *verb = argv[optind++];
	bool ls = strcmp(verb, "ls") == 0, inspect = strcmp(verb, "inspect") == 0;
	bool rm = strcmp(verb, "rm") == 0, prune = strcmp(verb, "prune") == 0;
	if (!ls && !inspect && !rm && !prune) {
		volume_usage();
		return EXIT_USAGE;
	}
	if ((inspect || rm) && optind >= argc) {
		volume_usage();
		return EXIT_USAGE;
	}

	struct pipeline *p = NULL;
	struct runtime *rt = NULL;
	const struct runtime_ops *ops = NULL;
	struct volume_info *vols = NULL;
	size_t n = 0;
	cleanup_free char *state = NULL;
	int lock_fd = -1;
	int rc = EXIT_OK;
	if (cli_load(&p, c, &err) < 0 || cli_runtime(&ops, c, p, &err) < 0 ||
	    !(state = cli_state_dir(p, true, &err)))
		goto fail;
	if (rm || prune) {
		cleanup_free char *lock = path_join(state, "lock");
		if (fs_lock(&lock_fd, lock, "running", &err) < 0)
			goto fail;
	}
	if (task_runtime_open(ops, &rt, p, state, &err) < 0 ||
	    ops->volume_list(rt, &vols, &n, &err) < 0)
		goto fail;

	if (ls) {
		rc = volume_ls(c, vols, n);
	} else if (inspect) {
		cJSON *arr = cJSON_CreateArray();
		for (int i = optind; i < argc; i++) {
			const struct volume_info *v = find_volume(vols, n, argv[i], &err);
			if (!v) {
				cJSON_Delete(arr);
				goto fail;
			}
			cJSON_AddItemToArray(arr, volume_json(v));
		}
		print_json(arr);
	} else if (rm) {
		for (int i = optind; i < argc; i++) {
			if (!find_volume(vols, n, argv[i], &err) ||
			    ops->volume_remove(rt, argv[i], &err) < 0)
				goto fail;
			if (!c->quiet)
				printf("%s\n", argv[i]);
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			if (vols[i].declared && !all)
				continue;
			if (ops->volume_remove(rt, vols[i].name, &err) < 0)
				goto fail;
			if (!c->quiet)
				printf("%s\n", vols[i].name);
		}
	}
	goto out;
fail:
	rc = cli_fail(&err);
out:
	volume_info_free(vols, n);
	if (rt)
		ops->close(rt);
	if (lock_fd >= 0)
		close(lock_fd);
	pipeline_free(p);
	return rc;
}
