/* SPDX-License-Identifier: Apache-2.0 */
/* The ateom.Ateom and grpc.health.v1.Health handlers. */
#ifndef ATE_SERVER_SERVICE_H
#define ATE_SERVER_SERVICE_H

#include <stddef.h>

#include "rpc.h"

struct actor_runtime;
struct ate_paths;
struct service;

/* paths (copied; its strings must outlive svc) are the runtime's, so the
 * messages callers get can be stripped of host paths. */
struct service *service_new (struct actor_runtime *rt, const struct ate_paths *paths);
void service_free (struct service *svc);

/* The method table to pass to rpc_server_start (valid while svc lives). */
const struct rpc_method *service_methods (struct service *svc, size_t *n);

#endif
