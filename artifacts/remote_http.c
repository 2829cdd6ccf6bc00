/* HTTP and S3 remotes: GET, PUT and HEAD of <base><name> on a curl multi
 * handle, r->jobs at once, each retried with backoff when the failure is
 * one that passes (a refused or dropped connection, a 5xx, a 429). */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/fs.h"
#include "remote_internal.h"

#define MAX_ATTEMPTS 5
#define BACKOFF_MS 200 /* doubled at each attempt */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A big download is hashed on a second thread: the transfer fills 1 MiB
 * buffers, writes each and hands it over; the thread hashes it and gives
 * it back. The write of a buffer to the spare copy (when there is one) is
 * the thread's unless it is behind, then the transfer's: the two carry
 * about the same load. */
#define BG_HASH_MIN (8u << 20)
#define WBUF (1u << 20)
#define NRING 4

struct bghash {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct digest_ctx dc; /* the thread's once started */
	int sfd;              /* the spare copy */
	bool spare_failed;    /* a write to it failed (the thread's) */
	char *bufs[NRING];
	char *freeb[NRING];
	int nfree;
	struct {
		char *b;
		size_t n;
		off_t off;  /* where b goes in the download */
		bool spare; /* the thread writes it to sfd */
	} q[NRING];
	int qhead, qcount;
	bool done;
};

static int pwrite_all(int fd, const char *b, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t k = pwrite(fd, b, n, off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
		off += k;
	}
	return 0;
}

static void *bghash_main(void *arg)
{
	struct bghash *h = arg;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (h->qcount == 0 && !h->done)
			pthread_cond_wait(&h->cv, &h->mu);
		if (h->qcount == 0)
			break;
		char *b = h->q[h->qhead].b;
		size_t n = h->q[h->qhead].n;
		off_t off = h->q[h->qhead].off;
		bool spare = h->q[h->qhead].spare;
		h->qhead = (h->qhead + 1) % NRING;
		h->qcount--;
		pthread_mutex_unlock(&h->mu);
		digest_update(&h->dc, b, n); /* only this thread touches dc */
		if (spare && !h->spare_failed && pwrite_all(h->sfd, b, n, off) < 0)
			h->spare_failed = true;
		pthread_mutex_lock(&h->mu);
		h->freeb[h->nfree++] = b;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Hands the hash `dc` and the writes to `sfd` (-1: none) over to a
 * thread. NULL when none could start (the caller keeps both). */
static struct bghash *bghash_start(struct digest_ctx *dc, int sfd)
{
	struct bghash *h = xcalloc(1, sizeof(*h));
	h->dc = *dc;
	h->sfd = sfd;
	for (int i = 0; i < NRING; i++)
		h->freeb[h->nfree++] = h->bufs[i] = xmalloc(WBUF);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (pthread_create(&h->tid, NULL, bghash_main, h) != 0) {
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->cv);
		for (int i = 0; i < NRING; i++)
			free(h->bufs[i]);
		free(h);
		return NULL;
	}
	return h;
}

/* A buffer to fill (the thread's; waits for one to come back). */
static char *bghash_buffer(struct bghash *h)
{
	pthread_mutex_lock(&h->mu);
	while (h->nfree == 0)
		pthread_cond_wait(&h->cv, &h->mu);
	char *b = h->freeb[--h->nfree];
	pthread_mutex_unlock(&h->mu);
	return b;
}

/* The thread has buffers waiting. */
static bool bghash_behind(struct bghash *h)
{
	pthread_mutex_lock(&h->mu);
	bool behind = h->qcount > 0;
	pthread_mutex_unlock(&h->mu);
	return behind;
}

static void bghash_submit(struct bghash *h, char *b, size_t n, off_t off, bool spare)
{
	pthread_mutex_lock(&h->mu);
	int k = (h->qhead + h->qcount) % NRING;
	h->q[k].b = b;
	h->q[k].n = n;
	h->q[k].off = off;
	h->q[k].spare = spare;
	h->qcount++;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* Waits for the thread to hash (and write) what it was given; the digest
 * in md. False when a write to the spare failed. */
static bool bghash_end(uint8_t md[32], struct bghash *h)
{
	pthread_mutex_lock(&h->mu);
	h->done = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->tid, NULL);
	digest_final_raw(md, &h->dc);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	for (int i = 0; i < NRING; i++)
		free(h->bufs[i]);
	bool ok = !h->spare_failed;
	free(h);
	return ok;
}

struct job {
	struct xfer *x;
	CURL *h;
	struct curl_slist *hdrs;
	FILE *in;      /* PUT from a file */
	size_t memoff; /* PUT from memory */
	int fd;        /* GET into a file */
	int sfd;       /* and into its spare; -1: none */
	bool spare_decided; /* this attempt's first bytes came */
	bool spare_bad;     /* a write of ours to sfd failed while bg ran */
	unsigned long long put_size;
	struct digest_ctx dc;
	bool hashing;     /* dc is live (here or in bg) */
	struct bghash *bg; /* hashing on a thread */
	char *wbuf;        /* GET: what on_write gathered */
	size_t wlen;
	bool sink_failed;
	int attempts;
	long long retry_at; /* now_ms() after which to start it again; 0 = not waiting */
	char errbuf[CURL_ERROR_SIZE];
};

/* No spare copy for this download after all: the checkout copies. */
static void drop_spare(struct job *j)
{
	close(j->sfd);
	j->sfd = -1;
	unlink(j->x->spare);
}

/* Writes the gathered buffer and hashes it (here, or on the thread,
 * which then owns the buffer). */
static int flush_write(struct job *j)
{
	if (!j->wlen)
		return 0;
	struct xfer *x = j->x;
	if (x->out ? sb_add(x->out, j->wbuf, j->wlen) < 0 : fs_write_all(j->fd, j->wbuf, j->wlen) < 0) {
		j->sink_failed = true;
		return -1;
	}
	off_t off = (off_t)x->bytes;
	if (!j->bg && j->sfd >= 0 && fs_write_all(j->sfd, j->wbuf, j->wlen) < 0)
		drop_spare(j);
	x->bytes += j->wlen;
	if (j->bg) {
		bool mine = j->sfd >= 0 && bghash_behind(j->bg);
		if (mine && pwrite_all(j->sfd, j->wbuf, j->wlen, off) < 0)
			j->spare_bad = true;
		bghash_submit(j->bg, j->wbuf, j->wlen, off, j->sfd >= 0 && !mine);
		j->wbuf = NULL;
	} else {
		digest_update(&j->dc, j->wbuf, j->wlen);
	}
	j->wlen = 0;
	if (!j->bg && !x->out && x->bytes >= BG_HASH_MIN && (j->bg = bghash_start(&j->dc, j->sfd))) {
		free(j->wbuf);
		j->wbuf = NULL;
	}
	return 0;
}

/* libcurl hands over 16 KiB at a time: they are gathered into WBUF
 * before a write, so a big download costs few system calls. */
static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct job *j = arg;
	size_t total = size * nmemb;
	if (!j->spare_decided) {
		curl_off_t len = -1;
		j->spare_decided = true;
		curl_easy_getinfo(j->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
		if (j->x->spare && len >= (curl_off_t)SPARE_MIN)
			j->sfd = open(j->x->spare, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	for (size_t n = total; n > 0;) {
		if (!j->wbuf)
			j->wbuf = j->bg ? bghash_buffer(j->bg) : xmalloc(WBUF);
		size_t k = n < WBUF - j->wlen ? n : WBUF - j->wlen;
		memcpy(j->wbuf + j->wlen, data, k);
		j->wlen += k;
		data += k;
		n -= k;
		if (j->wlen == WBUF && flush_write(j) < 0)
			return 0;
	}
	return total;
}

/* Ends the hash of a GET into `md`. */
static void hash_end(uint8_t md[32], struct job *j)
{
	if (j->bg) {
		j->wbuf = NULL; /* the thread's, when it is one */
		if ((!bghash_end(md, j->bg) || j->spare_bad) && j->sfd >= 0)
			drop_spare(j);
		j->bg = NULL;
	} else {
		digest_final_raw(md, &j->dc);
	}
	j->hashing = false;
}

static size_t on_read_mem(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct job *j = arg;
	size_t n = size * nmemb, left = j->x->len - j->memoff;
	if (n > left)
		n = left;
	memcpy(buf, j->x->mem + j->memoff, n);
	j->memoff += n;
	return n;
}

static void job_release(struct job *j)
{
	/* The hashing thread may own j->wbuf: it ends first. */
	if (j->hashing) {
		uint8_t md[32];
		hash_end(md, j);
	}
	if (j->h)
		curl_easy_cleanup(j->h);
	j->h = NULL;
	curl_slist_free_all(j->hdrs);
	j->hdrs = NULL;
	if (j->in)
		fclose(j->in);
	j->in = NULL;
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	if (j->sfd >= 0)
		close(j->sfd);
	j->sfd = -1;
	free(j->wbuf);
	j->wbuf = NULL;
	j->wlen = 0;
}

static void job_fail(struct job *j, const char *what, const char *detail)
{
	j->x->result = XFER_FAILED;
	free(j->x->error);
	j->x->error = xasprintf("%s: %s%s%s", j->x->name, what, *what ? ": " : "", detail);
}

/* A fresh easy handle for one attempt of `op` on j->x; NULL after
 * recording why it cannot start. */
static CURL *job_start(struct remote *r, enum xfer_op op, struct job *j)
{
	struct xfer *x = j->x;
	x->bytes = 0;
	x->spared = false;
	j->spare_decided = false;
	j->spare_bad = false;
	if (x->out)
		sb_reset(x->out);
	if (op == XFER_GET && !x->out &&
	    (j->fd = open(x->dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		job_fail(j, "creating the download", strerror(errno));
		return NULL;
	}
	if (op == XFER_PUT && x->src && !(j->in = fopen(x->src, "rbe"))) {
		job_fail(j, "reading the local object", strerror(errno));
		return NULL;
	}
	CURL *h = curl_easy_init();
	if (!h) {
		job_fail(j, "", "libcurl could not start a transfer");
		return NULL;
	}
	cleanup_free char *url = xasprintf("%s%s", r->http.base, x->name);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PRIVATE, j);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	/* A stalled server, not a slow one, is an error. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	if (r->http.userpwd)
		curl_easy_setopt(h, CURLOPT_USERPWD, r->http.userpwd);
	if (r->http.bearer)
		j->hdrs = curl_slist_append(j->hdrs, r->http.bearer);
	if (r->http.sigv4) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, r->http.sigv4);
		cleanup_free char *sha = xasprintf("x-amz-content-sha256: %s",
						   op == XFER_PUT ? x->sha256 : EMPTY_SHA256);
		j->hdrs = curl_slist_append(j->hdrs, sha);
		if (r->http.s3token)
			j->hdrs = curl_slist_append(j->hdrs, r->http.s3token);
	}
	if (op == XFER_HEAD) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (op == XFER_GET) {
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
		digest_init(&j->dc);
		j->hashing = true;
		j->sink_failed = false;
	} else {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
		j->hdrs = curl_slist_append(j->hdrs, "Content-Type: application/octet-stream");
		j->hdrs = curl_slist_append(j->hdrs, "Expect:");
		if (j->in) {
			struct stat st;
			fstat(fileno(j->in), &st);
			curl_easy_setopt(h, CURLOPT_READDATA, j->in);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
			j->put_size = (unsigned long long)st.st_size;
		} else {
			j->memoff = 0;
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read_mem);
			curl_easy_setopt(h, CURLOPT_READDATA, j);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->len);
			j->put_size = x->len;
		}
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, j->hdrs);
	j->h = h;
	return h;
}

static bool transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* Decides a finished attempt: done (result set) or retry (true). */
static bool job_finish(struct job *j, enum xfer_op op, CURLcode rc)
{
	long code = 0;
	curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &code);
	struct xfer *x = j->x;
	if (j->hashing && rc == CURLE_OK && !j->sink_failed)
		flush_write(j);
	if (j->hashing && rc == CURLE_OK)
		hash_end(x->md, j);
	bool retry = false;
	char detail[CURL_ERROR_SIZE + 64];
	if (j->sink_failed) {
		job_fail(j, "", x->out ? "the answer is too large" : "writing the download failed");
	} else if (rc != CURLE_OK) {
		snprintf(detail, sizeof(detail), "%s", j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc));
		retry = transient(rc);
		job_fail(j, "", detail);
	} else if (code == 404 && op != XFER_PUT) {
		x->result = XFER_ABSENT;
	} else if (code >= 200 && code < 300) {
		x->result = XFER_OK;
		x->spared = j->sfd >= 0;
		if (op == XFER_PUT)
			x->bytes = j->put_size;
	} else {
		retry = code >= 500 || code == 429 || code == 408;
		snprintf(detail, sizeof(detail), "HTTP %ld%s", code,
			 code == 401 || code == 403 ? " (check the remote's credentials)" : "");
		job_fail(j, "", detail);
	}
	job_release(j);
	return retry && ++j->attempts < MAX_ATTEMPTS;
}

void remote_curl_run(struct remote *r, enum xfer_op op, struct xfer *v, size_t n)
{
	if (n == 0)
		return;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURLM *m = curl_multi_init();
	struct job *jobs = xcalloc(n, sizeof(*jobs));
	for (size_t i = 0; i < n; i++) {
		jobs[i].x = &v[i];
		jobs[i].fd = -1;
		jobs[i].sfd = -1;
	}
	size_t next = 0, running = 0, done = 0, waiting = 0;
	while (done < n) {
		long long now = now_ms(), wait = 1000;
		/* Retries whose time came, then fresh items, up to r->jobs. */
		for (size_t i = 0; waiting && i < next && running < (size_t)r->jobs; i++) {
			struct job *j = &jobs[i];
			if (j->retry_at && j->retry_at <= now) {
				j->retry_at = 0;
				waiting--;
				free(j->x->error);
				j->x->error = NULL;
				CURL *h = job_start(r, op, j);
				if (h && curl_multi_add_handle(m, h) == CURLM_OK)
					running++;
				else
					done++;
			} else if (j->retry_at && j->retry_at - now < wait) {
				wait = j->retry_at - now;
			}
		}
		while (next < n && running < (size_t)r->jobs) {
			CURL *h = job_start(r, op, &jobs[next++]);
			if (h && curl_multi_add_handle(m, h) == CURLM_OK)
				running++;
			else
				done++;
		}
		int still = 0;
		curl_multi_perform(m, &still);
		int left;
		for (CURLMsg *msg; (msg = curl_multi_info_read(m, &left));) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct job *j = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
			CURLcode rc = msg->data.result;
			curl_multi_remove_handle(m, msg->easy_handle);
			running--;
			if (job_finish(j, op, rc)) {
				j->retry_at = now_ms() + ((long long)BACKOFF_MS << (j->attempts - 1)) +
					      rand() % BACKOFF_MS;
				waiting++;
			} else
				done++;
		}
		if (done < n && running > 0)
			curl_multi_poll(m, NULL, 0, (int)(wait < 1 ? 1 : wait), NULL);
		else if (done < n)
			usleep((useconds_t)(wait < 1 ? 1 : wait) * 1000);
	}
	for (size_t i = 0; i < n; i++)
		job_release(&jobs[i]);
	free(jobs);
	curl_multi_cleanup(m);
}

/* The URL's part `what`, NULL when absent. Caller frees with curl_free. */
static char *url_part(CURLU *u, CURLUPart what)
{
	char *v = NULL;
	return curl_url_get(u, what, &v, CURLU_URLDECODE) == CURLUE_OK ? v : NULL;
}

int remote_http_open(struct remote *r, const char *url, struct cp_error *err)
{
	cleanup_curlu CURLU *u = curl_url();
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		return cp_error_set(err, EXIT_USAGE, "remote %s: not a valid URL", url);
	char *user = url_part(u, CURLUPART_USER), *pass = url_part(u, CURLUPART_PASSWORD);
	const char *euser = getenv("CPIPE_REMOTE_USER"), *epass = getenv("CPIPE_REMOTE_PASSWORD");
	if (user)
		r->http.userpwd = xasprintf("%s:%s", user, pass ? pass : "");
	else if (euser && *euser)
		r->http.userpwd = xasprintf("%s:%s", euser, epass ? epass : "");
	curl_free(user);
	curl_free(pass);
	const char *token = getenv("CPIPE_REMOTE_TOKEN");
	if (token && *token)
		r->http.bearer = xasprintf("Authorization: Bearer %s", token);
	curl_url_set(u, CURLUPART_USER, NULL, 0);
	curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
	curl_url_set(u, CURLUPART_QUERY, NULL, 0);
	curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
	char *clean = NULL;
	curl_url_get(u, CURLUPART_URL, &clean, 0);
	size_t len = strlen(clean);
	r->http.base = xasprintf("%s%s", clean, len && clean[len - 1] == '/' ? "" : "/");
	r->shown = xstrdup(clean);
	curl_free(clean);
	return 0;
}
