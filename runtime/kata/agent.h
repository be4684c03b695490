/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kata agent calls ateom makes (docs/kata-agent.md, "The calls"), over
 * one ttrpc connection
 * through the VM's hybrid vsock.  Every call takes an absolute deadline
 * (ATE_DEADLINE_NONE for the log readers) and fails with an error that
 * names the method and carries the agent's gRPC status code.
 */
#ifndef KATA_AGENT_H
#define KATA_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "kata/oci.pb-c.h"
#include "util/time.h"

struct ate_error;
struct kata_agent;

/* The guest network every actor gets (docs/networking.md, "The picture"):
 * constants, so that the
 * interface, route and ARP state frozen in a snapshot stay valid on any
 * pod. */
#define KATA_GUEST_IFACE "eth0"
#define KATA_GUEST_MAC "02:a8:1e:00:00:02"
#define KATA_GUEST_IP "169.254.17.2"
#define KATA_GUEST_PREFIX "30"
#define KATA_GUEST_SUBNET "169.254.17.0/30"
#define KATA_GATEWAY_IP "169.254.17.1"
#define KATA_GATEWAY_MAC "02:a8:1e:00:00:01"

/* Dial deadlines of the reference (docs/kata-agent.md, "Connecting: hybrid
 * vsock"). */
#define KATA_DIAL_RUN_MS 60000
#define KATA_DIAL_RESTORE_MS 15000
#define KATA_DIAL_ATTEMPT_MS 5000
#define KATA_DIAL_PAUSE_MS 500

/* Dial the agent (guest port `port`, normally 1024) with retries until
 * overall_deadline. */
int kata_agent_connect (const char *vsock_path, uint32_t port,
                        ate_deadline_t overall_deadline, int64_t attempt_ms,
                        int64_t pause_ms, struct kata_agent **out,
                        struct ate_error **err);

/* Wrap an already connected socket (tests). Takes ownership of fd. */
int kata_agent_new_from_fd (int fd, struct kata_agent **out, struct ate_error **err);

/* Fail every in-flight call (e.g. the log readers) and every later one.
 * Safe from any thread; idempotent. */
void kata_agent_close (struct kata_agent *agent);

/* Close and free.  NULL-safe.  Threads still using the agent (log pumps)
 * must have been joined first. */
void kata_agent_free (struct kata_agent *agent);

int kata_agent_create_sandbox (struct kata_agent *agent, const char *hostname,
                               const char *sandbox_id, ate_deadline_t deadline,
                               struct ate_error **err);

/* UpdateInterface + UpdateRoutes + AddARPNeighbors with the fixed guest
 * addresses (docs/networking.md, "MTU"); mtu of the interior eth0. */
int kata_agent_configure_guest_network (struct kata_agent *agent, uint64_t mtu,
                                        ate_deadline_t deadline,
                                        struct ate_error **err);

/* CreateContainer with the rootfs on a virtio-blk disk the agent mounts
 * (ext4, rw) at /run/kata-containers/<container_id>/rootfs; spec's root is
 * replaced by that mount point.  guest_device: "/dev/vdb", "/dev/vdc"... */
int kata_agent_create_container_blk (struct kata_agent *agent,
                                     const char *container_id, const char *exec_id,
                                     const char *guest_device, const Grpc__Spec *spec,
                                     ate_deadline_t deadline, struct ate_error **err);

int kata_agent_start_container (struct kata_agent *agent, const char *container_id,
                                ate_deadline_t deadline, struct ate_error **err);

/* One ReadStdout/ReadStderr call: up to len bytes into a new buffer
 * (*n == 0 means end of stream; *buf is then NULL). */
int kata_agent_read_stdout (struct kata_agent *agent, const char *container_id,
                            const char *exec_id, uint32_t len, uint8_t **buf,
                            size_t *n, ate_deadline_t deadline, struct ate_error **err);
int kata_agent_read_stderr (struct kata_agent *agent, const char *container_id,
                            const char *exec_id, uint32_t len, uint8_t **buf,
                            size_t *n, ate_deadline_t deadline, struct ate_error **err);

int kata_agent_wait_process (struct kata_agent *agent, const char *container_id,
                             const char *exec_id, int32_t *status,
                             ate_deadline_t deadline, struct ate_error **err);

int kata_agent_destroy_sandbox (struct kata_agent *agent, ate_deadline_t deadline,
                                struct ate_error **err);

/* grpc.Health/Check: success only when the agent reports SERVING. */
int kata_agent_health_check (struct kata_agent *agent, ate_deadline_t deadline,
                             struct ate_error **err);

/* Run cmd in the guest's debug console (vsock port 1026; docs/kata-agent.md,
 * "Debug console dump") and
 * return what it printed, or a description of what failed: diagnostics
 * only, never an error.  The deadline is capped at 8 s.  Free the result. */
char *kata_debug_console_dump (const char *vsock_path, const char *cmd,
                               ate_deadline_t deadline);

#endif
