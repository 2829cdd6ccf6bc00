/* cpipe attest RUN [-o FILE] [--key KEY]: a DSSE envelope holding an
 * in-toto Statement with a SLSA provenance predicate for the run's
 * outputs, signed with an Ed25519 key (artifacts/attest.h).
 * cpipe attest --verify FILE --pub KEY: checks the signature and that
 * every subject's sha256 matches the artifact on disk now. */
#include <stdlib.h>
#include <string.h>

#include "../artifacts/attest.h"
#include "../artifacts/digest.h"
#include "../artifacts/redact.h"
#include "../artifacts/store.h"
#include "../lib/fs.h"
#include "../pipeline/task.h"
#include "history.h"
#include "opts.h"

struct attest_opts {
	const char *output, *key, *verify, *pub;
};

/* A key from `path`, or with path NULL from CPIPE_SIGNING_KEY (PEM text or
 * a file's path). */
static int load_key(attest_key **out, const char *path, bool private, struct cp_error *err)
{
	const char *env = private && !path ? getenv("CPIPE_SIGNING_KEY") : NULL;
	if (!path && !env) {
		return cp_error_set(err, EXIT_USAGE,
				    "attest: no signing key: give --key FILE or set "
				    "CPIPE_SIGNING_KEY (make one with openssl genpkey "
				    "-algorithm ed25519 -out key.pem)");
	}
	if (env && str_has_prefix(env, "-----BEGIN"))
		return attest_key_private(out, env, strlen(env), "CPIPE_SIGNING_KEY", err);
	const char *file = path ? path : env;
	cleanup_free char *pem = NULL;
	size_t len = 0;
	if (fs_read_file(&pem, &len, file, 1 << 16, err) < 0) {
		cp_error_recode(err, EXIT_USAGE);
		return cp_error_prefix(err, "%s key", private ? "signing" : "public");
	}
	int rc = private ? attest_key_private(out, pem, len, file, err)
			 : attest_key_public(out, pem, len, file, err);
	explicit_bzero(pem, len);
	return rc;
}

static int sign_run(struct cli *c, const struct attest_opts *o, const char *arg)
{
	struct cp_error err = {0};
	struct pipeline *p = NULL;
	cleanup_free char *state = NULL, *text = NULL, *payload = NULL;
	cleanup_json cJSON *rec = NULL, *statement = NULL, *env = NULL;
	attest_key *key = NULL;
	int rc = EXIT_OK;
	if (cli_load(&p, c, &err) < 0 || !(state = cli_state_dir(p, false, &err)) ||
	    hist_load_run(&rec, state, arg, &err) < 0 ||
	    attest_statement(&statement, rec, CPIPE_VERSION, &err) < 0 ||
	    load_key(&key, o->key, true, &err) < 0)
		goto fail;
	/* Records are masked already; a secret the spec has since gained is
	 * masked too, before the signature covers it. */
	redactor_json(&p->secrets, statement);
	payload = json_canonical(statement);
	if (attest_sign(&env, payload, strlen(payload), key, &err) < 0)
		goto fail;
	text = json_pretty(env);
	if (o->output) {
		if (fs_write_atomic(o->output, text, strlen(text), 0644, &err) < 0)
			goto fail;
		if (!c->quiet)
			fprintf(stderr, "cpipe: attested %d artifacts of run %s -> %s\n",
				cJSON_GetArraySize(cJSON_GetObjectItem(statement, "subject")),
				hist_str(rec, "id"), o->output);
	} else {
		fputs(text, stdout);
	}
	goto out;
fail:
	rc = cli_fail(&err);
out:
	attest_key_free(key);
	pipeline_free(p);
	return rc;
}

/* Where artifact `name` ("vol:/path" or a project path "./x") is on this
 * host: *root (a volume's directory or the project's, caller owns) and
 * *rel inside it, as digest_tree_in takes them. */
static int locate(char **root, const char **rel, const struct runtime_ops *ops,
		  struct runtime *rt, const struct pipeline *p, const char *name,
		  struct cp_error *err)
{
	const char *colon = strchr(name, ':');
	/* Subject names come from the file being checked: nothing outside the
	 * project and the spec's volumes is read for them. */
	if (str_has_prefix(name, "./")) {
		*root = xstrdup(p->dir);
		*rel = name + 1;
		return 0;
	}
	if (!colon || name[0] == '/')
		return cp_error_set(err, EXIT_USAGE,
				    "not checked: only project paths (./...) and volumes are");
	cleanup_free char *vol = xstrndup(name, (size_t)(colon - name));
	if (!pipeline_volume(p, vol))
		return cp_error_set(err, EXIT_USAGE,
				    "not checked: the spec declares no volume \"%s\"", vol);
	if (!ops->caps.host_volumes)
		return cp_error_set(err, EXIT_USAGE, "the %s runtime cannot read volume \"%s\"",
				    ops->name, vol);
	if (ops->volume_host_path(rt, vol, root, err) < 0)
		return -1;
	*rel = colon[1] ? colon + 1 : "/";
	return 0;
}

/* Rehashes every subject: an array of {"name", "expected", "actual"} for
 * those that differ (actual null when unreadable). */
static cJSON *check_subjects(const cJSON *statement, const struct runtime_ops *ops,
			     struct runtime *rt, const struct pipeline *p, int *checked)
{
	cJSON *bad = cJSON_CreateArray();
	const cJSON *subjects = cJSON_GetObjectItem(statement, "subject");
	for (const cJSON *s = subjects->child; s; s = s->next, (*checked)++) {
		const char *name = hist_str(s, "name");
		const char *want = hist_str(cJSON_GetObjectItem(s, "digest"), "sha256");
		struct cp_error err = {0};
		cleanup_free char *root = NULL;
		const char *rel = NULL;
		struct tree_digest td;
		bool ok = name && want &&
			  locate(&root, &rel, ops, rt, p, name, &err) == 0 &&
			  digest_tree_in(&td, root, rel, NULL, &err) == 0;
		if (ok && strcmp(td.digest + 7, want) == 0)
			continue;
		cJSON *b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "name", name ? name : "?");
		cJSON_AddStringToObject(b, "expected", want ? want : "?");
		if (ok)
			cJSON_AddStringToObject(b, "actual", td.digest + 7);
		else
			cJSON_AddStringToObject(b, "error", err.msg[0] ? err.msg : "no name or sha256");
		cp_error_clear(&err);
		cJSON_AddItemToArray(bad, b);
	}
	return bad;
}

static int verify_file(struct cli *c, const struct attest_opts *o)
{
	struct cp_error err = {0};
	struct pipeline *p = NULL;
	const struct runtime_ops *ops = NULL;
	struct runtime *rt = NULL;
	cleanup_free char *state = NULL, *text = NULL;
	cleanup_json cJSON *statement = NULL, *bad = NULL;
	attest_key *pub = NULL;
	size_t len = 0;
	int rc = EXIT_OK, checked = 0;
	char kid[72];
	if (!o->pub) {
		fprintf(stderr, "cpipe: attest --verify needs --pub KEY, the signer's public key "
				"(openssl pkey -in key.pem -pubout)\n");
		return EXIT_USAGE;
	}
	if (load_key(&pub, o->pub, false, &err) < 0 || attest_keyid(kid, pub, &err) < 0)
		goto fail;
	if (fs_read_file(&text, &len, o->verify, 64 << 20, &err) < 0) {
		cp_error_recode(&err, EXIT_USAGE);
		goto fail;
	}
	if (attest_verify(&statement, text, len, pub, &err) < 0) {
		cp_error_prefix(&err, "%s", o->verify);
		goto fail;
	}
	if (cli_load(&p, c, &err) < 0 || !(state = cli_state_dir(p, false, &err)))
		goto fail;
	/* The subjects live where the run's runtime put them. */
	const cJSON *ip = cJSON_GetObjectItem(
		cJSON_GetObjectItem(cJSON_GetObjectItem(statement, "predicate"), "buildDefinition"),
		"internalParameters");
	const char *rname = hist_str(ip, "runtime");
	if (rname && runtime_find(rname) && !c->runtime)
		ops = runtime_find(rname);
	else if (cli_runtime(&ops, c, p, &err) < 0)
		goto fail;
	if (task_runtime_open(ops, &rt, p, state, &err) < 0)
		goto fail;
	bad = check_subjects(statement, ops, rt, p, &checked);
	if (c->json) {
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddBoolToObject(doc, "verified", bad->child == NULL);
		cJSON_AddStringToObject(doc, "keyid", kid);
		cJSON_AddNumberToObject(doc, "subjects", checked);
		cJSON_AddItemReferenceToObject(doc, "mismatches", bad);
		cli_print_json(doc);
		cJSON_Delete(doc);
	}
	for (const cJSON *b = bad->child; b; b = b->next) {
		if (hist_str(b, "actual"))
			fprintf(stderr, "cpipe: %s: %s is sha256:%.12s… on disk, attested sha256:%.12s…\n",
				o->verify, hist_str(b, "name"), hist_str(b, "actual"),
				hist_str(b, "expected"));
		else
			fprintf(stderr, "cpipe: %s: %s: %s\n", o->verify, hist_str(b, "name"),
				hist_str(b, "error"));
	}
	if (bad->child) {
		fprintf(stderr, "cpipe: %s: the signature is good, but %d of %d subjects do not "
				"match the files on disk\n",
			o->verify, cJSON_GetArraySize(bad), checked);
		rc = EXIT_STAGE_FAILED;
	} else if (!c->json && !c->quiet) {
		printf("verified: signature by %s; %d subjects match the files on disk\n", kid,
		       checked);
	}
	goto out;
fail:
	rc = cli_fail(&err);
out:
	if (rt)
		ops->close(rt);
	attest_key_free(pub);
	pipeline_free(p);
	return rc;
}

int cmd_attest(struct cli *c, int argc, char **argv)
{
	struct attest_opts o = {0};
	int opt;
	while ((opt = cli_getopt(c, argc, argv)) >= 0) {
		if (opt == 'o')
			o.output = optarg;
		else if (opt == 'k')
			o.key = optarg;
		else if (opt == 'v')
			o.verify = optarg;
		else if (opt == 'u')
			o.pub = optarg;
	}
	if (opt != -1)
		return cli_opt_exit(opt);
	if (o.verify) {
		if (optind != argc || o.output || o.key)
			return cli_usage_error(argv[0]);
		return verify_file(c, &o);
	}
	if (argc - optind != 1 || o.pub)
		return cli_usage_error(argv[0]);
	return sign_run(c, &o, argv[optind]);
}
