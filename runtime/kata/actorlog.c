/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "actorlog.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/time.h"
#include "util/utf8.h"
#include "util/util.h"

/* ------------------------------------------------------------------ */
/* Output buffer                                                       */
/* ------------------------------------------------------------------ */

struct sbuf
{
  char *d;
  size_t n, cap;
};

static void
sb_reserve (struct sbuf *b, size_t more)
{
  if (b->n + more + 1 > b->cap)
    {
      b->cap = (b->n + more + 1) * 2;
      b->d = xrealloc (b->d, b->cap);
    }
}

static void
sb_add (struct sbuf *b, const void *s, size_t n)
{
  sb_reserve (b, n);
  memcpy (b->d + b->n, s, n);
  b->n += n;
  b->d[b->n] = '\0';
}

static void
sb_str (struct sbuf *b, const char *s)
{
  sb_add (b, s, strlen (s));
}

/* ------------------------------------------------------------------ */
/* UTF-8 as Go's unicode/utf8.DecodeRune sees it                       */
/* ------------------------------------------------------------------ */


static void
sb_utf8 (struct sbuf *b, uint32_t r)
{
  char o[4];
  sb_add (b, o, ate_utf8_encode (r, o));
}

/* A JSON string the way encoding/json writes it with HTML escaping on. */
static void
encode_string (struct sbuf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *) s;
  size_t i = 0, start = 0;

  sb_reserve (b, n + 2);
  sb_add (b, "\"", 1);
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
          sb_add (b, s + start, i - start);
          sb_str (b, esc);
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
          sb_add (b, s + start, i - start);
          sb_str (b, esc);
          start = i + size;
        }
      i += size;
    }
  sb_add (b, s + start, n - start);
  sb_add (b, "\"", 1);
}

/* ------------------------------------------------------------------ */
/* JSON values as encoding/json decodes them into interface{} with     */
/* UseNumber: objects are maps (last duplicate wins, keys sorted when  */
/* written), numbers keep their text, strings are decoded to UTF-8.    */
/* ------------------------------------------------------------------ */

enum jv_type
{
  JV_NULL,
  JV_TRUE,
  JV_FALSE,
  JV_NUMBER,
  JV_STRING,
  JV_ARRAY,
  JV_OBJECT,
};

struct jv
{
  enum jv_type type;
  char *s; /* number text or decoded string */
  size_t len;
  struct jv **items; /* array elements or object values */
  char **keys;       /* object keys (decoded) */
  size_t *key_lens;
  size_t n, cap;
};

static void
jv_free (struct jv *v)
{
  if (v == NULL)
    return;
  free (v->s);
  for (size_t i = 0; i < v->n; i++)
    {
      jv_free (v->items[i]);
      if (v->keys)
        free (v->keys[i]);
    }
  free (v->items);
  free (v->keys);
  free (v->key_lens);
  free (v);
}

static struct jv *
jv_new (enum jv_type t)
{
  struct jv *v = xmalloc0 (sizeof (*v));
  v->type = t;
  return v;
}


static struct jv *
jv_new_string (const char *s, size_t len)
{
  struct jv *v = jv_new (JV_STRING);
  v->s = xmemdup0 (s, len); /* may contain NUL bytes */
  v->len = len;
  return v;
}

/* Append a member; for objects a later duplicate key wins when the object
 * is written (map semantics without a quadratic lookup here). */
static void
jv_put (struct jv *o, char *key, size_t key_len, struct jv *val)
{
  if (o->n == o->cap)
    {
      o->cap = o->cap ? o->cap * 2 : 4;
      o->items = xrealloc (o->items, o->cap * sizeof (*o->items));
      if (o->type == JV_OBJECT)
        {
          o->keys = xrealloc (o->keys, o->cap * sizeof (*o->keys));
          o->key_lens = xrealloc (o->key_lens, o->cap * sizeof (*o->key_lens));
        }
    }
  if (o->type == JV_OBJECT)
    {
      o->keys[o->n] = key;
      o->key_lens[o->n] = key_len;
    }
  o->items[o->n++] = val;
}

/* The value of the last member called key, or NULL. */
static struct jv *
jv_get (struct jv *o, const char *key)
{
  size_t l = strlen (key);
  for (size_t i = o->n; i-- > 0;)
    if (o->key_lens[i] == l && memcmp (o->keys[i], key, l) == 0)
      return o->items[i];
  return NULL;
}

static void
jv_put_str (struct jv *o, const char *key, const char *val)
{
  jv_put (o, xstrdup (key), strlen (key), jv_new_string (val, strlen (val)));
}

struct jp
{
  const unsigned char *s;
  size_t n, pos;
  int depth;
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
jp_string (struct jp *p, struct sbuf *out)
{
  p->pos++;
  sb_add (out, "", 0);
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
              sb_utf8 (out, decode_u_escape (p, &used));
              p->pos += used;
              continue;
            }
          if (e == 0 || (k = strchr (from, e)) == NULL)
            return false;
          sb_add (out, &to[k - from], 1);
          p->pos += 2;
          continue;
        }
      if (c < 0x80)
        {
          sb_add (out, &c, 1);
          p->pos++;
          continue;
        }
      uint32_t r;
      size_t size = ate_utf8_decode (p->s + p->pos, p->n - p->pos, &r);
      if (r == ATE_UTF8_RUNE_ERROR && size == 1)
        sb_utf8 (out, ATE_UTF8_RUNE_ERROR);
      else
        sb_add (out, p->s + p->pos, size);
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

static struct jv *jp_value (struct jp *p);

static bool
jp_literal (struct jp *p, const char *lit)
{
  size_t l = strlen (lit);
  if (p->n - p->pos < l || memcmp (p->s + p->pos, lit, l) != 0)
    return false;
  p->pos += l;
  return true;
}

static struct jv *
jp_container (struct jp *p, bool object)
{
  struct jv *v = jv_new (object ? JV_OBJECT : JV_ARRAY);
  char close = object ? '}' : ']';

  if (++p->depth > ACTORLOG_MAX_DEPTH)
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
      struct sbuf key = { 0 };
      struct jv *item;

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
      jv_put (v, key.d, key.n, item);
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
  jv_free (v);
  return NULL;
}

static struct jv *
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
        struct sbuf b = { 0 };
        struct jv *v;
        if (!jp_string (p, &b))
          {
            free (b.d);
            return NULL;
          }
        v = jv_new (JV_STRING);
        v->s = b.d;
        v->len = b.n;
        return v;
      }
    case 't':
      return jp_literal (p, "true") ? jv_new (JV_TRUE) : NULL;
    case 'f':
      return jp_literal (p, "false") ? jv_new (JV_FALSE) : NULL;
    case 'n':
      return jp_literal (p, "null") ? jv_new (JV_NULL) : NULL;
    default:
      start = p->pos;
      if (!jp_number (p))
        return NULL;
      {
        struct jv *v = jv_new (JV_NUMBER);
        v->s = xmemdup0 ((const char *) p->s + start, p->pos - start);
        v->len = p->pos - start;
        return v;
      }
    }
}

/* Exactly one JSON object with only whitespace after it, or NULL. */
static struct jv *
parse_object_line (const char *line, size_t len)
{
  struct jp p = { .s = (const unsigned char *) line, .n = len };
  struct jv *v;

  jp_ws (&p);
  if (p.pos >= p.n || p.s[p.pos] != '{')
    return NULL;
  v = jp_value (&p);
  if (v == NULL)
    return NULL;
  jp_ws (&p);
  if (p.pos != p.n)
    {
      jv_free (v);
      return NULL;
    }
  return v;
}

/* ------------------------------------------------------------------ */
/* Writing values back                                                 */
/* ------------------------------------------------------------------ */

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

static void encode_value (struct sbuf *b, const struct jv *v);

/* Keys in bytewise order; of duplicate keys only the last one. */
static void
encode_object (struct sbuf *b, const struct jv *o)
{
  struct member_ref *refs = xcalloc (o->n ? o->n : 1, sizeof (*refs));
  bool first = true;

  for (size_t i = 0; i < o->n; i++)
    refs[i] = (struct member_ref) { o->keys[i], o->key_lens[i], i };
  qsort (refs, o->n, sizeof (*refs), member_cmp);
  sb_add (b, "{", 1);
  for (size_t i = 0; i < o->n; i++)
    {
      if (i + 1 < o->n && refs[i + 1].len == refs[i].len
          && memcmp (refs[i + 1].key, refs[i].key, refs[i].len) == 0)
        continue;
      if (!first)
        sb_add (b, ",", 1);
      first = false;
      encode_string (b, refs[i].key, refs[i].len);
      sb_add (b, ":", 1);
      encode_value (b, o->items[refs[i].index]);
    }
  sb_add (b, "}", 1);
  free (refs);
}

static void
encode_value (struct sbuf *b, const struct jv *v)
{
  switch (v->type)
    {
    case JV_NULL: sb_str (b, "null"); break;
    case JV_TRUE: sb_str (b, "true"); break;
    case JV_FALSE: sb_str (b, "false"); break;
    case JV_NUMBER: sb_add (b, v->s, v->len); break;
    case JV_STRING: encode_string (b, v->s, v->len); break;
    case JV_ARRAY:
      sb_add (b, "[", 1);
      for (size_t i = 0; i < v->n; i++)
        {
          if (i)
            sb_add (b, ",", 1);
          encode_value (b, v->items[i]);
        }
      sb_add (b, "]", 1);
      break;
    case JV_OBJECT: encode_object (b, v); break;
    }
}

/* ------------------------------------------------------------------ */
/* Lines and events                                                    */
/* ------------------------------------------------------------------ */

static struct jv *
labels_object (const struct actorlog_labels *l)
{
  struct jv *o = jv_new (JV_OBJECT);
  jv_put_str (o, "ate.dev/actor_id", l->actor_id ? l->actor_id : "");
  jv_put_str (o, "ate.dev/actor_template_name", l->template_name ? l->template_name : "");
  jv_put_str (o, "ate.dev/actor_template_namespace",
              l->template_namespace ? l->template_namespace : "");
  if (l->container_name)
    jv_put_str (o, "ate.dev/container_name", l->container_name);
  return o;
}

static char *
finish (struct jv *root, size_t *out_len)
{
  struct sbuf b = { 0 };
  encode_value (&b, root);
  jv_free (root);
  *out_len = b.n;
  return b.d;
}

static struct jv *
envelope (const struct actorlog_labels *labels, const char *msg, size_t len, int64_t wall_ns)
{
  struct jv *env = jv_new (JV_OBJECT);
  char ts[ATE_TIME_BUF];
  const char *key = labels->key ? labels->key : ACTORLOG_LABELS_KEY;

  ate_time_rfc3339nano (wall_ns, ts);
  jv_put (env, xstrdup (key), strlen (key), labels_object (labels));
  jv_put (env, xstrdup ("message"), 7, jv_new_string (msg, len));
  jv_put_str (env, "time", ts);
  return env;
}

char *
actorlog_format_event (const struct actorlog_labels *labels, const char *message,
                       int64_t wall_ns, size_t *out_len)
{
  struct actorlog_labels l = *labels;
  l.container_name = NULL;
  return finish (envelope (&l, message, strlen (message), wall_ns), out_len);
}

char *
actorlog_format_line (const struct actorlog_labels *labels, const char *line, size_t len,
                      int64_t wall_ns, size_t *out_len)
{
  struct jv *obj = parse_object_line (line, len);
  const char *key = labels->key ? labels->key : ACTORLOG_LABELS_KEY;
  struct jv *current;

  if (obj == NULL)
    return finish (envelope (labels, line, len, wall_ns), out_len);
  if (jv_get (obj, "time") == NULL)
    {
      char ts[ATE_TIME_BUF];
      ate_time_rfc3339nano (wall_ns, ts);
      jv_put_str (obj, "time", ts);
    }
  current = jv_get (obj, key);
  if (current != NULL && current->type == JV_OBJECT)
    {
      /* Merge: ours are appended and therefore win over the user's. */
      struct jv *ours = labels_object (labels);
      for (size_t i = 0; i < ours->n; i++)
        jv_put (current, ours->keys[i], ours->key_lens[i], ours->items[i]);
      ours->n = 0;
      jv_free (ours);
    }
  else
    jv_put (obj, xstrdup (key), strlen (key), labels_object (labels));
  return finish (obj, out_len);
}

void
actorlog_write_line (const struct actorlog_labels *labels, const char *line, size_t len)
{
  size_t n;
  char *out = actorlog_format_line (labels, line, len, ate_wall_ns (), &n);
  ate_log_write_line (out, n);
  free (out);
}

void
actorlog_event (const struct actorlog_labels *labels, const char *message)
{
  size_t n;
  char *out = actorlog_format_event (labels, message, ate_wall_ns (), &n);
  ate_log_write_line (out, n);
  free (out);
}

const char *
actorlog_labels_key (bool on_gce)
{
  return on_gce ? ACTORLOG_GCE_LABELS_KEY : ACTORLOG_LABELS_KEY;
}

/* ------------------------------------------------------------------ */
/* Line splitting                                                      */
/* ------------------------------------------------------------------ */

void
actorlog_splitter_init (struct actorlog_splitter *s,
                        void (*emit) (void *ctx, const char *line, size_t len), void *ctx)
{
  memset (s, 0, sizeof (*s));
  s->emit = emit;
  s->ctx = ctx;
}

static void
emit_pending (struct actorlog_splitter *s)
{
  if (s->len > 0)
    s->emit (s->ctx, s->buf, s->len);
  s->len = 0;
}

void
actorlog_splitter_feed (struct actorlog_splitter *s, const char *data, size_t len)
{
  while (len > 0)
    {
      const char *nl = memchr (data, '\n', len);
      size_t chunk = nl ? (size_t) (nl - data) : len;
      size_t room = ACTORLOG_MAX_LINE - s->len;

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
      else if (s->len == ACTORLOG_MAX_LINE)
        emit_pending (s);
    }
}

void
actorlog_splitter_finish (struct actorlog_splitter *s)
{
  emit_pending (s);
  free (s->buf);
  s->buf = NULL;
  s->cap = 0;
}
