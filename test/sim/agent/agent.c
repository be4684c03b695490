/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulated agent's life cycle and its state in guest memory.
 *
 * Guest memory layout of the agent's region (ops->state_max bytes):
 *   [0, 64)   header: magic "ATESIMAG", version, payload length,
 *             generation, the counter app's count, CRC-32 of the payload,
 *             CRC-32 of the header bytes before it;
 *   [64, ..)  payload: an atesim.State protobuf.
 * A restored guest whose region does not check out (an incomplete memory
 * merge, a wrong snapshot) reports it loudly and refuses every request.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "util/util.h"

#define STATE_MAGIC "ATESIMAG"
#define STATE_VERSION 1u
#define HEADER_SIZE 64u

struct state_header
{
  char magic[8];
  uint32_t version;
  uint32_t payload_len;
  uint64_t generation;
  uint64_t counter;
  uint32_t payload_crc;
  uint32_t header_crc; /* of the bytes before it */
  uint8_t pad[HEADER_SIZE - 40];
};
_Static_assert (sizeof (struct state_header) == HEADER_SIZE, "header layout");

static uint32_t
crc32 (const void *data, size_t len)
{
  const uint8_t *p = data;
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < len; i++)
    {
      c ^= p[i];
      for (int k = 0; k < 8; k++)
        c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
  return ~c;
}

void
sim_agent_logf (struct sim_agent *a, const char *fmt, ...)
{
  va_list ap;
  char buf[2048];

  va_start (ap, fmt);
  vsnprintf (buf, sizeof (buf), fmt, ap);
  va_end (ap);
  if (a->ops.log)
    a->ops.log (a->ops.ctx, "%s", buf);
}

static int
write_header (struct sim_agent *a, uint32_t payload_len, uint32_t payload_crc)
{
  struct state_header h;

  memset (&h, 0, sizeof (h));
  memcpy (h.magic, STATE_MAGIC, 8);
  h.version = STATE_VERSION;
  h.payload_len = payload_len;
  h.generation = a->generation;
  h.counter = a->counter;
  h.payload_crc = payload_crc;
  h.header_crc = crc32 (&h, offsetof (struct state_header, header_crc));
  return a->ops.state_write (a->ops.ctx, 0, &h, sizeof (h));
}

/* The header as it is in guest memory, checked; NULL errmsg on success. */
static int
read_header (struct sim_agent *a, struct state_header *h, char **errmsg)
{
  if (a->ops.state_read (a->ops.ctx, 0, h, sizeof (*h)) < 0)
    return *errmsg = xasprintf ("read the state header: %s", strerror (errno)), -1;
  if (memcmp (h->magic, STATE_MAGIC, 8) != 0)
    return *errmsg = xstrdup ("no agent state in guest memory (bad magic)"), -1;
  if (h->header_crc != crc32 (h, offsetof (struct state_header, header_crc)))
    return *errmsg = xstrdup ("agent state header checksum mismatch"), -1;
  if (h->version != STATE_VERSION)
    return *errmsg = xasprintf ("agent state version %u, expected %u", h->version,
                                STATE_VERSION),
           -1;
  if (h->payload_len > a->ops.state_max - HEADER_SIZE)
    return *errmsg = xasprintf ("agent state of %u bytes does not fit the region",
                                h->payload_len),
           -1;
  return 0;
}

int
sim_state_save (struct sim_agent *a, char **errmsg)
{
  size_t n = atesim__state__get_packed_size (a->st);
  uint8_t *buf;
  int r;

  if (n > a->ops.state_max - HEADER_SIZE)
    return *errmsg = xasprintf ("agent state of %zu bytes exceeds guest memory region of %zu",
                                n, a->ops.state_max - HEADER_SIZE),
           -1;
  buf = xmalloc (n + 1);
  atesim__state__pack (a->st, buf);
  a->generation++;
  /* Payload first, header last: a torn write is a checksum mismatch. */
  r = a->ops.state_write (a->ops.ctx, HEADER_SIZE, buf, n);
  if (r == 0)
    r = write_header (a, (uint32_t) n, crc32 (buf, n));
  free (buf);
  if (r < 0)
    return *errmsg = xasprintf ("write agent state to guest memory: %s", strerror (errno)), -1;
  return 0;
}

uint64_t
sim_state_counter_bump (struct sim_agent *a)
{
  struct state_header h;
  char *why = NULL;
  uint64_t n = 0;

  pthread_mutex_lock (&a->lock);
  /* Re-read the header: the count lives in guest memory, not here. */
  if (read_header (a, &h, &why) < 0)
    {
      sim_agent_logf (a, "counter: %s", why);
      free (why);
    }
  else
    {
      a->counter = h.counter + 1;
      if (write_header (a, h.payload_len, h.payload_crc) == 0)
        n = a->counter;
    }
  pthread_mutex_unlock (&a->lock);
  return n;
}

bool
sim_wait_running_locked (struct sim_agent *a, const bool *closing)
{
  while (a->paused && !a->stopping && !(closing && *closing))
    pthread_cond_wait (&a->cond, &a->lock);
  return !a->stopping && !(closing && *closing);
}

static int
load_state (struct sim_agent *a, char **errmsg)
{
  struct state_header h;
  uint8_t *buf;

  if (read_header (a, &h, errmsg) < 0)
    return -1;
  buf = xmalloc (h.payload_len + 1);
  if (a->ops.state_read (a->ops.ctx, HEADER_SIZE, buf, h.payload_len) < 0)
    {
      free (buf);
      return *errmsg = xasprintf ("read the agent state: %s", strerror (errno)), -1;
    }
  if (crc32 (buf, h.payload_len) != h.payload_crc)
    {
      free (buf);
      return *errmsg = xstrdup ("agent state checksum mismatch (incomplete guest memory?)"), -1;
    }
  a->st = atesim__state__unpack (NULL, h.payload_len, buf);
  free (buf);
  if (a->st == NULL)
    return *errmsg = xstrdup ("agent state does not decode"), -1;
  a->generation = h.generation;
  a->counter = h.counter;
  return 0;
}

/* After a restore: the network configuration of the snapshot, in the new
 * namespace, and the containers that were running. */
static void
resume_from_state (struct sim_agent *a)
{
  char *why = NULL;
  Atesim__State *st = a->st;

  if (st->interface && sim_net_update_interface (a, st->interface, &why) < 0)
    goto net_failed;
  if (st->n_routes && sim_net_update_routes (a, st->routes, st->n_routes, &why) < 0)
    goto net_failed;
  if (st->n_neighbors && sim_net_add_neighbors (a, st->neighbors, st->n_neighbors, &why) < 0)
    goto net_failed;
  goto containers;
net_failed:
  sim_agent_logf (a, "RESTORE: re-applying the guest network failed: %s", why);
  free (why);
  why = NULL;
containers:
  pthread_mutex_lock (&a->lock);
  for (size_t i = 0; i < st->n_containers; i++)
    {
      Atesim__Container *c = st->containers[i];
      if (c->status != ATESIM__CONTAINER__STATUS__RUNNING)
        continue;
      if (sim_ctr_start (a, c, &why) < 0)
        {
          sim_agent_logf (a, "RESTORE: container %s did not come back: %s", c->id, why);
          free (why);
          why = NULL;
        }
    }
  pthread_mutex_unlock (&a->lock);
}

struct sim_agent *
sim_agent_new (const struct sim_guest_ops *ops, bool restored)
{
  struct sim_agent *a;
  pthread_condattr_t ca;
  char *why = NULL;

  if (ops == NULL || ops->state_read == NULL || ops->state_write == NULL
      || ops->state_max < HEADER_SIZE + 1024)
    return NULL;
  a = xmalloc0 (sizeof (*a));
  a->ops = *ops;
  pthread_mutex_init (&a->lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&a->cond, &ca);
  pthread_condattr_destroy (&ca);
  sim_spawner_start (a);

  if (restored && load_state (a, &why) < 0)
    {
      a->corrupt = why;
      sim_agent_logf (a, "RESTORE FAILED: %s; the agent refuses every request", why);
      a->st = xmalloc (sizeof (*a->st));
      atesim__state__init (a->st);
      return a;
    }
  if (restored)
    {
      sim_agent_logf (a, "restored: sandbox '%s', %zu containers, count %llu",
                      a->st->sandbox_id, a->st->n_containers,
                      (unsigned long long) a->counter);
      resume_from_state (a);
      return a;
    }
  a->st = xmalloc (sizeof (*a->st));
  atesim__state__init (a->st);
  if (sim_state_save (a, &why) < 0)
    {
      sim_agent_logf (a, "cold boot: %s", why);
      a->corrupt = why;
    }
  return a;
}

void
sim_agent_pause (struct sim_agent *a)
{
  pthread_mutex_lock (&a->lock);
  if (!a->paused)
    {
      a->paused = true;
      sim_ctrs_signal_all (a, SIGSTOP);
    }
  pthread_mutex_unlock (&a->lock);
}

void
sim_agent_resume (struct sim_agent *a)
{
  pthread_mutex_lock (&a->lock);
  if (a->paused)
    {
      a->paused = false;
      sim_ctrs_signal_all (a, SIGCONT);
      pthread_cond_broadcast (&a->cond);
    }
  pthread_mutex_unlock (&a->lock);
}

void
sim_agent_reset_connections (struct sim_agent *a)
{
  sim_conns_close_all (a);
}

void
sim_agent_free (struct sim_agent *a)
{
  if (a == NULL)
    return;
  pthread_mutex_lock (&a->lock);
  a->stopping = true;
  pthread_cond_broadcast (&a->cond);
  pthread_mutex_unlock (&a->lock);
  struct sim_joins joins = { 0 };
  sim_conns_close_all (a);
  pthread_mutex_lock (&a->lock);
  sim_ctrs_destroy_all (a, &joins);
  pthread_mutex_unlock (&a->lock);
  sim_joins_run (&joins);
  sim_spawner_stop (a);
  atesim__state__free_unpacked (a->st, NULL);
  free (a->corrupt);
  pthread_cond_destroy (&a->cond);
  pthread_mutex_destroy (&a->lock);
  free (a);
}
