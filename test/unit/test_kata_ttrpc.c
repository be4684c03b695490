/* SPDX-License-Identifier: Apache-2.0 */
/* ttrpc codec and client: wire vectors, status mapping, concurrency. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kata/agent.pb-c.h"
#include "kata/io.h"
#include "kata/ttrpc.h"
#include "kata/ttrpc.pb-c.h"
#include "kata/ttrpc_client.h"
#include "util/error.h"
#include "util/util.h"

/* ttrpc-rust src/proto.rs test vector: Request{service "grpc.TestServices",
 * method "Test", payload 01..09, timeout 20 ms, metadata test_key1 =
 * test_value1}. */
static const uint8_t rust_request[67] = {
  10,  17,  103, 114, 112, 99,  46,  84,  101, 115, 116, 83,  101, 114,
  118, 105, 99,  101, 115, 18,  4,   84,  101, 115, 116, 26,  9,   1,
  2,   3,   4,   5,   6,   7,   8,   9,   32,  128, 218, 196, 9,   42,
  24,  10,  9,   116, 101, 115, 116, 95,  107, 101, 121, 49,  18,  11,
  116, 101, 115, 116, 95,  118, 97,  108, 117, 101, 49,
};

static void
test_header_codec (void **state)
{
  (void) state;
  static const uint8_t resp_hdr[10] = { 0x10, 0, 0, 0, 0, 0, 0, 3, 2, 0xef };
  static const uint8_t req_hdr[10] = { 0, 0, 0, 67, 0, 0x12, 0x34, 0x56, 1, 0xef };
  struct ttrpc_header h;
  uint8_t out[10];
  struct ate_error *err = NULL;

  ttrpc_header_decode (resp_hdr, &h);
  assert_int_equal (h.length, 0x10000000);
  assert_int_equal (h.stream_id, 3);
  assert_int_equal (h.type, TTRPC_TYPE_RESPONSE);
  assert_int_equal (h.flags, 0xef);
  ttrpc_header_encode (&h, out);
  assert_memory_equal (out, resp_hdr, 10);
  /* 256 MiB is far over the limit. */
  assert_true (ttrpc_header_check (&h, &err) < 0);
  assert_int_equal (err->status, EMSGSIZE);
  assert_int_equal (ate_error_code (err), ATE_CODE_RESOURCE_EXHAUSTED);
  ate_error_release (&err);

  ttrpc_header_decode (req_hdr, &h);
  assert_int_equal (h.length, 67);
  assert_int_equal (h.stream_id, 0x123456);
  assert_int_equal (h.type, TTRPC_TYPE_REQUEST);
  assert_int_equal (ttrpc_header_check (&h, &err), 0);
  h.length = TTRPC_MESSAGE_MAX;
  assert_int_equal (ttrpc_header_check (&h, &err), 0);
  h.length = TTRPC_MESSAGE_MAX + 1;
  assert_true (ttrpc_header_check (&h, &err) < 0);
  ate_error_release (&err);
}

static void
test_rust_request_vector (void **state)
{
  (void) state;
  Ttrpc__Request req = TTRPC__REQUEST__INIT;
  Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT;
  Ttrpc__KeyValue *kvs[1] = { &kv };
  uint8_t payload[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
  uint8_t buf[128];
  Ttrpc__Request *back;

  req.service = "grpc.TestServices";
  req.method = "Test";
  req.payload.data = payload;
  req.payload.len = sizeof (payload);
  req.timeout_nano = 20 * 1000 * 1000;
  kv.key = "test_key1";
  kv.value = "test_value1";
  req.n_metadata = 1;
  req.metadata = kvs;
  assert_int_equal (ttrpc__request__get_packed_size (&req), 67);
  assert_int_equal (ttrpc__request__pack (&req, buf), 67);
  assert_memory_equal (buf, rust_request, 67);

  back = ttrpc__request__unpack (NULL, sizeof (rust_request), rust_request);
  assert_non_null (back);
  assert_string_equal (back->service, "grpc.TestServices");
  assert_string_equal (back->method, "Test");
  assert_int_equal (back->timeout_nano, 20000000);
  assert_int_equal (back->n_metadata, 1);
  assert_string_equal (back->metadata[0]->value, "test_value1");
  ttrpc__request__free_unpacked (back, NULL);
}

/* The reference's frame of StartContainer{container_id:"a1"} on stream 3. */
static void
test_start_container_frame (void **state)
{
  (void) state;
  static const uint8_t expect[] = {
    0x00, 0x00, 0x00, 0x29, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00,       /* header */
    0x0a, 0x11, 'g', 'r', 'p', 'c', '.', 'A', 'g', 'e', 'n', 't', 'S', 'e', 'r',
    'v', 'i', 'c', 'e', 0x12, 0x0e, 'S', 't', 'a', 'r', 't', 'C', 'o', 'n', 't', 'a',
    'i', 'n', 'e', 'r', 0x1a, 0x04, 0x0a, 0x02, 'a', '1',
  };
  Grpc__StartContainerRequest sc = GRPC__START_CONTAINER_REQUEST__INIT;
  cleanup_free uint8_t *frame = NULL;
  size_t len = 0;
  struct ate_error *err = NULL;

  sc.container_id = "a1";
  assert_int_equal (ttrpc_request_frame (3, "grpc.AgentService", "StartContainer",
                                         &sc.base, 0, &frame, &len, &err),
                    0);
  assert_int_equal (len, sizeof (expect));
  assert_int_equal (len, 10 + 41);
  assert_memory_equal (frame, expect, sizeof (expect));
}

static void
test_frame_parse (void **state)
{
  (void) state;
  uint8_t buf[10 + 67 + 2];
  struct ttrpc_header h = { .length = 67, .stream_id = 0x123456, .type = 1, .flags = 0xef };
  const uint8_t *payload = NULL;
  size_t consumed = 0;
  struct ate_error *err = NULL;

  ttrpc_header_encode (&h, buf);
  memcpy (buf + 10, rust_request, 67);
  buf[77] = buf[78] = 0;
  /* Short buffers need more bytes, at any cut. */
  for (size_t cut = 0; cut < 77; cut++)
    assert_int_equal (ttrpc_frame_parse (buf, cut, &h, &payload, &consumed, &err), 0);
  assert_int_equal (ttrpc_frame_parse (buf, sizeof (buf), &h, &payload, &consumed, &err), 1);
  assert_int_equal (consumed, 77);
  assert_ptr_equal (payload, buf + 10);
  assert_int_equal (h.stream_id, 0x123456);
  /* An oversized header is an error even before its body arrives. */
  h.length = TTRPC_MESSAGE_MAX + 1;
  ttrpc_header_encode (&h, buf);
  assert_true (ttrpc_frame_parse (buf, 10, &h, &payload, &consumed, &err) < 0);
  assert_non_null (strstr (err->msg, "limit"));
  ate_error_release (&err);
}

/* The payload of a response frame (header stripped). */
static ProtobufCMessage *
decode_frame_payload (const uint8_t *frame, size_t len,
                      const ProtobufCMessageDescriptor *desc, struct ate_error **err)
{
  ProtobufCMessage *m = NULL;
  if (ttrpc_response_decode (frame + 10, len - 10, desc, &m, err) < 0)
    return NULL;
  return m;
}

static void
test_status_mapping (void **state)
{
  (void) state;
  static const struct
  {
    int32_t code;
    enum ate_code want;
    const char *name;
  } cases[] = {
    { 5, ATE_CODE_NOT_FOUND, "NOT_FOUND" },
    { 12, ATE_CODE_UNIMPLEMENTED, "UNIMPLEMENTED" },
    { 13, ATE_CODE_INTERNAL, "INTERNAL" },
    { 3, ATE_CODE_INVALID_ARGUMENT, "INVALID_ARGUMENT" },
    { 4, ATE_CODE_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED" },
    { 77, ATE_CODE_UNKNOWN, "UNKNOWN" },
    { -3, ATE_CODE_UNKNOWN, "UNKNOWN" },
  };
  for (size_t i = 0; i < ATE_N_ELEMENTS (cases); i++)
    {
      cleanup_free uint8_t *frame = NULL;
      size_t len = 0;
      struct ate_error *err = NULL;
      char want[128];

      assert_int_equal (ttrpc_response_frame (7, cases[i].code, "sandbox not created", NULL,
                                              &frame, &len, &err),
                        0);
      assert_null (decode_frame_payload (frame, len, &grpc__read_stream_response__descriptor,
                                         &err));
      assert_non_null (err);
      assert_int_equal (ate_error_code (err), cases[i].want);
      snprintf (want, sizeof (want), "%s: sandbox not created", cases[i].name);
      assert_string_equal (err->msg, want);
      ate_error_release (&err);
    }

  /* Success with a payload. */
  {
    Grpc__ReadStreamResponse rs = GRPC__READ_STREAM_RESPONSE__INIT;
    cleanup_free uint8_t *frame = NULL;
    size_t len = 0;
    struct ate_error *err = NULL;
    Grpc__ReadStreamResponse *back;

    rs.data.data = (uint8_t *) "hello\n";
    rs.data.len = 6;
    assert_int_equal (ttrpc_response_frame (9, 0, NULL, &rs.base, &frame, &len, &err), 0);
    back = (Grpc__ReadStreamResponse *) decode_frame_payload (
        frame, len, &grpc__read_stream_response__descriptor, &err);
    assert_non_null (back);
    assert_int_equal (back->data.len, 6);
    assert_memory_equal (back->data.data, "hello\n", 6);
    protobuf_c_message_free_unpacked (&back->base, NULL);
  }
  /* Garbage is a clear error, not a crash. */
  {
    static const uint8_t junk[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f };
    ProtobufCMessage *m = NULL;
    struct ate_error *err = NULL;
    assert_true (ttrpc_response_decode (junk, sizeof (junk), NULL, &m, &err) < 0);
    assert_non_null (strstr (err->msg, "malformed ttrpc response"));
    ate_error_release (&err);
  }
}

static void
test_timeout_nano (void **state)
{
  (void) state;
  assert_int_equal (ttrpc_timeout_nano (ATE_DEADLINE_NONE), 0);
  assert_int_equal (ttrpc_timeout_nano (ate_now_ns () - 5), 1);
  int64_t t = ttrpc_timeout_nano (ate_deadline_in_ms (2000));
  assert_true (t > 1900 * ATE_NSEC_PER_MSEC && t <= 2000 * ATE_NSEC_PER_MSEC);
}

/* ---- client against a scripted server on a socketpair ---- */

struct fake_server
{
  int fd;
  void (*script) (struct fake_server *);
  pthread_t thread;
  uint32_t seen_streams[8];
  int64_t seen_timeouts[8];
  int n_seen;
};

static void *
fake_server_main (void *arg)
{
  struct fake_server *s = arg;
  s->script (s);
  return NULL;
}

static Ttrpc__Request *
server_read_request (struct fake_server *s, uint32_t *stream)
{
  struct ttrpc_header h;
  uint8_t *payload = NULL;
  struct ate_error *err = NULL;
  Ttrpc__Request *r;

  if (ttrpc_frame_read (s->fd, ate_deadline_in_ms (5000), &h, &payload, NULL, &err) < 0)
    {
      ate_error_free (err);
      return NULL;
    }
  assert_int_equal (h.type, TTRPC_TYPE_REQUEST);
  r = ttrpc__request__unpack (NULL, h.length, payload);
  free (payload);
  assert_non_null (r);
  *stream = h.stream_id;
  s->seen_streams[s->n_seen] = h.stream_id;
  s->seen_timeouts[s->n_seen++] = r->timeout_nano;
  return r;
}

static void
server_reply_data (struct fake_server *s, uint32_t stream, const char *text)
{
  Grpc__ReadStreamResponse rs = GRPC__READ_STREAM_RESPONSE__INIT;
  cleanup_free uint8_t *frame = NULL;
  size_t len = 0;
  struct ate_error *err = NULL;

  rs.data.data = (uint8_t *) text;
  rs.data.len = strlen (text);
  assert_int_equal (ttrpc_response_frame (stream, 0, NULL, &rs.base, &frame, &len, &err), 0);
  assert_int_equal (kata_io_write_full (s->fd, frame, len, ATE_DEADLINE_NONE, &err), 0);
}

static struct fake_server *
fake_server_start (void (*script) (struct fake_server *), int *client_fd)
{
  struct fake_server *s = xmalloc0 (sizeof (*s));
  int sv[2];
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  s->fd = sv[1];
  s->script = script;
  *client_fd = sv[0];
  assert_int_equal (pthread_create (&s->thread, NULL, fake_server_main, s), 0);
  return s;
}

static void
fake_server_join (struct fake_server *s)
{
  pthread_join (s->thread, NULL);
  close (s->fd);
  free (s);
}

struct caller
{
  struct ttrpc_client *c;
  const char *cid;
  ate_deadline_t deadline;
  pthread_t thread;
  char *data;
  struct ate_error *err;
};

static void *
caller_main (void *arg)
{
  struct caller *k = arg;
  Grpc__ReadStreamRequest rq = GRPC__READ_STREAM_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;

  rq.container_id = (char *) k->cid;
  rq.exec_id = (char *) k->cid;
  rq.len = 4096;
  if (ttrpc_client_call (k->c, "grpc.AgentService", "ReadStdout", &rq.base,
                         &grpc__read_stream_response__descriptor, &resp, k->deadline,
                         &k->err)
      == 0)
    {
      Grpc__ReadStreamResponse *r = (Grpc__ReadStreamResponse *) resp;
      k->data = xmalloc (r->data.len + 1);
      if (r->data.len)
        memcpy (k->data, r->data.data, r->data.len);
      k->data[r->data.len] = '\0';
      protobuf_c_message_free_unpacked (resp, NULL);
    }
  return NULL;
}

static void
caller_start (struct caller *k, struct ttrpc_client *c, const char *cid, ate_deadline_t d)
{
  memset (k, 0, sizeof (*k));
  k->c = c;
  k->cid = cid;
  k->deadline = d;
  assert_int_equal (pthread_create (&k->thread, NULL, caller_main, k), 0);
}

/* Two requests in flight; the server answers them in reverse order. */
static void
script_reverse (struct fake_server *s)
{
  uint32_t a, b;
  Ttrpc__Request *ra = server_read_request (s, &a);
  Ttrpc__Request *rb = server_read_request (s, &b);
  Grpc__ReadStreamRequest *ia
      = grpc__read_stream_request__unpack (NULL, ra->payload.len, ra->payload.data);
  Grpc__ReadStreamRequest *ib
      = grpc__read_stream_request__unpack (NULL, rb->payload.len, rb->payload.data);
  char ta[64], tb[64];
  snprintf (ta, sizeof (ta), "for %s", ia->container_id);
  snprintf (tb, sizeof (tb), "for %s", ib->container_id);
  server_reply_data (s, b, tb);
  server_reply_data (s, a, ta);
  grpc__read_stream_request__free_unpacked (ia, NULL);
  grpc__read_stream_request__free_unpacked (ib, NULL);
  ttrpc__request__free_unpacked (ra, NULL);
  ttrpc__request__free_unpacked (rb, NULL);
  /* A third call afterwards. */
  ra = server_read_request (s, &a);
  server_reply_data (s, a, "third");
  ttrpc__request__free_unpacked (ra, NULL);
}

static void
test_client_concurrent_calls (void **state)
{
  (void) state;
  int fd;
  struct fake_server *s = fake_server_start (script_reverse, &fd);
  struct ttrpc_client *c = NULL;
  struct ate_error *err = NULL;
  struct caller k1, k2, k3;

  assert_int_equal (ttrpc_client_new (fd, &c, &err), 0);
  caller_start (&k1, c, "one", ATE_DEADLINE_NONE);
  caller_start (&k2, c, "two", ate_deadline_in_ms (5000));
  pthread_join (k1.thread, NULL);
  pthread_join (k2.thread, NULL);
  assert_null (k1.err);
  assert_null (k2.err);
  assert_string_equal (k1.data, "for one");
  assert_string_equal (k2.data, "for two");
  caller_start (&k3, c, "three", ate_deadline_in_ms (5000));
  pthread_join (k3.thread, NULL);
  assert_string_equal (k3.data, "third");
  fake_server_join (s);
  ttrpc_client_free (c);

  free (k1.data);
  free (k2.data);
  free (k3.data);
}

static void
script_record_three (struct fake_server *s)
{
  for (int i = 0; i < 3; i++)
    {
      uint32_t id;
      Ttrpc__Request *r = server_read_request (s, &id);
      server_reply_data (s, id, "x");
      ttrpc__request__free_unpacked (r, NULL);
    }
}

static void
test_client_stream_ids_and_timeout (void **state)
{
  (void) state;
  int fd;
  struct fake_server *s = fake_server_start (script_record_three, &fd);
  struct ttrpc_client *c = NULL;
  struct ate_error *err = NULL;
  struct caller k;

  assert_int_equal (ttrpc_client_new (fd, &c, &err), 0);
  caller_start (&k, c, "a", ATE_DEADLINE_NONE);
  pthread_join (k.thread, NULL);
  free (k.data);
  caller_start (&k, c, "a", ate_deadline_in_ms (3000));
  pthread_join (k.thread, NULL);
  free (k.data);
  caller_start (&k, c, "a", ate_deadline_in_ms (10));
  pthread_join (k.thread, NULL);
  free (k.data);
  ate_error_release (&k.err);
  pthread_join (s->thread, NULL);
  assert_int_equal (s->n_seen, 3);
  assert_int_equal (s->seen_streams[0], 1);
  assert_int_equal (s->seen_streams[1], 3);
  assert_int_equal (s->seen_streams[2], 5);
  assert_int_equal (s->seen_timeouts[0], 0);
  assert_true (s->seen_timeouts[1] > 2900 * ATE_NSEC_PER_MSEC);
  assert_true (s->seen_timeouts[1] <= 3000 * ATE_NSEC_PER_MSEC);
  assert_true (s->seen_timeouts[2] > 0 && s->seen_timeouts[2] <= 10 * ATE_NSEC_PER_MSEC);
  close (s->fd);
  free (s);
  ttrpc_client_free (c);
}

/* Reads two requests, then drops the connection. */
static void
script_hang_up (struct fake_server *s)
{
  uint32_t a, b;
  Ttrpc__Request *ra = server_read_request (s, &a);
  Ttrpc__Request *rb = server_read_request (s, &b);
  ttrpc__request__free_unpacked (ra, NULL);
  ttrpc__request__free_unpacked (rb, NULL);
  shutdown (s->fd, SHUT_RDWR);
}

static void
test_client_dead_connection_fails_waiters (void **state)
{
  (void) state;
  int fd;
  struct fake_server *s = fake_server_start (script_hang_up, &fd);
  struct ttrpc_client *c = NULL;
  struct ate_error *err = NULL;
  struct caller k1, k2, k3;

  assert_int_equal (ttrpc_client_new (fd, &c, &err), 0);
  caller_start (&k1, c, "stdout", ATE_DEADLINE_NONE);
  caller_start (&k2, c, "stderr", ATE_DEADLINE_NONE);
  pthread_join (k1.thread, NULL);
  pthread_join (k2.thread, NULL);
  assert_non_null (k1.err);
  assert_non_null (k2.err);
  assert_non_null (strstr (k1.err->msg, "/grpc.AgentService/ReadStdout"));
  assert_non_null (strstr (k1.err->msg, "connection closed by the agent"));
  assert_int_equal (ate_error_code (k1.err), ATE_CODE_UNAVAILABLE);
  /* Later calls fail at once with the same cause. */
  caller_start (&k3, c, "later", ate_deadline_in_ms (5000));
  pthread_join (k3.thread, NULL);
  assert_non_null (k3.err);
  assert_non_null (strstr (k3.err->msg, "connection closed by the agent"));
  ate_error_release (&k1.err);
  ate_error_release (&k2.err);
  ate_error_release (&k3.err);
  fake_server_join (s);
  ttrpc_client_free (c);
}

/* Answers with a header announcing 5 MiB and then keeps writing. */
static void
script_oversized (struct fake_server *s)
{
  uint32_t a;
  struct ttrpc_header h;
  uint8_t hdr[10];
  struct ate_error *err = NULL;
  Ttrpc__Request *ra = server_read_request (s, &a);
  ttrpc__request__free_unpacked (ra, NULL);
  h = (struct ttrpc_header) { .length = 5u << 20, .stream_id = a, .type = 2 };
  ttrpc_header_encode (&h, hdr);
  (void) kata_io_write_full (s->fd, hdr, 10, ate_deadline_in_ms (2000), &err);
  ate_error_release (&err);
  /* The client must hang up without reading 5 MiB; our writes then fail. */
  char junk[4096] = { 0 };
  for (int i = 0; i < 64; i++)
    if (kata_io_write_full (s->fd, junk, sizeof (junk), ate_deadline_in_ms (2000), &err) < 0)
      break;
  ate_error_release (&err);
}

static void
test_client_oversized_frame_kills_connection (void **state)
{
  (void) state;
  int fd;
  struct fake_server *s = fake_server_start (script_oversized, &fd);
  struct ttrpc_client *c = NULL;
  struct ate_error *err = NULL;
  struct caller k1, k2;

  assert_int_equal (ttrpc_client_new (fd, &c, &err), 0);
  caller_start (&k1, c, "big", ate_deadline_in_ms (5000));
  pthread_join (k1.thread, NULL);
  assert_non_null (k1.err);
  assert_non_null (strstr (k1.err->msg, "5242880 bytes, more than the 4194304 byte limit"));
  caller_start (&k2, c, "after", ate_deadline_in_ms (5000));
  pthread_join (k2.thread, NULL);
  assert_non_null (k2.err);
  ate_error_release (&k1.err);
  ate_error_release (&k2.err);
  fake_server_join (s);
  ttrpc_client_free (c);
}

/* Never answers the first request; answers the next after a delay so
 * that a late reply to the timed-out call arrives first. */
static void
script_late (struct fake_server *s)
{
  uint32_t a, b;
  Ttrpc__Request *ra = server_read_request (s, &a);
  Ttrpc__Request *rb = server_read_request (s, &b);
  server_reply_data (s, a, "too late");
  server_reply_data (s, b, "on time");
  ttrpc__request__free_unpacked (ra, NULL);
  ttrpc__request__free_unpacked (rb, NULL);
}

static void
test_client_deadline (void **state)
{
  (void) state;
  int fd;
  struct fake_server *s = fake_server_start (script_late, &fd);
  struct ttrpc_client *c = NULL;
  struct ate_error *err = NULL;
  struct caller k1, k2;
  int64_t start = ate_now_ns ();

  assert_int_equal (ttrpc_client_new (fd, &c, &err), 0);
  caller_start (&k1, c, "slow", ate_deadline_in_ms (100));
  pthread_join (k1.thread, NULL);
  assert_non_null (k1.err);
  assert_int_equal (k1.err->status, ETIMEDOUT);
  assert_int_equal (ate_error_code (k1.err), ATE_CODE_DEADLINE_EXCEEDED);
  assert_true (ate_elapsed_ms (start) >= 95);
  caller_start (&k2, c, "next", ate_deadline_in_ms (5000));
  pthread_join (k2.thread, NULL);
  assert_null (k2.err);
  assert_string_equal (k2.data, "on time");
  free (k2.data);
  ate_error_release (&k1.err);
  fake_server_join (s);
  ttrpc_client_free (c);
}

/* Reads one request and waits for the client to hang up. */
static void
script_silent (struct fake_server *s)
{
  uint32_t a;
  char b;
  Ttrpc__Request *ra = server_read_request (s, &a);
  ttrpc__request__free_unpacked (ra, NULL);
  assert_int_equal (read (s->fd, &b, 1), 0);
}

static void
test_client_close_wakes_waiters (void **state)
{
  (void) state;
  int fd;
  struct fake_server *s = fake_server_start (script_silent, &fd);
  struct ttrpc_client *c = NULL;
  struct ate_error *err = NULL;
  struct caller k1;

  assert_int_equal (ttrpc_client_new (fd, &c, &err), 0);
  caller_start (&k1, c, "blocked", ATE_DEADLINE_NONE);
  /* Let the call reach the server, then close from this thread. */
  while (s->n_seen == 0)
    usleep (1000);
  ttrpc_client_close (c);
  pthread_join (k1.thread, NULL);
  assert_non_null (k1.err);
  assert_non_null (strstr (k1.err->msg, "connection closed"));
  ate_error_release (&k1.err);
  fake_server_join (s);
  ttrpc_client_free (c);
}

/* Stream ids must reach the server in increasing order however many
 * callers race (the agent rejects a lower id than one it has seen). */
#define RACE_THREADS 16
#define RACE_CALLS 30

static bool race_in_order;

static void
script_check_order (struct fake_server *s)
{
  uint32_t last = 0;
  race_in_order = true;
  for (int i = 0; i < RACE_THREADS * RACE_CALLS; i++)
    {
      struct ttrpc_header h;
      uint8_t *payload = NULL;
      struct ate_error *err = NULL;
      if (ttrpc_frame_read (s->fd, ate_deadline_in_ms (5000), &h, &payload, NULL, &err) < 0)
        {
          ate_error_free (err);
          race_in_order = false;
          return;
        }
      free (payload);
      if (h.stream_id <= last)
        race_in_order = false;
      last = h.stream_id;
      server_reply_data (s, h.stream_id, "ok");
    }
}

static void *
race_caller (void *arg)
{
  struct ttrpc_client *c = arg;
  for (int i = 0; i < RACE_CALLS; i++)
    {
      struct caller k;
      memset (&k, 0, sizeof (k));
      k.c = c;
      k.cid = "x";
      k.deadline = ate_deadline_in_ms (10000);
      caller_main (&k);
      assert_null (k.err);
      free (k.data);
    }
  return NULL;
}

static void
test_client_ids_arrive_in_order (void **state)
{
  (void) state;
  int fd;
  struct fake_server *s = fake_server_start (script_check_order, &fd);
  struct ttrpc_client *c = NULL;
  struct ate_error *err = NULL;
  pthread_t t[RACE_THREADS];

  assert_int_equal (ttrpc_client_new (fd, &c, &err), 0);
  for (int i = 0; i < RACE_THREADS; i++)
    pthread_create (&t[i], NULL, race_caller, c);
  for (int i = 0; i < RACE_THREADS; i++)
    pthread_join (t[i], NULL);
  fake_server_join (s);
  assert_true (race_in_order);
  ttrpc_client_free (c);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_header_codec),
    cmocka_unit_test (test_rust_request_vector),
    cmocka_unit_test (test_start_container_frame),
    cmocka_unit_test (test_frame_parse),
    cmocka_unit_test (test_status_mapping),
    cmocka_unit_test (test_timeout_nano),
    cmocka_unit_test (test_client_concurrent_calls),
    cmocka_unit_test (test_client_stream_ids_and_timeout),
    cmocka_unit_test (test_client_dead_connection_fails_waiters),
    cmocka_unit_test (test_client_oversized_frame_kills_connection),
    cmocka_unit_test (test_client_deadline),
    cmocka_unit_test (test_client_close_wakes_waiters),
    cmocka_unit_test (test_client_ids_arrive_in_order),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
