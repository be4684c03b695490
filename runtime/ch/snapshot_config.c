/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "snapshot_config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/util.h"

static const char *
path_basename (const char *p)
{
  const char *s = strrchr (p, '/');
  return s ? s + 1 : p;
}

static int
repoint_disks (struct json_object *cfg, const struct ch_config_rewrite *rw,
               struct ate_error **err)
{
  struct json_object *disks = NULL;
  size_t n = 0;

  if (rw->n_disks == 0)
    return 0;
  if (json_object_object_get_ex (cfg, "disks", &disks)
      && json_object_is_type (disks, json_type_array))
    n = json_object_array_length (disks);
  for (size_t r = 0; r < rw->n_disks; r++)
    {
      const struct ch_disk_repoint *dp = &rw->disks[r];
      size_t matched = 0;

      if (dp->basename == NULL || strchr (dp->basename, '/') || dp->new_path == NULL
          || dp->new_path[0] != '/')
        return ate_error_make (err, EINVAL, "disk repoint %zu: need a basename and an "
                               "absolute path", r);
      for (size_t i = 0; i < n; i++)
        {
          struct json_object *d = json_object_array_get_idx (disks, i);
          const char *path;
          if (!json_object_is_type (d, json_type_object))
            continue;
          path = ate_json_get_string (d, "path");
          if (path && strcmp (path_basename (path), dp->basename) == 0)
            {
              json_object_object_add (d, "path", json_object_new_string (dp->new_path));
              matched++;
            }
        }
      if (matched == 0)
        return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, ENOENT,
                                    "snapshot config has no disk named `%s` to repoint",
                                    dp->basename);
    }
  return 0;
}

int
ch_snapshot_config_apply (struct json_object *cfg, const struct ch_config_rewrite *rw,
                          struct ate_error **err)
{
  struct json_object *o;

  if (!json_object_is_type (cfg, json_type_object))
    return ate_error_make (err, EINVAL, "snapshot config is not a JSON object");
  if (rw->vsock_socket && json_object_object_get_ex (cfg, "vsock", &o)
      && json_object_is_type (o, json_type_object))
    json_object_object_add (o, "socket", json_object_new_string (rw->vsock_socket));
  if (rw->serial_file && json_object_object_get_ex (cfg, "serial", &o)
      && json_object_is_type (o, json_type_object))
    {
      const char *mode = ate_json_get_string (o, "mode");
      if (mode && strcmp (mode, "File") == 0)
        json_object_object_add (o, "file", json_object_new_string (rw->serial_file));
    }
  if (rw->fs_socket && json_object_object_get_ex (cfg, "fs", &o)
      && json_object_is_type (o, json_type_array))
    for (size_t i = 0; i < json_object_array_length (o); i++)
      {
        struct json_object *f = json_object_array_get_idx (o, i);
        if (json_object_is_type (f, json_type_object))
          json_object_object_add (f, "socket", json_object_new_string (rw->fs_socket));
      }
  return repoint_disks (cfg, rw, err);
}

int
ch_snapshot_config_rewrite (const char *restore_dir, const struct ch_config_rewrite *rw,
                            struct ate_error **err)
{
  cleanup_free char *path = ate_path_join (restore_dir, "config.json");
  cleanup_json struct json_object *cfg = NULL;
  cleanup_free char *out = NULL;

  if (ate_json_parse_file (path, CH_CONFIG_JSON_MAX, &cfg, err) < 0
      || ch_snapshot_config_apply (cfg, rw, err) < 0)
    return ate_error_wrap (err, "rewrite snapshot config `%s`", path);
  out = ate_json_to_string (cfg, 0);
  if (ate_write_file_atomic (path, out, strlen (out), 0600, err) < 0)
    return ate_error_wrap (err, "rewrite snapshot config `%s`", path);
  return 0;
}

void
ch_net_devices_free (struct ch_net_device *devs, size_t n)
{
  if (devs == NULL)
    return;
  for (size_t i = 0; i < n; i++)
    {
      free (devs[i].id);
      free (devs[i].mac);
    }
  free (devs);
}

static int
parse_net_device (struct json_object *e, size_t i, struct ch_net_device *d,
                  struct ate_error **err)
{
  struct json_object *q;
  const char *id, *mac;
  int64_t nq = 0;

  if (!json_object_is_type (e, json_type_object))
    return ate_error_make (err, EINVAL, "net[%zu] is not an object", i);
  id = ate_json_get_string (e, "id");
  if (id == NULL || *id == '\0' || strlen (id) > 255)
    return ate_error_make (err, EINVAL, "net[%zu] has no valid id", i);
  mac = ate_json_get_string (e, "mac");
  if (json_object_object_get_ex (e, "num_queues", &q))
    {
      if (!json_object_is_type (q, json_type_int))
        return ate_error_make (err, EINVAL, "net[%zu].num_queues is not an integer", i);
      nq = json_object_get_int64 (q);
      if (nq < 0 || nq > 512)
        return ate_error_make (err, EINVAL, "net[%zu].num_queues %lld out of range", i,
                               (long long) nq);
    }
  d->id = xstrdup (id);
  d->mac = mac ? xstrdup (mac) : NULL;
  d->queue_pairs = nq / 2 > 0 ? (unsigned) (nq / 2) : 1;
  return 0;
}

int
ch_snapshot_net_devices (const char *restore_dir, struct ch_net_device **devs, size_t *n,
                         struct ate_error **err)
{
  cleanup_free char *path = ate_path_join (restore_dir, "config.json");
  cleanup_json struct json_object *cfg = NULL;
  struct json_object *net;
  struct ch_net_device *out;
  size_t len;

  *devs = NULL;
  *n = 0;
  if (ate_json_parse_file (path, CH_CONFIG_JSON_MAX, &cfg, err) < 0)
    return ate_error_wrap (err, "read snapshot net devices");
  if (!json_object_is_type (cfg, json_type_object))
    return ate_error_make (err, EINVAL, "`%s` is not a JSON object", path);
  if (!json_object_object_get_ex (cfg, "net", &net) || json_object_is_type (net, json_type_null))
    return 0;
  if (!json_object_is_type (net, json_type_array))
    return ate_error_make (err, EINVAL, "`%s`: net is not an array", path);
  len = json_object_array_length (net);
  if (len > CH_NET_DEVICES_MAX)
    return ate_error_make (err, E2BIG, "`%s`: %zu net devices (max %d)", path, len,
                           CH_NET_DEVICES_MAX);
  out = xcalloc (len ? len : 1, sizeof (*out));
  for (size_t i = 0; i < len; i++)
    if (parse_net_device (json_object_array_get_idx (net, i), i, &out[i], err) < 0)
      {
        ch_net_devices_free (out, i);
        return ate_error_wrap (err, "`%s`", path);
      }
  *devs = out;
  *n = len;
  return 0;
}

static bool
nonempty_array (struct json_object *cfg, const char *key)
{
  struct json_object *v = NULL;
  return json_object_object_get_ex (cfg, key, &v) && json_object_is_type (v, json_type_array)
         && json_object_array_length (v) > 0;
}

int
ch_snapshot_check_format (struct json_object *cfg, struct ate_error **err)
{
  static const char *const vm_sections[] = { "cpus", "memory", "payload" };

  if (!json_object_is_type (cfg, json_type_object))
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EINVAL,
                                "the snapshot's config.json is not a cloud-hypervisor VM "
                                "configuration (not a JSON object)");
  for (size_t i = 0; i < ATE_N_ELEMENTS (vm_sections); i++)
    if (!json_object_object_get_ex (cfg, vm_sections[i], NULL))
      return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EINVAL,
                                  "the snapshot's config.json is not a cloud-hypervisor VM "
                                  "configuration (no \"%s\")",
                                  vm_sections[i]);
  if (nonempty_array (cfg, "fs"))
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EINVAL,
                                "the snapshot is of the virtio-fs format (its VM has a "
                                "virtio-fs device: the rootfs was served by virtiofsd, as "
                                "agent-substrate's overlay-rootfs servers do); "
                                "ateom-microvm restores disk-rootfs snapshots only: restore it "
                                "on a pool that runs such a server, or take a new golden "
                                "snapshot on this one");
  return 0;
}

int
ch_snapshot_check_format_file (const char *restore_dir, struct ate_error **err)
{
  cleanup_free char *path = ate_path_join (restore_dir, "config.json");
  cleanup_json struct json_object *cfg = NULL;
  struct ate_error *perr = NULL;

  if (ate_json_parse_file (path, CH_CONFIG_JSON_MAX, &cfg, &perr) < 0)
    {
      /* The parser's message names the host path: keep it in the log. */
      ate_error_log_warning_and_release (&perr, "snapshot config.json unreadable");
      return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EINVAL,
                                  "the snapshot's config.json is not valid JSON (or over %u "
                                  "bytes): atelet may have placed an incomplete snapshot",
                                  CH_CONFIG_JSON_MAX);
    }
  return ch_snapshot_check_format (cfg, err);
}
