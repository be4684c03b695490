/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "clone.h"
#include "ext4.h"
#include "rootfs.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/util.h"

#define IMAGE_SUFFIX ".ext4"
#define LOCK_NAME ".lock"

struct rootfs_cache
{
  char *dir;
  uint64_t max_bytes;
  pthread_mutex_t lock; /* inserts of this process; .lock for others */
};

struct entry
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  uint64_t allocated;
  int64_t last_use_ns;
};

const char *
rootfs_cache_dir (const struct rootfs_cache *c)
{
  return c->dir;
}

static char *
dir_entry_file (const char *dir, const char *key, const char *suffix)
{
  return xasprintf ("%s/%s%s", dir, key, suffix);
}

static char *
entry_file (const struct rootfs_cache *c, const char *key, const char *suffix)
{
  return dir_entry_file (c->dir, key, suffix);
}

char *
rootfs_cache_entry_path_in (const char *dir, const struct rootfs_fingerprint *fp)
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  rootfs_fingerprint_cache_key (fp, key);
  return dir_entry_file (dir, key, IMAGE_SUFFIX);
}

char *
rootfs_cache_entry_path (const struct rootfs_cache *c, const struct rootfs_fingerprint *fp)
{
  return rootfs_cache_entry_path_in (c->dir, fp);
}

/* "<64 hex>.ext4" -> key */
static bool
parse_entry_name (const char *name, char *key)
{
  size_t n = strlen (name);

  if (n != ROOTFS_CACHE_KEY_LEN + strlen (IMAGE_SUFFIX) || !str_has_suffix (name, IMAGE_SUFFIX))
    return false;
  for (size_t i = 0; i < ROOTFS_CACHE_KEY_LEN; i++)
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
      return false;
  memcpy (key, name, ROOTFS_CACHE_KEY_LEN);
  key[ROOTFS_CACHE_KEY_LEN] = '\0';
  return true;
}

/* "<key>.fingerprint.tmp.<pid>.<n>" (ate_write_file_atomic) of a process
 * that is gone: a server killed while writing an entry's fingerprint. */
static bool
stale_atomic_temp (const char *name)
{
  const char *t = strstr (name, ROOTFS_FINGERPRINT_SUFFIX ".tmp.");
  long pid;
  char *end;

  if (t == NULL)
    return false;
  pid = strtol (t + strlen (ROOTFS_FINGERPRINT_SUFFIX ".tmp."), &end, 10);
  return pid > 0 && *end == '.' && kill ((pid_t) pid, 0) < 0 && errno == ESRCH;
}

/* Remove unheld temporaries of every entry (a crash during an insert). */
static int
cleanup_temps (struct rootfs_cache *c, struct ate_error **err)
{
  cleanup_dir DIR *d = opendir (c->dir);
  struct dirent *de;
  int removed = 0;

  if (d == NULL)
    return ate_error_make (err, errno, "open `%s`", c->dir);
  while ((errno = 0, de = readdir (d)) != NULL)
    {
      char key[ROOTFS_CACHE_KEY_LEN + 1];
      char *dot = strchr (de->d_name, '.');
      if (stale_atomic_temp (de->d_name))
        {
          if (unlinkat (dirfd (d), de->d_name, 0) == 0)
            removed++;
          continue;
        }
      if (dot == NULL || !str_has_suffix (de->d_name, ROOTFS_TEMP_SUFFIX))
        continue;
      cleanup_free char *image = xstrndup (de->d_name, (size_t) (dot - de->d_name) + 5);
      if (!parse_entry_name (image, key))
        continue;
      cleanup_free char *final = entry_file (c, key, IMAGE_SUFFIX);
      int r = rootfs_temp_cleanup (final, err);
      if (r < 0)
        return -1;
      removed += r;
    }
  return removed;
}

int
rootfs_cache_open (const char *dir, uint64_t max_bytes, struct rootfs_cache **out,
                   struct ate_error **err)
{
  struct rootfs_cache *c;
  int removed;

  if (ate_mkdir_p (dir, 0700, err) < 0)
    return ate_error_wrap (err, "create the image cache");
  c = xmalloc0 (sizeof (*c));
  c->dir = xstrdup (dir);
  c->max_bytes = max_bytes;
  pthread_mutex_init (&c->lock, NULL);
  removed = cleanup_temps (c, err);
  if (removed < 0)
    {
      rootfs_cache_free (c);
      return ate_error_wrap (err, "open the image cache `%s`", dir);
    }
  if (removed > 0)
    ate_logf (ATE_LOG_INFO, "rootfs cache: removed %d unfinished entries from `%s`", removed,
              dir);
  *out = c;
  return 0;
}

void
rootfs_cache_free (struct rootfs_cache *c)
{
  if (c == NULL)
    return;
  pthread_mutex_destroy (&c->lock);
  free (c->dir);
  free (c);
}

static bool
dir_identity_matches (const char *dir, const char *key, const struct rootfs_fingerprint *fp)
{
  cleanup_free char *path = dir_entry_file (dir, key, ROOTFS_FINGERPRINT_SUFFIX);
  cleanup_error struct ate_error *e = NULL;
  struct rootfs_fingerprint have;

  if (rootfs_fingerprint_read (path, &have, &e) < 0)
    return false;
  return rootfs_fingerprint_same_build (&have, fp);
}

static bool
entry_identity_matches (struct rootfs_cache *c, const char *key,
                        const struct rootfs_fingerprint *fp)
{
  return dir_identity_matches (c->dir, key, fp);
}

bool
rootfs_cache_has_entry_in (const char *dir, const struct rootfs_fingerprint *fp)
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  rootfs_fingerprint_cache_key (fp, key);
  cleanup_free char *image = dir_entry_file (dir, key, IMAGE_SUFFIX);
  return ate_is_regular_file (image) && dir_identity_matches (dir, key, fp);
}

bool
rootfs_cache_contains (struct rootfs_cache *c, const struct rootfs_fingerprint *fp)
{
  return rootfs_cache_has_entry_in (c->dir, fp);
}

static int64_t last_use_ns (struct rootfs_cache *c, const char *key);

static void
touch_entry (struct rootfs_cache *c, const char *key)
{
  cleanup_free char *path = entry_file (c, key, ROOTFS_FINGERPRINT_SUFFIX);
  /* LRU order only: a failure costs nothing but a worse eviction choice. */
  (void) utimensat (AT_FDCWD, path, NULL, 0);
}

/* Open the entry's image with a shared lock; -1 with errno ENOENT when there
 * is none (or it was evicted while we waited for the lock). */
static int
open_entry_shared (struct rootfs_cache *c, const char *key, const struct rootfs_fingerprint *fp)
{
  cleanup_free char *image = entry_file (c, key, IMAGE_SUFFIX);
  cleanup_close int fd = open (image, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  struct rootfs_ext4_sb sb;
  cleanup_error struct ate_error *e = NULL;

  if (fd < 0)
    return -1;
  if (TEMP_FAILURE_RETRY (flock (fd, LOCK_SH)) < 0 || fstat (fd, &st) < 0)
    return -1;
  if (st.st_nlink == 0 || (uint64_t) st.st_size != fp->size_mib << 20
      || rootfs_ext4_read_sb (fd, &sb, &e) < 0 || strcmp (sb.uuid, fp->uuid) != 0
      || !entry_identity_matches (c, key, fp))
    {
      errno = ENOENT;
      return -1;
    }
  return steal_fd (&fd);
}

int
rootfs_cache_clone_to (struct rootfs_cache *c, const struct rootfs_fingerprint *fp, int dst_fd,
                       const char **method, struct ate_error **err)
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  cleanup_close int fd = -1;

  rootfs_fingerprint_cache_key (fp, key);
  fd = open_entry_shared (c, key, fp);
  if (fd < 0)
    return 0;
  if (rootfs_clone_fd (fd, dst_fd, method, err) < 0)
    return ate_error_wrap (err, "clone the cached image %s", key);
  touch_entry (c, key);
  return 1;
}

void
rootfs_cache_touch (struct rootfs_cache *c, const struct rootfs_fingerprint *fp)
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  rootfs_fingerprint_cache_key (fp, key);
  touch_entry (c, key);
}

/* "<64 hex>.fingerprint" -> key */
static bool
parse_fingerprint_name (const char *name, char *key)
{
  cleanup_free char *image = NULL;
  size_t n = strlen (name), sl = strlen (ROOTFS_FINGERPRINT_SUFFIX);

  if (n != ROOTFS_CACHE_KEY_LEN + sl || !str_has_suffix (name, ROOTFS_FINGERPRINT_SUFFIX))
    return false;
  image = xasprintf ("%.*s" IMAGE_SUFFIX, ROOTFS_CACHE_KEY_LEN, name);
  return parse_entry_name (image, key);
}

/* The most recently used entry that differs from fp at most in the
 * content digest. */
static bool
find_candidate (struct rootfs_cache *c, const struct rootfs_fingerprint *fp, char *key,
                struct rootfs_fingerprint *found)
{
  cleanup_dir DIR *d = opendir (c->dir);
  struct dirent *de;
  int64_t best = -1;

  if (d == NULL)
    return false;
  while ((de = readdir (d)) != NULL)
    {
      char k[ROOTFS_CACHE_KEY_LEN + 1];
      cleanup_free char *path = NULL;
      cleanup_error struct ate_error *e = NULL;
      struct rootfs_fingerprint have;
      int64_t used;

      if (!parse_fingerprint_name (de->d_name, k))
        continue;
      path = entry_file (c, k, ROOTFS_FINGERPRINT_SUFFIX);
      if (rootfs_fingerprint_read (path, &have, &e) < 0
          || !rootfs_fingerprint_same_build_except_content (fp, &have))
        continue;
      used = last_use_ns (c, k);
      if (used > best)
        {
          best = used;
          memcpy (key, k, sizeof (k));
          *found = have;
        }
    }
  return best >= 0;
}

int
rootfs_cache_clone_candidate (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                              int dst_fd, struct rootfs_fingerprint *found,
                              const char **method, struct ate_error **err)
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  cleanup_close int fd = -1;

  if (!find_candidate (c, fp, key, found))
    return 0;
  fd = open_entry_shared (c, key, found);
  if (fd < 0)
    return 0;
  if (rootfs_clone_fd (fd, dst_fd, method, err) < 0)
    return ate_error_wrap (err, "clone the cached image %s", key);
  return 1;
}

static int
cmp_lru (const void *a, const void *b)
{
  const struct entry *x = a, *y = b;
  if (x->last_use_ns != y->last_use_ns)
    return x->last_use_ns < y->last_use_ns ? -1 : 1;
  return strcmp (x->key, y->key);
}

static int64_t
last_use_ns (struct rootfs_cache *c, const char *key)
{
  cleanup_free char *path = entry_file (c, key, ROOTFS_FINGERPRINT_SUFFIX);
  struct stat st;
  /* An image without its fingerprint is an unfinished insert: oldest. */
  if (stat (path, &st) < 0)
    return 0;
  return (int64_t) st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

static int
list_entries (struct rootfs_cache *c, struct entry **out, size_t *n_out, uint64_t *total,
              struct ate_error **err)
{
  cleanup_dir DIR *d = opendir (c->dir);
  struct entry *v = NULL;
  size_t n = 0;
  struct dirent *de;

  *total = 0;
  if (d == NULL)
    return ate_error_make (err, errno, "open `%s`", c->dir);
  while ((errno = 0, de = readdir (d)) != NULL)
    {
      struct entry e;
      struct stat st;
      if (!parse_entry_name (de->d_name, e.key)
          || fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0
          || !S_ISREG (st.st_mode))
        continue;
      e.allocated = (uint64_t) st.st_blocks * 512;
      e.last_use_ns = last_use_ns (c, e.key);
      v = xrealloc (v, (n + 1) * sizeof (*v));
      v[n++] = e;
      *total += e.allocated;
    }
  if (errno != 0)
    {
      int e = errno;
      free (v);
      return ate_error_make (err, e, "read `%s`", c->dir);
    }
  if (n > 1)
    qsort (v, n, sizeof (*v), cmp_lru);
  *out = v;
  *n_out = n;
  return 0;
}

uint64_t
rootfs_cache_usage (struct rootfs_cache *c)
{
  cleanup_error struct ate_error *e = NULL;
  struct entry *v = NULL;
  size_t n = 0;
  uint64_t total = 0;

  if (list_entries (c, &v, &n, &total, &e) < 0)
    return 0;
  free (v);
  return total;
}

/* Remove an entry unless someone holds it.  Returns true when removed. */
static bool
evict_entry (struct rootfs_cache *c, const char *key)
{
  cleanup_free char *image = entry_file (c, key, IMAGE_SUFFIX);
  cleanup_free char *fp = entry_file (c, key, ROOTFS_FINGERPRINT_SUFFIX);
  cleanup_close int fd = open (image, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

  if (fd < 0 || flock (fd, LOCK_EX | LOCK_NB) < 0)
    return false;
  /* Fingerprint first: a crash in between leaves an image without one,
   * which no lookup uses and the next eviction removes. */
  if ((unlink (fp) < 0 && errno != ENOENT) || unlink (image) < 0)
    return false;
  ate_log (ATE_LOG_INFO, "rootfs cache: evicted", "key", key, NULL);
  return true;
}

/* Make room for `need` bytes.  Returns true when it fits. */
static bool
make_room (struct rootfs_cache *c, uint64_t need, struct ate_error **err, int *failed)
{
  struct entry *v = NULL;
  size_t n = 0;
  uint64_t total = 0;

  *failed = 0;
  if (list_entries (c, &v, &n, &total, err) < 0)
    {
      *failed = -1;
      return false;
    }
  for (size_t i = 0; i < n && total + need > c->max_bytes; i++)
    if (evict_entry (c, v[i].key))
      total -= v[i].allocated;
  free (v);
  return total + need <= c->max_bytes;
}

struct rootfs_cache_staged
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  struct rootfs_fingerprint fp;
  char *tmp;
  int fd;        /* flock'ed: leftover cleanup leaves it alone */
  uint64_t need; /* allocated bytes */
};

void
rootfs_cache_discard (struct rootfs_cache_staged *s)
{
  if (s == NULL)
    return;
  unlink (s->tmp);
  close (s->fd);
  free (s->tmp);
  free (s);
}

int
rootfs_cache_stage (struct rootfs_cache *c, const struct rootfs_fingerprint *fp, int src_fd,
                    struct rootfs_cache_staged **out, struct ate_error **err)
{
  struct rootfs_cache_staged *s;
  cleanup_free char *image = NULL;
  const char *method = NULL;
  uint64_t need = rootfs_allocated_bytes (src_fd);

  *out = NULL;
  if (need > c->max_bytes)
    {
      struct json_object *a = json_object_new_object ();
      json_object_object_add (a, "allocated_bytes", json_object_new_int64 ((int64_t) need));
      json_object_object_add (a, "cache_max_bytes",
                              json_object_new_int64 ((int64_t) c->max_bytes));
      ate_log_obj (ATE_LOG_INFO, "rootfs cache: image larger than the cache, not caching", a);
      return 0;
    }
  if (rootfs_cache_contains (c, fp))
    return 0;
  s = xmalloc0 (sizeof (*s));
  s->fd = -1;
  s->fp = *fp;
  s->need = need;
  rootfs_fingerprint_cache_key (fp, s->key);
  image = entry_file (c, s->key, IMAGE_SUFFIX);
  if (rootfs_temp_create (image, &s->tmp, &s->fd, err) < 0)
    {
      free (s);
      return -1;
    }
  if (rootfs_clone_fd (src_fd, s->fd, &method, err) < 0 || fchmod (s->fd, 0400) < 0)
    {
      if (*err == NULL)
        ate_error_make (err, errno, "chmod `%s`", s->tmp);
      rootfs_cache_discard (s);
      return -1;
    }
  *out = s;
  return 0;
}

static int
commit_locked (struct rootfs_cache *c, struct rootfs_cache_staged *s, struct ate_error **err)
{
  cleanup_free char *image = entry_file (c, s->key, IMAGE_SUFFIX);
  cleanup_free char *fpath = entry_file (c, s->key, ROOTFS_FINGERPRINT_SUFFIX);
  int failed = 0;

  if (rootfs_cache_contains (c, &s->fp))
    {
      touch_entry (c, s->key);
      return 1;
    }
  if (!make_room (c, s->need, err, &failed))
    {
      if (failed)
        return -1;
      ate_log (ATE_LOG_WARN, "rootfs cache: full of images in use, not caching", "key", s->key,
               NULL);
      return 0;
    }
  if (rootfs_temp_install (s->fd, s->tmp, image, err) < 0)
    return -1;
  if (rootfs_fingerprint_write (fpath, &s->fp, false, err) < 0)
    {
      unlink (image);
      return -1;
    }
  return 1;
}

static int
lock_dir (struct rootfs_cache *c, struct ate_error **err)
{
  cleanup_free char *path = xasprintf ("%s/" LOCK_NAME, c->dir);
  int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

  if (fd < 0)
    return ate_error_make (err, errno, "open `%s`", path);
  if (TEMP_FAILURE_RETRY (flock (fd, LOCK_EX)) < 0)
    {
      int e = errno;
      close (fd);
      return ate_error_make (err, e, "lock `%s`", path);
    }
  return fd;
}

int
rootfs_cache_commit (struct rootfs_cache *c, struct rootfs_cache_staged *s,
                     struct ate_error **err)
{
  cleanup_close int lock = -1;
  int r;

  pthread_mutex_lock (&c->lock);
  lock = lock_dir (c, err);
  r = lock < 0 ? -1 : commit_locked (c, s, err);
  close_and_reset (&lock);
  pthread_mutex_unlock (&c->lock);
  if (r < 0)
    ate_error_wrap (err, "add image %s to the cache", s->key);
  rootfs_cache_discard (s); /* the temporary, unless installed */
  return r;
}

int
rootfs_cache_insert (struct rootfs_cache *c, const struct rootfs_fingerprint *fp, int src_fd,
                     struct ate_error **err)
{
  struct rootfs_cache_staged *s = NULL;

  if (rootfs_cache_stage (c, fp, src_fd, &s, err) < 0)
    return -1;
  if (s == NULL)
    return rootfs_cache_contains (c, fp) ? 1 : 0;
  return rootfs_cache_commit (c, s, err);
}

/* ---- base images: entries pinned while actors use them ---- */

char *
rootfs_cache_spec_temp_base (const struct rootfs_cache *c, const struct rootfs_fingerprint *fp)
{
  struct rootfs_fingerprint meta = *fp;

  /* The key of the identity without content: a name the leftover cleanup
   * recognises, known before the content is hashed. */
  meta.has_content_digest = false;
  memset (meta.content_digest, 0, sizeof (meta.content_digest));
  return rootfs_cache_entry_path (c, &meta);
}

bool
rootfs_cache_find_candidate (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                             struct rootfs_fingerprint *found)
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  return find_candidate (c, fp, key, found);
}

int
rootfs_cache_pin (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                  struct ate_error **err)
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  int fd;

  rootfs_fingerprint_cache_key (fp, key);
  fd = open_entry_shared (c, key, fp);
  if (fd < 0)
    return ate_error_make (err, errno, "image %s is not in the cache `%s`", key, c->dir);
  touch_entry (c, key);
  return fd;
}

int
rootfs_cache_pin_key (struct rootfs_cache *c, const char *key, struct rootfs_fingerprint *fp,
                      struct ate_error **err)
{
  cleanup_free char *image = NULL, *path = NULL;
  char check[ROOTFS_CACHE_KEY_LEN + 1];

  image = xasprintf ("%s" IMAGE_SUFFIX, key);
  if (!parse_entry_name (image, check))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "`%s` is not a base image id (64 lower-case hex digits)", key);
  path = entry_file (c, key, ROOTFS_FINGERPRINT_SUFFIX);
  if (rootfs_fingerprint_read (path, fp, err) < 0)
    return ate_error_wrap (err, "base image %s", key);
  rootfs_fingerprint_cache_key (fp, check);
  if (strcmp (check, key) != 0)
    return ate_error_make (err, EINVAL, "base image %s: its fingerprint has key %s", key, check);
  return rootfs_cache_pin (c, fp, err);
}

/* Under the directory lock: evict unpinned entries down to the bound. */
static int
trim_locked (struct rootfs_cache *c, struct ate_error **err)
{
  int failed = 0;

  (void) make_room (c, 0, err, &failed);
  return failed;
}

int
rootfs_cache_install_pinned (struct rootfs_cache *c, const struct rootfs_fingerprint *fp, int fd,
                             const char *tmp, struct ate_error **err)
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  cleanup_free char *image = NULL;
  cleanup_close int lock = -1;
  int pin = -1, r = 0;

  rootfs_fingerprint_cache_key (fp, key);
  image = entry_file (c, key, IMAGE_SUFFIX);
  pthread_mutex_lock (&c->lock);
  lock = lock_dir (c, err);
  if (lock < 0)
    r = -1;
  else if (rootfs_cache_contains (c, fp))
    {
      /* Built meanwhile by another job or process: theirs, ours goes. */
      unlink (tmp);
      pin = rootfs_cache_pin (c, fp, err);
      r = pin < 0 ? -1 : 0;
    }
  else if (fchmod (fd, 0400) < 0)
    r = ate_error_make (err, errno, "chmod `%s`", tmp);
  /* Pinned before it is visible: eviction (under the directory lock, like
   * this) never sees it unpinned.  Our exclusive build lock becomes the
   * shared pin. */
  else if (flock (fd, LOCK_SH) < 0)
    r = ate_error_make (err, errno, "lock `%s`", tmp);
  /* Not durable yet (rootfs_cache_seal): without its fingerprint the entry
   * is an unfinished insert to every lookup, which is what it is after a
   * crash before the seal. */
  else if (rootfs_temp_publish (tmp, image, err) < 0)
    r = -1;
  else
    {
      pin = fcntl (fd, F_DUPFD_CLOEXEC, 3);
      if (pin < 0)
        r = ate_error_make (err, errno, "dup");
    }
  /* A base is kept while pinned even beyond the bound; others make way. */
  if (r == 0 && trim_locked (c, err) < 0)
    ate_error_log_warning_and_release (err, "rootfs cache: trim");
  close_and_reset (&lock);
  pthread_mutex_unlock (&c->lock);
  if (r < 0)
    {
      close_and_reset (&pin);
      return ate_error_wrap (err, "add base image %s to the cache", key);
    }
  return pin;
}

int
rootfs_cache_seal (struct rootfs_cache *c, const struct rootfs_fingerprint *fp, int fd,
                   struct ate_error **err)
{
  char key[ROOTFS_CACHE_KEY_LEN + 1];
  cleanup_free char *image = NULL, *fpath = NULL;

  rootfs_fingerprint_cache_key (fp, key);
  image = entry_file (c, key, IMAGE_SUFFIX);
  fpath = entry_file (c, key, ROOTFS_FINGERPRINT_SUFFIX);
  if (fsync (fd) < 0)
    return ate_error_make (err, errno, "fsync `%s`", image);
  if (ate_fsync_dir_of (image, err) < 0 || rootfs_fingerprint_write (fpath, fp, false, err) < 0)
    return ate_error_wrap (err, "seal base image %s", key);
  return 0;
}

void
rootfs_cache_trim (struct rootfs_cache *c)
{
  struct ate_error *e = NULL;
  int lock;

  pthread_mutex_lock (&c->lock);
  lock = lock_dir (c, &e);
  if (lock >= 0 && trim_locked (c, &e) < 0)
    lock = (close (lock), -1);
  if (lock >= 0)
    close (lock);
  pthread_mutex_unlock (&c->lock);
  if (e)
    ate_error_log_warning_and_release (&e, "rootfs cache: trim");
}
