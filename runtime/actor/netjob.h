/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor network built and removed in the background; middle of the
 * actor layers (docs/architecture.md, "Layers"): it uses the timing type
 * and runtime/net only.
 *
 * The veth pair and the nftables table do not depend on the disks or the
 * VMM, and their kernel work (an RCU grace period per nftables commit) is
 * most of an activation's own time: they are built on a thread while the
 * disks are prepared and cloud-hypervisor starts, and joined before the
 * first tap is needed.  After a checkpoint the network is removed on a
 * thread too (deleting the veth pair waits for RCU grace periods, which
 * the RPC would otherwise pay before it answers); the next activation and
 * shutdown join it first.
 */
#ifndef ATE_ACTOR_NETJOB_H
#define ATE_ACTOR_NETJOB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"

struct actor_timing;
struct ate_error;

/* A network cleanup left running in the background. */
struct actor_netjob_cleanup
{
  struct net_ctx *net;
  pthread_t thread;
  bool pending;
};

struct actor_netjob
{
  struct net_ctx *net;
  pthread_t thread;
  bool started;
  int r;
  int64_t ns;
  struct net_actor_info info;
  struct ate_error *err;
};

/* Wait for the background cleanup (if any), then build the actor network
 * on a thread (here when no thread can be made). */
void actor_netjob_start (struct actor_netjob *j, struct net_ctx *net,
                         struct actor_netjob_cleanup *cleanup);
/* Wait for the setup and record "network_ms" in t (may be NULL).  < 0 when
 * it failed (it removed what it built); err may be NULL. */
int actor_netjob_join (struct actor_netjob *j, struct actor_timing *t, struct ate_error **err);

/* Remove the actor network on a thread (here when no thread can be made);
 * failures are logged. */
void actor_netjob_cleanup_start (struct actor_netjob_cleanup *c, struct net_ctx *net);
void actor_netjob_cleanup_join (struct actor_netjob_cleanup *c);

#endif
