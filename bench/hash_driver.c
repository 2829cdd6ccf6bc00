/* Benchmark driver for bench/hash (cpipe has no hidden subcommand for it).
 *   hash_driver file PATH [CACHE]   digest_file, through the stat cache at CACHE
 *   hash_driver tree PATH [CACHE]   digest_tree
 *   hash_driver each ROOT [CACHE]   digest_trees of every entry of ROOT at once,
 *                                   as `status` would for all stages' outputs
 *   hash_driver each1 ROOT [CACHE]  the same, one digest_tree call per entry
 * Prints the digest(s) on stdout and, on stderr, the time spent inside the
 * process from before the cache is opened to after it is saved. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../artifacts/digest.h"
#include "../artifacts/statcache.h"
#include "../lib/fs.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int one(const char *mode, const char *path, struct statcache *sc, struct cp_error *err)
{
	if (strcmp(mode, "file") == 0) {
		char d[DIGEST_BUFLEN];
		if (digest_file(d, path, sc, err) < 0)
			return -1;
		printf("%s  %s\n", d, path);
		return 0;
	}
	struct tree_digest t;
	if (digest_tree(&t, path, sc, err) < 0)
		return -1;
	printf("%s %c %llu bytes %llu files  %s\n", t.digest, t.type, t.size, t.nfiles, path);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: hash_driver file|tree|each|each1 PATH [CACHE]\n");
		return 2;
	}
	double t0 = now_us();
	struct cp_error err = {0};
	struct statcache *sc = NULL;
	if (argc == 4 && statcache_open(&sc, argv[3], &err) < 0)
		goto fail;
	unsigned long long n0 = digest_files_hashed();
	if (strcmp(argv[1], "each") == 0 || strcmp(argv[1], "each1") == 0) {
		struct strvec paths = {0};
		DIR *d = opendir(argv[2]);
		if (!d) {
			perror(argv[2]);
			return 1;
		}
		struct dirent *de;
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				strvec_push_take(&paths, path_join(argv[2], de->d_name));
		closedir(d);
		int rc = 0;
		if (strcmp(argv[1], "each1") == 0) {
			for (size_t i = 0; rc == 0 && i < paths.n; i++)
				rc = one("tree", paths.v[i], sc, &err);
		} else {
			struct tree_request *reqs = xcalloc(paths.n ? paths.n : 1, sizeof(*reqs));
			for (size_t i = 0; i < paths.n; i++)
				reqs[i].path = paths.v[i];
			rc = digest_trees(reqs, paths.n, sc, &err);
			for (size_t i = 0; rc == 0 && i < paths.n; i++)
				printf("%s d %llu bytes %llu files  %s\n", reqs[i].out.digest,
				       reqs[i].out.size, reqs[i].out.nfiles, reqs[i].path);
			free(reqs);
		}
		strvec_free(&paths);
		if (rc < 0)
			goto fail;
	} else if (one(argv[1], argv[2], sc, &err) < 0) {
		goto fail;
	}
	if (sc && statcache_save(sc, &err) < 0)
		goto fail;
	fprintf(stderr, "hash_driver: %.3f ms in process, %llu files read, %zu cache entries\n",
		(now_us() - t0) / 1e3, digest_files_hashed() - n0, sc ? statcache_count(sc) : 0);
	statcache_free(sc);
	return 0;
fail:
	fprintf(stderr, "hash_driver: %s\n", err.msg);
	statcache_free(sc);
	return 1;
}
