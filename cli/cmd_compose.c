/* Compose's verbs on services left up: exec, stop, start, restart, kill,
 * rm, port, top; and images. A service is one with a state file under
 * .cpipe/services (see pipeline/services.h); stop leaves the file, so
 * start and restart bring the service up again from the spec. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "../pipeline/exec.h"
#include "../pipeline/services.h"
#include "../pipeline/task.h"
#include "cli.h"
#include "opts.h"
#include "svc.h"

/* Whether option word `w` of verb `verb` takes the next word as its
 * argument (`-f FILE`, `--project-name NAME`, not `--file=FILE`). */
static bool takes_next(const char *verb, const char *w)
{
	const struct cli_verb *v = cli_verb_find(verb);
	const struct cli_opt *tables[] = {v ? v->opts : NULL, cli_global_opts};
	for (size_t t = 0; t < ARRAY_LEN(tables); t++)
		for (const struct cli_opt *o = tables[t]; o && o->name; o++) {
			if (!o->arg)
				continue;
			if (w[1] != '-' && o->letter && w[1] == o->letter && !w[2])
				return true;
			if (w[1] == '-' && strcmp(w + 2, o->name) == 0)
				return true;
		}
	return false;
}

/* exec STAGE CMD...: options end at STAGE, the rest is the command. The
 * index of STAGE, argc when there is none. */
static int operand_at(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return i + 1;
		if (argv[i][0] != '-' || !argv[i][1])
			return i;
		if (takes_next(argv[0], argv[i]))
			i++;
	}
	return argc;
}

/* The state of service `name`: 0, or 1 with a message when it has none. */
static int load_state(cJSON **st, struct svc_ctx *x, const char *name, struct cp_error *err)
{
	int rc = service_state_load(st, x->state, name, err);
	if (rc == 1) {
		cp_error_set(err, EXIT_STAGE_FAILED,
			     "service %s is not up (see cpipe ps; start it with cpipe up %s)", name,
			     name);
	}
	return rc;
}

int cmd_exec(struct cli *c, int argc, char **argv)
{
	int at = operand_at(argc, argv);
	int opt;
	while ((opt = cli_getopt(c, at, argv)) >= 0)
		; /* -T: there is no terminal to allocate anyway */
	if (opt != -1)
		return cli_opt_exit(opt);
	if (optind != at || at >= argc)
		return cli_usage_error(argv[0]);
	const char *name = argv[at];
	char **cmd = argv + at + 1;
	if (*cmd && strcmp(*cmd, "--") == 0)
		cmd++;
	if (!*cmd)
		return cli_usage_error(argv[0]);
	struct cp_error err = {0};
	struct svc_ctx x;
	cJSON *st = NULL;
	struct kvvec env = {0};
	struct runtime *rt = NULL, *owned = NULL;
	const struct runtime_ops *ops = NULL;
	int code = 0, rc;
	if (svc_open(&x, c, false, &err) < 0)
		goto fail;
	const struct stage *s = pipeline_stage(x.p, name);
	if (!s) {
		pipeline_unknown_stage(x.p, name, &err);
		goto fail;
	}
	if (load_state(&st, &x, name, &err) != 0 || !(ops = svc_state_ops(&x, st, &rt, &owned, &err)))
		goto fail;
	if (!ops->caps.attach) {
		cp_error_set(&err, EXIT_RUNTIME, "the %s runtime cannot exec into a service",
			     ops->name);
		goto fail;
	}
	exec_stage_env(&env, x.p, s, cJSON_GetStringValue(cJSON_GetObjectItem(st, "run")));
	struct task_desc desc;
	task_desc_init(&desc, x.p, s);
	struct task_spec ts = {.desc = &desc, .env = &env};
	fflush(stdout);
	if (ops->handle_exec(rt, cJSON_GetObjectItem(st, "handle"), &ts, cmd, &code, &err) < 0) {
		if (!err.code)
			err.code = EXIT_STAGE_FAILED;
		goto fail;
	}
	rc = code;
	goto out;
fail:
	rc = cli_fail(&err);
out:
	if (owned)
		ops->close(owned);
	kvvec_free(&env);
	cJSON_Delete(st);
	svc_close(&x);
	return rc;
}

/* The services the verb acts on: those named (each must be a stage), else
 * every one with a state file. */
static int pick(struct strvec *out, struct svc_ctx *x, int argc, char **argv, struct cp_error *err)
{
	struct strvec all = {0};
	if (service_state_names(&all, x->state, err) < 0)
		return -1;
	for (int i = optind; i < argc; i++) {
		if (!pipeline_stage(x->p, argv[i])) {
			strvec_free(&all);
			return pipeline_unknown_stage(x->p, argv[i], err);
		}
		bool has = false;
		for (size_t k = 0; k < all.n && !has; k++)
			has = strcmp(all.v[k], argv[i]) == 0;
		if (has)
			strvec_push(out, argv[i]);
	}
	if (optind >= argc)
		for (size_t k = 0; k < all.n; k++)
			strvec_push(out, all.v[k]);
	strvec_free(&all);
	return 0;
}

enum svc_act { ACT_STOP, ACT_KILL, ACT_RM };

/* Stops (keeping its state), signals, or forgets (when not running) one
 * service. 1 when there was nothing to do. */
static int act_one(struct svc_ctx *x, const char *name, enum svc_act act, int sig,
		   struct cp_error *err)
{
	cJSON *st = NULL;
	if (service_state_load(&st, x->state, name, err) != 0)
		return 1;
	struct runtime *rt = NULL, *owned = NULL;
	const struct runtime_ops *ops = svc_state_ops(x, st, &rt, &owned, err);
	const cJSON *h = cJSON_GetObjectItem(st, "handle");
	bool up = ops && svc_alive(x, st);
	const struct stage *s = pipeline_stage(x->p, name);
	int rc = 1; /* nothing to do */
	if (!ops) {
		rc = -1;
	} else if (act == ACT_STOP && up) {
		long grace = s ? s->stop_grace_ms : CP_STOP_GRACE_MS;
		rc = ops->caps.detached ? ops->handle_stop(rt, h, grace, err) : -1;
	} else if (act == ACT_KILL && up) {
		rc = ops->caps.attach ? ops->handle_kill(rt, h, sig, err) : -1;
	} else if (act == ACT_RM && !up) {
		/* What the runtime still holds for it (a stopped container). */
		rc = ops->caps.detached ? ops->handle_stop(rt, h, 0, err) : 0;
		if (rc == 0)
			service_state_remove(x->state, name);
	}
	if (rc < 0 && !err->msg[0])
		cp_error_set(err, EXIT_USAGE, "the %s runtime cannot do that to service %s",
			     ops ? ops->name : "?", name);
	if (owned)
		ops->close(owned);
	cJSON_Delete(st);
	return rc;
}

static int act_all(struct cli *c, struct svc_ctx *x, int argc, char **argv, enum svc_act act,
		   int sig, struct strvec *done, struct cp_error *err)
{
	static const char *const said[] = {"stopped", "killed", "removed"};
	struct strvec names = {0};
	int rc = pick(&names, x, argc, argv, err);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		int r = act_one(x, names.v[i], act, sig, err);
		if (r < 0)
			rc = -1;
		else if (r == 0 && done)
			strvec_push(done, names.v[i]);
		if (r == 0 && !c->quiet)
			printf("%s %s\n", said[act], names.v[i]);
	}
	strvec_free(&names);
	return rc;
}

/* Brings `names` up again: `cpipe up --no-deps NAMES`, from the spec. */
static int up_again(struct cli *c, const struct strvec *names)
{
	if (!names->n)
		return EXIT_OK;
	char **av = xcalloc(names->n + 3, sizeof(*av));
	av[0] = (char *)"up";
	av[1] = (char *)"--no-deps";
	for (size_t i = 0; i < names->n; i++)
		av[i + 2] = names->v[i];
	optind = 0;
	int rc = cmd_up(c, (int)names->n + 2, av);
	free(av);
	return rc;
}

int cmd_stop(struct cli *c, int argc, char **argv)
{
	int rc = cli_parse_common(c, argc, argv);
	if (rc >= 0)
		return rc;
	struct cp_error err = {0};
	struct svc_ctx x;
	rc = svc_open(&x, c, true, &err) < 0 || act_all(c, &x, argc, argv, ACT_STOP, 0, NULL, &err) < 0
		     ? cli_fail(&err)
		     : EXIT_OK;
	svc_close(&x);
	return rc;
}

/* start (only stopped ones) and restart (stopping the running first). */
static int start_or_restart(struct cli *c, int argc, char **argv, bool restart)
{
	int rc = cli_parse_common(c, argc, argv);
	if (rc >= 0)
		return rc;
	struct cp_error err = {0};
	struct svc_ctx x;
	struct strvec names = {0}, again = {0};
	if (svc_open(&x, c, true, &err) < 0 || pick(&names, &x, argc, argv, &err) < 0 ||
	    (restart && act_all(c, &x, argc, argv, ACT_STOP, 0, NULL, &err) < 0)) {
		rc = cli_fail(&err);
		svc_close(&x);
		goto out;
	}
	/* Each comes up again on the runtime that ran it, whatever --runtime
	 * says now: `again` holds NAME and its runtime's name, in pairs. */
	for (size_t i = 0; i < names.n; i++) {
		cJSON *st = NULL;
		if (service_state_load(&st, x.state, names.v[i], &err) == 0 && !svc_alive(&x, st)) {
			const char *r = cJSON_GetStringValue(cJSON_GetObjectItem(st, "runtime"));
			strvec_push(&again, names.v[i]);
			strvec_push(&again, r ? r : x.ops->name);
		}
		cJSON_Delete(st);
	}
	svc_close(&x); /* up takes the project lock itself */
	rc = EXIT_OK;
	const char *given = c->runtime;
	for (size_t i = 0; rc == EXIT_OK && i < again.n; i += 2) {
		struct strvec group = {0};
		bool first = true;
		for (size_t k = 0; k < i && first; k += 2)
			first = strcmp(again.v[k + 1], again.v[i + 1]) != 0;
		if (!first)
			continue; /* that runtime's group came up already */
		for (size_t k = i; k < again.n; k += 2)
			if (strcmp(again.v[k + 1], again.v[i + 1]) == 0)
				strvec_push(&group, again.v[k]);
		c->runtime = again.v[i + 1];
		rc = up_again(c, &group);
		strvec_free(&group);
	}
	c->runtime = given;
out:
	strvec_free(&names);
	strvec_free(&again);
	return rc;
}

int cmd_start(struct cli *c, int argc, char **argv)
{
	return start_or_restart(c, argc, argv, false);
}

int cmd_restart(struct cli *c, int argc, char **argv)
{
	return start_or_restart(c, argc, argv, true);
}

/* "KILL", "SIGKILL", "9": the signal number, or -1. */
static int parse_signal(const char *s)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (*s && !*end)
		return n > 0 && n < NSIG ? (int)n : -1;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (int i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);
		if (abbrev && strcasecmp(abbrev, s) == 0)
			return i;
	}
	return -1;
}

int cmd_kill(struct cli *c, int argc, char **argv)
{
	int sig = SIGKILL, opt;
	while ((opt = cli_getopt(c, argc, argv)) == 's')
		if ((sig = parse_signal(optarg)) < 0) {
			fprintf(stderr, "cpipe: kill -s %s: not a signal (a name such as TERM or a "
					"number)\n", optarg);
			return EXIT_USAGE;
		}
	if (opt != -1)
		return cli_opt_exit(opt);
	struct cp_error err = {0};
	struct svc_ctx x;
	int rc = svc_open(&x, c, false, &err) < 0 ||
			 act_all(c, &x, argc, argv, ACT_KILL, sig, NULL, &err) < 0
		 ? cli_fail(&err)
		 : EXIT_OK;
	svc_close(&x);
	return rc;
}

int cmd_rm(struct cli *c, int argc, char **argv)
{
	bool stop_first = false;
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0)
		if (opt == 's')
			stop_first = true; /* -f: there is no question to skip */
	if (opt != -1)
		return cli_opt_exit(opt);
	struct cp_error err = {0};
	struct svc_ctx x;
	int rc = svc_open(&x, c, true, &err) < 0 ||
			 (stop_first && act_all(c, &x, argc, argv, ACT_STOP, 0, NULL, &err) < 0) ||
			 act_all(c, &x, argc, argv, ACT_RM, 0, NULL, &err) < 0
		 ? cli_fail(&err)
		 : EXIT_OK;
	svc_close(&x);
	return rc;
}

int cmd_port(struct cli *c, int argc, char **argv)
{
	const char *proto = "tcp";
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) == 'P')
		proto = optarg;
	if (opt != -1)
		return cli_opt_exit(opt);
	if (argc - optind != 2)
		return cli_usage_error(argv[0]);
	const char *name = argv[optind];
	cleanup_free char *want = xstrdup(argv[optind + 1]);
	char *slash = strchr(want, '/');
	if (slash) {
		*slash = '\0';
		proto = slash + 1;
	}
	char *end;
	long port = strtol(want, &end, 10);
	if (*end || port < 1 || port > 65535) {
		fprintf(stderr, "cpipe: port %s: expected PORT or PORT/PROTOCOL, PORT from 1 to "
				"65535\n", argv[optind + 1]);
		return EXIT_USAGE;
	}
	struct cp_error err = {0};
	struct svc_ctx x;
	cJSON *st = NULL;
	int rc = EXIT_STAGE_FAILED;
	if (svc_open(&x, c, false, &err) < 0)
		goto fail;
	if (!pipeline_stage(x.p, name)) {
		pipeline_unknown_stage(x.p, name, &err);
		goto fail;
	}
	if (load_state(&st, &x, name, &err) != 0)
		goto fail;
	const cJSON *pt;
	cJSON_ArrayForEach(pt, cJSON_GetObjectItem(st, "ports"))
	{
		const char *pr = cJSON_GetStringValue(cJSON_GetObjectItem(pt, "protocol"));
		if ((long)cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "container_port")) != port ||
		    strcmp(pr ? pr : "tcp", proto) != 0)
			continue;
		printf("%s:%d\n", cJSON_GetStringValue(cJSON_GetObjectItem(pt, "host_ip")),
		       (int)cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "host_port")));
		rc = EXIT_OK;
		goto out;
	}
	cp_error_set(&err, EXIT_STAGE_FAILED, "service %s publishes no port %ld/%s", name, port,
		     proto);
fail:
	rc = cli_fail(&err);
out:
	cJSON_Delete(st);
	svc_close(&x);
	return rc;
}

/* One row per process, the daemon's columns. */
static void print_top(const char *name, const cJSON *top)
{
	const cJSON *t, *row;
	printf("%s\n", name);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(top, "Titles"))
		printf("%s%s", t == cJSON_GetObjectItem(top, "Titles")->child ? "" : "\t",
		       cJSON_GetStringValue(t));
	putchar('\n');
	cJSON_ArrayForEach(row, cJSON_GetObjectItem(top, "Processes"))
	{
		cJSON_ArrayForEach(t, row)
			printf("%s%s", t == row->child ? "" : "\t", cJSON_GetStringValue(t));
		putchar('\n');
	}
	putchar('\n');
}

int cmd_top(struct cli *c, int argc, char **argv)
{
	int rc = cli_parse_common(c, argc, argv);
	if (rc >= 0)
		return rc;
	struct cp_error err = {0};
	struct svc_ctx x;
	struct strvec names = {0};
	cJSON *all = cJSON_CreateObject();
	rc = EXIT_OK;
	if (svc_open(&x, c, false, &err) < 0 || pick(&names, &x, argc, argv, &err) < 0)
		goto fail;
	for (size_t i = 0; i < names.n; i++) {
		cJSON *st = NULL, *top = NULL;
		if (service_state_load(&st, x.state, names.v[i], &err) != 0)
			continue;
		struct runtime *rt = NULL, *owned = NULL;
		const struct runtime_ops *ops = svc_state_ops(&x, st, &rt, &owned, &err);
		int r = !ops ? -1 : !svc_alive(&x, st) || !ops->caps.top ? 1
			: ops->handle_top(rt, cJSON_GetObjectItem(st, "handle"), &top, &err);
		if (owned)
			ops->close(owned);
		cJSON_Delete(st);
		if (r < 0)
			goto fail;
		if (r == 1)
			continue;
		if (!c->json)
			print_top(names.v[i], top);
		cJSON_AddItemToObject(all, names.v[i], top);
	}
	if (c->json) {
		cli_print_json(all);
	}
	goto out;
fail:
	rc = cli_fail(&err);
out:
	cJSON_Delete(all);
	strvec_free(&names);
	svc_close(&x);
	return rc;
}

int cmd_images(struct cli *c, int argc, char **argv)
{
	int rc = cli_parse_common(c, argc, argv);
	if (rc >= 0)
		return rc;
	struct cp_error err = {0};
	struct svc_ctx x;
	cJSON *arr = cJSON_CreateArray();
	rc = EXIT_OK;
	if (svc_open(&x, c, false, &err) < 0)
		goto fail;
	for (int i = optind; i < argc; i++)
		if (!pipeline_stage(x.p, argv[i])) {
			pipeline_unknown_stage(x.p, argv[i], &err);
			goto fail;
		}
	if (!c->json && !c->quiet)
		printf("%-16s %-32s %s\n", "STAGE", "IMAGE", "ID");
	for (size_t i = 0; i < x.p->nstages; i++) {
		const struct stage *s = &x.p->stages[i];
		bool named = optind >= argc;
		for (int k = optind; k < argc && !named; k++)
			named = strcmp(argv[k], s->name) == 0;
		if (!named || (!s->image && !s->build))
			continue;
		cleanup_free char *id = NULL;
		/* Read-only: an image not built or pulled yet has no ID. */
		struct task_desc desc;
		task_desc_init(&desc, x.p, s);
		if (x.ops->caps.images && x.ops->image_prepare(x.rt, &desc, false, &id, &err) < 0)
			goto fail;
		const char *image = s->image ? s->image : "(build)";
		if (c->json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "stage", s->name);
			cJSON_AddStringToObject(o, "image", image);
			if (id)
				cJSON_AddStringToObject(o, "id", id);
			else
				cJSON_AddNullToObject(o, "id");
			cJSON_AddItemToArray(arr, o);
		} else if (c->quiet) {
			if (id)
				puts(id);
		} else {
			printf("%-16s %-32s %s\n", s->name, image,
			       id ? id : x.ops->caps.images ? "(none)" : "-");
		}
	}
	if (c->json) {
		cli_print_json(arr);
	}
	goto out;
fail:
	rc = cli_fail(&err);
out:
	cJSON_Delete(arr);
	svc_close(&x);
	return rc;
}
