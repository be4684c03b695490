/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small TOML 1.0 reader: enough of the language to read a kata
 * configuration.toml strictly (tables, arrays of tables, dotted and quoted
 * keys, all string forms, integers, floats, booleans, date-times, arrays,
 * inline tables, comments).  Malformed input is an error that names the
 * line.  The document is not kept: every scalar is reported to a callback
 * with its full key path, and the caller picks what it needs.
 */
#ifndef KATA_TOML_H
#define KATA_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ate_error;

/* Limits on what a configuration file may contain. */
#define TOML_MAX_SIZE (1u << 20)
#define TOML_MAX_DEPTH 32   /* nesting of arrays and inline tables */
#define TOML_MAX_KEYS 20000 /* distinct keys and tables */

enum toml_type
{
  TOML_STRING,
  TOML_INTEGER,
  TOML_FLOAT,
  TOML_BOOLEAN,
  TOML_DATETIME,
};

struct toml_value
{
  enum toml_type type;
  const char *str; /* TOML_STRING: decoded (NUL-terminated, may hold U+0000
                      only if the file has "\u0000": then len > strlen) */
  size_t len;
  int64_t integer;
  double number;
  bool boolean;
  unsigned line;
  bool in_array; /* an element of an array value */
};

/* Called for every scalar with its key path (e.g. {"hypervisor", "clh",
 * "default_memory"}).  Elements of arrays are reported with in_array set
 * and the path of the array.  A negative return stops parsing; the callback
 * then sets *err. */
typedef int (*toml_value_cb) (void *ctx, const char *const *path, size_t depth,
                              const struct toml_value *v, struct ate_error **err);

int toml_parse (const char *text, size_t len, toml_value_cb cb, void *ctx,
                struct ate_error **err);

#endif
