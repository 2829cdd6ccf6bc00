/* Shared by dockerfile.c and dockerfile_lex.c only. */
#ifndef CPIPE_PIPELINE_DOCKERFILE_INTERNAL_H
#define CPIPE_PIPELINE_DOCKERFILE_INTERNAL_H

#include "../lib/util.h"

/* Splits an instruction's arguments at blanks outside quotes; quotes and
 * escapes are kept for dockerfile_expand. */
void dockerfile_split_words(struct strvec *out, const char *s, char esc);

#endif
