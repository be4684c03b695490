/* SPDX-License-Identifier: Apache-2.0 */
/* Verdicts: the violation list, field paths and value quoting. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "k8s/admission_object.h"
#include "k8s/admission_report.h"
#include "util/util.h"

/* Values longer than this are cut in messages (a peer can send 1 MiB). */
#define ADMISSION_MAX_VIOLATIONS 10000
#define QUOTE_MAX 120

struct ate_admission_report
{
  struct ate_admission_violation *v;
  size_t n, cap;
  size_t objects;
};

struct ate_admission_report *
admission_report_new (void)
{
  return xcalloc (1, sizeof (struct ate_admission_report));
}

void
admission_report_set_objects (struct ate_admission_report *r, size_t n)
{
  r->objects = n;
}

void
admission_report_add (struct ate_admission_report *r, const struct admission_object *o,
                      enum ate_admission_origin origin, const char *path, const char *detail,
                      const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  admission_report_vadd (r, o, origin, path, detail, fmt, ap);
  va_end (ap);
}

void
admission_report_vadd (struct ate_admission_report *r, const struct admission_object *o,
                       enum ate_admission_origin origin, const char *path, const char *detail,
                       const char *fmt, va_list ap)
{
  struct ate_admission_violation *v;
  cleanup_free char *msg = NULL;

  if (vasprintf (&msg, fmt, ap) < 0)
    ate_oom ();

  /* A hostile file can hold hundreds of thousands of broken values; keep
   * the report (and the output) bounded and say that it was cut. */
  if (r->n > ADMISSION_MAX_VIOLATIONS)
    return;
  if (r->n == ADMISSION_MAX_VIOLATIONS)
    {
      free (msg);
      msg = xasprintf ("further violations are not reported (limit of %d reached)",
                       ADMISSION_MAX_VIOLATIONS);
      path = "";
      detail = NULL;
    }

  if (r->n == r->cap)
    {
      r->cap = r->cap ? r->cap * 2 : 8;
      r->v = xrealloc (r->v, r->cap * sizeof (*r->v));
    }
  v = &r->v[r->n++];
  v->source = xstrdup (o->source);
  v->kind = xstrdup (o->kind_name);
  v->name = xstrdup (o->name);
  v->namespace = o->ns ? xstrdup (o->ns) : NULL;
  v->path = xstrdup (path);
  v->message = steal_pointer (&msg);
  v->detail = detail ? xstrdup (detail) : NULL;
  v->origin = origin;
}

size_t
ate_admission_report_count (const struct ate_admission_report *r)
{
  return r->n;
}

const struct ate_admission_violation *
ate_admission_report_get (const struct ate_admission_report *r, size_t i)
{
  return i < r->n ? &r->v[i] : NULL;
}

size_t
ate_admission_report_objects (const struct ate_admission_report *r)
{
  return r->objects;
}

void
ate_admission_report_free (struct ate_admission_report *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->n; i++)
    {
      free ((char *) r->v[i].source);
      free ((char *) r->v[i].kind);
      free ((char *) r->v[i].name);
      free ((char *) r->v[i].namespace);
      free ((char *) r->v[i].path);
      free ((char *) r->v[i].message);
      free ((char *) r->v[i].detail);
    }
  free (r->v);
  free (r);
}

const char *
ate_admission_origin_name (enum ate_admission_origin o)
{
  switch (o)
    {
    case ATE_ADMISSION_ORIGIN_SCHEMA:
      return "schema";
    case ATE_ADMISSION_ORIGIN_POLICY:
      return "policy";
    case ATE_ADMISSION_ORIGIN_CROSS:
      return "cross-object";
    case ATE_ADMISSION_ORIGIN_CONTROLLER:
      return "controller";
    }
  return "unknown";
}

char *
ate_admission_violation_format (const struct ate_admission_violation *v)
{
  if (v->detail)
    return xasprintf ("%s: %s/%s: %s: %s (%s)", v->source, v->kind, v->name, v->path, v->message,
                      v->detail);
  return xasprintf ("%s: %s/%s: %s: %s", v->source, v->kind, v->name, v->path, v->message);
}

struct json_object *
ate_admission_report_to_json (const struct ate_admission_report *r)
{
  struct json_object *root = json_object_new_object ();
  struct json_object *list = json_object_new_array ();

  json_object_object_add (root, "objects", json_object_new_int64 ((int64_t) r->objects));
  for (size_t i = 0; i < r->n; i++)
    {
      const struct ate_admission_violation *v = &r->v[i];
      struct json_object *o = json_object_new_object ();
      json_object_object_add (o, "source", json_object_new_string (v->source));
      json_object_object_add (o, "kind", json_object_new_string (v->kind));
      json_object_object_add (o, "name", json_object_new_string (v->name));
      if (v->namespace)
        json_object_object_add (o, "namespace", json_object_new_string (v->namespace));
      json_object_object_add (o, "path", json_object_new_string (v->path));
      json_object_object_add (o, "message", json_object_new_string (v->message));
      if (v->detail)
        json_object_object_add (o, "detail", json_object_new_string (v->detail));
      json_object_object_add (o, "origin",
                              json_object_new_string (ate_admission_origin_name (v->origin)));
      json_object_array_add (list, o);
    }
  json_object_object_add (root, "violations", list);
  return root;
}

/* ---- Paths -------------------------------------------------------------------- */

static void
path_append (struct admission_path *p, const char *s, size_t len)
{
  if (p->len + len + 1 > p->cap)
    {
      p->cap = (p->len + len + 1) * 2;
      p->buf = xrealloc (p->buf, p->cap);
    }
  memcpy (p->buf + p->len, s, len);
  p->len += len;
  p->buf[p->len] = '\0';
}

void
admission_path_init (struct admission_path *p, const char *root)
{
  p->buf = NULL;
  p->len = p->cap = 0;
  path_append (p, root, strlen (root));
}

void
admission_path_fini (struct admission_path *p)
{
  free (p->buf);
  p->buf = NULL;
}

size_t
admission_path_push_field (struct admission_path *p, const char *name)
{
  size_t old = p->len;
  if (p->len > 0)
    path_append (p, ".", 1);
  path_append (p, name, strlen (name));
  return old;
}

size_t
admission_path_push_index (struct admission_path *p, size_t i)
{
  char buf[32];
  size_t old = p->len;
  int n = snprintf (buf, sizeof (buf), "[%zu]", i);
  path_append (p, buf, (size_t) n);
  return old;
}

size_t
admission_path_push_key (struct admission_path *p, const char *key)
{
  size_t old = p->len;
  /* "spec.assets.amd64.kata-image" reads well; a key with dots, slashes or
   * spaces (label keys) would not, so it goes in brackets. */
  if (*key == '\0'
      || strspn (key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
             != strlen (key))
    {
      path_append (p, "[", 1);
      path_append (p, key, strlen (key));
      path_append (p, "]", 1);
      return old;
    }
  return admission_path_push_field (p, key);
}

void
admission_path_pop (struct admission_path *p, size_t len)
{
  p->len = len;
  if (p->buf)
    p->buf[len] = '\0';
}

/* ---- Values in messages ------------------------------------------------------------ */

char *
admission_quote (const char *s, size_t len)
{
  size_t n = len > QUOTE_MAX ? QUOTE_MAX : len;
  char *out = xmalloc (n * 4 + 8);
  char *w = out;

  *w++ = '"';
  for (size_t i = 0; i < n; i++)
    {
      unsigned char c = (unsigned char) s[i];
      if (c == '"' || c == '\\')
        {
          *w++ = '\\';
          *w++ = (char) c;
        }
      else if (c == '\n')
        w = stpcpy (w, "\\n");
      else if (c == '\t')
        w = stpcpy (w, "\\t");
      else if (c < 0x20 || c == 0x7f)
        w += sprintf (w, "\\x%02x", c);
      else
        *w++ = (char) c;
    }
  *w++ = '"';
  if (len > n)
    w = stpcpy (w, "...");
  *w = '\0';
  return out;
}

const char *
admission_type_name (struct json_object *v)
{
  switch (json_object_get_type (v))
    {
    case json_type_null:
      return "null";
    case json_type_boolean:
      return "boolean";
    case json_type_int:
      return "integer";
    case json_type_double:
      return "number";
    case json_type_string:
      return "string";
    case json_type_array:
      return "array";
    case json_type_object:
      return "object";
    }
  return "unknown";
}
