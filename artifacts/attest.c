#include "attest.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "digest.h"
#include "lineage.h"

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

/* OpenSSL's reason for the last failure, for an error message. */
static const char *ssl_reason(char buf[256])
{
	unsigned long e = ERR_get_error();
	ERR_clear_error();
	if (!e)
		return "no detail";
	ERR_error_string_n(e, buf, 256);
	return buf;
}

/* {"sha256": hex} of a "sha256:hex" digest; NULL for anything else. */
static cJSON *digest_set(const char *d)
{
	if (!d || !digest_is_valid(d))
		return NULL;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "sha256", d + 7);
	return o;
}

static bool has_resource(const cJSON *list, const char *name, const char *digest)
{
	for (const cJSON *r = list->child; r; r = r->next) {
		const char *sha = str_of(cJSON_GetObjectItem(r, "digest"), "sha256");
		if (strcmp(str_of(r, "name") ? str_of(r, "name") : "", name) == 0 && sha &&
		    strcmp(sha, digest + 7) == 0)
			return true;
	}
	return false;
}

/* Whether `name` is a subject or lies inside one: made by the run. */
static bool within_subject(const cJSON *subjects, const char *name)
{
	for (const cJSON *r = subjects->child; r; r = r->next)
		if (str_of(r, "name") && lineage_within(name, str_of(r, "name")))
			return true;
	return false;
}

static void add_subjects(cJSON *subjects, const cJSON *st)
{
	static const char *const parts[] = {"outputs", "metrics"};
	for (size_t k = 0; k < ARRAY_LEN(parts); k++) {
		const cJSON *part = cJSON_GetObjectItem(st, parts[k]);
		for (const cJSON *e = part ? part->child : NULL; e; e = e->next) {
			const char *d = str_of(e, "digest");
			cJSON *set = digest_set(d);
			if (!e->string || !set || has_resource(subjects, e->string, d)) {
				cJSON_Delete(set);
				continue;
			}
			cJSON *s = cJSON_CreateObject();
			cJSON_AddStringToObject(s, "name", e->string);
			cJSON_AddItemToObject(s, "digest", set);
			cJSON *ann = cJSON_AddObjectToObject(s, "annotations");
			cJSON_AddStringToObject(ann, "stage", str_of(st, "name"));
			cJSON_AddStringToObject(ann, "kind", k ? "metrics" : "output");
			const cJSON *files = cJSON_GetObjectItem(e, "files");
			/* A directory's sha256 is that of its canonical listing. */
			if (cJSON_IsNumber(files) && files->valuedouble != 1)
				cJSON_AddStringToObject(ann, "digestOf", "cpipe directory listing");
			cJSON_AddItemToArray(subjects, s);
		}
	}
}

/* The git commit, each distinct image ID, and the inputs that are no
 * subject (what the run read but did not make). */
static cJSON *dependencies(const cJSON *rec, const cJSON *subjects)
{
	cJSON *deps = cJSON_CreateArray();
	const cJSON *git = cJSON_GetObjectItem(rec, "git");
	if (cJSON_IsObject(git) && str_of(git, "commit")) {
		cJSON *g = cJSON_CreateObject();
		const char *remote = str_of(git, "remote");
		cleanup_free char *uri = xasprintf("git+%s@%s", remote ? remote : "local",
						   str_of(git, "commit"));
		cJSON_AddStringToObject(g, "uri", uri);
		cJSON *d = cJSON_AddObjectToObject(g, "digest");
		cJSON_AddStringToObject(d, "gitCommit", str_of(git, "commit"));
		cJSON *ann = cJSON_AddObjectToObject(g, "annotations");
		if (str_of(git, "branch"))
			cJSON_AddStringToObject(ann, "branch", str_of(git, "branch"));
		cJSON_AddBoolToObject(ann, "dirty", cJSON_IsTrue(cJSON_GetObjectItem(git, "dirty")));
		cJSON_AddItemToArray(deps, g);
	}
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const cJSON *img = cJSON_GetObjectItem(st, "image");
		const char *id = str_of(img, "digest");
		cJSON *set = digest_set(id);
		cleanup_free char *name = xasprintf("image:%s", str_of(img, "ref") ? str_of(img, "ref")
										 : str_of(st, "name"));
		if (set && !has_resource(deps, name, id)) {
			cJSON *r = cJSON_CreateObject();
			cJSON_AddStringToObject(r, "name", name);
			cJSON_AddItemToObject(r, "digest", set);
			cJSON_AddItemToArray(deps, r);
		} else {
			cJSON_Delete(set);
		}
	}
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next) {
		const cJSON *in = cJSON_GetObjectItem(st, "inputs");
		for (const cJSON *e = in ? in->child : NULL; e; e = e->next) {
			const char *d = str_of(e, "digest");
			if (!e->string || !digest_is_valid(d ? d : "") ||
			    within_subject(subjects, e->string) || has_resource(deps, e->string, d))
				continue;
			cJSON *r = cJSON_CreateObject();
			cJSON_AddStringToObject(r, "name", e->string);
			cJSON_AddItemToObject(r, "digest", digest_set(d));
			cJSON_AddItemToArray(deps, r);
		}
	}
	return deps;
}

static cJSON *copy_or_null(const cJSON *v)
{
	return v ? cJSON_Duplicate(v, true) : cJSON_CreateNull();
}

static cJSON *build_definition(const cJSON *rec, const cJSON *subjects)
{
	cJSON *bd = cJSON_CreateObject();
	cJSON_AddStringToObject(bd, "buildType", "https://cpipe.dev/provenance/run/v1");
	cJSON *ext = cJSON_AddObjectToObject(bd, "externalParameters");
	cJSON_AddItemToObject(ext, "project", copy_or_null(cJSON_GetObjectItem(rec, "project")));
	cJSON_AddItemToObject(ext, "argv", copy_or_null(cJSON_GetObjectItem(rec, "argv")));
	cJSON_AddItemToObject(ext, "overrides", copy_or_null(cJSON_GetObjectItem(rec, "overrides")));
	cJSON_AddBoolToObject(ext, "experiment",
			      cJSON_IsTrue(cJSON_GetObjectItem(rec, "experiment")));
	if (str_of(rec, "name"))
		cJSON_AddStringToObject(ext, "name", str_of(rec, "name"));
	cJSON *stages = cJSON_AddObjectToObject(ext, "stages");
	const cJSON *rs = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = rs ? rs->child : NULL; st; st = st->next) {
		if (!str_of(st, "name") || cJSON_GetObjectItem(stages, str_of(st, "name")))
			continue;
		cJSON *s = cJSON_AddObjectToObject(stages, str_of(st, "name"));
		static const char *const copied[] = {"status", "key", "params", "command",
						     "entrypoint", "restored_from", "reused_from"};
		for (size_t i = 0; i < ARRAY_LEN(copied); i++) {
			const cJSON *v = cJSON_GetObjectItem(st, copied[i]);
			if (v)
				cJSON_AddItemToObject(s, copied[i], cJSON_Duplicate(v, true));
		}
	}
	cJSON *in = cJSON_AddObjectToObject(bd, "internalParameters");
	static const char *const internal[] = {"runtime", "spec_digest", "spec_files"};
	for (size_t i = 0; i < ARRAY_LEN(internal); i++)
		cJSON_AddItemToObject(in, internal[i],
				      copy_or_null(cJSON_GetObjectItem(rec, internal[i])));
	cJSON_AddItemToObject(bd, "resolvedDependencies", dependencies(rec, subjects));
	return bd;
}

int attest_statement(cJSON **out, const cJSON *rec, const char *cpipe_version,
		     struct cp_error *err)
{
	const char *status = str_of(rec, "status");
	if (!status || strcmp(status, "succeeded") != 0) {
		return cp_error_set(err, EXIT_USAGE,
				    "run %s %s; only a run that succeeded is attested",
				    str_of(rec, "id"), status ? status : "has no status");
	}
	cJSON *subjects = cJSON_CreateArray();
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next)
		add_subjects(subjects, st);
	if (!subjects->child) {
		cJSON_Delete(subjects);
		return cp_error_set(err, EXIT_USAGE, "run %s recorded no outputs to attest",
				    str_of(rec, "id"));
	}
	cJSON *s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "_type", ATTEST_STATEMENT_TYPE);
	cJSON_AddItemToObject(s, "subject", subjects);
	cJSON_AddStringToObject(s, "predicateType", ATTEST_PREDICATE_TYPE);
	cJSON *pred = cJSON_AddObjectToObject(s, "predicate");
	cJSON_AddItemToObject(pred, "buildDefinition", build_definition(rec, subjects));
	cJSON *rd = cJSON_AddObjectToObject(pred, "runDetails");
	cJSON *builder = cJSON_AddObjectToObject(rd, "builder");
	cleanup_free char *id = xasprintf("https://cpipe.dev/builder/%s",
					  str_of(rec, "runtime") ? str_of(rec, "runtime") : "local");
	cJSON_AddStringToObject(builder, "id", id);
	cJSON *ver = cJSON_AddObjectToObject(builder, "version");
	cJSON_AddStringToObject(ver, "cpipe", cpipe_version);
	if (str_of(rec, "cpipe_version"))
		cJSON_AddStringToObject(ver, "recordedBy", str_of(rec, "cpipe_version"));
	cJSON *md = cJSON_AddObjectToObject(rd, "metadata");
	cJSON_AddStringToObject(md, "invocationId", str_of(rec, "id"));
	if (str_of(rec, "started"))
		cJSON_AddStringToObject(md, "startedOn", str_of(rec, "started"));
	if (str_of(rec, "ended"))
		cJSON_AddStringToObject(md, "finishedOn", str_of(rec, "ended"));
	*out = s;
	return 0;
}

static int read_key(attest_key **out, const char *pem, size_t len, bool private,
		    const char *shown, struct cp_error *err)
{
	char why[256];
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		abort();
	/* A NULL password callback would prompt on the terminal; refuse. */
	EVP_PKEY *k = private ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"")
			      : PEM_read_bio_PUBKEY(bio, NULL, NULL, (void *)"");
	BIO_free(bio);
	if (!k) {
		return cp_error_set(err, EXIT_USAGE,
				    "%s: not an unencrypted PEM %s key (%s); make one with openssl "
				    "genpkey -algorithm ed25519%s",
				    shown, private ? "private" : "public", ssl_reason(why),
				    private ? "" : " and openssl pkey -pubout");
	}
	if (!EVP_PKEY_is_a(k, "ED25519")) {
		EVP_PKEY_free(k);
		return cp_error_set(err, EXIT_USAGE,
				    "%s: a key of another algorithm; cpipe signs with Ed25519 "
				    "(openssl genpkey -algorithm ed25519)",
				    shown);
	}
	*out = k;
	return 0;
}

int attest_key_private(attest_key **out, const char *pem, size_t len, const char *shown,
		       struct cp_error *err)
{
	return read_key(out, pem, len, true, shown, err);
}

int attest_key_public(attest_key **out, const char *pem, size_t len, const char *shown,
		      struct cp_error *err)
{
	return read_key(out, pem, len, false, shown, err);
}

void attest_key_free(attest_key *k)
{
	EVP_PKEY_free(k);
}

int attest_keyid(char out[72], attest_key *key, struct cp_error *err)
{
	unsigned char raw[64];
	size_t n = sizeof(raw);
	char why[256];
	if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1)
		return cp_error_set(err, EXIT_USAGE, "reading the public key: %s", ssl_reason(why));
	char d[DIGEST_BUFLEN];
	digest_bytes(d, raw, n);
	snprintf(out, 72, "%s", d);
	return 0;
}

unsigned char *attest_pae(size_t *len_out, const char *type, const void *body, size_t len)
{
	size_t tl = strlen(type);
	char head[64];
	int hn = snprintf(head, sizeof(head), "DSSEv1 %zu ", tl);
	char mid[32];
	int mn = snprintf(mid, sizeof(mid), " %zu ", len);
	size_t n = (size_t)hn + tl + (size_t)mn + len;
	unsigned char *p = xmalloc(n + 1);
	memcpy(p, head, (size_t)hn);
	memcpy(p + hn, type, tl);
	memcpy(p + hn + tl, mid, (size_t)mn);
	memcpy(p + hn + tl + mn, body, len);
	*len_out = n;
	return p;
}

static char *b64_encode(const unsigned char *in, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

/* Standard base64 with padding, nothing else; NULL when `in` is not. */
static unsigned char *b64_decode(size_t *len_out, const char *in)
{
	size_t n = strlen(in);
	if (n == 0 || n % 4 != 0 || n > (1u << 30) ||
	    in[strspn(in, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")])
		return NULL;
	size_t pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
	if (strchr(in, '=') != in + n - pad && pad)
		return NULL;
	if (!pad && strchr(in, '='))
		return NULL;
	unsigned char *out = xmalloc(n / 4 * 3 + 1);
	int got = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (got < 0 || (size_t)got < pad) {
		free(out);
		return NULL;
	}
	*len_out = (size_t)got - pad;
	return out;
}

int attest_sign(cJSON **out, const char *payload, size_t len, attest_key *key,
		struct cp_error *err)
{
	char why[256], kid[72];
	if (attest_keyid(kid, key, err) < 0)
		return -1;
	size_t pn = 0;
	cleanup_free unsigned char *pae = attest_pae(&pn, ATTEST_PAYLOAD_TYPE, payload, len);
	unsigned char sig[128];
	size_t sn = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		abort();
	/* Ed25519 hashes internally: no digest is named. */
	int ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
		 EVP_DigestSign(ctx, sig, &sn, pae, pn) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return cp_error_set(err, EXIT_USAGE, "signing with Ed25519: %s", ssl_reason(why));
	cleanup_free char *b64p = b64_encode((const unsigned char *)payload, len);
	cleanup_free char *b64s = b64_encode(sig, sn);
	cJSON *env = cJSON_CreateObject();
	cJSON_AddStringToObject(env, "payloadType", ATTEST_PAYLOAD_TYPE);
	cJSON_AddStringToObject(env, "payload", b64p);
	cJSON *sigs = cJSON_AddArrayToObject(env, "signatures");
	cJSON *s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "keyid", kid);
	cJSON_AddStringToObject(s, "sig", b64s);
	cJSON_AddItemToArray(sigs, s);
	*out = env;
	return 0;
}

static bool sig_verifies(const cJSON *s, const unsigned char *pae, size_t pn, attest_key *pub)
{
	const char *b64 = str_of(s, "sig");
	size_t sn = 0;
	cleanup_free unsigned char *sig = b64 ? b64_decode(&sn, b64) : NULL;
	if (!sig)
		return false;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		abort();
	bool ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
		  EVP_DigestVerify(ctx, sig, sn, pae, pn) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* The signed payload of an envelope whose shape was checked, decoded and
 * verified; the Statement it holds in *statement. */
static int verified_payload(cJSON **statement, const char *type, const char *b64,
			    const cJSON *sigs, attest_key *pub, struct cp_error *err)
{
	if (strcmp(type, ATTEST_PAYLOAD_TYPE) != 0)
		return cp_error_set(err, EXIT_STAGE_FAILED, "payloadType is \"%s\", not %s", type,
				    ATTEST_PAYLOAD_TYPE);
	size_t n = 0;
	cleanup_free unsigned char *payload = b64_decode(&n, b64);
	if (!payload)
		return cp_error_set(err, EXIT_STAGE_FAILED, "the payload is not base64");
	size_t pn = 0;
	cleanup_free unsigned char *pae = attest_pae(&pn, type, payload, n);
	bool ok = false;
	for (const cJSON *s = sigs->child; s && !ok; s = s->next)
		ok = sig_verifies(s, pae, pn, pub);
	if (!ok)
		return cp_error_set(err, EXIT_STAGE_FAILED,
				    "no signature verifies with this public key: the "
				    "envelope was altered or signed with another key");
	cJSON *st = cJSON_ParseWithLength((const char *)payload, n);
	const char *t = str_of(st, "_type"), *pt = str_of(st, "predicateType");
	if (!t || strcmp(t, ATTEST_STATEMENT_TYPE) || !pt || strcmp(pt, ATTEST_PREDICATE_TYPE) ||
	    !cJSON_IsArray(cJSON_GetObjectItem(st, "subject"))) {
		cJSON_Delete(st);
		return cp_error_set(err, EXIT_STAGE_FAILED,
				    "the signed payload is not an in-toto %s Statement with "
				    "a %s predicate",
				    ATTEST_STATEMENT_TYPE, ATTEST_PREDICATE_TYPE);
	}
	*statement = st;
	return 0;
}

int attest_verify(cJSON **statement, const char *text, size_t len, attest_key *pub,
		  struct cp_error *err)
{
	cJSON *env = cJSON_ParseWithLength(text, len);
	const char *type = str_of(env, "payloadType"), *b64 = str_of(env, "payload");
	const cJSON *sigs = cJSON_GetObjectItem(env, "signatures");
	int rc;
	if (!type || !b64 || !cJSON_IsArray(sigs) || !sigs->child) {
		rc = cp_error_set(err, EXIT_STAGE_FAILED,
				  "not a DSSE envelope (payloadType, payload and signatures)");
	} else {
		rc = verified_payload(statement, type, b64, sigs, pub, err);
	}
	cJSON_Delete(env);
	return rc;
}
