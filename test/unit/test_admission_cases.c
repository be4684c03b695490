/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runs the shared case table (test/integration/admission/cases.yaml) through
 * libateadmission: one cmocka test per case.  Each case must produce exactly
 * the expected violations (same count; each expectation matched by path and
 * message substring, plus kind/name/origin when given), or the expected
 * parse error.  The same table drives the CEL agreement test.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/admission.h"
#include "k8s/admission_object.h"
#include "k8s/admission_yaml.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

static unsigned
case_flags (struct json_object *c)
{
  struct json_object *flags = admission_get (c, "flags");
  unsigned out = 0;

  for (size_t i = 0; flags && i < json_object_array_length (flags); i++)
    {
      const char *f = json_object_get_string (json_object_array_get_idx (flags, i));
      if (strcmp (f, "require-virtiofsd") == 0)
        out |= ATE_ADMISSION_REQUIRE_VIRTIOFSD;
      else
        fail_msg ("unknown flag %s", f);
    }
  return out;
}

static bool
field_matches (struct json_object *e, const char *key, const char *have)
{
  const char *want = admission_get_str (e, key);
  return want == NULL || (have != NULL && strcmp (want, have) == 0);
}

static bool
violation_matches (struct json_object *e, const struct ate_admission_violation *v)
{
  cleanup_free char *full
      = v->detail ? xasprintf ("%s (%s)", v->message, v->detail) : xstrdup (v->message);
  const char *contains = admission_get_str (e, "contains");

  return field_matches (e, "path", v->path) && contains != NULL && strstr (full, contains) != NULL
         && field_matches (e, "kind", v->kind) && field_matches (e, "name", v->name)
         && field_matches (e, "origin", ate_admission_origin_name (v->origin));
}

static void
print_report (const struct ate_admission_report *r)
{
  for (size_t i = 0; i < ate_admission_report_count (r); i++)
    {
      cleanup_free char *line = ate_admission_violation_format (ate_admission_report_get (r, i));
      print_message ("    got [%s] %s\n",
                     ate_admission_origin_name (ate_admission_report_get (r, i)->origin), line);
    }
}

/* Every expectation matches one distinct violation and nothing is left. */
static void
check_expectations (const char *name, struct json_object *expect,
                    const struct ate_admission_report *r)
{
  size_t n = ate_admission_report_count (r);
  size_t n_expect
      = json_object_is_type (expect, json_type_array) ? json_object_array_length (expect) : 0;
  cleanup_free bool *used = xcalloc (n + 1, sizeof (bool));
  bool ok = true;

  if (json_object_is_type (expect, json_type_string))
    assert_string_equal (json_object_get_string (expect), "accept");
  for (size_t i = 0; i < n_expect; i++)
    {
      struct json_object *e = json_object_array_get_idx (expect, i);
      bool found = false;
      for (size_t j = 0; j < n && !found; j++)
        if (!used[j] && violation_matches (e, ate_admission_report_get (r, j)))
          used[j] = found = true;
      if (!found)
        {
          print_message ("  %s: no violation matches %s\n", name,
                         json_object_to_json_string_ext (e, JSON_C_TO_STRING_PLAIN));
          ok = false;
        }
    }
  for (size_t j = 0; j < n; j++)
    if (!used[j])
      {
        cleanup_free char *line = ate_admission_violation_format (ate_admission_report_get (r, j));
        print_message ("  %s: unexpected violation %s\n", name, line);
        ok = false;
      }
  if (!ok)
    {
      print_report (r);
      fail_msg ("case %s does not match its expectation", name);
    }
}

static void
run_case (void **state)
{
  struct json_object *c = *state;
  const char *name = admission_get_str (c, "name");
  const char *input = admission_get_str (c, "input");
  const char *old_input = admission_get_str (c, "old");
  struct json_object *expect = admission_get (c, "expect");
  const char *parse_error = admission_get_str (expect, "parse-error");
  struct ate_admission_set *set = ate_admission_set_new ();
  struct ate_admission_set *old = NULL;
  struct ate_admission_report *report = NULL;
  cleanup_error struct ate_error *err = NULL;
  int rc;

  assert_non_null (name);
  assert_non_null (input);
  rc = ate_admission_set_add_yaml (set, name, input, strlen (input), NULL, &err);
  if (parse_error != NULL)
    {
      if (rc == 0)
        fail_msg ("case %s: expected a parse error containing \"%s\"", name, parse_error);
      if (strstr (err->msg, parse_error) == NULL)
        fail_msg ("case %s: parse error \"%s\" lacks \"%s\"", name, err->msg, parse_error);
      assert_int_equal (ate_admission_set_count (set), 0);
      ate_admission_set_free (set);
      return;
    }
  if (rc < 0)
    fail_msg ("case %s: unexpected parse error: %s", name, err->msg);
  if (old_input != NULL)
    {
      old = ate_admission_set_new ();
      assert_int_equal (
          ate_admission_set_add_yaml (old, "old", old_input, strlen (old_input), NULL, &err), 0);
    }
  assert_int_equal (ate_admission_validate (set, old, case_flags (c), &report, &err), 0);
  check_expectations (name, expect, report);
  ate_admission_report_free (report);
  ate_admission_set_free (set);
  ate_admission_set_free (old);
}

static struct json_object *
load_table (void)
{
  const char *src = getenv ("ATE_SOURCE_DIR");
  cleanup_free char *path
      = xasprintf ("%s/test/integration/admission/cases.yaml", src ? src : ATE_TEST_SOURCE_DIR);
  cleanup_free char *buf = NULL;
  cleanup_error struct ate_error *err = NULL;
  struct admission_doc *docs = NULL;
  struct json_object *table;
  size_t len, n = 0;

  if (ate_read_file (path, 16u << 20, &buf, &len, &err) < 0
      || admission_yaml_load (buf, len, NULL, &docs, &n, &err) < 0)
    {
      fprintf (stderr, "cannot load %s: %s\n", path, err->msg);
      exit (1);
    }
  if (n != 1 || !json_object_is_type (admission_get (docs[0].root, "cases"), json_type_array))
    {
      fprintf (stderr, "%s: expected one document with a cases list\n", path);
      exit (1);
    }
  table = json_object_get (admission_get (docs[0].root, "cases"));
  admission_docs_free (docs, n);
  return table;
}

int
main (void)
{
  struct json_object *table = load_table ();
  size_t n = json_object_array_length (table);
  struct CMUnitTest *tests = xcalloc (n, sizeof (*tests));
  int ret;

  /* The issue asks for at least 25 shared cases. */
  if (n < 25)
    {
      fprintf (stderr, "case table has only %zu cases\n", n);
      return 1;
    }
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *c = json_object_array_get_idx (table, i);
      for (size_t j = 0; j < i; j++)
        if (strcmp (admission_get_str (c, "name"),
                    admission_get_str (json_object_array_get_idx (table, j), "name"))
            == 0)
          {
            fprintf (stderr, "duplicate case name %s\n", admission_get_str (c, "name"));
            return 1;
          }
      tests[i].name = admission_get_str (c, "name");
      tests[i].test_func = run_case;
      tests[i].initial_state = c;
    }
  ret = _cmocka_run_group_tests ("admission_cases", tests, n, NULL, NULL);
  free (tests);
  json_object_put (table);
  return ret;
}
