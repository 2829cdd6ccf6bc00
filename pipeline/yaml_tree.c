#include "yaml_tree.h"

#include <search.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "../lib/util.h"

/* Height (not depth of the event stack) is capped too: aliases can stack a
 * deep anchored tree below another one. */
#define YTREE_MAX_HEIGHT (4 * YTREE_MAX_DEPTH)

struct anchor {
	char *name;
	const struct ynode *node; /* lent: lives in the tree or the graveyard */
};

struct frame {
	struct ynode *node;
	struct ynode *key; /* mappings: the key waiting for its value */
	char *anchor;
};

struct builder {
	const char *file;
	size_t count; /* nodes so far, aliases expanded */
	size_t bytes; /* scalar bytes so far, aliases expanded */
	void *anchors; /* tsearch tree of struct anchor, by name */
	struct frame stack[YTREE_MAX_DEPTH];
	int depth;
	struct ynode *root;
	/* Merge sources taken out of the tree; anchors may still point there. */
	struct ynode **grave;
	size_t ngrave, capgrave;
	struct cp_error *err;
};

static size_t utf8_chars(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}

static struct ynode *node_new(enum ynode_kind kind, const struct cp_mark *mark)
{
	struct ynode *n = xcalloc(1, sizeof(*n));
	n->kind = kind;
	if (mark)
		n->mark = *mark;
	n->weight = 1;
	return n;
}

struct ynode *ynode_new_scalar(const char *s, const struct cp_mark *mark, bool quoted)
{
	struct ynode *n = node_new(YNODE_SCALAR, mark);
	n->str = xstrdup(s);
	n->bytes = strlen(s);
	n->quoted = quoted;
	return n;
}

struct ynode *ynode_new_map(const struct cp_mark *mark)
{
	return node_new(YNODE_MAP, mark);
}

/* Pushes double the room (cap) so n appends cost O(n). */
static size_t grown(size_t cap)
{
	return cap ? 2 * cap : 4;
}

void yseq_push(struct ynode *seq, struct ynode *item)
{
	if (seq->nitems == seq->cap) {
		seq->cap = grown(seq->cap);
		seq->items = xrealloc(seq->items, seq->cap * sizeof(*seq->items));
	}
	seq->items[seq->nitems++] = item;
	seq->weight += item->weight;
	seq->bytes += item->bytes;
}

void ymap_push(struct ynode *map, struct ynode *key, struct ynode *value)
{
	if (map->npairs == map->cap) {
		map->cap = grown(map->cap);
		map->pairs = xrealloc(map->pairs, map->cap * sizeof(*map->pairs));
	}
	map->pairs[map->npairs].key = key;
	map->pairs[map->npairs].value = value;
	map->npairs++;
	map->weight += key->weight + value->weight;
	map->bytes += key->bytes + value->bytes;
}

void ynode_free(struct ynode *n)
{
	if (!n)
		return;
	free(n->str);
	for (size_t i = 0; i < n->nitems; i++)
		ynode_free(n->items[i]);
	free(n->items);
	for (size_t i = 0; i < n->npairs; i++) {
		ynode_free(n->pairs[i].key);
		ynode_free(n->pairs[i].value);
	}
	free(n->pairs);
	free(n);
}

struct ynode *ynode_copy(const struct ynode *n)
{
	struct ynode *c = xcalloc(1, sizeof(*c));
	c->kind = n->kind;
	c->mark = n->mark;
	c->weight = n->weight;
	c->bytes = n->bytes;
	c->quoted = n->quoted;
	c->exact_col = n->exact_col;
	c->tag = n->tag;
	if (n->str)
		c->str = xstrdup(n->str);
	if (n->nitems) {
		c->items = xmalloc(n->nitems * sizeof(*c->items));
		for (size_t i = 0; i < n->nitems; i++)
			c->items[i] = ynode_copy(n->items[i]);
		c->nitems = c->cap = n->nitems;
	}
	if (n->npairs) {
		c->pairs = xmalloc(n->npairs * sizeof(*c->pairs));
		for (size_t i = 0; i < n->npairs; i++) {
			c->pairs[i].key = ynode_copy(n->pairs[i].key);
			c->pairs[i].value = ynode_copy(n->pairs[i].value);
		}
		c->npairs = c->cap = n->npairs;
	}
	return c;
}

struct ypair *ymap_find(const struct ynode *map, const char *key)
{
	if (!map || map->kind != YNODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->npairs; i++)
		if (strcmp(map->pairs[i].key->str, key) == 0)
			return &map->pairs[i];
	return NULL;
}

struct ynode *ymap_get(const struct ynode *map, const char *key)
{
	struct ypair *p = ymap_find(map, key);
	return p ? p->value : NULL;
}

void ymap_remove(struct ynode *map, size_t i)
{
	map->weight -= map->pairs[i].key->weight + map->pairs[i].value->weight;
	map->bytes -= map->pairs[i].key->bytes + map->pairs[i].value->bytes;
	ynode_free(map->pairs[i].key);
	ynode_free(map->pairs[i].value);
	memmove(&map->pairs[i], &map->pairs[i + 1], (map->npairs - i - 1) * sizeof(*map->pairs));
	map->npairs--;
}

bool ynode_is_null(const struct ynode *n)
{
	if (!n)
		return true;
	if (n->kind != YNODE_SCALAR || n->quoted)
		return false;
	const char *s = n->str;
	return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
	       strcmp(s, "NULL") == 0;
}

bool ynode_equal(const struct ynode *a, const struct ynode *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case YNODE_SCALAR:
		return strcmp(a->str, b->str) == 0;
	case YNODE_SEQ:
		if (a->nitems != b->nitems)
			return false;
		for (size_t i = 0; i < a->nitems; i++)
			if (!ynode_equal(a->items[i], b->items[i]))
				return false;
		return true;
	case YNODE_MAP:
		if (a->npairs != b->npairs)
			return false;
		for (size_t i = 0; i < a->npairs; i++) {
			const struct ynode *v = ymap_get(b, a->pairs[i].key->str);
			if (!v || !ynode_equal(a->pairs[i].value, v))
				return false;
		}
		return true;
	}
	return false;
}

static bool looks_number(const char *s)
{
	const char *p = s;
	if (*p == '+' || *p == '-')
		p++;
	if (strcmp(p, ".inf") == 0 || strcmp(p, ".Inf") == 0 || strcmp(p, ".nan") == 0 ||
	    strcmp(p, ".NaN") == 0)
		return true;
	if (!((*p >= '0' && *p <= '9') || *p == '.'))
		return false;
	char *end;
	if (str_has_prefix(p, "0x") || str_has_prefix(p, "0o")) {
		const char *digits = p + 2;
		strtoull(digits, &end, p[1] == 'x' ? 16 : 8);
		return end != digits && !*end;
	}
	strtod(p, &end);
	return end != p && !*end;
}

const char *ynode_kind_name(const struct ynode *n)
{
	if (!n || ynode_is_null(n))
		return "null";
	if (n->kind == YNODE_MAP)
		return "a mapping";
	if (n->kind == YNODE_SEQ)
		return "a list";
	if (n->quoted)
		return "a string";
	const char *s = n->str;
	if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0 || strcmp(s, "True") == 0 ||
	    strcmp(s, "False") == 0 || strcmp(s, "TRUE") == 0 || strcmp(s, "FALSE") == 0)
		return "a boolean";
	if (looks_number(s))
		return "a number";
	return "a string";
}

static struct cp_mark mark_of(const struct builder *b, yaml_mark_t m)
{
	struct cp_mark mk = {b->file, (int)m.line + 1, (int)m.column + 1};
	return mk;
}

static void grave_push(struct builder *b, struct ynode *n)
{
	if (b->ngrave == b->capgrave) {
		b->capgrave = b->capgrave ? 2 * b->capgrave : 8;
		b->grave = xrealloc(b->grave, b->capgrave * sizeof(*b->grave));
	}
	b->grave[b->ngrave++] = n;
}

/* Adds n nodes and `bytes` of text to the document; past a cap, fails at
 * `mark` naming `what` (an alias, a merge key, a value) and the limit. */
static int count_nodes(struct builder *b, size_t n, size_t bytes, const struct cp_mark *mark,
		       const char *what)
{
	if (n > YTREE_MAX_NODES || b->count + n > YTREE_MAX_NODES)
		return cp_error_at(b->err, EXIT_USAGE, mark,
				   "%s expands the spec past %d YAML nodes, the most cpipe reads "
				   "from one file once aliases and \"<<\" merge keys are expanded; "
				   "use fewer aliases",
				   what, YTREE_MAX_NODES);
	if (bytes > YTREE_MAX_BYTES || b->bytes + bytes > YTREE_MAX_BYTES)
		return cp_error_at(b->err, EXIT_USAGE, mark,
				   "%s expands the spec past %u MiB of text, the most cpipe reads "
				   "from one file once aliases and \"<<\" merge keys are expanded; "
				   "repeat large values less often",
				   what, YTREE_MAX_BYTES >> 20);
	b->count += n;
	b->bytes += bytes;
	return 0;
}

static size_t node_height(const struct ynode *n)
{
	size_t h = 0;
	for (size_t i = 0; i < n->nitems; i++) {
		size_t c = node_height(n->items[i]);
		if (c > h)
			h = c;
	}
	for (size_t i = 0; i < n->npairs; i++) {
		size_t c = node_height(n->pairs[i].value);
		if (c > h)
			h = c;
	}
	return h + 1;
}

static int cmp_anchor(const void *x, const void *y)
{
	return strcmp(((const struct anchor *)x)->name, ((const struct anchor *)y)->name);
}

static void anchor_free(void *a)
{
	free(((struct anchor *)a)->name);
	free(a);
}

/* Takes name. An anchor defined again points at its latest node, as YAML
 * says; lookups are O(log n), so 300,000 aliases to 30,000 anchors do not
 * scan a list each. */
static void anchor_add(struct builder *b, char *name, const struct ynode *n)
{
	struct anchor *a = xmalloc(sizeof(*a));
	a->name = name;
	a->node = n;
	struct anchor **slot = tsearch(a, &b->anchors, cmp_anchor);
	if (!slot)
		abort(); /* out of memory, as xmalloc would */
	if (*slot != a) {
		(*slot)->node = n;
		anchor_free(a);
	}
}

static const struct ynode *anchor_find(const struct builder *b, const char *name)
{
	struct anchor key = {(char *)name, NULL};
	struct anchor *const *slot = tfind(&key, &b->anchors, cmp_anchor);
	return slot ? (*slot)->node : NULL;
}

/* Hands a finished node to its parent (or makes it the root). Takes n. */
static int attach(struct builder *b, struct ynode *n)
{
	if (b->depth == 0) {
		b->root = n;
		return 0;
	}
	struct frame *f = &b->stack[b->depth - 1];
	if (f->node->kind == YNODE_SEQ) {
		yseq_push(f->node, n);
		return 0;
	}
	if (!f->key) {
		if (n->kind != YNODE_SCALAR) {
			cp_error_at(b->err, EXIT_USAGE, &n->mark,
				    "mapping keys must be strings, got %s", ynode_kind_name(n));
			ynode_free(n);
			return -1;
		}
		f->key = n;
		return 0;
	}
	ymap_push(f->node, f->key, n);
	f->key = NULL;
	return 0;
}

struct cand {
	struct ynode *key;
	struct ynode *value;
	size_t prio; /* 0 = written in this mapping; k = k-th merge source */
	size_t seq;
	bool keep;
};

static int cand_cmp(const void *pa, const void *pb)
{
	const struct cand *a = *(const struct cand *const *)pa;
	const struct cand *b = *(const struct cand *const *)pb;
	int c = strcmp(a->key->str, b->key->str);
	if (c)
		return c;
	if (a->prio != b->prio)
		return a->prio < b->prio ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static bool is_merge_key(const struct ynode *k)
{
	return !k->quoted && strcmp(k->str, "<<") == 0;
}

static void cand_add(struct cand **c, size_t *n, size_t *cap, struct ynode *k, struct ynode *v,
		     size_t prio)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		*c = xrealloc(*c, *cap * sizeof(**c));
	}
	(*c)[*n] = (struct cand){k, v, prio, *n, true};
	(*n)++;
}

/* Applies `<<` merge keys (written keys win, then earlier sources) and
 * rejects duplicate written keys. Merge sources move to the graveyard. */
static int finish_map(struct builder *b, struct ynode *map)
{
	size_t n = 0, cap = 0, prio = 0;
	struct cand *c = NULL;
	bool merges = false;
	const struct cp_mark *merge_mark = NULL; /* of the first "<<" */
	int rc = -1;

	for (size_t i = 0; i < map->npairs; i++) {
		struct ynode *k = map->pairs[i].key, *v = map->pairs[i].value;
		if (!is_merge_key(k)) {
			cand_add(&c, &n, &cap, k, v, 0);
			continue;
		}
		if (!merges)
			merge_mark = &k->mark;
		merges = true;
		if (v->kind == YNODE_MAP) {
			prio++;
			for (size_t j = 0; j < v->npairs; j++)
				cand_add(&c, &n, &cap, v->pairs[j].key, v->pairs[j].value, prio);
		} else if (v->kind == YNODE_SEQ) {
			for (size_t s = 0; s < v->nitems; s++) {
				struct ynode *src = v->items[s];
				if (src->kind != YNODE_MAP) {
					cp_error_at(b->err, EXIT_USAGE, &src->mark,
						    "merge key \"<<\" needs mappings, got %s",
						    ynode_kind_name(src));
					goto out;
				}
				prio++;
				for (size_t j = 0; j < src->npairs; j++)
					cand_add(&c, &n, &cap, src->pairs[j].key,
						 src->pairs[j].value, prio);
			}
		} else {
			cp_error_at(
			    b->err, EXIT_USAGE, &v->mark,
			    "merge key \"<<\" needs a mapping or a list of mappings, got %s",
			    ynode_kind_name(v));
			goto out;
		}
	}

	if (n > 1) {
		struct cand **idx = xmalloc(n * sizeof(*idx));
		for (size_t i = 0; i < n; i++)
			idx[i] = &c[i];
		qsort(idx, n, sizeof(*idx), cand_cmp);
		for (size_t i = 1; i < n; i++) {
			if (strcmp(idx[i]->key->str, idx[i - 1]->key->str) != 0)
				continue;
			if (idx[i]->prio == 0) {
				const struct cp_mark *first = &idx[i - 1]->key->mark;
				cp_error_at(b->err, EXIT_USAGE, &idx[i]->key->mark,
					    "duplicate key \"%s\" (first defined at line %d, "
					    "column %d)",
					    idx[i]->key->str, first->line, first->col);
				free(idx);
				goto out;
			}
			idx[i]->keep = false;
		}
		free(idx);
	}
	if (!merges) {
		rc = 0;
		goto out;
	}

	size_t copied = 0, copied_bytes = 0;
	for (size_t i = 0; i < n; i++)
		if (c[i].keep && c[i].prio) {
			copied += c[i].key->weight + c[i].value->weight;
			copied_bytes += c[i].key->bytes + c[i].value->bytes;
		}
	if (count_nodes(b, copied, copied_bytes, merge_mark, "merge key \"<<\"") < 0)
		goto out;

	struct ypair *pairs = xmalloc((n ? n : 1) * sizeof(*pairs));
	size_t np = 0;
	size_t weight = 1, bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (!c[i].keep)
			continue;
		if (c[i].prio) {
			pairs[np].key = ynode_copy(c[i].key);
			pairs[np].value = ynode_copy(c[i].value);
		} else {
			pairs[np].key = c[i].key;
			pairs[np].value = c[i].value;
		}
		weight += pairs[np].key->weight + pairs[np].value->weight;
		bytes += pairs[np].key->bytes + pairs[np].value->bytes;
		np++;
	}
	for (size_t i = 0; i < map->npairs; i++) {
		if (is_merge_key(map->pairs[i].key)) {
			grave_push(b, map->pairs[i].key);
			grave_push(b, map->pairs[i].value);
		}
	}
	free(map->pairs);
	map->pairs = pairs;
	map->npairs = np;
	map->cap = n ? n : 1;
	map->weight = weight;
	map->bytes = bytes;
	rc = 0;
out:
	free(c);
	return rc;
}

static enum ytag tag_of(const yaml_char_t *tag)
{
	if (tag && strcmp((const char *)tag, "!reset") == 0)
		return YTAG_RESET;
	if (tag && strcmp((const char *)tag, "!override") == 0)
		return YTAG_OVERRIDE;
	return YTAG_NONE;
}

static int on_node_start(struct builder *b, struct ynode *n, yaml_char_t *anchor,
			 yaml_char_t *tag)
{
	n->tag = tag_of(tag);
	if (b->depth >= YTREE_MAX_DEPTH) {
		cp_error_at(b->err, EXIT_USAGE, &n->mark, "YAML nested deeper than %d levels",
			    YTREE_MAX_DEPTH);
		ynode_free(n);
		return -1;
	}
	if (count_nodes(b, 1, 0, &n->mark, "this value") < 0) {
		ynode_free(n);
		return -1;
	}
	struct frame *f = &b->stack[b->depth++];
	f->node = n;
	f->key = NULL;
	f->anchor = anchor ? xstrdup((const char *)anchor) : NULL;
	return 0;
}

static int on_node_end(struct builder *b)
{
	struct frame *f = &b->stack[--b->depth];
	struct ynode *n = f->node;
	char *anchor = f->anchor;
	f->node = NULL;
	f->anchor = NULL;
	if (f->key) { /* cannot happen with libyaml, but never leak */
		ynode_free(f->key);
		f->key = NULL;
	}
	if (n->kind == YNODE_MAP && finish_map(b, n) < 0) {
		free(anchor);
		ynode_free(n);
		return -1;
	}
	if (anchor)
		anchor_add(b, anchor, n);
	return attach(b, n);
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
	const char *val = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	struct cp_mark mk = mark_of(b, ev->start_mark);
	if (memchr(val, '\0', len))
		return cp_error_at(b->err, EXIT_USAGE, &mk, "NUL character in a string");
	if (count_nodes(b, 1, len, &mk, "this value") < 0)
		return -1;
	struct ynode *n = node_new(YNODE_SCALAR, &mk);
	n->str = xstrndup(val, len);
	n->bytes = len;
	const char *tag = (const char *)ev->data.scalar.tag;
	n->tag = tag_of(ev->data.scalar.tag);
	if (n->tag != YTAG_NONE)
		tag = NULL; /* a merge tag says nothing of the scalar's type */
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	n->quoted = !plain || (tag && strcmp(tag, "tag:yaml.org,2002:str") == 0);
	if (ev->start_mark.line == ev->end_mark.line && !tag) {
		size_t width = ev->end_mark.column - ev->start_mark.column;
		size_t chars = utf8_chars(val, len);
		bool quoted_style = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
				    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
		if (plain && width == chars)
			n->exact_col = mk.col;
		else if (quoted_style && width == chars + 2)
			n->exact_col = mk.col + 1;
	}
	if (ev->data.scalar.anchor)
		anchor_add(b, xstrdup((const char *)ev->data.scalar.anchor), n);
	return attach(b, n);
}

static int on_alias(struct builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	struct cp_mark mk = mark_of(b, ev->start_mark);
	const struct ynode *src = anchor_find(b, name);
	if (!src)
		return cp_error_at(b->err, EXIT_USAGE, &mk, "unknown anchor \"%s\"", name);
	cleanup_free char *what = xasprintf("alias \"%s\"", name);
	if (count_nodes(b, src->weight, src->bytes, &mk, what) < 0)
		return -1;
	if ((size_t)b->depth + node_height(src) > YTREE_MAX_HEIGHT)
		return cp_error_at(b->err, EXIT_USAGE, &mk,
				   "alias \"%s\" nests YAML deeper than %d levels", name,
				   YTREE_MAX_HEIGHT);
	return attach(b, ynode_copy(src));
}

static int on_event(struct builder *b, const yaml_event_t *ev, int *docs)
{
	struct cp_mark mk = mark_of(b, ev->start_mark);
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++*docs > 1)
			return cp_error_at(b->err, EXIT_USAGE, &mk,
					   "a spec file holds one YAML document, found another");
		return 0;
	case YAML_SCALAR_EVENT:
		return on_scalar(b, ev);
	case YAML_ALIAS_EVENT:
		return on_alias(b, ev);
	case YAML_SEQUENCE_START_EVENT:
		return on_node_start(b, node_new(YNODE_SEQ, &mk), ev->data.sequence_start.anchor,
				     ev->data.sequence_start.tag);
	case YAML_MAPPING_START_EVENT:
		return on_node_start(b, node_new(YNODE_MAP, &mk), ev->data.mapping_start.anchor,
				     ev->data.mapping_start.tag);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return on_node_end(b);
	default:
		return 0;
	}
}

static void builder_free(struct builder *b)
{
	while (b->depth > 0) {
		struct frame *f = &b->stack[--b->depth];
		ynode_free(f->node);
		ynode_free(f->key);
		free(f->anchor);
	}
	tdestroy(b->anchors, anchor_free);
	for (size_t i = 0; i < b->ngrave; i++)
		ynode_free(b->grave[i]);
	free(b->grave);
	ynode_free(b->root);
}

/* libyaml reports a bad byte (invalid UTF-8, a control character) by its
 * offset in the input, not by line and column: count them here, columns in
 * characters as libyaml counts them elsewhere. */
static void reader_error(struct cp_error *err, const char *file, const char *data, size_t len,
			 const yaml_parser_t *parser)
{
	size_t off = parser->problem_offset < len ? parser->problem_offset : len;
	/* A bad trailing byte is reported at itself: point at its sequence. */
	bool trailing = parser->problem && strstr(parser->problem, "trailing");
	for (size_t back = 0; trailing && back < 3 && off > 0 && off < len &&
			      ((unsigned char)data[off] & 0xC0) != 0xC0 &&
			      ((unsigned char)data[off - 1] & 0x80);
	     back++)
		off--;
	struct cp_mark mk = {file, 1, 1};
	for (size_t i = 0; i < off; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c == '\n' || (c == '\r' && (i + 1 >= len || data[i + 1] != '\n'))) {
			mk.line++;
			mk.col = 1;
		} else if ((c & 0xC0) != 0x80 && c != '\r') {
			mk.col++;
		}
	}
	const char *problem = trailing ? "incomplete UTF-8 sequence"
			      : parser->problem ? parser->problem
						: "unreadable input";
	if (parser->problem_value >= 0 && off < len)
		cp_error_at(err, EXIT_USAGE, &mk,
			    "%s (byte 0x%02x): the spec must be UTF-8 text; fix or re-save "
			    "the file as UTF-8",
			    problem, (unsigned)(unsigned char)data[off]);
	else
		cp_error_at(err, EXIT_USAGE, &mk,
			    "%s: the spec must be UTF-8 text; fix or re-save the file "
			    "as UTF-8",
			    problem);
}

int ytree_parse(struct ynode **out, const char *file, const char *data, size_t len,
		struct cp_error *err)
{
	yaml_parser_t parser;
	struct builder b = {.file = file, .err = err};
	int docs = 0, rc = -1;

	*out = NULL;
	if (!yaml_parser_initialize(&parser))
		return cp_error_set(err, EXIT_USAGE, "%s: cannot initialize the YAML parser", file);
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	for (;;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&parser, &ev)) {
			struct cp_mark mk = mark_of(&b, parser.problem_mark);
			if (parser.error == YAML_READER_ERROR) {
				reader_error(err, file, data, len, &parser);
				goto out;
			}
			if (parser.context)
				cp_error_at(err, EXIT_USAGE, &mk, "invalid YAML: %s %s",
					    parser.problem ? parser.problem : "syntax error",
					    parser.context);
			else
				cp_error_at(err, EXIT_USAGE, &mk, "invalid YAML: %s",
					    parser.problem ? parser.problem : "syntax error");
			goto out;
		}
		int r = on_event(&b, &ev, &docs);
		bool end = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
		if (r < 0)
			goto out;
		if (end)
			break;
	}
	*out = b.root;
	b.root = NULL;
	rc = 0;
out:
	builder_free(&b);
	yaml_parser_delete(&parser);
	return rc;
}
