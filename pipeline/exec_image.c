/* The executor's image jobs: a stage's image is built or pulled as work of
 * the loop (runtime_ops image_start), its progress read from a descriptor
 * in the loop's poll set, so that the other stages' lines keep flowing;
 * the stage starts once its image is there, from the ID the job gave. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_internal.h"
#include "task.h"

/* An image job of another stage under way that makes the same image:
 * the one build: (the executor chose one per image name), or the same
 * image: pulled. */
static bool same_job_under_way(const struct run *r, const struct slot *sl,
			       const struct task_desc *d)
{
	for (size_t i = 0; i < r->p->nstages; i++) {
		const struct slot *o = &r->slots[i];
		if (o == sl || !o->img)
			continue;
		const char *b = o->img_build_stage;
		if (d->build_stage && b && !strcmp(b, d->build_stage))
			return true;
		if (!d->build_stage && !b && o->s->image && d->image &&
		    !strcmp(o->s->image, d->image))
			return true;
	}
	return false;
}

/* Jobs under way; with `builds`, only those that build. */
static size_t jobs_under_way(const struct run *r, bool builds)
{
	size_t n = 0;
	for (size_t i = 0; i < r->p->nstages; i++)
		n += r->slots[i].img && (!builds || r->slots[i].img_build_stage);
	return n;
}

static void image_text(struct run *r, struct slot *sl, const char *data, size_t n, bool last);

/* The job is over: the stage's image ID, or the stage fails (with it, as
 * a failing stage does, the run). */
static void job_over(struct run *r, struct slot *sl)
{
	struct cp_error e = {0};
	char *id = NULL;
	int rc = r->ops->image_end(r->rt, sl->img, &id, &e);
	bool cancelled = sl->img_cancelled;
	sl->img = NULL;
	sl->img_fd = -1;
	sl->img_cancelled = false;
	free(sl->img_build_stage);
	sl->img_build_stage = NULL;
	image_text(r, sl, "", 0, true); /* an unterminated last line */
	sb_reset(&sl->img_line);
	const char *how = rc == 0 ? "ready" : "failed";
	if (rc < 0 && cancelled)
		how = "stopped";
	progress_image_end(r->pr, (size_t)(sl - r->slots), how);
	progress_flush(r->pr);
	if (rc == 0) {
		free(sl->image_id);
		sl->image_id = id;
		sl->image_ready = true;
		return;
	}
	if (cancelled)
		return; /* the run is stopping: the stage stays not started */
	exec_image_failed(r, sl, &e);
}

/* Shows progress text `data` of the stage's job, whole lines, and with
 * `last` an unterminated rest. */
static void image_text(struct run *r, struct slot *sl, const char *data, size_t n, bool last)
{
	struct strbuf *pb = &sl->img_line;
	sb_add(pb, data, n);
	size_t off = 0;
	for (;;) {
		const char *nl = memchr(pb->buf + off, '\n', pb->len - off);
		if (!nl && !(last && off < pb->len))
			break;
		size_t len = nl ? (size_t)(nl - (pb->buf + off)) : pb->len - off;
		cleanup_free char *raw = xstrndup(pb->buf + off, len);
		cleanup_free char *masked = redactor_text(&r->p->secrets, raw);
		progress_image_line(r->pr, (size_t)(sl - r->slots), masked, strlen(masked));
		off += len + (nl ? 1 : 0);
	}
	if (off) {
		memmove(pb->buf, pb->buf + off, pb->len - off);
		pb->len -= off;
		pb->buf[pb->len] = '\0';
	}
	progress_flush(r->pr);
}

bool exec_image_ready(struct run *r, struct slot *sl)
{
	if (!r->ops->caps.images || sl->image_ready)
		return true;
	if (sl->img || r->stopping)
		return false;
	struct task_desc d;
	task_desc_init(&d, r->p, sl->s);
	/* One job per image, and at most -j builds at once (a pull, or an
	 * image found as it is, waits for none). */
	if (same_job_under_way(r, sl, &d) ||
	    (d.build && jobs_under_way(r, true) >= (size_t)r->o->jobs))
		return false;
	struct cp_error e = {0};
	int fd = -1;
	progress_hide(r->pr); /* runtimes write to stderr */
	if (r->ops->image_start(r->rt, &d, &sl->img, &fd, &e) < 0) {
		sl->img = NULL;
		exec_image_failed(r, sl, &e);
		return false;
	}
	sl->img_fd = fd;
	sl->img_build_stage = d.build_stage ? xstrdup(d.build_stage) : NULL;
	if (fd < 0) { /* known at once */
		job_over(r, sl);
		return sl->image_ready;
	}
	progress_image(r->pr, (size_t)(sl - r->slots), d.build ? "building" : "pulling");
	return false;
}

void exec_image_pump(struct run *r, struct slot *sl)
{
	char buf[16384];
	while (sl->img) {
		ssize_t n = read(sl->img_fd, buf, sizeof(buf));
		if (n > 0) {
			image_text(r, sl, buf, (size_t)n, false);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		job_over(r, sl); /* end of file (or a broken pipe): the job is over */
	}
}

void exec_image_cancel_all(struct run *r)
{
	for (size_t i = 0; i < r->p->nstages; i++) {
		struct slot *sl = &r->slots[i];
		if (sl->img && !sl->img_cancelled) {
			sl->img_cancelled = true;
			r->ops->image_cancel(r->rt, sl->img);
		}
	}
}

bool exec_images_busy(const struct run *r)
{
	return jobs_under_way(r, false) > 0;
}

void exec_image_free(struct slot *sl)
{
	sb_free(&sl->img_line);
	free(sl->image_id);
	free(sl->img_build_stage);
	sl->image_id = sl->img_build_stage = NULL;
}
