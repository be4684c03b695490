/* SPDX-License-Identifier: Apache-2.0 */
#include "lines.h"

#include <string.h>

#include "util.h"

void
ate_line_splitter_init (struct ate_line_splitter *s, size_t max_line,
                        void (*emit) (void *ctx, const char *line, size_t len), void *ctx)
{
  memset (s, 0, sizeof (*s));
  s->max_line = max_line;
  s->emit = emit;
  s->ctx = ctx;
}

static void
emit_pending (struct ate_line_splitter *s)
{
  if (s->len > 0)
    s->emit (s->ctx, s->buf, s->len);
  s->len = 0;
}

void
ate_line_splitter_feed (struct ate_line_splitter *s, const char *data, size_t len)
{
  while (len > 0)
    {
      const char *nl = memchr (data, '\n', len);
      size_t chunk = nl ? (size_t) (nl - data) : len;
      size_t room = s->max_line - s->len;

      if (chunk > room)
        chunk = room;
      if (s->len + chunk + 1 > s->cap)
        {
          s->cap = s->len + chunk + 1 > s->cap * 2 ? s->len + chunk + 1 : s->cap * 2;
          s->buf = xrealloc (s->buf, s->cap);
        }
      memcpy (s->buf + s->len, data, chunk);
      s->len += chunk;
      data += chunk;
      len -= chunk;
      if (len > 0 && *data == '\n')
        {
          data++;
          len--;
          emit_pending (s);
        }
      else if (s->len == s->max_line)
        emit_pending (s);
    }
}

void
ate_line_splitter_finish (struct ate_line_splitter *s)
{
  emit_pending (s);
  free (s->buf);
  s->buf = NULL;
  s->cap = 0;
}
