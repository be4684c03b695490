/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/net against real namespaces: what setup, taps and cleanup build
 * (checked from outside), failures at every step, stale state, restarts.
 * Needs root; each test makes its own pod namespace.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/net.h"
#include "net/net_testing.h"
#include "net_checks.h"
#include "net_fixture.h"
#include "util/error.h"
#include "util/json.h"
#include "util/util.h"

static int
pod_setup (void **state)
{
  struct nt_pod *pod = xmalloc0 (sizeof (*pod));
  pod->pod_fd = pod->client_fd = -1;
  *state = pod;
  return 0;
}

static int
pod_teardown (void **state)
{
  struct nt_pod *pod = *state;
  bool ok = nt_pod_free (pod);
  free (pod);
  return ok ? 0 : -1;
}

static void
expect_error (struct ate_error **err, const char *needle)
{
  assert_non_null (*err);
  if (strstr ((*err)->msg, needle) == NULL)
    fail_msg ("error `%s` lacks `%s`", (*err)->msg, needle);
  ate_error_release (err);
}

static void
setup_ok (struct nt_pod *pod, struct net_actor_info *info)
{
  struct ate_error *err = NULL;
  if (net_actor_setup (pod->ctx, info, &err) < 0)
    fail_msg ("setup: %s", err->msg);
}

static void
cleanup_ok (struct nt_pod *pod)
{
  struct ate_error *err = NULL;
  if (net_actor_cleanup (pod->ctx, &err) < 0)
    fail_msg ("cleanup: %s", err->msg);
}

static void
tap_ok (struct nt_pod *pod, const char *name, unsigned int qp, unsigned int mtu,
        int **fds, size_t *nfds)
{
  struct ate_error *err = NULL;
  if (net_tap_create (pod->ctx, name, qp, mtu, fds, nfds, &err) < 0)
    fail_msg ("tap %s: %s", name, err->msg);
}

/* The whole life of one activation, checked exactly at each stage. */
static void
test_setup_tap_cleanup (void **state)
{
  struct nt_pod *pod = *state;
  struct net_actor_info info;
  int host_forward = nc_ip_forward (nt_host_fd ());
  bool host_had_ateom0 = nt_link_get (nt_host_fd (), "ateom0", NULL);
  int *fds = NULL;
  size_t nfds = 0;
  unsigned int mtu = 0;
  struct ate_error *err = NULL;

  nt_pod_new (pod, NULL);
  nc_check_clean (pod);
  setup_ok (pod, &info);
  assert_string_equal (info.pod_ipv4, "10.77.0.1");
  assert_int_equal (info.pod_mtu, 1400);
  nc_check_actor_network (pod, NULL, 0, 0);
  assert_int_equal (net_interior_mtu (pod->ctx, &mtu, &err), 0);
  assert_int_equal (mtu, 1400);

  tap_ok (pod, "tap0_kata", 1, 0, &fds, &nfds);
  nc_check_tap (pod, "tap0_kata", 1, 1400, fds, nfds);
  nc_check_actor_network (pod, NULL, 0, 1);

  /* The tap is persistent: it outlives its fds. */
  net_tap_fds_free (fds, nfds);
  assert_true (nt_link_get (pod->pod_fd, "ateom0", NULL));

  cleanup_ok (pod);
  nc_check_clean (pod);
  cleanup_ok (pod); /* idempotent */
  nc_check_clean (pod);

  /* Setup again on the same context (the next activation). */
  setup_ok (pod, &info);
  nc_check_actor_network (pod, NULL, 0, 0);
  cleanup_ok (pod);
  nc_check_clean (pod);

  /* Nothing happened in the test's own namespace. */
  assert_int_equal (nt_link_get (nt_host_fd (), "ateom0", NULL), host_had_ateom0);
  assert_int_equal (nc_ip_forward (nt_host_fd ()), host_forward);
}

static void
test_multiqueue_tap (void **state)
{
  struct nt_pod *pod = *state;
  int *fds = NULL;
  size_t nfds = 0;

  nt_pod_new (pod, &(struct nt_pod_opts){ .mtu = 9000 });
  setup_ok (pod, NULL);
  nc_check_actor_network (pod, NULL, 0, 0);
  tap_ok (pod, "tap1_kata", 4, 1300, &fds, &nfds);
  nc_check_tap (pod, "tap1_kata", 4, 1300, fds, nfds);
  for (size_t i = 1; i < nfds; i++)
    assert_int_not_equal (fds[i], fds[i - 1]);
  net_tap_fds_free (fds, nfds);
  cleanup_ok (pod);
  nc_check_clean (pod);
}

static void
test_custom_ports (void **state)
{
  struct nt_pod *pod = *state;
  const uint16_t ports[] = { 8080, 443, 80 };

  nt_pod_new (pod, &(struct nt_pod_opts){ .ports = ports, .n_ports = 3 });
  setup_ok (pod, NULL);
  nc_check_actor_network (pod, ports, 3, 0);
  cleanup_ok (pod);
  nc_check_clean (pod);
}

static void
test_no_ingress_ports (void **state)
{
  struct nt_pod *pod = *state;
  const uint16_t none[] = { 0 };
  cleanup_json struct json_object *table = NULL;

  nt_pod_new (pod, &(struct nt_pod_opts){ .ports = none, .n_ports = 0 });
  setup_ok (pod, NULL);
  table = nc_actor_table (pod->pod_fd);
  /* table, three chains, masquerade and forward rules: no DNAT. */
  assert_int_equal (json_object_array_length (table), 6);
  assert_null (strstr (json_object_to_json_string (table), "dnat"));
  cleanup_ok (pod);
  nc_check_clean (pod);
}

/* Stale links in the interior namespace: swept by setup; a stale tap of
 * the same name with other flags is replaced; replacing our own tap leaves
 * exactly one redirect; cleanup takes tap<N>_kata only. */
static void
test_stale_taps (void **state)
{
  struct nt_pod *pod = *state;
  cleanup_close int interior = -1;
  int *fds = NULL, *fds2 = NULL;
  size_t nfds = 0, nfds2 = 0;
  struct nt_link tap;
  int target = -1;

  nt_pod_new (pod, NULL);
  interior = nt_pod_interior_fd (pod);
  assert_int_equal (nt_cmd (interior, NULL, "ip", "tuntap", "add", "tap7_kata",
                            "mode", "tap", NULL), 0);
  assert_int_equal (nt_cmd (interior, NULL, "ip", "link", "add", "eth0", "type",
                            "veth", "peer", "name", "ateom1", NULL), 0);
  setup_ok (pod, NULL);
  nc_check_actor_network (pod, NULL, 0, 0); /* only lo and the new eth0 */

  /* A stale persistent tap without vnet headers and without
   * multi-queue: TUNSETIFF would refuse it, so it must be replaced. */
  assert_int_equal (nt_cmd (interior, NULL, "ip", "tuntap", "add", "tap0_kata",
                            "mode", "tap", NULL), 0);
  tap_ok (pod, "tap0_kata", 2, 0, &fds, &nfds);
  nc_check_tap (pod, "tap0_kata", 2, 1400, fds, nfds);

  /* Replace our own tap: the old eth0 redirect must not linger. */
  tap_ok (pod, "tap0_kata", 1, 0, &fds2, &nfds2);
  nc_check_tap (pod, "tap0_kata", 1, 1400, fds2, nfds2);
  assert_true (nt_link_get (interior, "tap0_kata", &tap));
  assert_int_equal (nc_redirect_count (interior, "eth0", &target), 1);
  assert_int_equal (target, tap.ifindex);
  net_tap_fds_free (fds, nfds);
  net_tap_fds_free (fds2, nfds2);

  /* Cleanup removes tap<N>_kata but not other links. */
  assert_int_equal (nt_cmd (interior, NULL, "ip", "tuntap", "add", "tapx_kata",
                            "mode", "tap", NULL), 0);
  assert_int_equal (nt_cmd (interior, NULL, "ip", "tuntap", "add", "tap3_kata",
                            "mode", "tap", NULL), 0);
  cleanup_ok (pod);
  assert_false (nt_link_get (interior, "tap0_kata", NULL));
  assert_false (nt_link_get (interior, "tap3_kata", NULL));
  assert_true (nt_link_get (interior, "tapx_kata", NULL));
  assert_int_equal (nt_link_count (interior), 2);
  /* ... and the next setup sweeps it. */
  setup_ok (pod, NULL);
  nc_check_actor_network (pod, NULL, 0, 0);
  cleanup_ok (pod);
  nc_check_clean (pod);
}

static void
test_missing_pod_interface (void **state)
{
  struct nt_pod *pod = *state;
  struct ate_error *err = NULL;

  nt_pod_new (pod, &(struct nt_pod_opts){ .no_eth0 = true });
  assert_true (net_actor_setup (pod->ctx, NULL, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_FAILED_PRECONDITION);
  expect_error (&err, "pod interface `eth0` not found");
  nc_check_clean (pod);
  assert_int_equal (nt_link_count (pod->pod_fd), 1); /* lo */
}

static void
test_pod_interface_without_ipv4 (void **state)
{
  struct nt_pod *pod = *state;
  struct ate_error *err = NULL;

  nt_pod_new (pod, &(struct nt_pod_opts){ .no_ipv4 = true });
  assert_true (net_actor_setup (pod->ctx, NULL, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_FAILED_PRECONDITION);
  expect_error (&err, "IPv4 address of pod interface `eth0`");
  nc_check_clean (pod);
}

static void
test_tap_arguments (void **state)
{
  struct nt_pod *pod = *state;
  struct ate_error *err = NULL;
  int *fds = NULL;
  size_t nfds = 0;
  int before;

  nt_pod_new (pod, NULL);
  before = nt_fd_count ();
  /* Before setup there is no interior eth0 to connect to. */
  assert_true (net_tap_create (pod->ctx, "tap0_kata", 1, 0, &fds, &nfds, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_FAILED_PRECONDITION);
  expect_error (&err, "is the actor network set up?");

  setup_ok (pod, NULL);
  assert_true (net_tap_create (pod->ctx, "tap%d", 1, 0, &fds, &nfds, &err) < 0);
  expect_error (&err, "invalid tap name");
  assert_true (net_tap_create (pod->ctx, "tap0_kata", 0, 0, &fds, &nfds, &err) < 0);
  expect_error (&err, "queue pairs");
  assert_true (net_tap_create (pod->ctx, "tap0_kata", 257, 0, &fds, &nfds, &err) < 0);
  expect_error (&err, "queue pairs");
  assert_true (net_tap_create (pod->ctx, "tap0_kata", 1, 67, &fds, &nfds, &err) < 0);
  expect_error (&err, "MTU 67");
  /* A valid MTU the veth cannot carry is the kernel's call; a tap accepts
   * up to 65521 here, so 65535 fails in the kernel and rolls back. */
  assert_true (net_tap_create (pod->ctx, "tap0_kata", 1, 65535, &fds, &nfds, &err) < 0);
  expect_error (&err, "while configuring tap `tap0_kata`");
  assert_null (fds);
  nc_check_actor_network (pod, NULL, 0, 0);
  assert_int_equal (nt_fd_count (), before);
}

/* Every setup step failing after its work was done: a clear error, and
 * the rollback leaves nothing; the context stays usable. */
static void
test_setup_faults (void **state)
{
  struct nt_pod *pod = *state;
  const struct
  {
    enum net_fault fault;
    const char *needle;
  } cases[] = {
    { NET_FAULT_SETUP_VETH, "while creating the actor veth pair: injected failure" },
    { NET_FAULT_SETUP_HOST_VETH, "while configuring ateom0: injected failure" },
    { NET_FAULT_SETUP_INTERIOR, "while configuring the interior eth0: injected" },
    { NET_FAULT_SETUP_FORWARD, "while enabling IPv4 forwarding: injected" },
    { NET_FAULT_SETUP_NFT, "while installing nftables table ip ateom_actor: "
                           "nftables: Error: Could not process rule: No such "
                           "file or directory" },
    { NET_FAULT_RETURN_HOME, "return to the pod network namespace: Bad file "
                             "descriptor" },
  };
  int before;

  nt_pod_new (pod, NULL);
  before = nt_fd_count ();
  for (size_t i = 0; i < ATE_N_ELEMENTS (cases); i++)
    {
      struct ate_error *err = NULL;
      net_ctx_inject_fault (pod->ctx, cases[i].fault);
      if (net_actor_setup (pod->ctx, NULL, &err) == 0)
        fail_msg ("setup succeeded despite fault %s",
                  net_fault_name (cases[i].fault));
      expect_error (&err, cases[i].needle);
      nc_check_clean (pod);
      assert_int_equal (nt_fd_count (), before);
    }
  setup_ok (pod, NULL);
  nc_check_actor_network (pod, NULL, 0, 0);
}

static void
test_tap_faults (void **state)
{
  struct nt_pod *pod = *state;
  const struct
  {
    enum net_fault fault;
    const char *needle;
  } cases[] = {
    { NET_FAULT_TAP_QUEUES, "while configuring tap `tap0_kata`: injected" },
    { NET_FAULT_TAP_TC, "while configuring tap `tap0_kata`: injected" },
    { NET_FAULT_RETURN_HOME, "return to the pod network namespace" },
  };
  cleanup_close int interior = -1;
  int *fds = NULL;
  size_t nfds = 0;
  int before;

  nt_pod_new (pod, NULL);
  setup_ok (pod, NULL);
  interior = nt_pod_interior_fd (pod);
  before = nt_fd_count ();
  for (size_t i = 0; i < ATE_N_ELEMENTS (cases); i++)
    {
      struct ate_error *err = NULL;
      net_ctx_inject_fault (pod->ctx, cases[i].fault);
      assert_true (net_tap_create (pod->ctx, "tap0_kata", 2, 0, &fds, &nfds,
                                   &err) < 0);
      expect_error (&err, cases[i].needle);
      assert_false (nt_link_get (interior, "tap0_kata", NULL));
      assert_int_equal (nc_redirect_count (interior, "eth0", NULL), 0);
      assert_false (nc_has_ingress_qdisc (interior, "eth0"));
      assert_int_equal (nt_fd_count (), before);
      nc_check_actor_network (pod, NULL, 0, 0);
    }
  tap_ok (pod, "tap0_kata", 2, 0, &fds, &nfds);
  nc_check_tap (pod, "tap0_kata", 2, 1400, fds, nfds);
  net_tap_fds_free (fds, nfds);
}

/* Cleanup keeps going after a failing step and reports it. */
static void
test_cleanup_fault (void **state)
{
  struct nt_pod *pod = *state;
  struct ate_error *err = NULL;

  nt_pod_new (pod, NULL);
  setup_ok (pod, NULL);
  net_ctx_inject_fault (pod->ctx, NET_FAULT_RETURN_HOME);
  assert_true (net_actor_cleanup (pod->ctx, &err) < 0);
  expect_error (&err, "while cleaning up the actor network: in the pod network "
                      "namespace: return to the pod network namespace");
  /* The pod job did its work before it failed to come home, and the
   * interior job ran anyway. */
  nc_check_clean (pod);
  cleanup_ok (pod);
}

/* A pre-existing table of the same name is replaced as a whole (the
 * reference deletes it first); unrelated tables are left alone. */
static void
test_nft_existing_tables (void **state)
{
  struct nt_pod *pod = *state;
  cleanup_free char *out = NULL;

  nt_pod_new (pod, NULL);
  if (nt_cmd (pod->pod_fd, &out, "nft",
              "add table ip ateom_actor; add chain ip ateom_actor junk; "
              "add rule ip ateom_actor junk counter; add table inet keepme; "
              "add chain inet keepme c; add rule inet keepme c counter", NULL)
      != 0)
    fail_msg ("nft: %s", out);
  setup_ok (pod, NULL);
  nc_check_actor_network (pod, NULL, 0, 0);
  cleanup_ok (pod);
  nc_check_clean (pod);
  /* keepme: table, chain, rule. */
  assert_int_equal (nt_nft_object_count (pod->pod_fd), 3);
}

static int
job_new_ctx_expect_error (void *arg, struct ate_error **err)
{
  struct nt_pod *pod = arg;
  struct net_ctx *ctx = NULL;
  struct net_config cfg = { .netns_dir = pod->netns_dir,
                            .netns_name = "not-a-netns" };
  if (net_ctx_new (&cfg, &ctx, err) == 0)
    {
      net_ctx_free (ctx);
      return ate_error_make (err, 0, "net_ctx_new accepted a directory");
    }
  if (strstr ((*err)->msg, "neither a network namespace nor a regular file") == NULL)
    return -1;
  ate_error_release (err);
  return 0;
}

/* A restarted server finds the interior namespace mounted and uses it;
 * a plain file left where the mount was is mounted over; anything else at
 * the path is an error. */
static void
test_restart_reuses_netns (void **state)
{
  struct nt_pod *pod = *state;
  struct net_ctx *again;
  struct stat a, b;
  cleanup_free char *dir_path = NULL;

  nt_pod_new (pod, NULL);
  setup_ok (pod, NULL);
  assert_int_equal (stat (pod->netns_path, &a), 0);

  again = nt_pod_ctx_again (pod);
  assert_int_equal (stat (pod->netns_path, &b), 0);
  assert_int_equal (a.st_ino, b.st_ino);
  assert_int_equal (a.st_dev, b.st_dev);
  /* The new context sees and cleans the old activation's network. */
  {
    struct ate_error *err = NULL;
    if (net_actor_cleanup (again, &err) < 0)
      fail_msg ("cleanup from the new context: %s", err->msg);
  }
  nc_check_clean (pod);
  net_ctx_free (again);

  /* Lost mount: the file stays, the namespace is gone. */
  assert_int_equal (umount2 (pod->netns_path, MNT_DETACH), 0);
  assert_int_equal (stat (pod->netns_path, &a), 0);
  assert_true (S_ISREG (a.st_mode));
  again = nt_pod_ctx_again (pod);
  net_ctx_free (pod->ctx);
  pod->ctx = again;
  setup_ok (pod, NULL);
  nc_check_actor_network (pod, NULL, 0, 0);

  dir_path = xasprintf ("%s/not-a-netns", pod->netns_dir);
  assert_int_equal (mkdir (dir_path, 0700), 0);
  nt_in_ns (pod->pod_fd, job_new_ctx_expect_error, pod);
  assert_int_equal (rmdir (dir_path), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_setup_tap_cleanup, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_multiqueue_tap, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_custom_ports, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_no_ingress_ports, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_stale_taps, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_missing_pod_interface, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_pod_interface_without_ipv4, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_tap_arguments, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_setup_faults, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_tap_faults, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_cleanup_fault, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_nft_existing_tables, pod_setup, pod_teardown),
    cmocka_unit_test_setup_teardown (test_restart_reuses_netns, pod_setup, pod_teardown),
  };

  nt_init_or_skip ("test_net_setup");
  return cmocka_run_group_tests (tests, NULL, NULL);
}
