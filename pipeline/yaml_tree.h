/* A generic YAML node tree built from libyaml events: scalars, lists and
 * mappings with their file positions. Aliases are expanded into copies,
 * `<<` merge keys are applied and duplicate keys are rejected while the tree
 * is built, so the rest of the loader sees plain data. */
#ifndef CPIPE_PIPELINE_YAML_TREE_H
#define CPIPE_PIPELINE_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/error.h"

/* Alias and `<<` expansion stops with an error past this many nodes, or
 * past this many bytes of scalar text (keys included), in one file: a 1 MiB
 * string behind 10,000 aliases would otherwise take 10 GiB. */
#define YTREE_MAX_NODES 1000000
#define YTREE_MAX_BYTES (64u << 20)
/* Nesting deeper than this is rejected (the tree code recurses). */
#define YTREE_MAX_DEPTH 128

enum ynode_kind {
	YNODE_SCALAR,
	YNODE_SEQ,
	YNODE_MAP,
};

/* Compose's merge tags: `!reset` drops what earlier files (or an extended
 * service) gave the key, `!override` replaces it instead of merging. */
enum ytag {
	YTAG_NONE,
	YTAG_RESET,
	YTAG_OVERRIDE,
};

struct ynode;

struct ypair {
	struct ynode *key; /* always a scalar */
	struct ynode *value;
};

struct ynode {
	enum ynode_kind kind;
	struct cp_mark mark; /* file lent by the loader, outlives the tree */
	size_t weight;       /* nodes in this subtree, itself included */
	size_t bytes;        /* scalar text in this subtree, as parsed */
	enum ytag tag;       /* `!reset` / `!override`; other tags are not kept */

	/* YNODE_SCALAR */
	char *str;     /* never NULL, no NUL bytes inside */
	bool quoted;   /* not a plain scalar (or interpolated): never null */
	int exact_col; /* >0: column of str[0] when str maps 1:1 onto the file */

	/* YNODE_SEQ */
	struct ynode **items;
	size_t nitems;

	/* YNODE_MAP */
	struct ypair *pairs;
	size_t npairs;

	size_t cap; /* room allocated in items or pairs (pushes double it) */
};

/* Parses one YAML document. `file` is the name used in marks and messages
 * and must outlive the tree. *out is NULL for an empty document. Errors
 * ("file:line:col: ...") cover YAML syntax (invalid UTF-8 at its byte),
 * unknown anchors, alias and merge expansion past YTREE_MAX_NODES or
 * YTREE_MAX_BYTES (at the alias that crosses it), nesting past
 * YTREE_MAX_DEPTH, non-scalar
 * keys, duplicate keys and bad `<<` values. Caller frees with ynode_free. */
int ytree_parse(struct ynode **out, const char *file, const char *data, size_t len,
		struct cp_error *err);

/* Frees a node and everything below it; NULL is a no-op. */
void ynode_free(struct ynode *n);

/* Deep copy; caller owns it. */
struct ynode *ynode_copy(const struct ynode *n);

/* New empty nodes (caller owns them); scalar copies `s`. */
struct ynode *ynode_new_scalar(const char *s, const struct cp_mark *mark, bool quoted);
struct ynode *ynode_new_map(const struct cp_mark *mark);

/* Appends to a list / mapping, taking ownership of the nodes. */
void yseq_push(struct ynode *seq, struct ynode *item);
void ymap_push(struct ynode *map, struct ynode *key, struct ynode *value);

/* The pair whose key is `key`, or NULL (lent). */
struct ypair *ymap_find(const struct ynode *map, const char *key);
/* The value under `key`, or NULL (lent). */
struct ynode *ymap_get(const struct ynode *map, const char *key);
/* Removes the pair at index i, freeing key and value. */
void ymap_remove(struct ynode *map, size_t i);

/* A plain `null`, `Null`, `NULL`, `~` or empty scalar. NULL node too. */
bool ynode_is_null(const struct ynode *n);
/* Deep structural equality of two nodes (scalars by text). */
bool ynode_equal(const struct ynode *a, const struct ynode *b);
/* "a mapping", "a list", "a string", "a number", "a boolean" or "null". */
const char *ynode_kind_name(const struct ynode *n);

#endif
