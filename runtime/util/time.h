/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deadlines are absolute CLOCK_MONOTONIC times in nanoseconds, passed down
 * the call chain.  ATE_DEADLINE_NONE means "no deadline".
 */
#ifndef ATE_TIME_H
#define ATE_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int64_t ate_deadline_t;

#define ATE_DEADLINE_NONE INT64_MAX
#define ATE_NSEC_PER_MSEC 1000000LL
#define ATE_NSEC_PER_SEC 1000000000LL

int64_t ate_now_ns (void); /* CLOCK_MONOTONIC */
int64_t ate_wall_ns (void); /* CLOCK_REALTIME */

/* now + ms, saturating. */
ate_deadline_t ate_deadline_in_ms (int64_t ms);
ate_deadline_t ate_deadline_min (ate_deadline_t a, ate_deadline_t b);
bool ate_deadline_expired (ate_deadline_t d);

/* Remaining time for poll(2): -1 for no deadline, 0 when expired, else the
 * remaining milliseconds rounded up and clamped to INT32_MAX. */
int ate_deadline_poll_ms (ate_deadline_t d);

/* Remaining nanoseconds (0 when expired, INT64_MAX when none). */
int64_t ate_deadline_remaining_ns (ate_deadline_t d);

/* Sleep until min(now + ms, deadline).  Returns false if the deadline was
 * reached. */
bool ate_sleep_ms_until (int64_t ms, ate_deadline_t d);

/* Wall-clock timestamps in Go's formats, local time zone ("Z" for UTC).
 * rfc3339nano trims trailing fractional zeros (time.RFC3339Nano);
 * rfc3339millis always prints three digits (log/slog's JSON handler).
 * buf must hold ATE_TIME_BUF bytes. */
#define ATE_TIME_BUF 48
void ate_time_rfc3339nano (int64_t wall_ns, char *buf);
void ate_time_rfc3339millis (int64_t wall_ns, char *buf);

/* Elapsed milliseconds since a monotonic start, as double. */
double ate_elapsed_ms (int64_t start_ns);

#endif
