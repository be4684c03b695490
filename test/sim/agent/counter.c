/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The built-in counter app: what demos/counter does, with its count in
 * guest memory so that it survives snapshot and restore the way a real
 * guest's RAM does.  A container whose process is "ate-sim-counter" (or
 * the demo's own "/ko-app/counter") runs it instead of a host binary.
 *
 * HTTP on port 80 in the guest's network namespace: GET /readyz answers
 * 200 "ok\n"; any other request increments the count and answers
 * "hello from: <guest IPv4> | preserved memory count: <n>\n".  It logs
 * JSON lines on the container's stdout like the demo.  While the guest is
 * paused it answers nothing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "util/time.h"
#include "util/util.h"

#define COUNTER_PORT 80
#define REQUEST_MAX 8192
#define REQUEST_TIMEOUT_MS 2000

struct counter_ctx
{
  struct sim_agent *agent;
  struct sim_ctr *ctr;
  int listen_fd;
  /* start-up handshake */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool ready;
  char *err;
};

bool
sim_is_counter_app (const Grpc__Spec *spec)
{
  const char *arg0;
  if (spec == NULL || spec->process == NULL || spec->process->n_args == 0)
    return false;
  arg0 = spec->process->args[0];
  return strcmp (arg0, SIM_COUNTER_APP) == 0 || strcmp (arg0, "/ko-app/counter") == 0;
}

/* A JSON log line on the container's stdout; dropped when nobody reads
 * and the pipe is full (the app must not block on its logs). */
static void
log_line (struct sim_ctr *c, const char *msg, const char *key, const char *val)
{
  char ts[ATE_TIME_BUF], line[512];
  int n;

  ate_time_rfc3339nano (ate_wall_ns (), ts);
  if (key)
    n = snprintf (line, sizeof (line), "{\"time\":\"%s\",\"level\":\"INFO\",\"msg\":\"%s\","
                                       "\"%s\":\"%s\"}\n", ts, msg, key, val);
  else
    n = snprintf (line, sizeof (line), "{\"time\":\"%s\",\"level\":\"INFO\",\"msg\":\"%s\"}\n",
                  ts, msg);
  if (n > 0 && (size_t) n < sizeof (line))
    (void) !write (c->out_w, line, (size_t) n);
}

/* The first non-loopback IPv4 address, as the demo reports it. */
static void
current_ip (char *buf, size_t size)
{
  struct ifaddrs *ifs, *i;

  if (getifaddrs (&ifs) < 0)
    {
      snprintf (buf, size, "x.x.x.x");
      return;
    }
  snprintf (buf, size, "y.y.y.y");
  for (i = ifs; i; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !(i->ifa_flags & IFF_LOOPBACK))
      {
        inet_ntop (AF_INET, &((struct sockaddr_in *) i->ifa_addr)->sin_addr, buf,
                   (socklen_t) size);
        break;
      }
  freeifaddrs (ifs);
}

/* Read the request head (up to the blank line). */
static bool
read_request (int fd, int stop_fd, char *buf, size_t size)
{
  size_t n = 0;
  ate_deadline_t d = ate_deadline_in_ms (REQUEST_TIMEOUT_MS);

  while (n + 1 < size)
    {
      struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
      ssize_t r;
      if (poll (p, 2, ate_deadline_poll_ms (d)) <= 0 || p[1].revents)
        return false;
      r = read (fd, buf + n, size - 1 - n);
      if (r <= 0)
        return false;
      n += (size_t) r;
      buf[n] = '\0';
      if (strstr (buf, "\r\n\r\n") || strstr (buf, "\n\n"))
        return true;
    }
  return false;
}

static void
respond (int fd, int code, const char *reason, const char *body)
{
  char head[256];
  int n = snprintf (head, sizeof (head),
                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    code, reason, strlen (body));
  /* The client may be gone: no SIGPIPE for the whole VMM. */
  (void) !send (fd, head, (size_t) n, MSG_NOSIGNAL);
  (void) !send (fd, body, strlen (body), MSG_NOSIGNAL);
}

static void
serve_client (struct counter_ctx *x, int fd)
{
  char req[REQUEST_MAX], path[256] = "", ip[INET_ADDRSTRLEN], body[256];
  bool running;

  if (!read_request (fd, x->ctr->counter_stop, req, sizeof (req)) || sscanf (req, "%*s %255s", path) != 1)
    {
      respond (fd, 400, "Bad Request", "bad request\n");
      return;
    }
  /* A request that arrived just before a pause is answered after it. */
  pthread_mutex_lock (&x->agent->lock);
  running = sim_wait_running_locked (x->agent, &x->ctr->stop_requested);
  pthread_mutex_unlock (&x->agent->lock);
  if (!running)
    return;
  if (strcmp (path, "/readyz") == 0)
    {
      respond (fd, 200, "OK", "ok\n");
      return;
    }
  current_ip (ip, sizeof (ip));
  snprintf (body, sizeof (body), "hello from: %s | preserved memory count: %llu\n", ip,
            (unsigned long long) sim_state_counter_bump (x->agent));
  respond (fd, 200, "OK", body);
  log_line (x->ctr, "Handled request", "response", "hello");
}

static int
listen_in_guest (struct counter_ctx *x)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (COUNTER_PORT) };
  int one = 1, fd;

  /* This thread lives in the guest's namespace from now on. */
  if (x->agent->ops.netns_fd >= 0 && setns (x->agent->ops.netns_fd, CLONE_NEWNET) < 0)
    return x->err = xasprintf ("enter the guest netns: %s", strerror (errno)), -1;
  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return x->err = xasprintf ("socket: %s", strerror (errno)), -1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
  if (bind (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0 || listen (fd, 64) < 0)
    {
      x->err = xasprintf ("listen on port %d: %s", COUNTER_PORT, strerror (errno));
      close (fd);
      return -1;
    }
  x->listen_fd = fd;
  return 0;
}

static void *
counter_main (void *arg)
{
  struct counter_ctx *x = arg;
  struct sim_ctr *c = x->ctr;
  int r = listen_in_guest (x);

  pthread_mutex_lock (&x->lock);
  x->ready = true;
  pthread_cond_signal (&x->cond);
  pthread_mutex_unlock (&x->lock);
  if (r < 0)
    return NULL; /* the starter reports x->err and frees x */
  log_line (c, "Starting counter server on port 80", NULL, NULL);
  for (;;)
    {
      struct pollfd p[2] = { { .fd = x->listen_fd, .events = POLLIN },
                             { .fd = c->counter_stop, .events = POLLIN } };
      bool running;
      int fd;

      pthread_mutex_lock (&x->agent->lock);
      running = sim_wait_running_locked (x->agent, &c->stop_requested);
      pthread_mutex_unlock (&x->agent->lock);
      if (!running || poll (p, 2, 200) < 0 || p[1].revents)
        break;
      if (!(p[0].revents & POLLIN))
        continue;
      fd = accept4 (x->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd < 0)
        continue;
      serve_client (x, fd);
      close (fd);
    }
  close (x->listen_fd);
  pthread_mutex_lock (&x->agent->lock);
  close_and_reset (&c->out_w); /* readers see the end of stdout */
  sim_ctr_unref (c);
  pthread_mutex_unlock (&x->agent->lock);
  pthread_mutex_destroy (&x->lock);
  pthread_cond_destroy (&x->cond);
  free (x);
  return NULL;
}

int
sim_counter_start (struct sim_agent *a, struct sim_ctr *c, char **errmsg)
{
  struct counter_ctx *x = xmalloc0 (sizeof (*x));
  int out[2], err[2];

  if (pipe2 (out, O_CLOEXEC) < 0)
    return free (x), *errmsg = xasprintf ("pipe: %s", strerror (errno)), -1;
  if (pipe2 (err, O_CLOEXEC) < 0)
    {
      close (out[0]);
      close (out[1]);
      free (x);
      return *errmsg = xasprintf ("pipe: %s", strerror (errno)), -1;
    }
  fcntl (out[1], F_SETFL, O_NONBLOCK);
  c->out_r = out[0];
  c->out_w = out[1];
  c->err_r = err[0];
  c->err_w = err[1]; /* never written: stderr stays open and silent */
  c->counter_stop = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  x->agent = a;
  x->ctr = c;
  x->listen_fd = -1;
  pthread_mutex_init (&x->lock, NULL);
  pthread_cond_init (&x->cond, NULL);
  if (c->counter_stop < 0 || pthread_create (&c->counter_thread, NULL, counter_main, x) != 0)
    {
      *errmsg = xasprintf ("start the counter app: %s", strerror (errno));
      pthread_mutex_destroy (&x->lock);
      pthread_cond_destroy (&x->cond);
      free (x);
      return -1;
    }
  pthread_mutex_lock (&x->lock);
  while (!x->ready)
    pthread_cond_wait (&x->cond, &x->lock);
  pthread_mutex_unlock (&x->lock);
  if (x->err)
    {
      *errmsg = x->err;
      pthread_join (c->counter_thread, NULL);
      pthread_mutex_destroy (&x->lock);
      pthread_cond_destroy (&x->cond);
      free (x);
      return -1;
    }
  c->counter_running = true;
  sim_ctr_ref (c); /* the thread's */
  return 0;
}
