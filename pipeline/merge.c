#include <stdlib.h>
#include <string.h>

#include "spec_internal.h"

/* ---- normalization ---- */

/* ["K=V", "K"] → {K: V, K: null}; later entries win. Left alone (false)
 * when an entry is not a scalar. */
static bool list_to_map(struct ynode **slot, bool keys_only)
{
	struct ynode *seq = *slot;
	for (size_t i = 0; i < seq->nitems; i++)
		if (seq->items[i]->kind != YNODE_SCALAR || ynode_is_null(seq->items[i]))
			return false;
	struct ynode *map = ynode_new_map(&seq->mark);
	for (size_t i = 0; i < seq->nitems; i++) {
		const struct ynode *it = seq->items[i];
		const char *eq = keys_only ? NULL : strchr(it->str, '=');
		cleanup_free char *k = eq ? xstrndup(it->str, (size_t)(eq - it->str))
					  : xstrdup(it->str);
		struct ynode *v = keys_only ? ynode_new_map(&it->mark)
				  : eq	    ? ynode_new_scalar(eq + 1, &it->mark, true)
					    : ynode_new_scalar("", &it->mark, false);
		struct ypair *old = ymap_find(map, k);
		if (old) {
			if (keys_only) {
				ynode_free(v);
				continue;
			}
			ynode_free(old->value);
			old->value = v;
			continue;
		}
		ymap_push(map, ynode_new_scalar(k, &it->mark, true), v);
	}
	ynode_free(seq);
	*slot = map;
	return true;
}

static void normalize_key(struct ynode *map, const char *key, bool keys_only)
{
	struct ypair *p = ymap_find(map, key);
	if (p && p->value->kind == YNODE_SEQ)
		list_to_map(&p->value, keys_only);
}

static void normalize_stage(struct ynode *st)
{
	if (st->kind != YNODE_MAP)
		return;
	normalize_key(st, "environment", false);
	normalize_key(st, "labels", false);
	normalize_key(st, "depends_on", true);
	struct ypair *b = ymap_find(st, "build");
	if (b && b->value->kind == YNODE_SCALAR && !ynode_is_null(b->value)) {
		struct ynode *m = ynode_new_map(&b->value->mark);
		ymap_push(m, ynode_new_scalar("context", &b->value->mark, true), b->value);
		b->value = m;
	}
	if (b && b->value->kind == YNODE_MAP)
		normalize_key(b->value, "args", false);
}

int spec_normalize(struct ynode *root, struct cp_error *err)
{
	struct ypair *stages = ymap_find(root, "stages");
	struct ypair *services = ymap_find(root, "services");
	if (stages && services) {
		const struct ypair *later = stages < services ? services : stages;
		return cp_error_at(err, &later->key->mark,
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
			normalize_stage(stages->value->pairs[i].value);
	return 0;
}

/* ---- merge ---- */

static void merge_generic(struct ynode **slot, struct ynode *over);

static void merge_maps(struct ynode *base, struct ynode *over,
		       void (*merge_value)(const char *key, struct ynode **slot, struct ynode *over))
{
	for (size_t i = 0; i < over->npairs; i++) {
		struct ypair *op = &over->pairs[i];
		struct ypair *bp = ymap_find(base, op->key->str);
		if (bp) {
			merge_value(op->key->str, &bp->value, op->value);
			ynode_free(op->key);
		} else {
			ymap_push(base, op->key, op->value);
		}
	}
	free(over->pairs);
	over->pairs = NULL;
	over->npairs = 0;
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
	over->nitems = 0;
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
	over->nitems = 0;
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
