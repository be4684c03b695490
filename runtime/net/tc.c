/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "net/tc.h"

#include <errno.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/tc.h>
#include <string.h>

#include "net/nl.h"
#include "util/error.h"
#include "util/util.h"

#define NET_TC_HANDLE(maj, min) (TC_H_MAJ ((uint32_t) (maj) << 16) | TC_H_MIN (min))
#define NET_TC_INGRESS_HANDLE NET_TC_HANDLE (0xffff, 0)

static inline void
cleanup_qdisc_fn (struct rtnl_qdisc **q)
{
  if (*q)
    rtnl_qdisc_put (*q);
}
static inline void
cleanup_cls_fn (struct rtnl_cls **c)
{
  if (*c)
    rtnl_cls_put (*c);
}
static inline void
cleanup_act_fn (struct rtnl_act **a)
{
  if (*a)
    rtnl_act_put (*a);
}
static inline void
cleanup_cache_fn (struct nl_cache **c)
{
  if (*c)
    nl_cache_free (*c);
}
#define cleanup_qdisc __attribute__ ((cleanup (cleanup_qdisc_fn)))
#define cleanup_cls __attribute__ ((cleanup (cleanup_cls_fn)))
#define cleanup_act __attribute__ ((cleanup (cleanup_act_fn)))
#define cleanup_cache __attribute__ ((cleanup (cleanup_cache_fn)))

static struct rtnl_qdisc *
ingress_qdisc_new (int ifindex)
{
  struct rtnl_qdisc *q = rtnl_qdisc_alloc ();

  if (q == NULL)
    ate_oom ();
  rtnl_tc_set_ifindex (TC_CAST (q), ifindex);
  rtnl_tc_set_parent (TC_CAST (q), TC_H_INGRESS);
  rtnl_tc_set_handle (TC_CAST (q), NET_TC_INGRESS_HANDLE);
  if (rtnl_tc_set_kind (TC_CAST (q), "ingress") < 0)
    abort (); /* a fresh object always takes a kind */
  return q;
}

int
net_tc_ingress_replace (struct nl_sock *sk, int ifindex, struct ate_error **err)
{
  cleanup_qdisc struct rtnl_qdisc *q = ingress_qdisc_new (ifindex);
  int r;

  r = rtnl_qdisc_add (sk, q, NLM_F_CREATE | NLM_F_REPLACE);
  if (r < 0)
    return net_nl_error (err, r, "replace ingress qdisc on link %d", ifindex);
  return 0;
}

int
net_tc_ingress_delete (struct nl_sock *sk, int ifindex, struct ate_error **err)
{
  cleanup_qdisc struct rtnl_qdisc *q = ingress_qdisc_new (ifindex);
  int r;

  r = rtnl_qdisc_delete (sk, q);
  /* No qdisc (EINVAL from the kernel) or no device: nothing to remove. */
  if (r == -NLE_INVAL || r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
    return 0;
  if (r < 0)
    return net_nl_error (err, r, "delete ingress qdisc on link %d", ifindex);
  return 0;
}

int
net_tc_redirect_add (struct nl_sock *sk, int from_ifindex, int to_ifindex,
                     struct ate_error **err)
{
  cleanup_cls struct rtnl_cls *cls = rtnl_cls_alloc ();
  cleanup_act struct rtnl_act *act = rtnl_act_alloc ();
  int r;

  if (cls == NULL || act == NULL)
    ate_oom ();
  rtnl_tc_set_ifindex (TC_CAST (cls), from_ifindex);
  rtnl_tc_set_parent (TC_CAST (cls), NET_TC_INGRESS_HANDLE);
  if (rtnl_tc_set_kind (TC_CAST (cls), "u32") < 0
      || rtnl_tc_set_kind (TC_CAST (act), "mirred") < 0)
    abort (); /* fresh objects always take a kind */
  rtnl_cls_set_prio (cls, NET_TC_PRIO);
  rtnl_cls_set_protocol (cls, ETH_P_ALL);

  /* One key, value 0 under mask 0 at offset 0: matches every frame.
   * Terminal: no later filter is consulted. */
  if ((r = rtnl_u32_add_key_uint32 (cls, 0, 0, 0, 0)) < 0
      || (r = rtnl_u32_set_cls_terminal (cls)) < 0
      || (r = rtnl_u32_set_classid (cls, NET_TC_HANDLE (NET_TC_CLASSID_MAJ,
                                                        NET_TC_CLASSID_MIN)))
             < 0)
    return net_nl_error (err, r, "build u32 match-all selector");

  /* The frame leaves through the peer's egress and is consumed here
   * (TC_ACT_STOLEN), so the stack of this side never sees it. */
  if ((r = rtnl_mirred_set_action (act, TCA_EGRESS_REDIR)) < 0
      || (r = rtnl_mirred_set_policy (act, TC_ACT_STOLEN)) < 0
      || (r = rtnl_mirred_set_ifindex (act, (uint32_t) to_ifindex)) < 0
      || (r = rtnl_u32_add_action (cls, act)) < 0)
    return net_nl_error (err, r, "build mirred redirect action");

  r = rtnl_cls_add (sk, cls, NLM_F_CREATE | NLM_F_EXCL);
  if (r < 0)
    return net_nl_error (err, r, "add u32 mirred redirect from link %d to %d",
                         from_ifindex, to_ifindex);
  return 0;
}

/* The mirred target of a u32 filter, or -1 when it has none. */
static int
cls_redirect_target (struct rtnl_cls *cls)
{
  const char *kind = rtnl_tc_get_kind (TC_CAST (cls));
  struct rtnl_act *act;

  if (kind == NULL || strcmp (kind, "u32") != 0)
    return -1;
  for (act = rtnl_u32_get_action (cls); act; act = rtnl_act_next (act))
    {
      const char *akind = rtnl_tc_get_kind (TC_CAST (act));
      if (akind && strcmp (akind, "mirred") == 0)
        return (int) rtnl_mirred_get_ifindex (act);
    }
  return -1;
}

int
net_tc_prune_redirects (struct nl_sock *sk, int ifindex, int target_ifindex,
                        unsigned int *kept, struct ate_error **err)
{
  cleanup_cache struct nl_cache *cache = NULL;
  struct nl_object *o;
  unsigned int n = 0;
  int r;

  if (kept)
    *kept = 0;
  r = rtnl_cls_alloc_cache (sk, ifindex, NET_TC_INGRESS_HANDLE, &cache);
  /* No ingress qdisc: no filters. */
  if (r == -NLE_INVAL || r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV)
    return 0;
  if (r < 0)
    return net_nl_error (err, r, "list ingress filters of link %d", ifindex);
  for (o = nl_cache_get_first (cache); o; o = nl_cache_get_next (o))
    {
      struct rtnl_cls *cls = (struct rtnl_cls *) o;
      int target = cls_redirect_target (cls);

      if (target < 0)
        continue;
      if (target != 0 && target != target_ifindex)
        {
          n++;
          continue;
        }
      r = rtnl_cls_delete (sk, cls, 0);
      if (r < 0)
        return net_nl_error (err, r, "delete stale redirect filter of link %d",
                             ifindex);
    }
  if (kept)
    *kept = n;
  return 0;
}
