/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "time.h"
#include "util.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = STDOUT_FILENO;
static enum ate_log_level log_level = ATE_LOG_INFO;

void
ate_log_set_fd (int fd)
{
  pthread_mutex_lock (&log_lock);
  log_fd = fd;
  pthread_mutex_unlock (&log_lock);
}

void
ate_log_set_level (enum ate_log_level level)
{
  __atomic_store_n (&log_level, level, __ATOMIC_RELAXED);
}

enum ate_log_level
ate_log_get_level (void)
{
  return __atomic_load_n (&log_level, __ATOMIC_RELAXED);
}

int
ate_log_parse_level (const char *s, enum ate_log_level *out)
{
  static const struct
  {
    const char *name;
    enum ate_log_level level;
  } levels[] = {
    { "debug", ATE_LOG_DEBUG },
    { "info", ATE_LOG_INFO },
    { "warn", ATE_LOG_WARN },
    { "error", ATE_LOG_ERROR },
  };
  for (size_t i = 0; i < ATE_N_ELEMENTS (levels); i++)
    if (strcasecmp (s, levels[i].name) == 0)
      {
        *out = levels[i].level;
        return 0;
      }
  return -1;
}

static const char *
level_name (enum ate_log_level level)
{
  if (level >= ATE_LOG_ERROR)
    return "ERROR";
  if (level >= ATE_LOG_WARN)
    return "WARN";
  if (level >= ATE_LOG_INFO)
    return "INFO";
  return "DEBUG";
}

static void
write_all_locked (const char *line, size_t len)
{
  struct iovec iov[2] = {
    { .iov_base = (void *) line, .iov_len = len },
    { .iov_base = (void *) "\n", .iov_len = 1 },
  };
  int n = 2;
  struct iovec *v = iov;

  while (n > 0)
    {
      ssize_t w = writev (log_fd, v, n);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          return;
        }
      while (n > 0 && (size_t) w >= v->iov_len)
        {
          w -= (ssize_t) v->iov_len;
          v++;
          n--;
        }
      if (n > 0)
        {
          v->iov_base = (char *) v->iov_base + w;
          v->iov_len -= (size_t) w;
        }
    }
}

void
ate_log_write_line (const char *line, size_t len)
{
  pthread_mutex_lock (&log_lock);
  write_all_locked (line, len);
  pthread_mutex_unlock (&log_lock);
}

static struct json_object *
record_new (enum ate_log_level level, const char *msg)
{
  char ts[ATE_TIME_BUF];
  struct json_object *rec = json_object_new_object ();

  ate_time_rfc3339millis (ate_wall_ns (), ts);
  json_object_object_add (rec, "time", json_object_new_string (ts));
  json_object_object_add (rec, "level", json_object_new_string (level_name (level)));
  json_object_object_add (rec, "msg", json_object_new_string (msg ? msg : ""));
  return rec;
}

static void
record_emit (struct json_object *rec)
{
  size_t len;
  const char *s = json_object_to_json_string_length (
      rec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  ate_log_write_line (s, len);
  json_object_put (rec);
}

void
ate_log (enum ate_log_level level, const char *msg, ...)
{
  va_list ap;
  struct json_object *rec;
  const char *k;

  if (level < ate_log_get_level ())
    return;
  rec = record_new (level, msg);
  va_start (ap, msg);
  while ((k = va_arg (ap, const char *)) != NULL)
    {
      const char *v = va_arg (ap, const char *);
      if (v != NULL)
        json_object_object_add (rec, k, json_object_new_string (v));
    }
  va_end (ap);
  record_emit (rec);
}

void
ate_logf (enum ate_log_level level, const char *fmt, ...)
{
  va_list ap;
  char *msg = NULL;

  if (level < ate_log_get_level ())
    return;
  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    ate_oom ();
  va_end (ap);
  record_emit (record_new (level, msg));
  free (msg);
}

void
ate_log_obj (enum ate_log_level level, const char *msg, struct json_object *attrs)
{
  struct json_object *rec;

  if (level < ate_log_get_level ())
    {
      json_object_put (attrs);
      return;
    }
  rec = record_new (level, msg);
  if (attrs != NULL)
    {
      json_object_object_foreach (attrs, key, val)
      {
        json_object_object_add (rec, key, json_object_get (val));
      }
      json_object_put (attrs);
    }
  record_emit (rec);
}
