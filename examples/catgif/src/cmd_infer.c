/* catgif infer: sends seeded random test images to a running `catgif
 * serve`, writes each image as an upscaled GIF named by index,
 * true label and prediction (00-true-sneaker-pred-sneaker.gif), and
 * predictions.json beside them. */
#include <dirent.h>
#include <fnmatch.h>
#include <getopt.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "commands.h"
#include "dataset.h"
#include "image.h"

#define INFER_USAGE                                                                                \
	"catgif infer --data DIR --url URL --out DIR [--count 5] [--seed 1] [--format "            \
	"pgm|gif|json]\n"                                                                          \
	"             [--wait 30]\n"                                                               \
	"  waits up to --wait seconds for URL/healthz, POSTs --count seeded random images of\n"    \
	"  DIR/test.bin to URL/predict, writes NN-true-<class>-pred-<class>.gif (8x) and\n"       \
	"  predictions.json to --out"

#define GIF_SCALE    8
#define MAX_RESPONSE (64u << 10)

struct client {
	CURL *curl;
	const char *base;
	struct buf response;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
	struct buf *b = userdata;
	return buf_append(b, p, size * n) < 0 ? 0 : size * n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* One request to base + path (a POST when body != NULL); the response
 * lands in c->response. Returns the CURLcode; *status the HTTP status. */
static CURLcode request(struct client *c, const char *path, const struct buf *body,
                        const char *ctype, long *status)
{
	char url[2048];
	size_t bl = strlen(c->base);
	snprintf(url, sizeof url, "%.*s%s", (int)(bl && c->base[bl - 1] == '/' ? bl - 1 : bl),
	         c->base, path);
	c->response.len = 0;
	c->errbuf[0] = '\0';
	struct curl_slist *hdrs = NULL;
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	if (body) {
		char h[128];
		snprintf(h, sizeof h, "Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, h);
		hdrs = curl_slist_append(hdrs, "Expect:");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body->data);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	} else {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	CURLcode rc = curl_easy_perform(c->curl);
	*status = 0;
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return rc;
}

static const char *curl_why(const struct client *c, CURLcode rc)
{
	return c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
}

/* Polls /healthz until it answers 200 or wait_s seconds pass. */
static int wait_healthy(struct client *c, long wait_s, struct cg_error *err)
{
	double deadline = now_seconds() + (double)wait_s;
	for (long delay = 100;; delay = delay < 1000 ? delay * 2 : 1000) {
		long status;
		CURLcode rc = request(c, "/healthz", NULL, NULL, &status);
		if (rc == CURLE_OK && status == 200)
			return 0;
		if (now_seconds() + (double)delay / 1000 > deadline)
			return err_set(err, EXIT_FAIL, "%s/healthz not healthy after %ld s: %s",
			               c->base, wait_s,
			               rc != CURLE_OK ? curl_why(c, rc) : "HTTP status not 200");
		sleep_ms(delay);
	}
}

/* POSTs one image and parses the prediction; connection failures are
 * retried briefly, HTTP errors are not. */
static int predict(cJSON **out, struct client *c, const struct buf *body, const char *ctype,
                   struct cg_error *err)
{
	long status = 0;
	CURLcode rc = CURLE_OK;
	for (int attempt = 0; attempt < 4; attempt++) {
		if (attempt)
			sleep_ms(250L << attempt);
		rc = request(c, "/predict", body, ctype, &status);
		if (rc != CURLE_COULDNT_CONNECT && rc != CURLE_RECV_ERROR &&
		    rc != CURLE_SEND_ERROR && rc != CURLE_GOT_NOTHING &&
		    rc != CURLE_OPERATION_TIMEDOUT)
			break;
	}
	if (rc != CURLE_OK)
		return err_set(err, EXIT_FAIL, "POST %s/predict: %s", c->base, curl_why(c, rc));
	buf_append(&c->response, "", 1);
	cJSON *o = cJSON_Parse((const char *)c->response.data);
	if (status != 200) {
		const char *msg =
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "error"));
		err_set(err, EXIT_FAIL, "POST %s/predict: HTTP %ld: %s", c->base, status,
		        msg ? msg : "(no error message)");
		cJSON_Delete(o);
		return -1;
	}
	const cJSON *label = cJSON_GetObjectItemCaseSensitive(o, "label");
	const cJSON *prob = cJSON_GetObjectItemCaseSensitive(o, "probability");
	if (!cJSON_IsNumber(label) || label->valueint < 0 || label->valueint >= DATASET_CLASSES ||
	    !cJSON_IsNumber(prob)) {
		cJSON_Delete(o);
		return err_set(err, EXIT_FAIL, "POST %s/predict: unexpected response: %.200s",
		               c->base, (const char *)c->response.data);
	}
	*out = o;
	return 0;
}

/* Removes NN-*.gif files an earlier run left, so --out holds this run only. */
static void remove_stale(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!fnmatch("[0-9][0-9]-*.gif", e->d_name, 0) ||
		    !fnmatch("[0-9][0-9][0-9]-*.gif", e->d_name, 0)) {
			cleanup_free char *p = path_join(dir, e->d_name);
			unlink(p);
		}
	closedir(d);
}

/* Encodes image k of ds as the request body in the chosen format. */
static const char *encode(struct buf *out, const struct dataset *ds, uint32_t k, const char *format,
                          struct cg_error *err)
{
	const uint8_t *px = ds->pixels + (size_t)k * DATASET_PIXELS;
	out->len = 0;
	if (!strcmp(format, "gif"))
		return image_encode_gif(out, px, DATASET_SIDE, DATASET_SIDE, 1, err) < 0
		           ? NULL
		           : "image/gif";
	if (!strcmp(format, "json")) {
		buf_append(out, "[", 1);
		for (int i = 0; i < DATASET_PIXELS; i++) {
			char num[8];
			int n = snprintf(num, sizeof num, "%s%u", i ? "," : "", px[i]);
			buf_append(out, num, (size_t)n);
		}
		buf_append(out, "]", 1);
		return "application/json";
	}
	image_encode_pgm(out, px, DATASET_SIDE, DATASET_SIDE);
	return "image/x-portable-graymap";
}

struct infer_opts {
	const char *data, *url, *out, *format;
	long count, seed, wait;
};

static int run(const struct infer_opts *o, const struct dataset *ds, struct client *c,
               struct cg_error *err)
{
	if (dir_create(o->out, err) < 0 || wait_healthy(c, o->wait, err) < 0)
		return -1;
	remove_stale(o->out);
	struct rng r;
	rng_seed(&r, (uint64_t)o->seed);
	cleanup_free uint32_t *idx = xmalloc(ds->count * sizeof *idx);
	for (uint32_t i = 0; i < ds->count; i++)
		idx[i] = i;
	for (long i = 0; i < o->count; i++) { /* partial Fisher-Yates: distinct picks */
		uint32_t j = (uint32_t)i + (uint32_t)rng_below(&r, ds->count - (uint64_t)i);
		uint32_t t = idx[i];
		idx[i] = idx[j], idx[j] = t;
	}
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "url", o->url);
	cJSON_AddNumberToObject(root, "seed", (double)o->seed);
	cJSON_AddNumberToObject(root, "count", (double)o->count);
	cJSON_AddStringToObject(root, "format", o->format);
	cJSON *list = cJSON_AddArrayToObject(root, "predictions");
	struct buf body = {0}, gif = {0};
	int rc = 0, correct = 0;
	for (long i = 0; i < o->count && rc == 0; i++) {
		uint32_t k = idx[i];
		uint8_t truth = ds->labels[k];
		const char *ctype = encode(&body, ds, k, o->format, err);
		cJSON *pred = NULL;
		if (!ctype || predict(&pred, c, &body, ctype, err) < 0) {
			rc = -1;
			break;
		}
		int label = cJSON_GetObjectItemCaseSensitive(pred, "label")->valueint;
		double prob = cJSON_GetObjectItemCaseSensitive(pred, "probability")->valuedouble;
		cJSON_Delete(pred);
		char name[64];
		snprintf(name, sizeof name,
		         o->count > 100 ? "%03ld-true-%s-pred-%s.gif" : "%02ld-true-%s-pred-%s.gif", i,
		         dataset_class_slugs[truth], dataset_class_slugs[label]);
		cleanup_free char *path = path_join(o->out, name);
		gif.len = 0;
		if (image_encode_gif(&gif, ds->pixels + (size_t)k * DATASET_PIXELS, DATASET_SIDE,
		                     DATASET_SIDE, GIF_SCALE, err) < 0 ||
		    file_write_atomic(path, gif.data, gif.len, err) < 0) {
			rc = -1;
			break;
		}
		correct += label == truth;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "index", (double)i);
		cJSON_AddNumberToObject(e, "test_index", k);
		cJSON_AddNumberToObject(e, "label", label);
		cJSON_AddStringToObject(e, "class", dataset_class_names[label]);
		cJSON_AddNumberToObject(e, "probability", prob);
		cJSON_AddNumberToObject(e, "true_label", truth);
		cJSON_AddStringToObject(e, "true_class", dataset_class_names[truth]);
		cJSON_AddBoolToObject(e, "correct", label == truth);
		cJSON_AddStringToObject(e, "file", name);
		cJSON_AddItemToArray(list, e);
		printf("%s: %s (p=%.3f), truth %s%s\n", name, dataset_class_names[label], prob,
		       dataset_class_names[truth], label == truth ? "" : "  WRONG");
	}
	if (rc == 0) {
		cJSON_AddNumberToObject(root, "correct", correct);
		char *text = cJSON_Print(root);
		cleanup_free char *path = path_join(o->out, "predictions.json");
		size_t len = strlen(text);
		text = xrealloc(text, len + 2);
		memcpy(text + len, "\n", 2);
		rc = file_write_atomic(path, text, len + 1, err);
		cJSON_free(text);
		if (rc == 0)
			printf("infer: %d of %ld correct -> %s\n", correct, o->count, path);
	}
	cJSON_Delete(root);
	buf_free(&body);
	buf_free(&gif);
	return rc;
}

int cmd_infer(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, NULL, 'd'},
	    {"url", required_argument, NULL, 'u'},
	    {"out", required_argument, NULL, 'o'},
	    {"count", required_argument, NULL, 'n'},
	    {"seed", required_argument, NULL, 's'},
	    {"format", required_argument, NULL, 'f'},
	    {"wait", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct infer_opts o = {.format = "pgm", .count = 5, .seed = 1, .wait = 30};
	struct cg_error err = {0};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'd':
			o.data = optarg;
			break;
		case 'u':
			o.url = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'n':
			rc = parse_long(&o.count, "--count", optarg, 1, 1000, &err);
			break;
		case 's':
			rc = parse_long(&o.seed, "--seed", optarg, 0, LONG_MAX, &err);
			break;
		case 'w':
			rc = parse_long(&o.wait, "--wait", optarg, 0, 3600, &err);
			break;
		case 'f':
			o.format = optarg;
			if (strcmp(optarg, "pgm") && strcmp(optarg, "gif") &&
			    strcmp(optarg, "json"))
				return usage_error("infer", INFER_USAGE,
				                   "--format: pgm, gif or json");
			break;
		case 'h':
			puts(INFER_USAGE);
			return EXIT_OK;
		default:
			return usage_error("infer", INFER_USAGE, "bad option");
		}
		if (rc < 0)
			return err_report(&err);
	}
	if (optind < argc)
		return usage_error("infer", INFER_USAGE, "unexpected argument \"%s\"",
		                   argv[optind]);
	if (!o.data || !o.url || !o.out)
		return usage_error("infer", INFER_USAGE, "--data, --url and --out are required");

	struct dataset ds;
	cleanup_free char *test_path = path_join(o.data, "test.bin");
	if (dataset_load(&ds, test_path, &err) < 0)
		return err_report(&err);
	if ((uint64_t)o.count > ds.count) {
		dataset_free(&ds);
		return usage_error("infer", INFER_USAGE, "--count %ld exceeds the %u test images",
		                   o.count, ds.count);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct client cl = {
	    .curl = curl_easy_init(), .base = o.url, .response = {.max = MAX_RESPONSE}};
	int rc = -1;
	if (!cl.curl) {
		err_set(&err, EXIT_FAIL, "curl_easy_init failed");
	} else {
		curl_easy_setopt(cl.curl, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(cl.curl, CURLOPT_WRITEDATA, &cl.response);
		curl_easy_setopt(cl.curl, CURLOPT_ERRORBUFFER, cl.errbuf);
		curl_easy_setopt(cl.curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(cl.curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
		curl_easy_setopt(cl.curl, CURLOPT_TIMEOUT, 30L);
		curl_easy_setopt(cl.curl, CURLOPT_PROTOCOLS_STR, "http,https");
		rc = run(&o, &ds, &cl, &err);
		curl_easy_cleanup(cl.curl);
	}
	buf_free(&cl.response);
	curl_global_cleanup();
	dataset_free(&ds);
	return rc < 0 ? err_report(&err) : EXIT_OK;
}
