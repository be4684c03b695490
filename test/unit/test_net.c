/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/net pieces that need no privileges: configuration checks, names,
 * the nftables script, error mapping, and the namespace helper thread.
 * (Everything that builds links lives in test/integration/net.)
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netlink/errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net/net.h"
#include "net/net_testing.h"
#include "net/nft.h"
#include "net/nl.h"
#include "net/ns.h"
#include "net/tap.h"
#include "util/error.h"
#include "util/util.h"

static void
expect_ctx_error (const struct net_config *cfg, const char *needle)
{
  struct net_ctx *ctx = NULL;
  struct ate_error *err = NULL;

  assert_true (net_ctx_new (cfg, &ctx, &err) < 0);
  assert_null (ctx);
  assert_non_null (err);
  if (strstr (err->msg, needle) == NULL)
    fail_msg ("error `%s` lacks `%s`", err->msg, needle);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  ate_error_free (err);
}

static void
test_config_rejected (void **state)
{
  (void) state;
  uint16_t zero[] = { 80, 0 };
  uint16_t dup[] = { 80, 8080, 80 };
  uint16_t many[NET_MAX_INGRESS_PORTS + 1];

  for (size_t i = 0; i < ATE_N_ELEMENTS (many); i++)
    many[i] = (uint16_t) (1000 + i);

  expect_ctx_error (NULL, "no network configuration");
  expect_ctx_error (&(struct net_config){ .netns_name = NULL }, "namespace name");
  expect_ctx_error (&(struct net_config){ .netns_name = "" }, "namespace name");
  expect_ctx_error (&(struct net_config){ .netns_name = "a/b" }, "namespace name");
  expect_ctx_error (&(struct net_config){ .netns_name = ".." }, "namespace name");
  expect_ctx_error (&(struct net_config){ .netns_name = "x", .netns_dir = "rel/dir" },
                    "netns directory");
  expect_ctx_error (&(struct net_config){ .netns_name = "x", .pod_ifname = "eth0 " },
                    "pod interface name");
  expect_ctx_error (&(struct net_config){ .netns_name = "x",
                                          .pod_ifname = "a-very-long-ifname" },
                    "pod interface name");
  expect_ctx_error (&(struct net_config){ .netns_name = "x", .ingress_ports = zero,
                                          .n_ingress_ports = 2 },
                    "port 0");
  expect_ctx_error (&(struct net_config){ .netns_name = "x", .ingress_ports = dup,
                                          .n_ingress_ports = 3 },
                    "port 80 listed twice");
  expect_ctx_error (&(struct net_config){ .netns_name = "x", .ingress_ports = many,
                                          .n_ingress_ports = ATE_N_ELEMENTS (many) },
                    "ingress ports");
  expect_ctx_error (&(struct net_config){ .netns_name = "x", .n_ingress_ports = 1 },
                    "without ports");
}

static void
test_ifname_validation (void **state)
{
  (void) state;
  assert_true (net_ifname_is_valid ("eth0"));
  assert_true (net_ifname_is_valid ("tap0_kata"));
  assert_true (net_ifname_is_valid ("123456789012345")); /* 15 bytes */
  assert_false (net_ifname_is_valid ("1234567890123456"));
  assert_false (net_ifname_is_valid (""));
  assert_false (net_ifname_is_valid (NULL));
  assert_false (net_ifname_is_valid ("."));
  assert_false (net_ifname_is_valid (".."));
  assert_false (net_ifname_is_valid ("a/b"));
  assert_false (net_ifname_is_valid ("tap%d"));
  assert_false (net_ifname_is_valid ("eth0:1"));
  assert_false (net_ifname_is_valid ("a b"));
  assert_false (net_ifname_is_valid ("a\nb"));
  assert_false (net_ifname_is_valid ("caf\xc3\xa9"));
}

static void
test_tap_name (void **state)
{
  (void) state;
  cleanup_free char *a = net_tap_name (0);
  cleanup_free char *b = net_tap_name (12);
  assert_string_equal (a, "tap0_kata");
  assert_string_equal (b, "tap12_kata");
}

static void
test_nft_script (void **state)
{
  (void) state;
  struct in_addr ip;
  uint16_t one[] = { 80 };
  uint16_t two[] = { 80, 8443 };
  cleanup_free char *s1 = NULL, *s2 = NULL, *s3 = NULL, *s4 = NULL;

  assert_int_equal (inet_pton (AF_INET, "10.1.2.3", &ip), 1);
  s1 = net_nft_setup_script (&ip, one, 1, false, false);
  assert_string_equal (
      s1,
      "add table ip ateom_actor\n"
      "delete table ip ateom_actor\n"
      "add table ip ateom_actor\n"
      "add chain ip ateom_actor prerouting { type nat hook prerouting priority dstnat; policy accept; }\n"
      "add rule ip ateom_actor prerouting ip daddr 10.1.2.3 tcp dport 80 dnat to 169.254.17.2:80\n"
      "add chain ip ateom_actor postrouting { type nat hook postrouting priority srcnat; policy accept; }\n"
      "add rule ip ateom_actor postrouting ip saddr 169.254.17.2 masquerade\n"
      "add chain ip ateom_actor forward { type filter hook forward priority filter; policy accept; }\n"
      "add rule ip ateom_actor forward accept\n");

  s2 = net_nft_setup_script (&ip, two, 2, false, true);
  assert_non_null (strstr (s2, "tcp dport 80 dnat to 169.254.17.2:80\n"
                               "add rule ip ateom_actor prerouting ip daddr 10.1.2.3 "
                               "tcp dport 8443 dnat to 169.254.17.2:8443\n"));
  assert_true (str_has_suffix (s2, "add rule ip ateom_actor forward accept\n"
                                   "add rule ip ateom_actor forward jump "
                                   "ateom_injected_missing_chain\n"));

  /* No ingress ports: no prerouting rule, the chain stays. */
  s3 = net_nft_setup_script (&ip, NULL, 0, false, false);
  assert_null (strstr (s3, "dnat"));
  assert_non_null (strstr (s3, "add chain ip ateom_actor prerouting"));
  assert_null (strstr (s3, "maxseg"));

  /* A guest MTU above the pod's: SYNs clamped before the accept. */
  s4 = net_nft_setup_script (&ip, one, 1, true, false);
  assert_true (str_has_suffix (s4, "add rule ip ateom_actor forward tcp flags syn tcp option "
                                   "maxseg size set rt mtu\n"
                                   "add rule ip ateom_actor forward accept\n"));

  assert_string_equal (net_nft_cleanup_script (),
                       "add table ip ateom_actor\ndelete table ip ateom_actor\n");
}

static void
test_nl_errors (void **state)
{
  (void) state;
  struct ate_error *err = NULL;

  assert_int_equal (net_nlerr_to_errno (-NLE_EXIST), EEXIST);
  assert_int_equal (net_nlerr_to_errno (-NLE_NODEV), ENODEV);
  assert_int_equal (net_nlerr_to_errno (-NLE_OBJ_NOTFOUND), ENOENT);
  assert_int_equal (net_nlerr_to_errno (-NLE_PERM), EPERM);
  assert_int_equal (net_nlerr_to_errno (-NLE_BUSY), EBUSY);
  assert_int_equal (net_nlerr_to_errno (-NLE_FAILURE), EIO);
  assert_int_equal (net_nlerr_to_errno (0), 0);

  assert_true (net_nl_error (&err, -NLE_EXIST, "create veth `%s`", "ateom0") < 0);
  assert_string_equal (err->msg, "create veth `ateom0`: Object exists");
  assert_int_equal (err->status, EEXIST);
  /* A second error is appended; the first status stays. */
  net_nl_error (&err, -NLE_PERM, "second");
  assert_string_equal (err->msg, "create veth `ateom0`: Object exists; second: "
                                 "Operation not permitted");
  assert_int_equal (err->status, EEXIST);
  ate_error_free (err);
}

static void
test_fault_names (void **state)
{
  (void) state;
  for (int f = 0; f < NET_FAULT_COUNT; f++)
    {
      assert_non_null (net_fault_name ((enum net_fault) f));
      assert_string_not_equal (net_fault_name ((enum net_fault) f), "unknown");
    }
  assert_string_equal (net_fault_name (NET_FAULT_COUNT), "unknown");
}

struct tid_arg
{
  pid_t tid;
  int ret;
  bool fail;
};

static int
fn_record_tid (void *arg, struct ate_error **err)
{
  struct tid_arg *a = arg;
  a->tid = (pid_t) syscall (SYS_gettid);
  if (a->fail)
    return ate_error_make (err, EBUSY, "fn failed on purpose");
  return a->ret;
}

static void
test_ns_run_thread (void **state)
{
  (void) state;
  struct tid_arg a = { .ret = 7 };
  struct ate_error *err = NULL;
  cleanup_close int self = -1;

  if (geteuid () != 0)
    skip (); /* setns, even into our own namespace, needs CAP_SYS_ADMIN */
  self = net_ns_open_current (&err);
  assert_true (self >= 0);
  assert_true (net_ns_same (self, self));

  /* fn runs on another thread and its result comes back. */
  assert_int_equal (net_ns_run (self, self, fn_record_tid, &a, &err), 7);
  assert_null (err);
  assert_true (a.tid > 0 && a.tid != (pid_t) syscall (SYS_gettid));

  /* fn's error comes back unchanged. */
  a.fail = true;
  assert_true (net_ns_run (self, self, fn_record_tid, &a, &err) < 0);
  assert_string_equal (err->msg, "fn failed on purpose: Device or resource busy");
  ate_error_release (&err);
}

static void
test_ns_run_cannot_return (void **state)
{
  (void) state;
  struct tid_arg a = { .ret = 0 };
  struct ate_error *err = NULL;
  cleanup_close int self = -1;
  cleanup_close int notns = -1;

  if (geteuid () != 0)
    skip ();
  self = net_ns_open_current (&err);
  assert_true (self >= 0);

  /* The way home fails: an error, not an abort, and fn did run. */
  assert_true (net_ns_run (self, -1, fn_record_tid, &a, &err) < 0);
  assert_true (a.tid > 0);
  assert_non_null (strstr (err->msg, "return to the pod network namespace"));
  ate_error_release (&err);

  /* fn failing and the way home failing: both are reported. */
  a.fail = true;
  assert_true (net_ns_run (self, -1, fn_record_tid, &a, &err) < 0);
  assert_non_null (strstr (err->msg, "fn failed on purpose"));
  assert_non_null (strstr (err->msg, "; return to the pod network namespace"));
  ate_error_release (&err);

  /* A target that is not a namespace: fn never runs. */
  notns = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  a.tid = 0;
  assert_true (net_ns_run (notns, self, fn_record_tid, &a, &err) < 0);
  assert_int_equal (a.tid, 0);
  assert_non_null (strstr (err->msg, "enter network namespace"));
  ate_error_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_config_rejected),
    cmocka_unit_test (test_ifname_validation),
    cmocka_unit_test (test_tap_name),
    cmocka_unit_test (test_nft_script),
    cmocka_unit_test (test_nl_errors),
    cmocka_unit_test (test_fault_names),
    cmocka_unit_test (test_ns_run_thread),
    cmocka_unit_test (test_ns_run_cannot_return),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
