/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Structured JSON line logging on one file descriptor (stdout by default).
 *
 * Every line is written with a single write under one process-wide mutex,
 * and the actor-log forwarder writes its lines through ate_log_write_line()
 * under the same mutex, so runtime lines and actor lines never interleave.
 *
 * Record shape (Go log/slog's JSON handler):
 *   {"time":"2026-11-27T00:00:00.000Z","level":"INFO","msg":"...",<attrs>}
 */
#ifndef ATE_LOG_H
#define ATE_LOG_H

#include <stddef.h>

struct json_object;

enum ate_log_level
{
  ATE_LOG_DEBUG = -4,
  ATE_LOG_INFO = 0,
  ATE_LOG_WARN = 4,
  ATE_LOG_ERROR = 8,
};

/* Redirect output (default: fd 1) and set the minimum level. */
void ate_log_set_fd (int fd);
void ate_log_set_level (enum ate_log_level level);
enum ate_log_level ate_log_get_level (void);

/* Parse "debug", "info", "warn", "error"; returns -1 on anything else. */
int ate_log_parse_level (const char *s, enum ate_log_level *out);

/* msg followed by NULL-terminated (const char *key, const char *value)
 * pairs; a NULL value is skipped. */
void ate_log (enum ate_log_level level, const char *msg, ...)
    __attribute__ ((sentinel));

/* printf-style message, no attributes. */
void ate_logf (enum ate_log_level level, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Attributes from a json-c object (merged after time/level/msg).  Takes
 * ownership of attrs (may be NULL). */
void ate_log_obj (enum ate_log_level level, const char *msg,
                  struct json_object *attrs);

/* Write one already-formatted line; a '\n' is appended.  Thread-safe and
 * never interleaves with other log output.  Write errors are ignored. */
void ate_log_write_line (const char *line, size_t len);

#endif
