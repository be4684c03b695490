/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Child processes: exec with an argv array (never a shell), a pidfd per
 * child, deadline-aware waits by pid, kill-and-wait on every error path.
 *
 * There is no global reaper that could steal an exit status: when the server
 * runs as PID 1 of its container, ate_proc_reaper_start() reaps *orphans*
 * only; the status of a child spawned here is kept for its owner.
 */
#ifndef ATE_PROC_H
#define ATE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "time.h"

struct ate_error;
struct ate_proc;

/* Special values for ate_spawn_opts.std*_fd. */
#define ATE_SPAWN_NULL (-1)    /* /dev/null */
#define ATE_SPAWN_PIPE (-2)    /* a pipe the parent reads (ate_proc_output_fd) */
#define ATE_SPAWN_INHERIT (-3) /* the parent's own fd */
#define ATE_SPAWN_STDOUT (-4)  /* stderr only: same as stdout (2>&1) */

struct ate_spawn_opts
{
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  char *const *env;       /* NULL: inherit the environment */
  const char *cwd;        /* NULL: inherit */
  int netns_fd;           /* >= 0: setns(CLONE_NEWNET) before exec */
  const int *keep_fds;    /* dup'ed to 3, 4, ... in the child */
  size_t n_keep_fds;
  bool new_session;       /* setsid() */
  int pdeathsig;          /* 0: none (the child may outlive us) */
};

void ate_spawn_opts_init (struct ate_spawn_opts *opts);

/* Spawn argv[0] (looked up in PATH when it has no '/').  A failing exec is
 * reported as an error here (e.g. "exec `cloud-hypervisor`: No such file or
 * directory"), not as a child that exits 127. */
int ate_proc_spawn (char *const argv[], const struct ate_spawn_opts *opts,
                    struct ate_proc **out, struct ate_error **err);

pid_t ate_proc_pid (const struct ate_proc *p);
int ate_proc_pidfd (const struct ate_proc *p);
const char *ate_proc_name (const struct ate_proc *p);

/* Read end of the ATE_SPAWN_PIPE pipe (stdout and/or stderr), -1 if none.
 * Owned by the proc; use ate_proc_take_output_fd() to take ownership. */
int ate_proc_output_fd (const struct ate_proc *p);
int ate_proc_take_output_fd (struct ate_proc *p);

/* Wait for exit until the deadline.  On timeout returns < 0 with errno
 * ETIMEDOUT in the error and the process still running.  *status is in
 * waitpid(2) form. */
int ate_proc_wait (struct ate_proc *p, ate_deadline_t deadline, int *status,
                   struct ate_error **err);

bool ate_proc_exited (struct ate_proc *p);

int ate_proc_signal (struct ate_proc *p, int sig);

/* SIGKILL and wait (no deadline: a SIGKILLed child always goes). */
void ate_proc_kill_and_wait (struct ate_proc *p);

/* Kills and waits if still running, then frees. NULL-safe. */
void ate_proc_free (struct ate_proc *p);

/* Stop tracking without killing (the process keeps running). */
void ate_proc_detach (struct ate_proc *p);

/* Re-attach to a process that is not our child (e.g. after a restart), by
 * pid and start time (field 22 of /proc/<pid>/stat) to rule out pid reuse.
 * Waiting on such a process only observes its exit. */
int ate_proc_open_existing (pid_t pid, unsigned long long starttime,
                            const char *name, struct ate_proc **out,
                            struct ate_error **err);

int ate_proc_starttime (pid_t pid, unsigned long long *starttime,
                        struct ate_error **err);

/* Run to completion, collecting combined stdout+stderr (the last 64 KiB).
 * A non-zero exit is an error that includes the output.  On deadline the
 * child is killed and the error has errno ETIMEDOUT.  *output may be NULL. */
int ate_proc_run (char *const argv[], const struct ate_spawn_opts *opts,
                  ate_deadline_t deadline, char **output, struct ate_error **err);

/* "exit status 1", "killed by signal 9 (Killed)".  Returns a static
 * thread-local buffer. */
const char *ate_proc_status_string (int status);

/* Must be called in main() before any thread is created when the reaper is
 * going to be used: blocks SIGCHLD so only the reaper thread receives it. */
void ate_proc_block_sigchld (void);

/* Start the orphan reaper (for PID 1). */
int ate_proc_reaper_start (struct ate_error **err);

/* Number of children currently tracked (for leak tests). */
size_t ate_proc_tracked_count (void);

#endif
