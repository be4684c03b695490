/* SPDX-License-Identifier: Apache-2.0 */
/* The agent calls put exactly the reference's fields on the wire (spec
 * 5.3, 6.6), checked against a recording ttrpc server. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "google/protobuf/empty.pb-c.h"
#include "kata/agent.h"
#include "kata/agent.pb-c.h"
#include "kata/health.pb-c.h"
#include "kata/io.h"
#include "kata/spec.h"
#include "kata/ttrpc.h"
#include "kata/ttrpc.pb-c.h"
#include "kata/types.pb-c.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/util.h"

/* ---- a recording server: remembers the last request, answers by method */

struct recorder
{
  int fd;
  pthread_t thread;
  char service[64], method[64];
  uint8_t payload[8192];
  size_t payload_len;
  int64_t timeout_nano;
  int32_t status_code; /* answer with this status when non-zero */
  int32_t health;      /* HealthCheckResponse status */
  const char *data;    /* ReadStream data */
  struct
  {
    char method[64];
    uint8_t payload[8192];
    size_t len;
  } log[8]; /* every request's inner payload, in order */
  int n_log;
};

static void
answer (struct recorder *r, uint32_t stream)
{
  Grpc__ReadStreamResponse rs = GRPC__READ_STREAM_RESPONSE__INIT;
  Grpc__WaitProcessResponse wp = GRPC__WAIT_PROCESS_RESPONSE__INIT;
  Grpc__HealthCheckResponse hc = GRPC__HEALTH_CHECK_RESPONSE__INIT;
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  ProtobufCMessage *msg = &empty.base;
  cleanup_free uint8_t *frame = NULL;
  size_t len = 0;
  struct ate_error *err = NULL;

  if (strcmp (r->method, "ReadStdout") == 0 || strcmp (r->method, "ReadStderr") == 0)
    {
      rs.data.data = (uint8_t *) r->data;
      rs.data.len = r->data ? strlen (r->data) : 0;
      msg = &rs.base;
    }
  else if (strcmp (r->method, "WaitProcess") == 0)
    {
      wp.status = 137;
      msg = &wp.base;
    }
  else if (strcmp (r->method, "Check") == 0)
    {
      hc.status = r->health;
      msg = &hc.base;
    }
  ttrpc_response_frame (stream, r->status_code, "container \"x\" not found", msg, &frame, &len,
                        &err);
  kata_io_write_full (r->fd, frame, len, ATE_DEADLINE_NONE, &err);
}

static void *
recorder_main (void *arg)
{
  struct recorder *r = arg;
  for (;;)
    {
      struct ttrpc_header h;
      uint8_t *payload = NULL;
      struct ate_error *err = NULL;
      Ttrpc__Request *req;

      if (ttrpc_frame_read (r->fd, ATE_DEADLINE_NONE, &h, &payload, NULL, &err) < 0)
        {
          ate_error_free (err);
          return NULL;
        }
      req = ttrpc__request__unpack (NULL, h.length, payload);
      snprintf (r->service, sizeof (r->service), "%s", req->service);
      snprintf (r->method, sizeof (r->method), "%s", req->method);
      r->payload_len = req->payload.len < sizeof (r->payload) ? req->payload.len : 0;
      if (r->payload_len)
        memcpy (r->payload, req->payload.data, r->payload_len);
      r->timeout_nano = req->timeout_nano;
      if (r->n_log < 8 && req->payload.len <= sizeof (r->log[0].payload))
        {
          snprintf (r->log[r->n_log].method, sizeof (r->log[0].method), "%s", req->method);
          if (req->payload.len)
            memcpy (r->log[r->n_log].payload, req->payload.data, req->payload.len);
          r->log[r->n_log++].len = req->payload.len;
        }
      /* The whole envelope, for the byte-exact check. */
      if (h.length <= sizeof (r->payload) && strcmp (req->method, "StartContainer") == 0)
        {
          memcpy (r->payload, payload, h.length);
          r->payload_len = h.length;
        }
      ttrpc__request__free_unpacked (req, NULL);
      free (payload);
      answer (r, h.stream_id);
    }
}

static struct recorder rec;
static struct kata_agent *agent;

static int
setup (void **state)
{
  (void) state;
  int sv[2];
  struct ate_error *err = NULL;

  memset (&rec, 0, sizeof (rec));
  rec.health = GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  rec.fd = sv[1];
  assert_int_equal (kata_agent_new_from_fd (sv[0], &agent, &err), 0);
  assert_int_equal (pthread_create (&rec.thread, NULL, recorder_main, &rec), 0);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  kata_agent_free (agent);
  pthread_join (rec.thread, NULL);
  close (rec.fd);
  return 0;
}

#define UNPACK(T, fn) fn##__unpack (NULL, rec.payload_len, rec.payload)

static void
test_create_sandbox (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  Grpc__CreateSandboxRequest *r;

  assert_int_equal (kata_agent_create_sandbox (agent, "runsc", "a1", ate_deadline_in_ms (20000),
                                               &err),
                    0);
  assert_string_equal (rec.service, "grpc.AgentService");
  assert_string_equal (rec.method, "CreateSandbox");
  assert_true (rec.timeout_nano > 19 * 1000000000LL && rec.timeout_nano <= 20 * 1000000000LL);
  r = UNPACK (Grpc__CreateSandboxRequest, grpc__create_sandbox_request);
  assert_string_equal (r->hostname, "runsc");
  assert_string_equal (r->sandbox_id, "a1");
  assert_int_equal (r->n_storages, 0);
  assert_int_equal (r->n_dns, 0);
  assert_false (r->sandbox_pidns);
  /* The reference sends nothing else: the payload is exactly the two
   * strings. */
  assert_int_equal (rec.payload_len, 2 + 5 + 2 + 2);
  grpc__create_sandbox_request__free_unpacked (r, NULL);
}

static void
test_guest_network (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  Grpc__AddARPNeighborsRequest *a;

  assert_int_equal (kata_agent_configure_guest_network (agent, 1400, ATE_DEADLINE_NONE, &err),
                    0);
  /* The last of the three calls. */
  assert_string_equal (rec.method, "AddARPNeighbors");
  a = UNPACK (x, grpc__add_arpneighbors_request);
  assert_int_equal (a->neighbors->n_arpneighbors, 1);
  Types__ARPNeighbor *n = a->neighbors->arpneighbors[0];
  assert_int_equal (n->toipaddress->family, TYPES__IPFAMILY__v4);
  assert_string_equal (n->toipaddress->address, "169.254.17.1");
  assert_string_equal (n->toipaddress->mask, "");
  assert_string_equal (n->device, "eth0");
  assert_string_equal (n->lladdr, "02:a8:1e:00:00:01");
  assert_int_equal (n->state, 0x80);
  assert_int_equal (n->flags, 0);
  grpc__add_arpneighbors_request__free_unpacked (a, NULL);
}

static void
test_guest_network_interface_and_routes (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  Grpc__UpdateInterfaceRequest *ui;
  Grpc__UpdateRoutesRequest *ur;
  Types__Route *link, *def;

  assert_int_equal (kata_agent_configure_guest_network (agent, 1500, ATE_DEADLINE_NONE, &err),
                    0);
  assert_int_equal (rec.n_log, 3);
  assert_string_equal (rec.log[0].method, "UpdateInterface");
  assert_string_equal (rec.log[1].method, "UpdateRoutes");
  assert_string_equal (rec.log[2].method, "AddARPNeighbors");
  ui = grpc__update_interface_request__unpack (NULL, rec.log[0].len, rec.log[0].payload);
  assert_string_equal (ui->interface->device, "eth0");
  assert_string_equal (ui->interface->name, "eth0");
  assert_string_equal (ui->interface->hwaddr, "02:a8:1e:00:00:02");
  assert_int_equal (ui->interface->mtu, 1500);
  assert_int_equal (ui->interface->n_ipaddresses, 1);
  assert_int_equal (ui->interface->ipaddresses[0]->family, TYPES__IPFAMILY__v4);
  assert_string_equal (ui->interface->ipaddresses[0]->address, "169.254.17.2");
  assert_string_equal (ui->interface->ipaddresses[0]->mask, "30");
  assert_string_equal (ui->interface->type, "");
  assert_string_equal (ui->interface->devicepath, "");
  assert_int_equal (ui->interface->raw_flags, 0);
  grpc__update_interface_request__free_unpacked (ui, NULL);

  ur = grpc__update_routes_request__unpack (NULL, rec.log[1].len, rec.log[1].payload);
  assert_int_equal (ur->routes->n_routes, 2);
  link = ur->routes->routes[0];
  def = ur->routes->routes[1];
  assert_string_equal (link->dest, "169.254.17.0/30");
  assert_string_equal (link->gateway, "");
  assert_string_equal (link->device, "eth0");
  assert_int_equal (link->scope, 253);
  assert_int_equal (link->family, TYPES__IPFAMILY__v4);
  assert_string_equal (def->dest, "");
  assert_string_equal (def->gateway, "169.254.17.1");
  assert_string_equal (def->device, "eth0");
  assert_int_equal (def->scope, 0);
  assert_string_equal (def->source, "");
  assert_int_equal (def->mtu, 0);
  grpc__update_routes_request__free_unpacked (ur, NULL);

  /* A failing call stops the sequence and names itself. */
  rec.status_code = 13;
  assert_true (kata_agent_configure_guest_network (agent, 1500, ATE_DEADLINE_NONE, &err) < 0);
  assert_int_equal (rec.n_log, 4);
  assert_non_null (strstr (err->msg, "configure guest network: agent UpdateInterface: "
                                     "/grpc.AgentService/UpdateInterface: INTERNAL: "));
  assert_int_equal (ate_error_code (err), ATE_CODE_INTERNAL);
  ate_error_release (&err);
}

static void
test_create_container_blk (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct json_object *spec = NULL;
  Grpc__Spec *g = NULL;
  Grpc__CreateContainerRequest *c;
  static const char json[] = "{\"ociVersion\":\"1.0.2\",\"hostname\":\"runsc\","
                             "\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
                             "\"process\":{\"args\":[\"sleep\",\"3600\"],\"cwd\":\"/\"}}";

  assert_int_equal (ate_json_parse (json, strlen (json), 0, &spec, &err), 0);
  assert_int_equal (kata_spec_to_agent (spec, "rootfs", true, &g, &err), 0);
  assert_int_equal (kata_agent_create_container_blk (agent, "a1", "a1", "/dev/vdb", g,
                                                     ate_deadline_in_ms (30000), &err),
                    0);
  assert_string_equal (rec.method, "CreateContainer");
  c = UNPACK (x, grpc__create_container_request);
  assert_string_equal (c->container_id, "a1");
  assert_string_equal (c->exec_id, "a1");
  assert_int_equal (c->n_storages, 1);
  assert_string_equal (c->storages[0]->driver, "blk");
  assert_string_equal (c->storages[0]->source, "/dev/vdb");
  assert_string_equal (c->storages[0]->fstype, "ext4");
  assert_string_equal (c->storages[0]->mount_point, "/run/kata-containers/a1/rootfs");
  assert_int_equal (c->storages[0]->n_options, 1);
  assert_string_equal (c->storages[0]->options[0], "rw");
  assert_int_equal (c->storages[0]->n_driver_options, 0);
  assert_null (c->storages[0]->fs_group);
  assert_int_equal (c->n_devices, 0);
  assert_null (c->string_user);
  /* Root is the storage's mount point, writable; the rest is the spec. */
  assert_string_equal (c->oci->root->path, "/run/kata-containers/a1/rootfs");
  assert_false (c->oci->root->readonly);
  assert_string_equal (c->oci->version, "1.0.2");
  assert_string_equal (c->oci->process->args[0], "sleep");
  grpc__create_container_request__free_unpacked (c, NULL);
  /* The caller's spec is not modified. */
  assert_string_equal (g->root->path, "rootfs");
  assert_true (g->root->readonly);
  kata_spec_agent_free (g);
  json_object_put (spec);

  assert_true (kata_agent_create_container_blk (agent, "a1", "a1", "/dev/vdb", NULL,
                                                ATE_DEADLINE_NONE, &err)
               < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  ate_error_release (&err);
}

static void
test_start_container_bytes (void **state)
{
  (void) state;
  /* The reference's bytes: the Request envelope of StartContainer{"a1"}
   * without
   * a deadline, 41 bytes. */
  static const uint8_t expect[41] = {
    0x0a, 0x11, 'g', 'r', 'p', 'c', '.', 'A', 'g', 'e', 'n', 't', 'S', 'e',
    'r',  'v',  'i', 'c', 'e', 0x12, 0x0e, 'S', 't', 'a', 'r', 't', 'C', 'o',
    'n',  't',  'a', 'i', 'n', 'e', 'r', 0x1a, 0x04, 0x0a, 0x02, 'a', '1',
  };
  struct ate_error *err = NULL;

  assert_int_equal (kata_agent_start_container (agent, "a1", ATE_DEADLINE_NONE, &err), 0);
  assert_int_equal (rec.payload_len, 41);
  assert_memory_equal (rec.payload, expect, 41);
}

static void
test_read_streams_and_wait (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  uint8_t *buf = NULL;
  size_t n = 99;
  int32_t status = 0;
  Grpc__ReadStreamRequest *r;

  rec.data = "line 1\nline 2\n";
  assert_int_equal (kata_agent_read_stdout (agent, "a1", "a1", 4096, &buf, &n, ATE_DEADLINE_NONE,
                                            &err),
                    0);
  assert_int_equal (n, 14);
  assert_memory_equal (buf, "line 1\nline 2\n", 14);
  free (buf);
  assert_int_equal (rec.timeout_nano, 0);
  r = UNPACK (x, grpc__read_stream_request);
  assert_string_equal (r->container_id, "a1");
  assert_string_equal (r->exec_id, "a1");
  assert_int_equal (r->len, 4096);
  grpc__read_stream_request__free_unpacked (r, NULL);

  /* A reply larger than asked is refused. */
  assert_true (kata_agent_read_stderr (agent, "a1", "a1", 4, &buf, &n, ATE_DEADLINE_NONE, &err)
               < 0);
  assert_string_equal (rec.method, "ReadStderr");
  assert_non_null (strstr (err->msg, "returned 14 bytes for a 4 byte read"));
  ate_error_release (&err);

  /* Empty data is the end of the stream. */
  rec.data = NULL;
  assert_int_equal (kata_agent_read_stderr (agent, "a1", "a1", 4096, &buf, &n, ATE_DEADLINE_NONE,
                                            &err),
                    0);
  assert_int_equal (n, 0);
  assert_null (buf);

  /* The agent's status code and message come through. */
  rec.status_code = 5;
  assert_true (kata_agent_read_stdout (agent, "zz", "zz", 4096, &buf, &n, ATE_DEADLINE_NONE,
                                       &err)
               < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_NOT_FOUND);
  assert_string_equal (err->msg, "agent ReadStdout: /grpc.AgentService/ReadStdout: NOT_FOUND: "
                                 "container \"x\" not found");
  ate_error_release (&err);
  rec.status_code = 0;

  assert_int_equal (kata_agent_wait_process (agent, "a1", "a1", &status, ATE_DEADLINE_NONE, &err),
                    0);
  assert_int_equal (status, 137);
  assert_string_equal (rec.method, "WaitProcess");
  assert_int_equal (kata_agent_destroy_sandbox (agent, ATE_DEADLINE_NONE, &err), 0);
  assert_string_equal (rec.method, "DestroySandbox");
}

static void
test_health (void **state)
{
  (void) state;
  struct ate_error *err = NULL;

  assert_int_equal (kata_agent_health_check (agent, ate_deadline_in_ms (1000), &err), 0);
  assert_string_equal (rec.service, "grpc.Health");
  assert_string_equal (rec.method, "Check");
  rec.health = GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
  assert_true (kata_agent_health_check (agent, ate_deadline_in_ms (1000), &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_UNAVAILABLE);
  ate_error_release (&err);
}

/* ---- debug console: an echoing shell behind a hybrid vsock socket ---- */

struct console
{
  char *dir, *path;
  int lfd;
  pthread_t thread;
};

static void *
console_main (void *arg)
{
  struct console *c = arg;
  int fd = accept4 (c->lfd, NULL, NULL, SOCK_CLOEXEC);
  char line[512];
  size_t n = 0;

  if (fd < 0)
    return NULL;
  /* CONNECT line */
  while (n < sizeof (line) - 1 && read (fd, line + n, 1) == 1 && line[n++] != '\n')
    ;
  (void) !write (fd, "OK 1026\n", 8);
  n = 0;
  while (n < sizeof (line) - 1 && read (fd, line + n, 1) == 1 && line[n++] != '\n')
    ;
  line[n] = '\0';
  /* The PTY echoes the command, then the shell runs it. */
  (void) !write (fd, "# ", 2);
  (void) !write (fd, line, n);
  (void) !write (fd, "1: lo: <LOOPBACK>\n== route ==\n", 30);
  (void) !write (fd, "__ATE_END__\n# after\n", 20);
  usleep (100000);
  close (fd);
  return NULL;
}

static void
test_debug_console_dump (void **state)
{
  (void) state;
  struct console c = { 0 };
  char tmpl[] = "/tmp/ate-test-console-XXXXXX";
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  struct ate_error *err = NULL;
  cleanup_free char *out = NULL;

  c.dir = mkdtemp (tmpl);
  c.path = xasprintf ("%s/clh.sock", c.dir);
  strcpy (sa.sun_path, c.path);
  c.lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal (bind (c.lfd, (struct sockaddr *) &sa, sizeof (sa)), 0);
  assert_int_equal (listen (c.lfd, 1), 0);
  assert_int_equal (pthread_create (&c.thread, NULL, console_main, &c), 0);

  out = kata_debug_console_dump (c.path, "ip addr 2>&1; echo '== route =='",
                                 ate_deadline_in_ms (5000));
  assert_string_equal (out, "# { ip addr 2>&1; echo '== route ==' ; } 2>&1; echo "
                            "__ATE''_END__\n1: lo: <LOOPBACK>\n== route ==\n");
  pthread_join (c.thread, NULL);
  close (c.lfd);
  assert_int_equal (ate_rm_rf (c.dir, &err), 0);
  free (c.path);

  /* Failures come back as text, never as an error. */
  {
    cleanup_free char *why = kata_debug_console_dump ("/nonexistent/clh.sock", "true",
                                                      ate_deadline_in_ms (1000));
    assert_true (str_has_prefix (why, "debug-console dial: "));
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_create_sandbox, setup, teardown),
    cmocka_unit_test_setup_teardown (test_guest_network, setup, teardown),
    cmocka_unit_test_setup_teardown (test_guest_network_interface_and_routes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_create_container_blk, setup, teardown),
    cmocka_unit_test_setup_teardown (test_start_container_bytes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_read_streams_and_wait, setup, teardown),
    cmocka_unit_test_setup_teardown (test_health, setup, teardown),
    cmocka_unit_test (test_debug_console_dump),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
