/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A ttrpc client on one connected stream socket.
 *
 * Several unary calls may be in flight at once (the actor log pumps block
 * in ReadStdout/ReadStderr while other calls are made): one reader thread
 * demultiplexes responses by stream id, writers are serialised by a mutex,
 * each caller waits for its own response until its deadline.  Stream ids
 * are odd and increasing (1, 3, 5, ...).
 *
 * When the connection dies (EOF, read error, an oversized or malformed
 * frame) every waiting and every later call fails with an error naming the
 * cause.  ttrpc_client_close() does the same on purpose (teardown), and is
 * safe to call from any thread while calls are in flight.
 */
#ifndef KATA_TTRPC_CLIENT_H
#define KATA_TTRPC_CLIENT_H

#include <protobuf-c/protobuf-c.h>

#include "util/time.h"

struct ate_error;
struct ttrpc_client;

/* Takes ownership of fd (a connected SOCK_STREAM socket) and starts the
 * reader thread. */
int ttrpc_client_new (int fd, struct ttrpc_client **out, struct ate_error **err);

/* One unary call.  On success *resp is a message of resp_desc (free it with
 * protobuf_c_message_free_unpacked (*resp, NULL)); resp may be NULL when
 * the caller does not need the response.  The request carries the time left
 * until deadline as timeout_nano.  Errors: the agent's status (err->code =
 * its gRPC code), ETIMEDOUT at the deadline, ECONNRESET/EPIPE-style errors
 * naming why the connection is gone. */
int ttrpc_client_call (struct ttrpc_client *c, const char *service, const char *method,
                       const ProtobufCMessage *req,
                       const ProtobufCMessageDescriptor *resp_desc,
                       ProtobufCMessage **resp, ate_deadline_t deadline,
                       struct ate_error **err);

/* Fail every in-flight and later call and shut the socket down.
 * Idempotent.  Does not wait for the reader thread. */
void ttrpc_client_close (struct ttrpc_client *c);

/* Close, join the reader thread, close the fd, free.  NULL-safe.  No call
 * may be running (or start) when this is called. */
void ttrpc_client_free (struct ttrpc_client *c);

#endif
