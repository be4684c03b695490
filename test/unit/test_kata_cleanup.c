/* SPDX-License-Identifier: Apache-2.0 */
/* Stale sandbox cleanup: mounts deepest first, both directories, every
 * failure reported.  Needs root; runs in a private mount namespace so that
 * nothing it mounts can leak to the host, even when it fails. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kata/cleanup.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/util.h"

static char *base;
static struct ate_paths paths;

static int
setup (void **state)
{
  (void) state;
  char tmpl[] = "/tmp/ate-test-cleanup-XXXXXX";
  struct ate_error *err = NULL;

  assert_non_null (mkdtemp (tmpl));
  base = xstrdup (tmpl);
  /* A tmpfs of our own: everything below disappears with the namespace. */
  assert_int_equal (mount ("tmpfs", base, "tmpfs", 0, "size=16m"), 0);
  paths.kata_run = xasprintf ("%s/kata", base);
  paths.run_dir = xasprintf ("%s/vm", base);
  assert_int_equal (ate_mkdir_p (paths.kata_run, 0755, &err), 0);
  assert_int_equal (ate_mkdir_p (paths.run_dir, 0755, &err), 0);
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  umount2 (base, MNT_DETACH);
  rmdir (base);
  free (base);
  free ((char *) paths.kata_run);
  free ((char *) paths.run_dir);
  return 0;
}

static bool
is_mounted (const char *path)
{
  FILE *f = fopen ("/proc/self/mountinfo", "re");
  char *line = NULL;
  size_t cap = 0;
  bool found = false;

  while (!found && getline (&line, &cap, f) > 0)
    {
      char *save = NULL, *field = strtok_r (line, " ", &save);
      for (int i = 0; i < 4 && field; i++)
        field = strtok_r (NULL, " ", &save);
      if (field)
        {
          kata_mountinfo_unescape (field);
          found = strcmp (field, path) == 0;
        }
    }
  free (line);
  fclose (f);
  return found;
}

static char *
mount_tmpfs (const char *dir, const char *sub)
{
  char *p = xasprintf ("%s/%s", dir, sub);
  struct ate_error *err = NULL;
  assert_int_equal (ate_mkdir_p (p, 0755, &err), 0);
  assert_int_equal (mount ("tmpfs", p, "tmpfs", 0, "size=1m"), 0);
  return p;
}

static void
test_unescape (void **state)
{
  (void) state;
  char s[] = "/run/a\\040b\\011c\\012d\\134e\\09x\\";
  kata_mountinfo_unescape (s);
  assert_string_equal (s, "/run/a b\tc\nd\\e\\09x\\");
}

static void
test_cleanup_nested_mounts (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  cleanup_free char *sbx = xasprintf ("%s/shared/sandboxes/a1", paths.kata_run);
  cleanup_free char *vm = xasprintf ("%s/a1", paths.run_dir);
  cleanup_free char *other = xasprintf ("%s/shared/sandboxes/a10", paths.kata_run);
  cleanup_free char *m1 = mount_tmpfs (sbx, "shared");
  cleanup_free char *m2 = mount_tmpfs (sbx, "shared/ctr/rootfs");
  cleanup_free char *m3 = mount_tmpfs (vm, "dir with space");
  cleanup_free char *m4 = mount_tmpfs (other, "mnt");
  cleanup_free char *sock = xasprintf ("%s/clh.sock", vm);

  assert_int_equal (ate_write_file (sock, "", 0, 0600, &err), 0);
  assert_true (is_mounted (m3));
  assert_int_equal (kata_sandbox_cleanup (&paths, "a1", &err), 0);
  assert_null (err);
  assert_false (is_mounted (m1));
  assert_false (is_mounted (m2));
  assert_false (is_mounted (m3));
  assert_false (ate_path_exists (sbx));
  assert_false (ate_path_exists (vm));
  /* A sandbox whose id merely starts with "a1" is left alone. */
  assert_true (is_mounted (m4));
  assert_true (ate_path_exists (other));
  assert_int_equal (kata_sandbox_cleanup (&paths, "a10", &err), 0);
  assert_false (is_mounted (m4));
  /* Nothing to clean is success. */
  assert_int_equal (kata_sandbox_cleanup (&paths, "a1", &err), 0);
}

static void
test_cleanup_reports_every_failure (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  cleanup_free char *vm = xasprintf ("%s/b2", paths.run_dir);
  cleanup_free char *sbx = xasprintf ("%s/shared/sandboxes/b2", paths.kata_run);
  cleanup_free char *mnt = mount_tmpfs (sbx, "m");
  cleanup_free char *ro_parent = xstrdup (paths.run_dir);

  /* <run_dir>/b2 lives on a read-only run_dir: it cannot be removed, but
   * the sandbox dir still is. */
  assert_int_equal (ate_mkdir_p (vm, 0700, &err), 0);
  assert_int_equal (mount (ro_parent, ro_parent, "none", MS_BIND, NULL), 0);
  assert_int_equal (mount ("none", ro_parent, "none", MS_BIND | MS_REMOUNT | MS_RDONLY, NULL), 0);
  assert_true (kata_sandbox_cleanup (&paths, "b2", &err) < 0);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "clean up stale state of sandbox b2"));
  assert_non_null (strstr (err->msg, vm));
  assert_int_equal (err->status, EROFS);
  ate_error_release (&err);
  assert_false (is_mounted (mnt));
  assert_false (ate_path_exists (sbx));
  assert_true (ate_path_exists (vm));
  assert_int_equal (umount2 (ro_parent, MNT_DETACH), 0);
  assert_int_equal (kata_sandbox_cleanup (&paths, "b2", &err), 0);
}

static void
test_cleanup_rejects_bad_ids (void **state)
{
  (void) state;
  static const char *bad[] = { "", "..", "a/b", "../../etc", "A1", "-x" };
  for (size_t i = 0; i < ATE_N_ELEMENTS (bad); i++)
    {
      struct ate_error *err = NULL;
      assert_true (kata_sandbox_cleanup (&paths, bad[i], &err) < 0);
      assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
      ate_error_release (&err);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_unescape),
    cmocka_unit_test_setup_teardown (test_cleanup_nested_mounts, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cleanup_reports_every_failure, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cleanup_rejects_bad_ids, setup, teardown),
  };
  if (geteuid () != 0)
    {
      fprintf (stderr, "SKIP: test_kata_cleanup needs root (mounts)\n");
      return 77;
    }
  if (unshare (CLONE_NEWNS) < 0 || mount ("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
    {
      fprintf (stderr, "SKIP: cannot create a private mount namespace: %s\n", strerror (errno));
      return 77;
    }
  ate_log_set_fd (2);
  return cmocka_run_group_tests (tests, NULL, NULL);
}
