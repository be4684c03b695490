/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

struct url
{
  char *host;
  char *port;
  char *path;
};

static int
parse_url (const char *url, struct url *u, struct ate_error **err)
{
  const char *p, *slash, *colon;

  if (strncmp (url, "http://", 7) != 0)
    return ate_error_make (err, EINVAL, "`%s`: only http:// URLs are supported", url);
  p = url + 7;
  slash = strchr (p, '/');
  colon = memchr (p, ':', slash ? (size_t) (slash - p) : strlen (p));
  u->host = xstrndup (p, colon ? (size_t) (colon - p) : slash ? (size_t) (slash - p) : strlen (p));
  u->port = colon ? xstrndup (colon + 1, slash ? (size_t) (slash - colon - 1) : strlen (colon + 1))
                  : xstrdup ("80");
  u->path = xstrdup (slash ? slash : "/");
  if (u->host[0] == '\0' || u->port[0] == '\0')
    return ate_error_make (err, EINVAL, "`%s`: no host or port", url);
  for (const char *c = u->path; *c; c++)
    if ((unsigned char) *c <= ' ' || *c == 0x7f)
      return ate_error_make (err, EINVAL, "`%s`: control characters in the path", url);
  return 0;
}

static void
url_clear (struct url *u)
{
  free (u->host);
  free (u->port);
  free (u->path);
}

static int
wait_fd (int fd, short events, ate_deadline_t deadline, const char *what, struct ate_error **err)
{
  struct pollfd p = { .fd = fd, .events = events };
  for (;;)
    {
      int r = poll (&p, 1, ate_deadline_poll_ms (deadline));
      if (r > 0)
        return 0;
      if (r == 0)
        return ate_error_make (err, ETIMEDOUT, "%s", what);
      if (errno != EINTR)
        return ate_error_make (err, errno, "%s", what);
    }
}

static int
connect_to (const struct url *u, ate_deadline_t deadline, struct ate_error **err)
{
  struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
  struct addrinfo *res = NULL;
  cleanup_close int fd = -1;
  int r, e = 0;
  socklen_t len = sizeof (e);

  r = getaddrinfo (u->host, u->port, &hints, &res);
  if (r != 0)
    return ate_error_make (err, EHOSTUNREACH, "resolve %s: %s", u->host, gai_strerror (r));
  fd = socket (res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    {
      freeaddrinfo (res);
      return ate_error_make (err, errno, "socket");
    }
  r = connect (fd, res->ai_addr, res->ai_addrlen);
  freeaddrinfo (res);
  if (r < 0 && errno != EINPROGRESS)
    return ate_error_make (err, errno, "connect %s:%s", u->host, u->port);
  if (r < 0)
    {
      if (wait_fd (fd, POLLOUT, deadline, "connect", err) < 0)
        return ate_error_wrap (err, "connect %s:%s", u->host, u->port);
      if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0 || e != 0)
        return ate_error_make (err, e ? e : errno, "connect %s:%s", u->host, u->port);
    }
  return steal_fd (&fd);
}

static int
send_all (int fd, const char *buf, size_t len, ate_deadline_t deadline, struct ate_error **err)
{
  while (len > 0)
    {
      ssize_t w = send (fd, buf, len, MSG_NOSIGNAL);
      if (w < 0 && (errno == EAGAIN || errno == EINTR))
        {
          if (wait_fd (fd, POLLOUT, deadline, "send", err) < 0)
            return -1;
          continue;
        }
      if (w < 0)
        return ate_error_make (err, errno, "send");
      buf += w;
      len -= (size_t) w;
    }
  return 0;
}

/* Read until the end of the head ("\r\n\r\n"). */
static int
read_head (int fd, char *buf, size_t cap, ate_deadline_t deadline, struct ate_error **err)
{
  size_t used = 0;
  for (;;)
    {
      ssize_t n = recv (fd, buf + used, cap - 1 - used, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        {
          if (wait_fd (fd, POLLIN, deadline, "read the response", err) < 0)
            return -1;
          continue;
        }
      if (n < 0)
        return ate_error_make (err, errno, "read the response");
      if (n == 0)
        return ate_error_make (err, ECONNRESET, "connection closed before the response head");
      used += (size_t) n;
      buf[used] = '\0';
      if (strstr (buf, "\r\n\r\n"))
        return 0;
      if (used + 1 >= cap)
        return ate_error_make (err, EMSGSIZE, "response head longer than %zu bytes", cap - 1);
    }
}

static char *
find_header (char *head, const char *name)
{
  size_t nl = strlen (name);
  for (char *line = strstr (head, "\r\n"); line && line[2] != '\r'; line = strstr (line + 2, "\r\n"))
    {
      char *h = line + 2;
      if (strncasecmp (h, name, nl) == 0 && h[nl] == ':')
        {
          char *v = h + nl + 1, *end = strstr (v, "\r\n");
          while (*v == ' ' || *v == '\t')
            v++;
          while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
          return xstrndup (v, (size_t) (end - v));
        }
    }
  return NULL;
}

int
ate_http_get (const char *url, ate_deadline_t deadline, long *status, const char *header,
              char **value, struct ate_error **err)
{
  struct url u = { 0 };
  cleanup_close int fd = -1;
  cleanup_free char *req = NULL;
  cleanup_free char *head = xmalloc (ATE_HTTP_MAX_HEAD);
  char *end = NULL;
  int ret = -1;

  if (value)
    *value = NULL;
  if (parse_url (url, &u, err) < 0)
    goto out;
  fd = connect_to (&u, deadline, err);
  if (fd < 0)
    goto out;
  req = xasprintf ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ateom-microvm\r\n"
                   "Accept: */*\r\nConnection: close\r\n\r\n",
                   u.path, u.host);
  if (send_all (fd, req, strlen (req), deadline, err) < 0
      || read_head (fd, head, ATE_HTTP_MAX_HEAD, deadline, err) < 0)
    goto out;
  if (strncmp (head, "HTTP/1.", 7) != 0 || head[8] != ' ')
    {
      ate_error_make (err, EPROTO, "not an HTTP response");
      goto out;
    }
  *status = strtol (head + 9, &end, 10);
  if (end != head + 12 || *status < 100 || *status > 999)
    {
      ate_error_make (err, EPROTO, "malformed status line");
      goto out;
    }
  if (header && value)
    *value = find_header (head, header);
  ret = 0;
out:
  if (ret < 0)
    ate_error_wrap (err, "GET %s", url);
  url_clear (&u);
  return ret;
}
