/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OpenAPI-style schemas in C and their validator (admission_schema.c); the
 * CRDs' schemas themselves are in admission_crds.h.
 */
#ifndef ATE_K8S_ADMISSION_SCHEMA_H
#define ATE_K8S_ADMISSION_SCHEMA_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "k8s/admission_object.h"
#include "k8s/admission_report.h"

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

#endif
