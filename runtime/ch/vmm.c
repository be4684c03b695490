/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "util/killpoint.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

#define TAIL_MAX 2048
#define READ_CHUNK 4096

struct ch_vmm
{
  struct ate_proc *proc;
  pid_t pid; /* kept apart from proc: the reader may outlive proc */
  char *socket;
  struct ch_version version;
  unsigned long long starttime;

  /* Output capture. */
  int out_fd;
  int stop_pipe[2];
  pthread_t reader;
  bool has_reader;
  pthread_mutex_t lock;
  char tail[TAIL_MAX + 1]; /* last bytes printed, for launch errors */
  size_t tail_len;
};

static void
tail_append (struct ch_vmm *v, const char *buf, size_t n)
{
  pthread_mutex_lock (&v->lock);
  if (n >= TAIL_MAX)
    {
      memcpy (v->tail, buf + n - TAIL_MAX, TAIL_MAX);
      v->tail_len = TAIL_MAX;
    }
  else
    {
      if (v->tail_len + n > TAIL_MAX)
        {
          size_t drop = v->tail_len + n - TAIL_MAX;
          memmove (v->tail, v->tail + drop, v->tail_len - drop);
          v->tail_len -= drop;
        }
      memcpy (v->tail + v->tail_len, buf, n);
      v->tail_len += n;
    }
  v->tail[v->tail_len] = '\0';
  pthread_mutex_unlock (&v->lock);
}

static void
log_output (struct ch_vmm *v, const char *buf, size_t n)
{
  cleanup_free char *s = xmalloc (n + 1);
  char pid[24];

  memcpy (s, buf, n); /* buf is not NUL-terminated */
  s[n] = '\0';
  tail_append (v, buf, n);
  snprintf (pid, sizeof (pid), "%d", (int) v->pid);
  ate_log (ATE_LOG_INFO, "cloud-hypervisor", "out", s, "pid", pid, NULL);
}

/* One INFO record per read, line-agnostic like the reference.  After the
 * stop signal the pipe is drained without blocking: a grandchild that
 * inherited the pipe must not keep us waiting for EOF. */
static void *
reader_main (void *arg)
{
  struct ch_vmm *v = arg;
  char buf[READ_CHUNK];
  bool stopping = false;

  for (;;)
    {
      struct pollfd p[2] = { { .fd = v->out_fd, .events = POLLIN },
                             { .fd = v->stop_pipe[0], .events = POLLIN } };
      ssize_t n;
      if (!stopping && poll (p, 2, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          break;
        }
      if (p[1].revents)
        stopping = true;
      n = read (v->out_fd, buf, sizeof (buf));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break; /* EOF, or EAGAIN while draining */
      log_output (v, buf, (size_t) n);
    }
  return NULL;
}

static struct ch_vmm *
vmm_alloc (const char *api_socket)
{
  struct ch_vmm *v = xmalloc0 (sizeof (*v));
  v->socket = xstrdup (api_socket);
  v->out_fd = -1;
  v->stop_pipe[0] = v->stop_pipe[1] = -1;
  pthread_mutex_init (&v->lock, NULL);
  return v;
}

static int
start_reader (struct ch_vmm *v, struct ate_error **err)
{
  int r;

  v->out_fd = ate_proc_take_output_fd (v->proc);
  if (v->out_fd < 0)
    return 0;
  if (fcntl (v->out_fd, F_SETFL, O_NONBLOCK) < 0 || pipe2 (v->stop_pipe, O_CLOEXEC) < 0)
    return ate_error_make (err, errno, "set up the output reader");
  r = pthread_create (&v->reader, NULL, reader_main, v);
  if (r != 0)
    return ate_error_make (err, r, "start the output reader");
  v->has_reader = true;
  return 0;
}

static void
stop_reader (struct ch_vmm *v)
{
  if (v->has_reader)
    {
      if (write (v->stop_pipe[1], "x", 1) < 0)
        ate_logf (ATE_LOG_WARN, "cloud-hypervisor output reader: stop: %s", strerror (errno));
      pthread_join (v->reader, NULL);
      v->has_reader = false;
    }
  close_and_reset (&v->stop_pipe[0]);
  close_and_reset (&v->stop_pipe[1]);
  close_and_reset (&v->out_fd);
}

static int
wait_ready (struct ch_vmm *v, ate_deadline_t deadline, struct ate_error **err)
{
  int64_t start = ate_now_ns ();

  for (;;)
    {
      struct ate_error *perr = NULL;
      ate_deadline_t one = ate_deadline_min (deadline, ate_deadline_in_ms (1000));

      if (ch_ping (v->socket, &v->version, one, &perr) == 0)
        return 0;
      if (ate_proc_exited (v->proc))
        {
          int status = 0;
          ate_error_release (&perr);
          ate_proc_wait (v->proc, ATE_DEADLINE_NONE, &status, NULL);
          /* Give the reader a moment to log the last words. */
          ate_sleep_ms_until (20, deadline);
          pthread_mutex_lock (&v->lock);
          ate_error_make (err, ECHILD, "cloud-hypervisor exited before its api socket `%s` was "
                          "ready (%s)%s%s", v->socket, ate_proc_status_string (status),
                          v->tail_len ? ": " : "", v->tail);
          pthread_mutex_unlock (&v->lock);
          return -1;
        }
      /* A VMM usually answers within milliseconds: poll every 1 ms for the
       * first 50 ms (the restore path waits on this), then every 10 ms as
       * the reference does. */
      if (!ate_sleep_ms_until (ate_now_ns () - start < 50 * ATE_NSEC_PER_MSEC ? 1 : 10, deadline))
        {
          int ret = ate_error_make (err, ETIMEDOUT,
                                    "cloud-hypervisor api socket `%s` not ready after %.0f ms "
                                    "(last error: %s)",
                                    v->socket, ate_elapsed_ms (start), perr ? perr->msg : "none");
          ate_error_release (&perr);
          return ret;
        }
      ate_error_release (&perr);
    }
}

int
ch_vmm_launch (const char *binary, const char *api_socket, ate_deadline_t ready_deadline,
               struct ch_vmm **out, struct ate_error **err)
{
  struct ch_vmm *v;
  struct ate_spawn_opts opts;
  cleanup_free char *sockarg = NULL;
  char *argv[4];

  if (ate_unlink_if_exists (api_socket, err) < 0)
    return ate_error_wrap (err, "remove stale api socket");
  sockarg = xasprintf ("path=%s", api_socket);
  argv[0] = (char *) binary;
  argv[1] = (char *) "--api-socket";
  argv[2] = sockarg;
  argv[3] = NULL;
  ate_spawn_opts_init (&opts);
  opts.stdin_fd = ATE_SPAWN_NULL;
  opts.stdout_fd = ATE_SPAWN_PIPE;
  opts.stderr_fd = ATE_SPAWN_STDOUT;
  /* Its own session: a signal to our process group (Ctrl-C in a
   * terminal) must not take the VMs down with the server. */
  opts.new_session = true;

  v = vmm_alloc (api_socket);
  if (ate_proc_spawn (argv, &opts, &v->proc, err) < 0)
    {
      ch_vmm_free (v);
      return ate_error_wrap (err, "launch cloud-hypervisor");
    }
  v->pid = ate_proc_pid (v->proc);
  if (ate_proc_starttime (v->pid, &v->starttime, err) < 0
      || start_reader (v, err) < 0 || wait_ready (v, ready_deadline, err) < 0)
    {
      ch_vmm_free (v); /* kills and reaps */
      return ate_error_wrap (err, "launch cloud-hypervisor `%s`", binary);
    }
  ate_log (ATE_LOG_INFO, "cloud-hypervisor ready", "socket", api_socket, "version",
           v->version.raw, NULL);
  *out = v;
  return 0;
}

int
ch_vmm_attach (pid_t pid, unsigned long long starttime, const char *api_socket,
               struct ch_vmm **out, struct ate_error **err)
{
  struct ch_vmm *v = vmm_alloc (api_socket);

  v->starttime = starttime;
  v->pid = pid;
  if (ate_proc_open_existing (pid, starttime, "cloud-hypervisor", &v->proc, err) < 0
      || ch_ping (api_socket, &v->version, ate_deadline_in_ms (10000), err) < 0)
    {
      /* Not ours to kill when it is unreachable: detach only. */
      if (v->proc)
        ate_proc_detach (v->proc);
      v->proc = NULL;
      ch_vmm_free (v);
      return ate_error_wrap (err, "attach to cloud-hypervisor pid %d", (int) pid);
    }
  *out = v;
  return 0;
}

pid_t
ch_vmm_pid (const struct ch_vmm *vmm)
{
  return vmm->pid;
}

unsigned long long
ch_vmm_starttime (const struct ch_vmm *vmm)
{
  return vmm->starttime;
}

const char *
ch_vmm_socket (const struct ch_vmm *vmm)
{
  return vmm->socket;
}

const struct ch_version *
ch_vmm_version (const struct ch_vmm *vmm)
{
  return &vmm->version;
}

int
ch_vmm_exited (struct ch_vmm *vmm)
{
  return vmm->proc == NULL || ate_proc_exited (vmm->proc);
}

int
ch_vmm_stop (struct ch_vmm *vmm, ate_deadline_t deadline, struct ate_error **err)
{
  struct ate_error *e = NULL;
  int status = 0, ret = 0;

  if (vmm->proc == NULL || ate_proc_exited (vmm->proc))
    goto out;
  if (ch_vm_shutdown (vmm->socket, deadline, &e) < 0)
    ate_error_release (&e); /* there may be no VM: not an error */
  /* The crash-recovery test's kill between vm.shutdown and the VMM's exit
   * (a shut-down VMM found at start-up). */
  ate_killpoint ("vmm", "vm_shutdown");
  if (ch_vmm_shutdown (vmm->socket, deadline, &e) < 0)
    ret = -1;
  else if (ate_proc_wait (vmm->proc, deadline, &status, &e) < 0)
    ret = -1;
  if (ret < 0)
    {
      ate_proc_kill_and_wait (vmm->proc);
      ate_error_collect (err, &e, "cloud-hypervisor pid %d did not stop; killed",
                         (int) ate_proc_pid (vmm->proc));
    }
out:
  if (vmm->proc)
    ate_proc_kill_and_wait (vmm->proc); /* no-op after a clean exit; reaps */
  stop_reader (vmm);
  return ret;
}

void
ch_vmm_free (struct ch_vmm *vmm)
{
  if (vmm == NULL)
    return;
  ate_proc_free (vmm->proc); /* kills and reaps when still running */
  vmm->proc = NULL;
  stop_reader (vmm);
  pthread_mutex_destroy (&vmm->lock);
  free (vmm->socket);
  free (vmm);
}
