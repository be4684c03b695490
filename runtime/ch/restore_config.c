/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The restore configuration (docs/api.md, "What a snapshot may carry").
 *
 * Every VmConfig member of cloud-hypervisor v51.1, v52.0 and v53.0 (their
 * OpenAPI files) plus the serde-only ones CH writes into a snapshot
 * (disable_io_uring, disable_aio, net fds, sgx_epc, gdb) has one rule:
 *   REBUILT  the server's own value replaces the snapshot's (kernel,
 *            cmdline, disk paths, vsock socket, serial file, rng source);
 *   CHECKED  guest-visible state the memory image depends on, copied after
 *            a range check, or compared with what this server creates
 *            (vCPUs, memory size, device ids, PCI placement, MAC, queues);
 *   EMPTY    something this server never creates: absent, null, false, 0
 *            or [] only, else FAILED_PRECONDITION naming the field.
 * A member no rule names is refused unless it is null.
 */
#define _GNU_SOURCE
#include "restore_config.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/untrusted.h"
#include "util/util.h"

#define CONFIG_MAX (4u << 20)
#define MAX_VCPUS 255
#define MAX_MEMORY (1ULL << 40)
#define MAX_NETS 64
#define MAX_PCI_SEGMENTS 16
#define MAX_IDS 256

enum rule_kind
{
  R_EMPTY,   /* never created here */
  R_BOOL,    /* guest-visible flag: copied */
  R_INT,     /* guest-visible number in [lo, hi]: copied */
  R_ENUM,    /* one of values: copied */
  R_ID,      /* device id: copied, unique */
  R_PCI_SEG, /* < num_pci_segments */
  R_PCI_DEV, /* 0..31 */
  R_OWN,     /* checked and rebuilt by the caller */
};

struct rule
{
  const char *key;
  enum rule_kind kind;
  int64_t lo, hi;
  const char *const *values;
};

struct ctx
{
  const struct ch_restore_expect *exp;
  int64_t num_pci_segments;
  const char *ids[MAX_IDS];
  size_t n_ids;
};

static int
refuse (struct ate_error **err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
refuse (struct ate_error **err, const char *fmt, ...)
{
  cleanup_free char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    msg = NULL;
  va_end (ap);
  return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EINVAL,
                              "snapshot config.json: %s", msg ? msg : "refused");
}

/* null, false, 0, "" is not empty (a path), [] and {} are. */
static bool
is_empty (struct json_object *v)
{
  switch (json_object_get_type (v))
    {
    case json_type_null:
      return true;
    case json_type_boolean:
      return !json_object_get_boolean (v);
    case json_type_int:
      return json_object_get_int64 (v) == 0 && json_object_get_uint64 (v) == 0;
    case json_type_array:
      return json_object_array_length (v) == 0;
    case json_type_object:
      return json_object_object_length (v) == 0;
    default:
      return false;
    }
}

static const struct rule *
rule_find (const struct rule *rules, const char *key)
{
  for (; rules->key; rules++)
    if (strcmp (rules->key, key) == 0)
      return rules;
  return NULL;
}

static int
check_int (const char *where, const char *key, struct json_object *v, int64_t lo, int64_t hi,
           struct ate_error **err)
{
  int64_t x;
  if (!json_object_is_type (v, json_type_int))
    return refuse (err, "%s.%s must be an integer", where, key);
  x = json_object_get_int64 (v);
  if (x < lo || x > hi || (x == INT64_MAX && json_object_get_uint64 (v) > (uint64_t) INT64_MAX))
    return refuse (err, "%s.%s is out of range [%lld, %lld]", where, key, (long long) lo,
                   (long long) hi);
  return 0;
}

static bool
valid_id (const char *s)
{
  size_t n = strlen (s);
  if (n == 0 || n > 64)
    return false;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || *p == '_' || *p == '-' || *p == '.'))
      return false;
  return true;
}

static int
check_id (struct ctx *c, const char *where, struct json_object *v, struct ate_error **err)
{
  const char *s;
  if (!json_object_is_type (v, json_type_string))
    return refuse (err, "%s.id must be a string", where);
  s = json_object_get_string (v);
  if (!valid_id (s) || strlen (s) != (size_t) json_object_get_string_len (v))
    return refuse (err, "%s.id is not a device id (1-64 of [A-Za-z0-9_.-])", where);
  for (size_t i = 0; i < c->n_ids; i++)
    if (strcmp (c->ids[i], s) == 0)
      return refuse (err, "%s.id \"%s\" is used by two devices", where, s);
  if (c->n_ids == MAX_IDS)
    return refuse (err, "%s: more than %d devices", where, MAX_IDS);
  c->ids[c->n_ids++] = s;
  return 0;
}

/* Apply `rules` to every member of `in`; copy the accepted ones to `out`
 * (R_OWN members are left to the caller). */
static int
apply_rules (struct ctx *c, const char *where, struct json_object *in, const struct rule *rules,
             struct json_object *out, struct ate_error **err)
{
  if (!json_object_is_type (in, json_type_object))
    return refuse (err, "%s must be an object", where);
  json_object_object_foreach (in, key, v)
  {
    const struct rule *r = rule_find (rules, key);
    bool copy = false;

    if (r == NULL)
      {
        if (json_object_is_type (v, json_type_null))
          continue;
        return refuse (err, "%s.%.64s is not something this server creates", where, key);
      }
    if (json_object_is_type (v, json_type_null) && r->kind != R_OWN)
      continue; /* CH's default */
    switch (r->kind)
      {
      case R_EMPTY:
        if (!is_empty (v))
          return refuse (err, "%s.%s is not allowed in a snapshot (this server never "
                              "creates it)",
                         where, key);
        break;
      case R_BOOL:
        if (!json_object_is_type (v, json_type_boolean))
          return refuse (err, "%s.%s must be a boolean", where, key);
        copy = true;
        break;
      case R_INT:
        if (check_int (where, key, v, r->lo, r->hi, err) < 0)
          return -1;
        copy = true;
        break;
      case R_ENUM:
        {
          bool ok = false;
          if (json_object_is_type (v, json_type_string))
            for (const char *const *e = r->values; *e && !ok; e++)
              ok = strcmp (*e, json_object_get_string (v)) == 0;
          if (!ok)
            return refuse (err, "%s.%s has a value this server does not create", where, key);
          copy = true;
          break;
        }
      case R_ID:
        if (check_id (c, where, v, err) < 0)
          return -1;
        copy = true;
        break;
      case R_PCI_SEG:
        if (check_int (where, key, v, 0, c->num_pci_segments - 1, err) < 0)
          return -1;
        copy = true;
        break;
      case R_PCI_DEV:
        if (check_int (where, key, v, 0, 31, err) < 0)
          return -1;
        copy = true;
        break;
      case R_OWN:
        break;
      }
    if (copy)
      json_object_object_add (out, key, json_object_get (v));
  }
  return 0;
}

#define INT(k, l, h) { k, R_INT, l, h, NULL }
#define EMPTY(k) { k, R_EMPTY, 0, 0, NULL }
#define BOOL(k) { k, R_BOOL, 0, 0, NULL }
#define OWN(k) { k, R_OWN, 0, 0, NULL }
#define ENUM(k, v) { k, R_ENUM, 0, 0, v }
#define DEVICE_IDS { "id", R_ID, 0, 0, NULL }, { "pci_segment", R_PCI_SEG, 0, 0, NULL }, \
                   { "pci_device_id", R_PCI_DEV, 0, 0, NULL }

static const char *const core_sched[] = { "Vm", "Vcpu", "Off", NULL };
static const char *const hotplug_methods[] = { "Acpi", "VirtioMem", NULL };
static const char *const lock_granularity[] = { "ByteRange", "Full", NULL };
static const char *const default_ip[] = { "192.168.249.1", NULL };
static const char *const default_mask[] = { "255.255.255.0", NULL };
static const char *const vhost_client[] = { "Client", NULL };
static const char *const console_modes[] = { "Off", "Null", "Tty", NULL };
static const char *const debug_console_modes[] = { "Off", NULL };

/* ---- the sections ---- */

static const struct rule cpus_rules[] = {
  OWN ("boot_vcpus"), OWN ("max_vcpus"), EMPTY ("topology"), EMPTY ("kvm_hyperv"),
  INT ("max_phys_bits", 1, 64), BOOL ("nested"), EMPTY ("affinity"), OWN ("features"),
  ENUM ("core_scheduling", core_sched), { NULL, 0, 0, 0, NULL }
};

static int
build_cpus (struct ctx *c, struct json_object *in, struct json_object *root,
            struct ate_error **err)
{
  struct json_object *out = json_object_new_object (), *b = NULL, *m = NULL, *f = NULL;
  int64_t lo = c->exp->vcpus ? c->exp->vcpus : 1, hi = c->exp->vcpus ? c->exp->vcpus : MAX_VCPUS;

  json_object_object_add (root, "cpus", out);
  if (in == NULL)
    return refuse (err, "cpus is missing");
  if (apply_rules (c, "cpus", in, cpus_rules, out, err) < 0)
    return -1;
  json_object_object_get_ex (in, "boot_vcpus", &b);
  json_object_object_get_ex (in, "max_vcpus", &m);
  if (b == NULL || m == NULL)
    return refuse (err, "cpus.boot_vcpus and cpus.max_vcpus are required");
  if (check_int ("cpus", "boot_vcpus", b, lo, hi, err) < 0
      || check_int ("cpus", "max_vcpus", m, lo, hi, err) < 0)
    return ate_error_wrap (err, "this server creates %u vCPUs", c->exp->vcpus);
  if (json_object_get_int64 (b) != json_object_get_int64 (m))
    return refuse (err, "cpus.boot_vcpus differs from cpus.max_vcpus (no vCPU hotplug here)");
  json_object_object_add (out, "boot_vcpus", json_object_get (b));
  json_object_object_add (out, "max_vcpus", json_object_get (m));
  if (json_object_object_get_ex (in, "features", &f) && !json_object_is_type (f, json_type_null))
    {
      if (!json_object_is_type (f, json_type_object))
        return refuse (err, "cpus.features must be an object");
      json_object_object_foreach (f, k, v)
      {
        if (!json_object_is_type (v, json_type_boolean))
          return refuse (err, "cpus.features.%.64s must be a boolean", k);
      }
      json_object_object_add (out, "features", json_object_get (f));
    }
  return 0;
}

static const struct rule memory_rules[] = {
  OWN ("size"), EMPTY ("mergeable"), ENUM ("hotplug_method", hotplug_methods),
  EMPTY ("hotplug_size"), EMPTY ("hotplugged_size"), OWN ("shared"), EMPTY ("hugepages"),
  EMPTY ("hugepage_size"), EMPTY ("prefault"), EMPTY ("reserve"), BOOL ("thp"), EMPTY ("zones"),
  { NULL, 0, 0, 0, NULL }
};

static int
build_memory (struct ctx *c, struct json_object *in, struct json_object *root,
              struct ate_error **err)
{
  struct json_object *out = json_object_new_object (), *size = NULL, *shared = NULL;
  uint64_t want = c->exp->memory_size;

  json_object_object_add (root, "memory", out);
  if (in == NULL)
    return refuse (err, "memory is missing");
  if (apply_rules (c, "memory", in, memory_rules, out, err) < 0)
    return -1;
  if (!json_object_object_get_ex (in, "size", &size) || size == NULL)
    return refuse (err, "memory.size is required");
  if (check_int ("memory", "size", size, want ? (int64_t) want : 1 << 20,
                 want ? (int64_t) want : (int64_t) MAX_MEMORY, err)
      < 0)
    return ate_error_wrap (err, "this server creates %llu bytes of guest memory",
                           (unsigned long long) want);
  if (json_object_get_int64 (size) % 4096)
    return refuse (err, "memory.size is not a multiple of 4 KiB");
  /* Shared (memfd) memory is what this server creates; the sparse
   * snapshot and the vsock device depend on it. */
  if (!json_object_object_get_ex (in, "shared", &shared)
      || !json_object_is_type (shared, json_type_boolean) || !json_object_get_boolean (shared))
    return refuse (err, "memory.shared must be true");
  json_object_object_add (out, "size", json_object_get (size));
  json_object_object_add (out, "shared", json_object_new_boolean (1));
  return 0;
}

static const struct rule payload_rules[] = {
  EMPTY ("firmware"), OWN ("kernel"), OWN ("cmdline"), EMPTY ("initramfs"), EMPTY ("igvm"),
  EMPTY ("host_data"), { NULL, 0, 0, 0, NULL }
};

static int
build_payload (struct ctx *c, struct json_object *in, struct json_object *root,
               struct ate_error **err)
{
  struct json_object *out = json_object_new_object ();

  json_object_object_add (root, "payload", out);
  if (in && apply_rules (c, "payload", in, payload_rules, out, err) < 0)
    return -1;
  json_object_object_add (out, "kernel", json_object_new_string (c->exp->kernel));
  if (c->exp->cmdline)
    json_object_object_add (out, "cmdline", json_object_new_string (c->exp->cmdline));
  return 0;
}

static const struct rule disk_rules[] = {
  OWN ("path"), OWN ("readonly"), EMPTY ("direct"), EMPTY ("iommu"), INT ("num_queues", 1, 256),
  INT ("queue_size", 1, 32768), EMPTY ("vhost_user"), EMPTY ("vhost_socket"),
  EMPTY ("rate_limiter_config"), EMPTY ("rate_limit_group"), EMPTY ("serial"),
  EMPTY ("queue_affinity"), OWN ("backing_files"), BOOL ("sparse"), OWN ("image_type"),
  ENUM ("lock_granularity", lock_granularity), BOOL ("disable_io_uring"), BOOL ("disable_aio"),
  DEVICE_IDS, { NULL, 0, 0, 0, NULL }
};

static bool
get_bool (struct json_object *o, const char *key, bool dflt, bool *ok)
{
  struct json_object *v;
  *ok = true;
  if (!json_object_object_get_ex (o, key, &v) || json_object_is_type (v, json_type_null))
    return dflt;
  *ok = json_object_is_type (v, json_type_boolean);
  return json_object_get_boolean (v);
}

static const char *
base_name (const char *p)
{
  const char *s = strrchr (p, '/');
  return s ? s + 1 : p;
}

static int
build_disk (struct ctx *c, size_t i, struct json_object *in, const struct ch_expected_disk *x,
            struct json_object *out, struct ate_error **err)
{
  char where[32];
  struct json_object *v;
  const char *path, *type;
  bool ok;

  snprintf (where, sizeof (where), "disks[%zu]", i);
  if (apply_rules (c, where, in, disk_rules, out, err) < 0)
    return -1;
  if (get_bool (in, "readonly", false, &ok) != x->readonly || !ok)
    return refuse (err, "%s.readonly must be %s", where, x->readonly ? "true" : "false");
  /* A writable disk is this actor's own file: its name must be one this
   * server gives it (only the directory differs between workers).  The
   * read-only image is the current kata-image asset. */
  path = json_object_object_get_ex (in, "path", &v) ? json_object_get_string (v) : NULL;
  if (path == NULL || !json_object_is_type (v, json_type_string) || path[0] != '/')
    return refuse (err, "%s.path must be an absolute path", where);
  if (!x->readonly && strcmp (base_name (path), base_name (x->path)) != 0)
    return refuse (err, "%s.path is not a disk this server creates for the actor (expected "
                        "a file named %s)",
                   where, base_name (x->path));
  type = json_object_object_get_ex (in, "image_type", &v) ? json_object_get_string (v) : NULL;
  if (type && x->image_type && strcmp (type, x->image_type) != 0)
    return refuse (err, "%s.image_type is %.16s, this server creates %s", where, type,
                   x->image_type);
  if (get_bool (in, "backing_files", x->backing_files, &ok) != x->backing_files || !ok)
    return refuse (err, "%s.backing_files must be %s", where, x->backing_files ? "true" : "false");
  if (x->id && (!json_object_object_get_ex (in, "id", &v)
                || !json_object_is_type (v, json_type_string)
                || strcmp (json_object_get_string (v), x->id) != 0))
    return refuse (err, "%s.id must be \"%s\"", where, x->id);
  json_object_object_add (out, "path", json_object_new_string (x->path));
  json_object_object_add (out, "readonly", json_object_new_boolean (x->readonly));
  if (x->image_type)
    json_object_object_add (out, "image_type", json_object_new_string (x->image_type));
  if (x->backing_files)
    json_object_object_add (out, "backing_files", json_object_new_boolean (1));
  return 0;
}

static int
build_disks (struct ctx *c, struct json_object *in, struct json_object *root,
             struct ate_error **err)
{
  struct json_object *arr = json_object_new_array ();
  size_t n = 0;

  json_object_object_add (root, "disks", arr);
  if (in && !json_object_is_type (in, json_type_array))
    return refuse (err, "disks must be an array");
  n = in ? json_object_array_length (in) : 0;
  if (n != c->exp->n_disks)
    return refuse (err, "disks has %zu entries; this server attaches %zu (the image and one "
                        "per container)",
                   n, c->exp->n_disks);
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *d = json_object_new_object ();
      json_object_array_add (arr, d);
      if (build_disk (c, i, json_object_array_get_idx (in, i), &c->exp->disks[i], d, err) < 0)
        return -1;
    }
  return 0;
}

static const struct rule net_rules[] = {
  EMPTY ("tap"), ENUM ("ip", default_ip), ENUM ("mask", default_mask), OWN ("mac"),
  EMPTY ("host_mac"), INT ("mtu", 68, 65535), EMPTY ("iommu"), OWN ("num_queues"),
  INT ("queue_size", 1, 32768), EMPTY ("vhost_user"), EMPTY ("vhost_socket"),
  ENUM ("vhost_mode", vhost_client), OWN ("fds"), EMPTY ("rate_limiter_config"),
  BOOL ("offload_tso"), BOOL ("offload_ufo"), BOOL ("offload_csum"), DEVICE_IDS,
  { NULL, 0, 0, 0, NULL }
};

static bool
valid_mac (const char *s)
{
  if (strlen (s) != 17)
    return false;
  for (int i = 0; i < 17; i++)
    if (i % 3 == 2 ? s[i] != ':' : !strchr ("0123456789abcdefABCDEF", s[i]))
      return false;
  return true;
}

static int
build_net (struct ctx *c, size_t i, struct json_object *in, struct json_object *out,
           struct ate_error **err)
{
  char where[32];
  struct json_object *v, *fds;
  const char *mac;
  size_t pairs = 1; /* CH's default num_queues is 2 */

  snprintf (where, sizeof (where), "net[%zu]", i);
  if (apply_rules (c, where, in, net_rules, out, err) < 0)
    return -1;
  if (!json_object_object_get_ex (in, "id", &v) || !json_object_is_type (v, json_type_string))
    return refuse (err, "%s.id is required (the restore hands each tap to a device id)", where);
  mac = json_object_object_get_ex (in, "mac", &v) && json_object_is_type (v, json_type_string)
            ? json_object_get_string (v)
            : NULL;
  if (mac == NULL || !valid_mac (mac))
    return refuse (err, "%s.mac is not a MAC address", where);
  if (c->exp->net_mac && strcasecmp (mac, c->exp->net_mac) != 0)
    return refuse (err, "%s.mac is not the MAC this server gives the guest (%s)", where,
                   c->exp->net_mac);
  json_object_object_add (out, "mac", json_object_new_string (mac));
  if (json_object_object_get_ex (in, "num_queues", &v) && !json_object_is_type (v, json_type_null))
    {
      if (check_int (where, "num_queues", v, 2, 2 * MAX_VCPUS, err) < 0)
        return -1;
      if (json_object_get_int64 (v) % 2)
        return refuse (err, "%s.num_queues must be even (one tap per queue pair)", where);
      json_object_object_add (out, "num_queues", json_object_get (v));
      pairs = (size_t) json_object_get_int64 (v) / 2;
    }
  /* The restore hands the server's own taps, one fd per queue pair; the
   * numbers in the snapshot are stale placeholders. */
  if (json_object_object_get_ex (in, "fds", &v) && !json_object_is_type (v, json_type_null))
    {
      if (!json_object_is_type (v, json_type_array) || json_object_array_length (v) != pairs)
        return refuse (err, "%s.fds must hold one entry per queue pair", where);
      for (size_t k = 0; k < pairs; k++)
        if (!json_object_is_type (json_object_array_get_idx (v, k), json_type_int))
          return refuse (err, "%s.fds must hold integers", where);
    }
  fds = json_object_new_array ();
  for (size_t k = 0; k < pairs; k++)
    json_object_array_add (fds, json_object_new_int (-1));
  json_object_object_add (out, "fds", fds);
  return 0;
}

static int
build_nets (struct ctx *c, struct json_object *in, struct json_object *root,
            struct ate_error **err)
{
  struct json_object *arr;
  size_t n;

  if (in == NULL)
    return 0;
  if (!json_object_is_type (in, json_type_array))
    return refuse (err, "net must be an array");
  n = json_object_array_length (in);
  if (n > MAX_NETS)
    return refuse (err, "net has %zu devices (at most %d)", n, MAX_NETS);
  arr = json_object_new_array ();
  json_object_object_add (root, "net", arr);
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *d = json_object_new_object ();
      json_object_array_add (arr, d);
      if (build_net (c, i, json_object_array_get_idx (in, i), d, err) < 0)
        return -1;
    }
  return 0;
}

static const struct rule rng_rules[] = { OWN ("src"), EMPTY ("iommu"), DEVICE_IDS,
                                         { NULL, 0, 0, 0, NULL } };

static int
build_rng (struct ctx *c, struct json_object *in, struct json_object *root,
           struct ate_error **err)
{
  struct json_object *out, *src;

  if (in == NULL && c->exp->rng_src == NULL)
    return 0;
  out = json_object_new_object ();
  json_object_object_add (root, "rng", out);
  if (in == NULL)
    return refuse (err, "rng is missing (this server creates an rng device)");
  if (apply_rules (c, "rng", in, rng_rules, out, err) < 0)
    return -1;
  if (!json_object_object_get_ex (in, "src", &src) || !json_object_is_type (src, json_type_string)
      || c->exp->rng_src == NULL || strcmp (json_object_get_string (src), c->exp->rng_src) != 0)
    return refuse (err, "rng.src is not the source this server uses (%s)",
                   c->exp->rng_src ? c->exp->rng_src : "none");
  json_object_object_add (out, "src", json_object_new_string (c->exp->rng_src));
  return 0;
}

static const struct rule serial_rules[] = { OWN ("mode"), OWN ("file"), EMPTY ("socket"),
                                            EMPTY ("iommu"), DEVICE_IDS,
                                            { NULL, 0, 0, 0, NULL } };

static int
build_serial (struct ctx *c, struct json_object *in, struct json_object *root,
              struct ate_error **err)
{
  struct json_object *out = json_object_new_object ();
  const char *mode;

  json_object_object_add (root, "serial", out);
  if (in == NULL || apply_rules (c, "serial", in, serial_rules, out, err) < 0)
    return in == NULL ? refuse (err, "serial is missing (this server logs it to a file)") : -1;
  mode = ate_json_get_string (in, "mode");
  if (mode == NULL || strcmp (mode, "File") != 0)
    return refuse (err, "serial.mode must be \"File\" (the server's own serial log)");
  json_object_object_add (out, "mode", json_object_new_string ("File"));
  json_object_object_add (out, "file", json_object_new_string (c->exp->serial_file));
  return 0;
}

static const struct rule console_rules[] = { ENUM ("mode", console_modes), EMPTY ("file"),
                                             EMPTY ("socket"), EMPTY ("iommu"), DEVICE_IDS,
                                             { NULL, 0, 0, 0, NULL } };
static const struct rule debug_console_rules[] = { ENUM ("mode", debug_console_modes),
                                                   EMPTY ("file"), INT ("iobase", 0, 65535),
                                                   { NULL, 0, 0, 0, NULL } };

static const struct rule vsock_rules[] = { OWN ("cid"), OWN ("socket"), EMPTY ("iommu"),
                                           DEVICE_IDS, { NULL, 0, 0, 0, NULL } };

static int
build_vsock (struct ctx *c, struct json_object *in, struct json_object *root,
             struct ate_error **err)
{
  struct json_object *out, *cid;

  if (c->exp->vsock_socket == NULL)
    return in ? refuse (err, "vsock is not something this server creates") : 0;
  out = json_object_new_object ();
  json_object_object_add (root, "vsock", out);
  if (in == NULL)
    return refuse (err, "vsock is missing (the kata agent is reached over it)");
  if (apply_rules (c, "vsock", in, vsock_rules, out, err) < 0)
    return -1;
  if (!json_object_object_get_ex (in, "cid", &cid)
      || check_int ("vsock", "cid", cid, c->exp->vsock_cid, c->exp->vsock_cid, err) < 0)
    return refuse (err, "vsock.cid must be %u", c->exp->vsock_cid);
  json_object_object_add (out, "cid", json_object_new_int64 (c->exp->vsock_cid));
  json_object_object_add (out, "socket", json_object_new_string (c->exp->vsock_socket));
  return 0;
}

static const struct rule platform_rules[] = {
  OWN ("num_pci_segments"), EMPTY ("iommu_segments"), EMPTY ("iommu_address_width"),
  EMPTY ("iommu_address_width_bits"), EMPTY ("serial_number"), EMPTY ("system_serial_number"),
  EMPTY ("uuid"), EMPTY ("system_uuid"), EMPTY ("oem_strings"), EMPTY ("system_manufacturer"),
  EMPTY ("system_product_name"), EMPTY ("system_version"), EMPTY ("system_family"),
  EMPTY ("system_sku_number"), EMPTY ("chassis_asset_tag"), EMPTY ("tdx"), EMPTY ("sev_snp"),
  EMPTY ("iommufd"), BOOL ("vfio_p2p_dma"), { NULL, 0, 0, 0, NULL }
};

static const struct rule rtc_rules[] = { EMPTY ("iommu"), DEVICE_IDS, { NULL, 0, 0, 0, NULL } };

/* First, because every device's pci_segment is checked against it. */
static int
build_platform (struct ctx *c, struct json_object *in, struct json_object *root,
                struct ate_error **err)
{
  struct json_object *out, *n;

  c->num_pci_segments = 1;
  if (in == NULL)
    return 0;
  out = json_object_new_object ();
  json_object_object_add (root, "platform", out);
  if (apply_rules (c, "platform", in, platform_rules, out, err) < 0)
    return -1;
  if (json_object_object_get_ex (in, "num_pci_segments", &n)
      && !json_object_is_type (n, json_type_null))
    {
      if (check_int ("platform", "num_pci_segments", n, 1, MAX_PCI_SEGMENTS, err) < 0)
        return -1;
      c->num_pci_segments = json_object_get_int64 (n);
      json_object_object_add (out, "num_pci_segments", json_object_get (n));
    }
  return 0;
}

/* A section whose members all follow rules; copied when present. */
static int
build_plain (struct ctx *c, const char *key, struct json_object *in, const struct rule *rules,
             struct json_object *root, struct ate_error **err)
{
  struct json_object *out;
  if (in == NULL)
    return 0;
  out = json_object_new_object ();
  json_object_object_add (root, key, out);
  return apply_rules (c, key, in, rules, out, err);
}

/* The top level: sections built above, then what must stay empty. */
static const char *const top_built[] = { "cpus",   "memory",  "payload",       "disks",
                                         "net",    "rng",     "serial",        "console",
                                         "debug_console", "vsock", "platform", "rtc",
                                         NULL };
static const char *const top_empty[] = {
  "rate_limit_groups", "balloon", "fs", "generic-vhost-user", "pmem", "devices", "user_devices",
  "vdpa", "numa", "iommu", "watchdog", "pvpanic", "pci_segments", "tpm", "landlock_enable",
  "landlock_rules", "sgx_epc", "gdb", "preserved_fds", NULL
};

static bool
in_list (const char *const *list, const char *key)
{
  for (; *list; list++)
    if (strcmp (*list, key) == 0)
      return true;
  return false;
}

static struct json_object *
section (struct json_object *snap, const char *key)
{
  struct json_object *v = NULL;
  if (!json_object_object_get_ex (snap, key, &v) || json_object_is_type (v, json_type_null))
    return NULL;
  return v;
}

int
ch_restore_config_build (struct json_object *snap, const struct ch_restore_expect *exp,
                         struct json_object **out, struct ate_error **err)
{
  cleanup_json struct json_object *root = NULL;
  struct ctx c = { .exp = exp, .num_pci_segments = 1 };

  *out = NULL;
  if (exp->kernel == NULL || exp->serial_file == NULL
      || (exp->n_disks && exp->disks == NULL))
    return ate_error_make (err, EINVAL, "restore config: the server's expectations are "
                                        "incomplete");
  if (!json_object_is_type (snap, json_type_object))
    return refuse (err, "not a JSON object");
  json_object_object_foreach (snap, key, v)
  {
    if (in_list (top_built, key))
      continue;
    if (in_list (top_empty, key))
      {
        if (!is_empty (v))
          return refuse (err, "%s is not allowed in a snapshot (this server never creates it)",
                         key);
        continue;
      }
    if (!json_object_is_type (v, json_type_null))
      return refuse (err, "%.64s is not something this server creates", key);
  }
  root = json_object_new_object ();
  if (build_platform (&c, section (snap, "platform"), root, err) < 0
      || build_cpus (&c, section (snap, "cpus"), root, err) < 0
      || build_memory (&c, section (snap, "memory"), root, err) < 0
      || build_payload (&c, section (snap, "payload"), root, err) < 0
      || build_disks (&c, section (snap, "disks"), root, err) < 0
      || build_nets (&c, section (snap, "net"), root, err) < 0
      || build_rng (&c, section (snap, "rng"), root, err) < 0
      || build_serial (&c, section (snap, "serial"), root, err) < 0
      || build_plain (&c, "console", section (snap, "console"), console_rules, root, err) < 0
      || build_plain (&c, "debug_console", section (snap, "debug_console"),
                      debug_console_rules, root, err) < 0
      || build_vsock (&c, section (snap, "vsock"), root, err) < 0
      || build_plain (&c, "rtc", section (snap, "rtc"), rtc_rules, root, err) < 0)
    return -1;
  *out = steal_pointer (&root);
  return 0;
}

int
ch_restore_config_sanitise (const char *restore_dir, const struct ch_restore_expect *exp,
                            ate_deadline_t deadline, struct ate_error **err)
{
  cleanup_free char *path = ate_path_join (restore_dir, "config.json");
  cleanup_json struct json_object *snap = NULL, *built = NULL;
  cleanup_free char *text = NULL, *out = NULL;
  size_t len = 0;

  if (ate_untrusted_read (restore_dir, "config.json", CONFIG_MAX, deadline, &text, &len, err) < 0)
    return -1;
  if (ate_json_parse (text, len, ATE_JSON_MAX_DEPTH, &snap, err) < 0)
    {
      ate_error_set_code (*err, ATE_CODE_FAILED_PRECONDITION);
      return ate_error_wrap (err, "`%s` is not valid JSON", path);
    }
  if (ch_restore_config_build (snap, exp, &built, err) < 0)
    return -1;
  out = ate_json_to_string (built, 0);
  if (ate_write_file_atomic (path, out, strlen (out), 0600, err) < 0)
    return ate_error_wrap (err, "write the restore configuration `%s`", path);
  return 0;
}
