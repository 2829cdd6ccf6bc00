/* cpipe ls: the projects with state under the current directory, found by
 * their .cpipe directories (and .cpipe/projects/NAME for the ones named by
 * -p), each with how many of its services run; and the projects the Docker
 * daemon has containers of, when it can be reached. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "../pipeline/services.h"
#include "cli.h"
#include "opts.h"
#include "svc.h"

/* How deep below the current directory projects are looked for. */
#define LS_MAX_DEPTH 6

/* The status of the project whose state is `state`: its services running
 * and exited, by loading its spec (project.json names the files). */
static void project_status(struct cli *c, const char *state, cJSON *list)
{
	cleanup_free char *info_path = path_join(state, "project.json");
	cJSON *info = NULL;
	struct cp_error err = {0};
	if (json_read_file(&info, info_path, 1 << 20, &err) < 0)
		return; /* state an older cpipe made: nothing says whose */
	struct cli sub = {.runtime = c->runtime, .no_warnings = true,
			  .project = cJSON_GetStringValue(cJSON_GetObjectItem(info, "name"))};
	const cJSON *f;
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(info, "files"))
		if (cJSON_GetStringValue(f))
			strvec_push(&sub.files, f->valuestring);
	struct svc_ctx x;
	struct strvec names = {0};
	int running = 0, exited = 0;
	const char *status = NULL;
	if (sub.project && sub.files.n && svc_open(&x, &sub, false, &err) == 0 &&
	    service_state_names(&names, x.state, &err) == 0) {
		for (size_t i = 0; i < names.n; i++) {
			cJSON *st = NULL;
			if (service_state_load(&st, x.state, names.v[i], &err) != 0)
				continue;
			if (svc_alive(&x, st))
				running++;
			else
				exited++;
			cJSON_Delete(st);
		}
	} else {
		status = "unknown: its spec does not load";
	}
	if (sub.project && sub.files.n)
		svc_close(&x);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", sub.project ? sub.project : "");
	cJSON_AddNumberToObject(o, "running", running);
	cJSON_AddNumberToObject(o, "exited", exited);
	if (status)
		cJSON_AddStringToObject(o, "status", status);
	cJSON_AddItemToObject(o, "files", cJSON_Duplicate(cJSON_GetObjectItem(info, "files"), true));
	cJSON_AddItemToArray(list, o);
	strvec_free(&names);
	strvec_free(&sub.files);
	kvvec_free(&sub.env);
	cJSON_Delete(info);
}

static void walk(struct cli *c, const char *dir, int depth, cJSON *list)
{
	cleanup_free char *state = path_join(dir, ".cpipe");
	struct stat st;
	if (lstat(state, &st) == 0 && S_ISDIR(st.st_mode)) {
		project_status(c, state, list);
		cleanup_free char *projects = path_join(state, "projects");
		DIR *pd = opendir(projects);
		struct dirent *de;
		while (pd && (de = readdir(pd)))
			if (de->d_name[0] != '.') {
				cleanup_free char *one = path_join(projects, de->d_name);
				project_status(c, one, list);
			}
		if (pd)
			closedir(pd);
	}
	if (depth >= LS_MAX_DEPTH)
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, "node_modules") == 0)
			continue;
		cleanup_free char *sub = path_join(dir, de->d_name);
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			walk(c, sub, depth + 1, list);
	}
	closedir(d);
}

/* Adds the projects a runtime knows of that the tree did not show. Quiet
 * when the runtime is not there, unless it was asked for by name. */
static void runtime_projects(struct cli *c, cJSON *list)
{
	const struct runtime_ops *ops = runtime_find("docker");
	const char *asked = c->runtime ? c->runtime : getenv("CPIPE_RUNTIME");
	cJSON *known = NULL;
	struct cp_error err = {0};
	if (!ops || !ops->caps.projects)
		return;
	if (ops->projects(&known, &err) < 0) {
		if (asked && strcmp(asked, ops->name) == 0)
			fprintf(stderr, "cpipe: warning: %s\n", err.msg);
		return;
	}
	const cJSON *k, *o;
	cJSON_ArrayForEach(k, known)
	{
		const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(k, "name"));
		bool seen = false;
		cJSON_ArrayForEach(o, list)
			seen |= strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(o, "name")), name) == 0;
		if (seen)
			continue;
		cJSON *e = cJSON_Duplicate(k, true);
		cJSON_AddArrayToObject(e, "files");
		cJSON_AddStringToObject(e, "runtime", ops->name);
		cJSON_AddItemToArray(list, e);
	}
	cJSON_Delete(known);
}

static int by_name(const void *a, const void *b)
{
	const char *x = cJSON_GetStringValue(cJSON_GetObjectItem(*(cJSON *const *)a, "name"));
	const char *y = cJSON_GetStringValue(cJSON_GetObjectItem(*(cJSON *const *)b, "name"));
	return strcmp(x, y);
}

int cmd_ls(struct cli *c, int argc, char **argv)
{
	int rc = cli_parse_common(c, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage_error(argv[0]);
	cleanup_free char *cwd = getcwd(NULL, 0);
	if (!cwd) {
		fprintf(stderr, "cpipe: cannot get the current directory\n");
		return EXIT_USAGE;
	}
	cJSON *list = cJSON_CreateArray();
	walk(c, c->dir ? c->dir : cwd, 0, list);
	runtime_projects(c, list);
	size_t n = (size_t)cJSON_GetArraySize(list);
	cJSON **items = xcalloc(n + 1, sizeof(*items));
	for (size_t i = 0; i < n; i++)
		items[i] = cJSON_GetArrayItem(list, (int)i);
	qsort(items, n, sizeof(*items), by_name);
	if (c->json) {
		cJSON *sorted = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++)
			cJSON_AddItemReferenceToArray(sorted, items[i]);
		cli_print_json(sorted);
		cJSON_Delete(sorted);
	} else {
		if (!c->quiet)
			printf("%-20s %-24s %s\n", "NAME", "STATUS", "CONFIG FILES");
		for (size_t i = 0; i < n; i++) {
			const cJSON *o = items[i];
			const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(o, "name"));
			if (c->quiet) {
				puts(name);
				continue;
			}
			char status[64];
			const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(o, "status"));
			int up = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "running"));
			int down = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(o, "exited"));
			if (why)
				snprintf(status, sizeof(status), "%s", why);
			else if ((up || down) &&
				 cJSON_GetObjectItem(o, "runtime"))
				snprintf(status, sizeof(status), "running(%d)%s%.0d%s on %s", up,
					 down ? ", exited(" : "", down, down ? ")" : "",
					 cJSON_GetStringValue(cJSON_GetObjectItem(o, "runtime")));
			else if (up || down)
				snprintf(status, sizeof(status), "running(%d)%s%.0d%s", up,
					 down ? ", exited(" : "", down, down ? ")" : "");
			else
				snprintf(status, sizeof(status), "no services up");
			printf("%-20s %-24s ", name, status);
			const cJSON *f;
			cJSON_ArrayForEach(f, cJSON_GetObjectItem(o, "files"))
				printf("%s%s", f == cJSON_GetObjectItem(o, "files")->child ? "" : ",",
				       cJSON_GetStringValue(f));
			putchar('\n');
		}
	}
	free(items);
	cJSON_Delete(list);
	return EXIT_OK;
}
