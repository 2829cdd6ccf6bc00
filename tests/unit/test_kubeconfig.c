/* The kubeconfig reader: current-context and --context, inline *-data and
 * files relative to the kubeconfig, token and tokenFile, a KUBECONFIG
 * list, and the errors a user meets (missing context, cluster, user,
 * exec: auth, bad base64, bad YAML) with the file named and no secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../stages/kube_config.h"
#include "tmpdir.h"

static char *put(const char *rel, const char *content)
{
	char *path = at(rel);
	char *parent = path_dirname(path);
	struct cp_error err = {0};
	assert_int_equal(fs_mkdir_p(parent, 0755, &err), 0);
	assert_int_equal(fs_write_atomic(path, content, strlen(content), 0600, &err), 0);
	free(parent);
	return path;
}

/* "-----BEGIN CERTIFICATE-----\nCA\n" in base64. */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg=="

static const char two_contexts[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"clusters:\n"
	"- name: prod\n"
	"  cluster:\n"
	"    server: https://prod.example:6443/\n"
	"    certificate-authority-data: " CA_B64 "\n"
	"- name: lab\n"
	"  cluster:\n"
	"    server: https://10.0.0.1:6443\n"
	"    certificate-authority: pki/ca.crt\n"
	"    insecure-skip-tls-verify: true\n"
	"users:\n"
	"- name: alice\n"
	"  user:\n"
	"    token: s3cr3t-token\n"
	"- name: bob\n"
	"  user:\n"
	"    client-certificate: pki/bob.crt\n"
	"    client-key: /ABS/bob.key\n"
	"    tokenFile: tok\n"
	"contexts:\n"
	"- name: prod\n"
	"  context: {cluster: prod, user: alice}\n"
	"- name: lab\n"
	"  context: {cluster: lab, user: bob, namespace: ml}\n"
	"current-context: prod\n";

static char *with_abs(const char *text)
{
	struct strbuf b = {0};
	const char *p = text, *hit;
	while ((hit = strstr(p, "/ABS/"))) {
		sb_add(&b, p, (size_t)(hit - p));
		sb_adds(&b, tmpdir);
		sb_addc(&b, '/');
		p = hit + 5;
	}
	sb_adds(&b, p);
	return sb_detach(&b);
}

static void current_context_with_inline_ca_and_token(void **state)
{
	(void)state;
	char *text = with_abs(two_contexts);
	char *file = put("kc/config", text);
	struct kube_config c;
	struct cp_error err = {0};
	assert_int_equal(kube_config_load(&c, file, NULL, &err), 0);
	assert_string_equal(c.context, "prod");
	assert_string_equal(c.server, "https://prod.example:6443");
	assert_null(c.namespace);
	assert_false(c.insecure);
	assert_int_equal(c.ca_len, strlen("-----BEGIN CERTIFICATE-----\nCA\n"));
	assert_memory_equal(c.ca_pem, "-----BEGIN CERTIFICATE-----\nCA\n", c.ca_len);
	assert_string_equal(c.token, "s3cr3t-token");
	assert_null(c.cert_pem);
	kube_config_free(&c);
	free(file);
	free(text);
}

static void chosen_context_reads_files_relative_to_the_kubeconfig(void **state)
{
	(void)state;
	char *text = with_abs(two_contexts);
	char *file = put("kc/config", text);
	free(put("kc/pki/ca.crt", "CA-PEM"));
	free(put("kc/pki/bob.crt", "CERT-PEM"));
	free(put("bob.key", "KEY-PEM"));
	free(put("kc/tok", "file-token\n"));
	struct kube_config c;
	struct cp_error err = {0};
	assert_int_equal(kube_config_load(&c, file, "lab", &err), 0);
	assert_string_equal(c.context, "lab");
	assert_string_equal(c.cluster, "lab");
	assert_string_equal(c.server, "https://10.0.0.1:6443");
	assert_string_equal(c.namespace, "ml");
	assert_true(c.insecure);
	assert_string_equal(c.ca_pem, "CA-PEM");
	assert_string_equal(c.cert_pem, "CERT-PEM");
	assert_string_equal(c.key_pem, "KEY-PEM");
	assert_string_equal(c.token, "file-token");
	kube_config_free(&c);
	free(file);
	free(text);
}

static void kubeconfig_list_takes_the_first_file_with_the_context(void **state)
{
	(void)state;
	char *a = put("a.yaml", "apiVersion: v1\nkind: Config\nclusters: []\n");
	char *text = with_abs(two_contexts);
	char *b = put("b.yaml", text);
	char *missing = at("nope.yaml");
	char *list = xasprintf("%s:%s:%s", missing, a, b);
	struct kube_config c;
	struct cp_error err = {0};
	assert_int_equal(kube_config_load(&c, list, NULL, &err), 0);
	assert_string_equal(c.file, b);
	assert_string_equal(c.context, "prod");
	kube_config_free(&c);
	free(list);
	free(missing);
	free(a);
	free(b);
	free(text);
}

static void load_fails(const char *yaml, const char *context, const char *want)
{
	char *file = put("bad/config", yaml);
	struct kube_config c;
	struct cp_error err = {0};
	assert_int_equal(kube_config_load(&c, file, context, &err), -1);
	assert_int_equal(err.code, EXIT_RUNTIME);
	if (!strstr(err.msg, want))
		fail_msg("error \"%s\" does not say \"%s\"", err.msg, want);
	assert_null(strstr(err.msg, "s3cr3t"));
	free(file);
}

static void errors_name_the_file_and_what_is_missing(void **state)
{
	(void)state;
	load_fails(two_contexts, "staging", "no context \"staging\"");
	load_fails("clusters: []\ncontexts: []\n", NULL, "no current-context");
	load_fails("contexts:\n- name: x\n  context: {cluster: gone, user: u}\ncurrent-context: x\n",
		   NULL, "no cluster \"gone\" under clusters:");
	load_fails("clusters:\n- name: c\n  cluster: {server: https://h}\n"
		   "contexts:\n- name: x\n  context: {cluster: c, user: nobody}\ncurrent-context: x\n",
		   NULL, "no user \"nobody\"");
	load_fails("clusters:\n- name: c\n  cluster: {server: https://h}\n"
		   "users:\n- name: u\n  user:\n    exec: {command: gke-auth}\n    token: s3cr3t\n"
		   "contexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
		   NULL, "exec: or auth-provider:");
	load_fails("clusters:\n- name: c\n  cluster: {server: https://h, "
		   "certificate-authority-data: '!!!'}\n"
		   "contexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n",
		   NULL, "certificate-authority-data is not base64");
	load_fails("clusters: [\n", NULL, "bad/config:");
	char *missing = at("absent/config");
	struct kube_config c;
	struct cp_error err = {0};
	assert_int_equal(kube_config_load(&c, missing, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "absent/config"));
	free(missing);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(current_context_with_inline_ca_and_token,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(chosen_context_reads_files_relative_to_the_kubeconfig,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(kubeconfig_list_takes_the_first_file_with_the_context,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(errors_name_the_file_and_what_is_missing,
						tmpdir_setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
