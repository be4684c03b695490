/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ate.dev/v1alpha1 CRD schemas as data: SandboxConfig and WorkerPool as
 * upstream defines them (the same at e44249f7 and 86e138f6), ActorTemplate
 * as at 86e138f6 (a superset: readyz, volumes, volumeMounts, snapshot
 * scopes; docs/admission.md, "CRD schema").  Their
 * x-kubernetes-validations (CEL in the CRDs) are the rule_* functions below,
 * with the CRD's messages.  Also the defaults the apiserver applies before
 * validating, and the object-metadata checks it makes for every object.
 */
#define _GNU_SOURCE
#include <string.h>

#include "k8s/admission_crds.h"
#include "k8s/admission_names.h"
#include "k8s/admission_object.h"
#include "k8s/admission_schema.h"
#include "util/util.h"

/* ---- Patterns ---------------------------------------------------------------- */

static bool
match_sha256 (const char *s, size_t len)
{
  if (len != 64)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

/* ^[ -<>-~]+$ : printable ASCII except '=' */
static bool
match_env_name (const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (s[i] < ' ' || s[i] > '~' || s[i] == '=')
      return false;
  return len > 0;
}

/* ^[-._a-zA-Z0-9]+$ */
static bool
match_secret_key (const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    {
      char c = s[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
            || c == '.' || c == '_'))
        return false;
    }
  return len > 0;
}

static bool
is_hex (char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ^/([A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$ */
static bool
match_http_path (const char *s, size_t len)
{
  if (len == 0 || s[0] != '/')
    return false;
  for (size_t i = 1; i < len; i++)
    {
      char c = s[i];
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || strchr ("-._~!$&'()*+,;=:@/", c) != NULL)
        continue;
      if (c == '%' && i + 2 < len && is_hex (s[i + 1]) && is_hex (s[i + 2]))
        {
          i += 2;
          continue;
        }
      return false;
    }
  return true;
}

/* ---- x-kubernetes-validations ------------------------------------------------- */

static const char *
str_of (struct json_object *v, size_t *len)
{
  *len = (size_t) json_object_get_string_len (v);
  return json_object_get_string (v);
}

static bool
rule_dns_label (const struct admission_schema_ctx *ctx, struct json_object *self,
                struct json_object *old)
{
  size_t len;
  const char *s = str_of (self, &len);
  (void) ctx;
  (void) old;
  return admission_is_dns1123_label (s, len);
}

static bool
rule_dns_subdomain (const struct admission_schema_ctx *ctx, struct json_object *self,
                    struct json_object *old)
{
  size_t len;
  const char *s = str_of (self, &len);
  (void) ctx;
  (void) old;
  return admission_is_dns1123_subdomain (s, len);
}

/* self.contains('@') */
static bool
rule_pinned (const struct admission_schema_ctx *ctx, struct json_object *self,
             struct json_object *old)
{
  size_t len;
  const char *s = str_of (self, &len);
  (void) ctx;
  (void) old;
  return memchr (s, '@', len) != NULL;
}

/* [has(self.value),has(self.valueFrom)].filter(x,x==true).size() == 1 */
static bool
rule_env_exactly_one (const struct admission_schema_ctx *ctx, struct json_object *self,
                      struct json_object *old)
{
  (void) ctx;
  (void) old;
  return (admission_get (self, "value") != NULL) + (admission_get (self, "valueFrom") != NULL) == 1;
}

static bool
rule_volume_exactly_one (const struct admission_schema_ctx *ctx, struct json_object *self,
                         struct json_object *old)
{
  (void) ctx;
  (void) old;
  return admission_get (self, "durableDir") != NULL;
}

/* self.startsWith('/') && size(self) > 1 && !self.endsWith('/') &&
 * !self.contains('//') && !self.contains(':') && no control characters &&
 * no "." or ".." component */
static bool
rule_clean_mount_path (const struct admission_schema_ctx *ctx, struct json_object *self,
                       struct json_object *old)
{
  size_t len, start = 1;
  const char *s = str_of (self, &len);
  (void) ctx;
  (void) old;

  if (len < 2 || s[0] != '/' || s[len - 1] == '/' || memmem (s, len, "//", 2) != NULL
      || memchr (s, ':', len) != NULL)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
      return false;
  for (size_t i = 1; i <= len; i++)
    if (i == len || s[i] == '/')
      {
        size_t n = i - start;
        if ((n == 1 && s[start] == '.') || (n == 2 && s[start] == '.' && s[start + 1] == '.'))
          return false;
        start = i + 1;
      }
  return true;
}

static const char *
scope_or_full (struct json_object *cfg, const char *key)
{
  const char *v = admission_get_str (cfg, key);
  return v ? v : "Full";
}

static bool
rule_on_commit_subset (const struct admission_schema_ctx *ctx, struct json_object *self,
                       struct json_object *old)
{
  const char *pause = scope_or_full (self, "onPause");
  (void) ctx;
  (void) old;
  return strcmp (pause, "Full") == 0 || strcmp (scope_or_full (self, "onCommit"), pause) == 0;
}

/* self == oldSelf */
static bool
rule_immutable (const struct admission_schema_ctx *ctx, struct json_object *self,
                struct json_object *old)
{
  (void) ctx;
  return json_object_equal (self, old) != 0;
}

static bool
is_durable_volume (struct json_object *v)
{
  return admission_get (v, "durableDir") != NULL;
}

static size_t
count_durable_volumes (struct json_object *spec)
{
  struct json_object *vols = admission_get (spec, "volumes");
  size_t n = 0;
  if (!json_object_is_type (vols, json_type_array))
    return 0;
  for (size_t i = 0; i < json_object_array_length (vols); i++)
    n += is_durable_volume (json_object_array_get_idx (vols, i));
  return n;
}

static bool
rule_one_durable_volume (const struct admission_schema_ctx *ctx, struct json_object *self,
                         struct json_object *old)
{
  (void) ctx;
  (void) old;
  return count_durable_volumes (self) <= 1;
}

static bool
names_durable_volume (struct json_object *spec, const char *name)
{
  struct json_object *vols = admission_get (spec, "volumes");
  if (!json_object_is_type (vols, json_type_array) || name == NULL)
    return false;
  for (size_t i = 0; i < json_object_array_length (vols); i++)
    {
      struct json_object *v = json_object_array_get_idx (vols, i);
      const char *n = admission_get_str (v, "name");
      if (n && strcmp (n, name) == 0 && is_durable_volume (v))
        return true;
    }
  return false;
}

static bool
rule_container_one_durable_mount (const struct admission_schema_ctx *ctx, struct json_object *self,
                                  struct json_object *old)
{
  struct json_object *containers = admission_get (self, "containers");
  (void) ctx;
  (void) old;
  if (!json_object_is_type (containers, json_type_array))
    return true;
  for (size_t i = 0; i < json_object_array_length (containers); i++)
    {
      struct json_object *mounts
          = admission_get (json_object_array_get_idx (containers, i), "volumeMounts");
      size_t n = 0;
      if (!json_object_is_type (mounts, json_type_array))
        continue;
      for (size_t j = 0; j < json_object_array_length (mounts); j++)
        n += names_durable_volume (
            self, admission_get_str (json_object_array_get_idx (mounts, j), "name"));
      if (n > 1)
        return false;
    }
  return true;
}

static bool
rule_no_durable_on_microvm (const struct admission_schema_ctx *ctx, struct json_object *self,
                            struct json_object *old)
{
  const char *cls = admission_get_str (self, "sandboxClass");
  (void) ctx;
  (void) old;
  return cls == NULL || strcmp (cls, ATE_ADMISSION_CLASS_MICROVM) != 0
         || count_durable_volumes (self) == 0;
}

/* ---- Schemas -------------------------------------------------------------------- */

#define PROPS(...) ((const struct admission_schema_prop[]){ __VA_ARGS__, { NULL, NULL, false } })
#define RULES(...) ((const struct admission_schema_rule[]){ __VA_ARGS__, { NULL, NULL, false } })

static const char *const class_enum[] = { "gvisor", "microvm", NULL };
static const char *const scope_enum[] = { "Full", "Data", NULL };

static const struct admission_schema s_string = { .type = SCHEMA_STRING };
static const struct admission_schema s_bool = { .type = SCHEMA_BOOLEAN };
static const struct admission_schema s_int = { .type = SCHEMA_INTEGER };
static const struct admission_schema s_any = { .type = SCHEMA_ANY };
static const struct admission_schema s_string_map = { .type = SCHEMA_MAP, .items = &s_string };
static const struct admission_schema s_string_list = { .type = SCHEMA_ARRAY, .items = &s_string };
static const struct admission_schema s_class = { .type = SCHEMA_STRING, .enums = class_enum };

/* SandboxConfig */
static const struct admission_schema s_asset_file = {
  .type = SCHEMA_OBJECT,
  .props
  = PROPS ({ "url", &(const struct admission_schema){ .type = SCHEMA_STRING, .min_len = 1 }, true },
           { "sha256",
             &(const struct admission_schema){
                 .type = SCHEMA_STRING, .pattern = "^[a-f0-9]{64}$", .match = match_sha256 },
             true }),
};
static const struct admission_schema s_arch_assets = { .type = SCHEMA_MAP, .items = &s_asset_file };
static const struct admission_schema s_sandboxconfig = {
  .type = SCHEMA_OBJECT,
  .props
  = PROPS ({ "apiVersion", &s_string, false }, { "kind", &s_string, false },
           { "metadata", &s_any, false },
           { "spec",
             &(const struct admission_schema){
                 .type = SCHEMA_OBJECT,
                 .props = PROPS ({ "sandboxClass", &s_class, true }, { "default", &s_bool, false },
                                 { "assets",
                                   &(const struct admission_schema){ .type = SCHEMA_MAP,
                                                                     .items = &s_arch_assets },
                                   false }) },
             true }),
};

/* WorkerPool */
static const struct admission_schema s_selector_requirement = {
  .type = SCHEMA_OBJECT,
  .props = PROPS ({ "key", &s_string, true }, { "operator", &s_string, true },
                  { "values", &s_string_list, false }),
};
static const struct admission_schema s_selector_requirements
    = { .type = SCHEMA_ARRAY, .items = &s_selector_requirement };
static const struct admission_schema s_node_selector_term = {
  .type = SCHEMA_OBJECT,
  .props = PROPS ({ "matchExpressions", &s_selector_requirements, false },
                  { "matchFields", &s_selector_requirements, false }),
};
static const struct admission_schema s_node_affinity = {
  .type = SCHEMA_OBJECT,
  .props = PROPS (
      { "preferredDuringSchedulingIgnoredDuringExecution",
        &(const struct admission_schema){
            .type = SCHEMA_ARRAY,
            .items
            = &(const struct admission_schema){ .type = SCHEMA_OBJECT,
                                                .props = PROPS (
                                                    { "preference", &s_node_selector_term, true },
                                                    { "weight", &s_int, true }) } },
        false },
      { "requiredDuringSchedulingIgnoredDuringExecution",
        &(const struct admission_schema){
            .type = SCHEMA_OBJECT,
            .props = PROPS ({ "nodeSelectorTerms",
                              &(const struct admission_schema){ .type = SCHEMA_ARRAY,
                                                                .items = &s_node_selector_term },
                              true }) },
        false }),
};
static const struct admission_schema s_quantities
    = { .type = SCHEMA_MAP,
        .items = &(const struct admission_schema){ .type = SCHEMA_INT_OR_STRING } };
static const struct admission_schema s_resources = {
  .type = SCHEMA_OBJECT,
  .props = PROPS (
      { "claims",
        &(const struct admission_schema){
            .type = SCHEMA_ARRAY,
            .items = &(const struct admission_schema){ .type = SCHEMA_OBJECT,
                                                       .props = PROPS (
                                                           { "name", &s_string, true },
                                                           { "request", &s_string, false }) } },
        false },
      { "limits", &s_quantities, false }, { "requests", &s_quantities, false }),
};
static const struct admission_schema s_toleration = {
  .type = SCHEMA_OBJECT,
  .props = PROPS ({ "effect", &s_string, false }, { "key", &s_string, false },
                  { "operator", &s_string, false }, { "tolerationSeconds", &s_int, false },
                  { "value", &s_string, false }),
};
static const struct admission_schema s_pool_template = {
  .type = SCHEMA_OBJECT,
  .props
  = PROPS ({ "nodeAffinity", &s_node_affinity, false }, { "nodeSelector", &s_string_map, false },
           { "priorityClassName", &s_string, false }, { "resources", &s_resources, false },
           { "tolerations",
             &(const struct admission_schema){
                 .type = SCHEMA_ARRAY, .items = &s_toleration, .max_len = 16 },
             false }),
};
static const struct admission_schema s_count
    = { .type = SCHEMA_INTEGER, .has_minimum = true, .minimum = 0 };
static const struct admission_schema s_workerpool = {
  .type = SCHEMA_OBJECT,
  .props = PROPS (
      { "apiVersion", &s_string, false }, { "kind", &s_string, false },
      { "metadata", &s_any, false },
      { "spec",
        &(const struct admission_schema){
            .type = SCHEMA_OBJECT,
            .props = PROPS (
                { "ateomImage",
                  &(const struct admission_schema){ .type = SCHEMA_STRING, .min_len = 1 }, true },
                { "replicas", &s_count, true }, { "sandboxClass", &s_class, false },
                { "sandboxConfigName", &s_string, false },
                { "template", &s_pool_template, false }) },
        true },
      { "status",
        &(const struct admission_schema){ .type = SCHEMA_OBJECT,
                                          .props = PROPS ({ "replicas", &s_count, false }) },
        false }),
};

/* ActorTemplate */
static const struct admission_schema s_dns_label_name = {
  .type = SCHEMA_STRING,
  .max_len = 63,
  .rules = RULES ({ rule_dns_label, "Name must be a valid DNS label", false }),
};
static const struct admission_schema s_pinned_image = {
  .type = SCHEMA_STRING,
  .rules
  = RULES ({ rule_pinned, "All images must be pinned (changing the image invalidates snapshots)",
             false }),
};
static const struct admission_schema s_secret_key_ref = {
  .type = SCHEMA_OBJECT,
  .props = PROPS (
      { "key",
        &(const struct admission_schema){ .type = SCHEMA_STRING,
                                          .min_len = 1,
                                          .pattern = "^[-._a-zA-Z0-9]+$",
                                          .match = match_secret_key },
        true },
      { "name",
        &(const struct admission_schema){
            .type = SCHEMA_STRING,
            .max_len = 253,
            .rules = RULES ({ rule_dns_subdomain, "Name must be a valid DNS subdomain", false }) },
        true },
      { "optional", &s_bool, false }),
};
static const struct admission_schema s_env_var = {
  .type = SCHEMA_OBJECT,
  .props = PROPS ({ "name",
                    &(const struct admission_schema){ .type = SCHEMA_STRING,
                                                      .min_len = 1,
                                                      .pattern = "^[ -<>-~]+$",
                                                      .match = match_env_name },
                    true },
                  { "value", &s_string, false },
                  { "valueFrom",
                    &(const struct admission_schema){
                        .type = SCHEMA_OBJECT,
                        .min_len = 1,
                        .max_len = 1,
                        .props = PROPS ({ "secretKeyRef", &s_secret_key_ref, false }) },
                    false }),
  .rules = RULES ({ rule_env_exactly_one,
                    "exactly one of the fields in [value valueFrom] must be set", false }),
};
static const struct admission_schema s_readyz = {
  .type = SCHEMA_OBJECT,
  .props
  = PROPS ({ "httpGet",
             &(const struct admission_schema){
                 .type = SCHEMA_OBJECT,
                 .props
                 = PROPS ({ "path",
                            &(const struct admission_schema){
                                .type = SCHEMA_STRING,
                                .max_len = 1024,
                                .pattern = "^/([A-Za-z0-9\\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$",
                                .match = match_http_path },
                            false },
                          { "port",
                            &(const struct admission_schema){ .type = SCHEMA_INTEGER,
                                                              .has_minimum = true,
                                                              .minimum = 1,
                                                              .has_maximum = true,
                                                              .maximum = 65535 },
                            true }) },
             true }),
};
static const struct admission_schema s_volume_mount = {
  .type = SCHEMA_OBJECT,
  .props
  = PROPS ({ "mountPath",
             &(const struct admission_schema){
                 .type = SCHEMA_STRING,
                 .max_len = 4096,
                 .rules = RULES ({ rule_clean_mount_path,
                                   "MountPath must be a clean absolute Unix path: must start with "
                                   "'/', not be '/', and contain no ':', '..', '.', '//', trailing "
                                   "'/', or control characters",
                                   false }) },
             true },
           { "name", &s_dns_label_name, true }),
};
static const struct admission_schema s_container = {
  .type = SCHEMA_OBJECT,
  .props = PROPS (
      { "command",
        &(const struct admission_schema){ .type = SCHEMA_ARRAY, .items = &s_string, .max_len = 64 },
        false },
      { "env",
        &(const struct admission_schema){
            .type = SCHEMA_ARRAY, .items = &s_env_var, .max_len = 32 },
        false },
      { "image", &s_pinned_image, true }, { "name", &s_dns_label_name, true },
      { "readyz", &s_readyz, false },
      { "volumeMounts",
        &(const struct admission_schema){
            .type = SCHEMA_ARRAY, .items = &s_volume_mount, .max_len = 32 },
        false }),
};
static const struct admission_schema s_volume = {
  .type = SCHEMA_OBJECT,
  .props
  = PROPS ({ "durableDir", &(const struct admission_schema){ .type = SCHEMA_OBJECT }, false },
           { "name", &s_dns_label_name, true }),
  .rules = RULES (
      { rule_volume_exactly_one, "exactly one of the fields in [durableDir] must be set", false }),
};
static const struct admission_schema s_scope = { .type = SCHEMA_STRING, .enums = scope_enum };
static const struct admission_schema s_snapshots_config = {
  .type = SCHEMA_OBJECT,
  .props = PROPS (
      { "location", &(const struct admission_schema){ .type = SCHEMA_STRING, .min_len = 1 }, true },
      { "onCommit", &s_scope, false }, { "onPause", &s_scope, false }),
  .rules = RULES ({ rule_on_commit_subset, "onCommit must be a subset of onPause", false }),
};
static const struct admission_schema s_label_selector = {
  .type = SCHEMA_OBJECT,
  .props = PROPS ({ "matchExpressions", &s_selector_requirements, false },
                  { "matchLabels", &s_string_map, false }),
};
static const struct admission_schema s_actortemplate = {
  .type = SCHEMA_OBJECT,
  .props = PROPS (
      { "apiVersion", &s_string, false }, { "kind", &s_string, false },
      { "metadata", &s_any, false },
      { "spec",
        &(const struct admission_schema){
            .type = SCHEMA_OBJECT,
            .props = PROPS ({ "containers",
                              &(const struct admission_schema){
                                  .type = SCHEMA_ARRAY, .items = &s_container, .max_len = 10 },
                              false },
                            { "pauseImage", &s_pinned_image, true },
                            { "sandboxClass", &s_class, false },
                            { "snapshotsConfig", &s_snapshots_config, true },
                            { "volumes",
                              &(const struct admission_schema){
                                  .type = SCHEMA_ARRAY, .items = &s_volume, .max_len = 32 },
                              false },
                            { "workerSelector", &s_label_selector, false }),
            .rules = RULES (
                { rule_immutable, "Spec is immutable", true },
                { rule_one_durable_volume,
                  "At most one DurableDir-typed volume is supported per ActorTemplate", false },
                { rule_container_one_durable_mount,
                  "A container may mount at most one DurableDir-typed volume", false },
                { rule_no_durable_on_microvm,
                  "DurableDir volumes are not supported when sandboxClass is 'microvm'", false }) },
        true },
      { "status", &s_any, false }),
};

const struct admission_schema *
admission_crd_schema (enum admission_kind kind)
{
  switch (kind)
    {
    case ADMISSION_KIND_SANDBOXCONFIG:
      return &s_sandboxconfig;
    case ADMISSION_KIND_WORKERPOOL:
      return &s_workerpool;
    case ADMISSION_KIND_ACTORTEMPLATE:
      return &s_actortemplate;
    case ADMISSION_KIND_INVALID:
      break;
    }
  return NULL;
}

/* ---- Defaults -------------------------------------------------------------------- */

/* The apiserver drops null members of non-nullable fields before defaulting
 * and validation (none of our fields is nullable). */
static void
prune_nulls (struct json_object *v, unsigned depth)
{
  if (depth > 128)
    return;
  if (json_object_is_type (v, json_type_array))
    {
      for (size_t i = 0; i < json_object_array_length (v); i++)
        prune_nulls (json_object_array_get_idx (v, i), depth + 1);
      return;
    }
  if (!json_object_is_type (v, json_type_object))
    return;
  for (;;)
    {
      const char *null_key = NULL;
      json_object_object_foreach (v, key, val)
      {
        if (val == NULL)
          {
            null_key = key;
            break;
          }
        prune_nulls (val, depth + 1);
      }
      if (null_key == NULL)
        return;
      json_object_object_del (v, null_key);
    }
}

static void
default_string (struct json_object *parent, const char *key, const char *value)
{
  if (json_object_is_type (parent, json_type_object) && admission_get (parent, key) == NULL)
    json_object_object_add (parent, key, json_object_new_string (value));
}

void
admission_crd_apply_defaults (enum admission_kind kind, struct json_object *root)
{
  struct json_object *spec, *containers;

  prune_nulls (admission_get (root, "spec"), 0);
  prune_nulls (admission_get (root, "status"), 0);
  if (admission_get (root, "spec") == NULL && json_object_object_get_ex (root, "spec", NULL))
    json_object_object_del (root, "spec");
  spec = admission_get (root, "spec");
  default_string (spec, "sandboxClass", ATE_ADMISSION_CLASS_GVISOR);
  if (kind != ADMISSION_KIND_ACTORTEMPLATE)
    return;
  default_string (admission_get (spec, "snapshotsConfig"), "onPause", "Full");
  default_string (admission_get (spec, "snapshotsConfig"), "onCommit", "Full");
  containers = admission_get (spec, "containers");
  if (!json_object_is_type (containers, json_type_array))
    return;
  for (size_t i = 0; i < json_object_array_length (containers); i++)
    default_string (
        admission_get (admission_get (json_object_array_get_idx (containers, i), "readyz"),
                       "httpGet"),
        "path", "/readyz");
}
