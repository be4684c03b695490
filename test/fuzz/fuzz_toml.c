/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the TOML reader through the kata configuration parser. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kata/config.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct kata_config cfg = { 0 };
  struct ate_error *err = NULL;

  if (kata_config_parse ((const char *) data, size, &cfg, &err) < 0)
    {
      /* Every rejection names a line (or the size limit). */
      if (err == NULL || (strstr (err->msg, "line ") == NULL && err->status != EFBIG))
        abort ();
      ate_error_free (err);
      return 0;
    }
  if (cfg.memory_mib <= 0 || cfg.vcpus <= 0 || cfg.kernel_params == NULL)
    abort ();
  kata_config_release (&cfg);
  return 0;
}
