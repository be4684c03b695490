/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "merge.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "merge_testing.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/sparse.h"
#include "util/util.h"

static enum ch_merge_crash_point crash_at;
static int force_exdev;

void
ch_merge_test_crash_at (enum ch_merge_crash_point point)
{
  crash_at = point;
}

void
ch_merge_test_force_exdev (int on)
{
  force_exdev = on;
}

static void
crash_point (enum ch_merge_crash_point p)
{
  if (crash_at != CH_MERGE_CRASH_NONE && crash_at == p)
    kill (getpid (), SIGKILL); /* a real crash: nothing cleaned up */
}

static int
open_regular (const char *path, int flags, struct stat *st, struct ate_error **err)
{
  int fd = open (path, flags | O_CLOEXEC | O_NOFOLLOW);

  if (fd < 0)
    return ate_error_make (err, errno, "open `%s`", path);
  if (fstat (fd, st) < 0)
    {
      int e = errno;
      close (fd);
      return ate_error_make (err, e, "stat `%s`", path);
    }
  if (!S_ISREG (st->st_mode))
    {
      close (fd);
      return ate_error_make (err, EINVAL, "`%s` is not a regular file", path);
    }
  return fd;
}

static int
check_sizes (const char *base, const struct stat *bst, const char *delta,
             const struct stat *dst, struct ate_error **err)
{
  if (bst->st_size != dst->st_size)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EINVAL,
                                "cannot merge `%s` (%lld bytes) into `%s` (%lld bytes): sizes "
                                "differ (different guest memory size or CH version?)",
                                delta, (long long) dst->st_size, base, (long long) bst->st_size);
  return 0;
}

/* Copy every data extent of src into dst; the test hook can stop after the
 * first one to leave a torn work file behind. */
static int
copy_extents (int src, int dst, off_t size, enum ch_merge_crash_point torn,
              struct ate_error **err)
{
  off_t off = 0, s, e;
  int r;

  while ((r = ate_sparse_next_extent (src, off, size, &s, &e, err)) > 0)
    {
      if (ate_sparse_copy_range (src, dst, s, e, err) < 0)
        return -1;
      crash_point (torn);
      off = e;
    }
  return r;
}

int
ch_merge_sparse_overlay (const char *base, const char *delta, const char *out,
                         struct ate_error **err)
{
  cleanup_free char *tmp = xasprintf ("%s" CH_OVERLAY_TMP_SUFFIX, out);
  cleanup_close int bfd = -1, dfd = -1, tfd = -1;
  struct stat bst, dst;

  bfd = open_regular (base, O_RDONLY, &bst, err);
  if (bfd < 0)
    return ate_error_wrap (err, "merge overlay");
  dfd = open_regular (delta, O_RDONLY, &dst, err);
  if (dfd < 0)
    return ate_error_wrap (err, "merge overlay");
  if (check_sizes (base, &bst, delta, &dst, err) < 0)
    return -1;
  if (ate_unlink_if_exists (tmp, err) < 0)
    return ate_error_wrap (err, "merge overlay");
  tfd = open (tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, bst.st_mode & 0777);
  if (tfd < 0)
    return ate_error_make (err, errno, "merge overlay: create `%s`", tmp);
  if (ftruncate (tfd, bst.st_size) < 0)
    {
      ate_error_make (err, errno, "merge overlay: size `%s`", tmp);
      goto fail;
    }
  if (ate_sparse_copy_extents (bfd, tfd, bst.st_size, NULL, err) < 0)
    goto fail;
  crash_point (CH_OVERLAY_CRASH_AFTER_BASE_COPY);
  if (copy_extents (dfd, tfd, dst.st_size, CH_OVERLAY_CRASH_AFTER_FIRST_EXTENT, err) < 0)
    goto fail;
  if (close (steal_fd (&tfd)) < 0)
    {
      ate_error_make (err, errno, "merge overlay: close `%s`", tmp);
      goto fail;
    }
  if (rename (tmp, out) < 0)
    {
      ate_error_make (err, errno, "merge overlay: rename `%s` to `%s`", tmp, out);
      goto fail;
    }
  return 0;

fail:
  unlink (tmp);
  return ate_error_wrap (err, "merge `%s` over `%s` into `%s`", delta, base, out);
}

/* Lay delta's extents over the work file (which holds the old base, maybe
 * partly merged already: the copy is idempotent), then move it to delta. */
static int
finish_merge (const char *tmp, const char *delta, bool delta_present, struct ate_error **err)
{
  if (delta_present)
    {
      cleanup_close int tfd = -1, dfd = -1;
      struct stat tst, dst;

      tfd = open_regular (tmp, O_RDWR, &tst, err);
      if (tfd < 0)
        return -1;
      dfd = open_regular (delta, O_RDONLY, &dst, err);
      if (dfd < 0)
        return -1;
      if (check_sizes (tmp, &tst, delta, &dst, err) < 0)
        return -1;
      if (copy_extents (dfd, tfd, dst.st_size, CH_MERGE_CRASH_AFTER_FIRST_EXTENT, err) < 0)
        return -1;
      if (close (steal_fd (&tfd)) < 0)
        return ate_error_make (err, errno, "close `%s`", tmp);
      crash_point (CH_MERGE_CRASH_AFTER_COPY);
      /* Unlink first, then rename onto the free name: a rename that
       * replaces a file makes ext4 write back the renamed file's dirty
       * pages synchronously (~0.8 s vs ~5 ms measured upstream). */
      if (unlink (delta) < 0)
        return ate_error_make (err, errno, "unlink `%s`", delta);
      crash_point (CH_MERGE_CRASH_AFTER_UNLINK_DELTA);
    }
  if (rename (tmp, delta) < 0)
    return ate_error_make (err, errno, "rename `%s` to `%s`", tmp, delta);
  return 0;
}

int
ch_merge_recover (const char *base, const char *delta, struct ate_error **err)
{
  cleanup_free char *tmp = xasprintf ("%s" CH_MERGE_TMP_SUFFIX, delta);
  cleanup_free char *otmp = xasprintf ("%s" CH_OVERLAY_TMP_SUFFIX, delta);
  bool have_base = ate_path_exists (base), have_delta = ate_path_exists (delta);
  bool have_tmp = ate_path_exists (tmp);

  /* An overlay never touches base or delta before its final rename: its
   * work file is only ever garbage. */
  if (ate_unlink_if_exists (otmp, err) < 0)
    return ate_error_wrap (err, "merge recovery");
  if (!have_tmp)
    return 0;
  if (have_base)
    {
      /* The work file only ever comes from renaming base: with base still
       * present it is left over from an older merge. */
      if (ate_unlink_if_exists (tmp, err) < 0)
        return ate_error_wrap (err, "merge recovery");
      return 0;
    }
  if (finish_merge (tmp, delta, have_delta, err) < 0)
    return ate_error_wrap (err, "finish interrupted merge of `%s` into `%s`", delta, base);
  return 1;
}

int
ch_merge_delta_into_base (const char *base, const char *delta, struct ate_error **err)
{
  cleanup_free char *tmp = xasprintf ("%s" CH_MERGE_TMP_SUFFIX, delta);
  struct stat bst, dst;
  int r;

  r = ch_merge_recover (base, delta, err);
  if (r != 0)
    return r < 0 ? -1 : 0;
  if (lstat (base, &bst) < 0)
    return ate_error_make (err, errno, "merge: stat base `%s`", base);
  if (lstat (delta, &dst) < 0)
    return ate_error_make (err, errno, "merge: stat delta `%s`", delta);
  if (!S_ISREG (bst.st_mode) || !S_ISREG (dst.st_mode))
    return ate_error_make (err, EINVAL, "merge: `%s` and `%s` must be regular files", base,
                           delta);
  if (check_sizes (base, &bst, delta, &dst, err) < 0)
    return -1;
  if (force_exdev || rename (base, tmp) < 0)
    {
      if (force_exdev || errno == EXDEV)
        return ch_merge_sparse_overlay (base, delta, delta, err);
      return ate_error_make (err, errno, "merge: rename `%s` to `%s`", base, tmp);
    }
  crash_point (CH_MERGE_CRASH_AFTER_RENAME_BASE);
  if (finish_merge (tmp, delta, true, err) < 0)
    return ate_error_wrap (err, "merge `%s` into `%s` (base kept as `%s`; "
                           "ch_merge_recover retries)", delta, base, tmp);
  return 0;
}
