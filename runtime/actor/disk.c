/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actors' writable rootfs disks (disk.h; docs/rootfs.md): one per
 * container, guest /dev/vdb, /dev/vdc, ...; built detached from the RPC
 * deadline on Run, reset to the lineage's golden template (or rebuilt) on
 * every Restore, and the template kept at the lineage's first checkpoint.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor/disk.h"
#include "actor/model.h"
#include "kata/spec.h"
#include "rootfs/rootfs.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/untrusted.h"
#include "util/util.h"

#define RESOLV_CONF_MAX (64u << 10)
/* A shipped golden disk is an ext4 image of at most this size. */
#define ROOTFS_SHIPPED_MAX (1ULL << 40)
/* 2024-01-01T00:00:00Z, the rootfs builder's fixed time. */
#define RESOLV_CONF_TIME 1704067200

/* The lineage key of container i: the first container is keyed like a
 * single-container actor; the others add their name. */
static char *
lineage_key (const struct actor *a, size_t i)
{
  if (i == 0)
    return xasprintf ("%s:%s:%s", a->ns, a->tmpl, a->base_id);
  return xasprintf ("%s:%s:%s:%s", a->ns, a->tmpl, a->base_id, a->ctrs[i].name);
}

/* The name a template has among a checkpoint's files. */
static char *
shipped_name (const struct actor *a, size_t i)
{
  if (i == 0)
    return xstrdup (ROOTFS_GOLDEN_FILE_NAME);
  return xasprintf ("golden-rootfs-%s.ext4", a->ctrs[i].name);
}

/* Directory mtimes of a bundle are not reproducible across nodes: atelet
 * creates /run/ate and we add /etc/resolv.conf, after the image unpack.
 * The guest caches the golden disk's metadata, so a disk rebuilt on another
 * node must be byte-identical: every directory gets the builder's fixed
 * time (file mtimes, which the image defines, are kept). */
static int
normalise_dir_times (const char *rootfs, struct ate_error **err)
{
  /* Only the mtime: atime is normalised in the image by the builder, and
   * reading a directory may move it. */
  const struct timespec fixed[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = RESOLV_CONF_TIME } };
  char *paths[] = { (char *) rootfs, NULL };
  FTS *fts = fts_open (paths, FTS_PHYSICAL | FTS_XDEV | FTS_NOCHDIR, NULL);
  FTSENT *e;
  int ret = 0;

  if (fts == NULL)
    return ate_error_make (err, errno, "walk `%s`", rootfs);
  for (errno = 0; (e = fts_read (fts)) != NULL; errno = 0)
    {
      /* Post-order: a directory's own time is set after its entries. */
      if (e->fts_info == FTS_DNR || e->fts_info == FTS_ERR)
        {
          ret = ate_error_make (err, e->fts_errno, "walk `%s`", e->fts_path);
          break;
        }
      /* Leave what is already right alone: a retried Run must not change
       * the tree under the build the first attempt left running. */
      if (e->fts_info != FTS_DP
          || (e->fts_statp->st_mtim.tv_sec == RESOLV_CONF_TIME && e->fts_statp->st_mtim.tv_nsec == 0))
        continue;
      if (utimensat (AT_FDCWD, e->fts_path, fixed, AT_SYMLINK_NOFOLLOW) < 0)
        {
          ret = ate_error_make (err, errno, "set the times of `%s`", e->fts_path);
          break;
        }
    }
  if (ret == 0 && errno != 0 && e == NULL)
    ret = ate_error_make (err, errno, "walk `%s`", rootfs);
  fts_close (fts);
  return ret;
}

/* Is dst already a regular file with this content, mode 0644 and the fixed
 * mtime?  Then it is not rewritten. */
static bool
resolv_conf_current (const char *dst, const char *content, size_t len)
{
  cleanup_free char *have = NULL;
  size_t have_len = 0;
  struct stat st;

  if (lstat (dst, &st) < 0 || !S_ISREG (st.st_mode) || (st.st_mode & 07777) != 0644
      || st.st_mtim.tv_sec != RESOLV_CONF_TIME || st.st_mtim.tv_nsec != 0
      || (size_t) st.st_size != len)
    return false;
  if (ate_read_file (dst, RESOLV_CONF_MAX, &have, &have_len, NULL) < 0)
    return false;
  return have_len == len && memcmp (have, content, len) == 0;
}

/* The pod's resolv.conf into every bundle's rootfs (docs/architecture.md,
 * "Guest DNS"). */
static int
write_resolv_conf (const struct actor_env *env, struct actor *a, struct ate_error **err)
{
  const char *src = env->cfg.resolv_conf ?: "/etc/resolv.conf";
  const struct timespec fixed[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = RESOLV_CONF_TIME } };
  cleanup_free char *content = NULL;
  size_t len = 0;

  if (ate_read_file (src, RESOLV_CONF_MAX, &content, &len, err) < 0)
    return ate_error_wrap (err, "read the pod's resolv.conf for the guest");
  if (len == 0)
    return ate_error_make (err, EINVAL, "the pod's resolv.conf `%s` is empty", src);
  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      cleanup_free char *etc = xasprintf ("%s/rootfs/etc", a->ctrs[i].bundle);
      cleanup_free char *dst = ate_path_join (etc, "resolv.conf");
      struct stat st;
      cleanup_free char *rootfs = ate_path_join (a->ctrs[i].bundle, "rootfs");
      if (resolv_conf_current (dst, content, len))
        {
          if (normalise_dir_times (rootfs, err) < 0)
            return ate_error_wrap (err, "normalise directory times of container %s",
                                   a->ctrs[i].name);
          continue;
        }
      if (ate_mkdir_p (etc, 0755, err) < 0)
        return -1;
      /* A symlink in an image (e.g. to ../run/systemd/resolve/...) must not
       * send our write outside the bundle. */
      if (lstat (dst, &st) == 0 && !S_ISREG (st.st_mode) && unlink (dst) < 0)
        return ate_error_make (err, errno, "replace `%s`", dst);
      if (ate_write_file_atomic (dst, content, len, 0644, err) < 0)
        return ate_error_wrap (err, "write the guest resolv.conf");
      /* A fixed mtime keeps the disk byte-identical wherever the same
       * content is written (cross-node rebuilds must match the golden). */
      if (utimensat (AT_FDCWD, dst, fixed, 0) < 0)
        return ate_error_make (err, errno, "set the times of `%s`", dst);
      if (normalise_dir_times (rootfs, err) < 0)
        return ate_error_wrap (err, "normalise directory times of container %s", a->ctrs[i].name);
    }
  return 0;
}

static int
check_bundle (const struct actor_ctr *c, struct ate_error **err)
{
  cleanup_free char *rootfs = ate_path_join (c->bundle, "rootfs");
  cleanup_free char *config = ate_path_join (c->bundle, "config.json");
  struct stat st;

  if (lstat (rootfs, &st) < 0 || !S_ISDIR (st.st_mode))
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, ENOENT,
                                "OCI bundle of container %s has no rootfs directory at `%s` "
                                "(atelet prepares it before the call)",
                                c->name, rootfs);
  if (lstat (config, &st) < 0 && errno == ENOENT)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, ENOENT,
                                "OCI bundle of container %s has no config.json at `%s` "
                                "(atelet prepares it before the call)",
                                c->name, config);
  /* Present but a FIFO, a link, a directory...: say what it is. */
  if (ate_untrusted_check (c->bundle, "config.json", KATA_SPEC_MAX_SIZE, err) < 0)
    return ate_error_wrap (err, "OCI bundle of container %s", c->name);
  return 0;
}

int
actor_disk_check_bundles (const struct actor *a, struct ate_error **err)
{
  for (size_t i = 0; i < a->n_ctrs; i++)
    if (check_bundle (&a->ctrs[i], err) < 0)
      return -1;
  return 0;
}

static void
log_outcome (const struct actor *a, const struct actor_ctr *c, const struct rootfs_outcome *o)
{
  char ms[32];
  snprintf (ms, sizeof (ms), "%.1f", o->elapsed_ms);
  ate_log (ATE_LOG_INFO, "rootfs disk ready", "actor_id", a->id, "container", c->name, "origin",
           rootfs_origin_name (o->origin), "joined", o->joined ? "true" : "false", "job_ms", ms,
           NULL);
}

int
actor_disk_prepare_run (const struct actor_env *env, struct actor *a, ate_deadline_t deadline,
                     struct ate_error **err)
{
  if (actor_disk_check_bundles (a, err) < 0 || write_resolv_conf (env, a, err) < 0)
    return -1;
  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      struct actor_ctr *c = &a->ctrs[i];
      cleanup_free char *src = ate_path_join (c->bundle, "rootfs");
      struct rootfs_outcome o;
      if (rootfs_disk_for_run_ex (env->rootfs, src, c->disk, deadline, &o, err) < 0)
        return ate_error_wrap (err, "rootfs disk for container %s", c->name);
      log_outcome (a, c, &o);
    }
  return 0;
}

/* A golden disk shipped with the snapshot, as a path to reset from; NULL
 * when there is none.  It is the snapshot's (untrusted) content: it may
 * become this actor's disk, never a template another actor or lineage
 * gets (docs/api.md, "What a snapshot may carry"). */
static int
shipped_golden (const struct actor *a, size_t i, const char *restore_dir, char **path,
                struct ate_error **err)
{
  cleanup_free char *name = shipped_name (a, i);
  cleanup_free char *file = ate_path_join (restore_dir, name);
  struct stat st;

  *path = NULL;
  if (lstat (file, &st) < 0 && errno == ENOENT)
    return 0;
  if (ate_untrusted_check (restore_dir, name, ROOTFS_SHIPPED_MAX, err) < 0)
    return ate_error_wrap (err, "the golden disk shipped with the snapshot");
  *path = steal_pointer (&file);
  return 0;
}

int
actor_disk_prepare_restore (const struct actor_env *env, struct actor *a, const char *restore_dir,
                         ate_deadline_t deadline, struct ate_error **err)
{
  bool wrote_resolv = false;

  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      struct actor_ctr *c = &a->ctrs[i];
      cleanup_free char *key = lineage_key (a, i);
      cleanup_free char *tmpl = NULL;
      struct rootfs_outcome o;

      /* The lineage's template on this node (made by its own Run here),
       * else the disk shipped with this snapshot, used for this actor
       * only. */
      if (rootfs_golden_exists (env->rootfs, key))
        tmpl = rootfs_golden_path (env->rootfs, key);
      else if (shipped_golden (a, i, restore_dir, &tmpl, err) < 0)
        return -1;
      if (tmpl)
        {
          if (rootfs_golden_reset (env->rootfs, tmpl, c->disk, deadline, err) < 0)
            return ate_error_wrap (err, "reset the rootfs of %s to its golden template", c->name);
          ate_log (ATE_LOG_INFO, "rootfs disk reset to golden", "actor_id", a->id, "container",
                   c->name, "template", tmpl, NULL);
          continue;
        }
      /* No template on this node: rebuild from the image, deterministically
       * (the guest has the golden disk's metadata cached).  The rebuild is
       * this actor's bundle, so it is not kept as the lineage's template
       * (the rootfs cache makes the next rebuild of the same content
       * cheap). */
      if (check_bundle (c, err) < 0)
        return -1;
      if (!wrote_resolv && write_resolv_conf (env, a, err) < 0)
        return -1;
      wrote_resolv = true;
      cleanup_free char *src = ate_path_join (c->bundle, "rootfs");
      if (rootfs_disk_rebuild_ex (env->rootfs, src, c->disk, deadline, &o, err) < 0)
        return ate_error_wrap (err, "rebuild the rootfs disk of container %s", c->name);
      log_outcome (a, c, &o);
    }
  return 0;
}

int
actor_disk_save_golden (const struct actor_env *env, struct actor *a, const char *checkpoint_dir,
                         struct ate_error **err)
{
  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      cleanup_free char *key = lineage_key (a, i);
      /* The checkpoint of the activation that started the lineage (a Run)
       * defines the template: it replaces any older one (a golden actor
       * booted again).  Restored activations never change it: their disks
       * hold writes the lineage's snapshots do not know about. */
      if (!a->restored
          && rootfs_golden_save_ex (env->rootfs, key, a->ctrs[i].disk, true, err) < 0)
        return ate_error_wrap (err, "save the golden rootfs template of %s", a->ctrs[i].name);
      if (!rootfs_golden_exists (env->rootfs, key))
        continue;
      if (i == 0 && rootfs_golden_link_into (env->rootfs, key, a->dir, err) < 0)
        return ate_error_wrap (err, "link the golden rootfs into the actor directory");
      if (env->cfg.ship_golden_disk)
        {
          cleanup_free char *name = shipped_name (a, i);
          if (rootfs_golden_link_as (env->rootfs, key, checkpoint_dir, name, err) < 0)
            return ate_error_wrap (err, "add the golden rootfs to the checkpoint files");
        }
    }
  return 0;
}
