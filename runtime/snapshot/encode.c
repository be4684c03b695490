/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encoder: a regular file becomes "ATESPRSE" | u32le 2 | one zstd frame of
 * totalSize, the populated extents found with SEEK_DATA/SEEK_HOLE (holes are
 * never read) and the -1 sentinel.  Anything else (a pipe) becomes a plain
 * zstd stream, as atelet does for non-file content.  Output is written
 * sequentially, so it can be a pipe: nothing is counted up front.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "snapshot-internal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/sparse.h"
#include "util/util.h"

/* Large reads keep syscalls rare; zstd's workers copy the input anyway. */
#define ENCODE_CHUNK (4 * 1024 * 1024)

struct encoder
{
  ZSTD_CCtx *cctx;
  int out_fd;
  uint8_t *out;
  size_t out_cap;
  uint64_t written;
  struct snapshot_ctl ctl;
  const struct snapshot_encode_opts *opts;
};

static void
encoder_release (struct encoder *e)
{
  ZSTD_freeCCtx (e->cctx);
  free (e->out);
}

static int
resolve_threads (int threads, int *out, struct ate_error **err)
{
  if (threads < 0 || threads > SNAPSHOT_MAX_THREADS)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "threads must be 0 (one per CPU) to %d, not %d",
                                SNAPSHOT_MAX_THREADS, threads);
  if (threads == 0)
    {
      long n = sysconf (_SC_NPROCESSORS_ONLN);
      threads = n < 1 ? 1 : n > SNAPSHOT_MAX_THREADS ? SNAPSHOT_MAX_THREADS : (int) n;
    }
  *out = threads;
  return 0;
}

static int
zstd_check (size_t r, const char *what, struct ate_error **err)
{
  if (ZSTD_isError (r))
    return ate_error_make (err, EIO, "zstd %s: %s", what, ZSTD_getErrorName (r));
  return 0;
}

static int
encoder_init (struct encoder *e, int out_fd, const struct snapshot_encode_opts *opts,
              struct ate_error **err)
{
  int level = opts->level != 0 ? opts->level : SNAPSHOT_DEFAULT_LEVEL;
  int threads = 1;

  memset (e, 0, sizeof (*e));
  e->out_fd = out_fd;
  e->opts = opts;
  e->ctl = (struct snapshot_ctl) { .deadline = opts->deadline, .cancel = opts->cancel };
  if (level < ZSTD_minCLevel () || level > ZSTD_maxCLevel ())
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "compression level must be %d to %d, not %d",
                                ZSTD_minCLevel (), ZSTD_maxCLevel (), level);
  if (resolve_threads (opts->threads, &threads, err) < 0)
    return -1;
  e->cctx = ZSTD_createCCtx ();
  if (e->cctx == NULL)
    ate_oom ();
  e->out_cap = ZSTD_CStreamOutSize ();
  e->out = xmalloc (e->out_cap);
  if (zstd_check (ZSTD_CCtx_setParameter (e->cctx, ZSTD_c_compressionLevel, level),
                  "set level", err) < 0
      || zstd_check (ZSTD_CCtx_setParameter (e->cctx, ZSTD_c_checksumFlag, 1),
                     "enable checksums", err) < 0)
    return -1;
  /* A libzstd built without threads refuses workers: compress inline. */
  (void) ZSTD_CCtx_setParameter (e->cctx, ZSTD_c_nbWorkers, threads);
  return 0;
}

/* Feed bytes to zstd and write whatever it produces. */
static int
encoder_push (struct encoder *e, const void *p, size_t n, ZSTD_EndDirective mode,
              struct ate_error **err)
{
  ZSTD_inBuffer in = { p, n, 0 };

  for (;;)
    {
      ZSTD_outBuffer out = { e->out, e->out_cap, 0 };
      size_t left = ZSTD_compressStream2 (e->cctx, &out, &in, mode);
      if (zstd_check (left, "compress", err) < 0)
        return -1;
      if (out.pos > 0)
        {
          if (snapshot_write_all (e->out_fd, e->out, out.pos, &e->ctl, err) < 0)
            return -1;
          e->written += out.pos;
        }
      if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
        return 0;
    }
}

static int
encoder_push_le64 (struct encoder *e, int64_t v, ZSTD_EndDirective mode,
                   struct ate_error **err)
{
  uint8_t w[8];
  snapshot_put_le64 (w, (uint64_t) v);
  return encoder_push (e, w, sizeof (w), mode, err);
}

static void
report_progress (const struct encoder *e, uint64_t done, uint64_t total)
{
  if (e->opts->progress != NULL)
    e->opts->progress (e->opts->progress_data, done, total);
}

/* pread exactly [start, end) of in_fd into zstd. */
static int
encode_extent (struct encoder *e, int in_fd, uint8_t *buf, off_t start, off_t end,
               off_t size, struct ate_error **err)
{
  off_t off = start;

  while (off < end)
    {
      size_t want = (size_t) (end - off) < ENCODE_CHUNK ? (size_t) (end - off) : ENCODE_CHUNK;
      ssize_t r = TEMP_FAILURE_RETRY (pread (in_fd, buf, want, off));
      if (r < 0)
        return ate_error_make (err, errno, "read input at offset %lld", (long long) off);
      if (r == 0)
        return ate_error_make (err, EIO,
                               "input shrank while reading the extent @%lld+%lld",
                               (long long) start, (long long) (end - start));
      if (encoder_push (e, buf, (size_t) r, ZSTD_e_continue, err) < 0)
        return -1;
      off += r;
      report_progress (e, (uint64_t) off, (uint64_t) size);
      if (snapshot_ctl_check (&e->ctl, err) < 0)
        return -1;
    }
  return 0;
}

static int
encode_sparse (struct encoder *e, int in_fd, off_t size, struct snapshot_stats *st,
               struct ate_error **err)
{
  cleanup_free uint8_t *buf = xmalloc (ENCODE_CHUNK);
  uint8_t prefix[SNAPSHOT_PREFIX_LEN];
  off_t off = 0, s, end;
  int r;

  memcpy (prefix, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN);
  prefix[8] = SNAPSHOT_VERSION & 0xff;
  prefix[9] = prefix[10] = prefix[11] = 0;
  if (snapshot_write_all (e->out_fd, prefix, sizeof (prefix), &e->ctl, err) < 0)
    return -1;
  e->written += sizeof (prefix);
  (void) posix_fadvise (in_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  if (encoder_push_le64 (e, size, ZSTD_e_continue, err) < 0)
    return -1;
  while ((r = ate_sparse_next_extent (in_fd, off, size, &s, &end, err)) > 0)
    {
      if (encoder_push_le64 (e, s, ZSTD_e_continue, err) < 0
          || encoder_push_le64 (e, end - s, ZSTD_e_continue, err) < 0
          || encode_extent (e, in_fd, buf, s, end, size, err) < 0)
        return -1;
      st->extent_count++;
      st->populated_bytes += (uint64_t) (end - s);
      off = end;
    }
  if (r < 0)
    return -1;
  if (encoder_push_le64 (e, SNAPSHOT_END_OFFSET, ZSTD_e_end, err) < 0)
    return -1;
  report_progress (e, (uint64_t) size, (uint64_t) size);
  st->logical_size = (uint64_t) size;
  return 0;
}

/* A regular file is read with pread from 0 (like the sparse path); a pipe
 * sequentially. */
static int
encode_plain (struct encoder *e, int in_fd, bool regular, uint64_t total,
              struct snapshot_stats *st, struct ate_error **err)
{
  cleanup_free uint8_t *buf = xmalloc (ENCODE_CHUNK);
  uint64_t done = 0;

  for (;;)
    {
      ssize_t r;
      if (regular)
        {
          r = TEMP_FAILURE_RETRY (pread (in_fd, buf, ENCODE_CHUNK, (off_t) done));
          if (r < 0)
            return ate_error_make (err, errno, "read input at offset %llu",
                                   (unsigned long long) done);
        }
      else if ((r = snapshot_read_full (in_fd, buf, ENCODE_CHUNK, &e->ctl, err)) < 0)
        return -1;
      if (r == 0)
        break;
      if (encoder_push (e, buf, (size_t) r, ZSTD_e_continue, err) < 0)
        return -1;
      done += (uint64_t) r;
      report_progress (e, done, total);
      if (snapshot_ctl_check (&e->ctl, err) < 0)
        return -1;
    }
  if (encoder_push (e, NULL, 0, ZSTD_e_end, err) < 0)
    return -1;
  st->logical_size = done;
  st->populated_bytes = done;
  return 0;
}

int
snapshot_encode_fd (int in_fd, int out_fd, const struct snapshot_encode_opts *opts,
                    struct snapshot_stats *stats, struct ate_error **err)
{
  static const struct snapshot_encode_opts defaults;
  struct snapshot_stats st = { 0 };
  struct encoder e;
  struct stat sb;
  bool regular;
  int r;

  if (opts == NULL)
    opts = &defaults;
  if (fstat (in_fd, &sb) < 0)
    return ate_error_make (err, errno, "stat input");
  if (S_ISDIR (sb.st_mode))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EISDIR, "input is a directory");
  regular = S_ISREG (sb.st_mode);
  st.format = opts->format;
  if (st.format == SNAPSHOT_FORMAT_AUTO)
    st.format = regular ? SNAPSHOT_FORMAT_SPARSE_V2 : SNAPSHOT_FORMAT_PLAIN_ZSTD;
  if (st.format == SNAPSHOT_FORMAT_SPARSE_V2 && !regular)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "the sparse-extent format needs a regular file as input "
                                "(its size comes first)");
  if (encoder_init (&e, out_fd, opts, err) < 0)
    {
      encoder_release (&e);
      return -1;
    }
  if (st.format == SNAPSHOT_FORMAT_SPARSE_V2)
    r = encode_sparse (&e, in_fd, sb.st_size, &st, err);
  else
    r = encode_plain (&e, in_fd, regular, regular ? (uint64_t) sb.st_size : 0, &st, err);
  st.compressed_bytes = e.written;
  encoder_release (&e);
  if (r < 0)
    return ate_error_wrap (err, "while encoding (%s)", snapshot_format_name (st.format));
  if (stats != NULL)
    *stats = st;
  return 0;
}

int
snapshot_encode_file (const char *in_path, const char *out_path,
                      const struct snapshot_encode_opts *opts, struct snapshot_stats *stats,
                      struct ate_error **err)
{
  static const struct snapshot_encode_opts defaults;
  cleanup_outfile struct snapshot_outfile *of = NULL;
  cleanup_close int in_fd = -1;

  if (opts == NULL)
    opts = &defaults;
  in_fd = open (in_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (in_fd < 0)
    return ate_error_make (err, errno, "open `%s`", in_path);
  if (opts->no_replace && ate_path_exists (out_path))
    return ate_error_make_code (err, ATE_CODE_ALREADY_EXISTS, EEXIST,
                                "output `%s` exists", out_path);
  if (snapshot_outfile_open (out_path, opts->mode, &of, err) < 0
      || snapshot_encode_fd (in_fd, snapshot_outfile_fd (of), opts, stats, err) < 0
      || snapshot_outfile_commit (of, !opts->no_replace, opts->no_fsync, err) < 0)
    return ate_error_wrap (err, "packing `%s` into `%s`", in_path, out_path);
  return 0;
}
