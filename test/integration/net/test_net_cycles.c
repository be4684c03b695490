/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Many activations on one context (setup, a two-queue tap, cleanup) leave
 * no links, rules, fds or threads behind.  ATE_NET_CYCLES overrides the
 * count (default 100; the valgrind run uses fewer).  Needs root.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "net_checks.h"
#include "net_fixture.h"
#include "util/error.h"
#include "util/proc.h"
#include "util/time.h"
#include "util/util.h"

static int
thread_count (void)
{
  DIR *d = opendir ("/proc/self/task");
  struct dirent *de;
  int n = 0;

  assert_non_null (d);
  while ((de = readdir (d)))
    if (de->d_name[0] != '.')
      n++;
  closedir (d);
  return n;
}

static int
cycles_wanted (void)
{
  const char *s = getenv ("ATE_NET_CYCLES");
  int n = s ? atoi (s) : 100;
  return n > 0 ? n : 100;
}

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
test_cycles (void **state)
{
  struct nt_pod *pod = *state;
  const int cycles = cycles_wanted ();
  int fds_before, links_before, threads_before;
  double ms[3] = { 0 };
  int64_t start;

  nt_pod_new (pod, NULL);
  fds_before = nt_fd_count ();
  links_before = nt_link_count (pod->pod_fd);
  threads_before = thread_count ();

  start = ate_now_ns ();
  for (int i = 0; i < cycles; i++)
    {
      struct ate_error *err = NULL;
      struct net_actor_info info;
      int *fds = NULL;
      size_t nfds = 0;
      unsigned int mtu = 0;
      int64_t t0 = ate_now_ns (), t1, t2;

      if (net_actor_setup (pod->ctx, &info, &err) < 0)
        fail_msg ("cycle %d: %s", i, err->msg);
      t1 = ate_now_ns ();
      if (net_tap_create (pod->ctx, "tap0_kata", 2, 0, &fds, &nfds, &err) < 0
          || net_interior_mtu (pod->ctx, &mtu, &err) < 0)
        fail_msg ("cycle %d: %s", i, err->msg);
      assert_int_equal (mtu, info.pod_mtu);
      net_tap_fds_free (fds, nfds);
      t2 = ate_now_ns ();
      if (net_actor_cleanup (pod->ctx, &err) < 0)
        fail_msg ("cycle %d cleanup: %s", i, err->msg);
      ms[0] += (double) (t1 - t0) / 1e6;
      ms[1] += (double) (t2 - t1) / 1e6;
      ms[2] += ate_elapsed_ms (t2);
    }
  printf ("%d cycles: %.1f ms per cycle (setup %.1f, 2-queue tap %.1f, "
          "cleanup %.1f)\n", cycles, ate_elapsed_ms (start) / cycles,
          ms[0] / cycles, ms[1] / cycles, ms[2] / cycles);

  nc_check_clean (pod);
  assert_int_equal (nt_fd_count (), fds_before);
  assert_int_equal (nt_link_count (pod->pod_fd), links_before);
  assert_int_equal (thread_count (), threads_before);
  assert_int_equal (ate_proc_tracked_count (), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_cycles, pod_setup, pod_teardown),
  };

  nt_init_or_skip ("test_net_cycles");
  return cmocka_run_group_tests (tests, NULL, NULL);
}
