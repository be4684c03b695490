/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz the actor log line formatter and splitter: whatever a container
 * prints, every output line must be one valid JSON object carrying our
 * labels.
 */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kata/actorlog.h"
#include "util/lines.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const struct actorlog_labels labels = {
  .key = ACTORLOG_LABELS_KEY, .actor_id = "a1", .template_name = "t",
  .template_namespace = "ns", .container_name = "c",
};

static void
check_line (void *ctx, const char *line, size_t len)
{
  size_t n;
  char *out = actorlog_format_line (&labels, line, len, 1700000000123456789LL, &n);
  struct json_tokener *tok = json_tokener_new_ex (ACTORLOG_MAX_DEPTH + 8);
  struct json_object *o, *l, *id;

  (void) ctx;
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT);
  o = json_tokener_parse_ex (tok, out, (int) n);
  if (o == NULL || json_tokener_get_parse_end (tok) != n
      || !json_object_is_type (o, json_type_object)
      || !json_object_object_get_ex (o, "labels", &l)
      || !json_object_object_get_ex (l, "ate.dev/actor_id", &id)
      || strcmp (json_object_get_string (id), "a1") != 0 || memchr (out, '\n', n))
    abort ();
  json_object_put (o);
  json_tokener_free (tok);
  free (out);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct ate_line_splitter s;

  check_line (NULL, (const char *) data, size);
  ate_line_splitter_init (&s, ACTORLOG_MAX_LINE, check_line, NULL);
  ate_line_splitter_feed (&s, (const char *) data, size);
  ate_line_splitter_finish (&s);
  return 0;
}
