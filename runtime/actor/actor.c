/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RunWorkload, CheckpointWorkload and RestoreWorkload as numbered steps
 * (docs/architecture.md, "The three RPCs"), teardown, rollback and restart
 * recovery: the top of the actor layers ("Layers").  The details live in
 * the layers below (vm, guest, disk, netjob over model, state, timing) and
 * the runtime modules; every failure rolls back what the call built and
 * names the step that failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "actor/actor.h"
#include "actor/disk.h"
#include "actor/guest.h"
#include "actor/model.h"
#include "actor/netjob.h"
#include "actor/state.h"
#include "actor/timing.h"
#include "actor/vm.h"
#include "ch/ch.h"
#include "kata/actorlog.h"
#include "kata/cleanup.h"
#include "kata/spec.h"
#include "net/net.h"
#include "rootfs/rootfs.h"
#include "util/cancel.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/untrusted.h"
#include "util/util.h"
#include "util/validate.h"

/* Bound on a restore-state file (memory-ranges is the largest). */
#define ACTOR_SNAPSHOT_FILE_MAX (1ULL << 42)

struct actor_runtime
{
  struct actor_env env;

  /* The one activation this worker runs (network state is per pod).  The
   * server serialises the RPCs (server/service.c), so no lock here. */
  struct actor *running;

  /* The network cleanup a checkpoint left running in the background. */
  struct actor_netjob_cleanup net_cleanup;

  /* "<ns>/<tmpl>/<id>" of the actor whose cloud-hypervisor died before or
   * during its checkpoint, so a retried CheckpointWorkload gets the same
   * answer (until the next Run or Restore). */
  char *lost;
};

/* ---- teardown ---- */

/* Stop the guest side (agent connection, VMM, log pumps), then remove the
 * sandbox state.  Collects errors, never fails half-way. */
static int
teardown_by (struct actor_runtime *rt, struct actor *a, ate_deadline_t deadline,
             struct ate_error **err)
{
  struct ate_error *e = NULL;

  /* Closing the agent connection ends the log pumps (their reads fail). */
  actor_guest_disconnect (a);
  actor_vm_stop_by (a, deadline);
  actor_guest_release (a);
  if (a->restore_src)
    {
      /* The kept restore source (ACTOR_RESTORE_BASE) is no base for
       * anything once the VM is gone. */
      cleanup_free char *kept = ate_path_join (a->dir, ACTOR_RESTORE_BASE);
      unlink (kept);
    }
  if (kata_sandbox_cleanup (&rt->env.cfg.paths, a->id, &e) < 0)
    {
      ate_error_collect (err, &e, "clean up the sandbox state");
      return -1;
    }
  return 0;
}

static int
teardown (struct actor_runtime *rt, struct actor *a, struct ate_error **err)
{
  return teardown_by (rt, a, ATE_DEADLINE_NONE, err);
}

/* ---- restart recovery (docs/architecture.md, "Restart recovery") ---- */

/* Only an activation that completed, was not checkpointed yet, and whose
 * VM is running (or paused by a checkpoint a retry will continue) is
 * re-attached; anything else is cleaned up and the caller's retry redoes
 * it (docs/architecture.md, "Restart recovery"). */
static bool
recover_may_attach (struct actor *a, struct ate_error **err)
{
  cleanup_strv char **done = NULL;
  cleanup_free char *state = NULL;

  if (!a->ready)
    {
      ate_error_make (err, 0, "its %s had not completed",
                      a->restored ? "RestoreWorkload" : "RunWorkload");
      return false;
    }
  done = actor_marker_match (a->dir);
  if (done)
    {
      ate_error_make (err, 0, "its checkpoint had completed");
      return false;
    }
  if (ch_vm_info_state (a->api_socket, &state, ate_deadline_in_ms (3000), err) < 0)
    return false;
  if (strcmp (state, "Running") != 0 && strcmp (state, "Paused") != 0)
    {
      ate_error_make (err, 0, "its VM is %s", state);
      return false;
    }
  return true;
}

static void
recover_one (struct actor_runtime *rt, const char *path)
{
  cleanup_json struct json_object *o = NULL;
  cleanup_error struct ate_error *err = NULL;
  struct actor *a;
  pid_t pid = 0;
  unsigned long long st = 0;

  if (ate_json_parse_file (path, ACTOR_STATE_MAX, &o, &err) < 0)
    {
      ate_log (ATE_LOG_WARN, "ignoring an unreadable actor state file", "path", path, "error",
               err->msg, NULL);
      return;
    }
  a = actor_state_parse (&rt->env, o, &pid, &st);
  if (a == NULL)
    {
      ate_log (ATE_LOG_WARN, "ignoring an invalid actor state file", "path", path, NULL);
      return;
    }
  if (rt->running == NULL && pid > 0
      && ch_vmm_attach (pid, st, a->api_socket, &a->vmm, &err) == 0
      && recover_may_attach (a, &err))
    {
      ate_log (ATE_LOG_INFO, "recovered a running actor after a restart", "actor_id", a->id,
               "api_socket", a->api_socket, NULL);
      rt->running = a;
      /* Its logs went to the old process; read them again if the agent
       * answers quickly. */
      actor_guest_reconnect (&rt->env, a, NULL, ate_deadline_in_ms (3000));
      return;
    }
  ate_log (ATE_LOG_WARN,
           a->vmm ? "cleaning up after an actor that is not re-attached"
                  : "cleaning up after an actor whose VMM is gone",
           "actor_id", a->id, "error", err ? err->msg : "another actor is running", NULL);
  ate_error_release (&err);
  if (teardown (rt, a, &err) < 0)
    ate_error_log_warning_and_release (&err, "cleanup after restart");
  if (net_actor_cleanup (rt->env.net, &err) < 0)
    ate_error_log_warning_and_release (&err, "network cleanup after restart");
  actor_free (a);
}

/* Re-attach to (or clean up after) what an earlier server process left
 * running, from the state files under the run dir. */
static void
recover (struct actor_runtime *rt)
{
  cleanup_dir DIR *d = opendir (rt->env.cfg.paths.run_dir);
  struct dirent *de;

  if (d == NULL)
    return;
  while ((de = readdir (d)) != NULL)
    {
      if (de->d_name[0] == '.')
        continue;
      cleanup_free char *path = xasprintf ("%s/%s/%s", rt->env.cfg.paths.run_dir, de->d_name,
                                           ACTOR_STATE_FILE);
      if (ate_is_regular_file (path))
        recover_one (rt, path);
    }
  /* A server killed before its first state file (or between two) may have
   * left an actor network behind: with no actor running, any is stale. */
  if (rt->running == NULL)
    {
      cleanup_error struct ate_error *err = NULL;
      if (net_actor_cleanup (rt->env.net, &err) < 0)
        ate_error_log_warning_and_release (&err, "network cleanup after restart");
    }
}

/* ---- runtime ---- */

static const char *
machine_arch (void)
{
  struct utsname u;
  if (uname (&u) < 0)
    return "x86_64";
  return strcmp (u.machine, "aarch64") == 0 ? "arm64" : "amd64";
}

int
actor_runtime_new (const struct actor_runtime_config *cfg, struct actor_runtime **out,
                   struct ate_error **err)
{
  struct actor_runtime *rt = xmalloc0 (sizeof (*rt));
  cleanup_free char *netns_name = NULL;
  struct net_config nc = { 0 };
  struct rootfs_config rc;

  rt->env.cfg = *cfg;
  rt->env.arch = xstrdup (machine_arch ());
  rt->env.labels_key = actorlog_labels_key (cfg->detect_gce && actorlog_on_gce (NULL));

  netns_name = ate_path_netns_name (&cfg->paths);
  nc.netns_dir = cfg->paths.netns_dir;
  nc.netns_name = netns_name;
  nc.ingress_ports = cfg->ingress_ports;
  nc.n_ingress_ports = cfg->n_ingress_ports;
  if (net_ctx_new (&nc, &rt->env.net, err) < 0)
    {
      actor_runtime_free (rt);
      return ate_error_wrap (err, "create the interior network namespace %s", netns_name);
    }
  rootfs_config_init (&rc);
  rc.base_path = cfg->paths.base;
  rc.cache_max_bytes = cfg->rootfs_cache_max_bytes;
  if (rootfs_manager_new (&rc, &rt->env.rootfs, err) < 0)
    {
      actor_runtime_free (rt);
      return ate_error_wrap (err, "start the rootfs manager");
    }
  recover (rt);
  *out = rt;
  return 0;
}

void
actor_runtime_free (struct actor_runtime *rt)
{
  cleanup_error struct ate_error *err = NULL;

  if (rt == NULL)
    return;
  actor_netjob_cleanup_join (&rt->net_cleanup);
  if (rt->running)
    {
      /* Shutting down with an actor that was never checkpointed: it cannot
       * outlive the worker pod anyway; release everything it holds. */
      ate_log (ATE_LOG_WARN, "stopping an actor that was not checkpointed", "actor_id",
               rt->running->id, NULL);
      if (teardown (rt, rt->running, &err) < 0)
        ate_error_log_warning_and_release (&err, "teardown at shutdown");
      if (net_actor_cleanup (rt->env.net, &err) < 0)
        ate_error_log_warning_and_release (&err, "network cleanup at shutdown");
      actor_free (rt->running);
    }
  free (rt->lost);
  rootfs_manager_free (rt->env.rootfs);
  /* An orderly shutdown releases the interior namespace too (a crashed
   * server leaves it for its successor, which reuses it). */
  if (rt->env.net && net_ctx_destroy_netns (rt->env.net, &err) < 0)
    ate_error_log_warning_and_release (&err, "interior network namespace not removed");
  net_ctx_free (rt->env.net);
  free (rt->env.arch);
  free (rt);
}

static bool
same_actor (const struct actor *a, const char *ns, const char *tmpl, const char *id)
{
  return strcmp (a->id, id) == 0 && strcmp (a->ns, ns) == 0 && strcmp (a->tmpl, tmpl) == 0;
}

/* Stop the actor this worker runs, without a checkpoint: its state since
 * its last snapshot is discarded.  Only for a Run or Restore the control
 * plane sent after it stopped counting on that actor here
 * (docs/api.md, "Callers and retries"). */
static void
stop_running (struct actor_runtime *rt, ate_deadline_t deadline, const char *why)
{
  cleanup_error struct ate_error *err = NULL;
  struct actor *a = rt->running;

  ate_log (ATE_LOG_WARN, why, "namespace", a->ns, "template", a->tmpl, "actor_id", a->id, NULL);
  actor_event (&rt->env, a, "Actor stopped without a checkpoint");
  /* Discarded: not worth more of the caller's deadline than it has. */
  if (teardown_by (rt, a, deadline, &err) < 0)
    ate_error_log_warning_and_release (&err, "teardown of the replaced actor");
  if (net_actor_cleanup (rt->env.net, &err) < 0)
    ate_error_log_warning_and_release (&err, "network cleanup of the replaced actor");
  rt->running = NULL;
  actor_free (a);
}

/* A safe point of a Run or Restore: nothing is half-built, so a caller
 * that went away gets everything rolled back (docs/api.md,
 * "Cancellation"). */
static int
check_cancel (const struct actor *a, struct ate_error **err)
{
  if (!ate_cancel_raised (a->cancel))
    return 0;
  return ate_error_make_code (err, ATE_CODE_CANCELLED, 0, "cancelled by the caller");
}

static void
remember_lost (struct actor_runtime *rt, const struct actor_request *req)
{
  free (rt->lost);
  rt->lost = xasprintf ("%s/%s/%s", req->ns, req->tmpl, req->id);
}

static bool
is_lost (const struct actor_runtime *rt, const struct actor_request *req)
{
  cleanup_free char *key = xasprintf ("%s/%s/%s", req->ns, req->tmpl, req->id);
  return rt->lost && strcmp (rt->lost, key) == 0;
}

/* The answer to a Checkpoint of an actor whose cloud-hypervisor died, the
 * first time and every retry alike: nothing here can take that snapshot,
 * and the way on is a Restore from the last one. */
static int
lost_error (const struct actor_request *req, struct ate_error **err)
{
  return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                              "CheckpointWorkload %s/%s/%s: the actor's VM exited before its "
                              "checkpoint completed: its state since its last snapshot is lost "
                              "and this worker is available; restore the actor from its last "
                              "snapshot",
                              req->ns, req->tmpl, req->id);
}

/* A running actor whose cloud-hypervisor died is lost: release what it
 * held so the worker is available again instead of wedged (every RPC
 * checks first). */
static void
reap_dead_actor (struct actor_runtime *rt)
{
  cleanup_error struct ate_error *err = NULL;
  struct actor *a = rt->running;

  if (a == NULL || a->vmm == NULL || !ch_vmm_exited (a->vmm))
    return;
  ate_log (ATE_LOG_ERROR, "cloud-hypervisor exited: the actor is lost, releasing it", "actor_id",
           a->id, "api_socket", a->api_socket, NULL);
  if (teardown (rt, a, &err) < 0)
    ate_error_log_warning_and_release (&err, "teardown of a dead actor");
  if (net_actor_cleanup (rt->env.net, &err) < 0)
    ate_error_log_warning_and_release (&err, "network cleanup of a dead actor");
  rt->running = NULL;
  actor_free (a);
}

/* After a failed call: did cloud-hypervisor die?  A killed process may need
 * a moment before its exit is observable. */
static bool
vmm_died (struct actor *a)
{
  for (int i = 0; i < 20; i++)
    {
      if (ch_vmm_exited (a->vmm))
        return true;
      ate_sleep_ms_until (5, ATE_DEADLINE_NONE);
    }
  return false;
}

/* Undo what a failed Run or Restore built; the disk stays (it is reused). */
static void
rollback (struct actor_runtime *rt, struct actor *a, bool net_up)
{
  cleanup_error struct ate_error *err = NULL;
  if (teardown (rt, a, &err) < 0)
    ate_error_log_warning_and_release (&err, "rollback: teardown");
  if (net_up && net_actor_cleanup (rt->env.net, &err) < 0)
    ate_error_log_warning_and_release (&err, "rollback: network cleanup");
  actor_free (a);
}

/* ---- RunWorkload ---- */

static int
run_shape_specs (struct actor_runtime *rt, struct actor *a, struct ate_error **err)
{
  for (size_t i = 0; i < a->n_ctrs; i++)
    if (kata_spec_shape (a->ctrs[i].bundle, a->id, net_ctx_netns_path (rt->env.net),
                         &a->ctrs[i].spec, err)
        < 0)
      return ate_error_wrap (err, "prepare the OCI spec of container %s", a->ctrs[i].name);
  return 0;
}

int
actor_run (struct actor_runtime *rt, const struct actor_request *req, ate_deadline_t deadline,
           struct ate_error **err)
{
  struct actor_timing t;
  struct actor_netjob nj = { 0 };
  struct actor *a;
  bool net_up = false;
  int64_t mark;

  reap_dead_actor (rt);
  /* A retried Run whose first attempt succeeded converges. */
  if (rt->running && same_actor (rt->running, req->ns, req->tmpl, req->id)
      && !rt->running->restored)
    {
      ate_log (ATE_LOG_INFO, "actor already running", "actor_id", req->id, NULL);
      return 0;
    }
  free (steal_pointer (&rt->lost));
  a = actor_new (&rt->env, req);
  actor_timing_init (&t, "RunWorkload");
  mark = t.start_ns;
  if (actor_disk_check_bundles (a, err) < 0)
    {
      /* Nothing built yet, and a running actor may share the id: no
       * rollback, which would clean up its sandbox state. */
      actor_timing_release (&t);
      ate_error_wrap (err, "RunWorkload %s/%s/%s", a->ns, a->tmpl, a->id);
      actor_free (a);
      return -1;
    }
  /* Checked before anything is stopped: the worker is the caller's now. */
  if (rt->running)
    stop_running (rt, deadline, same_actor (rt->running, req->ns, req->tmpl, req->id)
                          ? "RunWorkload of the actor restored here: booting it afresh, as asked"
                          : "RunWorkload of another actor: the control plane no longer counts on "
                            "the actor this worker held; stopping it without a checkpoint");
  actor_event (&rt->env, a, "Actor starting");
  actor_marker_remove (a->dir);

  /* 1. network (on its own thread, joined at step 5) */
  actor_netjob_start (&nj, rt->env.net, &rt->net_cleanup);
  net_up = true;
  /* 2. OCI specs, 3. rootfs disks (built detached from the deadline) */
  if (run_shape_specs (rt, a, err) < 0 || actor_disk_prepare_run (&rt->env, a, deadline, err) < 0
      || check_cancel (a, err) < 0)
    goto fail;
  actor_timing_step (&t, "disks", &mark);
  /* 4. stale sandbox state, VMM, vm.create */
  if (kata_sandbox_cleanup (&rt->env.cfg.paths, a->id, err) < 0)
    {
      ate_error_wrap (err, "remove stale sandbox state");
      goto fail;
    }
  if (actor_vm_launch (a, ACTOR_API_SOCKET, &t, deadline, err) < 0
      || actor_vm_create (&rt->env, a, &t, deadline, err) < 0 || check_cancel (a, err) < 0)
    goto fail;
  /* 5. network joined: tap + vm.add-net, vm.boot */
  if (actor_netjob_join (&nj, &t, err) < 0)
    {
      net_up = false; /* a failed setup removed what it built */
      goto fail;
    }
  if (actor_vm_add_net_boot (&rt->env, a, &t, deadline, err) < 0 || check_cancel (a, err) < 0)
    goto fail;
  /* 6. guest: agent, sandbox, guest network, containers, log forwarding */
  if (actor_guest_start (&rt->env, a, &t, deadline, err) < 0 || check_cancel (a, err) < 0)
    goto fail;
  /* 7. readiness */
  if (actor_guest_readyz (a, &t, deadline, err) < 0)
    goto fail;
  a->ready = true;
  if (actor_state_save (a, err) < 0)
    goto fail;
  /* Done: a caller that goes away now finds it running when it retries. */
  a->cancel = NULL;
  rt->running = a;
  actor_event (&rt->env, a, "Actor started");
  actor_timing_log (&t, a, "RunWorkload timings");
  actor_timing_release (&t);
  return 0;

fail:
  if (nj.started)
    actor_netjob_join (&nj, NULL, NULL);
  ate_error_wrap (err, "RunWorkload %s/%s/%s", a->ns, a->tmpl, a->id);
  actor_timing_release (&t);
  rollback (rt, a, net_up);
  return -1;
}

/* ---- CheckpointWorkload ---- */

static int
checkpoint_not_running (struct actor_runtime *rt, const struct actor_request *req, char ***files,
                        struct ate_error **err)
{
  cleanup_free char *dir = ate_path_actor (&rt->env.cfg.paths, req->ns, req->tmpl, req->id);
  char **done = actor_marker_match (dir);

  /* A retry after a checkpoint that succeeded (the upload failed upstream)
   * gets the same files while they are still in place. */
  if (done)
    {
      ate_log (ATE_LOG_INFO, "checkpoint already complete: returning its files", "actor_id",
               req->id, NULL);
      *files = done;
      return 0;
    }
  if (is_lost (rt, req))
    return lost_error (req, err);
  /* Which actor holds the worker is another tenant's business: our log. */
  if (rt->running)
    {
      ate_log (ATE_LOG_INFO, "checkpoint of an actor not running here", "actor_id", req->id,
               "running", rt->running->id, NULL);
      return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                                  "CheckpointWorkload: actor %s/%s/%s is not running here "
                                  "(another actor is executing in this worker)",
                                  req->ns, req->tmpl, req->id);
    }
  return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                              "CheckpointWorkload: actor %s/%s/%s is not running here "
                              "(no actor is executing in this worker)",
                              req->ns, req->tmpl, req->id);
}

int
actor_checkpoint (struct actor_runtime *rt, const struct actor_request *req,
                  ate_deadline_t deadline, char ***files, struct ate_error **err)
{
  struct actor *a = rt->running;
  struct actor_timing t;
  cleanup_free char *dir = NULL;
  cleanup_strv char **list = NULL;
  struct ate_error *warn = NULL;
  int64_t mark;

  if (a && a->vmm && ch_vmm_exited (a->vmm) && same_actor (a, req->ns, req->tmpl, req->id))
    {
      ate_log (ATE_LOG_ERROR, "cloud-hypervisor exited before the checkpoint", "actor_id",
               req->id, NULL);
      reap_dead_actor (rt);
      remember_lost (rt, req);
      return lost_error (req, err);
    }
  reap_dead_actor (rt);
  a = rt->running;
  if (a == NULL || strcmp (a->id, req->id) != 0 || strcmp (a->ns, req->ns) != 0
      || strcmp (a->tmpl, req->tmpl) != 0)
    return checkpoint_not_running (rt, req, files, err);

  actor_timing_init (&t, "CheckpointWorkload");
  mark = t.start_ns;
  actor_event (&rt->env, a, "Actor checkpointing");
  actor_marker_remove (a->dir);
  dir = ate_path_actor_sub (&rt->env.cfg.paths, a->ns, a->tmpl, a->id, "checkpoint-state");

  /* 1. pause, base-id, snapshot, merge an on-demand delta.  A failure leaves
   * the VM paused and running: a retry continues from here. */
  if (actor_vm_checkpoint (a, dir, &t, deadline, err) < 0)
    {
      bool dead = vmm_died (a);
      actor_timing_release (&t);
      if (!dead)
        return ate_error_wrap (err, "CheckpointWorkload %s/%s/%s", a->ns, a->tmpl, a->id);
      /* cloud-hypervisor died under us: a retry cannot succeed either, so
       * it gets this same answer. */
      ate_error_log_warning_and_release (err, "cloud-hypervisor exited during the checkpoint");
      reap_dead_actor (rt);
      remember_lost (rt, req);
      return lost_error (req, err);
    }
  /* 2. the lineage's golden disk template */
  if (actor_disk_save_golden (&rt->env, a, dir, &warn) < 0)
    ate_error_log_warning_and_release (&warn, "golden rootfs template not saved");
  actor_timing_step (&t, "golden", &mark);
  /* 3. the files written */
  if (actor_list_files (dir, &list, err) < 0)
    {
      actor_timing_release (&t);
      return ate_error_wrap (err, "CheckpointWorkload %s/%s/%s", a->ns, a->tmpl, a->id);
    }
  if (actor_marker_write (a->dir, list, &warn) < 0)
    ate_error_log_warning_and_release (&warn, "checkpoint marker not written");
  actor_timing_step (&t, "files", &mark);
  /* 4. teardown (failures only logged: the snapshot is complete) */
  if (teardown (rt, a, &warn) < 0)
    ate_error_log_warning_and_release (&warn, "teardown after checkpoint");
  actor_netjob_cleanup_start (&rt->net_cleanup, rt->env.net);
  actor_timing_step (&t, "teardown", &mark);
  rt->running = NULL;
  actor_event (&rt->env, a, "Actor checkpointed");
  actor_timing_log (&t, a, "CheckpointWorkload timings");
  actor_timing_release (&t);
  actor_free (a);
  *files = steal_pointer (&list);
  return 0;
}

/* ---- RestoreWorkload ---- */

static int
restore_read_base_id (struct actor *a, const char *restore_dir, ate_deadline_t deadline,
                      struct ate_error **err)
{
  cleanup_free char *path = ate_path_join (restore_dir, ATE_BASE_ID_FILE);
  cleanup_free char *buf = NULL;
  struct stat st;
  size_t len = 0;

  if (lstat (path, &st) < 0 && errno == ENOENT)
    return 0; /* older snapshots: the lineage is the actor itself */
  if (ate_untrusted_read (restore_dir, ATE_BASE_ID_FILE, 256, deadline, &buf, &len, err) < 0)
    return ate_error_wrap (err, "read the snapshot's base-id");
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ' || buf[len - 1] == '\r'
                     || buf[len - 1] == '\t'))
    buf[--len] = '\0';
  if (len == 0)
    return 0;
  if (!ate_is_dns1123_label (buf))
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                                "the snapshot's base-id \"%.64s\" is not an actor id", buf);
  free (a->base_id);
  a->base_id = steal_pointer (&buf);
  return 0;
}

/* The snapshot files atelet placed: present, regular files directly in
 * restore-state (nothing reads them before: a FIFO would block, a link
 * would pick another file; docs/api.md, "What a snapshot may carry"), of
 * a format this server restores, and their identity (before
 * restore_prepare rewrites config.json). */
static int
restore_check_snapshot (const char *restore_dir, char *digest, struct ate_error **err)
{
  static const char *const files[] = { "config.json", "state.json", "memory-ranges",
                                       ATE_BASE_ID_FILE };
  cleanup_free char *config = ate_path_join (restore_dir, "config.json");
  struct stat st;

  if (lstat (config, &st) < 0 && errno == ENOENT)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, ENOENT,
                                "no snapshot in restore-state (config.json is missing): atelet "
                                "downloads the snapshot files before the call");
  if (ate_untrusted_check (restore_dir, "config.json", ACTOR_SNAPSHOT_FILE_MAX, err) < 0)
    return ate_error_wrap (err, "the snapshot in restore-state");
  if (ch_snapshot_check_format_file (restore_dir, err) < 0)
    return -1;
  for (size_t i = 1; i < ATE_N_ELEMENTS (files); i++)
    {
      cleanup_free char *p = ate_path_join (restore_dir, files[i]);
      /* base-id may be absent (older snapshots); the others are checked
       * again where they are read. */
      if (lstat (p, &st) < 0 && errno == ENOENT && i == ATE_N_ELEMENTS (files) - 1)
        continue;
      if (ate_untrusted_check (restore_dir, files[i], ACTOR_SNAPSHOT_FILE_MAX, err) < 0)
        return ate_error_wrap (err, "the snapshot in restore-state");
    }
  if (actor_snapshot_digest (restore_dir, digest, err) < 0)
    return -1;
  return 0;
}

static int
restore_prepare (struct actor_runtime *rt, struct actor *a, const char *restore_dir,
                 struct actor_timing *t, ate_deadline_t deadline, struct ate_error **err)
{
  int64_t mark = ate_now_ns ();

  if (kata_sandbox_cleanup (&rt->env.cfg.paths, a->id, err) < 0)
    return ate_error_wrap (err, "remove stale sandbox state");
  if (restore_read_base_id (a, restore_dir, deadline, err) < 0
      || actor_vm_restore_config (&rt->env, a, restore_dir, deadline, err) < 0)
    return -1;
  actor_timing_step (t, "config", &mark);
  if (actor_disk_prepare_restore (&rt->env, a, restore_dir, deadline, err) < 0)
    return -1;
  actor_timing_step (t, "disks", &mark);
  return 0;
}

int
actor_restore (struct actor_runtime *rt, const struct actor_request *req,
               ate_deadline_t deadline, struct ate_error **err)
{
  struct actor_timing t;
  struct actor_netjob nj = { 0 };
  cleanup_free char *restore_dir = NULL;
  struct actor *a;
  bool net_up = false;
  char digest[ACTOR_DIGEST_HEX + 1];

  reap_dead_actor (rt);
  restore_dir = ate_path_actor_sub (&rt->env.cfg.paths, req->ns, req->tmpl, req->id,
                                    "restore-state");
  /* 0. the snapshot atelet placed, checked before anything is stopped */
  if (restore_check_snapshot (restore_dir, digest, err) < 0)
    return ate_error_wrap (err, "RestoreWorkload %s/%s/%s", req->ns, req->tmpl, req->id);
  if (rt->running && same_actor (rt->running, req->ns, req->tmpl, req->id)
      && rt->running->restored && strcmp (rt->running->snapshot_digest, digest) == 0)
    {
      /* A retry after a reply the caller did not get: it runs, from this
       * very snapshot (docs/api.md, "Callers and retries"). */
      ate_log (ATE_LOG_INFO, "actor already running from this snapshot: not restoring it twice",
               "actor_id", req->id, "snapshot", digest, NULL);
      return 0;
    }
  free (steal_pointer (&rt->lost));
  if (rt->running)
    stop_running (rt, deadline, same_actor (rt->running, req->ns, req->tmpl, req->id)
                          ? "RestoreWorkload of the actor running here from another snapshot "
                            "(or booted by Run): restarting it from the requested snapshot"
                          : "RestoreWorkload of another actor: the control plane no longer "
                            "counts on the actor this worker held; stopping it without a "
                            "checkpoint");
  a = actor_new (&rt->env, req);
  a->restored = true;
  memcpy (a->snapshot_digest, digest, sizeof (digest));
  actor_timing_init (&t, "RestoreWorkload");
  actor_event (&rt->env, a, "Actor restoring");
  actor_marker_remove (a->dir);

  /* 1. snapshot config, base-id, disks reset to golden (or rebuilt); the
   * network is built meanwhile on its own thread */
  if (restore_prepare (rt, a, restore_dir, &t, deadline, err) < 0 || check_cancel (a, err) < 0)
    goto fail;
  actor_netjob_start (&nj, rt->env.net, &rt->net_cleanup);
  net_up = true;
  /* 2. VMM */
  if (actor_vm_launch (a, ACTOR_API_SOCKET_RESTORE, &t, deadline, err) < 0
      || check_cancel (a, err) < 0)
    goto fail;
  /* 3. network joined: taps, vm.restore with the tap fds, vm.resume */
  if (actor_netjob_join (&nj, &t, err) < 0)
    {
      net_up = false;
      goto fail;
    }
  if (actor_vm_restore (&rt->env, a, restore_dir, &t, deadline, err) < 0
      || check_cancel (a, err) < 0)
    goto fail;
  /* 4. readiness */
  if (actor_guest_readyz (a, &t, deadline, err) < 0)
    goto fail;
  a->ready = true;
  if (actor_state_save (a, err) < 0)
    goto fail;
  a->cancel = NULL;
  rt->running = a;
  /* 5. log forwarding on a new agent connection (best effort) */
  actor_guest_reconnect (&rt->env, a, &t, deadline);
  actor_event (&rt->env, a, "Actor restored");
  actor_timing_log (&t, a, "RestoreWorkload timings");
  actor_timing_release (&t);
  return 0;

fail:
  if (nj.started)
    actor_netjob_join (&nj, NULL, NULL);
  ate_error_wrap (err, "RestoreWorkload %s/%s/%s", a->ns, a->tmpl, a->id);
  actor_timing_release (&t);
  rollback (rt, a, net_up);
  return -1;
}
