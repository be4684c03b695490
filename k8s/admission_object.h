/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bottom of libateadmission: an object as the other files see it, the
 * set of them, and the small JSON accessors every rule uses
 * (admission_object.c). It calls nothing else of the library, so every file
 * can include it without a cycle.
 */
#ifndef ATE_K8S_ADMISSION_OBJECT_H
#define ATE_K8S_ADMISSION_OBJECT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "k8s/admission.h"

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

/* The kind of an ate.dev object from its "kind" field (NULL allowed);
 * ADMISSION_KIND_INVALID when it names none of ours. */
enum admission_kind admission_kind_lookup (const char *kind);

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
