/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Actor networking (docs/networking.md): the interior network namespace, the
 * per-activation veth pair between the pod namespace and the interior
 * namespace, the tap devices cloud-hypervisor uses, the tc cross-connect
 * between the interior eth0 and a tap, and the nftables table in the pod
 * namespace.
 *
 *   pod eth0 <-(route, NAT)-> ateom0 <-veth-> interior eth0 <-(tc)-> tap <-> CH
 *
 * Every operation runs on a short-lived helper thread that enters the
 * namespace it works in (the pod namespace recorded by net_ctx_new(), or the
 * interior namespace) and returns to the pod namespace before it ends; the
 * calling thread never changes namespace, so any thread may call these
 * functions.  Calls on one context are serialised by a mutex.
 *
 * See docs/networking.md for what an operator sees.
 */
#ifndef ATE_NET_H
#define ATE_NET_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

struct ate_error;
struct net_ctx;

/* Fixed addresses (frozen into guest snapshots: never change them). */
#define NET_HOST_VETH "ateom0"
#define NET_INTERIOR_VETH "eth0"
#define NET_INTERIOR_VETH_TEMP "ateom1" /* the reference's temporary name */
#define NET_HOST_VETH_MAC "02:a8:1e:00:00:01"
#define NET_GUEST_MAC "02:a8:1e:00:00:02"
#define NET_HOST_VETH_IP "169.254.17.1"
#define NET_ACTOR_IP "169.254.17.2"
#define NET_ACTOR_SUBNET "169.254.17.0/30"
#define NET_ACTOR_PREFIXLEN 30
#define NET_NFT_TABLE "ateom_actor" /* family ip */

#define NET_DEFAULT_NETNS_DIR "/run/netns"
#define NET_DEFAULT_POD_IFNAME "eth0"
#define NET_DEFAULT_INGRESS_PORT 80
#define NET_DEFAULT_MTU 1500
/* The MTU of every guest, Run or restored: the one the reference's guests
 * have (its veths never took the pod's), so any snapshot of a fleet
 * carries it (docs/operations.md, "Mixed fleets"). */
#define NET_GUEST_MTU 1500
#define NET_MAX_INGRESS_PORTS 64
#define NET_MAX_QUEUE_PAIRS 256 /* the tun driver's queue limit */
#define NET_MIN_MTU 68
#define NET_MAX_MTU 65535

struct net_config
{
  const char *netns_dir;  /* NULL: /run/netns */
  const char *netns_name; /* required, e.g. "ateom:<podUID>" */
  /* TCP ports of the pod IP DNATed to the same port of the actor (at most
   * 64, distinct, non-zero).  NULL: {80}, like the reference; non-NULL with
   * n_ingress_ports 0: no ingress at all. */
  const uint16_t *ingress_ports;
  size_t n_ingress_ports;
  const char *pod_ifname; /* the pod's own interface; NULL: "eth0" */
};

struct net_actor_info
{
  char pod_ipv4[INET_ADDRSTRLEN]; /* first IPv4 address of the pod interface */
  unsigned int pod_mtu;           /* MTU of the pod interface */
  unsigned int link_mtu;          /* MTU of the veths (and the taps): the guest's */
};

/* Record the calling thread's network namespace as the pod namespace, then
 * create the interior namespace <netns_dir>/<netns_name> (a bind mount of a
 * fresh namespace, kept open), or reuse it when it already exists (after a
 * restart).  The configuration is copied. */
int net_ctx_new (const struct net_config *cfg, struct net_ctx **out,
                 struct ate_error **err);

/* Close the context.  The interior namespace stays mounted (it outlives the
 * process on purpose: a restarted server reuses it).  NULL-safe. */
void net_ctx_free (struct net_ctx *ctx);

/* Unmount and remove the interior namespace's file (tests, orderly
 * teardown).  Links still in it are destroyed by the kernel. */
int net_ctx_destroy_netns (struct net_ctx *ctx, struct ate_error **err);

const char *net_ctx_netns_path (const struct net_ctx *ctx);

/* docs/networking.md, "Per activation": clean up, then build the veth pair, addresses, default route,
 * ip_forward and the nftables table.  On failure everything built is
 * removed again and the error says which step failed. */
int net_actor_setup (struct net_ctx *ctx, struct net_actor_info *info,
                     struct ate_error **err);

/* The same for a guest whose MTU is already fixed (a restored snapshot):
 * the veth pair and the taps get guest_mtu instead of the pod's (0: the
 * pod's), so its full-size frames are not dropped between the tap and the
 * pod namespace; when guest_mtu exceeds the pod's, TCP SYNs forwarded to
 * the pod interface get their MSS clamped to its route MTU
 * (docs/networking.md, "MTU"). */
int net_actor_setup_mtu (struct net_ctx *ctx, unsigned int guest_mtu,
                         struct net_actor_info *info, struct ate_error **err);

/* docs/networking.md, "Taps": (re)create tap `name` in the interior
 * namespace with
 * queue_pairs queues (1..256) and the two-way tc redirect to the interior
 * eth0.  mtu 0 means the interior eth0's MTU.  On success *fds holds
 * queue_pairs O_CLOEXEC|O_NONBLOCK descriptors (free with
 * net_tap_fds_free); on failure nothing is left behind. */
int net_tap_create (struct net_ctx *ctx, const char *name,
                    unsigned int queue_pairs, unsigned int mtu, int **fds,
                    size_t *nfds, struct ate_error **err);

/* Close and free what net_tap_create returned.  NULL-safe. */
void net_tap_fds_free (int *fds, size_t nfds);

/* "tap<index>_kata", the names kata and the reference use. */
char *net_tap_name (unsigned int index);

/* docs/networking.md, "Cleanup"; idempotent: delete the nftables table, ateom0, the interior
 * eth0/ateom1 and every tap<N>_kata in the interior namespace.  Every step
 * runs; all failures are returned together.  Never exits the process. */
int net_actor_cleanup (struct net_ctx *ctx, struct ate_error **err);

/* MTU of the interior eth0, for the guest interface config
 * (docs/networking.md, "MTU").  On
 * failure *mtu is set to NET_DEFAULT_MTU as well, so a caller may log the
 * error and continue the way the reference does. */
int net_interior_mtu (struct net_ctx *ctx, unsigned int *mtu,
                      struct ate_error **err);

#endif
