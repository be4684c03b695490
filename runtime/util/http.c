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
  /* The fragment is the client's own; it is never sent. */
  u->path = xstrndup (slash ? slash : "/", slash ? strcspn (slash, "#") : 1);
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

/* One request to u; the response head is left in head. */
static int
get_once (const struct url *u, ate_deadline_t deadline, char *head, long *status,
          struct ate_error **err)
{
  cleanup_close int fd = -1;
  cleanup_free char *req = NULL;
  char *end = NULL;

  fd = connect_to (u, deadline, err);
  if (fd < 0)
    return -1;
  req = xasprintf ("GET %s HTTP/1.1\r\nHost: %s%s%s\r\nUser-Agent: ateom-microvm\r\n"
                   "Accept: */*\r\nConnection: close\r\n\r\n",
                   u->path, u->host, strcmp (u->port, "80") ? ":" : "",
                   strcmp (u->port, "80") ? u->port : "");
  if (send_all (fd, req, strlen (req), deadline, err) < 0
      || read_head (fd, head, ATE_HTTP_MAX_HEAD, deadline, err) < 0)
    return -1;
  if (strncmp (head, "HTTP/1.", 7) != 0 || head[8] != ' ')
    return ate_error_make (err, EPROTO, "not an HTTP response");
  *status = strtol (head + 9, &end, 10);
  if (end != head + 12 || *status < 100 || *status > 999)
    return ate_error_make (err, EPROTO, "malformed status line");
  return 0;
}

int
ate_http_get (const char *url, ate_deadline_t deadline, long *status, const char *header,
              char **value, struct ate_error **err)
{
  struct url u = { 0 };
  cleanup_free char *head = xmalloc (ATE_HTTP_MAX_HEAD);
  int ret = -1;

  if (value)
    *value = NULL;
  if (parse_url (url, &u, err) < 0 || get_once (&u, deadline, head, status, err) < 0)
    goto out;
  if (header && value)
    *value = find_header (head, header);
  ret = 0;
out:
  if (ret < 0)
    ate_error_wrap (err, "GET %s", url);
  url_clear (&u);
  return ret;
}

/* ---- redirects ---- */

/* url as "http://<host>:<port><path>", the form redirect targets are
 * compared in. */
static int
normalise_url (const char *url, char **out, struct ate_error **err)
{
  struct url u = { 0 };
  int r = parse_url (url, &u, err);
  if (r == 0)
    *out = xasprintf ("http://%s:%s%s", u.host, u.port, u.path);
  url_clear (&u);
  return r;
}

static bool
is_redirect (long status)
{
  /* The codes Go's client follows for a GET. */
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* RFC 3986 5.2.4 on an absolute path (no query): drop "." segments and let
 * ".." remove the segment before it. */
static char *
remove_dot_segments (const char *in)
{
  size_t n = strlen (in);
  char *out = xmalloc (n + 2);
  size_t o = 0;
  const char *p = in;

  while (*p)
    {
      const char *seg_end = strchr (p + 1, '/');
      size_t len = seg_end ? (size_t) (seg_end - p) : strlen (p); /* "/seg" */
      if ((len == 2 && p[1] == '.') || (len == 3 && p[1] == '.' && p[2] == '.'))
        {
          if (len == 3)
            while (o > 0 && out[--o] != '/')
              ;
          if (seg_end == NULL)
            out[o++] = '/'; /* "/a/.." ends in a directory */
        }
      else
        {
          memcpy (out + o, p, len);
          o += len;
        }
      p += len;
    }
  if (o == 0)
    out[o++] = '/';
  out[o] = '\0';
  return out;
}

/* Resolve a Location value against base (RFC 3986 5.2, as Go's
 * URL.ResolveReference), into an absolute http:// URL. */
static int
resolve_location (const struct url *base, const char *loc, char **out, struct ate_error **err)
{
  cleanup_free char *ref = NULL, *dir = NULL, *merged = NULL, *clean = NULL;
  const char *q, *colon;
  char *hash;

  for (const char *c = loc; *c; c++)
    if ((unsigned char) *c < ' ' || *c == 0x7f)
      return ate_error_make (err, EPROTO, "Location header with control characters");
  ref = xstrdup (loc);
  if ((hash = strchr (ref, '#')))
    *hash = '\0';
  colon = strchr (ref, ':');
  if (colon && colon > ref && strcspn (ref, "/?") > (size_t) (colon - ref))
    {
      /* Has a scheme. */
      if (strncasecmp (ref, "http:", 5) != 0)
        return ate_error_make_code (err, ATE_CODE_UNSET, 0,
                                    "redirect to `%s` not followed: the probe speaks plain http",
                                    ref);
      if (strncmp (ref + 5, "//", 2) != 0)
        return ate_error_make_code (err, ATE_CODE_UNSET, 0, "redirect to `%s`: no host", ref);
      *out = xasprintf ("http://%s", ref + 7);
      return 0;
    }
  if (strncmp (ref, "//", 2) == 0)
    {
      *out = xasprintf ("http:%s", ref);
      return 0;
    }
  q = strchr (ref, '?');
  if (ref[0] == '?' || ref[0] == '\0')
    {
      /* Same path, new (or the same) query. */
      size_t plen = strcspn (base->path, "?");
      *out = xasprintf ("http://%s:%s%.*s%s", base->host, base->port, (int) plen, base->path,
                        ref[0] ? ref : base->path + plen);
      return 0;
    }
  if (ref[0] == '/')
    merged = xstrndup (ref, q ? (size_t) (q - ref) : strlen (ref));
  else
    {
      size_t plen = strcspn (base->path, "?");
      const char *slash = memrchr (base->path, '/', plen);
      dir = xstrndup (base->path, slash ? (size_t) (slash - base->path) + 1 : 0);
      merged = xasprintf ("%s%s%.*s", dir[0] == '/' ? "" : "/", dir,
                          (int) (q ? (size_t) (q - ref) : strlen (ref)), ref);
    }
  clean = remove_dot_segments (merged);
  *out = xasprintf ("http://%s:%s%s%s", base->host, base->port, clean, q ? q : "");
  return 0;
}

int
ate_http_get_follow (const char *url, ate_deadline_t deadline, long *status,
                     struct ate_error **err)
{
  cleanup_free char *head = xmalloc (ATE_HTTP_MAX_HEAD);
  char *chain[ATE_HTTP_MAX_REQUESTS] = { 0 };
  struct url first = { 0 };
  int ret = -1;
  size_t n = 0;

  if (parse_url (url, &first, err) < 0 || normalise_url (url, &chain[0], err) < 0)
    goto out;
  n = 1;
  for (;;)
    {
      struct url u = { 0 };
      cleanup_free char *loc = NULL, *target = NULL;
      char *next = NULL;
      int r;

      r = parse_url (chain[n - 1], &u, err);
      if (r == 0 && strcasecmp (u.host, first.host) != 0)
        r = ate_error_make_code (err, ATE_CODE_UNSET, 0,
                                 "redirect to another host `%s` not followed", u.host);
      if (r == 0)
        r = get_once (&u, deadline, head, status, err);
      if (r == 0 && is_redirect (*status))
        {
          loc = find_header (head, "Location");
          /* A 3xx without a Location is the answer, as in Go. */
          if (loc && loc[0] != '\0')
            r = resolve_location (&u, loc, &target, err);
          if (r == 0 && target)
            r = normalise_url (target, &next, err);
        }
      url_clear (&u);
      if (r < 0)
        {
          if (n > 1)
            ate_error_wrap (err, "GET %s", chain[n - 1]);
          goto out;
        }
      if (next == NULL)
        break;
      for (size_t i = 0; i < n; i++)
        if (strcmp (chain[i], next) == 0)
          {
            ate_error_make_code (err, ATE_CODE_UNSET, 0, "redirect loop: HTTP %ld from %s back to %s", *status,
                            chain[n - 1], next);
            free (next);
            goto out;
          }
      if (n == ATE_HTTP_MAX_REQUESTS)
        {
          ate_error_make_code (err, ATE_CODE_UNSET, 0, "stopped after %d redirects (the last to %s)",
                          ATE_HTTP_MAX_REQUESTS, next);
          free (next);
          goto out;
        }
      chain[n++] = next;
    }
  ret = 0;
out:
  if (ret < 0)
    ate_error_wrap (err, "GET %s", url);
  for (size_t i = 0; i < n; i++)
    free (chain[i]);
  url_clear (&first);
  return ret;
}
