/* Stage volumes (short and long form), ports and artifact references. */
#include <stdlib.h>
#include <string.h>

#include "../lib/fs.h"
#include "spec_build.h"

static int undeclared_volume(struct spec_builder *b, const struct ynode *at, const char *where,
			     const char *name)
{
	const char *near = suggest_nearest(name, b->volume_names, b->p->nvolumes);
	if (near)
		return cp_error_at(b->err, EXIT_USAGE, &at->mark,
				   "%sundeclared volume \"%s\" (did you mean \"%s\"?)", where, name,
				   near);
	return cp_error_at(b->err, EXIT_USAGE, &at->mark,
			   "%sundeclared volume \"%s\" (declare it under the top-level "
			   "\"volumes:\")",
			   where, name);
}

static bool volume_declared(const struct spec_builder *b, const char *name)
{
	return pipeline_volume(b->p, name) != NULL;
}

static bool host_path_like(const char *s)
{
	return s[0] == '/' || s[0] == '.' || s[0] == '~';
}

/* ---- volumes ---- */

static int mount_source(struct spec_builder *b, struct mount *m, const struct ynode *at,
			const char *where, const char *src, bool bind)
{
	if (bind || host_path_like(src)) {
		m->type = MOUNT_BIND;
		m->source = spb_host_path(b, src);
		if (!m->source)
			return cp_error_at(b->err, EXIT_USAGE, &at->mark,
					   "%sbind source \"%s\" escapes /", where, src);
		return 0;
	}
	if (!volume_declared(b, src))
		return undeclared_volume(b, at, where, src);
	m->type = MOUNT_VOLUME;
	m->source = xstrdup(src);
	return 0;
}

static int mount_target(struct spec_builder *b, struct mount *m, const struct ynode *at,
			const char *where, const char *target)
{
	if (target[0] != '/')
		return cp_error_at(b->err, EXIT_USAGE, &at->mark,
				   "%svolume target \"%s\" must be an absolute path", where,
				   target);
	m->target = path_normalize(target);
	if (!m->target)
		return cp_error_at(b->err, EXIT_USAGE, &at->mark,
				   "%svolume target \"%s\" escapes /", where, target);
	return 0;
}

static int mount_short(struct spec_builder *b, struct mount *m, const struct ynode *it,
		       const char *where)
{
	char *parts[3] = {NULL, NULL, NULL};
	size_t n = 0;
	int rc = -1;
	const char *p = it->str;
	for (;;) {
		const char *c = strchr(p, ':');
		if (n == 3) {
			cp_error_at(b->err, EXIT_USAGE, &it->mark,
				    "%svolume \"%s\": expected SOURCE:TARGET[:MODE]", where,
				    it->str);
			goto out;
		}
		parts[n++] = c ? xstrndup(p, (size_t)(c - p)) : xstrdup(p);
		if (!c)
			break;
		p = c + 1;
	}
	if (n == 1) {
		m->type = MOUNT_TMPFS;
		rc = mount_target(b, m, it, where, parts[0]);
		goto out;
	}
	if (!*parts[0]) {
		cp_error_at(b->err, EXIT_USAGE, &it->mark, "%svolume \"%s\": empty source", where,
			    it->str);
		goto out;
	}
	if (mount_source(b, m, it, where, parts[0], false) < 0 ||
	    mount_target(b, m, it, where, parts[1]) < 0)
		goto out;
	for (char *opt = n == 3 ? parts[2] : NULL; opt && *opt;) {
		char *comma = strchr(opt, ',');
		if (comma)
			*comma = '\0';
		if (!strcmp(opt, "ro")) {
			m->read_only = true;
		} else if (!strcmp(opt, "rw")) {
			m->read_only = false;
		} else if (strcmp(opt, "z") && strcmp(opt, "Z") && strcmp(opt, "cached") &&
			   strcmp(opt, "delegated") && strcmp(opt, "consistent") &&
			   strcmp(opt, "nocopy")) {
			cp_error_at(b->err, EXIT_USAGE, &it->mark,
				    "%svolume \"%s\": unknown mode \"%s\" (use ro or rw)", where,
				    it->str, opt);
			goto out;
		}
		opt = comma ? comma + 1 : NULL;
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(parts[i]);
	return rc;
}

static int mount_long(struct spec_builder *b, struct mount *m, const struct ynode *it,
		      const char *where)
{
	static const char *const keys[] = {"type",   "source", "target",     "read_only",
					   "bind",   "volume", "tmpfs",      "consistency"};
	cleanup_free char *w = xasprintf("%svolumes: ", where);
	cleanup_free char *type = NULL, *source = NULL, *target = NULL;
	if (spb_check_keys(b, it, w, keys, ARRAY_LEN(keys)) < 0)
		return -1;
	const struct ynode *n;
	if (((n = ymap_get(it, "type")) && spb_string(b, n, w, "type", &type) < 0) ||
	    ((n = ymap_get(it, "source")) && spb_string(b, n, w, "source", &source) < 0) ||
	    ((n = ymap_get(it, "target")) && spb_string(b, n, w, "target", &target) < 0) ||
	    ((n = ymap_get(it, "read_only")) && spb_bool(b, n, w, "read_only", &m->read_only) < 0))
		return -1;
	if (!target)
		return cp_error_at(b->err, EXIT_USAGE, &it->mark, "%s\"target\" is required", w);
	if (!type)
		type = xstrdup(!source ? "tmpfs" : host_path_like(source) ? "bind" : "volume");
	if (!strcmp(type, "tmpfs") || (!strcmp(type, "volume") && !source)) {
		m->type = MOUNT_TMPFS;
	} else if (!strcmp(type, "volume") || !strcmp(type, "bind")) {
		if (!source)
			return cp_error_at(b->err, EXIT_USAGE, &it->mark,
					   "%sa bind mount needs \"source\"", w);
		if (mount_source(b, m, it, w, source, !strcmp(type, "bind")) < 0)
			return -1;
	} else {
		return cp_error_at(b->err, EXIT_USAGE, &ymap_get(it, "type")->mark,
				   "%stype \"%s\" is not volume, bind or tmpfs", w, type);
	}
	return mount_target(b, m, ymap_get(it, "target"), w, target);
}

int spb_mounts(struct spec_builder *b, struct stage *st, const struct ynode *v,
			const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_SEQ)
		return spb_type_error(b, v, where, "volumes", "a list");
	st->mounts = xcalloc(v->nitems + 1, sizeof(*st->mounts));
	for (size_t i = 0; i < v->nitems; i++) {
		const struct ynode *it = v->items[i];
		struct mount *m = &st->mounts[st->nmounts++];
		m->mark = it->mark;
		int rc;
		if (it->kind == YNODE_SCALAR && !ynode_is_null(it))
			rc = mount_short(b, m, it, where);
		else if (it->kind == YNODE_MAP)
			rc = mount_long(b, m, it, where);
		else
			rc = cp_error_at(b->err, EXIT_USAGE, &it->mark,
					 "%skey \"volumes\": entries must be strings or mappings, "
					 "got %s",
					 where, ynode_kind_name(it));
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* ---- ports, artifacts ---- */

int spb_ports(struct spec_builder *b, struct stage *st, const struct ynode *v,
		       const char *where)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_SEQ)
		return spb_type_error(b, v, where, "ports", "a list");
	st->ports = xcalloc(v->nitems + 1, sizeof(*st->ports));
	for (size_t i = 0; i < v->nitems; i++)
		if (spec_parse_port(&st->ports[st->nports++], v->items[i], st->name, b->err) < 0)
			return -1;
	return 0;
}

static int artifact(struct spec_builder *b, struct artifact_ref *r, const struct ynode *it,
		    const char *where, const char *key)
{
	r->mark = it->mark;
	if (it->kind != YNODE_SCALAR || ynode_is_null(it))
		return cp_error_at(
		    b->err, EXIT_USAGE, &it->mark,
		    "%skey \"%s\": entries must be \"VOLUME:/path\" or a path, got %s", where, key,
		    ynode_kind_name(it));
	const char *s = it->str;
	const char *colon = strchr(s, ':');
	if (host_path_like(s) || !colon) {
		r->path = spb_host_path(b, s);
		if (!r->path)
			return cp_error_at(b->err, EXIT_USAGE, &it->mark, "%s%s \"%s\" escapes /",
					   where, key, s);
		return 0;
	}
	r->volume = xstrndup(s, (size_t)(colon - s));
	if (!volume_declared(b, r->volume))
		return undeclared_volume(b, it, where, r->volume);
	const char *path = colon + 1;
	cleanup_free char *abs = path[0] == '/' ? xstrdup(path) : xasprintf("/%s", path);
	r->path = path_normalize(abs);
	if (!r->path)
		return cp_error_at(b->err, EXIT_USAGE, &it->mark,
				   "%s%s \"%s\": path escapes volume \"%s\"", where, key, s,
				   r->volume);
	return 0;
}

int spb_artifacts(struct spec_builder *b, const struct ynode *v, const char *where,
			   const char *key, struct artifact_ref **out, size_t *n)
{
	if (ynode_is_null(v))
		return 0;
	if (v->kind != YNODE_SEQ)
		return spb_type_error(b, v, where, key, "a list");
	*out = xcalloc(v->nitems + 1, sizeof(**out));
	for (size_t i = 0; i < v->nitems; i++) {
		(*n)++;
		if (artifact(b, &(*out)[i], v->items[i], where, key) < 0)
			return -1;
	}
	return 0;
}


/* ---- host ports published twice ---- */

struct published {
	const struct port *port;
	size_t stage;
	const char *ip; /* the address bound: host_ip, else the default */
};

static int cmp_published(const void *x, const void *y)
{
	const struct published *a = x, *b = y;
	int c = strcmp(a->port->protocol, b->port->protocol);
	if (c)
		return c;
	return (a->port->host_port > b->port->host_port) -
	       (a->port->host_port < b->port->host_port);
}

static bool is_wildcard(const char *ip)
{
	return !strcmp(ip, "0.0.0.0") || !strcmp(ip, "::");
}

/* Whether a was written before b in the spec. */
static bool written_before(const struct published *a, const struct published *b)
{
	return a->stage != b->stage ? a->stage < b->stage : a->port < b->port;
}

int spb_check_ports(struct spec_builder *b)
{
	const struct pipeline *p = b->p;
	size_t n = 0, cap = 0;
	struct published *v = NULL;
	for (size_t i = 0; i < p->nstages; i++) {
		for (size_t k = 0; k < p->stages[i].nports; k++) {
			const struct port *pt = &p->stages[i].ports[k];
			if (!pt->host_port)
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 16;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[n++] = (struct published){pt, i,
						    pt->host_ip ? pt->host_ip : CP_DEFAULT_HOST_IP};
		}
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_published);
	/* Sorted by (protocol, first port), a clash is with an entry before
	 * whose range reaches this one's first port; reach[j] is the highest
	 * last port of v[group start .. j], so the scan back stops early. */
	int *reach = xcalloc(n + 1, sizeof(*reach));
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct published *c = &v[i];
		bool same_group = i && !strcmp(v[i - 1].port->protocol, c->port->protocol);
		reach[i] = c->port->host_port_end;
		if (same_group && reach[i - 1] > reach[i])
			reach[i] = reach[i - 1];
		for (size_t j = i; same_group && j-- > 0;) {
			const struct published *a = &v[j];
			if (strcmp(a->port->protocol, c->port->protocol) != 0 ||
			    reach[j] < c->port->host_port)
				break;
			if (a->port->host_port_end < c->port->host_port ||
			    (strcmp(a->ip, c->ip) && !is_wildcard(a->ip) && !is_wildcard(c->ip)))
				continue;
			const struct published *first = written_before(a, c) ? a : c;
			const struct published *again = first == a ? c : a;
			const struct cp_mark *fm = &first->port->mark;
			rc = cp_error_at(
			    b->err, EXIT_USAGE, &again->port->mark,
			    "stage \"%s\": host port %d/%s on %s is already published by "
			    "stage \"%s\" (%s:%d:%d); two stages cannot bind one host port",
			    p->stages[again->stage].name, c->port->host_port, c->port->protocol,
			    c->ip, p->stages[first->stage].name, fm->file, fm->line, fm->col);
			break;
		}
	}
	free(reach);
	free(v);
	return rc;
}
