/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "validate.h"

#include <string.h>

#include "error.h"

static bool
is_alnum_lower (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
label_ok (const char *s, size_t len)
{
  if (len == 0 || len > 63)
    return false;
  if (!is_alnum_lower (s[0]) || !is_alnum_lower (s[len - 1]))
    return false;
  for (size_t i = 0; i < len; i++)
    if (!is_alnum_lower (s[i]) && s[i] != '-')
      return false;
  return true;
}

bool
ate_is_dns1123_label (const char *s)
{
  return s != NULL && label_ok (s, strlen (s));
}

bool
ate_is_dns1123_subdomain (const char *s)
{
  size_t len;
  const char *p;

  if (s == NULL)
    return false;
  len = strlen (s);
  if (len == 0 || len > 253)
    return false;
  p = s;
  for (;;)
    {
      const char *dot = strchr (p, '.');
      size_t l = dot ? (size_t) (dot - p) : strlen (p);
      if (!label_ok (p, l))
        return false;
      if (dot == NULL)
        return true;
      p = dot + 1;
    }
}

int
ate_validate_label (const char *field, const char *s, struct ate_error **err)
{
  if (s == NULL || *s == '\0')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "%s is required", field);
  if (!ate_is_dns1123_label (s))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "%s \"%.80s%s\" is not a DNS-1123 label (at most 63 "
                                "characters of a-z, 0-9 and '-', starting and ending "
                                "with a letter or digit)",
                                field, s, strlen (s) > 80 ? "..." : "");
  return 0;
}

int
ate_validate_subdomain (const char *field, const char *s, struct ate_error **err)
{
  if (s == NULL || *s == '\0')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "%s is required", field);
  if (!ate_is_dns1123_subdomain (s))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "%s \"%.80s%s\" is not a DNS-1123 subdomain (at most 253 "
                                "characters of dot-separated labels of a-z, 0-9 and '-')",
                                field, s, strlen (s) > 80 ? "..." : "");
  return 0;
}

int
ate_validate_abs_path (const char *field, const char *s, struct ate_error **err)
{
  size_t len;

  if (s == NULL || *s == '\0')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "%s is empty", field);
  len = strlen (s);
  if (s[0] != '/')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "%s %.200s is not an absolute path", field, s);
  if (len > 4095)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "%s is longer than 4095 bytes", field);
  for (const char *p = s; *p;)
    {
      const char *slash = strchr (p, '/');
      size_t l = slash ? (size_t) (slash - p) : strlen (p);
      if (l == 2 && p[0] == '.' && p[1] == '.')
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "%s %.200s contains a `..` component", field, s);
      if (slash == NULL)
        break;
      p = slash + 1;
    }
  return 0;
}
