/* Sharing results through a remote (artifacts/remote.h): push uploads the
 * run cache entries and objects of the stages cpipe.lock records, pull
 * downloads them and checks the lock's outputs out into the volumes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../artifacts/cas.h"
#include "../artifacts/remote.h"
#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "../pipeline/task.h"
#include "../pipeline/track.h"
#include "cli.h"
#include "opts.h"

/* What push and pull share: the spec, the project lock, cpipe.lock's
 * entries of the chosen stages (name -> entry, lent from `lock`) and
 * their keys, the remote. */
struct xfer_session {
	struct pipeline *p;
	char *state;
	int lock_fd;
	cJSON *lock;
	cJSON *chosen; /* object: stage name -> lock entry (duplicates) */
	struct strvec keys, names;
	struct remote *remote;
};

/* Parses [--remote URL] [STAGE...] and opens everything push and pull
 * need. Returns -1 to go on, else the exit code. */
static int xs_open(struct xfer_session *x, struct cli *c, int argc, char **argv,
		   struct cp_error *err)
{
	const char *flag = NULL;
	int opt;
	x->lock_fd = -1;
	while ((opt = cli_getopt(c, argc, argv)) == 'E')
		flag = optarg;
	if (opt != -1)
		return cli_opt_exit(opt);
	if (cli_load(&x->p, c, err) < 0)
		return cli_fail(err);
	const char *url = remote_choose(flag, x->p->remote);
	if (!url) {
		fprintf(stderr, "cpipe %s: no remote: set CPIPE_REMOTE, pass --remote URL or add "
				"x-cpipe: {remote: URL} to the spec\n", argv[0]);
		return EXIT_USAGE;
	}
	cleanup_free char *lock_path = path_join(x->p->dir, "cpipe.lock");
	if (remote_open(&x->remote, url, x->p->dir, err) < 0 ||
	    !(x->state = cli_state_dir(x->p, true, err)) || lock_load(&x->lock, lock_path, err) < 0)
		return cli_fail(err);
	cleanup_free char *plock = path_join(x->state, "lock");
	if (fs_lock(&x->lock_fd, plock, "running", err) < 0)
		return cli_fail(err);
	const cJSON *stages = cJSON_GetObjectItem(x->lock, "stages");
	x->chosen = cJSON_CreateObject();
	for (int i = optind; i < argc; i++) {
		if (!pipeline_stage(x->p, argv[i])) {
			fprintf(stderr, "cpipe %s: no stage \"%s\" in the spec\n", argv[0], argv[i]);
			return EXIT_USAGE;
		}
		if (!cJSON_GetObjectItem(stages, argv[i])) {
			fprintf(stderr, "cpipe %s: cpipe.lock records no outputs of stage \"%s\" (run it "
					"first)\n", argv[0], argv[i]);
			return EXIT_USAGE;
		}
	}
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		bool named = optind == argc;
		for (int i = optind; i < argc && !named; i++)
			named = strcmp(argv[i], st->string) == 0;
		const char *key = cJSON_GetStringValue(cJSON_GetObjectItem(st, "key"));
		const cJSON *outs = cJSON_GetObjectItem(st, "outputs");
		const cJSON *mets = cJSON_GetObjectItem(st, "metrics");
		if (!named || !key || !digest_is_valid(key) || !pipeline_stage(x->p, st->string) ||
		    ((!outs || !outs->child) && (!mets || !mets->child)))
			continue;
		cJSON_AddItemToObject(x->chosen, st->string, cJSON_Duplicate(st, true));
		strvec_push(&x->keys, key);
		strvec_push(&x->names, st->string);
	}
	return -1;
}

static void xs_close(struct xfer_session *x)
{
	remote_close(x->remote);
	cJSON_Delete(x->lock);
	cJSON_Delete(x->chosen);
	strvec_free(&x->keys);
	strvec_free(&x->names);
	pipeline_free(x->p);
	free(x->state);
	if (x->lock_fd >= 0)
		close(x->lock_fd);
}

static void print_stats(const struct cli *c, const char *verb, const struct xfer_session *x,
			const struct remote_stats *st, unsigned long long moved, int nstages)
{
	if (c->json)
		printf("{\"stages\":%d,\"objects\":%llu,\"bytes\":%llu,\"skipped\":%llu}\n", nstages,
		       moved, st->bytes, st->skipped);
	else if (!c->quiet)
		printf("%s %d stage%s: %llu object%s (%llu bytes) %s %s, %llu already there\n", verb,
		       nstages, nstages == 1 ? "" : "s", moved, moved == 1 ? "" : "s", st->bytes,
		       strcmp(verb, "pushed") ? "from" : "to", remote_shown(x->remote), st->skipped);
}

int cmd_push(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	struct xfer_session x = {0};
	struct cas *cas = NULL;
	struct remote_stats st = {0};
	int rc = xs_open(&x, c, argc, argv, &err);
	if (rc >= 0)
		goto out;
	rc = EXIT_OK;
	if (cas_open(&cas, x.state, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	for (size_t i = 0; i < x.keys.n; i++) {
		cJSON *doc = NULL;
		if (runcache_load(&doc, cas, x.keys.v[i]) != 1) {
			cp_error_set(&err, EXIT_STAGE_FAILED,
				     "push: stage \"%s\": the store has no outputs for its locked "
				     "key %s (run it here first: cpipe run %s)",
				     x.names.v[i], x.keys.v[i], x.names.v[i]);
			rc = cli_fail(&err);
			goto out;
		}
		cJSON_Delete(doc);
	}
	if (remote_push(&st, x.remote, cas, &x.keys, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	print_stats(c, "pushed", &x, &st, st.sent, (int)x.keys.n);
out:
	cas_close(cas);
	xs_close(&x);
	return rc;
}

int cmd_pull(struct cli *c, int argc, char **argv)
{
	struct cp_error err = {0};
	struct xfer_session x = {0};
	const struct runtime_ops *ops = NULL;
	struct runtime *rt = NULL;
	struct tracker *t = NULL;
	struct remote_stats st = {0};
	bool *found = NULL;
	int n = 0;
	int rc = xs_open(&x, c, argc, argv, &err);
	if (rc >= 0)
		goto out;
	rc = EXIT_OK;
	struct track_options to = {.state_dir = x.state};
	if (cli_runtime(&ops, c, x.p, &err) < 0 ||
	    task_runtime_open(ops, &rt, x.p, x.state, &err) < 0 ||
	    track_open(&t, x.p, ops, rt, &to, &err) < 0)
		goto fail;
	if (!track_store(t)) {
		cp_error_set(&err, EXIT_USAGE,
			     "the artifact store cannot be opened (see CPIPE_STORE)");
		goto fail;
	}
	found = xcalloc(x.keys.n + 1, sizeof(*found));
	if (remote_fetch(&st, found, x.remote, track_store(t), &x.keys, &err) < 0)
		goto fail;
	for (size_t i = 0; i < x.keys.n; i++) {
		cJSON *doc = NULL;
		if (!found[i] && runcache_load(&doc, track_store(t), x.keys.v[i]) != 1) {
			cp_error_set(&err, EXIT_STAGE_FAILED,
				     "pull: stage \"%s\": %s has nothing for its locked key %s "
				     "(push it from where it ran: cpipe push %s)",
				     x.names.v[i], remote_shown(x.remote), x.keys.v[i],
				     x.names.v[i]);
			goto fail;
		}
		cJSON_Delete(doc);
	}
	/* A fresh clone's volumes may not exist yet. */
	for (size_t i = 0; i < x.p->nvolumes && x.keys.n; i++)
		if (ops->volume_ensure(rt, &x.p->volumes[i], &err) < 0)
			goto fail;
	if (x.keys.n && (n = track_checkout(t, x.chosen, "cpipe.lock", &err)) < 0)
		goto fail;
	print_stats(c, "pulled", &x, &st, st.received, n);
	goto out;
fail:
	rc = cli_fail(&err);
out:
	track_close(t, NULL, NULL);
	if (rt)
		ops->close(rt);
	free(found);
	xs_close(&x);
	return rc;
}
