#include "emit.h"
#include "spec_compose.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static const char *const condition_names[] = {
	[DEP_COMPLETED_SUCCESSFULLY] = "service_completed_successfully",
	[DEP_STARTED] = "service_started",
	[DEP_HEALTHY] = "service_healthy",
};

char *emit_artifact_ref(const struct artifact_ref *a)
{
	if (a->volume)
		return xasprintf("%s:%s", a->volume, a->path);
	return xstrdup(a->path);
}

static cJSON *strvec_json(const struct strvec *sv)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < sv->n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(sv->v[i]));
	return arr;
}

static cJSON *kvvec_json(const struct kvvec *kv)
{
	cJSON *obj = cJSON_CreateObject();
	for (size_t i = 0; i < kv->n; i++)
		cJSON_AddItemToObject(obj, kv->v[i].key,
				      kv->v[i].value ? cJSON_CreateString(kv->v[i].value)
						     : cJSON_CreateNull());
	return obj;
}

static cJSON *refs_json(const struct artifact_ref *refs, size_t n)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *ref = emit_artifact_ref(&refs[i]);
		cJSON_AddItemToArray(arr, cJSON_CreateString(ref));
	}
	return arr;
}

static cJSON *mount_json(const struct mount *m)
{
	static const char *const types[] = {"volume", "bind", "tmpfs"};
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", types[m->type]);
	if (m->source)
		cJSON_AddStringToObject(o, "source", m->source);
	cJSON_AddStringToObject(o, "target", m->target);
	cJSON_AddBoolToObject(o, "read_only", m->read_only);
	return o;
}

static cJSON *port_json(const struct port *pt)
{
	cJSON *o = cJSON_CreateObject();
	cleanup_free char *target =
		pt->container_port_end != pt->container_port
			? xasprintf("%d-%d", pt->container_port, pt->container_port_end)
			: xasprintf("%d", pt->container_port);
	cJSON_AddStringToObject(o, "target", target);
	if (pt->host_port) {
		cleanup_free char *pub =
			pt->host_port_end != pt->host_port
				? xasprintf("%d-%d", pt->host_port, pt->host_port_end)
				: xasprintf("%d", pt->host_port);
		cJSON_AddStringToObject(o, "published", pub);
	}
	cJSON_AddStringToObject(o, "host_ip", pt->host_ip ? pt->host_ip : CP_DEFAULT_HOST_IP);
	cJSON_AddStringToObject(o, "protocol", pt->protocol ? pt->protocol : "tcp");
	return o;
}

static void add_duration(cJSON *o, const char *key, long ms)
{
	cleanup_free char *text = ms % 1000 ? xasprintf("%ldms", ms) : xasprintf("%lds", ms / 1000);
	cJSON_AddStringToObject(o, key, text);
}

static cJSON *healthcheck_json(const struct healthcheck *h)
{
	cJSON *o = cJSON_CreateObject();
	if (h->test.n)
		cJSON_AddItemToObject(o, "test", strvec_json(&h->test));
	if (h->http)
		cJSON_AddStringToObject(o, "http", h->http);
	add_duration(o, "interval", h->interval_ms);
	add_duration(o, "timeout", h->timeout_ms);
	add_duration(o, "start_period", h->start_period_ms);
	cJSON_AddNumberToObject(o, "retries", h->retries);
	if (h->disable)
		cJSON_AddBoolToObject(o, "disable", true);
	return o;
}

static cJSON *stage_json(const struct stage *s)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "service", s->service);
	if (s->image)
		cJSON_AddStringToObject(o, "image", s->image);
	if (s->build) {
		cJSON *b = cJSON_AddObjectToObject(o, "build");
		cJSON_AddStringToObject(b, "context", s->build->context);
		cJSON_AddStringToObject(b, "dockerfile",
					s->build->dockerfile ? s->build->dockerfile : "Dockerfile");
		if (s->build->target)
			cJSON_AddStringToObject(b, "target", s->build->target);
		if (s->build->args.n)
			cJSON_AddItemToObject(b, "args", kvvec_json(&s->build->args));
	}
	if (s->has_entrypoint)
		cJSON_AddItemToObject(o, "entrypoint", strvec_json(&s->entrypoint));
	if (s->has_command)
		cJSON_AddItemToObject(o, "command", strvec_json(&s->command));
	if (s->environment.n)
		cJSON_AddItemToObject(o, "environment", kvvec_json(&s->environment));
	if (s->working_dir)
		cJSON_AddStringToObject(o, "working_dir", s->working_dir);
	if (s->user)
		cJSON_AddStringToObject(o, "user", s->user);
	if (s->nmounts) {
		cJSON *arr = cJSON_AddArrayToObject(o, "volumes");
		for (size_t i = 0; i < s->nmounts; i++)
			cJSON_AddItemToArray(arr, mount_json(&s->mounts[i]));
	}
	if (s->nports) {
		cJSON *arr = cJSON_AddArrayToObject(o, "ports");
		for (size_t i = 0; i < s->nports; i++)
			cJSON_AddItemToArray(arr, port_json(&s->ports[i]));
	}
	/* Edges cpipe derived from inputs/outputs are listed apart, under an
	 * x- key, so the printed spec loads again unchanged. */
	cJSON *deps = NULL, *implicit = NULL;
	for (size_t i = 0; i < s->ndeps; i++) {
		if (s->deps[i].implicit) {
			if (!implicit)
				implicit = cJSON_CreateArray();
			cJSON_AddItemToArray(implicit, cJSON_CreateString(s->deps[i].stage));
			continue;
		}
		if (!deps)
			deps = cJSON_AddObjectToObject(o, "depends_on");
		cJSON *d = cJSON_AddObjectToObject(deps, s->deps[i].stage);
		cJSON_AddStringToObject(d, "condition", condition_names[s->deps[i].condition]);
	}
	if (implicit)
		cJSON_AddItemToObject(o, "x-depends-on-inputs", implicit);
	if (s->healthcheck)
		cJSON_AddItemToObject(o, "healthcheck", healthcheck_json(s->healthcheck));
	if (s->params.n)
		cJSON_AddItemToObject(o, "params", kvvec_json(&s->params));
	if (s->ninputs)
		cJSON_AddItemToObject(o, "inputs", refs_json(s->inputs, s->ninputs));
	if (s->noutputs)
		cJSON_AddItemToObject(o, "outputs", refs_json(s->outputs, s->noutputs));
	if (s->nmetrics)
		cJSON_AddItemToObject(o, "metrics", refs_json(s->metrics, s->nmetrics));
	if (s->profiles.n)
		cJSON_AddItemToObject(o, "profiles", strvec_json(&s->profiles));
	if (s->labels.n)
		cJSON_AddItemToObject(o, "labels", kvvec_json(&s->labels));
	if (s->gpus.n)
		cJSON_AddItemToObject(o, "gpus", strvec_json(&s->gpus));
	add_duration(o, "stop_grace_period", s->stop_grace_ms);
	spec_compose_emit(o, s);
	return o;
}

static void mask_named(cJSON *map)
{
	for (cJSON *e = map ? map->child : NULL; e; e = e->next)
		if (cJSON_IsString(e) && env_name_is_secret(e->string))
			cJSON_SetValuestring(e, REDACTED);
}

void emit_redact(cJSON *doc, const struct pipeline *p)
{
	const cJSON *stages = cJSON_GetObjectItem(doc, "stages");
	for (const cJSON *s = stages ? stages->child : NULL; s; s = s->next) {
		mask_named(cJSON_GetObjectItem(s, "environment"));
		mask_named(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "build"), "args"));
	}
	redactor_json(&p->secrets, doc);
}

cJSON *emit_spec_json(const struct pipeline *p)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "name", p->name);
	if (p->runtime)
		cJSON_AddStringToObject(doc, "runtime", p->runtime);
	cJSON *vols = cJSON_AddObjectToObject(doc, "volumes");
	for (size_t i = 0; i < p->nvolumes; i++) {
		const struct volume *v = &p->volumes[i];
		cJSON *o = cJSON_AddObjectToObject(vols, v->name);
		if (v->ext_name)
			cJSON_AddStringToObject(o, "name", v->ext_name);
		if (v->external)
			cJSON_AddBoolToObject(o, "external", true);
		if (v->driver)
			cJSON_AddStringToObject(o, "driver", v->driver);
		if (v->labels.n)
			cJSON_AddItemToObject(o, "labels", kvvec_json(&v->labels));
	}
	cJSON *stages = cJSON_AddObjectToObject(doc, "stages");
	for (size_t i = 0; i < p->nstages; i++)
		cJSON_AddItemToObject(stages, p->stages[i].name, stage_json(&p->stages[i]));
	spec_compose_emit_top(doc, p);
	return doc;
}

/* Strings a YAML reader would take for another type must be quoted. */
static bool needs_quotes(const char *s)
{
	static const char *const special[] = {"true", "false", "yes", "no", "on", "off",
					      "null", "~", "True", "False", "Yes", "No",
					      "On", "Off", "Null", "NULL", "TRUE", "FALSE"};
	if (!*s)
		return true;
	for (size_t i = 0; i < ARRAY_LEN(special); i++)
		if (strcmp(s, special[i]) == 0)
			return true;
	char *end;
	strtod(s, &end);
	return *end == '\0';
}

static int emit_event(yaml_emitter_t *em, yaml_event_t *ev, struct cp_error *err)
{
	if (!yaml_emitter_emit(em, ev))
		return cp_error_set(err, EXIT_USAGE, "writing YAML: %s",
				    em->problem ? em->problem : "emitter error");
	return 0;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, bool quoted, struct cp_error *err)
{
	yaml_event_t ev;
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), !quoted, 1,
				     quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
	return emit_event(em, &ev, err);
}

static int emit_node(yaml_emitter_t *em, const cJSON *n, struct cp_error *err)
{
	yaml_event_t ev;
	if (cJSON_IsObject(n)) {
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if (emit_event(em, &ev, err) < 0)
			return -1;
		for (const cJSON *c = n->child; c; c = c->next)
			if (emit_scalar(em, c->string, needs_quotes(c->string), err) < 0 ||
			    emit_node(em, c, err) < 0)
				return -1;
		yaml_mapping_end_event_initialize(&ev);
		return emit_event(em, &ev, err);
	}
	if (cJSON_IsArray(n)) {
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
		if (emit_event(em, &ev, err) < 0)
			return -1;
		for (const cJSON *c = n->child; c; c = c->next)
			if (emit_node(em, c, err) < 0)
				return -1;
		yaml_sequence_end_event_initialize(&ev);
		return emit_event(em, &ev, err);
	}
	if (cJSON_IsString(n))
		return emit_scalar(em, n->valuestring, needs_quotes(n->valuestring), err);
	if (cJSON_IsBool(n))
		return emit_scalar(em, cJSON_IsTrue(n) ? "true" : "false", false, err);
	if (cJSON_IsNumber(n)) {
		char buf[64];
		snprintf(buf, sizeof(buf), "%.17g", n->valuedouble);
		return emit_scalar(em, buf, false, err);
	}
	return emit_scalar(em, "null", false, err);
}

int emit_yaml(FILE *out, const cJSON *doc, struct cp_error *err)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	if (!yaml_emitter_initialize(&em))
		return cp_error_set(err, EXIT_USAGE, "cannot initialize the YAML emitter");
	yaml_emitter_set_output_file(&em, out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	int rc = -1;
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	if (emit_event(&em, &ev, err) < 0)
		goto out;
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	if (emit_event(&em, &ev, err) < 0 || emit_node(&em, doc, err) < 0)
		goto out;
	yaml_document_end_event_initialize(&ev, 1);
	if (emit_event(&em, &ev, err) < 0)
		goto out;
	yaml_stream_end_event_initialize(&ev);
	if (emit_event(&em, &ev, err) < 0)
		goto out;
	rc = 0;
out:
	yaml_emitter_delete(&em);
	return rc;
}

static void dot_quote(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

int emit_graph(FILE *out, const struct pipeline *p, const char *format, struct cp_error *err)
{
	bool dot = strcmp(format, "dot") == 0;
	if (!dot && strcmp(format, "mermaid") != 0)
		return cp_error_set(err, EXIT_USAGE,
				    "unknown graph format \"%s\"; use dot or mermaid", format);
	if (dot) {
		fprintf(out, "digraph ");
		dot_quote(out, p->name);
		fprintf(out, " {\n  rankdir=LR;\n");
		for (size_t i = 0; i < p->nstages; i++) {
			fputs("  ", out);
			dot_quote(out, p->stages[i].name);
			fputs(p->stages[i].service ? " [shape=box, style=rounded];\n"
						   : " [shape=box];\n",
			      out);
		}
	} else {
		fprintf(out, "flowchart LR\n");
		for (size_t i = 0; i < p->nstages; i++)
			fprintf(out, p->stages[i].service ? "  s%zu([%s])\n" : "  s%zu[%s]\n", i,
				p->stages[i].name);
	}
	for (size_t i = 0; i < p->nstages; i++) {
		const struct stage *s = &p->stages[i];
		for (size_t d = 0; d < s->ndeps; d++) {
			const char *label = s->deps[d].implicit ? "inputs"
					    : s->deps[d].condition == DEP_COMPLETED_SUCCESSFULLY
						    ? NULL
						    : condition_names[s->deps[d].condition] + 8;
			if (dot) {
				fputs("  ", out);
				dot_quote(out, s->deps[d].stage);
				fputs(" -> ", out);
				dot_quote(out, s->name);
				if (label)
					fprintf(out, " [label=\"%s\"]", label);
				fputs(";\n", out);
			} else {
				size_t j = 0;
				while (j < p->nstages && strcmp(p->stages[j].name, s->deps[d].stage))
					j++;
				if (label)
					fprintf(out, "  s%zu -->|%s| s%zu\n", j, label, i);
				else
					fprintf(out, "  s%zu --> s%zu\n", j, i);
			}
		}
	}
	if (dot)
		fputs("}\n", out);
	return 0;
}
