/* SPDX-License-Identifier: Apache-2.0 */
/* Per-RPC step timings (timing.h). */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <string.h>

#include "actor/model.h"
#include "actor/timing.h"
#include "util/json.h"
#include "util/killpoint.h"
#include "util/log.h"
#include "util/util.h"

void
actor_timing_init (struct actor_timing *t, const char *rpc)
{
  memset (t, 0, sizeof (*t));
  t->rpc = rpc;
  t->start_ns = ate_now_ns ();
  t->steps = json_object_new_object ();
  ate_killpoint (rpc, "start");
}

void
actor_timing_step (struct actor_timing *t, const char *step, int64_t *mark)
{
  int64_t now = ate_now_ns ();
  if (t == NULL)
    return;
  cleanup_free char *key = xasprintf ("%s_ms", step);
  json_object_object_add (t->steps, key, ate_json_new_ms ((double) (now - *mark) / 1e6));
  *mark = now;
  ate_killpoint (t->rpc, step);
}

void
actor_timing_add (struct actor_timing *t, const char *step, int64_t ns)
{
  if (t == NULL)
    return;
  cleanup_free char *key = xasprintf ("%s_ms", step);
  json_object_object_add (t->steps, key, ate_json_new_ms ((double) ns / 1e6));
  ate_killpoint (t->rpc, step);
}

void
actor_timing_log (struct actor_timing *t, const struct actor *a, const char *msg)
{
  double total = (double) (ate_now_ns () - t->start_ns) / 1e6;
  double vmm = (double) t->vmm_ns / 1e6, agent = (double) t->agent_ns / 1e6;
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "actor_id", json_object_new_string (a->id));
  json_object_object_add (o, "total_ms", ate_json_new_ms (total));
  json_object_object_add (o, "vmm_wait_ms", ate_json_new_ms (vmm));
  json_object_object_add (o, "agent_wait_ms", ate_json_new_ms (agent));
  json_object_object_add (o, "own_ms", ate_json_new_ms (total - vmm - agent));
  json_object_object_add (o, "steps", json_object_get (t->steps));
  ate_log_obj (ATE_LOG_INFO, msg, o);
}

void
actor_timing_release (struct actor_timing *t)
{
  json_object_put (t->steps);
  t->steps = NULL;
}
