/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hybrid vsock (CH docs/vsock.md, muxer.rs): the host connects to the unix
 * socket and sends "CONNECT <port>\n" (32-byte command buffer, "connect "
 * matched case-insensitively); when a guest service listens on the port
 * the answer is "OK <host port>\n", otherwise the connection is closed.
 * Port 1024 is the kata agent, port 1026 the debug console.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sim.h"
#include "util/error.h"
#include "util/proc.h"
#include "util/util.h"

#define CMD_BUF 32
#define MAX_PENDING 16
#define AGENT_PORT 1024
#define CONSOLE_PORT 1026
#define CONSOLE_LINE_MAX 4096

struct sim_pending
{
  struct sim_pending *next;
  int fd;
  char buf[CMD_BUF];
  size_t len;
};

struct sim_console
{
  struct sim_console *next;
  struct sim *s;
  int fd;
  pthread_t th;
  pthread_mutex_t lock;
  struct ate_proc *running;
  atomic_bool done;
};

int
sim_vsock_listen (struct sim *s, char **msg)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (s->vsock_path) >= sizeof (sa.sun_path))
    {
      *msg = xasprintf ("vsock socket path `%s` too long", s->vsock_path);
      return -1;
    }
  strcpy (sa.sun_path, s->vsock_path);
  unlink (s->vsock_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || bind (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0 || listen (fd, 64) < 0)
    {
      *msg = xasprintf ("vsock socket `%s`: %s", s->vsock_path, strerror (errno));
      if (fd >= 0)
        close (fd);
      return -1;
    }
  s->vsock_fd = fd;
  return 0;
}

void
sim_vsock_poll_fds (struct sim *s, struct pollfd *p, size_t *n, size_t max)
{
  if (s->vsock_fd >= 0 && *n < max)
    p[(*n)++] = (struct pollfd){ .fd = s->vsock_fd, .events = POLLIN };
  for (struct sim_pending *q = s->pending; q && *n < max; q = q->next)
    p[(*n)++] = (struct pollfd){ .fd = q->fd, .events = POLLIN };
}

/* ------------------------------------------------------------- console */

static void
console_write (int fd, const char *buf, size_t len)
{
  while (len)
    {
      ssize_t n = send (fd, buf, len, MSG_NOSIGNAL);
      if (n <= 0)
        return;
      buf += n;
      len -= (size_t) n;
    }
}

static void
console_run (struct sim_console *c, const char *line)
{
  struct sim *s = c->s;
  struct ate_spawn_opts o;
  struct ate_error *err = NULL;
  struct ate_proc *p = NULL;
  const char *vdb = s->ndisks > 1 ? s->disks[1].path : "";
  cleanup_free char *disk_env = xasprintf ("ATE_SIM_ROOTFS_DISK=%s", vdb);
  char *argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) line, NULL };
  size_t ne = strv_len (environ);
  cleanup_free char **env = xcalloc (ne + 2, sizeof (char *));

  for (size_t i = 0; i < ne; i++)
    env[i] = environ[i];
  env[ne] = disk_env;
  ate_spawn_opts_init (&o);
  o.stdin_fd = ATE_SPAWN_NULL;
  o.stdout_fd = c->fd;
  o.stderr_fd = c->fd;
  o.env = env;
  o.netns_fd = s->netns_fd;
  if (ate_proc_spawn (argv, &o, &p, &err) < 0)
    {
      cleanup_free char *m = xasprintf ("sh: %s\r\n", err->msg);
      console_write (c->fd, m, strlen (m));
      ate_error_release (&err);
      return;
    }
  pthread_mutex_lock (&c->lock);
  c->running = p;
  pthread_mutex_unlock (&c->lock);
  ate_proc_wait (p, ATE_DEADLINE_NONE, NULL, NULL);
  pthread_mutex_lock (&c->lock);
  c->running = NULL;
  pthread_mutex_unlock (&c->lock);
  ate_proc_free (p);
}

/* Like a PTY shell: every line is echoed back before its output. */
static void *
console_main (void *arg)
{
  struct sim_console *c = arg;
  char line[CONSOLE_LINE_MAX];
  size_t len = 0;

  console_write (c->fd, "# ", 2);
  for (;;)
    {
      ssize_t n = recv (c->fd, line + len, sizeof (line) - 1 - len, 0);
      char *nl;
      if (n <= 0)
        break;
      len += (size_t) n;
      while ((nl = memchr (line, '\n', len)) != NULL)
        {
          size_t l = (size_t) (nl - line);
          line[l] = '\0';
          if (l && line[l - 1] == '\r')
            line[l - 1] = '\0';
          console_write (c->fd, line, strlen (line));
          console_write (c->fd, "\r\n", 2);
          if (line[0])
            console_run (c, line);
          console_write (c->fd, "# ", 2);
          memmove (line, nl + 1, len - l - 1);
          len -= l + 1;
        }
      if (len == sizeof (line) - 1)
        break; /* a line longer than a terminal would take */
    }
  atomic_store (&c->done, true);
  return NULL;
}

static void
console_start (struct sim *s, int fd)
{
  struct sim_console *c = xmalloc0 (sizeof (*c));

  c->s = s;
  c->fd = fd;
  pthread_mutex_init (&c->lock, NULL);
  if (pthread_create (&c->th, NULL, console_main, c) != 0)
    {
      close (fd);
      free (c);
      return;
    }
  c->next = s->consoles;
  s->consoles = c;
}

static void
console_stop (struct sim_console *c)
{
  shutdown (c->fd, SHUT_RDWR);
  pthread_mutex_lock (&c->lock);
  if (c->running)
    ate_proc_signal (c->running, SIGKILL);
  pthread_mutex_unlock (&c->lock);
  pthread_join (c->th, NULL);
  close (c->fd);
  pthread_mutex_destroy (&c->lock);
  free (c);
}

static void
consoles_reap (struct sim *s, bool all)
{
  struct sim_console **pp = &s->consoles;
  while (*pp)
    {
      struct sim_console *c = *pp;
      if (all || atomic_load (&c->done))
        {
          *pp = c->next;
          console_stop (c);
        }
      else
        pp = &c->next;
    }
}

/* ----------------------------------------------------------- handshake */

static void
dispatch (struct sim *s, int fd, unsigned long port)
{
  char ok[32];

  snprintf (ok, sizeof (ok), "OK %u\n", s->next_host_port++);
  if (port == AGENT_PORT && s->agent && sim_now_ns () >= s->agent_ready_ns
      && s->state == SIM_VM_RUNNING)
    {
      if (send (fd, ok, strlen (ok), MSG_NOSIGNAL) < 0 || !sim_agent_glue_serve (s, fd))
        close (fd);
      return;
    }
  if (port == CONSOLE_PORT && s->state == SIM_VM_RUNNING)
    {
      if (send (fd, ok, strlen (ok), MSG_NOSIGNAL) < 0)
        close (fd);
      else
        console_start (s, fd);
      return;
    }
  close (fd); /* nobody listens on that port (yet) */
}

/* Returns true when the pending connection is finished with. */
static bool
pending_read (struct sim *s, struct sim_pending *q)
{
  ssize_t n = recv (q->fd, q->buf + q->len, CMD_BUF - q->len, MSG_DONTWAIT);
  char *nl, *end;
  unsigned long port;

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return false;
  if (n <= 0)
    {
      close (q->fd);
      return true;
    }
  q->len += (size_t) n;
  nl = memchr (q->buf, '\n', q->len);
  if (nl == NULL)
    {
      if (q->len < CMD_BUF)
        return false;
      close (q->fd); /* command longer than CH's buffer */
      return true;
    }
  *nl = '\0';
  if (q->len - (size_t) (nl + 1 - q->buf) > 0 || strncasecmp (q->buf, "connect ", 8) != 0)
    {
      close (q->fd); /* malformed, or data before the handshake completed */
      return true;
    }
  char *ps = q->buf + 8;
  while (*ps == ' ')
    ps++;
  errno = 0;
  port = strtoul (ps, &end, 10);
  while (*end == ' ' || *end == '\r')
    end++;
  if (errno || end == ps || *end != '\0' || port > UINT32_MAX)
    {
      close (q->fd);
      return true;
    }
  dispatch (s, q->fd, port);
  return true;
}

static void
accept_new (struct sim *s)
{
  size_t npending = 0;

  for (struct sim_pending *q = s->pending; q; q = q->next)
    npending++;
  for (;;)
    {
      int fd = accept4 (s->vsock_fd, NULL, NULL, SOCK_CLOEXEC);
      struct sim_pending *q;
      if (fd < 0)
        return;
      if (npending >= MAX_PENDING)
        {
          close (fd);
          continue;
        }
      q = xmalloc0 (sizeof (*q));
      q->fd = fd;
      q->next = s->pending;
      s->pending = q;
      npending++;
    }
}

void
sim_vsock_handle (struct sim *s, struct pollfd *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      if (!p[i].revents)
        continue;
      if (p[i].fd == s->vsock_fd)
        {
          accept_new (s);
          continue;
        }
      for (struct sim_pending **pp = &s->pending; *pp; pp = &(*pp)->next)
        if ((*pp)->fd == p[i].fd)
          {
            struct sim_pending *q = *pp;
            if (pending_read (s, q))
              {
                *pp = q->next;
                free (q);
              }
            break;
          }
    }
  consoles_reap (s, false);
}

void
sim_vsock_reset (struct sim *s)
{
  while (s->pending)
    {
      struct sim_pending *q = s->pending;
      s->pending = q->next;
      close (q->fd);
      free (q);
    }
  consoles_reap (s, true);
  sim_agent_glue_reset (s);
}

void
sim_vsock_close (struct sim *s)
{
  sim_vsock_reset (s);
  if (s->vsock_fd >= 0)
    {
      close_and_reset (&s->vsock_fd);
      unlink (s->vsock_path);
    }
}
