/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal HTTP/1.1 GET over TCP with an absolute deadline, for the two
 * probes the server makes (container readiness, the GCE metadata server).
 * Plain http:// only; the response body is not read.  The Host header
 * carries the port when it is not 80, as Go's client sends it (servers
 * build absolute redirects from it).
 */
#ifndef ATE_HTTP_H
#define ATE_HTTP_H

#include "util/time.h"

struct ate_error;

#define ATE_HTTP_MAX_HEAD (16 * 1024)

/* GET url ("http://<ipv4 or name>[:port][/path]") until deadline.  On
 * success *status is the HTTP status code and, when header is non-NULL,
 * *value the trimmed value of that response header (NULL if absent; free
 * it).  Transport failures (refused, reset, timeout, malformed response)
 * are errors. */
int ate_http_get (const char *url, ate_deadline_t deadline, long *status, const char *header,
                  char **value, struct ate_error **err);

/* Requests one probe makes at most: Go's stock client stops after 10
 * (the first and 9 redirects); the 10th redirect is an error. */
#define ATE_HTTP_MAX_REQUESTS 10

/* GET url and follow redirects as Go's stock http.Client does for a GET:
 * 301, 302, 303, 307 and 308 with a Location (absolute, scheme-relative or
 * relative, resolved per RFC 3986), at most ATE_HTTP_MAX_REQUESTS requests, all before deadline.  A 3xx
 * without a Location is the final answer.  Unlike Go, only redirects to
 * the same host (any port) are followed, over plain http; a redirect
 * elsewhere, a loop or too many redirects are errors.  *status is the
 * final response's status. */
int ate_http_get_follow (const char *url, ate_deadline_t deadline, long *status,
                         struct ate_error **err);

#endif
