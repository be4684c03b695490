/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "util.h"

#include <stdarg.h>
#include <string.h>

void
ate_oom (void)
{
  static const char msg[] = "ateom: out of memory\n";
  (void) !write (STDERR_FILENO, msg, sizeof (msg) - 1);
  abort ();
}

void *
xmalloc (size_t size)
{
  void *p = malloc (size ? size : 1);
  if (p == NULL)
    ate_oom ();
  return p;
}

void *
xmalloc0 (size_t size)
{
  void *p = calloc (1, size ? size : 1);
  if (p == NULL)
    ate_oom ();
  return p;
}

void *
xcalloc (size_t n, size_t size)
{
  void *p = calloc (n ? n : 1, size ? size : 1);
  if (p == NULL)
    ate_oom ();
  return p;
}

void *
xrealloc (void *p, size_t size)
{
  void *r = realloc (p, size ? size : 1);
  if (r == NULL)
    ate_oom ();
  return r;
}

char *
xstrdup (const char *s)
{
  char *r = strdup (s ? s : "");
  if (r == NULL)
    ate_oom ();
  return r;
}

char *
xstrndup (const char *s, size_t n)
{
  /* memchr reads at most n bytes: s need not be terminated within them
   * (gRPC slices, header clusters). strndup may look one byte further. */
  const char *nul = memchr (s, '\0', n);
  return xmemdup0 (s, nul != NULL ? (size_t) (nul - s) : n);
}

char *
xmemdup0 (const void *p, size_t n)
{
  char *d = xmalloc (n + 1);
  memcpy (d, p, n);
  d[n] = '\0';
  return d;
}

char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  char *r;
  int n;

  va_start (ap, fmt);
  n = vasprintf (&r, fmt, ap);
  va_end (ap);
  if (n < 0)
    ate_oom ();
  return r;
}

void
strv_free (char **v)
{
  if (v == NULL)
    return;
  for (char **p = v; *p; p++)
    free (*p);
  free (v);
}

size_t
strv_len (char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

bool
str_has_prefix (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

bool
str_has_suffix (const char *s, const char *suffix)
{
  size_t ls = strlen (s), lx = strlen (suffix);
  return ls >= lx && memcmp (s + ls - lx, suffix, lx) == 0;
}
