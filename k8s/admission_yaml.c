/* SPDX-License-Identifier: Apache-2.0 */
/*
 * YAML <-> JSON values for Kubernetes manifests, with libyaml.
 *
 * Reading follows what kubectl/apiserver do (sigs.k8s.io/yaml over a YAML 1.1
 * parser): plain scalars resolve to null, booleans (including yes/no/on/off),
 * integers (0x/0o/0b/leading-0 octal, '_' separators) or floats; quoted
 * scalars are strings.  Unlike the apiserver we refuse anchors and aliases:
 * manifests do not need them and they are the classic way to blow up a
 * parser's output ("billion laughs"); refusing keeps every limit below a
 * simple count over the input.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "k8s/admission_yaml.h"
#include "util/error.h"
#include "util/util.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

void
ate_admission_limits_default (struct ate_admission_limits *l)
{
  l->max_bytes = 8u << 20;
  l->max_depth = 64;
  l->max_nodes = 500000;
  l->max_scalar_bytes = 1u << 20;
  l->max_documents = 10000;
}

/* ---- Plain scalar resolution --------------------------------------------- */

static bool
str_in (const char *s, size_t len, const char *const *set)
{
  for (; *set; set++)
    if (strlen (*set) == len && memcmp (*set, s, len) == 0)
      return true;
  return false;
}

static const char *const null_words[] = { "~", "null", "Null", "NULL", NULL };
static const char *const true_words[]
    = { "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE", NULL };
static const char *const false_words[]
    = { "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE", NULL };
static const char *const nonfinite_words[]
    = { ".inf",  ".Inf",  ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", ".nan", ".NaN",  ".NAN",  NULL };

static int
digit_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return 99;
}

/* Go's strconv.ParseUint(s, 0, 64) on an unsigned digit string: base from
 * the prefix (0x, 0o, 0b, leading 0 = octal).  false on syntax or range. */
static bool
parse_go_uint (const char *s, uint64_t *out)
{
  unsigned base = 10;
  uint64_t v = 0;

  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
    base = 16, s += 2;
  else if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O'))
    base = 8, s += 2;
  else if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B'))
    base = 2, s += 2;
  else if (s[0] == '0' && s[1] != '\0')
    base = 8, s += 1;
  if (*s == '\0')
    return false;
  for (; *s; s++)
    {
      unsigned d = (unsigned) digit_value (*s);
      if (d >= base)
        return false;
      if (v > (UINT64_MAX - d) / base)
        return false;
      v = v * base + d;
    }
  *out = v;
  return true;
}

/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static bool
is_yaml_float (const char *s)
{
  size_t n;
  if (*s == '-' || *s == '+')
    s++;
  if (*s == '.')
    {
      for (s++, n = 0; isdigit ((unsigned char) *s); s++)
        n++;
      if (n == 0)
        return false;
    }
  else
    {
      for (n = 0; isdigit ((unsigned char) *s); s++)
        n++;
      if (n == 0)
        return false;
      if (*s == '.')
        for (s++; isdigit ((unsigned char) *s); s++)
          ;
    }
  if (*s == 'e' || *s == 'E')
    {
      s++;
      if (*s == '-' || *s == '+')
        s++;
      for (n = 0; isdigit ((unsigned char) *s); s++)
        n++;
      if (n == 0)
        return false;
    }
  return *s == '\0';
}

static struct json_object *
resolve_number (const char *s, size_t len)
{
  char buf[128];
  size_t n = 0;
  const char *digits;
  bool neg = false;
  uint64_t u;

  if (len >= sizeof (buf))
    return NULL;
  for (size_t i = 0; i < len; i++)
    if (s[i] != '_')
      buf[n++] = s[i];
  buf[n] = '\0';
  digits = buf;
  if (*digits == '-' || *digits == '+')
    neg = *digits++ == '-';
  if (parse_go_uint (digits, &u))
    {
      if (!neg && u <= (uint64_t) INT64_MAX)
        return json_object_new_int64 ((int64_t) u);
      if (neg && u <= (uint64_t) INT64_MAX + 1)
        return json_object_new_int64 (u == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) u);
      if (!neg && buf[0] != '+')
        return json_object_new_uint64 (u);
    }
  if (is_yaml_float (buf))
    {
      double d = strtod (buf, NULL);
      /* Keep the text so that the value serialises as written. */
      if (isfinite (d))
        return json_object_new_double_s (d, buf);
    }
  return NULL;
}

struct json_object *
admission_yaml_resolve_plain (const char *s, size_t len, bool *is_error)
{
  struct json_object *num;

  *is_error = false;
  if (len == 0 || str_in (s, len, null_words))
    return NULL;
  if (str_in (s, len, true_words))
    return json_object_new_boolean (1);
  if (str_in (s, len, false_words))
    return json_object_new_boolean (0);
  if (str_in (s, len, nonfinite_words))
    {
      *is_error = true;
      return NULL;
    }
  if (strchr ("0123456789+-.", s[0]) != NULL && memchr (s, '\0', len) == NULL
      && (num = resolve_number (s, len)) != NULL)
    return num;
  return json_object_new_string_len (s, (int) len);
}

/* ---- Loader ----------------------------------------------------------------- */

struct frame
{
  struct json_object *node; /* owned until attached to the parent */
  char *key;                /* mapping: key waiting for its value */
  bool is_map;
};

struct loader
{
  yaml_parser_t parser;
  const struct ate_admission_limits *lim;
  struct frame *stack;
  size_t depth;
  size_t nodes;
  struct json_object *root;
  bool have_root;
  unsigned doc_index, doc_line;
  struct admission_doc *docs;
  size_t n_docs, cap_docs;
};

static int
at (struct ate_error **err, yaml_mark_t m, const char *fmt, const char *what)
{
  return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "line %zu column %zu: %s%s",
                              m.line + 1, m.column + 1, fmt, what ? what : "");
}

static int
count_node (struct loader *ld, yaml_mark_t m, struct ate_error **err)
{
  if (++ld->nodes > ld->lim->max_nodes)
    return at (err, m, "too many YAML nodes (limit reached)", NULL);
  return 0;
}

/* Hand a finished value to its parent (or make it the document root).
 * Takes ownership of v. */
static int
attach (struct loader *ld, struct json_object *v, yaml_mark_t m, struct ate_error **err)
{
  struct frame *top;

  if (ld->depth == 0)
    {
      ld->root = v;
      ld->have_root = true;
      return 0;
    }
  top = &ld->stack[ld->depth - 1];
  if (!top->is_map)
    {
      json_object_array_add (top->node, v);
      return 0;
    }
  if (top->key == NULL)
    {
      json_object_put (v);
      return at (err, m, "mapping keys must be scalars", NULL);
    }
  json_object_object_add (top->node, top->key, v);
  free (top->key);
  top->key = NULL;
  return 0;
}

static int
explicit_tag_value (const char *tag, const char *s, size_t len, yaml_mark_t m,
                    struct json_object **out, struct ate_error **err)
{
  bool bad;
  struct json_object *v;
  const char *t;

  if (!str_has_prefix (tag, TAG_PREFIX))
    return at (err, m, "unsupported YAML tag ", tag);
  t = tag + strlen (TAG_PREFIX);
  if (strcmp (t, "str") == 0)
    {
      *out = json_object_new_string_len (s, (int) len);
      return 0;
    }
  v = admission_yaml_resolve_plain (s, len, &bad);
  if ((strcmp (t, "null") == 0 && v == NULL && !bad)
      || (strcmp (t, "bool") == 0 && json_object_is_type (v, json_type_boolean))
      || (strcmp (t, "int") == 0 && json_object_is_type (v, json_type_int))
      || (strcmp (t, "float") == 0
          && (json_object_is_type (v, json_type_double) || json_object_is_type (v, json_type_int))))
    {
      *out = v;
      return 0;
    }
  json_object_put (v);
  if (strcmp (t, "null") && strcmp (t, "bool") && strcmp (t, "int") && strcmp (t, "float"))
    return at (err, m, "unsupported YAML tag ", tag);
  return at (err, m, "value does not match its tag ", tag);
}

static int
on_scalar (struct loader *ld, yaml_event_t *ev, struct ate_error **err)
{
  const char *s = (const char *) ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  const char *tag = (const char *) ev->data.scalar.tag;
  struct frame *top = ld->depth ? &ld->stack[ld->depth - 1] : NULL;
  struct json_object *v = NULL;
  bool bad;

  if (count_node (ld, ev->start_mark, err) < 0)
    return -1;
  if (ev->data.scalar.anchor != NULL)
    return at (err, ev->start_mark, "YAML anchors are not supported", NULL);
  if (len > ld->lim->max_scalar_bytes)
    return at (err, ev->start_mark, "scalar too long (limit reached)", NULL);

  if (top != NULL && top->is_map && top->key == NULL)
    {
      /* A mapping key: kept as written (sigs.k8s.io/yaml would turn a
       * boolean-looking key such as "on" into "true"; nothing we read has
       * such keys). */
      if (memchr (s, '\0', len) != NULL)
        return at (err, ev->start_mark, "mapping keys must not contain NUL", NULL);
      if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && len == 2 && memcmp (s, "<<", 2) == 0)
        return at (err, ev->start_mark, "YAML merge keys (<<) are not supported", NULL);
      if (json_object_object_get_ex (top->node, s, NULL))
        return at (err, ev->start_mark, "duplicate mapping key ", s);
      top->key = xstrndup (s, len);
      return 0;
    }

  if (tag != NULL && strcmp (tag, "!") != 0)
    {
      if (explicit_tag_value (tag, s, len, ev->start_mark, &v, err) < 0)
        return -1;
    }
  else if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && tag == NULL)
    {
      v = admission_yaml_resolve_plain (s, len, &bad);
      if (bad)
        return at (err, ev->start_mark, "infinite or NaN numbers cannot be represented in JSON",
                   NULL);
    }
  else
    v = json_object_new_string_len (s, (int) len);
  return attach (ld, v, ev->start_mark, err);
}

static int
on_collection_start (struct loader *ld, yaml_event_t *ev, bool is_map, struct ate_error **err)
{
  const yaml_char_t *anchor
      = is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
  const char *tag
      = (const char *) (is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
  struct frame *top = ld->depth ? &ld->stack[ld->depth - 1] : NULL;

  if (count_node (ld, ev->start_mark, err) < 0)
    return -1;
  if (anchor != NULL)
    return at (err, ev->start_mark, "YAML anchors are not supported", NULL);
  if (tag != NULL && strcmp (tag, "!") != 0
      && strcmp (tag, is_map ? TAG_PREFIX "map" : TAG_PREFIX "seq") != 0)
    return at (err, ev->start_mark, "unsupported YAML tag ", tag);
  if (top != NULL && top->is_map && top->key == NULL)
    return at (err, ev->start_mark, "mapping keys must be scalars", NULL);
  if (ld->depth >= ld->lim->max_depth)
    return at (err, ev->start_mark, "YAML nesting too deep (limit reached)", NULL);
  ld->stack[ld->depth].node = is_map ? json_object_new_object () : json_object_new_array ();
  ld->stack[ld->depth].key = NULL;
  ld->stack[ld->depth].is_map = is_map;
  ld->depth++;
  return 0;
}

static int
on_collection_end (struct loader *ld, yaml_event_t *ev, struct ate_error **err)
{
  struct frame f = ld->stack[--ld->depth];

  free (f.key); /* a key without value cannot happen with libyaml */
  return attach (ld, f.node, ev->start_mark, err);
}

static int
on_document_end (struct loader *ld)
{
  if (ld->have_root && ld->root != NULL)
    {
      if (ld->n_docs == ld->cap_docs)
        {
          ld->cap_docs = ld->cap_docs ? ld->cap_docs * 2 : 4;
          ld->docs = xrealloc (ld->docs, ld->cap_docs * sizeof (*ld->docs));
        }
      ld->docs[ld->n_docs].root = steal_pointer (&ld->root);
      ld->docs[ld->n_docs].index = ld->doc_index;
      ld->docs[ld->n_docs].line = ld->doc_line;
      ld->n_docs++;
    }
  ld->have_root = false;
  return 0;
}

static int
on_event (struct loader *ld, yaml_event_t *ev, struct ate_error **err)
{
  switch (ev->type)
    {
    case YAML_DOCUMENT_START_EVENT:
      if (++ld->doc_index > ld->lim->max_documents)
        return at (err, ev->start_mark, "too many YAML documents (limit reached)", NULL);
      ld->doc_line = (unsigned) ev->start_mark.line + 1;
      return 0;
    case YAML_DOCUMENT_END_EVENT:
      return on_document_end (ld);
    case YAML_ALIAS_EVENT:
      return at (err, ev->start_mark, "YAML aliases are not supported", NULL);
    case YAML_SCALAR_EVENT:
      return on_scalar (ld, ev, err);
    case YAML_SEQUENCE_START_EVENT:
      return on_collection_start (ld, ev, false, err);
    case YAML_MAPPING_START_EVENT:
      return on_collection_start (ld, ev, true, err);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      return on_collection_end (ld, ev, err);
    default:
      return 0;
    }
}

static void
loader_clear (struct loader *ld)
{
  for (size_t i = 0; i < ld->depth; i++)
    {
      json_object_put (ld->stack[i].node);
      free (ld->stack[i].key);
    }
  ld->depth = 0;
  json_object_put (ld->root);
  ld->root = NULL;
  free (ld->stack);
  ld->stack = NULL;
}

static int
parse_error (yaml_parser_t *p, struct ate_error **err)
{
  if (p->error == YAML_MEMORY_ERROR)
    ate_oom ();
  return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "line %zu column %zu: %s%s%s",
                              p->problem_mark.line + 1, p->problem_mark.column + 1,
                              p->problem ? p->problem : "syntax error", p->context ? " " : "",
                              p->context ? p->context : "");
}

int
admission_yaml_load (const char *buf, size_t len, const struct ate_admission_limits *limits,
                     struct admission_doc **docs, size_t *n_docs, struct ate_error **err)
{
  struct ate_admission_limits defaults;
  struct loader ld = { 0 };
  yaml_event_t ev;
  bool done = false;
  int ret = 0;

  if (limits == NULL)
    {
      ate_admission_limits_default (&defaults);
      limits = &defaults;
    }
  if (len > limits->max_bytes)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "input is %zu bytes, more than the limit of %zu", len,
                                limits->max_bytes);
  ld.lim = limits;
  ld.stack = xcalloc (limits->max_depth + 1, sizeof (*ld.stack));
  if (!yaml_parser_initialize (&ld.parser))
    ate_oom ();
  yaml_parser_set_input_string (&ld.parser, (const unsigned char *) buf, len);

  while (!done && ret == 0)
    {
      if (!yaml_parser_parse (&ld.parser, &ev))
        {
          ret = parse_error (&ld.parser, err);
          break;
        }
      done = ev.type == YAML_STREAM_END_EVENT;
      ret = on_event (&ld, &ev, err);
      yaml_event_delete (&ev);
    }
  yaml_parser_delete (&ld.parser);
  loader_clear (&ld);
  if (ret < 0)
    {
      admission_docs_free (ld.docs, ld.n_docs);
      return ret;
    }
  *docs = ld.docs;
  *n_docs = ld.n_docs;
  return 0;
}

void
admission_docs_free (struct admission_doc *docs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    json_object_put (docs[i].root);
  free (docs);
}

/* ---- Emitter ----------------------------------------------------------------- */

struct outbuf
{
  char *data;
  size_t len, cap;
};

static int
outbuf_write (void *data, unsigned char *buffer, size_t size)
{
  struct outbuf *o = data;
  if (o->len + size + 1 > o->cap)
    {
      o->cap = (o->len + size + 1) * 2;
      o->data = xrealloc (o->data, o->cap);
    }
  memcpy (o->data + o->len, buffer, size);
  o->len += size;
  o->data[o->len] = '\0';
  return 1;
}

static int
emit_scalar (yaml_emitter_t *e, const char *s, size_t len, yaml_scalar_style_t style)
{
  yaml_event_t ev;
  if (!yaml_scalar_event_initialize (&ev, NULL, NULL, (yaml_char_t *) s, (int) len, 1, 1, style))
    ate_oom ();
  return yaml_emitter_emit (e, &ev) ? 0 : -1;
}

/* Strings that would read back as something else get single quotes;
 * multi-line strings a literal block. */
static int
emit_string (yaml_emitter_t *e, const char *s, size_t len)
{
  bool bad;
  struct json_object *v = admission_yaml_resolve_plain (s, len, &bad);
  /* "<<" would read back as a merge key. */
  bool ambiguous
      = bad || !json_object_is_type (v, json_type_string) || (len == 2 && memcmp (s, "<<", 2) == 0);

  json_object_put (v);
  if (ambiguous)
    return emit_scalar (e, s, len, YAML_SINGLE_QUOTED_SCALAR_STYLE);
  if (memchr (s, '\n', len) != NULL)
    return emit_scalar (e, s, len, YAML_LITERAL_SCALAR_STYLE);
  return emit_scalar (e, s, len, YAML_PLAIN_SCALAR_STYLE);
}

static int
emit_value (yaml_emitter_t *e, struct json_object *v, unsigned depth)
{
  yaml_event_t ev;
  const char *txt;

  if (depth > 256)
    return -1;
  switch (json_object_get_type (v))
    {
    case json_type_null:
      return emit_scalar (e, "null", 4, YAML_PLAIN_SCALAR_STYLE);
    case json_type_string:
      return emit_string (e, json_object_get_string (v), (size_t) json_object_get_string_len (v));
    case json_type_boolean:
    case json_type_int:
    case json_type_double:
      txt = json_object_to_json_string_ext (v, JSON_C_TO_STRING_PLAIN);
      return emit_scalar (e, txt, strlen (txt), YAML_PLAIN_SCALAR_STYLE);
    case json_type_array:
      if (!yaml_sequence_start_event_initialize (&ev, NULL, NULL, 1,
                                                 json_object_array_length (v) == 0
                                                     ? YAML_FLOW_SEQUENCE_STYLE
                                                     : YAML_BLOCK_SEQUENCE_STYLE))
        ate_oom ();
      if (!yaml_emitter_emit (e, &ev))
        return -1;
      for (size_t i = 0; i < json_object_array_length (v); i++)
        if (emit_value (e, json_object_array_get_idx (v, i), depth + 1) < 0)
          return -1;
      yaml_sequence_end_event_initialize (&ev);
      return yaml_emitter_emit (e, &ev) ? 0 : -1;
    case json_type_object:
      if (!yaml_mapping_start_event_initialize (&ev, NULL, NULL, 1,
                                                json_object_object_length (v) == 0
                                                    ? YAML_FLOW_MAPPING_STYLE
                                                    : YAML_BLOCK_MAPPING_STYLE))
        ate_oom ();
      if (!yaml_emitter_emit (e, &ev))
        return -1;
      json_object_object_foreach (v, key, val)
      {
        if (emit_string (e, key, strlen (key)) < 0 || emit_value (e, val, depth + 1) < 0)
          return -1;
      }
      yaml_mapping_end_event_initialize (&ev);
      return yaml_emitter_emit (e, &ev) ? 0 : -1;
    }
  return -1;
}

static int
emit_document (yaml_emitter_t *e, struct json_object *value)
{
  yaml_event_t ev;

  yaml_stream_start_event_initialize (&ev, YAML_UTF8_ENCODING);
  if (!yaml_emitter_emit (e, &ev))
    return -1;
  yaml_document_start_event_initialize (&ev, NULL, NULL, NULL, 1);
  if (!yaml_emitter_emit (e, &ev))
    return -1;
  if (emit_value (e, value, 0) < 0)
    return -1;
  yaml_document_end_event_initialize (&ev, 1);
  if (!yaml_emitter_emit (e, &ev))
    return -1;
  yaml_stream_end_event_initialize (&ev);
  return yaml_emitter_emit (e, &ev) ? 0 : -1;
}

int
ate_admission_to_yaml (struct json_object *value, char **out, struct ate_error **err)
{
  yaml_emitter_t e;
  struct outbuf o = { 0 };
  int ret;

  if (!yaml_emitter_initialize (&e))
    ate_oom ();
  yaml_emitter_set_output (&e, outbuf_write, &o);
  yaml_emitter_set_unicode (&e, 1);
  yaml_emitter_set_indent (&e, 2);
  yaml_emitter_set_width (&e, -1);
  ret = emit_document (&e, value);
  if (ret < 0)
    {
      ret = ate_error_make (err, 0, "cannot write YAML: %s",
                            e.problem ? e.problem : "value nested too deeply");
      free (o.data);
    }
  else
    *out = o.data ? o.data : xstrdup ("");
  yaml_emitter_delete (&e);
  return ret;
}
