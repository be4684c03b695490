/* SPDX-License-Identifier: Apache-2.0 */
/* UTF-8 encoding and strict decoding (Go's unicode/utf8 rules). */
#ifndef ATE_UTF8_H
#define ATE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define ATE_UTF8_RUNE_ERROR 0xfffdu

/* Decode one code point of s[0..n) (n >= 1).  Any invalid or incomplete
 * sequence (overlong, surrogate, > U+10FFFF) yields ATE_UTF8_RUNE_ERROR
 * with size 1. */
size_t ate_utf8_decode (const unsigned char *s, size_t n, uint32_t *rune);

/* Encode cp (<= U+10FFFF) into out; returns 1 to 4. */
size_t ate_utf8_encode (uint32_t cp, char out[4]);

#endif
