/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The core's side of test/sim/sim_agent.h: guest memory for the agent's
 * state (pages 1..63 through the memory model, so OnDemand faults and
 * snapshots see them), the guest netns, disk paths by guest device name.
 * Without the agent library (SIM_HAVE_AGENT undefined) port 1024 has no
 * listener and these are no-ops.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"
#include "util/util.h"

#ifdef SIM_HAVE_AGENT
#include "sim_agent.h"

struct glue
{
  struct sim_guest_ops ops;
  struct sim *s;
  struct sim_agent *agent;
};

static int
state_read (void *ctx, size_t off, void *buf, size_t len)
{
  struct glue *g = ctx;
  if (off > g->ops.state_max || len > g->ops.state_max - off)
    {
      errno = EFAULT;
      return -1;
    }
  return sim_mem_read (g->s->mem, (uint64_t) SIM_AGENT_FIRST_PAGE * SIM_PAGE + off, buf, len);
}

static int
state_write (void *ctx, size_t off, const void *buf, size_t len)
{
  struct glue *g = ctx;
  if (off > g->ops.state_max || len > g->ops.state_max - off)
    {
      errno = EFAULT;
      return -1;
    }
  return sim_mem_write (g->s->mem, (uint64_t) SIM_AGENT_FIRST_PAGE * SIM_PAGE + off, buf, len);
}

static const char *
block_device_path (void *ctx, const char *guest_dev)
{
  struct glue *g = ctx;
  if (guest_dev == NULL || strncmp (guest_dev, "/dev/vd", 7) != 0 || guest_dev[7] < 'a'
      || guest_dev[7] > 'z' || guest_dev[8] != '\0')
    return NULL;
  size_t i = (size_t) (guest_dev[7] - 'a');
  return i < g->s->ndisks ? g->s->disks[i].path : NULL;
}

static struct sim_vdisk *
guest_vdisk (struct glue *g, const char *guest_dev)
{
  if (guest_dev == NULL || strncmp (guest_dev, "/dev/vd", 7) != 0 || guest_dev[7] < 'a'
      || guest_dev[7] > 'z' || guest_dev[8] != '\0')
    return NULL;
  size_t i = (size_t) (guest_dev[7] - 'a');
  return i < g->s->ndisks ? g->s->disks[i].vd : NULL;
}

static int
block_device_read (void *ctx, const char *guest_dev, uint64_t off, void *buf, size_t len)
{
  struct sim_vdisk *d = guest_vdisk (ctx, guest_dev);
  if (d == NULL)
    {
      errno = ENODEV;
      return -1;
    }
  return sim_vdisk_read (d, off, buf, len);
}

static int
block_device_write (void *ctx, const char *guest_dev, uint64_t off, const void *buf, size_t len)
{
  struct sim_vdisk *d = guest_vdisk (ctx, guest_dev);
  if (d == NULL)
    {
      errno = ENODEV;
      return -1;
    }
  return sim_vdisk_write (d, off, buf, len);
}

static void agent_log (void *ctx, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
agent_log (void *ctx, const char *fmt, ...)
{
  va_list ap;
  char buf[1024];
  (void) ctx;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof (buf), fmt, ap);
  va_end (ap);
  sim_log ("agent: %s", buf);
}

void
sim_agent_glue_start (struct sim *s, bool restored)
{
  struct glue *g = xmalloc0 (sizeof (*g));

  g->s = s;
  g->ops.ctx = g;
  g->ops.state_max = (size_t) SIM_AGENT_PAGES * SIM_PAGE;
  g->ops.state_read = state_read;
  g->ops.state_write = state_write;
  g->ops.netns_fd = s->netns_fd;
  g->ops.block_device_path = block_device_path;
  g->ops.block_device_read = block_device_read;
  g->ops.block_device_write = block_device_write;
  g->ops.log = agent_log;
  g->agent = sim_agent_new (&g->ops, restored);
  if (g->agent == NULL)
    {
      sim_log ("agent failed to start (restored=%d)", restored);
      free (g);
      return;
    }
  s->agent = g;
}

void
sim_agent_glue_pause (struct sim *s)
{
  struct glue *g = s->agent;
  if (g)
    sim_agent_pause (g->agent);
}

void
sim_agent_glue_resume (struct sim *s)
{
  struct glue *g = s->agent;
  if (g)
    sim_agent_resume (g->agent);
}

void
sim_agent_glue_reset (struct sim *s)
{
  struct glue *g = s->agent;
  if (g)
    sim_agent_reset_connections (g->agent);
}

void
sim_agent_glue_stop (struct sim *s)
{
  struct glue *g = s->agent;
  if (g == NULL)
    return;
  sim_agent_reset_connections (g->agent);
  sim_agent_free (g->agent);
  free (g);
  s->agent = NULL;
}

bool
sim_agent_glue_serve (struct sim *s, int fd)
{
  struct glue *g = s->agent;
  if (g == NULL)
    return false;
  sim_agent_serve (g->agent, fd);
  return true;
}

#else /* !SIM_HAVE_AGENT */

void
sim_agent_glue_start (struct sim *s, bool restored)
{
  (void) s;
  (void) restored;
}

void
sim_agent_glue_pause (struct sim *s)
{
  (void) s;
}

void
sim_agent_glue_resume (struct sim *s)
{
  (void) s;
}

void
sim_agent_glue_reset (struct sim *s)
{
  (void) s;
}

void
sim_agent_glue_stop (struct sim *s)
{
  (void) s;
}

bool
sim_agent_glue_serve (struct sim *s, int fd)
{
  (void) s;
  (void) fd;
  return false;
}

#endif
