/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest side of an activation (guest.h; docs/architecture.md, "The
 * three RPCs"; docs/kata-agent.md): wait for the vsock socket, dial the
 * kata agent, create the sandbox, configure the guest network, create and
 * start the containers (Run), forward their logs, and probe readiness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "actor/guest.h"
#include "actor/model.h"
#include "actor/timing.h"
#include "kata/agent.h"
#include "kata/logpump.h"
#include "kata/spec.h"
#include "net/net.h"
#include "util/cancel.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/http.h"
#include "util/json.h"
#include "util/log.h"
#include "util/util.h"

#define SERIAL_TAIL 3000
/* Between agent dial attempts.  The reference waits 500 ms, which a Run
 * pays in full when the agent comes up just after an attempt; a failed
 * CONNECT costs one unix-socket round trip to the VMM. */
#define ACTOR_DIAL_PAUSE_MS 50

static int
wait_for_vsock (struct actor *a, ate_deadline_t deadline, struct ate_error **err)
{
  ate_deadline_t d = ate_deadline_min (deadline, ate_deadline_in_ms (ACTOR_VSOCK_WAIT_MS));
  while (access (a->vsock, F_OK) < 0)
    if (!ate_sleep_ms_until (50, d))
      return ate_error_make (err, ETIMEDOUT, "vsock socket `%s` did not appear", a->vsock);
  return 0;
}

/* The last bytes of the serial console: the first thing to read when a
 * guest does not come up. */
static void
log_serial_tail (const struct actor *a)
{
  cleanup_free char *buf = NULL;
  size_t len = 0;
  if (ate_read_file (a->serial, 64u << 20, &buf, &len, NULL) < 0)
    return;
  const char *tail = len > SERIAL_TAIL ? buf + len - SERIAL_TAIL : buf;
  ate_log (ATE_LOG_WARN, "guest serial console (tail)", "actor_id", a->id, "serial", tail, NULL);
}

static int
dial_agent (struct actor *a, int64_t budget_ms, struct actor_timing *t, ate_deadline_t deadline,
            struct ate_error **err)
{
  ate_deadline_t d = ate_deadline_min (deadline, ate_deadline_in_ms (budget_ms));
  return ACTOR_AGENT_CALL (t, kata_agent_connect (a->vsock, ACTOR_AGENT_PORT, d, KATA_DIAL_ATTEMPT_MS,
                                            ACTOR_DIAL_PAUSE_MS, &a->agent, err));
}

/* Diagnostics through the debug console (only enabled with --kata-debug). */
static void
debug_dump (const struct actor_env *env, struct actor *a, const char *what, const char *cmd)
{
  if (!env->cfg.kata_debug)
    return;
  cleanup_free char *out = kata_debug_console_dump (a->vsock, cmd, ate_deadline_in_ms (8000));
  ate_log (ATE_LOG_WARN, what, "actor_id", a->id, "output", out, NULL);
}

static int
start_container (const struct actor_env *env, struct actor *a, size_t i, struct actor_timing *t,
                 ate_deadline_t deadline, struct ate_error **err)
{
  struct actor_ctr *c = &a->ctrs[i];
  cleanup_free char *root = xasprintf ("/run/kata-containers/%s/rootfs", c->kata_id);
  Grpc__Spec *agent_spec = NULL;
  ate_deadline_t d = ate_deadline_min (deadline, ate_deadline_in_ms (ACTOR_CONTAINER_MS));
  int r;

  if (kata_spec_to_agent (c->spec, root, false, &agent_spec, err) < 0)
    return ate_error_wrap (err, "container %s", c->name);
  r = ACTOR_AGENT_CALL (t, kata_agent_create_container_blk (a->agent, c->kata_id, c->kata_id,
                                                      c->guest_dev, agent_spec, d, err));
  if (r == 0)
    r = ACTOR_AGENT_CALL (t, kata_agent_start_container (a->agent, c->kata_id, d, err));
  kata_spec_agent_free (agent_spec);
  if (r < 0)
    {
      debug_dump (env, a, "container start failed: guest state",
                  "echo '== /dev/vdb =='; ls -l /dev/vd* 2>&1; blkid /dev/vd* 2>&1; "
                  "echo '== mounts =='; grep kata /proc/mounts 2>&1");
      return ate_error_wrap (err, "start container %s on %s", c->name, c->guest_dev);
    }
  return 0;
}

static int
start_log_pumps (const struct actor_env *env, struct actor *a, struct ate_error **err)
{
  a->pumps = xcalloc (a->n_ctrs * 2, sizeof (*a->pumps));
  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      struct actorlog_labels labels;
      actor_labels (env, a, &labels);
      labels.container_name = a->ctrs[i].name;
      for (int s = 0; s < 2; s++)
        {
          if (kata_log_pump_start (a->agent, a->ctrs[i].kata_id, a->ctrs[i].kata_id,
                                   s ? KATA_STREAM_STDERR : KATA_STREAM_STDOUT, &labels,
                                   &a->pumps[a->n_pumps], err)
              < 0)
            return ate_error_wrap (err, "start log forwarding for %s", a->ctrs[i].name);
          a->n_pumps++;
        }
    }
  return 0;
}

void
actor_guest_disconnect (struct actor *a)
{
  if (a->agent)
    kata_agent_close (a->agent);
}

void
actor_guest_release (struct actor *a)
{
  actor_guest_disconnect (a);
  for (size_t i = 0; i < a->n_pumps; i++)
    kata_log_pump_stop_join (a->pumps[i]);
  free (a->pumps);
  a->pumps = NULL;
  a->n_pumps = 0;
  kata_agent_free (a->agent);
  a->agent = NULL;
}

int
actor_guest_start (const struct actor_env *env, struct actor *a, struct actor_timing *t,
                   ate_deadline_t deadline, struct ate_error **err)
{
  unsigned int mtu = 0;
  struct ate_error *mtu_err = NULL;
  int64_t mark = ate_now_ns ();

  if (wait_for_vsock (a, deadline, err) < 0
      || dial_agent (a, KATA_DIAL_RUN_MS, t, deadline, err) < 0)
    {
      log_serial_tail (a);
      return ate_error_wrap (err, "connect to the kata agent");
    }
  actor_timing_step (t, "agent_dial", &mark);
  if (ACTOR_AGENT_CALL (t, kata_agent_create_sandbox (
                         a->agent, ate_json_get_string (a->ctrs[0].spec, "hostname") ?: "", a->id,
                         ate_deadline_min (deadline, ate_deadline_in_ms (ACTOR_SANDBOX_MS)), err))
      < 0)
    return ate_error_wrap (err, "CreateSandbox");
  if (net_interior_mtu (env->net, &mtu, &mtu_err) < 0)
    ate_error_log_warning_and_release (&mtu_err, "interior eth0 MTU unreadable, using 1500");
  if (ACTOR_AGENT_CALL (t, kata_agent_configure_guest_network (
                         a->agent, mtu, ate_deadline_min (deadline, ate_deadline_in_ms (ACTOR_GUEST_NET_MS)),
                         err))
      < 0)
    {
      debug_dump (env, a, "guest network failed: guest state",
                  "ip addr 2>&1; echo '== route =='; ip route 2>&1; echo '== neigh =='; ip neigh 2>&1");
      return ate_error_wrap (err, "configure the guest network");
    }
  actor_timing_step (t, "sandbox_network", &mark);
  for (size_t i = 0; i < a->n_ctrs; i++)
    if (start_container (env, a, i, t, deadline, err) < 0)
      return -1;
  actor_timing_step (t, "containers", &mark);
  return start_log_pumps (env, a, err);
}

void
actor_guest_reconnect (const struct actor_env *env, struct actor *a, struct actor_timing *t,
                       ate_deadline_t deadline)
{
  cleanup_error struct ate_error *err = NULL;
  int64_t mark = ate_now_ns ();

  if (dial_agent (a, KATA_DIAL_RESTORE_MS, t, deadline, &err) < 0)
    {
      ate_log (ATE_LOG_WARN, "kata agent not reachable after restore: no log forwarding",
               "actor_id", a->id, "error", err->msg, NULL);
      return;
    }
  if (t)
    actor_timing_step (t, "agent_dial", &mark);
  if (start_log_pumps (env, a, &err) < 0)
    {
      ate_log (ATE_LOG_WARN, "log forwarding not started", "actor_id", a->id, "error", err->msg,
               NULL);
      actor_guest_release (a);
    }
}

/* ---- readiness (docs/api.md, "Readiness probes") ----
 *
 * As the reference: every container with a probe is polled on its own
 * thread with its own 30 s budget (ACTOR_READYZ_MS), one GET of at most
 * 250 ms per attempt through Go's redirect rules, 1 ms apart, until the
 * final answer is 200; the first probe that gives up stops the others. */

struct probe
{
  const struct actor_ctr *c;
  char *url;
  ate_deadline_t deadline;
  const struct ate_cancel *cancel;
  atomic_bool *stop; /* shared: a probe failed */
  pthread_t thread;
  bool started;
  bool ready;
  unsigned attempts;
  char *last; /* the last answer or error */
};

static void *
probe_main (void *arg)
{
  struct probe *p = arg;

  for (;;)
    {
      struct ate_error *err = NULL;
      long code = 0;

      p->attempts++;
      if (ate_http_get_follow (p->url,
                               ate_deadline_min (p->deadline,
                                                 ate_deadline_in_ms (ACTOR_READYZ_ATTEMPT_MS)),
                               &code, &err)
          < 0)
        {
          /* An attempt the budget cut short says less than the one
           * before it. */
          if (p->last == NULL || !ate_deadline_expired (p->deadline))
            {
              free (p->last);
              p->last = xstrdup (err->msg);
            }
        }
      else if (code != 200)
        {
          free (p->last);
          p->last = xasprintf ("HTTP %ld", code);
        }
      ate_error_release (&err);
      if (code == 200)
        {
          p->ready = true;
          return NULL;
        }
      if (atomic_load (p->stop) || ate_cancel_raised (p->cancel)
          || !ate_sleep_ms_until (1, p->deadline))
        break;
    }
  atomic_store (p->stop, true);
  return NULL;
}

int
actor_guest_readyz (struct actor *a, struct actor_timing *t, ate_deadline_t deadline,
                    struct ate_error **err)
{
  cleanup_free struct probe *probes = xcalloc (a->n_ctrs ? a->n_ctrs : 1, sizeof (*probes));
  atomic_bool stop = false;
  int64_t mark = ate_now_ns ();
  struct probe *failed = NULL;
  bool any = false;
  int r = 0;

  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      struct probe *p = &probes[i];
      const struct actor_ctr *c = &a->ctrs[i];
      const char *path = c->readyz_path && *c->readyz_path ? c->readyz_path : "/readyz";

      if (c->readyz_port == 0)
        continue;
      any = true;
      p->c = c;
      p->url = xasprintf ("http://%s:%d%s%s", NET_ACTOR_IP, (int) c->readyz_port,
                          path[0] == '/' ? "" : "/", path);
      p->deadline = ate_deadline_min (deadline, ate_deadline_in_ms (ACTOR_READYZ_MS));
      p->cancel = a->cancel;
      p->stop = &stop;
      p->started = pthread_create (&p->thread, NULL, probe_main, p) == 0;
      if (!p->started)
        probe_main (p); /* no thread: probe here */
    }
  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      struct probe *p = &probes[i];
      if (p->started)
        pthread_join (p->thread, NULL);
      if (p->c && !p->ready && failed == NULL)
        failed = p;
    }
  /* The flag is raised too when the deadline passes: that is the
   * "not ready" below. */
  if (ate_cancel_raised (a->cancel) && failed && !ate_deadline_expired (deadline))
    r = ate_error_make_code (err, ATE_CODE_CANCELLED, 0,
                             "cancelled by the caller while waiting for container %s to be "
                             "ready",
                             failed->c->name);
  else if (failed)
    r = ate_error_make_code (err, ATE_CODE_DEADLINE_EXCEEDED, 0,
                             "container %s not ready: GET %s: %u attempts, last: %s",
                             failed->c->name, failed->url, failed->attempts,
                             failed->last ? failed->last : "none");
  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      free (probes[i].url);
      free (probes[i].last);
    }
  if (r == 0 && any)
    actor_timing_step (t, "readyz", &mark);
  return r;
}
