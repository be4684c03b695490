/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The content digest of a scanned tree, on several threads.
 *
 * Canonical form: a file is cut into chunks of ROOTFS_CONTENT_CHUNK bytes
 * and each chunk into blocks of CONTENT_BLOCK bytes; every block contributes
 * a tag byte (zero block or data) and, for data, its bytes.  Holes and
 * written zeros therefore hash the same on every file system, and a hole is
 * skipped without being read.  chunk digest = SHA-256(blocks), file digest =
 * SHA-256(chunk digests), content digest = SHA-256(for each file in walk
 * order: entry index, file digest; then the tree digest).
 *
 * The unit of work is a chunk, so one huge file is hashed in parallel too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "scan.h"
#include "util/error.h"
#include "util/sparse.h"
#include "util/util.h"

#define CONTENT_BLOCK (128 * 1024)

typedef uint8_t digest_t[ROOTFS_DIGEST_LEN];

struct hasher
{
  const struct rootfs_scan *s;
  const struct rootfs_scan_opts *o;
  int root_fd;
  size_t *first_chunk; /* per file: index of its first chunk; [n_files] = total */
  digest_t *chunks;
  atomic_size_t next;
  atomic_bool failed;
  pthread_mutex_t lock;
  struct ate_error *err; /* the first error */
};

struct worker
{
  struct hasher *h;
  EVP_MD_CTX *ctx;
  uint8_t *block;
  size_t file; /* whose fd is open */
  int fd;
};

static void
put (EVP_MD_CTX *c, const void *p, size_t n)
{
  if (EVP_DigestUpdate (c, p, n) != 1)
    abort (); /* only on a broken context */
}

static int
check_stop (const struct hasher *h, struct ate_error **err)
{
  if (atomic_load (&h->failed))
    return -1;
  if (h->o->cancel && atomic_load (h->o->cancel))
    return ate_error_make (err, ECANCELED, "content hashing cancelled");
  if (ate_deadline_expired (h->o->deadline))
    return ate_error_make (err, ETIMEDOUT, "content hashing did not finish in time");
  return 0;
}

static bool
all_zero (const uint8_t *p, size_t n)
{
  return n == 0 || (p[0] == 0 && memcmp (p, p + 1, n - 1) == 0);
}

/* openat2 without the kernel's help (kernels before 5.6, valgrind before
 * 3.20): component by component, no symlink followed, no "..". */
static int
open_beneath_walk (int root_fd, const char *path, int flags)
{
  cleanup_free char *copy = xstrdup (path);
  int dir = root_fd, fd;
  char *save = NULL, *next;

  for (char *c = strtok_r (copy, "/", &save); c; c = next)
    {
      next = strtok_r (NULL, "/", &save);
      if (strcmp (c, "..") == 0 || strcmp (c, ".") == 0)
        {
          if (dir != root_fd)
            close (dir);
          errno = EXDEV;
          return -1;
        }
      fd = openat (dir, c, next ? (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                                : (flags | O_NOFOLLOW));
      if (dir != root_fd)
        close (dir);
      if (fd < 0 || next == NULL)
        return fd;
      dir = fd;
    }
  errno = ENOENT;
  return -1;
}

static int
open_beneath (int root_fd, const char *path, struct open_how *how)
{
  int fd = (int) syscall (SYS_openat2, root_fd, path, how, sizeof (*how));
  if (fd < 0 && errno == ENOSYS)
    fd = open_beneath_walk (root_fd, path, (int) how->flags);
  return fd;
}

/* The inode the walk listed, unwritten and unchanged in mode since? */
static bool
listed_file_unchanged (const struct rootfs_scan_file *f, const struct stat *st)
{
  return st->st_dev == f->dev && st->st_ino == f->ino && (uint64_t) st->st_size == f->size
         && st->st_mode == f->mode && st->st_mtim.tv_sec == f->mtime.tv_sec
         && st->st_mtim.tv_nsec == f->mtime.tv_nsec;
}

/* Open a listed file beneath the root, never through a symlink, and check
 * that it is still the inode the walk saw. */
static int
open_listed (struct hasher *h, const struct rootfs_scan_file *f, struct ate_error **err)
{
  struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME,
                          .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
                                     | RESOLVE_NO_MAGICLINKS };
  struct stat st;
  int fd = open_beneath (h->root_fd, f->path, &how);

  if (fd < 0 && errno == EPERM) /* O_NOATIME needs ownership or CAP_FOWNER */
    {
      how.flags &= ~(uint64_t) O_NOATIME;
      fd = open_beneath (h->root_fd, f->path, &how);
    }
  if (fd < 0)
    return ate_error_make (err, errno, "open `%s`", f->path);
  if (fstat (fd, &st) < 0 || st.st_dev != f->dev || st.st_ino != f->ino
      || !listed_file_unchanged (f, &st))
    {
      close (fd);
      return ate_error_make (err, EAGAIN, "`%s` changed while the tree was scanned", f->path);
    }
  return fd;
}

static int
read_block (struct worker *w, const struct rootfs_scan_file *f, uint64_t off, size_t len,
            struct ate_error **err)
{
  for (size_t got = 0; got < len;)
    {
      ssize_t r = TEMP_FAILURE_RETRY (pread (w->fd, w->block + got, len - got,
                                             (off_t) (off + got)));
      if (r < 0)
        return ate_error_make (err, errno, "read `%s`", f->path);
      if (r == 0)
        return ate_error_make (err, EIO, "`%s` shrank while it was read", f->path);
      got += (size_t) r;
    }
  return 0;
}

/* Digest of bytes [start, end) of the worker's open file. */
static int
hash_range (struct worker *w, const struct rootfs_scan_file *f, uint64_t start, uint64_t end,
            uint8_t *digest, struct ate_error **err)
{
  static const uint8_t zero_tag = 0, data_tag = 1;
  off_t ds = 0, de = 0;
  unsigned int n = 0;

  if (EVP_DigestInit_ex (w->ctx, EVP_sha256 (), NULL) != 1)
    abort ();
  for (uint64_t off = start; off < end; off += CONTENT_BLOCK)
    {
      size_t len = (size_t) (end - off < CONTENT_BLOCK ? end - off : CONTENT_BLOCK);
      if ((off_t) off >= de)
        {
          int r = ate_sparse_next_extent (w->fd, (off_t) off, (off_t) end, &ds, &de, err);
          if (r < 0)
            return -1;
          if (r == 0)
            ds = de = (off_t) end;
        }
      if (ds >= (off_t) (off + len))
        {
          put (w->ctx, &zero_tag, 1); /* entirely in a hole: not read */
          continue;
        }
      if (read_block (w, f, off, len, err) < 0)
        return -1;
      if (all_zero (w->block, len))
        put (w->ctx, &zero_tag, 1);
      else
        {
          put (w->ctx, &data_tag, 1);
          put (w->ctx, w->block, len);
        }
    }
  if (EVP_DigestFinal_ex (w->ctx, digest, &n) != 1)
    abort ();
  return 0;
}

/* File of chunk t (binary search in first_chunk). */
static size_t
file_of_chunk (const struct hasher *h, size_t t)
{
  size_t lo = 0, hi = h->s->n_files;
  while (hi - lo > 1)
    {
      size_t mid = lo + (hi - lo) / 2;
      if (h->first_chunk[mid] <= t)
        lo = mid;
      else
        hi = mid;
    }
  return lo;
}

static int
hash_chunk (struct worker *w, size_t t, struct ate_error **err)
{
  struct hasher *h = w->h;
  size_t fi = file_of_chunk (h, t);
  const struct rootfs_scan_file *f = &h->s->files[fi];
  uint64_t start = (uint64_t) (t - h->first_chunk[fi]) * ROOTFS_CONTENT_CHUNK;
  uint64_t end = start + ROOTFS_CONTENT_CHUNK < f->size ? start + ROOTFS_CONTENT_CHUNK : f->size;

  if (w->fd < 0 || w->file != fi)
    {
      close_and_reset (&w->fd);
      w->fd = open_listed (h, f, err);
      if (w->fd < 0)
        return -1;
      w->file = fi;
    }
  return hash_range (w, f, start, end, h->chunks[t], err);
}

static void
fail (struct hasher *h, struct ate_error **err)
{
  pthread_mutex_lock (&h->lock);
  if (h->err == NULL)
    h->err = steal_pointer (err);
  pthread_mutex_unlock (&h->lock);
  ate_error_release (err);
  atomic_store (&h->failed, true);
}

static void *
worker_main (void *arg)
{
  struct hasher *h = arg;
  struct ate_error *err = NULL;
  struct worker w = { .h = h, .fd = -1 };
  size_t total = h->first_chunk[h->s->n_files];

  w.ctx = EVP_MD_CTX_new ();
  if (w.ctx == NULL)
    ate_oom ();
  w.block = xmalloc (CONTENT_BLOCK);
  for (;;)
    {
      size_t t = atomic_fetch_add (&h->next, 1);
      if (t >= total)
        break;
      if (check_stop (h, &err) < 0 || hash_chunk (&w, t, &err) < 0)
        {
          if (err)
            fail (h, &err);
          break;
        }
    }
  close_and_reset (&w.fd);
  free (w.block);
  EVP_MD_CTX_free (w.ctx);
  return NULL;
}

static unsigned
thread_count (const struct rootfs_scan_opts *o, size_t total)
{
  long cpus = sysconf (_SC_NPROCESSORS_ONLN);
  unsigned n = o->threads ? o->threads : (unsigned) (cpus > 4 ? 4 : cpus < 1 ? 1 : cpus);

  if (n > ROOTFS_CONTENT_MAX_THREADS)
    n = ROOTFS_CONTENT_MAX_THREADS;
  if (n > total)
    n = total ? (unsigned) total : 1;
  return n;
}

static int
run_workers (struct hasher *h, unsigned n, struct ate_error **err)
{
  pthread_t tid[ROOTFS_CONTENT_MAX_THREADS];
  unsigned started = 0;

  for (; started + 1 < n; started++)
    if (pthread_create (&tid[started], NULL, worker_main, h) != 0)
      break; /* fewer helpers: slower, not wrong */
  worker_main (h); /* the calling thread works too */
  for (unsigned i = 0; i < started; i++)
    pthread_join (tid[i], NULL);
  if (h->err)
    {
      *err = steal_pointer (&h->err);
      return -1;
    }
  return 0;
}

/* content digest = SHA-256(index, SHA-256(chunk digests) per file; tree). */
static void
fold (const struct hasher *h, struct rootfs_scan *s)
{
  EVP_MD_CTX *all = EVP_MD_CTX_new ();
  unsigned int n = 0;

  if (all == NULL)
    ate_oom ();
  if (EVP_DigestInit_ex (all, EVP_sha256 (), NULL) != 1)
    abort ();
  for (size_t i = 0; i < s->n_files; i++)
    {
      uint8_t file_digest[ROOTFS_DIGEST_LEN], idx[8];
      size_t c0 = h->first_chunk[i], c1 = h->first_chunk[i + 1];
      if (EVP_Digest (h->chunks + c0, (c1 - c0) * sizeof (digest_t), file_digest, &n,
                      EVP_sha256 (), NULL)
          != 1)
        abort ();
      for (int k = 0; k < 8; k++)
        idx[k] = (uint8_t) (s->files[i].index >> (8 * k));
      put (all, idx, sizeof (idx));
      put (all, file_digest, sizeof (file_digest));
    }
  put (all, s->tree_digest, ROOTFS_DIGEST_LEN);
  if (EVP_DigestFinal_ex (all, s->content_digest, &n) != 1)
    abort ();
  EVP_MD_CTX_free (all);
  s->has_content_digest = true;
}

static int
open_root (const struct rootfs_scan *s, struct ate_error **err)
{
  cleanup_close int fd = open (s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st;

  if (fd < 0)
    return ate_error_make (err, errno, "open `%s`", s->root);
  if (fstat (fd, &st) < 0 || st.st_dev != s->root_dev || st.st_ino != s->root_ino)
    return ate_error_make (err, EAGAIN, "`%s` was replaced while it was scanned", s->name);
  return steal_fd (&fd);
}

int
rootfs_scan_verify_unchanged (const struct rootfs_scan *s, struct ate_error **err)
{
  cleanup_close int root = open_root (s, err);

  if (root < 0)
    return -1;
  for (size_t i = 0; i < s->n_files; i++)
    {
      const struct rootfs_scan_file *f = &s->files[i];
      struct stat st;
      /* A swapped directory component shows up as another inode. */
      if (fstatat (root, f->path, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ino != f->ino
          || st.st_dev != f->dev || !listed_file_unchanged (f, &st))
        return ate_error_make (err, EAGAIN,
                               "`%s/%s` changed while the disk was built (the source tree "
                               "must not change during a build)",
                               s->name, f->path);
    }
  return 0;
}

int
rootfs_scan_hash_content (struct rootfs_scan *s, const struct rootfs_scan_opts *o,
                          struct ate_error **err)
{
  struct hasher h = { .s = s, .o = o, .root_fd = -1 };
  size_t total = 0;
  int r;

  h.first_chunk = xmalloc ((s->n_files + 1) * sizeof (size_t));
  for (size_t i = 0; i < s->n_files; i++)
    {
      h.first_chunk[i] = total;
      total += (size_t) ((s->files[i].size + ROOTFS_CONTENT_CHUNK - 1) / ROOTFS_CONTENT_CHUNK);
    }
  h.first_chunk[s->n_files] = total;
  h.chunks = xcalloc (total ? total : 1, sizeof (digest_t));
  pthread_mutex_init (&h.lock, NULL);
  h.root_fd = open_root (s, err);
  r = h.root_fd < 0 ? -1 : run_workers (&h, thread_count (o, total), err);
  if (r == 0)
    fold (&h, s);
  close_and_reset (&h.root_fd);
  pthread_mutex_destroy (&h.lock);
  free (h.chunks);
  free (h.first_chunk);
  if (r < 0)
    return ate_error_wrap (err, "hash the content of `%s`", s->name);
  return 0;
}
