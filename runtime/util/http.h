/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal HTTP/1.1 GET over TCP with an absolute deadline, for the two
 * probes the server makes (container readiness, the GCE metadata server).
 * Plain http:// only; the response body is not read.
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

#endif
