/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Golden templates per lineage (docs/rootfs.md, "Golden templates").  The
 * disk saved at the
 * golden checkpoint is kept once per lineage under
 * <golden_dir>/<ns>:<tmpl>:<base-id>.ext4 (read-only, never refreshed), so
 * every actor restored from that snapshot on this node resets to the bytes
 * the guest has cached, not only the actor that took the checkpoint.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "clone.h"
#include "fingerprint.h"
#include "ext4.h"
#include "internal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/util.h"
#include "util/validate.h"

#define LINEAGE_KEY_MAX (63 + 1 + 253 + 1 + 63 + 1 + 63)

int
rootfs_lineage_key_validate (const char *key, struct ate_error **err)
{
  cleanup_free char *copy = NULL;
  char *tmpl, *id, *ctr;

  if (key == NULL || *key == '\0')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "lineage key is required");
  if (strlen (key) > LINEAGE_KEY_MAX)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "lineage key is too long");
  copy = xstrdup (key);
  tmpl = strchr (copy, ':');
  id = tmpl ? strchr (tmpl + 1, ':') : NULL;
  ctr = id ? strchr (id + 1, ':') : NULL;
  if (tmpl == NULL || id == NULL || (ctr && strchr (ctr + 1, ':') != NULL))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "lineage key \"%s\" is not "
                                "<namespace>:<template>:<base-id>[:<container>]",
                                key);
  *tmpl++ = '\0';
  *id++ = '\0';
  if (ctr)
    *ctr++ = '\0';
  if (ate_validate_label ("lineage namespace", copy, err) < 0
      || ate_validate_subdomain ("lineage template", tmpl, err) < 0
      || ate_validate_label ("lineage base id", id, err) < 0
      || (ctr && ate_validate_label ("lineage container", ctr, err) < 0))
    return -1;
  return 0;
}

char *
rootfs_golden_path (struct rootfs_manager *mgr, const char *key)
{
  cleanup_error struct ate_error *e = NULL;

  if (rootfs_lineage_key_validate (key, &e) < 0)
    return NULL;
  return xasprintf ("%s/%s.ext4", mgr->golden_dir, key);
}

bool
rootfs_golden_exists (struct rootfs_manager *mgr, const char *key)
{
  cleanup_free char *path = rootfs_golden_path (mgr, key);
  return path != NULL && ate_is_regular_file (path);
}

/* Open an ext4 image whose size agrees with its superblock (a truncated
 * copy or download is refused). */
static int
open_image (const char *path, struct ate_error **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct rootfs_ext4_sb sb;
  struct stat st;

  if (fd < 0)
    return ate_error_make (err, errno, "open `%s`", path);
  if (fstat (fd, &st) < 0)
    return ate_error_make (err, errno, "stat `%s`", path);
  if (rootfs_ext4_read_sb (fd, &sb, err) < 0)
    return ate_error_wrap (err, "`%s`", path);
  if ((uint64_t) st.st_size < sb.blocks_count * sb.block_size)
    return ate_error_make (err, EINVAL, "`%s` is truncated: %lld bytes, the file system has %llu",
                           path, (long long) st.st_size,
                           (unsigned long long) (sb.blocks_count * sb.block_size));
  return steal_fd (&fd);
}

/* Copy src (an open image) to a new template at `path` unless it exists
 * (or over it when replace). */
static int
install_template (int src, const char *path, bool replace, struct ate_error **err)
{
  cleanup_free char *tmp = NULL;
  cleanup_close int fd = -1;
  const char *method = NULL;
  int r;

  if (rootfs_temp_cleanup (path, err) < 0 || rootfs_temp_create (path, &tmp, &fd, err) < 0)
    return -1;
  if (rootfs_clone_fd (src, fd, &method, err) < 0 || fchmod (fd, 0400) < 0)
    {
      if (*err == NULL)
        ate_error_make (err, errno, "chmod `%s`", tmp);
      unlink (tmp);
      return -1;
    }
  if (replace)
    r = rootfs_temp_install (fd, tmp, path, err) < 0 ? -1 : 1;
  else
    r = rootfs_temp_install_new (fd, tmp, path, err);
  if (r < 0)
    unlink (tmp);
  if (r == 1)
    ate_log (ATE_LOG_INFO, "rootfs: golden template saved", "template", path, "copy", method,
             NULL);
  return r;
}

/* Put a hard link to `entry` at `path` (replacing it or not).  Returns 0
 * when links are impossible here, else 1 with *installed as
 * rootfs_temp_install_new reports it. */
static int
link_entry (const char *entry, const char *path, bool replace, int *installed,
            struct ate_error **err)
{
  cleanup_free char *tmp = NULL;
  cleanup_close int fd = -1;

  if (rootfs_temp_create (path, &tmp, &fd, err) < 0)
    return -1;
  unlink (tmp);
  if (link (entry, tmp) < 0)
    return 0;
  if (replace ? rename (tmp, path) < 0
              : renameat2 (AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0)
    {
      int e = errno;
      unlink (tmp);
      if (e != EEXIST || replace)
        return ate_error_make (err, e, "rename `%s` to `%s`", tmp, path);
      *installed = 0;
      return 1;
    }
  *installed = 1;
  return ate_fsync_dir_of (path, err) < 0 ? -1 : 1;
}

/* A fresh, untouched build whose image the cache holds (a Restore that
 * rebuilt the disk): the template becomes another name of the cache entry,
 * the same bytes by construction, without a copy or extra space.  Returns
 * 0 when this does not apply (the caller copies), else 1 with *installed
 * set, or -1. */
static int
link_from_cache (struct rootfs_manager *mgr, const char *file, const char *path, bool replace,
                 int *installed, struct ate_error **err)
{
  cleanup_free char *fpath = rootfs_fingerprint_path (file);
  cleanup_free char *entry = NULL;
  cleanup_error struct ate_error *e = NULL;
  struct rootfs_fingerprint fp;
  struct stat st;
  int r;

  if (mgr->cache == NULL || stat (file, &st) < 0 || rootfs_fingerprint_read (fpath, &fp, &e) < 0
      || !rootfs_fingerprint_describes (&fp, &st, mgr->boot_id)
      || !rootfs_cache_contains (mgr->cache, &fp))
    return 0;
  entry = rootfs_cache_entry_path (mgr->cache, &fp);
  r = link_entry (entry, path, replace, installed, err);
  if (r == 1 && *installed)
    ate_log (ATE_LOG_INFO, "rootfs: golden template saved", "template", path, "copy",
             "link to the image cache entry", NULL);
  return r;
}

static int
save_from (struct rootfs_manager *mgr, const char *key, const char *file, const char *what,
           bool replace, struct ate_error **err)
{
  int installed = 0;
  cleanup_free char *path = NULL;
  cleanup_close int src = -1;
  int r;

  if (rootfs_lineage_key_validate (key, err) < 0)
    return -1;
  path = rootfs_golden_path (mgr, key);
  if (!replace && ate_is_regular_file (path))
    return 0;
  if (ate_mkdir_p (mgr->golden_dir, 0700, err) < 0)
    return ate_error_wrap (err, "%s golden template %s", what, key);
  r = link_from_cache (mgr, file, path, replace, &installed, err);
  if (r < 0)
    return ate_error_wrap (err, "%s golden template %s", what, key);
  if (r == 1)
    return installed;
  src = open_image (file, err);
  if (src < 0)
    return ate_error_wrap (err, "%s golden template %s", what, key);
  r = install_template (src, path, replace, err);
  if (r < 0)
    return ate_error_wrap (err, "%s golden template %s", what, key);
  return r;
}

int
rootfs_golden_save (struct rootfs_manager *mgr, const char *key, const char *disk_path,
                    struct ate_error **err)
{
  return save_from (mgr, key, disk_path, "save", false, err);
}

int
rootfs_golden_save_ex (struct rootfs_manager *mgr, const char *key, const char *disk_path,
                       bool replace, struct ate_error **err)
{
  return save_from (mgr, key, disk_path, "save", replace, err);
}

int
rootfs_golden_import (struct rootfs_manager *mgr, const char *key, const char *file,
                      struct ate_error **err)
{
  /* A copy, not a link: the restore directory belongs to atelet, which may
   * rewrite its files in place on the next download. */
  return save_from (mgr, key, file, "import", false, err);
}

static bool
same_file (const char *a, const char *b)
{
  struct stat x, y;
  return stat (a, &x) == 0 && stat (b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static bool
link_impossible (int e)
{
  return e == EXDEV || e == EPERM || e == EMLINK;
}

/* <dir>/golden-rootfs.ext4 as a hard link to the template, replacing an
 * older file of that name atomically.  Returns 1 when no hard link can be
 * made there (another file system): the caller copies instead. */
static int
link_template (const char *src, const char *dst, struct ate_error **err)
{
  cleanup_free char *tmp = NULL;
  cleanup_close int fd = -1;

  if (link (src, dst) == 0)
    return ate_fsync_dir_of (dst, err);
  if (link_impossible (errno))
    return 1;
  if (errno != EEXIST)
    return ate_error_make (err, errno, "link `%s` to `%s`", dst, src);
  if (same_file (src, dst))
    return 0;
  if (rootfs_temp_create (dst, &tmp, &fd, err) < 0)
    return -1;
  unlink (tmp);
  if (link (src, tmp) < 0)
    return link_impossible (errno) ? 1 : ate_error_make (err, errno, "link `%s`", tmp);
  if (rename (tmp, dst) < 0)
    {
      int e = errno;
      unlink (tmp);
      return ate_error_make (err, e, "rename `%s` to `%s`", tmp, dst);
    }
  return ate_fsync_dir_of (dst, err);
}

static int
copy_template (const char *src, const char *dst, struct ate_error **err)
{
  cleanup_close int in = open_image (src, err);
  cleanup_free char *tmp = NULL;
  cleanup_close int fd = -1;
  const char *method = NULL;

  if (in < 0)
    return -1;
  if (rootfs_temp_create (dst, &tmp, &fd, err) < 0)
    return -1;
  if (rootfs_clone_fd (in, fd, &method, err) < 0 || rootfs_temp_install (fd, tmp, dst, err) < 0)
    {
      unlink (tmp);
      return -1;
    }
  return 0;
}

int
rootfs_golden_link_into (struct rootfs_manager *mgr, const char *key, const char *dir,
                         struct ate_error **err)
{
  return rootfs_golden_link_as (mgr, key, dir, ROOTFS_GOLDEN_FILE_NAME, err);
}

int
rootfs_golden_link_as (struct rootfs_manager *mgr, const char *key, const char *dir,
                       const char *name, struct ate_error **err)
{
  cleanup_free char *src = NULL;
  cleanup_free char *dst = NULL;
  int r;

  if (rootfs_lineage_key_validate (key, err) < 0)
    return -1;
  src = rootfs_golden_path (mgr, key);
  if (!ate_is_regular_file (src))
    return ate_error_make_code (err, ATE_CODE_NOT_FOUND, ENOENT,
                                "no golden template for lineage %s", key);
  if (name == NULL || *name == '\0' || strchr (name, '/') || strcmp (name, "..") == 0
      || strcmp (name, ".") == 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "bad golden template file name \"%s\"", name ? name : "");
  dst = ate_path_join (dir, name);
  r = link_template (src, dst, err);
  if (r == 1)
    r = copy_template (src, dst, err);
  if (r < 0)
    return ate_error_wrap (err, "place the golden template of %s in `%s`", key, dir);
  return 0;
}
