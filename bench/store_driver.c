/* Drives the artifact store for bench/store: "commit PATH STATE_DIR" stores
 * a tree (hash while copying) and prints its digest; "restore DIGEST TYPE
 * STATE_DIR DEST" checks it out as DEST (replacing it). */
#include <stdio.h>
#include <string.h>

#include "../artifacts/cas.h"
#include "../lib/fs.h"

int main(int argc, char **argv)
{
	struct cp_error err = {0};
	struct cas *c = NULL;
	if (argc == 4 && strcmp(argv[1], "commit") == 0) {
		struct tree_digest td;
		if (cas_open(&c, argv[3], &err) < 0 || cas_commit(&td, c, argv[2], NULL, &err) < 0)
			goto fail;
		printf("%s\n", td.digest);
	} else if (argc == 6 && strcmp(argv[1], "restore") == 0) {
		struct cas_checkout co = CAS_CHECKOUT_INIT;
		cleanup_free char *parent = path_dirname(argv[5]);
		const char *slash = strrchr(argv[5], '/');
		if (cas_open(&c, argv[4], &err) < 0 ||
		    cas_checkout_stage(&co, c, parent, slash ? slash + 1 : argv[5], argv[3][0],
				       argv[2], argv[5], &err) < 0 ||
		    cas_checkout_commit(&co, &err) < 0)
			goto fail;
	} else {
		fprintf(stderr, "usage: store_driver commit PATH STATE_DIR | restore DIGEST TYPE "
				"STATE_DIR DEST\n");
		return 2;
	}
	cas_close(c);
	return 0;
fail:
	fprintf(stderr, "store_driver: %s\n", err.msg);
	cas_close(c);
	return 1;
}
