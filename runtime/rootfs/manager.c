/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Jobs: one thread per disk operation, at most one per disk path.
 *
 * A caller starts a job (or joins the running job for its disk) and waits on
 * the manager's condition variable until its own deadline.  The job runs to
 * completion under its own time limit (rootfs_config.build_timeout_ms)
 * whatever its callers do.  A job whose result nobody received (every
 * caller timed out) leaves an "unclaimed" record, so that the retry of a
 * timed-out rebuild or reset takes the finished disk instead of starting
 * over (which could time out again, forever).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/util.h"
#include "util/validate.h"

void
rootfs_config_init (struct rootfs_config *cfg)
{
  memset (cfg, 0, sizeof (*cfg));
  cfg->base_path = ATE_DEFAULT_BASE_PATH;
  cfg->cache_max_bytes = ROOTFS_DEFAULT_CACHE_MAX_BYTES;
  cfg->mkfs_path = "mkfs.ext4";
  cfg->debugfs_path = "debugfs";
  cfg->build_timeout_ms = ROOTFS_DEFAULT_BUILD_TIMEOUT_MS;
}

static char *
dir_or_default (const char *dir, const char *base, const char *sub)
{
  return dir && *dir ? xstrdup (dir) : ate_path_join (base, sub);
}

static int
manager_init_sync (struct rootfs_manager *m, struct ate_error **err)
{
  pthread_condattr_t ca;

  m->cancel_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m->cancel_fd < 0)
    return ate_error_make (err, errno, "eventfd");
  pthread_mutex_init (&m->lock, NULL);
  pthread_mutex_init (&m->version_lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&m->cond, &ca);
  pthread_condattr_destroy (&ca);
  return 0;
}

int
rootfs_manager_new (const struct rootfs_config *cfg, struct rootfs_manager **out,
                    struct ate_error **err)
{
  struct rootfs_config defaults;
  struct rootfs_manager *m;

  if (cfg == NULL)
    {
      rootfs_config_init (&defaults);
      cfg = &defaults;
    }
  m = xmalloc0 (sizeof (*m));
  m->cancel_fd = -1;
  m->base_path = xstrdup (cfg->base_path && *cfg->base_path ? cfg->base_path
                                                            : ATE_DEFAULT_BASE_PATH);
  m->cache_dir = dir_or_default (cfg->cache_dir, m->base_path, ROOTFS_CACHE_SUBDIR);
  m->golden_dir = dir_or_default (cfg->golden_dir, m->base_path, ROOTFS_GOLDEN_SUBDIR);
  m->mkfs_path = xstrdup (cfg->mkfs_path && *cfg->mkfs_path ? cfg->mkfs_path : "mkfs.ext4");
  m->debugfs_path = xstrdup (cfg->debugfs_path && *cfg->debugfs_path ? cfg->debugfs_path
                                                                     : "debugfs");
  m->cache_max_bytes = cfg->cache_max_bytes;
  m->build_timeout_ms = cfg->build_timeout_ms > 0 ? cfg->build_timeout_ms
                                                  : ROOTFS_DEFAULT_BUILD_TIMEOUT_MS;
  m->metadata_digest_only = cfg->metadata_digest_only;
  rootfs_boot_id (m->boot_id);
  if (manager_init_sync (m, err) < 0
      || (m->cache_max_bytes > 0
          && rootfs_cache_open (m->cache_dir, m->cache_max_bytes, &m->cache, err) < 0))
    {
      rootfs_manager_free (m);
      return ate_error_wrap (err, "start the rootfs manager");
    }
  m->bases = m->cache;
  *out = m;
  return 0;
}

static void
job_unref_locked (struct rootfs_job *j)
{
  if (--j->refs > 0)
    return;
  ate_error_free (j->err);
  rootfs_cache_discard (j->staged);
  close_and_reset (&j->base_pin);
  rootfs_staging_remove (&j->staging);
  free (j->trash);
  free (j->src);
  free (j->disk);
  free (j);
}

static void
unclaimed_free (struct rootfs_unclaimed *u)
{
  free (u->disk);
  free (u->src);
  free (u);
}

/* Remove and return the record for disk, if any. */
static struct rootfs_unclaimed *
unclaimed_take_locked (struct rootfs_manager *m, const char *disk)
{
  for (struct rootfs_unclaimed **pp = &m->unclaimed; *pp; pp = &(*pp)->next)
    if (strcmp ((*pp)->disk, disk) == 0)
      {
        struct rootfs_unclaimed *u = *pp;
        *pp = u->next;
        u->next = NULL;
        return u;
      }
  return NULL;
}

/* Join the threads of finished jobs (they never take the lock again after
 * setting `finished`, so this cannot deadlock). */
static void
reap_finished_locked (struct rootfs_manager *m)
{
  for (struct rootfs_job **pp = &m->jobs; *pp;)
    {
      struct rootfs_job *j = *pp;
      if (!j->finished)
        {
          pp = &j->next;
          continue;
        }
      pthread_join (j->thread, NULL);
      *pp = j->next;
      job_unref_locked (j);
    }
}

void
rootfs_manager_free (struct rootfs_manager *m)
{
  if (m == NULL)
    return;
  if (m->cancel_fd >= 0)
    {
      uint64_t one = 1;
      atomic_store (&m->closing, true);
      (void) !write (m->cancel_fd, &one, sizeof (one));
      pthread_mutex_lock (&m->lock);
      while (m->jobs)
        {
          struct rootfs_job *j = m->jobs;
          m->jobs = j->next;
          pthread_mutex_unlock (&m->lock);
          pthread_join (j->thread, NULL);
          pthread_mutex_lock (&m->lock);
          job_unref_locked (j);
        }
      while (m->unclaimed)
        {
          struct rootfs_unclaimed *u = m->unclaimed;
          m->unclaimed = u->next;
          unclaimed_free (u);
        }
      pthread_mutex_unlock (&m->lock);
      pthread_cond_destroy (&m->cond);
      pthread_mutex_destroy (&m->lock);
      pthread_mutex_destroy (&m->version_lock);
      close (m->cancel_fd);
    }
  if (m->bases != m->cache)
    rootfs_cache_free (m->bases);
  rootfs_cache_free (m->cache);
  free (m->mkfs_version);
  free (m->base_path);
  free (m->cache_dir);
  free (m->golden_dir);
  free (m->mkfs_path);
  free (m->debugfs_path);
  free (m);
}

static void
log_job_result (const struct rootfs_job *j)
{
  if (j->result == 0)
    return; /* build.c logs successes with their details */
  ate_log (ATE_LOG_ERROR, "rootfs: job failed", "disk", j->disk, "source", j->src, "error",
           j->err ? j->err->msg : "unknown", NULL);
}

/* Work that need not delay the callers: freeing the replaced disk, and
 * making a fresh image durable in the cache. */
static void
job_after_completion (struct rootfs_job *j)
{
  struct rootfs_manager *m = j->mgr;

  rootfs_staging_remove (&j->staging);
  if (j->trash && unlink (j->trash) < 0 && errno != ENOENT)
    ate_log (ATE_LOG_WARN, "rootfs: cannot remove the replaced disk", "path", j->trash,
             "error", strerror (errno), NULL);
  if (j->base_unsealed && j->result == 0 && !atomic_load (&m->closing))
    {
      struct ate_error *e = NULL;
      if (rootfs_cache_seal (m->bases, &j->base_fp, j->base_pin, &e) < 0)
        ate_error_log_warning_and_release (&e, "rootfs: base image");
    }
  if (j->staged == NULL)
    return;
  if (atomic_load (&m->closing) || j->result < 0)
    rootfs_cache_discard (steal_pointer (&j->staged));
  else
    {
      struct ate_error *e = NULL;
      if (rootfs_cache_commit (m->cache, steal_pointer (&j->staged), &e) < 0)
        ate_error_log_warning_and_release (&e, "rootfs: image cache");
    }
}

static void *
job_thread (void *arg)
{
  struct rootfs_job *j = arg;
  struct rootfs_manager *m = j->mgr;
  struct ate_error *err = NULL;
  struct rootfs_outcome outcome;
  int r;

  memset (&outcome, 0, sizeof (outcome));
  r = rootfs_job_execute (j, &outcome, &err);
  outcome.elapsed_ms = ate_elapsed_ms (j->started_ns);

  pthread_mutex_lock (&m->lock);
  j->result = r < 0 ? -1 : 0;
  j->err = err;
  j->outcome = outcome;
  j->done = true;
  log_job_result (j);
  if (j->waiters == 0 && j->result == 0 && j->kind != ROOTFS_JOB_BASE
      && !atomic_load (&m->closing))
    {
      /* Nobody is there to receive this disk: keep it for the retry. */
      struct rootfs_unclaimed *u = xmalloc0 (sizeof (*u));
      u->disk = xstrdup (j->disk);
      u->src = xstrdup (j->src);
      u->kind = j->kind;
      u->stamp = j->stamp;
      u->next = m->unclaimed;
      m->unclaimed = u;
      ate_log (ATE_LOG_INFO, "rootfs: job finished after its callers gave up; kept for the retry",
               "disk", j->disk, NULL);
    }
  pthread_cond_broadcast (&m->cond);
  pthread_mutex_unlock (&m->lock);

  job_after_completion (j);

  pthread_mutex_lock (&m->lock);
  /* Callers dup the base pin while they hold the lock after `done`; with
   * none left waiting, nobody needs the job's own pin any more (a job
   * everybody gave up on leaves its base unpinned: most recently used, it
   * stays for the retry until the cache needs the room). */
  if (j->waiters == 0)
    close_and_reset (&j->base_pin);
  rootfs_staging_remove (&j->staging);
  j->finished = true;
  pthread_cond_broadcast (&m->cond);
  /* The list still holds a reference; reap_finished_locked drops it after
   * joining this thread. */
  job_unref_locked (j);
  pthread_mutex_unlock (&m->lock);
  return NULL;
}

void
rootfs_manager_wait_idle (struct rootfs_manager *m)
{
  pthread_mutex_lock (&m->lock);
  for (;;)
    {
      bool busy = false;
      for (struct rootfs_job *j = m->jobs; j; j = j->next)
        busy |= !j->finished;
      if (!busy)
        break;
      pthread_cond_wait (&m->cond, &m->lock);
    }
  reap_finished_locked (m);
  pthread_mutex_unlock (&m->lock);
}

static struct rootfs_job *
find_running_locked (struct rootfs_manager *m, const char *disk)
{
  for (struct rootfs_job *j = m->jobs; j; j = j->next)
    if (!j->done && strcmp (j->disk, disk) == 0)
      return j;
  return NULL;
}

static int
start_job_locked (struct rootfs_manager *m, enum rootfs_job_kind kind, const char *src,
                  const char *disk, bool may_reuse, struct rootfs_job **out,
                  struct ate_error **err)
{
  struct rootfs_job *j = xmalloc0 (sizeof (*j));
  int r;

  j->mgr = m;
  j->base_pin = -1;
  j->staging.lock_fd = -1;
  j->kind = kind;
  j->src = xstrdup (src);
  j->disk = xstrdup (disk);
  j->may_reuse = may_reuse;
  j->started_ns = ate_now_ns ();
  j->deadline = ate_deadline_in_ms (m->build_timeout_ms);
  j->refs = 2; /* the list and the thread */
  r = pthread_create (&j->thread, NULL, job_thread, j);
  if (r != 0)
    {
      free (j->src);
      free (j->disk);
      free (j);
      return ate_error_make (err, r, "start a rootfs job thread");
    }
  j->next = m->jobs;
  m->jobs = j;
  *out = j;
  return 0;
}

static int
copy_job_error (const struct rootfs_job *j, struct ate_error **err)
{
  const struct ate_error *e = j->err;
  int r = ate_error_make_code (err, e ? e->code : ATE_CODE_UNSET, 0, "%s",
                               e ? e->msg : "rootfs job failed");
  if (e && *err)
    (*err)->status = e->status;
  return r;
}

static void
deadline_timespec (ate_deadline_t d, struct timespec *ts)
{
  ts->tv_sec = (time_t) (d / ATE_NSEC_PER_SEC);
  ts->tv_nsec = (long) (d % ATE_NSEC_PER_SEC);
}

/* Wait for j until the deadline.  1 when it finished, 0 on timeout. */
static int
wait_job_locked (struct rootfs_manager *m, struct rootfs_job *j, ate_deadline_t deadline)
{
  struct timespec ts;

  j->waiters++;
  deadline_timespec (deadline, &ts);
  while (!j->done && !ate_deadline_expired (deadline))
    {
      if (deadline == ATE_DEADLINE_NONE)
        pthread_cond_wait (&m->cond, &m->lock);
      else
        pthread_cond_timedwait (&m->cond, &m->lock, &ts);
    }
  j->waiters--;
  return j->done ? 1 : 0;
}

static int
deadline_error (const struct rootfs_job *j, struct ate_error **err)
{
  return ate_error_make_code (err, ATE_CODE_DEADLINE_EXCEEDED, 0,
                              "rootfs disk `%s` is still being prepared (%.0f s so far); the "
                              "job continues in the background and a retry joins it",
                              j->disk, ate_elapsed_ms (j->started_ns) / 1000.0);
}

/* A job already running for the disk can answer this request if it works
 * from the same source: a build is a build whichever call started it. */
static bool
job_compatible (const struct rootfs_job *j, enum rootfs_job_kind kind, const char *src)
{
  return strcmp (j->src, src) == 0
         && (j->kind == ROOTFS_JOB_RESET) == (kind == ROOTFS_JOB_RESET);
}

/* Can the unclaimed record u answer this request without a new job? */
static bool
claim_reset_locked (const struct rootfs_unclaimed *u, enum rootfs_job_kind kind,
                    const char *src)
{
  struct rootfs_disk_stamp now;
  cleanup_error struct ate_error *e = NULL;

  return u != NULL && kind == ROOTFS_JOB_RESET && u->kind == ROOTFS_JOB_RESET
         && strcmp (u->src, src) == 0 && rootfs_disk_stamp_read (u->disk, &now, &e) == 0
         && rootfs_disk_stamp_equal (&now, &u->stamp);
}

static int
finish_wait (struct rootfs_job *j, bool joined, struct rootfs_outcome *out,
             struct rootfs_base_result *base, struct ate_error **err)
{
  if (j->result < 0)
    return copy_job_error (j, err);
  if (base)
    {
      /* A dup shares the job's lock: the pin lasts while any is open. */
      base->pin_fd = fcntl (j->base_pin, F_DUPFD_CLOEXEC, 3);
      if (base->pin_fd < 0)
        return ate_error_make (err, errno, "pin the base image");
      base->fp = j->base_fp;
    }
  if (out)
    {
      *out = j->outcome;
      out->joined = joined;
    }
  return 0;
}

static int
submit_locked (struct rootfs_manager *m, enum rootfs_job_kind kind, const char *src,
               const char *disk, ate_deadline_t deadline, struct rootfs_outcome *out,
               struct rootfs_base_result *base, struct ate_error **err)
{
  for (;;)
    {
      struct rootfs_job *j;
      bool joined = false;
      int r;

      if (atomic_load (&m->closing))
        return ate_error_make_code (err, ATE_CODE_UNAVAILABLE, ECANCELED,
                                    "rootfs manager is shutting down");
      reap_finished_locked (m);
      j = find_running_locked (m, disk);
      if (j != NULL && !job_compatible (j, kind, src))
        {
          /* Another kind of work on this disk: let it finish, then ours. */
          j->refs++;
          r = wait_job_locked (m, j, deadline);
          if (r == 0)
            r = deadline_error (j, err);
          job_unref_locked (j);
          if (r < 0)
            return -1;
          continue;
        }
      if (j != NULL)
        joined = true;
      else
        {
          struct rootfs_unclaimed *u = unclaimed_take_locked (m, disk);
          bool reuse = kind == ROOTFS_JOB_RUN
                       || (u && u->kind != ROOTFS_JOB_RESET && kind != ROOTFS_JOB_RESET
                           && strcmp (u->src, src) == 0);
          if (claim_reset_locked (u, kind, src))
            {
              unclaimed_free (u);
              if (out)
                {
                  memset (out, 0, sizeof (*out));
                  out->origin = ROOTFS_ORIGIN_TEMPLATE;
                  out->joined = true;
                }
              return 0;
            }
          if (u)
            unclaimed_free (u);
          if (start_job_locked (m, kind, src, disk, reuse, &j, err) < 0)
            return -1;
        }
      j->refs++;
      r = wait_job_locked (m, j, deadline);
      r = r == 0 ? deadline_error (j, err) : finish_wait (j, joined, out, base, err);
      job_unref_locked (j);
      return r;
    }
}

int
rootfs_manager_submit (struct rootfs_manager *m, enum rootfs_job_kind kind, const char *src,
                       const char *disk, ate_deadline_t deadline, struct rootfs_outcome *out,
                       struct rootfs_base_result *base, struct ate_error **err)
{
  int r;

  if (ate_validate_abs_path ("disk path", disk, err) < 0
      || ate_validate_abs_path (kind == ROOTFS_JOB_RESET ? "template path" : "rootfs path",
                                src, err) < 0)
    return -1;
  if (str_has_suffix (disk, "/"))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "disk path `%s` names a directory", disk);
  pthread_mutex_lock (&m->lock);
  r = submit_locked (m, kind, src, disk, deadline, out, base, err);
  pthread_mutex_unlock (&m->lock);
  return r;
}

int
rootfs_disk_for_run_ex (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                        const char *disk_path, ate_deadline_t deadline,
                        struct rootfs_outcome *out, struct ate_error **err)
{
  if (rootfs_manager_submit (mgr, ROOTFS_JOB_RUN, bundle_rootfs_dir, disk_path, deadline, out,
                             NULL, err)
      < 0)
    return ate_error_wrap (err, "rootfs disk for `%s`", disk_path);
  return 0;
}

int
rootfs_disk_rebuild_ex (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                        const char *disk_path, ate_deadline_t deadline,
                        struct rootfs_outcome *out, struct ate_error **err)
{
  if (rootfs_manager_submit (mgr, ROOTFS_JOB_REBUILD, bundle_rootfs_dir, disk_path, deadline,
                             out, NULL, err)
      < 0)
    return ate_error_wrap (err, "rebuild rootfs disk `%s`", disk_path);
  return 0;
}

int
rootfs_disk_for_run (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                     const char *disk_path, ate_deadline_t deadline, struct ate_error **err)
{
  return rootfs_disk_for_run_ex (mgr, bundle_rootfs_dir, disk_path, deadline, NULL, err);
}

int
rootfs_disk_rebuild (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                     const char *disk_path, ate_deadline_t deadline, struct ate_error **err)
{
  return rootfs_disk_rebuild_ex (mgr, bundle_rootfs_dir, disk_path, deadline, NULL, err);
}

int
rootfs_golden_reset (struct rootfs_manager *mgr, const char *template_path,
                     const char *disk_path, ate_deadline_t deadline, struct ate_error **err)
{
  if (rootfs_manager_submit (mgr, ROOTFS_JOB_RESET, template_path, disk_path, deadline, NULL,
                             NULL, err)
      < 0)
    return ate_error_wrap (err, "reset `%s` to the template `%s`", disk_path, template_path);
  return 0;
}
