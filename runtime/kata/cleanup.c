/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "cleanup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/util.h"
#include "util/validate.h"

#define N_DIRS 2

void
kata_mountinfo_unescape (char *field)
{
  char *w = field;

  for (char *r = field; *r;)
    {
      if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7'
          && r[3] >= '0' && r[3] <= '7')
        {
          *w++ = (char) ((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
          r += 4;
        }
      else
        *w++ = *r++;
    }
  *w = '\0';
}

static bool
is_at_or_below (const char *path, const char *dir)
{
  size_t n = strlen (dir);
  return strncmp (path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int
by_length_desc (const void *a, const void *b)
{
  size_t la = strlen (*(char *const *) a), lb = strlen (*(char *const *) b);
  return la < lb ? 1 : la > lb ? -1 : 0;
}

/* Mount points at or below any of dirs, from /proc/self/mountinfo. */
static int
collect_mounts (char *const *dirs, size_t n_dirs, char ***out, size_t *n_out,
                struct ate_error **err)
{
  cleanup_fclose FILE *f = fopen ("/proc/self/mountinfo", "re");
  cleanup_free char *line = NULL;
  size_t cap = 0, n = 0, alloc = 0;
  char **mounts = NULL;

  if (f == NULL)
    return ate_error_make (err, errno, "open /proc/self/mountinfo");
  while (getline (&line, &cap, f) > 0)
    {
      char *save = NULL, *field = strtok_r (line, " ", &save);
      /* Fields: id parent major:minor root mount-point ... */
      for (int i = 0; i < 4 && field; i++)
        field = strtok_r (NULL, " ", &save);
      if (field == NULL)
        continue;
      kata_mountinfo_unescape (field);
      for (size_t d = 0; d < n_dirs; d++)
        if (is_at_or_below (field, dirs[d]))
          {
            if (n == alloc)
              {
                alloc = alloc ? alloc * 2 : 8;
                mounts = xrealloc (mounts, alloc * sizeof (char *));
              }
            mounts[n++] = xstrdup (field);
            break;
          }
    }
  if (n > 1)
    qsort (mounts, n, sizeof (char *), by_length_desc);
  *out = mounts;
  *n_out = n;
  return 0;
}

/* Log one failed step and add it to *err (all failures are kept). */
static void
record_failure (struct ate_error **err, struct ate_error **e, const char *what,
                const char *path)
{
  ate_log (ATE_LOG_WARN, "stale sandbox cleanup failed", "step", what, "path", path, "err",
           (*e)->msg, NULL);
  ate_error_collect (err, e, NULL);
}

int
kata_sandbox_cleanup (const struct ate_paths *paths, const char *id, struct ate_error **err)
{
  char *dirs[N_DIRS];
  char **mounts = NULL;
  size_t n_mounts = 0;
  struct ate_error *e = NULL;
  int failed = 0;

  if (ate_validate_label ("sandbox id", id, err) < 0)
    return -1;
  dirs[0] = xasprintf ("%s/shared/sandboxes/%s", paths->kata_run, id);
  dirs[1] = xasprintf ("%s/%s", paths->run_dir, id);

  if (collect_mounts (dirs, N_DIRS, &mounts, &n_mounts, &e) < 0)
    {
      record_failure (err, &e, "read mounts", "/proc/self/mountinfo");
      failed = 1;
    }
  for (size_t i = 0; i < n_mounts; i++)
    {
      if (umount2 (mounts[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        {
          ate_error_make (&e, errno, "unmount `%s`", mounts[i]);
          record_failure (err, &e, "unmount", mounts[i]);
          failed = 1;
        }
      free (mounts[i]);
    }
  free (mounts);
  for (size_t d = 0; d < N_DIRS; d++)
    {
      if (ate_rm_rf (dirs[d], &e) < 0)
        {
          record_failure (err, &e, "remove", dirs[d]);
          failed = 1;
        }
      free (dirs[d]);
    }
  if (failed)
    return ate_error_wrap (err, "clean up stale state of sandbox %s", id);
  return 0;
}
