/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the apiserver accepts but the platform later fails on:
 *
 * - cross-object: the same object twice, a WorkerPool naming a
 *   SandboxConfig of another class
 *   (ateapi fails every Run of the pool), two default SandboxConfigs of one
 *   class (ateapi refuses to choose), an ActorTemplate whose workerSelector
 *   only matches pools of another class (no actor of it can be scheduled).
 *   Only objects in the same input are compared: a reference to an object
 *   that is not in the input is not an error.
 * - controller: a WorkerPool whose Deployment the apiserver would reject
 *   (pool name too long for the pod label, malformed tolerations or node
 *   selector labels), and a workerSelector the scheduler cannot parse.
 */
#define _GNU_SOURCE
#include <string.h>

#include "k8s/admission_cross.h"
#include "k8s/admission_names.h"
#include "k8s/admission_object.h"
#include "k8s/admission_report.h"
#include "util/util.h"

/* ActorTemplate x WorkerPool selector evaluations per input (about 0.3 s). */
#define ADMISSION_MAX_SELECTOR_PAIRS 1000000

static const char *
ns_or_default (const struct admission_object *o)
{
  return o->ns ? o->ns : "default";
}

/* The object of that kind and name, from the same file if it has one (files
 * of one call may be alternatives defining the same object). */
static const struct admission_object *
find_object (const struct ate_admission_set *set, enum admission_kind kind, const char *name,
             const char *prefer_source)
{
  const struct admission_object *first = NULL;
  for (size_t i = 0; i < set->n; i++)
    if (set->objs[i].kind == kind && strcmp (set->objs[i].name, name) == 0)
      {
        if (strcmp (set->objs[i].source, prefer_source) == 0)
          return &set->objs[i];
        first = first ? first : &set->objs[i];
      }
  return first;
}

static void
check_pool_config (struct ate_admission_report *r, const struct ate_admission_set *set,
                   const struct admission_object *pool)
{
  const char *cfg_name
      = admission_get_str (admission_get (pool->root, "spec"), "sandboxConfigName");
  const struct admission_object *cfg;

  if (cfg_name == NULL || *cfg_name == '\0')
    return;
  cfg = find_object (set, ADMISSION_KIND_SANDBOXCONFIG, cfg_name, pool->source);
  if (cfg == NULL || strcmp (admission_object_class (cfg), admission_object_class (pool)) == 0)
    return;
  admission_report_add (r, pool, ATE_ADMISSION_ORIGIN_CROSS, "spec.sandboxConfigName", NULL,
                        "SandboxConfig \"%s\" has class \"%s\" but WorkerPool %s/%s is class "
                        "\"%s\"",
                        cfg_name, admission_object_class (cfg), ns_or_default (pool), pool->name,
                        admission_object_class (pool));
}

static bool
is_default_config (const struct admission_object *o)
{
  struct json_object *d = admission_get (admission_get (o->root, "spec"), "default");
  return o->kind == ADMISSION_KIND_SANDBOXCONFIG && json_object_is_type (d, json_type_boolean)
         && json_object_get_boolean (d);
}

/* One pass: the first default of each class, and every other one (of
 * another name) reported against it. */
static void
check_defaults (struct ate_admission_report *r, const struct ate_admission_set *set)
{
  static const char *const classes[] = { ATE_ADMISSION_CLASS_GVISOR, ATE_ADMISSION_CLASS_MICROVM };
  const struct admission_object *first[ATE_N_ELEMENTS (classes)] = { NULL };

  for (size_t i = 0; i < set->n; i++)
    {
      const struct admission_object *a = &set->objs[i];
      if (!is_default_config (a))
        continue;
      for (size_t c = 0; c < ATE_N_ELEMENTS (classes); c++)
        {
          if (strcmp (admission_object_class (a), classes[c]) != 0)
            continue;
          if (first[c] == NULL)
            first[c] = a;
          else if (strcmp (first[c]->name, a->name) != 0)
            admission_report_add (r, a, ATE_ADMISSION_ORIGIN_CROSS, "spec.default", NULL,
                                  "multiple default SandboxConfigs for class \"%s\" (\"%s\" "
                                  "and \"%s\"); WorkerPools without sandboxConfigName cannot "
                                  "resolve their assets",
                                  classes[c], first[c]->name, a->name);
        }
    }
}

static void
check_template_pools (struct ate_admission_report *r, const struct ate_admission_set *set,
                      const struct admission_object *tmpl)
{
  struct json_object *selector
      = admission_get (admission_get (tmpl->root, "spec"), "workerSelector");
  const char *cls = admission_object_class (tmpl);
  const struct admission_object *other = NULL;

  for (size_t i = 0; i < set->n; i++)
    {
      const struct admission_object *pool = &set->objs[i];
      if (pool->kind != ADMISSION_KIND_WORKERPOOL
          || !admission_selector_matches (
              selector, admission_get (admission_get (pool->root, "metadata"), "labels")))
        continue;
      if (strcmp (admission_object_class (pool), cls) == 0)
        return; /* an eligible pool exists */
      if (other == NULL)
        other = pool;
    }
  if (other != NULL)
    admission_report_add (r, tmpl, ATE_ADMISSION_ORIGIN_CROSS, "spec.sandboxClass", NULL,
                          "no WorkerPool matches the template's sandboxClass and "
                          "spec.workerSelector: WorkerPool %s/%s has class \"%s\", the template "
                          "has class \"%s\"",
                          ns_or_default (other), other->name, admission_object_class (other), cls);
}

/* The same object twice in one file: kubectl applies the last one over the
 * first, so one of them never takes effect (usually two overlays were
 * concatenated).  In different files the same object is an alternative
 * (validating the kind and the gke overlay in one call), not an error. */
static void
check_duplicates (struct ate_admission_report *r, const struct ate_admission_set *set)
{
  for (size_t i = 0; i < set->n; i++)
    {
      const struct admission_object *a = &set->objs[i];
      if (a->kind == ADMISSION_KIND_INVALID || a->name[0] == '#')
        continue;
      for (size_t j = 0; j < i; j++)
        {
          const struct admission_object *b = &set->objs[j];
          bool cluster_scoped = a->kind == ADMISSION_KIND_SANDBOXCONFIG;
          if (b->kind != a->kind || strcmp (b->name, a->name) != 0
              || strcmp (b->source, a->source) != 0
              || (!cluster_scoped && strcmp (ns_or_default (a), ns_or_default (b)) != 0))
            continue;
          admission_report_add (r, a, ATE_ADMISSION_ORIGIN_CROSS, "metadata.name", NULL,
                                "Duplicate value: \"%s\": the input already defines %s %s%s%s "
                                "(%s, document %u); only the last one would take effect",
                                a->name, a->kind_name, cluster_scoped ? "" : ns_or_default (a),
                                cluster_scoped ? "" : "/", a->name, b->source, b->doc);
          break;
        }
    }
}

void
admission_cross_check (struct ate_admission_report *r, const struct ate_admission_set *set,
                       unsigned flags)
{
  size_t templates = 0, pools = 0;
  const struct admission_object *first_template = NULL;

  (void) flags;
  check_duplicates (r, set);
  check_defaults (r, set);
  for (size_t i = 0; i < set->n; i++)
    {
      const struct admission_object *o = &set->objs[i];
      if (o->kind == ADMISSION_KIND_WORKERPOOL)
        {
          pools++;
          check_pool_config (r, set, o);
        }
      else if (o->kind == ADMISSION_KIND_ACTORTEMPLATE)
        {
          templates++;
          first_template = first_template ? first_template : o;
        }
    }
  /* Every template is matched against every pool; keep a hostile input from
   * turning that into minutes, and say so rather than skip it silently. */
  if (templates * pools > ADMISSION_MAX_SELECTOR_PAIRS)
    {
      admission_report_add (r, first_template, ATE_ADMISSION_ORIGIN_CROSS, "spec.workerSelector",
                            NULL,
                            "not checked: %zu ActorTemplates x %zu WorkerPools exceed the %d "
                            "pairs this check examines; validate fewer objects at once",
                            templates, pools, ADMISSION_MAX_SELECTOR_PAIRS);
      return;
    }
  for (size_t i = 0; i < set->n; i++)
    if (set->objs[i].kind == ADMISSION_KIND_ACTORTEMPLATE)
      check_template_pools (r, set, &set->objs[i]);
}

/* ---- Controller-level checks ---------------------------------------------------- */

static bool
str_is (const char *s, const char *a, const char *b, const char *c)
{
  return (a && strcmp (s, a) == 0) || (b && strcmp (s, b) == 0) || (c && strcmp (s, c) == 0);
}

static void
check_toleration (struct ate_admission_report *r, const struct admission_object *o,
                  struct json_object *t, struct admission_path *p)
{
  const char *op = admission_get_str (t, "operator");
  const char *effect = admission_get_str (t, "effect");
  const char *key = admission_get_str (t, "key");
  const char *value = admission_get_str (t, "value");
  size_t saved;

  if (op && *op && !str_is (op, "Equal", "Exists", NULL))
    {
      saved = admission_path_push_field (p, "operator");
      admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, p->buf, NULL,
                            "Unsupported value: \"%s\": supported values: \"Equal\", \"Exists\"",
                            op);
      admission_path_pop (p, saved);
    }
  if (op && strcmp (op, "Exists") == 0 && value && *value)
    {
      saved = admission_path_push_field (p, "operator");
      admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, p->buf, NULL,
                            "Invalid value: \"%s\": value must be empty when `operator` is "
                            "'Exists'",
                            value);
      admission_path_pop (p, saved);
    }
  if ((key == NULL || *key == '\0') && (op == NULL || strcmp (op, "Exists") != 0))
    {
      saved = admission_path_push_field (p, "operator");
      admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, p->buf, NULL,
                            "Invalid value: \"%s\": operator must be Exists when `key` is empty, "
                            "which means \"match all values and all keys\"",
                            op ? op : "");
      admission_path_pop (p, saved);
    }
  if (effect && *effect && !str_is (effect, "NoSchedule", "PreferNoSchedule", "NoExecute"))
    {
      saved = admission_path_push_field (p, "effect");
      admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, p->buf, NULL,
                            "Unsupported value: \"%s\": supported values: \"NoSchedule\", "
                            "\"PreferNoSchedule\", \"NoExecute\"",
                            effect);
      admission_path_pop (p, saved);
    }
  if (admission_get (t, "tolerationSeconds") != NULL
      && (effect == NULL || strcmp (effect, "NoExecute") != 0))
    {
      saved = admission_path_push_field (p, "effect");
      admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, p->buf, NULL,
                            "Invalid value: \"%s\": effect must be 'NoExecute' when "
                            "`tolerationSeconds` is set",
                            effect ? effect : "");
      admission_path_pop (p, saved);
    }
}

static void
check_label_map (struct ate_admission_report *r, const struct admission_object *o,
                 struct json_object *map, const char *field)
{
  struct admission_path p;

  if (!json_object_is_type (map, json_type_object))
    return;
  admission_path_init (&p, field);
  json_object_object_foreach (map, key, val)
  {
    const char *why = NULL;
    size_t saved = admission_path_push_key (&p, key);
    if (!admission_is_label_key (key, strlen (key), &why)
        || (json_object_is_type (val, json_type_string)
            && !admission_is_label_value (json_object_get_string (val),
                                          (size_t) json_object_get_string_len (val), &why)))
      admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, p.buf, NULL,
                            "Invalid value: not a valid label: %s", why);
    admission_path_pop (&p, saved);
  }
  admission_path_fini (&p);
}

static void
check_pool (struct ate_admission_report *r, const struct admission_object *o)
{
  struct json_object *tmpl = admission_get (admission_get (o->root, "spec"), "template");
  struct json_object *tols = admission_get (tmpl, "tolerations");
  struct admission_path p;

  if (strlen (o->name) > 63 && o->name[0] != '#')
    admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, "metadata.name", NULL,
                          "Too long: the worker pods are labelled ate.dev/worker-pool=<name> "
                          "and a label value may not be longer than 63 characters (name has "
                          "%zu)",
                          strlen (o->name));
  check_label_map (r, o, admission_get (tmpl, "nodeSelector"), "spec.template.nodeSelector");
  if (!json_object_is_type (tols, json_type_array) || json_object_array_length (tols) > 16)
    return;
  admission_path_init (&p, "spec.template.tolerations");
  for (size_t i = 0; i < json_object_array_length (tols); i++)
    {
      size_t saved = admission_path_push_index (&p, i);
      if (json_object_is_type (json_object_array_get_idx (tols, i), json_type_object))
        check_toleration (r, o, json_object_array_get_idx (tols, i), &p);
      admission_path_pop (&p, saved);
    }
  admission_path_fini (&p);
}

static void
check_selector_requirement (struct ate_admission_report *r, const struct admission_object *o,
                            struct json_object *req, const char *path)
{
  const char *op = admission_get_str (req, "operator");
  struct json_object *values = admission_get (req, "values");
  size_t n = json_object_is_type (values, json_type_array) ? json_object_array_length (values) : 0;

  if (op == NULL)
    return; /* schema: Required value */
  if (!str_is (op, "In", "NotIn", NULL) && !str_is (op, "Exists", "DoesNotExist", NULL))
    admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, path, NULL,
                          "Unsupported value: \"%s\": supported values: \"In\", \"NotIn\", "
                          "\"Exists\", \"DoesNotExist\" (the scheduler rejects the selector)",
                          op);
  else if (str_is (op, "In", "NotIn", NULL) && n == 0)
    admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, path, NULL,
                          "Required value: values must be non-empty for operator %s (the "
                          "scheduler rejects the selector)",
                          op);
  else if (str_is (op, "Exists", "DoesNotExist", NULL) && n != 0)
    admission_report_add (r, o, ATE_ADMISSION_ORIGIN_CONTROLLER, path, NULL,
                          "Invalid value: values must be empty for operator %s (the scheduler "
                          "rejects the selector)",
                          op);
}

static void
check_template (struct ate_admission_report *r, const struct admission_object *o)
{
  struct json_object *sel = admission_get (admission_get (o->root, "spec"), "workerSelector");
  struct json_object *exprs = admission_get (sel, "matchExpressions");

  check_label_map (r, o, admission_get (sel, "matchLabels"), "spec.workerSelector.matchLabels");
  if (!json_object_is_type (exprs, json_type_array))
    return;
  for (size_t i = 0; i < json_object_array_length (exprs); i++)
    {
      cleanup_free char *path = xasprintf ("spec.workerSelector.matchExpressions[%zu].operator", i);
      check_selector_requirement (r, o, json_object_array_get_idx (exprs, i), path);
    }
}

void
admission_controller_check (struct ate_admission_report *r, const struct admission_object *o)
{
  if (o->kind == ADMISSION_KIND_WORKERPOOL)
    check_pool (r, o);
  else if (o->kind == ADMISSION_KIND_ACTORTEMPLATE)
    check_template (r, o);
}
