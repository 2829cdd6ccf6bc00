/* What the runtimes that read volumes back as a tar share (docker's
 * archive stream, kubernetes' helper pod): the tar's entries as a
 * volume_read_tree visit sees them. */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>

#include "runtime.h"

static long entry_read(const struct volume_entry *e, void *buf, size_t n, struct cp_error *err)
{
	struct archive *a = e->priv;
	la_ssize_t k = archive_read_data(a, buf, n);
	if (k < 0)
		return cp_error_set(err, EXIT_RUNTIME, "reading %s: %s", e->path,
				    archive_error_string(a));
	return (long)k;
}

int runtime_tar_visit(struct archive *a,
		      int (*visit)(void *ud, const struct volume_entry *e, struct cp_error *err),
		      void *ud, struct cp_error *err)
{
	struct archive_entry *ae;
	int r;
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(ae);
		const char *slash = name ? strchr(name, '/') : NULL;
		cleanup_free char *rel = xstrdup(slash ? slash + 1 : "");
		size_t n = strlen(rel);
		while (n && rel[n - 1] == '/')
			rel[--n] = '\0';
		mode_t mode = archive_entry_mode(ae);
		struct volume_entry e = {
			.path = rel,
			.mode = mode,
			.size = S_ISREG(mode) ? archive_entry_size(ae) : 0,
			.mtime = archive_entry_mtime(ae),
			.link = S_ISLNK(mode) ? archive_entry_symlink(ae) : NULL,
			.read = S_ISREG(mode) ? entry_read : NULL,
			.priv = a,
		};
		if (visit(ud, &e, err) < 0)
			return -1;
	}
	if (r != ARCHIVE_EOF)
		return cp_error_set(err, EXIT_RUNTIME, "reading the volume's archive: %s",
				    archive_error_string(a));
	return 0;
}
