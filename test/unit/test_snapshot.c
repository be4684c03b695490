/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the snapshot codec (runtime/snapshot): round trips over the
 * layouts of docs/snapshot-format.md through files and pipes, the exact decompressed
 * layout, hand-assembled vectors, and every malformed input with its message
 * and "no output left behind".
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "snapshot/snapshot-internal.h"
#include "snapshot/snapshot.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/sparse.h"
#include "util/util.h"

#define KiB (1024LL)
#define MiB (1024LL * 1024)
#define GiB (1024LL * 1024 * 1024)

static char *tmpdir;

static int
setup (void **state)
{
  char tmpl[] = "/var/tmp/ate-test-snapshot-XXXXXX";
  (void) state;
  tmpdir = xstrdup (mkdtemp (tmpl));
  return tmpdir == NULL ? -1 : 0;
}

static int
teardown (void **state)
{
  struct ate_error *err = NULL;
  (void) state;
  ate_rm_rf (tmpdir, &err);
  free (tmpdir);
  return err == NULL ? 0 : -1;
}

static char *
tpath (const char *name)
{
  return xasprintf ("%s/%s", tmpdir, name);
}

/* ---- byte buffers for hand-assembled streams ---- */
struct buf
{
  uint8_t *p;
  size_t len, cap;
};

static void
buf_add (struct buf *b, const void *p, size_t n)
{
  if (n == 0)
    return;
  if (b->len + n > b->cap)
    {
      b->cap = (b->len + n) * 2 + 64;
      b->p = xrealloc (b->p, b->cap);
    }
  memcpy (b->p + b->len, p, n);
  b->len += n;
}

static void
buf_le64 (struct buf *b, int64_t v)
{
  uint8_t w[8];
  snapshot_put_le64 (w, (uint64_t) v);
  buf_add (b, w, 8);
}

static void
buf_fill (struct buf *b, uint8_t c, size_t n)
{
  for (size_t i = 0; i < n; i++)
    buf_add (b, &c, 1);
}

/* zstd frame (level 1, checksum) of src appended to dst. */
static void
buf_zstd (struct buf *dst, const struct buf *src)
{
  size_t cap = ZSTD_compressBound (src->len);
  uint8_t *tmp = xmalloc (cap);
  ZSTD_CCtx *c = ZSTD_createCCtx ();
  ZSTD_CCtx_setParameter (c, ZSTD_c_checksumFlag, 1);
  size_t n = ZSTD_compress2 (c, tmp, cap, src->p, src->len);
  assert_false (ZSTD_isError (n));
  buf_add (dst, tmp, n);
  ZSTD_freeCCtx (c);
  free (tmp);
}

static void
buf_prefix (struct buf *b, uint32_t version)
{
  uint8_t v[4] = { (uint8_t) version, (uint8_t) (version >> 8), (uint8_t) (version >> 16),
                   (uint8_t) (version >> 24) };
  buf_add (b, SNAPSHOT_MAGIC, 8);
  buf_add (b, v, 4);
}

/* "ATESPRSE" | version | zstd(payload) */
static struct buf
sparse_stream (uint32_t version, const struct buf *payload)
{
  struct buf b = { 0 };
  buf_prefix (&b, version);
  buf_zstd (&b, payload);
  return b;
}

static void
write_bytes (const char *path, const void *p, size_t n)
{
  struct ate_error *err = NULL;
  assert_int_equal (ate_write_file (path, p, n, 0644, &err), 0);
}

/* ---- sparse source files ---- */
struct region
{
  int64_t off, len;
  int fill; /* byte value, or -1 for pseudo-random bytes */
};

static void
fill_region (uint8_t *p, size_t n, int fill, uint64_t seed)
{
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; i++)
    {
      if (fill >= 0)
        p[i] = (uint8_t) fill;
      else
        {
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
          p[i] = (uint8_t) x;
        }
    }
}

static void
make_sparse (const char *path, int64_t size, const struct region *r, size_t n)
{
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, size), 0);
  for (size_t i = 0; i < n; i++)
    {
      uint8_t *p = xmalloc ((size_t) r[i].len);
      fill_region (p, (size_t) r[i].len, r[i].fill, (uint64_t) r[i].off);
      assert_int_equal (pwrite (fd, p, (size_t) r[i].len, r[i].off), r[i].len);
      free (p);
    }
  close (fd);
}

/* Data extents as SEEK_DATA sees them: count and bytes. */
static void
data_map (const char *path, uint64_t *extents, uint64_t *bytes)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  off_t off = 0, s, e;
  struct ate_error *err = NULL;

  assert_true (fd >= 0);
  assert_int_equal (fstat (fd, &st), 0);
  *extents = *bytes = 0;
  while (ate_sparse_next_extent (fd, off, st.st_size, &s, &e, &err) > 0)
    {
      (*extents)++;
      *bytes += (uint64_t) (e - s);
      off = e;
    }
  assert_null (err);
  close (fd);
}

/* Equal size and content; holes of both are read only where the other has
 * data, so this stays cheap for huge sparse files. */
static void
assert_same_content (const char *a, const char *b)
{
  int fa = open (a, O_RDONLY | O_CLOEXEC), fb = open (b, O_RDONLY | O_CLOEXEC);
  struct stat sa, sb;
  struct ate_error *err = NULL;
  uint8_t *ba = xmalloc (MiB), *bb = xmalloc (MiB);

  assert_true (fa >= 0 && fb >= 0);
  assert_int_equal (fstat (fa, &sa), 0);
  assert_int_equal (fstat (fb, &sb), 0);
  assert_int_equal (sa.st_size, sb.st_size);
  for (int pass = 0; pass < 2; pass++)
    {
      int fd = pass == 0 ? fa : fb;
      off_t off = 0, s, e;
      while (ate_sparse_next_extent (fd, off, sa.st_size, &s, &e, &err) > 0)
        {
          for (off_t o = s; o < e;)
            {
              size_t n = (size_t) (e - o) < (size_t) MiB ? (size_t) (e - o) : (size_t) MiB;
              assert_int_equal (pread (fa, ba, n, o), (ssize_t) n);
              assert_int_equal (pread (fb, bb, n, o), (ssize_t) n);
              assert_memory_equal (ba, bb, n);
              o += (off_t) n;
            }
          off = e;
        }
      assert_null (err);
    }
  free (ba);
  free (bb);
  close (fa);
  close (fb);
}

/* Nothing in tmpdir except the names given (NULL-terminated). */
static void
assert_dir_only (const char *keep, ...)
{
  DIR *d = opendir (tmpdir);
  struct dirent *de;

  assert_non_null (d);
  while ((de = readdir (d)) != NULL)
    {
      va_list ap;
      bool ok = strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0;
      va_start (ap, keep);
      for (const char *k = keep; !ok && k != NULL; k = va_arg (ap, const char *))
        ok = strcmp (de->d_name, k) == 0;
      va_end (ap);
      if (!ok)
        fail_msg ("unexpected file left in the test directory: %s", de->d_name);
    }
  closedir (d);
}

static void
clean_dir (void)
{
  struct ate_error *err = NULL;
  assert_int_equal (ate_rm_rf (tmpdir, &err), 0);
  assert_int_equal (mkdir (tmpdir, 0700), 0);
}

/* ---- encoding into a pipe from a thread ---- */
struct pipe_job
{
  pthread_t thread;
  int in_fd, out_fd;
  struct snapshot_encode_opts opts;
  const struct buf *bytes; /* when set: write these instead of encoding */
  struct snapshot_stats st;
  int rc;
};

static void *
pipe_job_run (void *arg)
{
  struct pipe_job *j = arg;
  struct ate_error *err = NULL;

  if (j->bytes != NULL)
    j->rc = snapshot_write_all (j->out_fd, j->bytes->p, j->bytes->len, NULL, &err);
  else
    j->rc = snapshot_encode_fd (j->in_fd, j->out_fd, &j->opts, &j->st, &err);
  if (err != NULL && j->bytes == NULL)
    print_error ("pipe encoder: %s\n", err->msg);
  ate_error_release (&err);
  close (j->out_fd);
  return NULL;
}

/* Start the job; returns the read end. */
static int
pipe_job_start (struct pipe_job *j)
{
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  j->out_fd = p[1];
  assert_int_equal (pthread_create (&j->thread, NULL, pipe_job_run, j), 0);
  return p[0];
}

static void
pipe_job_join (struct pipe_job *j)
{
  assert_int_equal (pthread_join (j->thread, NULL), 0);
}

/* ---- round trips ---- */
static void
check_stats (const struct snapshot_stats *st, int64_t size, uint64_t ext, uint64_t bytes)
{
  assert_int_equal (st->format, SNAPSHOT_FORMAT_SPARSE_V2);
  assert_int_equal (st->logical_size, (uint64_t) size);
  assert_int_equal (st->populated_bytes, bytes);
  assert_int_equal (st->extent_count, ext);
}

static void
roundtrip (int64_t size, const struct region *r, size_t n, bool via_pipe)
{
  cleanup_free char *src = tpath ("src"), *enc = tpath ("enc"), *out = tpath ("out");
  cleanup_free char *stream = tpath ("stream");
  struct snapshot_stats est = { 0 }, dst = { 0 }, ist = { 0 };
  struct snapshot_encode_opts eo = { .threads = 2, .no_fsync = true };
  struct ate_error *err = NULL;
  enum snapshot_format fmt;
  struct pipe_job job = { 0 };
  uint64_t ext, bytes, oext, obytes;
  struct stat sb;
  int in_fd;

  make_sparse (src, size, r, n);
  data_map (src, &ext, &bytes);
  if (via_pipe)
    {
      job.in_fd = open (src, O_RDONLY | O_CLOEXEC);
      job.opts = eo;
      in_fd = pipe_job_start (&job);
    }
  else
    {
      assert_int_equal (snapshot_encode_file (src, enc, &eo, &est, &err), 0);
      in_fd = open (enc, O_RDONLY | O_CLOEXEC);
    }
  assert_true (in_fd >= 0);
  if (snapshot_decode_fd (in_fd, out, NULL, &fmt, &dst, &err) < 0)
    fail_msg ("decode: %s", err->msg);
  close (in_fd);
  if (via_pipe)
    {
      pipe_job_join (&job);
      close (job.in_fd);
      assert_int_equal (job.rc, 0);
      est = job.st;
    }
  assert_int_equal (fmt, SNAPSHOT_FORMAT_SPARSE_V2);
  check_stats (&est, size, ext, bytes);
  check_stats (&dst, size, ext, bytes);
  assert_int_equal (est.compressed_bytes, dst.compressed_bytes);
  assert_same_content (src, out);
  /* Holes recreated: the same data map, not a dense file. */
  data_map (out, &oext, &obytes);
  assert_int_equal (oext, ext);
  assert_int_equal (obytes, bytes);
  assert_int_equal (stat (out, &sb), 0);
  assert_int_equal (sb.st_mode & 07777, 0600);
  if (!via_pipe)
    {
      /* Streams write holes as zeros: keep big files out of the disk. */
      bool big = size > 64 * MiB;
      int sfd = big ? open ("/dev/null", O_WRONLY | O_CLOEXEC)
                    : open (stream, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
      in_fd = open (enc, O_RDONLY | O_CLOEXEC);
      assert_int_equal (snapshot_decode_to_stream (in_fd, sfd, NULL, NULL, NULL, &err), 0);
      close (sfd);
      assert_int_equal (lseek (in_fd, 0, SEEK_SET), 0);
      assert_int_equal (snapshot_inspect (in_fd, NULL, &ist, &err), 0);
      close (in_fd);
      assert_memory_equal (&ist, &dst, sizeof (ist));
      if (!big)
        assert_same_content (src, stream);
    }
  clean_dir ();
}

struct layout
{
  const char *name;
  int64_t size;
  struct region r[4];
  size_t n;
};

static const struct layout layouts[] = {
  { "empty", 0, { { 0 } }, 0 },
  { "all-hole", 4 * MiB, { { 0 } }, 0 },
  { "all-data", 256 * KiB, { { 0, 256 * KiB, 0xAB } }, 1 },
  { "leading-hole", 2 * MiB, { { 1 * MiB, 64 * KiB, 0x11 } }, 1 },
  { "trailing-hole", 2 * MiB, { { 0, 64 * KiB, 0x22 } }, 1 },
  { "single-extent-midfile", 4 * MiB, { { 2 * MiB, 70000, 0x33 } }, 1 },
  { "multi-extent", 8 * MiB,
    { { 0, 4096, 0x44 }, { 2 * MiB, 100000, -1 }, { 5 * MiB, 8192, 0x66 } }, 3 },
  { "unaligned-size-data-at-end", MiB + 123, { { MiB, 123, 0x77 } }, 1 },
  { "random-4MiB", 6 * MiB, { { 1 * MiB, 4 * MiB, -1 } }, 1 },
};

static void
test_roundtrip_layouts_file (void **state)
{
  (void) state;
  for (size_t i = 0; i < ATE_N_ELEMENTS (layouts); i++)
    {
      print_message ("  layout %s (file)\n", layouts[i].name);
      roundtrip (layouts[i].size, layouts[i].r, layouts[i].n, false);
    }
}

static void
test_roundtrip_layouts_pipe (void **state)
{
  (void) state;
  for (size_t i = 0; i < ATE_N_ELEMENTS (layouts); i++)
    {
      print_message ("  layout %s (pipe)\n", layouts[i].name);
      roundtrip (layouts[i].size, layouts[i].r, layouts[i].n, true);
    }
}

static void
test_roundtrip_many_small_extents (void **state)
{
  enum { N = 1500 };
  struct region *r = xcalloc (N, sizeof (*r));
  (void) state;
  /* 4 KiB of data every 16 KiB, alternating fills and random content. */
  for (int i = 0; i < N; i++)
    r[i] = (struct region) { (int64_t) i * 16 * KiB, 4 * KiB, i % 3 == 0 ? -1 : i % 251 + 1 };
  roundtrip ((int64_t) N * 16 * KiB + 5000, r, N, false);
  roundtrip ((int64_t) N * 16 * KiB + 5000, r, N, true);
  free (r);
}

static void
test_roundtrip_beyond_4gib (void **state)
{
  /* Few extents, one straddling 2^32, one at the very end: cheap because
   * holes are never read nor written. */
  const int64_t size = 5 * GiB + 4097;
  const struct region r[] = {
    { 0, 4096, 0x01 },
    { 4 * GiB - 8 * KiB, 16 * KiB, -1 },
    { 5 * GiB, 4097, 0x5A },
  };
  (void) state;
  roundtrip (size, r, ATE_N_ELEMENTS (r), false);
  roundtrip (size, r, ATE_N_ELEMENTS (r), true);
}

/* ---- the exact byte layout (docs/snapshot-format.md) ---- */
static struct buf
read_all (const char *path)
{
  struct buf b = { 0 };
  struct ate_error *err = NULL;
  char *p;
  size_t n;
  assert_int_equal (ate_read_file (path, 64 * MiB, &p, &n, &err), 0);
  b.p = (uint8_t *) p;
  b.len = b.cap = n;
  return b;
}

static struct buf
decompress_payload (const struct buf *enc)
{
  struct buf out = { 0 };
  size_t cap = 64 * MiB;
  out.p = xmalloc (cap);
  out.cap = cap;
  out.len = ZSTD_decompress (out.p, cap, enc->p + SNAPSHOT_PREFIX_LEN,
                             enc->len - SNAPSHOT_PREFIX_LEN);
  assert_false (ZSTD_isError (out.len));
  return out;
}

static void
test_payload_layout_exact (void **state)
{
  cleanup_free char *src = tpath ("src"), *enc = tpath ("enc");
  const struct region r[] = { { 1 * MiB, 4096, 'a' }, { 2 * MiB, 8192, -1 } };
  const int levels[] = { 0, 1, 3, 19, -5 };
  const int threads[] = { 0, 1, 2, 4, 1 };
  struct ate_error *err = NULL;
  struct buf want = { 0 };
  uint8_t data[8192];
  (void) state;

  make_sparse (src, 3 * MiB, r, ATE_N_ELEMENTS (r));
  buf_le64 (&want, 3 * MiB);
  buf_le64 (&want, 1 * MiB);
  buf_le64 (&want, 4096);
  buf_fill (&want, 'a', 4096);
  buf_le64 (&want, 2 * MiB);
  buf_le64 (&want, 8192);
  fill_region (data, sizeof (data), -1, 2 * MiB);
  buf_add (&want, data, sizeof (data));
  buf_le64 (&want, -1);
  /* Whatever the level and worker count, the decompressed bytes are the
   * same: only the zstd framing differs. */
  for (size_t i = 0; i < ATE_N_ELEMENTS (levels); i++)
    {
      struct snapshot_encode_opts o = { .level = levels[i], .threads = threads[i] };
      assert_int_equal (snapshot_encode_file (src, enc, &o, NULL, &err), 0);
      struct buf got = read_all (enc);
      assert_memory_equal (got.p, "ATESPRSE\x02\x00\x00\x00", 12);
      struct buf payload = decompress_payload (&got);
      assert_int_equal (payload.len, want.len);
      assert_memory_equal (payload.p, want.p, want.len);
      free (payload.p);
      free (got.p);
    }
  free (want.p);
  clean_dir ();
}

/* A zstd frame assembled by hand: one raw (stored) block, content size in a
 * one-byte field, no checksum -- independent of any compressor. */
static void
buf_raw_frame (struct buf *b, const struct buf *content)
{
  static const uint8_t magic[4] = { 0x28, 0xB5, 0x2F, 0xFD };
  uint8_t hdr[2] = { 0x20, (uint8_t) content->len }; /* single segment, FCS 1 byte */
  uint32_t bh = (uint32_t) content->len << 3 | 1;    /* raw block, last */
  uint8_t bhb[3] = { (uint8_t) bh, (uint8_t) (bh >> 8), (uint8_t) (bh >> 16) };
  assert_true (content->len < 256);
  buf_add (b, magic, 4);
  buf_add (b, hdr, 2);
  buf_add (b, bhb, 3);
  buf_add (b, content->p, content->len);
}

static void
decode_bytes_ok (const struct buf *in, const void *want, size_t want_len,
                 enum snapshot_format want_fmt)
{
  cleanup_free char *ip = tpath ("in"), *op = tpath ("out");
  struct ate_error *err = NULL;
  enum snapshot_format fmt;
  struct buf got;
  int fd;

  write_bytes (ip, in->p, in->len);
  fd = open (ip, O_RDONLY | O_CLOEXEC);
  if (snapshot_decode_fd (fd, op, NULL, &fmt, NULL, &err) < 0)
    fail_msg ("decode: %s", err->msg);
  close (fd);
  assert_int_equal (fmt, want_fmt);
  got = read_all (op);
  assert_int_equal (got.len, want_len);
  assert_memory_equal (got.p, want, want_len);
  free (got.p);
  clean_dir ();
}

static void
test_hand_assembled_vectors (void **state)
{
  static const uint8_t want[16] = { 0, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0 };
  struct buf payload = { 0 }, part1 = { 0 }, part2 = { 0 }, in = { 0 };
  (void) state;

  /* totalSize 16, extent (4, 3, "abc"), sentinel: one raw frame. */
  buf_le64 (&payload, 16);
  buf_le64 (&payload, 4);
  buf_le64 (&payload, 3);
  buf_add (&payload, "abc", 3);
  buf_le64 (&payload, -1);
  buf_prefix (&in, 2);
  buf_raw_frame (&in, &payload);
  assert_int_equal (in.len, 12 + 9 + 35);
  decode_bytes_ok (&in, want, sizeof (want), SNAPSHOT_FORMAT_SPARSE_V2);

  /* The same payload split inside the extent data over two frames: the
   * format is "one or more frames". */
  in.len = 0;
  buf_prefix (&in, 2);
  buf_add (&part1, payload.p, 25);
  buf_add (&part2, payload.p + 25, payload.len - 25);
  buf_raw_frame (&in, &part1);
  buf_zstd (&in, &part2);
  decode_bytes_ok (&in, want, sizeof (want), SNAPSHOT_FORMAT_SPARSE_V2);

  /* Plain fallback: a raw frame of the 16 bytes themselves. */
  in.len = 0;
  part1.len = 0;
  buf_add (&part1, want, sizeof (want));
  buf_raw_frame (&in, &part1);
  decode_bytes_ok (&in, want, sizeof (want), SNAPSHOT_FORMAT_PLAIN_ZSTD);

  free (payload.p);
  free (part1.p);
  free (part2.p);
  free (in.p);
}

/* ---- malformed input ---- */
static void
buf_zstd_window (struct buf *dst, const struct buf *src, int wlog)
{
  ZSTD_CCtx *c = ZSTD_createCCtx ();
  uint8_t out[4096];
  ZSTD_inBuffer in = { src->p, src->len, 0 };
  size_t left;

  ZSTD_CCtx_setParameter (c, ZSTD_c_windowLog, wlog);
  /* Streaming without a known size keeps the declared window. */
  do
    {
      ZSTD_outBuffer o = { out, sizeof (out), 0 };
      left = ZSTD_compressStream2 (c, &o, &in, ZSTD_e_continue);
      assert_false (ZSTD_isError (left));
      buf_add (dst, out, o.pos);
    }
  while (in.pos < in.size);
  do
    {
      ZSTD_outBuffer o = { out, sizeof (out), 0 };
      left = ZSTD_compressStream2 (c, &o, &in, ZSTD_e_end);
      assert_false (ZSTD_isError (left));
      buf_add (dst, out, o.pos);
    }
  while (left != 0);
  ZSTD_freeCCtx (c);
}

/* payload: totalSize, then (off, len, len bytes of 0xEE) frames, then the
 * sentinel if asked. */
static struct buf
payload_of (int64_t size, const int64_t (*ext)[2], size_t n, bool sentinel)
{
  struct buf p = { 0 };
  buf_le64 (&p, size);
  for (size_t i = 0; i < n; i++)
    {
      buf_le64 (&p, ext[i][0]);
      buf_le64 (&p, ext[i][1]);
      if (ext[i][1] > 0 && ext[i][1] < MiB)
        buf_fill (&p, 0xEE, (size_t) ext[i][1]);
    }
  if (sentinel)
    buf_le64 (&p, -1);
  return p;
}

static struct buf
stream_of (int64_t size, const int64_t (*ext)[2], size_t n, bool sentinel)
{
  struct buf p = payload_of (size, ext, n, sentinel);
  struct buf s = sparse_stream (2, &p);
  free (p.p);
  return s;
}

static struct buf
random_extent_stream (void)
{
  static const int64_t e[][2] = { { 0, 64 * KiB } };
  struct buf p = { 0 }, s = { 0 };
  uint8_t *data = xmalloc (64 * KiB);
  fill_region (data, 64 * KiB, -1, 7);
  buf_le64 (&p, 64 * KiB);
  buf_le64 (&p, e[0][0]);
  buf_le64 (&p, e[0][1]);
  buf_add (&p, data, 64 * KiB);
  buf_le64 (&p, -1);
  s = sparse_stream (2, &p);
  free (p.p);
  free (data);
  return s;
}

struct bad
{
  const char *name;
  const char *want;
  struct buf in;
};

#define E(...) ((const int64_t[][2]){ __VA_ARGS__ })
#define EN(...) (sizeof ((const int64_t[][2]){ __VA_ARGS__ }) / sizeof (int64_t[2]))
#define STREAM(size, sentinel, ...) stream_of (size, E (__VA_ARGS__), EN (__VA_ARGS__), sentinel)

static struct buf
bytes_of (const void *p, size_t n)
{
  struct buf b = { 0 };
  buf_add (&b, p, n);
  return b;
}

static size_t
build_bad_cases (struct bad *c)
{
  struct buf p = { 0 }, t;
  size_t n = 0;

  p = payload_of (0, NULL, 0, true);
  c[n++] = (struct bad) { "version 3", "unsupported sparse snapshot format version 3",
                          sparse_stream (3, &p) };
  c[n++] = (struct bad) { "version 1", "unsupported sparse snapshot format version 1",
                          sparse_stream (1, &p) };
  free (p.p);
  c[n++] = (struct bad) { "negative size", "negative totalSize -1", stream_of (-1, NULL, 0, true) };
  c[n++] = (struct bad) { "extent past end", "sparse extent out of range (off=50 len=100 size=100)",
                          STREAM (100, true, { 50, 100 }) };
  c[n++] = (struct bad) { "negative offset", "out of range (off=-5", STREAM (100, true, { -5, 1 }) };
  c[n++] = (struct bad) { "negative length", "out of range (off=0 len=-1", STREAM (100, true, { 0, -1 }) };
  c[n++] = (struct bad) { "offset beyond size", "out of range (off=101", STREAM (100, true, { 101, 1 }) };
  c[n++] = (struct bad) { "length overflow", "out of range (off=10 len=9223372036854775807",
                          STREAM (100, true, { 10, INT64_MAX }) };
  c[n++] = (struct bad) { "overlap", "sparse extent at offset 5 overlaps or precedes the previous extent ending at 10",
                          STREAM (100, true, { 0, 10 }, { 5, 10 }) };
  c[n++] = (struct bad) { "unsorted", "sparse extent at offset 0 overlaps or precedes",
                          STREAM (100, true, { 50, 10 }, { 0, 10 }) };
  c[n++] = (struct bad) { "empty extent", "empty sparse extent at offset 10", STREAM (100, true, { 10, 0 }) };
  c[n++] = (struct bad) { "missing sentinel", "truncated stream: missing end sentinel after 1 extents",
                          STREAM (100, false, { 0, 10 }) };
  c[n++] = (struct bad) { "missing sentinel, no extents", "missing end sentinel after 0 extents",
                          stream_of (100, NULL, 0, false) };
  t = payload_of (100, E ({ 0, 20 }), 1, false);
  t.len -= 20 - 8;
  ((uint8_t *) t.p)[16] = 50; /* length 50 but only 8 bytes follow */
  c[n++] = (struct bad) { "truncated extent", "extent @0+50 ends after 8 of its bytes", sparse_stream (2, &t) };
  t.len = 4;
  c[n++] = (struct bad) { "short totalSize", "truncated stream: missing totalSize", sparse_stream (2, &t) };
  t.len = 16;
  c[n++] = (struct bad) { "missing length", "extent at offset 0 has no length", sparse_stream (2, &t) };
  free (t.p);
  t = payload_of (0, NULL, 0, true);
  buf_add (&t, "12345", 5);
  c[n++] = (struct bad) { "data after sentinel", "trailing data after the end sentinel", sparse_stream (2, &t) };
  free (t.p);
  t = stream_of (0, NULL, 0, true);
  p = bytes_of ("x", 1);
  buf_zstd (&t, &p);
  free (p.p);
  c[n++] = (struct bad) { "data after sentinel in a second frame", "trailing data after the end sentinel", t };
  t = stream_of (0, NULL, 0, true);
  buf_add (&t, "garbage!", 8);
  c[n++] = (struct bad) { "garbage after the frame", "trailing garbage after the last zstd frame", t };
  t = random_extent_stream ();
  t.len /= 2;
  c[n++] = (struct bad) { "truncated compressed data", "truncated stream", t };
  t = stream_of (0, NULL, 0, true);
  t.len -= 2;
  c[n++] = (struct bad) { "truncated checksum", "truncated stream: the input ends inside a zstd frame", t };
  t = stream_of (0, NULL, 0, true);
  t.p[t.len - 1] ^= 0xFF;
  c[n++] = (struct bad) { "checksum mismatch", "zstd checksum mismatch", t };
  t = bytes_of ("ATESPRSE\x02\x00\x00\x00garbage garbage", 27);
  c[n++] = (struct bad) { "no zstd after prefix", "not a zstd frame", t };
  c[n++] = (struct bad) { "prefix only", "truncated stream: missing totalSize",
                          bytes_of ("ATESPRSE\x02\x00\x00\x00", 12) };
  c[n++] = (struct bad) { "magic only", "truncated header", bytes_of ("ATESPRSE", 8) };
  c[n++] = (struct bad) { "magic and half a version", "truncated header", bytes_of ("ATESPRSE\x02\x00", 10) };
  c[n++] = (struct bad) { "unknown magic", "unknown format", bytes_of ("HELLO WORLD, not a snapshot", 27) };
  c[n++] = (struct bad) { "short unknown", "unknown format", bytes_of ("AB", 2) };
  c[n++] = (struct bad) { "prefix of the magic", "unknown format", bytes_of ("ATESP", 5) };
  p = random_extent_stream ();
  t = bytes_of (p.p + 12, p.len - 12); /* a plain zstd stream */
  free (p.p);
  p = bytes_of (t.p, t.len / 2);
  c[n++] = (struct bad) { "plain truncated", "truncated stream: the input ends inside a zstd frame", p };
  buf_add (&t, "junk", 4);
  c[n++] = (struct bad) { "plain with trailing garbage", "trailing garbage after the last zstd frame", t };
  p = payload_of (0, NULL, 0, true);
  t = (struct buf) { 0 };
  buf_prefix (&t, 2);
  buf_zstd_window (&t, &p, 28);
  c[n++] = (struct bad) { "window too large", "window larger than 128 MiB", t };
  t = (struct buf) { 0 };
  buf_zstd_window (&t, &p, 28);
  c[n++] = (struct bad) { "plain window too large", "window larger than 128 MiB", t };
  free (p.p);
  return n;
}

static void
expect_failure (const struct bad *c, int rc, struct ate_error **err)
{
  if (rc >= 0)
    fail_msg ("%s: accepted", c->name);
  assert_non_null (*err);
  if (strstr ((*err)->msg, c->want) == NULL)
    fail_msg ("%s: error `%s` lacks `%s`", c->name, (*err)->msg, c->want);
  assert_int_equal (ate_error_code (*err), ATE_CODE_DATA_LOSS);
  ate_error_release (err);
}

static void
run_bad_case (const struct bad *c)
{
  cleanup_free char *ip = tpath ("in"), *op = tpath ("out");
  struct ate_error *err = NULL;
  struct pipe_job job = { .bytes = &c->in };
  struct buf old;
  int fd, nul;

  write_bytes (ip, c->in.p, c->in.len);
  fd = open (ip, O_RDONLY | O_CLOEXEC);
  expect_failure (c, snapshot_decode_fd (fd, op, NULL, NULL, NULL, &err), &err);
  assert_dir_only ("in", NULL);
  /* A failed decode loses nothing: an existing output stays as it was. */
  write_bytes (op, "old", 3);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  expect_failure (c, snapshot_decode_fd (fd, op, NULL, NULL, NULL, &err), &err);
  assert_dir_only ("in", "out", NULL);
  old = read_all (op);
  assert_int_equal (old.len, 3);
  assert_memory_equal (old.p, "old", 3);
  free (old.p);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  expect_failure (c, snapshot_inspect (fd, NULL, NULL, &err), &err);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  nul = open ("/dev/null", O_WRONLY | O_CLOEXEC);
  expect_failure (c, snapshot_decode_to_stream (fd, nul, NULL, NULL, NULL, &err), &err);
  close (nul);
  close (fd);
  unlink (op);
  /* The same through a pipe. */
  fd = pipe_job_start (&job);
  expect_failure (c, snapshot_decode_fd (fd, op, NULL, NULL, NULL, &err), &err);
  close (fd);
  pipe_job_join (&job);
  assert_dir_only ("in", NULL);
  clean_dir ();
}

static void
test_malformed_inputs (void **state)
{
  struct bad cases[64];
  size_t n = build_bad_cases (cases);
  (void) state;

  assert_true (n <= ATE_N_ELEMENTS (cases));
  for (size_t i = 0; i < n; i++)
    {
      print_message ("  %s\n", cases[i].name);
      run_bad_case (&cases[i]);
      free (cases[i].in.p);
    }
}

/* ---- accepted variations ---- */
static void
test_extra_empty_frames_accepted (void **state)
{
  static const uint8_t skippable[12] = { 0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4 };
  static const uint8_t want[8] = { 0 };
  struct buf s = stream_of (8, NULL, 0, true), empty = { 0 };
  (void) state;

  /* A second frame with no content, then a skippable frame: valid zstd
   * that adds no byte after the sentinel. */
  buf_zstd (&s, &empty);
  buf_add (&s, skippable, sizeof (skippable));
  decode_bytes_ok (&s, want, sizeof (want), SNAPSHOT_FORMAT_SPARSE_V2);
  free (s.p);
  /* An empty input is what klauspost writes for empty plain content;
   * atelet's reader makes it an empty file, and so do we. */
  s = (struct buf) { 0 };
  decode_bytes_ok (&s, "", 0, SNAPSHOT_FORMAT_PLAIN_ZSTD);
}

static void
test_plain_zstd_fallback (void **state)
{
  /* 64 KiB zeros | 64 KiB data | 100 KiB zeros | 10 bytes data | 200 KiB
   * zeros: blocks 1 and 3 are written, everything else stays a hole. */
  const size_t len = 64 * KiB + 64 * KiB + 100 * KiB + 10 + 200 * KiB;
  cleanup_free char *ip = tpath ("in"), *op = tpath ("out");
  uint8_t *content = xcalloc (1, len);
  struct buf raw, in = { 0 };
  struct snapshot_stats st;
  struct ate_error *err = NULL;
  enum snapshot_format fmt;
  uint64_t ext, bytes;
  int fd;
  (void) state;

  fill_region (content + 64 * KiB, 64 * KiB, -1, 3);
  memset (content + 228 * KiB, 0x42, 10);
  raw = bytes_of (content, len);
  buf_zstd (&in, &raw);
  write_bytes (ip, in.p, in.len);
  fd = open (ip, O_RDONLY | O_CLOEXEC);
  assert_int_equal (snapshot_decode_fd (fd, op, NULL, &fmt, &st, &err), 0);
  close (fd);
  assert_int_equal (fmt, SNAPSHOT_FORMAT_PLAIN_ZSTD);
  assert_int_equal (st.logical_size, len);
  assert_int_equal (st.populated_bytes, 128 * KiB);
  assert_int_equal (st.extent_count, 2);
  assert_int_equal (st.compressed_bytes, in.len);
  struct buf got = read_all (op);
  assert_int_equal (got.len, len);
  assert_memory_equal (got.p, content, len);
  data_map (op, &ext, &bytes);
  assert_int_equal (ext, 2);
  assert_int_equal (bytes, 128 * KiB);
  free (got.p);
  free (raw.p);
  free (in.p);
  free (content);
  clean_dir ();
}

static void
test_encode_plain_from_pipe (void **state)
{
  cleanup_free char *op = tpath ("out"), *ep = tpath ("enc");
  const size_t len = 3 * MiB + 17;
  uint8_t *content = xcalloc (1, len);
  struct buf b;
  struct pipe_job job = { 0 };
  struct snapshot_stats est, dst;
  struct snapshot_encode_opts o = { 0 };
  struct ate_error *err = NULL;
  int rfd, efd;
  (void) state;

  fill_region (content + MiB, MiB, -1, 9);
  b = bytes_of (content, len);
  job.bytes = &b;
  rfd = pipe_job_start (&job);
  efd = open (ep, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  assert_int_equal (snapshot_encode_fd (rfd, efd, &o, &est, &err), 0);
  close (efd);
  close (rfd);
  pipe_job_join (&job);
  assert_int_equal (est.format, SNAPSHOT_FORMAT_PLAIN_ZSTD);
  assert_int_equal (est.logical_size, len);
  /* Asking for the sparse format from a pipe is refused. */
  o.format = SNAPSHOT_FORMAT_SPARSE_V2;
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  assert_true (snapshot_encode_fd (p[0], p[1], &o, NULL, &err) < 0);
  assert_non_null (strstr (err->msg, "needs a regular file"));
  ate_error_release (&err);
  close (p[0]);
  close (p[1]);
  efd = open (ep, O_RDONLY | O_CLOEXEC);
  assert_int_equal (snapshot_decode_fd (efd, op, NULL, NULL, &dst, &err), 0);
  close (efd);
  assert_int_equal (dst.format, SNAPSHOT_FORMAT_PLAIN_ZSTD);
  assert_int_equal (dst.populated_bytes, MiB);
  struct buf got = read_all (op);
  assert_int_equal (got.len, len);
  assert_memory_equal (got.p, content, len);
  free (got.p);
  free (b.p);
  free (content);
  clean_dir ();
}

/* ---- options, limits, cancellation, existing outputs ---- */
static int
decode_path (const char *in, const char *out, const struct snapshot_decode_opts *o,
             struct ate_error **err)
{
  int fd = open (in, O_RDONLY | O_CLOEXEC);
  int r;
  assert_true (fd >= 0);
  r = snapshot_decode_fd (fd, out, o, NULL, NULL, err);
  close (fd);
  return r;
}

static void
expect_error (int rc, struct ate_error **err, const char *want, int status)
{
  assert_true (rc < 0);
  assert_non_null (*err);
  if (strstr ((*err)->msg, want) == NULL)
    fail_msg ("error `%s` lacks `%s`", (*err)->msg, want);
  if (status != 0)
    assert_int_equal ((*err)->status, status);
  ate_error_release (err);
}

static void
test_encode_options_validated (void **state)
{
  cleanup_free char *src = tpath ("src"), *enc = tpath ("enc");
  struct ate_error *err = NULL;
  const struct region r[] = { { 0, 4096, 1 } };
  struct snapshot_encode_opts o = { 0 };
  (void) state;

  make_sparse (src, MiB, r, 1);
  o.level = 23;
  expect_error (snapshot_encode_file (src, enc, &o, NULL, &err), &err, "compression level", EINVAL);
  o.level = -1000000;
  expect_error (snapshot_encode_file (src, enc, &o, NULL, &err), &err, "compression level", EINVAL);
  o.level = 0;
  o.threads = SNAPSHOT_MAX_THREADS + 1;
  expect_error (snapshot_encode_file (src, enc, &o, NULL, &err), &err, "threads", EINVAL);
  o.threads = -1;
  expect_error (snapshot_encode_file (src, enc, &o, NULL, &err), &err, "threads", EINVAL);
  assert_dir_only ("src", NULL);
  expect_error (snapshot_encode_file (tmpdir, enc, NULL, NULL, &err), &err, "directory", EISDIR);
  expect_error (snapshot_encode_file (enc, src, NULL, NULL, &err), &err, "open", ENOENT);
  /* NULL options mean the defaults. */
  assert_int_equal (snapshot_encode_file (src, enc, NULL, NULL, &err), 0);
  o = (struct snapshot_encode_opts) { .no_replace = true };
  expect_error (snapshot_encode_file (src, enc, &o, NULL, &err), &err, "exists", EEXIST);
  clean_dir ();
}

static void
test_decode_limits_and_outputs (void **state)
{
  cleanup_free char *src = tpath ("src"), *enc = tpath ("enc"), *out = tpath ("out");
  cleanup_free char *plain = tpath ("plain");
  struct ate_error *err = NULL;
  const struct region r[] = { { 0, 8192, 3 } };
  struct snapshot_decode_opts o = { .max_size = MiB - 1 };
  struct buf raw = { 0 }, pz = { 0 }, got;
  (void) state;

  make_sparse (src, MiB, r, 1);
  assert_int_equal (snapshot_encode_file (src, enc, NULL, NULL, &err), 0);
  expect_error (decode_path (enc, out, &o, &err), &err, "exceeds the limit of 1048575 bytes", EFBIG);
  buf_fill (&raw, 0, MiB);
  buf_zstd (&pz, &raw);
  write_bytes (plain, pz.p, pz.len);
  expect_error (decode_path (plain, out, &o, &err), &err, "exceeds the limit", EFBIG);
  assert_dir_only ("src", "enc", "plain", NULL);
  o.max_size = MiB;
  assert_int_equal (decode_path (enc, out, &o, &err), 0);
  /* no_replace: refused up front, the existing file untouched. */
  write_bytes (out, "keep", 4);
  o.no_replace = true;
  expect_error (decode_path (enc, out, &o, &err), &err, "exists", EEXIST);
  got = read_all (out);
  assert_int_equal (got.len, 4);
  free (got.p);
  /* Replacing (the default) swaps in the new content atomically. */
  o.no_replace = false;
  o.mode = 0640;
  assert_int_equal (decode_path (enc, out, &o, &err), 0);
  assert_same_content (src, out);
  struct stat sb;
  assert_int_equal (stat (out, &sb), 0);
  assert_int_equal (sb.st_mode & 07777, 0640);
  /* Outputs that cannot be files. */
  expect_error (decode_path (enc, tmpdir, NULL, &err), &err, "is a directory", EISDIR);
  cleanup_free char *slash = xasprintf ("%s/", out);
  expect_error (decode_path (enc, slash, NULL, &err), &err, "not a file name", EINVAL);
  cleanup_free char *nodir = tpath ("missing/out");
  expect_error (decode_path (enc, nodir, NULL, &err), &err, "temporary file", ENOENT);
  assert_dir_only ("src", "enc", "plain", "out", NULL);
  free (raw.p);
  free (pz.p);
  clean_dir ();
}

static void
test_cancel_and_deadline (void **state)
{
  cleanup_free char *src = tpath ("src"), *enc = tpath ("enc"), *out = tpath ("out");
  struct ate_error *err = NULL;
  const struct region r[] = { { 0, 2 * MiB, -1 } };
  volatile sig_atomic_t stop = 1;
  struct snapshot_encode_opts eo = { .cancel = &stop };
  struct snapshot_decode_opts dopt = { .cancel = &stop };
  (void) state;

  make_sparse (src, 4 * MiB, r, 1);
  expect_error (snapshot_encode_file (src, enc, &eo, NULL, &err), &err, "interrupted", ECANCELED);
  assert_dir_only ("src", NULL);
  eo = (struct snapshot_encode_opts) { .deadline = 1 };
  expect_error (snapshot_encode_file (src, enc, &eo, NULL, &err), &err, "deadline", ETIMEDOUT);
  assert_dir_only ("src", NULL);
  assert_int_equal (snapshot_encode_file (src, enc, NULL, NULL, &err), 0);
  expect_error (decode_path (enc, out, &dopt, &err), &err, "interrupted", ECANCELED);
  dopt = (struct snapshot_decode_opts) { .deadline = 1 };
  expect_error (decode_path (enc, out, &dopt, &err), &err, "deadline", ETIMEDOUT);
  assert_dir_only ("src", "enc", NULL);
  clean_dir ();
}

static void
progress_count (void *data, uint64_t done, uint64_t total)
{
  uint64_t *calls = data;
  assert_true (total == 0 || done <= total);
  (*calls)++;
}

static void
test_progress_reported (void **state)
{
  cleanup_free char *src = tpath ("src"), *enc = tpath ("enc"), *out = tpath ("out");
  struct ate_error *err = NULL;
  const struct region r[] = { { 0, 9 * MiB, 5 } };
  uint64_t ecalls = 0, dcalls = 0;
  struct snapshot_encode_opts eo = { .progress = progress_count, .progress_data = &ecalls };
  struct snapshot_decode_opts dopt = { .progress = progress_count, .progress_data = &dcalls };
  (void) state;

  make_sparse (src, 16 * MiB, r, 1);
  assert_int_equal (snapshot_encode_file (src, enc, &eo, NULL, &err), 0);
  assert_int_equal (decode_path (enc, out, &dopt, &err), 0);
  assert_true (ecalls >= 3);
  assert_true (dcalls >= 3);
  clean_dir ();
}

static void
test_format_names (void **state)
{
  (void) state;
  assert_string_equal (snapshot_format_name (SNAPSHOT_FORMAT_SPARSE_V2), "sparse-v2");
  assert_string_equal (snapshot_format_name (SNAPSHOT_FORMAT_PLAIN_ZSTD), "plain-zstd");
  assert_string_equal (snapshot_format_name (SNAPSHOT_FORMAT_AUTO), "auto");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_format_names),
    cmocka_unit_test (test_roundtrip_layouts_file),
    cmocka_unit_test (test_roundtrip_layouts_pipe),
    cmocka_unit_test (test_roundtrip_many_small_extents),
    cmocka_unit_test (test_roundtrip_beyond_4gib),
    cmocka_unit_test (test_payload_layout_exact),
    cmocka_unit_test (test_hand_assembled_vectors),
    cmocka_unit_test (test_malformed_inputs),
    cmocka_unit_test (test_extra_empty_frames_accepted),
    cmocka_unit_test (test_plain_zstd_fallback),
    cmocka_unit_test (test_encode_plain_from_pipe),
    cmocka_unit_test (test_encode_options_validated),
    cmocka_unit_test (test_decode_limits_and_outputs),
    cmocka_unit_test (test_cancel_and_deadline),
    cmocka_unit_test (test_progress_reported),
  };

  /* A decoder that stops early closes its end of a test pipe: the writer
   * must see EPIPE, not die. */
  signal (SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests (tests, setup, teardown);
}
