#include "health.h"

#include <curl/curl.h>
#include <poll.h>
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
		return cp_error_set(err, EXIT_USAGE, "cannot initialize libcurl");
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : CP_HEALTH_HTTP_TIMEOUT_MS);
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

/* ---- probes in flight ---- */

struct health_probe {
	struct health_set *hs;
	struct health_probe *next;
	const struct runtime_ops *ops;
	struct runtime *rt;
	/* http: */
	CURL *c;
	char *url;
	char errbuf[CURL_ERROR_SIZE];
	bool done;
	CURLcode result;
	/* a command: */
	struct task_exec *x;
	int fd;
	long long deadline;
	char *what; /* its last word, for "timed out" */
};

struct health_set {
	CURLM *multi; /* made with the first http probe */
	int transfers; /* http probes not done yet */
	struct health_probe *probes;
};

struct health_set *health_set_new(void)
{
	return xcalloc(1, sizeof(struct health_set));
}

static void probe_free(struct health_probe *pr)
{
	struct health_set *hs = pr->hs;
	for (struct health_probe **pp = &hs->probes; *pp; pp = &(*pp)->next)
		if (*pp == pr) {
			*pp = pr->next;
			break;
		}
	if (pr->c) {
		if (!pr->done)
			hs->transfers--;
		curl_multi_remove_handle(hs->multi, pr->c);
		curl_easy_cleanup(pr->c);
	}
	free(pr->url);
	free(pr->what);
	free(pr);
}

void health_cancel(struct health_probe *pr)
{
	if (!pr)
		return;
	if (pr->x) {
		int code;
		struct cp_error ignored = {0};
		pr->ops->exec_end(pr->rt, pr->x, true, &code, &ignored);
	}
	probe_free(pr);
}

void health_set_free(struct health_set *hs)
{
	if (!hs)
		return;
	while (hs->probes)
		health_cancel(hs->probes);
	if (hs->multi)
		curl_multi_cleanup(hs->multi);
	free(hs);
}

static struct health_probe *probe_new(struct health_set *hs, const struct runtime_ops *ops,
				      struct runtime *rt)
{
	struct health_probe *pr = xcalloc(1, sizeof(*pr));
	pr->hs = hs;
	pr->ops = ops;
	pr->rt = rt;
	pr->fd = -1;
	pr->next = hs->probes;
	hs->probes = pr;
	return pr;
}

static int start_http(struct health_probe *pr, const char *url, long timeout_ms,
		      struct cp_error *err)
{
	struct health_set *hs = pr->hs;
	if (!hs->multi && !(hs->multi = curl_multi_init()))
		return cp_error_set(err, EXIT_USAGE, "cannot initialize libcurl");
	CURL *c = curl_easy_init();
	if (!c)
		return cp_error_set(err, EXIT_USAGE, "cannot initialize libcurl");
	pr->url = xstrdup(url);
	curl_easy_setopt(c, CURLOPT_URL, pr->url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : CP_HEALTH_HTTP_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, pr->errbuf);
	curl_easy_setopt(c, CURLOPT_PRIVATE, pr);
	if (curl_multi_add_handle(hs->multi, c) != CURLM_OK) {
		curl_easy_cleanup(c);
		return cp_error_set(err, EXIT_USAGE, "cannot start a health probe of %s", url);
	}
	pr->c = c;
	hs->transfers++;
	return 0;
}

int health_start(struct health_probe **out, struct health_set *hs,
		 const struct runtime_ops *ops, struct runtime *rt, struct task *t,
		 const struct healthcheck *h, struct cp_error *err)
{
	*out = NULL;
	if (h->http && !ops->caps.task_probes) {
		struct health_probe *pr = probe_new(hs, ops, rt);
		cleanup_free char *url = health_url(ops, rt, t, h->http);
		if (start_http(pr, url, h->timeout_ms, err) < 0) {
			probe_free(pr);
			return -1;
		}
		*out = pr;
		return 0;
	}
	if (h->test.n == 0 && !h->http)
		return 1;
	if (!ops->caps.exec)
		return cp_error_set(err, EXIT_USAGE,
				    "the %s runtime cannot run health check commands", ops->name);
	struct strvec argv = {0};
	const char *kind = h->http ? "" : h->test.v[0];
	if (h->http) {
		/* The runtime's own probe of the URL (caps.task_probes). */
		strvec_push(&argv, "GET");
		strvec_push(&argv, h->http);
	} else if (strcmp(kind, "CMD-SHELL") == 0) {
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
		return 1;
	}
	struct health_probe *pr = probe_new(hs, ops, rt);
	long timeout = h->timeout_ms > 0 ? h->timeout_ms : 30000;
	pr->deadline = now_ms() + timeout;
	pr->what = xstrdup(argv.v[argv.n - 1]);
	int rc = ops->exec_start(rt, t, argv.v, timeout, &pr->x, &pr->fd, err);
	strvec_free(&argv);
	if (rc < 0) {
		pr->x = NULL;
		probe_free(pr);
		return -1;
	}
	*out = pr;
	return 0;
}

int health_result(struct health_probe *pr, char **why, struct cp_error *err)
{
	*why = NULL;
	int rc;
	if (pr->c) {
		if (!pr->done)
			return 2;
		long status = 0;
		curl_easy_getinfo(pr->c, CURLINFO_RESPONSE_CODE, &status);
		if (pr->result != CURLE_OK) {
			*why = xasprintf("GET %s: %s", pr->url,
					 *pr->errbuf ? pr->errbuf : curl_easy_strerror(pr->result));
			rc = 1;
		} else if (status < 200 || status > 299) {
			*why = xasprintf("GET %s answered %ld", pr->url, status);
			rc = 1;
		} else {
			rc = 0;
		}
		probe_free(pr);
		return rc;
	}
	int code = 0;
	rc = pr->ops->exec_end(pr->rt, pr->x, now_ms() >= pr->deadline, &code, err);
	if (rc == 0)
		return 2;
	pr->x = NULL;
	if (rc == 1 && code != 0) {
		*why = code < 0 ? xasprintf("%s timed out", pr->what)
				: xasprintf("health check exited with %d", code);
		rc = 1;
	} else if (rc == 1) {
		rc = 0;
	}
	probe_free(pr);
	return rc;
}

long long health_wake_ms(const struct health_set *hs)
{
	long long wake = 0;
	for (const struct health_probe *pr = hs->probes; pr; pr = pr->next)
		if (pr->x && (!wake || pr->deadline < wake))
			wake = pr->deadline;
	return wake;
}

int health_poll(struct health_set *hs, struct pollfd *fds, size_t n, int timeout_ms)
{
	size_t nx = 0;
	for (const struct health_probe *pr = hs->probes; pr; pr = pr->next)
		nx += pr->fd >= 0;
	size_t total = n + nx;
	struct pollfd *all = xcalloc(total ? total : 1, sizeof(*all));
	memcpy(all, fds, n * sizeof(*fds));
	size_t k = n;
	for (const struct health_probe *pr = hs->probes; pr; pr = pr->next)
		if (pr->fd >= 0)
			all[k++] = (struct pollfd){.fd = pr->fd, .events = POLLIN};
	int rc;
	if (hs->transfers > 0) {
		/* One wait over curl's sockets and ours. */
		struct curl_waitfd *w = xcalloc(total ? total : 1, sizeof(*w));
		for (size_t i = 0; i < total; i++)
			w[i] = (struct curl_waitfd){.fd = all[i].fd, .events = all[i].events};
		int ret = 0;
		CURLMcode mc = curl_multi_poll(hs->multi, w, (unsigned)total, timeout_ms, &ret);
		rc = 0;
		for (size_t i = 0; i < total; i++) {
			all[i].revents = (short)w[i].revents;
			rc += all[i].revents != 0;
		}
		free(w);
		if (mc != CURLM_OK)
			rc = -1;
		int running = 0;
		curl_multi_perform(hs->multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(hs->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct health_probe *pr = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &pr);
			if (pr && !pr->done) {
				pr->done = true;
				pr->result = msg->data.result;
				hs->transfers--;
			}
		}
	} else {
		rc = poll(all, (nfds_t)total, timeout_ms);
	}
	memcpy(fds, all, n * sizeof(*fds));
	free(all);
	return rc;
}
