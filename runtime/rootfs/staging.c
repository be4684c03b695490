/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "staging.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "scan.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

#define STAGING_RANDOM_LEN 6
#define XATTR_BUF 65536

/* Not an error of the tree: links are not possible here, read the source. */
#define NO_LINKS 1

struct copier
{
  const atomic_bool *cancel;
  char *names;  /* xattr name list */
  char *value;  /* one xattr value */
};

/* Copy the xattrs of src_dirfd/name (never through a symlink) onto fd.
 * NO_LINKS when one cannot be set here (the image would lack it). */
static int
copy_xattrs (struct copier *c, int src_dirfd, const char *name, int fd, const char *rel,
             struct ate_error **err)
{
  char path[64 + NAME_MAX];
  ssize_t len;

  snprintf (path, sizeof (path), "/proc/self/fd/%d/%s", src_dirfd, name);
  len = llistxattr (path, c->names, XATTR_BUF);
  if (len < 0)
    return errno == ENOTSUP || errno == ENODATA
               ? 0
               : ate_error_make (err, errno, "list xattrs of `%s`", rel);
  for (ssize_t off = 0; off < len; off += (ssize_t) strlen (c->names + off) + 1)
    {
      const char *key = c->names + off;
      ssize_t vl = lgetxattr (path, key, c->value, XATTR_BUF);
      if (vl < 0)
        return ate_error_make (err, errno, "read xattr %s of `%s`", key, rel);
      if (fsetxattr (fd, key, c->value, (size_t) vl, 0) < 0)
        return NO_LINKS;
    }
  return 0;
}

static int copy_dir (struct copier *c, int src, int dst, const char *rel, unsigned depth,
                     struct ate_error **err);

static int
copy_entry (struct copier *c, int src, int dst, const char *name, const char *rel,
            unsigned depth, struct ate_error **err)
{
  struct stat st;
  int r;

  if (fstatat (src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return ate_error_make (err, errno == ENOENT ? EAGAIN : errno,
                           "stat `%s` (removed while it was staged?)", rel);
  if (!S_ISDIR (st.st_mode))
    {
      /* Symlinks, devices, fifos and sockets are linked like files: the
       * link is the same inode, with its mode, target and xattrs. */
      if (linkat (src, name, dst, name, 0) == 0)
        return 0;
      if (errno == EXDEV || errno == EPERM || errno == EMLINK)
        return NO_LINKS;
      return ate_error_make (err, errno == ENOENT ? EAGAIN : errno,
                             "link `%s` (removed while it was staged?)", rel);
    }
  if (depth >= ROOTFS_SCAN_MAX_DEPTH)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                                "the bundle's rootfs: `%s` is nested deeper than %d directories",
                                rel, ROOTFS_SCAN_MAX_DEPTH);
  if (mkdirat (dst, name, 0700) < 0)
    return ate_error_make (err, errno, "create staging directory for `%s`", rel);
  cleanup_close int sfd = openat (src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  cleanup_close int dfd = openat (dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sfd < 0 || dfd < 0)
    return ate_error_make (err, errno == ENOENT ? EAGAIN : errno, "open directory `%s`", rel);
  r = copy_xattrs (c, src, name, dfd, rel, err);
  if (r == 0)
    r = copy_dir (c, sfd, dfd, rel, depth + 1, err);
  /* The mode last: a 0555 directory must still take its entries. */
  if (r == 0 && fchmod (dfd, st.st_mode & 07777) < 0)
    return ate_error_make (err, errno, "chmod staging directory of `%s`", rel);
  return r;
}

static int
copy_dir (struct copier *c, int src, int dst, const char *rel, unsigned depth,
          struct ate_error **err)
{
  int fd = fcntl (src, F_DUPFD_CLOEXEC, 3);
  cleanup_dir DIR *d = NULL;
  struct dirent *de;
  int r = 0;

  if (c->cancel && atomic_load (c->cancel))
    return ate_error_make (err, ECANCELED, "staging cancelled");
  if (fd < 0)
    return ate_error_make (err, errno, "dup directory fd");
  d = fdopendir (fd);
  if (d == NULL)
    {
      int e = errno;
      close (fd);
      return ate_error_make (err, e, "fdopendir `%s`", rel);
    }
  while (r == 0 && (errno = 0, de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      cleanup_free char *sub = *rel ? xasprintf ("%s/%s", rel, de->d_name)
                                    : xstrdup (de->d_name);
      r = copy_entry (c, src, dst, de->d_name, sub, depth, err);
    }
  if (r == 0 && errno != 0)
    return ate_error_make (err, errno, "read directory `%s`", rel);
  return r;
}

/* rm -rf that first makes each directory writable (a copied 0555). */
static void
remove_at (int parent, const char *name)
{
  struct stat st;

  if (fstatat (parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return;
  if (S_ISDIR (st.st_mode))
    {
      int fd = openat (parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return;
      (void) fchmod (fd, 0700);
      cleanup_dir DIR *d = fdopendir (fd);
      if (d == NULL)
        {
          close (fd);
          return;
        }
      struct dirent *de;
      while ((de = readdir (d)) != NULL)
        if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
          remove_at (dirfd (d), de->d_name);
      (void) unlinkat (parent, name, AT_REMOVEDIR);
      return;
    }
  (void) unlinkat (parent, name, 0);
}

static void
remove_path (const char *path)
{
  remove_at (AT_FDCWD, path);
}

/* "<near>.<6 random>.staging", created 0700 and locked. */
static int
make_dir (const char *near_path, struct rootfs_staging *st, struct ate_error **err)
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

  for (int attempt = 0; attempt < 100; attempt++)
    {
      unsigned char rnd[STAGING_RANDOM_LEN];
      char suffix[STAGING_RANDOM_LEN + 1];
      if (getrandom (rnd, sizeof (rnd), 0) != (ssize_t) sizeof (rnd))
        return ate_error_make (err, errno, "getrandom");
      for (size_t i = 0; i < STAGING_RANDOM_LEN; i++)
        suffix[i] = alphabet[rnd[i] % (sizeof (alphabet) - 1)];
      suffix[STAGING_RANDOM_LEN] = '\0';
      char *dir = xasprintf ("%s.%s" ROOTFS_STAGING_SUFFIX, near_path, suffix);
      if (mkdir (dir, 0700) < 0)
        {
          int e = errno;
          free (dir);
          if (e == EEXIST)
            continue;
          return ate_error_make (err, e, "create a staging directory next to `%s`",
                                 near_path);
        }
      st->lock_fd = open (dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (st->lock_fd < 0 || flock (st->lock_fd, LOCK_EX | LOCK_NB) < 0)
        {
          int e = errno;
          remove_path (dir);
          free (dir);
          return ate_error_make (err, e, "lock a staging directory next to `%s`", near_path);
        }
      st->dir = dir;
      return 0;
    }
  return ate_error_make (err, EEXIST, "no free staging directory name next to `%s`",
                         near_path);
}

void
rootfs_staging_remove (struct rootfs_staging *st)
{
  if (st == NULL)
    return;
  if (st->dir)
    remove_path (st->dir);
  free (st->dir);
  st->dir = NULL;
  close_and_reset (&st->lock_fd);
}

int
rootfs_staging_create (const char *src, const char *near_path, const atomic_bool *cancel,
                       struct rootfs_staging *st, struct ate_error **err)
{
  struct copier c = { .cancel = cancel };
  cleanup_close int sfd = open (src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r;

  st->dir = NULL;
  st->lock_fd = -1;
  if (sfd < 0)
    return ate_error_make (err, errno, "source `%s` is not a readable directory", src);
  if (make_dir (near_path, st, err) < 0)
    return -1;
  c.names = xmalloc (XATTR_BUF);
  c.value = xmalloc (XATTR_BUF);
  /* The root's own xattrs are copied by mkfs onto "/" (its mode, owner and
   * times are set by the build). */
  r = copy_xattrs (&c, sfd, ".", st->lock_fd, ".", err);
  if (r == 0)
    r = copy_dir (&c, sfd, st->lock_fd, "", 1, err);
  free (c.names);
  free (c.value);
  if (r != 0)
    {
      rootfs_staging_remove (st);
      if (r < 0)
        return ate_error_wrap (err, "stage `%s`", src);
      return 0;
    }
  return 1;
}

static bool
is_staging_name (const char *base, const char *name)
{
  size_t bl = strlen (base), sl = strlen (ROOTFS_STAGING_SUFFIX);

  if (strlen (name) != bl + 1 + STAGING_RANDOM_LEN + sl || strncmp (name, base, bl) != 0
      || name[bl] != '.')
    return false;
  return strcmp (name + bl + 1 + STAGING_RANDOM_LEN, ROOTFS_STAGING_SUFFIX) == 0;
}

int
rootfs_staging_cleanup (const char *near_path, struct ate_error **err)
{
  cleanup_free char *dir = ate_path_dirname (near_path);
  cleanup_free char *base = ate_path_basename (near_path);
  cleanup_dir DIR *d = opendir (dir);
  struct dirent *de;
  int removed = 0;

  if (d == NULL)
    return ate_error_make (err, errno, "open `%s`", dir);
  while ((de = readdir (d)) != NULL)
    {
      if (!is_staging_name (base, de->d_name))
        continue;
      cleanup_close int fd = openat (dirfd (d), de->d_name,
                                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 || flock (fd, LOCK_EX | LOCK_NB) < 0)
        continue; /* a live job's, or not ours */
      remove_at (dirfd (d), de->d_name);
      removed++;
    }
  return removed;
}
