/* SPDX-License-Identifier: Apache-2.0 */
/* Flag parsing and request validation of the server (no sockets). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "options.h"
#include "request.h"
#include "rpc.h"
#include "util/error.h"
#include "util/util.h"

static int
parse (struct server_options *o, struct ate_error **err, ...)
{
  char *argv[32] = { "ateom-microvm" };
  int argc = 1;
  va_list ap;
  va_start (ap, err);
  for (char *a; (a = va_arg (ap, char *)) != NULL;)
    argv[argc++] = a;
  va_end (ap);
  server_options_init (o);
  return server_options_parse (o, argc, argv, err);
}

static void
test_flags_go_syntax (void **state)
{
  (void) state;
  struct server_options o;
  struct ate_error *err = NULL;

  assert_int_equal (parse (&o, &err, "--pod-uid=abc", "-kata-debug", "--base-path", "/tmp/x",
                           "-cloud-hypervisor-binary=/bin/ch", NULL), 0);
  assert_string_equal (o.pod_uid, "abc");
  assert_true (o.kata_debug);
  assert_string_equal (o.base_path, "/tmp/x");
  assert_string_equal (o.ch_binary, "/bin/ch");
  assert_string_equal (o.run_dir, "/run/vc/vm");
  assert_int_equal (server_options_validate (&o, &err), 0);
  server_options_free (&o);

  /* Booleans take a value only with '='. */
  assert_int_equal (parse (&o, &err, "--kata-debug=false", "--pod-uid", "u", NULL), 0);
  assert_false (o.kata_debug);
  server_options_free (&o);
  assert_true (parse (&o, &err, "--kata-debug=maybe", NULL) < 0);
  assert_non_null (strstr (err->msg, "invalid boolean"));
  ate_error_release (&err);
  server_options_free (&o);

  assert_true (parse (&o, &err, "--nope", NULL) < 0);
  assert_string_equal (err->msg, "flag provided but not defined: -nope");
  ate_error_release (&err);
  server_options_free (&o);

  assert_true (parse (&o, &err, "--pod-uid", NULL) < 0);
  assert_string_equal (err->msg, "flag needs an argument: -pod-uid");
  ate_error_release (&err);
  server_options_free (&o);

  assert_int_equal (parse (&o, &err, "-h", NULL), 0);
  assert_true (o.help);
  server_options_free (&o);
  assert_int_equal (parse (&o, &err, "--version", NULL), 0);
  assert_true (o.version);
  server_options_free (&o);
}

static void
test_flags_validate (void **state)
{
  (void) state;
  struct server_options o;
  struct ate_error *err = NULL;

  assert_int_equal (parse (&o, &err, NULL), 0);
  assert_true (server_options_validate (&o, &err) < 0);
  assert_non_null (strstr (err->msg, "--pod-uid is required"));
  ate_error_release (&err);
  server_options_free (&o);

  assert_int_equal (parse (&o, &err, "--pod-uid=../etc", NULL), 0);
  assert_true (server_options_validate (&o, &err) < 0);
  ate_error_release (&err);
  server_options_free (&o);

  assert_int_equal (parse (&o, &err, "--pod-uid=a", "--base-path=rel", NULL), 0);
  assert_true (server_options_validate (&o, &err) < 0);
  assert_non_null (strstr (err->msg, "--base-path"));
  ate_error_release (&err);
  server_options_free (&o);

  assert_int_equal (parse (&o, &err, "--pod-uid=a", "--log-level=loud", NULL), 0);
  assert_true (server_options_validate (&o, &err) < 0);
  ate_error_release (&err);
  server_options_free (&o);
}

/* The WorkerPool controller leaves the pod's terminationGracePeriodSeconds
 * at Kubernetes' default (30 s; see docs/operations.md, "Upgrading").  On
 * SIGTERM the server lets calls run for --shutdown-grace, cancels them,
 * waits up to RPC_CANCEL_WAIT_S for their handlers, then tears the running
 * VM and the network namespace down: all of it must end before the
 * kubelet's SIGKILL, with a few seconds left for the teardown. */
static void
test_shutdown_grace_fits_pod_termination (void **state)
{
  (void) state;
  const long pod_termination_grace_s = 30, teardown_s = 5;
  struct server_options o;
  struct ate_error *err = NULL;

  assert_int_equal (parse (&o, &err, "--pod-uid=a", NULL), 0);
  assert_true (o.shutdown_grace_s > 0);
  assert_true (o.shutdown_grace_s + RPC_CANCEL_WAIT_S + teardown_s <= pod_termination_grace_s);
  server_options_free (&o);
}

/* Build a RunWorkloadRequest in memory. */
struct req_builder
{
  Ateom__RunWorkloadRequest m;
  Ateom__WorkloadSpec spec;
  Ateom__Container c[30];
  Ateom__Container *cp[30];
  Ateom__Readyz rz;
  Ateom__HTTPGetAction hg;
  Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry a[3];
  Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry *ap[3];
};

static void
builder_init (struct req_builder *b, size_t n_containers)
{
  Ateom__RunWorkloadRequest m = ATEOM__RUN_WORKLOAD_REQUEST__INIT;
  Ateom__WorkloadSpec s = ATEOM__WORKLOAD_SPEC__INIT;
  static char names[30][24];
  b->m = m;
  b->spec = s;
  for (size_t i = 0; i < n_containers; i++)
    {
      Ateom__Container c = ATEOM__CONTAINER__INIT;
      snprintf (names[i], sizeof (names[i]), "c%zu", i);
      b->c[i] = c;
      b->c[i].name = names[i];
      b->cp[i] = &b->c[i];
    }
  b->spec.n_containers = n_containers;
  b->spec.containers = b->cp;
  const char *keys[] = { "kata-kernel", "kata-image", "cloud-hypervisor" };
  const char *vals[] = { "/k", "/i", "/ch" };
  for (int i = 0; i < 3; i++)
    {
      Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry e
          = ATEOM__RUN_WORKLOAD_REQUEST__RUNTIME_ASSET_PATHS_ENTRY__INIT;
      b->a[i] = e;
      b->a[i].key = (char *) keys[i];
      b->a[i].value = (char *) vals[i];
      b->ap[i] = &b->a[i];
    }
  b->m.actor_template_namespace = "default";
  b->m.actor_template_name = "counter-microvm";
  b->m.actor_id = "a1";
  b->m.spec = &b->spec;
  b->m.n_runtime_asset_paths = 3;
  b->m.runtime_asset_paths = b->ap;
}

static int
check (struct req_builder *b, enum rpc_kind kind, struct ate_error **err)
{
  struct request_fields f;
  struct parsed_request pr;
  request_fields_from_run (&b->m, &f);
  int r = request_parse (kind, &f, &pr, err);
  if (r == 0)
    parsed_request_free (&pr);
  return r;
}

static void
expect_invalid (struct req_builder *b, enum rpc_kind kind, enum ate_code code, const char *needle)
{
  struct ate_error *err = NULL;
  assert_true (check (b, kind, &err) < 0);
  if (strstr (err->msg, needle) == NULL)
    fail_msg ("message \"%s\" lacks \"%s\"", err->msg, needle);
  assert_int_equal (ate_error_code (err), code);
  ate_error_free (err);
}

static void
test_request_valid (void **state)
{
  (void) state;
  struct req_builder b;
  struct ate_error *err = NULL;
  struct request_fields f;
  struct parsed_request pr;

  builder_init (&b, 1);
  b.rz = (Ateom__Readyz) ATEOM__READYZ__INIT;
  b.hg = (Ateom__HTTPGetAction) ATEOM__HTTPGET_ACTION__INIT;
  b.hg.port = 80;
  b.hg.path = "/readyz";
  b.rz.http_get = &b.hg;
  b.c[0].readyz = &b.rz;
  request_fields_from_run (&b.m, &f);
  assert_int_equal (request_parse (RPC_RUN, &f, &pr, &err), 0);
  assert_string_equal (pr.req.id, "a1");
  assert_int_equal (pr.req.n_containers, 1);
  assert_int_equal (pr.req.containers[0].readyz_port, 80);
  assert_string_equal (pr.req.containers[0].readyz_path, "/readyz");
  assert_string_equal (actor_request_asset (&pr.req, "kata-image"), "/i");
  assert_null (actor_request_asset (&pr.req, "kata-config"));
  parsed_request_free (&pr);
}

/* A kind outside the enum used to pass as a Restore. */
static void
test_request_unknown_kind (void **state)
{
  (void) state;
  struct req_builder b;

  builder_init (&b, 1);
  expect_invalid (&b, (enum rpc_kind) 3, ATE_CODE_INTERNAL, "unknown request kind 3");
  expect_invalid (&b, (enum rpc_kind) -1, ATE_CODE_INTERNAL, "unknown request kind -1");
}

static void
test_request_rejects_path_tricks (void **state)
{
  (void) state;
  struct req_builder b;
  const char *bad_ids[] = { "..", "../x", "a/b", "A1", "", "a_b", "-a", "a:b" };

  for (size_t i = 0; i < ATE_N_ELEMENTS (bad_ids); i++)
    {
      builder_init (&b, 1);
      b.m.actor_id = (char *) bad_ids[i];
      expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "actor_id");
      expect_invalid (&b, RPC_CHECKPOINT, ATE_CODE_INVALID_ARGUMENT, "actor_id");
    }
  builder_init (&b, 1);
  b.m.actor_template_namespace = "../../etc";
  expect_invalid (&b, RPC_RESTORE, ATE_CODE_INVALID_ARGUMENT, "actor_template_namespace");
  builder_init (&b, 1);
  b.m.actor_template_name = "x/..";
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "actor_template_name");
  builder_init (&b, 1);
  b.a[0].value = "/var/lib/../../etc/shadow";
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "runtime_asset_paths[\"kata-kernel\"]");
  builder_init (&b, 1);
  b.a[1].value = "relative/path";
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "not an absolute path");
}

static void
test_request_containers (void **state)
{
  (void) state;
  struct req_builder b;
  struct ate_error *err = NULL;

  builder_init (&b, 0);
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "actor spec has no containers");
  expect_invalid (&b, RPC_RESTORE, ATE_CODE_INVALID_ARGUMENT, "actor spec has no containers");
  /* A checkpoint does not use the spec. */
  assert_int_equal (check (&b, RPC_CHECKPOINT, &err), 0);

  builder_init (&b, 26);
  expect_invalid (&b, RPC_RUN, ATE_CODE_UNIMPLEMENTED, "at most 25 containers, got 26");

  builder_init (&b, 2);
  b.c[1].name = b.c[0].name;
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "used twice");
  builder_init (&b, 1);
  b.c[0].name = "pause";
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "pause");
  builder_init (&b, 1);
  b.c[0].name = "Bad_Name";
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "spec.containers[0].name");

  builder_init (&b, 1);
  b.rz = (Ateom__Readyz) ATEOM__READYZ__INIT;
  b.hg = (Ateom__HTTPGetAction) ATEOM__HTTPGET_ACTION__INIT;
  b.rz.http_get = &b.hg;
  b.c[0].readyz = &b.rz;
  b.hg.port = 70000;
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "port 70000 is out of range");
  b.hg.port = 80;
  b.hg.path = "/a b";
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "printable ASCII");
}

static void
test_request_assets (void **state)
{
  (void) state;
  struct req_builder b;
  struct ate_error *err = NULL;

  builder_init (&b, 1);
  b.m.n_runtime_asset_paths = 1; /* only kata-kernel */
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "lacks required microvm assets: kata-image");
  /* Restore takes the kernel and image from the snapshot. */
  assert_int_equal (check (&b, RPC_RESTORE, &err), 0);
  b.m.n_runtime_asset_paths = 0;
  expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "lacks required microvm assets: kata-kernel, kata-image");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_flags_go_syntax),
    cmocka_unit_test (test_flags_validate),
    cmocka_unit_test (test_shutdown_grace_fits_pod_termination),
    cmocka_unit_test (test_request_valid),
    cmocka_unit_test (test_request_unknown_kind),
    cmocka_unit_test (test_request_rejects_path_tricks),
    cmocka_unit_test (test_request_containers),
    cmocka_unit_test (test_request_assets),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
