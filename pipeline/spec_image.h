/* The local runtime's image: a stage with build: takes its Dockerfile's
 * config (WORKDIR, ENV, USER, ENTRYPOINT, CMD) where the spec leaves a field
 * unset, and sees the build context's COPY/ADD sources read-only where the
 * image would hold them. On docker/podman the engine builds the image and
 * none of this applies. */
#ifndef CPIPE_PIPELINE_SPEC_IMAGE_H
#define CPIPE_PIPELINE_SPEC_IMAGE_H

#include "spec.h"

enum image_field {
	IMAGE_COMMAND,
	IMAGE_ENTRYPOINT,
	IMAGE_WORKING_DIR,
	IMAGE_USER,
	IMAGE_ENVIRONMENT,
	IMAGE_FIELDS
};

/* One COPY/ADD source from the build context and where it lands. */
struct image_entry {
	char *source; /* absolute host path inside the context */
	char *dest;   /* absolute path in the stage */
	bool dir;     /* a directory: its contents land at dest */
	int line;     /* of the COPY/ADD */
};

struct stage_image {
	char *dockerfile; /* absolute host path */
	char *shown;      /* the Dockerfile as messages name it */
	char *base;       /* the external image the final stage is built FROM */
	char *state;      /* the project's .cpipe: never image content */
	char *error;      /* why it could not be read; a planned stage fails with it */
	/* "Dockerfile:5" where the Dockerfile gave the field, NULL where the
	 * spec did (or nobody). */
	char *origin[IMAGE_FIELDS];
	struct image_entry *entries;
	size_t nentries;
	size_t nbinds; /* read-only binds added to the stage's mounts */
	struct strvec warnings; /* "Dockerfile:N: ..." what is not reproduced */
};

/* For every stage with build:, reads its Dockerfile and fills the stage's
 * unset fields and mounts as above; `env` is the interpolation environment
 * (for build args given without a value). What cannot be reproduced (RUN
 * steps, COPY --from, URLs) becomes one warning per stage in p->warnings.
 * A Dockerfile that cannot be read is not an error here: the stage keeps
 * the message (image_cfg->error) and plan_check_runnable fails with it when
 * the stage is planned. Fails only on I/O errors that are not the stage's. */
int spec_image_apply(struct pipeline *p, const struct kvvec *env, struct cp_error *err);
void spec_image_free(struct stage_image *img);

/* The build-context files stage `s`'s image takes through COPY/ADD
 * (absolute host paths of regular files and symlinks, .dockerignore
 * honoured, sorted, no duplicates), for the stage's cache key. Empty for a
 * stage the Dockerfile reader did not see. */
int spec_image_files(struct strvec *out, const struct stage *s, struct cp_error *err);

/* The local runtime's checks for planned stage `s`: its Dockerfile was
 * read, and it has a command. Errors are EXIT_USAGE complete sentences,
 * at the stage's file:line:col, naming both ways out (a command:, or
 * --runtime docker). */
int spec_image_check_local(const struct stage *s, struct cp_error *err);

#endif
