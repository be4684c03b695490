/* SPDX-License-Identifier: Apache-2.0 */
/* Robust reads and writes for the codec: files, pipes and sockets alike,
 * with cancellation and deadlines honoured while blocked. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <unistd.h>

#include "snapshot-internal.h"
#include "util/error.h"
#include "util/util.h"

int
snapshot_ctl_check (const struct snapshot_ctl *ctl, struct ate_error **err)
{
  if (ctl == NULL)
    return 0;
  if (ctl->cancel != NULL && *ctl->cancel)
    return ate_error_make_code (err, ATE_CODE_CANCELLED, ECANCELED, "interrupted");
  if (ctl->deadline != 0 && ate_deadline_expired (ctl->deadline))
    return ate_error_make (err, ETIMEDOUT, "deadline exceeded");
  return 0;
}

/* Wait until fd is ready, waking up now and then to notice a cancellation
 * or the deadline.  Checking a flag and then blocking in read() would race
 * with a signal arriving in between; poll with a timeout cannot hang.
 * Returns 1 when ready, < 0 when stopped or on error. */
static int
wait_fd (int fd, short events, const struct snapshot_ctl *ctl, struct ate_error **err)
{
  struct pollfd pfd = { .fd = fd, .events = events };

  for (;;)
    {
      int timeout = 250, r;
      if (snapshot_ctl_check (ctl, err) < 0)
        return -1;
      if (ctl == NULL || (ctl->cancel == NULL && ctl->deadline == 0))
        timeout = -1;
      else if (ctl->deadline != 0 && ate_deadline_poll_ms (ctl->deadline) < timeout)
        timeout = ate_deadline_poll_ms (ctl->deadline);
      r = poll (&pfd, 1, timeout);
      if (r > 0)
        return 1;
      if (r < 0 && errno != EINTR)
        return ate_error_make (err, errno, "poll");
    }
}

static bool
stoppable (const struct snapshot_ctl *ctl)
{
  return ctl != NULL && (ctl->cancel != NULL || ctl->deadline != 0);
}

ssize_t
snapshot_read_full (int fd, void *buf, size_t len, const struct snapshot_ctl *ctl,
                    struct ate_error **err)
{
  size_t done = 0;

  while (done < len)
    {
      /* Pipes can stall forever; regular files poll as ready at once. */
      if (stoppable (ctl) && wait_fd (fd, POLLIN, ctl, err) < 0)
        return -1;
      ssize_t r = read (fd, (char *) buf + done, len - done);
      if (r == 0)
        break;
      if (r > 0)
        {
          done += (size_t) r;
          continue;
        }
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        {
          if (wait_fd (fd, POLLIN, ctl, err) < 0)
            return -1;
          continue;
        }
      return ate_error_make (err, errno, "read input");
    }
  return (ssize_t) done;
}

int
snapshot_write_all (int fd, const void *buf, size_t len, const struct snapshot_ctl *ctl,
                    struct ate_error **err)
{
  size_t done = 0;

  while (done < len)
    {
      if (stoppable (ctl) && wait_fd (fd, POLLOUT, ctl, err) < 0)
        return -1;
      ssize_t w = write (fd, (const char *) buf + done, len - done);
      if (w > 0)
        {
          done += (size_t) w;
          continue;
        }
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 && errno == EAGAIN)
        {
          if (wait_fd (fd, POLLOUT, ctl, err) < 0)
            return -1;
          continue;
        }
      return ate_error_make (err, w < 0 ? errno : EIO, "write output");
    }
  return 0;
}

int
snapshot_pwrite_all (int fd, const void *buf, size_t len, uint64_t off,
                     struct ate_error **err)
{
  size_t done = 0;

  while (done < len)
    {
      ssize_t w = pwrite (fd, (const char *) buf + done, len - done,
                          (off_t) (off + done));
      if (w > 0)
        {
          done += (size_t) w;
          continue;
        }
      if (w < 0 && errno == EINTR)
        continue;
      return ate_error_make (err, w < 0 ? errno : EIO, "write output at offset %llu",
                             (unsigned long long) (off + done));
    }
  return 0;
}

int
snapshot_error_corrupt (struct ate_error **err, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = ate_error_vmake (err, ATE_CODE_DATA_LOSS, 0, fmt, ap);
  va_end (ap);
  if (*err != NULL)
    (*err)->status = EBADMSG;
  return r;
}

const char *
snapshot_format_name (enum snapshot_format format)
{
  switch (format)
    {
    case SNAPSHOT_FORMAT_SPARSE_V2:
      return "sparse-v2";
    case SNAPSHOT_FORMAT_PLAIN_ZSTD:
      return "plain-zstd";
    case SNAPSHOT_FORMAT_AUTO:
      break;
    }
  return "auto";
}
