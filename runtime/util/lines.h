/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Splitting a byte stream into lines: complete lines are passed to emit
 * without their '\n' (a '\r' before it is kept); empty lines are dropped; a
 * line reaching max_line bytes is passed on in pieces of max_line, so a
 * peer cannot grow the buffer without bound.
 */
#ifndef ATE_LINES_H
#define ATE_LINES_H

#include <stddef.h>

struct ate_line_splitter
{
  char *buf;
  size_t len, cap, max_line;
  void (*emit) (void *ctx, const char *line, size_t len);
  void *ctx;
};

void ate_line_splitter_init (struct ate_line_splitter *s, size_t max_line,
                             void (*emit) (void *ctx, const char *line, size_t len),
                             void *ctx);
void ate_line_splitter_feed (struct ate_line_splitter *s, const char *data, size_t len);
/* End of stream: the unterminated rest (if any) is a line too; frees the
 * buffer. */
void ate_line_splitter_finish (struct ate_line_splitter *s);

#endif
