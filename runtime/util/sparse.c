/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "sparse.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

#define COPY_CHUNK (1 << 20)

int
ate_sparse_next_extent (int fd, off_t from, off_t size, off_t *start, off_t *end,
                        struct ate_error **err)
{
  off_t ds, de;

  if (from >= size)
    return 0;
  ds = lseek (fd, from, SEEK_DATA);
  if (ds < 0)
    {
      if (errno == ENXIO)
        return 0;
      if (errno == EINVAL || errno == EOPNOTSUPP)
        {
          /* No SEEK_DATA support: treat the rest as data. */
          *start = from;
          *end = size;
          return 1;
        }
      return ate_error_make (err, errno, "lseek SEEK_DATA at %lld", (long long) from);
    }
  if (ds >= size)
    return 0;
  de = lseek (fd, ds, SEEK_HOLE);
  if (de < 0)
    return ate_error_make (err, errno, "lseek SEEK_HOLE at %lld", (long long) ds);
  if (de > size)
    de = size;
  *start = ds;
  *end = de;
  return 1;
}

static int
copy_range_rw (int src, int dst, off_t start, off_t end, struct ate_error **err)
{
  cleanup_free char *buf = xmalloc (COPY_CHUNK);
  off_t off = start;

  while (off < end)
    {
      size_t want = (size_t) ((end - off) < COPY_CHUNK ? (end - off) : COPY_CHUNK);
      ssize_t r = TEMP_FAILURE_RETRY (pread (src, buf, want, off));
      if (r < 0)
        return ate_error_make (err, errno, "read at %lld", (long long) off);
      if (r == 0)
        return ate_error_make (err, EIO, "short read at %lld", (long long) off);
      for (ssize_t done = 0; done < r;)
        {
          ssize_t w = TEMP_FAILURE_RETRY (pwrite (dst, buf + done, (size_t) (r - done), off + done));
          if (w < 0)
            return ate_error_make (err, errno, "write at %lld", (long long) (off + done));
          done += w;
        }
      off += r;
    }
  return 0;
}

int
ate_sparse_copy_range (int src, int dst, off_t start, off_t end, struct ate_error **err)
{
  off_t in = start, out = start;

  while (in < end)
    {
      size_t want = (size_t) (end - in);
      if (want > (size_t) 1 << 30)
        want = (size_t) 1 << 30;
      ssize_t n = copy_file_range (src, &in, dst, &out, want, 0);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EXDEV || errno == EINVAL || errno == ENOSYS
              || errno == EOPNOTSUPP || errno == EBADF)
            return copy_range_rw (src, dst, in, end, err);
          return ate_error_make (err, errno, "copy_file_range at %lld", (long long) in);
        }
      if (n == 0)
        return ate_error_make (err, EIO, "short copy at %lld (source truncated?)",
                               (long long) in);
    }
  return 0;
}

int
ate_sparse_copy_extents (int src, int dst, off_t size, uint64_t *copied,
                         struct ate_error **err)
{
  off_t off = 0, s, e;
  int r;

  while ((r = ate_sparse_next_extent (src, off, size, &s, &e, err)) > 0)
    {
      if (ate_sparse_copy_range (src, dst, s, e, err) < 0)
        return -1;
      if (copied)
        *copied += (uint64_t) (e - s);
      off = e;
    }
  return r < 0 ? -1 : 0;
}

int
ate_sparse_copy_fd (int src, int dst, struct ate_error **err)
{
  struct stat st;

  if (fstat (src, &st) < 0)
    return ate_error_make (err, errno, "stat source");
  if (ftruncate (dst, 0) < 0 || ftruncate (dst, st.st_size) < 0)
    return ate_error_make (err, errno, "truncate destination");
  return ate_sparse_copy_extents (src, dst, st.st_size, NULL, err);
}
