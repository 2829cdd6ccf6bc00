/* Persistent stat cache: an open-addressing table over a flat array of
 * 80-byte records and one arena of paths, loaded and saved whole. */
#include "statcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "digest.h"

#define SC_MAGIC "CPSTATC"
#define SC_VERSION 1u
#define SC_ENDIAN 0x01020304u
#define SC_MAX_FILE (1ull << 31) /* anything larger is not ours */

struct sc_header {
	char magic[8];
	uint32_t version;
	uint32_t endian;
	uint64_t count;
	uint64_t pathbytes;
};

/* Same layout in memory and on disk. */
struct sc_rec {
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	uint64_t ino;
	uint64_t dev;
	uint8_t md[32];
	uint32_t path_off;
	uint32_t path_len;
};
_Static_assert(sizeof(struct sc_header) == 32, "header layout");
_Static_assert(sizeof(struct sc_rec) == 80, "record layout");

struct statcache {
	char *file;
	struct sc_rec *rec;
	uint8_t *touched; /* per record: found or stored since open */
	size_t n, cap;
	char *paths; /* arena; records point into it */
	size_t plen, pcap;
	/* Slots hold (hash32 << 32) | (index + 1); 0 is empty. Never deleted
	 * from: an updated path keeps its record. NULL until needed. */
	uint64_t *slots;
	size_t nslots; /* power of two, at least twice n */
	/* Entries are stored in the order a walk meets them and it meets
	 * them in that order again: the record after the last one found is
	 * tried before the table. */
	size_t hint;
	bool dirty, discarded, prune;
};

static uint32_t path_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

/* Slot holding `path`, or the empty slot where it would go. */
static size_t slot_find(const struct statcache *sc, const char *path, size_t len, uint32_t h)
{
	size_t mask = sc->nslots - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		uint64_t s = sc->slots[i];
		if (s == 0)
			return i;
		if ((uint32_t)(s >> 32) != h)
			continue;
		const struct sc_rec *r = &sc->rec[(uint32_t)s - 1];
		if (r->path_len == len && memcmp(sc->paths + r->path_off, path, len) == 0)
			return i;
	}
}

static void table_resize(struct statcache *sc, size_t want)
{
	size_t nslots = 1024;
	while (nslots < want * 2)
		nslots *= 2;
	free(sc->slots);
	sc->slots = xcalloc(nslots, sizeof(*sc->slots));
	sc->nslots = nslots;
	for (size_t k = 0; k < sc->n; k++) {
		const struct sc_rec *r = &sc->rec[k];
		const char *p = sc->paths + r->path_off;
		uint32_t h = path_hash(p, r->path_len);
		size_t i = slot_find(sc, p, r->path_len, h);
		sc->slots[i] = ((uint64_t)h << 32) | (k + 1);
	}
}

/* The table is built on first need: a pass that finds every entry right
 * after the previous one (see hint) never needs it. */
static void table_need(struct statcache *sc)
{
	if (!sc->slots)
		table_resize(sc, sc->n);
}

static void reset_empty(struct statcache *sc)
{
	free(sc->rec);
	free(sc->touched);
	free(sc->paths);
	free(sc->slots);
	sc->rec = NULL;
	sc->touched = NULL;
	sc->paths = NULL;
	sc->slots = NULL;
	sc->n = sc->cap = sc->plen = sc->pcap = sc->nslots = 0;
}

/* 0: read; 1: the file ended first; -1: error (errno). */
static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t r = read(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Reads and checks the file into sc. 1: loaded; 0: corrupt (sc left for
 * the caller to empty); -1: I/O error. */
static int load(struct statcache *sc, int fd, uint64_t fsize)
{
	struct sc_header h;
	if (fsize < sizeof(h) + 32 || fsize > SC_MAX_FILE)
		return 0;
	int r = read_full(fd, &h, sizeof(h));
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (memcmp(h.magic, SC_MAGIC, 8) != 0 || h.version != SC_VERSION || h.endian != SC_ENDIAN)
		return 0;
	/* fsize is bounded, so these cannot overflow once checked in order. */
	if (h.count > fsize / sizeof(struct sc_rec) || h.pathbytes > fsize ||
	    sizeof(h) + h.count * sizeof(struct sc_rec) + h.pathbytes + 32 != fsize)
		return 0;
	sc->n = sc->cap = (size_t)h.count;
	sc->rec = xmalloc(sc->n * sizeof(*sc->rec));
	sc->touched = xcalloc(sc->n, 1);
	sc->plen = sc->pcap = (size_t)h.pathbytes;
	sc->paths = xmalloc(sc->pcap);
	uint8_t sum[32];
	r = read_full(fd, sc->rec, sc->n * sizeof(*sc->rec));
	if (r == 0)
		r = read_full(fd, sc->paths, sc->plen);
	if (r == 0)
		r = read_full(fd, sum, sizeof(sum));
	if (r != 0)
		return r < 0 ? -1 : 0;

	struct digest_ctx c;
	uint8_t want[32];
	digest_init(&c);
	digest_update(&c, &h, sizeof(h));
	digest_update(&c, sc->rec, sc->n * sizeof(*sc->rec));
	digest_update(&c, sc->paths, sc->plen);
	digest_final_raw(want, &c);
	if (memcmp(sum, want, sizeof(sum)) != 0)
		return 0;

	/* The checksum proves we wrote it; still never index out of bounds
	 * on the word of a file. (A duplicate path would be harmless: every
	 * hit is checked against the full key.) */
	for (size_t k = 0; k < sc->n; k++) {
		const struct sc_rec *e = &sc->rec[k];
		if (e->path_len == 0 || (uint64_t)e->path_off + e->path_len > sc->plen)
			return 0;
		const char *p = sc->paths + e->path_off;
		if (p[0] != '/' || memchr(p, '\0', e->path_len))
			return 0;
	}
	return 1;
}

int statcache_open(struct statcache **out, const char *path, struct cp_error *err)
{
	struct statcache *sc = xcalloc(1, sizeof(*sc));
	sc->file = xstrdup(path);
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	if (fd < 0 && errno == ENOENT) {
		reset_empty(sc);
		*out = sc;
		return 0;
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		cp_error_errno(err, EXIT_USAGE, "reading stat cache %s", path);
		statcache_free(sc);
		return -1;
	}
	int r = S_ISREG(st.st_mode) ? load(sc, fd, (uint64_t)st.st_size) : 0;
	if (r < 0) {
		cp_error_errno(err, EXIT_USAGE, "reading stat cache %s", path);
		statcache_free(sc);
		return -1;
	}
	if (r == 0) {
		reset_empty(sc);
		sc->discarded = true;
	}
	*out = sc;
	return 0;
}

int statcache_save(struct statcache *sc, struct cp_error *err)
{
	if (!sc->dirty)
		return 0;
	size_t keep = 0, pathbytes = 0;
	for (size_t k = 0; k < sc->n; k++) {
		if (sc->prune && !sc->touched[k])
			continue;
		keep++;
		pathbytes += sc->rec[k].path_len;
	}
	struct sc_header h = {.version = SC_VERSION, .endian = SC_ENDIAN,
			      .count = keep, .pathbytes = pathbytes};
	memcpy(h.magic, SC_MAGIC, 8);
	size_t len = sizeof(h) + keep * sizeof(struct sc_rec) + pathbytes + 32;
	cleanup_free char *buf = xmalloc(len);
	memcpy(buf, &h, sizeof(h));
	struct sc_rec *out = (struct sc_rec *)(buf + sizeof(h));
	char *paths = buf + sizeof(h) + keep * sizeof(struct sc_rec);
	size_t j = 0, off = 0;
	for (size_t k = 0; k < sc->n; k++) {
		if (sc->prune && !sc->touched[k])
			continue;
		const struct sc_rec *r = &sc->rec[k];
		memcpy(paths + off, sc->paths + r->path_off, r->path_len);
		out[j] = *r;
		out[j].path_off = (uint32_t)off;
		off += r->path_len;
		j++;
	}
	uint8_t *sum = (uint8_t *)paths + pathbytes;
	struct digest_ctx c;
	digest_init(&c);
	digest_update(&c, buf, len - 32);
	digest_final_raw(sum, &c);

	cleanup_free char *dir = path_dirname(sc->file);
	if (fs_mkdir_p(dir, 0700, err) < 0 || fs_write_atomic_fast(sc->file, buf, len, 0600, err) < 0)
		return cp_error_prefix(err, "saving stat cache");
	sc->dirty = false;
	return 0;
}

void statcache_prune(struct statcache *sc)
{
	sc->prune = true;
	for (size_t k = 0; k < sc->n; k++)
		if (!sc->touched[k])
			sc->dirty = true;
}

static bool key_matches(const struct sc_rec *r, const struct statcache_key *k);

size_t statcache_drop_stale(struct statcache *sc)
{
	size_t dropped = 0;
	for (size_t k = 0; k < sc->n; k++) {
		const struct sc_rec *r = &sc->rec[k];
		cleanup_free char *path = xstrndup(sc->paths + r->path_off, r->path_len);
		struct stat st;
		struct statcache_key key;
		bool live = lstat(path, &st) == 0 && S_ISREG(st.st_mode);
		if (live)
			statcache_key_from_stat(&key, &st);
		sc->touched[k] = live && key_matches(r, &key);
		dropped += !sc->touched[k];
	}
	statcache_prune(sc);
	return dropped;
}

void statcache_free(struct statcache *sc)
{
	if (!sc)
		return;
	free(sc->file);
	free(sc->rec);
	free(sc->touched);
	free(sc->paths);
	free(sc->slots);
	free(sc);
}

bool statcache_discarded(const struct statcache *sc)
{
	return sc->discarded;
}

size_t statcache_count(const struct statcache *sc)
{
	return sc->n;
}

void statcache_key_from_stat(struct statcache_key *out, const struct stat *st)
{
	out->dev = (uint64_t)st->st_dev;
	out->ino = (uint64_t)st->st_ino;
	out->size = (uint64_t)st->st_size;
	out->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	out->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

static bool key_matches(const struct sc_rec *r, const struct statcache_key *k)
{
	return r->size == k->size && r->mtime_ns == k->mtime_ns && r->ctime_ns == k->ctime_ns &&
	       r->ino == k->ino && r->dev == k->dev;
}

bool statcache_lookup(struct statcache *sc, uint8_t out[32], const char *abspath,
		      const struct statcache_key *k)
{
	size_t len = strlen(abspath);
	size_t idx = sc->hint;
	const struct sc_rec *h = idx < sc->n ? &sc->rec[idx] : NULL;
	if (!h || h->path_len != len || memcmp(sc->paths + h->path_off, abspath, len) != 0) {
		table_need(sc);
		uint64_t s = sc->slots[slot_find(sc, abspath, len, path_hash(abspath, len))];
		if (s == 0)
			return false;
		idx = (uint32_t)s - 1;
	}
	sc->hint = idx + 1;
	if (!key_matches(&sc->rec[idx], k))
		return false;
	sc->touched[idx] = 1;
	memcpy(out, sc->rec[idx].md, 32);
	return true;
}

void statcache_store(struct statcache *sc, const char *abspath, const struct statcache_key *k,
		     const uint8_t md[32])
{
	size_t len = strlen(abspath);
	uint32_t h = path_hash(abspath, len);
	table_need(sc);
	size_t i = slot_find(sc, abspath, len, h);
	struct sc_rec *r;
	if (sc->slots[i]) {
		size_t idx = (uint32_t)sc->slots[i] - 1;
		r = &sc->rec[idx];
		sc->touched[idx] = 1;
		if (key_matches(r, k) && memcmp(r->md, md, 32) == 0)
			return;
	} else {
		/* Offsets are 32-bit: past 4 GiB of paths, stop caching. */
		if (len == 0 || len > UINT32_MAX - sc->plen || sc->n >= UINT32_MAX - 1)
			return;
		if (sc->plen + len > sc->pcap) {
			sc->pcap = (sc->plen + len) * 2 < 4096 ? 4096 : (sc->plen + len) * 2;
			sc->paths = xrealloc(sc->paths, sc->pcap);
		}
		if (sc->n == sc->cap) {
			sc->cap = sc->cap ? sc->cap * 2 : 256;
			sc->rec = xrealloc(sc->rec, sc->cap * sizeof(*sc->rec));
			sc->touched = xrealloc(sc->touched, sc->cap);
		}
		r = &sc->rec[sc->n];
		r->path_off = (uint32_t)sc->plen;
		r->path_len = (uint32_t)len;
		memcpy(sc->paths + sc->plen, abspath, len);
		sc->plen += len;
		sc->touched[sc->n] = 1;
		sc->slots[i] = ((uint64_t)h << 32) | (sc->n + 1);
		sc->n++;
		if (sc->n * 2 > sc->nslots)
			table_resize(sc, sc->n);
	}
	r->size = k->size;
	r->mtime_ns = k->mtime_ns;
	r->ctime_ns = k->ctime_ns;
	r->ino = k->ino;
	r->dev = k->dev;
	memcpy(r->md, md, 32);
	sc->dirty = true;
}

/* Filesystems stamped by this kernel's clock (statfs f_type). */
static bool local_clock_fs(uint32_t type)
{
	return fs_type_local(type) || type == FS_TYPE_OVERLAYFS;
}

bool statcache_cacheable(const struct statcache_key *k, int fd, int64_t started_ns)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0 || !local_clock_fs((uint32_t)sf.f_type))
		return false;
	int64_t margin = k->ctime_ns % 1000000000 == 0 ? 2000000000 : 100000000;
	return k->ctime_ns < started_ns - margin;
}
