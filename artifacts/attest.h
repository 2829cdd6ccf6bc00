/* Attestations: an in-toto Statement v1 with a SLSA provenance v1
 * predicate describing what a run produced (subjects by sha256) and from
 * what (params, overrides, git commit, image IDs, input digests), signed
 * as a DSSE envelope with an Ed25519 key through OpenSSL. Pure functions
 * over a run record and bytes; reading files is the caller's. */
#ifndef CPIPE_ARTIFACTS_ATTEST_H
#define CPIPE_ARTIFACTS_ATTEST_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "../lib/error.h"

#define ATTEST_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define ATTEST_PREDICATE_TYPE "https://slsa.dev/provenance/v1"
#define ATTEST_PAYLOAD_TYPE "application/vnd.in-toto+json"

typedef struct evp_pkey_st attest_key;

/* The Statement for run record `rec`: one subject per output and metrics
 * file its stages ended with (named as the lock names them, digest
 * {"sha256": hex}); the predicate's buildDefinition holds the params,
 * overrides and command line (externalParameters), the runtime and spec
 * digest (internalParameters) and as resolvedDependencies the git commit,
 * the stages' image IDs and the digests of the inputs no stage of the run
 * produced; runDetails the builder (cpipe, its version) and the run's id
 * and times. Fails (EXIT_USAGE) for a run that did not succeed or has no
 * outputs. Caller owns *out. */
int attest_statement(cJSON **out, const cJSON *rec, const char *cpipe_version,
		     struct cp_error *err);

/* Reads an Ed25519 key from PEM text (`pem`, `len` bytes): private or
 * public. `shown` names it in errors (never its content). Encrypted keys
 * and other algorithms are refused (EXIT_USAGE). Free with attest_key_free. */
int attest_key_private(attest_key **out, const char *pem, size_t len, const char *shown,
		       struct cp_error *err);
int attest_key_public(attest_key **out, const char *pem, size_t len, const char *shown,
		      struct cp_error *err);
void attest_key_free(attest_key *k);

/* The DSSE pre-authentication encoding of (`type`, `body`):
 * "DSSEv1 <len(type)> <type> <len(body)> <body>". Caller owns; *len_out
 * its length. */
unsigned char *attest_pae(size_t *len_out, const char *type, const void *body, size_t len);

/* The DSSE envelope {"payloadType", "payload", "signatures": [{"keyid",
 * "sig"}]} of `payload` signed with `key`; keyid is "sha256:" and the hex
 * sha256 of the raw public key. Caller owns *out. */
int attest_sign(cJSON **out, const char *payload, size_t len, attest_key *key,
		struct cp_error *err);

/* Checks envelope text `text`: its shape and payloadType, and that one of
 * its signatures verifies with `pub` over the PAE of the payload. On
 * success the decoded Statement (its _type and predicateType checked) in
 * *statement (caller owns). Any failure (no envelope, a bad signature, a
 * tampered payload) is EXIT_STAGE_FAILED. */
int attest_verify(cJSON **statement, const char *text, size_t len, attest_key *pub,
		  struct cp_error *err);

/* "sha256:<hex of the raw public key>" of `key`, the keyid used. */
int attest_keyid(char out[72], attest_key *key, struct cp_error *err);

#endif
