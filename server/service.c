/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "service.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "actor.h"
#include "ateom.pb-c.h"
#include "health.pb-c.h"
#include "request.h"
#include "util/error.h"
#include "util/json.h"
#include "util/log.h"
#include "util/util.h"

struct service
{
  struct actor_runtime *rt;
  /* RPCs that change an actor are serialised (spec 1.6); the wait for the
   * lock honours the caller's deadline. */
  pthread_mutex_t lock;
  pthread_mutex_t busy_lock;
  char busy[160]; /* what holds the lock, for the timeout message */
  struct rpc_method methods[5];
};

static int
service_lock (struct service *svc, const char *what, ate_deadline_t deadline,
              struct ate_error **err)
{
  int r;

  if (deadline == ATE_DEADLINE_NONE)
    r = pthread_mutex_lock (&svc->lock);
  else
    {
      struct timespec ts = { .tv_sec = deadline / ATE_NSEC_PER_SEC,
                             .tv_nsec = deadline % ATE_NSEC_PER_SEC };
      r = pthread_mutex_clocklock (&svc->lock, CLOCK_MONOTONIC, &ts);
    }
  if (r != 0)
    {
      char holder[sizeof (svc->busy)];
      pthread_mutex_lock (&svc->busy_lock);
      memcpy (holder, svc->busy, sizeof (holder));
      pthread_mutex_unlock (&svc->busy_lock);
      return ate_error_make_code (err, r == ETIMEDOUT ? ATE_CODE_DEADLINE_EXCEEDED : ATE_CODE_INTERNAL,
                                  r == ETIMEDOUT ? 0 : r,
                                  "deadline expired while waiting for %s to finish", holder);
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

/* One "Handle RPC" record per call (spec 1.7). */
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

static int
malformed (const char *what, struct ate_error **err)
{
  return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                              "malformed %s: not a valid protobuf message", what);
}

static int
pack_empty (uint8_t **resp, size_t *len)
{
  *resp = xmalloc (1);
  *len = 0;
  return 0;
}

static int
run_locked (struct service *svc, enum rpc_kind kind, const char *method,
            const struct request_fields *f, ate_deadline_t deadline, char ***files,
            struct ate_error **err)
{
  struct parsed_request pr;
  cleanup_free char *what = NULL;
  int r;

  if (request_parse (kind, f, &pr, err) < 0)
    return -1;
  what = xasprintf ("%s for %s/%s/%s", method, f->ns, f->tmpl, f->id);
  if (service_lock (svc, what, deadline, err) < 0)
    {
      parsed_request_free (&pr);
      return -1;
    }
  switch (kind)
    {
    case RPC_RUN:
      r = actor_run (svc->rt, &pr.req, deadline, err);
      break;
    case RPC_CHECKPOINT:
      r = actor_checkpoint (svc->rt, &pr.req, deadline, files, err);
      break;
    case RPC_RESTORE:
    default:
      r = actor_restore (svc->rt, &pr.req, deadline, err);
      break;
    }
  service_unlock (svc);
  parsed_request_free (&pr);
  return r;
}

static int
handle_run (void *ctx, const uint8_t *req, size_t len, ate_deadline_t deadline, uint8_t **resp,
            size_t *resp_len, struct ate_error **err)
{
  int64_t t0 = ate_now_ns ();
  struct request_fields f;
  Ateom__RunWorkloadRequest *m = ateom__run_workload_request__unpack (NULL, len, req);
  int r;

  if (m == NULL)
    {
      r = malformed ("RunWorkloadRequest", err);
      log_rpc ("/ateom.Ateom/RunWorkload", NULL, t0, r, *err, NULL);
      return r;
    }
  request_fields_from_run (m, &f);
  r = run_locked (ctx, RPC_RUN, "RunWorkload", &f, deadline, NULL, err);
  log_rpc ("/ateom.Ateom/RunWorkload", &f, t0, r, err ? *err : NULL, NULL);
  ateom__run_workload_request__free_unpacked (m, NULL);
  return r < 0 ? r : pack_empty (resp, resp_len);
}

static int
handle_checkpoint (void *ctx, const uint8_t *req, size_t len, ate_deadline_t deadline,
                   uint8_t **resp, size_t *resp_len, struct ate_error **err)
{
  int64_t t0 = ate_now_ns ();
  struct request_fields f;
  cleanup_strv char **files = NULL;
  Ateom__CheckpointWorkloadRequest *m = ateom__checkpoint_workload_request__unpack (NULL, len, req);
  int r;

  if (m == NULL)
    {
      r = malformed ("CheckpointWorkloadRequest", err);
      log_rpc ("/ateom.Ateom/CheckpointWorkload", NULL, t0, r, *err, NULL);
      return r;
    }
  request_fields_from_checkpoint (m, &f);
  r = run_locked (ctx, RPC_CHECKPOINT, "CheckpointWorkload", &f, deadline, &files, err);
  log_rpc ("/ateom.Ateom/CheckpointWorkload", &f, t0, r, err ? *err : NULL, files);
  ateom__checkpoint_workload_request__free_unpacked (m, NULL);
  if (r < 0)
    return r;

  Ateom__CheckpointWorkloadResponse out = ATEOM__CHECKPOINT_WORKLOAD_RESPONSE__INIT;
  out.n_snapshot_files = strv_len (files);
  out.snapshot_files = files;
  *resp_len = ateom__checkpoint_workload_response__get_packed_size (&out);
  *resp = xmalloc (*resp_len);
  ateom__checkpoint_workload_response__pack (&out, *resp);
  return 0;
}

static int
handle_restore (void *ctx, const uint8_t *req, size_t len, ate_deadline_t deadline,
                uint8_t **resp, size_t *resp_len, struct ate_error **err)
{
  int64_t t0 = ate_now_ns ();
  struct request_fields f;
  Ateom__RestoreWorkloadRequest *m = ateom__restore_workload_request__unpack (NULL, len, req);
  int r;

  if (m == NULL)
    {
      r = malformed ("RestoreWorkloadRequest", err);
      log_rpc ("/ateom.Ateom/RestoreWorkload", NULL, t0, r, *err, NULL);
      return r;
    }
  request_fields_from_restore (m, &f);
  r = run_locked (ctx, RPC_RESTORE, "RestoreWorkload", &f, deadline, NULL, err);
  log_rpc ("/ateom.Ateom/RestoreWorkload", &f, t0, r, err ? *err : NULL, NULL);
  ateom__restore_workload_request__free_unpacked (m, NULL);
  return r < 0 ? r : pack_empty (resp, resp_len);
}

static int
handle_health_check (void *ctx, const uint8_t *req, size_t len, ate_deadline_t deadline,
                     uint8_t **resp, size_t *resp_len, struct ate_error **err)
{
  (void) ctx;
  (void) deadline;
  Grpc__Health__V1__HealthCheckRequest *m = grpc__health__v1__health_check_request__unpack (NULL, len, req);
  Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  int r = 0;

  if (m == NULL)
    return malformed ("HealthCheckRequest", err);
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
service_new (struct actor_runtime *rt)
{
  struct service *svc = xmalloc0 (sizeof (*svc));
  svc->rt = rt;
  pthread_mutex_init (&svc->lock, NULL);
  pthread_mutex_init (&svc->busy_lock, NULL);
  svc->methods[0] = (struct rpc_method){ "/ateom.Ateom/RunWorkload", handle_run, svc };
  svc->methods[1] = (struct rpc_method){ "/ateom.Ateom/CheckpointWorkload", handle_checkpoint, svc };
  svc->methods[2] = (struct rpc_method){ "/ateom.Ateom/RestoreWorkload", handle_restore, svc };
  svc->methods[3] = (struct rpc_method){ "/grpc.health.v1.Health/Check", handle_health_check, svc };
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
  *n = 4;
  return svc->methods;
}
