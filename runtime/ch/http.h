/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small HTTP/1.1 client for cloud-hypervisor's API socket.
 *
 * CH's server (firecracker's micro_http) speaks a narrow HTTP/1.1: requests
 * with an exact Content-Length, responses with a Content-Length or no body
 * at all (204).  This module has three layers, each testable on its own:
 * a request formatter, an incremental response parser, and the transport
 * (a fresh unix connection per request, the request head and every fd sent
 * in one sendmsg with a single SCM_RIGHTS cmsg, as ch-remote does).
 */
#ifndef ATE_CH_HTTP_H
#define ATE_CH_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "util/time.h"

struct ate_error;

/* Limits on what the peer controls. */
#define CH_HTTP_MAX_HEAD 16384             /* status line + headers */
#define CH_HTTP_MAX_BODY (4u << 20)        /* micro_http/CH body limit */
#define CH_HTTP_MAX_HEADERS 64
#define CH_HTTP_MAX_FDS 253                /* SCM_MAX_FD */

struct ch_http_response
{
  int status;          /* 100..599 */
  char *reason;        /* may be empty */
  char *content_type;  /* NULL when absent */
  char *body;          /* NUL-terminated, NULL when there is none */
  size_t body_len;
};

void ch_http_response_clear (struct ch_http_response *r);

/* Format a request: "<METHOD> <path> HTTP/1.1", Host: localhost,
 * Accept: * / *, and for a body Content-Type: application/json and an exact
 * Content-Length (a PUT without body sends Content-Length: 0).  Returns the
 * head (without the body) in a new string; *head_len is its length. */
char *ch_http_format_head (const char *method, const char *path, size_t body_len,
                           bool has_body, size_t *head_len);

/* Parse a response from buf[0..len).  Returns 1 when a complete response was
 * parsed (*consumed bytes used; fills *out), 0 when more input is needed,
 * < 0 on malformed or oversize input.  `head_request` responses carry no
 * body.  Without Content-Length the response has no body (micro_http always
 * sends one when there is a body). */
int ch_http_parse_response (const char *buf, size_t len, struct ch_http_response *out,
                            size_t *consumed, struct ate_error **err);

/* Turn CH's error body (a JSON array of strings, outermost first) into one
 * line "a: b: c"; other bodies are trimmed and cut at 1 KiB.  New string. */
char *ch_http_error_chain (const char *body, size_t len);

/* Send one request on a fresh connection to the unix socket and read the
 * response.  fds (may be NULL/0) travel with the first byte of the request.
 * A non-2xx status is an error containing method, path, status and CH's
 * error chain; *resp is filled in either case when resp != NULL. */
int ch_http_request (const char *socket_path, const char *method, const char *path,
                     const char *body, const int *fds, size_t nfds,
                     ate_deadline_t deadline, struct ch_http_response *resp,
                     struct ate_error **err);

#endif
