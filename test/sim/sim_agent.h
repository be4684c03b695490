/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Contract between the simulator core (test/sim: the cloud-hypervisor REST
 * API, guest memory, snapshot/restore, vsock, virtio-net forwarding) and the
 * simulated kata agent (test/sim/agent), which is linked into the same
 * `ch-sim` binary.
 *
 * The core owns the "guest": its memory, its network namespace, its disks.
 * The agent keeps every piece of state that must survive a snapshot (the
 * sandbox, the containers, the guest network configuration, the counter
 * app's count) in guest memory through the state_read/state_write hooks, so
 * that a restored guest resumes exactly what was snapshotted, and an
 * incomplete memory merge shows up as lost or corrupt agent state.
 */
#ifndef SIM_AGENT_H
#define SIM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_guest_ops
{
  void *ctx;

  /* A region of guest memory reserved for the agent, state_max bytes long.
   * Reads and writes go through the core's memory model (an OnDemand
   * restore faults the touched pages in from the snapshot; writes dirty
   * pages).  Return 0 on success, -1 on failure (errno set). */
  size_t state_max;
  int (*state_read) (void *ctx, size_t off, void *buf, size_t len);
  int (*state_write) (void *ctx, size_t off, const void *buf, size_t len);

  /* The guest's network namespace: its `eth0` is a tap the core bridges to
   * the VM's virtio-net device (the tap fds ateom passed in vm.add-net or
   * vm.restore).  The agent configures it (UpdateInterface, UpdateRoutes,
   * AddARPNeighbors) and runs container processes in it. */
  int netns_fd;

  /* Host path of the disk the guest sees as `guest_dev` ("/dev/vda",
   * "/dev/vdb", ... in vm.create disk order), or NULL when the VM has no
   * such disk. */
  const char *(*block_device_path) (void *ctx, const char *guest_dev);
  /* Read or write the block device `guest_dev` as the guest sees it (a
   * qcow2 overlay through its backing file).  0 on success, -1 with errno
   * (ENODEV: no such disk). */
  int (*block_device_read) (void *ctx, const char *guest_dev, uint64_t off, void *buf, size_t len);
  int (*block_device_write) (void *ctx, const char *guest_dev, uint64_t off, const void *buf,
                             size_t len);

  /* Diagnostics to the simulator's own log (stderr). */
  void (*log) (void *ctx, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
};

struct sim_agent;

/* Create the agent when the guest starts.  restored = false on a cold boot
 * (empty state: the agent initialises its region); true after vm.restore
 * (the agent reloads its state from guest memory, re-applies the guest
 * network configuration inside the new netns, and brings back containers
 * that were running: the built-in counter app continues from the count in
 * guest memory; a real process is started again from its recorded spec). */
struct sim_agent *sim_agent_new (const struct sim_guest_ops *ops, bool restored);

/* Serve one hybrid-vsock connection to guest port 1024 after the core
 * answered "OK <port>\n".  Takes ownership of fd and returns at once; the
 * agent serves ttrpc on it until EOF or reset. */
void sim_agent_serve (struct sim_agent *agent, int fd);

/* vm.pause / vm.resume: while paused the guest does not run: requests wait,
 * containers are stopped (SIGSTOP), the counter app does not answer. */
void sim_agent_pause (struct sim_agent *agent);
void sim_agent_resume (struct sim_agent *agent);

/* Before vm.snapshot completes and when the VMM shuts down: drop every
 * connection (vsock connections do not survive a snapshot/restore). */
void sim_agent_reset_connections (struct sim_agent *agent);

/* Stop everything (containers killed and waited for) and free. */
void sim_agent_free (struct sim_agent *agent);

#endif
