/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "error.h"
#include "fs.h"
#include "util.h"

int
ate_json_parse (const char *buf, size_t len, int max_depth, struct json_object **out,
                struct ate_error **err)
{
  struct json_tokener *tok;
  struct json_object *o;
  enum json_tokener_error jerr;
  size_t off;

  if (len > (size_t) INT32_MAX)
    return ate_error_make (err, EFBIG, "JSON document too large");
  tok = json_tokener_new_ex (max_depth > 0 ? max_depth : ATE_JSON_MAX_DEPTH);
  if (tok == NULL)
    ate_oom ();
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT);
  o = json_tokener_parse_ex (tok, buf, (int) len);
  jerr = json_tokener_get_error (tok);
  off = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  if (o == NULL && jerr == json_tokener_continue)
    return ate_error_make (err, EINVAL, "invalid JSON: unexpected end of input");
  if (jerr != json_tokener_success)
    {
      json_object_put (o);
      return ate_error_make (err, EINVAL, "invalid JSON at offset %zu: %s", off,
                             json_tokener_error_desc (jerr));
    }
  for (size_t i = off; i < len; i++)
    if (!isspace ((unsigned char) buf[i]))
      {
        json_object_put (o);
        return ate_error_make (err, EINVAL, "invalid JSON: trailing data at offset %zu", i);
      }
  *out = o;
  return 0;
}

int
ate_json_parse_file (const char *path, size_t max_size, struct json_object **out,
                     struct ate_error **err)
{
  cleanup_free char *buf = NULL;
  size_t len = 0;

  if (ate_read_file (path, max_size, &buf, &len, err) < 0)
    return -1;
  if (ate_json_parse (buf, len, ATE_JSON_MAX_DEPTH, out, err) < 0)
    return ate_error_wrap (err, "parse `%s`", path);
  return 0;
}

char *
ate_json_to_string (struct json_object *o, int pretty)
{
  int flags = JSON_C_TO_STRING_NOSLASHESCAPE
              | (pretty ? (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED)
                        : JSON_C_TO_STRING_PLAIN);
  return xstrdup (json_object_to_json_string_ext (o, flags));
}

const char *
ate_json_get_string (struct json_object *o, const char *key)
{
  struct json_object *v;
  if (o == NULL || !json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, json_type_string))
    return NULL;
  return json_object_get_string (v);
}

struct json_object *
ate_json_new_ms (double ms)
{
  char buf[64];
  snprintf (buf, sizeof (buf), "%.3f", ms);
  return json_object_new_double_s (ms, buf);
}
