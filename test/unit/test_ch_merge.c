/* SPDX-License-Identifier: Apache-2.0 */
/* Sparse memory merge (runtime/ch/merge.c): content, holes, unaligned
 * tails, size mismatch, EXDEV fallback (forced and across a real second
 * filesystem), and crash safety at every injected crash point. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ch/merge.h"
#include "ch/merge_testing.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

#define PAGE 4096
#define SIZE (64 * PAGE + 123) /* unaligned tail */

static char tmpdir[64];
static char *base, *delta, *out;

static int
setup (void **state)
{
  (void) state;
  snprintf (tmpdir, sizeof (tmpdir), "/tmp/test_ch_merge.XXXXXX");
  if (mkdtemp (tmpdir) == NULL)
    return -1;
  base = ate_path_join (tmpdir, "base");
  delta = ate_path_join (tmpdir, "delta");
  out = ate_path_join (tmpdir, "out");
  ch_merge_test_crash_at (CH_MERGE_CRASH_NONE);
  ch_merge_test_force_exdev (0);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  if (ate_rm_rf (tmpdir, &err) < 0)
    ate_error_release (&err);
  free (base);
  free (delta);
  free (out);
  return 0;
}

/* Write `len` bytes of value `v` at `off` (creates the file with `size`). */
static void
put (const char *path, off_t size, off_t off, size_t len, unsigned char v)
{
  int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  cleanup_free unsigned char *b = xmalloc (len ? len : 1);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, size), 0);
  memset (b, v, len);
  if (len)
    assert_int_equal (pwrite (fd, b, len, off), (ssize_t) len);
  close (fd);
}

static unsigned char *
slurp (const char *path, size_t *len)
{
  char *buf = NULL;
  struct ate_error *err = NULL;
  if (ate_read_file (path, 1 << 24, &buf, len, &err) < 0)
    fail_msg ("%s", err->msg);
  return (unsigned char *) buf;
}

/* base: pages 0-9 = 'B', page 20 = 'b', tail = 'T'; delta: page 5 = 'D',
 * page 30 (a base hole) = 'd', tail partial. */
static void
make_pair (void)
{
  put (base, SIZE, 0, 10 * PAGE, 'B');
  put (base, SIZE, 20 * PAGE, PAGE, 'b');
  put (base, SIZE, 64 * PAGE, 123, 'T');
  put (delta, SIZE, 5 * PAGE, PAGE, 'D');
  put (delta, SIZE, 30 * PAGE, PAGE, 'd');
  put (delta, SIZE, 64 * PAGE, 10, 't');
}

static void
expect_merged (const char *path)
{
  size_t len;
  cleanup_free unsigned char *m = slurp (path, &len);
  assert_int_equal (len, SIZE);
  for (size_t i = 0; i < len; i++)
    {
      unsigned char want = 0;
      size_t pg = i / PAGE;
      if (pg < 10)
        want = 'B';
      if (pg == 20)
        want = 'b';
      if (pg == 64)
        want = 'T';
      if (pg == 5)
        want = 'D';
      if (pg == 30)
        want = 'd';
      /* The delta's tail block is data as a whole (filesystems track
       * blocks): its zeros win over the base's tail, as whole pages do in
       * a real memory snapshot. */
      if (pg == 64)
        want = i - 64 * PAGE < 10 ? 't' : 0;
      if (m[i] != want)
        fail_msg ("%s: byte %zu is %#x, want %#x", path, i, m[i], want);
    }
}

static void
expect_pristine_base (const char *path)
{
  size_t len;
  cleanup_free unsigned char *m = slurp (path, &len);
  assert_int_equal (len, SIZE);
  assert_int_equal (m[5 * PAGE], 'B');
  assert_int_equal (m[30 * PAGE], 0);
  assert_int_equal (m[64 * PAGE], 'T');
}

static void
expect_sparse (const char *path)
{
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  /* 10 + 1 + 1 + 1 (+1 slack) pages populated, far below 65 pages. */
  assert_true (st.st_blocks * 512 <= 16 * PAGE);
}

static void
test_delta_into_base (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  make_pair ();
  assert_int_equal (ch_merge_delta_into_base (base, delta, &err), 0);
  expect_merged (delta);
  expect_sparse (delta);
  assert_false (ate_path_exists (base));
  /* Idempotent: nothing pending, and a second call finds no base. */
  assert_int_equal (ch_merge_recover (base, delta, &err), 0);
  assert_int_equal (ch_merge_delta_into_base (base, delta, &err), -1);
  assert_int_equal (err->status, ENOENT);
  ate_error_release (&err);
}

static void
test_overlay_matches_fast_path (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  make_pair ();
  assert_int_equal (ch_merge_sparse_overlay (base, delta, out, &err), 0);
  expect_merged (out);
  expect_sparse (out);
  expect_pristine_base (base);
  size_t l1, l2;
  cleanup_free unsigned char *a = slurp (out, &l1);
  assert_int_equal (ch_merge_delta_into_base (base, delta, &err), 0);
  cleanup_free unsigned char *b = slurp (delta, &l2);
  assert_int_equal (l1, l2);
  assert_memory_equal (a, b, l1);
}

static void
test_empty_delta (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  put (base, SIZE, 0, 10 * PAGE, 'B');
  put (delta, SIZE, 0, 0, 0);
  assert_int_equal (ch_merge_delta_into_base (base, delta, &err), 0);
  size_t len;
  cleanup_free unsigned char *m = slurp (delta, &len);
  assert_int_equal (len, SIZE);
  assert_int_equal (m[0], 'B');
  assert_int_equal (m[10 * PAGE], 0);
}

static void
test_size_mismatch_keeps_base (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  make_pair ();
  put (delta, SIZE + PAGE, SIZE, 10, 'x'); /* delta larger than base */
  assert_int_equal (ch_merge_delta_into_base (base, delta, &err), -1);
  assert_non_null (strstr (err->msg, "sizes differ"));
  ate_error_release (&err);
  expect_pristine_base (base);
  assert_int_equal (ch_merge_sparse_overlay (base, delta, out, &err), -1);
  ate_error_release (&err);
  assert_false (ate_path_exists (out));
  expect_pristine_base (base);
  /* Missing files and non-regular files. */
  assert_int_equal (ch_merge_delta_into_base (base, tmpdir, &err), -1);
  ate_error_release (&err);
  unlink (delta);
  assert_int_equal (ch_merge_delta_into_base (base, delta, &err), -1);
  ate_error_release (&err);
  expect_pristine_base (base);
}

static void
test_exdev_forced (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  make_pair ();
  ch_merge_test_force_exdev (1);
  assert_int_equal (ch_merge_delta_into_base (base, delta, &err), 0);
  ch_merge_test_force_exdev (0);
  expect_merged (delta);
  expect_sparse (delta);
  expect_pristine_base (base); /* the copying fallback leaves base alone */
  /* A retry of the same merge is harmless (merged ⊇ base). */
  assert_int_equal (ch_merge_delta_into_base (base, delta, &err), 0);
  expect_merged (delta);
}

static void
test_exdev_real (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  char shm[64];
  snprintf (shm, sizeof (shm), "/dev/shm/test_ch_merge.XXXXXX");
  if (mkdtemp (shm) == NULL)
    skip ();
  cleanup_free char *sdelta = ate_path_join (shm, "memory-ranges");
  struct stat a, b;
  make_pair ();
  assert_int_equal (stat (tmpdir, &a), 0);
  assert_int_equal (stat (shm, &b), 0);
  if (a.st_dev == b.st_dev)
    {
      ate_rm_rf (shm, &err);
      skip ();
    }
  put (sdelta, SIZE, 5 * PAGE, PAGE, 'D');
  put (sdelta, SIZE, 30 * PAGE, PAGE, 'd');
  put (sdelta, SIZE, 64 * PAGE, 10, 't');
  assert_int_equal (ch_merge_delta_into_base (base, sdelta, &err), 0);
  expect_merged (sdelta);
  expect_pristine_base (base);
  assert_int_equal (ate_rm_rf (shm, &err), 0);
}

/* Run a merge in a child that dies at `point`; then check what a crash
 * there leaves, recover, and check the result. */
static void
crash_and_recover (enum ch_merge_crash_point point, bool overlay)
{
  struct ate_error *err = NULL;
  int status;
  pid_t pid;

  make_pair ();
  pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      ch_merge_test_crash_at (point);
      if (overlay)
        ch_merge_test_force_exdev (1);
      ch_merge_delta_into_base (base, delta, &err);
      _exit (0); /* not reached when the crash point fires */
    }
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);

  /* Invariant after the crash: the old complete base is either at base or
   * at the work file, and delta holds the delta or nothing -- never a
   * half-merged file. */
  cleanup_free char *tmp = xasprintf ("%s" CH_MERGE_TMP_SUFFIX, delta);
  if (ate_path_exists (base))
    expect_pristine_base (base);
  else
    assert_true (ate_path_exists (tmp));
  if (ate_path_exists (delta))
    {
      size_t len;
      cleanup_free unsigned char *m = slurp (delta, &len);
      assert_int_equal (m[0], 0); /* still the delta, not a merged image */
      assert_int_equal (m[5 * PAGE], 'D');
    }

  int r = ch_merge_recover (base, delta, &err);
  if (r < 0)
    fail_msg ("recover: %s", err->msg);
  assert_false (ate_path_exists (tmp));
  if (overlay || point == CH_MERGE_CRASH_NONE)
    {
      /* Nothing had been renamed: recovery only cleans up; the merge is
       * then simply run again. */
      assert_int_equal (r, 0);
      expect_pristine_base (base);
      assert_int_equal (ch_merge_delta_into_base (base, delta, &err), 0);
    }
  else
    {
      assert_int_equal (r, 1);
      assert_false (ate_path_exists (base));
    }
  expect_merged (delta);
  expect_sparse (delta);
}

static void
test_crash_points (void **state)
{
  enum ch_merge_crash_point pts[] = { CH_MERGE_CRASH_AFTER_RENAME_BASE,
                                      CH_MERGE_CRASH_AFTER_FIRST_EXTENT,
                                      CH_MERGE_CRASH_AFTER_COPY,
                                      CH_MERGE_CRASH_AFTER_UNLINK_DELTA };
  for (size_t i = 0; i < ATE_N_ELEMENTS (pts); i++)
    {
      crash_and_recover (pts[i], false);
      teardown (state);
      setup (state);
    }
}

static void
test_crash_points_overlay (void **state)
{
  crash_and_recover (CH_OVERLAY_CRASH_AFTER_BASE_COPY, true);
  teardown (state);
  setup (state);
  crash_and_recover (CH_OVERLAY_CRASH_AFTER_FIRST_EXTENT, true);
}

static void
test_retry_via_merge_call (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  int status;
  pid_t pid;

  /* The orchestrator may simply call the merge again after a crash. */
  make_pair ();
  pid = fork ();
  if (pid == 0)
    {
      ch_merge_test_crash_at (CH_MERGE_CRASH_AFTER_FIRST_EXTENT);
      ch_merge_delta_into_base (base, delta, &err);
      _exit (0);
    }
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
  assert_int_equal (ch_merge_delta_into_base (base, delta, &err), 0);
  expect_merged (delta);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_delta_into_base, setup, teardown),
    cmocka_unit_test_setup_teardown (test_overlay_matches_fast_path, setup, teardown),
    cmocka_unit_test_setup_teardown (test_empty_delta, setup, teardown),
    cmocka_unit_test_setup_teardown (test_size_mismatch_keeps_base, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exdev_forced, setup, teardown),
    cmocka_unit_test_setup_teardown (test_exdev_real, setup, teardown),
    cmocka_unit_test_setup_teardown (test_crash_points, setup, teardown),
    cmocka_unit_test_setup_teardown (test_crash_points_overlay, setup, teardown),
    cmocka_unit_test_setup_teardown (test_retry_via_merge_call, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
