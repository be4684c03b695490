/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tc cross-connect kata's "tcfilter" network model builds between a
 * container interface and a tap: an ingress qdisc on each side and a
 * match-all u32 filter whose mirred action redirects every frame to the
 * other side's egress.  (This kernel has no matchall classifier; u32 with
 * one key of mask 0 matches everything.)
 */
#ifndef ATE_NET_TC_H
#define ATE_NET_TC_H

struct ate_error;
struct nl_sock;

#define NET_TC_PRIO 1
#define NET_TC_CLASSID_MAJ 1
#define NET_TC_CLASSID_MIN 1

/* `tc qdisc replace dev <ifindex> ingress` (filters already there stay). */
int net_tc_ingress_replace (struct nl_sock *sk, int ifindex,
                            struct ate_error **err);

/* `tc qdisc del dev <ifindex> ingress` (and with it every ingress filter);
 * a missing qdisc is success. */
int net_tc_ingress_delete (struct nl_sock *sk, int ifindex,
                           struct ate_error **err);

/* `tc filter add dev <from> parent ffff: protocol all prio 1 u32 match u32
 * 0 0 classid 1:1 action mirred egress redirect dev <to>` */
int net_tc_redirect_add (struct nl_sock *sk, int from_ifindex, int to_ifindex,
                         struct ate_error **err);

/* Remove the ingress filters of ifindex whose mirred action redirects to
 * target_ifindex or to a device that no longer exists (the kernel reports
 * those as ifindex 0).  *kept (may be NULL) counts the redirects left. */
int net_tc_prune_redirects (struct nl_sock *sk, int ifindex,
                            int target_ifindex, unsigned int *kept,
                            struct ate_error **err);

#endif
