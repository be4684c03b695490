/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unary gRPC server over the gRPC C core (no C++).
 *
 * One completion-queue thread accepts calls: request-calls are re-armed as
 * soon as one completes, so concurrency is not capped by them; every unary
 * call for a known method runs its handler on its own thread (a stream's
 * short handler runs on the completion-queue thread, once per message);
 * any other method is answered UNIMPLEMENTED at once (the C core alone would leave it hanging
 * until the client's deadline).
 */
#ifndef ATE_SERVER_RPC_H
#define ATE_SERVER_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/cancel.h"
#include "util/time.h"

struct ate_error;
struct rpc_server;

/* A handler decodes req, does the work before deadline, and either sets
 * *resp (malloc'd, may be empty) or returns < 0 with *err whose code and
 * message become the call's status.  cancel is raised as soon as the call
 * ends without us (the client cancelled or went away, its deadline passed,
 * or shutdown cancelled it); the handler stops at its next safe point. */
typedef int (*rpc_handler) (void *ctx, const uint8_t *req, size_t req_len,
                            ate_deadline_t deadline, const struct ate_cancel *cancel,
                            uint8_t **resp, size_t *resp_len, struct ate_error **err);

struct rpc_method
{
  const char *path; /* "/ateom.Ateom/RunWorkload" */
  rpc_handler handler;
  void *ctx;
  /* A bidirectional stream in which every request message gets one
   * response message from handler, called on the completion-queue thread
   * (it must answer at once, without blocking).  The stream ends OK when
   * the client closes its side, or with the status of a failing call. */
  bool stream;
  /* Calls of this method (health checks) have their own RPC_MAX_RESERVED
   * slots, so calls in flight for the others cannot lock them out. */
  bool reserved;
};

#define RPC_MAX_MESSAGE (4 * 1024 * 1024)
#define RPC_MAX_INFLIGHT 256
/* Open streams at a time (they are not counted in RPC_MAX_INFLIGHT, so
 * idle streams cannot lock the workload RPCs out). */
#define RPC_MAX_STREAMS 8
/* Slots of the reserved methods (health), beside RPC_MAX_INFLIGHT. */
#define RPC_MAX_RESERVED 32
/* A unary call whose request message has not fully arrived this long
 * after its headers is cancelled (a client that opens streams and never
 * finishes them must not hold the slots); a stream idle this long between
 * messages too. */
#define RPC_RECV_TIMEOUT_MS 10000
#define RPC_STREAM_IDLE_MS 60000
/* After the grace, cancelled handlers get this long to return before the
 * server exits without draining them. */
#define RPC_CANCEL_WAIT_S 10

/* Bind "unix:<socket_path>" (a stale socket file is replaced) and start.
 * The socket is made mode 0600. */
int rpc_server_start (const char *socket_path, const struct rpc_method *methods,
                      size_t n_methods, struct rpc_server **out, struct ate_error **err);

/* Serve until a shutdown requested with rpc_server_shutdown() completes. */
void rpc_server_run (struct rpc_server *s);

/* Stop accepting; in-flight calls may finish until grace_ms, then they are
 * cancelled.  Thread-safe; may be called more than once. */
void rpc_server_shutdown (struct rpc_server *s, int64_t grace_ms);

/* True when rpc_server_run gave up waiting for stuck handlers (the
 * server must then not be freed; the process should just exit). */
bool rpc_server_abandoned (const struct rpc_server *s);

/* Destroy (after rpc_server_run returned). */
void rpc_server_free (struct rpc_server *s);

#endif
