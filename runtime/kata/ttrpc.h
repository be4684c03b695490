/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttrpc wire format (containerd/ttrpc v1.2, as the kata agent speaks it):
 * a 10-byte header (payload length u32 BE, stream id u32 BE, type u8,
 * flags u8) followed by the payload, at most 4 MiB.  Request frames carry a
 * ttrpc.Request, response frames a ttrpc.Response.
 *
 * This file is the codec only: it is shared by the client (ttrpc_client.h)
 * and the simulated agent's server (test/sim/agent).
 */
#ifndef KATA_TTRPC_H
#define KATA_TTRPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/time.h"

#define TTRPC_HEADER_SIZE 10
#define TTRPC_MESSAGE_MAX (4u << 20)

enum ttrpc_type
{
  TTRPC_TYPE_REQUEST = 0x01,
  TTRPC_TYPE_RESPONSE = 0x02,
  TTRPC_TYPE_DATA = 0x03,
};

#define TTRPC_FLAG_REMOTE_CLOSED 0x01
#define TTRPC_FLAG_REMOTE_OPEN 0x02
#define TTRPC_FLAG_NO_DATA 0x04

struct ttrpc_header
{
  uint32_t length;
  uint32_t stream_id;
  uint8_t type;
  uint8_t flags;
};

void ttrpc_header_encode (const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_SIZE]);
void ttrpc_header_decode (const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *h);

/* EMSGSIZE (RESOURCE_EXHAUSTED) when the payload exceeds 4 MiB. */
int ttrpc_header_check (const struct ttrpc_header *h, struct ate_error **err);

/* Parse one frame at the start of buf.  Returns 1 with *h, *payload (into
 * buf) and *consumed set when a whole frame is present, 0 when more bytes
 * are needed, < 0 when the header announces an oversized payload (the
 * stream cannot be resynchronised). */
int ttrpc_frame_parse (const uint8_t *buf, size_t len, struct ttrpc_header *h,
                       const uint8_t **payload, size_t *consumed,
                       struct ate_error **err);

/* Read one frame from a socket.  An oversized header fails with EMSGSIZE
 * before any of the body is read (the caller decides whether to discard it
 * with kata_io_discard or to drop the connection).  *eof is set when the
 * peer closed the stream cleanly before a new frame. */
int ttrpc_frame_read (int fd, ate_deadline_t deadline, struct ttrpc_header *h,
                      uint8_t **payload, bool *eof, struct ate_error **err);

/* Write header + payload in one go. */
int ttrpc_frame_write (int fd, const struct ttrpc_header *h, const void *payload,
                       ate_deadline_t deadline, struct ate_error **err);

/* A whole request frame (header included) for msg, ready to send.
 * timeout_nano 0 = no deadline. */
int ttrpc_request_frame (uint32_t stream_id, const char *service, const char *method,
                         const ProtobufCMessage *msg, int64_t timeout_nano,
                         uint8_t **frame, size_t *frame_len, struct ate_error **err);

/* A whole response frame: code 0 with msg (may be NULL for an empty
 * payload), or a status code and message. */
int ttrpc_response_frame (uint32_t stream_id, int32_t code, const char *status_msg,
                          const ProtobufCMessage *msg, uint8_t **frame,
                          size_t *frame_len, struct ate_error **err);

/* timeout_nano for a request from an absolute deadline: 0 without one,
 * at least 1 ns when it has already passed. */
int64_t ttrpc_timeout_nano (ate_deadline_t deadline);

/* Decode a response payload: a non-OK status becomes an error whose code
 * is the status code and whose message is "<CODE>: <agent message>";
 * otherwise the payload is unpacked as resp_desc (NULL: ignored). */
int ttrpc_response_decode (const uint8_t *payload, size_t len,
                           const ProtobufCMessageDescriptor *resp_desc,
                           ProtobufCMessage **resp, struct ate_error **err);

#endif
