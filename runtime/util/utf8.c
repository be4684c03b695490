/* SPDX-License-Identifier: Apache-2.0 */
#include "utf8.h"

size_t
ate_utf8_decode (const unsigned char *s, size_t n, uint32_t *rune)
{
  unsigned char c = s[0];
  unsigned char lo = 0x80, hi = 0xbf;
  size_t size;
  uint32_t r;

  if (c < 0x80)
    {
      *rune = c;
      return 1;
    }
  if (c >= 0xc2 && c <= 0xdf)
    size = 2, r = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    {
      size = 3, r = c & 0x0f;
      if (c == 0xe0)
        lo = 0xa0; /* no overlong forms */
      else if (c == 0xed)
        hi = 0x9f; /* no surrogates */
    }
  else if (c >= 0xf0 && c <= 0xf4)
    {
      size = 4, r = c & 0x07;
      if (c == 0xf0)
        lo = 0x90;
      else if (c == 0xf4)
        hi = 0x8f; /* nothing above U+10FFFF */
    }
  else
    goto bad;
  if (n < size || s[1] < lo || s[1] > hi)
    goto bad;
  r = r << 6 | (s[1] & 0x3f);
  for (size_t i = 2; i < size; i++)
    {
      if (s[i] < 0x80 || s[i] > 0xbf)
        goto bad;
      r = r << 6 | (s[i] & 0x3f);
    }
  *rune = r;
  return size;
bad:
  *rune = ATE_UTF8_RUNE_ERROR;
  return 1;
}

size_t
ate_utf8_encode (uint32_t cp, char out[4])
{
  if (cp < 0x80)
    {
      out[0] = (char) cp;
      return 1;
    }
  if (cp < 0x800)
    {
      out[0] = (char) (0xc0 | cp >> 6);
      out[1] = (char) (0x80 | (cp & 0x3f));
      return 2;
    }
  if (cp < 0x10000)
    {
      out[0] = (char) (0xe0 | cp >> 12);
      out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
      out[2] = (char) (0x80 | (cp & 0x3f));
      return 3;
    }
  out[0] = (char) (0xf0 | cp >> 18);
  out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
  out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
  out[3] = (char) (0x80 | (cp & 0x3f));
  return 4;
}
