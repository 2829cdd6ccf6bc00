/* The kubeconfig reader (see kube_config.h): libyaml's document API over
 * one file at a time, lookups by key, nothing merged. */
#include "kube_config.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "../lib/fs.h"

#define KUBECONFIG_MAX (4 << 20)

unsigned char *kube_base64_decode(size_t *len_out, const char *in, size_t n)
{
	unsigned char *out = xmalloc(n / 4 * 3 + 4);
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	int got = 0, tail = 0;
	EVP_DecodeInit(ctx);
	bool ok = EVP_DecodeUpdate(ctx, out, &got, (const unsigned char *)in, (int)n) >= 0 &&
		  EVP_DecodeFinal(ctx, out + got, &tail) == 1;
	EVP_ENCODE_CTX_free(ctx);
	if (!ok) {
		free(out);
		return NULL;
	}
	*len_out = (size_t)(got + tail);
	out[*len_out] = '\0';
	return out;
}

/* ---- lookups in a libyaml document ---- */

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);
		if (k && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

/* A scalar's text, or NULL (lent by the document). */
static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *map_str(yaml_document_t *d, yaml_node_t *m, const char *key)
{
	return scalar(map_get(d, m, key));
}

/* The `inner` mapping (cluster:, user:, context:) of the entry named
 * `name` in the sequence `list` (clusters:, users:, contexts:). */
static yaml_node_t *named(yaml_document_t *d, const char *list, const char *inner,
			  const char *name)
{
	yaml_node_t *seq = map_get(d, yaml_document_get_root_node(d), list);
	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top;
	     i++) {
		yaml_node_t *e = yaml_document_get_node(d, *i);
		const char *n = map_str(d, e, "name");
		if (n && strcmp(n, name) == 0) {
			yaml_node_t *in = map_get(d, e, inner);
			return in ? in : e;
		}
	}
	return NULL;
}

/* ---- one file ---- */

struct doc {
	const char *file;
	char *dir; /* for relative paths in it */
	yaml_document_t d;
	bool loaded;
};

static int doc_load(struct doc *doc, const char *file, struct cp_error *err)
{
	cleanup_free char *text = NULL;
	size_t len = 0;
	if (fs_read_file(&text, &len, file, KUBECONFIG_MAX, err) < 0)
		return -1;
	yaml_parser_t p;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	int ok = yaml_parser_load(&p, &doc->d);
	if (!ok)
		cp_error_set(err, EXIT_RUNTIME, "%s:%zu:%zu: %s", file, p.problem_mark.line + 1,
			     p.problem_mark.column + 1, p.problem ? p.problem : "invalid YAML");
	yaml_parser_delete(&p);
	if (!ok)
		return -1;
	doc->loaded = true;
	doc->file = file;
	const char *slash = strrchr(file, '/');
	doc->dir = slash ? xstrndup(file, (size_t)(slash - file) + 1) : xstrdup("");
	return 0;
}

static void doc_free(struct doc *doc)
{
	if (doc->loaded)
		yaml_document_delete(&doc->d);
	free(doc->dir);
	doc->loaded = false;
	doc->dir = NULL;
}

/* Reads `path` (relative to the kubeconfig's directory) whole. */
static int read_ref(char **out, size_t *len, struct doc *doc, const char *what, const char *path,
		    struct cp_error *err)
{
	cleanup_free char *full = path[0] == '/' ? xstrdup(path) : xasprintf("%s%s", doc->dir, path);
	if (fs_read_file(out, len, full, KUBECONFIG_MAX, err) < 0)
		return cp_error_prefix(err, "%s: %s", doc->file, what);
	return 0;
}

/* The PEM of `key`-data (base64) or of the file `key` names. */
static int pem(char **out, size_t *len, struct doc *doc, yaml_node_t *m, const char *key,
	       struct cp_error *err)
{
	cleanup_free char *dkey = xasprintf("%s-data", key);
	const char *data = map_str(&doc->d, m, dkey);
	if (data && *data) {
		*out = (char *)kube_base64_decode(len, data, strlen(data));
		if (!*out)
			return cp_error_set(err, EXIT_RUNTIME, "%s: %s is not base64", doc->file,
					    dkey);
		return 0;
	}
	const char *file = map_str(&doc->d, m, key);
	if (file && *file)
		return read_ref(out, len, doc, key, file, err);
	return 0;
}

static int fill(struct kube_config *c, struct doc *doc, const char *ctx_name, struct cp_error *err)
{
	yaml_document_t *d = &doc->d;
	yaml_node_t *ctx = named(d, "contexts", "context", ctx_name);
	if (!ctx)
		return cp_error_set(err, EXIT_RUNTIME,
				    "%s: no context \"%s\" under contexts:", doc->file, ctx_name);
	const char *cl = map_str(d, ctx, "cluster");
	const char *us = map_str(d, ctx, "user");
	const char *ns = map_str(d, ctx, "namespace");
	if (!cl)
		return cp_error_set(err, EXIT_RUNTIME,
				    "%s: context \"%s\" names no cluster:", doc->file, ctx_name);
	yaml_node_t *cluster = named(d, "clusters", "cluster", cl);
	if (!cluster)
		return cp_error_set(err, EXIT_RUNTIME,
				    "%s: context \"%s\": no cluster \"%s\" under clusters:",
				    doc->file, ctx_name, cl);
	const char *server = map_str(d, cluster, "server");
	if (!server || !*server)
		return cp_error_set(err, EXIT_RUNTIME, "%s: cluster \"%s\" has no server:", doc->file,
				    cl);
	c->file = xstrdup(doc->file);
	c->context = xstrdup(ctx_name);
	c->cluster = xstrdup(cl);
	size_t n = strlen(server);
	while (n && server[n - 1] == '/')
		n--;
	c->server = xstrndup(server, n);
	c->namespace = ns && *ns ? xstrdup(ns) : NULL;
	const char *insecure = map_str(d, cluster, "insecure-skip-tls-verify");
	c->insecure = insecure && strcmp(insecure, "true") == 0;
	if (pem(&c->ca_pem, &c->ca_len, doc, cluster, "certificate-authority", err) < 0)
		return -1;
	yaml_node_t *user = us ? named(d, "users", "user", us) : NULL;
	if (us && !user)
		return cp_error_set(err, EXIT_RUNTIME,
				    "%s: context \"%s\": no user \"%s\" under users:", doc->file,
				    ctx_name, us);
	if (!user)
		return 0;
	if (map_get(d, user, "exec") || map_get(d, user, "auth-provider"))
		return cp_error_set(err, EXIT_RUNTIME,
				    "%s: user \"%s\" authenticates with exec: or auth-provider:, "
				    "which cpipe does not run; give it a token:, tokenFile: or a "
				    "client certificate",
				    doc->file, us);
	if (pem(&c->cert_pem, &c->cert_len, doc, user, "client-certificate", err) < 0 ||
	    pem(&c->key_pem, &c->key_len, doc, user, "client-key", err) < 0)
		return -1;
	const char *token = map_str(d, user, "token");
	const char *token_file = map_str(d, user, "tokenFile");
	if (token && *token) {
		c->token = xstrdup(token);
	} else if (token_file && *token_file) {
		size_t len = 0;
		if (read_ref(&c->token, &len, doc, "tokenFile", token_file, err) < 0)
			return -1;
		while (len && (c->token[len - 1] == '\n' || c->token[len - 1] == '\r'))
			c->token[--len] = '\0';
	}
	return 0;
}

int kube_config_load(struct kube_config *out, const char *kubeconfig, const char *context,
		     struct cp_error *err)
{
	memset(out, 0, sizeof(*out));
	struct strvec files = {0};
	if (kubeconfig && *kubeconfig) {
		cleanup_free char *copy = xstrdup(kubeconfig);
		char *save = NULL;
		for (char *f = strtok_r(copy, ":", &save); f; f = strtok_r(NULL, ":", &save))
			if (*f)
				strvec_push(&files, f);
	} else {
		const char *home = getenv("HOME");
		strvec_push_take(&files, xasprintf("%s/.kube/config", home && *home ? home : "/root"));
	}
	int rc = -1;
	struct cp_error first = {0};
	bool any = false;
	for (size_t i = 0; i < files.n && rc < 0; i++) {
		struct doc doc = {0};
		struct cp_error e = {0};
		/* A missing file in a list is skipped, as kubectl does. */
		if (files.n > 1 && access(files.v[i], F_OK) < 0 && errno == ENOENT)
			continue;
		if (doc_load(&doc, files.v[i], &e) < 0) {
			if (!first.msg[0])
				first = e;
			doc_free(&doc);
			continue;
		}
		any = true;
		const char *cur = context && *context
					  ? context
					  : map_str(&doc.d, yaml_document_get_root_node(&doc.d),
						    "current-context");
		bool has = cur && *cur && named(&doc.d, "contexts", "context", cur);
		if (cur && *cur && (has || (context && *context && i + 1 == files.n))) {
			rc = fill(out, &doc, cur, &e);
			if (rc < 0) {
				kube_config_free(out);
				first = e;
				doc_free(&doc);
				break;
			}
		}
		doc_free(&doc);
	}
	if (rc < 0) {
		if (first.msg[0])
			cp_error_set(err, EXIT_RUNTIME, "kubeconfig: %s", first.msg);
		else if (!any)
			cp_error_set(err, EXIT_RUNTIME, "no kubeconfig file among %s",
				     kubeconfig ? kubeconfig : "~/.kube/config");
		else if (context && *context)
			cp_error_set(err, EXIT_RUNTIME, "no context \"%s\" in %s", context,
				     kubeconfig && *kubeconfig ? kubeconfig : "~/.kube/config");
		else
			cp_error_set(err, EXIT_RUNTIME,
				     "no current-context in %s (set one with kubectl config "
				     "use-context, or give --context)",
				     kubeconfig && *kubeconfig ? kubeconfig : "~/.kube/config");
	}
	strvec_free(&files);
	return rc;
}

void kube_config_free(struct kube_config *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->context);
	free(c->cluster);
	free(c->server);
	free(c->namespace);
	free(c->ca_pem);
	free(c->cert_pem);
	if (c->key_pem)
		explicit_bzero(c->key_pem, c->key_len);
	free(c->key_pem);
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	free(c->token);
	memset(c, 0, sizeof(*c));
}
