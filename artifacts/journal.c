/* The change journal (journal.h): inotify watches set by the walk's hook,
 * and a refresh that reads again only what their events name. */
#include "journal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "../lib/fs.h"

#define WATCH_MASK                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM |          \
	 IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
/* Events that say the name now stands for another inode (or none). */
#define REPLACING (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)

struct journal {
	int fd;
	char *root;
	/* Guards the table and `doubt`: the hook runs on the walking threads. */
	pthread_mutex_t lock;
	struct strvec *by_wd; /* wd -> the paths below root it watches */
	size_t cap;
	int root_wd;
	const char *doubt;
};

/* An inode's watch sees every write where all of them pass through this
 * kernel's VFS (fs_type_local). */
static bool watchable_fs(uint32_t type)
{
	return fs_type_local(type);
}

struct journal *journal_open(const char *root, const char **why)
{
	struct statfs sf;
	if (statfs(root, &sf) < 0) {
		*why = "the tree cannot be examined";
		return NULL;
	}
	if (!watchable_fs((uint32_t)sf.f_type)) {
		*why = "its filesystem may change without events (not a local one)";
		return NULL;
	}
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		*why = "no inotify instance (fs.inotify.max_user_instances)";
		return NULL;
	}
	struct journal *j = xcalloc(1, sizeof(*j));
	j->fd = fd;
	j->root = xstrdup(root);
	j->root_wd = -1;
	pthread_mutex_init(&j->lock, NULL);
	return j;
}

void journal_free(struct journal *j)
{
	if (!j)
		return;
	close(j->fd);
	for (size_t i = 0; i < j->cap; i++)
		strvec_free(&j->by_wd[i]);
	free(j->by_wd);
	free(j->root);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

const char *journal_doubt(const struct journal *j)
{
	return j->doubt;
}

/* Call with the lock held. */
static void doubt(struct journal *j, const char *why)
{
	if (!j->doubt)
		j->doubt = why;
}

/* Watches the entry `name` of the open directory `dirfd` (the directory
 * itself for "."), which the tree lists as `rel`. Through /proc/self/fd,
 * so the inode watched is the one the walk has open, whatever happened
 * to its path since. */
static void watch(struct journal *j, int dirfd, const char *name, const char *rel, bool dir)
{
	char path[64 + NAME_MAX];
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	int wd = inotify_add_watch(j->fd, path, WATCH_MASK | (dir ? IN_ONLYDIR : 0));
	int e = errno;
	pthread_mutex_lock(&j->lock);
	if (wd < 0) {
		doubt(j, e == ENOSPC ? "out of inotify watches (fs.inotify.max_user_watches)"
				     : "a directory could not be watched");
	} else {
		if ((size_t)wd >= j->cap) {
			size_t cap = j->cap ? j->cap : 64;
			while (cap <= (size_t)wd)
				cap *= 2;
			j->by_wd = xrealloc(j->by_wd, cap * sizeof(*j->by_wd));
			memset(j->by_wd + j->cap, 0, (cap - j->cap) * sizeof(*j->by_wd));
			j->cap = cap;
		}
		if (!strvec_contains(&j->by_wd[wd], rel))
			strvec_push(&j->by_wd[wd], rel);
		if (!rel[0])
			j->root_wd = wd;
	}
	pthread_mutex_unlock(&j->lock);
}

static void on_entry(void *ctx, int dirfd, const char *name, const char *rel, const struct stat *st)
{
	struct journal_walk *w = ctx;
	if (!w->prefix[0]) {
		watch(w->j, dirfd, name, rel, S_ISDIR(st->st_mode));
		return;
	}
	cleanup_free char *full = rel[0] ? xasprintf("%s/%s", w->prefix, rel) : xstrdup(w->prefix);
	watch(w->j, dirfd, name, full, S_ISDIR(st->st_mode));
}

void journal_hook(struct tree_request *req, struct journal_walk *ctx, struct journal *j,
		  const char *prefix)
{
	ctx->j = j;
	ctx->prefix = prefix;
	req->on_entry = on_entry;
	req->on_entry_ctx = ctx;
}

/* A path an event named; `replaced`: it may stand for another inode now. */
struct change {
	char *rel;
	bool replaced;
};

static void push_change(struct change **v, size_t *n, size_t *cap, const char *dir,
			const char *name, bool replaced)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	char *rel = !name ? xstrdup(dir) : dir[0] ? xasprintf("%s/%s", dir, name) : xstrdup(name);
	(*v)[(*n)++] = (struct change){rel, replaced};
}

/* Reads every queued event into changes (unsorted, with repeats). */
static void drain(struct journal *j, struct change **v, size_t *n, size_t *cap)
{
	alignas(struct inotify_event) char buf[65536];
	while (!j->doubt) {
		ssize_t len = read(j->fd, buf, sizeof(buf));
		if (len < 0 && errno == EINTR)
			continue;
		if (len < 0 && errno == EAGAIN)
			return;
		if (len <= 0) {
			doubt(j, "its events could not be read");
			return;
		}
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				doubt(j,
				      "the event queue overflowed (fs.inotify.max_queued_events)");
				return;
			}
			if (ev->wd < 0 || (size_t)ev->wd >= j->cap || j->by_wd[ev->wd].n == 0)
				continue; /* a watch dropped already */
			struct strvec *rels = &j->by_wd[ev->wd];
			if (ev->mask & IN_UNMOUNT) {
				doubt(j, "a filesystem in the tree was unmounted");
				return;
			}
			if (ev->wd == j->root_wd &&
			    (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))) {
				doubt(j, "the root was deleted or moved");
				return;
			}
			if (ev->mask & IN_IGNORED) { /* the inode is gone: its parent said so */
				strvec_free(rels);
				continue;
			}
			for (size_t k = 0; k < rels->n; k++) {
				if (ev->len)
					push_change(v, n, cap, rels->v[k], ev->name,
						    (ev->mask & REPLACING) != 0);
				else if (rels->v[k][0])
					push_change(v, n, cap, rels->v[k], NULL, false);
			}
			if (*n > 8 * JOURNAL_MAX_CHANGES) {
				doubt(j, "more changes than a refresh takes (a full listing is "
					 "cheaper)");
				return;
			}
		}
	}
}

static int cmp_change(const void *a, const void *b)
{
	return strcmp(((const struct change *)a)->rel, ((const struct change *)b)->rel);
}

static bool is_below(const char *rel, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(rel, dir, n) == 0 && rel[n] == '/';
}

/* Whether a proper ancestor of v[i] is a replaced path of v (sorted). */
static bool covered(const struct change *v, size_t i)
{
	const char *rel = v[i].rel;
	for (size_t k = strlen(rel); k-- > 0;) {
		if (rel[k] != '/')
			continue;
		size_t lo = 0, hi = i;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			int c = strncmp(v[mid].rel, rel, k);
			if (c == 0 && v[mid].rel[k] != '\0')
				c = 1;
			if (c == 0)
				return v[mid].replaced;
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	return false;
}

/* Sorted, one per path, without the root, the skipped path and paths a
 * replaced ancestor covers (it is walked whole). */
static size_t normalize(struct change *v, size_t n, const char *skip)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_change);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && strcmp(v[m - 1].rel, v[i].rel) == 0) {
			v[m - 1].replaced |= v[i].replaced;
			free(v[i].rel);
		} else {
			v[m++] = v[i];
		}
	}
	cleanup_free bool *drop = xcalloc(m ? m : 1, sizeof(bool));
	for (size_t i = 0; i < m; i++)
		drop[i] = !v[i].rel[0] ||
			  (skip && (!strcmp(v[i].rel, skip) || is_below(v[i].rel, skip))) ||
			  covered(v, i);
	size_t k = 0;
	for (size_t i = 0; i < m; i++) {
		if (drop[i])
			free(v[i].rel);
		else
			v[k++] = v[i];
	}
	return k;
}

/* Forgets the watched paths that are `rel` (or, with `below`, under it);
 * appends to *emptied the watches left watching nothing. */
static void forget(struct journal *j, const char *rel, bool below, int **emptied, size_t *ne)
{
	for (size_t wd = 0; wd < j->cap; wd++) {
		struct strvec *rels = &j->by_wd[wd];
		if (rels->n == 0)
			continue;
		size_t keep = 0;
		for (size_t k = 0; k < rels->n; k++) {
			if (!strcmp(rels->v[k], rel) || (below && is_below(rels->v[k], rel)))
				free(rels->v[k]);
			else
				rels->v[keep++] = rels->v[k];
		}
		rels->n = keep;
		if (rels->v)
			rels->v[keep] = NULL;
		if (keep == 0) {
			*emptied = xrealloc(*emptied, (*ne + 1) * sizeof(**emptied));
			(*emptied)[(*ne)++] = (int)wd;
		}
	}
}

/* What a refresh does with one changed path. */
enum redo { REDO_DROP, REDO_SELF, REDO_WALK, REDO_FILE };

struct redo_item {
	const char *rel;
	enum redo how;
	struct stat st;
	struct strbuf listing;
	struct journal_walk hook;
};

static void add_record(struct strbuf *sb, const char *rel, char type, unsigned mode,
		       unsigned long long size, const char *digest)
{
	char num[64];
	sb_add(sb, rel, strlen(rel) + 1);
	sb_addc(sb, type);
	sb_addc(sb, '\0');
	sb_add(sb, num, (size_t)snprintf(num, sizeof(num), "%o", mode) + 1);
	sb_add(sb, num, (size_t)snprintf(num, sizeof(num), "%llu", size) + 1);
	sb_adds(sb, digest ? digest : "");
	sb_addc(sb, '\n');
}

/* Appends the records of a listing of `rel`, prefixed with it. */
static int add_below(struct strbuf *sb, const char *rel, struct strbuf *listing,
		     struct cp_error *err)
{
	struct observe_listing l;
	if (observe_parse(&l, listing, err) < 0)
		return -1;
	for (size_t k = 0; k < l.n; k++) {
		sb_adds(sb, rel);
		sb_addc(sb, '/');
		sb_add(sb, l.v[k].rel, l.v[k].rlen + 1 + l.v[k].restlen + 1);
	}
	observe_listing_free(&l);
	return 0;
}

/* Decides how to read `c` again from what is there now. 1: in doubt. */
static int plan(struct redo_item *it, struct journal *j, const struct change *c,
		const struct observe_listing *before)
{
	const struct observe_rec *was = observe_find(before, c->rel);
	bool was_dir = was && was->restlen > 0 && was->rest[0] == 'd';
	struct cp_error e = {0};
	int got = fs_lstat_beneath(&it->st, j->root, c->rel, &e);
	it->rel = c->rel;
	if (got < 0) /* a link on the way out of the tree: its replacement was missed */
		return 1;
	if (got == 1 ||
	    !(S_ISDIR(it->st.st_mode) || S_ISREG(it->st.st_mode) || S_ISLNK(it->st.st_mode)))
		it->how = REDO_DROP; /* gone, or a special file a mount's listing leaves out */
	else if (S_ISDIR(it->st.st_mode))
		it->how = c->replaced || !was_dir ? REDO_WALK : REDO_SELF;
	else
		it->how = REDO_FILE;
	return 0;
}

int journal_refresh(struct observe_listing *out, struct strvec *changed, struct journal *j,
		    const struct observe_listing *before, const char *skip, struct statcache *sc,
		    struct cp_error *err)
{
	memset(out, 0, sizeof(*out));
	struct change *v = NULL;
	size_t n = 0, cap = 0;
	drain(j, &v, &n, &cap);
	n = normalize(v, n, skip);
	if (!j->doubt && n > JOURNAL_MAX_CHANGES)
		doubt(j, "more changes than a refresh takes (a full listing is cheaper)");
	int rc = j->doubt ? 1 : 0;

	struct redo_item *items = xcalloc(n ? n : 1, sizeof(*items));
	for (size_t i = 0; i < n && rc == 0; i++)
		if (plan(&items[i], j, &v[i], before))
			rc = 1;
	if (rc)
		doubt(j, "a path on the way turned into a link out of the tree");

	/* Old watches under what is read again go; the walk sets them anew. */
	cleanup_free int *emptied = NULL;
	size_t nemptied = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (items[i].how != REDO_SELF)
			forget(j, items[i].rel, true, &emptied, &nemptied);

	struct tree_request *reqs = xcalloc(n ? n : 1, sizeof(*reqs));
	size_t nreq = 0;
	size_t *req_of = xcalloc(n ? n : 1, sizeof(*req_of));
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct redo_item *it = &items[i];
		if (it->how != REDO_WALK && it->how != REDO_FILE)
			continue;
		struct tree_request *r = &reqs[nreq];
		r->root = j->root;
		r->path = it->rel;
		r->whole_mount = true;
		if (it->how == REDO_WALK) {
			r->listing = &it->listing;
			if (skip && is_below(skip, it->rel))
				r->skip = skip + strlen(it->rel) + 1;
		}
		journal_hook(r, &it->hook, j, it->rel);
		req_of[i] = nreq++;
	}
	struct cp_error ignored;
	if (rc == 0 && nreq && digest_trees(reqs, nreq, sc, &ignored) < 0) {
		/* Changed again while read, or unreadable: a full listing
		 * reports what is really wrong. */
		doubt(j, "a path changed while it was read again");
		rc = 1;
	}
	if (j->doubt) /* a watch the walk could not set: later changes may go unseen */
		rc = 1;
	for (size_t k = 0; k < nemptied; k++)
		if (j->by_wd[emptied[k]].n == 0)
			inotify_rm_watch(j->fd, emptied[k]);

	struct strbuf add = STRBUF_INIT;
	struct observe_cut *cuts = xcalloc(n ? n : 1, sizeof(*cuts));
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct redo_item *it = &items[i];
		const struct tree_digest *td = it->how >= REDO_WALK ? &reqs[req_of[i]].out : NULL;
		unsigned mode = it->st.st_mode & 07777;
		cuts[i] = (struct observe_cut){it->rel, it->how != REDO_SELF};
		if (td && td->type != (it->how == REDO_WALK      ? 'd'
				       : S_ISLNK(it->st.st_mode) ? 'l'
								 : 'f')) {
			doubt(j, "a path changed while it was read again");
			rc = 1;
		} else if (it->how == REDO_SELF || it->how == REDO_WALK) {
			add_record(&add, it->rel, 'd', mode, 0, NULL);
			if (it->how == REDO_WALK && add_below(&add, it->rel, &it->listing, err) < 0)
				rc = -1;
		} else if (it->how == REDO_FILE) {
			add_record(&add, it->rel, td->type, mode, td->size, td->digest);
		}
	}
	if (rc == 0) {
		struct observe_listing frag;
		rc = observe_parse(&frag, &add, err);
		if (rc == 0) {
			observe_patch(out, changed, before, cuts, n, &frag);
			observe_listing_free(&frag);
		}
	}
	sb_free(&add);
	free(cuts);
	free(reqs);
	free(req_of);
	for (size_t i = 0; i < n; i++) {
		sb_free(&items[i].listing);
		free(v[i].rel);
	}
	free(items);
	free(v);
	return rc;
}
