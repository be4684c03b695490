/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Assertions about the state runtime/net builds, looked at from outside:
 * libnl queries, `ip -j`, `tc`, `nft -j` and `nft --debug=netlink`.
 */
#ifndef ATE_NET_CHECKS_H
#define ATE_NET_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net_fixture.h"

/* Exactly the pod side, interior side and nftables table of
 * docs/networking.md (for
 * the given ingress ports; NULL means {80}).  Other tables are allowed;
 * the interior namespace holds lo, eth0 and n_taps taps. */
void nc_check_actor_network (struct nt_pod *pod, const uint16_t *ports,
                             size_t n_ports, int n_taps);

/* Tap `name` with queue_pairs queues, MTU mtu, up, persistent, vnet
 * headers, root-owned, and exactly one two-way u32/mirred redirect
 * between it and the interior eth0; fds are its queues. */
void nc_check_tap (struct nt_pod *pod, const char *name,
                   unsigned int queue_pairs, unsigned int mtu, const int *fds,
                   size_t nfds);

/* Nothing of the actor network is left: no ateom0, no ateom_actor table,
 * only `lo` in the interior namespace; the pod keeps its own links. */
void nc_check_clean (struct nt_pod *pod);

/* Number of ingress redirect filters on a link of the interior namespace
 * and the ifindex the last one points to. */
int nc_redirect_count (int ns_fd, const char *dev, int *target);

/* Whether a link of ns has an ingress qdisc. */
bool nc_has_ingress_qdisc (int ns_fd, const char *dev);

/* ip_forward as seen from inside ns. */
int nc_ip_forward (int ns_fd);

/* The objects of table ip ateom_actor in the ruleset of ns, without
 * handles (a JSON array). */
struct json_object *nc_actor_table (int ns_fd);

#endif
