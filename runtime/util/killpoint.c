/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "killpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

void
ate_killpoint (const char *scope, const char *name)
{
  const char *want = getenv (ATE_KILLPOINT_ENV);
  const char *once = getenv (ATE_KILLPOINT_ONCE_ENV);
  size_t n = scope ? strlen (scope) : 0;

  if (want == NULL || *want == '\0' || name == NULL)
    return;
  if (scope ? (strncmp (want, scope, n) != 0 || want[n] != '/' || strcmp (want + n + 1, name) != 0)
            : strcmp (want, name) != 0)
    return;
  if (once && *once)
    {
      int fd = open (once, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0)
        return; /* fired before: disarmed */
      close (fd);
    }
  ate_log (ATE_LOG_WARN, "test kill point reached: SIGKILL", "point", want, NULL);
  kill (getpid (), SIGKILL);
  pause ();
}
