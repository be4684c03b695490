/* SPDX-License-Identifier: Apache-2.0 */
/* YAML streams to JSON values, Kubernetes style (admission_yaml.c). */
#ifndef ATE_K8S_ADMISSION_YAML_H
#define ATE_K8S_ADMISSION_YAML_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "k8s/admission.h"

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

#endif
