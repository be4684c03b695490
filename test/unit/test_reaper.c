/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The orphan reaper as PID 1 of a PID namespace (the ateom container): it
 * reaps orphans re-parented to us, and never takes the exit status of a
 * child spawned through ate_proc_spawn.  Run by ctest through
 * `unshare --pid --fork --mount-proc`; skipped (77) when not PID 1.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "util/proc.h"
#include "util/util.h"

static int
count_zombies (void)
{
  DIR *d = opendir ("/proc");
  struct dirent *de;
  int n = 0;

  while ((de = readdir (d)) != NULL)
    {
      char path[300], buf[512];
      FILE *f;
      if (atoi (de->d_name) <= 1)
        continue;
      snprintf (path, sizeof (path), "/proc/%s/stat", de->d_name);
      f = fopen (path, "re");
      if (f == NULL)
        continue;
      if (fgets (buf, sizeof (buf), f))
        {
          char *p = strrchr (buf, ')');
          if (p && p[2] == 'Z')
            n++;
        }
      fclose (f);
    }
  closedir (d);
  return n;
}

static void
test_orphans_reaped_children_kept (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct ate_proc *p = NULL;
  char *mine[] = { "sh", "-c", "exit 7", NULL };
  /* The shell forks a grandchild and exits: the grandchild becomes our
   * orphan and exits soon after. */
  char *orphaner[] = { "sh", "-c", "(sleep 0.2; exit 3) & exit 0", NULL };
  int status = 0;

  assert_int_equal (ate_proc_spawn (mine, NULL, &p, &err), 0);
  assert_int_equal (ate_proc_run (orphaner, NULL, ate_deadline_in_ms (5000), NULL, &err), 0);
  /* Let the registered child and the orphan both exit and SIGCHLD fire. */
  usleep (600 * 1000);
  assert_int_equal (count_zombies (), 1); /* only ours, kept for its owner */
  assert_int_equal (ate_proc_wait (p, ate_deadline_in_ms (5000), &status, &err), 0);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 7);
  ate_proc_free (p);
  assert_int_equal (count_zombies (), 0);
}

int
main (void)
{
  struct ate_error *err = NULL;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_orphans_reaped_children_kept),
  };

  if (getpid () != 1)
    {
      fprintf (stderr, "SKIP: must run as PID 1 (unshare --pid --fork --mount-proc)\n");
      return 77;
    }
  ate_proc_block_sigchld ();
  if (ate_proc_reaper_start (&err) < 0)
    {
      fprintf (stderr, "reaper: %s\n", err->msg);
      return 1;
    }
  return cmocka_run_group_tests (tests, NULL, NULL);
}
