/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz the ttrpc frame decoder the way the client's reader and the
 * simulated agent's server use it: split a byte stream into frames, decode
 * request envelopes (and the agent request they carry) and response
 * envelopes (status into an error, payload into a message).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kata/agent.pb-c.h"
#include "kata/ttrpc.h"
#include "kata/ttrpc.pb-c.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
decode_request (const uint8_t *p, size_t n)
{
  Ttrpc__Request *r = ttrpc__request__unpack (NULL, n, p);
  if (r == NULL)
    return;
  if (r->method && strcmp (r->method, "CreateContainer") == 0)
    {
      Grpc__CreateContainerRequest *c
          = grpc__create_container_request__unpack (NULL, r->payload.len, r->payload.data);
      if (c)
        grpc__create_container_request__free_unpacked (c, NULL);
    }
  else
    {
      Grpc__ReadStreamRequest *q
          = grpc__read_stream_request__unpack (NULL, r->payload.len, r->payload.data);
      if (q)
        grpc__read_stream_request__free_unpacked (q, NULL);
    }
  ttrpc__request__free_unpacked (r, NULL);
}

static void
decode_response (const uint8_t *p, size_t n)
{
  struct ate_error *err = NULL;
  ProtobufCMessage *m = NULL;

  if (ttrpc_response_decode (p, n, &grpc__read_stream_response__descriptor, &m, &err) < 0)
    {
      /* Every failure carries a message. */
      if (err == NULL || err->msg == NULL)
        abort ();
      ate_error_free (err);
      return;
    }
  protobuf_c_message_free_unpacked (m, NULL);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  size_t off = 0;

  while (off < size)
    {
      struct ttrpc_header h;
      const uint8_t *payload = NULL;
      size_t consumed = 0;
      struct ate_error *err = NULL;
      int r = ttrpc_frame_parse (data + off, size - off, &h, &payload, &consumed, &err);

      if (r < 0)
        {
          if (h.length <= TTRPC_MESSAGE_MAX)
            abort (); /* only oversized frames are rejected */
          ate_error_free (err);
          break;
        }
      if (r == 0)
        break;
      if (consumed != TTRPC_HEADER_SIZE + (size_t) h.length || consumed > size - off)
        abort ();
      if (h.type == TTRPC_TYPE_REQUEST)
        decode_request (payload, h.length);
      else if (h.type == TTRPC_TYPE_RESPONSE)
        decode_response (payload, h.length);
      off += consumed;
    }
  return 0;
}
