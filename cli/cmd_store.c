/* The artifact store's verbs: checkout RUN|REV puts a recorded state's
 * outputs back into the volumes; gc removes what nothing refers to. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/cas.h"
#include "../artifacts/git.h"
#include "../artifacts/store.h"
#include "../lib/fs.h"
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
	    x->ops->open(&x->rt, x->p, x->state, err) < 0)
		return -1;
	struct track_options to = {.state_dir = x->state};
	if (track_open(&x->t, x->p, x->ops, x->rt, &to, err) < 0)
		return -1;
	if (!track_store(x->t))
		return cp_error_set(err, "the artifact store cannot be opened (see CPIPE_STORE)");
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
	char real[PATH_MAX];
	cleanup_free char *lock_path =
		path_join(realpath(x->p->dir, real) ? real : x->p->dir, "cpipe.lock");
	cleanup_free char *text = NULL;
	size_t len = 0;
	struct cp_error git_err = {0};
	if (git_read_at(&text, &len, lock_path, arg, &git_err) < 0) {
		err->code = EXIT_USAGE;
		return cp_error_set(err,
				    "checkout %s: not a run (%s) nor a git revision holding "
				    "cpipe.lock (%s)",
				    arg, run_err.msg, git_err.msg);
	}
	*doc = cJSON_ParseWithLength(text, len);
	*stages = cJSON_GetObjectItem(*doc, "stages");
	if (!cJSON_IsObject(*stages)) {
		err->code = EXIT_USAGE;
		return cp_error_set(err, "cpipe.lock at %s is not a cpipe lock file", arg);
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

/* What the lock and the last `nruns` runs refer to. */
static int gc_roots(cJSON **out, struct session *x, long nruns, struct cp_error *err)
{
	cJSON *keep = cJSON_CreateArray();
	cJSON *lock = NULL;
	cleanup_free char *lock_path = path_join(x->p->dir, "cpipe.lock");
	if (lock_load(&lock, lock_path, err) < 0)
		goto fail;
	const cJSON *ls = cJSON_GetObjectItem(lock, "stages");
	for (const cJSON *st = ls ? ls->child : NULL; st; st = st->next)
		keep_entry(keep, st);
	cJSON_Delete(lock);
	struct strvec ids = {0};
	if (record_ids(&ids, x->state, err) < 0)
		goto fail;
	for (size_t i = ids.n > (size_t)nruns ? ids.n - (size_t)nruns : 0; i < ids.n; i++) {
		cJSON *rec = NULL;
		if (record_load(&rec, x->state, ids.v[i], err) < 0) {
			strvec_free(&ids);
			goto fail;
		}
		const cJSON *rs = cJSON_GetObjectItem(rec, "stages");
		for (const cJSON *st = rs ? rs->child : NULL; st; st = st->next)
			keep_entry(keep, st);
		cJSON_Delete(rec);
	}
	strvec_free(&ids);
	*out = keep;
	return 0;
fail:
	cJSON_Delete(keep);
	return -1;
}

int cmd_gc(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	long keep_runs = GC_KEEP_RUNS;
	bool dry_run = false;
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0) {
		if (opt == 'k') {
			char *end;
			keep_runs = strtol(optarg, &end, 10);
			if (*end || end == optarg || keep_runs < 0) {
				fprintf(stderr, "cpipe: --keep-runs %s: not a count (0 or more)\n", optarg);
				return EXIT_USAGE;
			}
		} else if (opt == 'n') {
			dry_run = true;
		}
	}
	if (opt != -1)
		return cli_opt_exit(opt);
	if (optind != argc)
		return cli_usage_error(argv[0]);
	struct session x = {0};
	cJSON *keep = NULL;
	unsigned long long nobj = 0, nbytes = 0;
	int rc = EXIT_OK;
	if (session_open(&x, c, &err) < 0 || gc_roots(&keep, &x, keep_runs, &err) < 0 ||
	    cas_gc(&nobj, &nbytes, track_store(x.t), keep, dry_run, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (c->json)
		printf("{\"objects\":%llu,\"bytes\":%llu,\"dry_run\":%s}\n", nobj, nbytes,
		       dry_run ? "true" : "false");
	else if (!c->quiet)
		printf("%s %llu object%s (%llu bytes) not referenced by cpipe.lock or the last %ld "
		       "run%s\n",
		       dry_run ? "would free" : "freed", nobj, nobj == 1 ? "" : "s", nbytes, keep_runs,
		       keep_runs == 1 ? "" : "s");
out:
	cJSON_Delete(keep);
	session_close(&x);
	return rc;
}
