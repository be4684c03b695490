/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-RPC step timings, logged with the RPC's "... timings" record
 * (docs/logging.md).  Bottom of the actor layers: the vm, guest and network
 * job layers record into a struct actor_timing the top hands them; every
 * function here accepts a NULL timing (nothing recorded).
 */
#ifndef ATE_ACTOR_TIMING_H
#define ATE_ACTOR_TIMING_H

#include <stdint.h>

#include "util/time.h"

struct actor;
struct json_object;

struct actor_timing
{
  const char *rpc;   /* "RunWorkload", ...: scope of the step names */
  int64_t start_ns;
  int64_t vmm_ns;    /* waiting on cloud-hypervisor */
  int64_t agent_ns;  /* waiting on the kata agent */
  struct json_object *steps;
};

/* Time a call to cloud-hypervisor (t->vmm_ns) or the kata agent
 * (t->agent_ns); evaluates to the call's int result. */
#define ACTOR_TIMED(t, field, expr)                                                            \
  ({                                                                                           \
    int64_t _t0 = ate_now_ns ();                                                               \
    int _r = (expr);                                                                           \
    if (t)                                                                                     \
      (t)->field += ate_now_ns () - _t0;                                                       \
    _r;                                                                                        \
  })
#define ACTOR_VMM_CALL(t, expr) ACTOR_TIMED (t, vmm_ns, expr)
#define ACTOR_AGENT_CALL(t, expr) ACTOR_TIMED (t, agent_ns, expr)

/* Every recorded step (and "start") is also a test kill point
 * "<rpc>/<step>" (util/killpoint.h): the crash-recovery test kills the
 * server at each of them. */
void actor_timing_init (struct actor_timing *t, const char *rpc);
/* Record "<step>_ms" = now - *mark and move *mark to now. */
void actor_timing_step (struct actor_timing *t, const char *step, int64_t *mark);
/* Record "<step>_ms" = ns (a step timed elsewhere, e.g. on a thread). */
void actor_timing_add (struct actor_timing *t, const char *step, int64_t ns);
void actor_timing_log (struct actor_timing *t, const struct actor *a, const char *msg);
void actor_timing_release (struct actor_timing *t);

#endif
