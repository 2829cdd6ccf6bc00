/* Looking back: runs, show, lineage, prov, metrics. Reads the run records,
 * cpipe.lock and (for metrics --diff REV) a committed lock; the logic over
 * those documents lives in artifacts/lineage.h. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../artifacts/git.h"
#include "../artifacts/lineage.h"
#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "cli.h"
#include "opts.h"

static void cleanup_json_fn(cJSON **j)
{
	cJSON_Delete(*j);
}
#define cleanup_json __attribute__((cleanup(cleanup_json_fn)))

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

/* The project directory and its .cpipe, found the way every verb finds the
 * spec (-C, -f). Both owned by the caller. */
static int open_project(char **dir, char **state, struct cli *c, struct cp_error *err)
{
	struct pipeline *p = NULL;
	if (cli_load(&p, c, err) < 0)
		return -1;
	*dir = xstrdup(p->dir);
	*state = cli_state_dir(p, false, err);
	pipeline_free(p);
	return 0;
}

/* Parses the verb's options (with --diff, for metrics, into *diff) and
 * checks it got from `min` to `max` operands. Returns -1 to go on, or the
 * exit code after the help or a usage error was printed. */
static int parse_opts(struct cli *c, int argc, char **argv, int min, int max, const char **diff)
{
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) == 'd' && diff)
		*diff = optarg;
	if (opt != -1)
		return cli_opt_exit(opt);
	if (argc - optind < min || argc - optind > max)
		return cli_usage_error(argv[0]);
	return -1;
}

static void print_json(cJSON *doc)
{
	char *text = cJSON_Print(doc);
	puts(text);
	free(text);
}

static void short_digest(char out[16], const char *d)
{
	if (!d || !str_has_prefix(d, "sha256:"))
		snprintf(out, 16, "%s", d ? d : "missing");
	else
		snprintf(out, 16, "%.12s", d + 7);
}

static void human_size(char out[32], const cJSON *size)
{
	if (!cJSON_IsNumber(size)) {
		snprintf(out, 32, "?");
		return;
	}
	double v = size->valuedouble;
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_LEN(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, 32, "%.0f B", v);
	else
		snprintf(out, 32, "%.1f %s", v, units[u]);
}

/* "b7ce8aa+dirty", "-" outside git. Caller owns. */
static char *commit_text(const cJSON *git)
{
	if (!cJSON_IsObject(git))
		return xstrdup("-");
	const char *commit = str_of(git, "commit");
	bool dirty = cJSON_IsTrue(cJSON_GetObjectItem(git, "dirty"));
	if (!commit)
		return xstrdup(dirty ? "(unborn)+dirty" : "(unborn)");
	return xasprintf("%.7s%s", commit, dirty ? "+dirty" : "");
}

/* A record's status, with a "running" run whose process is gone on this
 * host shown as "aborted" (killed before it could write its end). */
static const char *run_status(const cJSON *rec)
{
	const char *status = str_of(rec, "status");
	if (!status)
		return "unknown";
	if (strcmp(status, "running") != 0)
		return status;
	const cJSON *pid = cJSON_GetObjectItem(rec, "pid");
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	const char *rhost = str_of(rec, "host");
	if (cJSON_IsNumber(pid) && pid->valueint > 0 && (!rhost || strcmp(rhost, host) == 0) &&
	    kill((pid_t)pid->valueint, 0) < 0 && errno == ESRCH)
		return "aborted";
	return status;
}

static char *overrides_text(const cJSON *rec)
{
	struct strbuf sb = STRBUF_INIT;
	const cJSON *ov = cJSON_GetObjectItem(rec, "overrides");
	for (const cJSON *o = ov ? ov->child : NULL; o; o = o->next)
		sb_addf(&sb, "%s%s=%s", sb.len ? " " : "", o->string,
			cJSON_GetStringValue(o) ? o->valuestring : "?");
	return sb_detach(&sb);
}

int cmd_runs(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	int prc = parse_opts(c, argc, argv, 0, 0, NULL);
	if (prc >= 0)
		return prc;
	cleanup_free char *dir = NULL, *state = NULL;
	struct strvec ids = {0};
	if (open_project(&dir, &state, c, &err) < 0 || record_ids(&ids, state, &err) < 0)
		return cli_fail(&err);
	cleanup_json cJSON *list = cJSON_CreateArray();
	if (!c->json && !c->quiet && ids.n)
		printf("%-26s %-20s %4s %4s %4s  %-11s %-14s %s\n", "ID", "STARTED (UTC)", "RAN", "SKIP",
		       "FAIL", "STATUS", "COMMIT", "OVERRIDES");
	for (size_t i = ids.n; i-- > 0;) {
		cJSON *rec = NULL;
		if (record_load(&rec, state, ids.v[i], &err) < 0) {
			/* One unreadable record must not hide the others. */
			fprintf(stderr, "cpipe: %s\n", err.msg);
			cp_error_clear(&err);
			continue;
		}
		cJSON *counts = lineage_stage_counts(rec);
		cJSON *row = cJSON_CreateObject();
		cJSON_AddStringToObject(row, "id", ids.v[i]);
		static const char *const copied[] = {"started", "ended", "git", "overrides", "argv"};
		for (size_t k = 0; k < ARRAY_LEN(copied); k++) {
			const cJSON *v = cJSON_GetObjectItem(rec, copied[k]);
			if (v)
				cJSON_AddItemToObject(row, copied[k], cJSON_Duplicate(v, true));
		}
		cJSON_AddStringToObject(row, "status", run_status(rec));
		cJSON_AddItemToObject(row, "stages", counts);
		cJSON_AddItemToArray(list, row);
		if (c->quiet && !c->json) {
			puts(ids.v[i]);
		} else if (!c->json) {
			const char *started = str_of(rec, "started");
			cleanup_free char *commit = commit_text(cJSON_GetObjectItem(rec, "git"));
			cleanup_free char *ov = overrides_text(rec);
			char when[20] = "-";
			if (started && strlen(started) >= 19)
				snprintf(when, sizeof(when), "%.10s %.8s", started, started + 11);
			printf("%-26s %-20s %4d %4d %4d  %-11s ", ids.v[i], when,
			       cJSON_GetObjectItem(counts, "ran")->valueint,
			       cJSON_GetObjectItem(counts, "skipped")->valueint,
			       cJSON_GetObjectItem(counts, "failed")->valueint, run_status(rec));
			if (*ov)
				printf("%-14s %s\n", commit, ov);
			else
				printf("%s\n", commit);
		}
		cJSON_Delete(rec);
	}
	if (c->json)
		print_json(list);
	else if (!c->quiet && ids.n == 0)
		printf("no runs yet; cpipe run records one\n");
	strvec_free(&ids);
	return EXIT_OK;
}

static int load_run(cJSON **rec, const char *state, const char *arg, struct cp_error *err)
{
	cleanup_free char *id = NULL;
	if (record_resolve(&id, state, arg, err) < 0)
		return -1;
	return record_load(rec, state, id, err);
}

/* "185ms", "2.4s", "-" for the span between an object's started and ended. */
static void duration_text(char out[32], const cJSON *o)
{
	long long a = lineage_time_ms(str_of(o, "started")), b = lineage_time_ms(str_of(o, "ended"));
	if (a < 0 || b < a)
		snprintf(out, 32, "-");
	else if (b - a < 1000)
		snprintf(out, 32, "%lldms", b - a);
	else
		snprintf(out, 32, "%.1fs", (double)(b - a) / 1000);
}

static void print_value(const cJSON *v)
{
	if (cJSON_IsNumber(v))
		printf("%.15g", v->valuedouble);
	else if (cJSON_IsString(v))
		printf("%s", v->valuestring);
	else if (cJSON_IsBool(v))
		printf("%s", cJSON_IsTrue(v) ? "true" : "false");
	else
		printf("-");
}

/* One line per artifact; for metrics files, their values from `rows`
 * (lineage_metrics_record of the run) below it. */
static void print_artifacts(const char *label, const cJSON *part, const char *stage,
			    const cJSON *rows)
{
	for (const cJSON *e = part ? part->child : NULL; e; e = e->next) {
		/* Early records listed inputs as an array of {"artifact", ...}. */
		const char *name = e->string ? e->string : str_of(e, "artifact");
		if (!name)
			continue;
		char d[16], sz[32];
		short_digest(d, str_of(e, "digest"));
		human_size(sz, cJSON_GetObjectItem(e, "size"));
		printf("    %-7s %s  %s  %s\n", label, name, d, sz);
		for (const cJSON *r = rows ? rows->child : NULL; r; r = r->next) {
			if (strcmp(str_of(r, "stage"), stage) || strcmp(str_of(r, "file"), name))
				continue;
			printf("            %s = ", str_of(r, "metric"));
			print_value(cJSON_GetObjectItem(r, "value"));
			putchar('\n');
		}
	}
}

/* The record of the one RUN operand of show and prov; EXIT_OK, or the exit
 * code after the usage or error was printed. EXIT_OK with *rec NULL: the
 * help was printed. */
static int run_operand(cJSON **rec, struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	int prc = parse_opts(c, argc, argv, 1, 1, NULL);
	if (prc >= 0)
		return prc; /* *rec stays NULL */
	cleanup_free char *dir = NULL, *state = NULL;
	if (open_project(&dir, &state, c, &err) < 0 || load_run(rec, state, argv[optind], &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}

int cmd_show(struct cli *c, int argc, char **argv)
{
	cleanup_json cJSON *rec = NULL;
	int rc = run_operand(&rec, c, argc, argv);
	if (rc != EXIT_OK || !rec)
		return rc;
	if (c->json) {
		print_json(rec);
		return EXIT_OK;
	}
	printf("run %s  %s\n", str_of(rec, "id"), run_status(rec));
	printf("  started    %s", str_of(rec, "started") ? str_of(rec, "started") : "-");
	char took[32];
	duration_text(took, rec);
	if (str_of(rec, "ended"))
		printf("  (took %s)", took);
	putchar('\n');
	printf("  project    %s  (runtime %s, %s@%s)\n", str_of(rec, "project"),
	       str_of(rec, "runtime"), str_of(rec, "user"), str_of(rec, "host"));
	const cJSON *git = cJSON_GetObjectItem(rec, "git");
	if (cJSON_IsObject(git)) {
		const char *commit = str_of(git, "commit"), *branch = str_of(git, "branch");
		printf("  git        %s%s%s%s\n", commit ? commit : "(unborn)", branch ? " on " : "",
		       branch ? branch : "",
		       cJSON_IsTrue(cJSON_GetObjectItem(git, "dirty")) ? ", dirty" : "");
	}
	cleanup_free char *ov = overrides_text(rec);
	if (*ov)
		printf("  overrides  %s\n", ov);
	const cJSON *av = cJSON_GetObjectItem(rec, "argv");
	if (av) {
		printf("  command   ");
		for (const cJSON *a = av->child; a; a = a->next)
			printf(" %s", cJSON_GetStringValue(a) ? a->valuestring : "?");
		putchar('\n');
	}
	cleanup_json cJSON *rows = lineage_metrics_record(rec);
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const char *status = str_of(st, "status");
		if (!str_of(st, "name"))
			continue;
		duration_text(took, st);
		printf("\n%-12s %-8s %7s", str_of(st, "name"), status ? status : "?", took);
		char k[16];
		short_digest(k, str_of(st, "key"));
		if (str_of(st, "key"))
			printf("  key %s", k);
		const cJSON *code = cJSON_GetObjectItem(st, "exit_code");
		if (cJSON_IsNumber(code) && code->valueint != 0)
			printf("  exit %d", code->valueint);
		putchar('\n');
		if (str_of(st, "reused_from"))
			printf("    reused from run %s\n", str_of(st, "reused_from"));
		print_artifacts("in", cJSON_GetObjectItem(st, "inputs"), NULL, NULL);
		print_artifacts("out", cJSON_GetObjectItem(st, "outputs"), NULL, NULL);
		print_artifacts("metrics", cJSON_GetObjectItem(st, "metrics"),
				str_of(st, "name"), rows);
		if (status && strcmp(status, "failed") == 0 && str_of(st, "log"))
			printf("    log     %s\n", str_of(st, "log"));
	}
	return EXIT_OK;
}

/* stage -> {"run", "git"}: the run that produced each locked stage's
 * outputs. executions.json names it; when its key no longer matches the
 * lock, the newest record where the stage ran with the locked key. */
static cJSON *stage_runs(const cJSON *lock, const char *state)
{
	cJSON *out = cJSON_CreateObject();
	cJSON *index = NULL, *records = cJSON_CreateObject();
	struct cp_error ignored = {0};
	cleanup_free char *ipath = xasprintf("%s/cache/executions.json", state);
	struct stat sb;
	if (stat(ipath, &sb) == 0 && json_read_file(&index, ipath, 64 << 20, &ignored) < 0)
		index = NULL;
	struct strvec ids = {0};
	bool listed = false;
	const cJSON *stages = cJSON_GetObjectItem(lock, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const char *key = str_of(st, "key");
		const cJSON *ix = cJSON_GetObjectItem(index, st->string);
		const char *run = NULL;
		if (key && str_of(ix, "key") && strcmp(str_of(ix, "key"), key) == 0)
			run = str_of(ix, "run");
		if (!run && key && !listed) {
			listed = true;
			record_ids(&ids, state, &ignored);
		}
		for (size_t i = ids.n; !run && key && i-- > 0;) {
			cJSON *rec = cJSON_GetObjectItem(records, ids.v[i]);
			if (!rec && record_load(&rec, state, ids.v[i], &ignored) == 0)
				cJSON_AddItemToObject(records, ids.v[i], rec);
			if (rec && lineage_record_ran(rec, st->string, key))
				run = ids.v[i];
		}
		if (!run)
			continue;
		cJSON *rec = cJSON_GetObjectItem(records, run);
		if (!rec && record_load(&rec, state, run, &ignored) == 0)
			cJSON_AddItemToObject(records, run, rec);
		cJSON *e = cJSON_AddObjectToObject(out, st->string);
		cJSON_AddStringToObject(e, "run", run);
		const cJSON *git = cJSON_GetObjectItem(rec, "git");
		cJSON_AddItemToObject(e, "git", git ? cJSON_Duplicate(git, true) : cJSON_CreateNull());
	}
	strvec_free(&ids);
	cJSON_Delete(index);
	cJSON_Delete(records);
	return out;
}

static void tree_line(const struct strbuf *indent, bool root, bool last)
{
	printf("%s%s", indent->buf ? indent->buf : "", root ? "" : last ? "└─ " : "├─ ");
}

static void tree_node(const cJSON *n, struct strbuf *indent, bool root, bool last)
{
	tree_line(indent, root, last);
	const cJSON *kids = NULL;
	const cJSON *producer = cJSON_GetObjectItem(n, "produced_by");
	cJSON *list = cJSON_CreateArray();
	if (str_of(n, "artifact")) {
		char d[16], sz[32];
		short_digest(d, str_of(n, "digest"));
		human_size(sz, cJSON_GetObjectItem(n, "size"));
		printf("%s  %s  %s", str_of(n, "artifact"), d, sz);
		if (str_of(n, "within"))
			printf("  (inside %s)", str_of(n, "within"));
		if (cJSON_IsTrue(cJSON_GetObjectItem(n, "stale")))
			printf("  (changed since: its producer made another version)");
		if (!cJSON_IsObject(producer) && !cJSON_GetObjectItem(n, "parts"))
			printf("  external");
		putchar('\n');
		if (cJSON_IsObject(producer))
			cJSON_AddItemReferenceToArray(list, (cJSON *)producer);
		kids = cJSON_GetObjectItem(n, "parts");
	} else {
		printf("stage %s", str_of(n, "stage"));
		if (cJSON_IsTrue(cJSON_GetObjectItem(n, "repeated")))
			printf("  (shown above)");
		else if (cJSON_IsTrue(cJSON_GetObjectItem(n, "cycle")))
			printf("  (cycle)");
		else {
			cleanup_free char *commit = commit_text(cJSON_GetObjectItem(n, "git"));
			printf("  run %s  commit %s", str_of(n, "run") ? str_of(n, "run") : "unknown",
			       commit);
		}
		putchar('\n');
		kids = cJSON_GetObjectItem(n, "inputs");
	}
	for (const cJSON *k = kids ? kids->child : NULL; k; k = k->next)
		cJSON_AddItemReferenceToArray(list, (cJSON *)k);
	size_t keep = indent->len;
	if (!root)
		sb_adds(indent, last ? "   " : "│  ");
	for (const cJSON *k = list->child; k; k = k->next)
		tree_node(k, indent, false, k->next == NULL);
	indent->len = keep;
	if (indent->buf)
		indent->buf[keep] = '\0';
	cJSON_Delete(list);
}

int cmd_lineage(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	int prc = parse_opts(c, argc, argv, 1, 1, NULL);
	if (prc >= 0)
		return prc;
	cleanup_free char *dir = NULL, *state = NULL;
	cleanup_json cJSON *lock = NULL, *runs = NULL, *tree = NULL;
	if (open_project(&dir, &state, c, &err) < 0)
		return cli_fail(&err);
	cleanup_free char *lock_path = path_join(dir, "cpipe.lock");
	if (lock_load(&lock, lock_path, &err) < 0)
		return cli_fail(&err);
	/* An absolute path inside the project is named as the lock names it. */
	const char *query = argv[optind];
	cleanup_free char *rel = NULL;
	size_t n = strlen(dir);
	if (query[0] == '/' && strncmp(query, dir, n) == 0 && query[n] == '/')
		query = rel = xasprintf(".%s", query + n);
	runs = stage_runs(lock, state);
	if (lineage_build(&tree, lock, query, runs, &err) < 0)
		return cli_fail(&err);
	if (c->json) {
		print_json(tree);
	} else {
		struct strbuf indent = STRBUF_INIT;
		tree_node(tree, &indent, true, true);
		sb_free(&indent);
	}
	return EXIT_OK;
}

int cmd_prov(struct cli *c, int argc, char **argv)
{
	cleanup_json cJSON *rec = NULL;
	int rc = run_operand(&rec, c, argc, argv);
	if (rc != EXIT_OK || !rec)
		return rc;
	cleanup_json cJSON *doc = lineage_prov(rec);
	print_json(doc);
	return EXIT_OK;
}

/* The metrics --diff compares with: a run, else cpipe.lock as committed at
 * git revision `arg`. Fills `against` with what was used. */
static int baseline(cJSON **rows, cJSON *against, const char *dir, const char *state,
		    const char *arg, struct cp_error *err)
{
	cJSON *rec = NULL;
	struct cp_error run_err = {0};
	if (load_run(&rec, state, arg, &run_err) == 0) {
		*rows = lineage_metrics_record(rec);
		cJSON_AddStringToObject(against, "run", str_of(rec, "id"));
		cJSON_Delete(rec);
		return 0;
	}
	/* libgit2 compares against the work tree's real path. */
	char real[PATH_MAX];
	cleanup_free char *lock_path = path_join(realpath(dir, real) ? real : dir, "cpipe.lock");
	cleanup_free char *text = NULL;
	size_t len = 0;
	struct cp_error git_err = {0};
	if (git_read_at(&text, &len, lock_path, arg, &git_err) < 0) {
		err->code = EXIT_USAGE;
		return cp_error_set(err, "--diff %s: not a run (%s) nor a git revision holding "
					 "cpipe.lock (%s)",
				    arg, run_err.msg, git_err.msg);
	}
	cJSON *lock = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(cJSON_GetObjectItem(lock, "stages"))) {
		cJSON_Delete(lock);
		err->code = EXIT_USAGE;
		return cp_error_set(err, "cpipe.lock at %s is not a cpipe lock file", arg);
	}
	*rows = lineage_metrics_lock(lock);
	cJSON_AddStringToObject(against, "rev", arg);
	cJSON_AddStringToObject(against, "file", "cpipe.lock");
	cJSON_Delete(lock);
	return 0;
}

static void print_metrics(const cJSON *rows, bool diff)
{
	size_t w = 6;
	for (const cJSON *r = rows->child; r; r = r->next)
		if (strlen(str_of(r, "metric")) > w)
			w = strlen(str_of(r, "metric"));
	const cJSON *prev = NULL;
	size_t same = 0;
	for (const cJSON *r = rows->child; r; r = r->next) {
		/* A diff shows what changed; the rest is counted at the end. */
		const cJSON *o = cJSON_GetObjectItem(r, "old"), *n = cJSON_GetObjectItem(r, "new");
		if (diff && o && n && cJSON_Compare(o, n, true)) {
			same++;
			continue;
		}
		if (!prev || strcmp(str_of(prev, "stage"), str_of(r, "stage")) ||
		    strcmp(str_of(prev, "file"), str_of(r, "file")))
			printf("%s  %s\n", str_of(r, "stage"), str_of(r, "file"));
		prev = r;
		printf("  %-*s  ", (int)w, str_of(r, "metric"));
		if (!diff) {
			print_value(cJSON_GetObjectItem(r, "value"));
			putchar('\n');
			continue;
		}
		print_value(cJSON_GetObjectItem(r, "old"));
		printf(" → ");
		print_value(cJSON_GetObjectItem(r, "new"));
		const cJSON *d = cJSON_GetObjectItem(r, "delta");
		if (d)
			printf("  (%s%.15g)", d->valuedouble > 0 ? "+" : "", d->valuedouble);
		putchar('\n');
	}
	if (diff && same)
		printf("(%zu unchanged)\n", same);
}

int cmd_metrics(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	const char *against_arg = NULL;
	int prc = parse_opts(c, argc, argv, 0, 1, &against_arg);
	if (prc >= 0)
		return prc;
	cleanup_free char *dir = NULL, *state = NULL;
	cleanup_json cJSON *rec = NULL, *rows = NULL, *old = NULL, *doc = cJSON_CreateObject();
	if (open_project(&dir, &state, c, &err) < 0 ||
	    load_run(&rec, state, optind < argc ? argv[optind] : "latest", &err) < 0)
		return cli_fail(&err);
	rows = lineage_metrics_record(rec);
	cJSON_AddStringToObject(doc, "run", str_of(rec, "id"));
	if (against_arg) {
		cJSON *against = cJSON_AddObjectToObject(doc, "against");
		if (baseline(&old, against, dir, state, against_arg, &err) < 0)
			return cli_fail(&err);
		cJSON *diff = lineage_metrics_diff(old, rows);
		cJSON_Delete(rows);
		rows = diff;
	}
	cJSON_AddItemReferenceToObject(doc, "metrics", rows);
	if (c->json) {
		print_json(doc);
		return EXIT_OK;
	}
	if (!rows->child) {
		if (!c->quiet)
			printf("run %s recorded no metrics\n", str_of(rec, "id"));
		return EXIT_OK;
	}
	if (!c->quiet && against_arg) {
		const cJSON *a = cJSON_GetObjectItem(doc, "against");
		if (str_of(a, "run"))
			printf("run %s → run %s\n\n", str_of(a, "run"), str_of(rec, "id"));
		else
			printf("cpipe.lock at %s → run %s\n\n", str_of(a, "rev"), str_of(rec, "id"));
	}
	print_metrics(rows, against_arg != NULL);
	return EXIT_OK;
}
