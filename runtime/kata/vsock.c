/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "vsock.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "io.h"
#include "util/error.h"
#include "util/util.h"

/* "OK " + a u32 + "\n" fits easily; anything longer is not CH talking. */
#define REPLY_MAX 40

static int
unix_connect (const char *path, int *out, struct ate_error **err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  cleanup_close int fd = -1;

  if (strlen (path) >= sizeof (sa.sun_path))
    return ate_error_make (err, ENAMETOOLONG, "hybrid vsock socket path `%s`", path);
  strcpy (sa.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return ate_error_make (err, errno, "socket");
  if (TEMP_FAILURE_RETRY (connect (fd, (struct sockaddr *) &sa, sizeof (sa))) < 0)
    return ate_error_make (err, errno, "connect to hybrid vsock `%s`", path);
  *out = steal_fd (&fd);
  return 0;
}

/* Printable form of a reply for error messages. */
static void
escape_reply (const char *in, size_t n, char *out, size_t out_size)
{
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 < out_size; i++)
    {
      unsigned char ch = (unsigned char) in[i];
      if (isprint (ch) && ch != '\\')
        out[o++] = (char) ch;
      else
        o += (size_t) snprintf (out + o, out_size - o, "\\x%02x", ch);
    }
  out[o] = '\0';
}

/* "OK " followed by 1..10 decimal digits and '\n', nothing else. */
static bool
reply_is_ok (const char *line, size_t n)
{
  size_t digits = 0;

  if (n < 5 || memcmp (line, "OK ", 3) != 0 || line[n - 1] != '\n')
    return false;
  for (size_t i = 3; i < n - 1; i++)
    {
      if (!isdigit ((unsigned char) line[i]))
        return false;
      digits++;
    }
  return digits >= 1 && digits <= 10;
}

/* Read the reply one byte at a time so that the first bytes the guest
 * service sends after it stay in the socket. */
static int
read_reply (int fd, uint32_t port, ate_deadline_t deadline, struct ate_error **err)
{
  char line[REPLY_MAX + 1];
  char shown[4 * REPLY_MAX + 8];
  size_t n = 0;

  while (n < REPLY_MAX)
    {
      cleanup_error struct ate_error *rerr = NULL;
      bool eof = false;

      if (kata_io_read_full (fd, line + n, 1, deadline, &eof, &rerr) < 0)
        {
          if (n == 0 && rerr->status == ECONNRESET)
            return ate_error_make (err, ECONNREFUSED,
                                   "hybrid vsock closed the connection before the CONNECT "
                                   "reply: nothing listens on guest port %u yet",
                                   port);
          escape_reply (line, n, shown, sizeof (shown));
          if (rerr->status == ETIMEDOUT)
            return ate_error_make (err, ETIMEDOUT,
                                   "no complete CONNECT reply for guest port %u before the "
                                   "handshake deadline (got \"%s\")",
                                   port, shown);
          return ate_error_make (err, rerr->status,
                                 "reading the CONNECT reply for guest port %u (got \"%s\"): %s",
                                 port, shown, rerr->msg);
        }
      if (line[n++] == '\n')
        break;
    }
  escape_reply (line, n, shown, sizeof (shown));
  if (!reply_is_ok (line, n))
    return ate_error_make (err, EPROTO, "unexpected CONNECT reply for guest port %u: \"%s\"",
                           port, shown);
  return 0;
}

int
kata_vsock_connect (const char *path, uint32_t port, ate_deadline_t deadline, int *out,
                    struct ate_error **err)
{
  cleanup_close int fd = -1;
  char cmd[32];
  int n;

  deadline = ate_deadline_min (deadline, ate_deadline_in_ms (KATA_VSOCK_HANDSHAKE_MS));
  if (unix_connect (path, &fd, err) < 0)
    return -1;
  n = snprintf (cmd, sizeof (cmd), "CONNECT %u\n", port);
  if (kata_io_write_full (fd, cmd, (size_t) n, deadline, err) < 0)
    return ate_error_wrap (err, "hybrid vsock CONNECT %u", port);
  if (read_reply (fd, port, deadline, err) < 0)
    return -1;
  *out = steal_fd (&fd);
  return 0;
}

int
kata_vsock_dial_retry (const char *path, uint32_t port, ate_deadline_t overall_deadline,
                       int64_t attempt_ms, int64_t pause_ms, int *fd, struct ate_error **err)
{
  int64_t start = ate_now_ns ();
  struct ate_error *last = NULL;
  unsigned attempts = 0;

  for (;;)
    {
      ate_deadline_t d = ate_deadline_min (overall_deadline, ate_deadline_in_ms (attempt_ms));
      attempts++;
      ate_error_release (&last);
      if (kata_vsock_connect (path, port, d, fd, &last) == 0)
        {
          ate_error_release (&last);
          return 0;
        }
      if (ate_deadline_expired (overall_deadline)
          || !ate_sleep_ms_until (pause_ms, overall_deadline)
          || ate_deadline_expired (overall_deadline))
        break;
    }
  ate_error_make (err, 0,
                  "guest port %u not reachable through `%s` after %u attempts in %.0f ms; "
                  "last attempt: %s",
                  port, path, attempts, ate_elapsed_ms (start), last ? last->msg : "none");
  if (err != NULL && *err != NULL)
    (*err)->status = last ? last->status : ETIMEDOUT;
  ate_error_free (last);
  return -1;
}
