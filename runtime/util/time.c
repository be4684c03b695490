/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "time.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t
clock_ns (clockid_t id)
{
  struct timespec ts;
  clock_gettime (id, &ts);
  return (int64_t) ts.tv_sec * ATE_NSEC_PER_SEC + ts.tv_nsec;
}

int64_t
ate_now_ns (void)
{
  return clock_ns (CLOCK_MONOTONIC);
}

int64_t
ate_wall_ns (void)
{
  return clock_ns (CLOCK_REALTIME);
}

ate_deadline_t
ate_deadline_in_ms (int64_t ms)
{
  int64_t now = ate_now_ns ();
  if (ms < 0)
    ms = 0;
  if (ms > (INT64_MAX - now) / ATE_NSEC_PER_MSEC)
    return ATE_DEADLINE_NONE;
  return now + ms * ATE_NSEC_PER_MSEC;
}

ate_deadline_t
ate_deadline_min (ate_deadline_t a, ate_deadline_t b)
{
  return a < b ? a : b;
}

bool
ate_deadline_expired (ate_deadline_t d)
{
  return d != ATE_DEADLINE_NONE && ate_now_ns () >= d;
}

int64_t
ate_deadline_remaining_ns (ate_deadline_t d)
{
  if (d == ATE_DEADLINE_NONE)
    return INT64_MAX;
  int64_t r = d - ate_now_ns ();
  return r > 0 ? r : 0;
}

int
ate_deadline_poll_ms (ate_deadline_t d)
{
  if (d == ATE_DEADLINE_NONE)
    return -1;
  int64_t r = ate_deadline_remaining_ns (d);
  if (r <= 0)
    return 0;
  int64_t ms = (r + ATE_NSEC_PER_MSEC - 1) / ATE_NSEC_PER_MSEC;
  return ms > INT32_MAX ? INT32_MAX : (int) ms;
}

bool
ate_sleep_ms_until (int64_t ms, ate_deadline_t d)
{
  ate_deadline_t until = ate_deadline_min (ate_deadline_in_ms (ms), d);
  struct timespec ts;
  int r;

  if (until == ATE_DEADLINE_NONE)
    return true;
  ts.tv_sec = until / ATE_NSEC_PER_SEC;
  ts.tv_nsec = until % ATE_NSEC_PER_SEC;
  do
    r = clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
  while (r == EINTR);
  return !ate_deadline_expired (d);
}

static void
format_time (int64_t wall_ns, char *buf, int digits, int trim)
{
  time_t sec = (time_t) (wall_ns / ATE_NSEC_PER_SEC);
  long nsec = (long) (wall_ns % ATE_NSEC_PER_SEC);
  struct tm tm;
  char frac[32] = "";
  char zone[40];
  size_t n;

  localtime_r (&sec, &tm);
  n = strftime (buf, ATE_TIME_BUF, "%Y-%m-%dT%H:%M:%S", &tm);

  if (digits > 0)
    {
      char nine[24];
      snprintf (nine, sizeof (nine), "%09ld", nsec % 1000000000L);
      frac[0] = '.';
      memcpy (frac + 1, nine, (size_t) digits);
      frac[digits + 1] = '\0';
      if (trim)
        {
          size_t l = strlen (frac);
          while (l > 1 && frac[l - 1] == '0')
            frac[--l] = '\0';
          if (l == 1)
            frac[0] = '\0';
        }
    }

  if (tm.tm_gmtoff == 0)
    strcpy (zone, "Z");
  else
    {
      long off = tm.tm_gmtoff;
      char sign = off < 0 ? '-' : '+';
      if (off < 0)
        off = -off;
      snprintf (zone, sizeof (zone), "%c%02ld:%02ld", sign, off / 3600,
                (off % 3600) / 60);
    }
  snprintf (buf + n, ATE_TIME_BUF - n, "%s%s", frac, zone);
}

void
ate_time_rfc3339nano (int64_t wall_ns, char *buf)
{
  format_time (wall_ns, buf, 9, 1);
}

void
ate_time_rfc3339millis (int64_t wall_ns, char *buf)
{
  format_time (wall_ns, buf, 3, 0);
}

double
ate_elapsed_ms (int64_t start_ns)
{
  return (double) (ate_now_ns () - start_ns) / 1e6;
}
