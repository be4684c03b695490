/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC handlers: the three ateom RPCs through one handler
 * (handle_workload) and the health check. The handlers own what is common to
 * every call (decoding, the serialising lock, the log record); validation
 * lives in request.c and the work in the actor runtime.
 */
#define _GNU_SOURCE
#include "service.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "actor/actor.h"
#include "ateom.pb-c.h"
#include "health.pb-c.h"
#include "message.h"
#include "request.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/util.h"

struct service;
struct workload_rpc;

/* What the method table hands each workload call as its ctx: the service
 * and the call's row of workload_rpcs below. */
struct workload_method
{
  struct service *svc;
  const struct workload_rpc *rpc;
};

#define N_WORKLOAD_RPCS 3

struct service
{
  struct actor_runtime *rt;
  struct ate_paths paths; /* for the messages callers get (message.h) */
  /* RPCs that change an actor are serialised: the worker has one network,
   * one tap set and one actor at a time (docs/architecture.md, "How a
   * request flows"). The wait for the lock honours the caller's deadline,
   * so a stuck call cannot wedge atelet's retries. */
  pthread_mutex_t lock;
  pthread_mutex_t busy_lock;
  char busy[160]; /* what holds the lock, for the timeout message */
  struct workload_method workloads[N_WORKLOAD_RPCS];
  struct rpc_method methods[N_WORKLOAD_RPCS + 1];
};

/* How often a wait for the lock looks at the caller's cancellation. */
#define SERVICE_LOCK_POLL_MS 50

static int
service_lock (struct service *svc, const char *what, ate_deadline_t deadline,
              const struct ate_cancel *cancel, struct ate_error **err)
{
  int r;

  for (;;)
    {
      /* Wait in slices so a caller that cancels without a deadline is
       * noticed while it queues. */
      ate_deadline_t slice = ate_deadline_min (deadline, ate_deadline_in_ms (SERVICE_LOCK_POLL_MS));
      struct timespec ts = { .tv_sec = slice / ATE_NSEC_PER_SEC,
                             .tv_nsec = slice % ATE_NSEC_PER_SEC };
      r = pthread_mutex_clocklock (&svc->lock, CLOCK_MONOTONIC, &ts);
      if (r != ETIMEDOUT || slice == deadline || ate_cancel_raised (cancel))
        break;
    }
  if (r == 0 && ate_cancel_raised (cancel))
    {
      pthread_mutex_unlock (&svc->lock);
      r = ECANCELED;
    }
  if (r != 0)
    {
      char holder[sizeof (svc->busy)];
      pthread_mutex_lock (&svc->busy_lock);
      memcpy (holder, svc->busy, sizeof (holder));
      pthread_mutex_unlock (&svc->busy_lock);
      /* The holder is another caller's call: its actor stays in our log. */
      ate_log (ATE_LOG_INFO, "call gave up waiting for the worker", "waiting", what, "holder",
               holder, NULL);
      if (ate_cancel_raised (cancel) && !ate_deadline_expired (deadline))
        return ate_error_make_code (err, ATE_CODE_CANCELLED, 0,
                                    "cancelled by the caller while waiting for another call "
                                    "on this worker to finish");
      return ate_error_make_code (err, r == ETIMEDOUT || r == ECANCELED ? ATE_CODE_DEADLINE_EXCEEDED
                                                                       : ATE_CODE_INTERNAL,
                                  r == ETIMEDOUT || r == ECANCELED ? 0 : r,
                                  "deadline expired while waiting for another call on this "
                                  "worker to finish");
    }
  pthread_mutex_lock (&svc->busy_lock);
  snprintf (svc->busy, sizeof (svc->busy), "%s", what);
  pthread_mutex_unlock (&svc->busy_lock);
  return 0;
}

static void
service_unlock (struct service *svc)
{
  pthread_mutex_lock (&svc->busy_lock);
  svc->busy[0] = '\0';
  pthread_mutex_unlock (&svc->busy_lock);
  pthread_mutex_unlock (&svc->lock);
}

/* One "Handle RPC" record per call, successful or not (docs/logging.md,
 * docs/api.md "Status codes"). */
static void
log_rpc (const char *method, const struct request_fields *f, int64_t start_ns, int r,
         const struct ate_error *err, char **files)
{
  struct json_object *a = json_object_new_object ();
  json_object_object_add (a, "method", json_object_new_string (method));
  if (f)
    {
      struct json_object *req = json_object_new_object ();
      json_object_object_add (req, "actor_template_namespace", json_object_new_string (f->ns ? f->ns : ""));
      json_object_object_add (req, "actor_template_name", json_object_new_string (f->tmpl ? f->tmpl : ""));
      json_object_object_add (req, "actor_id", json_object_new_string (f->id ? f->id : ""));
      if (f->spec)
        {
          struct json_object *names = json_object_new_array ();
          for (size_t i = 0; i < f->spec->n_containers && i < 64; i++)
            json_object_array_add (names, json_object_new_string (
                                              f->spec->containers[i]->name ? f->spec->containers[i]->name : ""));
          json_object_object_add (req, "containers", names);
        }
      json_object_object_add (a, "request", req);
    }
  if (files)
    {
      struct json_object *arr = json_object_new_array ();
      for (char **p = files; *p; p++)
        json_object_array_add (arr, json_object_new_string (*p));
      json_object_object_add (a, "snapshot_files", arr);
    }
  json_object_object_add (a, "code", json_object_new_string (ate_code_name (r < 0 ? ate_error_code (err) : ATE_CODE_OK)));
  if (r < 0 && err)
    json_object_object_add (a, "error", json_object_new_string (err->msg));
  json_object_object_add (a, "elapsed_ms", ate_json_new_ms (ate_elapsed_ms (start_ns)));
  ate_log_obj (r < 0 ? ATE_LOG_ERROR : ATE_LOG_INFO, "Handle RPC", a);
}

/* A message protobuf-c cannot decode is the caller's fault:
 * INVALID_ARGUMENT (docs/api.md, "Status codes"). */
static int
malformed (const char *what, struct ate_error **err)
{
  return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                              "malformed %s: not a valid protobuf message", what);
}

/* The three ateom RPCs take the same path through the server: decode,
 * validate (request.c), run the actor step under the service lock, log one
 * record, encode the reply (docs/architecture.md, "How a request flows").
 * One handler does that for all three, so a fix to the path (a log field,
 * the lock, a limit) cannot reach one RPC and miss the others; what differs
 * between them is this table. */
struct workload_rpc
{
  enum rpc_kind kind;
  const char *path; /* the gRPC method path, also the log record's "method" */
  const char *name; /* the short name the lock-holder message uses */
  const ProtobufCMessageDescriptor *request;
};

static const struct workload_rpc workload_rpcs[] = {
  { RPC_RUN, "/ateom.Ateom/RunWorkload", "RunWorkload", &ateom__run_workload_request__descriptor },
  { RPC_CHECKPOINT, "/ateom.Ateom/CheckpointWorkload", "CheckpointWorkload",
    &ateom__checkpoint_workload_request__descriptor },
  { RPC_RESTORE, "/ateom.Ateom/RestoreWorkload", "RestoreWorkload",
    &ateom__restore_workload_request__descriptor },
};

_Static_assert (ATE_N_ELEMENTS (workload_rpcs) == N_WORKLOAD_RPCS, "one row per workload RPC");

static int
unknown_kind (enum rpc_kind kind, struct ate_error **err)
{
  /* Only a programming error gets here; say so instead of running some
   * other RPC on the caller's actor. */
  return ate_error_make_code (err, ATE_CODE_INTERNAL, 0, "unknown request kind %d", (int) kind);
}

static int
workload_fields (enum rpc_kind kind, const ProtobufCMessage *m, struct request_fields *f,
                 struct ate_error **err)
{
  switch (kind)
    {
    case RPC_RUN:
      request_fields_from_run ((const Ateom__RunWorkloadRequest *) m, f);
      return 0;
    case RPC_CHECKPOINT:
      request_fields_from_checkpoint ((const Ateom__CheckpointWorkloadRequest *) m, f);
      return 0;
    case RPC_RESTORE:
      request_fields_from_restore ((const Ateom__RestoreWorkloadRequest *) m, f);
      return 0;
    }
  return unknown_kind (kind, err);
}

static int
run_locked (struct service *svc, const struct workload_rpc *rpc, const struct request_fields *f,
            ate_deadline_t deadline, const struct ate_cancel *cancel, char ***files,
            struct ate_error **err)
{
  struct parsed_request pr;
  cleanup_free char *what = NULL;
  int r;

  /* Validate before waiting for the lock: a bad request fails at once,
   * whatever else is running. */
  if (request_parse (rpc->kind, f, &pr, err) < 0)
    return -1;
  what = xasprintf ("%s for %s/%s/%s", rpc->name, f->ns, f->tmpl, f->id);
  if (service_lock (svc, what, deadline, cancel, err) < 0)
    {
      parsed_request_free (&pr);
      return -1;
    }
  pr.req.cancel = cancel;
  switch (rpc->kind)
    {
    case RPC_RUN:
      r = actor_run (svc->rt, &pr.req, deadline, err);
      break;
    case RPC_CHECKPOINT:
      r = actor_checkpoint (svc->rt, &pr.req, deadline, files, err);
      break;
    case RPC_RESTORE:
      r = actor_restore (svc->rt, &pr.req, deadline, err);
      break;
    default:
      r = unknown_kind (rpc->kind, err);
      break;
    }
  service_unlock (svc);
  parsed_request_free (&pr);
  return r;
}

/* Run and Restore answer an empty message; Checkpoint answers the snapshot
 * files the actor step wrote, which atelet uploads. */
static void
pack_reply (enum rpc_kind kind, char **files, uint8_t **resp, size_t *resp_len)
{
  if (kind != RPC_CHECKPOINT)
    {
      *resp = xmalloc (1);
      *resp_len = 0;
      return;
    }
  Ateom__CheckpointWorkloadResponse out = ATEOM__CHECKPOINT_WORKLOAD_RESPONSE__INIT;
  out.n_snapshot_files = strv_len (files);
  out.snapshot_files = files;
  *resp_len = ateom__checkpoint_workload_response__get_packed_size (&out);
  *resp = xmalloc (*resp_len ? *resp_len : 1);
  ateom__checkpoint_workload_response__pack (&out, *resp);
}

/* The handler of RunWorkload, CheckpointWorkload and RestoreWorkload; ctx
 * is the method's struct workload_method. Every call, decoded or not, ends
 * with one "Handle RPC" record (docs/logging.md). */
static int
handle_workload (void *ctx, const uint8_t *req, size_t len, ate_deadline_t deadline,
                 const struct ate_cancel *cancel, uint8_t **resp, size_t *resp_len,
                 struct ate_error **err)
{
  const struct workload_method *wm = ctx;
  const struct workload_rpc *rpc = wm->rpc;
  int64_t t0 = ate_now_ns ();
  struct request_fields f;
  cleanup_strv char **files = NULL;
  ProtobufCMessage *m = protobuf_c_message_unpack (rpc->request, NULL, len, req);
  int r;

  if (m == NULL)
    {
      r = malformed (rpc->request->short_name, err);
      log_rpc (rpc->path, NULL, t0, r, *err, NULL);
      return r;
    }
  r = request_check_strings (rpc->request, req, len, err);
  if (r < 0)
    {
      /* The record names no identity: the decoded one is cut short. */
      log_rpc (rpc->path, NULL, t0, r, *err, NULL);
      protobuf_c_message_free_unpacked (m, NULL);
      return r;
    }
  r = workload_fields (rpc->kind, m, &f, err);
  if (r < 0)
    {
      log_rpc (rpc->path, NULL, t0, r, *err, NULL);
      protobuf_c_message_free_unpacked (m, NULL);
      return r;
    }
  /* Only a checkpoint sets files; the others leave it NULL, so their
   * record has no snapshot_files. */
  r = run_locked (wm->svc, rpc, &f, deadline, cancel, &files, err);
  log_rpc (rpc->path, &f, t0, r, err ? *err : NULL, files);
  if (r < 0 && err && *err)
    {
      /* The log has the whole message; the caller gets it without host
       * paths (docs/api.md, "Error messages"). */
      struct message_actor who = { f.ns, f.tmpl, f.id };
      char *shown = message_for_caller ((*err)->msg, &wm->svc->paths, &who);
      free ((*err)->msg);
      (*err)->msg = shown;
    }
  protobuf_c_message_free_unpacked (m, NULL);
  if (r < 0)
    return r;
  pack_reply (rpc->kind, files, resp, resp_len);
  return 0;
}

static int
handle_health_check (void *ctx, const uint8_t *req, size_t len, ate_deadline_t deadline,
                     const struct ate_cancel *cancel, uint8_t **resp, size_t *resp_len,
                     struct ate_error **err)
{
  (void) ctx;
  (void) deadline;
  (void) cancel;
  Grpc__Health__V1__HealthCheckRequest *m = grpc__health__v1__health_check_request__unpack (NULL, len, req);
  Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  int r = 0;

  if (m == NULL)
    return malformed ("HealthCheckRequest", err);
  if (request_check_strings (&grpc__health__v1__health_check_request__descriptor, req, len, err)
      < 0)
    {
      grpc__health__v1__health_check_request__free_unpacked (m, NULL);
      return -1;
    }
  if (m->service[0] != '\0' && strcmp (m->service, "ateom.Ateom") != 0)
    r = ate_error_make_code (err, ATE_CODE_NOT_FOUND, 0, "unknown service %s", m->service);
  grpc__health__v1__health_check_request__free_unpacked (m, NULL);
  if (r < 0)
    return r;
  out.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  *resp_len = grpc__health__v1__health_check_response__get_packed_size (&out);
  *resp = xmalloc (*resp_len ? *resp_len : 1);
  grpc__health__v1__health_check_response__pack (&out, *resp);
  return 0;
}

struct service *
service_new (struct actor_runtime *rt, const struct ate_paths *paths)
{
  struct service *svc = xmalloc0 (sizeof (*svc));
  svc->rt = rt;
  svc->paths = *paths;
  pthread_mutex_init (&svc->lock, NULL);
  pthread_mutex_init (&svc->busy_lock, NULL);
  for (size_t i = 0; i < N_WORKLOAD_RPCS; i++)
    {
      svc->workloads[i] = (struct workload_method){ svc, &workload_rpcs[i] };
      svc->methods[i] = (struct rpc_method){ .path = workload_rpcs[i].path,
                                             .handler = handle_workload,
                                             .ctx = &svc->workloads[i] };
    }
  svc->methods[N_WORKLOAD_RPCS]
      = (struct rpc_method){ .path = "/grpc.health.v1.Health/Check",
                             .handler = handle_health_check,
                             .ctx = svc,
                             .reserved = true };
  return svc;
}

void
service_free (struct service *svc)
{
  if (svc == NULL)
    return;
  pthread_mutex_destroy (&svc->lock);
  pthread_mutex_destroy (&svc->busy_lock);
  free (svc);
}

const struct rpc_method *
service_methods (struct service *svc, size_t *n)
{
  *n = ATE_N_ELEMENTS (svc->methods);
  return svc->methods;
}
