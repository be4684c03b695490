/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "actorlog.h"

#include <stdlib.h>
#include <string.h>

#include "util/gojson.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/time.h"
#include "util/util.h"

static struct ate_gojson *
labels_object (const struct actorlog_labels *l)
{
  struct ate_gojson *o = ate_gojson_new (ATE_GOJSON_OBJECT);
  ate_gojson_put_str (o, "ate.dev/actor_id", l->actor_id ? l->actor_id : "");
  ate_gojson_put_str (o, "ate.dev/actor_template_name",
                      l->template_name ? l->template_name : "");
  ate_gojson_put_str (o, "ate.dev/actor_template_namespace",
                      l->template_namespace ? l->template_namespace : "");
  if (l->container_name)
    ate_gojson_put_str (o, "ate.dev/container_name", l->container_name);
  return o;
}

static char *
finish (struct ate_gojson *root, size_t *out_len)
{
  struct ate_strbuf b = { 0 };
  ate_gojson_encode (&b, root);
  ate_gojson_free (root);
  *out_len = b.n;
  return b.d;
}

static struct ate_gojson *
envelope (const struct actorlog_labels *labels, const char *msg, size_t len, int64_t wall_ns)
{
  struct ate_gojson *env = ate_gojson_new (ATE_GOJSON_OBJECT);
  char ts[ATE_TIME_BUF];
  const char *key = labels->key ? labels->key : ACTORLOG_LABELS_KEY;

  ate_time_rfc3339nano (wall_ns, ts);
  ate_gojson_put (env, xstrdup (key), strlen (key), labels_object (labels));
  ate_gojson_put (env, xstrdup ("message"), 7, ate_gojson_new_string (msg, len));
  ate_gojson_put_str (env, "time", ts);
  return env;
}

char *
actorlog_format_event (const struct actorlog_labels *labels, const char *message,
                       int64_t wall_ns, size_t *out_len)
{
  struct actorlog_labels l = *labels;
  l.container_name = NULL;
  return finish (envelope (&l, message, strlen (message), wall_ns), out_len);
}

char *
actorlog_format_line (const struct actorlog_labels *labels, const char *line, size_t len,
                      int64_t wall_ns, size_t *out_len)
{
  struct ate_gojson *obj = ate_gojson_parse_object (line, len, ACTORLOG_MAX_DEPTH);
  const char *key = labels->key ? labels->key : ACTORLOG_LABELS_KEY;
  struct ate_gojson *current;

  if (obj == NULL)
    return finish (envelope (labels, line, len, wall_ns), out_len);
  if (ate_gojson_get (obj, "time") == NULL)
    {
      char ts[ATE_TIME_BUF];
      ate_time_rfc3339nano (wall_ns, ts);
      ate_gojson_put_str (obj, "time", ts);
    }
  current = ate_gojson_get (obj, key);
  if (current != NULL && current->type == ATE_GOJSON_OBJECT)
    {
      /* Merge: ours are appended and therefore win over the user's. */
      ate_gojson_object_merge (current, labels_object (labels));
    }
  else
    ate_gojson_put (obj, xstrdup (key), strlen (key), labels_object (labels));
  return finish (obj, out_len);
}

void
actorlog_write_line (const struct actorlog_labels *labels, const char *line, size_t len)
{
  size_t n;
  char *out = actorlog_format_line (labels, line, len, ate_wall_ns (), &n);
  ate_log_write_line (out, n);
  free (out);
}

void
actorlog_event (const struct actorlog_labels *labels, const char *message)
{
  size_t n;
  char *out = actorlog_format_event (labels, message, ate_wall_ns (), &n);
  ate_log_write_line (out, n);
  free (out);
}

const char *
actorlog_labels_key (bool on_gce)
{
  return on_gce ? ACTORLOG_GCE_LABELS_KEY : ACTORLOG_LABELS_KEY;
}
