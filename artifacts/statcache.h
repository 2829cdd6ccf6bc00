/* Persistent stat cache: (absolute path, size, mtime, ctime, inode, device)
 * → content digest, so that an unchanged file is never read twice.
 *
 * A hit requires every key field to be equal; any write to a file moves its
 * ctime (which, unlike mtime, no tool can set back), so rewriting a file
 * with the same size and a restored mtime still misses.
 *
 * Racy entries. A write in the same timestamp tick as the hash would leave
 * the key unchanged, so a digest is only stored when the file's ctime (its
 * last change: every write moves it) is older than the moment hashing
 * started by more than the timestamp granularity: 100 ms when the ctime has
 * a sub-second part (the kernel stamps with a coarse clock of at most
 * 10 ms), 2 s when it is a whole second. And only on filesystems stamped by
 * this kernel's clock (ext2/3/4, xfs, btrfs, tmpfs, ramfs, overlayfs, f2fs,
 * zfs, bcachefs): on NFS, SMB, FUSE or anything unknown a server's clock
 * may be skewed, so nothing is cached there. A file hashed right after it
 * was written is therefore read once more on the next check, then cached.

 * File format (native byte order; the cache never leaves the host):
 *   header   "CPSTATC\0", u32 version, u32 0x01020304, u64 count, u64 pathbytes
 *   count    80-byte records: u64 size, i64 mtime_ns, i64 ctime_ns, u64 ino,
 *            u64 dev, 32-byte sha256, u32 path offset, u32 path length
 *   paths    pathbytes bytes of concatenated absolute paths (no NULs)
 *   trailer  sha256 of everything before it
 * Written with fs_write_atomic_fast (a cache: never torn by a kill; after
 * a power loss possibly lost, which only costs rehashing). A file with a wrong magic, version, length,
 * checksum or record is discarded whole and the cache starts empty.
 *
 * Not thread-safe: one thread uses a cache at a time (digest_tree's workers
 * only hash; the calling thread looks up and stores). */
#ifndef CPIPE_ARTIFACTS_STATCACHE_H
#define CPIPE_ARTIFACTS_STATCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../lib/error.h"

struct statcache;

struct statcache_key {
	uint64_t dev;
	uint64_t ino;
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
};

/* Loads the cache kept at `path` (e.g. "<state_dir>/cache/stat.cache").
 * A missing, truncated or corrupt file gives an empty cache (see
 * statcache_discarded). Fails only when the file exists but cannot be read
 * (permissions, I/O error); the caller may then go on without a cache.
 * Caller owns *out. */
int statcache_open(struct statcache **out, const char *path, struct cp_error *err);

/* Writes the cache back atomically, creating its directory, if anything
 * changed since it was opened or last saved; otherwise does nothing. */
int statcache_save(struct statcache *sc, struct cp_error *err);

/* From now on, the next save drops every entry that was neither found nor
 * stored since statcache_open: call it after a pass that checked every
 * artifact the project still has (a full run or status). */
void statcache_prune(struct statcache *sc);

/* For gc: from now on, the next save keeps only the entries whose file is
 * still there with the key it was cached under. Returns how many entries
 * that drops. */
size_t statcache_drop_stale(struct statcache *sc);

void statcache_free(struct statcache *sc);

/* True when the file existed but was rejected as corrupt or truncated. */
bool statcache_discarded(const struct statcache *sc);
size_t statcache_count(const struct statcache *sc);

void statcache_key_from_stat(struct statcache_key *out, const struct stat *st);

/* The digest stored for `abspath` if its key matches `k` exactly. */
bool statcache_lookup(struct statcache *sc, uint8_t out[32], const char *abspath,
		      const struct statcache_key *k);

/* Remembers (abspath, k) → md, replacing any entry for abspath. The caller
 * checks statcache_cacheable first. */
void statcache_store(struct statcache *sc, const char *abspath, const struct statcache_key *k,
		     const uint8_t md[32]);

/* The racy rule above: may a digest of the file open as `fd`, whose key `k`
 * was taken before reading began at CLOCK_REALTIME `started_ns` and did not
 * change while it was read, be cached? */
bool statcache_cacheable(const struct statcache_key *k, int fd, int64_t started_ns);

#endif
