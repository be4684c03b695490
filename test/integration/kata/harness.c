/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sim_agent.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/proc.h"
#include "util/time.h"
#include "util/util.h"

#define STATE_SIZE (63u * 4096u)
#define GUEST_MAC "02:a8:1e:00:00:02"

struct harness
{
  char *dir, *vsock, *disk;
  int listen_fd;
  pthread_t thread;
  bool stop;
  int64_t boot_at;
  unsigned connects;
  uint8_t *mem;
  int netns_fd;
  struct sim_guest_ops ops;
  struct sim_agent *agent;
  pthread_mutex_t lock; /* agent pointer vs. the accept thread */
};

static int
h_read (void *ctx, size_t off, void *buf, size_t len)
{
  struct harness *h = ctx;
  if (off > STATE_SIZE || len > STATE_SIZE - off)
    return errno = EFAULT, -1;
  memcpy (buf, h->mem + off, len);
  return 0;
}

static int
h_write (void *ctx, size_t off, const void *buf, size_t len)
{
  struct harness *h = ctx;
  if (off > STATE_SIZE || len > STATE_SIZE - off)
    return errno = EFAULT, -1;
  memcpy (h->mem + off, buf, len);
  return 0;
}

static const char *
h_block (void *ctx, const char *dev)
{
  struct harness *h = ctx;
  return strcmp (dev, "/dev/vdb") == 0 ? h->disk : NULL;
}

/* The raw disk, as the guest reads and writes it (no qcow2 here). */
static int
h_block_io (struct harness *h, const char *dev, uint64_t off, void *rbuf, const void *wbuf,
            size_t len)
{
  const char *path = h_block (h, dev);
  ssize_t n;
  int fd, saved;

  if (path == NULL)
    {
      errno = ENODEV;
      return -1;
    }
  fd = open (path, (wbuf ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0)
    return -1;
  n = wbuf ? pwrite (fd, wbuf, len, (off_t) off) : pread (fd, rbuf, len, (off_t) off);
  saved = errno;
  close (fd);
  if (n == (ssize_t) len)
    return 0;
  errno = n < 0 ? saved : EIO;
  return -1;
}

static int
h_block_read (void *ctx, const char *dev, uint64_t off, void *buf, size_t len)
{
  return h_block_io (ctx, dev, off, buf, NULL, len);
}

static int
h_block_write (void *ctx, const char *dev, uint64_t off, const void *buf, size_t len)
{
  return h_block_io (ctx, dev, off, NULL, buf, len);
}

static void h_log (void *ctx, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
h_log (void *ctx, const char *fmt, ...)
{
  va_list ap;
  (void) ctx;
  va_start (ap, fmt);
  fprintf (stderr, "[sim-agent] ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\n");
  va_end (ap);
}

/* A new namespace with eth0 (guest MAC) and its veth peer, both usable. */
struct ns_job
{
  int fd;
  char *err;
};

static void *
ns_thread (void *arg)
{
  struct ns_job *j = arg;
  struct nl_sock *sk = NULL;
  struct rtnl_link *veth = NULL, *peer, *lo = NULL, *hostside = NULL, *up = NULL;
  struct nl_cache *links = NULL;
  struct nl_addr *mac = NULL;
  int r;

  if (unshare (CLONE_NEWNET) < 0)
    return j->err = xasprintf ("unshare: %s", strerror (errno)), NULL;
  j->fd = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  sk = nl_socket_alloc ();
  if ((r = nl_connect (sk, NETLINK_ROUTE)) < 0)
    goto nlerr;
  veth = rtnl_link_veth_alloc ();
  rtnl_link_set_name (veth, "eth0");
  nl_addr_parse (GUEST_MAC, AF_LLC, &mac);
  rtnl_link_set_addr (veth, mac);
  peer = rtnl_link_veth_get_peer (veth);
  rtnl_link_set_name (peer, "hostside"); /* (flags here make libnl 3.7 fail) */
  rtnl_link_put (peer);
  if ((r = rtnl_link_add (sk, veth, NLM_F_CREATE | NLM_F_EXCL)) < 0)
    goto nlerr;
  if ((r = rtnl_link_alloc_cache (sk, AF_UNSPEC, &links)) < 0)
    goto nlerr;
  lo = rtnl_link_get_by_name (links, "lo");
  hostside = rtnl_link_get_by_name (links, "hostside");
  up = rtnl_link_alloc ();
  rtnl_link_set_flags (up, IFF_UP);
  if ((lo && (r = rtnl_link_change (sk, lo, up, 0)) < 0)
      || (hostside && (r = rtnl_link_change (sk, hostside, up, 0)) < 0))
    goto nlerr;
  goto out;
nlerr:
  j->err = xasprintf ("netlink: %s", nl_geterror (r));
out:
  if (up)
    rtnl_link_put (up);
  if (lo)
    rtnl_link_put (lo);
  if (hostside)
    rtnl_link_put (hostside);
  if (links)
    nl_cache_free (links);
  if (veth)
    rtnl_link_put (veth);
  nl_addr_put (mac);
  nl_socket_free (sk);
  return NULL;
}

static int
new_netns (char **err)
{
  struct ns_job j = { .fd = -1 };
  pthread_t t;

  pthread_create (&t, NULL, ns_thread, &j);
  pthread_join (t, NULL);
  if (j.err)
    {
      if (j.fd >= 0)
        close (j.fd);
      *err = j.err;
      return -1;
    }
  return j.fd;
}

static void
serve_conn (struct harness *h, int fd)
{
  char cmd[32];
  size_t n = 0;
  unsigned port = 0;

  while (n < sizeof (cmd) - 1 && read (fd, cmd + n, 1) == 1 && cmd[n] != '\n')
    n++;
  cmd[n] = '\0';
  pthread_mutex_lock (&h->lock);
  h->connects++;
  if (sscanf (cmd, "CONNECT %u", &port) == 1 && port == 1024 && h->agent
      && ate_now_ns () >= h->boot_at)
    {
      (void) !send (fd, "OK 1073741824\n", 14, MSG_NOSIGNAL);
      sim_agent_serve (h->agent, fd);
      fd = -1;
    }
  pthread_mutex_unlock (&h->lock);
  if (fd >= 0)
    close (fd); /* nothing listens there (yet) */
}

static void *
accept_main (void *arg)
{
  struct harness *h = arg;
  for (;;)
    {
      int fd = accept4 (h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd < 0)
        {
          if (h->stop)
            return NULL;
          continue;
        }
      serve_conn (h, fd);
    }
}

static int
make_disk (struct harness *h)
{
  char *const argv[] = { "mkfs.ext4", "-q", "-F", h->disk, "8M", NULL };
  struct ate_error *err = NULL;

  if (ate_proc_run (argv, NULL, ate_deadline_in_ms (30000), NULL, &err) < 0)
    {
      fprintf (stderr, "mkfs.ext4: %s\n", err->msg);
      ate_error_free (err);
      return -1;
    }
  return 0;
}

static int
start_agent (struct harness *h, bool restored)
{
  char *err = NULL;
  int fd = new_netns (&err);

  if (fd < 0)
    {
      fprintf (stderr, "guest netns: %s\n", err);
      free (err);
      return -1;
    }
  if (h->netns_fd >= 0)
    close (h->netns_fd);
  h->netns_fd = fd;
  h->ops = (struct sim_guest_ops) { .ctx = h, .state_max = STATE_SIZE, .state_read = h_read,
                                    .state_write = h_write, .netns_fd = fd,
                                    .block_device_path = h_block,
                                    .block_device_read = h_block_read,
                                    .block_device_write = h_block_write, .log = h_log };
  h->agent = sim_agent_new (&h->ops, restored);
  return h->agent ? 0 : -1;
}

int
harness_new (int boot_delay_ms, struct harness **out)
{
  struct harness *h;
  char tmpl[] = "/tmp/ate-test-kata-XXXXXX";
  struct sockaddr_un sa = { .sun_family = AF_UNIX };

  if (geteuid () != 0)
    return 77;
  h = xmalloc0 (sizeof (*h));
  h->netns_fd = -1;
  pthread_mutex_init (&h->lock, NULL);
  h->dir = xstrdup (mkdtemp (tmpl));
  h->vsock = xasprintf ("%s/clh.sock", h->dir);
  h->disk = xasprintf ("%s/actor-rootfs.ext4", h->dir);
  h->mem = xmalloc0 (STATE_SIZE);
  h->boot_at = ate_now_ns () + (int64_t) boot_delay_ms * ATE_NSEC_PER_MSEC;
  strcpy (sa.sun_path, h->vsock);
  h->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (make_disk (h) < 0 || h->listen_fd < 0
      || bind (h->listen_fd, (struct sockaddr *) &sa, sizeof (sa)) < 0
      || listen (h->listen_fd, 16) < 0 || start_agent (h, false) < 0)
    {
      harness_free (h);
      return 77;
    }
  pthread_create (&h->thread, NULL, accept_main, h);
  *out = h;
  return 0;
}

void
harness_free (struct harness *h)
{
  struct ate_error *err = NULL;

  if (h == NULL)
    return;
  if (h->thread)
    {
      h->stop = true;
      shutdown (h->listen_fd, SHUT_RDWR);
      pthread_join (h->thread, NULL);
    }
  if (h->listen_fd >= 0)
    close (h->listen_fd);
  sim_agent_free (h->agent);
  if (h->netns_fd >= 0)
    close (h->netns_fd);
  if (ate_rm_rf (h->dir, &err) < 0)
    ate_error_free (err);
  pthread_mutex_destroy (&h->lock);
  free (h->dir);
  free (h->vsock);
  free (h->disk);
  free (h->mem);
  free (h);
}

const char *
harness_vsock_path (const struct harness *h)
{
  return h->vsock;
}

const char *
harness_dir (const struct harness *h)
{
  return h->dir;
}

int
harness_netns_fd (const struct harness *h)
{
  return h->netns_fd;
}

unsigned
harness_connects (const struct harness *h)
{
  return __atomic_load_n (&h->connects, __ATOMIC_RELAXED);
}

struct sim_agent *
harness_agent (struct harness *h)
{
  return h->agent;
}

int
harness_restore (struct harness *h)
{
  struct sim_agent *old;

  pthread_mutex_lock (&h->lock);
  old = h->agent;
  h->agent = NULL;
  pthread_mutex_unlock (&h->lock);
  /* The snapshot: connections do not survive, the old guest is gone. */
  sim_agent_reset_connections (old);
  sim_agent_free (old);
  pthread_mutex_lock (&h->lock);
  int r = start_agent (h, true);
  pthread_mutex_unlock (&h->lock);
  return r;
}

void
harness_corrupt (struct harness *h, size_t off)
{
  h->mem[off] ^= 0x5a;
}

char *
harness_run_in_guest (struct harness *h, char *const argv[])
{
  struct ate_spawn_opts o;
  struct ate_error *err = NULL;
  char *out = NULL;

  ate_spawn_opts_init (&o);
  o.stdout_fd = ATE_SPAWN_PIPE;
  o.stderr_fd = ATE_SPAWN_STDOUT;
  o.netns_fd = h->netns_fd;
  if (ate_proc_run (argv, &o, ate_deadline_in_ms (10000), &out, &err) < 0)
    {
      fprintf (stderr, "%s\n", err->msg);
      ate_error_free (err);
      free (out);
      return NULL;
    }
  return out;
}

struct http_job
{
  struct harness *h;
  const char *path;
  int timeout_ms;
  char *body;
};

static void *
http_thread (void *arg)
{
  struct http_job *j = arg;
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (80) };
  char req[256], buf[4096];
  size_t n = 0;
  ate_deadline_t d = ate_deadline_in_ms (j->timeout_ms);
  int fd;

  if (setns (j->h->netns_fd, CLONE_NEWNET) < 0)
    return NULL;
  inet_pton (AF_INET, "169.254.17.2", &sa.sin_addr);
  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0)
    {
      if (fd >= 0)
        close (fd);
      return NULL;
    }
  snprintf (req, sizeof (req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", j->path);
  (void) !send (fd, req, strlen (req), MSG_NOSIGNAL);
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      ssize_t r;
      if (poll (&p, 1, ate_deadline_poll_ms (d)) <= 0)
        break;
      r = read (fd, buf + n, sizeof (buf) - 1 - n);
      if (r <= 0)
        {
          char *body;
          buf[n] = '\0';
          body = strstr (buf, "\r\n\r\n");
          if (r == 0 && body)
            j->body = xstrdup (body + 4);
          break;
        }
      n += (size_t) r;
      if (n == sizeof (buf) - 1)
        break;
    }
  close (fd);
  return NULL;
}

char *
harness_http_get (struct harness *h, const char *path, int timeout_ms)
{
  struct http_job j = { .h = h, .path = path, .timeout_ms = timeout_ms };
  pthread_t t;

  pthread_create (&t, NULL, http_thread, &j);
  pthread_join (t, NULL);
  return j.body;
}
