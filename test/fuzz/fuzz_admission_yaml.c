/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz the admission YAML loader and everything behind it: load arbitrary
 * bytes with small limits, validate what loads, render every WorkerPool, and
 * check that each loaded document survives a trip through the YAML writer
 * unchanged (the writer must quote whatever would read back differently).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/admission.h"
#include "k8s/admission_yaml.h"
#include "util/error.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_roundtrip (const char *buf, size_t len, const struct ate_admission_limits *lim)
{
  struct admission_doc *docs = NULL, *again = NULL;
  size_t n = 0, n_again = 0;
  struct ate_error *err = NULL;

  if (admission_yaml_load (buf, len, lim, &docs, &n, &err) < 0)
    {
      ate_error_free (err);
      return;
    }
  for (size_t i = 0; i < n; i++)
    {
      char *yaml = NULL;
      if (ate_admission_to_yaml (docs[i].root, &yaml, &err) < 0)
        abort ();
      if (admission_yaml_load (yaml, strlen (yaml), NULL, &again, &n_again, &err) < 0
          || n_again != 1 || !json_object_equal (docs[i].root, again[0].root))
        abort ();
      admission_docs_free (again, n_again);
      free (yaml);
    }
  admission_docs_free (docs, n);
}

static void
render_pools (struct ate_admission_set *set)
{
  char **names = ate_admission_set_workerpool_names (set);

  for (size_t i = 0; names[i]; i++)
    {
      struct json_object *dep = NULL;
      struct ate_error *err = NULL;
      char *yaml = NULL;
      if (ate_admission_render_workerpool (set, names[i], &dep, &err) < 0)
        {
          ate_error_free (err);
          continue;
        }
      if (ate_admission_to_yaml (dep, &yaml, &err) < 0)
        abort ();
      free (yaml);
      json_object_put (dep);
    }
  strv_free (names);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct ate_admission_limits lim;
  struct ate_admission_set *set = ate_admission_set_new ();
  struct ate_admission_report *report = NULL;
  struct ate_error *err = NULL;

  ate_admission_limits_default (&lim);
  lim.max_bytes = 256 * 1024;
  lim.max_nodes = 20000;
  lim.max_depth = 32;
  check_roundtrip ((const char *) data, size, &lim);
  if (ate_admission_set_add_yaml (set, "fuzz", (const char *) data, size, &lim, &err) < 0)
    ate_error_free (err);
  else if (ate_admission_validate (set, set, ATE_ADMISSION_REQUIRE_VIRTIOFSD, &report, &err) == 0)
    {
      struct json_object *j = ate_admission_report_to_json (report);
      for (size_t i = 0; i < ate_admission_report_count (report); i++)
        free (ate_admission_violation_format (ate_admission_report_get (report, i)));
      json_object_put (j);
      ate_admission_report_free (report);
      render_pools (set);
    }
  ate_admission_set_free (set);
  return 0;
}
