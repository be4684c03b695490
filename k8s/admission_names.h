/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes' name and label syntax (admission_names.c). */
#ifndef ATE_K8S_ADMISSION_NAMES_H
#define ATE_K8S_ADMISSION_NAMES_H

#include <stdbool.h>
#include <stddef.h>

bool admission_is_dns1123_label (const char *s, size_t len);
bool admission_is_dns1123_subdomain (const char *s, size_t len);
/* Label key ([prefix/]name) and value; on failure *why says what is wrong. */
bool admission_is_label_key (const char *s, size_t len, const char **why);
bool admission_is_label_value (const char *s, size_t len, const char **why);

#endif
