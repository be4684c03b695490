/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decoder: reads the input sequentially (file or pipe), tells the two
 * formats apart by their first bytes, drives zstd with bounded buffers and
 * window, and hands the decompressed bytes to the sparse payload parser or
 * the plain-zstd block skipper, which write through a sink.
 *
 * Stricter than atelet's reader (docs/snapshot-format.md): the zstd stream
 * must end at a complete frame (checksum included) and the input must end
 * there too; extra zstd frames are accepted only if they decompress to
 * nothing, since any byte after the sentinel is an error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "snapshot-internal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

#define DECODE_IN_CHUNK (1024 * 1024)
#define DECODE_OUT_CHUNK (1024 * 1024)
#define ZSTD_FRAME_MAGIC 0xFD2FB528u
#define ZSTD_SKIPPABLE_MAGIC_MASK 0xFFFFFFF0u
#define ZSTD_SKIPPABLE_MAGIC 0x184D2A50u

struct decoder
{
  ZSTD_DCtx *dctx;
  int in_fd;
  uint8_t *in;
  size_t in_len, in_pos;
  bool eof;
  uint64_t in_total;      /* bytes read from the input */
  uint64_t frames_done;   /* complete zstd frames */
  uint8_t *out;
  struct snapshot_ctl ctl;
  const struct snapshot_decode_opts *opts;
  enum snapshot_format format;
  struct snapshot_payload payload;
  struct snapshot_plain plain;
};

static void
decoder_release (struct decoder *d)
{
  ZSTD_freeDCtx (d->dctx);
  free (d->in);
  free (d->out);
  snapshot_plain_release (&d->plain);
}

static uint32_t
get_le32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
         | (uint32_t) p[3] << 24;
}

/* Read the first bytes and decide the format: the sparse prefix is consumed,
 * a plain stream's bytes stay in the buffer for zstd. */
static int
detect_format (struct decoder *d, struct ate_error **err)
{
  ssize_t n = snapshot_read_full (d->in_fd, d->in, SNAPSHOT_PREFIX_LEN, &d->ctl, err);
  uint32_t v;

  if (n < 0)
    return -1;
  d->in_len = (size_t) n;
  d->in_total = (uint64_t) n;
  if (n == 0)
    {
      /* klauspost's encoder writes nothing at all for empty content, and
       * atelet's reader turns an empty object into an empty file. */
      d->format = SNAPSHOT_FORMAT_PLAIN_ZSTD;
      d->eof = true;
      return 0;
    }
  if (n >= SNAPSHOT_MAGIC_LEN && memcmp (d->in, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN) == 0)
    {
      d->format = SNAPSHOT_FORMAT_SPARSE_V2;
      if (n < SNAPSHOT_PREFIX_LEN)
        return snapshot_error_corrupt (err, "truncated header: the ATESPRSE magic is not "
                                            "followed by a format version");
      v = get_le32 (d->in + SNAPSHOT_MAGIC_LEN);
      if (v != SNAPSHOT_VERSION)
        return snapshot_error_corrupt (err,
                                       "unsupported sparse snapshot format version %u "
                                       "(this build supports %u)",
                                       v, SNAPSHOT_VERSION);
      d->in_pos = SNAPSHOT_PREFIX_LEN;
      return 0;
    }
  if (n < 4
      || (get_le32 (d->in) != ZSTD_FRAME_MAGIC
          && (get_le32 (d->in) & ZSTD_SKIPPABLE_MAGIC_MASK) != ZSTD_SKIPPABLE_MAGIC))
    return snapshot_error_corrupt (err, "unknown format: the input starts with neither the "
                                        "ATESPRSE magic nor a zstd frame");
  d->format = SNAPSHOT_FORMAT_PLAIN_ZSTD;
  return 0;
}

static int
zstd_error (struct decoder *d, size_t r, struct ate_error **err)
{
  unsigned long long at = (unsigned long long) (d->in_total - (d->in_len - d->in_pos));

  switch (ZSTD_getErrorCode (r))
    {
    case ZSTD_error_prefix_unknown:
      if (d->frames_done > 0)
        return snapshot_error_corrupt (err, "trailing garbage after the last zstd frame "
                                            "(near compressed offset %llu)", at);
      return snapshot_error_corrupt (err, "not a zstd frame (near compressed offset %llu)", at);
    case ZSTD_error_frameParameter_windowTooLarge:
      return snapshot_error_corrupt (err, "zstd frame needs a window larger than %u MiB: refused",
                                     (1u << SNAPSHOT_WINDOW_LOG_MAX) >> 20);
    case ZSTD_error_checksum_wrong:
      return snapshot_error_corrupt (err, "zstd checksum mismatch: the stream is corrupt");
    default:
      break;
    }
  return snapshot_error_corrupt (err, "corrupt zstd stream near compressed offset %llu: %s",
                                 at, ZSTD_getErrorName (r));
}

static int
consume (struct decoder *d, const uint8_t *p, size_t n, struct ate_error **err)
{
  if (d->format == SNAPSHOT_FORMAT_SPARSE_V2)
    return snapshot_payload_feed (&d->payload, p, n, err);
  return snapshot_plain_feed (&d->plain, p, n, err);
}

static void
report_progress (const struct decoder *d)
{
  if (d->opts->progress == NULL)
    return;
  if (d->format == SNAPSHOT_FORMAT_PLAIN_ZSTD)
    d->opts->progress (d->opts->progress_data, d->plain.pos, 0);
  else if (d->payload.state != SNAPSHOT_PAYLOAD_SIZE)
    d->opts->progress (d->opts->progress_data, snapshot_payload_position (&d->payload),
                       (uint64_t) d->payload.total_size);
}

/* Run zstd over the rest of the input.  *complete tells whether the input
 * ended exactly at the end of a frame. */
static int
decompress_all (struct decoder *d, bool *complete, struct ate_error **err)
{
  bool boundary = false;

  for (;;)
    {
      if (d->in_pos == d->in_len && !d->eof)
        {
          ssize_t n = snapshot_read_full (d->in_fd, d->in, DECODE_IN_CHUNK, &d->ctl, err);
          if (n < 0)
            return -1;
          d->in_len = (size_t) n;
          d->in_pos = 0;
          d->in_total += (uint64_t) n;
          d->eof = n == 0;
        }
      ZSTD_inBuffer in = { d->in, d->in_len, d->in_pos };
      ZSTD_outBuffer out = { d->out, DECODE_OUT_CHUNK, 0 };
      size_t ret = ZSTD_decompressStream (d->dctx, &out, &in);
      if (ZSTD_isError (ret))
        {
          d->in_pos = in.pos;
          return zstd_error (d, ret, err);
        }
      /* After a frame ends, zstd asks for the next header even when there
       * is none: only consuming input leaves the boundary. */
      if (ret == 0)
        {
          d->frames_done++;
          boundary = true;
        }
      else if (in.pos > d->in_pos)
        boundary = false;
      d->in_pos = in.pos;
      if (out.pos > 0 && consume (d, d->out, out.pos, err) < 0)
        return -1;
      report_progress (d);
      if (snapshot_ctl_check (&d->ctl, err) < 0)
        return -1;
      /* Done when the input is used up and zstd had nothing left to flush. */
      if (d->eof && d->in_pos == d->in_len && out.pos < out.size)
        break;
    }
  *complete = boundary;
  return 0;
}

static int
decoder_run (struct decoder *d, struct snapshot_sink *sink, struct ate_error **err)
{
  bool complete = false;

  if (detect_format (d, err) < 0)
    return -1;
  if (d->format == SNAPSHOT_FORMAT_SPARSE_V2)
    snapshot_payload_init (&d->payload, sink, d->opts->max_size);
  else
    snapshot_plain_init (&d->plain, sink, d->opts->max_size);
  if (d->in_total == 0)
    complete = true; /* the empty stream: no frame at all */
  else if (decompress_all (d, &complete, err) < 0)
    return -1;
  /* The parser knows best what is missing; then the frame must be whole. */
  if (d->format == SNAPSHOT_FORMAT_SPARSE_V2 && snapshot_payload_finish (&d->payload, err) < 0)
    return -1;
  if (!complete)
    return snapshot_error_corrupt (err, "truncated stream: the input ends inside a zstd frame "
                                        "(after %llu compressed bytes)",
                                   (unsigned long long) d->in_total);
  if (d->format == SNAPSHOT_FORMAT_SPARSE_V2)
    return sink->finish (sink, (uint64_t) d->payload.total_size, err);
  return snapshot_plain_finish (&d->plain, err);
}

static void
fill_stats (const struct decoder *d, struct snapshot_stats *st)
{
  memset (st, 0, sizeof (*st));
  st->format = d->format;
  st->compressed_bytes = d->in_total;
  if (d->format == SNAPSHOT_FORMAT_SPARSE_V2)
    {
      st->logical_size = (uint64_t) d->payload.total_size;
      st->populated_bytes = d->payload.populated;
      st->extent_count = d->payload.extent_count;
    }
  else if (d->format == SNAPSHOT_FORMAT_PLAIN_ZSTD)
    {
      st->logical_size = d->plain.pos;
      st->populated_bytes = d->plain.populated;
      st->extent_count = d->plain.extent_count;
    }
}

/* Decode in_fd through sink; the common part of the three entry points. */
static int
decode_with_sink (int in_fd, struct snapshot_sink *sink, const struct snapshot_decode_opts *opts,
                  struct snapshot_ctl *ctl, enum snapshot_format *format,
                  struct snapshot_stats *stats, struct ate_error **err)
{
  struct decoder d = { 0 };
  int r = -1;

  d.in_fd = in_fd;
  d.opts = opts;
  d.ctl = *ctl;
  d.in = xmalloc (DECODE_IN_CHUNK);
  d.out = xmalloc (DECODE_OUT_CHUNK);
  d.dctx = ZSTD_createDCtx ();
  if (d.dctx == NULL)
    ate_oom ();
  if (ZSTD_isError (ZSTD_DCtx_setParameter (d.dctx, ZSTD_d_windowLogMax,
                                            SNAPSHOT_WINDOW_LOG_MAX)))
    ate_error_make (err, EINVAL, "zstd: cannot limit the window size");
  else
    r = decoder_run (&d, sink, err);
  if (format != NULL)
    *format = d.format;
  if (r == 0 && stats != NULL)
    fill_stats (&d, stats);
  decoder_release (&d);
  if (r < 0)
    return ate_error_wrap (err, "while decoding (%s)",
                           d.format == SNAPSHOT_FORMAT_AUTO ? "format unknown"
                                                            : snapshot_format_name (d.format));
  return 0;
}

static const struct snapshot_decode_opts *
opts_or_default (const struct snapshot_decode_opts *opts)
{
  static const struct snapshot_decode_opts defaults;
  return opts != NULL ? opts : &defaults;
}

int
snapshot_decode_fd (int in_fd, const char *out_path, const struct snapshot_decode_opts *opts,
                    enum snapshot_format *format, struct snapshot_stats *stats,
                    struct ate_error **err)
{
  cleanup_outfile struct snapshot_outfile *of = NULL;
  struct snapshot_sink sink;
  struct snapshot_ctl ctl;

  opts = opts_or_default (opts);
  ctl = (struct snapshot_ctl) { .deadline = opts->deadline, .cancel = opts->cancel };
  if (format != NULL)
    *format = SNAPSHOT_FORMAT_AUTO;
  if (opts->no_replace && ate_path_exists (out_path))
    return ate_error_make_code (err, ATE_CODE_ALREADY_EXISTS, EEXIST,
                                "output `%s` exists", out_path);
  if (snapshot_outfile_open (out_path, opts->mode, &of, err) < 0)
    return ate_error_wrap (err, "unpacking into `%s`", out_path);
  snapshot_sink_init_file (&sink, snapshot_outfile_fd (of), &ctl);
  if (decode_with_sink (in_fd, &sink, opts, &ctl, format, stats, err) < 0
      || snapshot_outfile_commit (of, !opts->no_replace, opts->no_fsync, err) < 0)
    return ate_error_wrap (err, "unpacking into `%s`", out_path);
  return 0;
}

int
snapshot_decode_to_stream (int in_fd, int out_fd, const struct snapshot_decode_opts *opts,
                           enum snapshot_format *format, struct snapshot_stats *stats,
                           struct ate_error **err)
{
  struct snapshot_sink sink;
  struct snapshot_ctl ctl;

  opts = opts_or_default (opts);
  ctl = (struct snapshot_ctl) { .deadline = opts->deadline, .cancel = opts->cancel };
  snapshot_sink_init_stream (&sink, out_fd, &ctl);
  return decode_with_sink (in_fd, &sink, opts, &ctl, format, stats, err);
}

int
snapshot_inspect (int in_fd, const struct snapshot_decode_opts *opts,
                  struct snapshot_stats *stats, struct ate_error **err)
{
  struct snapshot_sink sink;
  struct snapshot_ctl ctl;

  opts = opts_or_default (opts);
  ctl = (struct snapshot_ctl) { .deadline = opts->deadline, .cancel = opts->cancel };
  snapshot_sink_init_null (&sink);
  return decode_with_sink (in_fd, &sink, opts, &ctl, NULL, stats, err);
}
