/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "untrusted.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

#define OPEN_FLAGS (O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)

const char *
ate_file_type_name (mode_t mode)
{
  switch (mode & S_IFMT)
    {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFLNK:
      return "a symbolic link";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    default:
      return "not a regular file";
    }
}

static int
precondition (struct ate_error **err, int errnum, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
precondition (struct ate_error **err, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  ate_error_vmake (err, ATE_CODE_FAILED_PRECONDITION, errnum, fmt, ap);
  va_end (ap);
  return -1;
}

/* What an open that failed found at `path`: a precise message for the
 * cases a caller can fix. */
static int
open_failed (const char *shown, int dirfd, const char *last, int errnum, struct ate_error **err)
{
  struct stat st;

  if ((errnum == ELOOP || errnum == EMLINK || errnum == ENOTDIR)
      && fstatat (dirfd, last, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK (st.st_mode))
    return precondition (err, errnum, "`%s`: `%s` is a symbolic link, not a regular file or "
                         "directory", shown, last);
  switch (errnum)
    {
    case ENOENT:
      return precondition (err, errnum, "`%s` is missing", shown);
    case ELOOP:
    case EMLINK:
      return precondition (err, errnum, "`%s`: too many symbolic links", shown);
    case ENOTDIR:
      return precondition (err, errnum, "`%s`: a path component is not a directory", shown);
    case EXDEV:
      return precondition (err, errnum, "`%s` leaves its directory", shown);
    case ENXIO:
    case ENODEV:
    case EACCES:
    case EPERM:
      return precondition (err, errnum, "`%s` cannot be opened for reading", shown);
    default:
      return ate_error_make (err, errnum, "open `%s`", shown);
    }
}

/* Component by component below dirfd, no symlink, no "." or "..". */
static int
open_beneath (int dirfd, const char *name, const char *shown, struct ate_error **err)
{
  cleanup_free char *copy = xstrdup (name);
  int dir = dirfd, fd = -1;
  char *save = NULL, *next;
  char *c = strtok_r (copy, "/", &save);

  if (name[0] == '/' || c == NULL)
    return precondition (err, EINVAL, "`%s` is not a relative file name", shown);
  for (; c; c = next)
    {
      next = strtok_r (NULL, "/", &save);
      if (strcmp (c, "..") == 0 || strcmp (c, ".") == 0)
        {
          if (dir != dirfd)
            close (dir);
          return precondition (err, EXDEV, "`%s` leaves its directory", shown);
        }
      fd = openat (dir, c,
                   next ? (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                        : (OPEN_FLAGS | O_NOFOLLOW));
      if (fd < 0)
        {
          int e = errno;
          open_failed (shown, dir, c, e, err);
          if (dir != dirfd)
            close (dir);
          return -1;
        }
      if (dir != dirfd)
        close (dir);
      if (next == NULL)
        break;
      dir = fd;
    }
  return fd;
}

int
ate_untrusted_open (const char *dir, const char *name, size_t max_size, struct stat *stp,
                    struct ate_error **err)
{
  cleanup_free char *shown = dir ? ate_path_join (dir, name) : xstrdup (name);
  cleanup_close int fd = -1;
  struct stat st;

  if (dir)
    {
      cleanup_close int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd < 0)
        return errno == ENOENT
                   ? precondition (err, errno, "directory `%s` is missing", dir)
                   : ate_error_make (err, errno, "open directory `%s`", dir);
      fd = open_beneath (dfd, name, shown, err);
      if (fd < 0)
        return -1;
    }
  else
    {
      if (name[0] != '/')
        return precondition (err, EINVAL, "`%s` is not an absolute path", name);
      fd = open (name, OPEN_FLAGS);
      if (fd < 0)
        return open_failed (shown, AT_FDCWD, name, errno, err);
    }
  if (fstat (fd, &st) < 0)
    return ate_error_make (err, errno, "stat `%s`", shown);
  if (!S_ISREG (st.st_mode))
    return precondition (err, EINVAL, "`%s` is %s, not a regular file", shown,
                         ate_file_type_name (st.st_mode));
  if ((uint64_t) st.st_size > (uint64_t) max_size)
    return precondition (err, EFBIG, "`%s` is %lld bytes (at most %zu)", shown,
                         (long long) st.st_size, max_size);
  if (stp)
    *stp = st;
  return steal_fd (&fd);
}

int
ate_untrusted_check (const char *dir, const char *name, size_t max_size, struct ate_error **err)
{
  int fd = ate_untrusted_open (dir, name, max_size, NULL, err);
  if (fd < 0)
    return -1;
  close (fd);
  return 0;
}

int
ate_untrusted_read (const char *dir, const char *name, size_t max_size, ate_deadline_t deadline,
                    char **out, size_t *len, struct ate_error **err)
{
  cleanup_free char *shown = dir ? ate_path_join (dir, name) : xstrdup (name);
  cleanup_free char *buf = NULL;
  cleanup_close int fd = -1;
  struct stat st;
  size_t used = 0, want;

  fd = ate_untrusted_open (dir, name, max_size, &st, err);
  if (fd < 0)
    return -1;
  want = (size_t) st.st_size;
  buf = xmalloc (want + 1);
  /* A regular file never blocks; the deadline bounds slow storage, and a
   * file that grows under us is cut at the size checked. */
  while (used < want)
    {
      ssize_t r;
      if (ate_deadline_expired (deadline))
        return ate_error_make_code (err, ATE_CODE_DEADLINE_EXCEEDED, ETIMEDOUT,
                                    "read `%s`: deadline exceeded", shown);
      r = TEMP_FAILURE_RETRY (read (fd, buf + used, want - used < (1u << 20) ? want - used
                                                                             : (1u << 20)));
      if (r < 0)
        return ate_error_make (err, errno, "read `%s`", shown);
      if (r == 0)
        break;
      used += (size_t) r;
    }
  buf[used] = '\0';
  if (len)
    *len = used;
  *out = steal_pointer (&buf);
  return 0;
}
