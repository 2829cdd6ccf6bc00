/* Content digests of artifacts: "sha256:<64 lowercase hex>" of a file, of a
 * symlink (its target text) or of a directory tree (its canonical listing).
 *
 * Canonical directory listing (version 1). A directory's digest is the
 * sha256 of the concatenation, in bytewise (memcmp) order of <relpath>, of
 * one record per entry below it (the directory itself is not listed):
 *
 *     <relpath> NUL <type> NUL <mode> NUL <size> NUL <digest> LF
 *
 *   relpath  path relative to the directory, components joined by '/', no
 *            leading "./" or '/', no trailing '/', no "." or ".." or empty
 *            components. Any byte but NUL and '/' may occur in a name,
 *            LF included (the fields after it cannot contain NUL, so the
 *            record stays unambiguous).
 *   type     one byte: 'f' regular file, 'd' directory, 'l' symlink.
 *   mode     st_mode & 07777 in lowercase octal, no leading zeros
 *            ("644", "755", "4755", "777" for symlinks on Linux; "0" if none).
 *   size     decimal, no leading zeros: 'f' the file's length, 'l' the
 *            length of the target text, 'd' always "0".
 *   digest   'f' sha256 of the content, 'l' sha256 of the target text (the
 *            link is never followed), each as "sha256:<hex>"; 'd' empty.
 *
 * Example, a tree holding "a" (0644, "hi\n") and an empty "sub/" (0755)
 * lists two records:  a NUL f NUL 644 NUL 3 NUL sha256:98ea6e4f...07be4 LF
 *                     sub NUL d NUL 755 NUL 0 NUL LF
 * An empty directory hashes the empty string, as an empty file does: the
 * digest alone does not tell the type (struct tree_digest.type does).
 * Every directory must appear
 * as its own 'd' entry. Only regular files, directories and symlinks may
 * occur; two entries naming the same inode (a hardlink inside the tree) are
 * an error, as is any other file type. A tar stream gives the same digest
 * when each member is fed to struct tree_builder with the leading root
 * component stripped (tar lists the root; the listing does not). */
#ifndef CPIPE_ARTIFACTS_DIGEST_H
#define CPIPE_ARTIFACTS_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/error.h"

#define DIGEST_PREFIX "sha256:"
#define DIGEST_STRLEN 71 /* "sha256:" + 64 hex */
#define DIGEST_BUFLEN 72 /* with the NUL */

struct stat;
struct statcache;
struct strbuf;
struct evp_md_ctx_st; /* OpenSSL's EVP_MD_CTX */

/* Streaming sha256 for cache keys and the like. digest_final frees what
 * digest_init allocated; a context is not reusable after it. */
struct digest_ctx {
	struct evp_md_ctx_st *md;
};
void digest_init(struct digest_ctx *c);
void digest_update(struct digest_ctx *c, const void *data, size_t n);
void digest_final(char out[DIGEST_BUFLEN], struct digest_ctx *c);
/* Raw 32-byte form of digest_final. */
void digest_final_raw(uint8_t out[32], struct digest_ctx *c);

/* "sha256:<hex>" of `n` bytes. Always returns 0 (libcrypto failure aborts,
 * as out of memory does). */
int digest_bytes(char out[DIGEST_BUFLEN], const void *data, size_t n);

/* True when `s` is exactly "sha256:" followed by 64 lowercase hex digits. */
bool digest_is_valid(const char *s);
/* Conversions between "sha256:<hex>" and 32 raw bytes; parse returns -1
 * when `s` is not valid. */
void digest_format(char out[DIGEST_BUFLEN], const uint8_t md[32]);
int digest_parse(uint8_t out[32], const char *s);

/* Digest of the content of the regular file `path` (symlinks in `path` are
 * followed, as sha256sum does; use digest_tree to record links). With `sc`
 * (may be NULL) an unchanged file is answered from the stat cache and a
 * freshly hashed one is remembered there. Fails, naming the path, when the
 * file is missing, unreadable, not a regular file, or keeps changing while
 * it is read. */
int digest_file(char out[DIGEST_BUFLEN], const char *path, struct statcache *sc,
		struct cp_error *err);

struct tree_digest {
	char digest[DIGEST_BUFLEN];
	char type;                /* 'f', 'd' or 'l' */
	unsigned long long size;  /* 'f': its length; 'd': sum over its regular
				   * files; 'l': length of the target text */
	unsigned long long nfiles; /* regular files: 1 for 'f', 0 for 'l' */
};

/* Digest of `path`, which may be a regular file, a directory (canonical
 * listing above) or a symlink (never followed, nor is any link below a
 * directory, and entries are opened with openat2 RESOLVE_BENEATH, so
 * nothing outside `path` is read). Uses and updates `sc` (may be NULL).
 * When the files to read add up to 16 MiB or more they are read on up to 4
 * threads; the result does not depend on it. Fails naming the offending
 * path: a special file, a hardlink between two entries, an I/O error, a
 * file that keeps changing while it is read. */
int digest_tree(struct tree_digest *out, const char *path, struct statcache *sc,
		struct cp_error *err);

/* digest_tree of `path` inside the directory `root` (a volume's or the
 * project's): every component but the last is resolved there, symlinks
 * followed only while they stay inside root (openat2 RESOLVE_BENEATH);
 * the last is never followed. A link on the way that leads outside is an
 * error naming it; nothing outside root is read. `root` NULL: digest_tree. */
int digest_tree_in(struct tree_digest *out, const char *root, const char *path,
		   struct statcache *sc, struct cp_error *err);

/* One path for digest_trees: set `path` (and `root`, NULL or as for
 * digest_tree_in); the rest is filled in. */
struct tree_request {
	const char *root;
	const char *path;
	/* When set, a directory's canonical listing (the bytes its digest
	 * hashes) is appended to it: what observing a mount compares. */
	struct strbuf *listing;
	/* A whole mount being observed: `skip` (a path relative to a
	 * directory root, may be NULL) is left out with everything below it,
	 * and so are special files (sockets, fifos, devices), and hardlinks
	 * are listed as the files they are. */
	const char *skip;
	bool whole_mount;
	/* When set, called on the walking thread for the root when it is a
	 * directory (dirfd the root itself, name "."), for every directory
	 * below it before that directory is read, and for every regular file
	 * with more than one link (the root too: dirfd its parent); `rel` is
	 * relative to `path` ("" for the root). A change journal's watches. */
	void (*on_entry)(void *ctx, int dirfd, const char *name, const char *rel,
			 const struct stat *st);
	void *on_entry_ctx;
	struct tree_digest out;
	int rc;              /* 0, or -1 with err set */
	struct cp_error err;
};

/* digest_tree of many paths at once, as `status` needs for the outputs of
 * every stage: the walks (mostly stat calls) and the reads run on a few
 * threads, the stat cache is used on the calling thread only. Every request
 * gets its own result; returns 0 when all succeeded, else -1 with the first
 * failing request's error copied to *err. */
int digest_trees(struct tree_request *reqs, size_t n, struct statcache *sc, struct cp_error *err);

/* Builds a directory digest from entries given in any order, without a
 * filesystem (e.g. from a tar stream). Zero-initialize (TREE_BUILDER_INIT),
 * add, finish, free. */
struct tree_entry;
struct tree_builder {
	struct tree_entry *v;
	size_t n;
	size_t cap;
	unsigned long long size;   /* running totals, as in struct tree_digest */
	unsigned long long nfiles;
};
#define TREE_BUILDER_INIT {NULL, 0, 0, 0, 0}

/* Adds one entry. `type` is 'f', 'd' or 'l'; `digest` is "sha256:<hex>"
 * for 'f' and 'l' and NULL for 'd' (whose size must be 0). Fails on a
 * malformed relpath, type, digest or size (the input may be untrusted). */
int tree_builder_add(struct tree_builder *b, const char *relpath, char type, unsigned mode,
		     unsigned long long size, const char *digest, struct cp_error *err);
/* As tree_builder_add for entries the caller built itself and trusts (the
 * directory walk): no validation, takes ownership of the malloc'd `relpath`
 * of length `len`, `md` is the raw sha256 (NULL for 'd'). */
void tree_builder_add_raw(struct tree_builder *b, char *relpath, size_t len, char type,
			  unsigned mode, unsigned long long size, const uint8_t *md);
/* Sorts and hashes the entries. Fails on duplicate paths and on an entry
 * whose parent directory was not added. The builder can be freed after. */
int tree_builder_finish(char out[DIGEST_BUFLEN], struct tree_builder *b, struct cp_error *err);
/* As tree_builder_finish, also appending the canonical listing itself to
 * `listing` (may be NULL): the bytes whose sha256 is `out`. */
struct strbuf;
int tree_builder_listing(char out[DIGEST_BUFLEN], struct strbuf *listing, struct tree_builder *b,
			 struct cp_error *err);
void tree_builder_free(struct tree_builder *b);

/* Files whose content this process has read to hash (all threads); lets
 * tests and benchmarks prove the stat cache spared a read. */
unsigned long long digest_files_hashed(void);

#endif
