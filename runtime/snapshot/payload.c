/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The decompressed payload of the sparse-extent format, parsed as it
 * streams out of zstd:
 *
 *   i64le totalSize | (i64le offset, i64le length, data[length])* | i64le -1
 *
 * Every value a peer controls is checked before it is used.  Beyond
 * atelet's reader, extents must be non-empty, ascending and disjoint (its
 * writer can only produce those), which also keeps the work of a decode
 * bounded by the declared size.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "snapshot-internal.h"
#include "util/error.h"

void
snapshot_payload_init (struct snapshot_payload *p, struct snapshot_sink *sink,
                       uint64_t max_size)
{
  memset (p, 0, sizeof (*p));
  p->state = SNAPSHOT_PAYLOAD_SIZE;
  p->sink = sink;
  p->max_size = max_size;
}

static int
on_total_size (struct snapshot_payload *p, int64_t v, struct ate_error **err)
{
  if (v < 0)
    return snapshot_error_corrupt (err, "negative totalSize %lld", (long long) v);
  if (p->max_size != 0 && (uint64_t) v > p->max_size)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EFBIG,
                                "logical size %lld exceeds the limit of %llu bytes",
                                (long long) v, (unsigned long long) p->max_size);
  p->total_size = v;
  if (p->sink->set_size (p->sink, (uint64_t) v, err) < 0)
    return -1;
  p->state = SNAPSHOT_PAYLOAD_OFFSET;
  return 0;
}

static int
on_offset (struct snapshot_payload *p, int64_t v)
{
  if (v == SNAPSHOT_END_OFFSET)
    {
      p->state = SNAPSHOT_PAYLOAD_DONE;
      return 0;
    }
  /* Validated together with the length, as atelet does. */
  p->ext_off = v;
  p->state = SNAPSHOT_PAYLOAD_LENGTH;
  return 0;
}

static int
on_length (struct snapshot_payload *p, int64_t len, struct ate_error **err)
{
  int64_t off = p->ext_off, size = p->total_size;

  /* size - off cannot overflow once 0 <= off <= size. */
  if (off < 0 || len < 0 || off > size || len > size - off)
    return snapshot_error_corrupt (err, "sparse extent out of range (off=%lld len=%lld size=%lld)",
                                   (long long) off, (long long) len, (long long) size);
  if (len == 0)
    return snapshot_error_corrupt (err, "empty sparse extent at offset %lld", (long long) off);
  if (off < p->prev_end)
    return snapshot_error_corrupt (err,
                                   "sparse extent at offset %lld overlaps or precedes the "
                                   "previous extent ending at %lld (extents must be "
                                   "ascending and disjoint)",
                                   (long long) off, (long long) p->prev_end);
  p->ext_len = len;
  p->ext_done = 0;
  p->extent_count++;
  p->state = SNAPSHOT_PAYLOAD_DATA;
  return 0;
}

static int
feed_data (struct snapshot_payload *p, const uint8_t *buf, size_t n, size_t *used,
           struct ate_error **err)
{
  uint64_t left = (uint64_t) (p->ext_len - p->ext_done);
  size_t take = n < left ? n : (size_t) left;

  if (p->sink->write (p->sink, (uint64_t) (p->ext_off + p->ext_done), buf, take, err) < 0)
    return -1;
  p->ext_done += (int64_t) take;
  p->populated += take;
  if (p->ext_done == p->ext_len)
    {
      p->prev_end = p->ext_off + p->ext_len;
      p->state = SNAPSHOT_PAYLOAD_OFFSET;
    }
  *used = take;
  return 0;
}

static int
on_word (struct snapshot_payload *p, int64_t v, struct ate_error **err)
{
  switch (p->state)
    {
    case SNAPSHOT_PAYLOAD_SIZE:
      return on_total_size (p, v, err);
    case SNAPSHOT_PAYLOAD_OFFSET:
      return on_offset (p, v);
    case SNAPSHOT_PAYLOAD_LENGTH:
      return on_length (p, v, err);
    case SNAPSHOT_PAYLOAD_DATA:
    case SNAPSHOT_PAYLOAD_DONE:
      break;
    }
  return ate_error_make (err, EINVAL, "sparse payload parser in an impossible state");
}

int
snapshot_payload_feed (struct snapshot_payload *p, const uint8_t *buf, size_t n,
                       struct ate_error **err)
{
  while (n > 0)
    {
      size_t used;

      if (p->state == SNAPSHOT_PAYLOAD_DONE)
        return snapshot_error_corrupt (err, "trailing data after the end sentinel");
      if (p->state == SNAPSHOT_PAYLOAD_DATA)
        {
          if (feed_data (p, buf, n, &used, err) < 0)
            return -1;
          buf += used;
          n -= used;
          continue;
        }
      used = sizeof (p->word) - p->word_len;
      if (used > n)
        used = n;
      memcpy (p->word + p->word_len, buf, used);
      p->word_len += used;
      buf += used;
      n -= used;
      if (p->word_len < sizeof (p->word))
        break;
      p->word_len = 0;
      if (on_word (p, (int64_t) snapshot_get_le64 (p->word), err) < 0)
        return -1;
    }
  return 0;
}

int
snapshot_payload_finish (struct snapshot_payload *p, struct ate_error **err)
{
  switch (p->state)
    {
    case SNAPSHOT_PAYLOAD_DONE:
      return 0;
    case SNAPSHOT_PAYLOAD_SIZE:
      return snapshot_error_corrupt (err, "truncated stream: missing totalSize");
    case SNAPSHOT_PAYLOAD_OFFSET:
      return snapshot_error_corrupt (err,
                                     "truncated stream: missing end sentinel after %llu "
                                     "extents",
                                     (unsigned long long) p->extent_count);
    case SNAPSHOT_PAYLOAD_LENGTH:
      return snapshot_error_corrupt (err, "truncated stream: extent at offset %lld has no length",
                                     (long long) p->ext_off);
    case SNAPSHOT_PAYLOAD_DATA:
      break;
    }
  return snapshot_error_corrupt (err,
                                 "truncated stream: extent @%lld+%lld ends after %lld of its "
                                 "bytes",
                                 (long long) p->ext_off, (long long) p->ext_len,
                                 (long long) p->ext_done);
}

uint64_t
snapshot_payload_position (const struct snapshot_payload *p)
{
  switch (p->state)
    {
    case SNAPSHOT_PAYLOAD_SIZE:
      return 0;
    case SNAPSHOT_PAYLOAD_DATA:
      return (uint64_t) (p->ext_off + p->ext_done);
    case SNAPSHOT_PAYLOAD_DONE:
      return (uint64_t) p->total_size;
    case SNAPSHOT_PAYLOAD_OFFSET:
    case SNAPSHOT_PAYLOAD_LENGTH:
      break;
    }
  return (uint64_t) p->prev_end;
}
