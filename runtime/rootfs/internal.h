/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files of runtime/rootfs (not for callers of the module). */
#ifndef ATE_ROOTFS_INTERNAL_H
#define ATE_ROOTFS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "cache.h"
#include "fingerprint.h"
#include "mkfs.h"
#include "rootfs.h"
#include "staging.h"

enum rootfs_job_kind
{
  ROOTFS_JOB_RUN,     /* reuse a matching disk, else build */
  ROOTFS_JOB_REBUILD, /* build (reuse only an unclaimed build, see manager.c) */
  ROOTFS_JOB_RESET,   /* clone a golden template */
  ROOTFS_JOB_BASE,    /* the base image of a tree in the cache (base.c) */
};

/* What a base job hands each caller: its own pin and the identity. */
struct rootfs_base_result
{
  int pin_fd;
  struct rootfs_fingerprint fp;
};

/* What a finished disk looked like, to recognise it untouched later. */
struct rootfs_disk_stamp
{
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
};

struct rootfs_job
{
  struct rootfs_manager *mgr;
  enum rootfs_job_kind kind;
  char *src;  /* bundle rootfs (RUN, REBUILD) or template (RESET) */
  char *disk;
  bool may_reuse;
  ate_deadline_t deadline; /* the build time limit, not a caller's */
  int64_t started_ns;

  /* Written by the job thread before it reports completion. */
  struct rootfs_disk_stamp stamp;
  char *trash; /* the replaced disk, removed after completion */
  struct rootfs_cache_staged *staged; /* committed to the cache after completion */
  struct rootfs_staging staging;      /* the build's source, removed after completion */
  /* BASE: the entry (pinned by base_pin until the job is freed); sealed
   * after completion.  `disk` is the bundle path (one job per bundle). */
  struct rootfs_fingerprint base_fp;
  int base_pin;
  bool base_unsealed;

  /* Under mgr->lock. */
  int refs;
  int waiters;
  bool done;     /* result available */
  bool finished; /* the thread has nothing left to do (joinable at once) */
  int result;
  struct ate_error *err;
  struct rootfs_outcome outcome;
  pthread_t thread;
  struct rootfs_job *next;
};

struct rootfs_unclaimed
{
  char *disk;
  char *src;
  enum rootfs_job_kind kind;
  struct rootfs_disk_stamp stamp;
  struct rootfs_unclaimed *next;
};

struct rootfs_manager
{
  char *base_path;
  char *cache_dir;
  char *golden_dir;
  char *mkfs_path;
  char *debugfs_path;
  uint64_t cache_max_bytes;
  int64_t build_timeout_ms;
  bool metadata_digest_only;
  struct rootfs_cache *cache; /* NULL: no image cache (for actor disks) */
  /* The same directory for base images: = cache, or opened by the first
   * base call when the cache is off for actor disks (bound 0: only bases
   * in use are kept).  Under lock. */
  struct rootfs_cache *bases;

  pthread_mutex_t lock;
  pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast when a job finishes */
  struct rootfs_job *jobs;
  struct rootfs_unclaimed *unclaimed;
  int cancel_fd; /* eventfd, readable once the manager shuts down */
  atomic_bool closing;

  pthread_mutex_t version_lock;
  char *mkfs_version;
  char boot_id[ROOTFS_UUID_LEN + 1];
};

/* build.c: the body of a job, run on its thread. */
int rootfs_job_execute (struct rootfs_job *job, struct rootfs_outcome *out,
                        struct ate_error **err);

/* The build identity of a scanned tree with this manager's tools. */
int rootfs_manager_fingerprint (struct rootfs_manager *mgr, const struct rootfs_scan *scan,
                                const struct rootfs_tool_env *env,
                                struct rootfs_fingerprint *fp, struct ate_error **err);

int rootfs_disk_stamp_read (const char *path, struct rootfs_disk_stamp *st,
                            struct ate_error **err);
bool rootfs_disk_stamp_equal (const struct rootfs_disk_stamp *a,
                              const struct rootfs_disk_stamp *b);

/* manager.c: run a job for disk (join a compatible running one), waiting
 * until the deadline. */
int rootfs_manager_submit (struct rootfs_manager *mgr, enum rootfs_job_kind kind,
                           const char *src, const char *disk, ate_deadline_t deadline,
                           struct rootfs_outcome *out, struct rootfs_base_result *base,
                           struct ate_error **err);

#endif
