/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shapes of the names that become path components: checked before any side
 * effect so that an id can never escape its directory ("..", "/", NUL,
 * overlong names).
 */
#ifndef ATE_VALIDATE_H
#define ATE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

struct ate_error;

/* RFC 1123 label: 1..63 of [a-z0-9-], starting and ending alphanumeric. */
bool ate_is_dns1123_label (const char *s);

/* RFC 1123 subdomain: 1..253, dot-separated labels. */
bool ate_is_dns1123_subdomain (const char *s);

/* INVALID_ARGUMENT naming `field` unless s is a DNS-1123 label. */
int ate_validate_label (const char *field, const char *s, struct ate_error **err);
int ate_validate_subdomain (const char *field, const char *s,
                            struct ate_error **err);

/* An absolute path without NUL, "..", or "//" components, at most 4095
 * bytes. */
int ate_validate_abs_path (const char *field, const char *s,
                           struct ate_error **err);

#endif
