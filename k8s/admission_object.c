/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leaf of libateadmission: the kinds we know and the JSON accessors the
 * rule files share. Nothing here calls another file of the library; the
 * validation pass (admission.c) and the rules call down into it.
 */
#define _GNU_SOURCE
#include "k8s/admission_object.h"

#include <string.h>

#include "util/util.h"

static const struct
{
  const char *name;
  enum admission_kind kind;
} known_kinds[] = {
  { "SandboxConfig", ADMISSION_KIND_SANDBOXCONFIG },
  { "WorkerPool", ADMISSION_KIND_WORKERPOOL },
  { "ActorTemplate", ADMISSION_KIND_ACTORTEMPLATE },
};

enum admission_kind
admission_kind_lookup (const char *kind)
{
  for (size_t i = 0; kind && i < ATE_N_ELEMENTS (known_kinds); i++)
    if (strcmp (known_kinds[i].name, kind) == 0)
      return known_kinds[i].kind;
  return ADMISSION_KIND_INVALID;
}

/* ---- JSON accessors ---------------------------------------------------------- */

struct json_object *
admission_get (struct json_object *o, const char *key)
{
  struct json_object *v = NULL;
  if (!json_object_is_type (o, json_type_object) || !json_object_object_get_ex (o, key, &v))
    return NULL;
  return v;
}

const char *
admission_get_str (struct json_object *o, const char *key)
{
  struct json_object *v = admission_get (o, key);
  return json_object_is_type (v, json_type_string) ? json_object_get_string (v) : NULL;
}

const char *
admission_object_class (const struct admission_object *o)
{
  const char *c = admission_get_str (admission_get (o->root, "spec"), "sandboxClass");
  return c ? c : ATE_ADMISSION_CLASS_GVISOR;
}

static bool
list_has_string (struct json_object *list, const char *s)
{
  if (!json_object_is_type (list, json_type_array))
    return false;
  for (size_t i = 0; i < json_object_array_length (list); i++)
    {
      struct json_object *v = json_object_array_get_idx (list, i);
      if (json_object_is_type (v, json_type_string) && strcmp (json_object_get_string (v), s) == 0)
        return true;
    }
  return false;
}

static bool
requirement_matches (struct json_object *req, struct json_object *labels)
{
  const char *key = admission_get_str (req, "key");
  const char *op = admission_get_str (req, "operator");
  struct json_object *values = admission_get (req, "values");
  size_t n_values
      = json_object_is_type (values, json_type_array) ? json_object_array_length (values) : 0;
  const char *have;

  if (key == NULL || op == NULL)
    return false;
  have = admission_get_str (labels, key);
  if (strcmp (op, "In") == 0)
    return n_values > 0 && have != NULL && list_has_string (values, have);
  if (strcmp (op, "NotIn") == 0)
    return n_values > 0 && (have == NULL || !list_has_string (values, have));
  if (strcmp (op, "Exists") == 0)
    return n_values == 0 && have != NULL;
  if (strcmp (op, "DoesNotExist") == 0)
    return n_values == 0 && have == NULL;
  return false;
}

bool
admission_selector_matches (struct json_object *selector, struct json_object *labels)
{
  struct json_object *exprs = admission_get (selector, "matchExpressions");
  struct json_object *match = admission_get (selector, "matchLabels");

  if (selector == NULL)
    return true;
  if (json_object_is_type (match, json_type_object))
    {
      json_object_object_foreach (match, key, val)
      {
        const char *have = admission_get_str (labels, key);
        if (!json_object_is_type (val, json_type_string) || have == NULL
            || strcmp (have, json_object_get_string (val)) != 0)
          return false;
      }
    }
  if (json_object_is_type (exprs, json_type_array))
    for (size_t i = 0; i < json_object_array_length (exprs); i++)
      if (!requirement_matches (json_object_array_get_idx (exprs, i), labels))
        return false;
  return true;
}
