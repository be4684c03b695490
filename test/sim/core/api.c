/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST API with micro_http's limits: 1 KiB request head, 4 MiB body,
 * SCM_RIGHTS fds collected from every read of a request (up to 253 per
 * read), at most 10 connections (the 11th gets 503), keep-alive.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sim.h"
#include "util/error.h"
#include "util/json.h"
#include "util/util.h"

#define MAX_CONNS 10
#define HEAD_MAX 1024
#define BODY_MAX (4u << 20)
#define FDS_PER_READ 253
#define FDS_MAX 253

struct conn
{
  int fd;
  char *buf;
  size_t len, cap;
  int fds[FDS_MAX];
  size_t nfds;
  bool fd_overflow;
};

struct request
{
  char method[8];
  char path[256];
  const char *body;
  size_t body_len;
  struct json_object *headers; /* for the recording */
  bool close;
};

static struct conn conns[MAX_CONNS];

/* ------------------------------------------------------------ responses */

static void
send_all (int fd, const char *buf, size_t len)
{
  while (len)
    {
      ssize_t n = send (fd, buf, len, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      buf += n;
      len -= (size_t) n;
    }
}

static const char *
reason (int status)
{
  switch (status)
    {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Internal Server Error";
    }
}

static void
respond (int fd, int status, const char *body)
{
  cleanup_free char *head = NULL;
  size_t bl = body ? strlen (body) : 0;

  if (body)
    head = xasprintf ("HTTP/1.1 %d %s\r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      status, reason (status), bl);
  else
    head = xasprintf ("HTTP/1.1 %d %s\r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\n\r\n",
                      status, reason (status));
  send_all (fd, head, strlen (head));
  if (body)
    send_all (fd, body, bl);
}

static int
status_for (struct sim *s, enum sim_err cls)
{
  if (cls == SIM_E_BAD_REQUEST)
    return 400;
  if (s->personality < SIM_V53)
    return 500;
  switch (cls)
    {
    case SIM_E_NOT_CREATED:
      return 404;
    case SIM_E_INVALID:
      return 400;
    case SIM_E_CONFLICT:
      return 409;
    default:
      return 500;
    }
}

static void
respond_error (struct sim *s, int fd, enum sim_err cls, const char *what, const char *msg)
{
  cleanup_json struct json_object *a = json_object_new_array ();
  cleanup_free char *body = NULL;
  int status = status_for (s, cls);

  json_object_array_add (a, json_object_new_string ("Error from API"));
  json_object_array_add (a, json_object_new_string (what));
  json_object_array_add (a, json_object_new_string (msg));
  body = ate_json_to_string (a, 0);
  sim_log ("API error %d: %s: %s", status, what, msg);
  respond (fd, status, body);
}

/* ------------------------------------------------------------ recording */

static void
record (struct sim *s, const struct request *r, size_t nfds)
{
  cleanup_json struct json_object *o = NULL;
  cleanup_free char *line = NULL;

  if (s->record == NULL)
    return;
  o = json_object_new_object ();
  json_object_object_add (o, "personality", json_object_new_string (s->build_version));
  json_object_object_add (o, "method", json_object_new_string (r->method));
  json_object_object_add (o, "path", json_object_new_string (r->path));
  json_object_object_add (o, "headers", json_object_get (r->headers));
  json_object_object_add (o, "body", r->body_len ? json_object_new_string_len (r->body, (int) r->body_len)
                                                 : NULL);
  json_object_object_add (o, "nfds", json_object_new_int64 ((int64_t) nfds));
  line = ate_json_to_string (o, 0);
  fprintf (s->record, "%s\n", line);
  fflush (s->record);
}

/* ------------------------------------------------------------- routing */

static void
close_fds (int *fds, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0)
      close (fds[i]);
}

static int
parse_body (struct sim *s, int fd, const struct request *r, struct json_object **out)
{
  struct ate_error *err = NULL;

  if (r->body_len == 0)
    {
      respond_error (s, fd, SIM_E_BAD_REQUEST, "Missing request body", r->path);
      return -1;
    }
  if (ate_json_parse (r->body, r->body_len, 32, out, &err) < 0)
    {
      respond_error (s, fd, SIM_E_BAD_REQUEST, "Error parsing request body", err->msg);
      ate_error_release (&err);
      return -1;
    }
  return 0;
}

/* Fault injection for tests: CH_SIM_CRASH_ON=<endpoint> (e.g. vm.snapshot)
 * makes the VMM die by SIGKILL when that request arrives, as a crashed
 * cloud-hypervisor would: no answer, the connection reset. */
static void
crash_point (const char *endpoint)
{
  const char *want = getenv ("CH_SIM_CRASH_ON");
  if (want && strcmp (want, endpoint) == 0)
    {
      sim_log ("crashing on %s (CH_SIM_CRASH_ON)", endpoint);
      raise (SIGKILL);
    }
}

typedef int (*action_fn) (struct sim *, char **, enum sim_err *);

static void
do_action (struct sim *s, int fd, action_fn f, const char *what)
{
  char *msg = NULL;
  enum sim_err cls = SIM_E_INTERNAL;

  if (f (s, &msg, &cls) < 0)
    respond_error (s, fd, cls, what, msg ? msg : "failed");
  else
    respond (fd, 204, NULL);
  free (msg);
}

static void
do_with_body (struct sim *s, int fd, const struct request *r, int *fds, size_t nfds)
{
  cleanup_json struct json_object *body = NULL;
  char *msg = NULL, *reply = NULL;
  enum sim_err cls = SIM_E_INTERNAL;
  const char *ep = r->path + 8, *what = ep;
  int ret;

  if (parse_body (s, fd, r, &body) < 0)
    return;
  crash_point (ep);
  if (strcmp (ep, "vm.create") == 0)
    {
      what = "The VM could not be created";
      ret = sim_vm_create (s, body, &msg, &cls);
    }
  else if (strcmp (ep, "vm.add-net") == 0)
    {
      what = "The network device could not be added";
      ret = sim_vm_add_net (s, body, fds, nfds, &msg, &cls, &reply);
    }
  else if (strcmp (ep, "vm.snapshot") == 0)
    {
      what = "The VM could not be snapshotted";
      ret = sim_vm_snapshot (s, body, &msg, &cls);
    }
  else
    {
      what = "The VM could not be restored";
      ret = sim_vm_restore (s, body, fds, nfds, &msg, &cls);
    }
  if (ret < 0)
    respond_error (s, fd, cls, what, msg ? msg : "failed");
  else
    respond (fd, reply ? 200 : 204, reply);
  free (msg);
  free (reply);
}

static void
dispatch (struct sim *s, int fd, struct request *r, int *fds, size_t nfds)
{
  static const struct
  {
    const char *ep;
    const char *method;
    int kind; /* 0 get, 1 action, 2 with body */
  } routes[] = {
    { "vmm.ping", "GET", 0 },       { "vm.info", "GET", 0 },         { "vm.create", "PUT", 2 },
    { "vm.add-net", "PUT", 2 },     { "vm.boot", "PUT", 1 },         { "vm.pause", "PUT", 1 },
    { "vm.resume", "PUT", 1 },      { "vm.snapshot", "PUT", 2 },     { "vm.restore", "PUT", 2 },
    { "vm.shutdown", "PUT", 1 },    { "vmm.shutdown", "PUT", 1 },    { "vm.delete", "PUT", 1 },
  };
  const char *ep = r->path + 8;
  size_t i;

  record (s, r, nfds);
  if (strncmp (r->path, "/api/v1/", 8) != 0)
    goto not_found;
  for (i = 0; i < ATE_N_ELEMENTS (routes); i++)
    if (strcmp (routes[i].ep, ep) == 0)
      break;
  if (i == ATE_N_ELEMENTS (routes))
    goto not_found;
  if (strcmp (routes[i].method, r->method) != 0)
    {
      respond_error (s, fd, SIM_E_BAD_REQUEST, "Invalid HTTP method", r->method);
      return;
    }
  /* fds are only adopted by add-net and restore; CH closes the others. */
  if (routes[i].kind == 2)
    {
      do_with_body (s, fd, r, fds, nfds);
      return;
    }
  if (r->body_len)
    {
      respond_error (s, fd, SIM_E_BAD_REQUEST, "Unexpected request body", r->path);
      return;
    }
  if (strcmp (ep, "vmm.ping") == 0)
    {
      cleanup_free char *b = xasprintf ("{\"build_version\":\"%s\",\"version\":\"%s\",\"pid\":%d,"
                                        "\"features\":[\"kvm\"]}",
                                        s->build_version, s->version, (int) getpid ());
      respond (fd, 200, b);
    }
  else if (strcmp (ep, "vm.info") == 0)
    {
      if (s->state == SIM_VM_NONE)
        respond_error (s, fd, SIM_E_NOT_CREATED, "The VM information could not be retrieved",
                       "VM is not created");
      else
        {
          cleanup_json struct json_object *info = sim_vm_info (s);
          cleanup_free char *b = ate_json_to_string (info, 0);
          respond (fd, 200, b);
        }
    }
  else if (strcmp (ep, "vm.boot") == 0)
    do_action (s, fd, sim_vm_boot, "The VM could not boot");
  else if (strcmp (ep, "vm.pause") == 0)
    do_action (s, fd, sim_vm_pause, "The VM could not be paused");
  else if (strcmp (ep, "vm.resume") == 0)
    do_action (s, fd, sim_vm_resume, "The VM could not be resumed");
  else if (strcmp (ep, "vm.shutdown") == 0)
    do_action (s, fd, sim_vm_shutdown, "The VM could not be shut down");
  else if (strcmp (ep, "vm.delete") == 0)
    do_action (s, fd, sim_vm_delete, "The VM could not be deleted");
  else
    {
      respond (fd, 204, NULL);
      s->quit = true;
    }
  return;
not_found:
  respond (fd, 404, NULL);
}

/* ------------------------------------------------------------- parsing */

static int
parse_head (const char *buf, size_t head_len, struct request *r, size_t *cl, const char **err)
{
  const char *p = buf, *end = buf + head_len - 4, *eol;
  char version[16];
  int n = 0;

  char line[HEAD_MAX + 1];

  eol = memmem (p, (size_t) (end - p) + 2, "\r\n", 2);
  /* sscanf needs a terminated string; the connection buffer is not one. */
  memcpy (line, p, (size_t) (eol - p));
  line[eol - p] = '\0';
  if (sscanf (line, "%7[A-Z] %255[^ \r\n] %15[^\r\n]%n", r->method, r->path, version, &n) != 3
      || line + n != line + (eol - p) || strncmp (version, "HTTP/1.", 7) != 0)
    return *err = "malformed request line", -1;
  r->headers = json_object_new_array ();
  *cl = 0;
  for (p = eol + 2; p < end + 2; p = eol + 2)
    {
      const char *colon, *v;
      eol = memmem (p, (size_t) (end + 2 - p) + 2, "\r\n", 2);
      colon = memchr (p, ':', (size_t) (eol - p));
      if (colon == NULL || colon == p)
        return *err = "malformed header", -1;
      for (v = colon + 1; v < eol && *v == ' '; v++)
        ;
      struct json_object *h = json_object_new_array ();
      json_object_array_add (h, json_object_new_string_len (p, (int) (colon - p)));
      json_object_array_add (h, json_object_new_string_len (v, (int) (eol - v)));
      json_object_array_add (r->headers, h);
      if ((size_t) (colon - p) == 14 && strncasecmp (p, "Content-Length", 14) == 0)
        {
          char *e;
          errno = 0;
          unsigned long long x = strtoull (v, &e, 10);
          if (errno || e != eol || v == eol)
            return *err = "invalid Content-Length", -1;
          *cl = x > BODY_MAX ? BODY_MAX + 1 : (size_t) x;
        }
      else if ((size_t) (colon - p) == 17 && strncasecmp (p, "Transfer-Encoding", 17) == 0)
        return *err = "Transfer-Encoding is not supported", -1;
      else if ((size_t) (colon - p) == 10 && strncasecmp (p, "Connection", 10) == 0
               && strncasecmp (v, "close", 5) == 0)
        r->close = true;
    }
  return 0;
}

static void
conn_close (struct conn *c)
{
  close_and_reset (&c->fd);
  close_fds (c->fds, c->nfds);
  c->nfds = 0;
  c->fd_overflow = false;
  free (c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
}

/* Handle every complete request in the buffer; false to close. */
static bool
conn_process (struct sim *s, struct conn *c)
{
  while (c->len)
    {
      struct request r = { 0 };
      const char *he = memmem (c->buf, c->len < HEAD_MAX ? c->len : HEAD_MAX, "\r\n\r\n", 4);
      const char *err = NULL;
      size_t head_len, cl;

      if (he == NULL)
        {
          if (c->len < HEAD_MAX)
            return true;
          respond_error (s, c->fd, SIM_E_BAD_REQUEST, "Invalid request", "request head larger than 1024 bytes");
          return false;
        }
      head_len = (size_t) (he + 4 - c->buf);
      if (parse_head (c->buf, head_len, &r, &cl, &err) < 0)
        {
          json_object_put (r.headers);
          respond_error (s, c->fd, SIM_E_BAD_REQUEST, "Invalid request", err);
          return false;
        }
      if (cl > BODY_MAX)
        {
          json_object_put (r.headers);
          respond (c->fd, 413, NULL);
          return false;
        }
      if (c->len - head_len < cl)
        {
          json_object_put (r.headers);
          return true;
        }
      r.body = c->buf + head_len;
      r.body_len = cl;
      if (c->fd_overflow)
        respond_error (s, c->fd, SIM_E_BAD_REQUEST, "Invalid request", "too many file descriptors");
      else
        dispatch (s, c->fd, &r, c->fds, c->nfds);
      json_object_put (r.headers);
      close_fds (c->fds, c->nfds); /* adopted ones were set to -1 */
      c->nfds = 0;
      c->fd_overflow = false;
      memmove (c->buf, c->buf + head_len + cl, c->len - head_len - cl);
      c->len -= head_len + cl;
      if (r.close || s->quit)
        return false;
    }
  return true;
}

static bool
conn_read (struct sim *s, struct conn *c)
{
  union
  {
    char buf[CMSG_SPACE (sizeof (int) * FDS_PER_READ)];
    struct cmsghdr align;
  } ctl;
  struct iovec iov;
  struct msghdr m = { 0 };
  ssize_t n;

  if (c->cap - c->len < 65536)
    {
      if (c->cap >= HEAD_MAX + BODY_MAX + 65536)
        return false;
      c->cap = c->cap ? c->cap * 2 : 65536;
      c->buf = xrealloc (c->buf, c->cap);
    }
  iov = (struct iovec){ c->buf + c->len, c->cap - c->len };
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl.buf;
  m.msg_controllen = sizeof (ctl.buf);
  n = recvmsg (c->fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return true;
  for (struct cmsghdr *h = CMSG_FIRSTHDR (&m); h; h = CMSG_NXTHDR (&m, h))
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
      {
        size_t k = (h->cmsg_len - CMSG_LEN (0)) / sizeof (int);
        int got[FDS_PER_READ];
        memcpy (got, CMSG_DATA (h), k * sizeof (int));
        for (size_t i = 0; i < k; i++)
          {
            if (c->nfds < FDS_MAX)
              c->fds[c->nfds++] = got[i];
            else
              {
                close (got[i]);
                c->fd_overflow = true;
              }
          }
      }
  if (n <= 0)
    return false;
  c->len += (size_t) n;
  return conn_process (s, c);
}

/* ------------------------------------------------------------ listener */

int
sim_api_listen (struct sim *s, char **errmsg)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd;

  for (size_t i = 0; i < MAX_CONNS; i++)
    conns[i].fd = -1;
  if (strlen (s->api_path) >= sizeof (sa.sun_path))
    {
      *errmsg = xasprintf ("api socket path too long");
      return -1;
    }
  strcpy (sa.sun_path, s->api_path);
  unlink (s->api_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || bind (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0 || listen (fd, 64) < 0)
    {
      *errmsg = xasprintf ("api socket `%s`: %s", s->api_path, strerror (errno));
      if (fd >= 0)
        close (fd);
      return -1;
    }
  s->api_fd = fd;
  return 0;
}

void
sim_api_poll_fds (struct sim *s, struct pollfd *p, size_t *n, size_t max)
{
  if (*n < max)
    p[(*n)++] = (struct pollfd){ .fd = s->api_fd, .events = POLLIN };
  for (size_t i = 0; i < MAX_CONNS && *n < max; i++)
    if (conns[i].fd >= 0)
      p[(*n)++] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
}

static void
accept_new (struct sim *s)
{
  for (;;)
    {
      int fd = accept4 (s->api_fd, NULL, NULL, SOCK_CLOEXEC);
      size_t i;
      if (fd < 0)
        return;
      for (i = 0; i < MAX_CONNS; i++)
        if (conns[i].fd < 0)
          break;
      if (i == MAX_CONNS)
        {
          const char *b = "\"Too many open connections\"";
          respond (fd, 503, b);
          close (fd);
          continue;
        }
      conns[i].fd = fd;
    }
}

void
sim_api_handle (struct sim *s, struct pollfd *p, size_t n)
{
  for (size_t k = 0; k < n; k++)
    {
      if (!p[k].revents)
        continue;
      if (p[k].fd == s->api_fd)
        {
          accept_new (s);
          continue;
        }
      for (size_t i = 0; i < MAX_CONNS; i++)
        if (conns[i].fd == p[k].fd)
          {
            if (!conn_read (s, &conns[i]))
              conn_close (&conns[i]);
            break;
          }
    }
}

void
sim_api_close_all (struct sim *s)
{
  for (size_t i = 0; i < MAX_CONNS; i++)
    if (conns[i].fd >= 0)
      conn_close (&conns[i]);
  if (s->api_fd >= 0)
    {
      close_and_reset (&s->api_fd);
      unlink (s->api_path);
    }
}
