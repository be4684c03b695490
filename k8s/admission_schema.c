/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small OpenAPI-v3 schema walker: the subset the ate.dev CRDs use (types,
 * required, min/max length/items/properties, minimum/maximum, enum, pattern,
 * x-kubernetes-validations written in C).  Messages are worded like the
 * apiserver's field errors so that the CLI output reads like `kubectl apply`.
 * Like the go-openapi string validator, the first failing string check wins;
 * enum and CEL-style rules are reported in addition.  Unknown fields are
 * reported the way kubectl's default strict field validation does.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "k8s/admission_object.h"
#include "k8s/admission_report.h"
#include "k8s/admission_schema.h"
#include "util/util.h"

static void add (const struct admission_schema_ctx *ctx, const struct admission_path *p,
                 const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
add (const struct admission_schema_ctx *ctx, const struct admission_path *p, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  admission_report_vadd (ctx->report, ctx->obj, ATE_ADMISSION_ORIGIN_SCHEMA, p->buf, NULL, fmt, ap);
  va_end (ap);
}

static const char *
schema_type_name (enum admission_schema_type t)
{
  switch (t)
    {
    case SCHEMA_OBJECT:
    case SCHEMA_MAP:
      return "object";
    case SCHEMA_ARRAY:
      return "array";
    case SCHEMA_STRING:
      return "string";
    case SCHEMA_INTEGER:
      return "integer";
    case SCHEMA_BOOLEAN:
      return "boolean";
    case SCHEMA_INT_OR_STRING:
      return "integer or string";
    case SCHEMA_ANY:
      break;
    }
  return "any";
}

/* YAML "replicas: 1.0" reaches the apiserver as the JSON number 1, so an
 * integral double is an integer. */
static bool
is_integer (struct json_object *v)
{
  double d;
  if (json_object_is_type (v, json_type_int))
    return true;
  if (!json_object_is_type (v, json_type_double))
    return false;
  d = json_object_get_double (v);
  return d == floor (d) && fabs (d) < 9007199254740992.0;
}

static bool
type_ok (enum admission_schema_type t, struct json_object *v)
{
  switch (t)
    {
    case SCHEMA_ANY:
      return true;
    case SCHEMA_OBJECT:
    case SCHEMA_MAP:
      return json_object_is_type (v, json_type_object);
    case SCHEMA_ARRAY:
      return json_object_is_type (v, json_type_array);
    case SCHEMA_STRING:
      return json_object_is_type (v, json_type_string);
    case SCHEMA_INTEGER:
      return is_integer (v);
    case SCHEMA_BOOLEAN:
      return json_object_is_type (v, json_type_boolean);
    case SCHEMA_INT_OR_STRING:
      return is_integer (v) || json_object_is_type (v, json_type_string);
    }
  return false;
}

static void
validate_string (const struct admission_schema_ctx *ctx, const struct admission_schema *s,
                 struct json_object *v, const struct admission_path *p)
{
  const char *str = json_object_get_string (v);
  size_t len = (size_t) json_object_get_string_len (v);
  size_t runes = 0;
  cleanup_free char *q = admission_quote (str, len);

  /* OpenAPI lengths count characters, not bytes. */
  for (size_t i = 0; i < len; i++)
    if (((unsigned char) str[i] & 0xc0) != 0x80)
      runes++;
  if (s->max_len > 0 && runes > (size_t) s->max_len)
    add (ctx, p, "Too long: may not be longer than %" PRId64, s->max_len);
  else if (s->min_len > 0 && runes < (size_t) s->min_len)
    add (ctx, p, "Invalid value: %s: %s in body should be at least %" PRId64 " chars long", q,
         p->buf, s->min_len);
  else if (s->match != NULL && (memchr (str, '\0', len) != NULL || !s->match (str, len)))
    add (ctx, p, "Invalid value: %s: %s in body should match '%s'", q, p->buf, s->pattern);

  if (s->enums != NULL)
    {
      char list[512] = "";
      size_t used = 0;
      for (const char *const *e = s->enums; *e; e++)
        {
          if (strlen (*e) == len && memcmp (*e, str, len) == 0)
            return;
          used += (size_t) snprintf (list + used, sizeof (list) - used, "%s\"%s\"",
                                     e == s->enums ? "" : ", ", *e);
        }
      add (ctx, p, "Unsupported value: %s: supported values: %s", q, list);
    }
}

static void
validate_integer (const struct admission_schema_ctx *ctx, const struct admission_schema *s,
                  struct json_object *v, const struct admission_path *p)
{
  int64_t n = json_object_get_int64 (v);

  if (s->has_minimum && n < s->minimum)
    add (ctx, p,
         "Invalid value: %" PRId64 ": %s in body should be greater than or "
         "equal to %" PRId64,
         n, p->buf, s->minimum);
  else if (s->has_maximum && n > s->maximum)
    add (ctx, p,
         "Invalid value: %" PRId64 ": %s in body should be less than or "
         "equal to %" PRId64,
         n, p->buf, s->maximum);
}

static bool
is_known_prop (const struct admission_schema *s, const char *key)
{
  for (const struct admission_schema_prop *pr = s->props; pr && pr->name; pr++)
    if (strcmp (pr->name, key) == 0)
      return true;
  return false;
}

static void
validate_object (const struct admission_schema_ctx *ctx, const struct admission_schema *s,
                 struct json_object *v, struct json_object *old, struct admission_path *p)
{
  size_t count = (size_t) json_object_object_length (v);

  for (const struct admission_schema_prop *pr = s->props; pr && pr->name; pr++)
    {
      struct json_object *child = admission_get (v, pr->name);
      size_t saved = admission_path_push_field (p, pr->name);
      if (child == NULL)
        {
          if (pr->required)
            add (ctx, p, "Required value");
        }
      else
        admission_schema_validate (ctx, pr->schema, child, admission_get (old, pr->name), p);
      admission_path_pop (p, saved);
    }
  if (!s->open)
    {
      json_object_object_foreach (v, key, val)
      {
        (void) val;
        if (!is_known_prop (s, key))
          {
            size_t saved = admission_path_push_key (p, key);
            add (ctx, p, "unknown field \"%s\"", p->buf);
            admission_path_pop (p, saved);
          }
      }
    }
  if (s->max_len > 0 && count > (size_t) s->max_len)
    add (ctx, p, "Too many: %zu: must have at most %" PRId64 " properties", count, s->max_len);
  else if (s->min_len > 0 && count < (size_t) s->min_len)
    add (ctx, p, "Invalid value: %zu: %s in body should have at least %" PRId64 " properties",
         count, p->buf, s->min_len);
}

static void
validate_map (const struct admission_schema_ctx *ctx, const struct admission_schema *s,
              struct json_object *v, struct json_object *old, struct admission_path *p)
{
  json_object_object_foreach (v, key, val)
  {
    size_t saved = admission_path_push_key (p, key);
    admission_schema_validate (ctx, s->items, val, admission_get (old, key), p);
    admission_path_pop (p, saved);
  }
}

static void
validate_array (const struct admission_schema_ctx *ctx, const struct admission_schema *s,
                struct json_object *v, struct json_object *old, struct admission_path *p)
{
  size_t n = json_object_array_length (v);
  size_t n_old = json_object_is_type (old, json_type_array) ? json_object_array_length (old) : 0;

  if (s->max_len > 0 && n > (size_t) s->max_len)
    {
      /* Like the apiserver: an over-long list is not inspected further. */
      add (ctx, p, "Too many: %zu: must have at most %" PRId64 " items", n, s->max_len);
      return;
    }
  if (s->min_len > 0 && n < (size_t) s->min_len)
    add (ctx, p, "Invalid value: %zu: %s in body should have at least %" PRId64 " items", n, p->buf,
         s->min_len);
  for (size_t i = 0; i < n; i++)
    {
      size_t saved = admission_path_push_index (p, i);
      admission_schema_validate (ctx, s->items, json_object_array_get_idx (v, i),
                                 i < n_old ? json_object_array_get_idx (old, i) : NULL, p);
      admission_path_pop (p, saved);
    }
}

/* resource.Quantity:
 * ^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$
 */
static const char *
match_decimal (const char *s)
{
  const char *start = s;
  if (*s == '+' || *s == '-')
    s++;
  if (*s == '.')
    {
      const char *d = ++s;
      while (*s >= '0' && *s <= '9')
        s++;
      return s > d ? s : NULL;
    }
  while (*s >= '0' && *s <= '9')
    s++;
  if (s == start || ((*start == '+' || *start == '-') && s == start + 1))
    return NULL;
  if (*s == '.')
    for (s++; *s >= '0' && *s <= '9'; s++)
      ;
  return s;
}

static bool
match_quantity (const char *s, size_t len)
{
  const char *end = s + len;
  const char *p;

  if (memchr (s, '\0', len) != NULL)
    return false;
  p = match_decimal (s);
  if (p == NULL)
    return false;
  if (p == end)
    return true;
  if (strchr ("KMGTPE", *p) && p + 2 == end && p[1] == 'i')
    return true;
  if (strchr ("numkMGTPE", *p) && p + 1 == end)
    return true;
  if (*p == 'e' || *p == 'E')
    {
      const char *q = p + 1;
      /* The exponent is a decimal without its own sign handling twice. */
      if (*q == '+' || *q == '-')
        q++;
      if (*q == '+' || *q == '-')
        return false;
      q = match_decimal (q);
      return q == end;
    }
  return false;
}

void
admission_schema_validate (const struct admission_schema_ctx *ctx, const struct admission_schema *s,
                           struct json_object *v, struct json_object *old, struct admission_path *p)
{
  if (s == NULL || s->type == SCHEMA_ANY)
    return;
  if (!type_ok (s->type, v))
    {
      const char *t = admission_type_name (v);
      add (ctx, p, "Invalid value: \"%s\": %s in body must be of type %s: \"%s\"", t, p->buf,
           schema_type_name (s->type), t);
      return;
    }
  switch (s->type)
    {
    case SCHEMA_OBJECT:
      validate_object (ctx, s, v, old, p);
      break;
    case SCHEMA_MAP:
      validate_map (ctx, s, v, old, p);
      break;
    case SCHEMA_ARRAY:
      validate_array (ctx, s, v, old, p);
      break;
    case SCHEMA_STRING:
      validate_string (ctx, s, v, p);
      break;
    case SCHEMA_INTEGER:
      validate_integer (ctx, s, v, p);
      break;
    case SCHEMA_INT_OR_STRING:
      if (json_object_is_type (v, json_type_string)
          && !match_quantity (json_object_get_string (v), (size_t) json_object_get_string_len (v)))
        {
          cleanup_free char *q = admission_quote (json_object_get_string (v),
                                                  (size_t) json_object_get_string_len (v));
          add (ctx, p, "Invalid value: %s: %s in body should match a quantity such as 500m, 2Gi", q,
               p->buf);
        }
      break;
    case SCHEMA_BOOLEAN:
    case SCHEMA_ANY:
      break;
    }
  for (const struct admission_schema_rule *r = s->rules; r && r->holds; r++)
    {
      if (r->needs_old && old == NULL)
        continue;
      if (!r->holds (ctx, v, old))
        add (ctx, p, "Invalid value: \"%s\": %s", admission_type_name (v), r->message);
    }
}
