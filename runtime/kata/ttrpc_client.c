/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "ttrpc_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "io.h"
#include "ttrpc.h"
#include "util/error.h"
#include "util/util.h"

/* One in-flight call, on the caller's stack. */
struct ttrpc_call
{
  uint32_t stream_id;
  pthread_cond_t cond;
  bool done;
  uint8_t *payload; /* response payload, owned once done */
  size_t len;
  struct ttrpc_call *next;
};

struct ttrpc_client
{
  int fd;
  pthread_t reader;
  bool reader_started;

  pthread_mutex_t lock; /* calls, next_stream, dead, dead_msg */
  struct ttrpc_call *calls;
  uint32_t next_stream;
  bool dead;
  char *dead_msg; /* why the connection is unusable */

  pthread_mutex_t write_lock; /* one frame at a time on the wire */
};

/* Mark the connection dead (first reason wins) and wake every waiter.
 * Called with c->lock held. */
static void
mark_dead_locked (struct ttrpc_client *c, const char *why)
{
  if (!c->dead)
    {
      c->dead = true;
      c->dead_msg = xstrdup (why);
      shutdown (c->fd, SHUT_RDWR);
    }
  for (struct ttrpc_call *k = c->calls; k; k = k->next)
    pthread_cond_signal (&k->cond);
}

static void
mark_dead (struct ttrpc_client *c, const char *why)
{
  pthread_mutex_lock (&c->lock);
  mark_dead_locked (c, why);
  pthread_mutex_unlock (&c->lock);
}

static void
deliver (struct ttrpc_client *c, uint32_t stream_id, uint8_t *payload, size_t len)
{
  pthread_mutex_lock (&c->lock);
  for (struct ttrpc_call *k = c->calls; k; k = k->next)
    if (k->stream_id == stream_id && !k->done)
      {
        k->payload = payload;
        k->len = len;
        k->done = true;
        payload = NULL;
        pthread_cond_signal (&k->cond);
        break;
      }
  pthread_mutex_unlock (&c->lock);
  /* No waiter: the call already gave up at its deadline. */
  free (payload);
}

static void *
reader_main (void *arg)
{
  struct ttrpc_client *c = arg;

  for (;;)
    {
      struct ate_error *err = NULL;
      struct ttrpc_header h;
      uint8_t *payload = NULL;
      bool eof = false;

      if (ttrpc_frame_read (c->fd, ATE_DEADLINE_NONE, &h, &payload, &eof, &err) < 0)
        {
          char *why = eof ? xstrdup ("connection closed by the agent")
                          : xasprintf ("connection lost: %s", err->msg);
          mark_dead (c, why);
          free (why);
          ate_error_free (err);
          return NULL;
        }
      /* Only unary calls are made: anything but a response (a data frame
       * of some stream) is ignored, as containerd's client does. */
      if (h.type != TTRPC_TYPE_RESPONSE)
        {
          free (payload);
          continue;
        }
      deliver (c, h.stream_id, payload, h.length);
    }
}

int
ttrpc_client_new (int fd, struct ttrpc_client **out, struct ate_error **err)
{
  struct ttrpc_client *c = xmalloc0 (sizeof (*c));
  int r;

  c->fd = fd;
  c->next_stream = 1;
  pthread_mutex_init (&c->lock, NULL);
  pthread_mutex_init (&c->write_lock, NULL);
  r = pthread_create (&c->reader, NULL, reader_main, c);
  if (r != 0)
    {
      c->fd = -1;
      ttrpc_client_free (c);
      close (fd);
      return ate_error_make (err, r, "start the ttrpc reader thread");
    }
  c->reader_started = true;
  *out = c;
  return 0;
}

static void
unlink_call_locked (struct ttrpc_client *c, struct ttrpc_call *call)
{
  for (struct ttrpc_call **pp = &c->calls; *pp; pp = &(*pp)->next)
    if (*pp == call)
      {
        *pp = call->next;
        return;
      }
}

/* Register a call and take the next stream id. */
static int
register_call (struct ttrpc_client *c, struct ttrpc_call *call, struct ate_error **err)
{
  int r = 0;

  pthread_mutex_lock (&c->lock);
  if (c->dead)
    r = ate_error_make_code (err, ATE_CODE_UNAVAILABLE, ECONNRESET, "ttrpc: %s",
                             c->dead_msg);
  else if (c->next_stream > UINT32_MAX - 2)
    r = ate_error_make_code (err, ATE_CODE_RESOURCE_EXHAUSTED, 0,
                             "ttrpc: stream ids exhausted on this connection");
  else
    {
      call->stream_id = c->next_stream;
      c->next_stream += 2;
      call->next = c->calls;
      c->calls = call;
    }
  pthread_mutex_unlock (&c->lock);
  return r;
}

/* Take the next stream id and put the request on the wire under the write
 * lock: ids must reach the agent in increasing order (it rejects a stream
 * id lower than one it has seen), so numbering and sending are one step. */
static int
register_and_send (struct ttrpc_client *c, struct ttrpc_call *call, const char *service,
                   const char *method, const ProtobufCMessage *req, ate_deadline_t deadline,
                   struct ate_error **err)
{
  cleanup_free uint8_t *frame = NULL;
  size_t frame_len = 0;
  int r;

  pthread_mutex_lock (&c->write_lock);
  r = register_call (c, call, err);
  if (r == 0)
    {
      r = ttrpc_request_frame (call->stream_id, service, method, req,
                               ttrpc_timeout_nano (deadline), &frame, &frame_len, err);
      if (r == 0 && kata_io_write_full (c->fd, frame, frame_len, deadline, err) < 0)
        {
          /* A partly written frame desynchronises the stream for everyone. */
          char *why = xasprintf ("connection lost: %s", (*err)->msg);
          mark_dead (c, why);
          free (why);
          r = -1;
        }
      if (r < 0)
        {
          pthread_mutex_lock (&c->lock);
          unlink_call_locked (c, call);
          pthread_mutex_unlock (&c->lock);
        }
    }
  pthread_mutex_unlock (&c->write_lock);
  return r;
}

/* Wait for the response; returns with c->lock released and the call
 * unregistered. */
static int
wait_response (struct ttrpc_client *c, struct ttrpc_call *call, ate_deadline_t deadline,
               struct ate_error **err)
{
  struct timespec ts = { .tv_sec = deadline / ATE_NSEC_PER_SEC,
                         .tv_nsec = deadline % ATE_NSEC_PER_SEC };
  int r = 0;

  pthread_mutex_lock (&c->lock);
  while (!call->done && !c->dead)
    {
      int w = deadline == ATE_DEADLINE_NONE
                  ? pthread_cond_wait (&call->cond, &c->lock)
                  : pthread_cond_timedwait (&call->cond, &c->lock, &ts);
      if (w == ETIMEDOUT && !call->done)
        {
          r = ate_error_make (err, ETIMEDOUT, "ttrpc: no response before the deadline");
          break;
        }
    }
  if (r == 0 && !call->done)
    r = ate_error_make_code (err, ATE_CODE_UNAVAILABLE, ECONNRESET, "ttrpc: %s",
                             c->dead_msg);
  unlink_call_locked (c, call);
  pthread_mutex_unlock (&c->lock);
  return r;
}

int
ttrpc_client_call (struct ttrpc_client *c, const char *service, const char *method,
                   const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                   ProtobufCMessage **resp, ate_deadline_t deadline, struct ate_error **err)
{
  struct ttrpc_call call = { 0 };
  pthread_condattr_t ca;
  int r;

  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&call.cond, &ca);
  pthread_condattr_destroy (&ca);

  r = register_and_send (c, &call, service, method, req, deadline, err);
  if (r == 0)
    r = wait_response (c, &call, deadline, err);
  pthread_cond_destroy (&call.cond);
  if (r == 0)
    {
      r = ttrpc_response_decode (call.payload, call.len, resp_desc, resp, err);
      free (call.payload);
    }
  if (r < 0)
    return ate_error_wrap (err, "/%s/%s", service, method);
  return 0;
}

void
ttrpc_client_close (struct ttrpc_client *c)
{
  if (c == NULL)
    return;
  pthread_mutex_lock (&c->lock);
  mark_dead_locked (c, "connection closed");
  pthread_mutex_unlock (&c->lock);
}

void
ttrpc_client_free (struct ttrpc_client *c)
{
  if (c == NULL)
    return;
  if (c->fd >= 0)
    ttrpc_client_close (c);
  if (c->reader_started)
    pthread_join (c->reader, NULL);
  if (c->fd >= 0)
    close (c->fd);
  free (c->dead_msg);
  pthread_mutex_destroy (&c->lock);
  pthread_mutex_destroy (&c->write_lock);
  free (c);
}
