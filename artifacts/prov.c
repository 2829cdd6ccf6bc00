/* W3C PROV-JSON (https://www.w3.org/Submission/prov-json/) of one run
 * record. Declared in lineage.h. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "lineage.h"

static const char *str_of(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
}

/* An artifact's name: its key, or "artifact" in records that list inputs
 * as an array. */
static const char *art_name(const cJSON *e)
{
	return e->string ? e->string : str_of(e, "artifact");
}

/* `s` made a valid NCName local part (as XML and PROV-N both accept):
 * letters, digits, '.', '-', '_' kept, anything else '_', and a leading
 * '_' when it would not start with a letter or '_'. Caller owns. */
static char *ncname(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	if (!isalpha((unsigned char)*s) && *s != '_')
		sb_addc(&sb, '_');
	for (const char *c = s; *c; c++)
		sb_addc(&sb, isalnum((unsigned char)*c) || strchr(".-_", *c) ? *c : '_');
	return sb_detach(&sb);
}

/* A typed value: {"$": value, "type": "prov:QUALIFIED_NAME"}. */
static cJSON *qname_value(const char *qname)
{
	cJSON *v = cJSON_CreateObject();
	cJSON_AddStringToObject(v, "$", qname);
	cJSON_AddStringToObject(v, "type", "prov:QUALIFIED_NAME");
	return v;
}

struct prov {
	cJSON *doc;
	const cJSON *rec;
	const char *cpipe_agent;
	const char *user_agent;
	int next_id[26]; /* per letter, for the blank-node ids of relations */
};

static cJSON *section(struct prov *p, const char *name)
{
	cJSON *s = cJSON_GetObjectItem(p->doc, name);
	return s ? s : cJSON_AddObjectToObject(p->doc, name);
}

/* Adds a relation under a fresh "_:<letter><n>" id and returns its body. */
static cJSON *relation(struct prov *p, const char *kind, char letter)
{
	char id[32];
	snprintf(id, sizeof(id), "_:%c%d", letter, ++p->next_id[letter - 'a']);
	return cJSON_AddObjectToObject(section(p, kind), id);
}

/* The entity id of an artifact entry, declaring the entity on first use;
 * NULL when the entry has no valid digest (a missing input). Caller owns. */
static char *entity(struct prov *p, const char *name, const cJSON *entry)
{
	const char *d = str_of(entry, "digest");
	if (!d || !digest_is_valid(d))
		return NULL;
	char *id = xasprintf("art:sha256-%s", d + strlen(DIGEST_PREFIX));
	cJSON *ents = section(p, "entity");
	cJSON *e = cJSON_GetObjectItem(ents, id);
	if (!e) {
		e = cJSON_AddObjectToObject(ents, id);
		cJSON_AddStringToObject(e, "prov:label", name);
		cJSON_AddStringToObject(e, "cpipe:digest", d);
		const cJSON *size = cJSON_GetObjectItem(entry, "size");
		if (cJSON_IsNumber(size))
			cJSON_AddNumberToObject(e, "cpipe:size", size->valuedouble);
		const cJSON *files = cJSON_GetObjectItem(entry, "files");
		if (cJSON_IsNumber(files))
			cJSON_AddNumberToObject(e, "cpipe:files", files->valuedouble);
		return id;
	}
	/* Same content under another name: PROV allows several labels. */
	cJSON *label = cJSON_GetObjectItem(e, "prov:label");
	if (cJSON_IsString(label)) {
		if (strcmp(label->valuestring, name) == 0)
			return id;
		cJSON *arr = cJSON_CreateArray();
		cJSON_AddItemToArray(arr, cJSON_CreateString(label->valuestring));
		cJSON_ReplaceItemInObject(e, "prov:label", arr);
		label = arr;
	}
	for (const cJSON *l = label ? label->child : NULL; l; l = l->next)
		if (strcmp(l->valuestring, name) == 0)
			return id;
	cJSON_AddItemToArray(label, cJSON_CreateString(name));
	return id;
}

static void add_agents(struct prov *p)
{
	cJSON *agents = section(p, "agent");
	const char *version = str_of(p->rec, "cpipe_version");
	cleanup_free char *vname = ncname(version ? version : "unknown");
	cleanup_free char *cid = xasprintf("cpipe:cpipe-%s", vname + (vname[0] == '_'));
	cJSON *a = cJSON_AddObjectToObject(agents, cid);
	cJSON_AddItemToObject(a, "prov:type", qname_value("prov:SoftwareAgent"));
	cleanup_free char *label = xasprintf("cpipe %s", version ? version : "");
	cJSON_AddStringToObject(a, "prov:label", label);
	if (version)
		cJSON_AddStringToObject(a, "cpipe:version", version);
	const char *runtime = str_of(p->rec, "runtime");
	if (runtime)
		cJSON_AddStringToObject(a, "cpipe:runtime", runtime);

	const char *user = str_of(p->rec, "user");
	cleanup_free char *uname = ncname(user ? user : "unknown");
	cleanup_free char *uid = xasprintf("cpipe:user-%s", uname + (uname[0] == '_'));
	cJSON *u = cJSON_AddObjectToObject(agents, uid);
	cJSON_AddItemToObject(u, "prov:type", qname_value("prov:Person"));
	cJSON_AddStringToObject(u, "prov:label", user ? user : "unknown");
	const char *host = str_of(p->rec, "host");
	if (host)
		cJSON_AddStringToObject(u, "cpipe:host", host);

	cJSON *d = relation(p, "actedOnBehalfOf", 'b');
	cJSON_AddStringToObject(d, "prov:delegate", cid);
	cJSON_AddStringToObject(d, "prov:responsible", uid);
	p->cpipe_agent = cJSON_GetObjectItem(agents, cid)->string;
	p->user_agent = cJSON_GetObjectItem(agents, uid)->string;
}

/* The activity id of a stage, unique within the document. Caller owns. */
static char *activity_id(struct prov *p, const char *stage)
{
	cleanup_free char *local = ncname(stage);
	char *id = xasprintf("run:%s", local);
	for (int n = 2; cJSON_GetObjectItem(section(p, "activity"), id); n++) {
		free(id);
		id = xasprintf("run:%s-%d", local, n);
	}
	return id;
}

static void add_activity(struct prov *p, const cJSON *st)
{
	const char *name = str_of(st, "name"), *status = str_of(st, "status");
	if (!name || !status || strcmp(status, "not-run") == 0)
		return;
	bool skipped = strcmp(status, "skipped") == 0;
	cleanup_free char *id = activity_id(p, name);
	cJSON *a = cJSON_AddObjectToObject(section(p, "activity"), id);
	const char *start = str_of(st, "started"), *end = str_of(st, "ended");
	if (start)
		cJSON_AddStringToObject(a, "prov:startTime", start);
	if (end)
		cJSON_AddStringToObject(a, "prov:endTime", end);
	cJSON_AddStringToObject(a, "prov:label", name);
	cJSON_AddStringToObject(a, "cpipe:status", status);
	if (str_of(st, "key"))
		cJSON_AddStringToObject(a, "cpipe:key", str_of(st, "key"));
	if (str_of(st, "reused_from"))
		cJSON_AddStringToObject(a, "cpipe:reusedFrom", str_of(st, "reused_from"));
	const cJSON *code = cJSON_GetObjectItem(st, "exit_code");
	if (cJSON_IsNumber(code))
		cJSON_AddNumberToObject(a, "cpipe:exitCode", code->valuedouble);
	const char *image = str_of(cJSON_GetObjectItem(st, "image"), "digest");
	if (image)
		cJSON_AddStringToObject(a, "cpipe:image", image);
	const char *commit = str_of(cJSON_GetObjectItem(p->rec, "git"), "commit");
	if (commit)
		cJSON_AddStringToObject(a, "cpipe:gitCommit", commit);

	const char *agents[] = {p->cpipe_agent, p->user_agent};
	for (size_t i = 0; i < ARRAY_LEN(agents); i++) {
		cJSON *w = relation(p, "wasAssociatedWith", 'a');
		cJSON_AddStringToObject(w, "prov:activity", id);
		cJSON_AddStringToObject(w, "prov:agent", agents[i]);
	}

	struct strvec used = {0}, made = {0};
	const cJSON *in = cJSON_GetObjectItem(st, "inputs");
	for (const cJSON *e = in ? in->child : NULL; e; e = e->next) {
		char *eid = art_name(e) ? entity(p, art_name(e), e) : NULL;
		if (!eid)
			continue;
		cJSON *u = relation(p, "used", 'u');
		cJSON_AddStringToObject(u, "prov:activity", id);
		cJSON_AddStringToObject(u, "prov:entity", eid);
		if (start && !skipped)
			cJSON_AddStringToObject(u, "prov:time", start);
		strvec_push_take(&used, eid);
	}
	static const char *const parts[] = {"outputs", "metrics"};
	for (size_t k = 0; k < ARRAY_LEN(parts); k++) {
		const cJSON *out = cJSON_GetObjectItem(st, parts[k]);
		for (const cJSON *e = out ? out->child : NULL; e; e = e->next) {
			char *eid = art_name(e) ? entity(p, art_name(e), e) : NULL;
			if (!eid)
				continue;
			cJSON *g = relation(p, "wasGeneratedBy", 'g');
			cJSON_AddStringToObject(g, "prov:entity", eid);
			cJSON_AddStringToObject(g, "prov:activity", id);
			if (skipped)
				/* Made by the run it was reused from; this run vouches
				 * for it through the unchanged cache key. */
				cJSON_AddBoolToObject(g, "cpipe:reused", true);
			else if (end)
				cJSON_AddStringToObject(g, "prov:time", end);
			strvec_push_take(&made, eid);
		}
	}
	for (size_t i = 0; i < made.n; i++)
		for (size_t j = 0; j < used.n; j++) {
			if (strcmp(made.v[i], used.v[j]) == 0)
				continue;
			cJSON *d = relation(p, "wasDerivedFrom", 'd');
			cJSON_AddStringToObject(d, "prov:generatedEntity", made.v[i]);
			cJSON_AddStringToObject(d, "prov:usedEntity", used.v[j]);
			cJSON_AddStringToObject(d, "prov:activity", id);
		}
	strvec_free(&used);
	strvec_free(&made);
}

cJSON *lineage_prov(const cJSON *rec)
{
	struct prov p = {.doc = cJSON_CreateObject(), .rec = rec};
	const char *run = str_of(rec, "id");
	cJSON *prefix = cJSON_AddObjectToObject(p.doc, "prefix");
	cJSON_AddStringToObject(prefix, "cpipe", "urn:cpipe:");
	cJSON_AddStringToObject(prefix, "art", "urn:cpipe:artifact:");
	/* Activities are named by stage under a namespace of their run, so an
	 * id stays a short valid QName and is unique across runs. */
	cleanup_free char *run_ns = xasprintf("urn:cpipe:run:%s:", run ? run : "unknown");
	cJSON_AddStringToObject(prefix, "run", run_ns);
	section(&p, "entity");
	section(&p, "activity");
	add_agents(&p);
	const cJSON *stages = cJSON_GetObjectItem(rec, "stages");
	for (const cJSON *st = stages ? stages->child : NULL; st; st = st->next)
		add_activity(&p, st);
	/* The order of the submission's examples, every section present. */
	static const char *const order[] = {"prefix", "entity", "activity", "agent", "used",
					    "wasGeneratedBy", "wasAssociatedWith",
					    "actedOnBehalfOf", "wasDerivedFrom"};
	cJSON *doc = cJSON_CreateObject();
	for (size_t i = 0; i < ARRAY_LEN(order); i++) {
		cJSON *s = cJSON_DetachItemFromObject(p.doc, order[i]);
		cJSON_AddItemToObject(doc, order[i], s ? s : cJSON_CreateObject());
	}
	cJSON_Delete(p.doc);
	return doc;
}
