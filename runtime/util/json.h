/* SPDX-License-Identifier: Apache-2.0 */
/* json-c helpers with limits on what a peer controls (size, depth). */
#ifndef ATE_JSON_H
#define ATE_JSON_H

#include <json-c/json.h>
#include <stddef.h>

struct ate_error;

#define ATE_JSON_MAX_DEPTH 64

static inline void
cleanup_json_fn (struct json_object **o)
{
  if (*o)
    json_object_put (*o);
}
#define cleanup_json __attribute__ ((cleanup (cleanup_json_fn)))

/* Parse exactly one JSON value from buf (trailing whitespace allowed).
 * Integers keep full 64-bit precision (json-c int64/uint64). */
int ate_json_parse (const char *buf, size_t len, int max_depth,
                    struct json_object **out, struct ate_error **err);

/* Read and parse a file of at most max_size bytes. */
int ate_json_parse_file (const char *path, size_t max_size,
                         struct json_object **out, struct ate_error **err);

/* Serialise (plain, no slash escaping).  Returns a new string. */
char *ate_json_to_string (struct json_object *o, int pretty);

/* A duration in milliseconds as a JSON number with microsecond precision
 * (json-c would otherwise print 17 significant digits). */
struct json_object *ate_json_new_ms (double ms);

/* Get a string member or NULL. */
const char *ate_json_get_string (struct json_object *o, const char *key);

#endif
