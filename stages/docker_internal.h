/* Shared by the docker runtime's files: docker.c (runtime, images,
 * containers), docker_volume.c (volumes) and docker_build.c (builds). */
#ifndef CPIPE_STAGES_DOCKER_INTERNAL_H
#define CPIPE_STAGES_DOCKER_INTERNAL_H

#include <stdio.h>

#include "docker_api.h"
#include "runtime.h"

#define LABEL_PROJECT "com.cpipe.project"
#define LABEL_STAGE "com.cpipe.stage"
#define LABEL_RUN "com.cpipe.run"
#define LABEL_VOLUME "com.cpipe.volume"
#define LABEL_HELPER "com.cpipe.helper"

struct image_entry {
	char *ref; /* normalized: always with a tag or digest */
	char *id;
	bool built; /* by this runtime, not merely found */
};

struct runtime {
	struct docker *d; /* the main thread's client */
	const struct pipeline *p;
	char *project; /* p->name, normalized as compose does */
	char *network; /* <project>_default */
	bool network_ready;
	struct image_entry *images; /* prepared during this runtime's life */
	size_t nimages;
	char *state_dir;    /* absolute .cpipe, left out of build contexts */
	struct strvec runs; /* run ids we created containers for */
	int live;           /* containers created and not yet removed */
};

/* The Docker name of volume `key`: its name:, else <project>_<key>. Caller
 * owns. */
char *docker_volume_name(const struct runtime *rt, const char *key);

/* A JSON filters= value selecting label `key=value` (and `key2=value2`
 * when key2 is not NULL), URL-escaped. Caller owns. */
char *docker_label_filter(struct runtime *rt, const char *key, const char *value,
			  const char *key2, const char *value2);

/* Removes a container and its anonymous volumes' references (force=1,
 * v=0); a container that is already gone is fine. */
int docker_container_remove(struct docker *d, const char *id, struct cp_error *err);

/* docker_volume.c: the runtime_ops volume members. */
int docker_volume_ensure(struct runtime *rt, const struct volume *v, struct cp_error *err);
int docker_volume_list(struct runtime *rt, struct volume_info **out, size_t *nout,
		       struct cp_error *err);
int docker_volume_remove(struct runtime *rt, const char *name, struct cp_error *err);
int docker_volume_host_path(struct runtime *rt, const char *volume, char **out,
			    struct cp_error *err);
int docker_volume_read_tree(struct runtime *rt, const char *volume, const char *path,
			    int (*visit)(void *ud, const struct tree_entry *e, struct cp_error *err),
			    void *ud, struct cp_error *err);

/* docker_build.c: builds `b` as image `tag` with `labels`, streaming the
 * builder's output to `out`, each line prefixed with `prefix`. `skip`
 * (absolute, may be NULL) is left out of the context: cpipe's state
 * directory. *id_out is the image ID; caller owns it. */
int docker_build_image(char **id_out, struct docker *d, const struct build *b, const char *tag,
		       const struct kvvec *labels, const char *skip, FILE *out,
		       const char *prefix, struct cp_error *err);

/* Writes the build context `dir` as a tar to `f`, leaving out `skip`
 * (absolute, may be NULL) and what .dockerignore excludes, but always
 * keeping `dockerfile` (relative to dir) and .dockerignore itself. */
int docker_context_tar(FILE *f, const char *dir, const char *dockerfile, const char *skip,
		       struct cp_error *err);

#endif
