/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor runtime: RunWorkload, CheckpointWorkload and RestoreWorkload as
 * the server's handlers call them, already decoded and validated.  The top
 * of the actor layers (docs/architecture.md, "Layers").
 */
#ifndef ATE_ACTOR_H
#define ATE_ACTOR_H

#include "actor/types.h"
#include "util/time.h"

struct ate_error;
struct actor_runtime;

int actor_runtime_new (const struct actor_runtime_config *cfg,
                       struct actor_runtime **out, struct ate_error **err);
void actor_runtime_free (struct actor_runtime *rt);

int actor_run (struct actor_runtime *rt, const struct actor_request *req,
               ate_deadline_t deadline, struct ate_error **err);

/* On success *files is a NULL-terminated vector of relative names
 * (strv_free). */
int actor_checkpoint (struct actor_runtime *rt, const struct actor_request *req,
                      ate_deadline_t deadline, char ***files, struct ate_error **err);

int actor_restore (struct actor_runtime *rt, const struct actor_request *req,
                   ate_deadline_t deadline, struct ate_error **err);

#endif
