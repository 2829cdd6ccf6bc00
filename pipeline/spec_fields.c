/* Value parsers of the spec loader that need no loader state: ports and
 * durations. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "spec_internal.h"

/* "8000" or "8000-8001"; empty → 0..0. Returns -1 on a bad number. */
static int port_range(const char *s, size_t n, int *lo, int *hi)
{
	*lo = *hi = 0;
	if (n == 0)
		return 0;
	const char *dash = memchr(s, '-', n);
	size_t n1 = dash ? (size_t)(dash - s) : n;
	long v[2] = {0, 0};
	const char *parts[2] = {s, dash ? dash + 1 : NULL};
	size_t lens[2] = {n1, dash ? n - n1 - 1 : 0};
	for (int i = 0; i < (dash ? 2 : 1); i++) {
		if (lens[i] == 0 || lens[i] > 5)
			return -1;
		for (size_t j = 0; j < lens[i]; j++) {
			if (parts[i][j] < '0' || parts[i][j] > '9')
				return -1;
			v[i] = v[i] * 10 + (parts[i][j] - '0');
		}
		if (v[i] < 1 || v[i] > 65535)
			return -1;
	}
	*lo = (int)v[0];
	*hi = dash ? (int)v[1] : (int)v[0];
	return *lo <= *hi ? 0 : -1;
}

static int port_short(struct port *out, const char *text, const struct ynode *v,
		      const char *stage, struct cp_error *err)
{
	cleanup_free char *s = xstrdup(text);
	const char *proto = "tcp";
	char *slash = strchr(s, '/');
	if (slash) {
		*slash = '\0';
		proto = slash + 1;
	}
	if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
		return cp_error_at(err, EXIT_USAGE, &v->mark,
				   "stage \"%s\": port \"%s\": protocol must be tcp or udp", stage,
				   text);
	char *cont = strrchr(s, ':');
	const char *host = "", *ip = NULL;
	if (cont) {
		*cont++ = '\0';
		char *hp = strrchr(s, ':');
		if (hp) {
			*hp++ = '\0';
			host = hp;
			ip = s;
		} else {
			host = s;
		}
	} else {
		cont = s;
	}
	if (port_range(cont, strlen(cont), &out->container_port, &out->container_port_end) < 0 ||
	    out->container_port == 0 ||
	    port_range(host, strlen(host), &out->host_port, &out->host_port_end) < 0)
		return cp_error_at(err, EXIT_USAGE, &v->mark,
				   "stage \"%s\": port \"%s\": ports must be numbers or ranges "
				   "between 1 and 65535",
				   stage, text);
	if (out->host_port &&
	    out->host_port_end - out->host_port != out->container_port_end - out->container_port)
		return cp_error_at(err, EXIT_USAGE, &v->mark,
				   "stage \"%s\": port \"%s\": host and container ranges differ in "
				   "length",
				   stage, text);
	if (ip && *ip) {
		size_t n = strlen(ip);
		if (ip[0] == '[' && n > 1 && ip[n - 1] == ']')
			out->host_ip = xstrndup(ip + 1, n - 2);
		else
			out->host_ip = xstrdup(ip);
		unsigned char addr[sizeof(struct in6_addr)];
		if (inet_pton(AF_INET, out->host_ip, addr) != 1 &&
		    inet_pton(AF_INET6, out->host_ip, addr) != 1)
			return cp_error_at(
			    err, EXIT_USAGE, &v->mark,
			    "stage \"%s\": port \"%s\": host IP \"%s\" is not an IPv4 "
			    "or IPv6 address",
			    stage, text, out->host_ip);
	}
	out->protocol = xstrdup(proto);
	return 0;
}

static const char *scalar_or_null(const struct ynode *v)
{
	return v && v->kind == YNODE_SCALAR && !ynode_is_null(v) ? v->str : NULL;
}

static int port_long(struct port *out, const struct ynode *v, const char *stage,
		     struct cp_error *err)
{
	static const char *const keys[] = {"target",	"published", "host_ip", "protocol",
					   "mode",	"name",	     "app_protocol"};
	for (size_t i = 0; i < v->npairs; i++) {
		const struct ypair *pr = &v->pairs[i];
		bool known = str_has_prefix(pr->key->str, "x-");
		for (size_t k = 0; k < ARRAY_LEN(keys) && !known; k++)
			known = strcmp(pr->key->str, keys[k]) == 0;
		if (!known) {
			const char *near = suggest_nearest(pr->key->str, keys, ARRAY_LEN(keys));
			if (near)
				return cp_error_at(err, EXIT_USAGE, &pr->key->mark,
						   "stage \"%s\": ports: unknown key \"%s\" (did "
						   "you mean \"%s\"?)",
						   stage, pr->key->str, near);
			return cp_error_at(err, EXIT_USAGE, &pr->key->mark,
					   "stage \"%s\": ports: unknown key \"%s\"", stage,
					   pr->key->str);
		}
		if (pr->value->kind != YNODE_SCALAR)
			return cp_error_at(
			    err, EXIT_USAGE, &pr->value->mark,
			    "stage \"%s\": ports: key \"%s\" must be a scalar, got %s", stage,
			    pr->key->str, ynode_kind_name(pr->value));
	}
	const char *target = scalar_or_null(ymap_get(v, "target"));
	const char *published = scalar_or_null(ymap_get(v, "published"));
	const char *ip = scalar_or_null(ymap_get(v, "host_ip"));
	const char *proto = scalar_or_null(ymap_get(v, "protocol"));
	if (!target)
		return cp_error_at(err, EXIT_USAGE, &v->mark,
				   "stage \"%s\": ports: \"target\" is required", stage);
	cleanup_free char *text = xasprintf("%s%s%s%s%s/%s", ip ? ip : "", ip ? ":" : "",
					    published ? published : "",
					    ip || published ? ":" : "", target, proto ? proto : "tcp");
	if (ip && strchr(ip, ':')) {
		free(text);
		text = xasprintf("[%s]:%s:%s/%s", ip, published ? published : "", target,
				 proto ? proto : "tcp");
	}
	return port_short(out, text, v, stage, err);
}

int spec_parse_port(struct port *out, const struct ynode *v, const char *stage,
		    struct cp_error *err)
{
	out->mark = v->mark;
	if (v->kind == YNODE_MAP)
		return port_long(out, v, stage, err);
	if (v->kind != YNODE_SCALAR || ynode_is_null(v))
		return cp_error_at(err, EXIT_USAGE, &v->mark,
				   "stage \"%s\": ports entries must be strings, numbers or "
				   "mappings, got %s",
				   stage, ynode_kind_name(v));
	return port_short(out, v->str, v, stage, err);
}

int spec_parse_duration(long *out, const char *s)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1},
		     {"s", 1000},  {"m", 60000}, {"h", 3600000}};
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	const char *p = s;
	double total = 0;
	if (!*p)
		return -1;
	while (*p) {
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return -1;
		char *end;
		double n = strtod(p, &end);
		if (end == p)
			return -1;
		p = end;
		size_t best = 0;
		double scale = 0;
		for (size_t i = 0; i < ARRAY_LEN(units); i++) {
			size_t l = strlen(units[i].unit);
			if (l > best && strncmp(p, units[i].unit, l) == 0) {
				best = l;
				scale = units[i].ms;
			}
		}
		if (!best)
			return -1;
		p += best;
		total += n * scale;
		if (total > 1e15)
			return -1;
	}
	*out = (long)total;
	return 0;
}
