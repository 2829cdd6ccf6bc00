/* The kubeconfig reader: which cluster, which credentials. It reads the
 * file(s) KUBECONFIG names (a colon list; the first file that has a
 * current-context, or the context asked for, is the one used; the others
 * are not merged), else ~/.kube/config, with libyaml. A context chosen by
 * name (--context, CPIPE_KUBE_CONTEXT) replaces current-context. Paths in
 * the file (certificate-authority, client-certificate, client-key,
 * tokenFile) are relative to the file's directory, as kubectl takes them;
 * *-data members are base64 and decoded here. */
#ifndef CPIPE_STAGES_KUBE_CONFIG_H
#define CPIPE_STAGES_KUBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/error.h"

struct kube_config {
	char *file;      /* the kubeconfig file used (absolute or as given) */
	char *context;   /* the context's name */
	char *cluster;   /* the cluster's name */
	char *server;    /* "https://10.200.0.1:6443", without a trailing slash */
	char *namespace; /* the context's namespace:, NULL when absent */
	bool insecure;   /* insecure-skip-tls-verify: true */
	/* PEM of the CA, the client certificate and its key, from *-data or
	 * read from the files named; NULL when absent. */
	char *ca_pem;
	size_t ca_len;
	char *cert_pem;
	size_t cert_len;
	char *key_pem;
	size_t key_len;
	char *token; /* a bearer token (token: or tokenFile:), NULL when absent */
};

/* Loads the configuration `kubeconfig` (a KUBECONFIG value: files
 * separated by ':'; NULL or "" = $HOME/.kube/config) names, with context
 * `context` (NULL = current-context). Fails with err->code EXIT_RUNTIME and
 * a message naming the file (and the line for YAML errors) when no file can
 * be read, the context, its cluster or user is missing, or a file or
 * base64 member it names cannot be read. Never puts a secret in err.
 * Free with kube_config_free. */
int kube_config_load(struct kube_config *out, const char *kubeconfig, const char *context,
		     struct cp_error *err);
void kube_config_free(struct kube_config *c);

/* Decodes standard base64 (whitespace ignored) into a new buffer of *len_out
 * bytes, NUL-terminated for convenience; NULL when `in` is not base64. */
unsigned char *kube_base64_decode(size_t *len_out, const char *in, size_t n);

#endif
