/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "fs.h"
#include "log.h"
#include "util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

/* Without pidfds (kernels before 5.3, valgrind before 3.20) children are
 * watched by pid: waitpid for our children, kill (pid, 0) for others. */
#define PIDFD_NONE (-2)
#define PID_POLL_MS 5

struct ate_proc
{
  pid_t pid;
  int pidfd;
  int output_fd;
  bool is_child;
  bool done;   /* exit observed and status collected */
  int status;  /* waitpid form, valid when done */
  char *name;
  struct ate_proc *next; /* registry of our children */
};

/* Registry of children we spawned: the orphan reaper must not take their
 * exit status.  The lock is held across fork so a child cannot exit (and be
 * seen by the reaper) before it is registered. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ate_proc *reg_head;
static size_t reg_count;

static void
reg_add_locked (struct ate_proc *p)
{
  p->next = reg_head;
  reg_head = p;
  reg_count++;
}

static void
reg_remove_locked (struct ate_proc *p)
{
  for (struct ate_proc **pp = &reg_head; *pp; pp = &(*pp)->next)
    if (*pp == p)
      {
        *pp = p->next;
        reg_count--;
        return;
      }
}

size_t
ate_proc_tracked_count (void)
{
  pthread_mutex_lock (&reg_lock);
  size_t n = reg_count;
  pthread_mutex_unlock (&reg_lock);
  return n;
}

void
ate_spawn_opts_init (struct ate_spawn_opts *opts)
{
  memset (opts, 0, sizeof (*opts));
  opts->stdin_fd = ATE_SPAWN_NULL;
  opts->stdout_fd = ATE_SPAWN_NULL;
  opts->stderr_fd = ATE_SPAWN_NULL;
  opts->netns_fd = -1;
}

/* Resolve argv[0] in PATH in the parent (the child only calls
 * async-signal-safe functions). */
static char *
resolve_executable (const char *name)
{
  const char *path;

  if (strchr (name, '/'))
    return xstrdup (name);
  path = getenv ("PATH");
  if (path == NULL || *path == '\0')
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const char *p = path;;)
    {
      const char *c = strchr (p, ':');
      size_t l = c ? (size_t) (c - p) : strlen (p);
      char *cand = xasprintf ("%.*s/%s", (int) (l ? l : 1), l ? p : ".", name);
      if (access (cand, X_OK) == 0 && !ate_is_dir (cand))
        return cand;
      free (cand);
      if (c == NULL)
        break;
      p = c + 1;
    }
  return NULL;
}

__attribute__ ((noreturn)) static void
child_fail (int errpipe, int e)
{
  (void) !write (errpipe, &e, sizeof (e));
  _exit (127);
}

/* Runs in the child after fork: only async-signal-safe calls. */
__attribute__ ((noreturn)) static void
child_exec (const char *exe, char *const argv[], const struct ate_spawn_opts *o,
            int out_w, int errpipe)
{
  int src[3 + 64];
  int n = 3 + (int) o->n_keep_fds;
  int base = 3;
  sigset_t all;

  sigemptyset (&all);
  sigprocmask (SIG_SETMASK, &all, NULL);
  for (int s = 1; s < NSIG; s++)
    signal (s, SIG_DFL);

  if (o->pdeathsig)
    {
      prctl (PR_SET_PDEATHSIG, o->pdeathsig);
    }
  if (o->new_session)
    setsid ();
  if (o->netns_fd >= 0 && setns (o->netns_fd, CLONE_NEWNET) < 0)
    child_fail (errpipe, errno);
  if (o->cwd && chdir (o->cwd) < 0)
    child_fail (errpipe, errno);

  int stdfds[3] = { o->stdin_fd, o->stdout_fd, o->stderr_fd };
  for (int i = 0; i < 3; i++)
    {
      int fd = stdfds[i];
      if (fd == ATE_SPAWN_NULL)
        {
          fd = open ("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
          if (fd < 0)
            child_fail (errpipe, errno);
        }
      else if (fd == ATE_SPAWN_PIPE)
        fd = out_w;
      else if (fd == ATE_SPAWN_INHERIT)
        fd = i;
      else if (fd == ATE_SPAWN_STDOUT)
        fd = -2; /* resolved below */
      src[i] = fd;
    }
  if (src[2] == -2)
    src[2] = src[1];
  for (size_t k = 0; k < o->n_keep_fds; k++)
    src[3 + k] = o->keep_fds[k];

  for (int i = 0; i < n; i++)
    if (src[i] >= base)
      base = src[i] + 1;
  if (errpipe >= base)
    base = errpipe + 1;
  /* Move every source above all targets, then into place. */
  for (int i = 0; i < n; i++)
    {
      int h = fcntl (src[i], F_DUPFD_CLOEXEC, base);
      if (h < 0)
        child_fail (errpipe, errno);
      src[i] = h;
    }
  for (int i = 0; i < n; i++)
    if (dup2 (src[i], i) < 0)
      child_fail (errpipe, errno);
  /* Everything else is closed by exec (the error pipe stays open until the
   * exec succeeds). */
  syscall (SYS_close_range, (unsigned) n, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);

  execve (exe, argv, o->env ? o->env : environ);
  child_fail (errpipe, errno);
}

int
ate_proc_spawn (char *const argv[], const struct ate_spawn_opts *opts,
                struct ate_proc **out, struct ate_error **err)
{
  struct ate_spawn_opts defaults;
  cleanup_free char *exe = NULL;
  cleanup_close int err_r = -1, err_w = -1, out_r = -1, out_w = -1;
  struct ate_proc *p;
  int pipefd[2];
  pid_t pid;
  int child_errno = 0;
  ssize_t r;

  if (opts == NULL)
    {
      ate_spawn_opts_init (&defaults);
      opts = &defaults;
    }
  if (argv == NULL || argv[0] == NULL)
    return ate_error_make (err, EINVAL, "spawn: empty argv");
  if (opts->n_keep_fds > 64)
    return ate_error_make (err, EINVAL, "spawn: too many fds to keep");

  exe = resolve_executable (argv[0]);
  if (exe == NULL)
    return ate_error_make (err, ENOENT, "exec `%s`: not found in PATH", argv[0]);

  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    return ate_error_make (err, errno, "pipe");
  err_r = pipefd[0];
  err_w = pipefd[1];
  if (opts->stdout_fd == ATE_SPAWN_PIPE || opts->stderr_fd == ATE_SPAWN_PIPE)
    {
      if (pipe2 (pipefd, O_CLOEXEC) < 0)
        return ate_error_make (err, errno, "pipe");
      out_r = pipefd[0];
      out_w = pipefd[1];
    }

  p = xmalloc0 (sizeof (*p));
  p->name = ate_path_basename (argv[0]);
  p->pidfd = -1;
  p->output_fd = -1;
  p->is_child = true;

  pthread_mutex_lock (&reg_lock);
  pid = fork ();
  if (pid == 0)
    child_exec (exe, argv, opts, out_w, err_w);
  if (pid < 0)
    {
      int e = errno;
      pthread_mutex_unlock (&reg_lock);
      free (p->name);
      free (p);
      return ate_error_make (err, e, "fork for `%s`", argv[0]);
    }
  p->pid = pid;
  p->pidfd = pidfd_open (pid, 0);
  if (p->pidfd < 0 && errno == ENOSYS)
    p->pidfd = PIDFD_NONE; /* no pidfd (e.g. under valgrind): wait by pid */
  reg_add_locked (p);
  pthread_mutex_unlock (&reg_lock);

  close_and_reset (&err_w);
  close_and_reset (&out_w);
  do
    r = read (err_r, &child_errno, sizeof (child_errno));
  while (r < 0 && errno == EINTR);

  if (p->pidfd == -1 || r > 0)
    {
      int e = r > 0 ? child_errno : errno;
      ate_proc_kill_and_wait (p);
      ate_proc_free (p);
      if (r > 0)
        return ate_error_make (err, e, "exec `%s`", argv[0]);
      return ate_error_make (err, e, "pidfd_open for `%s`", argv[0]);
    }
  p->output_fd = steal_fd (&out_r);
  *out = p;
  return 0;
}

pid_t
ate_proc_pid (const struct ate_proc *p)
{
  return p->pid;
}

int
ate_proc_pidfd (const struct ate_proc *p)
{
  return p->pidfd;
}

const char *
ate_proc_name (const struct ate_proc *p)
{
  return p->name;
}

int
ate_proc_output_fd (const struct ate_proc *p)
{
  return p->output_fd;
}

int
ate_proc_take_output_fd (struct ate_proc *p)
{
  return steal_fd (&p->output_fd);
}

/* A process that is not our child has exited when it is gone or a zombie
 * (its parent has not reaped it yet). */
static bool
nochild_exited (pid_t pid)
{
  char path[64];
  cleanup_free char *buf = NULL;
  const char *p;

  if (kill (pid, 0) < 0 && errno == ESRCH)
    return true;
  snprintf (path, sizeof (path), "/proc/%d/stat", (int) pid);
  if (ate_read_file (path, 8192, &buf, NULL, NULL) < 0)
    return true;
  p = strrchr (buf, ')');
  return p && (p[1] == ' ') && (p[2] == 'Z' || p[2] == 'X');
}

static bool
has_pidfd (const struct ate_proc *p)
{
  return p->pidfd >= 0;
}

static int
status_from_siginfo (const siginfo_t *si)
{
  if (si->si_code == CLD_EXITED)
    return (si->si_status & 0xff) << 8;
  return si->si_status & 0x7f;
}

/* Collect the status once the pidfd is readable.  Caller holds no lock. */
static void
collect_locked (struct ate_proc *p)
{
  siginfo_t si;

  if (p->done)
    return;
  if (!p->is_child)
    {
      if (has_pidfd (p) || nochild_exited (p->pid))
        {
          p->done = true;
          p->status = -1;
        }
      return;
    }
  if (!has_pidfd (p))
    {
      int st;
      pid_t r = waitpid (p->pid, &st, WNOHANG);
      if (r == p->pid)
        {
          p->done = true;
          p->status = st;
        }
      else if (r < 0 && errno == ECHILD)
        {
          p->done = true;
          p->status = -1;
        }
      return;
    }
  memset (&si, 0, sizeof (si));
  if (waitid (P_PIDFD, (id_t) p->pidfd, &si, WEXITED | WNOHANG) == 0)
    {
      if (si.si_pid == 0)
        return; /* not yet */
      p->done = true;
      p->status = status_from_siginfo (&si);
    }
  else if (errno == ECHILD)
    {
      /* Should not happen (the reaper skips registered children); do not
       * loop forever. */
      p->done = true;
      p->status = -1;
    }
}

bool
ate_proc_exited (struct ate_proc *p)
{
  struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };

  if (p->done)
    return true;
  if (has_pidfd (p) && poll (&pfd, 1, 0) <= 0)
    return false;
  pthread_mutex_lock (&reg_lock);
  collect_locked (p);
  pthread_mutex_unlock (&reg_lock);
  return p->done;
}

int
ate_proc_wait (struct ate_proc *p, ate_deadline_t deadline, int *status,
               struct ate_error **err)
{
  while (!p->done)
    {
      struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
      int timeout = ate_deadline_poll_ms (deadline);
      int r;

      if (!has_pidfd (p))
        {
          pthread_mutex_lock (&reg_lock);
          collect_locked (p);
          pthread_mutex_unlock (&reg_lock);
          if (p->done)
            break;
          if (timeout == 0)
            return ate_error_make (err, ETIMEDOUT, "waiting for %s (pid %d)", p->name,
                                   (int) p->pid);
          poll (NULL, 0, timeout < 0 || timeout > PID_POLL_MS ? PID_POLL_MS : timeout);
          continue;
        }
      r = poll (&pfd, 1, timeout);
      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          return ate_error_make (err, errno, "poll pidfd of %s", p->name);
        }
      if (r == 0)
        return ate_error_make (err, ETIMEDOUT, "waiting for %s (pid %d)", p->name,
                               (int) p->pid);
      pthread_mutex_lock (&reg_lock);
      collect_locked (p);
      pthread_mutex_unlock (&reg_lock);
    }
  if (status)
    *status = p->status;
  return 0;
}

int
ate_proc_signal (struct ate_proc *p, int sig)
{
  if (p->done)
    return 0;
  if (!has_pidfd (p))
    return kill (p->pid, sig);
  if (pidfd_send_signal (p->pidfd, sig, NULL, 0) < 0)
    {
      if (errno != ENOSYS)
        return -1;
      return kill (p->pid, sig);
    }
  return 0;
}

void
ate_proc_kill_and_wait (struct ate_proc *p)
{
  if (p == NULL || p->done)
    return;
  ate_proc_signal (p, SIGKILL);
  ate_proc_wait (p, ATE_DEADLINE_NONE, NULL, NULL);
}

static void
proc_release (struct ate_proc *p)
{
  pthread_mutex_lock (&reg_lock);
  reg_remove_locked (p);
  pthread_mutex_unlock (&reg_lock);
  close_and_reset (&p->pidfd);
  close_and_reset (&p->output_fd);
  free (p->name);
  free (p);
}

void
ate_proc_free (struct ate_proc *p)
{
  if (p == NULL)
    return;
  if (p->pidfd >= 0 || p->pidfd == PIDFD_NONE)
    ate_proc_kill_and_wait (p);
  proc_release (p);
}

void
ate_proc_detach (struct ate_proc *p)
{
  if (p)
    proc_release (p);
}

int
ate_proc_starttime (pid_t pid, unsigned long long *starttime, struct ate_error **err)
{
  char path[64];
  cleanup_free char *buf = NULL;
  char *p;

  snprintf (path, sizeof (path), "/proc/%d/stat", (int) pid);
  if (ate_read_file (path, 8192, &buf, NULL, err) < 0)
    return -1;
  /* comm may contain spaces and ')': parse from the last ')'. */
  p = strrchr (buf, ')');
  if (p == NULL)
    return ate_error_make (err, EINVAL, "parse `%s`", path);
  p++;
  /* fields 3.. follow; starttime is field 22 -> the 20th after ')'. */
  for (int field = 3; field < 22; field++)
    {
      p = strchr (p + 1, ' ');
      if (p == NULL)
        return ate_error_make (err, EINVAL, "parse `%s`", path);
    }
  *starttime = strtoull (p + 1, NULL, 10);
  return 0;
}

int
ate_proc_open_existing (pid_t pid, unsigned long long starttime, const char *name,
                        struct ate_proc **out, struct ate_error **err)
{
  unsigned long long st = 0;
  int fd;

  fd = pidfd_open (pid, 0);
  if (fd < 0 && errno == ENOSYS)
    fd = PIDFD_NONE;
  else if (fd < 0)
    return ate_error_make (err, errno, "pidfd_open %s pid %d", name, (int) pid);
  /* Check the start time after opening the pidfd: if it matches now, the
   * pidfd refers to the same process. */
  if (ate_proc_starttime (pid, &st, err) < 0 || st != starttime)
    {
      if (fd >= 0)
        close (fd);
      ate_error_release (err);
      return ate_error_make (err, ESRCH, "%s pid %d is gone (pid reused)", name, (int) pid);
    }
  struct ate_proc *p = xmalloc0 (sizeof (*p));
  p->pid = pid;
  p->pidfd = fd;
  p->output_fd = -1;
  p->is_child = false;
  p->name = xstrdup (name);
  pthread_mutex_lock (&reg_lock);
  reg_add_locked (p);
  pthread_mutex_unlock (&reg_lock);
  *out = p;
  return 0;
}

const char *
ate_proc_status_string (int status)
{
  static __thread char buf[96];
  if (status == -1)
    snprintf (buf, sizeof (buf), "exit status unknown");
  else if (WIFEXITED (status))
    snprintf (buf, sizeof (buf), "exit status %d", WEXITSTATUS (status));
  else if (WIFSIGNALED (status))
    snprintf (buf, sizeof (buf), "killed by signal %d (%s)", WTERMSIG (status),
              strsignal (WTERMSIG (status)));
  else
    snprintf (buf, sizeof (buf), "wait status 0x%x", status);
  return buf;
}

#define RUN_OUTPUT_MAX (64 * 1024)

int
ate_proc_run (char *const argv[], const struct ate_spawn_opts *opts,
              ate_deadline_t deadline, char **output, struct ate_error **err)
{
  struct ate_spawn_opts o;
  struct ate_proc *p = NULL;
  cleanup_free char *buf = xmalloc (RUN_OUTPUT_MAX + 1);
  size_t used = 0;
  bool truncated = false;
  int status = 0;
  int fd;

  if (opts)
    o = *opts;
  else
    ate_spawn_opts_init (&o);
  o.stdout_fd = ATE_SPAWN_PIPE;
  o.stderr_fd = ATE_SPAWN_STDOUT;

  if (ate_proc_spawn (argv, &o, &p, err) < 0)
    return -1;
  fd = ate_proc_output_fd (p);
  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      int r = poll (&pfd, 1, ate_deadline_poll_ms (deadline));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        {
          int e = r == 0 ? ETIMEDOUT : errno;
          ate_proc_free (p);
          return ate_error_make (err, e, "running `%s`", argv[0]);
        }
      char chunk[8192];
      ssize_t n = read (fd, chunk, sizeof (chunk));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      /* Keep the tail: the end of an error message matters most. */
      if (used + (size_t) n > RUN_OUTPUT_MAX)
        {
          size_t drop = used + (size_t) n - RUN_OUTPUT_MAX;
          if (drop > used)
            drop = used;
          memmove (buf, buf + drop, used - drop);
          used -= drop;
          truncated = true;
        }
      size_t take = (size_t) n > RUN_OUTPUT_MAX ? RUN_OUTPUT_MAX : (size_t) n;
      memcpy (buf + used, chunk + (n - (ssize_t) take), take);
      used += take;
    }
  buf[used] = '\0';
  if (ate_proc_wait (p, deadline, &status, err) < 0)
    {
      ate_proc_free (p);
      return ate_error_wrap (err, "running `%s`", argv[0]);
    }
  ate_proc_free (p);

  /* Trim trailing whitespace for messages. */
  while (used > 0 && (buf[used - 1] == '\n' || buf[used - 1] == ' ' || buf[used - 1] == '\r'))
    buf[--used] = '\0';

  if (status != 0)
    return ate_error_make (err, 0, "`%s` failed (%s)%s%s%s", argv[0],
                           ate_proc_status_string (status), used ? ": " : "",
                           truncated ? "..." : "", buf);
  if (output)
    *output = steal_pointer (&buf);
  return 0;
}

/* ---- orphan reaper (PID 1 only) ---- */

static sigset_t sigchld_set;

void
ate_proc_block_sigchld (void)
{
  sigemptyset (&sigchld_set);
  sigaddset (&sigchld_set, SIGCHLD);
  pthread_sigmask (SIG_BLOCK, &sigchld_set, NULL);
}

static bool
registered_locked (pid_t pid)
{
  for (struct ate_proc *p = reg_head; p; p = p->next)
    if (p->pid == pid && p->is_child)
      return true;
  return false;
}

static void
reap_orphans (void)
{
  /* Walk every zombie without consuming it (WNOWAIT); reap those that are
   * not ours.  waitid(P_ALL) reports the same zombie repeatedly, so look at
   * /proc for the list of zombie children instead. */
  cleanup_dir DIR *d = opendir ("/proc");
  struct dirent *de;
  pid_t self = getpid ();

  if (d == NULL)
    return;
  while ((de = readdir (d)) != NULL)
    {
      char path[64];
      cleanup_free char *stat = NULL;
      pid_t pid = (pid_t) atoi (de->d_name);
      char *p;
      char state;
      int ppid;

      if (pid <= 0)
        continue;
      snprintf (path, sizeof (path), "/proc/%d/stat", (int) pid);
      if (ate_read_file (path, 8192, &stat, NULL, NULL) < 0)
        continue;
      p = strrchr (stat, ')');
      if (p == NULL || sscanf (p + 1, " %c %d", &state, &ppid) != 2)
        continue;
      if (ppid != self || state != 'Z')
        continue;
      pthread_mutex_lock (&reg_lock);
      if (!registered_locked (pid))
        {
          int st;
          if (waitpid (pid, &st, WNOHANG) == pid)
            ate_log (ATE_LOG_DEBUG, "reaped orphan", "pid", de->d_name, NULL);
        }
      pthread_mutex_unlock (&reg_lock);
    }
}

static void *
reaper_thread (void *arg)
{
  int sfd = (int) (intptr_t) arg;
  for (;;)
    {
      struct signalfd_siginfo si;
      ssize_t r = read (sfd, &si, sizeof (si));
      if (r < 0 && errno != EINTR)
        break;
      reap_orphans ();
    }
  close (sfd);
  return NULL;
}

int
ate_proc_reaper_start (struct ate_error **err)
{
  pthread_t t;
  int sfd = signalfd (-1, &sigchld_set, SFD_CLOEXEC);
  if (sfd < 0)
    return ate_error_make (err, errno, "signalfd for SIGCHLD");
  if (pthread_create (&t, NULL, reaper_thread, (void *) (intptr_t) sfd) != 0)
    {
      close (sfd);
      return ate_error_make (err, EAGAIN, "start reaper thread");
    }
  pthread_detach (t);
  return 0;
}
