/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor's guest layer (runtime/actor/guest.c) alone, against the agent
 * in ch-sim: start (vsock, dial, sandbox, guest network, containers on
 * /dev/vdb and /dev/vdc, log pumps) with its timings, the one owner of the
 * agent connection (disconnect keeps the handles, release frees them,
 * twice is harmless), reconnect after a restore or a restart, a dial that
 * times out; and the readiness probes against a small HTTP server on the
 * actor address inside a throw-away network namespace (the prober's finer
 * rules are covered by test_actor.py ReadyzTest).  Needs root and
 * /dev/net/tun (77 otherwise).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actor/guest.h"
#include "actor/model.h"
#include "actor/timing.h"
#include "actor/vm.h"
#include "kata/spec.h"
#include "net/net.h"
#include "net_fixture.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

#define KATA_CONFIG                                                                            \
  "[hypervisor.clh]\n"                                                                         \
  "default_vcpus = 1\n"                                                                        \
  "default_memory = 256\n"

struct fx
{
  char *dir;
  char *kernel, *image, *kata_config, *ch_sim;
  struct actor_env env;
  struct nt_pod pod;
  struct actor *a;
};

static void
must (int r, struct ate_error **err, const char *what)
{
  if (r < 0)
    fail_msg ("%s: %s", what, *err ? (*err)->msg : "?");
}

static ate_deadline_t
soon (void)
{
  return ate_deadline_in_ms (20000);
}

static bool
has_step (const struct actor_timing *t, const char *key)
{
  return json_object_object_get_ex (t->steps, key, NULL);
}

/* A container's OCI spec, shaped for kata: the counter app (it listens on
 * port 80, so only once per guest) or a shell that sleeps. */
static struct json_object *
container_spec (const char *id, bool counter)
{
  cleanup_free char *json = xasprintf (
      "{\"ociVersion\":\"1.0.2\",\"process\":{\"user\":{\"uid\":0,\"gid\":0},"
      "\"args\":%s,\"cwd\":\"/\"},\"root\":{\"path\":\"rootfs\"},"
      "\"hostname\":\"runsc\",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},"
      "{\"type\":\"network\",\"path\":\"/x\"}]}}",
      counter ? "[\"ate-sim-counter\"]" : "[\"/bin/sh\",\"-c\",\"echo up; sleep 600\"]");
  struct json_object *spec = NULL;
  struct ate_error *err = NULL;

  must (ate_json_parse (json, strlen (json), 0, &spec, &err), &err, "parse");
  must (kata_spec_shape_json (spec, id, "/run/netns/ateom:x", &err), &err, "shape");
  return spec;
}

static int
setup (void **state)
{
  struct fx *f = xmalloc0 (sizeof (*f));
  struct actor_container cs[] = { { .name = "c1" }, { .name = "c2" } };
  struct actor_request req = { .ns = "ns", .tmpl = "t", .id = "a1", .containers = cs,
                               .n_containers = 2 };
  struct nt_pod_opts po = { 0 };
  struct ate_error *err = NULL;
  char tmpl[] = "/tmp/ate-test-actor-guest-XXXXXX";
  const char *b = getenv ("ATE_BUILD_DIR");

  f->dir = xstrdup (mkdtemp (tmpl));
  f->kernel = ate_path_join (f->dir, "vmlinux");
  f->image = ate_path_join (f->dir, "kata.img");
  f->kata_config = ate_path_join (f->dir, "configuration-clh.toml");
  f->ch_sim = xasprintf ("%s/bin/ch-sim", b ? b : ".");
  must (ate_write_file (f->kernel, "kernel", 6, 0644, &err), &err, "kernel");
  must (ate_write_file (f->image, "image", 5, 0644, &err), &err, "image");
  must (ate_write_file (f->kata_config, KATA_CONFIG, strlen (KATA_CONFIG), 0644, &err), &err,
        "kata config");
  f->env.cfg.paths.base = f->dir;
  f->env.cfg.paths.run_dir = f->dir;
  f->env.cfg.paths.pod_uid = "uid";
  ate_paths_init_defaults (&f->env.cfg.paths);
  f->env.cfg.ch_binary = f->ch_sim;
  f->env.cfg.kata_config = f->kata_config;
  f->env.arch = xstrdup ("amd64");
  f->env.labels_key = "labels";
  /* The interior network the guest's MTU is read from. */
  nt_pod_new (&f->pod, &po);
  f->env.net = f->pod.ctx;

  f->a = actor_new (&f->env, &req);
  free (f->a->kata_kernel);
  f->a->kata_kernel = xstrdup (f->kernel);
  free (f->a->kata_image);
  f->a->kata_image = xstrdup (f->image);
  must (ate_mkdir_p (f->a->dir, 0700, &err), &err, "actor dir");
  for (size_t i = 0; i < f->a->n_ctrs; i++)
    {
      char *const mkfs[] = { "mkfs.ext4", "-q", "-F", f->a->ctrs[i].disk, "8M", NULL };
      must (ate_proc_run (mkfs, NULL, soon (), NULL, &err), &err, "mkfs");
      f->a->ctrs[i].spec = container_spec (f->a->id, i == 0);
    }
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *f = *state;
  struct ate_error *err = NULL;

  actor_guest_release (f->a);
  actor_vm_stop (f->a);
  actor_free (f->a);
  if (net_actor_cleanup (f->env.net, &err) < 0)
    ate_error_release (&err);
  nt_pod_free (&f->pod);
  if (ate_rm_rf (f->dir, &err) < 0)
    ate_error_release (&err);
  free (f->dir);
  free (f->kernel);
  free (f->image);
  free (f->kata_config);
  free (f->ch_sim);
  free (f->env.arch);
  free (f);
  return 0;
}

/* The actor's network and VM, booted (the guest comes up CH_SIM_BOOT_MS
 * later, its eth0 on the tap). */
static void
boot (struct fx *f)
{
  struct net_actor_info info;
  struct ate_error *err = NULL;
  must (net_actor_setup (f->env.net, &info, &err), &err, "network setup");
  must (actor_vm_launch (f->a, ACTOR_API_SOCKET, NULL, soon (), &err), &err, "launch");
  must (actor_vm_create (&f->env, f->a, NULL, soon (), &err), &err, "create");
  must (actor_vm_add_net_boot (&f->env, f->a, NULL, soon (), &err), &err, "add-net + boot");
}

static void
test_start_then_release (void **state)
{
  struct fx *f = *state;
  struct actor *a = f->a;
  struct actor_timing t;
  struct ate_error *err = NULL;

  boot (f);
  actor_timing_init (&t, "test");
  must (actor_guest_start (&f->env, a, &t, soon (), &err), &err, "guest start");
  assert_non_null (a->agent);
  /* stdout and stderr of each container */
  assert_int_equal (a->n_pumps, 4);
  assert_true (has_step (&t, "agent_dial_ms"));
  assert_true (has_step (&t, "sandbox_network_ms"));
  assert_true (has_step (&t, "containers_ms"));
  assert_true (t.agent_ns > 0);
  assert_int_equal (t.vmm_ns, 0);
  actor_timing_release (&t);

  /* Disconnecting keeps the handles (the pumps end on their own) ... */
  actor_guest_disconnect (a);
  actor_guest_disconnect (a);
  assert_non_null (a->agent);
  assert_int_equal (a->n_pumps, 4);
  /* ... releasing frees them, and a second release finds nothing. */
  actor_guest_release (a);
  assert_null (a->agent);
  assert_null (a->pumps);
  assert_int_equal (a->n_pumps, 0);
  actor_guest_release (a);
}

static void
test_reconnect_after_release (void **state)
{
  struct fx *f = *state;
  struct actor *a = f->a;
  struct actor_timing t;
  struct ate_error *err = NULL;

  boot (f);
  must (actor_guest_start (&f->env, a, NULL, soon (), &err), &err, "guest start");
  actor_guest_release (a);

  actor_timing_init (&t, "test");
  actor_guest_reconnect (&f->env, a, &t, soon ());
  assert_non_null (a->agent);
  assert_int_equal (a->n_pumps, 4);
  assert_true (has_step (&t, "agent_dial_ms"));
  actor_timing_release (&t);
  /* After a restart nothing is timed. */
  actor_guest_release (a);
  actor_guest_reconnect (&f->env, a, NULL, soon ());
  assert_non_null (a->agent);
}

static void
test_reconnect_unreachable_leaves_nothing (void **state)
{
  struct fx *f = *state;
  struct actor *a = f->a;
  int64_t start = ate_now_ns ();

  /* No VM: no vsock socket. */
  actor_guest_reconnect (&f->env, a, NULL, ate_deadline_in_ms (300));
  assert_null (a->agent);
  assert_int_equal (a->n_pumps, 0);
  assert_true (ate_elapsed_ms (start) < 5000);
}

static void
test_start_without_vsock_times_out (void **state)
{
  struct fx *f = *state;
  struct actor *a = f->a;
  struct ate_error *err = NULL;
  int64_t start = ate_now_ns ();

  assert_int_equal (actor_guest_start (&f->env, a, NULL, ate_deadline_in_ms (300), &err), -1);
  assert_true (ate_elapsed_ms (start) < 5000);
  assert_non_null (strstr (err->msg, "connect to the kata agent"));
  assert_non_null (strstr (err->msg, a->vsock));
  assert_int_equal (err->status, ETIMEDOUT);
  assert_null (a->agent);
  ate_error_release (&err);
}

/* ---- readiness ---- */

struct http_server
{
  int fd;
  int status;      /* answered to every request */
  char path[256];  /* of the last request */
  int requests;
  pthread_t thread;
};

static void *
http_main (void *arg)
{
  struct http_server *s = arg;
  for (;;)
    {
      char buf[1024], resp[128];
      ssize_t n;
      int c = accept4 (s->fd, NULL, NULL, SOCK_CLOEXEC);
      if (c < 0)
        return NULL;
      n = read (c, buf, sizeof (buf) - 1);
      if (n > 0)
        {
          buf[n] = '\0';
          sscanf (buf, "GET %255s", s->path);
          s->requests++;
        }
      snprintf (resp, sizeof (resp), "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", s->status);
      if (write (c, resp, strlen (resp)) < 0)
        {
          /* the prober gave up */
        }
      close (c);
    }
}

/* A network namespace where the actor address is local. */
static int
actor_ns (void)
{
  int ns = nt_ns_new ();
  assert_int_equal (nt_cmd (ns, NULL, "ip", "link", "set", "lo", "up", NULL), 0);
  assert_int_equal (
      nt_cmd (ns, NULL, "ip", "addr", "add", NET_ACTOR_IP "/32", "dev", "lo", NULL), 0);
  return ns;
}

static void
http_start (struct http_server *s, int ns, int port, int status)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
  int one = 1;

  memset (s, 0, sizeof (*s));
  s->status = status;
  s->fd = nt_socket (ns, AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
  inet_pton (AF_INET, NET_ACTOR_IP, &sa.sin_addr);
  setsockopt (s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
  assert_int_equal (bind (s->fd, (struct sockaddr *) &sa, sizeof (sa)), 0);
  assert_int_equal (listen (s->fd, 64), 0);
  assert_int_equal (pthread_create (&s->thread, NULL, http_main, s), 0);
}

static void
http_stop (struct http_server *s)
{
  shutdown (s->fd, SHUT_RDWR);
  pthread_join (s->thread, NULL);
  close (s->fd);
}

struct readyz_job
{
  struct actor *a;
  struct actor_timing *t;
  int64_t ms;
  int r;
  struct ate_error *err;
};

static int
job_readyz (void *arg, struct ate_error **err)
{
  struct readyz_job *j = arg;
  (void) err;
  j->r = actor_guest_readyz (j->a, j->t, ate_deadline_in_ms (j->ms), &j->err);
  return 0;
}

/* actor_guest_readyz from inside ns. */
static int
readyz_in (int ns, struct actor *a, struct actor_timing *t, int64_t ms, struct ate_error **err)
{
  struct readyz_job j = { .a = a, .t = t, .ms = ms };
  nt_in_ns (ns, job_readyz, &j);
  *err = j.err;
  return j.r;
}

static void
set_probe (struct actor *a, size_t i, int port, const char *path)
{
  a->ctrs[i].readyz_port = port;
  free (a->ctrs[i].readyz_path);
  a->ctrs[i].readyz_path = path ? xstrdup (path) : NULL;
}

static void
test_readyz_probes (void **state)
{
  struct fx *f = *state;
  struct actor *a = f->a;
  struct http_server ok, busy;
  struct actor_timing t;
  struct ate_error *err = NULL;
  int ns = actor_ns ();

  /* No probe: nothing to wait for, no step. */
  actor_timing_init (&t, "test");
  assert_int_equal (readyz_in (ns, a, &t, 300, &err), 0);
  assert_false (has_step (&t, "readyz_ms"));

  /* Both answer 200; a missing leading '/' is added, the default path is
   * /readyz. */
  http_start (&ok, ns, 18080, 200);
  http_start (&busy, ns, 18081, 200);
  set_probe (a, 0, 18080, "health");
  set_probe (a, 1, 18081, "");
  assert_int_equal (readyz_in (ns, a, &t, 5000, &err), 0);
  assert_string_equal (ok.path, "/health");
  assert_string_equal (busy.path, "/readyz");
  assert_true (has_step (&t, "readyz_ms"));
  actor_timing_release (&t);

  /* A container that keeps answering non-200 is not ready. */
  busy.status = 503;
  assert_int_equal (readyz_in (ns, a, NULL, 300, &err), -1);
  assert_int_equal (err->code, ATE_CODE_DEADLINE_EXCEEDED);
  assert_non_null (strstr (err->msg, "container c2 not ready: GET http://" NET_ACTOR_IP
                                     ":18081/readyz: "));
  /* (The last answer is HTTP 503 unless the deadline cut the last attempt
   * short.) */
  assert_true (busy.requests > 1); /* it was asked again */
  ate_error_release (&err);
  http_stop (&busy);

  /* Nobody listening at all. */
  assert_int_equal (readyz_in (ns, a, NULL, 300, &err), -1);
  assert_int_equal (err->code, ATE_CODE_DEADLINE_EXCEEDED);
  assert_non_null (strstr (err->msg, "container c2 not ready: GET http://" NET_ACTOR_IP
                                     ":18081/readyz: "));
  assert_null (strstr (err->msg, "HTTP 503"));
  ate_error_release (&err);
  http_stop (&ok);
  close (ns);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_start_then_release, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reconnect_after_release, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reconnect_unreachable_leaves_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown (test_start_without_vsock_times_out, setup, teardown),
    cmocka_unit_test_setup_teardown (test_readyz_probes, setup, teardown),
  };
  const char *b = getenv ("ATE_BUILD_DIR");
  cleanup_free char *sim = xasprintf ("%s/bin/ch-sim", b ? b : ".");

  if (access (sim, X_OK) != 0)
    {
      printf ("test_actor_guest: skipped: no %s\n", sim);
      return 77;
    }
  nt_init_or_skip ("test_actor_guest");
  ate_log_set_level (ATE_LOG_ERROR);
  return cmocka_run_group_tests_name ("actor guest", tests, NULL, NULL);
}
