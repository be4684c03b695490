/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the snapshot codec shared by its files (and by the unit tests
 * and the fuzz target, which drive the pieces directly).  Not for other
 * modules: they use snapshot.h.
 */
#ifndef ATE_SNAPSHOT_INTERNAL_H
#define ATE_SNAPSHOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "snapshot.h"

struct ate_error;

/* ---- wire format (docs/snapshot-format.md) ---- */
#define SNAPSHOT_MAGIC "ATESPRSE"
#define SNAPSHOT_MAGIC_LEN 8
#define SNAPSHOT_VERSION 2u
#define SNAPSHOT_PREFIX_LEN 12 /* magic + u32le version, outside zstd */
#define SNAPSHOT_END_OFFSET (-1LL)
/* The plain-zstd fallback skips all-zero blocks of this size (aligned to
 * multiples of it in the decompressed stream), as atelet's reader does. */
#define SNAPSHOT_PLAIN_BLOCK (64 * 1024)

/* ---- cancellation, deadline and robust I/O ---- */
struct snapshot_ctl
{
  ate_deadline_t deadline; /* 0 = none */
  const volatile sig_atomic_t *cancel;
};

/* < 0 with ECANCELED or ETIMEDOUT once the caller asked us to stop. */
int snapshot_ctl_check (const struct snapshot_ctl *ctl, struct ate_error **err);

/* Read up to len bytes (fewer only at EOF); EINTR/EAGAIN handled (poll on
 * non-blocking fds, honouring the deadline).  Returns the count, 0 at EOF. */
ssize_t snapshot_read_full (int fd, void *buf, size_t len, const struct snapshot_ctl *ctl,
                            struct ate_error **err);
int snapshot_write_all (int fd, const void *buf, size_t len, const struct snapshot_ctl *ctl,
                        struct ate_error **err);
int snapshot_pwrite_all (int fd, const void *buf, size_t len, uint64_t off,
                         struct ate_error **err);

static inline void
snapshot_put_le64 (uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}

static inline uint64_t
snapshot_get_le64 (const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* ---- output sinks: where decoded bytes go ---- */
struct snapshot_sink
{
  /* The logical size is known (sparse header): prepare the output. */
  int (*set_size) (struct snapshot_sink *s, uint64_t size, struct ate_error **err);
  /* Data at a logical offset; offsets only grow between calls. */
  int (*write) (struct snapshot_sink *s, uint64_t off, const uint8_t *p, size_t n,
                struct ate_error **err);
  /* All data delivered: make the output exactly `size` bytes long. */
  int (*finish) (struct snapshot_sink *s, uint64_t size, struct ate_error **err);
  int fd;
  uint64_t pos; /* stream sink: bytes written so far */
  const struct snapshot_ctl *ctl;
};

/* pwrite into a seekable file; skipped ranges stay holes. */
void snapshot_sink_init_file (struct snapshot_sink *s, int fd, const struct snapshot_ctl *ctl);
/* Sequential writes; skipped ranges are written as zeros. */
void snapshot_sink_init_stream (struct snapshot_sink *s, int fd, const struct snapshot_ctl *ctl);
/* Discards everything (inspect). */
void snapshot_sink_init_null (struct snapshot_sink *s);

/* ---- the decompressed payload of the sparse format, as a push parser ---- */
enum snapshot_payload_state
{
  SNAPSHOT_PAYLOAD_SIZE,   /* expecting totalSize */
  SNAPSHOT_PAYLOAD_OFFSET, /* expecting an extent offset or the sentinel */
  SNAPSHOT_PAYLOAD_LENGTH, /* expecting an extent length */
  SNAPSHOT_PAYLOAD_DATA,   /* inside an extent's data */
  SNAPSHOT_PAYLOAD_DONE,   /* sentinel seen; nothing may follow */
};

struct snapshot_payload
{
  enum snapshot_payload_state state;
  uint8_t word[8];
  size_t word_len;
  uint64_t max_size;      /* 0 = INT64_MAX */
  int64_t total_size;
  int64_t ext_off;        /* current extent */
  int64_t ext_len;
  int64_t ext_done;       /* bytes of the current extent delivered */
  int64_t prev_end;       /* end of the previous extent: offsets must not go below */
  uint64_t extent_count;
  uint64_t populated;
  struct snapshot_sink *sink;
};

void snapshot_payload_init (struct snapshot_payload *p, struct snapshot_sink *sink,
                            uint64_t max_size);
/* Consume decompressed bytes; validates as it goes. */
int snapshot_payload_feed (struct snapshot_payload *p, const uint8_t *buf, size_t n,
                           struct ate_error **err);
/* End of the decompressed stream: the sentinel must have been seen. */
int snapshot_payload_finish (struct snapshot_payload *p, struct ate_error **err);
/* Logical position reached (for progress). */
uint64_t snapshot_payload_position (const struct snapshot_payload *p);

/* ---- the plain-zstd fallback: 64 KiB zero-block skipping ---- */
struct snapshot_plain
{
  uint8_t *block;         /* SNAPSHOT_PLAIN_BLOCK bytes */
  size_t block_len;
  uint64_t pos;           /* logical bytes consumed (block start = pos - block_len) */
  uint64_t max_size;      /* 0 = INT64_MAX */
  uint64_t populated;
  uint64_t extent_count;
  bool last_written;      /* previous block was data: extends a run */
  struct snapshot_sink *sink;
};

void snapshot_plain_init (struct snapshot_plain *p, struct snapshot_sink *sink,
                          uint64_t max_size);
void snapshot_plain_release (struct snapshot_plain *p);
int snapshot_plain_feed (struct snapshot_plain *p, const uint8_t *buf, size_t n,
                         struct ate_error **err);
int snapshot_plain_finish (struct snapshot_plain *p, struct ate_error **err);

/* ---- atomic output files ---- */
struct snapshot_outfile;

/* Create a temporary file next to path (same directory, so the final rename
 * is atomic), with the given mode (0 = 0600). */
int snapshot_outfile_open (const char *path, mode_t mode, struct snapshot_outfile **out,
                           struct ate_error **err);
int snapshot_outfile_fd (const struct snapshot_outfile *of);
/* fsync (unless no_fsync), close, rename over path (or fail with EEXIST when
 * !replace), fsync the directory. */
int snapshot_outfile_commit (struct snapshot_outfile *of, bool replace, bool no_fsync,
                             struct ate_error **err);
/* Remove the temporary file unless committed; close; free.  NULL is fine. */
void snapshot_outfile_free (struct snapshot_outfile *of);

static inline void
cleanup_outfile_fn (struct snapshot_outfile **of)
{
  snapshot_outfile_free (*of);
}
#define cleanup_outfile __attribute__ ((cleanup (cleanup_outfile_fn)))

/* Mark an error as caused by malformed input (DATA_LOSS, EBADMSG). */
int snapshot_error_corrupt (struct ate_error **err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
