/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor model (model.h): an activation's paths and names, its resolved
 * assets, labels and lifecycle events.
 */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "actor/model.h"
#include "ch/ch.h"
#include "util/fs.h"
#include "util/paths.h"
#include "util/util.h"

const char *
actor_request_asset (const struct actor_request *req, const char *name)
{
  for (size_t i = 0; i < req->n_assets; i++)
    if (strcmp (req->assets[i].name, name) == 0)
      return req->assets[i].path;
  return NULL;
}

static char *
strdup_or_null (const char *s)
{
  return s ? xstrdup (s) : NULL;
}

static char *
container_disk_name (size_t i, const char *name)
{
  if (i == 0)
    return xstrdup (ATE_ACTOR_ROOTFS_DISK);
  return xasprintf ("actor-rootfs-%s.ext4", name);
}

static void
actor_ctr_init (struct actor_ctr *c, const struct actor *a, const struct ate_paths *paths,
                size_t i, const char *name)
{
  cleanup_free char *disk = container_disk_name (i, name);
  c->name = xstrdup (name);
  c->bundle = ate_path_bundle (paths, a->ns, a->tmpl, a->id, name);
  c->disk = ate_path_join (a->dir, disk);
  /* The first container uses the actor id like the reference; the others
   * "<id>_<name>" ('_' cannot occur in a DNS label: no collisions). */
  c->kata_id = i == 0 ? xstrdup (a->id) : xasprintf ("%s_%s", a->id, name);
  c->guest_dev = xasprintf ("/dev/vd%c", (char) ('b' + i));
}

struct actor *
actor_new (const struct actor_env *env, const struct actor_request *req)
{
  const struct ate_paths *paths = &env->cfg.paths;
  struct actor *a = xmalloc0 (sizeof (*a));

  a->ns = xstrdup (req->ns);
  a->tmpl = xstrdup (req->tmpl);
  a->id = xstrdup (req->id);
  a->cancel = req->cancel;
  a->dir = ate_path_actor (paths, req->ns, req->tmpl, req->id);
  a->vm_dir = ate_path_vm_dir (paths, req->id);
  a->api_socket = ate_path_join (a->vm_dir, ACTOR_API_SOCKET);
  a->vsock = ate_path_join (a->vm_dir, ACTOR_VSOCK_SOCKET);
  a->serial = ate_path_join (a->vm_dir, ACTOR_SERIAL_LOG);
  a->base_id = xstrdup (req->id);
  a->ch_binary = strdup_or_null (actor_request_asset (req, "cloud-hypervisor") ?: env->cfg.ch_binary);
  a->kata_config = strdup_or_null (actor_request_asset (req, "kata-config") ?: env->cfg.kata_config);
  a->kata_kernel = strdup_or_null (actor_request_asset (req, "kata-kernel"));
  a->kata_image = strdup_or_null (actor_request_asset (req, "kata-image"));
  a->n_ctrs = req->n_containers;
  a->ctrs = xcalloc (a->n_ctrs ? a->n_ctrs : 1, sizeof (*a->ctrs));
  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      actor_ctr_init (&a->ctrs[i], a, paths, i, req->containers[i].name);
      a->ctrs[i].readyz_port = req->containers[i].readyz_port;
      a->ctrs[i].readyz_path = req->containers[i].readyz_port
                                   ? xstrdup (req->containers[i].readyz_path)
                                   : NULL;
    }
  return a;
}

void
actor_free (struct actor *a)
{
  if (a == NULL)
    return;
  ch_vmm_free (a->vmm);
  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      free (a->ctrs[i].name);
      free (a->ctrs[i].bundle);
      free (a->ctrs[i].disk);
      free (a->ctrs[i].kata_id);
      free (a->ctrs[i].guest_dev);
      free (a->ctrs[i].readyz_path);
      json_object_put (a->ctrs[i].spec);
    }
  free (a->ctrs);
  free (a->ns);
  free (a->tmpl);
  free (a->id);
  free (a->dir);
  free (a->vm_dir);
  free (a->api_socket);
  free (a->vsock);
  free (a->serial);
  free (a->base_id);
  free (a->restore_src);
  free (a->ch_binary);
  free (a->kata_config);
  free (a->kata_kernel);
  free (a->kata_image);
  free (a);
}

void
actor_labels (const struct actor_env *env, const struct actor *a,
              struct actorlog_labels *labels)
{
  memset (labels, 0, sizeof (*labels));
  labels->key = env->labels_key;
  labels->actor_id = a->id;
  labels->template_name = a->tmpl;
  labels->template_namespace = a->ns;
}

void
actor_event (const struct actor_env *env, const struct actor *a, const char *msg)
{
  struct actorlog_labels labels;
  actor_labels (env, a, &labels);
  actorlog_event (&labels, msg);
}
