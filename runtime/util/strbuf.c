/* SPDX-License-Identifier: Apache-2.0 */
#include "strbuf.h"

#include <string.h>

#include "utf8.h"
#include "util.h"

void
ate_strbuf_reserve (struct ate_strbuf *b, size_t more)
{
  if (b->n + more + 1 > b->cap)
    {
      b->cap = (b->n + more + 1) * 2;
      b->d = xrealloc (b->d, b->cap);
    }
}

void
ate_strbuf_add (struct ate_strbuf *b, const void *s, size_t n)
{
  ate_strbuf_reserve (b, n);
  memcpy (b->d + b->n, s, n);
  b->n += n;
  b->d[b->n] = '\0';
}

void
ate_strbuf_add_str (struct ate_strbuf *b, const char *s)
{
  ate_strbuf_add (b, s, strlen (s));
}

void
ate_strbuf_add_utf8 (struct ate_strbuf *b, uint32_t rune)
{
  char o[4];
  ate_strbuf_add (b, o, ate_utf8_encode (rune, o));
}
