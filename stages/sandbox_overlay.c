/* A container's filesystem for the local runtime's sandbox: the new root
 * is an overlayfs whose read-only lower layer is the host's root
 * filesystem, and so is every other host filesystem mounted below it, each
 * with an upper layer of its own on one tmpfs. A stage may write anywhere
 * (/opt/data, /etc, a directory beside the project) and read its writes
 * back; the host sees none of them. The tmpfs is mounted in the sandbox's
 * mount namespace only: it goes away with the sandbox's last process,
 * however that ends (a kill -9 of cpipe included), and leaves nothing in
 * the state directory to clean up.
 *
 * Bound from the host as before: /dev and /sys, and the project's
 * directory, writable, since stages write their outputs there. A mounted
 * filesystem overlayfs will not take as a lower layer is bound as before
 * too, and the note says which. In a user namespace (cpipe is not root)
 * overlayfs cannot copy up a directory owned by an id the namespace does
 * not map, which is most of the host's: there is no layered root then. */
#include "sandbox_overlay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fs.h"

/* Bound from the host with everything mounted below them. */
static const char *const kept[] = {"/dev", "/sys"};

/* The kernel's own filesystems, bound as they are wherever they are
 * mounted (a chroot's /proc): interfaces, not files to layer. */
static const char *const kernel_fs[] = {
	"autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs",
	"devpts", "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nfsd",
	"nsfs", "proc", "pstore", "rpc_pipefs", "securityfs", "selinuxfs", "sysfs",
	"tracefs",
};

#define ROOTLESS_NOTE                                                                            \
	"the local runtime gives stages no throwaway layer over the host without root "         \
	"(in a user namespace overlayfs cannot copy up the host's directories): outside the "   \
	"project, its volumes and binds, a stage's writes reach the host as before; run cpipe " \
	"as root, or use --runtime docker"

static bool inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* True when every id of the host is mapped to itself: no user namespace
 * but the initial one. */
static bool all_ids_mapped(void)
{
	FILE *f = fopen("/proc/self/uid_map", "re");
	if (!f)
		return false;
	unsigned long inner, outer, count;
	int lines = 0;
	bool identity = false;
	while (fscanf(f, "%lu %lu %lu", &inner, &outer, &count) == 3) {
		lines++;
		identity = inner == 0 && outer == 0 && count == 4294967295UL;
	}
	fclose(f);
	return lines == 1 && identity;
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* Orders "<path>\t<fstype>" by path alone, a path before those below it. */
static int cmp_path(const char *a, const char *b)
{
	size_t la = (size_t)(strrchr(a, '\t') - a), lb = (size_t)(strrchr(b, '\t') - b);
	int c = strncmp(a, b, la < lb ? la : lb);
	return c ? c : (la > lb) - (la < lb);
}

/* The mount points of this namespace as "<path>\t<fstype>", sorted (a
 * mount before those below it), one a path (the last mounted there). */
static int mount_points(struct strvec *out, char *msg, size_t n)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f) {
		snprintf(msg, n, "reading /proc/self/mountinfo: %s", strerror(errno));
		return -1;
	}
	struct strvec all = {0};
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mount-point ... */
		char *dash = strstr(line, " - ");
		char *save = NULL, *field = strtok_r(line, " ", &save);
		for (int i = 0; field && i < 4; i++)
			field = strtok_r(NULL, " ", &save);
		if (!field || !dash || dash < field)
			continue;
		char *type = dash + 3;
		type[strcspn(type, " \n")] = '\0';
		unescape(field);
		strvec_push_take(&all, xasprintf("%s\t%s", field, type));
	}
	free(line);
	fclose(f);
	/* Stable, so that of two mounts on one path the later stays last. */
	for (size_t i = 1; i < all.n; i++)
		for (size_t j = i; j > 0 && cmp_path(all.v[j - 1], all.v[j]) > 0; j--) {
			char *t = all.v[j];
			all.v[j] = all.v[j - 1];
			all.v[j - 1] = t;
		}
	for (size_t i = 0; i < all.n; i++) {
		if (i + 1 == all.n || cmp_path(all.v[i], all.v[i + 1]) != 0)
			strvec_push(out, all.v[i]);
	}
	strvec_free(&all);
	return 0;
}

static void place_add(struct sbx_layers *l, const char *path, bool layered)
{
	l->places = xrealloc(l->places, (l->nplaces + 1) * sizeof(*l->places));
	l->places[l->nplaces++] = (struct sbx_layer_place){xstrdup(path), layered};
}

/* Below a host directory bound with everything under it. */
static bool bound_from_host(const struct sbx_layers *l, const char *path)
{
	for (size_t i = 0; i < l->nplaces; i++)
		if (!l->places[i].layered && inside(path, l->places[i].path))
			return true;
	return false;
}

/* Mounts an overlay of the host directory `lower` on `target`, with upper
 * and work directories made under `layers` as number `k`. Paths reach
 * overlayfs as /proc/self/fd/N, so no character of theirs needs escaping. */
static int overlay(const char *lower, const char *target, const char *layers, int k)
{
	cleanup_free char *dir = xasprintf("%s/%d", layers, k);
	cleanup_free char *upper = path_join(dir, "upper");
	cleanup_free char *work = path_join(dir, "work");
	if (mkdir(dir, 0700) < 0 || mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0)
		return -1;
	struct stat st;
	if (stat(lower, &st) == 0 && chown(upper, st.st_uid, st.st_gid) == 0)
		chmod(upper, st.st_mode & 07777);
	int fds[3] = {open(lower, O_PATH | O_DIRECTORY | O_CLOEXEC),
		      open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC),
		      open(work, O_PATH | O_DIRECTORY | O_CLOEXEC)};
	int rc = -1;
	if (fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0) {
		char opts[128];
		snprintf(opts, sizeof(opts),
			 "lowerdir=/proc/self/fd/%d,upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d",
			 fds[0], fds[1], fds[2]);
		rc = mount("overlay", target, "overlay", 0, opts);
	}
	int saved = errno;
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	errno = saved;
	return rc;
}

static int bind_host(const char *host, const char *target, bool read_only)
{
	if (mount(host, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -1;
	if (read_only)
		return mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
	return 0;
}

/* A host path bound into the new root once the overlays are made. */
struct bind {
	char *path;
	bool read_only;
};

struct binds {
	struct bind *v;
	size_t n;
};

static void bind_add(struct binds *b, const char *path, bool read_only)
{
	b->v = xrealloc(b->v, (b->n + 1) * sizeof(*b->v));
	b->v[b->n++] = (struct bind){xstrdup(path), read_only};
}

/* Puts an overlay of its own on each host filesystem mounted below / in
 * the new root `root`; one overlayfs refuses, or a file mounted on a file,
 * goes into `binds`. The first refusal and their count go into l->note. */
static int layer_mounts(struct sbx_layers *l, struct binds *binds, const char *root,
			const char *layers, const char *root_dir, const char *project, char *msg,
			size_t n)
{
	struct strvec mps = {0};
	if (mount_points(&mps, msg, n) < 0)
		return -1;
	int k = 1;
	size_t refused = 0;
	char first[512] = "";
	for (size_t i = 0; i < mps.n; i++) {
		char *mp = mps.v[i], *tab = strrchr(mp, '\t');
		*tab = '\0';
		bool kernel = false;
		for (size_t j = 0; j < ARRAY_LEN(kernel_fs) && !kernel; j++)
			kernel = strcmp(tab + 1, kernel_fs[j]) == 0;
		if (strcmp(mp, "/") == 0 || inside(mp, root_dir) || inside(mp, "/proc") ||
		    (project && inside(mp, project)) || bound_from_host(l, mp))
			continue;
		cleanup_free char *target = xasprintf("%s%s", root, mp);
		struct stat hst, tst;
		if (lstat(mp, &hst) < 0 || lstat(target, &tst) < 0)
			continue; /* hidden by a mount above it */
		if (kernel && S_ISDIR(hst.st_mode)) {
			bind_add(binds, mp, false);
			place_add(l, mp, false);
			continue;
		}
		if (!S_ISDIR(hst.st_mode)) {
			/* A file mounted on a file: read-only, as the host's root. */
			bind_add(binds, mp, true);
			continue;
		}
		if (overlay(mp, target, layers, k++) == 0) {
			place_add(l, mp, true);
			continue;
		}
		if (!refused++)
			snprintf(first, sizeof(first), "%s (%s)", mp, strerror(errno));
		bind_add(binds, mp, false);
		place_add(l, mp, false);
	}
	strvec_free(&mps);
	if (refused == 1)
		snprintf(l->note, sizeof(l->note),
			 "overlayfs refuses the mounted filesystem %s as a lower layer: a stage's "
			 "writes there reach the host as before",
			 first);
	else if (refused > 1)
		snprintf(l->note, sizeof(l->note),
			 "overlayfs refuses the mounted filesystem %s and %zu others as lower "
			 "layers: a stage's writes there reach the host as before",
			 first, refused - 1);
	return 0;
}

/* Binds `binds` in order, then the project's directory, into `root`. */
static int bind_all(struct sbx_layers *l, const struct binds *binds, const char *root,
		    const char *project, char *msg, size_t n)
{
	for (size_t i = 0; i < binds->n; i++) {
		cleanup_free char *target = xasprintf("%s%s", root, binds->v[i].path);
		if (bind_host(binds->v[i].path, target, binds->v[i].read_only) < 0) {
			/* Unmounted since mountinfo was read (a container's root
			 * on a machine running docker): nothing to show. */
			if (errno == ENOENT)
				continue;
			snprintf(msg, n, "bind-mounting %s into the sandbox: %s", binds->v[i].path,
				 strerror(errno));
			return -1;
		}
	}
	if (!project)
		return 0;
	cleanup_free char *target = xasprintf("%s%s", root, project);
	if (bind_host(project, target, false) < 0) {
		snprintf(msg, n, "bind-mounting the project's directory %s into the sandbox: %s",
			 project, strerror(errno));
		return -1;
	}
	place_add(l, project, false);
	return 0;
}

int sbx_layers_build(struct sbx_layers *l, const char *root_dir, const char *project_dir,
		     char *msg, size_t n)
{
	*l = (struct sbx_layers){0};
	if (!all_ids_mapped()) {
		snprintf(l->note, sizeof(l->note), "%s", ROOTLESS_NOTE);
		return 0;
	}
	if (mount("tmpfs", root_dir, "tmpfs", 0, "mode=0755") < 0) {
		snprintf(msg, n, "mounting a tmpfs for the sandbox's layers: %s", strerror(errno));
		return -1;
	}
	cleanup_free char *root = path_join(root_dir, "root");
	cleanup_free char *layers = path_join(root_dir, "layers");
	if (mkdir(root, 0755) < 0 || mkdir(layers, 0700) < 0) {
		snprintf(msg, n, "creating the sandbox's layers: %s", strerror(errno));
		return -1;
	}
	if (overlay("/", root, layers, 0) < 0) {
		snprintf(l->note, sizeof(l->note),
			 "overlayfs refuses the host's root filesystem as a lower layer (%s): "
			 "outside the project, its volumes and binds, a stage's writes reach the "
			 "host as before",
			 strerror(errno));
		umount2(root_dir, MNT_DETACH);
		return 0;
	}
	place_add(l, "/", true);

	struct binds binds = {0};
	for (size_t i = 0; i < ARRAY_LEN(kept); i++) {
		cleanup_free char *target = xasprintf("%s%s", root, kept[i]);
		struct stat st;
		if (stat(kept[i], &st) == 0 && S_ISDIR(st.st_mode) && stat(target, &st) == 0) {
			bind_add(&binds, kept[i], false);
			place_add(l, kept[i], false);
		}
	}
	cleanup_free char *project = project_dir ? realpath(project_dir, NULL) : NULL;
	int rc = layer_mounts(l, &binds, root, layers, root_dir, project, msg, n);
	/* Now that the overlays hold their upper layers, unbindable: the
	 * recursive binds (the project's directory may hold root_dir) must not
	 * copy the layers and the new root into it. */
	if (rc == 0 && mount(NULL, root_dir, NULL, MS_UNBINDABLE, NULL) < 0) {
		snprintf(msg, n, "making the sandbox's layers unbindable: %s", strerror(errno));
		rc = -1;
	}
	if (rc == 0)
		rc = bind_all(l, &binds, root, project, msg, n);
	for (size_t i = 0; i < binds.n; i++)
		free(binds.v[i].path);
	free(binds.v);
	if (rc < 0)
		return -1;
	l->root = xstrdup(root);
	return 1;
}

void sbx_layers_free(struct sbx_layers *l)
{
	for (size_t i = 0; i < l->nplaces; i++)
		free(l->places[i].path);
	free(l->places);
	free(l->root);
	*l = (struct sbx_layers){0};
}

void sandbox_sweep_roots(const char *run_dir)
{
	DIR *d = opendir(run_dir);
	if (!d)
		return;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		/* A younger one may be a sandbox being set up: rmdir would
		 * detach the tmpfs it is mounting there. */
		if (strncmp(de->d_name, "root.", 5) == 0 &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode) && now - st.st_mtime > 60)
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}
