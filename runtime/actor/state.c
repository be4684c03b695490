/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The files of an actor (state.h): the state file a restarted server
 * recovers it from, the checkpoint file listing and the marker that makes a
 * retried CheckpointWorkload safe.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "actor/model.h"
#include "actor/state.h"
#include "ch/ch.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/util.h"

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
  if (a->snapshot_digest[0])
    json_object_object_add (o, "snapshot_digest", json_object_new_string (a->snapshot_digest));
  json_object_object_add (o, "ready", json_object_new_boolean (a->ready));
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

struct actor *
actor_state_parse (const struct actor_env *env, struct json_object *o, pid_t *pid,
                   unsigned long long *starttime)
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
  a = actor_new (env, &req);
  free (cs);
  free (a->api_socket);
  a->api_socket = xstrdup (ate_json_get_string (o, "api_socket") ?: "");
  free (a->base_id);
  a->base_id = xstrdup (ate_json_get_string (o, "base_id") ?: a->id);
  if (ate_json_get_string (o, "restore_source"))
    a->restore_src = xstrdup (ate_json_get_string (o, "restore_source"));
  if (json_object_object_get_ex (o, "restored", &v))
    a->restored = json_object_get_boolean (v);
  if (ate_json_get_string (o, "snapshot_digest")
      && strlen (ate_json_get_string (o, "snapshot_digest")) == ACTOR_DIGEST_HEX)
    memcpy (a->snapshot_digest, ate_json_get_string (o, "snapshot_digest"), ACTOR_DIGEST_HEX + 1);
  /* Written by an older server: its actors were saved once ready. */
  a->ready = !json_object_object_get_ex (o, "ready", &v) || json_object_get_boolean (v);
  *pid = json_object_object_get_ex (o, "vmm_pid", &v) ? (pid_t) json_object_get_int64 (v) : 0;
  *starttime = json_object_object_get_ex (o, "vmm_starttime", &v) ? json_object_get_uint64 (v) : 0;
  return a;
}

/* ---- snapshot identity ---- */

/* The snapshot's small files; memory-ranges (GiBs, and what the other files
 * describe) is left out.  Its config.json and state.json are a few KiB. */
#define SNAPSHOT_SMALL_FILE_MAX (16u << 20)

static int
digest_file (EVP_MD_CTX *ctx, const char *dir, const char *name, bool required,
             struct ate_error **err)
{
  cleanup_free char *path = ate_path_join (dir, name);
  cleanup_free char *buf = NULL;
  size_t len = 0;
  char head[300];
  int n;

  if (!required && !ate_path_exists (path))
    return 0;
  if (!ate_is_regular_file (path))
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, ENOENT,
                                "the snapshot has no %s in restore-state: atelet places the "
                                "snapshot files before the call",
                                name);
  if (ate_read_file (path, SNAPSHOT_SMALL_FILE_MAX, &buf, &len, err) < 0)
    return ate_error_wrap (err, "read the snapshot's %s", name);
  n = snprintf (head, sizeof (head), "%s\n%zu\n", name, len);
  if (EVP_DigestUpdate (ctx, head, (size_t) n) != 1 || EVP_DigestUpdate (ctx, buf, len) != 1)
    return ate_error_make (err, EIO, "sha256 of the snapshot's %s", name);
  return 0;
}

int
actor_snapshot_digest (const char *restore_dir, char *out, struct ate_error **err)
{
  static const char *const files[] = { ATE_BASE_ID_FILE, "config.json", "state.json" };
  EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  int r = 0;

  if (ctx == NULL || EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL) != 1)
    r = ate_error_make (err, ENOMEM, "sha256");
  for (size_t i = 0; r == 0 && i < ATE_N_ELEMENTS (files); i++)
    r = digest_file (ctx, restore_dir, files[i], i > 0, err);
  if (r == 0)
    {
      /* The memory's size, not its content (GiBs an on-demand restore
       * never reads whole). */
      cleanup_free char *mem = ate_path_join (restore_dir, "memory-ranges");
      struct stat st;
      char size[48];
      int n = snprintf (size, sizeof (size), "memory-ranges\n%lld\n",
                        stat (mem, &st) == 0 ? (long long) st.st_size : -1LL);
      if (EVP_DigestUpdate (ctx, size, (size_t) n) != 1)
        r = ate_error_make (err, EIO, "sha256");
    }
  if (r == 0 && (EVP_DigestFinal_ex (ctx, md, &mdlen) != 1 || mdlen * 2 != ACTOR_DIGEST_HEX))
    r = ate_error_make (err, EIO, "sha256");
  EVP_MD_CTX_free (ctx);
  if (r < 0)
    return -1;
  for (unsigned int i = 0; i < mdlen; i++)
    snprintf (out + 2 * i, 3, "%02x", md[i]);
  return 0;
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

  if (!ate_is_regular_file (path) || ate_json_parse_file (path, ACTOR_STATE_MAX, &o, &err) < 0
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
