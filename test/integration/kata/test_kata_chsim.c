/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kata driver through the real simulator binary (ch-sim with the
 * simulated agent linked in): boot a VM over the REST API, dial the agent
 * while the guest boots, create the sandbox and the counter container on
 * /dev/vdb, forward its log lines, and watch a call that is in flight when
 * the VM is snapshotted fail cleanly.  Needs root and <build>/bin/ch-sim
 * (77 otherwise).
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
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kata/actorlog.h"
#include "kata/agent.h"
#include "kata/io.h"
#include "kata/logpump.h"
#include "kata/spec.h"
#include "kata/vsock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

#define BOOT_MS 400

extern char **environ;

struct vm
{
  char *dir, *api, *vsock, *disk;
  struct ate_proc *chsim;
};

static void
must (int r, struct ate_error *err, const char *what)
{
  if (r < 0)
    fail_msg ("%s: %s", what, err ? err->msg : "?");
}

/* One HTTP/1.1 request to the VMM; returns the status code. */
static int
api (struct vm *v, const char *method, const char *path, const char *body)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  struct ate_error *err = NULL;
  cleanup_free char *req = NULL;
  char resp[4096];
  size_t n = 0;
  int fd, code = -1;

  strcpy (sa.sun_path, v->api);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect (fd, (struct sockaddr *) &sa, sizeof (sa)) < 0)
    {
      close (fd);
      return -1;
    }
  req = xasprintf ("%s /api/v1/%s HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                   "%sContent-Length: %zu\r\n\r\n%s",
                   method, path, body ? "Content-Type: application/json\r\n" : "",
                   body ? strlen (body) : 0, body ? body : "");
  must (kata_io_write_full (fd, req, strlen (req), ate_deadline_in_ms (5000), &err), err,
        "write request");
  /* The status line is all we need. */
  while (n < sizeof (resp) - 1 && !memchr (resp, '\n', n))
    {
      if (kata_io_read_full (fd, resp + n, 1, ate_deadline_in_ms (10000), NULL, &err) < 0)
        {
          ate_error_release (&err);
          break;
        }
      n++;
    }
  resp[n] = '\0';
  sscanf (resp, "HTTP/1.1 %d", &code);
  close (fd);
  return code;
}

static int
vm_start (struct vm *v)
{
  cleanup_free char *sim = NULL, *kernel = NULL, *image = NULL, *apiarg = NULL, *log = NULL;
  cleanup_free char *body = NULL;
  const char *bdir = getenv ("ATE_BUILD_DIR");
  char tmpl[] = "/tmp/ate-test-chsim-XXXXXX";
  struct ate_error *err = NULL;
  struct ate_spawn_opts o;
  char **env;
  size_t ne = 0;
  int logfd;

  if (geteuid () != 0 || bdir == NULL)
    return 77;
  sim = xasprintf ("%s/bin/ch-sim", bdir);
  if (access (sim, X_OK) != 0)
    return 77;
  v->dir = xstrdup (mkdtemp (tmpl));
  v->api = xasprintf ("%s/clh-api.sock", v->dir);
  v->vsock = xasprintf ("%s/clh.sock", v->dir);
  v->disk = xasprintf ("%s/actor-rootfs.ext4", v->dir);
  kernel = xasprintf ("%s/vmlinux", v->dir);
  image = xasprintf ("%s/rootfs.img", v->dir);
  log = xasprintf ("%s/ch-sim.log", v->dir);
  must (ate_write_file (kernel, "kernel", 6, 0644, &err), err, "kernel");
  must (ate_write_file (image, "image", 5, 0644, &err), err, "image");
  {
    char *const mkfs[] = { "mkfs.ext4", "-q", "-F", v->disk, "8M", NULL };
    must (ate_proc_run (mkfs, NULL, ate_deadline_in_ms (30000), NULL, &err), err, "mkfs");
  }
  while (environ[ne])
    ne++;
  env = xcalloc (ne + 2, sizeof (char *));
  for (size_t i = 0; i < ne; i++)
    env[i] = environ[i];
  env[ne] = "CH_SIM_BOOT_MS=" "400";
  logfd = open (log, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ate_spawn_opts_init (&o);
  o.env = env;
  o.stdout_fd = logfd;
  o.stderr_fd = logfd;
  apiarg = xasprintf ("path=%s", v->api);
  {
    char *const argv[] = { sim, "--api-socket", apiarg, NULL };
    must (ate_proc_spawn (argv, &o, &v->chsim, &err), err, "spawn ch-sim");
  }
  free (env);
  close (logfd);
  for (int i = 0; i < 200 && api (v, "GET", "vmm.ping", NULL) != 200; i++)
    usleep (10000);
  body = xasprintf (
      "{\"cpus\":{\"boot_vcpus\":1,\"max_vcpus\":1},\"memory\":{\"size\":67108864,\"shared\":true},"
      "\"payload\":{\"kernel\":\"%s\",\"cmdline\":\"console=ttyS0\"},"
      "\"disks\":[{\"path\":\"%s\",\"readonly\":true,\"direct\":false},"
      "{\"path\":\"%s\",\"readonly\":false,\"direct\":false}],\"rng\":{\"src\":\"/dev/urandom\"},"
      "\"serial\":{\"mode\":\"File\",\"file\":\"%s/serial.log\"},"
      "\"vsock\":{\"cid\":3,\"socket\":\"%s\"}}",
      kernel, image, v->disk, v->dir, v->vsock);
  assert_int_equal (api (v, "PUT", "vm.create", body), 204);
  assert_int_equal (api (v, "PUT", "vm.boot", NULL), 204);
  return 0;
}

static void
vm_stop (struct vm *v)
{
  struct ate_error *err = NULL;
  int status = -1;

  api (v, "PUT", "vmm.shutdown", NULL);
  if (ate_proc_wait (v->chsim, ate_deadline_in_ms (10000), &status, &err) < 0)
    {
      ate_error_release (&err);
      ate_proc_kill_and_wait (v->chsim);
    }
  ate_proc_free (v->chsim);
  if (status != 0)
    {
      cleanup_free char *log = xasprintf ("%s/ch-sim.log", v->dir);
      cleanup_free char *text = NULL;
      size_t len;
      if (ate_read_file (log, 1 << 20, &text, &len, NULL) == 0)
        fprintf (stderr, "%s", text);
    }
  /* A clean exit (under the sanitizers: no leak either). */
  assert_int_equal (status, 0);
  assert_int_equal (ate_rm_rf (v->dir, &err), 0);
  free (v->dir);
  free (v->api);
  free (v->vsock);
  free (v->disk);
}

static Grpc__Spec *
counter_spec (void)
{
  static const char json[]
      = "{\"ociVersion\":\"\",\"process\":{\"user\":{\"uid\":0,\"gid\":0},"
        "\"args\":[\"ate-sim-counter\"],\"cwd\":\"/\"},\"root\":{\"path\":\"rootfs\"},"
        "\"hostname\":\"runsc\",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},"
        "{\"type\":\"network\",\"path\":\"/x\"}]}}";
  struct json_object *spec = NULL;
  struct ate_error *err = NULL;
  Grpc__Spec *g = NULL;

  must (ate_json_parse (json, strlen (json), 0, &spec, &err), err, "parse");
  must (kata_spec_shape_json (spec, "a1", "/run/netns/ateom:x", &err), err, "shape");
  must (kata_spec_to_agent (spec, "rootfs", false, &g, &err), err, "convert");
  json_object_put (spec);
  return g;
}

struct blocked
{
  struct kata_agent *a;
  pthread_t t;
  struct ate_error *err;
};

static void *
blocked_main (void *arg)
{
  struct blocked *b = arg;
  uint8_t *buf = NULL;
  size_t n;
  if (kata_agent_read_stderr (b->a, "a1", "a1", 4096, &buf, &n, ATE_DEADLINE_NONE, &b->err) == 0)
    free (buf);
  return NULL;
}

static void
test_through_ch_sim (void **state)
{
  (void) state;
  struct vm v = { 0 };
  struct kata_agent *a = NULL;
  struct ate_error *err = NULL;
  struct kata_log_pump *pump = NULL;
  struct blocked b = { 0 };
  struct actorlog_labels labels = { .key = "labels", .actor_id = "a1", .template_name = "t",
                                    .template_namespace = "ns", .container_name = "counter" };
  char path[] = "/tmp/ate-test-chsim-log-XXXXXX";
  int logfd = mkostemp (path, O_CLOEXEC);
  cleanup_free char *snapdir = NULL;
  int64_t start;
  Grpc__Spec *g;

  if (vm_start (&v) == 77)
    {
      close (logfd);
      unlink (path);
      skip ();
    }
  /* The agent answers only once the guest has booted. */
  start = ate_now_ns ();
  must (kata_agent_connect (v.vsock, KATA_AGENT_VSOCK_PORT, ate_deadline_in_ms (10000), 1000,
                            50, &a, &err),
        err, "dial");
  assert_true (ate_elapsed_ms (start) >= BOOT_MS - 100);
  must (kata_agent_health_check (a, ate_deadline_in_ms (2000), &err), err, "health");
  must (kata_agent_create_sandbox (a, "runsc", "a1", ate_deadline_in_ms (20000), &err), err,
        "sandbox");
  g = counter_spec ();
  must (kata_agent_create_container_blk (a, "a1", "a1", "/dev/vdb", g, ate_deadline_in_ms (30000),
                                         &err),
        err, "create");
  /* /dev/vdc does not exist in this VM. */
  assert_true (kata_agent_create_container_blk (a, "a2", "a2", "/dev/vdc", g, ATE_DEADLINE_NONE,
                                                &err)
               < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_NOT_FOUND);
  ate_error_release (&err);
  kata_spec_agent_free (g);
  must (kata_agent_start_container (a, "a1", ate_deadline_in_ms (30000), &err), err, "start");

  /* The counter's first log line arrives labelled. */
  ate_log_set_fd (logfd);
  must (kata_log_pump_start (a, "a1", "a1", KATA_STREAM_STDOUT, &labels, &pump, &err), err,
        "pump");
  for (int i = 0; i < 300; i++)
    {
      cleanup_free char *text = NULL;
      size_t len;
      if (ate_read_file (path, 1 << 20, &text, &len, NULL) == 0
          && strstr (text, "\"msg\":\"Starting counter server on port 80\""))
        {
          assert_non_null (strstr (text, "\"labels\":{\"ate.dev/actor_id\":\"a1\""));
          break;
        }
      assert_true (i < 299);
      usleep (10000);
    }

  /* A snapshot drops the connection: the call in flight fails. */
  b.a = a;
  pthread_create (&b.t, NULL, blocked_main, &b);
  usleep (100000);
  assert_int_equal (api (&v, "PUT", "vm.pause", NULL), 204);
  snapdir = xasprintf ("%s/snap", v.dir);
  must (ate_mkdir_p (snapdir, 0755, &err), err, "snapdir");
  {
    cleanup_free char *body = xasprintf ("{\"destination_url\":\"file://%s\"}", snapdir);
    assert_int_equal (api (&v, "PUT", "vm.snapshot", body), 204);
  }
  pthread_join (b.t, NULL);
  assert_non_null (b.err);
  assert_non_null (strstr (b.err->msg, "connection closed by the agent"));
  ate_error_release (&b.err);
  kata_agent_close (a);
  kata_log_pump_stop_join (pump);
  ate_log_set_fd (1);
  kata_agent_free (a);
  vm_stop (&v);
  close (logfd);
  unlink (path);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_through_ch_sim),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
