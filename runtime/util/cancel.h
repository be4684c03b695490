/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A cancellation flag: the gRPC layer raises it when the caller goes away
 * before its deadline (it cancelled, or the server is shutting down), and
 * long steps test it where stopping is safe (docs/api.md, "Cancellation").
 * A NULL flag is never raised.
 */
#ifndef ATE_CANCEL_H
#define ATE_CANCEL_H

#include <stdatomic.h>
#include <stdbool.h>

struct ate_cancel
{
  atomic_bool raised;
};

static inline void
ate_cancel_raise (struct ate_cancel *c)
{
  atomic_store (&c->raised, true);
}

static inline bool
ate_cancel_raised (const struct ate_cancel *c)
{
  return c != NULL && atomic_load (&((struct ate_cancel *) c)->raised);
}

#endif
