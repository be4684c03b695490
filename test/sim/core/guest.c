/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulated guest's own memory: page 0 is a header it owns, pages
 * 1..63 belong to the agent, and SIM_INTEGRITY_PAGES pages spread over the
 * rest of RAM are written once at boot and never again.  A restore from an
 * incomplete image (an OnDemand delta that was not merged) therefore loses
 * them, and the guest notices before it resumes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"
#include "util/error.h"
#include "util/sparse.h"
#include "util/util.h"

#define HDR_MAGIC "ATESIMG1"
#define DIRTY_POOL_MAX 1024 /* pages the running guest keeps rewriting */
#define DIRTY_PER_TICK 4

struct guest_header
{
  char magic[8];
  uint32_t layout;
  uint32_t n_integrity;
  uint8_t boot_id[16];
  uint8_t lineage_id[16];
  uint64_t mem_size;
  uint64_t clock_ns;     /* guest run time */
  uint64_t ticks;
  uint64_t snapshots;    /* snapshots taken in this lineage */
  uint32_t n_digests;    /* 0 until the lineage's first snapshot */
  uint32_t pad;
  uint8_t digests[SIM_MAX_DIGESTS][16];
  uint64_t integrity[SIM_INTEGRITY_PAGES];
  uint64_t checksum;
};

_Static_assert (sizeof (struct guest_header) <= SIM_PAGE, "header fits page 0");

/* ------------------------------------------------------------- hashing */

static inline uint64_t
mix64 (uint64_t x)
{
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

struct hash128
{
  uint64_t a, b;
};

static void
hash_init (struct hash128 *h)
{
  h->a = 0x9e3779b97f4a7c15ULL;
  h->b = 0xc2b2ae3d27d4eb4fULL;
}

static void
hash_u64 (struct hash128 *h, uint64_t w)
{
  h->a = mix64 (h->a ^ w) + 0x165667b19e3779f9ULL;
  h->b = mix64 (h->b + w * 0xff51afd7ed558ccdULL) ^ h->a;
}

static void
hash_bytes (struct hash128 *h, const void *p, size_t n)
{
  const unsigned char *c = p;
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    {
      uint64_t w;
      memcpy (&w, c + i, 8);
      hash_u64 (h, w);
    }
  uint64_t tail = 0;
  memcpy (&tail, c + i, n - i);
  hash_u64 (h, tail ^ ((uint64_t) (n - i) << 56));
}

static uint64_t
header_checksum (const struct guest_header *g)
{
  struct hash128 h;
  hash_init (&h);
  hash_bytes (&h, g, offsetof (struct guest_header, checksum));
  return h.a ^ h.b;
}

/* ----------------------------------------------------------- integrity */

static void
integrity_fill (const uint8_t boot_id[16], uint64_t page, unsigned char *buf)
{
  uint64_t seed, x;
  memcpy (&seed, boot_id, 8);
  x = mix64 (seed ^ mix64 (page + 1));
  for (size_t i = 0; i < SIM_PAGE; i += 8)
    {
      x = mix64 (x + 0x9e3779b97f4a7c15ULL);
      memcpy (buf + i, &x, 8);
    }
}

static uint64_t
integrity_page (size_t npages, unsigned i)
{
  size_t span = npages - SIM_GUEST_RESERVED_PAGES;
  return SIM_GUEST_RESERVED_PAGES + (uint64_t) i * (span - 1) / (SIM_INTEGRITY_PAGES - 1);
}

static int
header_store (struct sim_mem *m, struct guest_header *g)
{
  g->checksum = header_checksum (g);
  return sim_mem_write (m, 0, g, sizeof (*g));
}

int
sim_guest_cold_boot (struct sim_mem *m, char **errmsg)
{
  struct guest_header g = { 0 };
  unsigned char page[SIM_PAGE];

  memcpy (g.magic, HDR_MAGIC, 8);
  g.layout = 1;
  g.n_integrity = SIM_INTEGRITY_PAGES;
  g.mem_size = m->size;
  if (getrandom (g.boot_id, sizeof (g.boot_id), 0) != sizeof (g.boot_id)
      || getrandom (g.lineage_id, sizeof (g.lineage_id), 0) != sizeof (g.lineage_id))
    {
      *errmsg = xasprintf ("getrandom: %s", strerror (errno));
      return -1;
    }
  for (unsigned i = 0; i < SIM_INTEGRITY_PAGES; i++)
    {
      g.integrity[i] = integrity_page (m->npages, i);
      integrity_fill (g.boot_id, g.integrity[i], page);
      if (sim_mem_write (m, g.integrity[i] * SIM_PAGE, page, SIM_PAGE) < 0)
        goto fail;
    }
  if (header_store (m, &g) < 0)
    goto fail;
  return 0;
fail:
  *errmsg = xasprintf ("guest memory write: %s", strerror (errno));
  return -1;
}

/* A page of the dirty pool that is not an integrity page. */
static uint64_t
dirty_page (struct sim_mem *m, uint64_t n)
{
  size_t span = m->npages - SIM_GUEST_RESERVED_PAGES;
  size_t pool = span < DIRTY_POOL_MAX ? span : DIRTY_POOL_MAX;
  for (;;)
    {
      uint64_t pg = SIM_GUEST_RESERVED_PAGES + mix64 (n) % pool;
      bool hit = false;
      for (unsigned i = 0; i < SIM_INTEGRITY_PAGES; i++)
        hit |= integrity_page (m->npages, i) == pg;
      if (!hit)
        return pg;
      n++;
    }
}

void
sim_guest_tick (struct sim_mem *m, uint64_t elapsed_ns)
{
  struct guest_header g;

  if (sim_mem_read (m, 0, &g, sizeof (g)) < 0 || memcmp (g.magic, HDR_MAGIC, 8) != 0)
    return; /* a broken guest does nothing */
  g.clock_ns += elapsed_ns;
  for (unsigned i = 0; i < DIRTY_PER_TICK; i++)
    {
      uint64_t pg = dirty_page (m, g.ticks * DIRTY_PER_TICK + i);
      uint64_t stamp[2] = { g.ticks, pg };
      sim_mem_write (m, pg * SIM_PAGE + (g.ticks % 256) * 16, stamp, sizeof (stamp));
    }
  g.ticks++;
  header_store (m, &g);
}

/* -------------------------------------------------------------- disks */

/* Holes and zero blocks hash alike: the digest is about content, not
 * about how a copy happened to allocate it. */
static void
hash_blocks (struct hash128 *h, uint64_t base, const uint8_t *p, uint64_t len)
{
  static const unsigned char zero[SIM_PAGE];
  for (uint64_t b = 0; b < len; b += SIM_PAGE)
    {
      size_t n = len - b < SIM_PAGE ? (size_t) (len - b) : SIM_PAGE;
      if (memcmp (p + b, zero, n) == 0)
        continue;
      hash_u64 (h, base + b);
      hash_bytes (h, p + b, n);
    }
}

/* The digest of an overlay is one of its virtual disk: the base (sampled
 * below: it stands for itself) and every 4 KiB block where what the guest
 * reads differs from the base there.  How the overlay stores it does not
 * count: a cluster copied with the base's own bytes, or zeroes over zeroes,
 * is the same disk as no cluster at all. */
struct overlay_hash
{
  struct hash128 *h;
  int base_fd; /* -1: no backing file (reads as zeros) */
  uint64_t base_size;
  uint8_t *base_buf;
  int error;
};

static void
hash_cluster (uint64_t guest_off, const uint8_t *data, uint64_t len, void *opaque)
{
  struct overlay_hash *o = opaque;

  memset (o->base_buf, 0, len);
  if (o->base_fd >= 0 && guest_off < o->base_size)
    {
      uint64_t n = o->base_size - guest_off < len ? o->base_size - guest_off : len;
      if (pread (o->base_fd, o->base_buf, n, (off_t) guest_off) < 0)
        o->error = errno;
    }
  for (uint64_t b = 0; b < len; b += SIM_PAGE)
    {
      size_t n = len - b < SIM_PAGE ? (size_t) (len - b) : SIM_PAGE;
      if (memcmp (data + b, o->base_buf + b, n) == 0)
        continue;
      hash_u64 (o->h, guest_off + b);
      hash_bytes (o->h, data + b, n);
    }
}

/* A raw disk: every data extent. */
static int
digest_extents (int fd, uint64_t size, struct hash128 *h, char **errmsg)
{
  struct ate_error *err = NULL;
  unsigned char buf[SIM_PAGE];
  off_t off = 0, s, e;
  int r;

  while ((r = ate_sparse_next_extent (fd, off, (off_t) size, &s, &e, &err)) > 0)
    {
      for (off_t b = s - s % SIM_PAGE; b < e; b += SIM_PAGE)
        {
          ssize_t n = pread (fd, buf, SIM_PAGE, b);
          if (n < 0)
            {
              *errmsg = xasprintf ("read disk: %s", strerror (errno));
              return -1;
            }
          if (n > 0)
            hash_blocks (h, (uint64_t) b, buf, (uint64_t) n);
        }
      off = e;
    }
  if (r < 0)
    {
      *errmsg = xasprintf ("read disk: %s", err->msg);
      ate_error_release (&err);
      return -1;
    }
  return 0;
}

/* A qcow2 overlay's base stands for itself by its size, first MiB and a
 * 64 KiB sample every 64 MiB: a base of another image or build differs
 * there, and a restore does not read gigabytes of an unchanged base. */
static int
digest_base_sampled (int fd, uint64_t size, struct hash128 *h, char **errmsg)
{
  cleanup_free uint8_t *buf = xmalloc (1u << 20);

  hash_u64 (h, size);
  for (uint64_t off = 0; off < size; off += 64u << 20)
    {
      size_t want = off == 0 ? (1u << 20) : (64u << 10);
      ssize_t n;
      if (want > size - off)
        want = (size_t) (size - off);
      n = pread (fd, buf, want, (off_t) off);
      if (n < 0)
        {
          *errmsg = xasprintf ("read the backing file: %s", strerror (errno));
          return -1;
        }
      hash_blocks (h, off, buf, (uint64_t) n);
    }
  return 0;
}

int
sim_disk_digest (struct sim_vdisk *d, uint8_t out[16], char **errmsg)
{
  struct hash128 h;

  hash_init (&h);
  hash_u64 (&h, sim_vdisk_size (d));
  if (sim_vdisk_is_qcow2 (d))
    {
      uint64_t bsize = 0;
      int bfd = sim_vdisk_backing_fd (d, &bsize);
      cleanup_free uint8_t *buf = xmalloc (sim_vdisk_cluster_size (d));
      struct overlay_hash o = { .h = &h, .base_fd = bfd, .base_size = bsize, .base_buf = buf };
      if (bfd >= 0 && digest_base_sampled (bfd, bsize, &h, errmsg) < 0)
        return -1;
      if (sim_vdisk_foreach_written (d, hash_cluster, &o) < 0 || o.error)
        {
          *errmsg = xasprintf ("read disk: %s", strerror (o.error ? o.error : errno));
          return -1;
        }
    }
  else if (digest_extents (sim_vdisk_raw_fd (d), sim_vdisk_size (d), &h, errmsg) < 0)
    return -1;
  memcpy (out, &h.a, 8);
  memcpy (out + 8, &h.b, 8);
  return 0;
}

int
sim_guest_record_disks (struct sim_mem *m, struct sim_vdisk *const *disks, size_t n,
                        char **errmsg)
{
  struct guest_header g;

  if (sim_mem_read (m, 0, &g, sizeof (g)) < 0)
    {
      *errmsg = xasprintf ("read guest header: %s", strerror (errno));
      return -1;
    }
  g.snapshots++;
  /* The guest's page cache now describes these disks: a restore of this
   * snapshot must give it disks that read back the same. */
  if (n > SIM_MAX_DIGESTS)
    n = SIM_MAX_DIGESTS;
  for (size_t i = 0; i < n; i++)
    if (sim_disk_digest (disks[i], g.digests[i], errmsg) < 0)
      return -1;
  g.n_digests = (uint32_t) n;
  if (header_store (m, &g) < 0)
    {
      *errmsg = xasprintf ("write guest header: %s", strerror (errno));
      return -1;
    }
  return 0;
}

static int
check_integrity (struct sim_mem *m, const struct guest_header *g, char **errmsg)
{
  unsigned char want[SIM_PAGE], got[SIM_PAGE];
  unsigned lost = 0, first = 0;

  if (g->n_integrity != SIM_INTEGRITY_PAGES)
    {
      *errmsg = xasprintf ("guest memory header is corrupt (integrity table)");
      return -1;
    }
  for (unsigned i = 0; i < SIM_INTEGRITY_PAGES; i++)
    {
      uint64_t pg = g->integrity[i];
      if (pg >= m->npages || sim_mem_peek (m, pg * SIM_PAGE, got, SIM_PAGE) < 0)
        {
          *errmsg = xasprintf ("guest memory header is corrupt (page %llu)",
                               (unsigned long long) pg);
          return -1;
        }
      integrity_fill (g->boot_id, pg, want);
      if (memcmp (want, got, SIM_PAGE) != 0 && lost++ == 0)
        first = (unsigned) pg;
    }
  if (lost)
    {
      *errmsg = xasprintf ("guest memory is incomplete: %u of %u pages the guest wrote at boot "
                           "are lost (first: page %u); was an OnDemand snapshot delta restored "
                           "without merging it into its base?",
                           lost, SIM_INTEGRITY_PAGES, first);
      return -1;
    }
  return 0;
}

int
sim_guest_check (struct sim_mem *m, struct sim_vdisk *const *disks, size_t n, char **errmsg)
{
  struct guest_header g;

  if (sim_mem_peek (m, 0, &g, sizeof (g)) < 0)
    {
      *errmsg = xasprintf ("read guest header: %s", strerror (errno));
      return -1;
    }
  if (memcmp (g.magic, HDR_MAGIC, 8) != 0 || g.checksum != header_checksum (&g))
    {
      *errmsg = xasprintf ("guest memory header is missing or corrupt (page 0): the restored "
                           "memory is not a complete image of this guest");
      return -1;
    }
  if (g.mem_size != m->size)
    {
      *errmsg = xasprintf ("guest was booted with %llu bytes of memory, restored with %llu",
                           (unsigned long long) g.mem_size, (unsigned long long) m->size);
      return -1;
    }
  if (check_integrity (m, &g, errmsg) < 0)
    return -1;
  if (g.n_digests && n != g.n_digests)
    {
      *errmsg = xasprintf ("guest had %u writable disks, the restored VM has %zu", g.n_digests, n);
      return -1;
    }
  for (size_t i = 0; i < g.n_digests; i++)
    {
      uint8_t d[16];
      if (sim_disk_digest (disks[i], d, errmsg) < 0)
        return -1;
      if (memcmp (d, g.digests[i], 16) != 0)
        {
          *errmsg = xasprintf ("guest rootfs (writable disk %zu) differs from what the guest "
                               "had at its snapshot: files it wrote are lost or changed",
                               i);
          return -1;
        }
    }
  return 0;
}
