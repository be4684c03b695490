/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "util/error.h"
#include "util/util.h"

int
kata_io_wait (int fd, short events, ate_deadline_t deadline, struct ate_error **err)
{
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = events };
      int r = poll (&p, 1, ate_deadline_poll_ms (deadline));
      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          return ate_error_make (err, errno, "poll");
        }
      if (r == 0)
        return 0;
      /* POLLHUP/POLLERR: let the following read/write report it. */
      return 1;
    }
}

int
kata_io_read_full (int fd, void *buf, size_t len, ate_deadline_t deadline, bool *eof,
                   struct ate_error **err)
{
  size_t done = 0;

  if (eof)
    *eof = false;
  while (done < len)
    {
      ssize_t n;
      int r = kata_io_wait (fd, POLLIN, deadline, err);
      if (r < 0)
        return r;
      if (r == 0)
        return ate_error_make (err, ETIMEDOUT, "read timed out after %zu of %zu bytes",
                               done, len);
      n = recv (fd, (char *) buf + done, len - done, MSG_DONTWAIT);
      if (n < 0)
        {
          if (errno == EINTR || errno == EAGAIN)
            continue;
          return ate_error_make (err, errno, "read");
        }
      if (n == 0)
        {
          if (done == 0)
            {
              if (eof)
                *eof = true;
              return ate_error_make (err, ECONNRESET, "connection closed by peer");
            }
          return ate_error_make (err, ECONNRESET,
                                 "connection closed by peer after %zu of %zu bytes",
                                 done, len);
        }
      done += (size_t) n;
    }
  return 0;
}

int
kata_io_discard (int fd, size_t len, ate_deadline_t deadline, struct ate_error **err)
{
  char sink[16384];

  while (len > 0)
    {
      size_t chunk = len < sizeof (sink) ? len : sizeof (sink);
      if (kata_io_read_full (fd, sink, chunk, deadline, NULL, err) < 0)
        return -1;
      len -= chunk;
    }
  return 0;
}

int
kata_io_writev_full (int fd, const struct iovec *iov_in, int iovcnt,
                     ate_deadline_t deadline, struct ate_error **err)
{
  struct iovec iov[8];
  struct iovec *v = iov;
  int n = iovcnt;

  if (iovcnt > (int) ATE_N_ELEMENTS (iov))
    return ate_error_make (err, EINVAL, "too many buffers");
  memcpy (iov, iov_in, sizeof (*iov) * (size_t) iovcnt);
  while (n > 0 && v->iov_len == 0)
    {
      v++;
      n--;
    }
  while (n > 0)
    {
      struct msghdr mh = { .msg_iov = v, .msg_iovlen = (size_t) n };
      ssize_t w = sendmsg (fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            {
              int r = kata_io_wait (fd, POLLOUT, deadline, err);
              if (r < 0)
                return r;
              if (r == 0)
                return ate_error_make (err, ETIMEDOUT, "write timed out");
              continue;
            }
          return ate_error_make (err, errno, "write");
        }
      while (n > 0 && (size_t) w >= v->iov_len)
        {
          w -= (ssize_t) v->iov_len;
          v++;
          n--;
        }
      if (n > 0)
        {
          v->iov_base = (char *) v->iov_base + w;
          v->iov_len -= (size_t) w;
        }
    }
  return 0;
}

int
kata_io_write_full (int fd, const void *buf, size_t len, ate_deadline_t deadline,
                    struct ate_error **err)
{
  struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
  return kata_io_writev_full (fd, &iov, 1, deadline, err);
}
