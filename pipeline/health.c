#include "health.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

/* `url` with its port mapped by `map` (0: unchanged); caller owns. */
static char *url_map_port(const char *url, int (*map)(void *ud, int port), void *ud)
{
	CURLU *u = curl_url();
	char *port = NULL, *out = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		int bound = map(ud, atoi(port));
		if (bound > 0 && bound != atoi(port)) {
			char buf[16];
			snprintf(buf, sizeof(buf), "%d", bound);
			char *rewritten = NULL;
			if (curl_url_set(u, CURLUPART_PORT, buf, 0) == CURLUE_OK &&
			    curl_url_get(u, CURLUPART_URL, &rewritten, 0) == CURLUE_OK) {
				out = xstrdup(rewritten);
				curl_free(rewritten);
			}
		}
	}
	curl_free(port);
	curl_url_cleanup(u);
	return out ? out : xstrdup(url);
}

struct task_map {
	const struct runtime_ops *ops;
	struct runtime *rt;
	struct task *t;
};

static int map_by_runtime(void *ud, int port)
{
	struct task_map *m = ud;
	return m->ops->host_port(m->rt, m->t, port, "tcp");
}

char *health_url(const struct runtime_ops *ops, struct runtime *rt, struct task *t,
		 const char *url)
{
	struct task_map m = {ops, rt, t};
	return url_map_port(url, map_by_runtime, &m);
}

static int map_by_state(void *ud, int port)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, (const cJSON *)ud) {
		const char *proto = cJSON_GetStringValue(cJSON_GetObjectItem(it, "protocol"));
		if ((!proto || strcmp(proto, "tcp") == 0) &&
		    cJSON_GetNumberValue(cJSON_GetObjectItem(it, "container_port")) == port)
			return (int)cJSON_GetNumberValue(cJSON_GetObjectItem(it, "host_port"));
	}
	return 0;
}

static int probe_http(char **why, const char *url, long timeout_ms, struct cp_error *err)
{
	CURL *c = curl_easy_init();
	if (!c)
		return cp_error_set(err, "cannot initialize libcurl");
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		*why = xasprintf("GET %s: %s", url, *errbuf ? errbuf : curl_easy_strerror(rc));
		return 1;
	}
	if (status < 200 || status > 299) {
		*why = xasprintf("GET %s answered %ld", url, status);
		return 1;
	}
	return 0;
}

int health_probe_state(char **why, const struct healthcheck *h, const cJSON *ports,
		       struct cp_error *err)
{
	*why = NULL;
	if (!h || h->disable || !h->http)
		return 0;
	cleanup_free char *url = url_map_port(h->http, map_by_state, (void *)ports);
	long timeout = h->timeout_ms > 0 && h->timeout_ms < CP_HEALTH_HTTP_TIMEOUT_MS
			       ? h->timeout_ms
			       : CP_HEALTH_HTTP_TIMEOUT_MS;
	return probe_http(why, url, timeout, err);
}

int health_probe(char **why, const struct runtime_ops *ops, struct runtime *rt, struct task *t,
		 const struct healthcheck *h, struct cp_error *err)
{
	*why = NULL;
	if (h->http) {
		cleanup_free char *url = health_url(ops, rt, t, h->http);
		return probe_http(why, url, h->timeout_ms, err);
	}
	if (h->test.n == 0)
		return 0;
	if (!ops->caps.exec)
		return cp_error_set(err, "the %s runtime cannot run health check commands", ops->name);
	struct strvec argv = {0};
	const char *kind = h->test.v[0];
	if (strcmp(kind, "CMD-SHELL") == 0) {
		strvec_push(&argv, "/bin/sh");
		strvec_push(&argv, "-c");
		for (size_t i = 1; i < h->test.n; i++)
			strvec_push(&argv, h->test.v[i]);
	} else {
		for (size_t i = strcmp(kind, "CMD") == 0 ? 1 : 0; i < h->test.n; i++)
			strvec_push(&argv, h->test.v[i]);
	}
	if (argv.n == 0) {
		strvec_free(&argv);
		return 0;
	}
	int code = 0;
	int rc = ops->exec(rt, t, argv.v, h->timeout_ms, &code, err);
	if (rc == 0 && code != 0) {
		*why = code < 0 ? xasprintf("%s timed out", argv.v[argv.n - 1])
				: xasprintf("health check exited with %d", code);
		rc = 1;
	}
	strvec_free(&argv);
	return rc;
}
