/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plain-zstd fallback, as atelet's reader does it: the decompressed
 * stream is cut into 64 KiB blocks at multiples of 64 KiB; all-zero blocks
 * are skipped (they stay holes in a file output) and the output is sized to
 * the decompressed length at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "snapshot-internal.h"
#include "util/error.h"
#include "util/util.h"

void
snapshot_plain_init (struct snapshot_plain *p, struct snapshot_sink *sink, uint64_t max_size)
{
  memset (p, 0, sizeof (*p));
  p->block = xmalloc (SNAPSHOT_PLAIN_BLOCK);
  p->sink = sink;
  p->max_size = max_size;
}

void
snapshot_plain_release (struct snapshot_plain *p)
{
  free (p->block);
  p->block = NULL;
}

static bool
all_zero (const uint8_t *b, size_t n)
{
  /* memcmp against itself shifted by one byte: vectorised by libc. */
  return n == 0 || (b[0] == 0 && memcmp (b, b + 1, n - 1) == 0);
}

/* One block ending at p->pos. */
static int
flush_block (struct snapshot_plain *p, const uint8_t *b, size_t n, struct ate_error **err)
{
  if (all_zero (b, n))
    {
      p->last_written = false;
      return 0;
    }
  if (p->sink->write (p->sink, p->pos - n, b, n, err) < 0)
    return -1;
  p->populated += n;
  if (!p->last_written)
    p->extent_count++;
  p->last_written = true;
  return 0;
}

static int
check_limit (struct snapshot_plain *p, size_t more, struct ate_error **err)
{
  uint64_t limit = p->max_size != 0 ? p->max_size : (uint64_t) INT64_MAX;

  if (more > limit - p->pos)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EFBIG,
                                "decompressed size exceeds the limit of %llu bytes",
                                (unsigned long long) limit);
  return 0;
}

int
snapshot_plain_feed (struct snapshot_plain *p, const uint8_t *buf, size_t n,
                     struct ate_error **err)
{
  if (check_limit (p, n, err) < 0)
    return -1;
  while (n > 0)
    {
      /* Whole aligned blocks go straight from the caller's buffer. */
      if (p->block_len == 0 && n >= SNAPSHOT_PLAIN_BLOCK)
        {
          p->pos += SNAPSHOT_PLAIN_BLOCK;
          if (flush_block (p, buf, SNAPSHOT_PLAIN_BLOCK, err) < 0)
            return -1;
          buf += SNAPSHOT_PLAIN_BLOCK;
          n -= SNAPSHOT_PLAIN_BLOCK;
          continue;
        }
      size_t take = SNAPSHOT_PLAIN_BLOCK - p->block_len;
      if (take > n)
        take = n;
      memcpy (p->block + p->block_len, buf, take);
      p->block_len += take;
      p->pos += take;
      buf += take;
      n -= take;
      if (p->block_len == SNAPSHOT_PLAIN_BLOCK)
        {
          p->block_len = 0;
          if (flush_block (p, p->block, SNAPSHOT_PLAIN_BLOCK, err) < 0)
            return -1;
        }
    }
  return 0;
}

int
snapshot_plain_finish (struct snapshot_plain *p, struct ate_error **err)
{
  if (p->block_len > 0)
    {
      size_t n = p->block_len;
      p->block_len = 0;
      if (flush_block (p, p->block, n, err) < 0)
        return -1;
    }
  return p->sink->finish (p->sink, p->pos, err);
}
