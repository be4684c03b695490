/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "clone.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rootfs.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/sparse.h"
#include "util/util.h"

#define TEMP_RANDOM_LEN 6

int
rootfs_temp_create (const char *final_path, char **tmp_path, int *fd, struct ate_error **err)
{
  char *tmpl = xasprintf ("%s.XXXXXX" ROOTFS_TEMP_SUFFIX, final_path);
  int f = mkostemps (tmpl, (int) strlen (ROOTFS_TEMP_SUFFIX), O_CLOEXEC);

  if (f < 0)
    {
      int e = errno;
      free (tmpl);
      return ate_error_make (err, e, "create a temporary file next to `%s`", final_path);
    }
  if (flock (f, LOCK_EX | LOCK_NB) < 0)
    {
      int e = errno;
      unlink (tmpl);
      close (f);
      ate_error_make (err, e, "lock `%s`", tmpl);
      free (tmpl);
      return -1;
    }
  *tmp_path = tmpl;
  *fd = f;
  return 0;
}

static bool
is_temp_char (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool
rootfs_temp_name_matches (const char *base, const char *name)
{
  size_t bl = strlen (base), sl = strlen (ROOTFS_TEMP_SUFFIX);

  if (strlen (name) != bl + 1 + TEMP_RANDOM_LEN + sl || strncmp (name, base, bl) != 0
      || name[bl] != '.')
    return false;
  for (size_t i = 0; i < TEMP_RANDOM_LEN; i++)
    if (!is_temp_char (name[bl + 1 + i]))
      return false;
  return strcmp (name + bl + 1 + TEMP_RANDOM_LEN, ROOTFS_TEMP_SUFFIX) == 0;
}

/* "<base>.fingerprint.tmp.<pid>.<n>" of ate_write_file_atomic from a
 * process that is gone. */
static bool
is_stale_fingerprint_temp (const char *base, const char *name)
{
  cleanup_free char *prefix = xasprintf ("%s" ROOTFS_FINGERPRINT_SUFFIX ".tmp.", base);
  char *end;
  long pid;

  if (!str_has_prefix (name, prefix))
    return false;
  errno = 0;
  pid = strtol (name + strlen (prefix), &end, 10);
  if (errno != 0 || end == name + strlen (prefix) || *end != '.' || pid <= 0)
    return false;
  return pid != getpid () && kill ((pid_t) pid, 0) < 0 && errno == ESRCH;
}

/* Remove dirfd/name if no live build holds it. Returns 1 if removed. */
static int
remove_if_unheld (int dirfd, const char *name, struct ate_error **err)
{
  cleanup_close int fd = openat (dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  struct stat a, b;

  /* Only regular files are ours; anything else by that name is left. */
  if (fd < 0)
    return errno == ENOENT || errno == ELOOP || errno == ENXIO
               ? 0
               : ate_error_make (err, errno, "open leftover `%s`", name);
  if (fstat (fd, &a) < 0 || !S_ISREG (a.st_mode))
    return 0;
  if (flock (fd, LOCK_EX | LOCK_NB) < 0)
    return errno == EWOULDBLOCK ? 0 : ate_error_make (err, errno, "lock leftover `%s`", name);
  /* Still the same file under that name (not replaced meanwhile)? */
  if (fstatat (dirfd, name, &b, AT_SYMLINK_NOFOLLOW) < 0
      || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
    return 0;
  if (unlinkat (dirfd, name, 0) < 0 && errno != ENOENT)
    return ate_error_make (err, errno, "remove leftover `%s`", name);
  return 1;
}

int
rootfs_temp_cleanup (const char *final_path, struct ate_error **err)
{
  cleanup_free char *dir = ate_path_dirname (final_path);
  cleanup_free char *base = ate_path_basename (final_path);
  cleanup_dir DIR *d = opendir (dir);
  struct dirent *de;
  int removed = 0;

  if (d == NULL)
    return ate_error_make (err, errno, "open directory `%s`", dir);
  while ((errno = 0, de = readdir (d)) != NULL)
    {
      int r = 0;
      if (rootfs_temp_name_matches (base, de->d_name))
        r = remove_if_unheld (dirfd (d), de->d_name, err);
      else if (is_stale_fingerprint_temp (base, de->d_name))
        r = unlinkat (dirfd (d), de->d_name, 0) == 0 ? 1 : 0;
      if (r < 0)
        return ate_error_wrap (err, "clean up leftovers in `%s`", dir);
      removed += r;
    }
  if (errno != 0)
    return ate_error_make (err, errno, "read directory `%s`", dir);
  return removed;
}

int
rootfs_temp_publish (const char *tmp_path, const char *final_path, struct ate_error **err)
{
  if (rename (tmp_path, final_path) < 0)
    return ate_error_make (err, errno, "rename `%s` to `%s`", tmp_path, final_path);
  return 0;
}

int
rootfs_temp_install (int fd, const char *tmp_path, const char *final_path,
                     struct ate_error **err)
{
  if (fsync (fd) < 0)
    return ate_error_make (err, errno, "fsync `%s`", tmp_path);
  if (rename (tmp_path, final_path) < 0)
    return ate_error_make (err, errno, "rename `%s` to `%s`", tmp_path, final_path);
  return ate_fsync_dir_of (final_path, err);
}

int
rootfs_temp_install_new (int fd, const char *tmp_path, const char *final_path,
                         struct ate_error **err)
{
  if (fsync (fd) < 0)
    return ate_error_make (err, errno, "fsync `%s`", tmp_path);
  if (renameat2 (AT_FDCWD, tmp_path, AT_FDCWD, final_path, RENAME_NOREPLACE) < 0)
    {
      if (errno == EEXIST)
        {
          unlink (tmp_path);
          return 0;
        }
      return ate_error_make (err, errno, "rename `%s` to `%s`", tmp_path, final_path);
    }
  if (ate_fsync_dir_of (final_path, err) < 0)
    return -1;
  return 1;
}

/* Like ate_sparse_copy_fd, but an empty destination is only extended, never
 * truncated to zero first: ext4 treats "truncate to 0, write, close" as a
 * file being replaced (auto_da_alloc) and starts writeback of the whole
 * image on close, a third of a second per GiB on the caller's path. */
static int
sparse_copy (int src, int dst, struct ate_error **err)
{
  struct stat s, d;

  if (fstat (src, &s) < 0 || fstat (dst, &d) < 0)
    return ate_error_make (err, errno, "stat for a copy");
  if (d.st_size != 0 && ftruncate (dst, 0) < 0)
    return ate_error_make (err, errno, "truncate the copy");
  if (ftruncate (dst, s.st_size) < 0)
    return ate_error_make (err, errno, "size the copy");
  return ate_sparse_copy_extents (src, dst, s.st_size, NULL, err);
}

int
rootfs_clone_fd (int src, int dst, const char **method, struct ate_error **err)
{
  if (ioctl (dst, FICLONE, src) == 0)
    {
      *method = "reflink";
      return 0;
    }
  /* No shared extents here (ext4, tmpfs, another file system): copy. */
  if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EXDEV && errno != EINVAL
      && errno != ENOSYS && errno != EPERM)
    return ate_error_make (err, errno, "FICLONE");
  *method = "sparse-copy";
  return sparse_copy (src, dst, err);
}

uint64_t
rootfs_allocated_bytes (int fd)
{
  struct stat st;
  return fstat (fd, &st) == 0 ? (uint64_t) st.st_blocks * 512 : 0;
}
