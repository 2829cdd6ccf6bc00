/* Restoring outputs into a claim (volume_write_tree): the tree cpipe
 * checked out of the store on this host goes into a tar (libarchive), and
 * a short helper pod mounting the claim read-write receives it through
 * exec's stdin (kube_exec.c), extracts it into a temporary directory
 * beside the target, inside the claim, and renames it into place. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube_exec.h"

/* Adds host path `path` as `name` to `a`, and below it what a directory
 * holds. Owners are root's: the pod's tar extracts them as its own. */
static int tar_add(struct archive *a, const char *path, const char *name, struct cp_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return cp_error_errno(err, EXIT_USAGE, "%s", path);
	struct archive_entry *e = archive_entry_new();
	archive_entry_copy_stat(e, &st);
	archive_entry_set_pathname(e, name);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_nlink(e, 1);
	char target[4096];
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0) {
			archive_entry_free(e);
			return cp_error_errno(err, EXIT_USAGE, "reading link %s", path);
		}
		target[n] = '\0';
		archive_entry_set_symlink(e, target);
	} else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		archive_entry_free(e);
		return cp_error_set(err, EXIT_USAGE, "%s: not a file, directory or symlink", path);
	}
	int rc = archive_write_header(a, e) == ARCHIVE_OK
		     ? 0
		     : cp_error_set(err, EXIT_RUNTIME, "%s", archive_error_string(a));
	archive_entry_free(e);
	if (rc == 0 && S_ISREG(st.st_mode)) {
		cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return cp_error_errno(err, EXIT_USAGE, "%s", path);
		char buf[65536];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (archive_write_data(a, buf, (size_t)n) < 0)
				return cp_error_set(err, EXIT_RUNTIME, "%s",
						    archive_error_string(a));
		if (n < 0)
			return cp_error_errno(err, EXIT_USAGE, "reading %s", path);
	}
	if (rc < 0 || !S_ISDIR(st.st_mode))
		return rc;
	DIR *d = opendir(path);
	if (!d)
		return cp_error_errno(err, EXIT_USAGE, "opening %s", path);
	for (struct dirent *de; rc == 0 && (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		cleanup_free char *sub = xasprintf("%s/%s", path, de->d_name);
		cleanup_free char *subname = xasprintf("%s/%s", name, de->d_name);
		rc = tar_add(a, sub, subname, err);
	}
	closedir(d);
	return rc;
}

/* The tar of `src` as "t" (and "t/..."), in a temporary file, rewound. */
static int tar_tree(FILE **out, long long *size, const char *src, struct cp_error *err)
{
	FILE *f = tmpfile();
	if (!f)
		return cp_error_errno(err, EXIT_RUNTIME, "creating a temporary file");
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	int rc = archive_write_open_FILE(a, f) == ARCHIVE_OK
		     ? tar_add(a, src, "t", err)
		     : cp_error_set(err, EXIT_RUNTIME, "%s", archive_error_string(a));
	if (archive_write_close(a) != ARCHIVE_OK && rc == 0)
		rc = cp_error_set(err, EXIT_RUNTIME, "%s", archive_error_string(a));
	archive_write_free(a);
	if (rc == 0 && fflush(f) != 0)
		rc = cp_error_errno(err, EXIT_RUNTIME, "writing a temporary file");
	if (rc < 0) {
		fclose(f);
		return -1;
	}
	*size = ftell(f);
	rewind(f);
	*out = f;
	return 0;
}

/* The script that takes `size` bytes of tar from stdin and puts its "t"
 * at `path` of the claim (mounted at /v). */
static char *write_script(const char *path, long long size)
{
	bool root = strcmp(path, "/") == 0;
	const char *slash = strrchr(path, '/');
	cleanup_free char *dir =
	    root || slash == path ? xstrdup("/v") : xasprintf("/v%.*s", (int)(slash - path), path);
	cleanup_free char *target = root ? xstrdup("/v") : xasprintf("/v%s", path);
	cleanup_free char *qdir = kube_sh_quote(dir);
	cleanup_free char *qtarget = kube_sh_quote(target);
	struct strbuf s = STRBUF_INIT;
	sb_addf(&s,
		"set -e\n"
		"mkdir -p %s\n"
		"t=$(mktemp -d %s/.cpipe-restore.XXXXXX)\n"
		"trap 'rm -rf \"$t\"' EXIT\n"
		"head -c %lld | tar -x -o -f - -C \"$t\"\n",
		qdir, qdir, size);
	if (root)
		/* The mount point cannot be renamed: its entries are. */
		sb_addf(&s,
			"for f in /v/* /v/.[!.]* /v/..?*; do\n"
			"  if [ \"$f\" != \"$t\" ] && { [ -e \"$f\" ] || [ -L \"$f\" ]; }; then "
			"rm -rf \"$f\"; fi\n"
			"done\n"
			"for f in \"$t\"/t/* \"$t\"/t/.[!.]* \"$t\"/t/..?*; do\n"
			"  if [ -e \"$f\" ] || [ -L \"$f\" ]; then mv \"$f\" /v/; fi\n"
			"done\n");
	else
		sb_addf(&s,
			"if [ -e %s ] || [ -L %s ]; then mv %s \"$t/old\"; fi\n"
			"mv \"$t/t\" %s\n",
			qtarget, qtarget, qtarget, qtarget);
	return sb_detach(&s);
}

static void to_stderr(void *ud, int stream, const char *data, size_t n)
{
	(void)ud, (void)stream;
	fwrite(data, 1, n, stderr);
}

int kube_volume_write_tree(struct runtime *rt, const char *volume, const char *path,
			   const char *src, struct cp_error *err)
{
	static unsigned seq;
	const struct kube_volume *v = kube_volume_of(rt, volume);
	if (!v)
		return cp_error_set(err, EXIT_USAGE, "volume \"%s\" is not declared", volume);
	cleanup_fclose FILE *tar = NULL;
	long long size = 0;
	if (tar_tree(&tar, &size, src, err) < 0 || kube_namespace_ensure(rt, err) < 0)
		return -1;
	cleanup_free char *raw = xasprintf("%s-write-%lx-%x", rt->project, (long)getpid(), seq++);
	cleanup_free char *name = kube_dns_name(raw, 63);
	cleanup_free char *coll = kube_path(rt, "pods", NULL);
	cJSON *body = kube_helper_pod(rt, name, v->claim, "sleep 600", true);
	int rc = kube_json(rt->k, "POST", coll, body, NULL, NULL, err);
	cJSON_Delete(body);
	if (rc < 0)
		return cp_error_prefix(err, "creating the helper pod for volume \"%s\"", volume);
	int code = 0;
	rc = kube_helper_wait(rt, name, true, &code, err);
	if (rc == 0) {
		cleanup_free char *script = write_script(path, size);
		char *argv[] = {"/bin/sh", "-c", script, NULL};
		struct kube_exec_io io = {.in_fd = fileno(tar), .out = to_stderr};
		rc = kube_exec_pod(rt, name, argv, &io, &code, err);
	}
	if (rc == 0 && code != 0)
		rc = cp_error_set(err, EXIT_RUNTIME,
				  "the helper pod %s could not write %s:%s (exit code %d)", name,
				  volume, path, code);
	struct cp_error e2 = {0};
	if (kube_delete(rt->k, rt, "pods", name, &e2) < 0)
		runtime_note(&rt->sink, RUNTIME_WARNING, NULL, "%s", e2.msg);
	return rc;
}
