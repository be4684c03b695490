/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "gojson.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "util.h"

/* ---- Writing ------------------------------------------------------------- */

/* A JSON string the way encoding/json writes it with HTML escaping on. */
static void
encode_string (struct ate_strbuf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *) s;
  size_t i = 0, start = 0;

  ate_strbuf_reserve (b, n + 2);
  ate_strbuf_add (b, "\"", 1);
  while (i < n)
    {
      unsigned char c = u[i];
      const char *esc = NULL;
      char tmp[7];

      if (c < 0x80)
        {
          if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&')
            {
              i++;
              continue;
            }
          switch (c)
            {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            default:
              memcpy (tmp, "\\u00", 4);
              tmp[4] = hex[c >> 4];
              tmp[5] = hex[c & 0xf];
              tmp[6] = '\0';
              esc = tmp;
            }
          ate_strbuf_add (b, s + start, i - start);
          ate_strbuf_add_str (b, esc);
          start = ++i;
          continue;
        }
      uint32_t r;
      size_t size = ate_utf8_decode (u + i, n - i, &r);
      if (r == ATE_UTF8_RUNE_ERROR && size == 1)
        esc = "\\ufffd";
      else if (r == 0x2028)
        esc = "\\u2028";
      else if (r == 0x2029)
        esc = "\\u2029";
      if (esc)
        {
          ate_strbuf_add (b, s + start, i - start);
          ate_strbuf_add_str (b, esc);
          start = i + size;
        }
      i += size;
    }
  ate_strbuf_add (b, s + start, n - start);
  ate_strbuf_add (b, "\"", 1);
}

struct member_ref
{
  const char *key;
  size_t len, index;
};

static int
member_cmp (const void *a, const void *b)
{
  const struct member_ref *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp (x->key, y->key, n);
  if (c == 0)
    c = x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
  if (c == 0)
    c = x->index < y->index ? -1 : 1;
  return c;
}

/* Keys in bytewise order; of duplicate keys only the last one. */
static void
encode_object (struct ate_strbuf *b, const struct ate_gojson *o)
{
  struct member_ref *refs = xcalloc (o->n ? o->n : 1, sizeof (*refs));
  bool first = true;

  for (size_t i = 0; i < o->n; i++)
    refs[i] = (struct member_ref) { o->keys[i], o->key_lens[i], i };
  qsort (refs, o->n, sizeof (*refs), member_cmp);
  ate_strbuf_add (b, "{", 1);
  for (size_t i = 0; i < o->n; i++)
    {
      if (i + 1 < o->n && refs[i + 1].len == refs[i].len
          && memcmp (refs[i + 1].key, refs[i].key, refs[i].len) == 0)
        continue;
      if (!first)
        ate_strbuf_add (b, ",", 1);
      first = false;
      encode_string (b, refs[i].key, refs[i].len);
      ate_strbuf_add (b, ":", 1);
      ate_gojson_encode (b, o->items[refs[i].index]);
    }
  ate_strbuf_add (b, "}", 1);
  free (refs);
}

void
ate_gojson_encode (struct ate_strbuf *b, const struct ate_gojson *v)
{
  switch (v->type)
    {
    case ATE_GOJSON_NULL: ate_strbuf_add_str (b, "null"); break;
    case ATE_GOJSON_TRUE: ate_strbuf_add_str (b, "true"); break;
    case ATE_GOJSON_FALSE: ate_strbuf_add_str (b, "false"); break;
    case ATE_GOJSON_NUMBER: ate_strbuf_add (b, v->s, v->len); break;
    case ATE_GOJSON_STRING: encode_string (b, v->s, v->len); break;
    case ATE_GOJSON_ARRAY:
      ate_strbuf_add (b, "[", 1);
      for (size_t i = 0; i < v->n; i++)
        {
          if (i)
            ate_strbuf_add (b, ",", 1);
          ate_gojson_encode (b, v->items[i]);
        }
      ate_strbuf_add (b, "]", 1);
      break;
    case ATE_GOJSON_OBJECT: encode_object (b, v); break;
    }
}

/* ---- Values ---------------------------------------------------------------- */

void
ate_gojson_free (struct ate_gojson *v)
{
  if (v == NULL)
    return;
  free (v->s);
  for (size_t i = 0; i < v->n; i++)
    {
      ate_gojson_free (v->items[i]);
      if (v->keys)
        free (v->keys[i]);
    }
  free (v->items);
  free (v->keys);
  free (v->key_lens);
  free (v);
}

struct ate_gojson *
ate_gojson_new (enum ate_gojson_type t)
{
  struct ate_gojson *v = xmalloc0 (sizeof (*v));
  v->type = t;
  return v;
}

struct ate_gojson *
ate_gojson_new_string (const char *s, size_t len)
{
  struct ate_gojson *v = ate_gojson_new (ATE_GOJSON_STRING);
  v->s = xmemdup0 (s, len); /* may contain NUL bytes */
  v->len = len;
  return v;
}

void
ate_gojson_put (struct ate_gojson *o, char *key, size_t key_len, struct ate_gojson *val)
{
  if (o->n == o->cap)
    {
      o->cap = o->cap ? o->cap * 2 : 4;
      o->items = xrealloc (o->items, o->cap * sizeof (*o->items));
      if (o->type == ATE_GOJSON_OBJECT)
        {
          o->keys = xrealloc (o->keys, o->cap * sizeof (*o->keys));
          o->key_lens = xrealloc (o->key_lens, o->cap * sizeof (*o->key_lens));
        }
    }
  if (o->type == ATE_GOJSON_OBJECT)
    {
      o->keys[o->n] = key;
      o->key_lens[o->n] = key_len;
    }
  o->items[o->n++] = val;
}

struct ate_gojson *
ate_gojson_get (const struct ate_gojson *o, const char *key)
{
  size_t l = strlen (key);
  for (size_t i = o->n; i-- > 0;)
    if (o->key_lens[i] == l && memcmp (o->keys[i], key, l) == 0)
      return o->items[i];
  return NULL;
}

void
ate_gojson_put_str (struct ate_gojson *o, const char *key, const char *val)
{
  ate_gojson_put (o, xstrdup (key), strlen (key), ate_gojson_new_string (val, strlen (val)));
}

/* ---- Parsing ---------------------------------------------------------------- */

struct jp
{
  const unsigned char *s;
  size_t n, pos;
  int depth, max_depth;
};

static void
jp_ws (struct jp *p)
{
  while (p->pos < p->n
         && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n'
             || p->s[p->pos] == '\r'))
    p->pos++;
}

static int
hex4 (const unsigned char *s, size_t n, size_t at)
{
  int v = 0;
  if (at + 4 > n)
    return -1;
  for (size_t i = 0; i < 4; i++)
    {
      unsigned char c = s[at + i];
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0)
        return -1;
      v = v * 16 + d;
    }
  return v;
}

/* \uXXXX at s[at] (after the backslash-u): a surrogate pair is combined;
 * a lone surrogate becomes U+FFFD (Go's unquote). */
static uint32_t
decode_u_escape (struct jp *p, size_t *consumed)
{
  int r = hex4 (p->s, p->n, p->pos + 2);
  *consumed = 6;
  if (r >= 0xd800 && r < 0xe000)
    {
      int r2 = -1;
      if (r < 0xdc00 && p->pos + 12 <= p->n && p->s[p->pos + 6] == '\\'
          && p->s[p->pos + 7] == 'u')
        r2 = hex4 (p->s, p->n, p->pos + 8);
      if (r2 >= 0xdc00 && r2 < 0xe000)
        {
          *consumed = 12;
          return 0x10000 + (((uint32_t) r - 0xd800) << 10) + ((uint32_t) r2 - 0xdc00);
        }
      return ATE_UTF8_RUNE_ERROR;
    }
  return (uint32_t) r;
}

/* A string token at pos (the opening quote); false when malformed. */
static bool
jp_string (struct jp *p, struct ate_strbuf *out)
{
  p->pos++;
  ate_strbuf_add (out, "", 0);
  while (p->pos < p->n)
    {
      unsigned char c = p->s[p->pos];
      if (c == '"')
        {
          p->pos++;
          return true;
        }
      if (c < 0x20)
        return false;
      if (c == '\\')
        {
          static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
          const char *k;
          unsigned char e = p->pos + 1 < p->n ? p->s[p->pos + 1] : 0;
          if (e == 'u')
            {
              size_t used;
              if (hex4 (p->s, p->n, p->pos + 2) < 0)
                return false;
              ate_strbuf_add_utf8 (out, decode_u_escape (p, &used));
              p->pos += used;
              continue;
            }
          if (e == 0 || (k = strchr (from, e)) == NULL)
            return false;
          ate_strbuf_add (out, &to[k - from], 1);
          p->pos += 2;
          continue;
        }
      if (c < 0x80)
        {
          ate_strbuf_add (out, &c, 1);
          p->pos++;
          continue;
        }
      uint32_t r;
      size_t size = ate_utf8_decode (p->s + p->pos, p->n - p->pos, &r);
      if (r == ATE_UTF8_RUNE_ERROR && size == 1)
        ate_strbuf_add_utf8 (out, ATE_UTF8_RUNE_ERROR);
      else
        ate_strbuf_add (out, p->s + p->pos, size);
      p->pos += size;
    }
  return false;
}

static bool
is_digit (unsigned char c)
{
  return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
jp_number (struct jp *p)
{
  const unsigned char *s = p->s;
  size_t i = p->pos;

  if (i < p->n && s[i] == '-')
    i++;
  if (i >= p->n || !is_digit (s[i]))
    return false;
  if (s[i] == '0')
    i++;
  else
    while (i < p->n && is_digit (s[i]))
      i++;
  if (i < p->n && s[i] == '.')
    {
      if (++i >= p->n || !is_digit (s[i]))
        return false;
      while (i < p->n && is_digit (s[i]))
        i++;
    }
  if (i < p->n && (s[i] == 'e' || s[i] == 'E'))
    {
      if (++i < p->n && (s[i] == '+' || s[i] == '-'))
        i++;
      if (i >= p->n || !is_digit (s[i]))
        return false;
      while (i < p->n && is_digit (s[i]))
        i++;
    }
  p->pos = i;
  return true;
}

static struct ate_gojson *jp_value (struct jp *p);

static bool
jp_literal (struct jp *p, const char *lit)
{
  size_t l = strlen (lit);
  if (p->n - p->pos < l || memcmp (p->s + p->pos, lit, l) != 0)
    return false;
  p->pos += l;
  return true;
}

static struct ate_gojson *
jp_container (struct jp *p, bool object)
{
  struct ate_gojson *v = ate_gojson_new (object ? ATE_GOJSON_OBJECT : ATE_GOJSON_ARRAY);
  char close = object ? '}' : ']';

  if (++p->depth > p->max_depth)
    goto fail;
  p->pos++;
  jp_ws (p);
  if (p->pos < p->n && p->s[p->pos] == close)
    {
      p->pos++;
      p->depth--;
      return v;
    }
  for (;;)
    {
      struct ate_strbuf key = { 0 };
      struct ate_gojson *item;

      jp_ws (p);
      if (object)
        {
          if (p->pos >= p->n || p->s[p->pos] != '"' || !jp_string (p, &key))
            {
              free (key.d);
              goto fail;
            }
          jp_ws (p);
          if (p->pos >= p->n || p->s[p->pos] != ':')
            {
              free (key.d);
              goto fail;
            }
          p->pos++;
        }
      item = jp_value (p);
      if (item == NULL)
        {
          free (key.d);
          goto fail;
        }
      ate_gojson_put (v, key.d, key.n, item);
      jp_ws (p);
      if (p->pos < p->n && p->s[p->pos] == ',')
        {
          p->pos++;
          continue;
        }
      if (p->pos < p->n && p->s[p->pos] == close)
        {
          p->pos++;
          p->depth--;
          return v;
        }
      goto fail;
    }
fail:
  ate_gojson_free (v);
  return NULL;
}

static struct ate_gojson *
jp_value (struct jp *p)
{
  size_t start;

  jp_ws (p);
  if (p->pos >= p->n)
    return NULL;
  switch (p->s[p->pos])
    {
    case '{':
      return jp_container (p, true);
    case '[':
      return jp_container (p, false);
    case '"':
      {
        struct ate_strbuf b = { 0 };
        struct ate_gojson *v;
        if (!jp_string (p, &b))
          {
            free (b.d);
            return NULL;
          }
        v = ate_gojson_new (ATE_GOJSON_STRING);
        v->s = b.d;
        v->len = b.n;
        return v;
      }
    case 't':
      return jp_literal (p, "true") ? ate_gojson_new (ATE_GOJSON_TRUE) : NULL;
    case 'f':
      return jp_literal (p, "false") ? ate_gojson_new (ATE_GOJSON_FALSE) : NULL;
    case 'n':
      return jp_literal (p, "null") ? ate_gojson_new (ATE_GOJSON_NULL) : NULL;
    default:
      start = p->pos;
      if (!jp_number (p))
        return NULL;
      {
        struct ate_gojson *v = ate_gojson_new (ATE_GOJSON_NUMBER);
        v->s = xmemdup0 ((const char *) p->s + start, p->pos - start);
        v->len = p->pos - start;
        return v;
      }
    }
}

struct ate_gojson *
ate_gojson_parse_object (const char *s, size_t len, int max_depth)
{
  struct jp p = { .s = (const unsigned char *) s, .n = len, .max_depth = max_depth };
  struct ate_gojson *v;

  jp_ws (&p);
  if (p.pos >= p.n || p.s[p.pos] != '{')
    return NULL;
  v = jp_value (&p);
  if (v == NULL)
    return NULL;
  jp_ws (&p);
  if (p.pos != p.n)
    {
      ate_gojson_free (v);
      return NULL;
    }
  return v;
}

void
ate_gojson_object_merge (struct ate_gojson *dst, struct ate_gojson *src)
{
  for (size_t i = 0; i < src->n; i++)
    ate_gojson_put (dst, src->keys[i], src->key_lens[i], src->items[i]);
  src->n = 0;
  ate_gojson_free (src);
}
