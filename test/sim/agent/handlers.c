/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's methods, validating requests as the kata agent does (and
 * stricter where a real guest would fail later): the sandbox comes first
 * and exactly once, storages must name devices the VM has, container specs
 * must not ask for host namespaces.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent.h"
#include "google/protobuf/empty.pb-c.h"
#include "kata/health.pb-c.h"
#include "util/error.h"
#include "util/proc.h"
#include "util/util.h"

#define AGENT_VERSION "3.31.0-ate-sim"
/* Most bytes one ReadStdout/ReadStderr returns. */
#define MAX_READ (1u << 20)
#define EXT4_MAGIC_OFFSET 1080

/* ---- helpers ---- */

/* A fully owned copy of a message (pack + unpack). */
static void *
msg_dup (const ProtobufCMessage *m)
{
  size_t n = protobuf_c_message_get_packed_size (m);
  uint8_t *buf = xmalloc (n + 1);
  void *copy;

  protobuf_c_message_pack (m, buf);
  copy = protobuf_c_message_unpack (m->descriptor, NULL, n, buf);
  free (buf);
  if (copy == NULL)
    ate_oom ();
  return copy;
}

static void
set_str (char **field, const char *v)
{
  if (*field != protobuf_c_empty_string)
    free (*field);
  *field = xstrdup (v ? v : "");
}

#define UNPACK_OR_FAIL(var, fn, payload, len, reply)                           \
  do                                                                           \
    {                                                                          \
      var = fn##__unpack (NULL, len, payload);                                 \
      if (var == NULL)                                                         \
        {                                                                      \
          sim_reply_error (reply, ATE_CODE_INVALID_ARGUMENT,                   \
                           "cannot decode the request");                       \
          return;                                                              \
        }                                                                      \
    }                                                                          \
  while (0)

static void
reply_empty (struct sim_reply *r)
{
  Google__Protobuf__Empty *e = xmalloc (sizeof (*e));
  google__protobuf__empty__init (e);
  r->resp = &e->base;
}

/* Common preconditions; false (with reply set) when the call must fail.
 * Caller holds the lock. */
static bool
check_agent_locked (struct sim_agent *a, bool need_sandbox, struct sim_reply *r)
{
  if (a->corrupt)
    {
      sim_reply_error (r, ATE_CODE_DATA_LOSS, "agent state lost: %s", a->corrupt);
      return false;
    }
  if (need_sandbox && !a->st->sandbox_created)
    {
      sim_reply_error (r, ATE_CODE_FAILED_PRECONDITION, "sandbox not created");
      return false;
    }
  return true;
}

static void
save_or_fail (struct sim_agent *a, struct sim_reply *r)
{
  char *why = NULL;
  if (sim_state_save (a, &why) < 0)
    {
      sim_reply_error (r, ATE_CODE_INTERNAL, "%s", why);
      free (why);
    }
}

/* ---- grpc.Health ---- */

static void
h_check (struct sim_call *call, const uint8_t *payload, size_t len, struct sim_reply *r)
{
  Grpc__CheckRequest *req;
  Grpc__HealthCheckResponse *resp = xmalloc (sizeof (*resp));

  UNPACK_OR_FAIL (req, grpc__check_request, payload, len, r);
  grpc__check_request__free_unpacked (req, NULL);
  grpc__health_check_response__init (resp);
  pthread_mutex_lock (&call->agent->lock);
  resp->status = call->agent->corrupt
                     ? GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                     : GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  pthread_mutex_unlock (&call->agent->lock);
  r->resp = &resp->base;
}

static void
h_version (struct sim_call *call, const uint8_t *payload, size_t len, struct sim_reply *r)
{
  Grpc__CheckRequest *req;
  Grpc__VersionCheckResponse *resp = xmalloc (sizeof (*resp));

  (void) call;
  UNPACK_OR_FAIL (req, grpc__check_request, payload, len, r);
  grpc__check_request__free_unpacked (req, NULL);
  grpc__version_check_response__init (resp);
  resp->grpc_version = xstrdup ("ttrpc");
  resp->agent_version = xstrdup (AGENT_VERSION);
  r->resp = &resp->base;
}

/* ---- sandbox ---- */

static void
h_create_sandbox (struct sim_call *call, const uint8_t *payload, size_t len,
                  struct sim_reply *r)
{
  struct sim_agent *a = call->agent;
  Grpc__CreateSandboxRequest *req;

  UNPACK_OR_FAIL (req, grpc__create_sandbox_request, payload, len, r);
  pthread_mutex_lock (&a->lock);
  if (!check_agent_locked (a, false, r))
    ;
  else if (a->st->sandbox_created)
    sim_reply_error (r, ATE_CODE_ALREADY_EXISTS, "sandbox %s already created (one per agent)",
                     a->st->sandbox_id);
  else if (req->sandbox_id[0] == '\0')
    sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "empty sandbox id");
  else if (req->n_storages > 0)
    sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT,
                     "sandbox storage driver \"%s\" is not available in the simulated guest",
                     req->storages[0]->driver);
  else if (req->n_kernel_modules > 0)
    sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "kernel module %s not found in the guest",
                     req->kernel_modules[0]->name);
  else
    {
      a->st->sandbox_created = true;
      set_str (&a->st->sandbox_id, req->sandbox_id);
      set_str (&a->st->hostname, req->hostname);
      save_or_fail (a, r);
      if (r->code == 0)
        reply_empty (r);
    }
  pthread_mutex_unlock (&a->lock);
  grpc__create_sandbox_request__free_unpacked (req, NULL);
}

static void
h_destroy_sandbox (struct sim_call *call, const uint8_t *payload, size_t len,
                   struct sim_reply *r)
{
  struct sim_agent *a = call->agent;
  Grpc__DestroySandboxRequest *req;
  struct sim_joins joins = { 0 };

  UNPACK_OR_FAIL (req, grpc__destroy_sandbox_request, payload, len, r);
  grpc__destroy_sandbox_request__free_unpacked (req, NULL);
  pthread_mutex_lock (&a->lock);
  if (check_agent_locked (a, true, r))
    {
      Atesim__State *fresh = xmalloc (sizeof (*fresh));
      sim_ctrs_destroy_all (a, &joins);
      atesim__state__init (fresh);
      atesim__state__free_unpacked (a->st, NULL);
      a->st = fresh;
      save_or_fail (a, r);
      if (r->code == 0)
        reply_empty (r);
    }
  pthread_mutex_unlock (&a->lock);
  sim_joins_run (&joins);
}

/* ---- network ---- */

static void
h_update_interface (struct sim_call *call, const uint8_t *payload, size_t len,
                    struct sim_reply *r)
{
  struct sim_agent *a = call->agent;
  Grpc__UpdateInterfaceRequest *req;
  char *why = NULL;

  UNPACK_OR_FAIL (req, grpc__update_interface_request, payload, len, r);
  pthread_mutex_lock (&a->lock);
  if (!check_agent_locked (a, true, r))
    ;
  else if (req->interface == NULL)
    sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "UpdateInterface without an interface");
  else if (sim_net_update_interface (a, req->interface, &why) < 0)
    sim_reply_error (r, ATE_CODE_INTERNAL, "update interface: %s", why);
  else
    {
      if (a->st->interface)
        types__interface__free_unpacked (a->st->interface, NULL);
      a->st->interface = msg_dup (&req->interface->base);
      save_or_fail (a, r);
      if (r->code == 0)
        r->resp = msg_dup (&req->interface->base);
    }
  pthread_mutex_unlock (&a->lock);
  free (why);
  grpc__update_interface_request__free_unpacked (req, NULL);
}

static void
replace_repeated (ProtobufCMessage ***field, size_t *n, ProtobufCMessage *const *items,
                  size_t count)
{
  for (size_t i = 0; i < *n; i++)
    protobuf_c_message_free_unpacked ((*field)[i], NULL);
  free (*field);
  *field = count ? xcalloc (count, sizeof (**field)) : NULL;
  for (size_t i = 0; i < count; i++)
    (*field)[i] = msg_dup (items[i]);
  *n = count;
}

static void
h_update_routes (struct sim_call *call, const uint8_t *payload, size_t len, struct sim_reply *r)
{
  struct sim_agent *a = call->agent;
  Grpc__UpdateRoutesRequest *req;
  char *why = NULL;

  UNPACK_OR_FAIL (req, grpc__update_routes_request, payload, len, r);
  pthread_mutex_lock (&a->lock);
  if (!check_agent_locked (a, true, r))
    ;
  else if (req->routes == NULL)
    sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "UpdateRoutes without routes");
  else if (sim_net_update_routes (a, req->routes->routes, req->routes->n_routes, &why) < 0)
    sim_reply_error (r, ATE_CODE_INTERNAL, "update routes: %s", why);
  else
    {
      replace_repeated ((ProtobufCMessage ***) &a->st->routes, &a->st->n_routes,
                        (ProtobufCMessage *const *) req->routes->routes, req->routes->n_routes);
      save_or_fail (a, r);
      if (r->code == 0)
        r->resp = msg_dup (&req->routes->base);
    }
  pthread_mutex_unlock (&a->lock);
  free (why);
  grpc__update_routes_request__free_unpacked (req, NULL);
}

static void
h_add_arp_neighbors (struct sim_call *call, const uint8_t *payload, size_t len,
                     struct sim_reply *r)
{
  struct sim_agent *a = call->agent;
  Grpc__AddARPNeighborsRequest *req;
  char *why = NULL;

  UNPACK_OR_FAIL (req, grpc__add_arpneighbors_request, payload, len, r);
  pthread_mutex_lock (&a->lock);
  if (!check_agent_locked (a, true, r))
    ;
  else if (req->neighbors == NULL)
    sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "AddARPNeighbors without neighbors");
  else if (sim_net_add_neighbors (a, req->neighbors->arpneighbors,
                                  req->neighbors->n_arpneighbors, &why)
           < 0)
    sim_reply_error (r, ATE_CODE_INTERNAL, "add ARP neighbors: %s", why);
  else
    {
      /* Accumulate: later calls add to the neighbour table. */
      size_t old = a->st->n_neighbors, add = req->neighbors->n_arpneighbors;
      a->st->neighbors = xrealloc (a->st->neighbors, (old + add + 1) * sizeof (void *));
      for (size_t i = 0; i < add; i++)
        a->st->neighbors[old + i] = msg_dup (&req->neighbors->arpneighbors[i]->base);
      a->st->n_neighbors = old + add;
      save_or_fail (a, r);
      if (r->code == 0)
        reply_empty (r);
    }
  pthread_mutex_unlock (&a->lock);
  free (why);
  grpc__add_arpneighbors_request__free_unpacked (req, NULL);
}

/* ---- containers ---- */

static Atesim__Container *
record_find (struct sim_agent *a, const char *id)
{
  for (size_t i = 0; i < a->st->n_containers; i++)
    if (strcmp (a->st->containers[i]->id, id) == 0)
      return a->st->containers[i];
  return NULL;
}

/* The disk behind a "/dev/vdX" must exist in the VM and hold ext4 (the
 * real agent mounts it and would fail otherwise). */
static bool
check_blk_storage (struct sim_agent *a, const Grpc__Storage *s, struct sim_reply *r)
{
  const char *path;
  unsigned char magic[2] = { 0 };

  if (strcmp (s->driver, "blk") != 0)
    return sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT,
                            "storage driver \"%s\" is not available in the simulated guest",
                            s->driver),
           false;
  if (strcmp (s->fstype, "ext4") != 0)
    return sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT,
                            "blk storage %s: fstype \"%s\", the guest only mounts ext4",
                            s->source, s->fstype),
           false;
  if (s->mount_point[0] != '/')
    return sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT,
                            "blk storage %s: mount point \"%s\" is not absolute", s->source,
                            s->mount_point),
           false;
  path = a->ops.block_device_path ? a->ops.block_device_path (a->ops.ctx, s->source) : NULL;
  if (path == NULL)
    return sim_reply_error (r, ATE_CODE_NOT_FOUND, "blk storage: no device %s in the VM",
                            s->source),
           false;
  /* What the guest reads from the device (through a qcow2 overlay). */
  if (a->ops.block_device_read (a->ops.ctx, s->source, EXT4_MAGIC_OFFSET, magic, 2) < 0
      || magic[0] != 0x53 || magic[1] != 0xef)
    return sim_reply_error (r, ATE_CODE_INTERNAL,
                            "mount %s (%s) on %s: not an ext4 filesystem", s->source, path,
                            s->mount_point),
           false;
  return true;
}

/* The OCI spec as the agent would run it: a process, a root it mounted,
 * no host namespace paths and no network namespace of its own. */
static bool
check_spec (const Grpc__CreateContainerRequest *req, struct sim_reply *r)
{
  const Grpc__Spec *s = req->oci;
  bool root_mounted = false;

  if (s == NULL || s->process == NULL || s->process->n_args == 0)
    return sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "container %s: no process args",
                            req->container_id),
           false;
  if (s->root == NULL || s->root->path[0] == '\0')
    return sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "container %s: no root path",
                            req->container_id),
           false;
  for (size_t i = 0; i < req->n_storages; i++)
    if (strcmp (req->storages[i]->mount_point, s->root->path) == 0)
      root_mounted = true;
  if (!root_mounted)
    return sim_reply_error (r, ATE_CODE_FAILED_PRECONDITION,
                            "container %s: root %s is not a mounted storage",
                            req->container_id, s->root->path),
           false;
  for (size_t i = 0; s->linux && i < s->linux->n_namespaces; i++)
    {
      const Grpc__LinuxNamespace *ns = s->linux->namespaces[i];
      if (ns->path[0] != '\0')
        return sim_reply_error (r, ATE_CODE_NOT_FOUND,
                                "join %s namespace %s: no such file in the guest", ns->type,
                                ns->path),
               false;
      if (strcmp (ns->type, "network") == 0)
        return sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT,
                                "container %s asks for its own network namespace: it would "
                                "not see the guest network",
                                req->container_id),
               false;
    }
  return true;
}

static void
h_create_container (struct sim_call *call, const uint8_t *payload, size_t len,
                    struct sim_reply *r)
{
  struct sim_agent *a = call->agent;
  Grpc__CreateContainerRequest *req;
  Atesim__Container *c;

  UNPACK_OR_FAIL (req, grpc__create_container_request, payload, len, r);
  pthread_mutex_lock (&a->lock);
  if (!check_agent_locked (a, true, r))
    goto out;
  if (req->container_id[0] == '\0' || strchr (req->container_id, '/'))
    {
      sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "invalid container id \"%s\"",
                       req->container_id);
      goto out;
    }
  if (record_find (a, req->container_id))
    {
      sim_reply_error (r, ATE_CODE_ALREADY_EXISTS, "container %s already exists",
                       req->container_id);
      goto out;
    }
  for (size_t i = 0; i < req->n_storages; i++)
    if (!check_blk_storage (a, req->storages[i], r))
      goto out;
  if (req->n_devices > 0)
    {
      sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "device %s is not in the simulated guest",
                       req->devices[0]->vm_path);
      goto out;
    }
  if (!check_spec (req, r))
    goto out;
  c = xmalloc (sizeof (*c));
  atesim__container__init (c);
  c->id = xstrdup (req->container_id);
  c->exec_id = xstrdup (req->exec_id);
  c->spec = msg_dup (&req->oci->base);
  replace_repeated ((ProtobufCMessage ***) &c->storages, &c->n_storages,
                    (ProtobufCMessage *const *) req->storages, req->n_storages);
  a->st->containers = xrealloc (a->st->containers, (a->st->n_containers + 1) * sizeof (void *));
  a->st->containers[a->st->n_containers++] = c;
  save_or_fail (a, r);
  if (r->code == 0)
    reply_empty (r);
out:
  pthread_mutex_unlock (&a->lock);
  grpc__create_container_request__free_unpacked (req, NULL);
}

static void
h_start_container (struct sim_call *call, const uint8_t *payload, size_t len,
                   struct sim_reply *r)
{
  struct sim_agent *a = call->agent;
  Grpc__StartContainerRequest *req;
  Atesim__Container *c;
  char *why = NULL;

  UNPACK_OR_FAIL (req, grpc__start_container_request, payload, len, r);
  pthread_mutex_lock (&a->lock);
  if (!check_agent_locked (a, true, r))
    ;
  else if ((c = record_find (a, req->container_id)) == NULL)
    sim_reply_error (r, ATE_CODE_NOT_FOUND, "container %s not found", req->container_id);
  else if (c->status != ATESIM__CONTAINER__STATUS__CREATED)
    sim_reply_error (r, ATE_CODE_FAILED_PRECONDITION, "container %s was already started",
                     req->container_id);
  else if (sim_ctr_start (a, c, &why) < 0)
    sim_reply_error (r, ATE_CODE_INTERNAL, "start container %s: %s", req->container_id, why);
  else
    {
      c->status = ATESIM__CONTAINER__STATUS__RUNNING;
      save_or_fail (a, r);
      if (r->code == 0)
        reply_empty (r);
    }
  pthread_mutex_unlock (&a->lock);
  free (why);
  grpc__start_container_request__free_unpacked (req, NULL);
}

/* The started runtime container for (cid, eid), waiting until it has been
 * started.  NULL with reply set on failure.  Lock held. */
static struct sim_ctr *
started_ctr_locked (struct sim_call *call, const char *cid, const char *eid,
                    struct sim_reply *r)
{
  struct sim_agent *a = call->agent;
  struct timespec ts = { .tv_sec = call->deadline / ATE_NSEC_PER_SEC,
                         .tv_nsec = call->deadline % ATE_NSEC_PER_SEC };

  for (;;)
    {
      Atesim__Container *rec = record_find (a, cid);
      struct sim_ctr *c = sim_ctr_find (a, cid);
      if (!check_agent_locked (a, true, r))
        return NULL;
      if (rec == NULL)
        return sim_reply_error (r, ATE_CODE_NOT_FOUND, "container %s not found", cid), NULL;
      if (eid[0] && strcmp (eid, rec->exec_id) != 0)
        return sim_reply_error (r, ATE_CODE_NOT_FOUND, "process %s of container %s not found",
                                eid, cid),
               NULL;
      if (c && c->started)
        return c;
      if (*call->closing || a->stopping)
        return sim_reply_error (r, ATE_CODE_UNAVAILABLE, "connection closed"), NULL;
      if (call->deadline == ATE_DEADLINE_NONE)
        pthread_cond_wait (&a->cond, &a->lock);
      else if (pthread_cond_timedwait (&a->cond, &a->lock, &ts) != 0)
        return sim_reply_error (r, ATE_CODE_DEADLINE_EXCEEDED, "deadline exceeded"), NULL;
    }
}

/* Wait for fd to be readable (or the call to end): 1 ready, 0 ended (reply
 * set). */
static int
wait_readable (struct sim_call *call, int fd, struct sim_reply *r)
{
  for (;;)
    {
      struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = call->wake_fd, .events = POLLIN } };
      int n = poll (p, 2, ate_deadline_poll_ms (call->deadline));
      if (n < 0 && errno == EINTR)
        continue;
      if (n == 0)
        return sim_reply_error (r, ATE_CODE_DEADLINE_EXCEEDED, "deadline exceeded"), 0;
      if (p[1].revents || *call->closing)
        return sim_reply_error (r, ATE_CODE_UNAVAILABLE, "connection closed"), 0;
      if (n > 0)
        return 1;
      return sim_reply_error (r, ATE_CODE_INTERNAL, "poll: %s", strerror (errno)), 0;
    }
}

static void
read_stream (struct sim_call *call, const uint8_t *payload, size_t len, struct sim_reply *r,
             int which)
{
  struct sim_agent *a = call->agent;
  Grpc__ReadStreamRequest *req;
  Grpc__ReadStreamResponse *resp;
  struct sim_ctr *c;
  size_t want;
  ssize_t got;
  int fd;

  UNPACK_OR_FAIL (req, grpc__read_stream_request, payload, len, r);
  if (req->len == 0)
    {
      sim_reply_error (r, ATE_CODE_INVALID_ARGUMENT, "read of 0 bytes");
      grpc__read_stream_request__free_unpacked (req, NULL);
      return;
    }
  want = req->len < MAX_READ ? req->len : MAX_READ;
  pthread_mutex_lock (&a->lock);
  c = started_ctr_locked (call, req->container_id, req->exec_id, r);
  if (c)
    sim_ctr_ref (c);
  pthread_mutex_unlock (&a->lock);
  grpc__read_stream_request__free_unpacked (req, NULL);
  if (c == NULL)
    return;
  /* One reader per stream at a time. */
  pthread_mutex_lock (&c->read_lock[which]);
  fd = which == 0 ? c->out_r : c->err_r;
  resp = xmalloc (sizeof (*resp));
  grpc__read_stream_response__init (resp);
  resp->data.data = xmalloc (want);
  for (;;)
    {
      bool running;
      if (!wait_readable (call, fd, r))
        break;
      /* Nothing leaves a paused guest. */
      pthread_mutex_lock (&a->lock);
      running = sim_wait_running_locked (a, call->closing);
      pthread_mutex_unlock (&a->lock);
      if (!running)
        {
          sim_reply_error (r, ATE_CODE_UNAVAILABLE, "connection closed");
          break;
        }
      got = read (fd, resp->data.data, want);
      if (got < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      if (got < 0)
        sim_reply_error (r, ATE_CODE_INTERNAL, "read: %s", strerror (errno));
      else
        resp->data.len = (size_t) got; /* 0: end of stream */
      break;
    }
  pthread_mutex_unlock (&c->read_lock[which]);
  pthread_mutex_lock (&a->lock);
  sim_ctr_unref (c);
  pthread_mutex_unlock (&a->lock);
  if (r->code != 0)
    {
      grpc__read_stream_response__free_unpacked (resp, NULL);
      return;
    }
  r->resp = &resp->base;
}

static void
h_read_stdout (struct sim_call *call, const uint8_t *payload, size_t len, struct sim_reply *r)
{
  read_stream (call, payload, len, r, 0);
}

static void
h_read_stderr (struct sim_call *call, const uint8_t *payload, size_t len, struct sim_reply *r)
{
  read_stream (call, payload, len, r, 1);
}

static void
h_wait_process (struct sim_call *call, const uint8_t *payload, size_t len, struct sim_reply *r)
{
  struct sim_agent *a = call->agent;
  Grpc__WaitProcessRequest *req;
  Grpc__WaitProcessResponse *resp;
  struct sim_ctr *c;
  char *cid;

  UNPACK_OR_FAIL (req, grpc__wait_process_request, payload, len, r);
  cid = xstrdup (req->container_id);
  pthread_mutex_lock (&a->lock);
  c = started_ctr_locked (call, req->container_id, req->exec_id, r);
  grpc__wait_process_request__free_unpacked (req, NULL);
  if (c)
    sim_ctr_ref (c);
  struct sim_ctr *held = c;
  while (c && !c->exited)
    {
      int pidfd = c->proc ? ate_proc_pidfd (c->proc) : c->counter_stop;
      pthread_mutex_unlock (&a->lock);
      if (!wait_readable (call, pidfd, r))
        {
          pthread_mutex_lock (&a->lock);
          c = NULL;
          break;
        }
      pthread_mutex_lock (&a->lock);
      if (!sim_wait_running_locked (a, call->closing))
        {
          sim_reply_error (r, ATE_CODE_UNAVAILABLE, "connection closed");
          c = NULL;
          break;
        }
      sim_ctr_reap_locked (c);
    }
  if (c)
    {
      Atesim__Container *rec = record_find (a, cid);
      if (rec && rec->status != ATESIM__CONTAINER__STATUS__STOPPED)
        {
          rec->status = ATESIM__CONTAINER__STATUS__STOPPED;
          rec->exit_status = c->exit_status;
          save_or_fail (a, r);
        }
      resp = xmalloc (sizeof (*resp));
      grpc__wait_process_response__init (resp);
      resp->status = c->exit_status;
      r->resp = &resp->base;
    }
  if (held)
    sim_ctr_unref (held);
  pthread_mutex_unlock (&a->lock);
  free (cid);
}

/* ---- dispatch ---- */

static const struct
{
  const char *service, *method;
  sim_handler fn;
} handlers[] = {
  { "grpc.Health", "Check", h_check },
  { "grpc.Health", "Version", h_version },
  { "grpc.AgentService", "CreateSandbox", h_create_sandbox },
  { "grpc.AgentService", "DestroySandbox", h_destroy_sandbox },
  { "grpc.AgentService", "UpdateInterface", h_update_interface },
  { "grpc.AgentService", "UpdateRoutes", h_update_routes },
  { "grpc.AgentService", "AddARPNeighbors", h_add_arp_neighbors },
  { "grpc.AgentService", "CreateContainer", h_create_container },
  { "grpc.AgentService", "StartContainer", h_start_container },
  { "grpc.AgentService", "ReadStdout", h_read_stdout },
  { "grpc.AgentService", "ReadStderr", h_read_stderr },
  { "grpc.AgentService", "WaitProcess", h_wait_process },
};

sim_handler
sim_handler_find (const char *service, const char *method)
{
  for (size_t i = 0; i < ATE_N_ELEMENTS (handlers); i++)
    if (strcmp (handlers[i].service, service) == 0 && strcmp (handlers[i].method, method) == 0)
      return handlers[i].fn;
  return NULL;
}
