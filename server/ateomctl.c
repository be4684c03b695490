/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ateomctl: a crictl-style client for the ateom service, in C on the gRPC
 * C core.  It sends exactly what it is told (no client-side validation), so
 * it is also a tool to probe the server with bad input.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ateom.pb-c.h"
#include "health.pb-c.h"
#include "util/paths.h"
#include "util/util.h"

#define EXIT_USAGE 64

struct ctl
{
  const char *socket;
  const char *pod_uid;
  const char *base_path;
  long timeout_ms;
  const char *ns, *tmpl, *id, *service;
  size_t n_containers;
  Ateom__Container *containers;
  Ateom__Container **container_ptrs;
  Ateom__Readyz *readyz;
  Ateom__HTTPGetAction *http;
  size_t n_assets;
  Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry *assets;
  Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry **asset_ptrs;
};

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: ateomctl [--socket PATH | --pod-uid UID [--base-path DIR]] [--timeout D]\n"
           "                COMMAND [flags]\n"
           "\n"
           "Commands:\n"
           "  run         RunWorkload: --namespace NS --template NAME --actor ID\n"
           "              --container NAME... [--readyz NAME:PORT[:PATH]]... [--asset NAME=PATH]...\n"
           "  checkpoint  CheckpointWorkload: --namespace NS --template NAME --actor ID;\n"
           "              prints the snapshot files, one per line\n"
           "  restore     RestoreWorkload: same flags as run\n"
           "  health      grpc.health.v1.Health/Check [--service NAME]; prints the status\n"
           "\n"
           "Global flags:\n"
           "  --socket PATH     the server's socket (default\n"
           "                    <base-path>/ateoms/<pod-uid>/ateom.sock)\n"
           "  --pod-uid UID     worker pod UID (to derive the socket path)\n"
           "  --base-path DIR   default " ATE_DEFAULT_BASE_PATH "\n"
           "  --timeout D       call deadline: 500ms, 30s, 5m (default 30s; 0 = none)\n"
           "\n"
           "Exit status: 0 on success; the gRPC status code (1-16) when the call\n"
           "fails, e.g. 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, 12 UNIMPLEMENTED,\n"
           "14 UNAVAILABLE (server not reachable); %d on a usage error.\n",
           EXIT_USAGE);
}

static long
parse_duration_ms (const char *s)
{
  char *end = NULL;
  double v;

  errno = 0;
  v = strtod (s, &end);
  if (errno || end == s || v < 0)
    return -1;
  if (strcmp (end, "ms") == 0)
    return (long) v;
  if (strcmp (end, "s") == 0 || *end == '\0')
    return (long) (v * 1000);
  if (strcmp (end, "m") == 0)
    return (long) (v * 60000);
  return -1;
}

static const char *const code_names[] = {
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
};

/* One unary call.  Returns the status code; on OK *resp holds the reply. */
static int
call_unary (const struct ctl *c, const char *method, const uint8_t *req, size_t req_len,
            uint8_t **resp, size_t *resp_len)
{
  cleanup_free char *target = xasprintf ("unix:%s", c->socket);
  grpc_channel_credentials *creds = grpc_insecure_credentials_create ();
  grpc_channel *ch = grpc_channel_create (target, creds, NULL);
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck (NULL);
  gpr_timespec deadline = c->timeout_ms > 0
                              ? gpr_time_add (gpr_now (GPR_CLOCK_REALTIME),
                                              gpr_time_from_millis (c->timeout_ms, GPR_TIMESPAN))
                              : gpr_inf_future (GPR_CLOCK_REALTIME);
  grpc_slice method_slice = grpc_slice_from_static_string (method);
  grpc_call *call;
  grpc_slice req_slice = grpc_slice_from_copied_buffer ((const char *) req, req_len);
  grpc_byte_buffer *send = grpc_raw_byte_buffer_create (&req_slice, 1);
  grpc_byte_buffer *recv = NULL;
  grpc_metadata_array initial_md, trailing_md;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details;
  grpc_op ops[6];
  grpc_event ev;

  grpc_channel_credentials_release (creds);
  grpc_slice_unref (req_slice);
  grpc_metadata_array_init (&initial_md);
  grpc_metadata_array_init (&trailing_md);
  call = grpc_channel_create_call (ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method_slice, NULL,
                                   deadline, NULL);
  memset (ops, 0, sizeof (ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  if (grpc_call_start_batch (call, ops, 6, (void *) 1, NULL) != GRPC_CALL_OK)
    abort ();
  ev = grpc_completion_queue_pluck (cq, (void *) 1, gpr_inf_future (GPR_CLOCK_REALTIME), NULL);
  if (ev.type != GRPC_OP_COMPLETE)
    abort ();

  if (status == GRPC_STATUS_OK && recv)
    {
      grpc_byte_buffer_reader r;
      grpc_byte_buffer_reader_init (&r, recv);
      grpc_slice s = grpc_byte_buffer_reader_readall (&r);
      grpc_byte_buffer_reader_destroy (&r);
      *resp_len = GRPC_SLICE_LENGTH (s);
      *resp = xmalloc (*resp_len + 1);
      memcpy (*resp, GRPC_SLICE_START_PTR (s), *resp_len);
      grpc_slice_unref (s);
    }
  else if (status != GRPC_STATUS_OK)
    {
      const char *name = (unsigned) status < ATE_N_ELEMENTS (code_names) ? code_names[status] : "UNKNOWN";
      fprintf (stderr, "ateomctl: %s: %.*s\n", name, (int) GRPC_SLICE_LENGTH (details),
               (const char *) GRPC_SLICE_START_PTR (details));
    }
  grpc_slice_unref (details);
  if (recv)
    grpc_byte_buffer_destroy (recv);
  grpc_byte_buffer_destroy (send);
  grpc_metadata_array_destroy (&initial_md);
  grpc_metadata_array_destroy (&trailing_md);
  grpc_call_unref (call);
  grpc_completion_queue_shutdown (cq);
  while (grpc_completion_queue_pluck (cq, NULL, gpr_inf_future (GPR_CLOCK_REALTIME), NULL).type
         != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy (cq);
  grpc_channel_destroy (ch);
  return (int) status;
}

static void
add_container (struct ctl *c, const char *name)
{
  c->containers = xrealloc (c->containers, (c->n_containers + 1) * sizeof (*c->containers));
  Ateom__Container init = ATEOM__CONTAINER__INIT;
  c->containers[c->n_containers] = init;
  c->containers[c->n_containers].name = (char *) name;
  c->n_containers++;
}

static int
add_readyz (struct ctl *c, const char *spec)
{
  cleanup_free char *copy = xstrdup (spec);
  char *port = strchr (copy, ':');
  char *path;

  if (port == NULL)
    return -1;
  *port++ = '\0';
  path = strchr (port, ':');
  if (path)
    *path++ = '\0';
  for (size_t i = 0; i < c->n_containers; i++)
    if (strcmp (c->containers[i].name, copy) == 0)
      {
        Ateom__Readyz rz = ATEOM__READYZ__INIT;
        Ateom__HTTPGetAction hg = ATEOM__HTTPGET_ACTION__INIT;
        Ateom__Readyz *r = xmalloc (sizeof (*r));
        Ateom__HTTPGetAction *h = xmalloc (sizeof (*h));
        *r = rz;
        *h = hg;
        h->port = atoi (port);
        h->path = xstrdup (path ? path : "");
        r->http_get = h;
        c->containers[i].readyz = r;
        return 0;
      }
  return -1;
}

static void
add_asset (struct ctl *c, const char *kv)
{
  const char *eq = strchr (kv, '=');
  Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry e
      = ATEOM__RUN_WORKLOAD_REQUEST__RUNTIME_ASSET_PATHS_ENTRY__INIT;
  c->assets = xrealloc (c->assets, (c->n_assets + 1) * sizeof (*c->assets));
  e.key = eq ? xstrndup (kv, (size_t) (eq - kv)) : xstrdup (kv);
  e.value = xstrdup (eq ? eq + 1 : "");
  c->assets[c->n_assets++] = e;
}

static void
ctl_free (struct ctl *c)
{
  for (size_t i = 0; i < c->n_containers; i++)
    if (c->containers[i].readyz)
      {
        free (c->containers[i].readyz->http_get->path);
        free (c->containers[i].readyz->http_get);
        free (c->containers[i].readyz);
      }
  for (size_t i = 0; i < c->n_assets; i++)
    {
      free (c->assets[i].key);
      free (c->assets[i].value);
    }
  free (c->containers);
  free (c->container_ptrs);
  free (c->assets);
  free (c->asset_ptrs);
}

static int
do_workload (struct ctl *c, const char *cmd)
{
  Ateom__WorkloadSpec spec = ATEOM__WORKLOAD_SPEC__INIT;
  cleanup_free uint8_t *buf = NULL;
  cleanup_free uint8_t *resp = NULL;
  size_t len = 0, resp_len = 0;
  const char *method;
  int st;

  c->container_ptrs = xcalloc (c->n_containers + 1, sizeof (*c->container_ptrs));
  for (size_t i = 0; i < c->n_containers; i++)
    c->container_ptrs[i] = &c->containers[i];
  c->asset_ptrs = xcalloc (c->n_assets + 1, sizeof (*c->asset_ptrs));
  for (size_t i = 0; i < c->n_assets; i++)
    c->asset_ptrs[i] = &c->assets[i];
  spec.n_containers = c->n_containers;
  spec.containers = c->container_ptrs;

  if (strcmp (cmd, "run") == 0)
    {
      Ateom__RunWorkloadRequest m = ATEOM__RUN_WORKLOAD_REQUEST__INIT;
      m.actor_template_namespace = (char *) c->ns;
      m.actor_template_name = (char *) c->tmpl;
      m.actor_id = (char *) c->id;
      m.spec = &spec;
      m.n_runtime_asset_paths = c->n_assets;
      m.runtime_asset_paths = c->asset_ptrs;
      len = ateom__run_workload_request__get_packed_size (&m);
      buf = xmalloc (len + 1);
      ateom__run_workload_request__pack (&m, buf);
      method = "/ateom.Ateom/RunWorkload";
    }
  else if (strcmp (cmd, "restore") == 0)
    {
      Ateom__RestoreWorkloadRequest m = ATEOM__RESTORE_WORKLOAD_REQUEST__INIT;
      m.actor_template_namespace = (char *) c->ns;
      m.actor_template_name = (char *) c->tmpl;
      m.actor_id = (char *) c->id;
      m.spec = &spec;
      m.n_runtime_asset_paths = c->n_assets;
      m.runtime_asset_paths = (Ateom__RestoreWorkloadRequest__RuntimeAssetPathsEntry **) c->asset_ptrs;
      len = ateom__restore_workload_request__get_packed_size (&m);
      buf = xmalloc (len + 1);
      ateom__restore_workload_request__pack (&m, buf);
      method = "/ateom.Ateom/RestoreWorkload";
    }
  else
    {
      Ateom__CheckpointWorkloadRequest m = ATEOM__CHECKPOINT_WORKLOAD_REQUEST__INIT;
      m.actor_template_namespace = (char *) c->ns;
      m.actor_template_name = (char *) c->tmpl;
      m.actor_id = (char *) c->id;
      m.spec = &spec;
      m.n_runtime_asset_paths = c->n_assets;
      m.runtime_asset_paths = (Ateom__CheckpointWorkloadRequest__RuntimeAssetPathsEntry **) c->asset_ptrs;
      len = ateom__checkpoint_workload_request__get_packed_size (&m);
      buf = xmalloc (len + 1);
      ateom__checkpoint_workload_request__pack (&m, buf);
      method = "/ateom.Ateom/CheckpointWorkload";
    }

  st = call_unary (c, method, buf, len, &resp, &resp_len);
  if (st != 0)
    return st;
  if (strcmp (cmd, "checkpoint") == 0)
    {
      Ateom__CheckpointWorkloadResponse *r
          = ateom__checkpoint_workload_response__unpack (NULL, resp_len, resp);
      if (r == NULL)
        {
          fprintf (stderr, "ateomctl: malformed CheckpointWorkloadResponse\n");
          return 2;
        }
      for (size_t i = 0; i < r->n_snapshot_files; i++)
        printf ("%s\n", r->snapshot_files[i]);
      ateom__checkpoint_workload_response__free_unpacked (r, NULL);
    }
  else
    printf ("ok\n");
  return 0;
}

static int
do_health (struct ctl *c)
{
  Grpc__Health__V1__HealthCheckRequest m = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  cleanup_free uint8_t *buf = NULL;
  cleanup_free uint8_t *resp = NULL;
  size_t len, resp_len = 0;
  int st;

  m.service = (char *) (c->service ? c->service : "");
  len = grpc__health__v1__health_check_request__get_packed_size (&m);
  buf = xmalloc (len + 1);
  grpc__health__v1__health_check_request__pack (&m, buf);
  st = call_unary (c, "/grpc.health.v1.Health/Check", buf, len, &resp, &resp_len);
  if (st != 0)
    return st;
  Grpc__Health__V1__HealthCheckResponse *r
      = grpc__health__v1__health_check_response__unpack (NULL, resp_len, resp);
  if (r == NULL)
    {
      fprintf (stderr, "ateomctl: malformed HealthCheckResponse\n");
      return 2;
    }
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value (
      &grpc__health__v1__health_check_response__serving_status__descriptor, r->status);
  printf ("%s\n", v ? v->name : "UNKNOWN");
  st = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING ? 0 : 14;
  grpc__health__v1__health_check_response__free_unpacked (r, NULL);
  return st;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "socket", required_argument, NULL, 'S' },
    { "pod-uid", required_argument, NULL, 'U' },
    { "base-path", required_argument, NULL, 'B' },
    { "timeout", required_argument, NULL, 'T' },
    { "namespace", required_argument, NULL, 'n' },
    { "template", required_argument, NULL, 't' },
    { "actor", required_argument, NULL, 'a' },
    { "container", required_argument, NULL, 'c' },
    { "readyz", required_argument, NULL, 'r' },
    { "asset", required_argument, NULL, 'A' },
    { "service", required_argument, NULL, 's' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct ctl c = { .timeout_ms = 30000, .ns = "", .tmpl = "", .id = "" };
  cleanup_free char *socket = NULL;
  const char *cmd = NULL;
  int opt, st;
  char **readyz = NULL;
  size_t n_readyz = 0;

  /* Flags may come before and after the command. */
  while (optind < argc)
    {
      if ((opt = getopt_long (argc, argv, "+h", longopts, NULL)) == -1)
        {
          if (cmd != NULL)
            {
              fprintf (stderr, "ateomctl: unexpected argument %s\n", argv[optind]);
              return EXIT_USAGE;
            }
          cmd = argv[optind++];
          continue;
        }
      switch (opt)
        {
        case 'S': c.socket = optarg; break;
        case 'U': c.pod_uid = optarg; break;
        case 'B': c.base_path = optarg; break;
        case 'T':
          c.timeout_ms = parse_duration_ms (optarg);
          if (c.timeout_ms < 0)
            {
              fprintf (stderr, "ateomctl: bad --timeout %s\n", optarg);
              return EXIT_USAGE;
            }
          break;
        case 'n': c.ns = optarg; break;
        case 't': c.tmpl = optarg; break;
        case 'a': c.id = optarg; break;
        case 'c': add_container (&c, optarg); break;
        case 'r':
          readyz = xrealloc (readyz, (n_readyz + 1) * sizeof (*readyz));
          readyz[n_readyz++] = optarg;
          break;
        case 'A': add_asset (&c, optarg); break;
        case 's': c.service = optarg; break;
        case 'h': usage (stdout); return 0;
        default: usage (stderr); return EXIT_USAGE;
        }
    }
  if (cmd == NULL || strcmp (cmd, "help") == 0)
    {
      usage (cmd ? stdout : stderr);
      return cmd ? 0 : EXIT_USAGE;
    }
  for (size_t i = 0; i < n_readyz; i++)
    if (add_readyz (&c, readyz[i]) < 0)
      {
        fprintf (stderr, "ateomctl: --readyz %s: want NAME:PORT[:PATH] for a --container NAME\n",
                 readyz[i]);
        return EXIT_USAGE;
      }
  free (readyz);
  if (c.socket == NULL)
    {
      if (c.pod_uid == NULL)
        {
          fprintf (stderr, "ateomctl: give --socket or --pod-uid\n");
          return EXIT_USAGE;
        }
      socket = xasprintf ("%s/ateoms/%s/ateom.sock", c.base_path ? c.base_path : ATE_DEFAULT_BASE_PATH,
                          c.pod_uid);
      c.socket = socket;
    }

  grpc_init ();
  if (strcmp (cmd, "run") == 0 || strcmp (cmd, "checkpoint") == 0 || strcmp (cmd, "restore") == 0)
    st = do_workload (&c, cmd);
  else if (strcmp (cmd, "health") == 0)
    st = do_health (&c);
  else
    {
      fprintf (stderr, "ateomctl: unknown command %s\n", cmd);
      st = EXIT_USAGE;
    }
  ctl_free (&c);
  grpc_shutdown_blocking ();
  return st;
}
