/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The running actor: its paths and names, lifecycle events, the state file
 * a restarted server recovers it from, and the checkpoint marker that makes
 * a retried CheckpointWorkload safe.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "actor_internal.h"
#include "ch/ch.h"
#include "kata/cleanup.h"
#include "kata/logpump.h"
#include "net/net.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/util.h"

#define STATE_MAX (256u << 10)

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
actor_new (const struct actor_runtime *rt, const struct actor_request *req)
{
  const struct ate_paths *paths = &rt->cfg.paths;
  struct actor *a = xmalloc0 (sizeof (*a));

  a->ns = xstrdup (req->ns);
  a->tmpl = xstrdup (req->tmpl);
  a->id = xstrdup (req->id);
  a->dir = ate_path_actor (paths, req->ns, req->tmpl, req->id);
  a->vm_dir = ate_path_vm_dir (paths, req->id);
  a->api_socket = ate_path_join (a->vm_dir, ACTOR_API_SOCKET);
  a->vsock = ate_path_join (a->vm_dir, ACTOR_VSOCK_SOCKET);
  a->serial = ate_path_join (a->vm_dir, ACTOR_SERIAL_LOG);
  a->base_id = xstrdup (req->id);
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
  actor_guest_stop_logs (a);
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
  free (a);
}

void
actor_labels (const struct actor_runtime *rt, const struct actor *a,
              struct actorlog_labels *labels)
{
  memset (labels, 0, sizeof (*labels));
  labels->key = rt->labels_key;
  labels->actor_id = a->id;
  labels->template_name = a->tmpl;
  labels->template_namespace = a->ns;
}

void
actor_event (const struct actor_runtime *rt, const struct actor *a, const char *msg)
{
  struct actorlog_labels labels;
  actor_labels (rt, a, &labels);
  actorlog_event (&labels, msg);
}

/* ---- state file ---- */

int
actor_state_save (const struct actor *a, struct ate_error **err)
{
  cleanup_json struct json_object *o = json_object_new_object ();
  cleanup_free char *path = ate_path_join (a->vm_dir, ACTOR_STATE_FILE);
  struct json_object *ctrs = json_object_new_array ();
  cleanup_free char *text = NULL;

  json_object_object_add (o, "version", json_object_new_int (1));
  json_object_object_add (o, "namespace", json_object_new_string (a->ns));
  json_object_object_add (o, "template", json_object_new_string (a->tmpl));
  json_object_object_add (o, "actor_id", json_object_new_string (a->id));
  json_object_object_add (o, "api_socket", json_object_new_string (a->api_socket));
  json_object_object_add (o, "base_id", json_object_new_string (a->base_id));
  if (a->restore_src)
    json_object_object_add (o, "restore_source", json_object_new_string (a->restore_src));
  json_object_object_add (o, "restored", json_object_new_boolean (a->restored));
  if (a->vmm)
    {
      json_object_object_add (o, "vmm_pid", json_object_new_int64 (ch_vmm_pid (a->vmm)));
      json_object_object_add (o, "vmm_starttime",
                              json_object_new_uint64 (ch_vmm_starttime (a->vmm)));
    }
  for (size_t i = 0; i < a->n_ctrs; i++)
    json_object_array_add (ctrs, json_object_new_string (a->ctrs[i].name));
  json_object_object_add (o, "containers", ctrs);
  text = ate_json_to_string (o, 1);
  if (ate_write_file_atomic (path, text, strlen (text), 0600, err) < 0)
    return ate_error_wrap (err, "save the actor state");
  return 0;
}

/* Rebuild an actor from a state file; NULL when the file is unusable. */
static struct actor *
actor_from_state (const struct actor_runtime *rt, struct json_object *o,
                  pid_t *pid, unsigned long long *starttime)
{
  struct actor_request req = { 0 };
  struct json_object *ctrs, *v;
  struct actor_container *cs = NULL;
  struct actor *a;
  size_t n;

  req.ns = ate_json_get_string (o, "namespace");
  req.tmpl = ate_json_get_string (o, "template");
  req.id = ate_json_get_string (o, "actor_id");
  if (req.ns == NULL || req.tmpl == NULL || req.id == NULL
      || !json_object_object_get_ex (o, "containers", &ctrs)
      || !json_object_is_type (ctrs, json_type_array)
      || (n = json_object_array_length (ctrs)) == 0 || n > ACTOR_MAX_CONTAINERS)
    return NULL;
  cs = xcalloc (n, sizeof (*cs));
  for (size_t i = 0; i < n; i++)
    cs[i].name = json_object_get_string (json_object_array_get_idx (ctrs, i));
  req.containers = cs;
  req.n_containers = n;
  a = actor_new (rt, &req);
  free (cs);
  free (a->api_socket);
  a->api_socket = xstrdup (ate_json_get_string (o, "api_socket") ?: "");
  free (a->base_id);
  a->base_id = xstrdup (ate_json_get_string (o, "base_id") ?: a->id);
  if (ate_json_get_string (o, "restore_source"))
    a->restore_src = xstrdup (ate_json_get_string (o, "restore_source"));
  if (json_object_object_get_ex (o, "restored", &v))
    a->restored = json_object_get_boolean (v);
  *pid = json_object_object_get_ex (o, "vmm_pid", &v) ? (pid_t) json_object_get_int64 (v) : 0;
  *starttime = json_object_object_get_ex (o, "vmm_starttime", &v) ? json_object_get_uint64 (v) : 0;
  return a;
}

static void
recover_one (struct actor_runtime *rt, const char *path)
{
  cleanup_json struct json_object *o = NULL;
  cleanup_error struct ate_error *err = NULL;
  struct actor *a;
  pid_t pid = 0;
  unsigned long long st = 0;

  if (ate_json_parse_file (path, STATE_MAX, &o, &err) < 0)
    {
      ate_log (ATE_LOG_WARN, "ignoring an unreadable actor state file", "path", path, "error",
               err->msg, NULL);
      return;
    }
  a = actor_from_state (rt, o, &pid, &st);
  if (a == NULL)
    {
      ate_log (ATE_LOG_WARN, "ignoring an invalid actor state file", "path", path, NULL);
      return;
    }
  if (rt->running == NULL && pid > 0
      && ch_vmm_attach (pid, st, a->api_socket, &a->vmm, &err) == 0)
    {
      ate_log (ATE_LOG_INFO, "recovered a running actor after a restart", "actor_id", a->id,
               "api_socket", a->api_socket, NULL);
      rt->running = a;
      /* Its logs went to the old process; read them again if the agent
       * answers quickly. */
      actor_guest_reconnect (rt, a, NULL, ate_deadline_in_ms (3000));
      return;
    }
  ate_log (ATE_LOG_WARN, "cleaning up after an actor whose VMM is gone", "actor_id", a->id,
           "error", err ? err->msg : "another actor is running", NULL);
  ate_error_release (&err);
  if (actor_teardown (rt, a, &err) < 0)
    ate_error_log_warning_and_release (&err, "cleanup after restart");
  if (net_actor_cleanup (rt->net, &err) < 0)
    ate_error_log_warning_and_release (&err, "network cleanup after restart");
  actor_free (a);
}

void
actor_state_recover (struct actor_runtime *rt)
{
  cleanup_dir DIR *d = opendir (rt->cfg.paths.run_dir);
  struct dirent *de;

  if (d == NULL)
    return;
  while ((de = readdir (d)) != NULL)
    {
      if (de->d_name[0] == '.')
        continue;
      cleanup_free char *path = xasprintf ("%s/%s/%s", rt->cfg.paths.run_dir, de->d_name,
                                           ACTOR_STATE_FILE);
      if (ate_is_regular_file (path))
        recover_one (rt, path);
    }
}

/* ---- checkpoint files and marker ---- */

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

int
actor_list_files (const char *dir, char ***files, struct ate_error **err)
{
  cleanup_dir DIR *d = opendir (dir);
  struct dirent *de;
  char **v = NULL;
  size_t n = 0;

  if (d == NULL)
    return ate_error_make (err, errno, "list `%s`", dir);
  while ((de = readdir (d)) != NULL)
    {
      struct stat st;
      if (fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG (st.st_mode))
        continue;
      v = xrealloc (v, (n + 2) * sizeof (*v));
      v[n++] = xstrdup (de->d_name);
      v[n] = NULL;
    }
  if (v == NULL)
    v = xcalloc (1, sizeof (*v));
  qsort (v, n, sizeof (*v), cmp_str);
  *files = v;
  return 0;
}

static char *
marker_path (const char *actor_dir)
{
  return ate_path_join (actor_dir, ACTOR_CHECKPOINT_MARKER);
}

int
actor_marker_write (const char *actor_dir, char **files, struct ate_error **err)
{
  cleanup_free char *cp_dir = ate_path_join (actor_dir, "checkpoint-state");
  cleanup_free char *path = marker_path (actor_dir);
  cleanup_json struct json_object *o = json_object_new_object ();
  cleanup_free char *text = NULL;

  for (char **f = files; *f; f++)
    {
      cleanup_free char *p = ate_path_join (cp_dir, *f);
      struct stat st;
      if (stat (p, &st) < 0)
        return ate_error_make (err, errno, "stat `%s`", p);
      struct json_object *e = json_object_new_object ();
      json_object_object_add (e, "size", json_object_new_int64 (st.st_size));
      json_object_object_add (e, "ino", json_object_new_uint64 (st.st_ino));
      json_object_object_add (o, *f, e);
    }
  text = ate_json_to_string (o, 0);
  return ate_write_file_atomic (path, text, strlen (text), 0600, err);
}

char **
actor_marker_match (const char *actor_dir)
{
  cleanup_free char *cp_dir = ate_path_join (actor_dir, "checkpoint-state");
  cleanup_free char *path = marker_path (actor_dir);
  cleanup_json struct json_object *o = NULL;
  cleanup_strv char **files = NULL;
  struct ate_error *err = NULL;
  size_t n = 0;

  if (!ate_is_regular_file (path) || ate_json_parse_file (path, STATE_MAX, &o, &err) < 0
      || !json_object_is_type (o, json_type_object)
      || actor_list_files (cp_dir, &files, &err) < 0)
    {
      ate_error_release (&err);
      return NULL;
    }
  for (char **f = files; *f; f++, n++)
    {
      cleanup_free char *p = ate_path_join (cp_dir, *f);
      struct json_object *e, *size, *ino;
      struct stat st;
      if (!json_object_object_get_ex (o, *f, &e) || !json_object_object_get_ex (e, "size", &size)
          || !json_object_object_get_ex (e, "ino", &ino) || stat (p, &st) < 0
          || json_object_get_int64 (size) != st.st_size
          || json_object_get_uint64 (ino) != st.st_ino)
        return NULL;
    }
  if (n == 0 || (size_t) json_object_object_length (o) != n)
    return NULL;
  return steal_pointer (&files);
}

void
actor_marker_remove (const char *actor_dir)
{
  cleanup_free char *path = marker_path (actor_dir);
  unlink (path);
}
