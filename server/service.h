/* SPDX-License-Identifier: Apache-2.0 */
/* The ateom.Ateom and grpc.health.v1.Health handlers. */
#ifndef ATE_SERVER_SERVICE_H
#define ATE_SERVER_SERVICE_H

#include <stddef.h>

#include "rpc.h"

struct actor_runtime;
struct service;

struct service *service_new (struct actor_runtime *rt);
void service_free (struct service *svc);

/* The method table to pass to rpc_server_start (valid while svc lives). */
const struct rpc_method *service_methods (struct service *svc, size_t *n);

#endif
