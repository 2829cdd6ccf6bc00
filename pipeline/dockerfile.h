/* A Dockerfile reader for the local runtime: what the final (or --target)
 * stage's image would hold as its config (WORKDIR, ENV, USER, ENTRYPOINT,
 * CMD) and which files it copies in. Nothing is built and no RUN step is
 * executed; their lines are listed so the caller can say what was skipped. */
#ifndef CPIPE_PIPELINE_DOCKERFILE_H
#define CPIPE_PIPELINE_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/error.h"
#include "../lib/util.h"

/* One COPY or ADD of the chosen stage's chain (its own and those of the
 * stages it is built FROM), in order. */
struct dockerfile_copy {
	struct strvec src; /* as written, variables substituted */
	char *dest;        /* absolute, against the WORKDIR in effect; normalized */
	bool dest_dir;     /* dest names a directory ("x/", ".", several sources) */
	char *from;        /* --from=...; NULL = the build context */
	char *chown;       /* --chown=..., NULL = none */
	char *chmod;       /* --chmod=..., NULL = none */
	bool add;          /* ADD rather than COPY */
	bool heredoc;      /* COPY <<EOF: the content is in the Dockerfile */
	int line;
	/* --from a stage of this Dockerfile: that stage's own COPYs from the
	 * build context, to tell where on the host a path of it may be. */
	struct dockerfile_copy *from_copies;
	size_t nfrom_copies;
};

/* Where a config field was last set: a Dockerfile line, 0 = not set. */
struct dockerfile_image {
	char *stage_name;  /* AS name of the chosen stage, NULL when unnamed */
	char *base;        /* the image the chain starts FROM ("python:3.11-slim") */
	int base_line;
	char *workdir;     /* absolute; NULL = not set (the base image's) */
	int workdir_line;
	struct kvvec env;  /* ENV, in order of first setting */
	int env_line;      /* the last ENV */
	char *user;
	int user_line;
	struct strvec entrypoint;
	bool has_entrypoint;
	int entrypoint_line;
	struct strvec cmd;
	bool has_cmd;      /* set in the chain (CMD), and not cleared by ENTRYPOINT */
	int cmd_line;
	struct dockerfile_copy *copies;
	size_t ncopies;
	int *runs;         /* lines of the RUN steps of the chain */
	size_t nruns;
	struct strvec notes; /* "line N: ..." about what was read but has no local meaning */
};

/* Reads Dockerfile `text` (`len` bytes; NUL bytes are refused) and fills
 * *out with the config of stage `target` (matched case-insensitively; NULL
 * = the last stage). `args` are the build args (values may be NULL: taken
 * from `env`, the interpolation environment, as docker does for `--build-arg
 * NAME`); `name` names the file in messages. Errors are "name:line: ..."
 * with err->code EXIT_USAGE. Free *out with dockerfile_image_free (also
 * after an error). */
int dockerfile_read(struct dockerfile_image *out, const char *text, size_t len,
		    const char *name, const char *target, const struct kvvec *args,
		    const struct kvvec *env, struct cp_error *err);
void dockerfile_image_free(struct dockerfile_image *img);

/* Expands $VAR, ${VAR}, ${VAR:-word}, ${VAR-word}, ${VAR:+word},
 * ${VAR+word} and ${VAR:?message} in `word` from `vars`, processing quotes
 * and the escape character `esc` as a Dockerfile does for ENV, WORKDIR,
 * USER, COPY. Caller frees the result; NULL with err set when malformed. */
char *dockerfile_expand(const char *word, const struct kvvec *vars, char esc,
			struct cp_error *err);

#endif
