/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kata driver (runtime/kata) against the simulated agent
 * (test/sim/agent) behind a real hybrid-vsock socket: dialing while the
 * guest boots, sandbox -> network -> container, labelled log lines, the
 * counter app across a pause and a restore, in-flight calls failing when
 * the connection dies, and the agent's validation.  Needs root (77
 * otherwise).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "kata/actorlog.h"
#include "kata/agent.h"
#include "kata/agent.pb-c.h"
#include "kata/io.h"
#include "kata/logpump.h"
#include "kata/spec.h"
#include "kata/ttrpc.h"
#include "kata/ttrpc.pb-c.h"
#include "kata/ttrpc_client.h"
#include "kata/vsock.h"
#include "sim_agent.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/util.h"

#define NETNS_PATH "/run/netns/ateom:pod-uid"

static const struct actorlog_labels labels = {
  .key = ACTORLOG_LABELS_KEY, .actor_id = "a1", .template_name = "counter-microvm",
  .template_namespace = "default", .container_name = "main",
};

static struct kata_agent *
dial (struct harness *h)
{
  struct kata_agent *a = NULL;
  struct ate_error *err = NULL;
  if (kata_agent_connect (harness_vsock_path (h), KATA_AGENT_VSOCK_PORT,
                          ate_deadline_in_ms (5000), 1000, 50, &a, &err)
      < 0)
    fail_msg ("dial: %s", err->msg);
  return a;
}

#define OK(call)                                                               \
  do                                                                           \
    {                                                                          \
      struct ate_error *err_ = NULL;                                           \
      struct ate_error **E = &err_;                                            \
      if ((call) < 0)                                                          \
        fail_msg ("%s: %s", #call, err_->msg);                                 \
      (void) E;                                                                \
    }                                                                          \
  while (0)

/* Write an atelet-style bundle whose process runs args, shape and convert
 * it like RunWorkload does. */
static Grpc__Spec *
make_spec (struct harness *h, const char *args_json)
{
  cleanup_free char *bundle = xasprintf ("%s/bundles/main", harness_dir (h));
  cleanup_free char *cfg = xasprintf ("%s/config.json", bundle);
  cleanup_free char *text = xasprintf (
      "{\"ociVersion\":\"\",\"process\":{\"user\":{\"uid\":0,\"gid\":0},\"args\":%s,"
      "\"env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\","
      "\"GREETING=hi\"],\"cwd\":\"/\"},\"root\":{\"path\":\"rootfs\"},\"hostname\":\"runsc\","
      "\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"pause\"},"
      "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\",\"path\":\"/x\"},"
      "{\"type\":\"mount\"}]}}",
      args_json);
  struct json_object *spec = NULL;
  Grpc__Spec *g = NULL;

  OK (ate_mkdir_p (bundle, 0700, E));
  OK (ate_write_file (cfg, text, strlen (text), 0600, E));
  OK (kata_spec_shape (bundle, "a1", NETNS_PATH, &spec, E));
  OK (kata_spec_to_agent (spec, "rootfs", false, &g, E));
  json_object_put (spec);
  return g;
}

static void
start_container (struct kata_agent *a, struct harness *h, const char *args_json)
{
  Grpc__Spec *g = make_spec (h, args_json);
  OK (kata_agent_create_container_blk (a, "a1", "a1", "/dev/vdb", g, ate_deadline_in_ms (30000),
                                       E));
  OK (kata_agent_start_container (a, "a1", ate_deadline_in_ms (30000), E));
  kata_spec_agent_free (g);
}

static void
expect_contains (const char *text, const char *want)
{
  if (text == NULL || strstr (text, want) == NULL)
    fail_msg ("\"%s\" not in:\n%s", want, text ? text : "(null)");
}

static void
test_dial_while_booting (void **state)
{
  (void) state;
  struct harness *h = NULL;
  struct kata_agent *a;
  int64_t start = ate_now_ns ();

  if (harness_new (700, &h) == 77)
    skip ();
  a = dial (h);
  assert_true (ate_elapsed_ms (start) >= 650);
  assert_true (harness_connects (h) >= 2);
  OK (kata_agent_health_check (a, ate_deadline_in_ms (2000), E));
  kata_agent_free (a);
  harness_free (h);
}

static void
test_full_sequence (void **state)
{
  (void) state;
  struct harness *h = NULL;
  struct kata_agent *a;
  struct kata_log_pump *out = NULL, *errp = NULL;
  char path[] = "/tmp/ate-test-kata-log-XXXXXX";
  int logfd = mkostemp (path, O_CLOEXEC);
  cleanup_free char *addr = NULL, *routes = NULL, *neigh = NULL, *log = NULL;
  int32_t status = -1;
  size_t len;

  if (harness_new (0, &h) == 77)
    skip ();
  a = dial (h);
  OK (kata_agent_create_sandbox (a, "runsc", "a1", ate_deadline_in_ms (20000), E));
  OK (kata_agent_configure_guest_network (a, 1400, ate_deadline_in_ms (20000), E));
  {
    char *const ip_addr[] = { "ip", "-o", "addr", "show", "dev", "eth0", NULL };
    char *const ip_route[] = { "ip", "route", NULL };
    char *const ip_neigh[] = { "ip", "neigh", NULL };
    addr = harness_run_in_guest (h, ip_addr);
    routes = harness_run_in_guest (h, ip_route);
    neigh = harness_run_in_guest (h, ip_neigh);
  }
  expect_contains (addr, "inet 169.254.17.2/30");
  expect_contains (routes, "default via 169.254.17.1 dev eth0");
  expect_contains (routes, "169.254.17.0/30 dev eth0");
  expect_contains (neigh, "169.254.17.1 dev eth0 lladdr 02:a8:1e:00:00:01 PERMANENT");
  {
    char *const ip_link[] = { "ip", "-o", "link", "show", "dev", "eth0", NULL };
    cleanup_free char *link = harness_run_in_guest (h, ip_link);
    expect_contains (link, "mtu 1400");
    expect_contains (link, ",UP");
  }

  start_container (a, h,
                   "[\"sh\",\"-c\",\"echo '{\\\"msg\\\":\\\"hello\\\",\\\"level\\\":\\\"INFO\\\"}'; "
                   "echo \\\"plain $GREETING from $(pwd)\\\"; echo oops >&2; exit 3\"]");
  ate_log_set_fd (logfd);
  OK (kata_log_pump_start (a, "a1", "a1", KATA_STREAM_STDOUT, &labels, &out, E));
  OK (kata_log_pump_start (a, "a1", "a1", KATA_STREAM_STDERR, &labels, &errp, E));
  OK (kata_agent_wait_process (a, "a1", "a1", &status, ate_deadline_in_ms (10000), E));
  assert_int_equal (status, 3);
  /* The streams end by themselves once the process is gone. */
  kata_log_pump_stop_join (out);
  kata_log_pump_stop_join (errp);
  ate_log_set_fd (1);
  OK (ate_read_file (path, 1 << 20, &log, &len, E));
  unlink (path);
  close (logfd);
  expect_contains (log, "{\"labels\":{\"ate.dev/actor_id\":\"a1\",\"ate.dev/actor_template_name\":"
                        "\"counter-microvm\",\"ate.dev/actor_template_namespace\":\"default\","
                        "\"ate.dev/container_name\":\"main\"},\"level\":\"INFO\",\"msg\":\"hello\","
                        "\"time\":\"");
  expect_contains (log, "\"message\":\"plain hi from /\"");
  expect_contains (log, "\"message\":\"oops\"");

  kata_agent_close (a);
  kata_agent_free (a);
  harness_free (h);
}

struct blocked_read
{
  struct kata_agent *a;
  pthread_t t;
  struct ate_error *err;
  bool started;
};

static void *
blocked_read_main (void *arg)
{
  struct blocked_read *b = arg;
  uint8_t *buf = NULL;
  size_t n = 0;
  __atomic_store_n (&b->started, true, __ATOMIC_RELEASE);
  /* The counter app never writes to stderr: this blocks. */
  if (kata_agent_read_stderr (b->a, "a1", "a1", 4096, &buf, &n, ATE_DEADLINE_NONE, &b->err) == 0)
    free (buf);
  return NULL;
}

static uint64_t
count_of (const char *body)
{
  const char *p = body ? strstr (body, "count: ") : NULL;
  if (p == NULL)
    fail_msg ("no count in \"%s\"", body ? body : "(null)");
  return strtoull (p + 7, NULL, 10);
}

static void
test_counter_pause_restore (void **state)
{
  (void) state;
  struct harness *h = NULL;
  struct kata_agent *a;
  struct blocked_read b = { 0 };
  uint64_t n;

  if (harness_new (0, &h) == 77)
    skip ();
  a = dial (h);
  OK (kata_agent_create_sandbox (a, "runsc", "a1", ate_deadline_in_ms (20000), E));
  OK (kata_agent_configure_guest_network (a, 1500, ate_deadline_in_ms (20000), E));
  start_container (a, h, "[\"ate-sim-counter\"]");
  {
    cleanup_free char *r1 = harness_http_get (h, "/", 3000);
    cleanup_free char *r2 = harness_http_get (h, "/anything", 3000);
    cleanup_free char *rz = harness_http_get (h, "/readyz", 3000);
    assert_non_null (r1);
    assert_string_equal (r1, "hello from: 169.254.17.2 | preserved memory count: 1\n");
    assert_string_equal (r2, "hello from: 169.254.17.2 | preserved memory count: 2\n");
    assert_string_equal (rz, "ok\n");
  }
  /* Paused: nothing answers, neither the app nor the agent. */
  sim_agent_pause (harness_agent (h));
  {
    cleanup_free char *r = harness_http_get (h, "/", 400);
    struct ate_error *err = NULL;
    assert_null (r);
    assert_true (kata_agent_health_check (a, ate_deadline_in_ms (300), &err) < 0);
    assert_int_equal (ate_error_code (err), ATE_CODE_DEADLINE_EXCEEDED);
    ate_error_release (&err);
  }
  sim_agent_resume (harness_agent (h));
  {
    cleanup_free char *r = harness_http_get (h, "/", 3000);
    n = count_of (r);
    assert_true (n == 3 || n == 4); /* the paused request may count once answered */
  }

  /* A call in flight when the connection dies fails with a clear error. */
  b.a = a;
  pthread_create (&b.t, NULL, blocked_read_main, &b);
  while (!__atomic_load_n (&b.started, __ATOMIC_ACQUIRE))
    usleep (1000);
  usleep (50000);
  assert_int_equal (harness_restore (h), 0);
  pthread_join (b.t, NULL);
  assert_non_null (b.err);
  expect_contains (b.err->msg, "agent ReadStderr: /grpc.AgentService/ReadStderr: ttrpc: "
                               "connection closed by the agent");
  assert_int_equal (ate_error_code (b.err), ATE_CODE_UNAVAILABLE);
  ate_error_release (&b.err);
  kata_agent_free (a);

  /* Restored: the network came back in the new namespace, the count
   * continues from guest memory, the sandbox is still there. */
  {
    char *const ip_addr[] = { "ip", "-o", "addr", "show", "dev", "eth0", NULL };
    cleanup_free char *addr = harness_run_in_guest (h, ip_addr);
    cleanup_free char *r = harness_http_get (h, "/", 3000);
    expect_contains (addr, "inet 169.254.17.2/30");
    assert_int_equal (count_of (r), n + 1);
  }
  a = dial (h);
  OK (kata_agent_health_check (a, ate_deadline_in_ms (2000), E));
  {
    struct ate_error *err = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_true (kata_agent_create_sandbox (a, "runsc", "a1", ate_deadline_in_ms (2000), &err)
                 < 0);
    assert_int_equal (ate_error_code (err), ATE_CODE_ALREADY_EXISTS);
    ate_error_release (&err);
    /* The app's stdout (restarted with the guest) is readable again. */
    OK (kata_agent_read_stdout (a, "a1", "a1", 4096, &buf, &len, ate_deadline_in_ms (3000), E));
    assert_true (len > 0);
    free (buf);
  }
  kata_agent_close (a);
  kata_agent_free (a);
  harness_free (h);
}

/* One request on a raw socket: the response status code. */
static int32_t
raw_call (int fd, uint32_t stream, const char *method)
{
  Grpc__StartContainerRequest sc = GRPC__START_CONTAINER_REQUEST__INIT;
  cleanup_free uint8_t *frame = NULL, *payload = NULL;
  size_t len = 0;
  struct ttrpc_header h;
  Ttrpc__Response *r;
  int32_t code;

  sc.container_id = "nope";
  OK (ttrpc_request_frame (stream, "grpc.AgentService", method, &sc.base, 0, &frame, &len, E));
  OK (kata_io_write_full (fd, frame, len, ate_deadline_in_ms (2000), E));
  OK (ttrpc_frame_read (fd, ate_deadline_in_ms (2000), &h, &payload, NULL, E));
  assert_int_equal (h.stream_id, stream);
  assert_int_equal (h.type, TTRPC_TYPE_RESPONSE);
  r = ttrpc__response__unpack (NULL, h.length, payload);
  code = r->status ? r->status->code : 0;
  ttrpc__response__free_unpacked (r, NULL);
  return code;
}

static void
expect_code (int r, struct ate_error **err, enum ate_code code, const char *msg)
{
  assert_true (r < 0);
  assert_int_equal (ate_error_code (*err), code);
  expect_contains ((*err)->msg, msg);
  ate_error_release (err);
}

static void
test_agent_validation (void **state)
{
  (void) state;
  struct harness *h = NULL;
  struct kata_agent *a;
  struct ate_error *err = NULL;
  Grpc__Spec *g;
  int fd = -1;

  if (harness_new (0, &h) == 77)
    skip ();
  a = dial (h);
  g = make_spec (h, "[\"sleep\",\"60\"]");
  expect_code (kata_agent_create_container_blk (a, "a1", "a1", "/dev/vdb", g,
                                                ATE_DEADLINE_NONE, &err),
               &err, ATE_CODE_FAILED_PRECONDITION, "sandbox not created");
  OK (kata_agent_create_sandbox (a, "runsc", "a1", ate_deadline_in_ms (2000), E));
  expect_code (kata_agent_create_sandbox (a, "runsc", "a2", ATE_DEADLINE_NONE, &err), &err,
               ATE_CODE_ALREADY_EXISTS, "sandbox a1 already created");
  expect_code (kata_agent_create_container_blk (a, "a1", "a1", "/dev/vdc", g, ATE_DEADLINE_NONE,
                                                &err),
               &err, ATE_CODE_NOT_FOUND, "no device /dev/vdc in the VM");
  expect_code (kata_agent_start_container (a, "a1", ATE_DEADLINE_NONE, &err), &err,
               ATE_CODE_NOT_FOUND, "container a1 not found");
  {
    /* A spec that keeps its network namespace would isolate the app. */
    Grpc__LinuxNamespace ns = GRPC__LINUX_NAMESPACE__INIT, *nss[1] = { &ns };
    Grpc__LinuxNamespace **saved = g->linux->namespaces;
    size_t n_saved = g->linux->n_namespaces;
    ns.type = "network";
    g->linux->namespaces = nss;
    g->linux->n_namespaces = 1;
    expect_code (kata_agent_create_container_blk (a, "a1", "a1", "/dev/vdb", g,
                                                  ATE_DEADLINE_NONE, &err),
                 &err, ATE_CODE_INVALID_ARGUMENT, "its own network namespace");
    g->linux->namespaces = saved;
    g->linux->n_namespaces = n_saved;
  }
  OK (kata_agent_create_container_blk (a, "a1", "a1", "/dev/vdb", g, ate_deadline_in_ms (5000),
                                       E));
  expect_code (kata_agent_create_container_blk (a, "a1", "a1", "/dev/vdb", g, ATE_DEADLINE_NONE,
                                                &err),
               &err, ATE_CODE_ALREADY_EXISTS, "container a1 already exists");
  OK (kata_agent_start_container (a, "a1", ate_deadline_in_ms (5000), E));
  expect_code (kata_agent_start_container (a, "a1", ATE_DEADLINE_NONE, &err), &err,
               ATE_CODE_FAILED_PRECONDITION, "already started");
  {
    uint8_t *buf = NULL;
    size_t n = 0;
    expect_code (kata_agent_read_stdout (a, "zz", "zz", 4096, &buf, &n, ATE_DEADLINE_NONE, &err),
                 &err, ATE_CODE_NOT_FOUND, "container zz not found");
    /* The agent honours the request's deadline. */
    expect_code (kata_agent_read_stdout (a, "a1", "a1", 4096, &buf, &n, ate_deadline_in_ms (200),
                                         &err),
                 &err, ATE_CODE_DEADLINE_EXCEEDED, "");
  }
  kata_spec_agent_free (g);

  /* Raw ttrpc: unknown methods, even and repeated stream ids. */
  OK (kata_vsock_connect (harness_vsock_path (h), 1024, ate_deadline_in_ms (2000), &fd, E));
  assert_int_equal (raw_call (fd, 1, "ExecProcess"), ATE_CODE_UNIMPLEMENTED);
  assert_int_equal (raw_call (fd, 4, "StartContainer"), ATE_CODE_INVALID_ARGUMENT);
  assert_int_equal (raw_call (fd, 1, "StartContainer"), ATE_CODE_INVALID_ARGUMENT);
  assert_int_equal (raw_call (fd, 7, "StartContainer"), ATE_CODE_NOT_FOUND);
  close (fd);

  OK (kata_agent_destroy_sandbox (a, ate_deadline_in_ms (5000), E));
  OK (kata_agent_create_sandbox (a, "runsc", "a2", ate_deadline_in_ms (2000), E));
  kata_agent_close (a);
  kata_agent_free (a);
  harness_free (h);
}

static void
test_corrupt_memory_after_restore (void **state)
{
  (void) state;
  struct harness *h = NULL;
  struct kata_agent *a;
  struct ate_error *err = NULL;

  if (harness_new (0, &h) == 77)
    skip ();
  a = dial (h);
  OK (kata_agent_create_sandbox (a, "runsc", "a1", ate_deadline_in_ms (2000), E));
  kata_agent_free (a);
  harness_corrupt (h, 64 + 2);
  assert_int_equal (harness_restore (h), 0);
  a = dial (h);
  expect_code (kata_agent_health_check (a, ate_deadline_in_ms (2000), &err), &err,
               ATE_CODE_UNAVAILABLE, "not SERVING");
  expect_code (kata_agent_create_sandbox (a, "runsc", "a1", ate_deadline_in_ms (2000), &err),
               &err, ATE_CODE_DATA_LOSS, "agent state checksum mismatch");
  kata_agent_free (a);
  harness_free (h);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_dial_while_booting),
    cmocka_unit_test (test_full_sequence),
    cmocka_unit_test (test_counter_pause_restore),
    cmocka_unit_test (test_agent_validation),
    cmocka_unit_test (test_corrupt_memory_after_restore),
  };
  if (geteuid () != 0)
    {
      fprintf (stderr, "SKIP: the kata integration tests need root (network namespaces)\n");
      return 77;
    }
  return cmocka_run_group_tests (tests, NULL, NULL);
}
