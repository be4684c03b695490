/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny stand-in for the simulator core, for the kata integration tests:
 * it hosts the simulated agent (ate_sim_agent) behind a real hybrid-vsock
 * unix socket, with its state region in a plain buffer, a network
 * namespace of its own holding the guest's "eth0" (MAC 02:a8:1e:00:00:02,
 * a veth whose peer is up) and an ext4 image as /dev/vdb.  It can "boot"
 * late (CONNECT 1024 answered with EOF until then), pause, and simulate a
 * snapshot + restore (connections dropped, a new namespace, a new agent on
 * the same memory).  Needs root.
 */
#ifndef KATA_HARNESS_H
#define KATA_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct harness;

/* 0, or 77 when the environment cannot run it (not root, no veth). */
int harness_new (int boot_delay_ms, struct harness **out);
void harness_free (struct harness *h);

const char *harness_vsock_path (const struct harness *h);
const char *harness_dir (const struct harness *h);
int harness_netns_fd (const struct harness *h);
unsigned harness_connects (const struct harness *h);
struct sim_agent *harness_agent (struct harness *h);

/* Drop connections, a fresh guest namespace, the agent restarted with
 * restored = true on the same memory. */
int harness_restore (struct harness *h);

/* Flip one byte of the agent's memory (an incomplete merge). */
void harness_corrupt (struct harness *h, size_t off);

/* Run argv inside the guest namespace; returns its output (free it) or
 * NULL on failure. */
char *harness_run_in_guest (struct harness *h, char *const argv[]);

/* An HTTP GET from inside the guest namespace to 169.254.17.2:80 with a
 * timeout; returns the body (free it) or NULL. */
char *harness_http_get (struct harness *h, const char *path, int timeout_ms);

#endif
