/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One error idiom for the whole project (the crun contract):
 *
 *   int f (..., struct ate_error **err);
 *
 * returns >= 0 on success and leaves *err untouched; returns < 0 on failure
 * with *err set to a heap error that carries errno, an optional gRPC status
 * code and a message.  Callers add context with ate_error_wrap(), which
 * prefixes "<context>: " to the message.  The gRPC layer maps the final
 * error to a status and sends the message as the status message
 * (server/rpc.c; the codes are listed in docs/api.md).  Library code never
 * prints and continues.
 *
 * Steps that must all run even when one fails (teardown, cleanup, rollback)
 * keep every failure with ate_error_collect: each step reports into its own
 * error, which is then collected into the caller's.
 */
#ifndef ATE_ERROR_H
#define ATE_ERROR_H

#include <stdarg.h>

/* gRPC status codes (numbering of grpc/status.h, repeated here so that
 * runtime/ does not depend on the gRPC headers). */
enum ate_code
{
  ATE_CODE_UNSET = -1,
  ATE_CODE_OK = 0,
  ATE_CODE_CANCELLED = 1,
  ATE_CODE_UNKNOWN = 2,
  ATE_CODE_INVALID_ARGUMENT = 3,
  ATE_CODE_DEADLINE_EXCEEDED = 4,
  ATE_CODE_NOT_FOUND = 5,
  ATE_CODE_ALREADY_EXISTS = 6,
  ATE_CODE_PERMISSION_DENIED = 7,
  ATE_CODE_RESOURCE_EXHAUSTED = 8,
  ATE_CODE_FAILED_PRECONDITION = 9,
  ATE_CODE_ABORTED = 10,
  ATE_CODE_OUT_OF_RANGE = 11,
  ATE_CODE_UNIMPLEMENTED = 12,
  ATE_CODE_INTERNAL = 13,
  ATE_CODE_UNAVAILABLE = 14,
  ATE_CODE_DATA_LOSS = 15,
  ATE_CODE_UNAUTHENTICATED = 16,
};

struct ate_error
{
  int status;         /* errno of the root cause, 0 if none */
  enum ate_code code; /* status to report, ATE_CODE_UNSET = derive (INTERNAL) */
  char *msg;          /* full chain, outermost context first */
};

/* Set *err (which must be NULL) and return a negative value.  If errno_ is
 * non-zero, ": <strerror>" is appended to the message. */
int ate_error_make (struct ate_error **err, int errno_, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Same with an explicit gRPC status code. */
int ate_error_make_code (struct ate_error **err, enum ate_code code, int errno_,
                         const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

int ate_error_vmake (struct ate_error **err, enum ate_code code, int errno_,
                     const char *fmt, va_list ap)
    __attribute__ ((format (printf, 4, 0)));

/* Prefix context: "<fmt>: <old message>".  Returns a negative value so it can
 * be used as `return ate_error_wrap (err, "while x");`.  Safe when *err is
 * NULL (then it creates a context-only error). */
int ate_error_wrap (struct ate_error **err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Move *from (when set) into *into, the one way to keep several failures.
 * fmt, when not NULL, first prefixes context to *from as ate_error_wrap
 * does.  When *into is empty *from becomes it; otherwise its message is
 * appended to *into's after "; " and *into keeps its code and errno (the
 * first failure decides the status).  into may be NULL: *from is then
 * dropped.  *from is NULL afterwards. */
void ate_error_collect (struct ate_error **into, struct ate_error **from, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Replace the status code (keeps the message). */
void ate_error_set_code (struct ate_error *err, enum ate_code code);

/* The status to report: code if set, else DEADLINE_EXCEEDED for ETIMEDOUT,
 * else INTERNAL. */
enum ate_code ate_error_code (const struct ate_error *err);

const char *ate_code_name (enum ate_code code);

void ate_error_free (struct ate_error *err);

/* Free *err and set it to NULL. */
void ate_error_release (struct ate_error **err);

/* Move the message of *err into the log as a warning and release it. */
void ate_error_log_warning_and_release (struct ate_error **err, const char *what);

static inline void
cleanup_error_fn (struct ate_error **e)
{
  ate_error_release (e);
}
#define cleanup_error __attribute__ ((cleanup (cleanup_error_fn)))

#endif
