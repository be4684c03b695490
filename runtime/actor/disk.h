/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor's writable rootfs disks (docs/rootfs.md); middle of the actor
 * layers (docs/architecture.md, "Layers"): it uses the actor model and the
 * runtime modules only, never the vm, guest or network job layers.
 */
#ifndef ATE_ACTOR_DISK_H
#define ATE_ACTOR_DISK_H

#include "util/time.h"

struct actor;
struct actor_env;
struct ate_error;

/* Every container's bundle has a rootfs directory and a config.json
 * (FAILED_PRECONDITION otherwise: atelet prepares them). */
int actor_disk_check_bundles (const struct actor *a, struct ate_error **err);
/* Run: bundles checked, the pod's resolv.conf written into each rootfs,
 * one disk per container built (or reused, or cloned from the image cache)
 * detached from the deadline. */
int actor_disk_prepare_run (const struct actor_env *env, struct actor *a, ate_deadline_t deadline,
                            struct ate_error **err);
/* Restore: each disk reset to its lineage's golden template (installed from
 * restore_dir when the snapshot ships one), or rebuilt deterministically
 * and kept as the template. */
int actor_disk_prepare_restore (const struct actor_env *env, struct actor *a,
                                const char *restore_dir, ate_deadline_t deadline,
                                struct ate_error **err);
/* At a checkpoint: keep the lineage's golden template (first checkpoint
 * only) and, when shipping is on, link it into the checkpoint dir. */
int actor_disk_save_golden (const struct actor_env *env, struct actor *a,
                            const char *checkpoint_dir, struct ate_error **err);

#endif
