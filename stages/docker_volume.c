/* The docker runtime's volumes: <project>_<name> (or the volume's name:),
 * labelled with the project, created on demand and kept between runs.
 * Reading one without host access goes through a helper container that is
 * created (never started) from a tiny empty image cpipe imports itself,
 * and GET /containers/{id}/archive, read with libarchive. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fs.h"
#include "docker_internal.h"

#define HELPER_IMAGE "cpipe/empty:1"

/* The key under volumes: for a Docker volume of this project. */
static char *volume_key(const struct runtime *rt, const cJSON *v)
{
	const char *name = docker_str(v, "Name");
	const char *label = docker_str(cJSON_GetObjectItemCaseSensitive(v, "Labels"), LABEL_VOLUME);
	if (label)
		return xstrdup(label);
	size_t n = strlen(rt->project);
	if (name && strncmp(name, rt->project, n) == 0 && name[n] == '_')
		return xstrdup(name + n + 1);
	return xstrdup(name ? name : "?");
}

static int volume_inspect(struct runtime *rt, const char *dname, cJSON **out,
			  struct cp_error *err)
{
	cleanup_free char *path = xasprintf("/volumes/%s", dname);
	long status = 0;
	if (docker_json(rt->d, "GET", path, NULL, &status, out, err) < 0) {
		if (status == 404) {
			cp_error_clear(err);
			return 1;
		}
		return -1;
	}
	return 0;
}

int docker_volume_ensure(struct runtime *rt, const struct volume *v, struct cp_error *err)
{
	cleanup_free char *dname = docker_volume_name(rt, v->name);
	int rc = volume_inspect(rt, dname, NULL, err);
	if (rc < 0)
		return cp_error_prefix(err, "volume \"%s\"", v->name);
	if (rc == 0)
		return 0;
	if (v->external) {
		cp_error_at(err, EXIT_STAGE_FAILED, &v->mark,
			    "external volume \"%s\" does not exist (create it with: docker volume "
			    "create %s)",
			    dname, dname);
		return -1;
	}
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "Name", dname);
	cJSON_AddStringToObject(body, "Driver", v->driver ? v->driver : "local");
	cJSON *labels = cJSON_AddObjectToObject(body, "Labels");
	for (size_t i = 0; i < v->labels.n; i++)
		cJSON_AddStringToObject(labels, v->labels.v[i].key,
					v->labels.v[i].value ? v->labels.v[i].value : "");
	cJSON_AddStringToObject(labels, LABEL_PROJECT, rt->project);
	cJSON_AddStringToObject(labels, LABEL_VOLUME, v->name);
	rc = docker_json(rt->d, "POST", "/volumes/create", body, NULL, NULL, err);
	cJSON_Delete(body);
	if (rc < 0)
		return cp_error_prefix(err, "creating volume \"%s\"", dname);
	return 0;
}

static void info_add(struct runtime *rt, struct volume_info **out, size_t *n, const char *key,
		     const cJSON *v)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*out)[i].name, key) == 0)
			return;
	*out = xrealloc(*out, (*n + 1) * sizeof(**out));
	struct volume_info *vi = &(*out)[(*n)++];
	const char *mp = docker_str(v, "Mountpoint");
	vi->name = xstrdup(key);
	vi->mountpoint = xstrdup(mp ? mp : "");
	vi->size = mp && docker_is_local(rt->d) && access(mp, R_OK | X_OK) == 0 ? fs_du(mp) : -1;
	vi->declared = runtime_volume_find(rt->volumes, rt->nvolumes, key) != NULL;
	vi->in_use = false;
}

static int info_cmp(const void *a, const void *b)
{
	return strcmp(((const struct volume_info *)a)->name, ((const struct volume_info *)b)->name);
}

int docker_volume_list(struct runtime *rt, struct volume_info **out, size_t *nout,
		       struct cp_error *err)
{
	*out = NULL;
	*nout = 0;
	cleanup_free char *f = docker_label_filter(rt, LABEL_PROJECT, rt->project, NULL, NULL);
	cleanup_free char *path = xasprintf("/volumes?filters=%s", f);
	cJSON *resp = NULL;
	if (docker_json(rt->d, "GET", path, NULL, NULL, &resp, err) < 0)
		return cp_error_prefix(err, "listing volumes");
	const cJSON *v;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(resp, "Volumes"))
	{
		const char *name = docker_str(v, "Name");
		if (!name)
			continue;
		cleanup_free char *key = volume_key(rt, v);
		const struct volume *decl = runtime_volume_find(rt->volumes, rt->nvolumes, key);
		cleanup_free char *dname = decl ? docker_volume_name(rt, key) : NULL;
		/* A declared key that now has another Docker name (name: changed)
		 * leaves an orphan: list that one by its Docker name. */
		info_add(rt, out, nout, decl && strcmp(dname, name) != 0 ? name : key, v);
	}
	cJSON_Delete(resp);
	/* Declared volumes with a name: of their own carry no label of ours. */
	for (size_t i = 0; i < rt->nvolumes; i++) {
		const struct volume *vol = &rt->volumes[i];
		cleanup_free char *dname = docker_volume_name(rt, vol->name);
		cJSON *j = NULL;
		int rc = volume_inspect(rt, dname, &j, err);
		if (rc < 0)
			return cp_error_prefix(err, "volume \"%s\"", vol->name);
		if (rc == 0)
			info_add(rt, out, nout, vol->name, j);
		cJSON_Delete(j);
	}
	if (*nout > 1)
		qsort(*out, *nout, sizeof(**out), info_cmp);
	return 0;
}

int docker_volume_remove(struct runtime *rt, const char *name, struct cp_error *err)
{
	const struct volume *v = runtime_volume_find(rt->volumes, rt->nvolumes, name);
	if (v && v->external) {
		return cp_error_set(err, EXIT_USAGE,
				    "volume \"%s\" is external: cpipe does not remove it", name);
	}
	/* An orphan is listed under its key or, when renamed, its Docker name
	 * (the caller only passes names volume_list gave). */
	cleanup_free char *dname = docker_volume_name(rt, name);
	if (!v && volume_inspect(rt, dname, NULL, err) == 1) {
		free(dname);
		dname = xstrdup(name);
	}
	cleanup_free char *path = xasprintf("/volumes/%s", dname);
	long status = 0;
	if (docker_json(rt->d, "DELETE", path, NULL, &status, NULL, err) < 0) {
		cp_error_recode(err, EXIT_STAGE_FAILED);
		return cp_error_prefix(err, "removing volume \"%s\"", name);
	}
	return 0;
}

int docker_volume_host_path(struct runtime *rt, const char *volume, char **out,
			    struct cp_error *err)
{
	if (!docker_is_local(rt->d))
		return cp_error_set(err, EXIT_USAGE,
				    "volume \"%s\": the Docker daemon at %s is not on this host",
				    volume, docker_host(rt->d));
	cleanup_free char *dname = docker_volume_name(rt, volume);
	cJSON *j = NULL;
	int rc = volume_inspect(rt, dname, &j, err);
	if (rc != 0) {
		cJSON_Delete(j);
		if (rc == 1)
			cp_error_set(err, EXIT_USAGE, "volume \"%s\" (%s) does not exist", volume,
				     dname);
		return -1;
	}
	const char *mp = docker_str(j, "Mountpoint");
	if (!mp || !*mp || access(mp, R_OK | X_OK) < 0) {
		if (mp && *mp)
			cp_error_errno(err, EXIT_USAGE,
				       "volume \"%s\": its data at %s is not readable", volume, mp);
		else
			cp_error_set(err, EXIT_USAGE,
				     "volume \"%s\": the daemon gave no mountpoint", volume);
		cJSON_Delete(j);
		return -1;
	}
	*out = xstrdup(mp);
	cJSON_Delete(j);
	return 0;
}

/* ---- reading a tree through a helper container ---- */

/* Imports the helper image: one empty directory, /v, and nothing else. */
static int helper_image(struct runtime *rt, struct cp_error *err)
{
	cleanup_free char *ipath = xasprintf("/images/%s/json", HELPER_IMAGE);
	long status = 0;
	if (docker_json(rt->d, "GET", ipath, NULL, &status, NULL, err) == 0)
		return 0;
	if (status != 404)
		return -1;
	cp_error_clear(err);
	cleanup_fclose FILE *f = tmpfile();
	if (!f)
		return cp_error_errno(err, EXIT_USAGE, "creating a temporary file");
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, "v/");
	archive_entry_set_filetype(e, AE_IFDIR);
	archive_entry_set_perm(e, 0755);
	int ok = archive_write_open_FILE(a, f) == ARCHIVE_OK &&
		 archive_write_header(a, e) == ARCHIVE_OK && archive_write_close(a) == ARCHIVE_OK;
	if (!ok)
		cp_error_set(err, EXIT_USAGE, "writing the helper image: %s",
			     archive_error_string(a));
	archive_entry_free(e);
	archive_write_free(a);
	if (!ok)
		return -1;
	long long size = ftell(f);
	rewind(f);
	/* The tag inside repo=: Podman (4.3) ignores a separate tag=. */
	cleanup_free char *path = xasprintf("/images/create?fromSrc=-&repo=%s", HELPER_IMAGE);
	struct docker_req rq = {.method = "POST", .path = path, .upload = f, .upload_size = size};
	if (docker_json_stream(rt->d, &rq, NULL, NULL, NULL, err) < 0)
		return cp_error_prefix(err, "importing the helper image %s", HELPER_IMAGE);
	return 0;
}

static int helper_create(struct runtime *rt, const char *dname, char **id_out,
			 struct cp_error *err)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "Image", HELPER_IMAGE);
	cJSON_AddItemToObject(b, "Cmd", cJSON_CreateStringArray((const char *[]){"/none"}, 1));
	cJSON_AddBoolToObject(b, "NetworkDisabled", true);
	cJSON *labels = cJSON_AddObjectToObject(b, "Labels");
	cJSON_AddStringToObject(labels, LABEL_PROJECT, rt->project);
	cJSON_AddStringToObject(labels, LABEL_HELPER, "volume-reader");
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "Type", "volume");
	cJSON_AddStringToObject(m, "Source", dname);
	cJSON_AddStringToObject(m, "Target", "/v");
	cJSON_AddBoolToObject(m, "ReadOnly", true);
	cJSON_AddBoolToObject(cJSON_AddObjectToObject(m, "VolumeOptions"), "NoCopy", true);
	cJSON *mounts = cJSON_AddArrayToObject(cJSON_AddObjectToObject(b, "HostConfig"), "Mounts");
	cJSON_AddItemToArray(mounts, m);
	cJSON *resp = NULL;
	int rc = docker_json(rt->d, "POST", "/containers/create", b, NULL, &resp, err);
	cJSON_Delete(b);
	const char *id = docker_str(resp, "Id");
	if (rc == 0 && !id)
		rc = cp_error_set(err, EXIT_USAGE, "the daemon gave no container ID");
	if (rc == 0)
		*id_out = xstrdup(id);
	cJSON_Delete(resp);
	return rc;
}

struct tree_ctx {
	struct docker_stream *s;
	struct archive *a;
	struct cp_error *err;
	char buf[65536];
};

static la_ssize_t tree_read_cb(struct archive *a, void *ud, const void **buff)
{
	struct tree_ctx *c = ud;
	long n = docker_stream_read(c->s, c->buf, sizeof(c->buf), c->err);
	if (n < 0) {
		archive_set_error(a, EIO, "%s", c->err->msg);
		return -1;
	}
	*buff = c->buf;
	return n;
}

int docker_volume_read_tree(struct runtime *rt, const char *volume, const char *path,
			    int (*visit)(void *ud, const struct volume_entry *e, struct cp_error *err),
			    void *ud, struct cp_error *err)
{
	cleanup_free char *dname = docker_volume_name(rt, volume);
	int rc = volume_inspect(rt, dname, NULL, err);
	if (rc != 0)
		return rc;
	cleanup_free char *id = NULL;
	if (helper_image(rt, err) < 0 || helper_create(rt, dname, &id, err) < 0)
		return cp_error_prefix(err, "reading volume \"%s\"", volume);

	cleanup_free char *inside = xasprintf("/v%s", strcmp(path, "/") == 0 ? "" : path);
	cleanup_free char *q = docker_escape(rt->d, inside);
	cleanup_free char *apath = xasprintf("/containers/%s/archive?path=%s", id, q);
	struct tree_ctx *c = xcalloc(1, sizeof(*c));
	c->err = err;
	long status = 0;
	rc = docker_stream_open(&c->s, rt->d, apath, &status, err);
	if (rc < 0 && status == 404) {
		cp_error_clear(err);
		rc = 1;
	} else if (rc == 0) {
		c->a = archive_read_new();
		archive_read_support_format_tar(c->a);
		if (archive_read_open(c->a, c, NULL, tree_read_cb, NULL) != ARCHIVE_OK)
			rc = cp_error_set(err, EXIT_USAGE, "reading the volume's archive: %s",
					  archive_error_string(c->a));
		else
			rc = runtime_tar_visit(c->a, visit, ud, err);
		archive_read_free(c->a);
		docker_stream_close(c->s);
	}
	if (rc < 0)
		cp_error_prefix(err, "reading %s:%s", volume, path);
	free(c);
	struct cp_error e2 = {0};
	if (docker_container_remove(rt->d, id, &e2) < 0)
		runtime_note(&rt->sink, RUNTIME_NOTICE, NULL, "%s", e2.msg);
	return rc;
}
