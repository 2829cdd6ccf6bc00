/* Reading a claim back: a short helper pod (rt->helper_image: sh, tar,
 * base64) mounts the claim read-only, writes a base64 tar of the path to
 * its stdout, and pods/{name}/log brings it here (the log is text, hence
 * base64). libarchive reads the tar, so the digests are those the local
 * runtime computes. Writing a claim (kube_restore.c) feeds a helper pod
 * through pods/exec instead. */
#include <archive.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kube_internal.h"

#define HELPER_TIMEOUT_S 120

char *kube_sh_quote(const char *s)
{
	struct strbuf b = {0};
	sb_addc(&b, '\'');
	for (; *s; s++)
		if (*s == '\'')
			sb_adds(&b, "'\\''");
		else
			sb_addc(&b, *s);
	sb_addc(&b, '\'');
	return sb_detach(&b);
}

struct decode {
	EVP_ENCODE_CTX *ctx;
	FILE *out;
	bool bad;
};

static int on_b64(void *ud, const char *data, size_t n)
{
	struct decode *d = ud;
	unsigned char buf[49152];
	while (n && !d->bad) {
		size_t k = n > 65536 ? 65536 : n;
		int got = 0;
		if (EVP_DecodeUpdate(d->ctx, buf, &got, (const unsigned char *)data, (int)k) < 0)
			d->bad = true;
		else if (got > 0 && fwrite(buf, 1, (size_t)got, d->out) != (size_t)got)
			d->bad = true;
		data += k;
		n -= k;
	}
	return 0;
}

cJSON *kube_helper_pod(struct runtime *rt, const char *name, const char *claim,
		       const char *script, bool writer)
{
	bool ro = !writer;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "apiVersion", "v1");
	cJSON_AddStringToObject(o, "kind", "Pod");
	cJSON *md = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(md, "name", name);
	cJSON *l = cJSON_AddObjectToObject(md, "labels");
	cJSON_AddStringToObject(l, KLABEL_PROJECT, rt->project);
	cJSON_AddStringToObject(l, KLABEL_HELPER, writer ? "volume-writer" : "volume-reader");
	cJSON *spec = cJSON_AddObjectToObject(o, "spec");
	cJSON_AddStringToObject(spec, "restartPolicy", "Never");
	cJSON_AddBoolToObject(spec, "automountServiceAccountToken", false);
	cJSON_AddBoolToObject(spec, "enableServiceLinks", false);
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "name", writer ? "writer" : "reader");
	cJSON_AddStringToObject(c, "image", rt->helper_image);
	struct cp_error e = {0};
	cJSON_AddStringToObject(c, "imagePullPolicy",
				kube_image_local(rt, rt->helper_image, &e) ? "Never" : "IfNotPresent");
	cJSON_AddItemToObject(c, "command",
			      cJSON_CreateStringArray((const char *[]){"/bin/sh", "-c", script}, 3));
	cJSON *vm = cJSON_CreateObject();
	cJSON_AddStringToObject(vm, "name", "v");
	cJSON_AddStringToObject(vm, "mountPath", "/v");
	cJSON_AddBoolToObject(vm, "readOnly", ro);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "volumeMounts"), vm);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "containers"), c);
	cJSON *v = cJSON_CreateObject();
	cJSON_AddStringToObject(v, "name", "v");
	cJSON *pvc = cJSON_AddObjectToObject(v, "persistentVolumeClaim");
	cJSON_AddStringToObject(pvc, "claimName", claim);
	cJSON_AddBoolToObject(pvc, "readOnly", ro);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(spec, "volumes"), v);
	return o;
}

int kube_helper_wait(struct runtime *rt, const char *name, bool running, int *exit_code,
		     struct cp_error *err)
{
	cleanup_free char *path = kube_path(rt, "pods", name);
	long long deadline = now_ms() + HELPER_TIMEOUT_S * 1000LL;
	while (now_ms() < deadline) {
		if (runtime_interrupts) {
			return cp_error_set(err, EXIT_INTERRUPTED, "interrupted");
		}
		cJSON *pod = NULL;
		if (kube_json(rt->k, "GET", path, NULL, NULL, &pod, err) < 0)
			return -1;
		const char *phase = kube_str(pod, "status.phase");
		const cJSON *cs;
		cJSON_ArrayForEach(cs, kube_get(pod, "status.containerStatuses"))
		{
			const cJSON *ec = kube_get(cs, "state.terminated.exitCode");
			bool ended = cJSON_IsNumber(ec) && phase && strcmp(phase, "Running") != 0;
			if (ended && running) {
				cJSON_Delete(pod);
				return cp_error_set(err, EXIT_RUNTIME,
						    "the helper pod %s ended before use", name);
			}
			if (ended || (running && kube_get(cs, "state.running"))) {
				*exit_code = ended ? ec->valueint : 0;
				cJSON_Delete(pod);
				return 0;
			}
		}
		cleanup_free char *why = phase && !strcmp(phase, "Pending") ? kube_pod_problem(pod)
									   : NULL;
		cJSON_Delete(pod);
		if (why && !strstr(why, "Unschedulable"))
			return cp_error_set(err, EXIT_RUNTIME,
					    "the helper pod %s (image %s, set by x-cpipe: "
					    "{helper_image} or CPIPE_KUBE_HELPER_IMAGE): %s",
					    name, rt->helper_image, why);
		usleep(150000);
	}
	return cp_error_set(err, EXIT_RUNTIME, "the helper pod %s did not %s within %ds", name,
			    running ? "start" : "finish", HELPER_TIMEOUT_S);
}

/* The helper's last line once its script succeeded: a log read before the
 * node flushed it all (the container just ended) lacks it, and is read
 * again. */
#define END_MARK "cpipe-helper-end"

static int raw_log(void *ud, const char *data, size_t n)
{
	return fwrite(data, 1, n, ud) == n ? 0 : -1;
}

/* Whether `f` ends with END_MARK and a newline. */
static bool complete(FILE *f)
{
	char tail[sizeof(END_MARK) + 1];
	long size = ftell(f);
	size_t want = sizeof(END_MARK); /* the mark and '\n' */
	if (size < (long)want || fseek(f, size - (long)want, SEEK_SET) != 0)
		return false;
	bool ok = fread(tail, 1, want, f) == want && memcmp(tail, END_MARK "\n", want) == 0;
	fseek(f, 0, SEEK_END);
	return ok;
}

/* Decodes the base64 of `raw` (the mark excluded) into `out`. */
static int decode_into(FILE *out, FILE *raw, struct cp_error *err)
{
	long size = ftell(raw) - (long)sizeof(END_MARK);
	rewind(raw);
	struct decode d = {.ctx = EVP_ENCODE_CTX_new(), .out = out};
	EVP_DecodeInit(d.ctx);
	char buf[65536];
	while (size > 0 && !d.bad) {
		size_t k = fread(buf, 1, size < (long)sizeof(buf) ? (size_t)size : sizeof(buf), raw);
		if (k == 0)
			break;
		on_b64(&d, buf, k);
		size -= (long)k;
	}
	unsigned char tail[64];
	int got = 0;
	int rc = 0;
	if (d.bad || size > 0 || EVP_DecodeFinal(d.ctx, tail, &got) < 0)
		rc = cp_error_set(err, EXIT_RUNTIME, "the helper pod's output is not base64");
	else if (got > 0 && fwrite(tail, 1, (size_t)got, out) != (size_t)got)
		rc = cp_error_errno(err, EXIT_RUNTIME, "writing a temporary file");
	EVP_ENCODE_CTX_free(d.ctx);
	if (rc == 0 && fflush(out) != 0)
		rc = cp_error_errno(err, EXIT_RUNTIME, "writing a temporary file");
	rewind(out);
	return rc;
}

int kube_helper_run(struct runtime *rt, const char *volume, const char *script, FILE *out,
		    int *exit_code, struct cp_error *err)
{
	static unsigned seq;
	const struct kube_volume *v = kube_volume_of(rt, volume);
	if (!v)
		return cp_error_set(err, EXIT_USAGE, "volume \"%s\" is not declared", volume);
	if (kube_namespace_ensure(rt, err) < 0)
		return -1;
	cleanup_free char *raw = xasprintf("%s-read-%lx-%x", rt->project, (long)getpid(), seq++);
	cleanup_free char *name = kube_dns_name(raw, 63);
	cleanup_free char *coll = kube_path(rt, "pods", NULL);
	cleanup_free char *full = xasprintf("set -o pipefail\n%s\necho " END_MARK "\n", script);
	cJSON *body = kube_helper_pod(rt, name, v->claim, full, false);
	int rc = kube_json(rt->k, "POST", coll, body, NULL, NULL, err);
	cJSON_Delete(body);
	if (rc < 0)
		return cp_error_prefix(err, "creating the helper pod for volume \"%s\"", volume);
	rc = kube_helper_wait(rt, name, false, exit_code, err);
	cleanup_fclose FILE *log = rc == 0 ? tmpfile() : NULL;
	if (rc == 0 && !log)
		rc = cp_error_errno(err, EXIT_RUNTIME, "creating a temporary file");
	cleanup_free char *base = kube_path(rt, "pods", name);
	cleanup_free char *path = xasprintf("%s/log", base);
	for (int tries = 0; rc == 0 && *exit_code == 0; tries++) {
		rewind(log);
		if (ftruncate(fileno(log), 0) < 0)
			rc = cp_error_errno(err, EXIT_RUNTIME, "truncating a temporary file");
		struct kube_req rq = {.method = "GET", .path = path, .on_data = raw_log, .ud = log,
				      .stream = true};
		if (rc == 0)
			rc = kube_call(rt->k, &rq, NULL, NULL, err);
		if (rc == 0 && fflush(log) != 0)
			rc = cp_error_errno(err, EXIT_RUNTIME, "writing a temporary file");
		if (rc < 0 || complete(log))
			break;
		if (tries == 40) {
			rc = cp_error_set(err, EXIT_RUNTIME,
					  "the helper pod %s's log stays incomplete", name);
			break;
		}
		usleep(250000);
	}
	if (rc == 0 && *exit_code == 0)
		rc = decode_into(out, log, err);
	struct cp_error e2 = {0};
	if (kube_delete(rt->k, rt, "pods", name, &e2) < 0)
		runtime_note(&rt->sink, RUNTIME_WARNING, NULL, "%s", e2.msg);
	return rc;
}

int kube_volume_read_tree(struct runtime *rt, const char *volume, const char *path,
			  int (*visit)(void *ud, const struct volume_entry *e, struct cp_error *err),
			  void *ud, struct cp_error *err)
{
	const char *slash = strrchr(path, '/');
	bool root = strcmp(path, "/") == 0;
	cleanup_free char *dir = root || slash == path ? xstrdup("/v")
						       : xasprintf("/v%.*s", (int)(slash - path), path);
	cleanup_free char *qdir = kube_sh_quote(dir);
	cleanup_free char *qbase = kube_sh_quote(root ? "." : slash + 1);
	cleanup_free char *script = xasprintf(
		"cd %s 2>/dev/null && [ -e %s ] || [ -L %s ] || exit 3; tar -cf - %s | base64", qdir,
		qbase, qbase, qbase);
	cleanup_fclose FILE *f = tmpfile();
	if (!f)
		return cp_error_errno(err, EXIT_RUNTIME, "creating a temporary file");
	int code = 0;
	if (kube_helper_run(rt, volume, script, f, &code, err) < 0)
		return cp_error_prefix(err, "reading %s:%s", volume, path);
	if (code == 3)
		return 1;
	if (code != 0)
		return cp_error_set(err, EXIT_RUNTIME, "reading %s:%s: the helper pod exited with %d",
				    volume, path, code);
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	int rc;
	if (archive_read_open_FILE(a, f) != ARCHIVE_OK)
		rc = cp_error_set(err, EXIT_RUNTIME, "%s", archive_error_string(a));
	else
		rc = runtime_tar_visit(a, visit, ud, err);
	archive_read_free(a);
	return rc < 0 ? cp_error_prefix(err, "reading %s:%s", volume, path) : 0;
}
