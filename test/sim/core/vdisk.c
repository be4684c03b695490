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
 * The qcow2 structure is parsed with runtime/qcow2 (which is stricter than
 * CH: it refuses what our server never hands CH).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2/qcow2.h"
#include "sim.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

#define DIRTY_BYTE 79 /* low byte of incompatible_features (offset 72) */
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
collect (uint64_t guest, uint64_t host, void *opaque, struct ate_error **err)
{
  struct sim_vdisk *d = opaque;
  (void) err;
  d->map[guest / d->cs] = host ? host : L2_ZERO;
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

static int
open_qcow2 (struct sim_vdisk *d, const char *path, bool backing_files, char **msg)
{
  struct qcow2_image *img = NULL;
  struct ate_error *err = NULL;
  uint8_t hb[64];
  struct stat st;
  const char *bname;
  int r = 0;

  if (qcow2_image_open (d->fd, NULL, &img, &err) < 0)
    {
      r = failf (msg, "Error opening qcow2 disk `%s`: %s", path, err->msg);
      ate_error_release (&err);
      return r;
    }
  d->qcow2 = true;
  d->vsize = qcow2_image_virtual_size (img);
  d->cs = UINT64_C (1) << qcow2_image_cluster_bits (img);
  d->n_clusters = (d->vsize + d->cs - 1) / d->cs;
  d->map = xcalloc (d->n_clusters, sizeof (*d->map));
  bname = qcow2_image_backing_name (img);
  if (bname && !backing_files)
    r = failf (msg, "Error opening qcow2 disk `%s`: it has a backing file (`%s`) and "
               "backing_files is not enabled", path, bname);
  else if (bname)
    r = open_backing (d, path, bname, msg);
  if (r == 0)
    qcow2_image_foreach_cluster (img, collect, d, NULL);
  qcow2_image_free (img);
  if (r < 0)
    return r;

  /* Header fields the clean close needs (validated above). */
  if (pread_full (d->fd, hb, sizeof hb, 0) < 0 || fstat (d->fd, &st) < 0)
    return failf (msg, "read qcow2 header of `%s`: %s", path, strerror (errno));
  d->l1_off = be64toh (*(uint64_t *) (hb + 40));
  d->rt_off = be64toh (*(uint64_t *) (hb + 48));
  d->rt_clusters = be32toh (*(uint32_t *) (hb + 56));
  d->n_l1 = (d->n_clusters + d->cs / 8 - 1) / (d->cs / 8);
  d->l1 = xcalloc (d->n_l1, sizeof (*d->l1));
  d->touched = xcalloc (d->n_l1, sizeof (*d->touched));
  if (pread_full (d->fd, d->l1, d->n_l1 * 8, d->l1_off) < 0)
    return failf (msg, "read L1 table of `%s`: %s", path, strerror (errno));
  for (uint64_t i = 0; i < d->n_l1; i++)
    d->l1[i] = be64toh (d->l1[i]) & UINT64_C (0x00fffffffffffe00);
  d->end = ((uint64_t) st.st_size + d->cs - 1) / d->cs * d->cs;
  return 0;
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
