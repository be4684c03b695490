/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "spec.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/untrusted.h"
#include "util/util.h"

#define CRI_ANNOTATION_PREFIX "io.kubernetes.cri."

/* ------------------------------------------------------------------ */
/* Shaping (docs/kata-agent.md, "Shaping the bundle")                  */
/* ------------------------------------------------------------------ */

/* The mount set `ctr run --runtime io.containerd.kata.v2` produces: the
 * shape the stock agent is known to accept. */
static const struct
{
  const char *destination, *type, *source, *options;
} kata_mounts[] = {
  { "/proc", "proc", "proc", "nosuid,noexec,nodev" },
  { "/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k" },
  { "/dev/pts", "devpts", "devpts",
    "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5" },
  { "/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k" },
  { "/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev" },
  { "/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro" },
  { "/run", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k" },
};

/* Default device allowlist: deny all, then the usual character devices
 * (null, random, full, tty, zero, urandom, console, pts, ptmx); minor -1 =
 * any minor (omitted). */
static const struct
{
  int64_t major, minor;
} kata_devices[] = {
  { 1, 3 }, { 1, 8 }, { 1, 7 }, { 5, 0 }, { 1, 5 }, { 1, 9 }, { 5, 1 }, { 136, -1 }, { 5, 2 },
};

static struct json_object *
default_resources (void)
{
  struct json_object *res = json_object_new_object ();
  struct json_object *devs = json_object_new_array ();
  struct json_object *deny = json_object_new_object ();
  struct json_object *cpu = json_object_new_object ();

  json_object_object_add (deny, "allow", json_object_new_boolean (0));
  json_object_object_add (deny, "access", json_object_new_string ("rwm"));
  json_object_array_add (devs, deny);
  for (size_t i = 0; i < ATE_N_ELEMENTS (kata_devices); i++)
    {
      struct json_object *d = json_object_new_object ();
      json_object_object_add (d, "allow", json_object_new_boolean (1));
      json_object_object_add (d, "type", json_object_new_string ("c"));
      json_object_object_add (d, "major", json_object_new_int64 (kata_devices[i].major));
      if (kata_devices[i].minor >= 0)
        json_object_object_add (d, "minor", json_object_new_int64 (kata_devices[i].minor));
      json_object_object_add (d, "access", json_object_new_string ("rwm"));
      json_object_array_add (devs, d);
    }
  json_object_object_add (res, "devices", devs);
  json_object_object_add (cpu, "shares", json_object_new_int64 (1024));
  json_object_object_add (res, "cpu", cpu);
  return res;
}

static struct json_object *
default_mounts (void)
{
  struct json_object *arr = json_object_new_array ();

  for (size_t i = 0; i < ATE_N_ELEMENTS (kata_mounts); i++)
    {
      struct json_object *m = json_object_new_object ();
      struct json_object *opts = json_object_new_array ();
      cleanup_free char *list = xstrdup (kata_mounts[i].options);
      char *save = NULL;

      for (char *o = strtok_r (list, ",", &save); o; o = strtok_r (NULL, ",", &save))
        json_object_array_add (opts, json_object_new_string (o));
      json_object_object_add (m, "destination",
                              json_object_new_string (kata_mounts[i].destination));
      json_object_object_add (m, "type", json_object_new_string (kata_mounts[i].type));
      json_object_object_add (m, "source", json_object_new_string (kata_mounts[i].source));
      json_object_object_add (m, "options", opts);
      json_object_array_add (arr, m);
    }
  return arr;
}

/* obj[key] as an object: created when missing or null; an error when it
 * has another type. */
static int
ensure_object (struct json_object *obj, const char *key, const char *path,
               struct json_object **out, struct ate_error **err)
{
  struct json_object *v = NULL;

  if (!json_object_object_get_ex (obj, key, &v) || v == NULL)
    {
      v = json_object_new_object ();
      json_object_object_add (obj, key, v);
    }
  else if (!json_object_is_type (v, json_type_object))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "config.json: %s is not an object", path);
  *out = v;
  return 0;
}

static int
strip_cri_annotations (struct json_object *spec, struct ate_error **err)
{
  struct json_object *ann = NULL;
  char **doomed;
  size_t n = 0;

  if (!json_object_object_get_ex (spec, "annotations", &ann) || ann == NULL)
    return 0;
  if (!json_object_is_type (ann, json_type_object))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "config.json: annotations is not an object");
  doomed = xcalloc ((size_t) json_object_object_length (ann) + 1, sizeof (char *));
  json_object_object_foreach (ann, key, val)
  {
    (void) val;
    if (str_has_prefix (key, CRI_ANNOTATION_PREFIX))
      doomed[n++] = xstrdup (key);
  }
  for (size_t i = 0; i < n; i++)
    json_object_object_del (ann, doomed[i]);
  strv_free (doomed);
  /* An empty map is omitted, as the reference's encoder does. */
  if (json_object_object_length (ann) == 0)
    json_object_object_del (spec, "annotations");
  return 0;
}

static int
set_network_namespace (struct json_object *linux_, const char *netns_path,
                       struct ate_error **err)
{
  struct json_object *nss = NULL;
  bool found = false;

  if (!json_object_object_get_ex (linux_, "namespaces", &nss) || nss == NULL)
    {
      nss = json_object_new_array ();
      json_object_object_add (linux_, "namespaces", nss);
    }
  else if (!json_object_is_type (nss, json_type_array))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "config.json: linux.namespaces is not an array");
  for (size_t i = 0; i < json_object_array_length (nss); i++)
    {
      struct json_object *ns = json_object_array_get_idx (nss, i);
      const char *type = ate_json_get_string (ns, "type");
      if (!json_object_is_type (ns, json_type_object) || type == NULL)
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                    "config.json: linux.namespaces[%zu] has no type", i);
      if (strcmp (type, "network") == 0)
        {
          json_object_object_add (ns, "path", json_object_new_string (netns_path));
          found = true;
        }
    }
  if (!found)
    {
      struct json_object *ns = json_object_new_object ();
      json_object_object_add (ns, "type", json_object_new_string ("network"));
      json_object_object_add (ns, "path", json_object_new_string (netns_path));
      json_object_array_add (nss, ns);
    }
  return 0;
}

int
kata_spec_shape_json (struct json_object *spec, const char *sandbox_id,
                      const char *netns_path, struct ate_error **err)
{
  struct json_object *linux_ = NULL, *v = NULL;
  const char *cg;

  if (!json_object_is_type (spec, json_type_object))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "config.json is not a JSON object");
  if (ensure_object (spec, "linux", "linux", &linux_, err) < 0)
    return -1;
  if (!json_object_object_get_ex (linux_, "resources", &v) || v == NULL)
    json_object_object_add (linux_, "resources", default_resources ());
  else if (!json_object_is_type (v, json_type_object))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "config.json: linux.resources is not an object");
  if (json_object_object_get_ex (linux_, "cgroupsPath", &v) && v != NULL
      && !json_object_is_type (v, json_type_string))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "config.json: linux.cgroupsPath is not a string");
  cg = ate_json_get_string (linux_, "cgroupsPath");
  if (cg == NULL || *cg == '\0')
    {
      cleanup_free char *path = xasprintf ("/ateomchv/%s", sandbox_id);
      json_object_object_add (linux_, "cgroupsPath", json_object_new_string (path));
    }
  if (strip_cri_annotations (spec, err) < 0
      || set_network_namespace (linux_, netns_path, err) < 0)
    return -1;
  json_object_object_add (spec, "mounts", default_mounts ());
  return 0;
}

int
kata_spec_shape (const char *bundle_dir, const char *sandbox_id, const char *netns_path,
                 struct json_object **out, struct ate_error **err)
{
  cleanup_free char *path = ate_path_join (bundle_dir, "config.json");
  cleanup_json struct json_object *spec = NULL;
  cleanup_free char *text = NULL;
  size_t len = 0;

  /* The bundle comes from the caller: config.json must be a regular file
   * directly in it (docs/api.md, "Files the server opens for a caller"). */
  if (ate_untrusted_read (bundle_dir, "config.json", KATA_SPEC_MAX_SIZE,
                          ate_deadline_in_ms (KATA_SPEC_READ_MS), &text, &len, err)
      < 0)
    return ate_error_wrap (err, "read OCI spec");
  if (ate_json_parse (text, len, ATE_JSON_MAX_DEPTH, &spec, err) < 0)
    {
      ate_error_set_code (*err, ATE_CODE_FAILED_PRECONDITION);
      return ate_error_wrap (err, "the OCI spec `%s` is not valid JSON", path);
    }
  free (text);
  text = NULL;
  if (kata_spec_shape_json (spec, sandbox_id, netns_path, err) < 0)
    return ate_error_wrap (err, "shape `%s` for kata", path);
  text = ate_json_to_string (spec, 1);
  if (ate_write_file_atomic (path, text, strlen (text), 0600, err) < 0)
    return ate_error_wrap (err, "write shaped OCI spec");
  *out = steal_pointer (&spec);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Conversion to the agent's Spec (docs/kata-agent.md)                 */
/* ------------------------------------------------------------------ */

/* Everything of the message under construction is allocated here; the
 * finished message is packed and unpacked once so that the caller gets an
 * ordinary protobuf-c message it frees with one call. */
struct conv
{
  void **allocs;
  size_t n, cap;
  struct ate_error **err;
};

static void *
conv_alloc (struct conv *c, size_t size)
{
  void *p = xmalloc0 (size ? size : 1);
  if (c->n == c->cap)
    {
      c->cap = c->cap ? c->cap * 2 : 64;
      c->allocs = xrealloc (c->allocs, c->cap * sizeof (void *));
    }
  c->allocs[c->n++] = p;
  return p;
}

static char *
conv_str (struct conv *c, const char *s)
{
  size_t l = strlen (s);
  char *p = conv_alloc (c, l + 1);
  memcpy (p, s, l + 1);
  return p;
}

static void
conv_release (struct conv *c)
{
  for (size_t i = 0; i < c->n; i++)
    free (c->allocs[i]);
  free (c->allocs);
}

static const char *
type_name (enum json_type t)
{
  switch (t)
    {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a fractional number";
    case json_type_int: return "an integer";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    }
  return "unknown";
}

static int
bad_type (struct conv *c, const char *path, const char *key, const char *want,
          struct json_object *v)
{
  return ate_error_make_code (c->err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                              "config.json: %s%s%s must be %s, not %s", path,
                              *path && *key ? "." : "", key, want,
                              type_name (json_object_get_type (v)));
}

/* 1: obj[key] present with type t; 0: absent or null; -1: wrong type. */
static int
field (struct conv *c, struct json_object *obj, const char *path, const char *key,
       enum json_type t, struct json_object **out)
{
  struct json_object *v = NULL;

  *out = NULL;
  if (obj == NULL || !json_object_object_get_ex (obj, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, t))
    return bad_type (c, path, key, type_name (t), v);
  *out = v;
  return 1;
}

static int
get_str (struct conv *c, struct json_object *obj, const char *path, const char *key,
         char **out)
{
  struct json_object *v;
  int r = field (c, obj, path, key, json_type_string, &v);
  if (r > 0)
    *out = conv_str (c, json_object_get_string (v));
  return r;
}

static int
get_bool (struct conv *c, struct json_object *obj, const char *path, const char *key,
          protobuf_c_boolean *out)
{
  struct json_object *v;
  int r = field (c, obj, path, key, json_type_boolean, &v);
  if (r > 0)
    *out = json_object_get_boolean (v);
  return r;
}

/* An integer of JSON within [min, max] (unsigned values above INT64_MAX
 * are accepted when max allows them). */
static int
get_int (struct conv *c, struct json_object *obj, const char *path, const char *key,
         int64_t min, uint64_t max, uint64_t *out_u, int64_t *out_s)
{
  struct json_object *v;
  int r = field (c, obj, path, key, json_type_int, &v);
  int64_t s;
  uint64_t u;

  if (r <= 0)
    return r;
  s = json_object_get_int64 (v);
  if (s == INT64_MAX)
    u = json_object_get_uint64 (v); /* may be larger than INT64_MAX */
  else
    u = (uint64_t) s;
  if ((s < 0 && s < min) || (s >= 0 && u > max))
    return ate_error_make_code (c->err, ATE_CODE_INVALID_ARGUMENT, ERANGE,
                                "config.json: %s.%s is out of range", path, key);
  if (out_u)
    *out_u = u;
  if (out_s)
    *out_s = s;
  return 1;
}

static int
get_u32 (struct conv *c, struct json_object *obj, const char *path, const char *key,
         uint32_t *out)
{
  uint64_t u = 0;
  int r = get_int (c, obj, path, key, 0, UINT32_MAX, &u, NULL);
  if (r > 0)
    *out = (uint32_t) u;
  return r;
}

static int
get_u64 (struct conv *c, struct json_object *obj, const char *path, const char *key,
         uint64_t *out)
{
  return get_int (c, obj, path, key, 0, UINT64_MAX, out, NULL);
}

static int
get_i64 (struct conv *c, struct json_object *obj, const char *path, const char *key,
         int64_t *out)
{
  return get_int (c, obj, path, key, INT64_MIN, INT64_MAX, NULL, out);
}

static int
get_strv (struct conv *c, struct json_object *obj, const char *path, const char *key,
          size_t *n, char ***out)
{
  struct json_object *arr;
  int r = field (c, obj, path, key, json_type_array, &arr);
  size_t len;

  if (r <= 0)
    return r;
  len = json_object_array_length (arr);
  *out = conv_alloc (c, len * sizeof (char *));
  for (size_t i = 0; i < len; i++)
    {
      struct json_object *s = json_object_array_get_idx (arr, i);
      if (!json_object_is_type (s, json_type_string))
        return ate_error_make_code (c->err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                    "config.json: %s.%s[%zu] must be a string", path, key, i);
      (*out)[i] = conv_str (c, json_object_get_string (s));
    }
  *n = len;
  return 1;
}

/* A string->string map into protobuf-c map entries (key order kept). */
static int
get_map (struct conv *c, struct json_object *obj, const char *path, const char *key,
         const ProtobufCMessageDescriptor *entry_desc, size_t *n, void ***out)
{
  struct json_object *m;
  int r = field (c, obj, path, key, json_type_object, &m);
  size_t i = 0;

  if (r <= 0)
    return r;
  *out = conv_alloc (c, (size_t) json_object_object_length (m) * sizeof (void *));
  json_object_object_foreach (m, k, v)
  {
    /* Every map entry message is {base, key, value}. */
    Grpc__Spec__AnnotationsEntry *e = conv_alloc (c, entry_desc->sizeof_message);
    protobuf_c_message_init (entry_desc, e);
    if (!json_object_is_type (v, json_type_string))
      return ate_error_make_code (c->err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                  "config.json: %s.%s[\"%s\"] must be a string", path, key,
                                  k);
    e->key = conv_str (c, k);
    e->value = conv_str (c, json_object_get_string (v));
    (*out)[i++] = e;
  }
  *n = i;
  return 1;
}

/* Iterate the objects of an array member: returns the array (or NULL when
 * absent), -1 via *bad on a non-object element. */
static int
get_obj_array (struct conv *c, struct json_object *obj, const char *path, const char *key,
               struct json_object **arr)
{
  int r = field (c, obj, path, key, json_type_array, arr);
  if (r <= 0)
    return r;
  for (size_t i = 0; i < json_object_array_length (*arr); i++)
    if (!json_object_is_type (json_object_array_get_idx (*arr, i), json_type_object))
      return ate_error_make_code (c->err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                  "config.json: %s.%s[%zu] must be an object", path, key, i);
  return 1;
}

#define NEW_MSG(c, T, INIT)                                                    \
  ({                                                                           \
    T *m_ = conv_alloc ((c), sizeof (T));                                      \
    *m_ = (T) INIT;                                                            \
    m_;                                                                        \
  })

static int
conv_user (struct conv *c, struct json_object *proc, Grpc__User **out)
{
  Grpc__User *u = NEW_MSG (c, Grpc__User, GRPC__USER__INIT);
  struct json_object *user, *gids;
  int r = field (c, proc, "process", "user", json_type_object, &user);

  *out = u; /* always present, as the reference sends it */
  if (r <= 0)
    return r;
  if (get_u32 (c, user, "process.user", "uid", &u->uid) < 0
      || get_u32 (c, user, "process.user", "gid", &u->gid) < 0
      || get_str (c, user, "process.user", "username", &u->username) < 0)
    return -1;
  r = field (c, user, "process.user", "additionalGids", json_type_array, &gids);
  if (r < 0)
    return -1;
  if (r > 0)
    {
      size_t n = json_object_array_length (gids);
      u->additionalgids = conv_alloc (c, n * sizeof (uint32_t));
      for (size_t i = 0; i < n; i++)
        {
          struct json_object *g = json_object_array_get_idx (gids, i);
          int64_t v = json_object_get_int64 (g);
          if (!json_object_is_type (g, json_type_int) || v < 0 || v > UINT32_MAX)
            return ate_error_make_code (c->err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                        "config.json: process.user.additionalGids[%zu] "
                                        "must be a gid",
                                        i);
          u->additionalgids[i] = (uint32_t) v;
        }
      u->n_additionalgids = n;
    }
  return 0;
}

static int
conv_caps (struct conv *c, struct json_object *proc, Grpc__LinuxCapabilities **out)
{
  struct json_object *caps;
  Grpc__LinuxCapabilities *k;
  int r = field (c, proc, "process", "capabilities", json_type_object, &caps);
  const char *p = "process.capabilities";

  if (r <= 0)
    return r;
  k = NEW_MSG (c, Grpc__LinuxCapabilities, GRPC__LINUX_CAPABILITIES__INIT);
  if (get_strv (c, caps, p, "bounding", &k->n_bounding, &k->bounding) < 0
      || get_strv (c, caps, p, "effective", &k->n_effective, &k->effective) < 0
      || get_strv (c, caps, p, "inheritable", &k->n_inheritable, &k->inheritable) < 0
      || get_strv (c, caps, p, "permitted", &k->n_permitted, &k->permitted) < 0
      || get_strv (c, caps, p, "ambient", &k->n_ambient, &k->ambient) < 0)
    return -1;
  *out = k;
  return 0;
}

static int
conv_rlimits (struct conv *c, struct json_object *proc, Grpc__Process *p)
{
  struct json_object *arr;
  int r = get_obj_array (c, proc, "process", "rlimits", &arr);
  size_t n;

  if (r <= 0)
    return r;
  n = json_object_array_length (arr);
  p->rlimits = conv_alloc (c, n * sizeof (void *));
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *o = json_object_array_get_idx (arr, i);
      Grpc__POSIXRlimit *l = NEW_MSG (c, Grpc__POSIXRlimit, GRPC__POSIXRLIMIT__INIT);
      if (get_str (c, o, "process.rlimits[]", "type", &l->type) < 0
          || get_u64 (c, o, "process.rlimits[]", "hard", &l->hard) < 0
          || get_u64 (c, o, "process.rlimits[]", "soft", &l->soft) < 0)
        return -1;
      p->rlimits[i] = l;
    }
  p->n_rlimits = n;
  return 0;
}

/* process: args, env, cwd, user, capabilities, rlimits, noNewPrivileges,
 * oomScoreAdj.  Not sent: terminal and consoleSize (no terminal is
 * attached), apparmorProfile and selinuxLabel (host LSM profiles; the kata
 * guest runs neither). */
static int
conv_process (struct conv *c, struct json_object *spec, Grpc__Process **out)
{
  struct json_object *proc;
  Grpc__Process *p;
  int r = field (c, spec, "", "process", json_type_object, &proc);

  if (r <= 0)
    return r;
  p = NEW_MSG (c, Grpc__Process, GRPC__PROCESS__INIT);
  if (get_strv (c, proc, "process", "args", &p->n_args, &p->args) < 0
      || get_strv (c, proc, "process", "env", &p->n_env, &p->env) < 0
      || get_str (c, proc, "process", "cwd", &p->cwd) < 0
      || get_bool (c, proc, "process", "noNewPrivileges", &p->nonewprivileges) < 0
      || get_i64 (c, proc, "process", "oomScoreAdj", &p->oomscoreadj) < 0
      || conv_user (c, proc, &p->user) < 0 || conv_caps (c, proc, &p->capabilities) < 0
      || conv_rlimits (c, proc, p) < 0)
    return -1;
  *out = p;
  return 0;
}

static int
conv_mounts (struct conv *c, struct json_object *spec, Grpc__Spec *s)
{
  struct json_object *arr;
  int r = get_obj_array (c, spec, "", "mounts", &arr);
  size_t n;

  if (r <= 0)
    return r;
  n = json_object_array_length (arr);
  s->mounts = conv_alloc (c, n * sizeof (void *));
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *o = json_object_array_get_idx (arr, i);
      Grpc__Mount *m = NEW_MSG (c, Grpc__Mount, GRPC__MOUNT__INIT);
      if (get_str (c, o, "mounts[]", "destination", &m->destination) < 0
          || get_str (c, o, "mounts[]", "source", &m->source) < 0
          || get_str (c, o, "mounts[]", "type", &m->type) < 0
          || get_strv (c, o, "mounts[]", "options", &m->n_options, &m->options) < 0)
        return -1;
      s->mounts[i] = m;
    }
  s->n_mounts = n;
  return 0;
}

/* Namespaces the guest cannot or must not create are dropped (the network
 * is the VM's; cgroup and time are not supported by the agent); the others
 * lose their host path, which does not exist in the guest. */
static int
conv_namespaces (struct conv *c, struct json_object *lin, Grpc__Linux *l)
{
  struct json_object *arr;
  int r = get_obj_array (c, lin, "linux", "namespaces", &arr);
  size_t n;

  if (r <= 0)
    return r;
  n = json_object_array_length (arr);
  l->namespaces = conv_alloc (c, n * sizeof (void *));
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *o = json_object_array_get_idx (arr, i);
      char *type = NULL;
      if (get_str (c, o, "linux.namespaces[]", "type", &type) < 0)
        return -1;
      if (type == NULL)
        return ate_error_make_code (c->err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                    "config.json: linux.namespaces[%zu] has no type", i);
      if (strcmp (type, "network") == 0 || strcmp (type, "cgroup") == 0
          || strcmp (type, "time") == 0)
        continue;
      Grpc__LinuxNamespace *ns = NEW_MSG (c, Grpc__LinuxNamespace, GRPC__LINUX_NAMESPACE__INIT);
      ns->type = type;
      l->namespaces[l->n_namespaces++] = ns;
    }
  return 0;
}

static int
conv_devices (struct conv *c, struct json_object *res, Grpc__LinuxResources *out)
{
  struct json_object *arr;
  int r = get_obj_array (c, res, "linux.resources", "devices", &arr);
  const char *p = "linux.resources.devices[]";
  size_t n;

  if (r <= 0)
    return r;
  n = json_object_array_length (arr);
  out->devices = conv_alloc (c, n * sizeof (void *));
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *o = json_object_array_get_idx (arr, i);
      Grpc__LinuxDeviceCgroup *d
          = NEW_MSG (c, Grpc__LinuxDeviceCgroup, GRPC__LINUX_DEVICE_CGROUP__INIT);
      /* Missing major/minor stay 0, which the agent reads as "any". */
      if (get_bool (c, o, p, "allow", &d->allow) < 0 || get_str (c, o, p, "type", &d->type) < 0
          || get_i64 (c, o, p, "major", &d->major) < 0
          || get_i64 (c, o, p, "minor", &d->minor) < 0
          || get_str (c, o, p, "access", &d->access) < 0)
        return -1;
      out->devices[i] = d;
    }
  out->n_devices = n;
  return 0;
}

static int
conv_memory (struct conv *c, struct json_object *res, Grpc__LinuxResources *out)
{
  struct json_object *o;
  Grpc__LinuxMemory *m;
  const char *p = "linux.resources.memory";
  int r = field (c, res, "linux.resources", "memory", json_type_object, &o);

  if (r <= 0)
    return r;
  m = NEW_MSG (c, Grpc__LinuxMemory, GRPC__LINUX_MEMORY__INIT);
  if (get_i64 (c, o, p, "limit", &m->limit) < 0
      || get_i64 (c, o, p, "reservation", &m->reservation) < 0
      || get_i64 (c, o, p, "swap", &m->swap) < 0 || get_i64 (c, o, p, "kernel", &m->kernel) < 0
      || get_i64 (c, o, p, "kernelTCP", &m->kerneltcp) < 0
      || get_u64 (c, o, p, "swappiness", &m->swappiness) < 0
      || get_bool (c, o, p, "disableOOMKiller", &m->disableoomkiller) < 0)
    return -1;
  out->memory = m;
  return 0;
}

/* cpus/mems name host CPUs and nodes: not sent (as kata's shim). */
static int
conv_cpu (struct conv *c, struct json_object *res, Grpc__LinuxResources *out)
{
  struct json_object *o;
  Grpc__LinuxCPU *k;
  const char *p = "linux.resources.cpu";
  int r = field (c, res, "linux.resources", "cpu", json_type_object, &o);

  if (r <= 0)
    return r;
  k = NEW_MSG (c, Grpc__LinuxCPU, GRPC__LINUX_CPU__INIT);
  if (get_u64 (c, o, p, "shares", &k->shares) < 0 || get_i64 (c, o, p, "quota", &k->quota) < 0
      || get_u64 (c, o, p, "period", &k->period) < 0
      || get_i64 (c, o, p, "realtimeRuntime", &k->realtimeruntime) < 0
      || get_u64 (c, o, p, "realtimePeriod", &k->realtimeperiod) < 0)
    return -1;
  out->cpu = k;
  return 0;
}

/* devices, memory and cpu; pids, blockIO, hugepageLimits, network, rdma and
 * unified are not sent (kata's shim drops them too). */
static int
conv_resources (struct conv *c, struct json_object *lin, Grpc__Linux *l)
{
  struct json_object *res;
  Grpc__LinuxResources *out;
  int r = field (c, lin, "linux", "resources", json_type_object, &res);

  if (r <= 0)
    return r;
  out = NEW_MSG (c, Grpc__LinuxResources, GRPC__LINUX_RESOURCES__INIT);
  if (conv_devices (c, res, out) < 0 || conv_memory (c, res, out) < 0
      || conv_cpu (c, res, out) < 0)
    return -1;
  l->resources = out;
  return 0;
}

static int
conv_syscall (struct conv *c, struct json_object *o, Grpc__LinuxSyscall **out)
{
  const char *p = "linux.seccomp.syscalls[]";
  Grpc__LinuxSyscall *s = NEW_MSG (c, Grpc__LinuxSyscall, GRPC__LINUX_SYSCALL__INIT);
  struct json_object *args;
  uint32_t errno_ret = 0;
  int r;

  if (get_strv (c, o, p, "names", &s->n_names, &s->names) < 0
      || get_str (c, o, p, "action", &s->action) < 0)
    return -1;
  r = get_u32 (c, o, p, "errnoRet", &errno_ret);
  if (r < 0)
    return -1;
  if (r > 0)
    {
      s->errno_ret_case = GRPC__LINUX_SYSCALL__ERRNO_RET_ERRNORET;
      s->errnoret = errno_ret;
    }
  if (get_obj_array (c, o, p, "args", &args) < 0)
    return -1;
  if (args)
    {
      size_t n = json_object_array_length (args);
      s->args = conv_alloc (c, n * sizeof (void *));
      for (size_t i = 0; i < n; i++)
        {
          struct json_object *a = json_object_array_get_idx (args, i);
          const char *ap = "linux.seccomp.syscalls[].args[]";
          Grpc__LinuxSeccompArg *g
              = NEW_MSG (c, Grpc__LinuxSeccompArg, GRPC__LINUX_SECCOMP_ARG__INIT);
          if (get_u64 (c, a, ap, "index", &g->index) < 0
              || get_u64 (c, a, ap, "value", &g->value) < 0
              || get_u64 (c, a, ap, "valueTwo", &g->valuetwo) < 0
              || get_str (c, a, ap, "op", &g->op) < 0)
            return -1;
          s->args[i] = g;
        }
      s->n_args = n;
    }
  *out = s;
  return 0;
}

/* Forwarded when present (the reference drops it).  defaultErrnoRet,
 * listenerPath and listenerMetadata have no field in the agent's Spec. */
static int
conv_seccomp (struct conv *c, struct json_object *lin, Grpc__Linux *l)
{
  struct json_object *o, *calls;
  Grpc__LinuxSeccomp *s;
  const char *p = "linux.seccomp";
  int r = field (c, lin, "linux", "seccomp", json_type_object, &o);

  if (r <= 0)
    return r;
  s = NEW_MSG (c, Grpc__LinuxSeccomp, GRPC__LINUX_SECCOMP__INIT);
  if (get_str (c, o, p, "defaultAction", &s->defaultaction) < 0
      || get_strv (c, o, p, "architectures", &s->n_architectures, &s->architectures) < 0
      || get_strv (c, o, p, "flags", &s->n_flags, &s->flags) < 0
      || get_obj_array (c, o, p, "syscalls", &calls) < 0)
    return -1;
  if (calls)
    {
      size_t n = json_object_array_length (calls);
      s->syscalls = conv_alloc (c, n * sizeof (void *));
      for (size_t i = 0; i < n; i++)
        if (conv_syscall (c, json_object_array_get_idx (calls, i), &s->syscalls[i]) < 0)
          return -1;
      s->n_syscalls = n;
    }
  l->seccomp = s;
  return 0;
}

static int
conv_id_mappings (struct conv *c, struct json_object *lin, const char *key, size_t *n_out,
                  Grpc__LinuxIDMapping ***out)
{
  struct json_object *arr;
  int r = get_obj_array (c, lin, "linux", key, &arr);
  size_t n;

  if (r <= 0)
    return r;
  n = json_object_array_length (arr);
  *out = conv_alloc (c, n * sizeof (void *));
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *o = json_object_array_get_idx (arr, i);
      Grpc__LinuxIDMapping *m = NEW_MSG (c, Grpc__LinuxIDMapping, GRPC__LINUX_IDMAPPING__INIT);
      if (get_u32 (c, o, key, "containerID", &m->containerid) < 0
          || get_u32 (c, o, key, "hostID", &m->hostid) < 0
          || get_u32 (c, o, key, "size", &m->size) < 0)
        return -1;
      (*out)[i] = m;
    }
  *n_out = n;
  return 0;
}

/* linux: cgroupsPath, namespaces, resources, sysctl, seccomp, maskedPaths,
 * readonlyPaths, rootfsPropagation, uid/gid mappings.  Not sent: devices
 * (host device nodes do not exist in the VM), mountLabel (SELinux),
 * intelRdt, personality, timeOffsets. */
static int
conv_linux (struct conv *c, struct json_object *spec, Grpc__Linux **out)
{
  struct json_object *lin;
  Grpc__Linux *l;
  int r = field (c, spec, "", "linux", json_type_object, &lin);

  if (r <= 0)
    return r;
  l = NEW_MSG (c, Grpc__Linux, GRPC__LINUX__INIT);
  if (get_str (c, lin, "linux", "cgroupsPath", &l->cgroupspath) < 0
      || get_strv (c, lin, "linux", "maskedPaths", &l->n_maskedpaths, &l->maskedpaths) < 0
      || get_strv (c, lin, "linux", "readonlyPaths", &l->n_readonlypaths, &l->readonlypaths)
             < 0
      || get_str (c, lin, "linux", "rootfsPropagation", &l->rootfspropagation) < 0
      || get_map (c, lin, "linux", "sysctl", &grpc__linux__sysctl_entry__descriptor,
                  &l->n_sysctl, (void ***) &l->sysctl)
             < 0
      || conv_namespaces (c, lin, l) < 0 || conv_resources (c, lin, l) < 0
      || conv_seccomp (c, lin, l) < 0
      || conv_id_mappings (c, lin, "uidMappings", &l->n_uidmappings, &l->uidmappings) < 0
      || conv_id_mappings (c, lin, "gidMappings", &l->n_gidmappings, &l->gidmappings) < 0)
    return -1;
  *out = l;
  return 0;
}

/* ociVersion, hostname, annotations, process, mounts, linux; root from the
 * caller.  hooks are not sent: they name host binaries (kata's shim runs
 * them on the host, never in the guest). */
static int
conv_spec (struct conv *c, struct json_object *spec, const char *root_path, bool readonly,
           Grpc__Spec *s)
{
  Grpc__Root *root = NEW_MSG (c, Grpc__Root, GRPC__ROOT__INIT);

  if (!json_object_is_type (spec, json_type_object))
    return ate_error_make_code (c->err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "config.json is not a JSON object");
  if (get_str (c, spec, "", "ociVersion", &s->version) < 0
      || get_str (c, spec, "", "hostname", &s->hostname) < 0
      || get_map (c, spec, "", "annotations", &grpc__spec__annotations_entry__descriptor,
                  &s->n_annotations, (void ***) &s->annotations)
             < 0
      || conv_process (c, spec, &s->process) < 0 || conv_mounts (c, spec, s) < 0
      || conv_linux (c, spec, &s->linux) < 0)
    return -1;
  root->path = conv_str (c, root_path);
  root->readonly = readonly;
  s->root = root;
  return 0;
}

int
kata_spec_to_agent (struct json_object *spec, const char *root_path, bool readonly,
                    Grpc__Spec **out, struct ate_error **err)
{
  struct conv c = { .err = err };
  Grpc__Spec s = GRPC__SPEC__INIT;
  uint8_t *buf = NULL;
  size_t len;
  int r = conv_spec (&c, spec, root_path, readonly, &s);

  if (r == 0)
    {
      len = grpc__spec__get_packed_size (&s);
      buf = xmalloc (len + 1);
      grpc__spec__pack (&s, buf);
      *out = grpc__spec__unpack (NULL, len, buf);
      if (*out == NULL)
        r = ate_error_make (err, EBADMSG, "re-read the converted agent spec");
      free (buf);
    }
  conv_release (&c);
  if (r < 0)
    return ate_error_wrap (err, "convert OCI spec for the kata agent");
  return 0;
}

void
kata_spec_agent_free (Grpc__Spec *spec)
{
  if (spec)
    grpc__spec__free_unpacked (spec, NULL);
}
