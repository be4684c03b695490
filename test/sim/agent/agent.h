/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the simulated kata agent (test/sim/agent): one struct
 * sim_agent per guest boot, ttrpc connections handed over by the core,
 * containers that run for real in the guest's network namespace.
 *
 * Locking: agent->lock protects the persistent state (st), the runtime
 * containers, the connection list and the paused/stopping flags; cond is
 * broadcast whenever any of them changes.  Blocking waits (pipes, pidfds)
 * poll a connection's wake eventfd as well, so closing a connection or
 * stopping the agent always ends them.
 */
#ifndef SIM_AGENT_INTERNAL_H
#define SIM_AGENT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kata/agent.pb-c.h"
#include "kata/types.pb-c.h"
#include "sim_agent.h"
#include "sim_agent_state.pb-c.h"
#include "util/time.h"

struct ate_proc;

/* A running (or created) container. */
struct sim_ctr
{
  char *id;
  char *exec_id;
  bool started;
  bool counter_app;
  struct ate_proc *proc; /* a real process */
  int out_r, err_r;      /* read ends of stdout/stderr (-1 before start) */
  int out_w, err_w;      /* write ends the counter app writes to */
  pthread_mutex_t read_lock[2];
  bool exited;
  int32_t exit_status;
  int refs; /* the agent's list and every request using it */
  /* The counter app's HTTP server: its thread holds a reference and is
   * joined by whoever stopped it, outside the agent lock. */
  pthread_t counter_thread;
  bool counter_running;
  bool stop_requested;
  int counter_stop; /* eventfd, readable once stopped */
  struct sim_ctr *next;
};

struct sim_conn;

struct sim_agent
{
  struct sim_guest_ops ops;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool paused;
  bool stopping;
  char *corrupt; /* the state in guest memory is unusable: why */

  Atesim__State *st; /* persistent state (unpacked, owned) */
  uint64_t generation;
  uint64_t counter; /* the counter app's count */

  struct sim_ctr *ctrs;
  struct sim_conn *conns;

  /* All container processes are forked by this one thread, so that their
   * parent-death signal fires when the VMM process goes, not when a
   * request's thread ends. */
  pthread_t spawner;
  pthread_mutex_t spawn_lock;
  pthread_cond_t spawn_cond;
  struct spawn_job *spawn_queue;
  bool spawner_stop;
};

/* ---- agent.c: state in guest memory ---- */

/* Write st and the header.  Caller holds agent->lock. */
int sim_state_save (struct sim_agent *a, char **errmsg);
/* Bump the counter in guest memory; returns the new count (0 on failure). */
uint64_t sim_state_counter_bump (struct sim_agent *a);
/* Wait while the guest is paused; false when stopping or `closing` says so.
 * Caller holds agent->lock. */
bool sim_wait_running_locked (struct sim_agent *a, const bool *closing);
void sim_agent_logf (struct sim_agent *a, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* ---- server.c: ttrpc connections ---- */

void sim_conns_close_all (struct sim_agent *a);

/* ---- handlers.c: one per method ---- */

/* The outcome of a request: code 0 with resp (owned, may be NULL for
 * Empty), or a status. */
struct sim_reply
{
  int32_t code;
  char *msg;
  ProtobufCMessage *resp;
  bool resp_is_static; /* resp points at a stack/static message */
};

struct sim_call
{
  struct sim_agent *agent;
  const bool *closing; /* the connection is going away */
  int wake_fd;         /* readable when the connection closes */
  ate_deadline_t deadline;
};

typedef void (*sim_handler) (struct sim_call *call, const uint8_t *payload, size_t len,
                             struct sim_reply *reply);

/* NULL when service/method is not served. */
sim_handler sim_handler_find (const char *service, const char *method);

void sim_reply_error (struct sim_reply *r, int32_t code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* ---- netcfg.c: the guest network (in the guest netns) ---- */

int sim_net_update_interface (struct sim_agent *a, const Types__Interface *iface, char **errmsg);
int sim_net_update_routes (struct sim_agent *a, Types__Route *const *routes, size_t n,
                           char **errmsg);
int sim_net_add_neighbors (struct sim_agent *a, Types__ARPNeighbor *const *neigh, size_t n,
                           char **errmsg);

/* ---- process.c: containers ---- */

struct sim_ctr *sim_ctr_find (struct sim_agent *a, const char *id);
/* Keep c alive while the lock is dropped (readers, waiters). */
void sim_ctr_ref (struct sim_ctr *c);
void sim_ctr_unref (struct sim_ctr *c);
/* Start the container of record c (caller holds agent->lock). */
int sim_ctr_start (struct sim_agent *a, const Atesim__Container *c, char **errmsg);
/* Stop and forget every container (caller holds the lock).  Threads that
 * must be joined once the lock is released are added to *joins. */
struct sim_joins
{
  pthread_t *t;
  size_t n;
};
void sim_ctrs_destroy_all (struct sim_agent *a, struct sim_joins *joins);
void sim_joins_run (struct sim_joins *joins);
/* SIGSTOP / SIGCONT every real process. */
void sim_ctrs_signal_all (struct sim_agent *a, int sig);
void sim_spawner_start (struct sim_agent *a);
void sim_spawner_stop (struct sim_agent *a);
/* Collect the exit status when the process has exited (lock held). */
bool sim_ctr_reap_locked (struct sim_ctr *c);

/* ---- counter.c: the built-in counter app ---- */

#define SIM_COUNTER_APP "ate-sim-counter"
bool sim_is_counter_app (const Grpc__Spec *spec);
int sim_counter_start (struct sim_agent *a, struct sim_ctr *c, char **errmsg);

#endif
