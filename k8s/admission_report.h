/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Violation reports, field paths and the value formatting messages use
 * (admission_report.c).
 */
#ifndef ATE_K8S_ADMISSION_REPORT_H
#define ATE_K8S_ADMISSION_REPORT_H

#include <json-c/json.h>
#include <stdarg.h>
#include <stddef.h>

#include "k8s/admission.h"
#include "k8s/admission_object.h"

struct ate_admission_report *admission_report_new (void);
void admission_report_set_objects (struct ate_admission_report *r, size_t n);
void admission_report_vadd (struct ate_admission_report *r, const struct admission_object *o,
                            enum ate_admission_origin origin, const char *path, const char *detail,
                            const char *fmt, va_list ap) __attribute__ ((format (printf, 6, 0)));

void admission_report_add (struct ate_admission_report *r, const struct admission_object *o,
                           enum ate_admission_origin origin, const char *path, const char *detail,
                           const char *fmt, ...) __attribute__ ((format (printf, 6, 7)));

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

#endif
