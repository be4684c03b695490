/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the actor runtime, shared by actor.c (the three RPCs as
 * numbered steps) and the files that hold the details:
 *   actor_state.c  the running actor, its persisted state, restart recovery
 *   actor_vm.c     the VM: VmConfig, launch, create, net, boot, restore, teardown
 *   actor_guest.c  the guest: agent dial, sandbox, network, containers, logs, readiness
 *   actor_disk.c   the rootfs disks: build, reset to golden, golden templates
 */
#ifndef ATE_ACTOR_INTERNAL_H
#define ATE_ACTOR_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor.h"
#include "ch/ch.h"
#include "kata/actorlog.h"
#include "util/time.h"

struct ate_error;
struct json_object;
struct kata_agent;
struct kata_log_pump;
struct net_ctx;
struct rootfs_manager;

/* Files and names, as the reference has them (spec 1.5). */
#define ACTOR_API_SOCKET "clh-api.sock"
#define ACTOR_API_SOCKET_RESTORE "clh-api-restore.sock"
#define ACTOR_VSOCK_SOCKET "clh.sock"
#define ACTOR_SERIAL_LOG "serial.log"
#define ACTOR_STATE_FILE "ateom-actor.json"
#define ACTOR_CHECKPOINT_MARKER "checkpoint-state.complete"
#define ACTOR_AGENT_PORT 1024
#define ACTOR_TAP_MAC "02:a8:1e:00:00:02"

/* Timeouts of the reference (spec 11.3), in ms. */
#define ACTOR_VMM_READY_MS 15000
#define ACTOR_CHECKPOINT_READY_MS 10000
#define ACTOR_TEARDOWN_MS 10000
#define ACTOR_VSOCK_WAIT_MS 15000
#define ACTOR_SANDBOX_MS 20000
#define ACTOR_GUEST_NET_MS 20000
#define ACTOR_CONTAINER_MS 30000
#define ACTOR_READYZ_MS 30000
#define ACTOR_READYZ_ATTEMPT_MS 250

struct actor_ctr
{
  char *name;
  char *bundle;    /* <actor>/bundles/<name> */
  char *disk;      /* <actor>/actor-rootfs.ext4 (first), actor-rootfs-<name>.ext4 */
  char *kata_id;   /* container and exec id in the guest */
  char *guest_dev; /* /dev/vdb, /dev/vdc, ... */
  int32_t readyz_port;
  char *readyz_path;
  struct json_object *spec; /* the shaped OCI spec (Run only) */
};

/* One activation of an actor (Run or Restore until Checkpoint). */
struct actor
{
  char *ns, *tmpl, *id;
  char *dir;         /* <base>/actors/<ns>:<tmpl>:<id> */
  char *vm_dir;      /* <run_dir>/<id> */
  char *api_socket;
  char *vsock;
  char *serial;
  char *base_id;     /* lineage: the golden actor's id */
  char *restore_src; /* restore-state dir while CH demand-pages from it */
  bool restored;     /* activated by RestoreWorkload */
  struct actor_ctr *ctrs;
  size_t n_ctrs;

  struct ch_vmm *vmm;
  struct kata_agent *agent;
  struct kata_log_pump **pumps;
  size_t n_pumps;
};

struct actor_runtime
{
  struct actor_runtime_config cfg;
  struct net_ctx *net;
  struct rootfs_manager *rootfs;
  const char *labels_key;
  char *arch;

  /* The one activation this worker runs (network state is per pod).  The
   * server serialises the RPCs (server/service.c), so no lock here. */
  struct actor *running;

  /* The network cleanup a checkpoint left running in the background. */
  pthread_t net_cleanup;
  bool net_cleanup_pending;
};

/* Wait for a background network cleanup (before touching the network). */
void actor_net_cleanup_join (struct actor_runtime *rt);

/* Per-RPC step timings, logged with the lifecycle record. */
struct actor_timing
{
  int64_t start_ns;
  int64_t vmm_ns;    /* waiting on cloud-hypervisor */
  int64_t agent_ns;  /* waiting on the kata agent */
  struct json_object *steps;
};

void actor_timing_init (struct actor_timing *t);
/* Record "<step>_ms" = now - *mark and move *mark to now. */
void actor_timing_step (struct actor_timing *t, const char *step, int64_t *mark);
void actor_timing_log (struct actor_timing *t, const struct actor *a, const char *msg);
void actor_timing_release (struct actor_timing *t);

/* ---- actor_state.c ---- */
struct actor *actor_new (const struct actor_runtime *rt, const struct actor_request *req);
void actor_free (struct actor *a);
void actor_labels (const struct actor_runtime *rt, const struct actor *a,
                   struct actorlog_labels *labels);
void actor_event (const struct actor_runtime *rt, const struct actor *a, const char *msg);
int actor_state_save (const struct actor *a, struct ate_error **err);
/* Re-attach to (or clean up after) what an earlier server process left
 * running, from the state files under the run dir. */
void actor_state_recover (struct actor_runtime *rt);
/* Checkpoint retry safety: the marker records the files of a complete
 * checkpoint; it matches only while those files are still there. */
int actor_marker_write (const char *actor_dir, char **files, struct ate_error **err);
char **actor_marker_match (const char *actor_dir);
void actor_marker_remove (const char *actor_dir);
/* Regular files directly in dir, sorted by name. */
int actor_list_files (const char *dir, char ***files, struct ate_error **err);

/* ---- actor_vm.c ---- */
/* A bare VMM on <vm_dir>/<socket_name>, recorded in the state file. */
int actor_vm_launch (struct actor *a, const char *ch_binary, const char *socket_name,
                     struct actor_timing *t, ate_deadline_t deadline, struct ate_error **err);
/* Run: vm.create, then (once the network is up) tap0 + vm.add-net + vm.boot. */
int actor_vm_create (struct actor_runtime *rt, struct actor *a, const struct actor_request *req,
                     struct actor_timing *t, ate_deadline_t deadline, struct ate_error **err);
int actor_vm_add_net_boot (struct actor_runtime *rt, struct actor *a, struct actor_timing *t,
                           ate_deadline_t deadline, struct ate_error **err);
/* Restore: taps for the snapshot's net devices, vm.restore, vm.resume. */
int actor_vm_restore (struct actor_runtime *rt, struct actor *a, const char *restore_dir,
                      struct actor_timing *t, ate_deadline_t deadline, struct ate_error **err);
int actor_vm_checkpoint (struct actor_runtime *rt, struct actor *a, const char *dir,
                         struct actor_timing *t, ate_deadline_t deadline,
                         struct ate_error **err);
/* Stop the guest side (agent connection, log pumps, VMM), then remove the
 * sandbox state.  Collects errors, never fails half-way. */
int actor_teardown (struct actor_runtime *rt, struct actor *a, struct ate_error **err);

/* ---- actor_guest.c ---- */
int actor_guest_start (struct actor_runtime *rt, struct actor *a, struct actor_timing *t,
                       ate_deadline_t deadline, struct ate_error **err);
/* Best effort after a restore: dial the agent (15 s) and start the log
 * pumps.  Failures are logged. */
void actor_guest_reconnect (struct actor_runtime *rt, struct actor *a, struct actor_timing *t,
                            ate_deadline_t deadline);
int actor_guest_readyz (struct actor *a, struct actor_timing *t, ate_deadline_t deadline,
                        struct ate_error **err);
void actor_guest_stop_logs (struct actor *a);

/* ---- actor_disk.c ---- */
/* Every container's bundle has a rootfs directory and a config.json
 * (FAILED_PRECONDITION otherwise: atelet prepares them). */
int actor_check_bundles (const struct actor *a, struct ate_error **err);
int actor_disks_for_run (struct actor_runtime *rt, struct actor *a, ate_deadline_t deadline,
                         struct ate_error **err);
int actor_disks_for_restore (struct actor_runtime *rt, struct actor *a,
                             const char *restore_dir, ate_deadline_t deadline,
                             struct ate_error **err);
/* At a checkpoint: keep the lineage's golden template (first checkpoint
 * only) and, when shipping is on, link it into the checkpoint dir. */
int actor_disks_save_golden (struct actor_runtime *rt, struct actor *a,
                             const char *checkpoint_dir, struct ate_error **err);
/* The pod's resolv.conf into every bundle's rootfs ([MID] guest DNS). */
int actor_write_resolv_conf (struct actor_runtime *rt, struct actor *a, struct ate_error **err);

#endif
