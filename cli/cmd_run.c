#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "../pipeline/task.h"
#include "../pipeline/exec.h"
#include "../pipeline/plan.h"
#include "../artifacts/redact.h"
#include "../artifacts/remote.h"
#include "../artifacts/store.h"
#include "../pipeline/track.h"
#include "cli.h"
#include "opts.h"

int cli_parse_set(struct cli *c, const char *arg, struct cp_error *err)
{
	const char *eq = strchr(arg, '=');
	const char *dot = strchr(arg, '.');
	if (!eq || !dot || dot > eq || dot == arg || dot + 1 == eq)
		return cp_error_set(
		    err, EXIT_USAGE,
		    "--set %s: expected STAGE.PARAM=VALUE (e.g. --set train.lr=0.1)", arg);
	cleanup_free char *key = xstrndup(arg, (size_t)(eq - arg));
	kvvec_set(&c->sets, key, eq + 1);
	return 0;
}

static void split_profiles(struct strvec *out, const char *list)
{
	if (!list)
		return;
	cleanup_free char *copy = xstrdup(list);
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (*t)
			strvec_push(out, t);
}

/* Appends `word`, secrets masked, as a shell would need it typed: bare
 * when safe, else in single quotes. */
static void add_word(struct strbuf *line, const struct pipeline *p, const char *word)
{
	cleanup_free char *w = redactor_text(&p->secrets, word);
	if (line->len)
		sb_addc(line, ' ');
	/* A masked word stays readable: its secret is gone either way. */
	if (redactor_hits(&p->secrets, word) ||
	    (*w && w[strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			      "0123456789_./:=@%+,-")] == '\0')) {
		sb_adds(line, w);
		return;
	}
	sb_addc(line, '\'');
	for (const char *c = w; *c; c++)
		if (*c == '\'')
			sb_adds(line, "'\\''");
		else
			sb_addc(line, *c);
	sb_addc(line, '\'');
}

/* The command a stage would run, secrets masked. Caller frees. */
static char *stage_command(const struct pipeline *p, const struct stage *s)
{
	struct strbuf line = STRBUF_INIT;
	for (size_t i = 0; i < s->entrypoint.n; i++)
		add_word(&line, p, s->entrypoint.v[i]);
	for (size_t i = 0; i < s->command.n; i++)
		add_word(&line, p, s->command.v[i]);
	char *text = xstrdup(sb_str(&line));
	sb_free(&line);
	return text;
}

/* Whether a job `s` depends on will run or be restored (`changes`, by
 * stage index): then the key `s` will have is not known yet. */
static bool upstream_changes(const struct pipeline *p, const struct stage *s, const bool *changes)
{
	for (size_t d = 0; d < s->ndeps; d++) {
		const struct stage *up = pipeline_stage(p, s->deps[d].stage);
		if (up && changes[up - p->stages])
			return true;
	}
	return false;
}

/* --dry-run: per stage in plan order what run would do (run and why,
 * restore, skip, service) and the command it would start, decided the way
 * status decides it: read-only, nothing built, pulled, run or restored.
 * Restore is promised only when nothing upstream changes first, so the
 * key it was looked up under is the key the run will have. */
static int dry_run_print(struct tracker *t, const struct plan *plan, bool json,
			 struct cp_error *err)
{
	const struct pipeline *p = plan->p;
	if (track_prefetch(t, plan, err) < 0)
		return -1;
	int width = 5;
	for (size_t k = 0; k < plan->n; k++)
		if ((int)strlen(p->stages[plan->order[k]].name) > width)
			width = (int)strlen(p->stages[plan->order[k]].name);
	cleanup_free bool *changes = xcalloc(p->nstages ? p->nstages : 1, sizeof(*changes));
	cJSON *doc = cJSON_CreateObject();
	cJSON *list = cJSON_AddArrayToObject(doc, "stages");
	for (size_t k = 0; k < plan->n; k++) {
		const struct stage *s = &p->stages[plan->order[k]];
		cJSON *reasons = NULL;
		if (track_status(&reasons, t, s, err) < 0) {
			cJSON_Delete(doc);
			return -1;
		}
		const char *from = NULL, *act = "run";
		if (s->service)
			act = "service";
		else if (!reasons->child)
			act = "skip";
		else if (!track_forced(t, s) && !upstream_changes(p, s, changes) &&
			 (from = track_restorable(t, s)))
			act = "restore";
		changes[s - p->stages] = !s->service && reasons->child;
		cleanup_free char *cmd = stage_command(p, s);
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", s->name);
		cJSON_AddStringToObject(e, "action", act);
		if (from)
			cJSON_AddStringToObject(e, "restore_from", from);
		cJSON_AddStringToObject(e, "command", cmd);
		cJSON_AddItemToObject(e, "reasons", reasons);
		cJSON_AddItemToArray(list, e);
		if (json)
			continue;
		printf("%-*s  %-7s", width, s->name, act);
		if (from)
			printf(" from run %s", from);
		else if (!s->service && !reasons->child)
			printf(" (up to date)");
		/* The first reason on the stage's line, the rest below it, as status. */
		for (const cJSON *r = from ? NULL : reasons->child; r; r = r->next)
			if (r == reasons->child)
				printf(" %s", r->valuestring);
			else
				printf("\n%-*s  %-7s %s", width, "", "", r->valuestring);
		if (strcmp(act, "run") == 0 || s->service)
			printf("\n%-*s  %-7s $ %s", width, "", "", cmd);
		putchar('\n');
	}
	if (json) {
		cli_print_json(doc);
	}
	cJSON_Delete(doc);
	return 0;
}

/* run STAGE -- CMD: the stage runs CMD (after its entrypoint) once, as a
 * job whatever it is, always (never skipped nor restored), its outputs
 * observed rather than required. */
static void make_one_off(struct stage *s, char **cmd, int n)
{
	strvec_free(&s->command);
	for (int i = 0; i < n; i++)
		strvec_push(&s->command, cmd[i]);
	s->has_command = true;
	s->service = false;
	for (size_t i = 0; i < s->noutputs; i++) {
		free(s->outputs[i].volume);
		free(s->outputs[i].path);
	}
	for (size_t i = 0; i < s->nmetrics; i++) {
		free(s->metrics[i].volume);
		free(s->metrics[i].path);
	}
	s->noutputs = s->nmetrics = 0;
	s->outputs_declared = true; /* always runs: nothing to skip it by */
}

/* run and up share everything but which services stay up. */
static int run_or_up(struct cli *c, int argc, char **argv, bool up)
{
	struct cp_error err = {0};
	bool no_deps = false, dry_run = false, force = false, force_all = false;
	bool keep_serving = false, pull = false, no_tty = false;
	const char *remote_flag = NULL;
	struct remote *remote = NULL;
	bool *forced = NULL;
	struct strvec names = {0};
	struct tracker *tracker = NULL;
	struct strvec cmdline = {0};
	int jobs = 1;
	const char *name = NULL;
	enum progress_mode progress = PROGRESS_AUTO;
	struct strvec profiles = {0};
	struct pipeline *p = NULL;
	struct plan plan = {0};
	struct runtime *rt = NULL;
	struct task_notes notes = {0}; /* the runtime's warnings: progress, record */
	const struct runtime_ops *ops = NULL;
	cleanup_free char *state = NULL;
	cleanup_free char *run_id = NULL;
	int lock_fd = -1;
	int rc = EXIT_USAGE;
	int opt;

	/* The record keeps the command line as typed; parsing permutes argv. */
	strvec_push(&cmdline, "cpipe");
	for (int i = 0; i < argc; i++)
		strvec_push(&cmdline, argv[i]);
	/* run STAGE -- CMD ARGS...: what follows -- is the command, not
	 * options nor stages. */
	int one_off_at = -1;
	for (int i = 1; !up && i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			one_off_at = i;
			break;
		}
	int opt_argc = one_off_at >= 0 ? one_off_at : argc;
	while ((opt = cli_getopt(c, opt_argc, argv)) >= 0) {
		switch (opt) {
		case 'n':
			no_deps = true;
			break;
		case 'd':
			dry_run = true;
			break;
		case 'F':
			force = true;
			break;
		case 'A':
			force_all = true;
			break;
		case 'K':
			keep_serving = true;
			break;
		case 'j': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 1024) {
				cp_error_set(&err, EXIT_USAGE,
					     "-j %s: expected a number of jobs from 1 to 1024",
					     optarg);
				goto fail;
			}
			jobs = (int)n;
			break;
		}
		case 's':
			if (cli_parse_set(c, optarg, &err) < 0)
				goto fail;
			break;
		case 'p':
			split_profiles(&profiles, optarg);
			break;
		case 'N':
			if (!*optarg || strlen(optarg) > 64 ||
			    optarg[strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					  "0123456789._-")] ||
			    str_has_prefix(optarg, "latest")) {
				cp_error_set(&err, EXIT_USAGE,
					     "--name %s: a run's name is 1 to 64 letters, digits, "
					     "'.', '_' or '-', not starting with \"latest\"",
					     optarg);
				goto fail;
			}
			name = optarg;
			break;
		case 'P':
			pull = true;
			break;
		case 'E':
			remote_flag = optarg;
			break;
		case 'G':
			if (progress_mode_parse(&progress, optarg, &err) < 0)
				goto fail;
			break;
		case 'T':
			no_tty = true;
			break;
		case 'r': /* run --rm: cpipe leaves no stopped container behind anyway */
		case 'D': /* up -d: up returns once the services are healthy anyway */
		case 'W': /* up --wait: the same */
		case 'B': /* up --build: a run builds what has build: anyway */
			break;
		}
	}
	if (opt != -1) {
		rc = cli_opt_exit(opt);
		goto out;
	}
	int names_from = optind, names_to = opt_argc;
	if (one_off_at >= 0 && optind == opt_argc) {
		/* run -- NAMES: -- only ends the options. */
		names_from = one_off_at + 1;
		names_to = argc;
		one_off_at = -1;
	}
	if (one_off_at >= 0 && (opt_argc - optind != 1 || one_off_at + 1 >= argc)) {
		fprintf(stderr, "usage: cpipe run [OPTIONS] STAGE -- CMD [ARGS...]; see cpipe run "
				"--help\n");
		rc = EXIT_USAGE;
		goto out;
	}
	c->image_warnings = true;
	if (cli_load(&p, c, &err) < 0)
		goto fail;
	{
		const struct kv *kv = kvvec_get(&c->env, "COMPOSE_PROFILES");
		struct strvec chosen = {0};
		split_profiles(&chosen, kv ? kv->value : NULL);
		split_profiles(&chosen, getenv("CPIPE_PROFILES"));
		for (size_t i = 0; i < profiles.n; i++)
			strvec_push(&chosen, profiles.v[i]);
		strvec_free(&profiles);
		profiles = chosen;
	}
	if (remote_flag && !pull) {
		cp_error_set(&err, EXIT_USAGE, "--remote %s: only with --pull (cpipe push uploads)",
			     remote_flag);
		goto fail;
	}
	if (pull && !dry_run) {
		const char *url = remote_choose(remote_flag, p->remote);
		if (!url) {
			cp_error_set(&err, EXIT_USAGE,
				     "run --pull: no remote: set CPIPE_REMOTE, pass --remote URL "
				     "or add x-cpipe: {remote: URL} to the spec");
			goto fail;
		}
		if (remote_open(&remote, url, p->dir, &err) < 0)
			goto fail;
	}
	for (int i = names_from; i < names_to; i++)
		strvec_push(&names, argv[i]);
	long one_off = -1;
	if (one_off_at >= 0) {
		if ((one_off = pipeline_stage_index(p, names.v[0])) < 0) {
			pipeline_unknown_stage(p, names.v[0], &err);
			goto fail;
		}
		make_one_off(&p->stages[one_off], argv + one_off_at + 1, argc - one_off_at - 1);
	}
	bool typed_names = names.n > 0;
	if (up && names.n == 0)
		for (size_t i = 0; i < p->nstages; i++)
			if (p->stages[i].service)
				strvec_push(&names, p->stages[i].name);
	if (up && names.n == 0) {
		cp_error_set(&err, EXIT_USAGE,
			     "the spec has no service (a stage with service: true) to bring up");
		goto fail;
	}
	for (size_t i = 0; up && i < names.n; i++) {
		const struct stage *s = pipeline_stage(p, names.v[i]);
		if (s && !s->service) {
			cp_error_set(&err, EXIT_USAGE,
				     "stage \"%s\" is a job, not a service; use cpipe run %s",
				     s->name, s->name);
			goto fail;
		}
	}
	if (plan_build(&plan, p, (const char *const *)names.v, names.n, no_deps, &profiles,
		       &err) < 0)
		goto fail;
	if (cli_runtime(&ops, c, p, &err) < 0)
		goto fail;
	if (plan_check_runnable(&plan, ops->name, ops->caps.images, &err) < 0)
		goto fail;
	/* --force STAGE... forces those; their upstream runs only if stale.
	 * --force alone and --force-all force everything selected. */
	forced = xcalloc(p->nstages ? p->nstages : 1, sizeof(*forced));
	for (size_t i = 0; i < p->nstages; i++)
		forced[i] = plan.selected[i] &&
			    (force_all || (force && (!typed_names || plan.named[i])) ||
			     (long)i == one_off);
	if (dry_run) {
		struct track_options to = {.plan = &plan, .forced = forced};
		if (!(state = cli_state_dir(p, true, &err)) ||
		    task_runtime_open(ops, &rt, p, state, &err) < 0)
			goto fail;
		to.state_dir = state;
		if (track_open(&tracker, p, ops, rt, &to, &err) < 0 ||
		    dry_run_print(tracker, &plan, c->json, &err) < 0)
			goto fail;
		rc = EXIT_OK;
		goto out;
	}
	run_id = exec_new_run_id();
	struct exec_options eo = {.jobs = jobs, .quiet = c->quiet, .run_id = run_id,
				  .keep_serving = keep_serving, .up = up,
				  .logs_to_stderr = c->json, .progress = progress,
				  .no_tty = no_tty, .notes = &notes};
	{ /* the lock file's name lives only as long as this block */
		if (!(state = cli_state_dir(p, true, &err)))
			goto fail;
		cleanup_free char *lock = path_join(state, "lock");
		if (fs_lock(&lock_fd, lock, "running", &err) < 0)
			goto fail;
		notes.secrets = &p->secrets;
		if (task_runtime_open_notes(ops, &rt, p, state, &notes, &err) < 0)
			goto fail;
		eo.state_dir = state;
		struct track_options to = {.state_dir = state, .run_id = run_id, .forced = forced,
					   .quiet = c->quiet,
					   .plan = &plan, .runtime_name = ops->name,
					   .argv = &cmdline, .one_off = one_off >= 0,
					   .name = name, .remote = remote, .notes = &notes};
		if (track_open(&tracker, p, ops, rt, &to, &err) < 0)
			goto fail;
		eo.hooks = (struct exec_hooks){.ctx = tracker, .before = track_before,
					       .after = track_after, .ran = track_ran};
	}
	int erc = exec_run(&plan, ops, rt, &eo, &err);
	const char *status = erc == 0 ? "succeeded"
			     : err.code == EXIT_INTERRUPTED ? "interrupted"
							    : "failed";
	struct cp_error cerr = {0};
	int crc = track_close(tracker, status, &cerr);
	tracker = NULL;
	if (c->json) {
		/* One JSON document on stdout: the run's record. */
		cJSON *rec = NULL;
		struct cp_error rerr = {0};
		if (record_load(&rec, state, run_id, &rerr) == 0) {
			cli_print_json(rec);
			cJSON_Delete(rec);
		}
	}
	if (erc < 0)
		goto fail;
	if (crc < 0) {
		err = cerr;
		goto fail;
	}
	rc = EXIT_OK;
	goto out;
fail:
	rc = cli_fail(&err);
out:
	track_close(tracker, NULL, NULL);
	remote_close(remote);
	strvec_free(&cmdline);
	if (rt)
		ops->close(rt);
	task_notes_free(&notes);
	if (lock_fd >= 0)
		close(lock_fd);
	plan_free(&plan);
	pipeline_free(p);
	strvec_free(&profiles);
	strvec_free(&names);
	free(forced);
	return rc;
}

int cmd_run(struct cli *c, int argc, char **argv)
{
	return run_or_up(c, argc, argv, false);
}

int cmd_up(struct cli *c, int argc, char **argv)
{
	return run_or_up(c, argc, argv, true);
}
