/* The compose keys of a stage's resources, security and lifecycle:
 * tmpfs, shm_size, ipc, ulimits, pids_limit, cap_add/cap_drop, read_only,
 * init, stop_signal, restart, runtime, secrets/configs, platform,
 * deploy.replicas and volumes_from, into struct stage's limits, security
 * and lifecycle. What each runtime does with them is in stages/. */
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../lib/fs.h"
#include "../lib/linux_names.h"
#include "spec_build.h"

/* Compose's byte values: a number, or a number with b, k, m or g (kb, mb,
 * gb too, any case). */
static int parse_bytes(long long *out, const char *s)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	double v = strtod(s, &end);
	long long mult = 1;
	if (*end) {
		char u = (char)tolower((unsigned char)*end);
		mult = u == 'b' ? 1 : u == 'k' ? 1LL << 10 : u == 'm' ? 1LL << 20 : u == 'g' ? 1LL << 30 : 0;
		if (!mult)
			return -1;
		end++;
		if (u != 'b' && (*end == 'b' || *end == 'B'))
			end++;
		if (*end)
			return -1;
	}
	*out = (long long)(v * (double)mult);
	return 0;
}

static int bytes_key(struct spec_builder *b, const struct ynode *v, const char *where,
		     const char *key, long long *out)
{
	if (v->kind != YNODE_SCALAR || ynode_is_null(v) || parse_bytes(out, v->str) < 0)
		return cp_error_at(b->err, EXIT_USAGE, &v->mark,
				   "%skey \"%s\": \"%s\" is not a size (like \"64m\", \"1g\", "
				   "\"512k\" or a number of bytes)",
				   where, key,
				   v->kind == YNODE_SCALAR ? v->str : ynode_kind_name(v));
	return 0;
}

/* ---- tmpfs, ulimits ---- */

static int tmpfs_entry(struct spec_builder *b, struct stage_limits *l, const struct ynode *it,
		       const char *where)
{
	if (it->kind != YNODE_SCALAR || ynode_is_null(it))
		return cp_error_at(b->err, EXIT_USAGE, &it->mark,
				   "%skey \"tmpfs\": entries must be paths, got %s", where,
				   ynode_kind_name(it));
	const char *colon = strchr(it->str, ':');
	cleanup_free char *path = colon ? xstrndup(it->str, (size_t)(colon - it->str))
					: xstrdup(it->str);
	char *target = path[0] == '/' ? path_normalize(path) : NULL;
	if (!target || !strcmp(target, "/")) {
		free(target);
		return cp_error_at(b->err, EXIT_USAGE, &it->mark,
				   "%stmpfs \"%s\" must be an absolute path below /", where,
				   it->str);
	}
	l->tmpfs = xrealloc(l->tmpfs, (l->ntmpfs + 1) * sizeof(*l->tmpfs));
	l->tmpfs[l->ntmpfs++] = (struct tmpfs_mount){
		.target = target, .options = colon && colon[1] ? xstrdup(colon + 1) : NULL};
	return 0;
}

static int build_tmpfs(struct spec_builder *b, struct stage *st, const struct ynode *v,
		       const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind == YNODE_SCALAR)
		return tmpfs_entry(b, &st->limits, v, where);
	if (v->kind != YNODE_SEQ)
		return spb_type_error(b, v, where, "tmpfs", "a path or a list of paths");
	for (size_t i = 0; i < v->nitems; i++)
		if (tmpfs_entry(b, &st->limits, v->items[i], where) < 0)
			return -1;
	return 0;
}

static int limit_value(struct spec_builder *b, const struct ynode *v, const char *where,
		       const char *name, long long *out)
{
	if (v->kind == YNODE_SCALAR && (!strcmp(v->str, "-1") || !strcmp(v->str, "unlimited"))) {
		*out = -1;
		return 0;
	}
	char *end;
	if (v->kind != YNODE_SCALAR || !isdigit((unsigned char)v->str[0]) ||
	    (*out = strtoll(v->str, &end, 10), *end))
		return cp_error_at(b->err, EXIT_USAGE, &v->mark,
				   "%sulimits: %s must be a number (or -1 for unlimited)", where,
				   name);
	return 0;
}

static int build_ulimits(struct spec_builder *b, struct stage *st, const struct ynode *v,
			 const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_MAP)
		return spb_type_error(b, v, where, "ulimits", "a mapping");
	struct stage_limits *l = &st->limits;
	for (size_t i = 0; i < v->npairs; i++) {
		const struct ynode *k = v->pairs[i].key, *val = v->pairs[i].value;
		if (linux_rlimit_from_name(k->str) < 0) {
			size_t n;
			const char *const *names = linux_rlimit_names(&n);
			const char *near = suggest_nearest(k->str, names, n);
			return cp_error_at(b->err, EXIT_USAGE, &k->mark,
					   "%sulimits: unknown limit \"%s\"%s%s%s", where, k->str,
					   near ? " (did you mean \"" : "", near ? near : "",
					   near ? "\"?)" : "");
		}
		struct ulimit u = {.name = NULL};
		if (val->kind == YNODE_MAP) {
			const struct ynode *soft = ymap_get(val, "soft"), *hard = ymap_get(val, "hard");
			if (!soft || !hard)
				return cp_error_at(b->err, EXIT_USAGE, &val->mark,
						   "%sulimits: %s needs both \"soft\" and \"hard\"",
						   where, k->str);
			if (limit_value(b, soft, where, k->str, &u.soft) < 0 ||
			    limit_value(b, hard, where, k->str, &u.hard) < 0)
				return -1;
			if (u.hard != -1 && (u.soft == -1 || u.soft > u.hard))
				return cp_error_at(
				    b->err, EXIT_USAGE, &val->mark,
				    "%sulimits: %s soft limit is above its hard limit", where,
				    k->str);
		} else {
			if (limit_value(b, val, where, k->str, &u.soft) < 0)
				return -1;
			u.hard = u.soft;
		}
		u.name = xstrdup(k->str);
		l->ulimits = xrealloc(l->ulimits, (l->nulimits + 1) * sizeof(*l->ulimits));
		l->ulimits[l->nulimits++] = u;
	}
	return 0;
}

/* ---- capabilities, signals, restart ---- */

static int build_caps(struct spec_builder *b, const struct ynode *v, const char *where,
		      const char *key, struct strvec *out)
{
	if (ynode_is_null(v))
		return 0;
	struct strvec names = {0};
	if (spb_strlist(b, v, where, key, &names) < 0)
		return -1;
	for (size_t i = 0; i < names.n; i++) {
		const char *n = names.v[i];
		int cap = linux_cap_from_name(n);
		if (cap < 0 && strcasecmp(n, "ALL") != 0) {
			cp_error_at(b->err, EXIT_USAGE, &v->items[i]->mark,
				    "%s%s: unknown capability \"%s\" (names as in capabilities(7), "
				    "with or without CAP_, or ALL)",
				    where, key, n);
			strvec_free(&names);
			return -1;
		}
		strvec_push(out, cap < 0 ? "ALL" : linux_cap_name(cap));
	}
	strvec_free(&names);
	return 0;
}

static int build_stop_signal(struct spec_builder *b, struct stage *st, const struct ynode *v,
			     const char *where)
{
	if (ynode_is_null(v))
		return 0;
	int sig = v->kind == YNODE_SCALAR ? linux_signal_from_name(v->str) : -1;
	if (sig == SIGKILL || sig == SIGSTOP)
		return cp_error_at(b->err, EXIT_USAGE, &v->mark,
				   "%sstop_signal \"%s\" cannot be caught, so it stops nothing "
				   "gracefully (stop_grace_period ends in SIGKILL anyway)",
				   where, v->str);
	if (sig < 0 || !linux_signal_name(sig))
		return cp_error_at(b->err, EXIT_USAGE, &v->mark,
				   "%sstop_signal \"%s\" is not a signal (like SIGTERM, SIGINT, "
				   "SIGUSR1)",
				   where, v->kind == YNODE_SCALAR ? v->str : ynode_kind_name(v));
	st->lifecycle.stop_signal = sig;
	free(st->lifecycle.stop_signal_name);
	st->lifecycle.stop_signal_name = xstrdup(linux_signal_name(sig));
	return 0;
}

static int build_restart(struct spec_builder *b, struct stage *st, const struct ynode *v,
			 const char *where)
{
	if (ynode_is_null(v))
		return 0;
	const char *s = v->kind == YNODE_SCALAR ? v->str : "";
	struct stage_lifecycle *lc = &st->lifecycle;
	lc->restart_max = 0;
	if (!strcmp(s, "no") || !strcmp(s, "false")) {
		lc->restart = RESTART_NO;
	} else if (!strcmp(s, "always")) {
		lc->restart = RESTART_ALWAYS;
	} else if (!strcmp(s, "unless-stopped")) {
		lc->restart = RESTART_UNLESS_STOPPED;
	} else if (str_has_prefix(s, "on-failure")) {
		lc->restart = RESTART_ON_FAILURE;
		char *end = NULL;
		if (s[10] == ':') {
			long n = strtol(s + 11, &end, 10);
			if (!isdigit((unsigned char)s[11]) || *end || n > 1000000)
				goto bad;
			lc->restart_max = (int)n;
		} else if (s[10]) {
			goto bad;
		}
	} else {
		goto bad;
	}
	lc->marks[CM_RESTART] = v->mark;
	return 0;
bad:
	return cp_error_at(b->err, EXIT_USAGE, &v->mark,
			   "%srestart \"%s\" is not no, always, unless-stopped, on-failure or "
			   "on-failure:N",
			   where, s);
}

/* ---- secrets, configs (names and targets; sources come at the end) ---- */

static int secret_entry(struct spec_builder *b, struct stage *st, const struct ynode *it,
			const char *where, bool config)
{
	const char *key = config ? "configs" : "secrets";
	cleanup_free char *source = NULL, *target = NULL;
	if (it->kind == YNODE_SCALAR && !ynode_is_null(it)) {
		source = xstrdup(it->str);
	} else if (it->kind == YNODE_MAP) {
		static const char *const keys[] = {"source", "target", "uid", "gid", "mode"};
		cleanup_free char *w = xasprintf("%s%s: ", where, key);
		if (spb_check_keys(b, it, w, keys, ARRAY_LEN(keys)) < 0)
			return -1;
		const struct ynode *n;
		if (((n = ymap_get(it, "source")) && spb_string(b, n, w, "source", &source) < 0) ||
		    ((n = ymap_get(it, "target")) && spb_string(b, n, w, "target", &target) < 0))
			return -1;
		if (!source)
			return cp_error_at(b->err, EXIT_USAGE, &it->mark,
					   "%s\"source\" is required", w);
	} else {
		return cp_error_at(
		    b->err, EXIT_USAGE, &it->mark,
		    "%skey \"%s\": entries must be names or {source, target}, got %s", where, key,
		    ynode_kind_name(it));
	}
	cleanup_free char *abs = !target		? (config ? xasprintf("/%s", source)
								  : xasprintf("/run/secrets/%s", source))
				 : target[0] == '/' ? xstrdup(target)
				 : config	    ? xasprintf("/%s", target)
						    : xasprintf("/run/secrets/%s", target);
	char *norm = path_normalize(abs);
	if (!norm || !strcmp(norm, "/")) {
		free(norm);
		return cp_error_at(b->err, EXIT_USAGE, &it->mark,
				   "%s%s: target \"%s\" is not a file path", where, key, abs);
	}
	struct stage_security *sec = &st->security;
	sec->secrets = xrealloc(sec->secrets, (sec->nsecrets + 1) * sizeof(*sec->secrets));
	sec->secrets[sec->nsecrets++] = (struct stage_secret){
		.name = xstrdup(source), .target = norm, .config = config, .mark = it->mark};
	return 0;
}

static int build_secrets(struct spec_builder *b, struct stage *st, const struct ynode *v,
			 const char *where, bool config)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_SEQ)
		return spb_type_error(b, v, where, config ? "configs" : "secrets", "a list");
	for (size_t i = 0; i < v->nitems; i++)
		if (secret_entry(b, st, v->items[i], where, config) < 0)
			return -1;
	return 0;
}

/* ---- the stage's keys ---- */

static int build_replicas(struct spec_builder *b, struct stage *st, const struct ynode *v,
			  const char *where)
{
	const struct ynode *r = v && v->kind == YNODE_MAP ? ymap_get(v, "replicas") : NULL;
	if (!r || ynode_is_null(r))
		return 0;
	if (spb_long(b, r, where, "deploy.replicas", 0, 100000, &st->lifecycle.replicas) < 0)
		return -1;
	st->lifecycle.has_replicas = true;
	st->lifecycle.marks[CM_REPLICAS] = r->mark;
	return 0;
}

static int compose_key(struct spec_builder *b, struct stage *st, const char *k,
		       const struct ynode *val, const char *where)
{
	struct stage_limits *l = &st->limits;
	struct stage_security *sec = &st->security;
	if (!strcmp(k, "tmpfs"))
		return build_tmpfs(b, st, val, where);
	if (!strcmp(k, "shm_size"))
		return ynode_is_null(val) ? 0 : bytes_key(b, val, where, k, &l->shm_size);
	if (!strcmp(k, "pids_limit")) {
		if (ynode_is_null(val))
			return 0;
		if (spb_long(b, val, where, k, -1, 1L << 30, &l->pids_limit) < 0)
			return -1;
		if (l->pids_limit < 0)
			l->pids_limit = 0; /* -1: unlimited, as compose has it */
		return 0;
	}
	if (!strcmp(k, "ulimits"))
		return build_ulimits(b, st, val, where);
	if (!strcmp(k, "cap_add"))
		return build_caps(b, val, where, k, &sec->cap_add);
	if (!strcmp(k, "cap_drop"))
		return build_caps(b, val, where, k, &sec->cap_drop);
	if (!strcmp(k, "read_only"))
		return ynode_is_null(val) ? 0 : spb_bool(b, val, where, k, &sec->read_only);
	if (!strcmp(k, "init")) {
		if (ynode_is_null(val))
			return 0;
		sec->has_init = true;
		return spb_bool(b, val, where, k, &sec->init);
	}
	if (!strcmp(k, "ipc"))
		return spb_string(b, val, where, k, &sec->ipc);
	if (!strcmp(k, "platform"))
		return spb_string(b, val, where, k, &sec->platform);
	if (!strcmp(k, "runtime"))
		return spb_string(b, val, where, k, &sec->runtime);
	if (!strcmp(k, "secrets"))
		return build_secrets(b, st, val, where, false);
	if (!strcmp(k, "configs"))
		return build_secrets(b, st, val, where, true);
	if (!strcmp(k, "stop_signal"))
		return build_stop_signal(b, st, val, where);
	if (!strcmp(k, "restart"))
		return build_restart(b, st, val, where);
	if (!strcmp(k, "deploy"))
		return build_replicas(b, st, val, where);
	if (!strcmp(k, "volumes_from"))
		return ynode_is_null(val) ? 0
					  : spb_strlist(b, val, where, k, &st->lifecycle.volumes_from);
	return 0;
}

static const struct {
	const char *key;
	enum compose_mark mark;
} marked[] = {
	{"ipc", CM_IPC},	 {"init", CM_INIT},	{"pids_limit", CM_PIDS},
	{"platform", CM_PLATFORM}, {"gpus", CM_GPUS},	{"runtime", CM_GPUS},
	{"ulimits", CM_ULIMITS}, {"cap_add", CM_CAPS}, {"cap_drop", CM_CAPS},
	{"shm_size", CM_SHM},	 {"deploy", CM_GPUS},	{"volumes_from", CM_VOLUMES_FROM},
};

int spb_compose(struct spec_builder *b, struct stage *st, const struct ynode *v, const char *where)
{
	for (size_t i = 0; i < v->npairs; i++) {
		const char *k = v->pairs[i].key->str;
		for (size_t m = 0; m < ARRAY_LEN(marked); m++)
			if (!strcmp(marked[m].key, k) && !st->lifecycle.marks[marked[m].mark].file)
				st->lifecycle.marks[marked[m].mark] = v->pairs[i].key->mark;
		if (compose_key(b, st, k, v->pairs[i].value, where) < 0)
			return -1;
	}
	return 0;
}

/* ---- after every stage: sources of secrets, volumes_from, runtime ---- */

static int secret_source(struct spec_builder *b, const struct stage *st, struct stage_secret *s,
			 const struct ynode *root)
{
	const char *top = s->config ? "configs" : "secrets";
	const struct ynode *defs = root ? ymap_get(root, top) : NULL;
	const struct ynode *d = defs && defs->kind == YNODE_MAP ? ymap_get(defs, s->name) : NULL;
	if (!d || d->kind != YNODE_MAP)
		return cp_error_at(b->err, EXIT_USAGE, &s->mark,
				   "stage \"%s\": %s \"%s\" is not declared under the top-level "
				   "\"%s:\" (declare it with file:%s)",
				   st->name, s->config ? "config" : "secret", s->name, top,
				   s->config ? ", content: or environment:" : " or environment:");
	const struct ynode *file = ymap_get(d, "file"), *env = ymap_get(d, "environment");
	const struct ynode *content = s->config ? ymap_get(d, "content") : NULL;
	if (file && file->kind == YNODE_SCALAR && !ynode_is_null(file)) {
		s->source = spb_host_path(b, file->str);
		struct stat sb;
		if (!s->source || stat(s->source, &sb) < 0 || !S_ISREG(sb.st_mode))
			return cp_error_at(b->err, EXIT_USAGE, &file->mark,
					   "%s \"%s\": file \"%s\" is not a readable file (stage "
					   "\"%s\" mounts it)",
					   top, s->name, file->str, st->name);
		return 0;
	}
	if (env && env->kind == YNODE_SCALAR && !ynode_is_null(env)) {
		const char *val = spb_env_lookup(b, env->str);
		if (!val)
			return cp_error_at(b->err, EXIT_USAGE, &env->mark,
					   "%s \"%s\": environment variable %s is not set (stage "
					   "\"%s\" mounts it)",
					   top, s->name, env->str, st->name);
		s->content = xstrdup(val);
		s->env = xstrdup(env->str);
		return 0;
	}
	if (content && content->kind == YNODE_SCALAR) {
		s->content = xstrdup(content->str);
		return 0;
	}
	return cp_error_at(
	    b->err, EXIT_USAGE, &d->mark,
	    "%s \"%s\": cpipe mounts file:%s ones (stage \"%s\" uses it); "
	    "external ones live in a swarm",
	    top, s->name,
	    s->config ? ", content: and environment:" : " and environment:", st->name);
}

/* volumes_from: "stage", "stage:ro", "stage:rw" or "container:NAME". */
static int volumes_from(struct spec_builder *b, struct stage *st)
{
	const struct strvec *vf = &st->lifecycle.volumes_from;
	const struct cp_mark *at = &st->lifecycle.marks[CM_VOLUMES_FROM];
	for (size_t i = 0; i < vf->n; i++) {
		cleanup_free char *name = xstrdup(vf->v[i]);
		char *mode = strrchr(name, ':');
		bool force_ro = false;
		if (str_has_prefix(name, "container:"))
			return cp_error_at(
			    b->err, EXIT_USAGE, at,
			    "stage \"%s\": volumes_from \"%s\": cpipe shares the mounts "
			    "of stages only; name a stage of the spec",
			    st->name, vf->v[i]);
		if (mode && (!strcmp(mode, ":ro") || !strcmp(mode, ":rw"))) {
			force_ro = mode[2] == 'o';
			*mode = '\0';
		}
		long idx = pipeline_stage_index(b->p, name);
		if (idx < 0 || &b->p->stages[idx] == st)
			return cp_error_at(
			    b->err, EXIT_USAGE, at,
			    "stage \"%s\": volumes_from \"%s\" is not another stage of "
			    "the spec",
			    st->name, vf->v[i]);
		const struct stage *from = &b->p->stages[idx];
		if (from->lifecycle.volumes_from.n)
			return cp_error_at(b->err, EXIT_USAGE, at,
					   "stage \"%s\": volumes_from \"%s\", which itself uses "
					   "volumes_from; name the stage that declares the volumes",
					   st->name, name);
		st->mounts = xrealloc(st->mounts, (st->nmounts + from->nmounts + 1) * sizeof(*st->mounts));
		for (size_t k = 0; k < from->nmounts; k++) {
			const struct mount *m = &from->mounts[k];
			st->mounts[st->nmounts++] = (struct mount){
				.type = m->type,
				.source = m->source ? xstrdup(m->source) : NULL,
				.target = xstrdup(m->target),
				.read_only = m->read_only || force_ro,
				.mark = m->mark};
		}
	}
	return 0;
}

int spb_compose_finish(struct spec_builder *b, const struct ynode *root)
{
	for (size_t i = 0; i < b->p->nstages; i++) {
		struct stage *st = &b->p->stages[i];
		for (size_t k = 0; k < st->security.nsecrets; k++)
			if (secret_source(b, st, &st->security.secrets[k], root) < 0)
				return -1;
		if (volumes_from(b, st) < 0)
			return -1;
		/* runtime: nvidia is how compose files asked for GPUs before
		 * device requests: one request for all of them. */
		if (st->security.runtime && !strcmp(st->security.runtime, "nvidia") && !st->gpus.n)
			strvec_push(&st->gpus, "all");
	}
	return 0;
}

void stage_compose_free(struct stage *st)
{
	for (size_t i = 0; i < st->limits.nulimits; i++)
		free(st->limits.ulimits[i].name);
	free(st->limits.ulimits);
	for (size_t i = 0; i < st->limits.ntmpfs; i++) {
		free(st->limits.tmpfs[i].target);
		free(st->limits.tmpfs[i].options);
	}
	free(st->limits.tmpfs);
	struct stage_security *sec = &st->security;
	strvec_free(&sec->cap_add);
	strvec_free(&sec->cap_drop);
	free(sec->ipc);
	free(sec->platform);
	free(sec->runtime);
	for (size_t i = 0; i < sec->nsecrets; i++) {
		free(sec->secrets[i].name);
		free(sec->secrets[i].source);
		free(sec->secrets[i].content);
		free(sec->secrets[i].env);
		free(sec->secrets[i].target);
	}
	free(sec->secrets);
	free(st->lifecycle.stop_signal_name);
	strvec_free(&st->lifecycle.volumes_from);
}
