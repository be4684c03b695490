/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "rpc.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/util.h"

/* Number of request-calls kept outstanding; each is re-armed on arrival. */
#define RPC_ARMED_CALLS 8

enum tag_kind
{
  TAG_NEW_CALL,
  TAG_RECEIVED,
  TAG_FINISHED,
  TAG_CLOSED,
  TAG_SHUTDOWN,
};

/* A call has up to two batches outstanding (its current step, and the
 * close watch of a call whose handler runs): each has its own tag. */
struct rpc_tag
{
  enum tag_kind kind;
  struct rpc_call *call;
};

struct rpc_call
{
  struct rpc_tag tag;       /* the call's steps: new, received, finished */
  struct rpc_tag close_tag; /* RECV_CLOSE_ON_SERVER armed while the handler runs */
  struct rpc_server *server;
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array request_md;
  grpc_byte_buffer *recv;
  grpc_byte_buffer *send;
  grpc_slice status_details;
  grpc_metadata trailer;
  char elapsed_us[24];
  int cancelled;        /* RECV_CLOSE_ON_SERVER result */
  bool close_armed;     /* that op was started on its own (close_tag) */
  bool close_done;      /* ... and has completed */
  bool finished;        /* the final batch has completed */
  struct ate_cancel cancel;
  bool sent_initial_md;
  bool stream; /* counted in rpc_server.streams */
  bool reserved; /* counted in rpc_server.reserved */
  /* In rpc_server.waiting while a message is awaited (the completion-queue
   * thread alone touches the list). */
  struct rpc_call *wait_prev, *wait_next;
  bool waiting;
  int64_t wait_since_ns;
  const struct rpc_method *method;
  ate_deadline_t deadline;
  int64_t start_ns;
};

struct rpc_server
{
  grpc_server *server;
  grpc_completion_queue *cq;
  const struct rpc_method *methods;
  size_t n_methods;
  char *socket_path;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  size_t inflight;      /* calls between arrival and their final batch completing */
  size_t workers;       /* handler threads running */
  size_t streams;       /* streams among the calls in flight */
  size_t reserved;      /* calls of reserved methods among them */
  struct rpc_call *waiting; /* calls awaiting a request message */
  int64_t last_stall_scan_ns;
  bool shutting_down;
  bool abandoned;       /* handlers did not return after cancellation */
  int64_t cancel_at_ns; /* monotonic time to cancel remaining calls */
  struct
  {
    enum tag_kind kind;
  } shutdown_tag;
};

static void arm_call (struct rpc_server *s);
static void call_release (struct rpc_call *c);

static void
call_free (struct rpc_call *c)
{
  if (c->call)
    grpc_call_unref (c->call);
  grpc_call_details_destroy (&c->details);
  grpc_metadata_array_destroy (&c->request_md);
  if (c->recv)
    grpc_byte_buffer_destroy (c->recv);
  if (c->send)
    grpc_byte_buffer_destroy (c->send);
  grpc_slice_unref (c->status_details);
  free (c);
}

static char *
slice_to_str (grpc_slice s)
{
  return xstrndup ((const char *) GRPC_SLICE_START_PTR (s), GRPC_SLICE_LENGTH (s));
}

static ate_deadline_t
deadline_from_grpc (gpr_timespec d)
{
  gpr_timespec now, rem;

  if (gpr_time_cmp (d, gpr_inf_future (d.clock_type)) == 0)
    return ATE_DEADLINE_NONE;
  now = gpr_now (d.clock_type);
  rem = gpr_time_sub (d, now);
  if (rem.tv_sec < 0)
    return ate_now_ns ();
  if (rem.tv_sec > 365LL * 24 * 3600)
    return ATE_DEADLINE_NONE;
  return ate_now_ns () + rem.tv_sec * ATE_NSEC_PER_SEC + rem.tv_nsec;
}

/* Send the response (or only the status) and close the call. */
static void
call_finish (struct rpc_call *c, grpc_status_code code, const char *message,
             const uint8_t *resp, size_t resp_len)
{
  grpc_op ops[4];
  size_t n = 0;

  memset (ops, 0, sizeof (ops));
  if (!c->sent_initial_md)
    {
      ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
      c->sent_initial_md = true;
    }
  if (code == GRPC_STATUS_OK && !c->stream)
    {
      grpc_slice sl = grpc_slice_from_copied_buffer ((const char *) resp, resp_len);
      c->send = grpc_raw_byte_buffer_create (&sl, 1);
      grpc_slice_unref (sl);
      ops[n].op = GRPC_OP_SEND_MESSAGE;
      ops[n].data.send_message.send_message = c->send;
      n++;
    }
  snprintf (c->elapsed_us, sizeof (c->elapsed_us), "%lld",
            (long long) ((ate_now_ns () - c->start_ns) / 1000));
  c->trailer.key = grpc_slice_from_static_string ("x-server-elapsed-us");
  c->trailer.value = grpc_slice_from_static_string (c->elapsed_us);
  c->status_details = grpc_slice_from_copied_string (message ? message : "");
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n].data.send_status_from_server.status_details = &c->status_details;
  ops[n].data.send_status_from_server.trailing_metadata_count = 1;
  ops[n].data.send_status_from_server.trailing_metadata = &c->trailer;
  n++;
  if (!c->close_armed)
    {
      ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
      ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
      n++;
    }
  c->tag.kind = TAG_FINISHED;
  if (grpc_call_start_batch (c->call, ops, n, &c->tag, NULL) != GRPC_CALL_OK)
    {
      /* Cannot happen with a well-formed batch; never leak the call. */
      ate_log (ATE_LOG_ERROR, "grpc_call_start_batch failed for the final batch", NULL);
      if (c->close_armed)
        {
          /* The close watch completes once the call is cancelled; it frees. */
          c->finished = true;
          grpc_call_cancel (c->call, NULL);
          return;
        }
      call_release (c);
    }
}

/* Close the call with the status of a failed handler. */
static void
call_finish_error (struct rpc_call *c, const struct ate_error *err)
{
  enum ate_code code = ate_error_code (err);
  const char *msg = err ? err->msg : "unknown error";
  cleanup_free char *full = NULL;

  if (code == ATE_CODE_INTERNAL)
    msg = full = xasprintf ("internal server error: %s", msg);
  call_finish (c, (grpc_status_code) code, msg, NULL, 0);
}

static void *
worker_main (void *arg)
{
  struct rpc_call *c = arg;
  struct rpc_server *s = c->server;
  cleanup_error struct ate_error *err = NULL;
  grpc_byte_buffer_reader reader;
  grpc_slice req;
  uint8_t *resp = NULL;
  size_t resp_len = 0;
  int r;

  if (c->recv == NULL)
    {
      /* Half-closed without a message. */
      call_finish (c, GRPC_STATUS_INVALID_ARGUMENT, "request message missing", NULL, 0);
      goto out;
    }
  grpc_byte_buffer_reader_init (&reader, c->recv);
  req = grpc_byte_buffer_reader_readall (&reader);
  grpc_byte_buffer_reader_destroy (&reader);

  r = c->method->handler (c->method->ctx, GRPC_SLICE_START_PTR (req), GRPC_SLICE_LENGTH (req),
                          c->deadline, &c->cancel, &resp, &resp_len, &err);
  grpc_slice_unref (req);
  if (r < 0)
    call_finish_error (c, err);
  else
    call_finish (c, GRPC_STATUS_OK, "", resp, resp_len);
  free (resp);

out:
  pthread_mutex_lock (&s->lock);
  s->workers--;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

static const struct rpc_method *
find_method (struct rpc_server *s, grpc_slice path)
{
  for (size_t i = 0; i < s->n_methods; i++)
    if (grpc_slice_str_cmp (path, s->methods[i].path) == 0)
      return &s->methods[i];
  return NULL;
}

/* ---- calls awaiting their request message ----
 *
 * A client can send a call's headers and never its message; the C core
 * would hold the call (and one of our slots) until the client's deadline,
 * if any.  The run loop cancels calls that waited too long. */

static void
wait_start (struct rpc_call *c)
{
  struct rpc_server *s = c->server;
  c->waiting = true;
  c->wait_since_ns = ate_now_ns ();
  c->wait_prev = NULL;
  c->wait_next = s->waiting;
  if (s->waiting)
    s->waiting->wait_prev = c;
  s->waiting = c;
}

static void
wait_end (struct rpc_call *c)
{
  struct rpc_server *s = c->server;
  if (!c->waiting)
    return;
  if (c->wait_prev)
    c->wait_prev->wait_next = c->wait_next;
  else
    s->waiting = c->wait_next;
  if (c->wait_next)
    c->wait_next->wait_prev = c->wait_prev;
  c->waiting = false;
  c->wait_prev = c->wait_next = NULL;
}

static void
cancel_stalled_calls (struct rpc_server *s)
{
  int64_t now = ate_now_ns ();

  if (now - s->last_stall_scan_ns < 100 * ATE_NSEC_PER_MSEC)
    return;
  s->last_stall_scan_ns = now;
  for (struct rpc_call *c = s->waiting, *next; c; c = next)
    {
      int64_t limit = (c->stream ? RPC_STREAM_IDLE_MS : RPC_RECV_TIMEOUT_MS) * ATE_NSEC_PER_MSEC;
      next = c->wait_next;
      if (now - c->wait_since_ns < limit)
        continue;
      wait_end (c);
      ate_log (ATE_LOG_WARN, "Cancel RPC", "method", c->method ? c->method->path : "?",
               "error", c->stream ? "stream idle too long" : "request message not received in time",
               NULL);
      /* The pending receive then completes and finishes the call. */
      grpc_call_cancel_with_status (c->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                                    c->stream ? "stream idle for too long"
                                              : "request message not received in time",
                                    NULL);
    }
}

static void
on_new_call (struct rpc_call *c, bool ok)
{
  struct rpc_server *s = c->server;
  grpc_op ops[2];

  if (!ok)
    {
      /* The server is shutting down: this slot is not re-armed. */
      call_free (c);
      return;
    }
  arm_call (s);

  c->start_ns = ate_now_ns ();
  c->deadline = deadline_from_grpc (c->details.deadline);
  c->method = find_method (s, c->details.method);

  pthread_mutex_lock (&s->lock);
  s->inflight++;
  size_t inflight = s->inflight - s->streams - s->reserved;
  size_t streams = s->streams;
  bool too_many = c->method != NULL
                  && (c->method->stream     ? streams >= RPC_MAX_STREAMS
                      : c->method->reserved ? s->reserved >= RPC_MAX_RESERVED
                                            : inflight > RPC_MAX_INFLIGHT);
  if (c->method != NULL && c->method->stream && !too_many)
    {
      c->stream = true;
      s->streams++;
    }
  if (c->method != NULL && c->method->reserved && !too_many)
    {
      c->reserved = true;
      s->reserved++;
    }
  size_t reserved = s->reserved;
  pthread_mutex_unlock (&s->lock);

  memset (ops, 0, sizeof (ops));
  if (c->method == NULL || too_many)
    {
      grpc_status_code code = c->method ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_UNIMPLEMENTED;
      cleanup_free char *m = slice_to_str (c->details.method);
      cleanup_free char *msg
          = c->method == NULL     ? xasprintf ("unknown method %s", m)
            : c->method->stream   ? xasprintf ("too many streams open (%zu)", streams)
            : c->method->reserved ? xasprintf ("too many health checks in flight (%zu)", reserved)
                                  : xasprintf ("too many calls in flight (%zu)", inflight);
      ate_log (ATE_LOG_WARN, "Reject RPC", "method", m, "error", msg, NULL);
      call_finish (c, code, msg, NULL, 0);
      return;
    }
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  c->sent_initial_md = true;
  ops[1].op = GRPC_OP_RECV_MESSAGE;
  ops[1].data.recv_message.recv_message = &c->recv;
  c->tag.kind = TAG_RECEIVED;
  wait_start (c);
  if (grpc_call_start_batch (c->call, ops, 2, &c->tag, NULL) != GRPC_CALL_OK)
    {
      wait_end (c);
      ate_log (ATE_LOG_ERROR, "grpc_call_start_batch failed", NULL);
      call_finish (c, GRPC_STATUS_INTERNAL, "internal server error: cannot start call", NULL, 0);
    }
}

/* A stream's message arrived (or the client closed its side): answer it
 * and wait for the next one. */
static void
on_stream_message (struct rpc_call *c, bool ok)
{
  cleanup_error struct ate_error *err = NULL;
  grpc_byte_buffer_reader reader;
  grpc_slice req;
  grpc_op ops[2];
  uint8_t *resp = NULL;
  size_t resp_len = 0;
  int r;

  if (c->send)
    {
      grpc_byte_buffer_destroy (c->send);
      c->send = NULL;
    }
  if (!ok)
    {
      call_finish (c, GRPC_STATUS_CANCELLED, "stream cancelled", NULL, 0);
      return;
    }
  if (c->recv == NULL)
    {
      call_finish (c, GRPC_STATUS_OK, "", NULL, 0);
      return;
    }
  grpc_byte_buffer_reader_init (&reader, c->recv);
  req = grpc_byte_buffer_reader_readall (&reader);
  grpc_byte_buffer_reader_destroy (&reader);
  grpc_byte_buffer_destroy (c->recv);
  c->recv = NULL;
  r = c->method->handler (c->method->ctx, GRPC_SLICE_START_PTR (req), GRPC_SLICE_LENGTH (req),
                          c->deadline, &c->cancel, &resp, &resp_len, &err);
  grpc_slice_unref (req);
  if (r < 0)
    {
      call_finish_error (c, err);
      return;
    }
  grpc_slice sl = grpc_slice_from_copied_buffer ((const char *) resp, resp_len);
  free (resp);
  c->send = grpc_raw_byte_buffer_create (&sl, 1);
  grpc_slice_unref (sl);
  memset (ops, 0, sizeof (ops));
  ops[0].op = GRPC_OP_SEND_MESSAGE;
  ops[0].data.send_message.send_message = c->send;
  ops[1].op = GRPC_OP_RECV_MESSAGE;
  ops[1].data.recv_message.recv_message = &c->recv;
  c->tag.kind = TAG_RECEIVED;
  wait_start (c);
  if (grpc_call_start_batch (c->call, ops, 2, &c->tag, NULL) != GRPC_CALL_OK)
    {
      wait_end (c);
      ate_log (ATE_LOG_ERROR, "grpc_call_start_batch failed on a stream", NULL);
      call_finish (c, GRPC_STATUS_INTERNAL, "internal server error: cannot continue the stream",
                   NULL, 0);
    }
}

static void
on_received (struct rpc_call *c, bool ok)
{
  struct rpc_server *s = c->server;
  pthread_attr_t attr;
  pthread_t t;

  wait_end (c);
  if (c->stream)
    {
      on_stream_message (c, ok);
      return;
    }
  if (!ok)
    {
      call_finish (c, GRPC_STATUS_CANCELLED, "call cancelled before its message arrived", NULL, 0);
      return;
    }
  /* Watch for the end of the call while the handler runs: the C core
   * completes RECV_CLOSE_ON_SERVER early, with cancelled set, when the
   * client cancels without a deadline, its deadline passes, or shutdown
   * cancels the call; the handler then sees its flag raised. */
  {
    grpc_op op;
    memset (&op, 0, sizeof (op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    c->close_tag.kind = TAG_CLOSED;
    c->close_tag.call = c;
    if (grpc_call_start_batch (c->call, &op, 1, &c->close_tag, NULL) == GRPC_CALL_OK)
      c->close_armed = true;
    else
      ate_log (ATE_LOG_WARN, "cannot watch the call for cancellation", NULL);
  }
  pthread_mutex_lock (&s->lock);
  s->workers++;
  pthread_mutex_unlock (&s->lock);
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create (&t, &attr, worker_main, c) != 0)
    {
      pthread_mutex_lock (&s->lock);
      s->workers--;
      pthread_mutex_unlock (&s->lock);
      call_finish (c, GRPC_STATUS_RESOURCE_EXHAUSTED, "cannot start a handler thread", NULL, 0);
    }
  pthread_attr_destroy (&attr);
}

/* The call is freed once its final batch and, when armed, its close watch
 * have both completed (both arrive on the one completion-queue thread). */
static void
call_release (struct rpc_call *c)
{
  struct rpc_server *s = c->server;
  bool stream = c->stream, reserved = c->reserved;
  wait_end (c);
  call_free (c);
  pthread_mutex_lock (&s->lock);
  s->inflight--;
  if (stream)
    s->streams--;
  if (reserved)
    s->reserved--;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
}

static void
on_finished (struct rpc_call *c)
{
  c->finished = true;
  if (!c->close_armed || c->close_done)
    call_release (c);
}

/* The C core also ends a call whose deadline passes; the handler's own
 * deadline handles that (with DEADLINE_EXCEEDED and its own message), so
 * the flag means "gone before its deadline".  Our copy of the deadline may
 * differ from the core's timer by a few milliseconds. */
#define RPC_DEADLINE_SLACK_NS (200 * ATE_NSEC_PER_MSEC)

static void
on_closed (struct rpc_call *c)
{
  c->close_done = true;
  if (c->cancelled
      && (c->deadline == ATE_DEADLINE_NONE || ate_now_ns () < c->deadline - RPC_DEADLINE_SLACK_NS))
    ate_cancel_raise (&c->cancel);
  if (c->finished)
    call_release (c);
}

static void
arm_call (struct rpc_server *s)
{
  struct rpc_call *c = xmalloc0 (sizeof (*c));
  grpc_call_error e;

  c->tag.kind = TAG_NEW_CALL;
  c->tag.call = c;
  c->server = s;
  c->status_details = grpc_empty_slice ();
  grpc_call_details_init (&c->details);
  grpc_metadata_array_init (&c->request_md);
  e = grpc_server_request_call (s->server, &c->call, &c->details, &c->request_md, s->cq, s->cq,
                                &c->tag);
  if (e != GRPC_CALL_OK)
    {
      ate_log (ATE_LOG_ERROR, "grpc_server_request_call failed", NULL);
      call_free (c);
    }
}

static int
prepare_socket_path (const char *path, struct ate_error **err)
{
  struct stat st;

  if (strlen (path) > 107)
    return ate_error_make (err, ENAMETOOLONG,
                           "socket path `%s` is %zu bytes; unix sockets allow 107", path,
                           strlen (path));
  if (lstat (path, &st) == 0)
    {
      if (S_ISDIR (st.st_mode))
        return ate_error_make (err, EISDIR, "socket path `%s` is a directory", path);
      if (unlink (path) < 0)
        return ate_error_make (err, errno, "remove stale socket `%s`", path);
    }
  else if (errno != ENOENT)
    return ate_error_make (err, errno, "stat `%s`", path);
  return 0;
}

int
rpc_server_start (const char *socket_path, const struct rpc_method *methods, size_t n_methods,
                  struct rpc_server **out, struct ate_error **err)
{
  struct rpc_server *s;
  grpc_arg args[2];
  grpc_channel_args chargs;
  grpc_server_credentials *creds;
  cleanup_free char *uri = NULL;
  int port;

  if (prepare_socket_path (socket_path, err) < 0)
    return -1;

  s = xmalloc0 (sizeof (*s));
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  s->methods = methods;
  s->n_methods = n_methods;
  s->socket_path = xstrdup (socket_path);
  s->shutdown_tag.kind = TAG_SHUTDOWN;

  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = (char *) GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = RPC_MAX_MESSAGE;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = (char *) GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = RPC_MAX_MESSAGE;
  chargs.num_args = 2;
  chargs.args = args;

  s->cq = grpc_completion_queue_create_for_next (NULL);
  s->server = grpc_server_create (&chargs, NULL);
  grpc_server_register_completion_queue (s->server, s->cq, NULL);
  uri = xasprintf ("unix:%s", socket_path);
  creds = grpc_insecure_server_credentials_create ();
  port = grpc_server_add_http2_port (s->server, uri, creds);
  grpc_server_credentials_release (creds);
  if (port == 0)
    {
      grpc_server_destroy (s->server);
      grpc_completion_queue_shutdown (s->cq);
      while (grpc_completion_queue_next (s->cq, gpr_inf_future (GPR_CLOCK_REALTIME), NULL).type
             != GRPC_QUEUE_SHUTDOWN)
        ;
      grpc_completion_queue_destroy (s->cq);
      free (s->socket_path);
      free (s);
      return ate_error_make (err, EADDRINUSE, "cannot listen on `%s`", uri);
    }
  grpc_server_start (s->server);
  /* The C core creates the socket with the process umask. */
  if (chmod (socket_path, 0600) < 0)
    ate_log (ATE_LOG_WARN, "chmod of the socket failed", "path", socket_path, "error",
             strerror (errno), NULL);
  for (int i = 0; i < RPC_ARMED_CALLS; i++)
    arm_call (s);
  *out = s;
  return 0;
}

void
rpc_server_shutdown (struct rpc_server *s, int64_t grace_ms)
{
  pthread_mutex_lock (&s->lock);
  if (s->shutting_down)
    {
      pthread_mutex_unlock (&s->lock);
      return;
    }
  s->shutting_down = true;
  s->cancel_at_ns = ate_now_ns () + grace_ms * ATE_NSEC_PER_MSEC;
  pthread_mutex_unlock (&s->lock);
  grpc_server_shutdown_and_notify (s->server, s->cq, &s->shutdown_tag);
}

void
rpc_server_run (struct rpc_server *s)
{
  bool cancelled = false;

  for (;;)
    {
      gpr_timespec tick = gpr_time_add (gpr_now (GPR_CLOCK_MONOTONIC),
                                        gpr_time_from_millis (200, GPR_TIMESPAN));
      grpc_event ev = grpc_completion_queue_next (s->cq, tick, NULL);

      cancel_stalled_calls (s);
      if (ev.type == GRPC_QUEUE_TIMEOUT)
        {
          pthread_mutex_lock (&s->lock);
          bool due = s->shutting_down && !cancelled && ate_now_ns () >= s->cancel_at_ns;
          bool give_up = s->shutting_down && cancelled
                         && ate_now_ns () >= s->cancel_at_ns + RPC_CANCEL_WAIT_S * ATE_NSEC_PER_SEC;
          size_t inflight = s->inflight;
          pthread_mutex_unlock (&s->lock);
          if (give_up)
            {
              /* A handler is stuck past its cancellation: do not wait
               * forever for it; the process is exiting anyway. */
              ate_log (ATE_LOG_ERROR, "handlers did not return after cancellation; exiting without draining", NULL);
              s->abandoned = true;
              return;
            }
          if (due)
            {
              cancelled = true;
              if (inflight)
                ate_log (ATE_LOG_WARN, "shutdown grace expired: cancelling calls in flight", NULL);
              grpc_server_cancel_all_calls (s->server);
            }
          continue;
        }
      if (ev.type != GRPC_OP_COMPLETE)
        break;
      if (ev.tag == &s->shutdown_tag)
        break;
      struct rpc_tag *tag = ev.tag;
      struct rpc_call *c = tag->call;
      switch (tag->kind)
        {
        case TAG_NEW_CALL:
          on_new_call (c, ev.success);
          break;
        case TAG_RECEIVED:
          on_received (c, ev.success);
          break;
        case TAG_FINISHED:
          on_finished (c);
          break;
        case TAG_CLOSED:
          on_closed (c);
          break;
        case TAG_SHUTDOWN:
          break;
        }
    }

  /* All calls are done; wait for handler threads that are still returning. */
  pthread_mutex_lock (&s->lock);
  while (s->workers > 0)
    pthread_cond_wait (&s->cond, &s->lock);
  pthread_mutex_unlock (&s->lock);

  grpc_completion_queue_shutdown (s->cq);
  for (;;)
    {
      grpc_event ev = grpc_completion_queue_next (s->cq, gpr_inf_future (GPR_CLOCK_REALTIME), NULL);
      if (ev.type == GRPC_QUEUE_SHUTDOWN)
        break;
      if (ev.type == GRPC_OP_COMPLETE && ev.tag != &s->shutdown_tag)
        {
          struct rpc_tag *tag = ev.tag;
          if (tag->kind == TAG_FINISHED)
            on_finished (tag->call);
          else if (tag->kind == TAG_CLOSED)
            on_closed (tag->call);
          else
            call_free (tag->call);
        }
    }
}

bool
rpc_server_abandoned (const struct rpc_server *s)
{
  return s->abandoned;
}

void
rpc_server_free (struct rpc_server *s)
{
  if (s == NULL || s->abandoned)
    return;
  grpc_server_destroy (s->server);
  grpc_completion_queue_destroy (s->cq);
  unlink (s->socket_path);
  free (s->socket_path);
  pthread_mutex_destroy (&s->lock);
  pthread_cond_destroy (&s->cond);
  free (s);
}
