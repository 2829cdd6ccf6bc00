/* Drives a remote for bench/remote: "fetch URL STATE_DIR KEY" downloads
 * the run cache entry KEY and its objects into the store under STATE_DIR
 * (verifying each), the transfer `cpipe pull` makes before its checkout. */
#include <stdio.h>
#include <string.h>

#include "../artifacts/remote.h"

int main(int argc, char **argv)
{
	struct cp_error err = {0};
	struct cas *c = NULL;
	struct remote *r = NULL;
	if (argc != 5 || strcmp(argv[1], "fetch") != 0) {
		fprintf(stderr, "usage: remote_driver fetch URL STATE_DIR KEY\n");
		return 2;
	}
	struct strvec keys = {0};
	strvec_push(&keys, argv[4]);
	bool found = false;
	struct remote_stats st;
	int rc = remote_open(&r, argv[2], ".", &err) < 0 || cas_open(&c, argv[3], &err) < 0 ||
		 remote_fetch(&st, &found, r, c, &keys, &err) < 0;
	if (!rc && !found)
		snprintf(err.msg, sizeof(err.msg), "%s has no entry %s", argv[2], argv[4]);
	strvec_free(&keys);
	cas_close(c);
	remote_close(r);
	if (rc || !found) {
		fprintf(stderr, "remote_driver: %s\n", err.msg);
		return 1;
	}
	return 0;
}
