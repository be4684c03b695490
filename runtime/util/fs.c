/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

int
ate_mkdir_p (const char *path, mode_t mode, struct ate_error **err)
{
  cleanup_free char *buf = xstrdup (path);
  size_t len = strlen (buf);

  if (len == 0)
    return ate_error_make (err, EINVAL, "mkdir: empty path");
  while (len > 1 && buf[len - 1] == '/')
    buf[--len] = '\0';

  for (char *p = buf + 1; *p; p++)
    {
      if (*p != '/')
        continue;
      *p = '\0';
      if (mkdir (buf, mode) < 0 && errno != EEXIST)
        return ate_error_make (err, errno, "mkdir `%s`", buf);
      *p = '/';
    }
  if (mkdir (buf, mode) < 0)
    {
      if (errno != EEXIST)
        return ate_error_make (err, errno, "mkdir `%s`", buf);
      if (!ate_is_dir (buf))
        return ate_error_make (err, ENOTDIR, "mkdir `%s`", buf);
    }
  return 0;
}

static int
rm_rf_at (int parent, const char *name, struct ate_error **err)
{
  struct stat st;

  if (fstatat (parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return ate_error_make (err, errno, "stat `%s`", name);
    }
  if (S_ISDIR (st.st_mode))
    {
      int fd = openat (parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return ate_error_make (err, errno, "open directory `%s`", name);
      cleanup_dir DIR *d = fdopendir (fd);
      if (d == NULL)
        {
          close (fd);
          return ate_error_make (err, errno, "fdopendir `%s`", name);
        }
      struct dirent *de;
      while ((errno = 0, de = readdir (d)) != NULL)
        {
          if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
            continue;
          if (rm_rf_at (dirfd (d), de->d_name, err) < 0)
            return ate_error_wrap (err, "remove `%s`", name);
        }
      if (errno != 0)
        return ate_error_make (err, errno, "readdir `%s`", name);
      if (unlinkat (parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return ate_error_make (err, errno, "rmdir `%s`", name);
      return 0;
    }
  if (unlinkat (parent, name, 0) < 0 && errno != ENOENT)
    return ate_error_make (err, errno, "unlink `%s`", name);
  return 0;
}

int
ate_rm_rf (const char *path, struct ate_error **err)
{
  if (path == NULL || path[0] == '\0')
    return ate_error_make (err, EINVAL, "rm -rf: empty path");
  /* rm_rf_at names path itself (a directory wraps what failed inside it
   * with "remove `path`"): no second wrap here. */
  return rm_rf_at (AT_FDCWD, path, err) < 0 ? -1 : 0;
}

int
ate_read_file (const char *path, size_t max_size, char **out, size_t *len,
               struct ate_error **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  cleanup_free char *buf = NULL;
  size_t used = 0, cap = 0;
  struct stat st;

  if (fd < 0)
    return ate_error_make (err, errno, "open `%s`", path);
  if (fstat (fd, &st) < 0)
    return ate_error_make (err, errno, "stat `%s`", path);
  if (S_ISREG (st.st_mode) && (size_t) st.st_size > max_size)
    return ate_error_make (err, EFBIG, "read `%s` (%lld bytes, limit %zu)", path,
                           (long long) st.st_size, max_size);
  cap = S_ISREG (st.st_mode) ? (size_t) st.st_size + 1 : 4096;
  buf = xmalloc (cap);
  for (;;)
    {
      if (used + 1 >= cap)
        {
          if (cap > max_size + 1)
            return ate_error_make (err, EFBIG, "read `%s` (limit %zu)", path, max_size);
          cap *= 2;
          buf = xrealloc (buf, cap);
        }
      ssize_t r = TEMP_FAILURE_RETRY (read (fd, buf + used, cap - used - 1));
      if (r < 0)
        return ate_error_make (err, errno, "read `%s`", path);
      if (r == 0)
        break;
      used += (size_t) r;
      if (used > max_size)
        return ate_error_make (err, EFBIG, "read `%s` (limit %zu)", path, max_size);
    }
  buf[used] = '\0';
  if (len)
    *len = used;
  *out = steal_pointer (&buf);
  return 0;
}

static int
write_all_fd (int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0)
    {
      ssize_t w = TEMP_FAILURE_RETRY (write (fd, p, len));
      if (w < 0)
        return -1;
      p += w;
      len -= (size_t) w;
    }
  return 0;
}

int
ate_write_file (const char *path, const void *data, size_t len, mode_t mode,
                struct ate_error **err)
{
  cleanup_close int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return ate_error_make (err, errno, "open `%s` for writing", path);
  if (write_all_fd (fd, data, len) < 0)
    return ate_error_make (err, errno, "write `%s`", path);
  if (close (steal_fd (&fd)) < 0)
    return ate_error_make (err, errno, "close `%s`", path);
  return 0;
}

int
ate_fsync_dir_of (const char *path, struct ate_error **err)
{
  cleanup_free char *dir = ate_path_dirname (path);
  cleanup_close int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return ate_error_make (err, errno, "open directory `%s`", dir);
  if (fsync (fd) < 0)
    return ate_error_make (err, errno, "fsync directory `%s`", dir);
  return 0;
}

int
ate_write_file_atomic (const char *path, const void *data, size_t len, mode_t mode,
                       struct ate_error **err)
{
  static atomic_uint counter;
  cleanup_free char *tmp = xasprintf ("%s.tmp.%d.%u", path, (int) getpid (),
                                      atomic_fetch_add (&counter, 1));
  cleanup_close int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

  if (fd < 0)
    return ate_error_make (err, errno, "create `%s`", tmp);
  if (fchmod (fd, mode) < 0 || write_all_fd (fd, data, len) < 0 || fsync (fd) < 0)
    {
      int e = errno;
      unlink (tmp);
      return ate_error_make (err, e, "write `%s`", tmp);
    }
  if (close (steal_fd (&fd)) < 0)
    {
      int e = errno;
      unlink (tmp);
      return ate_error_make (err, e, "close `%s`", tmp);
    }
  if (rename (tmp, path) < 0)
    {
      int e = errno;
      unlink (tmp);
      return ate_error_make (err, e, "rename `%s` to `%s`", tmp, path);
    }
  return ate_fsync_dir_of (path, err);
}

bool
ate_path_exists (const char *path)
{
  struct stat st;
  return lstat (path, &st) == 0;
}

bool
ate_is_dir (const char *path)
{
  struct stat st;
  return stat (path, &st) == 0 && S_ISDIR (st.st_mode);
}

bool
ate_is_regular_file (const char *path)
{
  struct stat st;
  return stat (path, &st) == 0 && S_ISREG (st.st_mode);
}

int
ate_unlink_if_exists (const char *path, struct ate_error **err)
{
  if (unlink (path) < 0 && errno != ENOENT)
    return ate_error_make (err, errno, "unlink `%s`", path);
  return 0;
}

char *
ate_path_join (const char *a, const char *b)
{
  size_t la = strlen (a);
  while (la > 1 && a[la - 1] == '/')
    la--;
  while (*b == '/')
    b++;
  if (la == 1 && a[0] == '/')
    return xasprintf ("/%s", b);
  return xasprintf ("%.*s/%s", (int) la, a, b);
}

char *
ate_path_basename (const char *path)
{
  cleanup_free char *copy = xstrdup (path);
  return xstrdup (basename (copy));
}

char *
ate_path_dirname (const char *path)
{
  cleanup_free char *copy = xstrdup (path);
  return xstrdup (dirname (copy));
}
