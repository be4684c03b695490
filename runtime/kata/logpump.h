/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log pumps (docs/logging.md, "Actor lines"): one thread per container
 * stream issues
 * ReadStdout/ReadStderr calls (4096 bytes, no deadline) on the actor's
 * agent connection and forwards every line as labelled JSON.  A pump ends
 * at the end of the stream (empty data) or at any error, in particular when
 * the agent connection is closed at teardown.
 */
#ifndef KATA_LOGPUMP_H
#define KATA_LOGPUMP_H

#include "actorlog.h"

struct ate_error;
struct kata_agent;
struct kata_log_pump;

enum kata_stream
{
  KATA_STREAM_STDOUT,
  KATA_STREAM_STDERR,
};

#define KATA_LOG_READ_SIZE 4096

/* Start a pump.  The labels are copied. */
int kata_log_pump_start (struct kata_agent *agent, const char *container_id,
                         const char *exec_id, enum kata_stream stream,
                         const struct actorlog_labels *labels, struct kata_log_pump **out,
                         struct ate_error **err);

/* Wait for the pump to end and free it (NULL-safe).  Close the agent
 * connection first (kata_agent_close): that is what ends a pump whose
 * container is still running. */
void kata_log_pump_stop_join (struct kata_log_pump *pump);

#endif
