/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/error.h"
#include "util/json.h"
#include "util/util.h"

void
ch_http_response_clear (struct ch_http_response *r)
{
  if (r == NULL)
    return;
  free (r->reason);
  free (r->content_type);
  free (r->body);
  memset (r, 0, sizeof (*r));
}

char *
ch_http_format_head (const char *method, const char *path, size_t body_len, bool has_body,
                     size_t *head_len)
{
  char *head;

  if (has_body)
    head = xasprintf ("%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      method, path, body_len);
  else if (strcmp (method, "GET") == 0)
    head = xasprintf ("%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n", method,
                      path);
  else
    /* CH rejects bodies on action endpoints; an explicit zero length is
     * what ch-remote and the reference send. */
    head = xasprintf ("%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                      "Content-Length: 0\r\n\r\n",
                      method, path);
  if (head_len)
    *head_len = strlen (head);
  return head;
}

/* Find "\r\n\r\n" in buf[0..len); returns the offset after it or 0. */
static size_t
find_head_end (const char *buf, size_t len)
{
  for (size_t i = 3; i < len; i++)
    if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
      return i + 1;
  return 0;
}

static int
parse_status_line (const char *line, size_t len, struct ch_http_response *out,
                   struct ate_error **err)
{
  /* "HTTP/1.x SSS[ reason]" */
  if (len < 12 || memcmp (line, "HTTP/1.", 7) != 0 || !isdigit ((unsigned char) line[7])
      || line[8] != ' ')
    return ate_error_make (err, EPROTO, "malformed HTTP status line");
  for (int i = 9; i < 12; i++)
    if (!isdigit ((unsigned char) line[i]))
      return ate_error_make (err, EPROTO, "malformed HTTP status code");
  out->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (out->status < 100)
    return ate_error_make (err, EPROTO, "invalid HTTP status %d", out->status);
  if (len > 12 && line[12] != ' ')
    return ate_error_make (err, EPROTO, "malformed HTTP status line");
  out->reason = len > 13 ? xmemdup0 (line + 13, len - 13) : xstrdup ("");
  for (char *p = out->reason; *p; p++)
    if ((unsigned char) *p < 0x20 && *p != '\t')
      return ate_error_make (err, EPROTO, "control character in HTTP reason phrase");
  return 0;
}

static int
parse_content_length (const char *v, size_t len, size_t *out, struct ate_error **err)
{
  size_t n = 0;

  if (len == 0)
    return ate_error_make (err, EPROTO, "empty Content-Length");
  for (size_t i = 0; i < len; i++)
    {
      if (!isdigit ((unsigned char) v[i]))
        return ate_error_make (err, EPROTO, "invalid Content-Length");
      n = n * 10 + (size_t) (v[i] - '0');
      if (n > CH_HTTP_MAX_BODY)
        return ate_error_make (err, EMSGSIZE, "response body larger than %u bytes",
                               CH_HTTP_MAX_BODY);
    }
  *out = n;
  return 0;
}

/* Parse one "Name: value" header line (no CRLF). */
static int
parse_header (const char *line, size_t len, struct ch_http_response *out, bool *have_cl,
              size_t *cl, struct ate_error **err)
{
  const char *colon = memchr (line, ':', len);
  size_t nlen, vlen;
  const char *v;

  if (colon == NULL || colon == line)
    return ate_error_make (err, EPROTO, "malformed HTTP header line");
  nlen = (size_t) (colon - line);
  for (size_t i = 0; i < nlen; i++)
    if (!isgraph ((unsigned char) line[i]))
      return ate_error_make (err, EPROTO, "malformed HTTP header name");
  v = colon + 1;
  vlen = len - nlen - 1;
  while (vlen && (*v == ' ' || *v == '\t'))
    v++, vlen--;
  while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    vlen--;
  for (size_t i = 0; i < vlen; i++)
    if ((unsigned char) v[i] < 0x20 && v[i] != '\t')
      return ate_error_make (err, EPROTO, "control character in HTTP header");

  if (nlen == 14 && strncasecmp (line, "Content-Length", 14) == 0)
    {
      size_t n = 0;
      if (parse_content_length (v, vlen, &n, err) < 0)
        return -1;
      if (*have_cl && n != *cl)
        return ate_error_make (err, EPROTO, "conflicting Content-Length headers");
      *have_cl = true;
      *cl = n;
    }
  else if (nlen == 17 && strncasecmp (line, "Transfer-Encoding", 17) == 0)
    return ate_error_make (err, EPROTO, "unsupported Transfer-Encoding in response");
  else if (nlen == 12 && strncasecmp (line, "Content-Type", 12) == 0 && out->content_type == NULL)
    out->content_type = xmemdup0 (v, vlen);
  return 0;
}

static int
parse_head (const char *buf, size_t head_len, struct ch_http_response *out, bool *have_cl,
            size_t *cl, struct ate_error **err)
{
  const char *p = buf, *end = buf + head_len - 2; /* before the final CRLF */
  int nheaders = 0;
  bool first = true;

  while (p < end)
    {
      const char *eol = memmem (p, (size_t) (end - p) + 2, "\r\n", 2);
      size_t len;
      if (eol == NULL)
        return ate_error_make (err, EPROTO, "malformed HTTP response head");
      len = (size_t) (eol - p);
      if (memchr (p, '\0', len) || memchr (p, '\n', len))
        return ate_error_make (err, EPROTO, "bare LF or NUL in HTTP response head");
      if (first)
        {
          if (parse_status_line (p, len, out, err) < 0)
            return -1;
          first = false;
        }
      else
        {
          if (++nheaders > CH_HTTP_MAX_HEADERS)
            return ate_error_make (err, EMSGSIZE, "too many HTTP headers");
          if (parse_header (p, len, out, have_cl, cl, err) < 0)
            return -1;
        }
      p = eol + 2;
    }
  if (first)
    return ate_error_make (err, EPROTO, "empty HTTP response");
  return 0;
}

int
ch_http_parse_response (const char *buf, size_t len, struct ch_http_response *out,
                        size_t *consumed, struct ate_error **err)
{
  struct ch_http_response r = { 0 };
  size_t head_len, cl = 0;
  bool have_cl = false;

  head_len = find_head_end (buf, len < CH_HTTP_MAX_HEAD ? len : CH_HTTP_MAX_HEAD);
  if (head_len == 0)
    {
      if (len >= CH_HTTP_MAX_HEAD)
        return ate_error_make (err, EMSGSIZE, "HTTP response head larger than %d bytes",
                               CH_HTTP_MAX_HEAD);
      /* Reject garbage early instead of waiting for a head that never comes. */
      if (len >= 5 && memcmp (buf, "HTTP/", 5) != 0)
        return ate_error_make (err, EPROTO, "not an HTTP response");
      return 0;
    }
  if (parse_head (buf, head_len, &r, &have_cl, &cl, err) < 0)
    {
      ch_http_response_clear (&r);
      return -1;
    }
  /* 1xx, 204 and 304 never carry a body. */
  if (r.status < 200 || r.status == 204 || r.status == 304)
    cl = 0;
  if (len - head_len < cl)
    {
      ch_http_response_clear (&r);
      return 0;
    }
  if (cl > 0)
    {
      r.body = xmalloc (cl + 1);
      memcpy (r.body, buf + head_len, cl);
      r.body[cl] = '\0';
      r.body_len = cl;
    }
  *out = r;
  *consumed = head_len + cl;
  return 1;
}

char *
ch_http_error_chain (const char *body, size_t len)
{
  cleanup_json struct json_object *o = NULL;
  struct ate_error *perr = NULL;
  size_t start = 0, end = len;

  if (body == NULL || len == 0)
    return xstrdup ("");
  if (ate_json_parse (body, len, 8, &o, &perr) == 0 && json_object_is_type (o, json_type_array))
    {
      size_t n = json_object_array_length (o), cap = 1, used = 0;
      char *s = xmalloc (cap);
      s[0] = '\0';
      for (size_t i = 0; i < n && i < 64; i++)
        {
          struct json_object *e = json_object_array_get_idx (o, i);
          const char *t = json_object_get_string (e);
          size_t tl = t ? strlen (t) : 0;
          if (used + tl + 3 > cap)
            {
              cap = (used + tl + 3) * 2;
              s = xrealloc (s, cap);
            }
          if (used)
            {
              memcpy (s + used, ": ", 2);
              used += 2;
            }
          memcpy (s + used, t ? t : "", tl);
          used += tl;
          s[used] = '\0';
        }
      return s;
    }
  ate_error_release (&perr);
  while (start < end && isspace ((unsigned char) body[start]))
    start++;
  while (end > start && isspace ((unsigned char) body[end - 1]))
    end--;
  if (end - start > 1024)
    end = start + 1024;
  char *s = xmemdup0 (body + start, end - start);
  for (char *p = s; *p; p++)
    if ((unsigned char) *p < 0x20)
      *p = ' ';
  return s;
}

static int
wait_fd (int fd, short events, ate_deadline_t deadline, const char *what,
         struct ate_error **err)
{
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = events };
      int ms = ate_deadline_poll_ms (deadline);
      int r;
      if (ms == 0)
        return ate_error_make (err, ETIMEDOUT, "timed out %s", what);
      r = poll (&p, 1, ms);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return ate_error_make (err, errno, "poll");
      if (r > 0)
        return 0;
    }
}

static int
connect_unix (const char *path, ate_deadline_t deadline, struct ate_error **err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  cleanup_close int fd = -1;

  if (strlen (path) >= sizeof (sa.sun_path))
    return ate_error_make (err, ENAMETOOLONG, "socket path `%s` too long", path);
  strcpy (sa.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return ate_error_make (err, errno, "socket");
  for (;;)
    {
      if (connect (fd, (struct sockaddr *) &sa, sizeof (sa)) == 0)
        return steal_fd (&fd);
      if (errno == EINTR)
        continue;
      /* A full backlog: the server is busy, retry until the deadline. */
      if (errno == EAGAIN)
        {
          if (!ate_sleep_ms_until (5, deadline))
            return ate_error_make (err, ETIMEDOUT, "connect `%s`: backlog full", path);
          continue;
        }
      if (errno == EINPROGRESS)
        {
          int soerr = 0;
          socklen_t sl = sizeof (soerr);
          if (wait_fd (fd, POLLOUT, deadline, "connecting", err) < 0)
            return -1;
          if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
          if (soerr)
            return ate_error_make (err, soerr, "connect `%s`", path);
          return steal_fd (&fd);
        }
      return ate_error_make (err, errno, "connect `%s`", path);
    }
}

/* One sendmsg carries the head (and as much body as fits) plus every fd in
 * a single SCM_RIGHTS cmsg; the rest follows with plain sends. */
static int
send_request (int fd, const char *head, size_t head_len, const char *body, size_t body_len,
              const int *fds, size_t nfds, ate_deadline_t deadline, struct ate_error **err)
{
  union
  {
    char buf[CMSG_SPACE (sizeof (int) * CH_HTTP_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  size_t total = head_len + body_len, sent = 0;
  bool fds_sent = nfds == 0;

  if (nfds > CH_HTTP_MAX_FDS)
    return ate_error_make (err, EINVAL, "too many fds (%zu) for one request", nfds);
  while (sent < total)
    {
      struct iovec iov[2];
      int niov = 0;
      struct msghdr msg = { 0 };
      ssize_t n;

      if (sent < head_len)
        iov[niov++] = (struct iovec){ (void *) (head + sent), head_len - sent };
      if (body_len)
        {
          size_t boff = sent > head_len ? sent - head_len : 0;
          iov[niov++] = (struct iovec){ (void *) (body + boff), body_len - boff };
        }
      msg.msg_iov = iov;
      msg.msg_iovlen = (size_t) niov;
      if (!fds_sent)
        {
          struct cmsghdr *c;
          memset (&ctl, 0, sizeof (ctl));
          msg.msg_control = ctl.buf;
          msg.msg_controllen = CMSG_SPACE (sizeof (int) * nfds);
          c = CMSG_FIRSTHDR (&msg);
          c->cmsg_level = SOL_SOCKET;
          c->cmsg_type = SCM_RIGHTS;
          c->cmsg_len = CMSG_LEN (sizeof (int) * nfds);
          memcpy (CMSG_DATA (c), fds, sizeof (int) * nfds);
        }
      n = sendmsg (fd, &msg, MSG_NOSIGNAL);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            {
              if (wait_fd (fd, POLLOUT, deadline, "sending the request", err) < 0)
                return -1;
              continue;
            }
          return ate_error_make (err, errno, "send request");
        }
      fds_sent = true;
      sent += (size_t) n;
    }
  return 0;
}

static int
read_response (int fd, ate_deadline_t deadline, struct ch_http_response *out,
               struct ate_error **err)
{
  size_t cap = 4096, len = 0, consumed;
  cleanup_free char *buf = xmalloc (cap);

  for (;;)
    {
      ssize_t n;
      int r = ch_http_parse_response (buf, len, out, &consumed, err);
      if (r != 0)
        return r < 0 ? -1 : 0;
      if (len == cap)
        {
          if (cap >= CH_HTTP_MAX_HEAD + CH_HTTP_MAX_BODY)
            return ate_error_make (err, EMSGSIZE, "response too large");
          cap *= 2;
          buf = xrealloc (buf, cap);
        }
      n = recv (fd, buf + len, cap - len, 0);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            {
              if (wait_fd (fd, POLLIN, deadline, "waiting for the response", err) < 0)
                return -1;
              continue;
            }
          return ate_error_make (err, errno, "read response");
        }
      if (n == 0)
        return ate_error_make (err, ECONNRESET, "connection closed after %zu bytes of response",
                               len);
      len += (size_t) n;
    }
}

int
ch_http_request (const char *socket_path, const char *method, const char *path,
                 const char *body, const int *fds, size_t nfds, ate_deadline_t deadline,
                 struct ch_http_response *resp, struct ate_error **err)
{
  struct ch_http_response local = { 0 };
  struct ch_http_response *r = resp ? resp : &local;
  cleanup_close int fd = -1;
  cleanup_free char *head = NULL;
  size_t head_len, body_len = body ? strlen (body) : 0;
  int ret = 0;

  memset (r, 0, sizeof (*r));
  if (body_len > CH_HTTP_MAX_BODY)
    return ate_error_make (err, EMSGSIZE, "%s %s: body of %zu bytes exceeds %u", method, path,
                           body_len, CH_HTTP_MAX_BODY);
  head = ch_http_format_head (method, path, body_len, body != NULL, &head_len);
  fd = connect_unix (socket_path, deadline, err);
  if (fd < 0)
    return ate_error_wrap (err, "%s %s", method, path);
  if (send_request (fd, head, head_len, body, body_len, fds, nfds, deadline, err) < 0
      || read_response (fd, deadline, r, err) < 0)
    return ate_error_wrap (err, "%s %s", method, path);
  if (r->status < 200 || r->status > 299)
    {
      cleanup_free char *chain = ch_http_error_chain (r->body, r->body_len);
      ret = ate_error_make (err, 0, "%s %s: HTTP %d%s%s", method, path, r->status,
                            *chain ? ": " : "", chain);
    }
  if (r == &local)
    ch_http_response_clear (&local);
  return ret;
}
