/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor's VM, the cloud-hypervisor side of an activation; middle of the
 * actor layers (docs/architecture.md, "Layers"): it uses the actor model and
 * the runtime modules only, never the guest, disk or network job layers.
 *   Run:        launch, vm.create, then (once the network is up) tap0 +
 *               vm.add-net + vm.boot
 *   Restore:    launch, taps for the snapshot's net devices, vm.restore,
 *               vm.resume
 *   Checkpoint: ping, vm.pause, base-id, vm.snapshot, on-demand delta merge
 *   Teardown:   stop and reap the VMM
 * Calls to cloud-hypervisor are timed into t->vmm_ns (t may be NULL).
 */
#ifndef ATE_ACTOR_VM_H
#define ATE_ACTOR_VM_H

#include "util/time.h"

struct actor;
struct actor_env;
struct actor_timing;
struct ate_error;

/* A bare VMM (a->ch_binary) on <vm_dir>/<socket_name>, recorded in the state
 * file. */
int actor_vm_launch (struct actor *a, const char *socket_name, struct actor_timing *t,
                     ate_deadline_t deadline, struct ate_error **err);
/* vm.create: the kata image read-only, then one writable rootfs per
 * container; kernel, cmdline, vCPUs and memory from a->kata_config. */
int actor_vm_create (const struct actor_env *env, struct actor *a, struct actor_timing *t,
                     ate_deadline_t deadline, struct ate_error **err);
int actor_vm_add_net_boot (const struct actor_env *env, struct actor *a, struct actor_timing *t,
                           ate_deadline_t deadline, struct ate_error **err);
/* Check restore-state's files and replace its config.json by the one
 * built from this server's assets and paths (ch/restore_config.h);
 * FAILED_PRECONDITION naming the member or file otherwise. */
int actor_vm_restore_config (const struct actor_env *env, struct actor *a,
                             const char *restore_dir, ate_deadline_t deadline,
                             struct ate_error **err);
/* Taps for the snapshot's net devices, vm.restore (memory mode by CH
 * version and --restore-memory-mode), vm.resume. */
int actor_vm_restore (const struct actor_env *env, struct actor *a, const char *restore_dir,
                      struct actor_timing *t, ate_deadline_t deadline, struct ate_error **err);
/* A failure leaves the VM paused and running: a retry continues. */
int actor_vm_checkpoint (struct actor *a, const char *dir, struct actor_timing *t,
                         ate_deadline_t deadline, struct ate_error **err);
/* Stop the VMM (a warning when it does not stop cleanly) and free its
 * handle; nothing when there is none. */
void actor_vm_stop (struct actor *a);
/* The same within deadline (bounded by the usual teardown time): a VM
 * that is discarded need not be waited for past the call that discards it;
 * one that does not stop in time is killed. */
void actor_vm_stop_by (struct actor *a, ate_deadline_t deadline);

#endif
