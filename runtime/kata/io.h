/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Socket I/O with absolute deadlines, shared by the hybrid-vsock dialer, the
 * ttrpc client and the simulated agent's ttrpc server.  Sends never raise
 * SIGPIPE (MSG_NOSIGNAL).
 */
#ifndef KATA_IO_H
#define KATA_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "util/time.h"

struct ate_error;

/* Read exactly len bytes.  A clean end of stream before the first byte
 * fails with ECONNRESET and *eof = true (when eof is non-NULL); in the
 * middle of the buffer it is a "truncated" ECONNRESET error with *eof =
 * false.  ETIMEDOUT when the deadline passes. */
int kata_io_read_full (int fd, void *buf, size_t len, ate_deadline_t deadline,
                       bool *eof, struct ate_error **err);

/* Read and drop len bytes (a frame body we refuse to hold in memory). */
int kata_io_discard (int fd, size_t len, ate_deadline_t deadline,
                     struct ate_error **err);

/* Write all of iov (socket fds only).  ETIMEDOUT when the deadline passes
 * with part of the data unsent: the stream is then unusable. */
struct iovec;
int kata_io_writev_full (int fd, const struct iovec *iov, int iovcnt,
                         ate_deadline_t deadline, struct ate_error **err);

int kata_io_write_full (int fd, const void *buf, size_t len,
                        ate_deadline_t deadline, struct ate_error **err);

/* Wait for POLLIN (or POLLOUT) until the deadline: 1 ready, 0 timeout. */
int kata_io_wait (int fd, short events, ate_deadline_t deadline,
                  struct ate_error **err);

#endif
