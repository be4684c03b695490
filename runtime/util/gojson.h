/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON values read and written exactly as Go's encoding/json does when it
 * decodes into interface{} with UseNumber and encodes with HTML escaping
 * on: objects are maps (a later duplicate key wins; keys are written in
 * bytewise order), numbers keep the text they were written with, strings
 * are decoded to UTF-8 and written with '<' '>' '&' U+2028 U+2029 escaped
 * and invalid UTF-8 replaced by U+FFFD.
 *
 * The actor log format (docs/logging.md) needs that byte for byte, and
 * json-c cannot give it: it keeps members in insertion order with no way to
 * sort them, writes '<' '>' '&' U+2028 U+2029 and invalid UTF-8 as they
 * came, and clamps an integer beyond 64 bits (json-c 0.16 prints
 * 123456789012345678901234567890 as 18446744073709551615). Everything else
 * uses json-c (util/json.h).
 */
#ifndef ATE_GOJSON_H
#define ATE_GOJSON_H

#include <stddef.h>

#include "strbuf.h"

enum ate_gojson_type
{
  ATE_GOJSON_NULL,
  ATE_GOJSON_TRUE,
  ATE_GOJSON_FALSE,
  ATE_GOJSON_NUMBER,
  ATE_GOJSON_STRING,
  ATE_GOJSON_ARRAY,
  ATE_GOJSON_OBJECT,
};

struct ate_gojson
{
  enum ate_gojson_type type;
  char *s; /* number text or decoded string (may hold NUL bytes) */
  size_t len;
  struct ate_gojson **items; /* array elements or object values */
  char **keys;               /* object keys (decoded) */
  size_t *key_lens;
  size_t n, cap;
};

struct ate_gojson *ate_gojson_new (enum ate_gojson_type t);
/* A string value holding a copy of the len bytes at s. */
struct ate_gojson *ate_gojson_new_string (const char *s, size_t len);
void ate_gojson_free (struct ate_gojson *v);

/* Append a member (an array element when o is an array; key is then
 * ignored), taking ownership of the malloc'd key and of val. For objects
 * a later duplicate key wins when the object is written (map semantics
 * without a quadratic lookup here). */
void ate_gojson_put (struct ate_gojson *o, char *key, size_t key_len, struct ate_gojson *val);
void ate_gojson_put_str (struct ate_gojson *o, const char *key, const char *val);
/* The value of the last member called key, or NULL. */
struct ate_gojson *ate_gojson_get (const struct ate_gojson *o, const char *key);
/* Append every member of the object src to dst (so they win over dst's
 * members of the same name) and free src. */
void ate_gojson_object_merge (struct ate_gojson *dst, struct ate_gojson *src);

/* Exactly one JSON object with only whitespace around it, nested at most
 * max_depth deep; NULL for anything else (another value, broken JSON,
 * trailing text). */
struct ate_gojson *ate_gojson_parse_object (const char *s, size_t len, int max_depth);

/* Append v's encoding to b. */
void ate_gojson_encode (struct ate_strbuf *b, const struct ate_gojson *v);

#endif
