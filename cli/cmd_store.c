/* The artifact store's verbs: checkout RUN|REV puts a recorded state's
 * outputs back into the volumes; gc removes what nothing refers to. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/cas.h"
#include "../artifacts/git.h"
#include "../artifacts/statcache.h"
#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "../pipeline/task.h"
#include "../pipeline/track.h"
#include "cli.h"
#include "opts.h"

#define GC_KEEP_RUNS 10

/* The spec, its runtime, the project lock and a tracker (without a run). */
struct session {
	struct pipeline *p;
	const struct runtime_ops *ops;
	struct runtime *rt;
	struct tracker *t;
	char *state;
	int lock_fd;
};

static int session_open(struct session *x, struct cli *c, struct cp_error *err)
{
	x->lock_fd = -1;
	if (cli_load(&x->p, c, err) < 0 || cli_runtime(&x->ops, c, x->p, err) < 0 ||
	    !(x->state = cli_state_dir(x->p, true, err)))
		return -1;
	cleanup_free char *lock = path_join(x->state, "lock");
	if (fs_lock(&x->lock_fd, lock, "running", err) < 0 ||
	    task_runtime_open(x->ops, &x->rt, x->p, x->state, err) < 0)
		return -1;
	struct track_options to = {.state_dir = x->state};
	if (track_open(&x->t, x->p, x->ops, x->rt, &to, err) < 0)
		return -1;
	if (!track_store(x->t))
		return cp_error_set(err, EXIT_USAGE,
				    "the artifact store cannot be opened (see CPIPE_STORE)");
	return 0;
}

static void session_close(struct session *x)
{
	track_close(x->t, NULL, NULL);
	if (x->rt)
		x->ops->close(x->rt);
	pipeline_free(x->p);
	free(x->state);
	if (x->lock_fd >= 0)
		close(x->lock_fd);
}

/* cpipe.lock as git revision `rev` has it: *doc, its "stages" object in
 * *stages. Fails (EXIT_USAGE) with -1 when git has no such file there, -2
 * when it is not a lock file. */
static int lock_at_rev(cJSON **doc, const cJSON **stages, const struct session *x,
		       const char *rev, struct cp_error *err)
{
	char real[PATH_MAX];
	cleanup_free char *lock_path =
		path_join(realpath(x->p->dir, real) ? real : x->p->dir, "cpipe.lock");
	cleanup_free char *text = NULL;
	size_t len = 0;
	if (git_read_at(&text, &len, lock_path, rev, err) < 0)
		return cp_error_recode(err, EXIT_USAGE);
	*doc = cJSON_ParseWithLength(text, len);
	*stages = cJSON_GetObjectItem(*doc, "stages");
	if (!cJSON_IsObject(*stages)) {
		cp_error_set(err, EXIT_USAGE, "cpipe.lock at %s is not a cpipe lock file", rev);
		return -2;
	}
	return 0;
}

/* The "stages" of run `arg`, else of cpipe.lock at git revision `arg`.
 * *doc owns what *stages points into. */
static int recorded_state(cJSON **doc, const cJSON **stages, char **what, struct session *x,
			  const char *arg, struct cp_error *err)
{
	cleanup_free char *id = NULL;
	struct cp_error run_err = {0};
	if (record_resolve(&id, x->state, arg, &run_err) == 0) {
		if (record_load(doc, x->state, id, err) < 0)
			return -1;
		*stages = cJSON_GetObjectItem(*doc, "stages");
		*what = xasprintf("run %s", id);
		return 0;
	}
	struct cp_error git_err = {0};
	int found = lock_at_rev(doc, stages, x, arg, &git_err);
	if (found == -2) {
		*err = git_err;
		return -1;
	}
	if (found < 0) {
		cp_error_set(
		    err, EXIT_USAGE,
		    "checkout %s: not a run (%s) nor a git revision holding cpipe.lock (%s)", arg,
		    run_err.msg, git_err.msg);
		return -1;
	}
	*what = xasprintf("%s (cpipe.lock at that revision)", arg);
	return 0;
}

int cmd_checkout(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	int prc = cli_parse_common(c, argc, argv);
	if (prc >= 0)
		return prc;
	if (argc - optind != 1)
		return cli_usage_error(argv[0]);
	const char *arg = argv[optind];
	struct session x = {0};
	cJSON *doc = NULL;
	const cJSON *stages = NULL;
	cleanup_free char *what = NULL;
	int rc = EXIT_OK, n;
	if (session_open(&x, c, &err) < 0 || recorded_state(&doc, &stages, &what, &x, arg, &err) < 0 ||
	    (n = track_checkout(x.t, stages, what, &err)) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (c->json)
		printf("{\"checked_out\":%d}\n", n);
	else if (!c->quiet)
		printf("checked out the outputs of %d stage%s from %s\n", n, n == 1 ? "" : "s", what);
out:
	cJSON_Delete(doc);
	session_close(&x);
	return rc;
}

/* Adds the outputs and metrics of one lock or record stage entry. */
static void keep_entry(cJSON *keep, const cJSON *st)
{
	static const char *const parts[] = {"outputs", "metrics"};
	for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
		const cJSON *part = cJSON_GetObjectItem(st, parts[i]);
		for (const cJSON *e = part ? part->child : NULL; e; e = e->next) {
			const char *d = cJSON_GetStringValue(cJSON_GetObjectItem(e, "digest"));
			if (!d)
				continue;
			cJSON *k = cJSON_CreateObject();
			cJSON_AddStringToObject(k, "digest", d);
			cJSON_AddStringToObject(k, "type", cJSON_GetObjectItem(e, "files") ? "d" : "f");
			cJSON_AddItemToArray(keep, k);
		}
	}
}

/* Adds every stage entry of a lock's "stages" object or a record's array. */
static void keep_stages(cJSON *keep, const cJSON *stages)
{
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next)
		keep_entry(keep, st);
}

/* Runs to keep besides the last N: those that made the locked outputs
 * (the executions index) and those a service still up was started by. */
static void pinned_runs(struct strvec *out, const struct session *x)
{
	cJSON *ix = NULL;
	struct cp_error ignored = {0};
	cleanup_free char *index = path_join(x->state, "cache/executions.json");
	if (json_read_file(&ix, index, 64 << 20, &ignored) == 0)
		for (const cJSON *e = ix->child; e; e = e->next)
			if (cJSON_GetStringValue(cJSON_GetObjectItem(e, "run")))
				strvec_push(out, cJSON_GetStringValue(cJSON_GetObjectItem(e, "run")));
	cJSON_Delete(ix);
	cleanup_free char *dir = path_join(x->state, "services");
	struct strvec names = {0};
	if (fs_list_names(&names, dir, ".json", &ignored) == 0)
		for (size_t i = 0; i < names.n; i++) {
			cJSON *st = NULL;
			cleanup_free char *path = xasprintf("%s/%s.json", dir, names.v[i]);
			if (json_read_file(&st, path, 1 << 20, &ignored) == 0 &&
			    cJSON_GetStringValue(cJSON_GetObjectItem(st, "run")))
				strvec_push(out, cJSON_GetStringValue(cJSON_GetObjectItem(st, "run")));
			cJSON_Delete(st);
		}
	strvec_free(&names);
}

static bool strvec_has(const struct strvec *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i], s) == 0)
			return true;
	return false;
}

/* What gc keeps: in *keep the artifacts of the lock, of cpipe.lock at each
 * of `revs` and of the kept runs; in *runs the ids of the kept runs (the
 * last `nruns` and the pinned ones). */
static int gc_roots(cJSON **keep_out, struct strvec *runs, struct session *x, long nruns,
		    const struct strvec *revs, struct cp_error *err)
{
	cJSON *keep = cJSON_CreateArray();
	cJSON *lock = NULL;
	struct strvec ids = {0};
	cleanup_free char *lock_path = path_join(x->p->dir, "cpipe.lock");
	if (lock_load(&lock, lock_path, err) < 0)
		goto fail;
	keep_stages(keep, cJSON_GetObjectItem(lock, "stages"));
	cJSON_Delete(lock);
	for (size_t i = 0; i < revs->n; i++) {
		cJSON *doc = NULL;
		const cJSON *stages = NULL;
		if (lock_at_rev(&doc, &stages, x, revs->v[i], err) < 0) {
			cJSON_Delete(doc);
			cp_error_prefix(err, "gc --keep-rev %s", revs->v[i]);
			goto fail;
		}
		keep_stages(keep, stages);
		cJSON_Delete(doc);
	}
	if (record_ids(&ids, x->state, err) < 0)
		goto fail;
	pinned_runs(runs, x);
	for (size_t i = ids.n > (size_t)nruns ? ids.n - (size_t)nruns : 0; i < ids.n; i++)
		strvec_push(runs, ids.v[i]);
	for (size_t i = 0; i < ids.n; i++) {
		cJSON *rec = NULL;
		if (!strvec_has(runs, ids.v[i]))
			continue;
		if (record_load(&rec, x->state, ids.v[i], err) < 0)
			goto fail;
		keep_stages(keep, cJSON_GetObjectItem(rec, "stages"));
		cJSON_Delete(rec);
	}
	strvec_free(&ids);
	*keep_out = keep;
	return 0;
fail:
	strvec_free(&ids);
	cJSON_Delete(keep);
	return -1;
}

/* Removes (or with `dry_run` counts) the records and logs of the runs
 * not in `keep`. */
static int prune_runs(unsigned long long *nruns, const struct session *x,
		      const struct strvec *keep, bool dry_run, struct cp_error *err)
{
	struct strvec ids = {0};
	*nruns = 0;
	if (record_ids(&ids, x->state, err) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < ids.n; i++) {
		if (strvec_has(keep, ids.v[i]))
			continue;
		(*nruns)++;
		if (dry_run)
			continue;
		cleanup_free char *rec = xasprintf("%s/runs/%s.json", x->state, ids.v[i]);
		cleanup_free char *logs = xasprintf("%s/logs/%s", x->state, ids.v[i]);
		if (fs_rm_rf(logs, err) < 0 || (unlink(rec) < 0 && errno != ENOENT))
			rc = rc < 0 ? rc : cp_error_errno(err, EXIT_USAGE, "removing %s", rec);
	}
	strvec_free(&ids);
	return rc;
}

/* Drops (or counts) stat cache entries for files that are gone or changed. */
static int prune_statcache(unsigned long long *n, const struct session *x, bool dry_run,
			   struct cp_error *err)
{
	struct statcache *sc = NULL;
	cleanup_free char *path = path_join(x->state, "cache/stat.cache");
	*n = 0;
	if (statcache_open(&sc, path, err) < 0)
		return -1;
	*n = statcache_drop_stale(sc);
	int rc = dry_run || *n == 0 ? 0 : statcache_save(sc, err);
	statcache_free(sc);
	return rc;
}

int cmd_gc(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	long keep_runs = GC_KEEP_RUNS;
	bool dry_run = false;
	struct strvec revs = {0};
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0) {
		if (opt == 'k') {
			char *end;
			keep_runs = strtol(optarg, &end, 10);
			if (*end || end == optarg || keep_runs < 0) {
				fprintf(stderr, "cpipe: --keep-runs %s: not a count (0 or more)\n", optarg);
				strvec_free(&revs);
				return EXIT_USAGE;
			}
		} else if (opt == 'n') {
			dry_run = true;
		} else if (opt == 'R') {
			strvec_push(&revs, optarg);
		}
	}
	if (opt != -1) {
		strvec_free(&revs);
		return cli_opt_exit(opt);
	}
	/* --keep-rev A B C: the operands are more revisions. */
	if (optind != argc && revs.n == 0) {
		strvec_free(&revs);
		return cli_usage_error(argv[0]);
	}
	for (int i = optind; i < argc; i++)
		strvec_push(&revs, argv[i]);
	struct session x = {0};
	cJSON *keep = NULL;
	struct strvec runs = {0};
	unsigned long long nobj = 0, nbytes = 0, nrec = 0, nsc = 0;
	int rc = EXIT_OK;
	if (session_open(&x, c, &err) < 0 || gc_roots(&keep, &runs, &x, keep_runs, &revs, &err) < 0 ||
	    cas_gc(&nobj, &nbytes, track_store(x.t), keep, dry_run, &err) < 0 ||
	    prune_runs(&nrec, &x, &runs, dry_run, &err) < 0 ||
	    prune_statcache(&nsc, &x, dry_run, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (c->json)
		printf("{\"objects\":%llu,\"bytes\":%llu,\"runs\":%llu,\"stat_entries\":%llu,"
		       "\"dry_run\":%s}\n",
		       nobj, nbytes, nrec, nsc, dry_run ? "true" : "false");
	else if (!c->quiet)
		printf("%s %llu object%s (%llu bytes), %llu run record%s with their logs and %llu "
		       "stat-cache entr%s not referenced by cpipe.lock, the last %ld run%s%s\n",
		       dry_run ? "would free" : "freed", nobj, nobj == 1 ? "" : "s", nbytes, nrec,
		       nrec == 1 ? "" : "s", nsc, nsc == 1 ? "y" : "ies", keep_runs,
		       keep_runs == 1 ? "" : "s", revs.n ? " or the --keep-rev revisions" : "");
out:
	cJSON_Delete(keep);
	strvec_free(&runs);
	strvec_free(&revs);
	session_close(&x);
	return rc;
}
