/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ch-sim: started exactly like cloud-hypervisor (`--api-socket path=<sock>`,
 * or a bare path; `--version`).  Personality from CH_SIM_PERSONALITY
 * (v51.1, v52.0, v53.0) or the program name's suffix (ch-sim-v51.1);
 * default v52.0.  See docs/simulator.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"
#include "util/util.h"

#define TICK_MS 50
#define POLL_MAX 64

int64_t
sim_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
sim_log (const char *fmt, ...)
{
  char buf[2048];
  va_list ap;
  int n;

  n = snprintf (buf, sizeof (buf), "ch-sim[%d]: ", (int) getpid ());
  va_start (ap, fmt);
  vsnprintf (buf + n, sizeof (buf) - (size_t) n - 1, fmt, ap);
  va_end (ap);
  strcat (buf, "\n");
  if (write (STDERR_FILENO, buf, strlen (buf)) < 0)
    return;
}

static int
set_personality (struct sim *s, const char *name)
{
  if (strstr (name, "51.1") || strstr (name, "v51"))
    {
      s->personality = SIM_V51;
      s->version = "51.1.0";
      s->build_version = "v51.1";
    }
  else if (strstr (name, "52.0") || strstr (name, "v52"))
    {
      s->personality = SIM_V52;
      s->version = "52.0.0";
      s->build_version = "v52.0";
    }
  else if (strstr (name, "53.0") || strstr (name, "v53"))
    {
      s->personality = SIM_V53;
      s->version = "53.0.0";
      s->build_version = "v53.0";
    }
  else
    return -1;
  return 0;
}

static int
parse_args (struct sim *s, int argc, char **argv)
{
  const char *env = getenv ("CH_SIM_PERSONALITY"), *base = strrchr (argv[0], '/');
  const char *ms = getenv ("CH_SIM_BOOT_MS");

  base = base ? base + 1 : argv[0];
  set_personality (s, "v52.0");
  if (env && *env)
    {
      if (set_personality (s, env) < 0)
        {
          sim_log ("CH_SIM_PERSONALITY=%s: expected v51.1, v52.0 or v53.0", env);
          return -1;
        }
    }
  else if (strncmp (base, "ch-sim-", 7) == 0 && set_personality (s, base + 7) < 0)
    {
      sim_log ("%s: unknown personality suffix (expected v51.1, v52.0 or v53.0)", base);
      return -1;
    }
  s->boot_ms = ms ? atoi (ms) : 150;
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--version") == 0 || strcmp (argv[i], "-V") == 0)
        {
          printf ("cloud-hypervisor v%s\n", s->version);
          exit (0);
        }
      if (strcmp (argv[i], "--api-socket") == 0 && i + 1 < argc)
        {
          const char *v = argv[++i];
          s->api_path = xstrdup (strncmp (v, "path=", 5) == 0 ? v + 5 : v);
          continue;
        }
      if (strncmp (argv[i], "--api-socket=", 13) == 0)
        {
          const char *v = argv[i] + 13;
          s->api_path = xstrdup (strncmp (v, "path=", 5) == 0 ? v + 5 : v);
          continue;
        }
      sim_log ("unsupported argument `%s` (usage: ch-sim --api-socket path=<socket> | --version)",
               argv[i]);
      return -1;
    }
  if (s->api_path == NULL || s->api_path[0] == '\0')
    {
      sim_log ("usage: ch-sim --api-socket path=<socket> | --version");
      return -1;
    }
  return 0;
}

static int
setup_signals (int *sigfd, int *timerfd)
{
  sigset_t set;
  struct itimerspec its = { .it_interval = { 0, TICK_MS * 1000000L },
                            .it_value = { 0, TICK_MS * 1000000L } };

  signal (SIGPIPE, SIG_IGN);
  sigemptyset (&set);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGHUP);
  /* Before any thread exists, so every thread inherits the mask. */
  if (pthread_sigmask (SIG_BLOCK, &set, NULL) != 0)
    return -1;
  *sigfd = signalfd (-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  *timerfd = timerfd_create (CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (*sigfd < 0 || *timerfd < 0 || timerfd_settime (*timerfd, 0, &its, NULL) < 0)
    return -1;
  return 0;
}

static void
run (struct sim *s, int sigfd, int timerfd)
{
  while (!s->quit)
    {
      struct pollfd p[POLL_MAX];
      size_t n = 0, api_start, vs_start;
      uint64_t ticks;

      p[n++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
      p[n++] = (struct pollfd){ .fd = timerfd, .events = POLLIN };
      api_start = n;
      sim_api_poll_fds (s, p, &n, POLL_MAX);
      vs_start = n;
      sim_vsock_poll_fds (s, p, &n, POLL_MAX);
      if (poll (p, n, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          sim_log ("poll: %s", strerror (errno));
          break;
        }
      if (p[0].revents)
        {
          struct signalfd_siginfo si;
          if (read (sigfd, &si, sizeof (si)) > 0)
            sim_log ("signal %u: shutting down", si.ssi_signo);
          break;
        }
      if (p[1].revents && read (timerfd, &ticks, sizeof (ticks)) > 0)
        sim_vm_tick (s);
      sim_api_handle (s, p + api_start, vs_start - api_start);
      sim_vsock_handle (s, p + vs_start, n - vs_start);
    }
}

int
main (int argc, char **argv)
{
  struct sim s = { .api_fd = -1, .vsock_fd = -1, .netns_fd = -1, .guest_tap = -1,
                   .next_host_port = 1073741824u };
  const char *rec = getenv ("CH_SIM_RECORD");
  char *msg = NULL;
  int sigfd = -1, timerfd = -1;

  if (parse_args (&s, argc, argv) < 0)
    return 2;
  if (setup_signals (&sigfd, &timerfd) < 0)
    {
      sim_log ("signals/timer: %s", strerror (errno));
      return 1;
    }
  if (rec && *rec)
    {
      s.record = fopen (rec, "ae");
      if (s.record == NULL)
        {
          sim_log ("CH_SIM_RECORD=%s: %s", rec, strerror (errno));
          return 1;
        }
    }
  if (sim_api_listen (&s, &msg) < 0)
    {
      sim_log ("%s", msg);
      free (msg);
      return 1;
    }
  sim_log ("cloud-hypervisor simulator %s listening on %s", s.build_version, s.api_path);
  run (&s, sigfd, timerfd);
  sim_vm_teardown (&s);
  sim_api_close_all (&s);
  if (s.record)
    fclose (s.record);
  close (sigfd);
  close (timerfd);
  free (s.api_path);
  free (s.vsock_path);
  return 0;
}
