/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "toml.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/strbuf.h"
#include "util/utf8.h"
#include "util/util.h"

#define MAX_PATH 64 /* components of one key path */

/* What a key path names, for TOML's rules on redefinition. */
enum kind
{
  K_VALUE,          /* key = value (including inline tables and arrays) */
  K_TABLE_HEADER,   /* [a.b] */
  K_TABLE_IMPLICIT, /* a, created as the parent of [a.b] */
  K_TABLE_DOTTED,   /* a, created by a.b = value */
  K_ARRAY_TABLE,    /* [[a]] */
};

struct keyset
{
  char **keys;
  unsigned char *kinds;
  size_t cap, n;
};

struct parser
{
  const char *s;
  size_t len, pos;
  unsigned line;
  struct ate_error **err;
  toml_value_cb cb;
  void *ctx;
  char *table[MAX_PATH]; /* current [table] */
  size_t ntable;
  bool untracked; /* inside an array-of-tables element: no redefinition checks */
  struct keyset keys;
  int depth;
};

static int
perr (struct parser *p, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
perr (struct parser *p, const char *fmt, ...)
{
  va_list ap;
  char *msg = NULL;

  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    ate_oom ();
  va_end (ap);
  ate_error_make_code (p->err, ATE_CODE_INVALID_ARGUMENT, EINVAL, "line %u: %s", p->line, msg);
  free (msg);
  return -1;
}

/* ---- key set (open addressing on an encoded path) ---- */

static uint64_t
hash_str (const char *s)
{
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 1099511628211ULL;
  return h;
}

/* "<len>:<component>" per component, so that any key text is unambiguous. */
static char *
encode_path (char *const *path, size_t n)
{
  size_t total = 1;
  char *out, *o;

  for (size_t i = 0; i < n; i++)
    total += strlen (path[i]) + 12;
  out = o = xmalloc (total);
  for (size_t i = 0; i < n; i++)
    o += sprintf (o, "%zu:%s", strlen (path[i]), path[i]);
  *o = '\0';
  return out;
}

static size_t
keyset_slot (struct keyset *ks, const char *key)
{
  size_t i = hash_str (key) & (ks->cap - 1);
  while (ks->keys[i] && strcmp (ks->keys[i], key) != 0)
    i = (i + 1) & (ks->cap - 1);
  return i;
}

static void
keyset_grow (struct keyset *ks)
{
  struct keyset old = *ks;

  ks->cap = old.cap ? old.cap * 2 : 256;
  ks->keys = xcalloc (ks->cap, sizeof (char *));
  ks->kinds = xcalloc (ks->cap, 1);
  for (size_t i = 0; i < old.cap; i++)
    if (old.keys[i])
      {
        size_t j = keyset_slot (ks, old.keys[i]);
        ks->keys[j] = old.keys[i];
        ks->kinds[j] = old.kinds[i];
      }
  free (old.keys);
  free (old.kinds);
}

/* Returns the kind of path, or -1 when absent. */
static int
keyset_get (struct keyset *ks, char *const *path, size_t n)
{
  cleanup_free char *k = NULL;
  size_t i;

  if (ks->cap == 0)
    return -1;
  k = encode_path (path, n);
  i = keyset_slot (ks, k);
  return ks->keys[i] ? ks->kinds[i] : -1;
}

static int
keyset_put (struct parser *p, char *const *path, size_t n, enum kind kind)
{
  struct keyset *ks = &p->keys;
  char *k;
  size_t i;

  if ((ks->n + 1) * 2 > ks->cap)
    keyset_grow (ks);
  k = encode_path (path, n);
  i = keyset_slot (ks, k);
  if (ks->keys[i])
    free (k);
  else
    {
      if (ks->n >= TOML_MAX_KEYS)
        {
          free (k);
          return perr (p, "more than %d keys", TOML_MAX_KEYS);
        }
      ks->keys[i] = k;
      ks->n++;
    }
  ks->kinds[i] = (unsigned char) kind;
  return 0;
}

static void
keyset_free (struct keyset *ks)
{
  for (size_t i = 0; i < ks->cap; i++)
    free (ks->keys[i]);
  free (ks->keys);
  free (ks->kinds);
}

static void
path_free (char **path, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (path[i]);
}

/* ---- characters ---- */

static int
peek (struct parser *p)
{
  return p->pos < p->len ? (unsigned char) p->s[p->pos] : -1;
}

static int
peek_at (struct parser *p, size_t off)
{
  return p->pos + off < p->len ? (unsigned char) p->s[p->pos + off] : -1;
}

static bool
at_str (struct parser *p, const char *lit)
{
  size_t n = strlen (lit);
  return p->len - p->pos >= n && memcmp (p->s + p->pos, lit, n) == 0;
}

static void
skip_ws (struct parser *p)
{
  while (peek (p) == ' ' || peek (p) == '\t')
    p->pos++;
}

/* A newline at pos ("\n" or "\r\n"): consumed, true. */
static bool
eat_newline (struct parser *p)
{
  if (peek (p) == '\n')
    {
      p->pos++;
      p->line++;
      return true;
    }
  if (peek (p) == '\r' && peek_at (p, 1) == '\n')
    {
      p->pos += 2;
      p->line++;
      return true;
    }
  return false;
}

static bool
is_bad_control (int c)
{
  return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static int
skip_comment (struct parser *p)
{
  if (peek (p) != '#')
    return 0;
  while (p->pos < p->len && peek (p) != '\n')
    {
      int c = peek (p);
      if (c == '\r' && peek_at (p, 1) == '\n')
        break;
      if (is_bad_control (c))
        return perr (p, "control character 0x%02x in a comment", c);
      p->pos++;
    }
  return 0;
}

/* Whitespace, an optional comment, then a newline or the end. */
static int
expect_eol (struct parser *p)
{
  skip_ws (p);
  if (skip_comment (p) < 0)
    return -1;
  if (p->pos >= p->len || eat_newline (p))
    return 0;
  return perr (p, "unexpected '%c' after a value", peek (p));
}

/* Blank lines, comments and newlines (inside arrays). */
static int
skip_ws_nl (struct parser *p)
{
  for (;;)
    {
      skip_ws (p);
      if (skip_comment (p) < 0)
        return -1;
      if (!eat_newline (p))
        return 0;
    }
}

/* ---- strings ---- */

static int
parse_escape (struct parser *p, struct ate_strbuf *b)
{
  static const char simple[] = "b\bt\tn\nf\fr\r\"\"\\\\";
  int c = peek_at (p, 1);
  uint32_t cp = 0;
  int digits;

  for (const char *s = simple; *s; s += 2)
    if (c == *s)
      {
        ate_strbuf_add (b, s + 1, 1);
        p->pos += 2;
        return 0;
      }
  if (c != 'u' && c != 'U')
    return perr (p, "invalid escape sequence \\%c", c > 0x20 && c < 0x7f ? c : '?');
  digits = c == 'u' ? 4 : 8;
  for (int i = 0; i < digits; i++)
    {
      int h = peek_at (p, 2 + (size_t) i);
      if (h < 0 || !isxdigit (h))
        return perr (p, "\\%c needs %d hex digits", c, digits);
      cp = cp * 16 + (uint32_t) (isdigit (h) ? h - '0' : (tolower (h) - 'a' + 10));
    }
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return perr (p, "\\%c escape is not a Unicode scalar value", c);
  ate_strbuf_add_utf8 (b, cp);
  p->pos += 2 + (size_t) digits;
  return 0;
}

/* Consume one UTF-8 sequence of the input (validated) into b. */
static int
take_utf8 (struct parser *p, struct ate_strbuf *b)
{
  const unsigned char *u = (const unsigned char *) p->s + p->pos;
  uint32_t cp;
  size_t n = ate_utf8_decode (u, p->len - p->pos, &cp);

  /* A literal U+FFFD in the input is fine; a decoding error is not. */
  if (cp == ATE_UTF8_RUNE_ERROR && n == 1)
    return perr (p, "invalid UTF-8");
  ate_strbuf_add (b, p->s + p->pos, n);
  p->pos += n;
  return 0;
}

/* The body of a string after its opening delimiter; delim is one of ",
 * ', """ or '''.  Multi-line forms allow newlines; basic forms decode
 * escapes; a basic multi-line string trims a line-ending backslash and the
 * whitespace after it. */
static int
string_body (struct parser *p, const char *delim, struct ate_strbuf *b)
{
  bool multi = strlen (delim) == 3, basic = delim[0] == '"';

  if (multi)
    eat_newline (p); /* a newline right after the delimiter is trimmed */
  for (;;)
    {
      int c = peek (p);
      if (c < 0)
        return perr (p, "unterminated string");
      if (at_str (p, delim))
        {
          p->pos += strlen (delim);
          /* Up to two quotes right before the closing delimiter belong to
           * the string ("""a"""""). */
          for (int extra = 0; multi && extra < 2 && peek (p) == delim[0]; extra++)
            ate_strbuf_add (b, delim, 1), p->pos++;
          return 0;
        }
      if (multi && (c == '\n' || c == '\r'))
        {
          if (!eat_newline (p))
            return perr (p, "bare carriage return in a string");
          ate_strbuf_add (b, "\n", 1);
          continue;
        }
      if (basic && c == '\\')
        {
          if (multi)
            {
              size_t save = p->pos++;
              skip_ws (p);
              if (eat_newline (p))
                {
                  while (skip_ws (p), eat_newline (p))
                    ;
                  continue;
                }
              p->pos = save;
            }
          if (parse_escape (p, b) < 0)
            return -1;
          continue;
        }
      if (is_bad_control (c))
        return perr (p, "control character 0x%02x in a string", c);
      if (take_utf8 (p, b) < 0)
        return -1;
    }
}

/* Any string form at pos; *out is NUL-terminated, owned by the caller. */
static int
parse_string (struct parser *p, bool allow_multi, char **out, size_t *len)
{
  const char *delim = NULL;
  struct ate_strbuf b = { 0 };

  if (at_str (p, "\"\"\"") || at_str (p, "'''"))
    {
      if (!allow_multi)
        return perr (p, "a multi-line string cannot be a key");
      delim = peek (p) == '"' ? "\"\"\"" : "'''";
    }
  else
    delim = peek (p) == '"' ? "\"" : "'";
  p->pos += strlen (delim);
  ate_strbuf_add (&b, "", 0);
  if (string_body (p, delim, &b) < 0)
    {
      free (b.d);
      return -1;
    }
  *out = b.d;
  *len = b.n;
  return 0;
}

/* ---- keys ---- */


static bool
is_bare_key_char (int c)
{
  return c >= 0 && (isalnum (c) || c == '_' || c == '-');
}

static int
parse_simple_key (struct parser *p, char **out)
{
  int c = peek (p);
  size_t len;

  if (c == '"' || c == '\'')
    return parse_string (p, false, out, &len);
  if (!is_bare_key_char (c))
    return perr (p, c < 0 ? "expected a key, found the end of the file"
                          : "expected a key, found '%c'", c);
  {
    size_t start = p->pos;
    while (is_bare_key_char (peek (p)))
      p->pos++;
    *out = xmemdup0 (p->s + start, p->pos - start);
  }
  return 0;
}

/* key ( '.' key )*, appended to path[*n]. */
static int
parse_key (struct parser *p, char **path, size_t *n)
{
  for (;;)
    {
      skip_ws (p);
      if (*n >= MAX_PATH)
        return perr (p, "key path longer than %d components", MAX_PATH);
      if (parse_simple_key (p, &path[*n]) < 0)
        return -1;
      (*n)++;
      skip_ws (p);
      if (peek (p) != '.')
        return 0;
      p->pos++;
    }
}

/* ---- scalars other than strings ---- */

/* Digits with single underscores between them; base 10/16/8/2. */
static bool
scan_digits (const char *s, size_t n, int base, bool allow_empty)
{
  bool prev_digit = false;

  if (n == 0)
    return allow_empty;
  for (size_t i = 0; i < n; i++)
    {
      int c = (unsigned char) s[i];
      bool digit = base == 16 ? isxdigit (c) : (c >= '0' && c < '0' + base);
      if (c == '_')
        {
          if (!prev_digit || i + 1 == n)
            return false;
          prev_digit = false;
          continue;
        }
      if (!digit)
        return false;
      prev_digit = true;
    }
  return true;
}

static char *
strip_underscores (const char *s, size_t n)
{
  char *o = xmalloc (n + 1), *w = o;
  for (size_t i = 0; i < n; i++)
    if (s[i] != '_')
      *w++ = s[i];
  *w = '\0';
  return o;
}

static int
classify_integer (struct parser *p, const char *t, size_t n, struct toml_value *v)
{
  int base = 10;
  size_t off = 0;
  cleanup_free char *clean = NULL;
  char *end;

  if (n > 2 && t[0] == '0' && strchr ("xob", t[1]))
    {
      base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
      off = 2;
    }
  else if (t[0] == '+' || t[0] == '-')
    off = 1;
  if (!scan_digits (t + off, n - off, base, false))
    return 0;
  if (base == 10 && t[off] == '0' && n - off > 1)
    return perr (p, "leading zeros in integer %.*s", (int) n, t);
  clean = strip_underscores (t + (base == 10 ? 0 : 2), n - (base == 10 ? 0 : 2));
  errno = 0;
  if (base == 10)
    v->integer = strtoll (clean, &end, 10);
  else
    {
      unsigned long long u = strtoull (clean, &end, base);
      if (u > INT64_MAX)
        errno = ERANGE;
      v->integer = (int64_t) u;
    }
  if (errno == ERANGE)
    return perr (p, "integer %.*s out of range", (int) n, t);
  v->type = TOML_INTEGER;
  return 1;
}

/* dec-int ( '.' digits )? ( [eE] [+-]? digits )?, with a fraction or an
 * exponent; also inf and nan with an optional sign. */
static int
classify_float (struct parser *p, const char *t, size_t n, struct toml_value *v)
{
  size_t i = (t[0] == '+' || t[0] == '-') ? 1 : 0, int_start = i, int_end, frac = 0;
  bool has_frac = false, has_exp = false;
  cleanup_free char *clean = NULL;

  if (n - i == 3 && (memcmp (t + i, "inf", 3) == 0 || memcmp (t + i, "nan", 3) == 0))
    {
      v->type = TOML_FLOAT;
      v->number = t[i] == 'i' ? (t[0] == '-' ? -INFINITY : INFINITY) : NAN;
      return 1;
    }
  while (i < n && (isdigit ((unsigned char) t[i]) || t[i] == '_'))
    i++;
  int_end = i;
  if (!scan_digits (t + int_start, int_end - int_start, 10, false))
    return 0;
  if (t[int_start] == '0' && int_end - int_start > 1)
    return perr (p, "leading zeros in number %.*s", (int) n, t);
  if (i < n && t[i] == '.')
    {
      frac = ++i;
      while (i < n && (isdigit ((unsigned char) t[i]) || t[i] == '_'))
        i++;
      if (!scan_digits (t + frac, i - frac, 10, false))
        return 0;
      has_frac = true;
    }
  if (i < n && (t[i] == 'e' || t[i] == 'E'))
    {
      size_t e = ++i;
      if (i < n && (t[i] == '+' || t[i] == '-'))
        e = ++i;
      while (i < n && (isdigit ((unsigned char) t[i]) || t[i] == '_'))
        i++;
      if (!scan_digits (t + e, i - e, 10, false))
        return 0;
      has_exp = true;
    }
  if (i != n || (!has_frac && !has_exp))
    return 0;
  clean = strip_underscores (t, n);
  v->type = TOML_FLOAT;
  v->number = strtod (clean, NULL);
  return 1;
}

static bool
digits_at (const char *t, size_t n, size_t at, size_t count)
{
  if (at + count > n)
    return false;
  for (size_t i = 0; i < count; i++)
    if (!isdigit ((unsigned char) t[at + i]))
      return false;
  return true;
}

/* HH:MM:SS(.frac)? at t[at..]; returns the end or 0. */
static size_t
scan_time (const char *t, size_t n, size_t at)
{
  if (!digits_at (t, n, at, 2) || at + 8 > n || t[at + 2] != ':' || !digits_at (t, n, at + 3, 2)
      || t[at + 5] != ':' || !digits_at (t, n, at + 6, 2))
    return 0;
  at += 8;
  if (at < n && t[at] == '.')
    {
      size_t f = ++at;
      while (at < n && isdigit ((unsigned char) t[at]))
        at++;
      if (at == f)
        return 0;
    }
  return at;
}

/* Offset/local date-times, local dates and local times (shape only). */
static bool
classify_datetime (const char *t, size_t n)
{
  size_t i;

  if (n >= 8 && t[2] == ':')
    return scan_time (t, n, 0) == n;
  if (!(digits_at (t, n, 0, 4) && n >= 10 && t[4] == '-' && digits_at (t, n, 5, 2)
        && t[7] == '-' && digits_at (t, n, 8, 2)))
    return false;
  if (n == 10)
    return true;
  if (t[10] != 'T' && t[10] != 't' && t[10] != ' ')
    return false;
  i = scan_time (t, n, 11);
  if (i == 0)
    return false;
  if (i == n)
    return true;
  if ((t[i] == 'Z' || t[i] == 'z') && i + 1 == n)
    return true;
  return (t[i] == '+' || t[i] == '-') && i + 6 == n && digits_at (t, n, i + 1, 2)
         && t[i + 3] == ':' && digits_at (t, n, i + 4, 2);
}

static bool
is_token_char (int c)
{
  return c >= 0 && (isalnum (c) || c == '_' || c == '+' || c == '-' || c == '.' || c == ':');
}

static int
emit (struct parser *p, char **path, size_t n, struct toml_value *v, bool in_array)
{
  v->line = p->line;
  v->in_array = in_array;
  return p->cb ? p->cb (p->ctx, (const char *const *) path, n, v, p->err) : 0;
}

static int
parse_scalar_token (struct parser *p, char **path, size_t n, bool in_array)
{
  size_t start = p->pos, len;
  const char *t = p->s + start;
  struct toml_value v = { 0 };
  int r;

  while (is_token_char (peek (p)))
    p->pos++;
  len = p->pos - start;
  /* "1979-05-27 07:32:00": a date, a space and a time are one value. */
  if (len == 10 && peek (p) == ' ' && digits_at (p->s, p->len, p->pos + 1, 2)
      && peek_at (p, 3) == ':')
    {
      p->pos++;
      while (is_token_char (peek (p)))
        p->pos++;
      len = p->pos - start;
    }
  if (len == 0)
    {
      int c = peek (p);
      return perr (p, c < 0 || c == '\n' || c == '\r' ? "missing value"
                                                      : "unexpected '%c' where a value belongs",
                   c);
    }
  if ((len == 4 && memcmp (t, "true", 4) == 0) || (len == 5 && memcmp (t, "false", 5) == 0))
    {
      v.type = TOML_BOOLEAN;
      v.boolean = t[0] == 't';
    }
  else if (classify_datetime (t, len))
    v.type = TOML_DATETIME;
  else if ((r = classify_integer (p, t, len, &v)) != 0 || (r = classify_float (p, t, len, &v)))
    {
      if (r < 0)
        return -1;
    }
  else
    return perr (p, "invalid value '%.*s'", (int) (len > 40 ? 40 : len), t);
  v.str = t;
  v.len = len;
  return emit (p, path, n, &v, in_array);
}

static int parse_value (struct parser *p, char **path, size_t n, bool in_array);

static const char *
kind_name (int kind)
{
  switch (kind)
    {
    case K_VALUE: return "a value";
    case K_TABLE_HEADER: return "a [table]";
    case K_TABLE_IMPLICIT: return "a table";
    case K_TABLE_DOTTED: return "a table of dotted keys";
    case K_ARRAY_TABLE: return "an [[array of tables]]";
    }
  return "?";
}

/* key = value at path[0..n) where path[0..ntab) is the current table:
 * the intermediate tables of a dotted key are created (or must have been
 * created by dotted keys), and the key itself must be new. */
static int
define_key (struct parser *p, char **path, size_t n, size_t ntab)
{
  int kind;

  if (p->untracked)
    return 0;
  for (size_t i = ntab + 1; i < n; i++)
    {
      kind = keyset_get (&p->keys, path, i);
      if (kind < 0)
        {
          if (keyset_put (p, path, i, K_TABLE_DOTTED) < 0)
            return -1;
        }
      else if (kind != K_TABLE_DOTTED)
        return perr (p, "'%s' is %s: dotted keys cannot add to it", path[i - 1],
                     kind_name (kind));
    }
  kind = keyset_get (&p->keys, path, n);
  if (kind >= 0)
    return perr (p, "duplicate key '%s' (already %s)", path[n - 1], kind_name (kind));
  return keyset_put (p, path, n, K_VALUE);
}

static int
parse_array (struct parser *p, char **path, size_t n)
{
  p->pos++; /* [ */
  for (;;)
    {
      if (skip_ws_nl (p) < 0)
        return -1;
      if (peek (p) == ']')
        break;
      if (parse_value (p, path, n, true) < 0)
        return -1;
      if (skip_ws_nl (p) < 0)
        return -1;
      if (peek (p) == ',')
        {
          p->pos++;
          continue;
        }
      if (peek (p) != ']')
        return perr (p, "expected ',' or ']' in an array");
      break;
    }
  p->pos++;
  return 0;
}

/* { k = v, ... } on one line; its keys are checked locally (an inline
 * table is complete: nothing can be added to it later). */
static int
parse_inline_table (struct parser *p, char **path, size_t n, bool in_array)
{
  struct keyset saved = p->keys;
  bool saved_untracked = p->untracked;
  int r = 0;

  p->pos++; /* { */
  memset (&p->keys, 0, sizeof (p->keys));
  p->untracked = false;
  skip_ws (p);
  if (peek (p) == '}')
    p->pos++;
  else
    for (;;)
      {
        char *kp[MAX_PATH];
        size_t kn = 0;

        for (size_t i = 0; i < n; i++)
          kp[kn++] = xstrdup (path[i]);
        r = parse_key (p, kp, &kn);
        if (r == 0)
          r = define_key (p, kp + n, kn - n, 0);
        if (r == 0 && peek (p) != '=')
          r = perr (p, "expected '=' after a key");
        if (r == 0)
          {
            p->pos++;
            skip_ws (p);
            r = parse_value (p, kp, kn, in_array);
          }
        path_free (kp, kn);
        if (r < 0)
          break;
        skip_ws (p);
        if (peek (p) == ',')
          {
            p->pos++;
            continue;
          }
        if (peek (p) != '}')
          r = perr (p, "expected ',' or '}' in an inline table");
        else
          p->pos++;
        break;
      }
  keyset_free (&p->keys);
  p->keys = saved;
  p->untracked = saved_untracked;
  return r;
}

static int
parse_value (struct parser *p, char **path, size_t n, bool in_array)
{
  int c = peek (p), r;

  if (c == '"' || c == '\'')
    {
      struct toml_value v = { .type = TOML_STRING };
      char *s = NULL;
      if (parse_string (p, true, &s, &v.len) < 0)
        return -1;
      v.str = s;
      r = emit (p, path, n, &v, in_array);
      free (s);
      return r;
    }
  if (c == '[' || c == '{')
    {
      if (++p->depth > TOML_MAX_DEPTH)
        return perr (p, "values nested deeper than %d", TOML_MAX_DEPTH);
      r = c == '[' ? parse_array (p, path, n) : parse_inline_table (p, path, n, in_array);
      p->depth--;
      return r;
    }
  return parse_scalar_token (p, path, n, in_array);
}

/* ---- tables ---- */

/* [a.b] or [[a.b]] (array = true) with path[0..n). */
static int
define_table (struct parser *p, char **path, size_t n, bool array)
{
  bool untracked = false;
  int kind;

  for (size_t i = 1; i < n; i++)
    {
      kind = keyset_get (&p->keys, path, i);
      if (kind < 0)
        {
          if (keyset_put (p, path, i, K_TABLE_IMPLICIT) < 0)
            return -1;
        }
      else if (kind == K_VALUE)
        return perr (p, "'%s' is a value, not a table", path[i - 1]);
      else if (kind == K_ARRAY_TABLE)
        untracked = true; /* a sub-table of an array element */
    }
  kind = keyset_get (&p->keys, path, n);
  if (array)
    {
      if (kind >= 0 && kind != K_ARRAY_TABLE)
        return perr (p, "[[%s]]: '%s' is already %s", path[n - 1], path[n - 1],
                     kind_name (kind));
      untracked = true;
      if (kind < 0 && keyset_put (p, path, n, K_ARRAY_TABLE) < 0)
        return -1;
    }
  else if (!untracked)
    {
      if (kind >= 0 && kind != K_TABLE_IMPLICIT)
        return perr (p, "table [%s] redefined ('%s' is already %s)", path[n - 1],
                     path[n - 1], kind_name (kind));
      if (keyset_put (p, path, n, K_TABLE_HEADER) < 0)
        return -1;
    }
  p->untracked = untracked;
  return 0;
}

static int
parse_header (struct parser *p)
{
  bool array = at_str (p, "[[");
  char *path[MAX_PATH];
  size_t n = 0;
  int r;

  p->pos += array ? 2 : 1;
  r = parse_key (p, path, &n);
  if (r == 0 && (array ? !at_str (p, "]]") : peek (p) != ']'))
    r = perr (p, array ? "expected ']]' after a table name" : "expected ']' after a table name");
  if (r == 0)
    {
      p->pos += array ? 2 : 1;
      r = define_table (p, path, n, array);
    }
  if (r == 0)
    r = expect_eol (p);
  if (r < 0)
    {
      path_free (path, n);
      return -1;
    }
  path_free (p->table, p->ntable);
  memcpy (p->table, path, n * sizeof (char *));
  p->ntable = n;
  return 0;
}

static int
parse_key_value (struct parser *p)
{
  char *path[MAX_PATH];
  size_t n = 0;
  int r = 0;

  for (size_t i = 0; i < p->ntable; i++)
    path[n++] = xstrdup (p->table[i]);
  r = parse_key (p, path, &n);
  if (r == 0 && peek (p) != '=')
    r = perr (p, "expected '=' after key '%s'", path[n - 1]);
  if (r == 0)
    r = define_key (p, path, n, p->ntable);
  if (r == 0)
    {
      p->pos++;
      skip_ws (p);
      r = parse_value (p, path, n, false);
    }
  if (r == 0)
    r = expect_eol (p);
  path_free (path, n);
  return r;
}

int
toml_parse (const char *text, size_t len, toml_value_cb cb, void *ctx, struct ate_error **err)
{
  struct parser p = { .s = text, .len = len, .line = 1, .err = err, .cb = cb, .ctx = ctx };
  int r = 0;

  if (len > TOML_MAX_SIZE)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EFBIG,
                                "TOML document of %zu bytes is larger than %u", len,
                                TOML_MAX_SIZE);
  /* A UTF-8 byte order mark is allowed at the very start. */
  if (at_str (&p, "\xef\xbb\xbf"))
    p.pos = 3;
  while (r == 0)
    {
      r = skip_ws_nl (&p);
      if (r < 0 || p.pos >= p.len)
        break;
      r = peek (&p) == '[' ? parse_header (&p) : parse_key_value (&p);
    }
  path_free (p.table, p.ntable);
  keyset_free (&p.keys);
  return r;
}
