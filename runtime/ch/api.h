/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloud-hypervisor REST calls (docs/cloud-hypervisor.md, "Requests").  Every call opens a
 * fresh connection to the API socket (a reused idle connection was seen to
 * hang on vm.resume), honours the caller's absolute deadline, and turns a
 * non-2xx answer into an error with method, path, status and CH's error
 * chain.
 */
#ifndef ATE_CH_API_H
#define ATE_CH_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/time.h"

struct ate_error;

/* ---- version (vmm.ping) ---- */

struct ch_version
{
  unsigned major, minor, patch;
  char raw[64]; /* the "version" string as CH sent it (truncated) */
};

/* Parse "52.0.0", "v52.0", "v53.0-246-gae44c297", "cloud-hypervisor v51.1.0". */
int ch_version_parse (const char *s, struct ch_version *out, struct ate_error **err);

/* ---- VmConfig (vm.create body, docs/cloud-hypervisor.md "VmConfig") ---- */

struct ch_disk_config
{
  const char *path;
  bool readonly;
  bool direct;
  uint32_t num_queues;    /* omitted when 0 */
  uint32_t queue_size;    /* omitted when 0 */
  const char *image_type; /* omitted when NULL or "" */
  bool backing_files;     /* a qcow2 overlay may open its backing file; sent only when true */
};

struct ch_vm_config
{
  uint32_t boot_vcpus;
  uint32_t max_vcpus;       /* 0: same as boot_vcpus */
  uint64_t memory_size;     /* bytes */
  bool memory_shared;       /* memfd-backed: enables sparse snapshots */
  const char *kernel;
  const char *cmdline;
  const struct ch_disk_config *disks;
  size_t n_disks;           /* image first, then one writable disk per container */
  const char *rng_src;      /* NULL: no rng device */
  const char *serial_file;  /* non-NULL: serial {"mode":"File","file":...} */
  uint32_t vsock_cid;       /* >= 3 when vsock_socket is set */
  const char *vsock_socket; /* NULL: no vsock */
  uint32_t num_pci_segments; /* 0: no "platform" object */
};

/* Serialise in the reference's key order, compact.  Fails on a config CH
 * would reject (no kernel, zero memory, vsock cid < 3, ...). */
int ch_vm_config_to_json (const struct ch_vm_config *cfg, char **json, struct ate_error **err);

/* ---- restore mode ---- */

enum ch_restore_mode
{
  CH_RESTORE_COPY,
  CH_RESTORE_ONDEMAND,
};

enum ch_restore_pref
{
  CH_RESTORE_PREF_AUTO,
  CH_RESTORE_PREF_COPY,
  CH_RESTORE_PREF_ONDEMAND,
};

/* Choose how to restore on this CH version.  v51.x: Copy, and the
 * memory_restore_mode field is never sent (v51 ignores it; forcing
 * OnDemand is an error).  v52: OnDemand.  v53+: Copy (background prefault
 * makes OnDemand pointless; sparse restore makes Copy cheap).  Only an
 * OnDemand restore leaves a delta to merge at the next checkpoint. */
int ch_restore_mode_choose (const struct ch_version *v, enum ch_restore_pref pref,
                            enum ch_restore_mode *mode, bool *send_field,
                            struct ate_error **err);

const char *ch_restore_mode_name (enum ch_restore_mode mode); /* "Copy", "OnDemand" */

/* Parse "auto", "copy", "ondemand" (case-insensitive). */
int ch_restore_pref_parse (const char *s, enum ch_restore_pref *out, struct ate_error **err);

/* ---- calls ---- */

int ch_ping (const char *api_socket, struct ch_version *version, ate_deadline_t deadline,
             struct ate_error **err);

int ch_vm_create (const char *api_socket, const struct ch_vm_config *cfg,
                  ate_deadline_t deadline, struct ate_error **err);

/* fds: one tap fd per queue pair (num_queues == 2 * nfds).  The caller
 * keeps and closes its copies. */
int ch_vm_add_net (const char *api_socket, const char *mac, uint32_t num_queues,
                   const int *fds, size_t nfds, ate_deadline_t deadline,
                   struct ate_error **err);

int ch_vm_boot (const char *api_socket, ate_deadline_t deadline, struct ate_error **err);

/* Idempotent: vm.info first, nothing to do when already Paused (CH answers
 * 500 to a second pause, which would wedge retries). */
int ch_vm_pause (const char *api_socket, ate_deadline_t deadline, struct ate_error **err);

int ch_vm_resume (const char *api_socket, ate_deadline_t deadline, struct ate_error **err);

/* mkdir -p dir (0755), then vm.snapshot to file://dir. */
int ch_vm_snapshot (const char *api_socket, const char *dir, ate_deadline_t deadline,
                    struct ate_error **err);

struct ch_restore_net
{
  const char *id;  /* device id from the snapshot's config.json */
  size_t num_fds;  /* tap fds for this device (one per queue pair) */
};

/* vm.restore on a fresh VMM; fds in net order, Σ num_fds of them.
 * send_mode = false omits memory_restore_mode (CH v51). */
int ch_vm_restore (const char *api_socket, const char *source_dir, enum ch_restore_mode mode,
                   bool send_mode, const struct ch_restore_net *nets, size_t nnets,
                   const int *fds, size_t nfds, ate_deadline_t deadline,
                   struct ate_error **err);

/* vm.info's "state": Created, Running, Shutdown, Paused, BreakPoint. */
int ch_vm_info_state (const char *api_socket, char **state, ate_deadline_t deadline,
                      struct ate_error **err);

int ch_vm_shutdown (const char *api_socket, ate_deadline_t deadline, struct ate_error **err);
int ch_vmm_shutdown (const char *api_socket, ate_deadline_t deadline, struct ate_error **err);

/* Request bodies, exposed for tests and the conformance check. */
char *ch_add_net_body (const char *mac, uint32_t num_queues, size_t nfds);
char *ch_restore_body (const char *source_dir, enum ch_restore_mode mode, bool send_mode,
                       const struct ch_restore_net *nets, size_t nnets);

#endif
