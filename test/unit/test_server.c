/* SPDX-License-Identifier: Apache-2.0 */
/* Flag parsing and request validation of the server (no sockets). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "message.h"
#include "options.h"
#include "request.h"
#include "rpc.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
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

static int
apply (struct server_options *o, const char *text, struct ate_error **err)
{
  return server_options_apply_config (o, "cfg", text, strlen (text), err);
}

static void
expect_config_error (const char *text, const char *msg)
{
  struct server_options o;
  struct ate_error *err = NULL;

  server_options_init (&o);
  assert_true (apply (&o, text, &err) < 0);
  assert_string_equal (err->msg, msg);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  ate_error_release (&err);
  server_options_free (&o);
}

static void
test_config_file_syntax (void **state)
{
  (void) state;
  struct server_options o;
  struct ate_error *err = NULL;

  assert_int_equal (parse (&o, &err, "--pod-uid=u", NULL), 0);
  assert_int_equal (apply (&o,
                           "# the operator's settings\n"
                           "\n"
                           "  rootfs-cache-size = 512MiB  \n"
                           "ship-golden-disk=true\r\n"
                           "shutdown-grace = 25\n"
                           "\tresolv-conf = \"/etc/my resolv.conf\"\n"
                           "ingress-ports = 80,8080",
                           &err),
                    0);
  assert_string_equal (o.rootfs_cache_size_text, "512MiB");
  assert_true (o.ship_golden_disk);
  assert_int_equal (o.shutdown_grace_s, 25);
  assert_string_equal (o.resolv_conf, "/etc/my resolv.conf");
  assert_int_equal (server_options_validate (&o, &err), 0);
  assert_int_equal (o.rootfs_cache_size, 512ULL << 20);
  assert_int_equal (o.n_ingress_ports, 2);
  assert_int_equal (o.ingress_ports[1], 8080);
  server_options_free (&o);

  expect_config_error ("log-level = debug\nnope = 1\n", "cfg:2: unknown key \"nope\"");
  expect_config_error ("pod-uid = x\n", "cfg:1: pod-uid can only be given on the command line");
  expect_config_error ("config = /x\n", "cfg:1: config can only be given on the command line");
  expect_config_error ("\n--log-level = debug\n", "cfg:2: write the flag name without dashes: \"log-level\"");
  expect_config_error ("log-level debug\n", "cfg:1: want \"name = value\"");
  expect_config_error ("log-level = debug\n# again\nlog-level = warn\n",
                       "cfg:3: log-level is already set on line 1");
  expect_config_error ("kata-debug = yes\n", "cfg:1: invalid boolean value \"yes\" for -kata-debug");
  expect_config_error ("kata-debug =\n", "cfg:1: invalid boolean value \"\" for -kata-debug");
  expect_config_error ("shutdown-grace = 1h\n",
                       "cfg:1: invalid value \"1h\" for -shutdown-grace: want seconds 0..86400");
  expect_config_error ("run-dir = \"/a\"b\"\n",
                       "cfg:1: run-dir: a quoted value is one \"...\" without quotes inside");
  expect_config_error ("run-dir = \"\n", "cfg:1: run-dir: a quoted value is one \"...\" without quotes inside");

  server_options_init (&o);
  assert_true (server_options_apply_config (&o, "cfg", "a\0b", 3, &err) < 0);
  assert_string_equal (err->msg, "cfg: contains a NUL byte");
  ate_error_release (&err);
  server_options_free (&o);
}

static void
test_config_file_precedence_and_validation (void **state)
{
  (void) state;
  struct server_options o;
  struct ate_error *err = NULL;

  /* The command line wins, but the file's value is still checked. */
  assert_int_equal (parse (&o, &err, "--pod-uid=u", "--rootfs-cache-size=1GiB", "--kata-debug", NULL), 0);
  assert_int_equal (apply (&o, "rootfs-cache-size = 2GiB\nlog-level = warn\n", &err), 0);
  assert_string_equal (o.rootfs_cache_size_text, "1GiB");
  assert_string_equal (o.log_level, "warn");
  assert_true (apply (&o, "kata-debug = maybe\n", &err) < 0);
  assert_string_equal (err->msg, "cfg:1: invalid boolean value \"maybe\" for -kata-debug");
  ate_error_release (&err);
  server_options_free (&o);

  /* A bad value from a file is reported with its file and line, by the
   * same validators as the flags. */
  assert_int_equal (parse (&o, &err, "--pod-uid=u", NULL), 0);
  assert_int_equal (apply (&o, "log-level = info\n\ningress-ports = 0\n", &err), 0);
  assert_true (server_options_validate (&o, &err) < 0);
  assert_string_equal (err->msg, "cfg:3: --ingress-ports: \"0\" is not a port 1..65535");
  ate_error_release (&err);
  server_options_free (&o);

  assert_int_equal (parse (&o, &err, "--pod-uid=u", NULL), 0);
  assert_int_equal (apply (&o, "base-path = relative\n", &err), 0);
  assert_true (server_options_validate (&o, &err) < 0);
  assert_true (str_has_prefix (err->msg, "cfg:1: --base-path"));
  ate_error_release (&err);
  server_options_free (&o);

  /* The same bad value from the command line carries no file. */
  assert_int_equal (parse (&o, &err, "--pod-uid=u", "--ingress-ports=0", NULL), 0);
  assert_int_equal (apply (&o, "ingress-ports = 0\n", &err), 0);
  assert_true (server_options_validate (&o, &err) < 0);
  assert_string_equal (err->msg, "--ingress-ports: \"0\" is not a port 1..65535");
  ate_error_release (&err);
  server_options_free (&o);
}

static void
write_config (const char *path, const char *text, mode_t mode)
{
  struct ate_error *err = NULL;
  assert_int_equal (ate_write_file (path, text, strlen (text), mode, &err), 0);
  assert_int_equal (chmod (path, mode), 0);
}

static void
test_config_file_lookup (void **state)
{
  (void) state;
  struct server_options o;
  struct ate_error *err = NULL;
  char dir[] = "/tmp/test-server-config-XXXXXX";
  cleanup_free char *base_arg = NULL, *node_dir = NULL, *node = NULL, *named = NULL;
  cleanup_free char *config_arg = NULL;

  assert_non_null (mkdtemp (dir));
  base_arg = xasprintf ("--base-path=%s", dir);
  node_dir = xasprintf ("%s/ateom-microvm", dir);
  node = xasprintf ("%s/config", node_dir);
  named = xasprintf ("%s/named.conf", dir);
  config_arg = xasprintf ("--config=%s", named);
  assert_int_equal (mkdir (node_dir, 0755), 0);
  write_config (node, "log-level = debug\n", 0644);
  write_config (named, "log-level = warn\n", 0600);

  if (access (SERVER_CONFIG_IMAGE_PATH, F_OK) == 0)
    print_message ("note: %s exists on this machine; default lookup not checked\n",
                   SERVER_CONFIG_IMAGE_PATH);
  else
    {
      /* The node's file, under the base path. */
      assert_int_equal (parse (&o, &err, "--pod-uid=u", base_arg, NULL), 0);
      assert_int_equal (server_options_load_config (&o, NULL, &err), 0);
      assert_string_equal (o.log_level, "debug");
      assert_string_equal (o.config_files, node);
      server_options_free (&o);
    }

  /* --config, then the environment, replace the default files. */
  assert_int_equal (parse (&o, &err, "--pod-uid=u", base_arg, config_arg, NULL), 0);
  assert_int_equal (server_options_load_config (&o, "/nonexistent", &err), 0);
  assert_string_equal (o.log_level, "warn");
  server_options_free (&o);
  assert_int_equal (parse (&o, &err, "--pod-uid=u", base_arg, NULL), 0);
  assert_int_equal (server_options_load_config (&o, named, &err), 0);
  assert_string_equal (o.log_level, "warn");
  server_options_free (&o);
  assert_int_equal (parse (&o, &err, "--pod-uid=u", base_arg, "--config=", NULL), 0);
  assert_int_equal (server_options_load_config (&o, named, &err), 0);
  assert_string_equal (o.log_level, "info");
  assert_null (o.config_files);
  server_options_free (&o);

  /* A named file must exist, be regular and be writable only by root. */
  assert_int_equal (parse (&o, &err, "--pod-uid=u", "--config=/nonexistent/config", NULL), 0);
  assert_true (server_options_load_config (&o, NULL, &err) < 0);
  assert_non_null (strstr (err->msg, "/nonexistent/config"));
  ate_error_release (&err);
  server_options_free (&o);
  assert_int_equal (parse (&o, &err, "--pod-uid=u", NULL), 0);
  assert_true (server_options_load_config (&o, dir, &err) < 0);
  assert_non_null (strstr (err->msg, "is not a regular file"));
  ate_error_release (&err);
  server_options_free (&o);
  assert_int_equal (parse (&o, &err, "--pod-uid=u", NULL), 0);
  assert_true (server_options_load_config (&o, "relative/config", &err) < 0);
  assert_non_null (strstr (err->msg, "$ATEOM_MICROVM_CONFIG"));
  ate_error_release (&err);
  server_options_free (&o);
  write_config (named, "log-level = warn\n", 0666);
  assert_int_equal (parse (&o, &err, "--pod-uid=u", config_arg, NULL), 0);
  assert_true (server_options_load_config (&o, NULL, &err) < 0);
  assert_non_null (strstr (err->msg, "not writable by group or others"));
  ate_error_release (&err);
  server_options_free (&o);

  assert_int_equal (ate_rm_rf (dir, &err), 0);
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

static size_t
count (const char *hay, const char *needle)
{
  size_t n = 0;
  for (const char *p = hay; (p = strstr (p, needle)) != NULL; p++)
    n++;
  return n;
}

/* atelet forwards every asset name of the SandboxConfig: any name it can
 * send is accepted, unknown ones are ignored and logged once per name. */
static void
test_request_unknown_assets (void **state)
{
  (void) state;
  enum { N = 40 };
  Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry e[N];
  Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry *ep[N];
  static char keys[N][160];
  struct req_builder b;
  struct request_fields f;
  struct parsed_request pr;
  struct ate_error *err = NULL;
  char logged[65536];
  int fd = memfd_create ("log", MFD_CLOEXEC);
  ssize_t len;

  assert_true (fd >= 0);
  builder_init (&b, 1);
  for (size_t i = 0; i < N; i++)
    {
      e[i] = (Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry)
          ATEOM__RUN_WORKLOAD_REQUEST__RUNTIME_ASSET_PATHS_ENTRY__INIT;
      ep[i] = &e[i];
      e[i].key = keys[i];
      e[i].value = "/var/lib/ateom-gvisor/static-files/runsc-0";
    }
  snprintf (keys[0], sizeof (keys[0]), "kata-kernel");
  snprintf (keys[1], sizeof (keys[1]), "kata-image");
  snprintf (keys[2], sizeof (keys[2]), "my gpu firmware");    /* a space */
  snprintf (keys[3], sizeof (keys[3]), "firmware-\xc3\xa9t\xc3\xa9"); /* non-ASCII */
  memset (keys[4], 'k', 150);                                 /* over 64 bytes */
  keys[4][150] = '\0';
  snprintf (keys[5], sizeof (keys[5]), "tab\there");
  for (size_t i = 6; i < N; i++)
    snprintf (keys[i], sizeof (keys[i]), "extra-%zu", i);
  e[5].value = "not/absolute"; /* an unknown asset's value is not ours to judge */
  b.m.n_runtime_asset_paths = N;
  b.m.runtime_asset_paths = ep;

  ate_log_set_fd (fd);
  for (int round = 0; round < 2; round++)
    {
      request_fields_from_run (&b.m, &f);
      assert_int_equal (request_parse (RPC_RUN, &f, &pr, &err), 0);
      assert_int_equal (pr.req.n_assets, 2);
      assert_string_equal (actor_request_asset (&pr.req, "kata-image"), e[1].value);
      assert_null (actor_request_asset (&pr.req, "my gpu firmware"));
      parsed_request_free (&pr);
    }
  ate_log_set_fd (1);
  len = pread (fd, logged, sizeof (logged) - 1, 0);
  assert_true (len > 0);
  logged[len] = '\0';
  close (fd);
  /* Each unknown name once, over two calls. */
  assert_int_equal (count (logged, "runtime asset ignored"), N - 2);
  assert_int_equal (count (logged, "my gpu firmware"), 1);
  assert_int_equal (count (logged, "extra-39\""), 1);

  /* Known names are still checked. */
  e[1].value = "relative/image";
  request_fields_from_run (&b.m, &f);
  assert_true (request_parse (RPC_RUN, &f, &pr, &err) < 0);
  assert_non_null (strstr (err->msg, "runtime_asset_paths[\"kata-image\"]"));
  ate_error_release (&err);
  e[1].value = "/i";

  /* The count cap is far above any SandboxConfig but bounds a call. */
  {
    cleanup_free Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry **many
        = xcalloc (REQUEST_MAX_ASSETS + 1, sizeof (*many));
    for (size_t i = 0; i <= REQUEST_MAX_ASSETS; i++)
      many[i] = &e[i % N];
    b.m.n_runtime_asset_paths = REQUEST_MAX_ASSETS + 1;
    b.m.runtime_asset_paths = many;
    expect_invalid (&b, RPC_RUN, ATE_CODE_INVALID_ARGUMENT, "at most 1024");
  }
}

static void
test_message_for_caller (void **state)
{
  (void) state;
  struct ate_paths paths = { .base = "/var/lib/ateom-gvisor", .run_dir = "/run/vc/vm",
                             .netns_dir = "/run/netns", .kata_run = "/run/kata-containers",
                             .pod_uid = "u1" };
  struct message_actor me = { "default", "counter-microvm", "a1" };
  static const char *const cases[][2] = {
    { "RestoreWorkload default/counter-microvm/a1: no snapshot in "
      "`/var/lib/ateom-gvisor/actors/default:counter-microvm:a1/restore-state` (config.json is "
      "missing)",
      "RestoreWorkload default/counter-microvm/a1: no snapshot in `restore-state` (config.json "
      "is missing)" },
    { "open /var/lib/ateom-gvisor/actors/default:counter-microvm:a1/bundles/c/config.json: No "
      "such file",
      "open bundles/c/config.json: No such file" },
    { "source_url file:///var/lib/ateom-gvisor/actors/default:counter-microvm:a1/restore-state.",
      "source_url file://restore-state." },
    { "disk /var/lib/ateom-gvisor/actors/team-b:secret:b7/actor-rootfs.ext4 is busy",
      "disk <another actor's directory> is busy" },
    { "serial /run/vc/vm/b7/serial.log, socket /run/kata-containers/x (and /tmp/y)",
      "serial <host path>, socket <host path> (and <host path>)" },
    { "GET http://169.254.17.2:80/readyz kept answering 503; path=/readyz",
      "GET http://169.254.17.2:80/readyz kept answering 503; path=/readyz" },
    { "redirect to /library/x from /libexec; mmap /lib/x86_64-linux-gnu/libc.so.6",
      "redirect to /library/x from /libexec; mmap <host path>" },
    { "`/var/lib/ateom-gvisor/actors/default:counter-microvm:a1`: gone",
      "`the actor's directory`: gone" },
    { "", "" },
  };

  for (size_t i = 0; i < ATE_N_ELEMENTS (cases); i++)
    {
      cleanup_free char *m = message_for_caller (cases[i][0], &paths, &me);
      assert_string_equal (m, cases[i][1]);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_flags_go_syntax),
    cmocka_unit_test (test_flags_validate),
    cmocka_unit_test (test_shutdown_grace_fits_pod_termination),
    cmocka_unit_test (test_config_file_syntax),
    cmocka_unit_test (test_config_file_precedence_and_validation),
    cmocka_unit_test (test_config_file_lookup),
    cmocka_unit_test (test_request_valid),
    cmocka_unit_test (test_request_unknown_kind),
    cmocka_unit_test (test_request_rejects_path_tricks),
    cmocka_unit_test (test_request_containers),
    cmocka_unit_test (test_request_assets),
    cmocka_unit_test (test_request_unknown_assets),
    cmocka_unit_test (test_message_for_caller),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
