/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kubernetes name shapes (k8s.io/apimachinery/pkg/util/validation), with
 * explicit lengths because JSON strings may hold NUL bytes.  These differ
 * from runtime/util/validate.h on purpose: a Kubernetes DNS-1123 subdomain
 * does not bound its dot-separated parts to 63 characters.
 */
#define _GNU_SOURCE
#include <string.h>

#include "k8s/admission_names.h"

static bool
is_lower_alnum (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_alnum (char c)
{
  return is_lower_alnum (c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? */
static bool
label_part_ok (const char *s, size_t len)
{
  if (len == 0 || !is_lower_alnum (s[0]) || !is_lower_alnum (s[len - 1]))
    return false;
  for (size_t i = 0; i < len; i++)
    if (!is_lower_alnum (s[i]) && s[i] != '-')
      return false;
  return true;
}

bool
admission_is_dns1123_label (const char *s, size_t len)
{
  return len <= 63 && label_part_ok (s, len);
}

bool
admission_is_dns1123_subdomain (const char *s, size_t len)
{
  size_t start = 0;

  if (len == 0 || len > 253)
    return false;
  for (size_t i = 0; i <= len; i++)
    if (i == len || s[i] == '.')
      {
        if (!label_part_ok (s + start, i - start))
          return false;
        start = i + 1;
      }
  return true;
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] */
static bool
qualified_part_ok (const char *s, size_t len)
{
  if (len == 0 || !is_alnum (s[0]) || !is_alnum (s[len - 1]))
    return false;
  for (size_t i = 0; i < len; i++)
    if (!is_alnum (s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
      return false;
  return true;
}

static const char qualified_why[]
    = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
      "and end with an alphanumeric character";

bool
admission_is_label_key (const char *s, size_t len, const char **why)
{
  const char *slash = memchr (s, '/', len);
  const char *name = s;
  size_t name_len = len;

  if (slash != NULL)
    {
      size_t plen = (size_t) (slash - s);
      if (plen == 0)
        {
          *why = "prefix part must be non-empty";
          return false;
        }
      if (!admission_is_dns1123_subdomain (s, plen))
        {
          *why = "prefix part must be a lowercase RFC 1123 subdomain";
          return false;
        }
      name = slash + 1;
      name_len = len - plen - 1;
      if (memchr (name, '/', name_len) != NULL)
        {
          *why = "a qualified name must consist of an optional prefix, '/' and a name";
          return false;
        }
    }
  if (name_len == 0)
    {
      *why = "name part must be non-empty";
      return false;
    }
  if (name_len > 63)
    {
      *why = "name part must be no more than 63 characters";
      return false;
    }
  if (!qualified_part_ok (name, name_len))
    {
      *why = qualified_why;
      return false;
    }
  return true;
}

bool
admission_is_label_value (const char *s, size_t len, const char **why)
{
  if (len == 0)
    return true;
  if (len > 63)
    {
      *why = "must be no more than 63 characters";
      return false;
    }
  if (!qualified_part_ok (s, len))
    {
      *why = "a valid label must be an empty string or consist of alphanumeric characters, "
             "'-', '_' or '.', and must start and end with an alphanumeric character";
      return false;
    }
  return true;
}
