/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "net/nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "util/error.h"
#include "util/util.h"

static inline void
cleanup_rtnl_link_fn (struct rtnl_link **l)
{
  if (*l)
    rtnl_link_put (*l);
}
static inline void
cleanup_nl_addr_fn (struct nl_addr **a)
{
  if (*a)
    nl_addr_put (*a);
}
static inline void
cleanup_nl_cache_fn (struct nl_cache **c)
{
  if (*c)
    nl_cache_free (*c);
}
static inline void
cleanup_rtnl_addr_fn (struct rtnl_addr **a)
{
  if (*a)
    rtnl_addr_put (*a);
}
static inline void
cleanup_rtnl_route_fn (struct rtnl_route **r)
{
  if (*r)
    rtnl_route_put (*r);
}
#define cleanup_rtnl_link __attribute__ ((cleanup (cleanup_rtnl_link_fn)))
#define cleanup_nl_addr __attribute__ ((cleanup (cleanup_nl_addr_fn)))
#define cleanup_nl_cache __attribute__ ((cleanup (cleanup_nl_cache_fn)))
#define cleanup_rtnl_addr __attribute__ ((cleanup (cleanup_rtnl_addr_fn)))
#define cleanup_rtnl_route __attribute__ ((cleanup (cleanup_rtnl_route_fn)))

int
net_nlerr_to_errno (int nlerr)
{
  switch (nlerr < 0 ? -nlerr : nlerr)
    {
    case NLE_SUCCESS:
      return 0;
    case NLE_INTR:
      return EINTR;
    case NLE_BAD_SOCK:
      return EBADF;
    case NLE_AGAIN:
      return EAGAIN;
    case NLE_NOMEM:
      return ENOMEM;
    case NLE_EXIST:
      return EEXIST;
    case NLE_INVAL:
      return EINVAL;
    case NLE_RANGE:
      return ERANGE;
    case NLE_MSGSIZE:
      return EMSGSIZE;
    case NLE_OPNOTSUPP:
      return EOPNOTSUPP;
    case NLE_AF_NOSUPPORT:
      return EAFNOSUPPORT;
    case NLE_OBJ_NOTFOUND:
      return ENOENT;
    case NLE_NOATTR:
      return ENOENT;
    case NLE_PERM:
      return EPERM;
    case NLE_NOACCESS:
      return EACCES;
    case NLE_BUSY:
      return EBUSY;
    case NLE_NOADDR:
      return EADDRNOTAVAIL;
    case NLE_NODEV:
      return ENODEV;
    case NLE_PROTO_MISMATCH:
      return EPROTONOSUPPORT;
    default:
      return EIO;
    }
}

int
net_nl_error (struct ate_error **err, int nlerr, const char *fmt, ...)
{
  cleanup_free char *what = NULL;
  va_list ap;

  va_start (ap, fmt);
  if (vasprintf (&what, fmt, ap) < 0)
    ate_oom ();
  va_end (ap);

  /* libnl's own text ("Object exists") is what it knows; the errno is
   * recorded for the status mapping without repeating strerror. */
  bool fresh = err != NULL && *err == NULL;
  ate_error_make (err, 0, "%s: %s", what, nl_geterror (nlerr));
  if (fresh)
    (*err)->status = net_nlerr_to_errno (nlerr);
  return -1;
}

int
net_nl_open (struct nl_sock **out, struct ate_error **err)
{
  struct nl_sock *sk = nl_socket_alloc ();
  int r;

  if (sk == NULL)
    ate_oom ();
  r = nl_connect (sk, NETLINK_ROUTE);
  if (r < 0)
    {
      nl_socket_free (sk);
      return net_nl_error (err, r, "connect rtnetlink socket");
    }
  *out = sk;
  return 0;
}

void
net_nl_close (struct nl_sock *sk)
{
  nl_socket_free (sk); /* closes the socket */
}

static bool
nlerr_is_not_found (int r)
{
  return r == -NLE_NODEV || r == -NLE_OBJ_NOTFOUND;
}

static void
link_attrs_fill (struct rtnl_link *l, struct net_link_attrs *out)
{
  struct nl_addr *mac = rtnl_link_get_addr (l);
  const char *kind = rtnl_link_get_type (l);

  memset (out, 0, sizeof (*out));
  out->ifindex = rtnl_link_get_ifindex (l);
  out->mtu = rtnl_link_get_mtu (l);
  out->flags = rtnl_link_get_flags (l);
  snprintf (out->name, sizeof (out->name), "%s", rtnl_link_get_name (l));
  snprintf (out->kind, sizeof (out->kind), "%s", kind ? kind : "");
  if (mac && nl_addr_get_len (mac) == sizeof (out->mac))
    memcpy (out->mac, nl_addr_get_binary_addr (mac), sizeof (out->mac));
}

int
net_link_lookup (struct nl_sock *sk, const char *name, int ifindex,
                 struct net_link_attrs *out, struct ate_error **err)
{
  cleanup_rtnl_link struct rtnl_link *l = NULL;
  int r;

  r = rtnl_link_get_kernel (sk, name ? 0 : ifindex, name, &l);
  if (nlerr_is_not_found (r))
    return 0;
  if (r < 0)
    {
      if (name)
        return net_nl_error (err, r, "look up link `%s`", name);
      return net_nl_error (err, r, "look up link %d", ifindex);
    }
  if (out)
    link_attrs_fill (l, out);
  return 1;
}

int
net_link_delete (struct nl_sock *sk, const char *name, bool *deleted,
                 struct ate_error **err)
{
  cleanup_rtnl_link struct rtnl_link *l = NULL;
  int r;

  if (deleted)
    *deleted = false;
  r = rtnl_link_get_kernel (sk, 0, name, &l);
  if (nlerr_is_not_found (r))
    return 0;
  if (r < 0)
    return net_nl_error (err, r, "look up link `%s`", name);
  r = rtnl_link_delete (sk, l);
  /* Deleting one end of a veth also deletes the other, so a peer may have
   * gone between the lookup and the delete. */
  if (nlerr_is_not_found (r))
    return 0;
  if (r < 0)
    return net_nl_error (err, r, "delete link `%s`", name);
  if (deleted)
    *deleted = true;
  return 0;
}

int
net_link_set_up (struct nl_sock *sk, int ifindex, unsigned int mtu,
                 struct ate_error **err)
{
  cleanup_rtnl_link struct rtnl_link *orig = NULL;
  cleanup_rtnl_link struct rtnl_link *change = NULL;
  int r;

  r = rtnl_link_get_kernel (sk, ifindex, NULL, &orig);
  if (r < 0)
    return net_nl_error (err, r, "look up link %d", ifindex);
  change = rtnl_link_alloc ();
  if (change == NULL)
    ate_oom ();
  rtnl_link_set_flags (change, IFF_UP);
  if (mtu != 0)
    rtnl_link_set_mtu (change, mtu);
  r = rtnl_link_change (sk, orig, change, 0);
  if (r < 0)
    {
      if (mtu != 0)
        return net_nl_error (err, r, "set link `%s` up with MTU %u",
                             rtnl_link_get_name (orig), mtu);
      return net_nl_error (err, r, "set link `%s` up",
                           rtnl_link_get_name (orig));
    }
  return 0;
}

int
net_link_list_names (struct nl_sock *sk, char ***names, struct ate_error **err)
{
  cleanup_nl_cache struct nl_cache *cache = NULL;
  struct nl_object *o;
  size_t n = 0, i = 0;
  char **v;
  int r;

  r = rtnl_link_alloc_cache (sk, AF_UNSPEC, &cache);
  if (r < 0)
    return net_nl_error (err, r, "list links");
  n = (size_t) nl_cache_nitems (cache);
  v = xcalloc (n + 1, sizeof (char *));
  for (o = nl_cache_get_first (cache); o && i < n; o = nl_cache_get_next (o))
    v[i++] = xstrdup (rtnl_link_get_name ((struct rtnl_link *) o));
  *names = v;
  return 0;
}

int
net_veth_create (struct nl_sock *sk, const char *name, const char *mac,
                 const char *peer_name, int peer_ns_fd, unsigned int mtu,
                 struct ate_error **err)
{
  cleanup_rtnl_link struct rtnl_link *veth = NULL;
  cleanup_rtnl_link struct rtnl_link *peer = NULL;
  cleanup_nl_addr struct nl_addr *hw = NULL;
  int r;

  r = nl_addr_parse (mac, AF_LLC, &hw);
  if (r < 0)
    return net_nl_error (err, r, "parse MAC `%s`", mac);
  veth = rtnl_link_veth_alloc ();
  if (veth == NULL)
    ate_oom ();
  peer = rtnl_link_veth_get_peer (veth);
  rtnl_link_set_name (veth, name);
  rtnl_link_set_addr (veth, hw);
  rtnl_link_set_name (peer, peer_name);
  /* Creating the peer directly in the interior namespace means no
   * half-configured peer is ever visible in the pod namespace. */
  rtnl_link_set_ns_fd (peer, peer_ns_fd);
  if (mtu != 0)
    {
      rtnl_link_set_mtu (veth, mtu);
      rtnl_link_set_mtu (peer, mtu);
    }
  r = rtnl_link_add (sk, veth, NLM_F_CREATE | NLM_F_EXCL);
  if (r < 0)
    return net_nl_error (err, r, "create veth `%s` <-> `%s` (MTU %u)", name,
                         peer_name, mtu);
  return 0;
}

int
net_addr_replace_v4 (struct nl_sock *sk, int ifindex, const char *ip,
                     unsigned int prefixlen, struct ate_error **err)
{
  cleanup_rtnl_addr struct rtnl_addr *addr = NULL;
  cleanup_nl_addr struct nl_addr *local = NULL;
  cleanup_nl_addr struct nl_addr *brd = NULL;
  struct in_addr a, b;
  int r;

  if (prefixlen > 32 || inet_pton (AF_INET, ip, &a) != 1)
    return ate_error_make (err, EINVAL, "bad IPv4 address %s/%u", ip, prefixlen);
  local = nl_addr_build (AF_INET, &a, sizeof (a));
  if (local == NULL)
    ate_oom ();
  nl_addr_set_prefixlen (local, (int) prefixlen);

  addr = rtnl_addr_alloc ();
  if (addr == NULL)
    ate_oom ();
  rtnl_addr_set_ifindex (addr, ifindex);
  rtnl_addr_set_family (addr, AF_INET);
  r = rtnl_addr_set_local (addr, local);
  if (r < 0)
    return net_nl_error (err, r, "set address %s/%u", ip, prefixlen);
  rtnl_addr_set_prefixlen (addr, (int) prefixlen);
  /* Like `brd +` (and the reference's netlink library): subnets that are
   * large enough get the all-ones broadcast address. */
  if (prefixlen < 31)
    {
      uint32_t mask = prefixlen == 0 ? 0 : htonl (~0u << (32 - prefixlen));
      b.s_addr = a.s_addr | ~mask;
      brd = nl_addr_build (AF_INET, &b, sizeof (b));
      if (brd == NULL)
        ate_oom ();
      r = rtnl_addr_set_broadcast (addr, brd);
      if (r < 0)
        return net_nl_error (err, r, "set broadcast of %s/%u", ip, prefixlen);
    }
  r = rtnl_addr_add (sk, addr, NLM_F_REPLACE);
  if (r < 0)
    return net_nl_error (err, r, "add address %s/%u to link %d", ip, prefixlen,
                         ifindex);
  return 0;
}

int
net_addr_first_v4 (struct nl_sock *sk, int ifindex, struct in_addr *out,
                   struct ate_error **err)
{
  cleanup_nl_cache struct nl_cache *cache = NULL;
  struct nl_object *o;
  int r;

  r = rtnl_addr_alloc_cache (sk, &cache);
  if (r < 0)
    return net_nl_error (err, r, "list addresses");
  for (o = nl_cache_get_first (cache); o; o = nl_cache_get_next (o))
    {
      struct rtnl_addr *a = (struct rtnl_addr *) o;
      struct nl_addr *local = rtnl_addr_get_local (a);

      if (rtnl_addr_get_ifindex (a) != ifindex
          || rtnl_addr_get_family (a) != AF_INET || local == NULL
          || nl_addr_get_len (local) != sizeof (*out))
        continue;
      memcpy (out, nl_addr_get_binary_addr (local), sizeof (*out));
      return 0;
    }
  return ate_error_make (err, ENOENT, "no IPv4 address on link %d", ifindex);
}

int
net_route_replace_default_v4 (struct nl_sock *sk, int ifindex, const char *gw,
                              struct ate_error **err)
{
  cleanup_rtnl_route struct rtnl_route *route = NULL;
  cleanup_nl_addr struct nl_addr *dst = NULL;
  cleanup_nl_addr struct nl_addr *via = NULL;
  struct rtnl_nexthop *nh;
  struct in_addr any = { 0 }, g;
  int r;

  if (inet_pton (AF_INET, gw, &g) != 1)
    return ate_error_make (err, EINVAL, "bad IPv4 gateway `%s`", gw);
  dst = nl_addr_build (AF_INET, &any, sizeof (any));
  via = nl_addr_build (AF_INET, &g, sizeof (g));
  if (dst == NULL || via == NULL)
    ate_oom ();
  nl_addr_set_prefixlen (dst, 0);

  route = rtnl_route_alloc ();
  nh = rtnl_route_nh_alloc ();
  if (route == NULL || nh == NULL)
    ate_oom ();
  rtnl_route_set_family (route, AF_INET);
  rtnl_route_set_table (route, RT_TABLE_MAIN);
  rtnl_route_set_protocol (route, RTPROT_BOOT);
  rtnl_route_set_type (route, RTN_UNICAST);
  r = rtnl_route_set_dst (route, dst);
  if (r < 0)
    {
      rtnl_route_nh_free (nh);
      return net_nl_error (err, r, "set route destination");
    }
  rtnl_route_nh_set_ifindex (nh, ifindex);
  rtnl_route_nh_set_gateway (nh, via);
  rtnl_route_add_nexthop (route, nh); /* the route owns nh now */
  r = rtnl_route_add (sk, route, NLM_F_REPLACE);
  if (r < 0)
    return net_nl_error (err, r, "replace default route via %s", gw);
  return 0;
}
