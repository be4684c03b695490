/* SPDX-License-Identifier: Apache-2.0 */
/* The actor network built and removed in the background (netjob.h). */
#define _GNU_SOURCE
#include <string.h>

#include "actor/netjob.h"
#include "actor/timing.h"
#include "net/net.h"
#include "util/error.h"
#include "util/util.h"

static void *
netjob_main (void *arg)
{
  struct actor_netjob *j = arg;
  int64_t t0 = ate_now_ns ();
  /* Every guest has the reference's MTU, whatever the pod's: snapshots
   * then restore on any pod (docs/operations.md, "Mixed fleets"). */
  j->r = net_actor_setup_mtu (j->net, NET_GUEST_MTU, &j->info, &j->err);
  j->ns = ate_now_ns () - t0;
  return NULL;
}

void
actor_netjob_start (struct actor_netjob *j, struct net_ctx *net,
                    struct actor_netjob_cleanup *cleanup)
{
  actor_netjob_cleanup_join (cleanup);
  memset (j, 0, sizeof (*j));
  j->net = net;
  if (pthread_create (&j->thread, NULL, netjob_main, j) == 0)
    j->started = true;
  else
    netjob_main (j); /* no thread: do it here */
}

int
actor_netjob_join (struct actor_netjob *j, struct actor_timing *t, struct ate_error **err)
{
  if (j->started)
    pthread_join (j->thread, NULL);
  j->started = false;
  actor_timing_add (t, "network", j->ns);
  if (j->r < 0)
    {
      ate_error_collect (err, &j->err, "network setup");
      return -1;
    }
  return 0;
}

static void *
net_cleanup_main (void *arg)
{
  struct actor_netjob_cleanup *c = arg;
  cleanup_error struct ate_error *err = NULL;
  if (net_actor_cleanup (c->net, &err) < 0)
    ate_error_log_warning_and_release (&err, "network cleanup after checkpoint");
  return NULL;
}

void
actor_netjob_cleanup_start (struct actor_netjob_cleanup *c, struct net_ctx *net)
{
  c->net = net;
  if (pthread_create (&c->thread, NULL, net_cleanup_main, c) == 0)
    c->pending = true;
  else
    net_cleanup_main (c);
}

void
actor_netjob_cleanup_join (struct actor_netjob_cleanup *c)
{
  if (!c->pending)
    return;
  pthread_join (c->thread, NULL);
  c->pending = false;
}
