/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Run/Checkpoint/Restore orchestration.  The modules it drives
 * (cloud-hypervisor, kata agent, rootfs, network) are wired in by the
 * end-to-end work; until then every RPC answers UNIMPLEMENTED with a message
 * that says so — never a fake success.
 */
#define _GNU_SOURCE
#include "actor.h"

#include <string.h>

#include "util/error.h"
#include "util/util.h"

struct actor_runtime
{
  struct actor_runtime_config cfg;
};

int
actor_runtime_new (const struct actor_runtime_config *cfg, struct actor_runtime **out,
                   struct ate_error **err)
{
  (void) err;
  struct actor_runtime *rt = xmalloc0 (sizeof (*rt));
  rt->cfg = *cfg;
  *out = rt;
  return 0;
}

void
actor_runtime_free (struct actor_runtime *rt)
{
  free (rt);
}

const char *
actor_request_asset (const struct actor_request *req, const char *name)
{
  for (size_t i = 0; i < req->n_assets; i++)
    if (strcmp (req->assets[i].name, name) == 0)
      return req->assets[i].path;
  return NULL;
}

static int
not_yet (const char *what, struct ate_error **err)
{
  return ate_error_make_code (err, ATE_CODE_UNIMPLEMENTED, 0,
                              "%s is not implemented yet in this build", what);
}

int
actor_run (struct actor_runtime *rt, const struct actor_request *req,
           ate_deadline_t deadline, struct ate_error **err)
{
  (void) rt;
  (void) req;
  (void) deadline;
  return not_yet ("RunWorkload", err);
}

int
actor_checkpoint (struct actor_runtime *rt, const struct actor_request *req,
                  ate_deadline_t deadline, char ***files, struct ate_error **err)
{
  (void) rt;
  (void) req;
  (void) deadline;
  (void) files;
  return not_yet ("CheckpointWorkload", err);
}

int
actor_restore (struct actor_runtime *rt, const struct actor_request *req,
               ate_deadline_t deadline, struct ate_error **err)
{
  (void) rt;
  (void) req;
  (void) deadline;
  return not_yet ("RestoreWorkload", err);
}
