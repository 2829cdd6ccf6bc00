/* verify --rerun (see rerun.h): scratch copies of a stage's writable
 * mounts, the stage run on them through the executor, and its outputs
 * compared with cpipe.lock. */
#include "rerun.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../artifacts/digest.h"
#include "../lib/fs.h"
#include "exec.h"
#include "plan.h"
#include "track_internal.h"

/* One writable mount source and its copy. */
struct scratch {
	enum mount_type type;
	char *source; /* volume name or host path, as the spec says */
	char *dir;    /* the copy */
};

/* A mount as the spec had it, to put back. */
struct saved_mount {
	struct mount *m;
	enum mount_type type;
	char *source;
	bool read_only;
};

struct rerun {
	struct pipeline *p;
	const struct runtime_ops *ops;
	struct runtime *rt;
	const struct rerun_options *o;
	char *top; /* <state_dir>/tmp/rerun.<pid> */
	struct scratch *sv;
	size_t nsv;
	struct saved_mount *saved;
	size_t nsaved;
};

static int copy_file(int sfd, int dfd, const char *name, const struct stat *st,
		     const char *shown, struct cp_error *err)
{
	cleanup_close int src = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return cp_error_errno(err, EXIT_USAGE, "reading %s", shown);
	cleanup_close int dst =
		openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0)
		return cp_error_errno(err, EXIT_USAGE, "creating the scratch copy of %s", shown);
	if (ioctl(dst, FICLONE, src) < 0) {
		for (off_t left = st->st_size; left > 0;) {
			ssize_t n = copy_file_range(src, NULL, dst, NULL, (size_t)left, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return cp_error_errno(err, EXIT_USAGE, "copying %s", shown);
			if (n == 0)
				break; /* shrank meanwhile: the copy is what was there */
			left -= n;
		}
	}
	struct timespec times[2] = {st->st_atim, st->st_mtim};
	if (fchown(dst, st->st_uid, st->st_gid) < 0 && errno != EPERM)
		return cp_error_errno(err, EXIT_USAGE, "copying %s", shown);
	if (fchmod(dst, st->st_mode & 07777) < 0 || futimens(dst, times) < 0)
		return cp_error_errno(err, EXIT_USAGE, "copying %s", shown);
	return 0;
}

static bool skipped(const struct strvec *skip, const char *rel)
{
	for (size_t i = 0; i < skip->n; i++)
		if (strcmp(skip->v[i], rel) == 0)
			return true;
	return false;
}

/* Copies the directory `sfd` into the empty directory `dfd`, leaving out
 * the paths `skip` names (relative to the top, no leading '/'). Symlinks
 * are copied as links, never followed; other special files are left out. */
static int copy_tree(int sfd, int dfd, const char *rel, const char *shown,
		     const struct strvec *skip, struct cp_error *err)
{
	int fd = dup(sfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return cp_error_errno(err, EXIT_USAGE, "reading %s/%s", shown, rel);
	}
	int rc = 0;
	for (struct dirent *de; rc == 0 && (de = readdir(d));) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		cleanup_free char *sub = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
		cleanup_free char *what = xasprintf("%s/%s", shown, sub);
		if (skipped(skip, sub))
			continue;
		struct stat st;
		if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = cp_error_errno(err, EXIT_USAGE, "reading %s", what);
		} else if (S_ISDIR(st.st_mode)) {
			if (mkdirat(dfd, name, 0700) < 0) {
				rc = cp_error_errno(err, EXIT_USAGE,
						    "creating the scratch copy of %s", what);
				continue;
			}
			cleanup_close int s2 =
				openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			cleanup_close int d2 =
				openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s2 < 0 || d2 < 0)
				rc = cp_error_errno(err, EXIT_USAGE, "opening %s", what);
			else if ((rc = copy_tree(s2, d2, sub, shown, skip, err)) == 0 &&
				 ((fchown(d2, st.st_uid, st.st_gid) < 0 && errno != EPERM) ||
				  fchmod(d2, st.st_mode & 07777) < 0))
				rc = cp_error_errno(err, EXIT_USAGE, "copying %s", what);
		} else if (S_ISREG(st.st_mode)) {
			rc = copy_file(sfd, dfd, name, &st, what, err);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = fs_readlink_at(target, sfd, name, what, err);
			if (n < 0 || symlinkat(target, dfd, name) < 0)
				rc = n < 0 ? -1
					   : cp_error_errno(err, EXIT_USAGE, "copying %s", what);
			else if (fchownat(dfd, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 &&
				 errno != EPERM)
				rc = cp_error_errno(err, EXIT_USAGE, "copying %s", what);
		}
	}
	closedir(d);
	return rc;
}

/* The stage's outputs and metrics inside a mount of `type` and `source`,
 * as paths relative to it ("" = the whole mount). */
static void outputs_in(struct strvec *out, const struct stage *s, enum mount_type type,
		       const char *source)
{
	for (int kind = 0; kind < 2; kind++) {
		const struct artifact_ref *refs = kind ? s->metrics : s->outputs;
		size_t n = kind ? s->nmetrics : s->noutputs;
		for (size_t i = 0; i < n; i++) {
			const char *rel = NULL;
			size_t len = strlen(source);
			if (type == MOUNT_VOLUME && refs[i].volume && strcmp(refs[i].volume, source) == 0)
				rel = refs[i].path;
			else if (type == MOUNT_BIND && !refs[i].volume &&
				 strncmp(refs[i].path, source, len) == 0 &&
				 (refs[i].path[len] == '/' || refs[i].path[len] == '\0'))
				rel = refs[i].path + len;
			if (!rel)
				continue;
			while (*rel == '/')
				rel++;
			strvec_push(out, rel);
		}
	}
}

/* The scratch copy of a mount source, made on first use from the real
 * one without the outputs of `s`. */
static struct scratch *scratch_get(struct rerun *r, const struct stage *s, const struct mount *m,
				   struct cp_error *err)
{
	for (size_t i = 0; i < r->nsv; i++)
		if (r->sv[i].type == m->type && strcmp(r->sv[i].source, m->source) == 0)
			return &r->sv[i];
	cleanup_free char *real = NULL;
	if (m->type == MOUNT_VOLUME) {
		if (r->ops->volume_host_path(r->rt, m->source, &real, err) < 0) {
			cp_error_prefix(err, "verify --rerun copies volume \"%s\"", m->source);
			return NULL;
		}
	} else {
		real = xstrdup(m->source);
	}
	char *dir = xasprintf("%s/%zu", r->top, r->nsv);
	r->sv = xrealloc(r->sv, (r->nsv + 1) * sizeof(*r->sv));
	struct scratch *sc = &r->sv[r->nsv++];
	*sc = (struct scratch){m->type, xstrdup(m->source), dir};
	if (mkdir(dir, 0755) < 0) {
		cp_error_errno(err, EXIT_USAGE, "creating %s", dir);
		return NULL;
	}
	struct strvec skip = {0};
	outputs_in(&skip, s, m->type, m->source);
	cleanup_close int sfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int serr = errno;
	cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;
	if (dfd < 0) {
		rc = cp_error_errno(err, EXIT_USAGE, "opening %s", dir);
	} else if (sfd < 0 && serr != ENOENT) { /* a volume never written is empty */
		errno = serr;
		rc = cp_error_errno(err, EXIT_USAGE, "opening %s", real);
	}
	if (rc == 0 && sfd >= 0 && !skipped(&skip, ""))
		rc = copy_tree(sfd, dfd, "", m->type == MOUNT_VOLUME ? m->source : real, &skip,
			       err);
	strvec_free(&skip);
	return rc < 0 ? NULL : sc;
}

/* Points every writable mount of `s` at its scratch copy. */
static int redirect_mounts(struct rerun *r, struct stage *s, const struct stage *owner,
			   struct cp_error *err)
{
	for (size_t i = 0; i < s->nmounts; i++) {
		struct mount *m = &s->mounts[i];
		if (m->type == MOUNT_TMPFS || m->read_only)
			continue;
		struct scratch *sc = scratch_get(r, owner, m, err);
		if (!sc)
			return -1;
		r->saved = xrealloc(r->saved, (r->nsaved + 1) * sizeof(*r->saved));
		r->saved[r->nsaved++] = (struct saved_mount){m, m->type, m->source, m->read_only};
		m->type = MOUNT_BIND;
		m->source = xstrdup(sc->dir);
	}
	return 0;
}

/* Puts the spec's mounts back and removes the scratch copies. */
static void restore(struct rerun *r)
{
	for (size_t i = 0; i < r->nsaved; i++) {
		struct saved_mount *sm = &r->saved[i];
		free(sm->m->source);
		sm->m->type = sm->type;
		sm->m->source = sm->source;
		sm->m->read_only = sm->read_only;
	}
	free(r->saved);
	r->saved = NULL;
	r->nsaved = 0;
	for (size_t i = 0; i < r->nsv; i++) {
		free(r->sv[i].source);
		free(r->sv[i].dir);
	}
	free(r->sv);
	r->sv = NULL;
	r->nsv = 0;
	struct cp_error ignored = {0};
	fs_rm_rf(r->top, &ignored);
}

/* Where output `ref` of the rerun stage is: a scratch copy and the path
 * inside it. NULL when no writable mount of the stage holds it. */
static const char *output_root(const struct rerun *r, const struct artifact_ref *ref,
			       const char **rel)
{
	for (size_t i = 0; i < r->nsv; i++) {
		const struct scratch *sc = &r->sv[i];
		size_t len = strlen(sc->source);
		if (ref->volume && sc->type == MOUNT_VOLUME && strcmp(ref->volume, sc->source) == 0) {
			*rel = ref->path;
			return sc->dir;
		}
		if (!ref->volume && sc->type == MOUNT_BIND && strncmp(ref->path, sc->source, len) == 0 &&
		    (ref->path[len] == '/' || ref->path[len] == '\0')) {
			*rel = ref->path[len] ? ref->path + len : "/";
			return sc->dir;
		}
	}
	return NULL;
}

/* The digest of the rerun's output `ref`, or "missing". Caller owns. */
static int rerun_digest(char **out, const struct rerun *r, const struct artifact_ref *ref,
			struct cp_error *err)
{
	const char *rel;
	const char *root = output_root(r, ref, &rel);
	struct stat st;
	int there = root ? fs_lstat_beneath(&st, root, rel, err) : 1;
	if (there < 0)
		return -1;
	if (there == 1) {
		*out = xstrdup("missing");
		return 0;
	}
	struct tree_digest td;
	if (digest_tree_in(&td, root, rel, NULL, err) < 0)
		return -1;
	*out = xstrdup(td.digest);
	return 0;
}

/* The digest cpipe.lock's entry `locked` records for `ref` in `part`
 * ("inputs", "outputs"), NULL if none; *name (caller owns) is how the lock
 * names it. */
static const char *locked_digest(char **name, const struct rerun *r, const cJSON *locked,
				 const char *part, const struct artifact_ref *ref)
{
	*name = track_ref_name(r->p, ref->volume, ref->path);
	return track_entry_digest(cJSON_GetObjectItem(cJSON_GetObjectItem(locked, part), *name));
}

/* Fails naming the first input of `s` whose digest in the volumes is not
 * the one cpipe.lock recorded: a rerun on other inputs would prove
 * nothing. */
static int inputs_as_locked(const struct rerun *r, const struct stage *s, const cJSON *locked,
			    struct cp_error *err)
{
	for (size_t i = 0; i < s->ninputs; i++) {
		const struct artifact_ref *ref = &s->inputs[i];
		cleanup_free char *name = NULL;
		const char *want = locked_digest(&name, r, locked, "inputs", ref);
		cleanup_free char *root = NULL;
		if (ref->volume && r->ops->volume_host_path(r->rt, ref->volume, &root, err) < 0)
			return -1;
		struct stat st;
		struct tree_digest td = {0};
		int there = root ? fs_lstat_beneath(&st, root, ref->path, err)
				 : lstat(ref->path, &st) < 0;
		if (there < 0 || (there == 0 && digest_tree_in(&td, root, ref->path, NULL, err) < 0))
			return -1;
		if (!want || there == 1 || strcmp(want, td.digest) != 0) {
			return cp_error_set(
			    err, EXIT_STAGE_FAILED,
			    "stage \"%s\": input %s is %s, not what cpipe.lock "
			    "recorded; put the locked state back first (cpipe run, or "
			    "cpipe checkout REV)",
			    s->name, name, there == 1 ? "missing" : td.digest);
		}
	}
	return 0;
}

/* Runs `s` (with the services it depends on) on scratch copies and adds
 * its result to `results`. */
static int rerun_stage(cJSON *results, struct rerun *r, struct stage *s, const cJSON *locked,
		       struct cp_error *err)
{
	struct strvec names = {0};
	strvec_push(&names, s->name);
	int rc = -1;
	struct plan plan = {0};
	cleanup_free char *run_id = NULL;
	cleanup_free char *state = NULL;
	if (inputs_as_locked(r, s, locked, err) < 0)
		goto out;
	if (mkdir(r->top, 0700) < 0) {
		cp_error_errno(err, EXIT_USAGE, "creating %s", r->top);
		goto out;
	}
	if (redirect_mounts(r, s, s, err) < 0)
		goto out;
	for (size_t d = 0; d < s->ndeps; d++) {
		long k = pipeline_stage_index(r->p, s->deps[d].stage);
		if (k < 0 || !r->p->stages[k].service)
			continue;
		strvec_push(&names, r->p->stages[k].name);
		if (redirect_mounts(r, &r->p->stages[k], s, err) < 0)
			goto out;
	}
	if (plan_build(&plan, r->p, (const char *const *)names.v, names.n, true, NULL, err) < 0)
		goto out;
	char *id = exec_new_run_id();
	run_id = xasprintf("verify-%s", id);
	free(id);
	state = path_join(r->top, "state");
	/* No hooks: the executor builds and pulls the images as run does. */
	struct exec_options eo = {.jobs = 1, .quiet = r->o->quiet, .run_id = run_id,
				  .state_dir = state, .logs_to_stderr = r->o->logs_to_stderr};
	if (!r->o->quiet)
		fprintf(stderr, "cpipe: verify: rerunning %s on scratch copies of its writable mounts\n",
			s->name);
	if (exec_run(&plan, r->ops, r->rt, &eo, err) < 0)
		goto out;
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "stage", s->name);
	cJSON *diff = cJSON_AddArrayToObject(e, "outputs");
	cJSON_AddItemToArray(results, e);
	for (size_t i = 0; i < s->noutputs; i++) {
		cleanup_free char *name = NULL;
		const char *want = locked_digest(&name, r, locked, "outputs", &s->outputs[i]);
		cleanup_free char *have = NULL;
		if (rerun_digest(&have, r, &s->outputs[i], err) < 0)
			goto out;
		if (want && strcmp(want, have) == 0)
			continue;
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "artifact", name);
		cJSON_AddStringToObject(m, "expected", want ? want : "not locked");
		cJSON_AddStringToObject(m, "actual", have);
		cJSON_AddItemToArray(diff, m);
	}
	cJSON_AddBoolToObject(e, "reproduced", cJSON_GetArraySize(diff) == 0);
	rc = 0;
out:
	plan_free(&plan);
	strvec_free(&names);
	restore(r);
	return rc;
}

int rerun_verify(cJSON **out, struct pipeline *p, const struct runtime_ops *ops,
		 struct runtime *rt, const char *const *names, size_t nnames,
		 const struct rerun_options *o, struct cp_error *err)
{
	const cJSON *stages = cJSON_GetObjectItem(o->lock, "stages");
	bool *want = xcalloc(p->nstages ? p->nstages : 1, sizeof(*want));
	for (size_t i = 0; i < nnames; i++) {
		long k = pipeline_stage_index(p, names[i]);
		if (k < 0) {
			free(want);
			return pipeline_unknown_stage(p, names[i], err);
		}
		const struct stage *s = &p->stages[k];
		if (s->service || !s->noutputs || !cJSON_GetObjectItem(stages, s->name)) {
			free(want);
			return cp_error_set(
			    err, EXIT_USAGE,
			    "stage \"%s\": %s; verify --rerun compares a job's outputs "
			    "with cpipe.lock (cpipe run %s first)",
			    s->name,
			    s->service     ? "is a service"
			    : !s->noutputs ? "declares no outputs"
					   : "is not in cpipe.lock",
			    s->name);
		}
		want[k] = true;
	}
	for (size_t k = 0; nnames == 0 && k < p->nstages; k++)
		want[k] = !p->stages[k].service && p->stages[k].noutputs &&
			  cJSON_GetObjectItem(stages, p->stages[k].name);
	struct rerun r = {.p = p, .ops = ops, .rt = rt, .o = o};
	r.top = xasprintf("%s/tmp/rerun.%ld", o->state_dir, (long)getpid());
	cleanup_free char *tmp = path_join(o->state_dir, "tmp");
	cJSON *results = cJSON_CreateArray();
	int rc = fs_mkdir_p(tmp, 0700, err);
	fs_sweep_dead(tmp, "rerun.", "");
	for (size_t k = 0; rc == 0 && k < p->nstages; k++)
		if (want[k])
			rc = rerun_stage(results, &r, &p->stages[k],
					 cJSON_GetObjectItem(stages, p->stages[k].name), err);
	free(want);
	free(r.top);
	if (rc < 0) {
		cJSON_Delete(results);
		return -1;
	}
	*out = results;
	return 0;
}
