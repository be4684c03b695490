/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker Deployment the controller applies for a WorkerPool (its
 * server-side apply configuration, field for field): one privileged "ateom"
 * container on the shared hostPath /var/lib/ateom-gvisor, plus for the
 * microvm class the /dev/kvm device and the ate.dev/sandboxClass=microvm
 * node selector and toleration.  Fields appear in the order of the Go API
 * structs (but apiVersion before kind, as manifests write them); maps (node
 * selector, resource lists) with sorted keys, as Go marshals them.  The
 * controller always sends priorityClassName, affinity and resources, empty
 * when the pool's template leaves them out; so do we.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "k8s/admission.h"
#include "k8s/admission_object.h"
#include "util/error.h"
#include "util/util.h"

#define BASE_PATH "/var/lib/ateom-gvisor" /* ateompath.BasePath */
#define POOL_LABEL "ate.dev/worker-pool"
#define CLASS_LABEL "ate.dev/sandboxClass"

static struct json_object *
jstr (const char *s)
{
  return json_object_new_string (s);
}

static void
put (struct json_object *o, const char *key, struct json_object *v)
{
  json_object_object_add (o, key, v);
}

static void
put_str_if (struct json_object *o, const char *key, const char *v)
{
  if (v != NULL && *v != '\0')
    put (o, key, jstr (v));
}

static struct json_object *
copy_or_null (struct json_object *v)
{
  struct json_object *c = NULL;
  if (v != NULL && json_object_deep_copy (v, &c, NULL) != 0)
    ate_oom ();
  return c;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* A string map with sorted keys; values go through `conv`. */
static struct json_object *
sorted_map (struct json_object *src, struct json_object *(*conv) (struct json_object *) )
{
  struct json_object *out = json_object_new_object ();
  size_t n = 0, cap = (size_t) json_object_object_length (src);
  cleanup_free char **keys = xcalloc (cap + 1, sizeof (char *));

  json_object_object_foreach (src, key, val)
  {
    (void) val;
    keys[n++] = key;
  }
  qsort (keys, n, sizeof (char *), cmp_str);
  for (size_t i = 0; i < n; i++)
    put (out, keys[i], conv (admission_get (src, keys[i])));
  return out;
}

/* resource.Quantity always marshals as a string. */
static struct json_object *
quantity (struct json_object *v)
{
  if (json_object_is_type (v, json_type_string))
    return copy_or_null (v);
  return jstr (json_object_to_json_string_ext (v, JSON_C_TO_STRING_PLAIN));
}

static struct json_object *
toleration (struct json_object *t)
{
  struct json_object *out = json_object_new_object ();
  put_str_if (out, "key", admission_get_str (t, "key"));
  put_str_if (out, "operator", admission_get_str (t, "operator"));
  put_str_if (out, "value", admission_get_str (t, "value"));
  put_str_if (out, "effect", admission_get_str (t, "effect"));
  if (admission_get (t, "tolerationSeconds"))
    put (out, "tolerationSeconds",
         json_object_new_int64 (json_object_get_int64 (admission_get (t, "tolerationSeconds"))));
  return out;
}

static struct json_object *
selector_requirements (struct json_object *list)
{
  struct json_object *out = json_object_new_array ();
  for (size_t i = 0; i < json_object_array_length (list); i++)
    {
      struct json_object *req = json_object_array_get_idx (list, i);
      struct json_object *r = json_object_new_object ();
      struct json_object *values = admission_get (req, "values");
      put (r, "key", copy_or_null (admission_get (req, "key")));
      put (r, "operator", copy_or_null (admission_get (req, "operator")));
      if (json_object_is_type (values, json_type_array) && json_object_array_length (values) > 0)
        put (r, "values", copy_or_null (values));
      json_object_array_add (out, r);
    }
  return out;
}

static struct json_object *
node_selector_term (struct json_object *term)
{
  struct json_object *out = json_object_new_object ();
  if (admission_get (term, "matchExpressions"))
    put (out, "matchExpressions", selector_requirements (admission_get (term, "matchExpressions")));
  if (admission_get (term, "matchFields"))
    put (out, "matchFields", selector_requirements (admission_get (term, "matchFields")));
  return out;
}

static struct json_object *
node_affinity (struct json_object *na)
{
  struct json_object *out = json_object_new_object ();
  struct json_object *req = admission_get (na, "requiredDuringSchedulingIgnoredDuringExecution");
  struct json_object *pref = admission_get (na, "preferredDuringSchedulingIgnoredDuringExecution");

  if (req != NULL)
    {
      struct json_object *terms = admission_get (req, "nodeSelectorTerms");
      struct json_object *r = json_object_new_object ();
      struct json_object *list = json_object_new_array ();
      for (size_t i = 0; i < json_object_array_length (terms); i++)
        json_object_array_add (list, node_selector_term (json_object_array_get_idx (terms, i)));
      put (r, "nodeSelectorTerms", list);
      put (out, "requiredDuringSchedulingIgnoredDuringExecution", r);
    }
  if (pref != NULL)
    {
      struct json_object *list = json_object_new_array ();
      for (size_t i = 0; i < json_object_array_length (pref); i++)
        {
          struct json_object *p = json_object_array_get_idx (pref, i);
          struct json_object *t = json_object_new_object ();
          put (t, "weight", copy_or_null (admission_get (p, "weight")));
          put (t, "preference", node_selector_term (admission_get (p, "preference")));
          json_object_array_add (list, t);
        }
      put (out, "preferredDuringSchedulingIgnoredDuringExecution", list);
    }
  return out;
}

static struct json_object *
security_context (bool privileged)
{
  struct json_object *sc = json_object_new_object ();
  if (privileged)
    put (sc, "privileged", json_object_new_boolean (1));
  put (sc, "runAsUser", json_object_new_int64 (0));
  put (sc, "runAsGroup", json_object_new_int64 (0));
  return sc;
}

static struct json_object *
host_path_volume (const char *name, const char *path, const char *type)
{
  struct json_object *v = json_object_new_object ();
  struct json_object *hp = json_object_new_object ();
  put (hp, "path", jstr (path));
  put (hp, "type", jstr (type));
  put (v, "name", jstr (name));
  put (v, "hostPath", hp);
  return v;
}

static struct json_object *
mount (const char *name, const char *path)
{
  struct json_object *m = json_object_new_object ();
  put (m, "name", jstr (name));
  put (m, "mountPath", jstr (path));
  return m;
}

static struct json_object *
container (struct json_object *pool_spec, struct json_object *tmpl, bool microvm)
{
  struct json_object *c = json_object_new_object ();
  struct json_object *args = json_object_new_array ();
  struct json_object *env = json_object_new_array ();
  struct json_object *pod_uid = json_object_new_object ();
  struct json_object *from = json_object_new_object ();
  struct json_object *field = json_object_new_object ();
  struct json_object *mounts = json_object_new_array ();
  struct json_object *res = json_object_new_object ();
  struct json_object *tres = admission_get (tmpl, "resources");

  put (c, "name", jstr ("ateom"));
  put (c, "image", copy_or_null (admission_get (pool_spec, "ateomImage")));
  json_object_array_add (args, jstr ("--pod-uid=$(POD_UID)"));
  put (c, "args", args);
  put (field, "fieldPath", jstr ("metadata.uid"));
  put (from, "fieldRef", field);
  put (pod_uid, "name", jstr ("POD_UID"));
  put (pod_uid, "valueFrom", from);
  json_object_array_add (env, pod_uid);
  put (c, "env", env);
  if (admission_get (tres, "limits"))
    put (res, "limits", sorted_map (admission_get (tres, "limits"), quantity));
  if (admission_get (tres, "requests"))
    put (res, "requests", sorted_map (admission_get (tres, "requests"), quantity));
  put (c, "resources", res);
  json_object_array_add (mounts, mount ("run-ateom", BASE_PATH));
  if (microvm)
    json_object_array_add (mounts, mount ("dev-kvm", "/dev/kvm"));
  put (c, "volumeMounts", mounts);
  put (c, "securityContext", security_context (true));
  return c;
}

static struct json_object *
pod_spec (struct json_object *pool_spec, bool microvm)
{
  struct json_object *tmpl = admission_get (pool_spec, "template");
  struct json_object *pod = json_object_new_object ();
  struct json_object *volumes = json_object_new_array ();
  struct json_object *containers = json_object_new_array ();
  struct json_object *selector = json_object_new_object ();
  struct json_object *tols = json_object_new_array ();
  struct json_object *affinity = json_object_new_object ();
  struct json_object *ttols = admission_get (tmpl, "tolerations");
  const char *prio = admission_get_str (tmpl, "priorityClassName");

  json_object_array_add (volumes, host_path_volume ("run-ateom", BASE_PATH, "DirectoryOrCreate"));
  if (microvm)
    json_object_array_add (volumes, host_path_volume ("dev-kvm", "/dev/kvm", "CharDevice"));
  put (pod, "volumes", volumes);
  json_object_array_add (containers, container (pool_spec, tmpl, microvm));
  put (pod, "containers", containers);

  /* The pool's own selector, with ours overriding the same key. */
  if (json_object_is_type (admission_get (tmpl, "nodeSelector"), json_type_object))
    {
      json_object_object_foreach (admission_get (tmpl, "nodeSelector"), key, val)
      {
        put (selector, key, copy_or_null (val));
      }
    }
  if (microvm)
    put (selector, CLASS_LABEL, jstr (ATE_ADMISSION_CLASS_MICROVM));
  if (json_object_object_length (selector) > 0)
    put (pod, "nodeSelector", sorted_map (selector, copy_or_null));
  json_object_put (selector);

  put (pod, "securityContext", security_context (false));
  if (admission_get (tmpl, "nodeAffinity"))
    put (affinity, "nodeAffinity", node_affinity (admission_get (tmpl, "nodeAffinity")));
  put (pod, "affinity", affinity);

  for (size_t i = 0;
       json_object_is_type (ttols, json_type_array) && i < json_object_array_length (ttols); i++)
    json_object_array_add (tols, toleration (json_object_array_get_idx (ttols, i)));
  if (microvm)
    {
      struct json_object *t = json_object_new_object ();
      put (t, "key", jstr (CLASS_LABEL));
      put (t, "operator", jstr ("Equal"));
      put (t, "value", jstr (ATE_ADMISSION_CLASS_MICROVM));
      put (t, "effect", jstr ("NoSchedule"));
      json_object_array_add (tols, t);
    }
  if (json_object_array_length (tols) > 0)
    put (pod, "tolerations", tols);
  else
    json_object_put (tols);
  put (pod, "priorityClassName", jstr (prio ? prio : ""));
  return pod;
}

static struct json_object *
pool_labels (const char *name)
{
  struct json_object *l = json_object_new_object ();
  put (l, POOL_LABEL, jstr (name));
  return l;
}

static struct json_object *
build_deployment (const struct admission_object *pool)
{
  struct json_object *spec = admission_get (pool->root, "spec");
  const char *uid = admission_get_str (admission_get (pool->root, "metadata"), "uid");
  bool microvm = strcmp (admission_object_class (pool), ATE_ADMISSION_CLASS_MICROVM) == 0;
  struct json_object *d = json_object_new_object ();
  struct json_object *meta = json_object_new_object ();
  struct json_object *owners = json_object_new_array ();
  struct json_object *owner = json_object_new_object ();
  struct json_object *dspec = json_object_new_object ();
  struct json_object *selector = json_object_new_object ();
  struct json_object *tmpl = json_object_new_object ();
  struct json_object *tmeta = json_object_new_object ();
  cleanup_free char *dname = xasprintf ("%s-deployment", pool->name);

  put (d, "apiVersion", jstr ("apps/v1"));
  put (d, "kind", jstr ("Deployment"));
  put (meta, "name", jstr (dname));
  put (meta, "namespace", jstr (pool->ns ? pool->ns : "default"));
  put (owner, "apiVersion", jstr (ATE_ADMISSION_API_VERSION));
  put (owner, "kind", jstr ("WorkerPool"));
  put (owner, "name", jstr (pool->name));
  /* Only a stored WorkerPool (kubectl get -o yaml) has a uid. */
  put_str_if (owner, "uid", uid);
  put (owner, "controller", json_object_new_boolean (1));
  put (owner, "blockOwnerDeletion", json_object_new_boolean (1));
  json_object_array_add (owners, owner);
  put (meta, "ownerReferences", owners);
  put (d, "metadata", meta);

  put (dspec, "replicas",
       json_object_new_int64 (json_object_get_int64 (admission_get (spec, "replicas"))));
  put (selector, "matchLabels", pool_labels (pool->name));
  put (dspec, "selector", selector);
  put (tmeta, "labels", pool_labels (pool->name));
  put (tmpl, "metadata", tmeta);
  put (tmpl, "spec", pod_spec (spec, microvm));
  put (dspec, "template", tmpl);
  put (d, "spec", dspec);
  return d;
}

char **
ate_admission_set_workerpool_names (const struct ate_admission_set *set)
{
  char **names = xcalloc (set->n + 1, sizeof (char *));
  size_t n = 0;
  for (size_t i = 0; i < set->n; i++)
    if (set->objs[i].kind == ADMISSION_KIND_WORKERPOOL)
      names[n++] = xstrdup (set->objs[i].name);
  return names;
}

static int
find_pool (const struct ate_admission_set *set, const char *name,
           const struct admission_object **out, struct ate_error **err)
{
  const struct admission_object *found = NULL;
  size_t count = 0;

  for (size_t i = 0; i < set->n; i++)
    {
      const struct admission_object *o = &set->objs[i];
      if (o->kind != ADMISSION_KIND_WORKERPOOL || (name && strcmp (o->name, name) != 0))
        continue;
      count++;
      found = found ? found : o;
    }
  if (count == 0)
    return ate_error_make_code (err, ATE_CODE_NOT_FOUND, 0, "no WorkerPool%s%s%s in the input",
                                name ? " named \"" : "", name ? name : "", name ? "\"" : "");
  if (count > 1)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "%zu WorkerPools%s%s%s in the input; choose one by name", count,
                                name ? " named \"" : "", name ? name : "", name ? "\"" : "");
  *out = found;
  return 0;
}

/* The pool must be one the apiserver and the controller accept. */
static int
check_pool_valid (const struct ate_admission_set *set, const struct admission_object *pool,
                  struct ate_error **err)
{
  struct ate_admission_report *report = NULL;
  const struct ate_admission_violation *first = NULL;
  size_t n = 0;
  int ret = 0;

  if (ate_admission_validate (set, NULL, 0, &report, err) < 0)
    return -1;
  for (size_t i = 0; i < ate_admission_report_count (report); i++)
    {
      const struct ate_admission_violation *v = ate_admission_report_get (report, i);
      if (strcmp (v->kind, "WorkerPool") == 0 && strcmp (v->name, pool->name) == 0
          && strcmp (v->source, pool->source) == 0)
        {
          first = first ? first : v;
          n++;
        }
    }
  if (first != NULL)
    {
      cleanup_free char *line = ate_admission_violation_format (first);
      ret = ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                 "WorkerPool %s is invalid: %s%s", pool->name, line,
                                 n > 1 ? " (and more; run validate)" : "");
    }
  ate_admission_report_free (report);
  return ret;
}

int
ate_admission_render_workerpool (const struct ate_admission_set *set, const char *name,
                                 struct json_object **out, struct ate_error **err)
{
  const struct admission_object *pool = NULL;

  if (find_pool (set, name, &pool, err) < 0 || check_pool_valid (set, pool, err) < 0)
    return -1;
  *out = build_deployment (pool);
  return 0;
}
