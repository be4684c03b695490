/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Base images for callers: a base job (build.c, execute_base) through the
 * manager's job table, or a pin of an existing cache entry.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "util/error.h"
#include "util/util.h"

static struct rootfs_base *
base_new (struct rootfs_manager *m, int pin_fd, const struct rootfs_fingerprint *fp)
{
  struct rootfs_base *b = xmalloc0 (sizeof (*b));
  char hex[2 * ROOTFS_DIGEST_LEN + 1];

  b->mgr = m;
  b->pin_fd = pin_fd;
  rootfs_fingerprint_cache_key (fp, b->id);
  b->path = rootfs_cache_entry_path (m->bases, fp);
  b->size = fp->size_mib << 20;
  if (fp->has_content_digest)
    {
      rootfs_digest_hex (fp->content_digest, hex);
      snprintf (b->content_digest, sizeof (b->content_digest), "sha256:%s", hex);
    }
  else
    snprintf (b->content_digest, sizeof (b->content_digest), "none");
  rootfs_geometry_from_counts (fp->entries, fp->content_bytes, &b->geometry);
  return b;
}

/* The cache directory for bases, opened on first use (base.c only: the
 * CLI's inspect must not create it). */
static int
bases_open (struct rootfs_manager *m, struct ate_error **err)
{
  int r = 0;

  pthread_mutex_lock (&m->lock);
  if (m->bases == NULL)
    r = rootfs_cache_open (m->cache_dir, m->cache_max_bytes, &m->bases, err);
  pthread_mutex_unlock (&m->lock);
  return r;
}

int
rootfs_base_get (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                 ate_deadline_t deadline, struct rootfs_base **out, struct ate_error **err)
{
  struct rootfs_base_result res = { .pin_fd = -1 };
  struct rootfs_outcome o;
  struct rootfs_base *b;

  memset (&o, 0, sizeof (o));
  if (bases_open (mgr, err) < 0)
    return ate_error_wrap (err, "base image of `%s`", bundle_rootfs_dir);
  if (rootfs_manager_submit (mgr, ROOTFS_JOB_BASE, bundle_rootfs_dir, bundle_rootfs_dir,
                             deadline, &o, &res, err)
      < 0)
    return ate_error_wrap (err, "base image of `%s`", bundle_rootfs_dir);
  b = base_new (mgr, res.pin_fd, &res.fp);
  b->origin = o.origin;
  b->joined = o.joined;
  *out = b;
  return 0;
}

int
rootfs_base_acquire (struct rootfs_manager *mgr, const char *id, struct rootfs_base **out,
                     struct ate_error **err)
{
  struct rootfs_fingerprint fp;
  int fd;

  if (bases_open (mgr, err) < 0)
    return -1;
  fd = rootfs_cache_pin_key (mgr->bases, id, &fp, err);
  if (fd < 0)
    return -1;
  *out = base_new (mgr, fd, &fp);
  (*out)->origin = ROOTFS_ORIGIN_REUSED;
  return 0;
}

void
rootfs_base_release (struct rootfs_base *b)
{
  if (b == NULL)
    return;
  close_and_reset (&b->pin_fd);
  /* Pinned bases may have held the cache above its bound. */
  rootfs_cache_trim (b->mgr->bases);
  free (b->path);
  free (b);
}
