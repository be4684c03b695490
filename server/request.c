/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "request.h"

#include <pthread.h>
#include <string.h>

#include "k8s/admission.h"
#include "util/error.h"
#include "util/log.h"
#include "util/util.h"
#include "util/validate.h"

static const char *const known_assets[] = {
  "cloud-hypervisor", "kata-kernel", "kata-image", "kata-config", "virtiofsd",
};

/* The map entry types of the three messages are distinct C types with the
 * same layout (key, value); they are read through this one. */
typedef Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry asset_entry;

void
request_fields_from_run (const Ateom__RunWorkloadRequest *m, struct request_fields *f)
{
  f->ns = m->actor_template_namespace;
  f->tmpl = m->actor_template_name;
  f->id = m->actor_id;
  f->spec = m->spec;
  f->n_assets = m->n_runtime_asset_paths;
  f->assets = m->runtime_asset_paths;
}

void
request_fields_from_checkpoint (const Ateom__CheckpointWorkloadRequest *m,
                                struct request_fields *f)
{
  f->ns = m->actor_template_namespace;
  f->tmpl = m->actor_template_name;
  f->id = m->actor_id;
  f->spec = m->spec;
  f->n_assets = m->n_runtime_asset_paths;
  f->assets = (asset_entry *const *) m->runtime_asset_paths;
}

void
request_fields_from_restore (const Ateom__RestoreWorkloadRequest *m, struct request_fields *f)
{
  f->ns = m->actor_template_namespace;
  f->tmpl = m->actor_template_name;
  f->id = m->actor_id;
  f->spec = m->spec;
  f->n_assets = m->n_runtime_asset_paths;
  f->assets = (asset_entry *const *) m->runtime_asset_paths;
}

static int
invalid (struct ate_error **err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
invalid (struct ate_error **err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  ate_error_vmake (err, ATE_CODE_INVALID_ARGUMENT, 0, fmt, ap);
  va_end (ap);
  return -1;
}

static int
check_identity (const struct request_fields *f, struct ate_error **err)
{
  if (ate_validate_label ("actor_template_namespace", f->ns, err) < 0
      || ate_validate_subdomain ("actor_template_name", f->tmpl, err) < 0
      || ate_validate_label ("actor_id", f->id, err) < 0)
    return -1;
  /* <ns>:<tmpl>:<id> is one directory name. */
  if (strlen (f->ns) + strlen (f->tmpl) + strlen (f->id) + 2 > 255)
    return invalid (err, "actor directory name \"%s:%s:%s\" is longer than 255 bytes",
                    f->ns, f->tmpl, f->id);
  return 0;
}

static int
check_readyz (size_t i, const Ateom__Container *c, struct actor_container *out,
              struct ate_error **err)
{
  const Ateom__HTTPGetAction *g;
  const char *path;

  out->readyz_port = 0;
  out->readyz_path = NULL;
  if (c->readyz == NULL || c->readyz->http_get == NULL)
    return 0;
  g = c->readyz->http_get;
  if (g->port < 1 || g->port > 65535)
    return invalid (err, "spec.containers[%zu].readyz.http_get.port %d is out of range 1..65535",
                    i, (int) g->port);
  path = g->path ? g->path : "";
  if (strlen (path) > REQUEST_MAX_READYZ_PATH)
    return invalid (err, "spec.containers[%zu].readyz.http_get.path is longer than %d bytes", i,
                    REQUEST_MAX_READYZ_PATH);
  for (const char *p = path; *p; p++)
    if ((unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7f)
      return invalid (err,
                      "spec.containers[%zu].readyz.http_get.path may only contain printable "
                      "ASCII without spaces",
                      i);
  out->readyz_port = g->port;
  out->readyz_path = path;
  return 0;
}

static int
check_containers (enum rpc_kind kind, const struct request_fields *f,
                  struct parsed_request *out, struct ate_error **err)
{
  size_t n = f->spec ? f->spec->n_containers : 0;

  if (kind == RPC_CHECKPOINT)
    return 0; /* the spec is sent but not used by a checkpoint */
  if (n == 0)
    return invalid (err, "actor spec has no containers");
  if (n > ACTOR_MAX_CONTAINERS)
    return ate_error_make_code (err, ATE_CODE_UNIMPLEMENTED, 0,
                                "ateom-microvm supports at most %d containers, got %zu",
                                ACTOR_MAX_CONTAINERS, n);
  out->containers = xcalloc (n, sizeof (*out->containers));
  for (size_t i = 0; i < n; i++)
    {
      const Ateom__Container *c = f->spec->containers[i];
      char field[64];

      snprintf (field, sizeof (field), "spec.containers[%zu].name", i);
      if (ate_validate_label (field, c->name, err) < 0)
        return -1;
      if (strcmp (c->name, "pause") == 0)
        return invalid (err, "%s must not be \"pause\" (reserved for the sandbox)", field);
      for (size_t j = 0; j < i; j++)
        if (strcmp (out->containers[j].name, c->name) == 0)
          return invalid (err, "%s \"%s\" is used twice", field, c->name);
      out->containers[i].name = c->name;
      if (check_readyz (i, c, &out->containers[i], err) < 0)
        return -1;
    }
  out->req.containers = out->containers;
  out->req.n_containers = n;
  return 0;
}

static bool
is_known_asset (const char *name)
{
  for (size_t i = 0; i < ATE_N_ELEMENTS (known_assets); i++)
    if (strcmp (known_assets[i], name) == 0)
      return true;
  return false;
}

/* Unknown asset names are logged once per name per process; the set
 * remembered is bounded (a caller could send a new name every call). */
#define REQUEST_UNKNOWN_ASSETS_REMEMBERED 256
#define REQUEST_UNKNOWN_ASSET_LOGGED_BYTES 256

static void
log_unknown_asset (const char *name)
{
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static char *seen[REQUEST_UNKNOWN_ASSETS_REMEMBERED];
  static size_t n_seen;
  static bool overflow_logged;
  cleanup_free char *shown = xstrndup (name, REQUEST_UNKNOWN_ASSET_LOGGED_BYTES);
  bool log = true, overflow = false;

  pthread_mutex_lock (&lock);
  for (size_t i = 0; i < n_seen && log; i++)
    if (strcmp (seen[i], name) == 0)
      log = false;
  if (log && n_seen < REQUEST_UNKNOWN_ASSETS_REMEMBERED)
    seen[n_seen++] = xstrdup (name);
  else if (log)
    {
      /* Full: say so once, then stay quiet rather than repeat. */
      overflow = !overflow_logged;
      overflow_logged = true;
      log = false;
    }
  pthread_mutex_unlock (&lock);
  if (log)
    ate_log (ATE_LOG_INFO, "runtime asset ignored: the microvm runtime does not use this name",
             "asset", shown, NULL);
  else if (overflow)
    ate_log (ATE_LOG_WARN, "more unknown runtime asset names than are remembered: no longer logged",
             NULL);
}

static int
check_assets (enum rpc_kind kind, const struct request_fields *f, struct parsed_request *out,
              struct ate_error **err)
{
  size_t n = 0;

  /* The whole message is at most 4 MiB; the count cap bounds the work per
   * call far above any SandboxConfig (a handful of assets). */
  if (f->n_assets > REQUEST_MAX_ASSETS)
    return invalid (err, "runtime_asset_paths has %zu entries (at most %d)", f->n_assets,
                    REQUEST_MAX_ASSETS);
  out->assets = xcalloc (f->n_assets ? f->n_assets : 1, sizeof (*out->assets));
  for (size_t i = 0; i < f->n_assets; i++)
    {
      const char *k = f->assets[i]->key ? f->assets[i]->key : "";
      const char *v = f->assets[i]->value ? f->assets[i]->value : "";
      char field[128];

      /* atelet forwards every asset of the SandboxConfig and the CRD does
       * not constrain the names: one we do not use is not our business
       * (docs/api.md, "Requests"). */
      if (!is_known_asset (k))
        {
          log_unknown_asset (k);
          continue;
        }
      snprintf (field, sizeof (field), "runtime_asset_paths[\"%s\"]", k);
      if (ate_validate_abs_path (field, v, err) < 0)
        return -1;
      out->assets[n].name = k;
      out->assets[n].path = v;
      n++;
    }
  out->req.assets = out->assets;
  out->req.n_assets = n;

  if (kind == RPC_RUN)
    {
      /* The SandboxConfig admission rules name what a microvm needs; the
       * server falls back to its flags for cloud-hypervisor and kata-config. */
      cleanup_free const char **names = xcalloc (n + 1, sizeof (*names));
      for (size_t i = 0; i < n; i++)
        names[i] = out->assets[i].name;
      if (ate_admission_check_runtime_assets ("microvm", names, n,
                                              ATE_ADMISSION_SERVER_FALLBACKS, err)
          < 0)
        return -1;
    }
  return 0;
}

int
request_parse (enum rpc_kind kind, const struct request_fields *f, struct parsed_request *out,
               struct ate_error **err)
{
  memset (out, 0, sizeof (*out));
  /* Each kind has its own rules below; a value outside the enum is a
   * caller's bug, not a request to treat like one of the three. */
  if (kind != RPC_RUN && kind != RPC_CHECKPOINT && kind != RPC_RESTORE)
    return ate_error_make_code (err, ATE_CODE_INTERNAL, 0, "unknown request kind %d", (int) kind);
  if (check_identity (f, err) < 0)
    return -1;
  out->req.ns = f->ns;
  out->req.tmpl = f->tmpl;
  out->req.id = f->id;
  if (check_containers (kind, f, out, err) < 0 || check_assets (kind, f, out, err) < 0)
    {
      parsed_request_free (out);
      return -1;
    }
  return 0;
}

/* ---- NUL bytes in strings ----
 *
 * protobuf-c hands strings over NUL-terminated, so "a1\0../../etc" would
 * reach us as "a1": the check has to read the wire bytes, where a string is
 * length-delimited.  Every string field of the message and its sub-messages
 * (map entries included) is checked; the message has already decoded, so
 * the walk only needs to be safe, not to validate. */

#define WIRE_MAX_DEPTH 16

static int
wire_varint (const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  *v = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7)
    {
      uint8_t b = *(*p)++;
      *v |= (uint64_t) (b & 0x7f) << shift;
      if (!(b & 0x80))
        return 0;
    }
  return -1;
}

static int
wire_check (const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
            const char *path, int depth, struct ate_error **err)
{
  while (p < end)
    {
      uint64_t tag, n = 0;
      const ProtobufCFieldDescriptor *fd;

      if (wire_varint (&p, end, &tag) < 0)
        return invalid (err, "%s: malformed protobuf message", path);
      switch (tag & 7)
        {
        case 0:
          if (wire_varint (&p, end, &n) < 0)
            return invalid (err, "%s: malformed protobuf message", path);
          continue;
        case 1:
          n = 8;
          break;
        case 5:
          n = 4;
          break;
        case 2:
          if (wire_varint (&p, end, &n) < 0)
            return invalid (err, "%s: malformed protobuf message", path);
          break;
        default:
          return invalid (err, "%s: unsupported protobuf wire type %u", path,
                          (unsigned) (tag & 7));
        }
      if (n > (uint64_t) (end - p))
        return invalid (err, "%s: malformed protobuf message", path);
      fd = (tag & 7) == 2 && tag >> 3 <= UINT32_MAX
               ? protobuf_c_message_descriptor_get_field (d, (unsigned) (tag >> 3))
               : NULL;
      if (fd && fd->type == PROTOBUF_C_TYPE_STRING && memchr (p, 0, n))
        return invalid (err, "%s%s%s contains a NUL byte", path, *path ? "." : "", fd->name);
      if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE)
        {
          cleanup_free char *sub = xasprintf ("%s%s%s", path, *path ? "." : "", fd->name);
          if (depth >= WIRE_MAX_DEPTH)
            return invalid (err, "%s: messages nested too deeply", sub);
          if (wire_check (fd->descriptor, p, p + n, sub, depth + 1, err) < 0)
            return -1;
        }
      p += n;
    }
  return 0;
}

int
request_check_strings (const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                       struct ate_error **err)
{
  return wire_check (d, buf, buf + len, "", 0, err);
}

void
parsed_request_free (struct parsed_request *p)
{
  free (p->containers);
  free (p->assets);
  memset (p, 0, sizeof (*p));
}
