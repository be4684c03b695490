/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Containers run for real: the process of the converted OCI spec (args,
 * env, cwd) is executed in the guest's network namespace, in its own
 * process group, with stdout and stderr on pipes that ReadStdout and
 * ReadStderr read.  The rootfs is not entered (there is no guest kernel to
 * mount the disk): binaries come from the host, and a cwd that does not
 * exist on the host falls back to "/".  uid/gid, capabilities, rlimits and
 * cgroups are recorded but not applied.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/proc.h"
#include "util/util.h"

/* A spawn request for the spawner thread. */
struct spawn_job
{
  char *const *argv;
  const struct ate_spawn_opts *opts;
  struct ate_proc *proc;
  char *err;
  bool done;
  struct spawn_job *next;
};

static void *
spawner_main (void *arg)
{
  struct sim_agent *a = arg;

  pthread_mutex_lock (&a->spawn_lock);
  for (;;)
    {
      struct spawn_job *j;
      while (a->spawn_queue == NULL && !a->spawner_stop)
        pthread_cond_wait (&a->spawn_cond, &a->spawn_lock);
      if (a->spawn_queue == NULL)
        break;
      j = a->spawn_queue;
      a->spawn_queue = j->next;
      pthread_mutex_unlock (&a->spawn_lock);
      {
        struct ate_error *err = NULL;
        if (ate_proc_spawn (j->argv, j->opts, &j->proc, &err) < 0)
          {
            j->err = xstrdup (err->msg);
            ate_error_free (err);
          }
      }
      pthread_mutex_lock (&a->spawn_lock);
      j->done = true;
      pthread_cond_broadcast (&a->spawn_cond);
    }
  pthread_mutex_unlock (&a->spawn_lock);
  return NULL;
}

void
sim_spawner_start (struct sim_agent *a)
{
  pthread_mutex_init (&a->spawn_lock, NULL);
  pthread_cond_init (&a->spawn_cond, NULL);
  if (pthread_create (&a->spawner, NULL, spawner_main, a) != 0)
    ate_oom ();
}

void
sim_spawner_stop (struct sim_agent *a)
{
  pthread_mutex_lock (&a->spawn_lock);
  a->spawner_stop = true;
  pthread_cond_broadcast (&a->spawn_cond);
  pthread_mutex_unlock (&a->spawn_lock);
  pthread_join (a->spawner, NULL);
  pthread_cond_destroy (&a->spawn_cond);
  pthread_mutex_destroy (&a->spawn_lock);
}

static int
spawn_via_spawner (struct sim_agent *a, char *const *argv, const struct ate_spawn_opts *opts,
                   struct ate_proc **out, char **errmsg)
{
  struct spawn_job j = { .argv = argv, .opts = opts };

  pthread_mutex_lock (&a->spawn_lock);
  j.next = a->spawn_queue;
  a->spawn_queue = &j;
  pthread_cond_broadcast (&a->spawn_cond);
  while (!j.done)
    pthread_cond_wait (&a->spawn_cond, &a->spawn_lock);
  pthread_mutex_unlock (&a->spawn_lock);
  if (j.err)
    {
      *errmsg = j.err;
      return -1;
    }
  *out = j.proc;
  return 0;
}

struct sim_ctr *
sim_ctr_find (struct sim_agent *a, const char *id)
{
  for (struct sim_ctr *c = a->ctrs; c; c = c->next)
    if (strcmp (c->id, id) == 0)
      return c;
  return NULL;
}

void
sim_ctr_ref (struct sim_ctr *c)
{
  c->refs++;
}

void
sim_ctr_unref (struct sim_ctr *c)
{
  if (--c->refs > 0)
    return;
  ate_proc_free (c->proc);
  for (int *fd = &c->out_r; fd <= &c->err_w; fd++)
    close_and_reset (fd);
  close_and_reset (&c->counter_stop);
  pthread_mutex_destroy (&c->read_lock[0]);
  pthread_mutex_destroy (&c->read_lock[1]);
  free (c->id);
  free (c->exec_id);
  free (c);
}

static struct sim_ctr *
ctr_new (struct sim_agent *a, const Atesim__Container *rec)
{
  struct sim_ctr *c = xmalloc0 (sizeof (*c));

  c->id = xstrdup (rec->id);
  c->exec_id = xstrdup (rec->exec_id);
  c->out_r = c->err_r = c->out_w = c->err_w = c->counter_stop = -1;
  pthread_mutex_init (&c->read_lock[0], NULL);
  pthread_mutex_init (&c->read_lock[1], NULL);
  c->refs = 1;
  c->next = a->ctrs;
  a->ctrs = c;
  return c;
}

/* The value of NAME= in env, or NULL. */
static const char *
env_get (char *const *env, size_t n, const char *name)
{
  size_t l = strlen (name);
  for (size_t i = 0; i < n; i++)
    if (strncmp (env[i], name, l) == 0 && env[i][l] == '=')
      return env[i] + l + 1;
  return NULL;
}

/* argv[0] without a slash, looked up in the container's PATH (as the
 * agent does in the container), else left to the host's PATH. */
static char *
resolve_arg0 (const Grpc__Process *p)
{
  const char *path = env_get (p->env, p->n_env, "PATH");

  if (strchr (p->args[0], '/') || path == NULL)
    return xstrdup (p->args[0]);
  for (const char *s = path; *s;)
    {
      const char *e = strchrnul (s, ':');
      char *cand = xasprintf ("%.*s/%s", (int) (e - s), s, p->args[0]);
      if (e > s && access (cand, X_OK) == 0 && !ate_is_dir (cand))
        return cand;
      free (cand);
      s = *e ? e + 1 : e;
    }
  return xstrdup (p->args[0]);
}

static int
start_process (struct sim_agent *a, struct sim_ctr *c, const Grpc__Process *p, char **errmsg)
{
  int out[2] = { -1, -1 }, err[2] = { -1, -1 };
  struct ate_spawn_opts o;
  char **argv, **env;
  int r;

  if (pipe2 (out, O_CLOEXEC) < 0 || pipe2 (err, O_CLOEXEC) < 0)
    {
      *errmsg = xasprintf ("pipe: %s", strerror (errno));
      for (int i = 0; i < 2; i++)
        {
          close_and_reset (&out[i]);
          close_and_reset (&err[i]);
        }
      return -1;
    }
  argv = xcalloc (p->n_args + 1, sizeof (char *));
  argv[0] = resolve_arg0 (p);
  for (size_t i = 1; i < p->n_args; i++)
    argv[i] = xstrdup (p->args[i]);
  env = xcalloc (p->n_env + 1, sizeof (char *));
  for (size_t i = 0; i < p->n_env; i++)
    env[i] = xstrdup (p->env[i]);
  ate_spawn_opts_init (&o);
  o.stdout_fd = out[1];
  o.stderr_fd = err[1];
  o.env = env;
  o.cwd = p->cwd[0] && ate_is_dir (p->cwd) ? p->cwd : "/";
  o.netns_fd = a->ops.netns_fd;
  o.new_session = true;
  o.pdeathsig = SIGKILL; /* the guest's processes go with the VMM */
  r = spawn_via_spawner (a, argv, &o, &c->proc, errmsg);
  strv_free (argv);
  strv_free (env);
  close (out[1]);
  close (err[1]);
  if (r < 0)
    {
      close (out[0]);
      close (err[0]);
      return -1;
    }
  c->out_r = out[0];
  c->err_r = err[0];
  return 0;
}

int
sim_ctr_start (struct sim_agent *a, const Atesim__Container *rec, char **errmsg)
{
  struct sim_ctr *c = sim_ctr_find (a, rec->id);
  int r;

  if (c == NULL)
    c = ctr_new (a, rec);
  if (c->started)
    return 0;
  if (sim_is_counter_app (rec->spec))
    {
      c->counter_app = true;
      r = sim_counter_start (a, c, errmsg);
    }
  else
    r = start_process (a, c, rec->spec->process, errmsg);
  if (r < 0)
    return -1;
  c->started = true;
  if (a->paused)
    sim_ctrs_signal_all (a, SIGSTOP);
  pthread_cond_broadcast (&a->cond);
  return 0;
}

bool
sim_ctr_reap_locked (struct sim_ctr *c)
{
  struct ate_error *err = NULL;
  int status;

  if (c->exited)
    return true;
  if (c->proc == NULL)
    return false;
  if (ate_proc_wait (c->proc, ate_now_ns (), &status, &err) < 0)
    {
      ate_error_free (err);
      return false;
    }
  c->exited = true;
  /* As the kata agent reports it: the exit code, or 128 + the signal. */
  c->exit_status = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
  return true;
}

static void
ctr_stop (struct sim_ctr *c, struct sim_joins *joins)
{
  if (c->counter_app && c->counter_running)
    {
      c->stop_requested = true;
      c->exited = true;
      c->exit_status = 128 + SIGKILL;
      (void) !eventfd_write (c->counter_stop, 1);
      joins->t = xrealloc (joins->t, (joins->n + 1) * sizeof (pthread_t));
      joins->t[joins->n++] = c->counter_thread;
      c->counter_running = false;
    }
  if (c->proc && !c->exited)
    {
      /* The whole process group: what the container started goes too. */
      kill (-ate_proc_pid (c->proc), SIGKILL);
      ate_proc_kill_and_wait (c->proc);
      sim_ctr_reap_locked (c);
    }
  close_and_reset (&c->err_w);
}

void
sim_ctrs_destroy_all (struct sim_agent *a, struct sim_joins *joins)
{
  while (a->ctrs)
    {
      struct sim_ctr *c = a->ctrs;
      a->ctrs = c->next;
      ctr_stop (c, joins);
      sim_ctr_unref (c);
    }
  pthread_cond_broadcast (&a->cond);
}

void
sim_joins_run (struct sim_joins *joins)
{
  for (size_t i = 0; i < joins->n; i++)
    pthread_join (joins->t[i], NULL);
  free (joins->t);
  joins->t = NULL;
  joins->n = 0;
}

void
sim_ctrs_signal_all (struct sim_agent *a, int sig)
{
  for (struct sim_ctr *c = a->ctrs; c; c = c->next)
    if (c->proc && !c->exited)
      kill (-ate_proc_pid (c->proc), sig);
}
