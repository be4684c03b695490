/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "logpump.h"

#include <pthread.h>
#include <stdlib.h>

#include "agent.h"
#include "util/error.h"
#include "util/lines.h"
#include "util/log.h"
#include "util/util.h"

struct kata_log_pump
{
  struct kata_agent *agent;
  char *container_id, *exec_id;
  enum kata_stream stream;
  /* Owned copies behind labels' pointers. */
  char *key, *actor_id, *template_name, *template_namespace, *container_name;
  struct actorlog_labels labels;
  pthread_t thread;
};

static void
emit_line (void *ctx, const char *line, size_t len)
{
  struct kata_log_pump *p = ctx;
  actorlog_write_line (&p->labels, line, len);
}

static void *
pump_main (void *arg)
{
  struct kata_log_pump *p = arg;
  struct ate_line_splitter s;

  ate_line_splitter_init (&s, ACTORLOG_MAX_LINE, emit_line, p);
  for (;;)
    {
      struct ate_error *err = NULL;
      uint8_t *buf = NULL;
      size_t n = 0;
      int r = p->stream == KATA_STREAM_STDOUT
                  ? kata_agent_read_stdout (p->agent, p->container_id, p->exec_id,
                                            KATA_LOG_READ_SIZE, &buf, &n, ATE_DEADLINE_NONE,
                                            &err)
                  : kata_agent_read_stderr (p->agent, p->container_id, p->exec_id,
                                            KATA_LOG_READ_SIZE, &buf, &n, ATE_DEADLINE_NONE,
                                            &err);
      if (r < 0)
        {
          /* Container gone or connection closed: the stream is over. */
          ate_log (ATE_LOG_DEBUG, "actor log stream ended", "container", p->container_id,
                   "stream", p->stream == KATA_STREAM_STDOUT ? "stdout" : "stderr", "reason",
                   err->msg, NULL);
          ate_error_free (err);
          break;
        }
      if (n == 0)
        break;
      ate_line_splitter_feed (&s, (const char *) buf, n);
      free (buf);
    }
  ate_line_splitter_finish (&s);
  return NULL;
}

static void
pump_free (struct kata_log_pump *p)
{
  free (p->container_id);
  free (p->exec_id);
  free (p->key);
  free (p->actor_id);
  free (p->template_name);
  free (p->template_namespace);
  free (p->container_name);
  free (p);
}

static char *
dup_or_null (const char *s)
{
  return s ? xstrdup (s) : NULL;
}

int
kata_log_pump_start (struct kata_agent *agent, const char *container_id, const char *exec_id,
                     enum kata_stream stream, const struct actorlog_labels *labels,
                     struct kata_log_pump **out, struct ate_error **err)
{
  struct kata_log_pump *p = xmalloc0 (sizeof (*p));
  int r;

  p->agent = agent;
  p->container_id = xstrdup (container_id);
  p->exec_id = xstrdup (exec_id);
  p->stream = stream;
  p->key = dup_or_null (labels->key);
  p->actor_id = dup_or_null (labels->actor_id);
  p->template_name = dup_or_null (labels->template_name);
  p->template_namespace = dup_or_null (labels->template_namespace);
  p->container_name = dup_or_null (labels->container_name);
  p->labels = (struct actorlog_labels) {
    .key = p->key,
    .actor_id = p->actor_id,
    .template_name = p->template_name,
    .template_namespace = p->template_namespace,
    .container_name = p->container_name,
  };
  r = pthread_create (&p->thread, NULL, pump_main, p);
  if (r != 0)
    {
      pump_free (p);
      return ate_error_make (err, r, "start the %s log pump of %s",
                             stream == KATA_STREAM_STDOUT ? "stdout" : "stderr", container_id);
    }
  *out = p;
  return 0;
}

void
kata_log_pump_stop_join (struct kata_log_pump *p)
{
  if (p == NULL)
    return;
  pthread_join (p->thread, NULL);
  pump_free (p);
}
