/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "api.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/util.h"

#define API "/api/v1/"

/* ---------------------------------------------------------------- version */

static int
parse_uint (const char **p, unsigned *out)
{
  unsigned long v = 0;
  const char *s = *p;

  if (!isdigit ((unsigned char) *s))
    return -1;
  while (isdigit ((unsigned char) *s))
    {
      v = v * 10 + (unsigned long) (*s - '0');
      if (v > 1000000)
        return -1;
      s++;
    }
  *out = (unsigned) v;
  *p = s;
  return 0;
}

int
ch_version_parse (const char *s, struct ch_version *out, struct ate_error **err)
{
  struct ch_version v = { 0 };
  const char *p;

  if (s == NULL)
    return ate_error_make (err, EINVAL, "no cloud-hypervisor version");
  snprintf (v.raw, sizeof (v.raw), "%s", s);
  p = strrchr (s, ' '); /* "cloud-hypervisor v52.0.0" */
  p = p ? p + 1 : s;
  if (*p == 'v' || *p == 'V')
    p++;
  if (parse_uint (&p, &v.major) < 0)
    return ate_error_make (err, EINVAL, "unparseable cloud-hypervisor version `%s`", s);
  if (*p == '.')
    {
      p++;
      if (parse_uint (&p, &v.minor) < 0)
        return ate_error_make (err, EINVAL, "unparseable cloud-hypervisor version `%s`", s);
      if (*p == '.')
        {
          p++;
          if (parse_uint (&p, &v.patch) < 0)
            return ate_error_make (err, EINVAL, "unparseable cloud-hypervisor version `%s`", s);
        }
    }
  /* A git-describe suffix ("-246-gae44c297") or build metadata may follow. */
  if (*p != '\0' && *p != '-' && *p != '+' && !isspace ((unsigned char) *p))
    return ate_error_make (err, EINVAL, "unparseable cloud-hypervisor version `%s`", s);
  *out = v;
  return 0;
}

/* ------------------------------------------------------------ restore mode */

const char *
ch_restore_mode_name (enum ch_restore_mode mode)
{
  return mode == CH_RESTORE_ONDEMAND ? "OnDemand" : "Copy";
}

int
ch_restore_pref_parse (const char *s, enum ch_restore_pref *out, struct ate_error **err)
{
  if (s == NULL || *s == '\0' || strcasecmp (s, "auto") == 0)
    *out = CH_RESTORE_PREF_AUTO;
  else if (strcasecmp (s, "copy") == 0)
    *out = CH_RESTORE_PREF_COPY;
  else if (strcasecmp (s, "ondemand") == 0)
    *out = CH_RESTORE_PREF_ONDEMAND;
  else
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "restore mode `%s`: expected auto, copy or ondemand", s);
  return 0;
}

int
ch_restore_mode_choose (const struct ch_version *v, enum ch_restore_pref pref,
                        enum ch_restore_mode *mode, bool *send_field, struct ate_error **err)
{
  if (v->major < 52)
    {
      /* memory_restore_mode appeared in v52.0; v51 ignores the field and
       * copies, so sending it would only pretend to demand-page. */
      if (pref == CH_RESTORE_PREF_ONDEMAND)
        return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, ENOTSUP,
                                    "OnDemand restore needs cloud-hypervisor v52.0 or later; "
                                    "this one is %s (use copy or auto)",
                                    v->raw);
      *mode = CH_RESTORE_COPY;
      *send_field = false;
      return 0;
    }
  *send_field = true;
  switch (pref)
    {
    case CH_RESTORE_PREF_COPY:
      *mode = CH_RESTORE_COPY;
      break;
    case CH_RESTORE_PREF_ONDEMAND:
      *mode = CH_RESTORE_ONDEMAND;
      break;
    case CH_RESTORE_PREF_AUTO:
    default:
      /* v53 prefaults every page in the background after an OnDemand
       * restore (and refuses snapshots until done): Copy, which reads only
       * the populated extents since v52, is cheaper there. */
      *mode = v->major == 52 ? CH_RESTORE_ONDEMAND : CH_RESTORE_COPY;
      break;
    }
  return 0;
}

/* ---------------------------------------------------------------- VmConfig */

static struct json_object *
json_u64 (uint64_t v)
{
  return v > (uint64_t) INT64_MAX ? json_object_new_uint64 (v) : json_object_new_int64 ((int64_t) v);
}

static int
disks_to_json (const struct ch_vm_config *cfg, struct json_object *root, struct ate_error **err)
{
  struct json_object *arr = json_object_new_array ();

  json_object_object_add (root, "disks", arr);
  for (size_t i = 0; i < cfg->n_disks; i++)
    {
      const struct ch_disk_config *d = &cfg->disks[i];
      struct json_object *o;
      if (d->path == NULL || d->path[0] != '/')
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                    "disk %zu: path must be absolute", i);
      o = json_object_new_object ();
      json_object_object_add (o, "path", json_object_new_string (d->path));
      json_object_object_add (o, "readonly", json_object_new_boolean (d->readonly));
      json_object_object_add (o, "direct", json_object_new_boolean (d->direct));
      if (d->num_queues)
        json_object_object_add (o, "num_queues", json_u64 (d->num_queues));
      if (d->queue_size)
        json_object_object_add (o, "queue_size", json_u64 (d->queue_size));
      if (d->image_type && *d->image_type)
        json_object_object_add (o, "image_type", json_object_new_string (d->image_type));
      if (d->backing_files)
        json_object_object_add (o, "backing_files", json_object_new_boolean (true));
      json_object_array_add (arr, o);
    }
  return 0;
}

static int
vm_config_check (const struct ch_vm_config *cfg, struct ate_error **err)
{
  if (cfg->boot_vcpus == 0 || (cfg->max_vcpus && cfg->max_vcpus < cfg->boot_vcpus))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "vm config: need 1 <= boot_vcpus <= max_vcpus");
  if (cfg->memory_size == 0 || cfg->memory_size % 4096)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "vm config: memory size must be a non-zero multiple of 4 KiB");
  if (cfg->kernel == NULL || cfg->kernel[0] != '/')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "vm config: kernel path must be absolute");
  if (cfg->vsock_socket && cfg->vsock_cid < 3)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "vm config: vsock cid must be >= 3");
  return 0;
}

int
ch_vm_config_to_json (const struct ch_vm_config *cfg, char **json, struct ate_error **err)
{
  cleanup_json struct json_object *root = NULL;
  struct json_object *o;

  if (vm_config_check (cfg, err) < 0)
    return -1;
  root = json_object_new_object ();
  o = json_object_new_object ();
  json_object_object_add (o, "boot_vcpus", json_u64 (cfg->boot_vcpus));
  json_object_object_add (o, "max_vcpus",
                          json_u64 (cfg->max_vcpus ? cfg->max_vcpus : cfg->boot_vcpus));
  json_object_object_add (root, "cpus", o);
  o = json_object_new_object ();
  json_object_object_add (o, "size", json_u64 (cfg->memory_size));
  json_object_object_add (o, "shared", json_object_new_boolean (cfg->memory_shared));
  json_object_object_add (root, "memory", o);
  o = json_object_new_object ();
  json_object_object_add (o, "kernel", json_object_new_string (cfg->kernel));
  if (cfg->cmdline)
    json_object_object_add (o, "cmdline", json_object_new_string (cfg->cmdline));
  json_object_object_add (root, "payload", o);
  if (cfg->n_disks && disks_to_json (cfg, root, err) < 0)
    return -1;
  if (cfg->rng_src)
    {
      o = json_object_new_object ();
      json_object_object_add (o, "src", json_object_new_string (cfg->rng_src));
      json_object_object_add (root, "rng", o);
    }
  if (cfg->serial_file)
    {
      o = json_object_new_object ();
      json_object_object_add (o, "mode", json_object_new_string ("File"));
      json_object_object_add (o, "file", json_object_new_string (cfg->serial_file));
      json_object_object_add (root, "serial", o);
    }
  if (cfg->vsock_socket)
    {
      o = json_object_new_object ();
      json_object_object_add (o, "cid", json_u64 (cfg->vsock_cid));
      json_object_object_add (o, "socket", json_object_new_string (cfg->vsock_socket));
      json_object_object_add (root, "vsock", o);
    }
  if (cfg->num_pci_segments)
    {
      o = json_object_new_object ();
      json_object_object_add (o, "num_pci_segments", json_u64 (cfg->num_pci_segments));
      json_object_object_add (root, "platform", o);
    }
  *json = ate_json_to_string (root, 0);
  return 0;
}

/* ------------------------------------------------------------------- calls */

static int
put (const char *sock, const char *endpoint, const char *body, const int *fds, size_t nfds,
     ate_deadline_t deadline, struct ate_error **err)
{
  cleanup_free char *path = xasprintf (API "%s", endpoint);
  return ch_http_request (sock, "PUT", path, body, fds, nfds, deadline, NULL, err);
}

static int
get_json (const char *sock, const char *endpoint, ate_deadline_t deadline,
          struct json_object **out, struct ate_error **err)
{
  cleanup_free char *path = xasprintf (API "%s", endpoint);
  struct ch_http_response r = { 0 };
  int ret;

  if (ch_http_request (sock, "GET", path, NULL, NULL, 0, deadline, &r, err) < 0)
    {
      ch_http_response_clear (&r);
      return -1;
    }
  ret = ate_json_parse (r.body ? r.body : "", r.body_len, 32, out, err);
  ch_http_response_clear (&r);
  if (ret < 0)
    return ate_error_wrap (err, "GET %s: response", path);
  if (!json_object_is_type (*out, json_type_object))
    {
      json_object_put (*out);
      *out = NULL;
      return ate_error_make (err, EPROTO, "GET %s: response is not a JSON object", path);
    }
  return 0;
}

int
ch_ping (const char *api_socket, struct ch_version *version, ate_deadline_t deadline,
         struct ate_error **err)
{
  cleanup_json struct json_object *o = NULL;

  if (get_json (api_socket, "vmm.ping", deadline, &o, err) < 0)
    return -1;
  if (version && ch_version_parse (ate_json_get_string (o, "version"), version, err) < 0)
    return ate_error_wrap (err, "vmm.ping");
  return 0;
}

int
ch_vm_create (const char *api_socket, const struct ch_vm_config *cfg, ate_deadline_t deadline,
              struct ate_error **err)
{
  cleanup_free char *body = NULL;

  if (ch_vm_config_to_json (cfg, &body, err) < 0)
    return -1;
  return put (api_socket, "vm.create", body, NULL, 0, deadline, err);
}

char *
ch_add_net_body (const char *mac, uint32_t num_queues, size_t nfds)
{
  cleanup_json struct json_object *o = json_object_new_object ();

  if (mac && *mac)
    json_object_object_add (o, "mac", json_object_new_string (mac));
  if (num_queues)
    json_object_object_add (o, "num_queues", json_object_new_int64 (num_queues));
  if (nfds)
    json_object_object_add (o, "num_fds", json_object_new_int64 ((int64_t) nfds));
  return ate_json_to_string (o, 0);
}

int
ch_vm_add_net (const char *api_socket, const char *mac, uint32_t num_queues, const int *fds,
               size_t nfds, ate_deadline_t deadline, struct ate_error **err)
{
  cleanup_free char *body = NULL;

  if (nfds == 0 || (num_queues && num_queues != 2 * nfds))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "vm.add-net: %zu tap fds for %u queues (need one per queue pair)",
                                nfds, num_queues);
  body = ch_add_net_body (mac, num_queues, nfds);
  return put (api_socket, "vm.add-net", body, fds, nfds, deadline, err);
}

int
ch_vm_boot (const char *api_socket, ate_deadline_t deadline, struct ate_error **err)
{
  return put (api_socket, "vm.boot", NULL, NULL, 0, deadline, err);
}

int
ch_vm_info_state (const char *api_socket, char **state, ate_deadline_t deadline,
                  struct ate_error **err)
{
  cleanup_json struct json_object *o = NULL;
  const char *s;

  if (get_json (api_socket, "vm.info", deadline, &o, err) < 0)
    return -1;
  s = ate_json_get_string (o, "state");
  if (s == NULL)
    return ate_error_make (err, EPROTO, "vm.info: no state in the response");
  *state = xstrdup (s);
  return 0;
}

int
ch_vm_pause (const char *api_socket, ate_deadline_t deadline, struct ate_error **err)
{
  cleanup_free char *state = NULL;
  struct ate_error *ierr = NULL;

  /* A failing vm.info is not fatal: the pause itself reports the problem. */
  if (ch_vm_info_state (api_socket, &state, deadline, &ierr) < 0)
    ate_error_release (&ierr);
  else if (strcmp (state, "Paused") == 0)
    return 0;
  return put (api_socket, "vm.pause", NULL, NULL, 0, deadline, err);
}

int
ch_vm_resume (const char *api_socket, ate_deadline_t deadline, struct ate_error **err)
{
  return put (api_socket, "vm.resume", NULL, NULL, 0, deadline, err);
}

int
ch_vm_snapshot (const char *api_socket, const char *dir, ate_deadline_t deadline,
                struct ate_error **err)
{
  cleanup_json struct json_object *o = NULL;
  cleanup_free char *url = NULL, *body = NULL;

  if (dir == NULL || dir[0] != '/')
    return ate_error_make (err, EINVAL, "vm.snapshot: directory must be absolute");
  if (ate_mkdir_p (dir, 0755, err) < 0)
    return ate_error_wrap (err, "vm.snapshot");
  url = xasprintf ("file://%s", dir);
  o = json_object_new_object ();
  json_object_object_add (o, "destination_url", json_object_new_string (url));
  body = ate_json_to_string (o, 0);
  return put (api_socket, "vm.snapshot", body, NULL, 0, deadline, err);
}

char *
ch_restore_body (const char *source_dir, enum ch_restore_mode mode, bool send_mode,
                 const struct ch_restore_net *nets, size_t nnets)
{
  cleanup_json struct json_object *o = json_object_new_object ();
  cleanup_free char *url = xasprintf ("file://%s", source_dir);

  json_object_object_add (o, "source_url", json_object_new_string (url));
  if (send_mode)
    json_object_object_add (o, "memory_restore_mode",
                            json_object_new_string (ch_restore_mode_name (mode)));
  if (nnets)
    {
      struct json_object *arr = json_object_new_array ();
      for (size_t i = 0; i < nnets; i++)
        {
          struct json_object *n = json_object_new_object ();
          json_object_object_add (n, "id", json_object_new_string (nets[i].id));
          json_object_object_add (n, "num_fds", json_object_new_int64 ((int64_t) nets[i].num_fds));
          json_object_array_add (arr, n);
        }
      json_object_object_add (o, "net_fds", arr);
    }
  return ate_json_to_string (o, 0);
}

int
ch_vm_restore (const char *api_socket, const char *source_dir, enum ch_restore_mode mode,
               bool send_mode, const struct ch_restore_net *nets, size_t nnets,
               const int *fds, size_t nfds, ate_deadline_t deadline, struct ate_error **err)
{
  cleanup_free char *body = NULL;
  size_t want = 0;

  if (source_dir == NULL || source_dir[0] != '/')
    return ate_error_make (err, EINVAL, "vm.restore: source directory must be absolute");
  if (!send_mode && mode == CH_RESTORE_ONDEMAND)
    return ate_error_make (err, EINVAL,
                           "vm.restore: OnDemand needs memory_restore_mode to be sent");
  for (size_t i = 0; i < nnets; i++)
    {
      if (nets[i].id == NULL || nets[i].num_fds == 0)
        return ate_error_make (err, EINVAL, "vm.restore: net %zu needs an id and fds", i);
      want += nets[i].num_fds;
    }
  if (want != nfds)
    return ate_error_make (err, EINVAL, "vm.restore: %zu fds given, net_fds name %zu", nfds,
                           want);
  body = ch_restore_body (source_dir, mode, send_mode, nets, nnets);
  return put (api_socket, "vm.restore", body, fds, nfds, deadline, err);
}

int
ch_vm_shutdown (const char *api_socket, ate_deadline_t deadline, struct ate_error **err)
{
  return put (api_socket, "vm.shutdown", NULL, NULL, 0, deadline, err);
}

int
ch_vmm_shutdown (const char *api_socket, ate_deadline_t deadline, struct ate_error **err)
{
  return put (api_socket, "vmm.shutdown", NULL, NULL, 0, deadline, err);
}
