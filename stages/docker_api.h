/* A small Docker Engine API client: libcurl over the daemon's unix socket
 * (or DOCKER_HOST as unix://PATH, tcp://HOST:PORT, with TLS when
 * DOCKER_TLS_VERIFY is set), JSON bodies with cJSON, the API version
 * negotiated once (GET /_ping's Api-Version, else GET /version) and used
 * as the /v1.xx prefix.
 *
 * A client is one curl handle and is used by one thread at a time; give
 * every other thread its own with docker_clone. Errors: an unreachable
 * daemon fails with err->code EXIT_RUNTIME and a message naming the socket;
 * an HTTP status >= 400 fails with the daemon's own `message` and
 * err->code EXIT_STAGE_FAILED (callers prefix context). A daemon that
 * accepts but does not answer fails as an unreachable one does, once the
 * answer timeout below is over; so does one that dies mid-transfer.
 *
 * Timeouts, all of them here: connecting gets DOCKER_CONNECT_MS; a request
 * must then see its response headers, and an ordinary request every next
 * byte, within DOCKER_ANSWER_MS of the last byte sent or received. Streams
 * that legitimately idle say so in docker_req.idle. CPIPE_DOCKER_TIMEOUT
 * (seconds) replaces both defaults, for tests of hung daemons. */
#ifndef CPIPE_STAGES_DOCKER_API_H
#define CPIPE_STAGES_DOCKER_API_H

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "../lib/error.h"

#define DOCKER_CONNECT_MS 10000L
#define DOCKER_ANSWER_MS 20000L
/* A build's first answer comes once the daemon unpacked the context. */
#define DOCKER_BUILD_ANSWER_MS 300000L

struct docker;

/* Connects to the daemon DOCKER_HOST names (default
 * unix:///var/run/docker.sock) and negotiates the API version. Caller frees
 * *out with docker_close. */
int docker_open(struct docker **out, struct cp_error *err);

/* The engines that speak the Engine API, for messages and discovery. */
struct docker_engine {
	const char *what;   /* "Docker daemon" */
	const char *var;    /* the variable that selects it: "DOCKER_HOST" */
	const char *server; /* what to start: "dockerd" */
};
extern const struct docker_engine docker_engine_docker;
/* Podman's Docker-compatible API: CONTAINER_HOST, else
 * /run/podman/podman.sock, else $XDG_RUNTIME_DIR/podman/podman.sock. */
extern const struct docker_engine docker_engine_podman;
/* docker_open for `engine`, found where that engine is looked for. */
int docker_open_engine(struct docker **out, const struct docker_engine *engine,
		       struct cp_error *err);
/* The engine a client talks to; lent. */
const struct docker_engine *docker_engine_of(const struct docker *d);

/* A new client for the same daemon and API version, for another thread.
 * Unlike the one docker_open gives, it ignores runtime_interrupts: the
 * helper threads' streams end by their own cancel flags. */
struct docker *docker_clone(const struct docker *d);
void docker_close(struct docker *d);

/* "unix:///var/run/docker.sock" or "tcp://host:port"; lent. */
const char *docker_host(const struct docker *d);
/* True when the daemon listens on a unix socket, so its paths are ours. */
bool docker_is_local(const struct docker *d);

/* URL-escapes a query value. Caller owns. */
char *docker_escape(struct docker *d, const char *s);

/* How long a request may go without a byte, once the answer window (see
 * the top) is over. */
enum docker_idle {
	DOCKER_IDLE_NEVER,	   /* ordinary request: never longer than the window */
	DOCKER_IDLE_AFTER_HEADERS, /* a stream (attach, build, pull): once answered */
	DOCKER_IDLE_ALWAYS,	   /* may wait for its answer too (wait, follow logs) */
};

/* Lets another thread end at once a request that may block for long (an
 * attach or event stream), where a cancel flag is only seen within about a
 * second. Thread-safe; free it only once no request uses it. */
struct docker_waker;
struct docker_waker *docker_waker_new(void);
void docker_waker_free(struct docker_waker *w);
/* Ends the request under way with `w` at once, and every later one, as a
 * cancelled request (err->code EXIT_RUNTIME). */
void docker_wake(struct docker_waker *w);

struct docker_req {
	const char *method; /* "GET", "POST", "DELETE", "PUT", "HEAD" */
	const char *path;   /* "/containers/create?name=x", without the version */
	const cJSON *json;  /* request body, or NULL */
	FILE *upload;       /* raw request body read from here (a tar), or NULL */
	long long upload_size;
	const char *content_type; /* of `upload`; default application/x-tar */
	/* Streamed response: called as the body arrives (status < 400 only);
	 * return 0 to go on, -1 to abort the transfer. Without it the body is
	 * collected and parsed as JSON. */
	int (*on_data)(void *ud, const char *data, size_t n);
	/* Called once the response headers are in, with the status. */
	void (*on_headers)(void *ud, long status);
	/* Called with every header line as it comes ("Name: value\r\n"). */
	void (*on_header_line)(void *ud, const char *line, size_t n);
	void *ud;
	/* The transfer is aborted (within about a second) once *cancel != 0,
	 * or *stop != 0 (a flag a signal handler sets). */
	const atomic_int *cancel;
	const volatile sig_atomic_t *stop;
	struct docker_waker *waker; /* ends it at once, from another thread; or NULL */
	long timeout_ms; /* on the whole transfer; 0 = none */
	enum docker_idle idle;
	long answer_ms; /* the answer window; 0 = DOCKER_ANSWER_MS */
};

/* Performs a request. A client from docker_open aborts a request that is
 * under way when runtime_interrupts changes (Ctrl-C in the executor):
 * err->code EXIT_INTERRUPTED; the next request goes through. Returns 0 on a 1xx-3xx status, -1 otherwise (daemon
 * message in err) or when the daemon cannot be reached. *status_out (may
 * be NULL) is the HTTP status, 0 when there was none. *json_out (may be
 * NULL) receives the parsed JSON body of a collected response, NULL when
 * it was empty or not JSON; caller deletes it. */
int docker_call(struct docker *d, const struct docker_req *rq, long *status_out,
		cJSON **json_out, struct cp_error *err);

/* Shorthand for docker_call with a JSON body and a collected response. */
int docker_json(struct docker *d, const char *method, const char *path, const cJSON *body,
		long *status_out, cJSON **json_out, struct cp_error *err);

/* A request whose response is a stream of JSON messages, one a line (build,
 * image pull, image import, events). `on_msg` sees each message; a message
 * with "error" ends the call with that error. rq->on_headers, if set, gets
 * rq->ud. Returns as docker_call. */
int docker_json_stream(struct docker *d, const struct docker_req *rq,
		       int (*on_msg)(void *ud, const cJSON *msg), void *ud, long *status_out,
		       struct cp_error *err);

/* A GET whose body is read on demand (a tar for libarchive). Opening waits
 * for the response headers; a status >= 400 fails with the daemon's
 * message and *status_out (may be NULL) says which. */
struct docker_stream;
int docker_stream_open(struct docker_stream **out, struct docker *d, const char *path,
		       long *status_out, struct cp_error *err);
/* Up to n bytes of the body; 0 at its end, -1 with err set on failure. */
long docker_stream_read(struct docker_stream *s, void *buf, size_t n, struct cp_error *err);
void docker_stream_close(struct docker_stream *s);

/* The multiplexed stream of attach and logs for a container without a
 * TTY: frames of an 8-byte header (stream, 0, 0, 0, big-endian payload
 * size) and the payload. Feed it the body in chunks as they arrive; `emit`
 * sees the payload of stream 1 (stdout) and 2 (stderr), in order. Start
 * from a zeroed struct with emit and ud set. */
struct docker_demux {
	void (*emit)(void *ud, int stream, const char *data, size_t n);
	void *ud;
	unsigned char hdr[8];
	size_t hdr_len;
	size_t left; /* payload bytes still to come in the current frame */
	int stream;
};
void docker_demux_feed(struct docker_demux *dm, const char *data, size_t n);

/* The string member `key` of object `o`, or NULL; lent. */
const char *docker_str(const cJSON *o, const char *key);

#endif
