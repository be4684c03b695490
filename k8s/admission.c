/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Object sets and the validation pass: which documents are ours, the object
 * metadata checks every apiserver makes, then schema -> policy -> controller
 * checks per object, and the cross-object checks over the whole set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "k8s/admission_crds.h"
#include "k8s/admission_cross.h"
#include "k8s/admission_names.h"
#include "k8s/admission_object.h"
#include "k8s/admission_policy.h"
#include "k8s/admission_report.h"
#include "k8s/admission_schema.h"
#include "k8s/admission_yaml.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

#define ATE_GROUP "ate.dev"
#define ATE_VERSION "v1alpha1"

/* ---- Sets ---------------------------------------------------------------------- */

struct ate_admission_set *
ate_admission_set_new (void)
{
  return xcalloc (1, sizeof (struct ate_admission_set));
}

static void
object_clear (struct admission_object *o)
{
  json_object_put (o->root);
  free (o->source);
  free (o->kind_name);
  free (o->name);
  free (o->ns);
  free (o->header_path);
  free (o->header_message);
}

void
ate_admission_set_free (struct ate_admission_set *set)
{
  if (set == NULL)
    return;
  for (size_t i = 0; i < set->n; i++)
    object_clear (&set->objs[i]);
  free (set->objs);
  free (set);
}

size_t
ate_admission_set_count (const struct ate_admission_set *set)
{
  return set->n;
}

size_t
ate_admission_set_skipped (const struct ate_admission_set *set)
{
  return set->skipped;
}

/* Decide whether the object is ours; *out_kind is INVALID with a header
 * message for unusable ate.dev objects.  Returns false for objects of
 * other groups (skipped). */
static bool
classify (struct json_object *root, enum admission_kind *out_kind, char **path, char **message)
{
  const char *api = admission_get_str (root, "apiVersion");
  const char *kind = admission_get_str (root, "kind");
  enum admission_kind k = admission_kind_lookup (kind);
  const char *slash = api ? strchr (api, '/') : NULL;
  bool ours_group = slash != NULL && (size_t) (slash - api) == strlen (ATE_GROUP)
                    && strncmp (api, ATE_GROUP, strlen (ATE_GROUP)) == 0;

  *out_kind = ADMISSION_KIND_INVALID;
  if (api == NULL || kind == NULL)
    {
      /* Not applicable anywhere; kubectl refuses it too. */
      *path = xstrdup (api == NULL ? "apiVersion" : "kind");
      *message = xstrdup (api == NULL ? "Required value: apiVersion not set"
                                      : "Required value: kind not set");
      return true;
    }
  if (!ours_group && k == ADMISSION_KIND_INVALID)
    return false;
  if (!ours_group || strcmp (slash + 1, ATE_VERSION) != 0)
    {
      *path = xstrdup ("apiVersion");
      *message
          = xasprintf ("Unsupported value: \"%s\": no matches for kind \"%s\" in version "
                       "\"%s\" (the ate.dev kinds are served as " ATE_ADMISSION_API_VERSION ")",
                       api, kind, api);
      return true;
    }
  if (k == ADMISSION_KIND_INVALID)
    {
      *path = xstrdup ("kind");
      *message = xasprintf ("Unsupported value: \"%s\": no matches for kind \"%s\" in version "
                            "\"%s\" (supported kinds: SandboxConfig, WorkerPool, ActorTemplate)",
                            kind, kind, api);
      return true;
    }
  *out_kind = k;
  return true;
}

static void
set_push (struct ate_admission_set *set, struct admission_object *o)
{
  if (set->n == set->cap)
    {
      set->cap = set->cap ? set->cap * 2 : 8;
      set->objs = xrealloc (set->objs, set->cap * sizeof (*set->objs));
    }
  set->objs[set->n++] = *o;
}

static void
add_object (struct ate_admission_set *set, const char *source, unsigned doc,
            struct json_object *root)
{
  struct admission_object o = { 0 };
  struct json_object *meta = admission_get (root, "metadata");
  const char *kind = admission_get_str (root, "kind");
  const char *name = admission_get_str (meta, "name");
  const char *ns = admission_get_str (meta, "namespace");

  if (!classify (root, &o.kind, &o.header_path, &o.header_message))
    {
      set->skipped++;
      return;
    }
  o.root = json_object_get (root);
  o.source = xstrdup (source);
  o.doc = doc;
  o.kind_name = xstrdup (kind && *kind ? kind : "<unknown>");
  o.name = name && *name ? xstrdup (name) : xasprintf ("#%u", doc);
  o.ns = ns && *ns ? xstrdup (ns) : NULL;
  if (o.kind != ADMISSION_KIND_INVALID)
    admission_crd_apply_defaults (o.kind, o.root);
  set_push (set, &o);
}

/* Check that the documents are objects (and List items are) before adding
 * anything, so that a bad buffer adds nothing. */
static int
check_documents (const char *source, const struct admission_doc *docs, size_t n,
                 struct ate_error **err)
{
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *items = admission_get (docs[i].root, "items");
      const char *kind = admission_get_str (docs[i].root, "kind");

      if (!json_object_is_type (docs[i].root, json_type_object))
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "%s: document %u (line %u) is a YAML %s, not a Kubernetes "
                                    "object (a mapping)",
                                    source, docs[i].index, docs[i].line,
                                    admission_type_name (docs[i].root));
      if (kind == NULL || !str_has_suffix (kind, "List") || items == NULL)
        continue;
      if (!json_object_is_type (items, json_type_array))
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "%s: document %u (line %u): %s.items is not a list", source,
                                    docs[i].index, docs[i].line, kind);
      for (size_t j = 0; j < json_object_array_length (items); j++)
        if (!json_object_is_type (json_object_array_get_idx (items, j), json_type_object))
          return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                      "%s: document %u (line %u): %s.items[%zu] is not an object",
                                      source, docs[i].index, docs[i].line, kind, j);
    }
  return 0;
}

int
ate_admission_set_add_yaml (struct ate_admission_set *set, const char *source, const char *buf,
                            size_t len, const struct ate_admission_limits *limits,
                            struct ate_error **err)
{
  struct admission_doc *docs = NULL;
  size_t n = 0;

  if (admission_yaml_load (buf, len, limits, &docs, &n, err) < 0)
    return ate_error_wrap (err, "%s", source);
  if (check_documents (source, docs, n, err) < 0)
    {
      admission_docs_free (docs, n);
      return -1;
    }
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *items = admission_get (docs[i].root, "items");
      const char *kind = admission_get_str (docs[i].root, "kind");
      /* kubectl get -o yaml prints a List (v1 List, or a typed
       * SandboxConfigList): validate its items. */
      if (kind && str_has_suffix (kind, "List") && items != NULL)
        for (size_t j = 0; j < json_object_array_length (items); j++)
          add_object (set, source, docs[i].index, json_object_array_get_idx (items, j));
      else
        add_object (set, source, docs[i].index, docs[i].root);
    }
  admission_docs_free (docs, n);
  return 0;
}

static int
read_stdin (size_t max, char **out, size_t *len, struct ate_error **err)
{
  size_t cap = 65536, n = 0;
  char *buf = xmalloc (cap + 1);

  for (;;)
    {
      ssize_t r;
      if (n == cap)
        {
          if (cap > max)
            {
              free (buf);
              return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EFBIG,
                                          "standard input is larger than %zu bytes", max);
            }
          cap *= 2;
          buf = xrealloc (buf, cap + 1);
        }
      r = TEMP_FAILURE_RETRY (read (STDIN_FILENO, buf + n, cap - n));
      if (r < 0)
        {
          free (buf);
          return ate_error_make (err, errno, "reading standard input");
        }
      if (r == 0)
        break;
      n += (size_t) r;
    }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

int
ate_admission_set_add_file (struct ate_admission_set *set, const char *path,
                            const struct ate_admission_limits *limits, struct ate_error **err)
{
  struct ate_admission_limits defaults;
  cleanup_free char *buf = NULL;
  size_t len = 0;
  bool is_stdin = strcmp (path, "-") == 0;
  int ret;

  if (limits == NULL)
    {
      ate_admission_limits_default (&defaults);
      limits = &defaults;
    }
  if (is_stdin)
    ret = read_stdin (limits->max_bytes, &buf, &len, err);
  else
    ret = ate_read_file (path, limits->max_bytes, &buf, &len, err);
  if (ret < 0)
    {
      ate_error_set_code (*err, ATE_CODE_INVALID_ARGUMENT);
      return ret;
    }
  return ate_admission_set_add_yaml (set, is_stdin ? "<stdin>" : path, buf, len, limits, err);
}

/* ---- Object metadata ---------------------------------------------------------- */

static void
meta_add (struct ate_admission_report *r, const struct admission_object *o, const char *path,
          const char *what, const char *value, size_t len, const char *why)
{
  cleanup_free char *q = admission_quote (value, len);
  admission_report_add (r, o, ATE_ADMISSION_ORIGIN_SCHEMA, path, NULL, "Invalid value: %s: %s%s%s",
                        q, what ? what : "", what ? ": " : "", why);
}

static const char subdomain_why[]
    = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
      "'-' or '.', and must start and end with an alphanumeric character (e.g. "
      "'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
static const char label_why[]
    = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
      "and must start and end with an alphanumeric character (e.g. 'my-name',  or "
      "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

static void
check_string_map (struct ate_admission_report *r, const struct admission_object *o,
                  struct json_object *map, const char *field, bool labels)
{
  struct admission_path p;

  if (map == NULL)
    return;
  admission_path_init (&p, field);
  if (!json_object_is_type (map, json_type_object))
    admission_report_add (r, o, ATE_ADMISSION_ORIGIN_SCHEMA, p.buf, NULL,
                          "Invalid value: \"%s\": must be a map of strings",
                          admission_type_name (map));
  else
    {
      json_object_object_foreach (map, key, val)
      {
        const char *why = NULL;
        size_t saved = admission_path_push_key (&p, key);
        if (!json_object_is_type (val, json_type_string))
          admission_report_add (r, o, ATE_ADMISSION_ORIGIN_SCHEMA, p.buf, NULL,
                                "Invalid value: \"%s\": must be a string",
                                admission_type_name (val));
        else if (labels && !admission_is_label_key (key, strlen (key), &why))
          meta_add (r, o, field, NULL, key, strlen (key), why);
        else if (labels
                 && !admission_is_label_value (json_object_get_string (val),
                                               (size_t) json_object_get_string_len (val), &why))
          meta_add (r, o, p.buf, NULL, json_object_get_string (val),
                    (size_t) json_object_get_string_len (val), why);
        admission_path_pop (&p, saved);
      }
    }
  admission_path_fini (&p);
}

static void
check_metadata (struct ate_admission_report *r, const struct admission_object *o)
{
  struct json_object *meta = admission_get (o->root, "metadata");
  struct json_object *name = admission_get (meta, "name");
  struct json_object *ns = admission_get (meta, "namespace");

  if (meta != NULL && !json_object_is_type (meta, json_type_object))
    {
      admission_report_add (r, o, ATE_ADMISSION_ORIGIN_SCHEMA, "metadata", NULL,
                            "Invalid value: \"%s\": metadata must be an object",
                            admission_type_name (meta));
      return;
    }
  if (name == NULL && admission_get_str (meta, "generateName") == NULL)
    admission_report_add (r, o, ATE_ADMISSION_ORIGIN_SCHEMA, "metadata.name", NULL,
                          "Required value: name or generateName is required");
  else if (name != NULL && !json_object_is_type (name, json_type_string))
    admission_report_add (r, o, ATE_ADMISSION_ORIGIN_SCHEMA, "metadata.name", NULL,
                          "Invalid value: \"%s\": must be a string", admission_type_name (name));
  else if (name != NULL
           && !admission_is_dns1123_subdomain (json_object_get_string (name),
                                               (size_t) json_object_get_string_len (name)))
    meta_add (r, o, "metadata.name", NULL, json_object_get_string (name),
              (size_t) json_object_get_string_len (name),
              json_object_get_string_len (name) > 253 ? "must be no more than 253 characters"
                                                      : subdomain_why);
  if (ns != NULL
      && (!json_object_is_type (ns, json_type_string)
          || !admission_is_dns1123_label (json_object_get_string (ns),
                                          (size_t) json_object_get_string_len (ns))))
    meta_add (r, o, "metadata.namespace", NULL,
              json_object_is_type (ns, json_type_string) ? json_object_get_string (ns) : "",
              json_object_is_type (ns, json_type_string) ? (size_t) json_object_get_string_len (ns)
                                                         : 0,
              label_why);
  check_string_map (r, o, admission_get (meta, "labels"), "metadata.labels", true);
  check_string_map (r, o, admission_get (meta, "annotations"), "metadata.annotations", false);
}

/* ---- Validation ------------------------------------------------------------------ */

static bool
same_str (const char *a, const char *b, const char *dflt)
{
  return strcmp (a ? a : dflt, b ? b : dflt) == 0;
}

static struct json_object *
find_old (const struct ate_admission_set *old, const struct admission_object *o)
{
  const char *dflt = o->kind == ADMISSION_KIND_SANDBOXCONFIG ? "" : "default";

  for (size_t i = 0; old && i < old->n; i++)
    if (old->objs[i].kind == o->kind && strcmp (old->objs[i].name, o->name) == 0
        && same_str (old->objs[i].ns, o->ns, dflt))
      return old->objs[i].root;
  return NULL;
}

static void
validate_object (struct ate_admission_report *r, const struct admission_object *o,
                 const struct ate_admission_set *old, unsigned flags)
{
  struct admission_schema_ctx ctx = { .report = r, .obj = o, .flags = flags };
  struct admission_path p;

  if (o->kind == ADMISSION_KIND_INVALID)
    {
      admission_report_add (r, o, ATE_ADMISSION_ORIGIN_SCHEMA, o->header_path, NULL, "%s",
                            o->header_message);
      return;
    }
  ctx.old_root = find_old (old, o);
  check_metadata (r, o);
  admission_path_init (&p, "");
  admission_schema_validate (&ctx, admission_crd_schema (o->kind), o->root, ctx.old_root, &p);
  admission_path_fini (&p);
  if (o->kind == ADMISSION_KIND_SANDBOXCONFIG)
    admission_policy_check (r, o, flags);
  admission_controller_check (r, o);
}

int
ate_admission_validate (const struct ate_admission_set *set, const struct ate_admission_set *old,
                        unsigned flags, struct ate_admission_report **out, struct ate_error **err)
{
  struct ate_admission_report *r = admission_report_new ();

  (void) err;
  for (size_t i = 0; i < set->n; i++)
    validate_object (r, &set->objs[i], old, flags);
  admission_cross_check (r, set, flags);
  admission_report_set_objects (r, set->n);
  *out = r;
  return 0;
}
