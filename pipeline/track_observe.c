/* Observed outputs: a job that declares neither outputs: nor metrics: has
 * as outputs what it created, changed or deleted in its writable named
 * volumes and bind mounts (inside the project) while it ran, and as inputs
 * everything those mounts (read-only ones too) hold but its own outputs and
 * the outputs of the stages downstream of it. Mounts are listed through the
 * stat cache (digest_trees with a listing), on every runtime whose volumes
 * have a host path, else streamed with volume_read_tree. In a run, a
 * mount listed from its host path is watched as it is listed (a change
 * journal, artifacts/journal.h): after the stage, its listing is the one
 * before with what the events name read again, not a second listing; a
 * journal in doubt falls back to listing in full. CPIPE_OBSERVE_JOURNAL=0
 * always lists in full; CPIPE_OBSERVE_TRACE=1 says on stderr which way
 * each mount went. */
#include "track_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../artifacts/observe.h"
#include "../lib/fs.h"


bool track_observes(const struct stage *s)
{
	return !s->service && !s->outputs_declared;
}

/* A bind source the tracker may read: the project or a path inside it. */
static bool in_project(const struct pipeline *p, const char *path)
{
	size_t n = strlen(p->dir);
	return strncmp(path, p->dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

void track_observed_mounts(struct artifact_ref **out, size_t *n, const struct pipeline *p,
			   const struct stage *s, bool writable_only)
{
	*out = NULL;
	*n = 0;
	for (size_t i = 0; i < s->nmounts; i++) {
		const struct mount *m = &s->mounts[i];
		if (m->type == MOUNT_TMPFS || (writable_only && m->read_only) ||
		    (m->type == MOUNT_BIND && !in_project(p, m->source)))
			continue;
		const char *vol = m->type == MOUNT_VOLUME ? m->source : NULL;
		const char *path = vol ? "/" : m->source;
		bool dup = false;
		for (size_t k = 0; k < *n && !dup; k++)
			dup = !(*out)[k].volume == !vol && (!vol || !strcmp((*out)[k].volume, vol)) &&
			      !strcmp((*out)[k].path, path);
		if (dup)
			continue;
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		(*out)[(*n)++] = (struct artifact_ref){vol ? xstrdup(vol) : NULL, xstrdup(path), m->mark};
	}
}

void track_refs_free(struct artifact_ref *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].volume);
		free(v[i].path);
	}
	free(v);
}

int track_ref_parse(struct artifact_ref *out, const struct pipeline *p, const char *name)
{
	memset(out, 0, sizeof(*out));
	if (name[0] == '/') {
		out->path = xstrdup(name);
	} else if (name[0] == '.' && (name[1] == '\0' || name[1] == '/')) {
		out->path = name[1] ? path_join(p->dir, name + 2) : xstrdup(p->dir);
	} else {
		const char *colon = strchr(name, ':');
		if (!colon || colon[1] != '/')
			return -1;
		out->volume = xstrndup(name, (size_t)(colon - name));
		out->path = xstrdup(colon + 1);
	}
	return 0;
}

void track_part_refs(struct artifact_ref **out, size_t *n, const struct pipeline *p,
		     const cJSON *part)
{
	*out = NULL;
	*n = 0;
	for (const cJSON *e = part ? part->child : NULL; e; e = e->next) {
		struct artifact_ref r;
		if (track_ref_parse(&r, p, e->string) < 0)
			continue;
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		(*out)[(*n)++] = r;
	}
}

bool track_entry_deleted(const cJSON *e)
{
	return cJSON_IsTrue(cJSON_GetObjectItem(e, "deleted"));
}

/* The host directory of a mount ref, and the state directory's path in
 * it when the mount holds it (the project bound whole). */
static int scan_place(char **host, const char **skip, struct tracker *t,
		      const struct artifact_ref *m, struct cp_error *err)
{
	*skip = NULL;
	if (track_ref_host_path(host, t, m->volume, m->path, err) < 0)
		return -1;
	size_t n = strlen(*host);
	const char *sd = t->o.state_dir;
	if (strncmp(sd, *host, n) == 0 && sd[n] == '/')
		*skip = sd + n + 1;
	return 0;
}

static struct obs_listing *listing_new(void)
{
	struct obs_listing *ls = xcalloc(1, sizeof(*ls));
	ls->refs = 1;
	return ls;
}

static void listing_unref(struct obs_listing *ls)
{
	if (ls && --ls->refs == 0) {
		observe_listing_free(&ls->l);
		free(ls);
	}
}

/* The scan's listing; an empty one for a file or a missing mount. */
static const struct observe_listing *listing_of(const struct obs_scan *sc)
{
	static const struct observe_listing none;
	return sc && sc->ls ? &sc->ls->l : &none;
}

static void trace(const char *fmt, ...) CP_PRINTF(1, 2);
static void trace(const char *fmt, ...)
{
	const char *on = getenv("CPIPE_OBSERVE_TRACE");
	if (!on || strcmp(on, "1") != 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("cpipe: observe: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static bool journal_wanted(const struct tracker *t)
{
	const char *v = getenv("CPIPE_OBSERVE_JOURNAL");
	return t->o.run_id && !(v && strcmp(v, "0") == 0);
}

/* Lists a mount through the runtime (no host path). */
static int scan_stream(struct obs_scan *sc, struct tracker *t, const struct artifact_ref *m,
		       struct cp_error *err)
{
	struct track_archive_walk w = {.b = TREE_BUILDER_INIT, .whole_mount = true};
	struct strbuf sb = STRBUF_INIT;
	int rc = t->ops->volume_read_tree(t->rt, m->volume, m->path, track_archive_visit, &w, err);
	if (rc == 1)
		sc->missing = true;
	else if (rc == 0 && w.type == 'd' && tree_builder_listing(w.digest, &sb, &w.b, err) < 0)
		rc = -1;
	tree_builder_free(&w.b);
	if (rc == 0 && !sc->missing) {
		sc->type = w.type;
		memcpy(sc->digest, w.digest, sizeof(w.digest));
		if (w.type == 'd') {
			sc->ls = listing_new();
			rc = observe_parse(&sc->ls->l, &sb, err);
		}
	}
	sb_free(&sb);
	return rc < 0 ? -1 : 0;
}

static int scan_mount(struct obs_scan *sc, struct tracker *t, const struct artifact_ref *m,
		      const char *name, struct cp_error *err)
{
	cleanup_free char *host = NULL;
	const char *skip = NULL;
	const char *force = getenv("CPIPE_ARTIFACTS_VIA_ARCHIVE");
	bool stream = m->volume && t->ops->volume_read_tree && force && strcmp(force, "1") == 0;
	if (!stream && scan_place(&host, &skip, t, m, err) < 0) {
		if (!m->volume || !t->ops->volume_read_tree)
			return -1;
		stream = true;
	}
	if (stream)
		return scan_stream(sc, t, m, err);
	struct stat st;
	if (lstat(host, &st) < 0) {
		sc->missing = true; /* a volume nothing wrote yet */
		return 0;
	}
	struct strbuf sb = STRBUF_INIT;
	struct tree_request req = {.path = host, .listing = &sb, .skip = skip, .whole_mount = true};
	const char *why = "not a directory";
	struct journal_walk hook;
	if (journal_wanted(t) && S_ISDIR(st.st_mode) && (sc->j = journal_open(host, &why)))
		journal_hook(&req, &hook, sc->j, "");
	if (digest_trees(&req, 1, t->sc, err) < 0) {
		sb_free(&sb);
		return -1;
	}
	if (sc->j && journal_doubt(sc->j)) {
		why = journal_doubt(sc->j);
		journal_free(sc->j);
		sc->j = NULL;
	}
	if (journal_wanted(t))
		trace("%s: listed%s%s", name,
		      sc->j ? ", watched" : "; not watched: ", sc->j ? "" : why);
	sc->host = xstrdup(host);
	sc->skip = skip ? xstrdup(skip) : NULL;
	sc->type = req.out.type;
	memcpy(sc->digest, req.out.digest, sizeof(sc->digest));
	int rc = 0;
	if (req.out.type == 'd') {
		sc->ls = listing_new();
		rc = observe_parse(&sc->ls->l, &sb, err);
	}
	sb_free(&sb);
	return rc;
}

static void scan_free(struct obs_scan *sc)
{
	free(sc->name);
	listing_unref(sc->ls);
	listing_unref(sc->base);
	strvec_free(&sc->changed);
	journal_free(sc->j);
	free(sc->host);
	free(sc->skip);
	strvec_free(&sc->dskip);
	memset(sc, 0, sizeof(*sc));
}

/* A copy of `sc` but its journal, sharing its listing. */
static void scan_copy(struct obs_scan *c, const struct obs_scan *sc)
{
	*c = *sc;
	c->j = NULL;
	c->name = xstrdup(sc->name);
	c->host = sc->host ? xstrdup(sc->host) : NULL;
	c->skip = sc->skip ? xstrdup(sc->skip) : NULL;
	memset(&c->dskip, 0, sizeof(c->dskip));
	strvec_copy(&c->dskip, &sc->dskip);
	if (c->ls)
		c->ls->refs++;
	c->base = NULL;
	memset(&c->changed, 0, sizeof(c->changed));
}

static void memo_add_scan(struct memo *m, struct obs_scan *sc)
{
	for (size_t i = 0; i < m->nscans; i++) {
		if (!strcmp(m->scans[i].name, sc->name)) {
			scan_free(&m->scans[i]);
			m->scans[i] = *sc;
			return;
		}
	}
	m->scans = xrealloc(m->scans, (m->nscans + 1) * sizeof(*sc));
	m->scans[m->nscans++] = *sc;
}

void track_scans_clear(struct memo *m)
{
	for (size_t i = 0; i < m->nscans; i++)
		scan_free(&m->scans[i]);
	free(m->scans);
	m->scans = NULL;
	m->nscans = 0;
}

/* The mount's listing, read once until the memo is cleared. Lends. */
static struct obs_scan *scan_get(struct tracker *t, const struct artifact_ref *m,
				 struct cp_error *err)
{
	cleanup_free char *name = track_ref_name(t->p, m->volume, m->path);
	for (size_t i = 0; i < t->memo.nscans; i++)
		if (!strcmp(t->memo.scans[i].name, name))
			return &t->memo.scans[i];
	struct obs_scan sc = {0};
	if (scan_mount(&sc, t, m, name, err) < 0) {
		scan_free(&sc);
		cp_error_prefix(err, "observing %s", name);
		return NULL;
	}
	sc.name = xstrdup(name);
	memo_add_scan(&t->memo, &sc);
	return &t->memo.scans[t->memo.nscans - 1];
}

/* `r` as a path relative to mount `m`, or NULL when outside it. */
static const char *rel_in(const struct artifact_ref *m, const struct artifact_ref *r)
{
	if (!m->volume != !r->volume || (m->volume && strcmp(m->volume, r->volume)))
		return NULL;
	size_t n = strlen(m->path);
	if (m->volume || strcmp(m->path, "/") == 0)
		n = 0;
	if (strncmp(r->path, m->path, n) != 0 || (r->path[n] != '/' && r->path[n] != '\0'))
		return NULL;
	const char *rel = r->path + n;
	while (*rel == '/')
		rel++;
	return rel;
}

static void skip_refs(struct strvec *skip, const struct artifact_ref *m,
		      const struct artifact_ref *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *rel = rel_in(m, &v[i]);
		if (rel && !strvec_contains(skip, rel))
			strvec_push(skip, rel);
	}
}

/* Whether `down` depends on `s`, directly or through other stages. */
static bool downstream(const struct pipeline *p, const struct stage *down, const struct stage *s,
		       unsigned depth)
{
	for (size_t d = 0; d < down->ndeps && depth < 64; d++) {
		const struct stage *up = pipeline_stage(p, down->deps[d].stage);
		if (up == s || (up && downstream(p, up, s, depth + 1)))
			return true;
	}
	return false;
}

/* cpipe's own files inside mount `m` (the project bound whole): the
 * state directory and the lock, which no stage writes or reads. */
static void state_skip(struct strvec *skip, const struct tracker *t, const struct artifact_ref *m)
{
	if (m->volume)
		return;
	struct artifact_ref own[2] = {{NULL, (char *)t->o.state_dir, m->mark},
				      {NULL, t->lock_path, m->mark}};
	skip_refs(skip, m, own, 2);
}

/* What a stage's reads leave out of mount `m`: `own` (its outputs, as an
 * "outputs" object; NULL: the lock's) and every output of the stages
 * downstream of it. */
static void reads_skip(struct strvec *skip, struct tracker *t, const struct stage *s,
		       const struct artifact_ref *m, const cJSON *own)
{
	state_skip(skip, t, m);
	if (!own)
		own = cJSON_GetObjectItem(track_lock_entry(t, s->name), "outputs");
	struct artifact_ref *v;
	size_t n;
	track_part_refs(&v, &n, t->p, own);
	skip_refs(skip, m, v, n);
	track_refs_free(v, n);
	for (size_t i = 0; i < t->p->nstages; i++) {
		const struct stage *d = &t->p->stages[i];
		if (d == s || !downstream(t->p, d, s, 0))
			continue;
		skip_refs(skip, m, d->outputs, d->noutputs);
		skip_refs(skip, m, d->metrics, d->nmetrics);
		if (track_observes(d)) {
			track_part_refs(&v, &n, t->p,
					cJSON_GetObjectItem(track_lock_entry(t, d->name), "outputs"));
			skip_refs(skip, m, v, n);
			track_refs_free(v, n);
		}
	}
}

static bool same_set(const struct strvec *a, const struct strvec *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!strvec_contains(b, a->v[i]))
			return false;
	return true;
}

int track_observed_reads(cJSON *inputs, struct tracker *t, const struct stage *s,
			 const cJSON *own, struct cp_error *err)
{
	struct artifact_ref *mounts;
	size_t nm;
	track_observed_mounts(&mounts, &nm, t->p, s, false);
	int rc = 0;
	for (size_t i = 0; i < nm && rc == 0; i++) {
		struct obs_scan *sc = scan_get(t, &mounts[i], err);
		if (!sc) {
			rc = -1;
			break;
		}
		cJSON *e = cJSON_CreateObject();
		if (sc->missing) {
			cJSON_AddStringToObject(e, "digest", "empty");
		} else if (sc->type == 'd') {
			struct strvec skip = {0};
			reads_skip(&skip, t, s, &mounts[i], own);
			if (!sc->dmemo || !same_set(&sc->dskip, &skip)) {
				observe_digest(sc->ddigest, listing_of(sc), &skip);
				strvec_free(&sc->dskip);
				sc->dskip = skip;
				memset(&skip, 0, sizeof(skip));
				sc->dmemo = true;
			}
			cJSON_AddStringToObject(e, "digest", sc->ddigest);
			strvec_free(&skip);
		} else {
			cJSON_AddStringToObject(e, "digest", sc->digest);
		}
		cJSON_DeleteItemFromObject(inputs, sc->name);
		cJSON_AddItemToObject(inputs, sc->name, e);
	}
	track_refs_free(mounts, nm);
	return rc;
}

void track_snapshot_free(struct tstate *ts)
{
	for (size_t i = 0; i < ts->nsnap; i++)
		scan_free(&ts->snap[i]);
	free(ts->snap);
	ts->snap = NULL;
	ts->nsnap = 0;
}

int track_snapshot(struct tracker *t, const struct stage *s, struct cp_error *err)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	track_snapshot_free(ts);
	struct artifact_ref *mounts;
	size_t nm;
	track_observed_mounts(&mounts, &nm, t->p, s, false);
	struct artifact_ref *rw;
	size_t nw;
	track_observed_mounts(&rw, &nw, t->p, s, true);
	ts->snap = xcalloc(nm ? nm : 1, sizeof(*ts->snap));
	int rc = 0;
	for (size_t i = 0; i < nm; i++) {
		struct obs_scan *sc = scan_get(t, &mounts[i], err);
		if (!sc) {
			rc = -1;
			break;
		}
		/* Writable mounts are compared with this; read-only ones only
		 * matter with a journal, which saves listing them again. */
		bool writable = false;
		for (size_t k = 0; k < nw && !writable; k++) {
			cleanup_free char *wn = track_ref_name(t->p, rw[k].volume, rw[k].path);
			writable = !strcmp(wn, sc->name);
		}
		if (!writable && !sc->j)
			continue;
		struct obs_scan *c = &ts->snap[ts->nsnap++];
		scan_copy(c, sc);
		c->j = sc->j; /* the stage's from now on: it covers the run */
		sc->j = NULL;
	}
	track_refs_free(mounts, nm);
	track_refs_free(rw, nw);
	return rc;
}

/* After the stage: each listing a journal covered, brought up to date
 * from its events and put in the memo, where the diff and the reads find
 * it; the others are listed in full when asked for. */
static int refresh_scans(struct tracker *t, struct tstate *ts, struct cp_error *err)
{
	for (size_t i = 0; i < ts->nsnap; i++) {
		struct obs_scan *was = &ts->snap[i];
		if (!was->j)
			continue;
		struct obs_scan now = {0};
		struct strvec changed = {0};
		now.ls = listing_new();
		int rc = journal_refresh(&now.ls->l, &changed, was->j, listing_of(was), was->skip,
					 t->sc, err);
		if (rc != 0)
			listing_unref(now.ls);
		if (rc < 0)
			return cp_error_prefix(err, "observing %s", was->name);
		if (rc == 1) {
			trace("%s: journal in doubt (%s): listing in full", was->name,
			      journal_doubt(was->j));
			journal_free(was->j);
			was->j = NULL;
			continue;
		}
		trace("%s: from the journal, %zu paths changed", was->name, changed.n);
		now.name = xstrdup(was->name);
		now.type = 'd';
		now.host = xstrdup(was->host);
		now.skip = was->skip ? xstrdup(was->skip) : NULL;
		now.j = was->j; /* watches on, for the stages after */
		was->j = NULL;
		/* The filtered digest holds while every change is left out. */
		bool holds = was->dmemo;
		for (size_t k = 0; k < changed.n && holds; k++) {
			bool left_out = false;
			for (size_t q = 0; q < was->dskip.n && !left_out; q++) {
				const char *sk = was->dskip.v[q];
				size_t n = strlen(sk);
				left_out =
				    n == 0 || (strncmp(changed.v[k], sk, n) == 0 &&
					       (changed.v[k][n] == '\0' || changed.v[k][n] == '/'));
			}
			holds = left_out;
		}
		if (holds) {
			now.dmemo = true;
			strvec_copy(&now.dskip, &was->dskip);
			memcpy(now.ddigest, was->ddigest, sizeof(now.ddigest));
		}
		now.base = was->ls;
		now.base->refs++;
		now.changed = changed;
		memo_add_scan(&t->memo, &now);
	}
	return 0;
}

/* The ref of `rel` inside mount `m`. Caller owns the path. */
static struct artifact_ref ref_at(const struct artifact_ref *m, const char *rel)
{
	struct artifact_ref r = {m->volume, NULL, m->mark};
	if (m->volume)
		r.path = xasprintf("/%s", rel);
	else
		r.path = *rel ? path_join(m->path, rel) : xstrdup(m->path);
	return r;
}

/* Whether the regular file open as `fd` holds one of `values`. Read in
 * chunks that overlap by the longest value, so none is missed at a seam. */
static bool fd_holds(int fd, const struct strvec *values, size_t longest)
{
	size_t cap = (1u << 20) + longest;
	cleanup_free char *buf = xmalloc(cap);
	size_t have = 0;
	for (;;) {
		ssize_t n = read(fd, buf + have, cap - have);
		if (n <= 0)
			return false;
		have += (size_t)n;
		for (size_t i = 0; i < values->n; i++)
			if (memmem(buf, have, values->v[i], strlen(values->v[i])))
				return true;
		size_t keep = have < longest ? have : longest;
		memmove(buf, buf + have - keep, keep);
		have = keep;
	}
}

/* Whether the file or tree open as `fd` (a directory: every regular file
 * below it, links not followed) holds a secret value. */
static bool tree_holds(int fd, const struct strvec *values, size_t longest, unsigned depth)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return false;
	if (S_ISREG(st.st_mode))
		return fd_holds(fd, values, longest);
	if (!S_ISDIR(st.st_mode) || depth > 256)
		return false;
	int dup_fd = dup(fd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return false;
	}
	bool hit = false;
	for (struct dirent *de; !hit && (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (cfd < 0)
			continue;
		hit = tree_holds(cfd, values, longest, depth + 1);
		close(cfd);
	}
	closedir(d);
	return hit;
}

/* An output the stage wrote that holds a value the spec keeps secret (a
 * copied token): cpipe writes no secret down, so it is recorded by digest
 * only, never copied into the store (and so cannot be restored). */
static bool output_holds_secret(struct tracker *t, const struct artifact_ref *r)
{
	const struct strvec *values = &t->p->secrets.values;
	if (values->n == 0)
		return false;
	size_t longest = 0;
	for (size_t i = 0; i < values->n; i++)
		if (strlen(values->v[i]) > longest)
			longest = strlen(values->v[i]);
	cleanup_free char *host = NULL;
	struct cp_error ignored = {0};
	if (track_ref_host_path(&host, t, r->volume, r->path, &ignored) < 0)
		return false; /* read through the runtime: never stored either */
	const char *rel;
	const char *root = track_ref_root(t, r->volume, r->path, &rel);
	int fd = root ? -1 : open(host, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (root) {
		cleanup_close int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		while (*rel == '/')
			rel++;
		fd = rfd < 0 ? -1 : *rel ? fs_openat_beneath(rfd, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, false)
				  : dup(rfd);
	}
	if (fd < 0)
		return false;
	bool hit = tree_holds(fd, values, longest, 0);
	close(fd);
	return hit;
}

int track_collect_observed(cJSON *outputs, cJSON *types, struct tracker *t,
			   const struct stage *s, struct cp_error *err)
{
	struct tstate *ts = &t->st[track_stage_pos(t->p, s)];
	if (refresh_scans(t, ts, err) < 0)
		return -1;
	struct artifact_ref *mounts;
	size_t nm;
	track_observed_mounts(&mounts, &nm, t->p, s, true);
	int rc = 0;
	for (size_t i = 0; i < nm && rc == 0; i++) {
		cleanup_free char *mname = track_ref_name(t->p, mounts[i].volume, mounts[i].path);
		const struct obs_scan *was = NULL;
		for (size_t k = 0; k < ts->nsnap; k++)
			if (!strcmp(ts->snap[k].name, mname))
				was = &ts->snap[k];
		const struct obs_scan *now = scan_get(t, &mounts[i], err);
		if (!now) {
			rc = -1;
			break;
		}
		struct strvec written = {0}, deleted = {0};
		if (was && was->ls && now->base == was->ls) {
			observe_diff_paths(&written, &deleted, listing_of(was), listing_of(now),
					   &now->changed);
		} else if (now->type == 'd' || now->missing) {
			observe_diff(&written, &deleted, listing_of(was), listing_of(now));
		} else if (!was || was->missing || strcmp(was->digest, now->digest)) {
			strvec_push(&written, ""); /* a file bound whole, rewritten */
		}
		struct strvec mine = {0};
		state_skip(&mine, t, &mounts[i]);
		for (size_t k = 0; k < written.n && rc == 0; k++) {
			if (strvec_contains(&mine, written.v[k]))
				continue;
			struct artifact_ref r = ref_at(&mounts[i], written.v[k]);
			cleanup_free char *name = track_ref_name(t->p, r.volume, r.path);
			cJSON *e;
			char type = 0;
			int got;
			if (output_holds_secret(t, &r)) {
				if (!t->o.quiet)
					fprintf(stderr,
						"cpipe: stage \"%s\": %s holds a secret value: recorded by "
						"digest, not stored\n",
						s->name, name);
				got = track_digest_ref(&e, t, r.volume, r.path, err);
			} else {
				got = track_commit_ref(&e, &type, t, r.volume, r.path, err);
			}
			if (got < 0) {
				rc = cp_error_prefix(err, "stage \"%s\": observed output %s", s->name,
						     name);
			} else if (!track_entry_digest(e)) {
				cJSON_Delete(e); /* gone again before it could be read */
			} else {
				if (type)
					cJSON_AddItemToObject(types, name,
							      cJSON_CreateString((char[]){type, 0}));
				cJSON_AddItemToObject(outputs, name, e);
			}
			free(r.path);
		}
		for (size_t k = 0; k < deleted.n; k++) {
			if (strvec_contains(&mine, deleted.v[k]))
				continue;
			struct artifact_ref r = ref_at(&mounts[i], deleted.v[k]);
			cleanup_free char *name = track_ref_name(t->p, r.volume, r.path);
			cJSON *e = cJSON_CreateObject();
			cJSON_AddBoolToObject(e, "deleted", true);
			cJSON_AddItemToObject(outputs, name, e);
			cJSON_AddItemToObject(types, name, cJSON_CreateString("-"));
			free(r.path);
		}
		strvec_free(&written);
		strvec_free(&deleted);
		strvec_free(&mine);
	}
	track_refs_free(mounts, nm);
	track_snapshot_free(ts);
	if (rc < 0)
		return -1;
	/* The key as the next evaluation computes it: what the mounts hold
	 * but the outputs just observed (the job changed nothing else). */
	if (track_observed_reads(ts->inputs, t, s, outputs, err) < 0)
		return -1;
	cJSON_Delete(ts->keyobj);
	ts->keyobj = track_key_object(t->p, s, track_image_id(t, s), ts->inputs);
	track_key_digest(ts->key, ts->keyobj);
	return 0;
}
