/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest side of an activation, through the kata agent; middle of the
 * actor layers (docs/architecture.md, "Layers"): it uses the actor model and
 * the runtime modules only, never the vm, disk or network job layers.
 *
 * The guest layer is the one owner of the agent connection and the log
 * pumps (a->agent, a->pumps): it opens them (start, reconnect), closes the
 * connection (disconnect) and frees them (release).  Agent calls are timed
 * into t->agent_ns (t may be NULL).
 */
#ifndef ATE_ACTOR_GUEST_H
#define ATE_ACTOR_GUEST_H

#include "util/time.h"

struct actor;
struct actor_env;
struct actor_timing;
struct ate_error;

/* Run: wait for the vsock socket, dial the agent, CreateSandbox, the guest
 * network, CreateContainer + StartContainer per container, two log pumps
 * per container. */
int actor_guest_start (const struct actor_env *env, struct actor *a, struct actor_timing *t,
                       ate_deadline_t deadline, struct ate_error **err);
/* Best effort after a restore or a server restart: dial the agent (15 s or
 * the deadline) and start the log pumps.  Failures are logged. */
void actor_guest_reconnect (const struct actor_env *env, struct actor *a, struct actor_timing *t,
                            ate_deadline_t deadline);
/* Every container's readiness probe answers 200, following redirects as
 * Go's client; the probes run concurrently, each with its own 30 s budget
 * (DEADLINE_EXCEEDED otherwise, naming the container and the last answer;
 * CANCELLED when the call's cancel flag is raised). */
int actor_guest_readyz (struct actor *a, struct actor_timing *t, ate_deadline_t deadline,
                        struct ate_error **err);
/* Close the agent connection: the log pumps' reads fail and they end.
 * Idempotent; the handles stay until actor_guest_release. */
void actor_guest_disconnect (struct actor *a);
/* Disconnect, join the log pumps and free them and the agent handle. */
void actor_guest_release (struct actor *a);

#endif
