/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host-to-guest connections through cloud-hypervisor's hybrid vsock: the
 * VMM exposes the guest's vsock as a unix socket; a client connects, writes
 * "CONNECT <port>\n" and gets "OK <host port>\n" once a guest listener
 * accepted, after which the socket is a byte pipe to that listener.  When
 * nothing listens on the port yet the VMM closes the connection (EOF).
 */
#ifndef KATA_VSOCK_H
#define KATA_VSOCK_H

#include <stdint.h>

#include "util/time.h"

struct ate_error;

#define KATA_AGENT_VSOCK_PORT 1024
#define KATA_DEBUG_CONSOLE_VSOCK_PORT 1026
/* Per-attempt handshake limit (kata's own dialer uses the same). */
#define KATA_VSOCK_HANDSHAKE_MS 10000

/* One attempt: connect, CONNECT, read the reply byte by byte (nothing
 * after the '\n' is consumed).  The handshake ends at the earlier of
 * deadline and now + 10 s.  On success *fd is a blocking socket. */
int kata_vsock_connect (const char *path, uint32_t port, ate_deadline_t deadline,
                        int *fd, struct ate_error **err);

/* Attempts of at most attempt_ms each, pause_ms apart, until
 * overall_deadline; the guest's listener appears only when it has booted
 * far enough.  The error names the number of attempts and the last cause. */
int kata_vsock_dial_retry (const char *path, uint32_t port,
                           ate_deadline_t overall_deadline, int64_t attempt_ms,
                           int64_t pause_ms, int *fd, struct ate_error **err);

#endif
