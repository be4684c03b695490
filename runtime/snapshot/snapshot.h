/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshot transfer codec: the sparse-extent zstd format atelet uses to ship
 * snapshot files (docs/snapshot-format.md), plus the plain-zstd fallback its
 * reader accepts.
 *
 *   "ATESPRSE" | u32le 2 | zstd( i64le totalSize
 *                               | (i64le offset, i64le length, data[length])*
 *                               | i64le -1 )
 *
 * The encoder walks SEEK_DATA/SEEK_HOLE and compresses only populated
 * extents; the decoder recreates the holes.  Everything streams: memory use
 * is bounded by a few buffers and the zstd window, whatever the file size.
 */
#ifndef ATE_SNAPSHOT_H
#define ATE_SNAPSHOT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/time.h"

struct ate_error;

enum snapshot_format
{
  /* Encode: sparse-extent for a regular file, plain zstd for anything else
   * (what atelet does).  In results: not determined. */
  SNAPSHOT_FORMAT_AUTO = 0,
  SNAPSHOT_FORMAT_SPARSE_V2 = 1,
  SNAPSHOT_FORMAT_PLAIN_ZSTD = 2,
};

/* atelet compresses with klauspost's SpeedFastest, which corresponds to
 * zstd level 1. */
#define SNAPSHOT_DEFAULT_LEVEL 1
/* libzstd's own cap on compression workers (64-bit builds). */
#define SNAPSHOT_MAX_THREADS 256
/* The largest zstd window the decoder accepts (2^27 = 128 MiB, libzstd's
 * default): bounds decoder memory on hostile input. */
#define SNAPSHOT_WINDOW_LOG_MAX 27

/* Called with the logical position reached and the logical size (0 when not
 * known, e.g. plain zstd read from a pipe).  Called often; throttle in the
 * callback. */
typedef void (*snapshot_progress_fn) (void *data, uint64_t done, uint64_t total);

struct snapshot_encode_opts
{
  int level;                  /* zstd level; 0 = SNAPSHOT_DEFAULT_LEVEL */
  int threads;                /* zstd workers; 0 = online CPUs (atelet: GOMAXPROCS) */
  enum snapshot_format format; /* AUTO, SPARSE_V2 (input must be a regular file), PLAIN_ZSTD */
  mode_t mode;                /* snapshot_encode_file's output; 0 = 0600 */
  bool no_replace;            /* snapshot_encode_file: fail if the output exists */
  bool no_fsync;              /* snapshot_encode_file: skip fsync before rename */
  ate_deadline_t deadline;    /* absolute CLOCK_MONOTONIC ns; 0 = none */
  const volatile sig_atomic_t *cancel; /* stop with ECANCELED once *cancel != 0 */
  snapshot_progress_fn progress;
  void *progress_data;
};

struct snapshot_decode_opts
{
  uint64_t max_size;          /* refuse a larger logical size; 0 = no limit */
  mode_t mode;                /* of the created file; 0 = 0600 */
  bool no_replace;            /* fail if the output exists (checked again at rename) */
  bool no_fsync;              /* skip fsync of the file and directory */
  ate_deadline_t deadline;    /* absolute CLOCK_MONOTONIC ns; 0 = none */
  const volatile sig_atomic_t *cancel;
  snapshot_progress_fn progress;
  void *progress_data;
};

struct snapshot_stats
{
  enum snapshot_format format;
  uint64_t logical_size;      /* size of the (decoded) file */
  /* Sparse: bytes inside extents.  Plain decode/inspect: bytes in non-zero
   * 64 KiB blocks (what a decode into a file writes).  Plain encode: every
   * byte (all of it was compressed). */
  uint64_t populated_bytes;
  /* Sparse: extent frames.  Plain decode/inspect: runs of non-zero 64 KiB
   * blocks.  Plain encode: 0 (not computed). */
  uint64_t extent_count;
  uint64_t compressed_bytes;  /* encoded stream, including the 12-byte prefix */
};

/* "sparse-v2", "plain-zstd" or "auto". */
const char *snapshot_format_name (enum snapshot_format format);

/* Encode in_fd to out_fd (a file, pipe or socket; written sequentially, no
 * seeking).  A regular in_fd is read with pread from offset 0 regardless of
 * its position; holes are never read.  stats may be NULL. */
int snapshot_encode_fd (int in_fd, int out_fd, const struct snapshot_encode_opts *opts,
                        struct snapshot_stats *stats, struct ate_error **err);

/* Encode the file at in_path into out_path atomically: a temporary file in
 * out_path's directory, fsync, rename.  Nothing is left on failure. */
int snapshot_encode_file (const char *in_path, const char *out_path,
                          const struct snapshot_encode_opts *opts,
                          struct snapshot_stats *stats, struct ate_error **err);

/* Decode in_fd (file or pipe) into a sparse file at out_path: temporary file
 * in the same directory, holes recreated, fsync, rename.  On any error
 * (malformed, truncated, trailing data, I/O) nothing is left at out_path nor
 * in the temporary.  format and stats may be NULL. */
int snapshot_decode_fd (int in_fd, const char *out_path,
                        const struct snapshot_decode_opts *opts,
                        enum snapshot_format *format, struct snapshot_stats *stats,
                        struct ate_error **err);

/* Decode in_fd into out_fd sequentially (pipes, sockets): holes are written
 * as zeros.  Validation is the same, but a failure can leave a prefix of
 * the output written: the caller discards it. */
int snapshot_decode_to_stream (int in_fd, int out_fd,
                               const struct snapshot_decode_opts *opts,
                               enum snapshot_format *format,
                               struct snapshot_stats *stats, struct ate_error **err);

/* Validate in_fd completely (the same checks as decoding) without writing
 * anything, and report what it holds. */
int snapshot_inspect (int in_fd, const struct snapshot_decode_opts *opts,
                      struct snapshot_stats *stats, struct ate_error **err);

#endif
