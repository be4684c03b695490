/* SPDX-License-Identifier: Apache-2.0 */
/* Where decoded bytes go: a sparse file (holes skipped), a stream (holes
 * written as zeros) or nowhere (inspect). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "snapshot-internal.h"
#include "util/error.h"

static const uint8_t zeros[64 * 1024];

/* Size changes that need no action (streams learn their size from the data;
 * inspect writes nothing). */
static int
noop_size (struct snapshot_sink *s, uint64_t size, struct ate_error **err)
{
  (void) s;
  (void) size;
  (void) err;
  return 0;
}

static int
file_truncate (struct snapshot_sink *s, uint64_t size, struct ate_error **err)
{
  if (ftruncate (s->fd, (off_t) size) < 0)
    return ate_error_make (err, errno, "set output size to %llu bytes",
                           (unsigned long long) size);
  return 0;
}

static int
file_write (struct snapshot_sink *s, uint64_t off, const uint8_t *p, size_t n,
            struct ate_error **err)
{
  return snapshot_pwrite_all (s->fd, p, n, off, err);
}

void
snapshot_sink_init_file (struct snapshot_sink *s, int fd, const struct snapshot_ctl *ctl)
{
  *s = (struct snapshot_sink) { .set_size = file_truncate, .write = file_write,
                                .finish = file_truncate, .fd = fd, .ctl = ctl };
}

static int
stream_fill (struct snapshot_sink *s, uint64_t to, struct ate_error **err)
{
  while (s->pos < to)
    {
      size_t n = sizeof (zeros);
      if (to - s->pos < n)
        n = (size_t) (to - s->pos);
      if (snapshot_write_all (s->fd, zeros, n, s->ctl, err) < 0)
        return -1;
      s->pos += n;
    }
  return 0;
}

static int
stream_write (struct snapshot_sink *s, uint64_t off, const uint8_t *p, size_t n,
              struct ate_error **err)
{
  if (off < s->pos)
    return ate_error_make (err, EINVAL, "stream output cannot go back to offset %llu",
                           (unsigned long long) off);
  if (stream_fill (s, off, err) < 0)
    return -1;
  if (snapshot_write_all (s->fd, p, n, s->ctl, err) < 0)
    return -1;
  s->pos += n;
  return 0;
}

void
snapshot_sink_init_stream (struct snapshot_sink *s, int fd, const struct snapshot_ctl *ctl)
{
  *s = (struct snapshot_sink) { .set_size = noop_size, .write = stream_write,
                                .finish = stream_fill, .fd = fd, .ctl = ctl };
}

static int
null_write (struct snapshot_sink *s, uint64_t off, const uint8_t *p, size_t n,
            struct ate_error **err)
{
  (void) s;
  (void) off;
  (void) p;
  (void) n;
  (void) err;
  return 0;
}

void
snapshot_sink_init_null (struct snapshot_sink *s)
{
  *s = (struct snapshot_sink) { .set_size = noop_size, .write = null_write,
                                .finish = noop_size, .fd = -1 };
}
