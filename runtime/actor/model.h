/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor model, the bottom of the actor layers (docs/architecture.md,
 * "Layers"): one activation of an actor (its paths, names and resolved
 * assets, the VMM and agent handles the layers above fill in), what it runs
 * on (struct actor_env), its labels and lifecycle events.
 */
#ifndef ATE_ACTOR_MODEL_H
#define ATE_ACTOR_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actor/types.h"
#include "kata/actorlog.h"

struct ch_vmm;
struct json_object;
struct kata_agent;
struct kata_log_pump;
struct net_ctx;
struct rootfs_manager;

/* Files and names in the VM directory and the actor directory, as atelet
 * and the reference have them (docs/architecture.md, "Files of an
 * actor"). */
#define ACTOR_API_SOCKET "clh-api.sock"
#define ACTOR_API_SOCKET_RESTORE "clh-api-restore.sock"
#define ACTOR_VSOCK_SOCKET "clh.sock"
#define ACTOR_SERIAL_LOG "serial.log"
#define ACTOR_STATE_FILE "ateom-actor.json"
#define ACTOR_CHECKPOINT_MARKER "checkpoint-state.complete"
/* A hard link, in the actor directory, to the memory an OnDemand-restored
 * VM pages from: atelet removes restore-state/ before a retried Restore and
 * may fail to download it again, and the next checkpoint still needs that
 * memory as the base of its delta (docs/api.md, "Callers and retries"). */
#define ACTOR_RESTORE_BASE "restore-base.memory-ranges"
#define ACTOR_AGENT_PORT 1024
#define ACTOR_TAP_MAC "02:a8:1e:00:00:02"

/* sha256 in hex. */
#define ACTOR_DIGEST_HEX 64

/* Timeouts, in ms (docs/architecture.md, "Timeouts"). */
#define ACTOR_VMM_READY_MS 15000
#define ACTOR_CHECKPOINT_READY_MS 10000
#define ACTOR_TEARDOWN_MS 10000
#define ACTOR_VSOCK_WAIT_MS 15000
#define ACTOR_SANDBOX_MS 20000
#define ACTOR_GUEST_NET_MS 20000
#define ACTOR_CONTAINER_MS 30000
#define ACTOR_READYZ_MS 30000
#define ACTOR_READYZ_ATTEMPT_MS 250

/* What every activation runs on: the configuration, the worker's network
 * context and rootfs manager.  Owned by the top (struct actor_runtime); the
 * layers below only read it. */
struct actor_env
{
  struct actor_runtime_config cfg;
  struct net_ctx *net;
  struct rootfs_manager *rootfs;
  const char *labels_key;
  char *arch; /* amd64, arm64 */
};

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
  /* Restored: the identity of the snapshot files atelet placed
   * (actor_snapshot_digest), so a retried Restore of the same snapshot
   * converges instead of restoring twice.  Empty otherwise. */
  char snapshot_digest[ACTOR_DIGEST_HEX + 1];
  const struct ate_cancel *cancel; /* the activating call's (NULL once it ran) */
  bool ready;        /* the Run or Restore completed (a restart may re-attach) */
  struct actor_ctr *ctrs;
  size_t n_ctrs;

  /* The request's assets, resolved when the actor is made (a request's
   * asset, else the configured default; NULL when neither). */
  char *ch_binary;
  char *kata_config;
  char *kata_kernel;
  char *kata_image;

  /* Filled in by the vm layer (and released by it). */
  struct ch_vmm *vmm;
  /* Owned by the guest layer: only guest.c opens, closes and frees them. */
  struct kata_agent *agent;
  struct kata_log_pump **pumps;
  size_t n_pumps;
};

struct actor *actor_new (const struct actor_env *env, const struct actor_request *req);
/* Frees the actor's memory and a VMM handle still held.  The guest
 * connection must have been released (actor_guest_release) before. */
void actor_free (struct actor *a);
void actor_labels (const struct actor_env *env, const struct actor *a,
                   struct actorlog_labels *labels);
void actor_event (const struct actor_env *env, const struct actor *a, const char *msg);

#endif
