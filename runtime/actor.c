/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RunWorkload, CheckpointWorkload and RestoreWorkload as numbered steps
 * (spec 2.2-2.5, 2.8).  The details live in actor_{state,vm,guest,disk}.c
 * and the runtime modules; every failure rolls back what the call built and
 * names the step that failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/utsname.h>

#include "actor_internal.h"
#include "ch/ch.h"
#include "kata/actorlog.h"
#include "kata/cleanup.h"
#include "kata/spec.h"
#include "net/net.h"
#include "rootfs/rootfs.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/util.h"
#include "util/validate.h"

/* ---- timings ---- */

void
actor_timing_init (struct actor_timing *t)
{
  memset (t, 0, sizeof (*t));
  t->start_ns = ate_now_ns ();
  t->steps = json_object_new_object ();
}

void
actor_timing_step (struct actor_timing *t, const char *step, int64_t *mark)
{
  int64_t now = ate_now_ns ();
  if (t == NULL)
    return;
  cleanup_free char *key = xasprintf ("%s_ms", step);
  json_object_object_add (t->steps, key, ate_json_new_ms ((double) (now - *mark) / 1e6));
  *mark = now;
}

void
actor_timing_log (struct actor_timing *t, const struct actor *a, const char *msg)
{
  double total = (double) (ate_now_ns () - t->start_ns) / 1e6;
  double vmm = (double) t->vmm_ns / 1e6, agent = (double) t->agent_ns / 1e6;
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "actor_id", json_object_new_string (a->id));
  json_object_object_add (o, "total_ms", ate_json_new_ms (total));
  json_object_object_add (o, "vmm_wait_ms", ate_json_new_ms (vmm));
  json_object_object_add (o, "agent_wait_ms", ate_json_new_ms (agent));
  json_object_object_add (o, "own_ms", ate_json_new_ms (total - vmm - agent));
  json_object_object_add (o, "steps", json_object_get (t->steps));
  ate_log_obj (ATE_LOG_INFO, msg, o);
}

void
actor_timing_release (struct actor_timing *t)
{
  json_object_put (t->steps);
  t->steps = NULL;
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

  rt->cfg = *cfg;
  rt->arch = xstrdup (machine_arch ());
  rt->labels_key = actorlog_labels_key (cfg->detect_gce && actorlog_on_gce (NULL));

  netns_name = ate_path_netns_name (&cfg->paths);
  nc.netns_dir = cfg->paths.netns_dir;
  nc.netns_name = netns_name;
  nc.ingress_ports = cfg->ingress_ports;
  nc.n_ingress_ports = cfg->n_ingress_ports;
  if (net_ctx_new (&nc, &rt->net, err) < 0)
    {
      actor_runtime_free (rt);
      return ate_error_wrap (err, "create the interior network namespace %s", netns_name);
    }
  rootfs_config_init (&rc);
  rc.base_path = cfg->paths.base;
  rc.cache_max_bytes = cfg->rootfs_cache_max_bytes;
  if (rootfs_manager_new (&rc, &rt->rootfs, err) < 0)
    {
      actor_runtime_free (rt);
      return ate_error_wrap (err, "start the rootfs manager");
    }
  actor_state_recover (rt);
  *out = rt;
  return 0;
}

void
actor_runtime_free (struct actor_runtime *rt)
{
  cleanup_error struct ate_error *err = NULL;

  if (rt == NULL)
    return;
  actor_net_cleanup_join (rt);
  if (rt->running)
    {
      /* Shutting down with an actor that was never checkpointed: it cannot
       * outlive the worker pod anyway; release everything it holds. */
      ate_log (ATE_LOG_WARN, "stopping an actor that was not checkpointed", "actor_id",
               rt->running->id, NULL);
      if (actor_teardown (rt, rt->running, &err) < 0)
        ate_error_log_warning_and_release (&err, "teardown at shutdown");
      if (net_actor_cleanup (rt->net, &err) < 0)
        ate_error_log_warning_and_release (&err, "network cleanup at shutdown");
      actor_free (rt->running);
    }
  rootfs_manager_free (rt->rootfs);
  /* An orderly shutdown releases the interior namespace too (a crashed
   * server leaves it for its successor, which reuses it). */
  if (rt->net && net_ctx_destroy_netns (rt->net, &err) < 0)
    ate_error_log_warning_and_release (&err, "interior network namespace not removed");
  net_ctx_free (rt->net);
  free (rt->arch);
  free (rt);
}

const char *
actor_request_asset (const struct actor_request *req, const char *name)
{
  for (size_t i = 0; i < req->n_assets; i++)
    if (strcmp (req->assets[i].name, name) == 0)
      return req->assets[i].path;
  return NULL;
}

static const char *
ch_binary (const struct actor_runtime *rt, const struct actor_request *req)
{
  return actor_request_asset (req, "cloud-hypervisor") ?: rt->cfg.ch_binary;
}

static int
busy (const struct actor_runtime *rt, const char *rpc, struct ate_error **err)
{
  const struct actor *r = rt->running;
  return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                              "%s: actor %s/%s/%s is executing in this worker; "
                              "checkpoint it first",
                              rpc, r->ns, r->tmpl, r->id);
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
  if (actor_teardown (rt, a, &err) < 0)
    ate_error_log_warning_and_release (&err, "teardown of a dead actor");
  if (net_actor_cleanup (rt->net, &err) < 0)
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
  if (actor_teardown (rt, a, &err) < 0)
    ate_error_log_warning_and_release (&err, "rollback: teardown");
  if (net_up && net_actor_cleanup (rt->net, &err) < 0)
    ate_error_log_warning_and_release (&err, "rollback: network cleanup");
  actor_free (a);
}

/* ---- the actor network, set up in parallel ----
 *
 * The veth pair and the nftables table do not depend on the disks or the
 * VMM, and their kernel work (an RCU grace period per nftables commit) is
 * most of an activation's own time: they are built on a thread while the
 * disks are prepared and cloud-hypervisor starts, and joined before the
 * first tap is needed. */

struct net_job
{
  struct actor_runtime *rt;
  pthread_t thread;
  bool started;
  int r;
  int64_t ns;
  struct net_actor_info info;
  struct ate_error *err;
};

static void *
net_job_main (void *arg)
{
  struct net_job *j = arg;
  int64_t t0 = ate_now_ns ();
  j->r = net_actor_setup (j->rt->net, &j->info, &j->err);
  j->ns = ate_now_ns () - t0;
  return NULL;
}

static void
net_job_start (struct net_job *j, struct actor_runtime *rt)
{
  actor_net_cleanup_join (rt);
  memset (j, 0, sizeof (*j));
  j->rt = rt;
  if (pthread_create (&j->thread, NULL, net_job_main, j) == 0)
    j->started = true;
  else
    net_job_main (j); /* no thread: do it here */
}

/* Wait for the setup; true when it built the network (even if the caller
 * then fails and must clean it up). */
static int
net_job_join (struct net_job *j, struct actor_timing *t, struct ate_error **err)
{
  if (j->started)
    pthread_join (j->thread, NULL);
  j->started = false;
  if (t)
    json_object_object_add (t->steps, "network_ms", ate_json_new_ms ((double) j->ns / 1e6));
  if (j->r < 0)
    {
      ate_error_wrap (&j->err, "network setup");
      if (err)
        *err = steal_pointer (&j->err);
      ate_error_release (&j->err);
      return -1;
    }
  return 0;
}

/* ---- network cleanup after a checkpoint, in the background ----
 *
 * Deleting the veth pair waits for RCU grace periods (~60 ms here), which a
 * CheckpointWorkload would otherwise pay before it answers.  Nothing needs
 * the network gone before the next activation, which joins the cleanup
 * first (as does shutdown). */

static void *
net_cleanup_main (void *arg)
{
  struct actor_runtime *rt = arg;
  cleanup_error struct ate_error *err = NULL;
  if (net_actor_cleanup (rt->net, &err) < 0)
    ate_error_log_warning_and_release (&err, "network cleanup after checkpoint");
  return NULL;
}

static void
net_cleanup_start (struct actor_runtime *rt)
{
  if (pthread_create (&rt->net_cleanup, NULL, net_cleanup_main, rt) == 0)
    rt->net_cleanup_pending = true;
  else
    net_cleanup_main (rt);
}

void
actor_net_cleanup_join (struct actor_runtime *rt)
{
  if (!rt->net_cleanup_pending)
    return;
  pthread_join (rt->net_cleanup, NULL);
  rt->net_cleanup_pending = false;
}

/* ---- RunWorkload (spec 2.2, 2.5) ---- */

static int
run_shape_specs (struct actor_runtime *rt, struct actor *a, struct ate_error **err)
{
  for (size_t i = 0; i < a->n_ctrs; i++)
    if (kata_spec_shape (a->ctrs[i].bundle, a->id, net_ctx_netns_path (rt->net),
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
  struct net_job nj = { 0 };
  struct actor *a;
  bool net_up = false;
  int64_t mark;

  reap_dead_actor (rt);
  if (rt->running)
    {
      /* A retried Run whose first attempt succeeded converges. */
      if (strcmp (rt->running->id, req->id) == 0 && !rt->running->restored)
        {
          ate_log (ATE_LOG_INFO, "actor already running", "actor_id", req->id, NULL);
          return 0;
        }
      return busy (rt, "RunWorkload", err);
    }
  a = actor_new (rt, req);
  actor_timing_init (&t);
  mark = t.start_ns;
  actor_event (rt, a, "Actor starting");
  actor_marker_remove (a->dir);
  if (actor_check_bundles (a, err) < 0)
    goto fail;

  /* 1. network (on its own thread, joined at step 5) */
  net_job_start (&nj, rt);
  net_up = true;
  /* 2. OCI specs, 3. rootfs disks (built detached from the deadline) */
  if (run_shape_specs (rt, a, err) < 0 || actor_disks_for_run (rt, a, deadline, err) < 0)
    goto fail;
  actor_timing_step (&t, "disks", &mark);
  /* 4. stale sandbox state, VMM, vm.create */
  if (kata_sandbox_cleanup (&rt->cfg.paths, a->id, err) < 0)
    {
      ate_error_wrap (err, "remove stale sandbox state");
      goto fail;
    }
  if (actor_vm_launch (a, ch_binary (rt, req), ACTOR_API_SOCKET, &t, deadline, err) < 0
      || actor_vm_create (rt, a, req, &t, deadline, err) < 0)
    goto fail;
  /* 5. network joined: tap + vm.add-net, vm.boot */
  if (net_job_join (&nj, &t, err) < 0)
    {
      net_up = false; /* a failed setup removed what it built */
      goto fail;
    }
  if (actor_vm_add_net_boot (rt, a, &t, deadline, err) < 0)
    goto fail;
  /* 6. guest: agent, sandbox, guest network, containers, log forwarding */
  if (actor_guest_start (rt, a, &t, deadline, err) < 0)
    goto fail;
  /* 7. readiness */
  if (actor_guest_readyz (a, &t, deadline, err) < 0)
    goto fail;
  if (actor_state_save (a, err) < 0)
    goto fail;
  rt->running = a;
  actor_event (rt, a, "Actor started");
  actor_timing_log (&t, a, "RunWorkload timings");
  actor_timing_release (&t);
  return 0;

fail:
  if (nj.started)
    net_job_join (&nj, NULL, NULL);
  ate_error_wrap (err, "RunWorkload %s/%s/%s", a->ns, a->tmpl, a->id);
  actor_timing_release (&t);
  rollback (rt, a, net_up);
  return -1;
}

/* ---- CheckpointWorkload (spec 2.3) ---- */

static int
checkpoint_not_running (struct actor_runtime *rt, const struct actor_request *req, char ***files,
                        struct ate_error **err)
{
  cleanup_free char *dir = ate_path_actor (&rt->cfg.paths, req->ns, req->tmpl, req->id);
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
  if (rt->running)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                                "CheckpointWorkload: actor %s/%s/%s is not running here "
                                "(this worker runs %s/%s/%s)",
                                req->ns, req->tmpl, req->id, rt->running->ns, rt->running->tmpl,
                                rt->running->id);
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

  if (a && a->vmm && ch_vmm_exited (a->vmm) && strcmp (a->id, req->id) == 0)
    {
      reap_dead_actor (rt);
      return ate_error_make_code (err, ATE_CODE_ABORTED, 0,
                                  "CheckpointWorkload %s/%s/%s: cloud-hypervisor exited before "
                                  "the checkpoint; the actor's state since its last snapshot is "
                                  "lost (the worker is available again)",
                                  req->ns, req->tmpl, req->id);
    }
  reap_dead_actor (rt);
  a = rt->running;
  if (a == NULL || strcmp (a->id, req->id) != 0 || strcmp (a->ns, req->ns) != 0
      || strcmp (a->tmpl, req->tmpl) != 0)
    return checkpoint_not_running (rt, req, files, err);

  actor_timing_init (&t);
  mark = t.start_ns;
  actor_event (rt, a, "Actor checkpointing");
  actor_marker_remove (a->dir);
  dir = ate_path_actor_sub (&rt->cfg.paths, a->ns, a->tmpl, a->id, "checkpoint-state");

  /* 1. pause, base-id, snapshot, merge an on-demand delta.  A failure leaves
   * the VM paused and running: a retry continues from here. */
  if (actor_vm_checkpoint (rt, a, dir, &t, deadline, err) < 0)
    {
      bool dead = vmm_died (a);
      actor_timing_release (&t);
      /* cloud-hypervisor died under us: nothing to retry. */
      if (dead)
        {
          ate_error_wrap (err, "cloud-hypervisor exited during the checkpoint: the actor's "
                               "state since its last snapshot is lost and the worker is "
                               "available again");
          ate_error_set_code (*err, ATE_CODE_ABORTED);
        }
      ate_error_wrap (err, "CheckpointWorkload %s/%s/%s", a->ns, a->tmpl, a->id);
      if (dead)
        reap_dead_actor (rt);
      return -1;
    }
  /* 2. the lineage's golden disk template */
  if (actor_disks_save_golden (rt, a, dir, &warn) < 0)
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
  /* 4. teardown (failures only logged: the snapshot is complete) */
  if (actor_teardown (rt, a, &warn) < 0)
    ate_error_log_warning_and_release (&warn, "teardown after checkpoint");
  net_cleanup_start (rt);
  actor_timing_step (&t, "teardown", &mark);
  rt->running = NULL;
  actor_event (rt, a, "Actor checkpointed");
  actor_timing_log (&t, a, "CheckpointWorkload timings");
  actor_timing_release (&t);
  actor_free (a);
  *files = steal_pointer (&list);
  return 0;
}

/* ---- RestoreWorkload (spec 2.4) ---- */

static int
restore_read_base_id (struct actor *a, const char *restore_dir, struct ate_error **err)
{
  cleanup_free char *path = ate_path_join (restore_dir, ATE_BASE_ID_FILE);
  cleanup_free char *buf = NULL;
  size_t len = 0;

  if (!ate_path_exists (path))
    return 0; /* older snapshots: the lineage is the actor itself */
  if (ate_read_file (path, 256, &buf, &len, err) < 0)
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

static int
restore_rewrite_config (struct actor *a, const char *restore_dir, struct ate_error **err)
{
  cleanup_free struct ch_disk_repoint *disks = xcalloc (a->n_ctrs, sizeof (*disks));
  struct ch_config_rewrite rw = { 0 };

  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      disks[i].basename = strrchr (a->ctrs[i].disk, '/') + 1;
      disks[i].new_path = a->ctrs[i].disk;
    }
  rw.vsock_socket = a->vsock;
  rw.serial_file = a->serial;
  rw.disks = disks;
  rw.n_disks = a->n_ctrs;
  if (ch_snapshot_config_rewrite (restore_dir, &rw, err) < 0)
    return ate_error_wrap (err, "rewrite the snapshot's config.json");
  return 0;
}

static int
restore_prepare (struct actor_runtime *rt, struct actor *a, const char *restore_dir,
                 struct actor_timing *t, ate_deadline_t deadline, struct ate_error **err)
{
  cleanup_free char *config = ate_path_join (restore_dir, "config.json");
  int64_t mark = ate_now_ns ();

  if (!ate_is_regular_file (config))
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, ENOENT,
                                "no snapshot in `%s` (config.json is missing): atelet "
                                "downloads the snapshot files before the call",
                                restore_dir);
  if (kata_sandbox_cleanup (&rt->cfg.paths, a->id, err) < 0)
    return ate_error_wrap (err, "remove stale sandbox state");
  if (restore_read_base_id (a, restore_dir, err) < 0 || restore_rewrite_config (a, restore_dir, err) < 0)
    return -1;
  actor_timing_step (t, "config", &mark);
  if (actor_disks_for_restore (rt, a, restore_dir, deadline, err) < 0)
    return -1;
  actor_timing_step (t, "disks", &mark);
  return 0;
}

int
actor_restore (struct actor_runtime *rt, const struct actor_request *req,
               ate_deadline_t deadline, struct ate_error **err)
{
  struct actor_timing t;
  struct net_job nj = { 0 };
  cleanup_free char *restore_dir = NULL;
  struct actor *a;
  bool net_up = false;

  reap_dead_actor (rt);
  if (rt->running)
    return busy (rt, "RestoreWorkload", err);
  a = actor_new (rt, req);
  a->restored = true;
  actor_timing_init (&t);
  actor_event (rt, a, "Actor restoring");
  actor_marker_remove (a->dir);
  restore_dir = ate_path_actor_sub (&rt->cfg.paths, a->ns, a->tmpl, a->id, "restore-state");

  /* 1. snapshot config, base-id, disks reset to golden (or rebuilt); the
   * network is built meanwhile on its own thread */
  if (restore_prepare (rt, a, restore_dir, &t, deadline, err) < 0)
    goto fail;
  net_job_start (&nj, rt);
  net_up = true;
  /* 2. VMM */
  if (actor_vm_launch (a, ch_binary (rt, req), ACTOR_API_SOCKET_RESTORE, &t, deadline, err) < 0)
    goto fail;
  /* 3. network joined: taps, vm.restore with the tap fds, vm.resume */
  if (net_job_join (&nj, &t, err) < 0)
    {
      net_up = false;
      goto fail;
    }
  if (actor_vm_restore (rt, a, restore_dir, &t, deadline, err) < 0)
    goto fail;
  /* 4. readiness */
  if (actor_guest_readyz (a, &t, deadline, err) < 0)
    goto fail;
  rt->running = a;
  /* 5. log forwarding on a new agent connection (best effort) */
  actor_guest_reconnect (rt, a, &t, deadline);
  actor_event (rt, a, "Actor restored");
  actor_timing_log (&t, a, "RestoreWorkload timings");
  actor_timing_release (&t);
  return 0;

fail:
  if (nj.started)
    net_job_join (&nj, NULL, NULL);
  ate_error_wrap (err, "RestoreWorkload %s/%s/%s", a->ns, a->tmpl, a->id);
  actor_timing_release (&t);
  rollback (rt, a, net_up);
  return -1;
}
