/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rtnetlink through libnl-route-3: links, addresses, routes.  Every
 * function works in the network namespace the socket was opened in (a
 * netlink socket stays bound to the namespace of the thread that created
 * it), so open the socket inside a net_ns_run() job.
 */
#ifndef ATE_NET_NL_H
#define ATE_NET_NL_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct ate_error;
struct nl_sock;

struct net_link_attrs
{
  int ifindex;
  unsigned int mtu;
  unsigned int flags; /* IFF_* */
  uint8_t mac[6];
  char name[IF_NAMESIZE];
  char kind[16]; /* "veth", "tun", ... or "" */
};

/* libnl error (a negative NLE_* code) to errno. */
int net_nlerr_to_errno (int nlerr);

/* Set *err to "<fmt>: <libnl message>" with the matching errno; returns -1. */
int net_nl_error (struct ate_error **err, int nlerr, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* A NETLINK_ROUTE socket in the calling thread's namespace. */
int net_nl_open (struct nl_sock **out, struct ate_error **err);
void net_nl_close (struct nl_sock *sk);

static inline void
cleanup_nl_sock_fn (struct nl_sock **sk)
{
  if (*sk)
    net_nl_close (*sk);
}
#define cleanup_nl_sock __attribute__ ((cleanup (cleanup_nl_sock_fn)))

/* 1 and *out filled when the link exists, 0 when it does not, < 0 on
 * error.  Exactly one of name (non-NULL) or ifindex (> 0) selects it. */
int net_link_lookup (struct nl_sock *sk, const char *name, int ifindex,
                     struct net_link_attrs *out, struct ate_error **err);

/* Delete a link by name; a missing link is success.  *deleted (may be
 * NULL) tells whether one was removed. */
int net_link_delete (struct nl_sock *sk, const char *name, bool *deleted,
                     struct ate_error **err);

/* Set IFF_UP and, when mtu != 0, the MTU, in one request. */
int net_link_set_up (struct nl_sock *sk, int ifindex, unsigned int mtu,
                     struct ate_error **err);

/* Every link of the namespace (NULL-terminated, free with strv_free). */
int net_link_list_names (struct nl_sock *sk, char ***names,
                         struct ate_error **err);

/* Create veth `name` (MAC mac, MTU mtu) whose peer `peer_name` is created
 * directly in the namespace peer_ns_fd (same MTU, random MAC). */
int net_veth_create (struct nl_sock *sk, const char *name, const char *mac,
                     const char *peer_name, int peer_ns_fd, unsigned int mtu,
                     struct ate_error **err);

/* `ip addr replace <ip>/<prefixlen> brd + dev <ifindex>` for IPv4. */
int net_addr_replace_v4 (struct nl_sock *sk, int ifindex, const char *ip,
                         unsigned int prefixlen, struct ate_error **err);

/* The first IPv4 address on the link in dump order; ENOENT error if none. */
int net_addr_first_v4 (struct nl_sock *sk, int ifindex, struct in_addr *out,
                       struct ate_error **err);

/* `ip route replace default via <gw> dev <ifindex>` in the main table. */
int net_route_replace_default_v4 (struct nl_sock *sk, int ifindex,
                                  const char *gw, struct ate_error **err);

#endif
