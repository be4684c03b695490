/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulated VM's block devices, as cloud-hypervisor opens them
 * (docs/simulator.md, "Disks"): a raw file, or a qcow2 overlay whose
 * backing file is a raw base.  Like CH: the detected type must be the
 * declared image_type; a qcow2 with a backing file needs backing_files;
 * an overlay opened writable gets the v3 dirty bit, its allocation
 * metadata (L2 tables, refcounts) stays in memory while the VM runs and is
 * written only at a clean close, which clears the dirty bit.  A VMM that
 * dies leaves the dirty bit and stale tables behind, so a reader that does
 * not wait for the clean close sees an incomplete disk.
 *
 * The qcow2 structure is read here, independently of runtime/qcow2 (the
 * module that writes the overlays), so that a mistake there is not
 * repeated here: header fields, L1 and L2 tables are checked as a reader
 * must (bounds, alignment, features we do not implement).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

#define DIRTY_BYTE 79 /* low byte of incompatible_features (offset 72) */
#define QCOW2_MAGIC UINT32_C (0x514649fb)
#define INCOMPAT_DIRTY UINT64_C (1)
#define INCOMPAT_CORRUPT UINT64_C (2)
#define OFFSET_MASK UINT64_C (0x00fffffffffffe00)
#define L2_COMPRESSED (UINT64_C (1) << 62)
#define MIN_CLUSTER_BITS 9
#define MAX_CLUSTER_BITS 21
#define MAX_BACKING_NAME 1023
#define MAX_L1_ENTRIES (UINT64_C (32) << 20)
#define L2_ZERO UINT64_C (1)
#define COPIED (UINT64_C (1) << 63)

struct sim_vdisk
{
  int fd;         /* the image (borrowed) */
  int backing_fd; /* qcow2 only; -1: none */
  uint64_t backing_size;
  bool qcow2;
  bool writable;
  uint64_t vsize;
  uint64_t cs;
  uint64_t n_clusters;
  uint64_t *map;  /* qcow2: per guest cluster 0 (backing), L2_ZERO, or host offset */
  uint64_t *l1;   /* qcow2: L2 table offsets as opened (0: none) */
  uint64_t n_l1;
  bool *touched;  /* per L1 entry: map changed there */
  uint64_t *fresh; /* clusters allocated since open (their refcounts are pending) */
  size_t n_fresh, cap_fresh;
  uint64_t end;   /* next free host cluster */
  uint64_t l1_off, rt_off, rt_clusters;
};

static int
failf (char **msg, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
failf (char **msg, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  if (vasprintf (msg, fmt, ap) < 0)
    ate_oom ();
  va_end (ap);
  return -1;
}

static int
pread_full (int fd, void *buf, size_t len, uint64_t off)
{
  size_t done = 0;
  while (done < len)
    {
      ssize_t r = pread (fd, (char *) buf + done, len - done, (off_t) (off + done));
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return -1;
      if (r == 0)
        {
          memset ((char *) buf + done, 0, len - done);
          return 0;
        }
      done += (size_t) r;
    }
  return 0;
}

static int
pwrite_full (int fd, const void *buf, size_t len, uint64_t off)
{
  size_t done = 0;
  while (done < len)
    {
      ssize_t w = pwrite (fd, (const char *) buf + done, len - done, (off_t) (off + done));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return -1;
      done += (size_t) w;
    }
  return 0;
}

static int
open_backing (struct sim_vdisk *d, const char *path, const char *name, char **msg)
{
  cleanup_free char *dir = ate_path_dirname (path);
  cleanup_free char *full = name[0] == '/' ? xstrdup (name) : ate_path_join (dir, name);
  struct stat st;

  d->backing_fd = open (full, O_RDONLY | O_CLOEXEC);
  if (d->backing_fd < 0 || fstat (d->backing_fd, &st) < 0)
    return failf (msg, "Error opening backing file `%s` of disk `%s`: %s", full, path,
                  strerror (errno));
  d->backing_size = (uint64_t) st.st_size;
  return 0;
}

static uint64_t
be64_at (const uint8_t *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
  return be64toh (v);
}

static uint32_t
be32_at (const uint8_t *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return be32toh (v);
}

/* The header fields this reader uses, checked. */
struct header
{
  uint32_t version;
  uint32_t cluster_bits;
  uint64_t size;
  uint32_t l1_size;
  uint64_t l1_off, rt_off;
  uint32_t rt_clusters;
  uint64_t incompat;
  uint64_t backing_off;
  uint32_t backing_len;
};

static int
read_header (struct sim_vdisk *d, const char *path, uint64_t file_size, struct header *h,
             char **msg)
{
  uint8_t hb[104];
  uint64_t cs, needed_l1;

  if (pread_full (d->fd, hb, sizeof hb, 0) < 0)
    return failf (msg, "Error opening qcow2 disk `%s`: %s", path, strerror (errno));
  if (be32_at (hb) != QCOW2_MAGIC)
    return failf (msg, "Error opening qcow2 disk `%s`: bad magic", path);
  h->version = be32_at (hb + 4);
  h->backing_off = be64_at (hb + 8);
  h->backing_len = be32_at (hb + 16);
  h->cluster_bits = be32_at (hb + 20);
  h->size = be64_at (hb + 24);
  h->l1_size = be32_at (hb + 36);
  h->l1_off = be64_at (hb + 40);
  h->rt_off = be64_at (hb + 48);
  h->rt_clusters = be32_at (hb + 56);
  h->incompat = h->version >= 3 ? be64_at (hb + 72) : 0;
  if (h->version != 2 && h->version != 3)
    return failf (msg, "Error opening qcow2 disk `%s`: unsupported version %u", path,
                  h->version);
  if (h->cluster_bits < MIN_CLUSTER_BITS || h->cluster_bits > MAX_CLUSTER_BITS)
    return failf (msg, "Error opening qcow2 disk `%s`: invalid cluster size (2^%u)", path,
                  h->cluster_bits);
  cs = UINT64_C (1) << h->cluster_bits;
  if (be32_at (hb + 32) != 0)
    return failf (msg, "Error opening qcow2 disk `%s`: encrypted images are not supported",
                  path);
  if (be32_at (hb + 60) != 0)
    return failf (msg, "Error opening qcow2 disk `%s`: internal snapshots are not supported",
                  path);
  if (h->version >= 3 && be32_at (hb + 96) != 4)
    return failf (msg, "Error opening qcow2 disk `%s`: refcount order %u is not supported "
                  "(16-bit refcounts only)", path, be32_at (hb + 96));
  if (h->incompat & INCOMPAT_CORRUPT)
    return failf (msg, "Error opening qcow2 disk `%s`: the image is marked corrupt", path);
  if (h->incompat & INCOMPAT_DIRTY)
    return failf (msg, "Error opening qcow2 disk `%s`: the image is dirty (its writer did "
                  "not close it cleanly)", path);
  if (h->incompat & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT))
    return failf (msg, "Error opening qcow2 disk `%s`: unsupported incompatible features "
                  "0x%llx", path, (unsigned long long) h->incompat);
  if (h->size == 0 || h->size > (UINT64_C (1) << 50))
    return failf (msg, "Error opening qcow2 disk `%s`: invalid virtual size %llu", path,
                  (unsigned long long) h->size);
  needed_l1 = ((h->size + cs - 1) / cs + cs / 8 - 1) / (cs / 8);
  if (h->l1_size < needed_l1 || h->l1_size > MAX_L1_ENTRIES)
    return failf (msg, "Error opening qcow2 disk `%s`: L1 table of %u entries for %llu "
                  "bytes", path, h->l1_size, (unsigned long long) h->size);
  if (h->l1_off % cs || h->rt_off % cs || h->l1_off == 0 || h->rt_off == 0
      || h->l1_off + (uint64_t) h->l1_size * 8 > file_size
      || h->rt_clusters == 0 || h->rt_off + (uint64_t) h->rt_clusters * cs > file_size)
    return failf (msg, "Error opening qcow2 disk `%s`: L1 or refcount table outside the "
                  "file or not cluster aligned", path);
  if (h->backing_len > MAX_BACKING_NAME
      || (h->backing_off && h->backing_off + h->backing_len > cs))
    return failf (msg, "Error opening qcow2 disk `%s`: invalid backing file name field",
                  path);
  return 0;
}

/* Every L2 entry into d->map (guest cluster -> host offset, L2_ZERO, 0). */
static int
load_map (struct sim_vdisk *d, const char *path, uint64_t file_size, char **msg)
{
  uint64_t l2e = d->cs / 8;
  cleanup_free uint64_t *l2 = xmalloc (d->cs);

  for (uint64_t i = 0; i < d->n_l1; i++)
    {
      if (d->l1[i] == 0)
        continue;
      if (d->l1[i] % d->cs || d->l1[i] + d->cs > file_size)
        return failf (msg, "Error opening qcow2 disk `%s`: L2 table %llu outside the file",
                      path, (unsigned long long) i);
      if (pread_full (d->fd, l2, d->cs, d->l1[i]) < 0)
        return failf (msg, "read L2 table of `%s`: %s", path, strerror (errno));
      for (uint64_t j = 0; j < l2e && i * l2e + j < d->n_clusters; j++)
        {
          uint64_t e = be64toh (l2[j]), off = e & OFFSET_MASK;
          if (e & L2_COMPRESSED)
            return failf (msg, "Error opening qcow2 disk `%s`: compressed clusters are not "
                          "supported", path);
          if (off != 0 && (off % d->cs || off + d->cs > file_size))
            return failf (msg, "Error opening qcow2 disk `%s`: data cluster at %llu outside "
                          "the file", path, (unsigned long long) off);
          d->map[i * l2e + j] = off ? off : (e & L2_ZERO) ? L2_ZERO : 0;
        }
    }
  return 0;
}

static int
open_qcow2 (struct sim_vdisk *d, const char *path, bool backing_files, char **msg)
{
  struct header h = { 0 };
  struct stat st;
  cleanup_free char *bname = NULL;

  if (fstat (d->fd, &st) < 0)
    return failf (msg, "Error opening qcow2 disk `%s`: %s", path, strerror (errno));
  if (read_header (d, path, (uint64_t) st.st_size, &h, msg) < 0)
    return -1;
  d->qcow2 = true;
  d->vsize = h.size;
  d->cs = UINT64_C (1) << h.cluster_bits;
  d->n_clusters = (d->vsize + d->cs - 1) / d->cs;
  d->map = xcalloc (d->n_clusters, sizeof (*d->map));
  d->l1_off = h.l1_off;
  d->rt_off = h.rt_off;
  d->rt_clusters = h.rt_clusters;
  d->n_l1 = (d->n_clusters + d->cs / 8 - 1) / (d->cs / 8);
  d->l1 = xcalloc (d->n_l1, sizeof (*d->l1));
  d->touched = xcalloc (d->n_l1, sizeof (*d->touched));
  if (pread_full (d->fd, d->l1, d->n_l1 * 8, d->l1_off) < 0)
    return failf (msg, "read L1 table of `%s`: %s", path, strerror (errno));
  for (uint64_t i = 0; i < d->n_l1; i++)
    d->l1[i] = be64toh (d->l1[i]) & OFFSET_MASK;
  if (load_map (d, path, (uint64_t) st.st_size, msg) < 0)
    return -1;
  d->end = ((uint64_t) st.st_size + d->cs - 1) / d->cs * d->cs;
  if (h.backing_off == 0)
    return 0;
  bname = xmalloc0 (h.backing_len + 1);
  if (pread_full (d->fd, bname, h.backing_len, h.backing_off) < 0)
    return failf (msg, "read the backing file name of `%s`: %s", path, strerror (errno));
  if (strlen (bname) != h.backing_len || h.backing_len == 0)
    return failf (msg, "Error opening qcow2 disk `%s`: invalid backing file name", path);
  if (!backing_files)
    return failf (msg, "Error opening qcow2 disk `%s`: it has a backing file (`%s`) and "
                  "backing_files is not enabled", path, bname);
  return open_backing (d, path, bname, msg);
}

int
sim_vdisk_open (int fd, const char *path, const char *image_type, bool backing_files,
                bool writable, struct sim_vdisk **out, char **msg)
{
  struct sim_vdisk *d = xmalloc0 (sizeof (*d));
  uint8_t magic[4] = { 0 };
  struct stat st;
  const char *detected;

  d->fd = fd;
  d->backing_fd = -1;
  d->writable = writable;
  if (fstat (fd, &st) < 0 || pread_full (fd, magic, 4, 0) < 0)
    {
      sim_vdisk_close (d, false);
      return failf (msg, "Error opening disk `%s`: %s", path, strerror (errno));
    }
  detected = memcmp (magic, "QFI\xfb", 4) == 0 ? "Qcow2" : "Raw";
  /* CH refuses a disk whose declared type is not the one it detects. */
  if (image_type && strcmp (image_type, detected) != 0)
    {
      sim_vdisk_close (d, false);
      return failf (msg, "Error opening disk `%s`: image type mismatch: configured %s, "
                    "detected %s", path, image_type, detected);
    }
  if (strcmp (detected, "Raw") == 0)
    {
      d->vsize = (uint64_t) st.st_size;
      *out = d;
      return 0;
    }
  if (open_qcow2 (d, path, backing_files, msg) < 0)
    {
      sim_vdisk_close (d, false);
      return -1;
    }
  if (writable)
    {
      uint8_t b;
      if (pread_full (fd, &b, 1, DIRTY_BYTE) < 0 || (b |= 1, pwrite_full (fd, &b, 1, DIRTY_BYTE)) < 0
          || fsync (fd) < 0)
        {
          sim_vdisk_close (d, false);
          return failf (msg, "set the dirty bit of `%s`: %s", path, strerror (errno));
        }
    }
  *out = d;
  return 0;
}

uint64_t
sim_vdisk_size (const struct sim_vdisk *d)
{
  return d->vsize;
}

uint64_t
sim_vdisk_cluster_size (const struct sim_vdisk *d)
{
  return d->qcow2 ? d->cs : SIM_PAGE;
}

/* One guest cluster's current content into buf (cs bytes). */
static int
read_cluster (struct sim_vdisk *d, uint64_t c, uint8_t *buf)
{
  uint64_t e = d->map[c], off = c * d->cs;

  if (e == L2_ZERO || (e == 0 && (d->backing_fd < 0 || off >= d->backing_size)))
    {
      memset (buf, 0, d->cs);
      return 0;
    }
  if (e == 0)
    return pread_full (d->backing_fd, buf, d->cs, off);
  return pread_full (d->fd, buf, d->cs, e);
}

int
sim_vdisk_read (struct sim_vdisk *d, uint64_t off, void *buf, size_t len)
{
  cleanup_free uint8_t *cl = NULL;

  if (off > d->vsize || len > d->vsize - off)
    {
      errno = EINVAL;
      return -1;
    }
  if (!d->qcow2)
    return pread_full (d->fd, buf, len, off);
  cl = xmalloc (d->cs);
  for (size_t done = 0; done < len;)
    {
      uint64_t c = (off + done) / d->cs, in = (off + done) % d->cs;
      size_t n = (size_t) (d->cs - in) < len - done ? (size_t) (d->cs - in) : len - done;
      if (read_cluster (d, c, cl) < 0)
        return -1;
      memcpy ((uint8_t *) buf + done, cl + in, n);
      done += n;
    }
  return 0;
}

static void
fresh_add (struct sim_vdisk *d, uint64_t host)
{
  if (d->n_fresh == d->cap_fresh)
    {
      d->cap_fresh = d->cap_fresh ? 2 * d->cap_fresh : 64;
      d->fresh = xrealloc (d->fresh, d->cap_fresh * sizeof (*d->fresh));
    }
  d->fresh[d->n_fresh++] = host;
}

static uint64_t
alloc_cluster (struct sim_vdisk *d)
{
  uint64_t h = d->end;
  d->end += d->cs;
  fresh_add (d, h);
  return h;
}

int
sim_vdisk_write (struct sim_vdisk *d, uint64_t off, const void *buf, size_t len)
{
  cleanup_free uint8_t *cl = NULL;

  if (!d->writable || off > d->vsize || len > d->vsize - off)
    {
      errno = d->writable ? EINVAL : EROFS;
      return -1;
    }
  if (!d->qcow2)
    return pwrite_full (d->fd, buf, len, off);
  cl = xmalloc (d->cs);
  for (size_t done = 0; done < len;)
    {
      uint64_t c = (off + done) / d->cs, in = (off + done) % d->cs;
      size_t n = (size_t) (d->cs - in) < len - done ? (size_t) (d->cs - in) : len - done;
      uint64_t e = d->map[c];
      if (e != 0 && e != L2_ZERO)
        {
          if (pwrite_full (d->fd, (const uint8_t *) buf + done, n, e + in) < 0)
            return -1;
        }
      else
        {
          /* Copy on write: the cluster's old content (backing or zeros)
           * under the new bytes, into a cluster at the end of the file. */
          if (read_cluster (d, c, cl) < 0)
            return -1;
          memcpy (cl + in, (const uint8_t *) buf + done, n);
          e = alloc_cluster (d);
          if (pwrite_full (d->fd, cl, d->cs, e) < 0)
            return -1;
          d->map[c] = e;
          d->touched[c / (d->cs / 8)] = true;
        }
      done += n;
    }
  return 0;
}

/* The clean close: L2 tables, L1 entries and refcounts of everything
 * allocated since the open, then the dirty bit cleared. */
static int
flush_metadata (struct sim_vdisk *d)
{
  uint64_t l2e = d->cs / 8, per_block = d->cs / 2;
  cleanup_free uint64_t *t = xmalloc (d->cs);
  cleanup_free uint64_t *rt = xmalloc (d->rt_clusters * d->cs);
  uint8_t b;

  for (uint64_t i = 0; i < d->n_l1; i++)
    {
      if (!d->touched[i])
        continue;
      if (d->l1[i] == 0)
        {
          uint64_t e;
          d->l1[i] = alloc_cluster (d);
          e = htobe64 (d->l1[i] | COPIED);
          if (pwrite_full (d->fd, &e, 8, d->l1_off + i * 8) < 0)
            return -1;
        }
      for (uint64_t j = 0; j < l2e; j++)
        {
          uint64_t g = i * l2e + j, e = g < d->n_clusters ? d->map[g] : 0;
          t[j] = htobe64 (e == 0 ? 0 : e == L2_ZERO ? 1 : (e | COPIED));
        }
      if (pwrite_full (d->fd, t, d->cs, d->l1[i]) < 0)
        return -1;
    }
  if (pread_full (d->fd, rt, d->rt_clusters * d->cs, d->rt_off) < 0)
    return -1;
  for (size_t k = 0; k < d->n_fresh; k++)
    {
      uint64_t c = d->fresh[k] / d->cs, blk = c / per_block, rb;
      uint16_t one = htobe16 (1);
      if (blk >= d->rt_clusters * (d->cs / 8))
        {
          errno = EFBIG;
          return -1;
        }
      rb = be64toh (rt[blk]);
      if (rb == 0)
        {
          /* A new refcount block (itself counted: the loop reaches it). */
          rb = alloc_cluster (d);
          rt[blk] = htobe64 (rb);
          if (ftruncate (d->fd, (off_t) d->end) < 0
              || pwrite_full (d->fd, &rt[blk], 8, d->rt_off + blk * 8) < 0)
            return -1;
        }
      if (pwrite_full (d->fd, &one, 2, rb + (c % per_block) * 2) < 0)
        return -1;
    }
  if (ftruncate (d->fd, (off_t) d->end) < 0 || fsync (d->fd) < 0)
    return -1;
  if (pread_full (d->fd, &b, 1, DIRTY_BYTE) < 0)
    return -1;
  b &= (uint8_t) ~1u;
  if (pwrite_full (d->fd, &b, 1, DIRTY_BYTE) < 0 || fsync (d->fd) < 0)
    return -1;
  return 0;
}

int
sim_vdisk_close (struct sim_vdisk *d, bool clean)
{
  int r = 0;

  if (d == NULL)
    return 0;
  if (clean && d->qcow2 && d->writable)
    r = flush_metadata (d);
  if (d->backing_fd >= 0)
    close (d->backing_fd);
  free (d->map);
  free (d->l1);
  free (d->touched);
  free (d->fresh);
  free (d);
  return r;
}

/* ---- the guest's view for its digest ---- */

bool
sim_vdisk_is_qcow2 (const struct sim_vdisk *d)
{
  return d->qcow2;
}

int
sim_vdisk_foreach_written (struct sim_vdisk *d, sim_vdisk_cluster_fn fn, void *opaque)
{
  cleanup_free uint8_t *cl = xmalloc (d->cs);

  for (uint64_t c = 0; c < d->n_clusters; c++)
    {
      if (d->map[c] == 0)
        continue;
      if (read_cluster (d, c, cl) < 0)
        return -1;
      fn (c * d->cs, cl, d->cs, opaque);
    }
  return 0;
}

int
sim_vdisk_raw_fd (const struct sim_vdisk *d)
{
  return d->fd;
}

int
sim_vdisk_backing_fd (const struct sim_vdisk *d, uint64_t *size)
{
  *size = d->backing_size;
  return d->backing_fd;
}
