/* Looking back: show RUN and prov RUN, and the helpers every looking-back
 * verb shares (cli/history.h). runs is in cmd_runs.c, lineage in
 * cmd_lineage.c, metrics and params in cmd_metrics.c. */
#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/lineage.h"
#include "../artifacts/store.h"
#include "history.h"
#include "opts.h"

void hist_json_cleanup(cJSON **j)
{
	cJSON_Delete(*j);
}

const char *hist_str(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

int hist_open_project(char **dir, char **state, struct cli *c, struct cp_error *err)
{
	struct pipeline *p = NULL;
	if (cli_load(&p, c, err) < 0)
		return -1;
	*dir = xstrdup(p->dir);
	*state = cli_state_dir(p, false, err);
	pipeline_free(p);
	return 0;
}

/* The newest run named `name` (run --name), or NULL. Caller owns. */
static char *run_named(const char *state, const char *name)
{
	struct strvec ids = {0};
	struct cp_error ignored = {0};
	char *found = NULL;
	if (record_ids(&ids, state, &ignored) < 0)
		return NULL;
	for (size_t i = ids.n; !found && i-- > 0;) {
		cJSON *rec = NULL;
		if (record_load(&rec, state, ids.v[i], &ignored) < 0) {
			cp_error_clear(&ignored);
			continue;
		}
		const char *n = hist_str(rec, "name");
		if (n && strcmp(n, name) == 0)
			found = xstrdup(ids.v[i]);
		cJSON_Delete(rec);
	}
	strvec_free(&ids);
	return found;
}

int hist_load_run(cJSON **rec, const char *state, const char *arg, struct cp_error *err)
{
	cleanup_free char *id = NULL;
	if (record_resolve(&id, state, arg, err) < 0) {
		if (!(id = run_named(state, arg)))
			return -1;
		cp_error_clear(err);
	}
	return record_load(rec, state, id, err);
}

char *hist_value_text(const cJSON *v)
{
	if (cJSON_IsNumber(v))
		return xasprintf("%.15g", v->valuedouble);
	if (cJSON_IsString(v))
		return xstrdup(v->valuestring);
	if (cJSON_IsBool(v))
		return xstrdup(cJSON_IsTrue(v) ? "true" : "false");
	return xstrdup("-");
}

void hist_print_value(const cJSON *v)
{
	cleanup_free char *t = hist_value_text(v);
	fputs(t, stdout);
}

void hist_short_digest(char out[16], const char *d)
{
	if (!d || !str_has_prefix(d, "sha256:"))
		snprintf(out, 16, "%s", d ? d : "missing");
	else
		snprintf(out, 16, "%.12s", d + 7);
}

void hist_human_size(char out[32], const cJSON *size)
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

char *hist_commit_text(const cJSON *git)
{
	if (!cJSON_IsObject(git))
		return xstrdup("-");
	const char *commit = hist_str(git, "commit");
	bool dirty = cJSON_IsTrue(cJSON_GetObjectItem(git, "dirty"));
	if (!commit)
		return xstrdup(dirty ? "(unborn)+dirty" : "(unborn)");
	return xasprintf("%.7s%s", commit, dirty ? "+dirty" : "");
}

const char *hist_run_status(const cJSON *rec)
{
	const char *status = hist_str(rec, "status");
	if (!status)
		return "unknown";
	if (strcmp(status, "running") != 0)
		return status;
	const cJSON *pid = cJSON_GetObjectItem(rec, "pid");
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	const char *rhost = hist_str(rec, "host");
	if (cJSON_IsNumber(pid) && pid->valueint > 0 && (!rhost || strcmp(rhost, host) == 0) &&
	    kill((pid_t)pid->valueint, 0) < 0 && errno == ESRCH)
		return "aborted";
	return status;
}

char *hist_overrides_text(const cJSON *rec)
{
	struct strbuf sb = STRBUF_INIT;
	const cJSON *ov = cJSON_GetObjectItem(rec, "overrides");
	for (const cJSON *o = ov ? ov->child : NULL; o; o = o->next)
		sb_addf(&sb, "%s%s=%s", sb.len ? " " : "", o->string,
			cJSON_GetStringValue(o) ? o->valuestring : "?");
	return sb_detach(&sb);
}

cJSON *hist_record_params(const cJSON *rec)
{
	cJSON *out = cJSON_CreateObject();
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const cJSON *ps = cJSON_GetObjectItem(st, "params");
		for (const cJSON *p = ps ? ps->child : NULL; p; p = p->next) {
			cleanup_free char *name = xasprintf("%s.%s", hist_str(st, "name"), p->string);
			if (!cJSON_GetObjectItem(out, name))
				cJSON_AddItemToObject(out, name, cJSON_Duplicate(p, true));
		}
	}
	return out;
}

bool hist_metric_shown(const cJSON *r, const struct strvec *globs, bool all)
{
	const char *m = hist_str(r, "metric");
	if (!m)
		return false;
	if (globs && globs->n) {
		cleanup_free char *qualified = xasprintf("%s.%s", hist_str(r, "stage"), m);
		for (size_t i = 0; i < globs->n; i++)
			if (fnmatch(globs->v[i], m, 0) == 0 || fnmatch(globs->v[i], qualified, 0) == 0)
				return true;
		return false;
	}
	return all || !strchr(m, '.');
}

/* "185ms", "2.4s", "-" for the span between an object's started and ended. */
static void duration_text(char out[32], const cJSON *o)
{
	long long a = lineage_time_ms(hist_str(o, "started"));
	long long b = lineage_time_ms(hist_str(o, "ended"));
	if (a < 0 || b < a)
		snprintf(out, 32, "-");
	else if (b - a < 1000)
		snprintf(out, 32, "%lldms", b - a);
	else
		snprintf(out, 32, "%.1fs", (double)(b - a) / 1000);
}

struct show_filter {
	struct strvec globs; /* --metric */
	bool all;            /* --all */
	size_t hidden;       /* values left out */
};

/* One line per artifact; for metrics files, their values from `rows`
 * (lineage_metrics_record of the run) below it, as `f` lets through. */
static void print_artifacts(const char *label, const cJSON *part, const char *stage,
			    const cJSON *rows, struct show_filter *f)
{
	for (const cJSON *e = part ? part->child : NULL; e; e = e->next) {
		/* Early records listed inputs as an array of {"artifact", ...}. */
		const char *name = e->string ? e->string : hist_str(e, "artifact");
		if (!name)
			continue;
		char d[16], sz[32];
		hist_short_digest(d, hist_str(e, "digest"));
		hist_human_size(sz, cJSON_GetObjectItem(e, "size"));
		printf("    %-7s %s  %s  %s\n", label, name, d, sz);
		for (const cJSON *r = rows ? rows->child : NULL; r; r = r->next) {
			if (strcmp(hist_str(r, "stage"), stage) || strcmp(hist_str(r, "file"), name))
				continue;
			if (!hist_metric_shown(r, &f->globs, f->all)) {
				f->hidden++;
				continue;
			}
			printf("            %s = ", hist_str(r, "metric"));
			hist_print_value(cJSON_GetObjectItem(r, "value"));
			putchar('\n');
		}
	}
}

/* Parses `show`'s and `prov`'s options and loads the one RUN operand.
 * EXIT_OK, or the exit code after the usage or error was printed; EXIT_OK
 * with *rec NULL: the help was printed. */
static int run_operand(cJSON **rec, struct show_filter *f, struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0) {
		if (opt == 'a' && f)
			f->all = true;
		else if (opt == 'm' && f)
			strvec_push(&f->globs, optarg);
	}
	if (opt != -1)
		return cli_opt_exit(opt);
	if (argc - optind != 1)
		return cli_usage_error(argv[0]);
	cleanup_free char *dir = NULL, *state = NULL;
	if (hist_open_project(&dir, &state, c, &err) < 0 ||
	    hist_load_run(rec, state, argv[optind], &err) < 0)
		return cli_fail(&err);
	return EXIT_OK;
}

static void show_header(const cJSON *rec)
{
	printf("run %s  %s\n", hist_str(rec, "id"), hist_run_status(rec));
	if (hist_str(rec, "name"))
		printf("  name       %s\n", hist_str(rec, "name"));
	printf("  started    %s", hist_str(rec, "started") ? hist_str(rec, "started") : "-");
	char took[32];
	duration_text(took, rec);
	if (hist_str(rec, "ended"))
		printf("  (took %s)", took);
	putchar('\n');
	printf("  project    %s  (runtime %s, %s@%s)\n", hist_str(rec, "project"),
	       hist_str(rec, "runtime"), hist_str(rec, "user"), hist_str(rec, "host"));
	const cJSON *git = cJSON_GetObjectItem(rec, "git");
	if (cJSON_IsObject(git)) {
		const char *commit = hist_str(git, "commit"), *branch = hist_str(git, "branch");
		printf("  git        %s%s%s%s\n", commit ? commit : "(unborn)", branch ? " on " : "",
		       branch ? branch : "",
		       cJSON_IsTrue(cJSON_GetObjectItem(git, "dirty")) ? ", dirty" : "");
	}
	cleanup_free char *ov = hist_overrides_text(rec);
	if (*ov)
		printf("  overrides  %s\n", ov);
	const cJSON *av = cJSON_GetObjectItem(rec, "argv");
	if (av) {
		printf("  command   ");
		for (const cJSON *a = av->child; a; a = a->next)
			printf(" %s", cJSON_GetStringValue(a) ? a->valuestring : "?");
		putchar('\n');
	}
}

int cmd_show(struct cli *c, int argc, char **argv)
{
	cleanup_json cJSON *rec = NULL;
	struct show_filter f = {0};
	int rc = run_operand(&rec, &f, c, argc, argv);
	if (rc != EXIT_OK || !rec) {
		strvec_free(&f.globs);
		return rc;
	}
	if (c->json) {
		cli_print_json(rec);
		strvec_free(&f.globs);
		return EXIT_OK;
	}
	show_header(rec);
	cleanup_json cJSON *rows = lineage_metrics_record(rec);
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const char *status = hist_str(st, "status");
		if (!hist_str(st, "name"))
			continue;
		char took[32];
		duration_text(took, st);
		printf("\n%-12s %-8s %7s", hist_str(st, "name"), status ? status : "?", took);
		char k[16];
		hist_short_digest(k, hist_str(st, "key"));
		if (hist_str(st, "key"))
			printf("  key %s", k);
		const cJSON *code = cJSON_GetObjectItem(st, "exit_code");
		if (cJSON_IsNumber(code) && code->valueint != 0)
			printf("  exit %d", code->valueint);
		putchar('\n');
		if (hist_str(st, "reused_from"))
			printf("    reused from run %s\n", hist_str(st, "reused_from"));
		if (hist_str(st, "restored_from"))
			printf("    restored from run %s\n", hist_str(st, "restored_from"));
		print_artifacts("in", cJSON_GetObjectItem(st, "inputs"), NULL, NULL, &f);
		print_artifacts("out", cJSON_GetObjectItem(st, "outputs"), NULL, NULL, &f);
		print_artifacts("metrics", cJSON_GetObjectItem(st, "metrics"),
				hist_str(st, "name"), rows, &f);
		if (status && strcmp(status, "failed") == 0 && hist_str(st, "log"))
			printf("    log     %s\n", hist_str(st, "log"));
	}
	if (f.hidden)
		printf("\n(%zu nested metric value%s not shown: --all shows every value, --metric "
		       "GLOB some)\n",
		       f.hidden, f.hidden == 1 ? "" : "s");
	strvec_free(&f.globs);
	return EXIT_OK;
}

int cmd_prov(struct cli *c, int argc, char **argv)
{
	cleanup_json cJSON *rec = NULL;
	int rc = run_operand(&rec, NULL, c, argc, argv);
	if (rc != EXIT_OK || !rec)
		return rc;
	cleanup_json cJSON *doc = lineage_prov(rec);
	cli_print_json(doc);
	return EXIT_OK;
}
