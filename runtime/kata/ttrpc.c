/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "ttrpc.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "io.h"
#include "kata/ttrpc.pb-c.h"
#include "util/util.h"

static void
put_be32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

static uint32_t
get_be32 (const uint8_t *p)
{
  return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8)
         | (uint32_t) p[3];
}

void
ttrpc_header_encode (const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_SIZE])
{
  put_be32 (out, h->length);
  put_be32 (out + 4, h->stream_id);
  out[8] = h->type;
  out[9] = h->flags;
}

void
ttrpc_header_decode (const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *h)
{
  h->length = get_be32 (in);
  h->stream_id = get_be32 (in + 4);
  h->type = in[8];
  h->flags = in[9];
}

int
ttrpc_header_check (const struct ttrpc_header *h, struct ate_error **err)
{
  if (h->length > TTRPC_MESSAGE_MAX)
    return ate_error_make_code (err, ATE_CODE_RESOURCE_EXHAUSTED, EMSGSIZE,
                                "ttrpc frame on stream %u announces %u bytes, more than "
                                "the %u byte limit",
                                h->stream_id, h->length, TTRPC_MESSAGE_MAX);
  return 0;
}

int
ttrpc_frame_parse (const uint8_t *buf, size_t len, struct ttrpc_header *h,
                   const uint8_t **payload, size_t *consumed, struct ate_error **err)
{
  if (len < TTRPC_HEADER_SIZE)
    return 0;
  ttrpc_header_decode (buf, h);
  if (ttrpc_header_check (h, err) < 0)
    return -1;
  if (len - TTRPC_HEADER_SIZE < h->length)
    return 0;
  *payload = buf + TTRPC_HEADER_SIZE;
  *consumed = TTRPC_HEADER_SIZE + (size_t) h->length;
  return 1;
}

int
ttrpc_frame_read (int fd, ate_deadline_t deadline, struct ttrpc_header *h,
                  uint8_t **payload, bool *eof, struct ate_error **err)
{
  uint8_t hdr[TTRPC_HEADER_SIZE];
  cleanup_free uint8_t *body = NULL;

  if (kata_io_read_full (fd, hdr, sizeof (hdr), deadline, eof, err) < 0)
    return -1;
  ttrpc_header_decode (hdr, h);
  if (ttrpc_header_check (h, err) < 0)
    return -1;
  /* One spare byte so that an empty payload is still a valid pointer. */
  body = xmalloc ((size_t) h->length + 1);
  if (kata_io_read_full (fd, body, h->length, deadline, NULL, err) < 0)
    return ate_error_wrap (err, "ttrpc frame body on stream %u", h->stream_id);
  *payload = steal_pointer (&body);
  return 0;
}

int
ttrpc_frame_write (int fd, const struct ttrpc_header *h, const void *payload,
                   ate_deadline_t deadline, struct ate_error **err)
{
  uint8_t hdr[TTRPC_HEADER_SIZE];
  struct iovec iov[2];

  if (ttrpc_header_check (h, err) < 0)
    return -1;
  ttrpc_header_encode (h, hdr);
  iov[0] = (struct iovec) { .iov_base = hdr, .iov_len = sizeof (hdr) };
  iov[1] = (struct iovec) { .iov_base = (void *) payload, .iov_len = h->length };
  return kata_io_writev_full (fd, iov, 2, deadline, err);
}

/* Pack an envelope message behind a 10-byte header. */
static int
frame_from_message (uint32_t stream_id, uint8_t type, const ProtobufCMessage *env,
                    uint8_t **frame, size_t *frame_len, struct ate_error **err)
{
  size_t n = protobuf_c_message_get_packed_size (env);
  struct ttrpc_header h = { .length = (uint32_t) n, .stream_id = stream_id, .type = type };
  uint8_t *buf;

  if (n > TTRPC_MESSAGE_MAX)
    return ate_error_make_code (err, ATE_CODE_RESOURCE_EXHAUSTED, EMSGSIZE,
                                "ttrpc message of %zu bytes exceeds the %u byte limit", n,
                                TTRPC_MESSAGE_MAX);
  buf = xmalloc (TTRPC_HEADER_SIZE + n + 1);
  ttrpc_header_encode (&h, buf);
  protobuf_c_message_pack (env, buf + TTRPC_HEADER_SIZE);
  *frame = buf;
  *frame_len = TTRPC_HEADER_SIZE + n;
  return 0;
}

/* Serialise an inner message, refusing one that cannot fit in a frame. */
static int
pack_inner (const ProtobufCMessage *msg, ProtobufCBinaryData *out, struct ate_error **err)
{
  size_t n;

  out->data = NULL;
  out->len = 0;
  if (msg == NULL)
    return 0;
  n = protobuf_c_message_get_packed_size (msg);
  if (n > TTRPC_MESSAGE_MAX)
    return ate_error_make_code (err, ATE_CODE_RESOURCE_EXHAUSTED, EMSGSIZE,
                                "%s of %zu bytes exceeds the %u byte ttrpc limit",
                                msg->descriptor->name, n, TTRPC_MESSAGE_MAX);
  out->data = xmalloc (n + 1);
  out->len = protobuf_c_message_pack (msg, out->data);
  return 0;
}

int
ttrpc_request_frame (uint32_t stream_id, const char *service, const char *method,
                     const ProtobufCMessage *msg, int64_t timeout_nano, uint8_t **frame,
                     size_t *frame_len, struct ate_error **err)
{
  Ttrpc__Request req = TTRPC__REQUEST__INIT;
  int r;

  req.service = (char *) service;
  req.method = (char *) method;
  req.timeout_nano = timeout_nano;
  if (pack_inner (msg, &req.payload, err) < 0)
    return -1;
  r = frame_from_message (stream_id, TTRPC_TYPE_REQUEST, &req.base, frame, frame_len, err);
  free (req.payload.data);
  return r;
}

int
ttrpc_response_frame (uint32_t stream_id, int32_t code, const char *status_msg,
                      const ProtobufCMessage *msg, uint8_t **frame, size_t *frame_len,
                      struct ate_error **err)
{
  Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
  Ttrpc__Status st = TTRPC__STATUS__INIT;
  int r;

  if (code != 0)
    {
      st.code = code;
      st.message = (char *) (status_msg ? status_msg : "");
      resp.status = &st;
    }
  else if (pack_inner (msg, &resp.payload, err) < 0)
    return -1;
  r = frame_from_message (stream_id, TTRPC_TYPE_RESPONSE, &resp.base, frame, frame_len,
                          err);
  free (resp.payload.data);
  return r;
}

int64_t
ttrpc_timeout_nano (ate_deadline_t deadline)
{
  int64_t r;

  if (deadline == ATE_DEADLINE_NONE)
    return 0;
  r = ate_deadline_remaining_ns (deadline);
  return r > 0 ? r : 1;
}

int
ttrpc_response_decode (const uint8_t *payload, size_t len,
                       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                       struct ate_error **err)
{
  Ttrpc__Response *r = ttrpc__response__unpack (NULL, len, payload);
  int ret = 0;

  if (r == NULL)
    return ate_error_make_code (err, ATE_CODE_INTERNAL, EBADMSG,
                                "malformed ttrpc response (%zu bytes)", len);
  if (r->status != NULL && r->status->code != 0)
    {
      int32_t code = r->status->code;
      /* Codes outside gRPC's range are reported as UNKNOWN. */
      enum ate_code c = (code > 0 && code <= ATE_CODE_UNAUTHENTICATED) ? (enum ate_code) code
                                                                       : ATE_CODE_UNKNOWN;
      ret = ate_error_make_code (err, c, 0, "%s: %s", ate_code_name (c),
                                 r->status->message ? r->status->message : "");
    }
  else if (resp_desc != NULL && resp != NULL)
    {
      *resp = protobuf_c_message_unpack (resp_desc, NULL, r->payload.len, r->payload.data);
      if (*resp == NULL)
        ret = ate_error_make_code (err, ATE_CODE_INTERNAL, EBADMSG,
                                   "malformed %s in ttrpc response (%zu bytes)",
                                   resp_desc->name, r->payload.len);
    }
  ttrpc__response__free_unpacked (r, NULL);
  return ret;
}
