/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qcow2 v3 reader, validator and writer (qcow2.h; the format is qemu's
 * docs/interop/qcow2.txt).  Everything is big-endian on disk.  We accept
 * the subset that we write and that cloud-hypervisor writes into our
 * overlays: no encryption, compression, external data, extended L2
 * entries, snapshots, bitmaps or unknown features, 16-bit refcounts.
 * Refcount values are not read (we never share clusters and recompute
 * them when writing); the refcount tables are still bounds-checked, as
 * cloud-hypervisor reads them.
 */
#define _GNU_SOURCE
#include "qcow2.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

#define QCOW2_MAGIC UINT32_C (0x514649fb)
#define HEADER_V3_LEN 104u
/* What we write: the v3 header plus the compression type byte (zlib, as
 * qemu writes it); cloud-hypervisor reads header extensions only after a
 * header longer than 104 bytes. */
#define HEADER_OUR_LEN 112u
#define HEADER_MAX_LEN 4096u

#define EXT_END UINT32_C (0)
#define EXT_BACKING_FORMAT UINT32_C (0xe2792aca)
#define EXT_FEATURE_NAMES UINT32_C (0x6803f857)
#define EXT_MAX 16

#define INCOMPAT_DIRTY UINT64_C (1)
#define REFCOUNT_ORDER 4u
#define REFCOUNT_BYTES 2u

#define OFLAG_COPIED (UINT64_C (1) << 63)
#define OFLAG_COMPRESSED (UINT64_C (1) << 62)
#define OFLAG_ZERO UINT64_C (1)
#define OFFSET_MASK UINT64_C (0x00fffffffffffe00)
#define L1_RESERVED UINT64_C (0x7f000000000001ff)
#define L2_RESERVED UINT64_C (0x3f000000000001fe)
#define RT_RESERVED UINT64_C (0x00000000000001ff)

/* An L2 entry as kept in memory: 0 unallocated, L2_ZERO reads as zeros,
 * else the (cluster-aligned, non-zero) host offset of the data. */
#define L2_ZERO UINT64_C (1)

struct qcow2_image
{
  int fd;
  uint64_t file_size;
  uint32_t cluster_bits;
  uint64_t virtual_size;
  char *backing_name;
  uint64_t n_l1;       /* L1 entries the virtual size needs */
  uint64_t **l2;       /* n_l1 tables (NULL: none or nothing allocated) */
  uint64_t n_l2;       /* tables with at least one allocated entry */
  uint64_t n_data;
  uint64_t n_zero;
};

struct header
{
  uint32_t magic, version;
  uint64_t backing_off;
  uint32_t backing_len, cluster_bits;
  uint64_t size;
  uint32_t crypt, l1_size;
  uint64_t l1_off, rt_off;
  uint32_t rt_clusters, nb_snapshots;
  uint64_t snapshots_off, incompat, compat, autoclear;
  uint32_t refcount_order, header_len;
};

#define invalid(err, ...) \
  ate_error_make_code ((err), ATE_CODE_INVALID_ARGUMENT, EINVAL, "invalid qcow2: " __VA_ARGS__)

static uint32_t
get32 (const uint8_t *p)
{
  uint32_t v;
  memcpy (&v, p, sizeof v);
  return be32toh (v);
}

static uint64_t
get64 (const uint8_t *p)
{
  uint64_t v;
  memcpy (&v, p, sizeof v);
  return be64toh (v);
}

static void
put32 (uint8_t *p, uint32_t v)
{
  v = htobe32 (v);
  memcpy (p, &v, sizeof v);
}

static void
put64 (uint8_t *p, uint64_t v)
{
  v = htobe64 (v);
  memcpy (p, &v, sizeof v);
}

static uint64_t
div_up (uint64_t a, uint64_t b)
{
  return a / b + (a % b != 0);
}

static int
read_at (int fd, void *buf, size_t len, uint64_t off, struct ate_error **err)
{
  size_t done = 0;

  while (done < len)
    {
      ssize_t r = TEMP_FAILURE_RETRY (pread (fd, (char *) buf + done, len - done, (off_t) (off + done)));
      if (r < 0)
        return ate_error_make (err, errno, "read qcow2 at %" PRIu64, off + done);
      if (r == 0)
        return invalid (err, "file ends at %" PRIu64 " inside a table", off + done);
      done += (size_t) r;
    }
  return 0;
}

static int
write_at (int fd, const void *buf, size_t len, uint64_t off, struct ate_error **err)
{
  size_t done = 0;

  while (done < len)
    {
      ssize_t w = TEMP_FAILURE_RETRY (pwrite (fd, (const char *) buf + done, len - done, (off_t) (off + done)));
      if (w < 0)
        return ate_error_make (err, errno, "write qcow2 at %" PRIu64, off + done);
      done += (size_t) w;
    }
  return 0;
}

/* Copy len bytes at src_off of in to dst_off of out. */
static int
copy_at (int in, uint64_t src_off, int out, uint64_t dst_off, uint64_t len, struct ate_error **err)
{
  loff_t s = (loff_t) src_off, d = (loff_t) dst_off;
  uint64_t left = len;
  cleanup_free char *buf = NULL;

  while (left > 0)
    {
      ssize_t n = copy_file_range (in, &s, out, &d, left > (1u << 30) ? (1u << 30) : left, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
        break;
      if (n < 0)
        return ate_error_make (err, errno, "copy qcow2 data at %" PRIu64, (uint64_t) s);
      if (n == 0)
        return ate_error_make (err, EIO, "qcow2 data at %" PRIu64 " ends early", (uint64_t) s);
      left -= (uint64_t) n;
    }
  if (left > 0)
    buf = xmalloc (1u << 20);
  while (left > 0)
    {
      size_t want = left > (1u << 20) ? (1u << 20) : (size_t) left;
      if (read_at (in, buf, want, (uint64_t) s, err) < 0
          || write_at (out, buf, want, (uint64_t) d, err) < 0)
        return -1;
      s += (loff_t) want;
      d += (loff_t) want;
      left -= want;
    }
  return 0;
}

/* Refcount blocks needed to count n clusters and the blocks themselves,
 * computed as cloud-hypervisor does when it checks a refcount table. */
static uint64_t
max_refcount_blocks (uint64_t cluster_size, uint64_t n)
{
  uint64_t per_block = cluster_size / REFCOUNT_BYTES;
  uint64_t for_data = div_up (n, per_block);
  return for_data + div_up (for_data, per_block);
}

/* The metadata a virtual size needs: L1 entries and, for the refcount
 * table, the refcount blocks of a fully allocated image. */
static void
geometry (uint32_t cluster_bits, uint64_t virtual_size, uint64_t *n_l1, uint64_t *rt_blocks)
{
  uint64_t cs = UINT64_C (1) << cluster_bits, l2e = cs / 8;
  uint64_t nc = div_up (virtual_size, cs);
  uint64_t nl2 = div_up (nc, l2e);
  uint64_t l1c = div_up (nl2, l2e);

  *n_l1 = nl2;
  *rt_blocks = max_refcount_blocks (cs, nc + l1c + nl2 + 1);
}

/* ---- validation ------------------------------------------------------ */

struct used
{
  uint8_t *bits;
  uint64_t n;
  uint64_t file_size;
  uint32_t cluster_bits;
};

/* Claim the host clusters of [off, off+len) for what; a cluster claimed
 * twice is an overlap. */
static int
used_claim (struct used *u, uint64_t off, uint64_t len, const char *what, struct ate_error **err)
{
  uint64_t first, last;

  if (off > u->file_size || len > u->file_size - off)
    return invalid (err, "%s at %" PRIu64 " runs past the end of the file", what, off);
  first = off >> u->cluster_bits;
  last = (off + len - 1) >> u->cluster_bits;
  for (uint64_t c = first; c <= last; c++)
    {
      if (c >= u->n)
        return invalid (err, "%s at %" PRIu64 " is beyond the end of the file", what, off);
      if (u->bits[c / 8] & (1u << (c % 8)))
        return invalid (err, "%s at %" PRIu64 " overlaps another structure (host cluster %" PRIu64 ")",
                        what, off, c);
      u->bits[c / 8] |= (uint8_t) (1u << (c % 8));
    }
  return 0;
}

static void
header_decode (const uint8_t *b, struct header *h)
{
  h->magic = get32 (b + 0);
  h->version = get32 (b + 4);
  h->backing_off = get64 (b + 8);
  h->backing_len = get32 (b + 16);
  h->cluster_bits = get32 (b + 20);
  h->size = get64 (b + 24);
  h->crypt = get32 (b + 32);
  h->l1_size = get32 (b + 36);
  h->l1_off = get64 (b + 40);
  h->rt_off = get64 (b + 48);
  h->rt_clusters = get32 (b + 56);
  h->nb_snapshots = get32 (b + 60);
  h->snapshots_off = get64 (b + 64);
  h->incompat = get64 (b + 72);
  h->compat = get64 (b + 80);
  h->autoclear = get64 (b + 88);
  h->refcount_order = get32 (b + 96);
  h->header_len = get32 (b + 100);
}

static int
check_incompat (uint64_t bits, struct ate_error **err)
{
  static const char *const names[] = { "dirty", "corrupt", "external data file",
                                       "compression type", "extended L2 entries" };
  uint64_t other = bits & ~INCOMPAT_DIRTY;

  for (unsigned i = 0; i < 64; i++)
    if (other & (UINT64_C (1) << i))
      {
        if (i < ATE_N_ELEMENTS (names))
          return invalid (err, "unsupported incompatible feature: %s", names[i]);
        return invalid (err, "unknown incompatible feature bit %u", i);
      }
  if (bits & INCOMPAT_DIRTY)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EUCLEAN,
                                "qcow2 image was not closed cleanly (dirty bit set): "
                                "its tables may be incomplete");
  return 0;
}

/* Fixed header fields, before anything is read from offsets it names. */
static int
check_header (const struct header *h, uint64_t file_size, struct ate_error **err)
{
  uint64_t cs;

  if (h->magic != QCOW2_MAGIC)
    return invalid (err, "bad magic 0x%08" PRIx32, h->magic);
  if (h->version != 3)
    return invalid (err, "version %" PRIu32 " (only 3 is accepted)", h->version);
  if (h->cluster_bits < 9 || h->cluster_bits > 21)
    return invalid (err, "cluster_bits %" PRIu32 " outside 9..21", h->cluster_bits);
  cs = UINT64_C (1) << h->cluster_bits;
  if (file_size > (QCOW2_MAX_HOST_CLUSTERS << h->cluster_bits))
    return invalid (err, "file of %" PRIu64 " bytes is larger than %" PRIu64 " clusters",
                    file_size, QCOW2_MAX_HOST_CLUSTERS);
  if (check_incompat (h->incompat, err) < 0)
    return -1;
  if (h->crypt != 0)
    return invalid (err, "encrypted (method %" PRIu32 ")", h->crypt);
  if (h->autoclear != 0)
    return invalid (err, "autoclear features 0x%" PRIx64 " (bitmaps or raw external data)", h->autoclear);
  if (h->refcount_order != REFCOUNT_ORDER)
    return invalid (err, "refcount_order %" PRIu32 " (only 16-bit refcounts)", h->refcount_order);
  if (h->header_len < HEADER_V3_LEN || h->header_len % 8 != 0 || h->header_len > HEADER_MAX_LEN
      || h->header_len > cs || h->header_len > file_size)
    return invalid (err, "header length %" PRIu32, h->header_len);
  if (h->nb_snapshots != 0 || h->snapshots_off != 0)
    return invalid (err, "internal snapshots (%" PRIu32 ")", h->nb_snapshots);
  if (h->size == 0 || h->size % 512 != 0 || h->size > QCOW2_MAX_VIRTUAL_SIZE)
    return invalid (err, "virtual size %" PRIu64, h->size);
  return 0;
}

/* Header extensions (up to END) and the backing file name, all inside the
 * first cluster. */
static int
check_extensions (const uint8_t *c0, size_t c0_len, const struct header *h,
                  char **backing_name, struct ate_error **err)
{
  size_t pos = h->header_len, limit = c0_len;
  bool have_format = false;

  if (h->backing_off != 0)
    {
      if (h->backing_len == 0 || h->backing_len > QCOW2_BACKING_NAME_MAX)
        return invalid (err, "backing file name length %" PRIu32, h->backing_len);
      if (h->backing_off < h->header_len || h->backing_off > c0_len
          || h->backing_len > c0_len - h->backing_off)
        return invalid (err, "backing file name at %" PRIu64 " outside the header cluster",
                        h->backing_off);
      if (memchr (c0 + h->backing_off, '\0', h->backing_len) != NULL)
        return invalid (err, "backing file name contains NUL");
      limit = h->backing_off;
    }
  else if (h->backing_len != 0)
    return invalid (err, "backing file name length without an offset");

  for (int n = 0;; n++)
    {
      uint32_t type, len;

      if (n > EXT_MAX)
        return invalid (err, "more than %d header extensions", EXT_MAX);
      if (limit - pos < 8)
        return invalid (err, "header extensions run past %zu", limit);
      type = get32 (c0 + pos);
      len = get32 (c0 + pos + 4);
      pos += 8;
      if (type == EXT_END)
        break;
      if (len > limit - pos || ((len + 7u) & ~7u) > limit - pos)
        return invalid (err, "header extension 0x%08" PRIx32 " runs past %zu", type, limit);
      if (type == EXT_BACKING_FORMAT)
        {
          if (have_format || h->backing_off == 0)
            return invalid (err, "unexpected backing format extension");
          if (len != 3 || memcmp (c0 + pos, "raw", 3) != 0)
            return invalid (err, "backing format `%.*s` (only raw)", (int) (len > 32 ? 32 : len),
                            (const char *) c0 + pos);
          have_format = true;
        }
      else if (type == EXT_FEATURE_NAMES)
        {
          if (len % 48 != 0)
            return invalid (err, "feature name table of %" PRIu32 " bytes", len);
        }
      else
        return invalid (err, "unsupported header extension 0x%08" PRIx32, type);
      pos += (len + 7u) & ~7u;
    }
  if (h->backing_off != 0)
    *backing_name = xstrndup ((const char *) c0 + h->backing_off, h->backing_len);
  return 0;
}

/* The refcount table and the blocks it names: inside the file, aligned,
 * sized as cloud-hypervisor accepts. */
static int
check_refcounts (int fd, const struct header *h, struct used *u, uint64_t rt_blocks,
                 struct ate_error **err)
{
  uint64_t cs = UINT64_C (1) << h->cluster_bits;
  cleanup_free uint8_t *buf = NULL;

  if (h->rt_clusters == 0 || h->rt_clusters > 2 * rt_blocks)
    return invalid (err, "refcount table of %" PRIu32 " clusters", h->rt_clusters);
  if (h->rt_off == 0 || h->rt_off % cs != 0)
    return invalid (err, "refcount table offset %" PRIu64, h->rt_off);
  if (used_claim (u, h->rt_off, (uint64_t) h->rt_clusters * cs, "refcount table", err) < 0)
    return -1;
  buf = xmalloc (cs);
  for (uint64_t c = 0; c < h->rt_clusters; c++)
    {
      if (read_at (fd, buf, cs, h->rt_off + c * cs, err) < 0)
        return -1;
      for (uint64_t i = 0; i < cs / 8; i++)
        {
          uint64_t e = get64 (buf + i * 8);
          if (e == 0)
            continue;
          if (e & RT_RESERVED || e % cs != 0)
            return invalid (err, "refcount block offset 0x%" PRIx64, e);
          if (used_claim (u, e, cs, "refcount block", err) < 0)
            return -1;
        }
    }
  return 0;
}

/* One L2 table: entries decoded into t (see L2_ZERO), host clusters
 * claimed.  first is the guest cluster index of entry 0, nc the number
 * of guest clusters. */
static int
check_l2 (const uint8_t *raw, uint64_t *t, uint64_t l2e, uint64_t first, uint64_t nc,
          uint64_t cs, struct used *u, uint64_t *n_data, uint64_t *n_zero, struct ate_error **err)
{
  for (uint64_t j = 0; j < l2e; j++)
    {
      uint64_t e = get64 (raw + j * 8), off = e & OFFSET_MASK;

      t[j] = 0;
      if (e == 0)
        continue;
      if (first + j >= nc)
        return invalid (err, "L2 entry for guest cluster %" PRIu64 " beyond the virtual size", first + j);
      if (e & OFLAG_COMPRESSED)
        return invalid (err, "compressed cluster (guest cluster %" PRIu64 ")", first + j);
      if (e & L2_RESERVED)
        return invalid (err, "L2 entry 0x%016" PRIx64 " has reserved bits set", e);
      if (off != 0)
        {
          if (off % cs != 0)
            return invalid (err, "data cluster offset 0x%" PRIx64 " not aligned", off);
          if (used_claim (u, off, cs, "data cluster", err) < 0)
            return -1;
        }
      if (e & OFLAG_ZERO)
        {
          t[j] = L2_ZERO;
          (*n_zero)++;
        }
      else if (off != 0)
        {
          t[j] = off;
          (*n_data)++;
        }
      else
        return invalid (err, "copied flag on an unallocated cluster");
    }
  return 0;
}

static int
check_tables (int fd, const struct header *h, struct used *u, struct qcow2_image *img,
              struct ate_error **err)
{
  uint64_t cs = UINT64_C (1) << h->cluster_bits, l2e = cs / 8;
  uint64_t nc = div_up (h->size, cs), l2_bytes = 0;
  cleanup_free uint8_t *l1 = NULL;
  cleanup_free uint8_t *raw = NULL;

  if (h->l1_size < img->n_l1 || h->l1_size > QCOW2_MAX_L1_ENTRIES)
    return invalid (err, "L1 table of %" PRIu32 " entries (the virtual size needs %" PRIu64 ")",
                    h->l1_size, img->n_l1);
  if (h->l1_off == 0 || h->l1_off % cs != 0)
    return invalid (err, "L1 table offset %" PRIu64, h->l1_off);
  if (h->l1_off > img->file_size || (uint64_t) h->l1_size * 8 > img->file_size - h->l1_off)
    return invalid (err, "L1 table at %" PRIu64 " runs past the end of the file", h->l1_off);
  if (used_claim (u, h->l1_off, (uint64_t) h->l1_size * 8, "L1 table", err) < 0)
    return -1;
  l1 = xmalloc ((size_t) h->l1_size * 8 + 1);
  if (read_at (fd, l1, (size_t) h->l1_size * 8, h->l1_off, err) < 0)
    return -1;

  img->l2 = xcalloc (img->n_l1 ?: 1, sizeof *img->l2);
  raw = xmalloc (cs);
  for (uint64_t i = 0; i < h->l1_size; i++)
    {
      uint64_t e = get64 (l1 + i * 8), off = e & OFFSET_MASK;
      uint64_t before = img->n_data + img->n_zero;

      if (e == 0)
        continue;
      if (i >= img->n_l1)
        return invalid (err, "L1 entry %" PRIu64 " beyond the virtual size", i);
      if (e & L1_RESERVED || off == 0 || off % cs != 0)
        return invalid (err, "L1 entry 0x%016" PRIx64, e);
      l2_bytes += cs;
      if (l2_bytes > QCOW2_MAX_L2_BYTES)
        return invalid (err, "more than %" PRIu64 " bytes of L2 tables", QCOW2_MAX_L2_BYTES);
      if (used_claim (u, off, cs, "L2 table", err) < 0 || read_at (fd, raw, cs, off, err) < 0)
        return -1;
      img->l2[i] = xmalloc (cs);
      if (check_l2 (raw, img->l2[i], l2e, i * l2e, nc, cs, u, &img->n_data, &img->n_zero, err) < 0)
        return -1;
      if (img->n_data + img->n_zero == before)
        {
          free (img->l2[i]);
          img->l2[i] = NULL;
        }
      else
        img->n_l2++;
    }
  return 0;
}

static int
check_expect (const struct qcow2_image *img, const struct qcow2_expect *expect, struct ate_error **err)
{
  if (expect == NULL)
    return 0;
  if (expect->need_backing && img->backing_name == NULL)
    return invalid (err, "no backing file");
  if (expect->virtual_size != 0 && expect->virtual_size != img->virtual_size)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EXDEV,
                                "qcow2 image is for a disk of %" PRIu64 " bytes, this base has %" PRIu64,
                                img->virtual_size, expect->virtual_size);
  if (expect->backing_name != NULL
      && (img->backing_name == NULL || strcmp (expect->backing_name, img->backing_name) != 0))
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EXDEV,
                                "qcow2 image is a delta against `%s`, not against `%s`",
                                img->backing_name ?: "(no backing file)", expect->backing_name);
  return 0;
}

int
qcow2_image_open (int fd, const struct qcow2_expect *expect, struct qcow2_image **out,
                  struct ate_error **err)
{
  uint8_t hb[HEADER_V3_LEN];
  cleanup_free uint8_t *c0 = NULL;
  cleanup_free uint8_t *bits = NULL;
  struct qcow2_image *img = NULL;
  struct header h;
  struct stat st;
  struct used u;
  uint64_t cs, rt_blocks;
  size_t c0_len;

  if (fstat (fd, &st) < 0)
    return ate_error_make (err, errno, "stat qcow2 image");
  if (!S_ISREG (st.st_mode))
    return invalid (err, "not a regular file");
  if ((uint64_t) st.st_size < HEADER_V3_LEN)
    return invalid (err, "file of %lld bytes is shorter than a header", (long long) st.st_size);
  if (read_at (fd, hb, sizeof hb, 0, err) < 0)
    return -1;
  header_decode (hb, &h);
  if (check_header (&h, (uint64_t) st.st_size, err) < 0)
    return -1;

  cs = UINT64_C (1) << h.cluster_bits;
  c0_len = (size_t) ((uint64_t) st.st_size < cs ? (uint64_t) st.st_size : cs);
  c0 = xmalloc (c0_len);
  if (read_at (fd, c0, c0_len, 0, err) < 0)
    return -1;
  if (h.header_len > HEADER_V3_LEN && c0[HEADER_V3_LEN] != 0)
    return invalid (err, "compression type %u", c0[HEADER_V3_LEN]);

  img = xmalloc0 (sizeof *img);
  img->fd = fd;
  img->file_size = (uint64_t) st.st_size;
  img->cluster_bits = h.cluster_bits;
  img->virtual_size = h.size;
  geometry (h.cluster_bits, h.size, &img->n_l1, &rt_blocks);

  u.cluster_bits = h.cluster_bits;
  u.n = div_up (img->file_size, cs);
  u.file_size = img->file_size;
  bits = xcalloc (div_up (u.n, 8), 1);
  u.bits = bits;
  if (check_extensions (c0, c0_len, &h, &img->backing_name, err) < 0
      || used_claim (&u, 0, cs, "header", err) < 0
      || check_refcounts (fd, &h, &u, rt_blocks, err) < 0
      || check_tables (fd, &h, &u, img, err) < 0
      || check_expect (img, expect, err) < 0)
    {
      qcow2_image_free (img);
      return -1;
    }
  *out = img;
  return 0;
}

void
qcow2_image_free (struct qcow2_image *img)
{
  if (img == NULL)
    return;
  if (img->l2 != NULL)
    for (uint64_t i = 0; i < img->n_l1; i++)
      free (img->l2[i]);
  free (img->l2);
  free (img->backing_name);
  free (img);
}

uint64_t
qcow2_image_virtual_size (const struct qcow2_image *img)
{
  return img->virtual_size;
}

uint32_t
qcow2_image_cluster_bits (const struct qcow2_image *img)
{
  return img->cluster_bits;
}

const char *
qcow2_image_backing_name (const struct qcow2_image *img)
{
  return img->backing_name;
}

uint64_t
qcow2_image_data_clusters (const struct qcow2_image *img)
{
  return img->n_data;
}

uint64_t
qcow2_image_zero_clusters (const struct qcow2_image *img)
{
  return img->n_zero;
}

int
qcow2_image_foreach_cluster (const struct qcow2_image *img, qcow2_cluster_fn fn, void *opaque,
                             struct ate_error **err)
{
  uint64_t l2e = (UINT64_C (1) << img->cluster_bits) / 8;

  for (uint64_t i = 0; i < img->n_l1; i++)
    {
      if (img->l2[i] == NULL)
        continue;
      for (uint64_t j = 0; j < l2e; j++)
        {
          uint64_t e = img->l2[i][j];
          int r;
          if (e == 0)
            continue;
          r = fn ((i * l2e + j) << img->cluster_bits, e == L2_ZERO ? 0 : e, opaque, err);
          if (r != 0)
            return r;
        }
    }
  return 0;
}

/* ---- writer ------------------------------------------------------------ */

/* Our layout: header cluster (header, backing format extension, backing
 * name), L1 table, refcount table, refcount blocks, L2 tables in guest
 * order, data clusters in guest order.  The refcount table is sized for a
 * fully allocated image, as cloud-hypervisor creates it, so that the VMM
 * never has to move it. */
struct layout
{
  uint64_t cs, n_l1, l1_off, rt_off, rt_clusters, rb_off, n_rb, l2_off, data_off, end;
};

#define EXT_AREA_LEN (8u + 8u + 8u) /* backing format "raw" (padded), end */

static int
layout_compute (uint32_t cluster_bits, uint64_t virtual_size, uint64_t n_l2, uint64_t n_data,
                struct layout *l, struct ate_error **err)
{
  uint64_t rt_blocks, l1c, fixed;

  l->cs = UINT64_C (1) << cluster_bits;
  geometry (cluster_bits, virtual_size, &l->n_l1, &rt_blocks);
  l1c = div_up (l->n_l1 * 8, l->cs);
  l->rt_clusters = div_up (rt_blocks * 8, l->cs);
  fixed = 1 + l1c + l->rt_clusters + n_l2 + n_data;
  l->n_rb = 1;
  while (div_up (fixed + l->n_rb, l->cs / REFCOUNT_BYTES) > l->n_rb)
    l->n_rb = div_up (fixed + l->n_rb, l->cs / REFCOUNT_BYTES);
  if (l->n_rb > l->rt_clusters * (l->cs / 8))
    return ate_error_make (err, EFBIG, "qcow2 refcount table too small for %" PRIu64 " blocks", l->n_rb);
  l->l1_off = l->cs;
  l->rt_off = l->l1_off + l1c * l->cs;
  l->rb_off = l->rt_off + l->rt_clusters * l->cs;
  l->l2_off = l->rb_off + l->n_rb * l->cs;
  l->data_off = l->l2_off + n_l2 * l->cs;
  l->end = l->data_off + n_data * l->cs;
  return 0;
}

static int
write_header (int fd, const struct layout *l, uint32_t cluster_bits, uint64_t virtual_size,
              const char *backing_name, struct ate_error **err)
{
  size_t name_len = strlen (backing_name);
  size_t name_off = HEADER_OUR_LEN + EXT_AREA_LEN;
  uint8_t buf[HEADER_OUR_LEN + EXT_AREA_LEN + QCOW2_BACKING_NAME_MAX];

  if (name_len == 0 || name_len > QCOW2_BACKING_NAME_MAX || name_off + name_len > l->cs)
    return ate_error_make (err, ENAMETOOLONG, "qcow2 backing file name of %zu bytes", name_len);
  memset (buf, 0, sizeof buf);
  put32 (buf + 0, QCOW2_MAGIC);
  put32 (buf + 4, 3);
  put64 (buf + 8, name_off);
  put32 (buf + 16, (uint32_t) name_len);
  put32 (buf + 20, cluster_bits);
  put64 (buf + 24, virtual_size);
  put32 (buf + 36, (uint32_t) l->n_l1);
  put64 (buf + 40, l->l1_off);
  put64 (buf + 48, l->rt_off);
  put32 (buf + 56, (uint32_t) l->rt_clusters);
  put32 (buf + 96, REFCOUNT_ORDER);
  put32 (buf + 100, HEADER_OUR_LEN);
  /* buf[104] = 0: zlib compression type (no compressed clusters). */
  put32 (buf + HEADER_OUR_LEN, EXT_BACKING_FORMAT);
  put32 (buf + HEADER_OUR_LEN + 4, 3);
  memcpy (buf + HEADER_OUR_LEN + 8, "raw", 3);
  /* The end extension is the zeros that follow. */
  memcpy (buf + name_off, backing_name, name_len);
  return write_at (fd, buf, name_off + name_len, 0, err);
}

/* Refcount table and blocks: every cluster of the file is used once. */
static int
write_refcounts (int fd, const struct layout *l, struct ate_error **err)
{
  uint64_t per_block = l->cs / REFCOUNT_BYTES, total = l->end / l->cs;
  cleanup_free uint8_t *buf = xmalloc0 (l->cs);

  for (uint64_t k = 0; k < l->n_rb; k++)
    {
      uint8_t e[8];
      put64 (e, l->rb_off + k * l->cs);
      if (write_at (fd, e, sizeof e, l->rt_off + k * 8, err) < 0)
        return -1;
    }
  for (uint64_t k = 0; k < l->n_rb; k++)
    {
      memset (buf, 0, l->cs);
      for (uint64_t i = 0; i < per_block && k * per_block + i < total; i++)
        {
          buf[i * 2] = 0;
          buf[i * 2 + 1] = 1;
        }
      if (write_at (fd, buf, l->cs, l->rb_off + k * l->cs, err) < 0)
        return -1;
    }
  return 0;
}

static int
write_image (const struct qcow2_image *img, int fd, uint32_t cluster_bits, uint64_t virtual_size,
             const char *backing_name, struct ate_error **err)
{
  uint64_t n_l2 = img ? img->n_l2 : 0, n_data = img ? img->n_data : 0;
  cleanup_free uint8_t *l1 = NULL;
  cleanup_free uint8_t *l2 = NULL;
  uint64_t next_l2, next_data, run_src = 0, run_dst = 0, run_len = 0;
  struct layout l = { 0 };

  if (virtual_size == 0 || virtual_size % 512 != 0 || virtual_size > QCOW2_MAX_VIRTUAL_SIZE)
    return ate_error_make (err, EINVAL, "qcow2 virtual size %" PRIu64, virtual_size);
  if (layout_compute (cluster_bits, virtual_size, n_l2, n_data, &l, err) < 0)
    return -1;
  if (ftruncate (fd, 0) < 0 || ftruncate (fd, (off_t) l.end) < 0)
    return ate_error_make (err, errno, "size qcow2 file to %" PRIu64, l.end);
  if (write_header (fd, &l, cluster_bits, virtual_size, backing_name, err) < 0
      || write_refcounts (fd, &l, err) < 0)
    return -1;
  if (img == NULL)
    return 0;

  l1 = xmalloc0 (l.n_l1 * 8);
  l2 = xmalloc (l.cs);
  next_l2 = l.l2_off;
  next_data = l.data_off;
  for (uint64_t i = 0; i < img->n_l1; i++)
    {
      if (img->l2[i] == NULL)
        continue;
      put64 (l1 + i * 8, next_l2 | OFLAG_COPIED);
      for (uint64_t j = 0; j < l.cs / 8; j++)
        {
          uint64_t e = img->l2[i][j];
          if (e == 0 || e == L2_ZERO)
            {
              put64 (l2 + j * 8, e == L2_ZERO ? OFLAG_ZERO : 0);
              continue;
            }
          put64 (l2 + j * 8, next_data | OFLAG_COPIED);
          /* Copy contiguous runs in one call. */
          if (run_len > 0 && e == run_src + run_len)
            run_len += l.cs;
          else
            {
              if (run_len > 0 && copy_at (img->fd, run_src, fd, run_dst, run_len, err) < 0)
                return -1;
              run_src = e;
              run_dst = next_data;
              run_len = l.cs;
            }
          next_data += l.cs;
        }
      if (write_at (fd, l2, l.cs, next_l2, err) < 0)
        return -1;
      next_l2 += l.cs;
    }
  if (run_len > 0 && copy_at (img->fd, run_src, fd, run_dst, run_len, err) < 0)
    return -1;
  return write_at (fd, l1, l.n_l1 * 8, l.l1_off, err);
}

int
qcow2_write_overlay (int fd, const char *backing_name, uint64_t virtual_size, struct ate_error **err)
{
  return write_image (NULL, fd, QCOW2_CLUSTER_BITS, virtual_size, backing_name, err);
}

int
qcow2_image_write (const struct qcow2_image *img, int out_fd, const char *backing_name,
                   struct ate_error **err)
{
  return write_image (img, out_fd, img->cluster_bits, img->virtual_size, backing_name, err);
}

int
qcow2_file_create_overlay (const char *path, const char *backing_name, uint64_t virtual_size,
                           struct ate_error **err)
{
  cleanup_close int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

  if (fd < 0)
    return ate_error_make (err, errno, "create qcow2 overlay `%s`", path);
  if (qcow2_write_overlay (fd, backing_name, virtual_size, err) < 0)
    {
      unlink (path);
      return ate_error_wrap (err, "write qcow2 overlay `%s`", path);
    }
  return 0;
}

int
qcow2_file_rewrite (const char *in_path, const struct qcow2_expect *expect, const char *out_path,
                    const char *backing_name, struct ate_error **err)
{
  cleanup_close int in = open (in_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  cleanup_close int out = -1;
  cleanup_free char *tmp = NULL;
  struct qcow2_image *img = NULL;
  int ret;

  if (in < 0)
    return ate_error_make (err, errno, "open qcow2 `%s`", in_path);
  if (qcow2_image_open (in, expect, &img, err) < 0)
    return ate_error_wrap (err, "`%s`", in_path);
  tmp = xasprintf ("%s.XXXXXX", out_path);
  out = mkostemp (tmp, O_CLOEXEC);
  if (out < 0)
    {
      qcow2_image_free (img);
      return ate_error_make (err, errno, "create a temporary file next to `%s`", out_path);
    }
  ret = qcow2_image_write (img, out, backing_name, err);
  qcow2_image_free (img);
  if (ret == 0 && fchmod (out, 0600) < 0)
    ret = ate_error_make (err, errno, "chmod `%s`", tmp);
  if (ret == 0 && fsync (out) < 0)
    ret = ate_error_make (err, errno, "fsync `%s`", tmp);
  if (ret == 0 && rename (tmp, out_path) < 0)
    ret = ate_error_make (err, errno, "rename `%s` to `%s`", tmp, out_path);
  if (ret < 0)
    {
      unlink (tmp);
      return ate_error_wrap (err, "write `%s` from `%s`", out_path, in_path);
    }
  return ate_fsync_dir_of (out_path, err);
}
