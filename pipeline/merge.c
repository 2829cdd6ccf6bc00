#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec_internal.h"

/* ---- normalization ---- */

struct list_key {
	char *key;
	size_t i; /* position in the list */
};

static int cmp_list_key(const void *x, const void *y)
{
	const struct list_key *a = x, *b = y;
	int c = strcmp(a->key, b->key);
	return c ? c : (a->i > b->i) - (a->i < b->i);
}

/* ["K=V", "K"] → {K: V, K: null}; a key given twice keeps its first place
 * and its last value. With keys_only (depends_on), a name given twice is an
 * error. Left alone (0) when an entry is not a scalar. Duplicates are found
 * by sorting, so a list of 50,000 names costs O(n log n). */
static int list_to_map(struct ynode **slot, bool keys_only, const char *stage,
		       struct cp_error *err)
{
	struct ynode *seq = *slot;
	size_t n = seq->nitems;
	for (size_t i = 0; i < n; i++)
		if (seq->items[i]->kind != YNODE_SCALAR || ynode_is_null(seq->items[i]))
			return 0;
	struct list_key *keys = xcalloc(n + 1, sizeof(*keys));
	size_t *value_of = xcalloc(n + 1, sizeof(*value_of)); /* SIZE_MAX: not first */
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		const char *str = seq->items[i]->str;
		const char *eq = keys_only ? NULL : strchr(str, '=');
		keys[i].key = eq ? xstrndup(str, (size_t)(eq - str)) : xstrdup(str);
		keys[i].i = i;
	}
	qsort(keys, n, sizeof(*keys), cmp_list_key);
	for (size_t g = 0; g < n;) {
		size_t e = g + 1;
		while (e < n && strcmp(keys[e].key, keys[g].key) == 0)
			value_of[keys[e++].i] = SIZE_MAX;
		if (keys_only && e > g + 1) {
			const struct ynode *again = seq->items[keys[g + 1].i];
			cp_error_at(err, EXIT_USAGE, &again->mark,
				    "stage \"%s\": depends on \"%s\" twice", stage, again->str);
			goto out;
		}
		value_of[keys[g].i] = keys[e - 1].i;
		g = e;
	}
	struct ynode *map = ynode_new_map(&seq->mark);
	for (size_t i = 0; i < n; i++) {
		if (value_of[i] == SIZE_MAX)
			continue;
		const struct ynode *it = seq->items[i], *val = seq->items[value_of[i]];
		const char *eq = keys_only ? NULL : strchr(val->str, '=');
		struct ynode *v = keys_only ? ynode_new_map(&val->mark)
				  : eq	    ? ynode_new_scalar(eq + 1, &val->mark, true)
					    : ynode_new_scalar("", &val->mark, false);
		const char *ieq = keys_only ? NULL : strchr(it->str, '=');
		cleanup_free char *k = ieq ? xstrndup(it->str, (size_t)(ieq - it->str))
					   : xstrdup(it->str);
		ymap_push(map, ynode_new_scalar(k, &it->mark, true), v);
	}
	ynode_free(seq);
	*slot = map;
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(keys[i].key);
	free(keys);
	free(value_of);
	return rc;
}

static int normalize_key(struct ynode *map, const char *key, bool keys_only, const char *stage,
			 struct cp_error *err)
{
	struct ypair *p = ymap_find(map, key);
	if (p && p->value->kind == YNODE_SEQ)
		return list_to_map(&p->value, keys_only, stage, err);
	return 0;
}

static int normalize_stage(struct ynode *st, const char *name, struct cp_error *err)
{
	if (st->kind != YNODE_MAP)
		return 0;
	if (normalize_key(st, "environment", false, name, err) < 0 ||
	    normalize_key(st, "labels", false, name, err) < 0 ||
	    normalize_key(st, "depends_on", true, name, err) < 0)
		return -1;
	struct ypair *b = ymap_find(st, "build");
	if (b && b->value->kind == YNODE_SCALAR && !ynode_is_null(b->value)) {
		struct ynode *m = ynode_new_map(&b->value->mark);
		ymap_push(m, ynode_new_scalar("context", &b->value->mark, true), b->value);
		b->value = m;
	}
	if (b && b->value->kind == YNODE_MAP)
		return normalize_key(b->value, "args", false, name, err);
	return 0;
}

int spec_normalize(struct ynode *root, struct cp_error *err)
{
	struct ypair *stages = ymap_find(root, "stages");
	struct ypair *services = ymap_find(root, "services");
	if (stages && services) {
		const struct ypair *later = stages < services ? services : stages;
		return cp_error_at(err, EXIT_USAGE, &later->key->mark,
				   "both \"stages\" and \"services\" are given; they mean the "
				   "same, use one");
	}
	if (services) {
		free(services->key->str);
		services->key->str = xstrdup("stages");
		stages = services;
	}
	if (stages && stages->value->kind == YNODE_MAP)
		for (size_t i = 0; i < stages->value->npairs; i++)
			if (normalize_stage(stages->value->pairs[i].value,
					    stages->value->pairs[i].key->str, err) < 0)
				return -1;
	return 0;
}

/* ---- merge ---- */

static void merge_generic(struct ynode **slot, struct ynode *over);

struct key_pos {
	const char *key; /* lent from a key node, which never moves */
	size_t pos;
};

static int cmp_key_pos(const void *x, const void *y)
{
	return strcmp(((const struct key_pos *)x)->key, ((const struct key_pos *)y)->key);
}

/* Keys of `over` are looked up in a sorted index of base's keys (taken
 * before any is added: over's keys are distinct), so merging two maps of
 * 50,000 stages is O(n log n), not O(n * m). */
static void merge_maps(struct ynode *base, struct ynode *over,
		       void (*merge_value)(const char *key, struct ynode **slot, struct ynode *over))
{
	size_t nbase = base->npairs;
	struct key_pos *idx = xcalloc(nbase + 1, sizeof(*idx));
	for (size_t i = 0; i < nbase; i++)
		idx[i] = (struct key_pos){base->pairs[i].key->str, i};
	qsort(idx, nbase, sizeof(*idx), cmp_key_pos);
	for (size_t i = 0; i < over->npairs; i++) {
		struct ypair *op = &over->pairs[i];
		struct key_pos want = {op->key->str, 0};
		const struct key_pos *hit = bsearch(&want, idx, nbase, sizeof(*idx), cmp_key_pos);
		if (hit && op->value->tag != YTAG_NONE) {
			/* !reset and !override replace; spec_strip_resets then
			 * drops the reset ones. */
			ynode_free(base->pairs[hit->pos].value);
			base->pairs[hit->pos].value = op->value;
			ynode_free(op->key);
		} else if (hit) {
			merge_value(op->key->str, &base->pairs[hit->pos].value, op->value);
			ynode_free(op->key);
		} else {
			ymap_push(base, op->key, op->value);
		}
	}
	free(idx);
	free(over->pairs);
	over->pairs = NULL;
	over->npairs = over->cap = 0;
	ynode_free(over);
}

static void merge_generic_value(const char *key, struct ynode **slot, struct ynode *over)
{
	(void)key;
	merge_generic(slot, over);
}

/* An empty override (`train:`) of a mapping changes nothing. */
static bool keeps_base(const struct ynode *base, struct ynode *over)
{
	if (base->kind != YNODE_MAP || !ynode_is_null(over))
		return false;
	ynode_free(over);
	return true;
}

/* Mappings merge recursively, everything else is replaced. */
static void merge_generic(struct ynode **slot, struct ynode *over)
{
	if (keeps_base(*slot, over))
		return;
	if ((*slot)->kind == YNODE_MAP && over->kind == YNODE_MAP) {
		merge_maps(*slot, over, merge_generic_value);
		return;
	}
	ynode_free(*slot);
	*slot = over;
}

static void concat_dedup(struct ynode *base, struct ynode *over)
{
	for (size_t i = 0; i < over->nitems; i++) {
		struct ynode *it = over->items[i];
		bool dup = false;
		for (size_t j = 0; j < base->nitems && !dup; j++)
			dup = ynode_equal(base->items[j], it);
		if (dup)
			ynode_free(it);
		else
			yseq_push(base, it);
	}
	free(over->items);
	over->items = NULL;
	over->nitems = over->cap = 0;
	ynode_free(over);
}

/* The container path of a stage volume entry, or NULL (caller frees). */
static char *mount_target(const struct ynode *v)
{
	if (v->kind == YNODE_MAP) {
		const struct ynode *t = ymap_get(v, "target");
		return t && t->kind == YNODE_SCALAR ? xstrdup(t->str) : NULL;
	}
	if (v->kind != YNODE_SCALAR)
		return NULL;
	const char *c1 = strchr(v->str, ':');
	if (!c1)
		return xstrdup(v->str);
	const char *c2 = strchr(c1 + 1, ':');
	return c2 ? xstrndup(c1 + 1, (size_t)(c2 - c1 - 1)) : xstrdup(c1 + 1);
}

static void merge_mounts(struct ynode *base, struct ynode *over)
{
	for (size_t i = 0; i < over->nitems; i++) {
		struct ynode *it = over->items[i];
		cleanup_free char *t = mount_target(it);
		bool replaced = false;
		for (size_t j = 0; t && j < base->nitems && !replaced; j++) {
			cleanup_free char *bt = mount_target(base->items[j]);
			if (bt && strcmp(bt, t) == 0) {
				ynode_free(base->items[j]);
				base->items[j] = it;
				replaced = true;
			}
		}
		if (!replaced)
			yseq_push(base, it);
	}
	free(over->items);
	over->items = NULL;
	over->nitems = over->cap = 0;
	ynode_free(over);
}

static void merge_stage_value(const char *key, struct ynode **slot, struct ynode *over)
{
	static const char *const concat[] = {"ports", "expose", "dns", "profiles"};
	bool seqs = (*slot)->kind == YNODE_SEQ && over->kind == YNODE_SEQ;
	for (size_t i = 0; i < ARRAY_LEN(concat); i++) {
		if (seqs && strcmp(key, concat[i]) == 0) {
			concat_dedup(*slot, over);
			return;
		}
	}
	if (seqs && strcmp(key, "volumes") == 0) {
		merge_mounts(*slot, over);
		return;
	}
	merge_generic(slot, over);
}

static void merge_stage(const char *key, struct ynode **slot, struct ynode *over)
{
	(void)key;
	if (keeps_base(*slot, over))
		return;
	if ((*slot)->kind == YNODE_MAP && over->kind == YNODE_MAP) {
		merge_maps(*slot, over, merge_stage_value);
		return;
	}
	ynode_free(*slot);
	*slot = over;
}

static void merge_stages(const char *key, struct ynode **slot, struct ynode *over)
{
	if (strcmp(key, "stages") == 0 && (*slot)->kind == YNODE_MAP &&
	    over->kind == YNODE_MAP) {
		merge_maps(*slot, over, merge_stage);
		return;
	}
	merge_generic(slot, over);
}

void spec_merge(struct ynode *base, struct ynode *over)
{
	merge_maps(base, over, merge_stages);
}

void spec_merge_service(struct ynode **slot, struct ynode *over)
{
	merge_stage(NULL, slot, over);
}

void spec_strip_resets(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nitems; i++)
		spec_strip_resets(n->items[i]);
	for (size_t i = 0; i < n->npairs;) {
		if (n->pairs[i].value->tag == YTAG_RESET) {
			ymap_remove(n, i);
			continue;
		}
		spec_strip_resets(n->pairs[i].value);
		i++;
	}
}
