/* One stage's keys → struct stage (mounts, ports and artifacts are in
 * spec_mounts.c, dependencies in spec_deps.c). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "compose_keys.h"
#include "interp.h"
#include "spec_build.h"


/* ---- command, environment, env_file ---- */

static int build_command(struct spec_builder *b, struct stage *st, const struct ynode *v,
			 const char *where, const char *key, struct strvec *out, bool *has)
{
	strvec_free(out);
	*has = false;
	if (ynode_is_null(v))
		return 0;
	struct strvec words = {0};
	if (v->kind == YNODE_SCALAR) {
		if (shell_split(&words, v->str, b->err) < 0) {
			char msg[sizeof(b->err->msg)];
			memcpy(msg, b->err->msg, sizeof(msg));
			return cp_error_at(b->err, EXIT_USAGE, &v->mark, "%skey \"%s\": %s", where,
					   key, msg);
		}
	} else if (v->kind == YNODE_SEQ) {
		for (size_t i = 0; i < v->nitems; i++) {
			const struct ynode *it = v->items[i];
			if (it->kind != YNODE_SCALAR) {
				strvec_free(&words);
				return cp_error_at(b->err, EXIT_USAGE, &it->mark,
						   "%skey \"%s\": entries must be strings, got %s",
						   where, key, ynode_kind_name(it));
			}
			strvec_push(&words, it->str);
		}
	} else {
		return spb_type_error(b, v, where, key, "a string or a list");
	}
	*has = true;
	for (size_t i = 0; i < words.n; i++) {
		char *sub;
		if (interp_params(&sub, words.v[i], &st->params, st->name, &v->mark, b->err) < 0) {
			strvec_free(&words);
			return -1;
		}
		strvec_push_take(out, sub);
	}
	strvec_free(&words);
	return 0;
}

static int load_env_file(struct spec_builder *b, struct stage *st, const char *where,
			 const struct ynode *at, const char *path, bool required)
{
	cleanup_free char *abs = spb_host_path(b, path);
	cleanup_free char *shown = spb_shown(b, path);
	if (!abs)
		return cp_error_at(b->err, EXIT_USAGE, &at->mark, "%senv_file \"%s\" escapes /",
				   where, path);
	if (access(abs, F_OK) != 0) {
		if (!required)
			return 0;
		return cp_error_at(b->err, EXIT_USAGE, &at->mark, "%senv_file \"%s\" not found",
				   where, path);
	}
	cleanup_free char *data = NULL;
	if (fs_read_file(&data, NULL, abs, 16 << 20, b->err) < 0) {
		char msg[sizeof(b->err->msg)];
		memcpy(msg, b->err->msg, sizeof(msg));
		return cp_error_at(b->err, EXIT_USAGE, &at->mark, "%senv_file: %s", where, msg);
	}
	struct kvvec kv = {0};
	if (envfile_parse(&kv, shown, data, b->err) < 0) {
		kvvec_free(&kv);
		return -1;
	}
	for (size_t i = 0; i < kv.n; i++) {
		const char *val = kv.v[i].value ? kv.v[i].value : spb_env_lookup(b, kv.v[i].key);
		if (val)
			kvvec_set(&st->environment, kv.v[i].key, val);
	}
	kvvec_free(&kv);
	return 0;
}

static int build_env_files(struct spec_builder *b, struct stage *st, const struct ynode *v,
			   const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind == YNODE_SCALAR)
		return load_env_file(b, st, where, v, v->str, true);
	if (v->kind != YNODE_SEQ)
		return spb_type_error(b, v, where, "env_file", "a string or a list");
	for (size_t i = 0; i < v->nitems; i++) {
		const struct ynode *it = v->items[i];
		if (it->kind == YNODE_SCALAR && !ynode_is_null(it)) {
			if (load_env_file(b, st, where, it, it->str, true) < 0)
				return -1;
			continue;
		}
		if (it->kind != YNODE_MAP)
			return cp_error_at(b->err, EXIT_USAGE, &it->mark,
					   "%skey \"env_file\": entries must be paths or {path, "
					   "required}, got %s",
					   where, ynode_kind_name(it));
		static const char *const keys[] = {"path", "required", "format"};
		cleanup_free char *w = xasprintf("%senv_file: ", where);
		if (spb_check_keys(b, it, w, keys, ARRAY_LEN(keys)) < 0)
			return -1;
		const struct ynode *path = ymap_get(it, "path");
		const struct ynode *req = ymap_get(it, "required");
		bool required = true;
		if (!path || path->kind != YNODE_SCALAR || ynode_is_null(path))
			return cp_error_at(b->err, EXIT_USAGE, &it->mark,
					   "%senv_file: \"path\" is required", where);
		if (req && spb_bool(b, req, w, "required", &required) < 0)
			return -1;
		if (load_env_file(b, st, where, path, path->str, required) < 0)
			return -1;
	}
	return 0;
}

/* ---- build ---- */

static int build_build(struct spec_builder *b, struct stage *st, const struct ynode *v,
		       const char *where)
{
	static const char *const keys[] = {
		"context",	   "dockerfile", "target",	 "args",     "cache_from",
		"cache_to",	   "labels",	 "network",	 "shm_size", "extra_hosts",
		"platforms",	   "tags",	 "pull",	 "no_cache", "ssh",
		"secrets",	   "isolation",	 "privileged",	 "ulimits",  "additional_contexts",
		"dockerfile_inline", "entitlements", "provenance", "sbom",
	};
	if (ynode_is_null(v))
		return 0;
	cleanup_free char *context = NULL;
	const struct ynode *ctx_node = v;
	st->build = xcalloc(1, sizeof(*st->build));
	if (v->kind == YNODE_SCALAR) {
		context = xstrdup(v->str);
	} else if (v->kind == YNODE_MAP) {
		cleanup_free char *w = xasprintf("%sbuild: ", where);
		if (spb_check_keys(b, v, w, keys, ARRAY_LEN(keys)) < 0)
			return -1;
		for (size_t i = 0; i < v->npairs; i++) {
			const char *k = v->pairs[i].key->str;
			const struct ynode *val = v->pairs[i].value;
			int rc = 0;
			if (!strcmp(k, "context")) {
				rc = spb_string(b, val, w, k, &context);
				ctx_node = val;
			} else if (!strcmp(k, "dockerfile")) {
				rc = spb_string(b, val, w, k, &st->build->dockerfile);
			} else if (!strcmp(k, "target")) {
				rc = spb_string(b, val, w, k, &st->build->target);
			} else if (!strcmp(k, "args") && !ynode_is_null(val)) {
				rc = spb_kv(b, val, w, k, &st->build->args, SB_NULL_FROM_ENV, NULL);
			} else if (!str_has_prefix(k, "x-")) {
				cleanup_free char *id = xasprintf("build.%s", k);
				spb_warn(b, id, "stage", &v->pairs[i].key->mark,
					"%sbuild.%s: cpipe ignores it; %s", where, k,
					!strcmp(k, "dockerfile_inline")
						? "the context's Dockerfile is used"
						: "the build uses the context, dockerfile, target and "
						  "args only");
			}
			if (rc < 0)
				return -1;
		}
	} else {
		return spb_type_error(b, v, where, "build", "a string or a mapping");
	}
	if (!context)
		context = xstrdup(".");
	if (strstr(context, "://") || str_has_prefix(context, "git@"))
		st->build->context = xstrdup(context);
	else if (!(st->build->context = spb_host_path(b, context)))
		return cp_error_at(b->err, EXIT_USAGE, &ctx_node->mark,
				   "%sbuild context \"%s\" escapes /", where, context);
	if (!st->build->dockerfile)
		st->build->dockerfile = xstrdup("Dockerfile");
	return 0;
}

/* ---- healthcheck, gpus ---- */

static int build_healthcheck(struct spec_builder *b, struct stage *st, const struct ynode *v,
			     const char *where)
{
	static const char *const keys[] = {"test",	   "interval", "timeout",
					   "start_period", "start_interval", "retries",
					   "disable",	   "http"};
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_MAP)
		return spb_type_error(b, v, where, "healthcheck", "a mapping");
	cleanup_free char *w = xasprintf("%shealthcheck: ", where);
	if (spb_check_keys(b, v, w, keys, ARRAY_LEN(keys)) < 0)
		return -1;
	struct healthcheck *h = st->healthcheck = xcalloc(1, sizeof(*h));
	h->interval_ms = CP_HEALTH_INTERVAL_MS;
	h->timeout_ms = CP_HEALTH_TIMEOUT_MS;
	h->retries = CP_HEALTH_RETRIES;
	for (size_t i = 0; i < v->npairs; i++) {
		const char *k = v->pairs[i].key->str;
		const struct ynode *val = v->pairs[i].value;
		long n = 0;
		int rc = 0;
		if (!strcmp(k, "test")) {
			if (val->kind == YNODE_SCALAR && !ynode_is_null(val)) {
				strvec_push(&h->test, "CMD-SHELL");
				strvec_push(&h->test, val->str);
			} else if (!ynode_is_null(val)) {
				rc = spb_strlist(b, val, w, k, &h->test);
				if (!rc && h->test.n > 0 && !strcmp(h->test.v[0], "NONE"))
					h->disable = true;
			}
		} else if (!strcmp(k, "interval")) {
			rc = spb_duration(b, val, w, k, &h->interval_ms);
		} else if (!strcmp(k, "timeout")) {
			rc = spb_duration(b, val, w, k, &h->timeout_ms);
		} else if (!strcmp(k, "start_period")) {
			rc = spb_duration(b, val, w, k, &h->start_period_ms);
		} else if (!strcmp(k, "start_interval")) {
			rc = spb_duration(b, val, w, k, &n);
			spb_warn(b, "healthcheck.start_interval", "stage", &v->pairs[i].key->mark,
				"%sstart_interval: cpipe ignores it; it probes every interval, "
				"during start_period too",
				w);
		} else if (!strcmp(k, "retries")) {
			rc = spb_long(b, val, w, k, 0, 1000000, &n);
			h->retries = (int)n;
		} else if (!strcmp(k, "disable")) {
			bool d = false;
			rc = spb_bool(b, val, w, k, &d);
			h->disable = h->disable || d;
		} else if (!strcmp(k, "http")) {
			rc = spb_string(b, val, w, k, &h->http);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* A docker --gpus value from a compose device request mapping. */
static char *gpu_request(const struct ynode *m)
{
	const struct ynode *count = ymap_get(m, "count");
	const struct ynode *ids = ymap_get(m, "device_ids");
	if (ids && ids->kind == YNODE_SEQ && ids->nitems) {
		struct strbuf sb = STRBUF_INIT;
		sb_adds(&sb, "device=");
		for (size_t i = 0; i < ids->nitems; i++) {
			if (ids->items[i]->kind != YNODE_SCALAR)
				continue;
			if (i)
				sb_addc(&sb, ',');
			sb_adds(&sb, ids->items[i]->str);
		}
		return sb_detach(&sb);
	}
	if (count && count->kind == YNODE_SCALAR && !ynode_is_null(count))
		return xstrdup(count->str);
	return xstrdup("all");
}

/* What docker --gpus takes: "all", a count, or "device=ID[,ID...]". */
static bool gpu_request_valid(const char *s)
{
	if (!strcmp(s, "all"))
		return true;
	if (str_has_prefix(s, "device=") && s[7] && s[strlen(s) - 1] != ',')
		return true;
	if (!*s || strlen(s) > 4)
		return false;
	for (const char *c = s; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	return atoi(s) > 0;
}

static int gpu_scalar(struct spec_builder *b, struct stage *st, const struct ynode *v,
		      const char *where)
{
	if (!gpu_request_valid(v->str))
		return cp_error_at(b->err, EXIT_USAGE, &v->mark,
				   "%sgpus \"%s\" is not \"all\", a number of GPUs or "
				   "\"device=ID[,ID...]\"",
				   where, v->str);
	strvec_push(&st->gpus, v->str);
	return 0;
}

/* A device request mapping; its count must be one docker takes. */
static int gpu_map(struct spec_builder *b, struct stage *st, const struct ynode *m,
		   const char *where)
{
	const struct ynode *count = ymap_get(m, "count");
	if (count && count->kind == YNODE_SCALAR && !ynode_is_null(count) &&
	    (!gpu_request_valid(count->str) || str_has_prefix(count->str, "device=")))
		return cp_error_at(b->err, EXIT_USAGE, &count->mark,
				   "%sGPU count \"%s\" is not \"all\" or a number of GPUs", where,
				   count->str);
	strvec_push_take(&st->gpus, gpu_request(m));
	return 0;
}

static int build_gpus(struct spec_builder *b, struct stage *st, const struct ynode *v,
		      const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind == YNODE_SCALAR)
		return gpu_scalar(b, st, v, where);
	if (v->kind != YNODE_SEQ)
		return spb_type_error(b, v, where, "gpus", "\"all\" or a list");
	for (size_t i = 0; i < v->nitems; i++) {
		const struct ynode *it = v->items[i];
		int rc;
		if (it->kind == YNODE_SCALAR && !ynode_is_null(it))
			rc = gpu_scalar(b, st, it, where);
		else if (it->kind == YNODE_MAP)
			rc = gpu_map(b, st, it, where);
		else
			rc = cp_error_at(
			    b->err, EXIT_USAGE, &it->mark,
			    "%skey \"gpus\": entries must be strings or mappings, got %s", where,
			    ynode_kind_name(it));
		if (rc < 0)
			return -1;
	}
	return 0;
}

static bool seq_has(const struct ynode *seq, const char *s)
{
	if (!seq || seq->kind != YNODE_SEQ)
		return false;
	for (size_t i = 0; i < seq->nitems; i++)
		if (seq->items[i]->kind == YNODE_SCALAR && !strcmp(seq->items[i]->str, s))
			return true;
	return false;
}

/* Warns about every deploy key but resources.reservations.devices and
 * replicas (spec_compose.c warns when it is not 1). */
static void deploy_warnings(struct spec_builder *b, const struct ynode *v, const char *where)
{
	for (size_t i = 0; i < v->npairs; i++) {
		const struct ypair *pr = &v->pairs[i];
		const char *k = pr->key->str;
		if (str_has_prefix(k, "x-") || strcmp(k, "replicas") == 0)
			continue;
		if (strcmp(k, "resources") == 0 && pr->value->kind == YNODE_MAP) {
			for (size_t j = 0; j < pr->value->npairs; j++) {
				const struct ypair *r = &pr->value->pairs[j];
				const struct ynode *devs = ymap_get(r->value, "devices");
				if (strcmp(r->key->str, "reservations") == 0 &&
				    (!r->value || r->value->kind != YNODE_MAP ||
				     (devs && r->value->npairs == 1)))
					continue;
				cleanup_free char *id = xasprintf("deploy.resources.%s", r->key->str);
				spb_warn(b, id, "stage", &r->key->mark,
					"%sdeploy.resources.%s: cpipe ignores it; only GPU "
					"reservations (reservations.devices) are honoured",
					where, r->key->str);
			}
			continue;
		}
		cleanup_free char *id = xasprintf("deploy.%s", k);
		spb_warn(b, id, "stage", &pr->key->mark,
			"%sdeploy.%s: cpipe ignores it; a stage runs once, on this host", where, k);
	}
}

/* deploy: only GPU device reservations have meaning; the rest is warned. */
static int build_deploy(struct spec_builder *b, struct stage *st, const struct ynode *v,
			const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_MAP)
		return spb_type_error(b, v, where, "deploy", "a mapping");
	deploy_warnings(b, v, where);
	const struct ynode *devs = ymap_get(ymap_get(ymap_get(v, "resources"), "reservations"),
					    "devices");
	if (!devs || devs->kind != YNODE_SEQ)
		return 0;
	for (size_t i = 0; i < devs->nitems; i++) {
		const struct ynode *d = devs->items[i];
		if (d->kind == YNODE_MAP && seq_has(ymap_get(d, "capabilities"), "gpu") &&
		    gpu_map(b, st, d, where) < 0)
			return -1;
	}
	return 0;
}

/* ---- long-form volume and port options cpipe does not apply ---- */

/* Warns about the options of long-form volumes (bind.propagation,
 * volume.nocopy, tmpfs.size, consistency, ...) and ports (mode: ingress,
 * name, app_protocol); spec_mounts.c reads the rest. */
static void mount_port_warnings(struct spec_builder *b, const struct ynode *v,
				const char *where)
{
	const struct ynode *vols = ymap_get(v, "volumes");
	for (size_t i = 0; vols && vols->kind == YNODE_SEQ && i < vols->nitems; i++) {
		const struct ynode *it = vols->items[i];
		for (size_t k = 0; it->kind == YNODE_MAP && k < it->npairs; k++) {
			const struct ypair *pr = &it->pairs[k];
			const char *key = pr->key->str;
			bool opts = !strcmp(key, "bind") || !strcmp(key, "volume") ||
				    !strcmp(key, "tmpfs");
			if (!opts && strcmp(key, "consistency"))
				continue;
			for (size_t o = 0; opts && pr->value->kind == YNODE_MAP &&
					   o < pr->value->npairs;
			     o++) {
				const char *opt = pr->value->pairs[o].key->str;
				cleanup_free char *id = xasprintf("volumes %s.%s", key, opt);
				spb_warn(b, id, "stage", &pr->value->pairs[o].key->mark,
					"%svolumes: %s.%s: cpipe ignores it; the mount gets the "
					"runtime's defaults",
					where, key, opt);
			}
			if (!opts)
				spb_warn(b, "volumes consistency", "stage", &pr->key->mark,
					"%svolumes: consistency: cpipe ignores it (Docker Desktop "
					"only)",
					where);
		}
	}
	const struct ynode *ports = ymap_get(v, "ports");
	for (size_t i = 0; ports && ports->kind == YNODE_SEQ && i < ports->nitems; i++) {
		const struct ynode *it = ports->items[i];
		for (size_t k = 0; it->kind == YNODE_MAP && k < it->npairs; k++) {
			const struct ypair *pr = &it->pairs[k];
			const char *key = pr->key->str;
			if (!strcmp(key, "mode") && pr->value->kind == YNODE_SCALAR &&
			    strcmp(pr->value->str, "ingress"))
				continue; /* host: what cpipe does */
			if (strcmp(key, "mode") && strcmp(key, "name") && strcmp(key, "app_protocol"))
				continue;
			cleanup_free char *id = xasprintf("ports %s", key);
			spb_warn(b, id, "stage", &pr->key->mark,
				"%sports: %s: cpipe ignores it; %s", where, key,
				!strcmp(key, "mode") ? "ports are published on this host"
						     : "it names nothing cpipe shows");
		}
	}
}

/* ---- params and --set ---- */

static int build_params(struct spec_builder *b, struct stage *st, const struct ynode *v,
			const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_MAP)
		return spb_type_error(b, v, where, "params", "a mapping");
	for (size_t i = 0; i < v->npairs; i++) {
		const struct ynode *val = v->pairs[i].value;
		if (val->kind != YNODE_SCALAR)
			return cp_error_at(b->err, EXIT_USAGE, &val->mark,
					   "%sparam \"%s\" must be a string or a number, got %s",
					   where, v->pairs[i].key->str, ynode_kind_name(val));
		kvvec_set(&st->params, v->pairs[i].key->str, val->str);
	}
	return 0;
}

int spb_apply_sets(struct spec_builder *b, struct stage *st)
{
	for (size_t i = 0; i < b->nsets; i++) {
		const struct spb_set *s = &b->sets[i];
		if (s->stage != st)
			continue;
		if (!kvvec_get(&st->params, s->param)) {
			const char **cands = xcalloc(st->params.n + 1, sizeof(*cands));
			for (size_t j = 0; j < st->params.n; j++)
				cands[j] = st->params.v[j].key;
			const char *near = suggest_nearest(s->param, cands, st->params.n);
			if (near)
				cp_error_set(b->err, EXIT_USAGE,
					     "--set %s: stage \"%s\" has no param \"%s\" (did you "
					     "mean \"%s\"?)",
					     s->key, st->name, s->param, near);
			else
				cp_error_set(b->err, EXIT_USAGE,
					     "--set %s: stage \"%s\" has no param \"%s\"", s->key,
					     st->name, s->param);
			free(cands);
			return -1;
		}
		kvvec_set(&st->params, s->param, s->value);
		kvvec_set(&st->param_overrides, s->param, s->value);
	}
	return 0;
}

/* ---- the stage ---- */

static int stage_key(struct spec_builder *b, struct stage *st, const char *k,
		     const struct ynode *val, const char *where)
{
	if (!strcmp(k, "build"))
		return build_build(b, st, val, where);
	if (!strcmp(k, "image"))
		return spb_string(b, val, where, k, &st->image);
	if (!strcmp(k, "command"))
		return build_command(b, st, val, where, k, &st->command, &st->has_command);
	if (!strcmp(k, "entrypoint"))
		return build_command(b, st, val, where, k, &st->entrypoint, &st->has_entrypoint);
	if (!strcmp(k, "working_dir")) {
		if (spb_string(b, val, where, k, &st->working_dir) < 0)
			return -1;
		if (!st->working_dir)
			return 0;
		char *sub;
		if (interp_params(&sub, st->working_dir, &st->params, st->name, &val->mark,
				  b->err) < 0)
			return -1;
		free(st->working_dir);
		st->working_dir = sub;
		if (sub[0] != '/')
			return cp_error_at(b->err, EXIT_USAGE, &val->mark,
					   "%sworking_dir \"%s\" must be an absolute path", where,
					   sub);
		return 0;
	}
	if (!strcmp(k, "user"))
		return spb_string(b, val, where, k, &st->user);
	if (!strcmp(k, "network_mode")) {
		if (spb_string(b, val, where, k, &st->network_mode) < 0)
			return -1;
		const char *m = st->network_mode;
		if (m && strcmp(m, "host") != 0 && strcmp(m, "none") != 0) {
			cleanup_free char *id = xasprintf("network_mode.%s", m);
			spb_warn(b, id, "stage", &val->mark,
				"%snetwork_mode: %s: cpipe ignores it; the stage is on the project "
				"network (only host and none are honoured)",
				where, m);
			free(st->network_mode);
			st->network_mode = NULL;
		}
		return 0;
	}
	if (!strcmp(k, "container_name"))
		return spb_string(b, val, where, k, &st->container_name);
	if (!strcmp(k, "volumes"))
		return spb_mounts(b, st, val, where);
	if (!strcmp(k, "ports"))
		return spb_ports(b, st, val, where);
	if (!strcmp(k, "depends_on"))
		return spb_deps(b, st, val, where);
	if (!strcmp(k, "healthcheck"))
		return build_healthcheck(b, st, val, where);
	if (!strcmp(k, "profiles"))
		return ynode_is_null(val) ? 0 : spb_strlist(b, val, where, k, &st->profiles);
	if (!strcmp(k, "labels"))
		return ynode_is_null(val) ? 0
					  : spb_kv(b, val, where, k, &st->labels, SB_NULL_EMPTY, NULL);
	if (!strcmp(k, "stop_grace_period"))
		return spb_duration(b, val, where, k, &st->stop_grace_ms);
	if (!strcmp(k, "gpus"))
		return build_gpus(b, st, val, where);
	if (!strcmp(k, "deploy"))
		return build_deploy(b, st, val, where);
	if (!strcmp(k, "inputs"))
		return spb_artifacts(b, val, where, k, &st->inputs, &st->ninputs);
	if (!strcmp(k, "outputs") || !strcmp(k, "metrics"))
		st->outputs_declared = true;
	if (!strcmp(k, "outputs"))
		return spb_artifacts(b, val, where, k, &st->outputs, &st->noutputs);
	if (!strcmp(k, "metrics"))
		return spb_artifacts(b, val, where, k, &st->metrics, &st->nmetrics);
	return 0; /* accepted and ignored, or handled before */
}

/* A stage's x-cpipe: {node_selector: {LABEL: VALUE}, resources: {cpu, memory}}. */
static int stage_x_cpipe(struct spec_builder *b, struct stage *st, const struct ynode *x,
			 const char *where)
{
	static const char *const keys[] = {"node_selector", "resources"};
	static const char *const rkeys[] = {"cpu", "memory"};
	cleanup_free char *w = xasprintf("%sx-cpipe: ", where);
	if (x->kind != YNODE_MAP)
		return spb_type_error(b, x, where, "x-cpipe", "a mapping");
	if (spb_check_keys(b, x, w, keys, ARRAY_LEN(keys)) < 0)
		return -1;
	const struct ynode *ns = ymap_get(x, "node_selector");
	const struct ynode *res = ymap_get(x, "resources");
	if (ns && !ynode_is_null(ns) &&
	    spb_kv(b, ns, w, "node_selector", &st->x_node_selector, SB_NULL_EMPTY, NULL) < 0)
		return -1;
	if (res && res->kind == YNODE_MAP &&
	    spb_check_keys(b, res, w, rkeys, ARRAY_LEN(rkeys)) < 0)
		return -1;
	if (res && !ynode_is_null(res) &&
	    spb_kv(b, res, w, "resources", &st->x_resources, SB_NULL_EMPTY, NULL) < 0)
		return -1;
	return 0;
}

int spb_stage(struct spec_builder *b, struct stage *st, const struct ynode *v)
{
	cleanup_free char *where = xasprintf("stage \"%s\": ", st->name);
	if (spb_compose_keys(b, v, CK_SERVICE, where) < 0)
		return -1;
	mount_port_warnings(b, v, where);
	const struct ynode *params = ymap_get(v, "params");
	if (params && build_params(b, st, params, where) < 0)
		return -1;
	if (spb_apply_sets(b, st) < 0)
		return -1;
	/* env_file entries come first; environment: overrides them. */
	const struct ynode *ef = ymap_get(v, "env_file");
	if (ef && build_env_files(b, st, ef, where) < 0)
		return -1;
	const struct ynode *env = ymap_get(v, "environment");
	if (env && !ynode_is_null(env) &&
	    spb_kv(b, env, where, "environment", &st->environment, SB_NULL_FROM_ENV, st) < 0)
		return -1;
	const struct ynode *x = ymap_get(v, "x-cpipe");
	if (x && !ynode_is_null(x) && stage_x_cpipe(b, st, x, where) < 0)
		return -1;
	for (size_t i = 0; i < v->npairs; i++) {
		const char *k = v->pairs[i].key->str;
		if (!strcmp(k, "params") || !strcmp(k, "env_file") || !strcmp(k, "environment") ||
		    !strcmp(k, "service") || str_has_prefix(k, "x-"))
			continue;
		if (stage_key(b, st, k, v->pairs[i].value, where) < 0)
			return -1;
	}
	return spb_compose(b, st, v, where);
}

