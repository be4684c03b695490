/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest network, configured for real with libnl inside the guest's
 * network namespace (a short-lived thread enters it, so no caller ever
 * changes namespace).  Semantics of the kata agent: the interface is found
 * by its MAC address, its addresses are replaced, then name, MTU and the
 * up flag are set; UpdateRoutes replaces the main routing table;
 * neighbours are added or replaced.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "util/util.h"

struct nl
{
  struct nl_sock *sk;
  struct nl_cache *links;
  char *err;
};

typedef int (*nl_job) (struct nl *n, const void *arg);

struct netns_run
{
  int netns_fd;
  nl_job fn;
  const void *arg;
  int rc;
  char *err;
};

static int
nl_fail (struct nl *n, const char *what, int nlerr)
{
  free (n->err);
  n->err = xasprintf ("%s: %s", what, nl_geterror (nlerr < 0 ? -nlerr : nlerr));
  return -1;
}

static void *
netns_thread (void *arg)
{
  struct netns_run *j = arg;
  struct nl n = { 0 };
  int r;

  if (setns (j->netns_fd, CLONE_NEWNET) < 0)
    {
      j->err = xasprintf ("enter the guest network namespace: %s", strerror (errno));
      j->rc = -1;
      return NULL;
    }
  n.sk = nl_socket_alloc ();
  if (n.sk == NULL)
    ate_oom ();
  if ((r = nl_connect (n.sk, NETLINK_ROUTE)) < 0
      || (r = rtnl_link_alloc_cache (n.sk, AF_UNSPEC, &n.links)) < 0)
    j->rc = nl_fail (&n, "netlink", r);
  else
    j->rc = j->fn (&n, j->arg);
  j->err = n.err;
  if (n.links)
    nl_cache_free (n.links);
  nl_socket_free (n.sk);
  return NULL;
}

static int
run_in_guest (struct sim_agent *a, nl_job fn, const void *arg, char **errmsg)
{
  struct netns_run j = { .netns_fd = a->ops.netns_fd, .fn = fn, .arg = arg };
  pthread_t t;

  if (a->ops.netns_fd < 0)
    return *errmsg = xstrdup ("the guest has no network namespace"), -1;
  if (pthread_create (&t, NULL, netns_thread, &j) != 0)
    return *errmsg = xstrdup ("cannot start a thread"), -1;
  pthread_join (t, NULL);
  if (j.rc < 0)
    {
      *errmsg = j.err ? j.err : xstrdup ("failed");
      return -1;
    }
  free (j.err);
  return 0;
}

static int
family_of (Types__IPFamily f)
{
  return f == TYPES__IPFAMILY__v6 ? AF_INET6 : AF_INET;
}

/* "addr" or "addr/prefix" of the family into a new nl_addr. */
static int
parse_ip (struct nl *n, const char *text, const char *mask, int family, struct nl_addr **out)
{
  unsigned char buf[sizeof (struct in6_addr)];
  char *full;
  int r;

  if (inet_pton (family, text, buf) != 1)
    return free (n->err), n->err = xasprintf ("invalid IP address \"%s\"", text), -1;
  if (mask && *mask)
    {
      char *end;
      long bits = strtol (mask, &end, 10);
      if (*end || bits < 0 || bits > (family == AF_INET ? 32 : 128))
        return free (n->err), n->err = xasprintf ("invalid prefix length \"%s\"", mask), -1;
      full = xasprintf ("%s/%ld", text, bits);
    }
  else
    full = xstrdup (text);
  r = nl_addr_parse (full, family, out);
  free (full);
  return r < 0 ? nl_fail (n, text, r) : 0;
}

static struct rtnl_link *
link_by_mac (struct nl *n, const char *mac)
{
  struct nl_addr *want = NULL;
  struct rtnl_link *found = NULL;
  char seen[512] = "";
  size_t used = 0;

  if (nl_addr_parse (mac, AF_LLC, &want) < 0)
    return free (n->err), n->err = xasprintf ("invalid MAC address \"%s\"", mac), NULL;
  for (struct nl_object *o = nl_cache_get_first (n->links); o; o = nl_cache_get_next (o))
    {
      struct rtnl_link *l = (struct rtnl_link *) o;
      struct nl_addr *a = rtnl_link_get_addr (l);
      char buf[64];
      if (a && nl_addr_cmp (a, want) == 0)
        {
          found = l;
          nl_object_get (o); /* released with rtnl_link_put */
          break;
        }
      if (used < sizeof (seen) - 1)
        used += (size_t) snprintf (seen + used, sizeof (seen) - used, "%s%s %s", used ? ", " : "",
                                   rtnl_link_get_name (l),
                                   a ? nl_addr2str (a, buf, sizeof (buf)) : "-");
    }
  nl_addr_put (want);
  if (found == NULL)
    {
      free (n->err);
      n->err = xasprintf ("no guest link has MAC %s (links: %s)", mac, seen);
    }
  return found;
}

static int
replace_addresses (struct nl *n, int ifindex, const Types__Interface *iface)
{
  struct nl_cache *addrs = NULL;
  int r = rtnl_addr_alloc_cache (n->sk, &addrs);

  if (r < 0)
    return nl_fail (n, "list addresses", r);
  for (struct nl_object *o = nl_cache_get_first (addrs); o; o = nl_cache_get_next (o))
    if (rtnl_addr_get_ifindex ((struct rtnl_addr *) o) == ifindex
        && (r = rtnl_addr_delete (n->sk, (struct rtnl_addr *) o, 0)) < 0 && r != -NLE_NOADDR)
      {
        nl_cache_free (addrs);
        return nl_fail (n, "delete address", r);
      }
  nl_cache_free (addrs);
  for (size_t i = 0; i < iface->n_ipaddresses; i++)
    {
      const Types__IPAddress *ip = iface->ipaddresses[i];
      struct nl_addr *local = NULL;
      struct rtnl_addr *a;
      if (parse_ip (n, ip->address, ip->mask, family_of (ip->family), &local) < 0)
        return -1;
      a = rtnl_addr_alloc ();
      rtnl_addr_set_ifindex (a, ifindex);
      rtnl_addr_set_local (a, local);
      nl_addr_put (local);
      r = rtnl_addr_add (n->sk, a, 0);
      rtnl_addr_put (a);
      if (r < 0)
        return nl_fail (n, ip->address, r);
    }
  return 0;
}

static int
job_update_interface (struct nl *n, const void *arg)
{
  const Types__Interface *iface = arg;
  struct rtnl_link *link = link_by_mac (n, iface->hwaddr);
  struct rtnl_link *change;
  int r;

  if (link == NULL)
    return -1;
  change = rtnl_link_alloc ();
  /* Down first: a link is renamed only while down. */
  rtnl_link_unset_flags (change, IFF_UP);
  r = rtnl_link_change (n->sk, link, change, 0);
  rtnl_link_put (change);
  if (r < 0 || replace_addresses (n, rtnl_link_get_ifindex (link), iface) < 0)
    {
      rtnl_link_put (link);
      return r < 0 ? nl_fail (n, "set link down", r) : -1;
    }
  change = rtnl_link_alloc ();
  if (iface->name[0] && strcmp (iface->name, rtnl_link_get_name (link)) != 0)
    rtnl_link_set_name (change, iface->name);
  if (iface->mtu > 0)
    rtnl_link_set_mtu (change, (unsigned int) iface->mtu);
  if (iface->raw_flags & IFF_NOARP)
    rtnl_link_set_flags (change, IFF_NOARP);
  else
    rtnl_link_unset_flags (change, IFF_NOARP);
  rtnl_link_set_flags (change, IFF_UP);
  r = rtnl_link_change (n->sk, link, change, 0);
  rtnl_link_put (change);
  rtnl_link_put (link);
  return r < 0 ? nl_fail (n, "configure link", r) : 0;
}

int
sim_net_update_interface (struct sim_agent *a, const Types__Interface *iface, char **errmsg)
{
  if (iface->mtu > 65535)
    return *errmsg = xasprintf ("invalid MTU %llu", (unsigned long long) iface->mtu), -1;
  return run_in_guest (a, job_update_interface, iface, errmsg);
}

struct list_arg
{
  const void *const *items;
  size_t n;
};

static int
link_index (struct nl *n, const char *name)
{
  int i = rtnl_link_name2i (n->links, name);
  if (i <= 0)
    {
      free (n->err);
      n->err = xasprintf ("no guest link named \"%s\"", name);
    }
  return i;
}

/* The main-table routes of a family go first (UpdateRoutes replaces). */
static int
flush_main_table (struct nl *n, int family)
{
  struct nl_cache *routes = NULL;
  int r = rtnl_route_alloc_cache (n->sk, family, 0, &routes);

  if (r < 0)
    return nl_fail (n, "list routes", r);
  for (struct nl_object *o = nl_cache_get_first (routes); o; o = nl_cache_get_next (o))
    {
      struct rtnl_route *rt = (struct rtnl_route *) o;
      if (rtnl_route_get_table (rt) != RT_TABLE_MAIN)
        continue;
      r = rtnl_route_delete (n->sk, rt, 0);
      if (r < 0 && r != -NLE_OBJ_NOTFOUND)
        {
          nl_cache_free (routes);
          return nl_fail (n, "delete route", r);
        }
    }
  nl_cache_free (routes);
  return 0;
}

static int
add_route (struct nl *n, const Types__Route *want)
{
  int family = family_of (want->family);
  struct rtnl_route *rt = rtnl_route_alloc ();
  struct rtnl_nexthop *nh = rtnl_route_nh_alloc ();
  struct nl_addr *dst = NULL, *gw = NULL, *src = NULL;
  int ifindex = link_index (n, want->device), r = -1;

  if (ifindex <= 0)
    goto out;
  if (want->dest[0] == '\0')
    r = nl_addr_parse (family == AF_INET ? "0.0.0.0/0" : "::/0", family, &dst);
  else
    {
      char *slash = strchr (want->dest, '/');
      char *ip = xstrndup (want->dest, slash ? (size_t) (slash - want->dest) : strlen (want->dest));
      r = parse_ip (n, ip, slash ? slash + 1 : NULL, family, &dst);
      free (ip);
    }
  if (r < 0 || (want->gateway[0] && parse_ip (n, want->gateway, NULL, family, &gw) < 0)
      || (want->source[0] && parse_ip (n, want->source, NULL, family, &src) < 0))
    {
      r = -1;
      goto out;
    }
  rtnl_route_set_family (rt, (uint8_t) family);
  rtnl_route_set_table (rt, RT_TABLE_MAIN);
  rtnl_route_set_protocol (rt, RTPROT_BOOT);
  rtnl_route_set_type (rt, RTN_UNICAST);
  rtnl_route_set_scope (rt, (uint8_t) want->scope);
  rtnl_route_set_dst (rt, dst);
  if (src)
    rtnl_route_set_pref_src (rt, src);
  if (want->mtu)
    rtnl_route_set_metric (rt, RTAX_MTU, want->mtu);
  rtnl_route_nh_set_ifindex (nh, ifindex);
  if (gw)
    rtnl_route_nh_set_gateway (nh, gw);
  rtnl_route_add_nexthop (rt, nh);
  nh = NULL; /* owned by the route now */
  r = rtnl_route_add (n->sk, rt, NLM_F_EXCL);
  if (r < 0)
    r = nl_fail (n, want->dest[0] ? want->dest : "default route", r);
out:
  if (nh)
    rtnl_route_nh_free (nh);
  rtnl_route_put (rt);
  nl_addr_put (dst);
  nl_addr_put (gw);
  nl_addr_put (src);
  return r < 0 ? -1 : 0;
}

static int
job_update_routes (struct nl *n, const void *arg)
{
  const struct list_arg *l = arg;
  bool v6 = false;

  for (size_t i = 0; i < l->n; i++)
    if (((const Types__Route *) l->items[i])->family == TYPES__IPFAMILY__v6)
      v6 = true;
  if (flush_main_table (n, AF_INET) < 0 || (v6 && flush_main_table (n, AF_INET6) < 0))
    return -1;
  for (size_t i = 0; i < l->n; i++)
    if (add_route (n, l->items[i]) < 0)
      return -1;
  return 0;
}

int
sim_net_update_routes (struct sim_agent *a, Types__Route *const *routes, size_t n,
                       char **errmsg)
{
  struct list_arg l = { (const void *const *) routes, n };
  return run_in_guest (a, job_update_routes, &l, errmsg);
}

static int
add_neighbor (struct nl *n, const Types__ARPNeighbor *want)
{
  struct rtnl_neigh *ne;
  struct nl_addr *dst = NULL, *ll = NULL;
  int ifindex, r;

  if (want->toipaddress == NULL)
    return free (n->err), n->err = xstrdup ("neighbour without an IP address"), -1;
  ifindex = link_index (n, want->device);
  if (ifindex <= 0
      || parse_ip (n, want->toipaddress->address, NULL, family_of (want->toipaddress->family),
                   &dst)
             < 0)
    return -1;
  if (want->lladdr[0] && (r = nl_addr_parse (want->lladdr, AF_LLC, &ll)) < 0)
    {
      nl_addr_put (dst);
      return nl_fail (n, want->lladdr, r);
    }
  ne = rtnl_neigh_alloc ();
  rtnl_neigh_set_ifindex (ne, ifindex);
  rtnl_neigh_set_dst (ne, dst);
  if (ll)
    rtnl_neigh_set_lladdr (ne, ll);
  rtnl_neigh_set_state (ne, want->state);
  if (want->flags)
    rtnl_neigh_set_flags (ne, (unsigned int) want->flags);
  r = rtnl_neigh_add (n->sk, ne, NLM_F_CREATE | NLM_F_REPLACE);
  rtnl_neigh_put (ne);
  nl_addr_put (dst);
  nl_addr_put (ll);
  return r < 0 ? nl_fail (n, want->toipaddress->address, r) : 0;
}

static int
job_add_neighbors (struct nl *n, const void *arg)
{
  const struct list_arg *l = arg;
  for (size_t i = 0; i < l->n; i++)
    if (add_neighbor (n, l->items[i]) < 0)
      return -1;
  return 0;
}

int
sim_net_add_neighbors (struct sim_agent *a, Types__ARPNeighbor *const *neigh, size_t n,
                       char **errmsg)
{
  struct list_arg l = { (const void *const *) neigh, n };
  return run_in_guest (a, job_add_neighbors, &l, errmsg);
}
