/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

int
ate_error_vmake (struct ate_error **err, enum ate_code code, int errno_,
                 const char *fmt, va_list ap)
{
  struct ate_error *e;
  char *msg = NULL;

  if (vasprintf (&msg, fmt, ap) < 0)
    ate_oom ();
  if (errno_ != 0)
    {
      char *full = xasprintf ("%s: %s", msg, strerror (errno_));
      free (msg);
      msg = full;
    }

  e = xmalloc0 (sizeof (*e));
  e->status = errno_;
  e->code = code;
  e->msg = msg;

  /* An error already pending is kept first and nothing is lost; nobody
   * wanting the error (err NULL) does not leak it. */
  ate_error_collect (err, &e, NULL);
  return -1;
}

int
ate_error_make (struct ate_error **err, int errno_, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  ate_error_vmake (err, ATE_CODE_UNSET, errno_, fmt, ap);
  va_end (ap);
  return -1;
}

int
ate_error_make_code (struct ate_error **err, enum ate_code code, int errno_,
                     const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  ate_error_vmake (err, code, errno_, fmt, ap);
  va_end (ap);
  return -1;
}

int
ate_error_wrap (struct ate_error **err, const char *fmt, ...)
{
  va_list ap;
  char *ctx = NULL;

  if (err == NULL)
    return -1;

  va_start (ap, fmt);
  if (vasprintf (&ctx, fmt, ap) < 0)
    ate_oom ();
  va_end (ap);

  if (*err == NULL)
    {
      *err = xmalloc0 (sizeof (**err));
      (*err)->code = ATE_CODE_UNSET;
      (*err)->msg = ctx;
      return -1;
    }

  char *joined = xasprintf ("%s: %s", ctx, (*err)->msg);
  free (ctx);
  free ((*err)->msg);
  (*err)->msg = joined;
  return -1;
}

void
ate_error_collect (struct ate_error **into, struct ate_error **from, const char *fmt, ...)
{
  if (*from == NULL)
    return;
  if (fmt != NULL)
    {
      va_list ap;
      char *ctx = NULL;

      va_start (ap, fmt);
      if (vasprintf (&ctx, fmt, ap) < 0)
        ate_oom ();
      va_end (ap);
      ate_error_wrap (from, "%s", ctx);
      free (ctx);
    }
  if (into == NULL)
    ate_error_release (from);
  else if (*into == NULL)
    *into = steal_pointer (from);
  else
    {
      char *joined = xasprintf ("%s; %s", (*into)->msg, (*from)->msg);
      free ((*into)->msg);
      (*into)->msg = joined;
      ate_error_release (from);
    }
}

void
ate_error_set_code (struct ate_error *err, enum ate_code code)
{
  if (err)
    err->code = code;
}

enum ate_code
ate_error_code (const struct ate_error *err)
{
  if (err == NULL)
    return ATE_CODE_OK;
  if (err->code != ATE_CODE_UNSET)
    return err->code;
  if (err->status == ETIMEDOUT)
    return ATE_CODE_DEADLINE_EXCEEDED;
  return ATE_CODE_INTERNAL;
}

const char *
ate_code_name (enum ate_code code)
{
  static const char *const names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
  };
  if (code < 0 || (size_t) code >= ATE_N_ELEMENTS (names))
    return "UNKNOWN";
  return names[code];
}

void
ate_error_free (struct ate_error *err)
{
  if (err == NULL)
    return;
  free (err->msg);
  free (err);
}

void
ate_error_release (struct ate_error **err)
{
  if (err && *err)
    {
      ate_error_free (*err);
      *err = NULL;
    }
}

void
ate_error_log_warning_and_release (struct ate_error **err, const char *what)
{
  if (err == NULL || *err == NULL)
    return;
  ate_log (ATE_LOG_WARN, what, "error", (*err)->msg, NULL);
  ate_error_release (err);
}
