/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small shared helpers: allocation that aborts on OOM, cleanup attributes,
 * steal_pointer, string helpers.
 */
#ifndef ATE_UTIL_H
#define ATE_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ATE_N_ELEMENTS(a) (sizeof (a) / sizeof ((a)[0]))
#define ATE_LIKELY(x) __builtin_expect (!!(x), 1)
#define ATE_UNLIKELY(x) __builtin_expect (!!(x), 0)

#ifndef TEMP_FAILURE_RETRY
#define TEMP_FAILURE_RETRY(expression)                                         \
  (__extension__ ({                                                            \
    long int __result;                                                         \
    do                                                                         \
      __result = (long int) (expression);                                      \
    while (__result == -1L && errno == EINTR);                                 \
    __result;                                                                  \
  }))
#endif

/* Allocation failure is not recoverable for a server like this one: abort
 * with a message instead of threading ENOMEM through every path. */
__attribute__ ((noreturn)) void ate_oom (void);
void *xmalloc (size_t size) __attribute__ ((malloc, alloc_size (1)));
void *xmalloc0 (size_t size) __attribute__ ((malloc, alloc_size (1)));
void *xcalloc (size_t n, size_t size) __attribute__ ((malloc));
void *xrealloc (void *p, size_t size);
char *xstrdup (const char *s);
/* The bytes of s up to its first NUL or n bytes, whichever comes first;
 * never reads past s[n - 1], so s need not be terminated. */
char *xstrndup (const char *s, size_t n) __attribute__ ((malloc));
/* A NUL-terminated copy of exactly n bytes of p: unlike strndup it never
 * reads past them (p need not be terminated) and keeps NUL bytes inside. */
char *xmemdup0 (const void *p, size_t n) __attribute__ ((malloc));
char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2), malloc));

/* NULL-terminated string vectors. */
void strv_free (char **v);
size_t strv_len (char *const *v);

static inline void *
steal_pointer_impl (void *pp)
{
  void **p = (void **) pp;
  void *r = *p;
  *p = NULL;
  return r;
}
#define steal_pointer(pp) ((__typeof__ (*(pp))) steal_pointer_impl (pp))

static inline int
steal_fd (int *fdp)
{
  int fd = *fdp;
  *fdp = -1;
  return fd;
}

static inline void
cleanup_free_fn (void *p)
{
  free (*(void **) p);
}
static inline void
cleanup_close_fn (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
static inline void
cleanup_fclose_fn (FILE **f)
{
  if (*f)
    fclose (*f);
}
static inline void
cleanup_dir_fn (DIR **d)
{
  if (*d)
    closedir (*d);
}
static inline void
cleanup_strv_fn (char ***v)
{
  strv_free (*v);
}

#define cleanup_free __attribute__ ((cleanup (cleanup_free_fn)))
#define cleanup_close __attribute__ ((cleanup (cleanup_close_fn)))
#define cleanup_fclose __attribute__ ((cleanup (cleanup_fclose_fn)))
#define cleanup_dir __attribute__ ((cleanup (cleanup_dir_fn)))
#define cleanup_strv __attribute__ ((cleanup (cleanup_strv_fn)))

/* Close *fd if open and set it to -1. */
static inline void
close_and_reset (int *fd)
{
  if (*fd >= 0)
    {
      close (*fd);
      *fd = -1;
    }
}

bool str_has_prefix (const char *s, const char *prefix);
bool str_has_suffix (const char *s, const char *suffix);

#endif
