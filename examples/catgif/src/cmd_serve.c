/* catgif serve: the model behind libmicrohttpd with a thread pool.
 *   GET  /healthz   200 {"status":"ok"} once the model is loaded
 *   GET  /info      checkpoint digest, epoch, shape, metrics accuracy
 *   POST /predict   a 28x28 PGM, GIF or JSON image -> label, class, probabilities
 * SIGTERM / SIGINT stop it cleanly (exit 0). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "checkpoint.h"
#include "commands.h"
#include "dataset.h"
#include "image.h"
#include "model.h"

#define SERVE_USAGE                                                                                \
	"catgif serve --checkpoint FILE [--metrics FILE] [--host 0.0.0.0] [--port 8000]\n"         \
	"             [--threads 4] [--max-connections 4096] [--max-per-ip 0]\n"                   \
	"             [--idle-timeout 10] [--quiet]\n"                                            \
	"  connections beyond --max-connections (or --max-per-ip from one address, 0: no\n"      \
	"  limit) are refused; one idle for --idle-timeout seconds is closed\n"                  \
	"  POST /predict takes a 28x28 PGM (P5), GIF, or JSON array of 784 numbers in 0..255\n"    \
	"  (at most 1 MiB); --port 0 picks a free port and prints it"

#define MAX_BODY (1u << 20)

struct server {
	struct checkpoint ck;
	struct model model;
	char *info; /* the /info document, built once */
	int quiet;
};

/* Per-request state of a POST /predict, freed by request_completed. */
struct request {
	struct buf body;
	int too_large;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *json,
                             const char *allow)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_error(const struct server *srv, struct MHD_Connection *conn,
                                   const char *method, const char *url, unsigned status,
                                   const char *msg, const char *allow)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", msg);
	char *text = cJSON_PrintUnformatted(o);
	enum MHD_Result ret = reply(conn, status, text, allow);
	if (!srv->quiet)
		printf("%s %s %u %s\n", method, url, status, msg);
	cJSON_free(text);
	cJSON_Delete(o);
	return ret;
}

static enum MHD_Result predict(const struct server *srv, struct MHD_Connection *conn,
                               const char *method, const char *url, const struct request *req)
{
	if (req->too_large)
		return reply_error(srv, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
		                   "body larger than 1 MiB", NULL);
	if (req->body.len == 0)
		return reply_error(srv, conn, method, url, MHD_HTTP_BAD_REQUEST,
		                   "empty body: POST a 28x28 PGM, GIF or JSON image", NULL);
	const char *ctype =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	float pixels[IMAGE_PIXELS];
	const char *format;
	struct cg_error err = {0};
	if (image_decode(pixels, &format, req->body.data, req->body.len, ctype, &err) < 0)
		return reply_error(srv, conn, method, url, (unsigned)err.code, err.msg, NULL);

	struct model_work w;
	model_work_init(&w, &srv->model, 1, 0);
	model_load_f32(&w, 0, pixels);
	model_forward(&srv->model, &w, 1);
	uint32_t label = model_argmax(&w, 0);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "label", label);
	cJSON_AddStringToObject(o, "class", dataset_class_names[label]);
	cJSON_AddNumberToObject(o, "probability", round((double)w.p[label] * 1e6) / 1e6);
	cJSON *probs = cJSON_AddArrayToObject(o, "probabilities");
	for (int c = 0; c < DATASET_CLASSES; c++)
		cJSON_AddItemToArray(probs, cJSON_CreateNumber(round((double)w.p[c] * 1e6) / 1e6));
	cJSON_AddStringToObject(o, "format", format);
	model_work_free(&w);
	char *text = cJSON_PrintUnformatted(o);
	enum MHD_Result ret = reply(conn, MHD_HTTP_OK, text, NULL);
	if (!srv->quiet)
		printf("%s %s 200 %s -> %s\n", method, url, format, dataset_class_names[label]);
	cJSON_free(text);
	cJSON_Delete(o);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
	(void)version;
	const struct server *srv = cls;
	int is_predict = !strcmp(url, "/predict");
	struct request *req = *con_cls;
	if (!req) {
		/* First call, headers only. Answering now would close the
		 * connection (no keep-alive), so only a declared oversize body is
		 * refused here, before it is read. */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (is_predict && cl && strtoull(cl, NULL, 10) > MAX_BODY)
			return reply_error(srv, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
			                   "body larger than 1 MiB", NULL);
		req = xcalloc(1, sizeof *req);
		req->body.max = MAX_BODY;
		*con_cls = req;
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* A chunked body past the limit is drained, then refused. */
		if (!req->too_large && buf_append(&req->body, upload_data, *upload_data_size) < 0) {
			req->too_large = 1;
			buf_free(&req->body);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	int get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
	if (!strcmp(url, "/healthz") || !strcmp(url, "/info")) {
		if (!get)
			return reply_error(srv, conn, method, url, MHD_HTTP_METHOD_NOT_ALLOWED,
			                   "method not allowed", "GET, HEAD");
		return reply(conn, MHD_HTTP_OK, url[1] == 'h' ? "{\"status\":\"ok\"}" : srv->info,
		             NULL);
	}
	if (!is_predict)
		return reply_error(srv, conn, method, url, MHD_HTTP_NOT_FOUND, "not found", NULL);
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return reply_error(srv, conn, method, url, MHD_HTTP_METHOD_NOT_ALLOWED,
		                   "method not allowed", "POST");
	return predict(srv, conn, method, url, req);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
	(void)cls, (void)conn, (void)toe;
	struct request *req = *con_cls;
	if (req) {
		buf_free(&req->body);
		free(req);
		*con_cls = NULL;
	}
}

/* Builds the /info document; reads the metrics file when given. */
static int build_info(struct server *srv, const char *ckpath, const char *metrics,
                      struct cg_error *err)
{
	char sha[65];
	if (sha256_file(sha, ckpath, err) < 0)
		return -1;
	const struct checkpoint *ck = &srv->ck;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "checkpoint", ckpath);
	cJSON_AddStringToObject(o, "checkpoint_sha256", sha);
	cJSON_AddNumberToObject(o, "epoch", ck->epoch);
	cJSON_AddStringToObject(o, "arch", model_arch_name(ck->arch));
	cJSON_AddNumberToObject(o, "channels", ck->channels);
	cJSON_AddNumberToObject(o, "hidden", ck->hidden);
	cJSON_AddNumberToObject(o, "parameters",
	                        (double)model_param_count(ck->arch, ck->channels, ck->hidden));
	cJSON_AddNumberToObject(o, "train_images_seen", (double)ck->images_seen);
	cJSON_AddNumberToObject(o, "train_accuracy", round((double)ck->train_accuracy * 1e6) / 1e6);
	if (metrics) {
		cleanup_free unsigned char *text = NULL;
		size_t len;
		if (file_read_all(&text, &len, metrics, 16u << 20, err) < 0) {
			cJSON_Delete(o);
			return -1;
		}
		cJSON *m = cJSON_ParseWithLength((const char *)text, len);
		const cJSON *acc = cJSON_GetObjectItemCaseSensitive(m, "accuracy");
		if (!cJSON_IsNumber(acc)) {
			cJSON_Delete(m);
			cJSON_Delete(o);
			return err_set(err, EXIT_INPUT,
			               "%s: not a metrics file from catgif evaluate", metrics);
		}
		cJSON_AddNumberToObject(o, "accuracy", acc->valuedouble);
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "test_images");
		if (cJSON_IsNumber(n))
			cJSON_AddNumberToObject(o, "test_images", n->valuedouble);
		const char *msha =
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "checkpoint_sha256"));
		cJSON_AddBoolToObject(o, "metrics_match_checkpoint", msha && !strcmp(msha, sha));
		cJSON_Delete(m);
	} else {
		cJSON_AddNullToObject(o, "accuracy");
	}
	cJSON *classes = cJSON_AddArrayToObject(o, "classes");
	for (int c = 0; c < DATASET_CLASSES; c++)
		cJSON_AddItemToArray(classes, cJSON_CreateString(dataset_class_names[c]));
	srv->info = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return 0;
}

static int resolve(struct sockaddr_storage *out, socklen_t *out_len, const char *host, long port,
                   struct cg_error *err)
{
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	char service[16];
	snprintf(service, sizeof service, "%ld", port);
	int rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0)
		return err_set(err, EXIT_INPUT, "--host %s: %s", host, gai_strerror(rc));
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*out_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"checkpoint", required_argument, NULL, 'c'},
	    {"metrics", required_argument, NULL, 'm'},
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"threads", required_argument, NULL, 't'},
	    {"max-connections", required_argument, NULL, 'C'},
	    {"max-per-ip", required_argument, NULL, 'I'},
	    {"idle-timeout", required_argument, NULL, 'T'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *ckpath = NULL, *metrics = NULL, *host = "0.0.0.0";
	long port = 8000, threads = 4, max_conns = 4096, per_ip = 0, idle = 10;
	struct server srv = {0};
	struct cg_error err = {0};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ckpath = optarg;
			break;
		case 'm':
			metrics = optarg;
			break;
		case 'H':
			host = optarg;
			break;
		case 'p':
			if (parse_long(&port, "--port", optarg, 0, 65535, &err) < 0)
				return err_report(&err);
			break;
		case 't':
			if (parse_long(&threads, "--threads", optarg, 1, 256, &err) < 0)
				return err_report(&err);
			break;
		case 'C':
			if (parse_long(&max_conns, "--max-connections", optarg, 1, 1000000, &err) < 0)
				return err_report(&err);
			break;
		case 'I':
			if (parse_long(&per_ip, "--max-per-ip", optarg, 0, 1000000, &err) < 0)
				return err_report(&err);
			break;
		case 'T':
			if (parse_long(&idle, "--idle-timeout", optarg, 1, 86400, &err) < 0)
				return err_report(&err);
			break;
		case 'q':
			srv.quiet = 1;
			break;
		case 'h':
			puts(SERVE_USAGE);
			return EXIT_OK;
		default:
			return usage_error("serve", SERVE_USAGE, "bad option");
		}
	}
	if (optind < argc)
		return usage_error("serve", SERVE_USAGE, "unexpected argument \"%s\"",
		                   argv[optind]);
	if (!ckpath)
		return usage_error("serve", SERVE_USAGE, "--checkpoint is required");

	struct sockaddr_storage addr;
	socklen_t addrlen;
	if (resolve(&addr, &addrlen, host, port, &err) < 0 ||
	    checkpoint_load(&srv.ck, ckpath, &err) < 0)
		return err_report(&err);
	checkpoint_model(&srv.model, &srv.ck);
	if (build_info(&srv, ckpath, metrics, &err) < 0) {
		checkpoint_free(&srv.ck);
		return err_report(&err);
	}

	/* Block the stop signals before MHD starts its threads, so they inherit
	 * the mask and only sigwait below sees them. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Every connection is a descriptor: take what the hard limit allows,
	 * and keep the connection limit below it so that MHD refuses the
	 * excess cleanly instead of failing accept() in a loop. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)max_conns + 64 > rl.rlim_cur)
		max_conns = rl.rlim_cur > 128 ? (long)rl.rlim_cur - 64 : 64;

	/* epoll (not select, whose FD_SETSIZE caps connections at ~1020): idle
	 * connections cost a descriptor, not a thread, and /healthz keeps
	 * answering while they wait for their timeout. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_Daemon *d = MHD_start_daemon(
	    flags, (uint16_t)port, NULL, NULL, handle, &srv, MHD_OPTION_SOCK_ADDR, &addr,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_NOTIFY_COMPLETED,
	    request_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)idle,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conns, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)per_ip, MHD_OPTION_END);
	int rc = EXIT_OK;
	if (!d) {
		err_set(&err, EXIT_FAIL, "cannot listen on %s port %ld (in use, or not permitted?)",
		        host, port);
		rc = err_report(&err);
	} else {
		const union MHD_DaemonInfo *info =
		    MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
		printf("serve: %s epoch %u (%s, hidden %u) listening on %s port %u, %ld threads, "
		       "at most %ld connections, idle timeout %ld s\n",
		       ckpath, srv.ck.epoch, model_arch_name(srv.ck.arch), srv.ck.hidden, host,
		       info ? info->port : (unsigned)port, threads, max_conns, idle);
		int sig = 0;
		while (sigwait(&stop, &sig) != 0)
			;
		printf("serve: %s, shutting down\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		MHD_stop_daemon(d);
	}
	cJSON_free(srv.info);
	checkpoint_free(&srv.ck);
	return rc;
}
