/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The body of a job (runs on the job's thread):
 *
 *   build:  scan the tree -> fingerprint -> reuse a matching untouched disk
 *           (Run) -> remove leftovers -> temporary file -> clone from the
 *           image cache, or mkfs.ext4 + debugfs normalisation (and add the
 *           result to the cache) -> fsync -> drop the old fingerprint ->
 *           rename over the disk -> write the new fingerprint.
 *   reset:  remove leftovers -> temporary file -> clone the template ->
 *           fsync -> drop the fingerprint -> rename over the disk.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "clone.h"
#include "ext4.h"
#include "internal.h"
#include "staging.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/util.h"

int
rootfs_disk_stamp_read (const char *path, struct rootfs_disk_stamp *st, struct ate_error **err)
{
  struct stat s;

  if (stat (path, &s) < 0)
    return ate_error_make (err, errno, "stat `%s`", path);
  memset (st, 0, sizeof (*st));
  st->dev = s.st_dev;
  st->ino = s.st_ino;
  st->size = s.st_size;
  st->mtime = s.st_mtim;
  return 0;
}

bool
rootfs_disk_stamp_equal (const struct rootfs_disk_stamp *a, const struct rootfs_disk_stamp *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size
         && a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static const char *
manager_mkfs_version (struct rootfs_manager *m, const struct rootfs_tool_env *env,
                      struct ate_error **err)
{
  const char *v;

  pthread_mutex_lock (&m->version_lock);
  if (m->mkfs_version == NULL)
    {
      char *probed = NULL;
      if (rootfs_mkfs_version (m->mkfs_path, env, &probed, err) == 0)
        {
          m->mkfs_version = probed;
          ate_log (ATE_LOG_INFO, "rootfs: using mkfs", "path", m->mkfs_path, "version",
                   probed, NULL);
        }
    }
  v = m->mkfs_version;
  pthread_mutex_unlock (&m->version_lock);
  return v;
}

int
rootfs_manager_fingerprint (struct rootfs_manager *m, const struct rootfs_scan *scan,
                            const struct rootfs_tool_env *env, struct rootfs_fingerprint *fp,
                            struct ate_error **err)
{
  const char *version = manager_mkfs_version (m, env, err);
  struct rootfs_geometry g;

  if (version == NULL)
    return -1;
  memset (fp, 0, sizeof (*fp));
  rootfs_geometry_from_counts (scan->entries, scan->content_bytes, &g);
  if (g.inodes > UINT32_MAX)
    return ate_error_make (err, EOVERFLOW, "%" PRIu64 " entries need more inodes than ext4 has",
                           scan->entries);
  memcpy (fp->tree_digest, scan->tree_digest, ROOTFS_DIGEST_LEN);
  fp->has_content_digest = scan->has_content_digest;
  memcpy (fp->content_digest, scan->content_digest, ROOTFS_DIGEST_LEN);
  fp->entries = g.entries;
  fp->content_bytes = g.content_bytes;
  fp->inodes = g.inodes;
  fp->size_mib = g.size_mib;
  snprintf (fp->mkfs_version, sizeof (fp->mkfs_version), "%s", version);
  rootfs_build_options_digest (fp->options_digest);
  /* From the tree digest, never the content digest: the bytes must not
   * depend on whether this node hashes file content. */
  rootfs_derive_uuid (scan->tree_digest, ROOTFS_UUID_LABEL, fp->uuid);
  rootfs_derive_uuid (scan->tree_digest, ROOTFS_HASH_SEED_LABEL, fp->hash_seed);
  fp->fake_time = ROOTFS_FAKE_TIME;
  return 0;
}

/* Is the disk a build of `want` that nothing has written to since, in this
 * boot?  except_content: compare everything but the content digest (a
 * guess made before the content is hashed). */
static bool
disk_matches (const char *disk, const struct rootfs_fingerprint *want, const char *boot_id,
              bool except_content, char **why)
{
  cleanup_free char *fpath = rootfs_fingerprint_path (disk);
  cleanup_error struct ate_error *e = NULL;
  struct rootfs_fingerprint have;
  struct stat st;

  if (stat (disk, &st) < 0)
    {
      *why = xasprintf ("no disk (%s)", strerror (errno));
      return false;
    }
  if (rootfs_fingerprint_read (fpath, &have, &e) < 0)
    {
      *why = xasprintf ("no usable fingerprint: %s", e->msg);
      return false;
    }
  if (except_content ? !rootfs_fingerprint_same_build_except_content (&have, want)
                     : !rootfs_fingerprint_same_build (&have, want))
    {
      *why = xstrdup ("fingerprint differs (the tree or the tools changed)");
      return false;
    }
  if (!rootfs_fingerprint_describes (&have, &st, boot_id))
    {
      *why = xstrdup ("the disk was written or replaced since it was built, or the node "
                      "rebooted");
      return false;
    }
  return true;
}

static void
log_scan (const char *src, const struct rootfs_scan *s, double ms)
{
  struct json_object *a = json_object_new_object ();
  json_object_object_add (a, "source", json_object_new_string (src));
  json_object_object_add (a, "files", json_object_new_int64 ((int64_t) s->entries));
  json_object_object_add (a, "bytes", json_object_new_int64 ((int64_t) s->content_bytes));
  json_object_object_add (a, "content_hashed", json_object_new_boolean (s->has_content_digest));
  json_object_object_add (a, "elapsed_ms", json_object_new_int64 ((int64_t) ms));
  ate_log_obj (ATE_LOG_INFO, "rootfs: scanned source tree", a);
}

static void
log_ready (const struct rootfs_job *j, const struct rootfs_outcome *o, const char *method)
{
  struct json_object *a = json_object_new_object ();
  json_object_object_add (a, "disk", json_object_new_string (j->disk));
  json_object_object_add (a, "source", json_object_new_string (j->src));
  json_object_object_add (a, "origin", json_object_new_string (rootfs_origin_name (o->origin)));
  if (method)
    json_object_object_add (a, "copy", json_object_new_string (method));
  if (o->origin != ROOTFS_ORIGIN_TEMPLATE)
    {
      json_object_object_add (a, "files", json_object_new_int64 ((int64_t) o->geometry.entries));
      json_object_object_add (a, "bytes",
                              json_object_new_int64 ((int64_t) o->geometry.content_bytes));
      json_object_object_add (a, "size_mib",
                              json_object_new_int64 ((int64_t) o->geometry.size_mib));
    }
  json_object_object_add (a, "elapsed_ms",
                          json_object_new_int64 ((int64_t) ate_elapsed_ms (j->started_ns)));
  ate_log_obj (ATE_LOG_INFO, "rootfs: disk ready", a);
}

static void
log_base_ready (const struct rootfs_job *j, const struct rootfs_outcome *o)
{
  struct json_object *a = json_object_new_object ();
  char key[ROOTFS_CACHE_KEY_LEN + 1];

  rootfs_fingerprint_cache_key (&j->base_fp, key);
  json_object_object_add (a, "source", json_object_new_string (j->src));
  json_object_object_add (a, "base", json_object_new_string (key));
  json_object_object_add (a, "origin", json_object_new_string (rootfs_origin_name (o->origin)));
  json_object_object_add (a, "files", json_object_new_int64 ((int64_t) o->geometry.entries));
  json_object_object_add (a, "bytes", json_object_new_int64 ((int64_t) o->geometry.content_bytes));
  json_object_object_add (a, "size_mib", json_object_new_int64 ((int64_t) o->geometry.size_mib));
  json_object_object_add (a, "elapsed_ms",
                          json_object_new_int64 ((int64_t) ate_elapsed_ms (j->started_ns)));
  ate_log_obj (ATE_LOG_INFO, "rootfs: base image ready", a);
}

/* mkfs + normalisation into the temporary (fd, tmp). */
static int
make_image (struct rootfs_job *j, const struct rootfs_fingerprint *fp,
            const struct rootfs_scan *scan, const struct rootfs_tool_env *env, const char *tmp,
            int fd, struct ate_error **err)
{
  const char *src = scan->root; /* the staged copy, or the bundle */
  struct rootfs_manager *m = j->mgr;
  struct rootfs_geometry g;
  int64_t t0 = ate_now_ns ();

  rootfs_geometry_from_counts (scan->entries, scan->content_bytes, &g);
  struct rootfs_mkfs_params mp = { .mkfs_path = m->mkfs_path, .src_dir = src,
                                   .src_name = j->src,
                                   .image_path = tmp, .image_fd = fd, .geometry = &g,
                                   .uuid = fp->uuid, .hash_seed = fp->hash_seed };
  ate_log (ATE_LOG_INFO, "rootfs: running mkfs.ext4", "disk", j->disk, "source", j->src, NULL);
  if (rootfs_mkfs_build (&mp, env, err) < 0)
    return -1;
  double mkfs_ms = ate_elapsed_ms (t0);
  struct rootfs_normalise_params np = { .debugfs_path = m->debugfs_path, .image_path = tmp,
                                        .image_fd = fd, .uuid = fp->uuid,
                                        .inodes_used = scan->inodes_used,
                                        .reset_owners = scan->foreign_owners };
  t0 = ate_now_ns ();
  if (rootfs_normalise (&np, env, err) < 0)
    return -1;
  if (rootfs_scan_verify_unchanged (scan, err) < 0)
    return ate_error_wrap (err, "build `%s`", j->disk);
  struct json_object *a = json_object_new_object ();
  json_object_object_add (a, "disk", json_object_new_string (j->disk));
  json_object_object_add (a, "mkfs_ms", json_object_new_int64 ((int64_t) mkfs_ms));
  json_object_object_add (a, "normalise_ms", json_object_new_int64 ((int64_t) ate_elapsed_ms (t0)));
  json_object_object_add (a, "written_bytes", json_object_new_int64 ((int64_t) rootfs_allocated_bytes (fd)));
  ate_log_obj (ATE_LOG_INFO, "rootfs: image built", a);
  return 0;
}

/* Offer a fresh image to the cache: copy now (the disk is the VM's once
 * published); the fsync and the eviction wait until the callers have their
 * disk.  A cache failure costs only a warning. */
static void
stage_for_cache (struct rootfs_job *j, const struct rootfs_fingerprint *fp, int fd)
{
  struct ate_error *e = NULL;

  if (j->mgr->cache && rootfs_cache_stage (j->mgr->cache, fp, fd, &j->staged, &e) < 0)
    ate_error_log_warning_and_release (&e, "rootfs: image cache");
}

/* Move an existing disk out of the way under a temporary's name (removed
 * after the job reports, or by the next cleanup after a crash).  Not a
 * rename over it: ext4 treats that as a replacement whose data must reach
 * the disk first (auto_da_alloc), seconds per GiB on the caller's path for
 * durability these disks do not need (see rootfs_temp_publish); and
 * freeing a large file is better done after the caller has its disk. */
static int
set_aside (struct rootfs_job *j, struct ate_error **err)
{
  cleanup_free char *name = NULL;
  cleanup_close int fd = -1;

  if (!ate_path_exists (j->disk))
    return 0;
  if (rootfs_temp_create (j->disk, &name, &fd, err) < 0)
    return -1;
  unlink (name);
  if (rename (j->disk, name) < 0)
    return ate_error_make (err, errno, "move the old disk `%s` aside", j->disk);
  free (j->trash);
  j->trash = steal_pointer (&name);
  return 0;
}

/* Temporary -> disk: the old fingerprint goes first, so a crash never
 * leaves a fingerprint next to a disk it does not describe.  A crash
 * before the rename leaves no disk, which the next call builds. */
static int
install (struct rootfs_job *j, int fd, const char *tmp, struct ate_error **err)
{
  cleanup_free char *fpath = rootfs_fingerprint_path (j->disk);

  (void) fd;
  if (ate_unlink_if_exists (fpath, err) < 0 || set_aside (j, err) < 0)
    return -1;
  if (rootfs_temp_publish (tmp, j->disk, err) < 0)
    return -1;
  return rootfs_disk_stamp_read (j->disk, &j->stamp, err);
}

static int
write_fingerprint (struct rootfs_job *j, struct rootfs_fingerprint *fp, struct ate_error **err)
{
  cleanup_free char *fpath = rootfs_fingerprint_path (j->disk);

  fp->has_disk = true;
  fp->disk_ino = (uint64_t) j->stamp.ino;
  fp->disk_size = (uint64_t) j->stamp.size;
  fp->disk_mtime_ns = (int64_t) j->stamp.mtime.tv_sec * 1000000000LL + j->stamp.mtime.tv_nsec;
  memcpy (fp->boot_id, j->mgr->boot_id, sizeof (fp->boot_id));
  return rootfs_fingerprint_write (fpath, fp, true, err);
}

/* Leftovers, then a fresh locked temporary next to the disk. */
static int
prepare_temp (struct rootfs_job *j, char **tmp, int *fd, struct ate_error **err)
{
  int removed = rootfs_temp_cleanup (j->disk, err);

  if (removed < 0)
    return -1;
  if (removed > 0)
    ate_logf (ATE_LOG_INFO, "rootfs: removed %d leftover temporary files of `%s`", removed,
              j->disk);
  return rootfs_temp_create (j->disk, tmp, fd, err);
}

/* Content hashing on its own thread while the job speculates. */
struct hashing
{
  struct rootfs_scan *scan;
  struct rootfs_scan_opts opts;
  pthread_t thread;
  bool running;
  int result;
  struct ate_error *err;
  int64_t started_ns;
};

static void *
hashing_main (void *arg)
{
  struct hashing *h = arg;
  h->result = rootfs_scan_hash_content (h->scan, &h->opts, &h->err);
  return NULL;
}

static void
hashing_start (struct hashing *h)
{
  h->started_ns = ate_now_ns ();
  h->running = pthread_create (&h->thread, NULL, hashing_main, h) == 0;
  if (!h->running)
    hashing_main (h); /* no thread: hash now, only slower */
}

static int
hashing_finish (struct hashing *h, struct ate_error **err)
{
  if (h->running)
    pthread_join (h->thread, NULL);
  h->running = false;
  if (h->result < 0)
    {
      *err = steal_pointer (&h->err);
      return -1;
    }
  return 0;
}

static void
log_hashed (const struct rootfs_job *j, const struct rootfs_scan *s, int64_t start)
{
  struct json_object *a = json_object_new_object ();
  json_object_object_add (a, "source", json_object_new_string (j->src));
  json_object_object_add (a, "files", json_object_new_int64 ((int64_t) s->n_files));
  json_object_object_add (a, "bytes", json_object_new_int64 ((int64_t) s->content_bytes));
  json_object_object_add (a, "elapsed_ms", json_object_new_int64 ((int64_t) ate_elapsed_ms (start)));
  ate_log_obj (ATE_LOG_INFO, "rootfs: hashed file content", a);
}

/* The build state of one job, released in one place. */
struct build
{
  struct rootfs_staging staging;
  struct rootfs_scan scan;
  struct rootfs_fingerprint fp;
  struct hashing hashing;
  char *tmp;
  int fd;
  enum
  {
    SPEC_NONE,
    SPEC_CLONE, /* fd holds a clone of the cache entry `cand` */
    SPEC_BUILT, /* fd holds a finished mkfs image of the tree */
  } spec;
  struct rootfs_fingerprint cand;
  const char *method;
};

static void
build_release (struct rootfs_job *j, struct build *b)
{
  struct ate_error *e = NULL;
  if (b->hashing.running && hashing_finish (&b->hashing, &e) < 0)
    ate_error_release (&e);
  ate_error_release (&b->hashing.err);
  if (b->tmp)
    unlink (b->tmp); /* still a temporary: nothing was installed */
  free (b->tmp);
  close_and_reset (&b->fd);
  rootfs_scan_clear (&b->scan);
  /* Removing 30,000 links takes a while: after the callers have their
   * result (job_after_completion). */
  j->staging = b->staging;
  b->staging = (struct rootfs_staging){ .lock_fd = -1 };
}

/* Read the bundle through a staged copy that atelet's next unpack cannot
 * take away (staging.h); without hard links here, read it directly. */
static int
build_stage (struct rootfs_job *j, const char *near, struct build *b, struct ate_error **err)
{
  int64_t t0 = ate_now_ns ();
  int r = rootfs_staging_cleanup (near, err);

  if (r < 0)
    return -1;
  r = rootfs_staging_create (j->src, near, &j->mgr->closing, &b->staging, err);
  if (r < 0)
    return -1;
  if (r == 0)
    ate_log (ATE_LOG_WARN, "rootfs: cannot stage the bundle with hard links; reading it "
             "directly (a new unpack during the build fails it)", "source", j->src, NULL);
  else
    ate_logf (ATE_LOG_DEBUG, "rootfs: staged `%s` as `%s` in %.0f ms", j->src, b->staging.dir,
              ate_elapsed_ms (t0));
  return 0;
}

struct stager
{
  struct rootfs_job *j;
  const char *near;
  struct build *b;
  int result;
  struct ate_error *err;
};

static void *
stager_main (void *arg)
{
  struct stager *s = arg;
  s->result = build_stage (s->j, s->near, s->b, &s->err);
  return NULL;
}

/* Stage the bundle next to `near` and walk it, at once: the walk reads the
 * bundle while the copy is made of the same inodes, and is then pointed at
 * the copy (a file replaced in between fails the build when its content is
 * hashed: not the inode the walk saw).  Then fingerprint the tree without
 * content and start hashing the content. */
static int
build_scan (struct rootfs_job *j, const char *near, const struct rootfs_tool_env *env,
            struct build *b, struct ate_error **err)
{
  struct rootfs_manager *m = j->mgr;
  struct stager st = { .j = j, .near = near, .b = b };
  struct rootfs_scan_opts so;
  int64_t t0 = ate_now_ns ();
  pthread_t thread;
  bool threaded = pthread_create (&thread, NULL, stager_main, &st) == 0;
  int r;

  if (!threaded)
    stager_main (&st);
  rootfs_scan_opts_init (&so);
  so.hash_content = false;
  so.cancel = &m->closing;
  so.deadline = j->deadline;
  so.name = j->src;
  r = rootfs_scan_tree (j->src, &so, &b->scan, err);
  if (threaded)
    pthread_join (thread, NULL);
  if (st.result < 0)
    {
      if (r == 0)
        *err = steal_pointer (&st.err);
      ate_error_release (&st.err);
      return -1;
    }
  if (r < 0)
    return -1;
  if (b->staging.dir && rootfs_scan_rebase (&b->scan, b->staging.dir, err) < 0)
    return -1;
  log_scan (j->src, &b->scan, ate_elapsed_ms (t0));
  if (rootfs_manager_fingerprint (m, &b->scan, env, &b->fp, err) < 0)
    return -1;
  if (!m->metadata_digest_only)
    {
      b->hashing.scan = &b->scan;
      b->hashing.opts = so;
      hashing_start (&b->hashing);
    }
  return 0;
}

/* While the content is hashed (its digest is needed only for the
 * fingerprint and the cache key), start on the image: clone the cache
 * entry with the same metadata, which the content will most likely match,
 * or, when there is none, run mkfs (its output does not depend on the
 * content digest).  Nothing when the existing disk is likely reused. */
static int
build_speculate (struct rootfs_job *j, const struct rootfs_tool_env *env, struct build *b,
                 struct ate_error **err)
{
  struct rootfs_manager *m = j->mgr;
  cleanup_free char *why = NULL;
  int r;

  if (j->may_reuse && disk_matches (j->disk, &b->fp, m->boot_id, true, &why))
    return 0;
  if (prepare_temp (j, &b->tmp, &b->fd, err) < 0)
    return -1;
  if (m->cache)
    {
      r = rootfs_cache_clone_candidate (m->cache, &b->fp, b->fd, &b->cand, &b->method, err);
      if (r < 0)
        return -1;
      if (r == 1)
        {
          b->spec = SPEC_CLONE;
          return 0;
        }
    }
  if (make_image (j, &b->fp, &b->scan, env, b->tmp, b->fd, err) < 0)
    return -1;
  b->spec = SPEC_BUILT;
  return 0;
}

static int
build_content_digest (struct rootfs_job *j, struct build *b, struct ate_error **err)
{
  if (j->mgr->metadata_digest_only)
    return 0;
  if (hashing_finish (&b->hashing, err) < 0)
    return -1;
  log_hashed (j, &b->scan, b->hashing.started_ns);
  b->fp.has_content_digest = true;
  memcpy (b->fp.content_digest, b->scan.content_digest, ROOTFS_DIGEST_LEN);
  return 0;
}

/* A temporary with the image of b->fp: what the speculation made if it
 * turned out right, else a clone from the cache, else mkfs. */
static int
build_image (struct rootfs_job *j, const struct rootfs_tool_env *env, struct build *b,
             enum rootfs_origin *origin, struct ate_error **err)
{
  struct rootfs_cache *cache = j->mgr->cache;
  int r;

  if (b->spec == SPEC_CLONE && rootfs_fingerprint_same_build (&b->cand, &b->fp))
    {
      rootfs_cache_touch (cache, &b->fp);
      *origin = ROOTFS_ORIGIN_CACHE;
      return 0;
    }
  if (b->spec == SPEC_BUILT)
    {
      *origin = ROOTFS_ORIGIN_BUILT;
      stage_for_cache (j, &b->fp, b->fd);
      return 0;
    }
  b->method = NULL;
  if (b->tmp == NULL && prepare_temp (j, &b->tmp, &b->fd, err) < 0)
    return -1;
  if (b->spec == SPEC_CLONE && ftruncate (b->fd, 0) < 0)
    return ate_error_make (err, errno, "truncate `%s`", b->tmp);
  if (cache)
    {
      r = rootfs_cache_clone_to (cache, &b->fp, b->fd, &b->method, err);
      if (r < 0)
        return -1;
      if (r == 1)
        {
          *origin = ROOTFS_ORIGIN_CACHE;
          return 0;
        }
    }
  if (make_image (j, &b->fp, &b->scan, env, b->tmp, b->fd, err) < 0)
    return -1;
  *origin = ROOTFS_ORIGIN_BUILT;
  stage_for_cache (j, &b->fp, b->fd);
  return 0;
}

static int
execute_build (struct rootfs_job *j, const struct rootfs_tool_env *env,
               struct rootfs_outcome *out, struct ate_error **err)
{
  struct build b = { .fd = -1, .staging = { .lock_fd = -1 } };
  cleanup_free char *why = NULL;
  int r = build_scan (j, j->disk, env, &b, err);

  if (r == 0)
    {
      rootfs_geometry_from_counts (b.scan.entries, b.scan.content_bytes, &out->geometry);
      r = build_speculate (j, env, &b, err);
    }
  if (r == 0)
    r = build_content_digest (j, &b, err);
  if (r == 0 && j->may_reuse && disk_matches (j->disk, &b.fp, j->mgr->boot_id, false, &why))
    {
      build_release (j, &b);
      out->origin = ROOTFS_ORIGIN_REUSED;
      if (rootfs_disk_stamp_read (j->disk, &j->stamp, err) < 0)
        return -1;
      log_ready (j, out, NULL);
      return 0;
    }
  if (r == 0 && j->may_reuse)
    ate_log (ATE_LOG_INFO, "rootfs: building disk", "disk", j->disk, "reason", why, NULL);
  if (r == 0)
    r = build_image (j, env, &b, &out->origin, err);
  if (r == 0)
    r = install (j, b.fd, b.tmp, err);
  if (r == 0)
    {
      free (steal_pointer (&b.tmp)); /* installed: no longer ours to remove */
      r = write_fingerprint (j, &b.fp, err);
    }
  if (r == 0)
    {
      out->copy = b.method;
      log_ready (j, out, b.method);
    }
  build_release (j, &b);
  return r;
}

static int
execute_reset (struct rootfs_job *j, struct rootfs_outcome *out, struct ate_error **err)
{
  cleanup_close int src = open (j->src, O_RDONLY | O_CLOEXEC);
  cleanup_free char *tmp = NULL;
  cleanup_close int fd = -1;
  struct rootfs_ext4_sb sb;
  const char *method = NULL;

  out->origin = ROOTFS_ORIGIN_TEMPLATE;
  if (src < 0)
    return ate_error_make (err, errno, "open template `%s`", j->src);
  if (rootfs_ext4_read_sb (src, &sb, err) < 0)
    return ate_error_wrap (err, "template `%s`", j->src);
  if (prepare_temp (j, &tmp, &fd, err) < 0)
    return -1;
  if (rootfs_clone_fd (src, fd, &method, err) < 0 || install (j, fd, tmp, err) < 0)
    {
      unlink (tmp);
      return -1;
    }
  out->copy = method;
  log_ready (j, out, method);
  return 0;
}

/* BASE: make the cache entry of the tree (if it is not there) and pin it.
 * mkfs starts while the content is hashed, unless an entry with the same
 * metadata exists (then the content most likely matches, and nothing is
 * built or copied at all). */
static int
execute_base (struct rootfs_job *j, const struct rootfs_tool_env *env,
              struct rootfs_outcome *out, struct ate_error **err)
{
  struct rootfs_cache *cache = j->mgr->bases;
  struct build b = { .fd = -1, .staging = { .lock_fd = -1 } };
  cleanup_free char *near = xasprintf ("%s/base", rootfs_cache_dir (cache));
  bool have_cand = false;
  int r = build_scan (j, near, env, &b, err);

  if (r == 0)
    {
      rootfs_geometry_from_counts (b.scan.entries, b.scan.content_bytes, &out->geometry);
      have_cand = rootfs_cache_find_candidate (cache, &b.fp, &b.cand);
    }
  if (r == 0 && !have_cand)
    {
      cleanup_free char *spec = rootfs_cache_spec_temp_base (cache, &b.fp);
      r = rootfs_temp_create (spec, &b.tmp, &b.fd, err);
      if (r == 0)
        r = make_image (j, &b.fp, &b.scan, env, b.tmp, b.fd, err);
    }
  if (r == 0)
    r = build_content_digest (j, &b, err);
  if (r == 0 && b.tmp == NULL)
    {
      /* The candidate, or an entry another job or process made meanwhile. */
      j->base_pin = rootfs_cache_pin (cache, &b.fp, err);
      if (j->base_pin >= 0)
        out->origin = ROOTFS_ORIGIN_CACHE;
      else
        {
          ate_error_release (err);
          cleanup_free char *spec = rootfs_cache_spec_temp_base (cache, &b.fp);
          r = rootfs_temp_create (spec, &b.tmp, &b.fd, err);
          if (r == 0)
            r = make_image (j, &b.fp, &b.scan, env, b.tmp, b.fd, err);
        }
    }
  if (r == 0 && b.tmp != NULL)
    {
      j->base_pin = rootfs_cache_install_pinned (cache, &b.fp, b.fd, b.tmp, err);
      r = j->base_pin < 0 ? -1 : 0;
      if (r == 0)
        {
          free (steal_pointer (&b.tmp)); /* installed, or removed as a duplicate */
          out->origin = ROOTFS_ORIGIN_BUILT;
          j->base_unsealed = true;
        }
    }
  if (r == 0)
    {
      j->base_fp = b.fp;
      log_base_ready (j, out);
    }
  build_release (j, &b);
  return r;
}

int
rootfs_job_execute (struct rootfs_job *j, struct rootfs_outcome *out, struct ate_error **err)
{
  struct rootfs_tool_env env = { .cancel_fd = j->mgr->cancel_fd, .deadline = j->deadline };
  cleanup_free char *dir = ate_path_dirname (j->disk);

  if (!ate_is_dir (dir))
    return ate_error_make (err, ENOENT, "directory of the disk `%s` does not exist", dir);
  if (j->kind == ROOTFS_JOB_RESET)
    return execute_reset (j, out, err);
  if (j->kind == ROOTFS_JOB_BASE)
    return execute_base (j, &env, out, err);
  return execute_build (j, &env, out, err);
}
