/* cpipe metrics [RUN] [--diff RUN|REV] and cpipe params [RUN] / params
 * diff [A] [B]: a run's metrics or params, or how two runs (or a run and a
 * git revision's cpipe.lock) differ. Compact by default: metrics are the
 * top-level scalars and a diff shows what changed; --all shows every
 * value, --metric/--param GLOB the ones named. */
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../artifacts/git.h"
#include "../artifacts/lineage.h"
#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "history.h"
#include "opts.h"

struct view {
	const char *diff;    /* --diff */
	struct strvec globs; /* --metric or --param */
	bool all;
};

static int parse_view(struct view *v, struct cli *c, int argc, char **argv, int min, int max)
{
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0) {
		if (opt == 'd')
			v->diff = optarg;
		else if (opt == 'a')
			v->all = true;
		else if (opt == 'm' || opt == 'P')
			strvec_push(&v->globs, optarg);
	}
	if (opt != -1)
		return cli_opt_exit(opt);
	if (argc - optind < min || argc - optind > max)
		return cli_usage_error(argv[0]);
	return -1;
}

/* The metrics --diff compares with: a run, else cpipe.lock as committed at
 * git revision `arg`. Fills `against` with what was used. */
static int baseline(cJSON **rows, cJSON *against, const char *dir, const char *state,
		    const char *arg, struct cp_error *err)
{
	cJSON *rec = NULL;
	struct cp_error run_err = {0};
	if (hist_load_run(&rec, state, arg, &run_err) == 0) {
		*rows = lineage_metrics_record(rec);
		cJSON_AddStringToObject(against, "run", hist_str(rec, "id"));
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
		return cp_error_set(err, EXIT_USAGE,
				    "--diff %s: not a run (%s) nor a git revision holding "
				    "cpipe.lock (%s)",
				    arg, run_err.msg, git_err.msg);
	}
	cJSON *lock = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(cJSON_GetObjectItem(lock, "stages"))) {
		cJSON_Delete(lock);
		return cp_error_set(err, EXIT_USAGE, "cpipe.lock at %s is not a cpipe lock file",
				    arg);
	}
	*rows = lineage_metrics_lock(lock);
	cJSON_AddStringToObject(against, "rev", arg);
	cJSON_AddStringToObject(against, "file", "cpipe.lock");
	cJSON_Delete(lock);
	return 0;
}

static void print_change(const cJSON *o, const cJSON *n, const cJSON *d)
{
	hist_print_value(o);
	printf(" → ");
	hist_print_value(n);
	if (d)
		printf("  (%s%.15g)", d->valuedouble > 0 ? "+" : "", d->valuedouble);
	putchar('\n');
}

static void print_metrics(const cJSON *rows, const struct view *v)
{
	bool diff = v->diff != NULL;
	size_t w = 6, hidden = 0, same = 0;
	for (const cJSON *r = rows->child; r; r = r->next)
		if (hist_metric_shown(r, &v->globs, v->all) && strlen(hist_str(r, "metric")) > w)
			w = strlen(hist_str(r, "metric"));
	const cJSON *prev = NULL;
	for (const cJSON *r = rows->child; r; r = r->next) {
		if (!hist_metric_shown(r, &v->globs, v->all)) {
			hidden++;
			continue;
		}
		/* A diff shows what changed; the rest is counted at the end. */
		const cJSON *o = cJSON_GetObjectItem(r, "old"), *n = cJSON_GetObjectItem(r, "new");
		if (diff && o && n && cJSON_Compare(o, n, true)) {
			same++;
			continue;
		}
		if (!prev || strcmp(hist_str(prev, "stage"), hist_str(r, "stage")) ||
		    strcmp(hist_str(prev, "file"), hist_str(r, "file")))
			printf("%s  %s\n", hist_str(r, "stage"), hist_str(r, "file"));
		prev = r;
		printf("  %-*s  ", (int)w, hist_str(r, "metric"));
		if (!diff) {
			hist_print_value(cJSON_GetObjectItem(r, "value"));
			putchar('\n');
		} else {
			print_change(o, n, cJSON_GetObjectItem(r, "delta"));
		}
	}
	if (diff && same)
		printf("(%zu unchanged)\n", same);
	if (hidden)
		printf("(%zu nested value%s not shown: --all shows every value, --metric GLOB "
		       "some)\n",
		       hidden, hidden == 1 ? "" : "s");
}

/* Drops the rows the --metric globs do not name (none given: keeps all). */
static void filter_rows(cJSON *rows, const struct strvec *globs)
{
	for (cJSON *r = globs->n ? rows->child : NULL, *next; r; r = next) {
		next = r->next;
		if (!hist_metric_shown(r, globs, true))
			cJSON_Delete(cJSON_DetachItemViaPointer(rows, r));
	}
}

int cmd_metrics(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	struct view v = {0};
	int rc = parse_view(&v, c, argc, argv, 0, 1);
	cleanup_free char *dir = NULL, *state = NULL;
	cleanup_json cJSON *rec = NULL, *rows = NULL, *old = NULL, *doc = cJSON_CreateObject();
	if (rc >= 0)
		goto out;
	if (hist_open_project(&dir, &state, c, &err) < 0 ||
	    hist_load_run(&rec, state, optind < argc ? argv[optind] : "latest", &err) < 0)
		goto fail;
	rows = lineage_metrics_record(rec);
	cJSON_AddStringToObject(doc, "run", hist_str(rec, "id"));
	if (v.diff) {
		cJSON *against = cJSON_AddObjectToObject(doc, "against");
		if (baseline(&old, against, dir, state, v.diff, &err) < 0)
			goto fail;
		cJSON *diff = lineage_metrics_diff(old, rows);
		cJSON_Delete(rows);
		rows = diff;
	}
	filter_rows(rows, &v.globs);
	cJSON_AddItemReferenceToObject(doc, "metrics", rows);
	rc = EXIT_OK;
	if (c->json) {
		cli_print_json(doc);
		goto out;
	}
	if (!rows->child) {
		if (!c->quiet)
			printf("run %s recorded no metrics%s\n", hist_str(rec, "id"),
			       v.globs.n ? " that --metric names" : "");
		goto out;
	}
	if (!c->quiet && v.diff) {
		const cJSON *a = cJSON_GetObjectItem(doc, "against");
		if (hist_str(a, "run"))
			printf("run %s → run %s\n\n", hist_str(a, "run"), hist_str(rec, "id"));
		else
			printf("cpipe.lock at %s → run %s\n\n", hist_str(a, "rev"),
			       hist_str(rec, "id"));
	}
	print_metrics(rows, &v);
	goto out;
fail:
	rc = cli_fail(&err);
out:
	strvec_free(&v.globs);
	return rc;
}

static bool param_shown(const char *name, const struct strvec *globs)
{
	for (size_t i = 0; i < globs->n; i++)
		if (fnmatch(globs->v[i], name, 0) == 0)
			return true;
	return globs->n == 0;
}

/* Rows {"param", "old", "new", "changed", ["override"]} over the params of
 * both runs, `cur`'s order first. */
static cJSON *params_diff(const cJSON *old, const cJSON *cur, const cJSON *cur_rec)
{
	cJSON *rows = cJSON_CreateArray();
	const cJSON *ov = cJSON_GetObjectItem(cur_rec, "overrides");
	for (int pass = 0; pass < 2; pass++)
		for (const cJSON *p = (pass ? old : cur)->child; p; p = p->next) {
			if (pass && cJSON_GetObjectItem(cur, p->string))
				continue;
			const cJSON *o = cJSON_GetObjectItem(old, p->string);
			const cJSON *n = cJSON_GetObjectItem(cur, p->string);
			cJSON *r = cJSON_CreateObject();
			cJSON_AddStringToObject(r, "param", p->string);
			cJSON_AddItemToObject(r, "old", o ? cJSON_Duplicate(o, true) : cJSON_CreateNull());
			cJSON_AddItemToObject(r, "new", n ? cJSON_Duplicate(n, true) : cJSON_CreateNull());
			cJSON_AddBoolToObject(r, "changed", !o || !n || !cJSON_Compare(o, n, true));
			if (cJSON_GetObjectItem(ov, p->string))
				cJSON_AddTrueToObject(r, "override");
			cJSON_AddItemToArray(rows, r);
		}
	return rows;
}

static int params_show(struct cli *c, const char *state, const char *arg, const struct view *v)
{
	struct cp_error err = {0};
	cleanup_json cJSON *rec = NULL, *ps = NULL;
	if (hist_load_run(&rec, state, arg, &err) < 0)
		return cli_fail(&err);
	ps = hist_record_params(rec);
	for (cJSON *p = ps->child, *next; p; p = next) {
		next = p->next;
		if (!param_shown(p->string, &v->globs))
			cJSON_Delete(cJSON_DetachItemViaPointer(ps, p));
	}
	if (c->json) {
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "run", hist_str(rec, "id"));
		cJSON_AddItemReferenceToObject(doc, "params", ps);
		cli_print_json(doc);
		cJSON_Delete(doc);
		return EXIT_OK;
	}
	const cJSON *ov = cJSON_GetObjectItem(rec, "overrides");
	for (const cJSON *p = ps->child; p; p = p->next) {
		printf("%-24s ", p->string);
		hist_print_value(p);
		printf("%s\n", cJSON_GetObjectItem(ov, p->string) ? "  (--set)" : "");
	}
	return EXIT_OK;
}

int cmd_params(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	struct view v = {0};
	int rc = parse_view(&v, c, argc, argv, 0, 3);
	cleanup_free char *dir = NULL, *state = NULL;
	cleanup_json cJSON *a = NULL, *b = NULL, *pa = NULL, *pb = NULL, *rows = NULL;
	if (rc >= 0)
		goto out;
	bool diff = optind < argc && strcmp(argv[optind], "diff") == 0;
	if (!diff && argc - optind > 1) {
		rc = cli_usage_error(argv[0]);
		goto out;
	}
	if (hist_open_project(&dir, &state, c, &err) < 0)
		goto fail;
	if (!diff) {
		rc = params_show(c, state, optind < argc ? argv[optind] : "latest", &v);
		goto out;
	}
	/* diff [A] [B]: B defaults to the latest run, A to the one before B. */
	const char *an = argc - optind >= 2 ? argv[optind + 1] : "latest~1";
	const char *bn = argc - optind >= 3 ? argv[optind + 2] : "latest";
	if (hist_load_run(&a, state, an, &err) < 0 || hist_load_run(&b, state, bn, &err) < 0)
		goto fail;
	pa = hist_record_params(a);
	pb = hist_record_params(b);
	rows = params_diff(pa, pb, b);
	for (cJSON *r = rows->child, *next; r; r = next) {
		next = r->next;
		if (!param_shown(hist_str(r, "param"), &v.globs))
			cJSON_Delete(cJSON_DetachItemViaPointer(rows, r));
	}
	rc = EXIT_OK;
	if (c->json) {
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "from", hist_str(a, "id"));
		cJSON_AddStringToObject(doc, "to", hist_str(b, "id"));
		cJSON_AddItemReferenceToObject(doc, "params", rows);
		cli_print_json(doc);
		cJSON_Delete(doc);
		goto out;
	}
	if (!c->quiet)
		printf("run %s → run %s\n\n", hist_str(a, "id"), hist_str(b, "id"));
	size_t w = 5, same = 0;
	for (const cJSON *r = rows->child; r; r = r->next)
		if ((v.all || cJSON_IsTrue(cJSON_GetObjectItem(r, "changed"))) &&
		    strlen(hist_str(r, "param")) > w)
			w = strlen(hist_str(r, "param"));
	for (const cJSON *r = rows->child; r; r = r->next) {
		bool changed = cJSON_IsTrue(cJSON_GetObjectItem(r, "changed"));
		if (!changed && !v.all) {
			same++;
			continue;
		}
		printf("  %-*s  ", (int)w, hist_str(r, "param"));
		hist_print_value(cJSON_GetObjectItem(r, "old"));
		if (changed) {
			printf(" → ");
			hist_print_value(cJSON_GetObjectItem(r, "new"));
		}
		printf("%s\n", cJSON_GetObjectItem(r, "override") ? "  (--set)" : "");
	}
	if (same)
		printf("(%zu unchanged; --all shows them)\n", same);
	else if (!rows->child)
		printf("no params%s\n", v.globs.n ? " that --param names" : "");
	goto out;
fail:
	rc = cli_fail(&err);
out:
	strvec_free(&v.globs);
	return rc;
}
