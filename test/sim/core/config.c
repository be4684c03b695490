/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VmConfig / NetConfig validation: the OpenAPI schema rules the driver
 * relies on (types, enums, required fields, ranges) plus CH's own checks
 * (paths exist, vsock cid >= 3, vcpus).  Unknown keys are accepted, as in
 * CH (serde without deny_unknown_fields).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"
#include "util/util.h"

/* Member `key` of o: NULL when absent or null; fails when present with
 * another type. */
static int
member (struct json_object *o, const char *where, const char *key, enum json_type t,
        bool required, struct json_object **out, char **msg)
{
  struct json_object *v = NULL;

  *out = NULL;
  if (!json_object_object_get_ex (o, key, &v) || json_object_is_type (v, json_type_null))
    {
      if (required)
        {
          *msg = xasprintf ("%s.%s is required", where, key);
          return -1;
        }
      return 0;
    }
  if (!json_object_is_type (v, t))
    {
      *msg = xasprintf ("%s.%s must be of type %s", where, key, json_type_to_name (t));
      return -1;
    }
  *out = v;
  return 0;
}

static int
int_in (struct json_object *o, const char *where, const char *key, bool required, int64_t lo,
        int64_t hi, int64_t *val, char **msg)
{
  struct json_object *v;
  int64_t x;

  if (member (o, where, key, json_type_int, required, &v, msg) < 0)
    return -1;
  if (v == NULL)
    return 0;
  x = json_object_get_int64 (v);
  if (x < lo || x > hi)
    {
      *msg = xasprintf ("%s.%s = %lld out of range [%lld, %lld]", where, key, (long long) x,
                        (long long) lo, (long long) hi);
      return -1;
    }
  if (val)
    *val = x;
  return 0;
}

static int
bools (struct json_object *o, const char *where, const char *const *keys, char **msg)
{
  struct json_object *v;
  for (; *keys; keys++)
    if (member (o, where, *keys, json_type_boolean, false, &v, msg) < 0)
      return -1;
  return 0;
}

static int
string_enum (struct json_object *o, const char *where, const char *key, bool required,
             const char *const *values, const char **val, char **msg)
{
  struct json_object *v;
  const char *s;

  if (member (o, where, key, json_type_string, required, &v, msg) < 0)
    return -1;
  if (v == NULL)
    return 0;
  s = json_object_get_string (v);
  for (; *values; values++)
    if (strcmp (s, *values) == 0)
      {
        if (val)
          *val = s;
        return 0;
      }
  *msg = xasprintf ("%s.%s: unknown value `%s`", where, key, s);
  return -1;
}

static int
path_exists (const char *what, const char *p, char **msg)
{
  struct stat st;
  if (p[0] != '/' || stat (p, &st) < 0)
    {
      *msg = xasprintf ("%s `%s`: %s", what, p, p[0] != '/' ? "not absolute" : strerror (errno));
      return -1;
    }
  return 0;
}

static int
check_cpus_memory (struct json_object *cfg, char **msg)
{
  struct json_object *o;
  int64_t boot = 1, max = 1;

  if (member (cfg, "VmConfig", "cpus", json_type_object, false, &o, msg) < 0)
    return -1;
  if (o && (int_in (o, "cpus", "boot_vcpus", true, 1, 254, &boot, msg) < 0
            || int_in (o, "cpus", "max_vcpus", true, 1, 254, &max, msg) < 0))
    return -1;
  if (max < boot)
    {
      *msg = xasprintf ("cpus: max_vcpus (%lld) < boot_vcpus (%lld)", (long long) max,
                        (long long) boot);
      return -1;
    }
  if (member (cfg, "VmConfig", "memory", json_type_object, true, &o, msg) < 0
      || int_in (o, "memory", "size", true, SIM_MIN_MEMORY, INT64_MAX, NULL, msg) < 0
      || int_in (o, "memory", "hotplug_size", false, 0, INT64_MAX, NULL, msg) < 0)
    return -1;
  static const char *const mb[] = { "shared", "hugepages", "mergeable", "thp", "prefault", NULL };
  return bools (o, "memory", mb, msg);
}

static int
check_payload (struct json_object *cfg, char **msg)
{
  struct json_object *o, *k, *f, *v;

  if (member (cfg, "VmConfig", "payload", json_type_object, true, &o, msg) < 0
      || member (o, "payload", "kernel", json_type_string, false, &k, msg) < 0
      || member (o, "payload", "firmware", json_type_string, false, &f, msg) < 0
      || member (o, "payload", "cmdline", json_type_string, false, &v, msg) < 0
      || member (o, "payload", "initramfs", json_type_string, false, &v, msg) < 0)
    return -1;
  if (k == NULL && f == NULL)
    {
      *msg = xasprintf ("payload needs a kernel or firmware");
      return -1;
    }
  if (k && path_exists ("kernel", json_object_get_string (k), msg) < 0)
    return -1;
  return f ? path_exists ("firmware", json_object_get_string (f), msg) : 0;
}

static int
check_disk (struct json_object *d, size_t i, char **msg)
{
  static const char *const types[] = { "FixedVhd", "Qcow2", "Raw", "Vhdx", "Unknown", NULL };
  static const char *const db[] = { "readonly", "direct", "iommu", "vhost_user", "sparse", NULL };
  char where[32];
  struct json_object *p, *v;

  snprintf (where, sizeof (where), "disks[%zu]", i);
  if (!json_object_is_type (d, json_type_object))
    {
      *msg = xasprintf ("%s must be an object", where);
      return -1;
    }
  if (member (d, where, "path", json_type_string, true, &p, msg) < 0
      || member (d, where, "id", json_type_string, false, &v, msg) < 0
      || bools (d, where, db, msg) < 0
      || int_in (d, where, "num_queues", false, 1, 64, NULL, msg) < 0
      || int_in (d, where, "queue_size", false, 1, 32768, NULL, msg) < 0
      || int_in (d, where, "pci_segment", false, 0, 95, NULL, msg) < 0
      || string_enum (d, where, "image_type", false, types, NULL, msg) < 0)
    return -1;
  return path_exists ("disk", json_object_get_string (p), msg);
}

static int
check_devices (struct json_object *cfg, bool restoring, char **msg)
{
  static const char *const modes[] = { "Off", "Pty", "Tty", "File", "Socket", "Null", NULL };
  struct json_object *o, *v;
  const char *mode = NULL;

  if (member (cfg, "VmConfig", "disks", json_type_array, false, &o, msg) < 0)
    return -1;
  for (size_t i = 0; o && i < json_object_array_length (o); i++)
    {
      if (check_disk (json_object_array_get_idx (o, i), i, msg) < 0)
        return -1;
      for (size_t k = 0; k < i; k++)
        if (strcmp (json_object_get_string (json_object_object_get (json_object_array_get_idx (o, i), "path")),
                    json_object_get_string (json_object_object_get (json_object_array_get_idx (o, k), "path")))
            == 0)
          {
            *msg = xasprintf ("disks[%zu] and disks[%zu] use the same path", k, i);
            return -2;
          }
    }
  if (member (cfg, "VmConfig", "rng", json_type_object, false, &o, msg) < 0
      || (o && member (o, "rng", "src", json_type_string, true, &v, msg) < 0)
      || (o && path_exists ("rng source", json_object_get_string (v), msg) < 0))
    return -1;
  for (int i = 0; i < 2; i++)
    {
      const char *key = i ? "console" : "serial";
      mode = NULL;
      if (member (cfg, "VmConfig", key, json_type_object, false, &o, msg) < 0
          || (o && string_enum (o, key, "mode", true, modes, &mode, msg) < 0)
          || (o && member (o, key, "file", json_type_string, mode && !strcmp (mode, "File"), &v,
                           msg) < 0))
        return -1;
    }
  if (member (cfg, "VmConfig", "vsock", json_type_object, false, &o, msg) < 0
      || (o && int_in (o, "vsock", "cid", true, 3, UINT32_MAX, NULL, msg) < 0)
      || (o && member (o, "vsock", "socket", json_type_string, true, &v, msg) < 0))
    return -1;
  if (member (cfg, "VmConfig", "platform", json_type_object, false, &o, msg) < 0
      || (o && int_in (o, "platform", "num_pci_segments", false, 1, 96, NULL, msg) < 0))
    return -1;
  if (member (cfg, "VmConfig", "net", json_type_array, false, &o, msg) < 0)
    return -1;
  if (o && json_object_array_length (o) && !restoring)
    {
      *msg = xasprintf ("ch-sim: net devices must be added with vm.add-net (tap fds)");
      return -1;
    }
  return 0;
}

/* Returns -1 for a validation error, -2 for a duplicate (v53's 409).  A
 * snapshot's config (restoring) carries the nets added by vm.add-net. */
int
sim_config_validate (struct json_object *cfg, bool restoring, char **msg)
{
  if (!json_object_is_type (cfg, json_type_object))
    {
      *msg = xasprintf ("VmConfig must be a JSON object");
      return -1;
    }
  if (check_cpus_memory (cfg, msg) < 0 || check_payload (cfg, msg) < 0)
    return -1;
  return check_devices (cfg, restoring, msg);
}

int
sim_netconfig_validate (struct json_object *cfg, char **msg)
{
  static const char *const nb[] = { "iommu", "vhost_user", "offload_tso", "offload_ufo",
                                    "offload_csum", NULL };
  struct json_object *v;

  if (!json_object_is_type (cfg, json_type_object))
    {
      *msg = xasprintf ("NetConfig must be a JSON object");
      return -1;
    }
  if (member (cfg, "NetConfig", "tap", json_type_string, false, &v, msg) < 0
      || member (cfg, "NetConfig", "mac", json_type_string, false, &v, msg) < 0
      || member (cfg, "NetConfig", "id", json_type_string, false, &v, msg) < 0
      || member (cfg, "NetConfig", "ip", json_type_string, false, &v, msg) < 0
      || member (cfg, "NetConfig", "mask", json_type_string, false, &v, msg) < 0
      || bools (cfg, "NetConfig", nb, msg) < 0
      || int_in (cfg, "NetConfig", "num_queues", false, 2, 512, NULL, msg) < 0
      || int_in (cfg, "NetConfig", "queue_size", false, 2, 32768, NULL, msg) < 0
      || int_in (cfg, "NetConfig", "mtu", false, 68, 65535, NULL, msg) < 0
      || int_in (cfg, "NetConfig", "num_fds", false, 0, 253, NULL, msg) < 0)
    return -1;
  if (json_object_object_get_ex (cfg, "tap", &v) && v)
    {
      *msg = xasprintf ("ch-sim: tap names are not supported; pass tap fds");
      return -1;
    }
  return 0;
}
