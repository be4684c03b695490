/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's ttrpc server: one thread per hybrid-vsock connection reads
 * frames and validates them as the kata agent's server does (odd,
 * increasing stream ids; the 4 MiB limit; known services and methods);
 * every request runs in its own thread because ReadStdout, ReadStderr and
 * WaitProcess block.  Responses are written under a per-connection lock,
 * and only while the guest runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "kata/io.h"
#include "kata/ttrpc.h"
#include "kata/ttrpc.pb-c.h"
#include "util/error.h"
#include "util/util.h"

/* More requests than this in flight on one connection are refused. */
#define MAX_INFLIGHT 64

struct sim_req
{
  struct sim_conn *conn;
  uint32_t stream_id;
  Ttrpc__Request *req;
  sim_handler handler;
  pthread_t thread;
  bool done;
  struct sim_req *next;
};

struct sim_conn
{
  struct sim_agent *agent;
  int fd;
  int wake_fd; /* eventfd, readable once closing */
  bool closing;
  pthread_t thread;
  bool finished; /* the connection thread is done (join pending) */
  pthread_mutex_t write_lock;
  struct sim_req *reqs; /* under agent->lock */
  int inflight;
  struct sim_conn *next;
};

void
sim_reply_error (struct sim_reply *r, int32_t code, const char *fmt, ...)
{
  va_list ap;
  r->code = code;
  free (r->msg);
  va_start (ap, fmt);
  if (vasprintf (&r->msg, fmt, ap) < 0)
    ate_oom ();
  va_end (ap);
}

static void
send_frame (struct sim_conn *c, uint8_t *frame, size_t len)
{
  struct ate_error *err = NULL;

  pthread_mutex_lock (&c->write_lock);
  if (!c->closing && kata_io_write_full (c->fd, frame, len, ATE_DEADLINE_NONE, &err) < 0)
    {
      sim_agent_logf (c->agent, "ttrpc: write: %s", err->msg);
      ate_error_free (err);
      shutdown (c->fd, SHUT_RDWR);
    }
  pthread_mutex_unlock (&c->write_lock);
  free (frame);
}

static void
send_reply (struct sim_conn *c, uint32_t stream_id, struct sim_reply *r)
{
  struct ate_error *err = NULL;
  uint8_t *frame = NULL;
  size_t len = 0;

  if (ttrpc_response_frame (stream_id, r->code, r->msg, r->code ? NULL : r->resp, &frame, &len,
                            &err)
      < 0)
    {
      /* Too large to send: say so instead. */
      char *why = xstrdup (err->msg);
      ate_error_free (err);
      err = NULL;
      if (ttrpc_response_frame (stream_id, ATE_CODE_RESOURCE_EXHAUSTED, why, NULL, &frame, &len,
                                &err)
          < 0)
        ate_error_free (err);
      free (why);
    }
  if (frame)
    send_frame (c, frame, len);
}

static void
send_status (struct sim_conn *c, uint32_t stream_id, int32_t code, const char *msg)
{
  struct sim_reply r = { .code = code, .msg = xstrdup (msg) };
  send_reply (c, stream_id, &r);
  free (r.msg);
}

static void *
req_main (void *arg)
{
  struct sim_req *q = arg;
  struct sim_conn *c = q->conn;
  struct sim_agent *a = c->agent;
  struct sim_call call = { .agent = a, .closing = &c->closing, .wake_fd = c->wake_fd };
  struct sim_reply r = { 0 };
  bool go;

  call.deadline = q->req->timeout_nano > 0 ? ate_now_ns () + q->req->timeout_nano
                                           : ATE_DEADLINE_NONE;
  pthread_mutex_lock (&a->lock);
  go = sim_wait_running_locked (a, &c->closing);
  pthread_mutex_unlock (&a->lock);
  if (go)
    q->handler (&call, q->req->payload.data, q->req->payload.len, &r);
  /* A paused guest answers nothing until it runs again. */
  pthread_mutex_lock (&a->lock);
  go = go && sim_wait_running_locked (a, &c->closing);
  pthread_mutex_unlock (&a->lock);
  if (go)
    send_reply (c, q->stream_id, &r);
  if (r.resp && !r.resp_is_static)
    protobuf_c_message_free_unpacked (r.resp, NULL);
  free (r.msg);
  pthread_mutex_lock (&a->lock);
  q->done = true;
  c->inflight--;
  pthread_cond_broadcast (&a->cond);
  pthread_mutex_unlock (&a->lock);
  return NULL;
}

/* Join finished request threads (all of them when `all`). */
static void
reap_requests (struct sim_conn *c, bool all)
{
  struct sim_agent *a = c->agent;

  pthread_mutex_lock (&a->lock);
  for (;;)
    {
      struct sim_req **pp = &c->reqs, *q = NULL;
      for (; *pp; pp = &(*pp)->next)
        if ((*pp)->done)
          {
            q = *pp;
            *pp = q->next;
            break;
          }
      if (q == NULL)
        {
          if (!all || c->reqs == NULL)
            break;
          pthread_cond_wait (&a->cond, &a->lock);
          continue;
        }
      pthread_mutex_unlock (&a->lock);
      pthread_join (q->thread, NULL);
      ttrpc__request__free_unpacked (q->req, NULL);
      free (q);
      pthread_mutex_lock (&a->lock);
    }
  pthread_mutex_unlock (&a->lock);
}

static void
dispatch (struct sim_conn *c, uint32_t stream_id, Ttrpc__Request *req)
{
  struct sim_agent *a = c->agent;
  sim_handler h = sim_handler_find (req->service, req->method);
  struct sim_req *q;

  if (h == NULL)
    {
      char *msg = xasprintf ("/%s/%s is not implemented", req->service, req->method);
      send_status (c, stream_id, ATE_CODE_UNIMPLEMENTED, msg);
      free (msg);
      ttrpc__request__free_unpacked (req, NULL);
      return;
    }
  q = xmalloc0 (sizeof (*q));
  q->conn = c;
  q->stream_id = stream_id;
  q->req = req;
  q->handler = h;
  pthread_mutex_lock (&a->lock);
  if (c->inflight >= MAX_INFLIGHT
      || pthread_create (&q->thread, NULL, req_main, q) != 0)
    {
      pthread_mutex_unlock (&a->lock);
      send_status (c, stream_id, ATE_CODE_RESOURCE_EXHAUSTED, "too many requests in flight");
      ttrpc__request__free_unpacked (req, NULL);
      free (q);
      return;
    }
  c->inflight++;
  q->next = c->reqs;
  c->reqs = q;
  pthread_mutex_unlock (&a->lock);
}

/* One frame; false when the connection is over. */
static bool
serve_frame (struct sim_conn *c, uint32_t *last_stream)
{
  struct ate_error *err = NULL;
  struct ttrpc_header h;
  uint8_t *payload = NULL;
  Ttrpc__Request *req;
  bool eof = false;

  if (ttrpc_frame_read (c->fd, ATE_DEADLINE_NONE, &h, &payload, &eof, &err) < 0)
    {
      bool oversized = err->status == EMSGSIZE;
      if (!eof && !c->closing)
        sim_agent_logf (c->agent, "ttrpc: %s", err->msg);
      ate_error_free (err);
      if (!oversized)
        return false;
      /* As ttrpc-rust: refuse it with INVALID_ARGUMENT, skip the body. */
      char *msg = xasprintf ("message length %u exceed maximum message size of %u", h.length,
                             TTRPC_MESSAGE_MAX);
      send_status (c, h.stream_id, ATE_CODE_INVALID_ARGUMENT, msg);
      free (msg);
      if (kata_io_discard (c->fd, h.length, ATE_DEADLINE_NONE, &err) < 0)
        {
          ate_error_free (err);
          return false;
        }
      return true;
    }
  if (h.type != TTRPC_TYPE_REQUEST)
    {
      sim_agent_logf (c->agent, "ttrpc: ignoring a frame of type %u on stream %u", h.type,
                      h.stream_id);
      free (payload);
      return true;
    }
  if (h.stream_id % 2 != 1 || h.stream_id <= *last_stream)
    {
      send_status (c, h.stream_id, ATE_CODE_INVALID_ARGUMENT,
                   h.stream_id % 2 != 1 ? "stream id must be odd for client initiated streams"
                                        : "stream id cannot be re-used and must increment");
      free (payload);
      return true;
    }
  *last_stream = h.stream_id;
  req = ttrpc__request__unpack (NULL, h.length, payload);
  free (payload);
  if (req == NULL)
    {
      send_status (c, h.stream_id, ATE_CODE_INVALID_ARGUMENT, "malformed ttrpc request");
      return true;
    }
  dispatch (c, h.stream_id, req);
  reap_requests (c, false);
  return true;
}

static void *
conn_main (void *arg)
{
  struct sim_conn *c = arg;
  uint32_t last_stream = 0;

  while (serve_frame (c, &last_stream))
    ;
  /* Peer gone or reset: wake the blocked requests, wait for all. */
  pthread_mutex_lock (&c->agent->lock);
  c->closing = true;
  pthread_cond_broadcast (&c->agent->cond);
  pthread_mutex_unlock (&c->agent->lock);
  (void) !eventfd_write (c->wake_fd, 1);
  reap_requests (c, true);
  pthread_mutex_lock (&c->agent->lock);
  c->finished = true;
  pthread_mutex_unlock (&c->agent->lock);
  return NULL;
}

static void
conn_free (struct sim_conn *c)
{
  pthread_join (c->thread, NULL);
  close (c->fd);
  close (c->wake_fd);
  pthread_mutex_destroy (&c->write_lock);
  free (c);
}

/* Join connections whose thread is done. */
static void
reap_conns (struct sim_agent *a)
{
  for (;;)
    {
      struct sim_conn *done = NULL;
      pthread_mutex_lock (&a->lock);
      for (struct sim_conn **pp = &a->conns; *pp; pp = &(*pp)->next)
        if ((*pp)->finished)
          {
            done = *pp;
            *pp = done->next;
            break;
          }
      pthread_mutex_unlock (&a->lock);
      if (done == NULL)
        return;
      conn_free (done);
    }
}

void
sim_agent_serve (struct sim_agent *a, int fd)
{
  struct sim_conn *c = xmalloc0 (sizeof (*c));

  reap_conns (a);
  c->agent = a;
  c->fd = fd;
  c->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init (&c->write_lock, NULL);
  pthread_mutex_lock (&a->lock);
  if (c->wake_fd < 0 || a->stopping || pthread_create (&c->thread, NULL, conn_main, c) != 0)
    {
      pthread_mutex_unlock (&a->lock);
      sim_agent_logf (a, "cannot serve a new connection");
      close (fd);
      if (c->wake_fd >= 0)
        close (c->wake_fd);
      pthread_mutex_destroy (&c->write_lock);
      free (c);
      return;
    }
  c->next = a->conns;
  a->conns = c;
  pthread_mutex_unlock (&a->lock);
}

void
sim_conns_close_all (struct sim_agent *a)
{
  struct sim_conn *list;

  pthread_mutex_lock (&a->lock);
  list = a->conns;
  a->conns = NULL;
  for (struct sim_conn *c = list; c; c = c->next)
    {
      c->closing = true;
      shutdown (c->fd, SHUT_RDWR);
      (void) !eventfd_write (c->wake_fd, 1);
    }
  pthread_cond_broadcast (&a->cond);
  pthread_mutex_unlock (&a->lock);
  while (list)
    {
      struct sim_conn *next = list->next;
      conn_free (list);
      list = next;
    }
}
