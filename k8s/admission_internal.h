/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the files of libateadmission; not for other modules. */
#ifndef ATE_K8S_ADMISSION_INTERNAL_H
#define ATE_K8S_ADMISSION_INTERNAL_H

#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "k8s/admission.h"

/* ---- YAML (admission_yaml.c) ------------------------------------------- */

struct admission_doc
{
  struct json_object *root; /* never NULL: empty documents are dropped */
  unsigned index;           /* 1-based document number in the stream */
  unsigned line;            /* 1-based line of the document start */
};

/* Parse every document of buf into JSON values (Kubernetes' YAML 1.1
 * resolution of plain scalars).  On success *docs is an array of *n_docs
 * (possibly zero) documents; free with admission_docs_free. */
int admission_yaml_load (const char *buf, size_t len, const struct ate_admission_limits *limits,
                         struct admission_doc **docs, size_t *n_docs, struct ate_error **err);
void admission_docs_free (struct admission_doc *docs, size_t n);

/* How a plain (unquoted, untagged) scalar reads back; used by the emitter to
 * decide when a string needs quotes.  Returns a new JSON value or NULL for
 * null; *is_error is set for values JSON cannot hold (.inf, .nan). */
struct json_object *admission_yaml_resolve_plain (const char *s, size_t len, bool *is_error);

/* ---- Objects ----------------------------------------------------------- */

enum admission_kind
{
  ADMISSION_KIND_INVALID, /* ate.dev group but unusable header (reported) */
  ADMISSION_KIND_SANDBOXCONFIG,
  ADMISSION_KIND_WORKERPOOL,
  ADMISSION_KIND_ACTORTEMPLATE,
};

struct admission_object
{
  struct json_object *root; /* owned reference; defaults applied */
  char *source;
  unsigned doc; /* document number in source */
  enum admission_kind kind;
  char *kind_name;   /* as written, or "<unknown>" */
  char *name;        /* metadata.name, or "#<doc>" */
  char *ns;          /* metadata.namespace or NULL */
  char *header_path; /* set when the header is unusable: what to report */
  char *header_message;
};

struct ate_admission_set
{
  struct admission_object *objs;
  size_t n, cap;
  size_t skipped;
};

/* ---- Report ------------------------------------------------------------- */

struct ate_admission_report *admission_report_new (void);
void admission_report_set_objects (struct ate_admission_report *r, size_t n);
void admission_report_vadd (struct ate_admission_report *r, const struct admission_object *o,
                            enum ate_admission_origin origin, const char *path, const char *detail,
                            const char *fmt, va_list ap) __attribute__ ((format (printf, 6, 0)));

void admission_report_add (struct ate_admission_report *r, const struct admission_object *o,
                           enum ate_admission_origin origin, const char *path, const char *detail,
                           const char *fmt, ...) __attribute__ ((format (printf, 6, 7)));

/* ---- Field paths ("spec.containers[0].name") ------------------------------ */

struct admission_path
{
  char *buf;
  size_t len, cap;
};

void admission_path_init (struct admission_path *p, const char *root);
void admission_path_fini (struct admission_path *p);
/* Each push returns the previous length, to restore with admission_path_pop. */
size_t admission_path_push_field (struct admission_path *p, const char *name);
size_t admission_path_push_index (struct admission_path *p, size_t i);
/* Map keys: ".key", or "[key]" unless the key is only [A-Za-z0-9_-]. */
size_t admission_path_push_key (struct admission_path *p, const char *key);
void admission_path_pop (struct admission_path *p, size_t len);

/* Go-%q-style quoting of a value for messages, truncated (new string). */
char *admission_quote (const char *s, size_t len);
/* JSON type name as the apiserver prints it ("string", "integer", ...). */
const char *admission_type_name (struct json_object *v);

/* ---- Names (admission_names.c), Kubernetes' own definitions --------------- */

bool admission_is_dns1123_label (const char *s, size_t len);
bool admission_is_dns1123_subdomain (const char *s, size_t len);
/* Label key ([prefix/]name) and value; on failure *why says what is wrong. */
bool admission_is_label_key (const char *s, size_t len, const char **why);
bool admission_is_label_value (const char *s, size_t len, const char **why);

/* ---- Schema (admission_schema.c, admission_crds.c) ------------------------ */

struct admission_schema_ctx
{
  struct ate_admission_report *report;
  const struct admission_object *obj;
  struct json_object *old_root; /* stored object for UPDATE, or NULL */
  unsigned flags;
};

enum admission_schema_type
{
  SCHEMA_ANY = 0, /* accepted without checks (metadata fields we ignore) */
  SCHEMA_OBJECT,  /* known properties */
  SCHEMA_MAP,     /* additionalProperties: every value matches `items` */
  SCHEMA_ARRAY,
  SCHEMA_STRING,
  SCHEMA_INTEGER,
  SCHEMA_BOOLEAN,
  SCHEMA_INT_OR_STRING, /* resource quantities */
};

struct admission_schema;

struct admission_schema_prop
{
  const char *name;
  const struct admission_schema *schema;
  bool required;
};

/* An x-kubernetes-validations rule written in C.  Returns true when the
 * rule holds.  `old` is the value at the same path in the stored object
 * (NULL on CREATE; rules that need it are skipped then). */
struct admission_schema_rule
{
  bool (*holds) (const struct admission_schema_ctx *ctx, struct json_object *self,
                 struct json_object *old);
  const char *message;
  bool needs_old;
};

struct admission_schema
{
  enum admission_schema_type type;
  const struct admission_schema_prop *props; /* OBJECT; {NULL} terminated */
  const struct admission_schema *items;      /* ARRAY items, MAP values */
  bool open;                                 /* OBJECT: unknown fields allowed */
  /* String characters, array items or object properties; 0 = unbounded. */
  int64_t min_len, max_len;
  bool has_minimum, has_maximum;
  int64_t minimum, maximum;
  const char *const *enums; /* NULL-terminated */
  const char *pattern;      /* shown in messages */
  bool (*match) (const char *s, size_t len);
  const struct admission_schema_rule *rules; /* {NULL} terminated */
};

/* Validate `v` against `s` at path `p`, adding violations to ctx->report. */
void admission_schema_validate (const struct admission_schema_ctx *ctx,
                                const struct admission_schema *s, struct json_object *v,
                                struct json_object *old, struct admission_path *p);

const struct admission_schema *admission_crd_schema (enum admission_kind kind);

/* Apply the CRD defaults the apiserver applies before validation. */
void admission_crd_apply_defaults (enum admission_kind kind, struct json_object *root);

/* ---- Rules ------------------------------------------------------------------ */

/* The ValidatingAdmissionPolicy rules (admission_policy.c). */
void admission_policy_check (struct ate_admission_report *r, const struct admission_object *o,
                             unsigned flags);

/* Checks between objects and controller-level checks (admission_cross.c). */
void admission_cross_check (struct ate_admission_report *r, const struct ate_admission_set *set,
                            unsigned flags);
void admission_controller_check (struct ate_admission_report *r, const struct admission_object *o);

/* ---- Small JSON accessors ----------------------------------------------- */

/* Member of an object (NULL if o is not an object or lacks the key). */
struct json_object *admission_get (struct json_object *o, const char *key);
/* String member or NULL (also NULL when not a string). */
const char *admission_get_str (struct json_object *o, const char *key);
/* spec.sandboxClass, "gvisor" when absent (the CRD default). */
const char *admission_object_class (const struct admission_object *o);

/* Does a metav1.LabelSelector (JSON) select `labels` (object or NULL)?  A
 * NULL selector selects everything.  Malformed selectors select nothing. */
bool admission_selector_matches (struct json_object *selector, struct json_object *labels);

#endif
