/* SPDX-License-Identifier: Apache-2.0 */
/* A growing byte string, always NUL-terminated once anything (even "") has
 * been added; it may hold NUL bytes, so n is its length. */
#ifndef ATE_STRBUF_H
#define ATE_STRBUF_H

#include <stddef.h>
#include <stdint.h>

struct ate_strbuf
{
  char *d; /* malloc'd; the owner frees it (or takes it) */
  size_t n, cap;
};

/* Room for more bytes (and the terminating NUL) without reallocation. */
void ate_strbuf_reserve (struct ate_strbuf *b, size_t more);
void ate_strbuf_add (struct ate_strbuf *b, const void *s, size_t n);
void ate_strbuf_add_str (struct ate_strbuf *b, const char *s);
/* The UTF-8 encoding of a code point (<= U+10FFFF). */
void ate_strbuf_add_utf8 (struct ate_strbuf *b, uint32_t rune);

#endif
