/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the cloud-hypervisor HTTP response parser and the error-chain
 * formatter with whatever a hostile or broken API socket could send. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ch/http.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct ch_http_response r = { 0 };
  struct ate_error *err = NULL;
  size_t used = 0;
  int ret;

  ret = ch_http_parse_response ((const char *) data, size, &r, &used, &err);
  if (ret == 1)
    {
      if (used > size || r.status < 100 || r.status > 999)
        abort ();
      if (r.body && (r.body_len > CH_HTTP_MAX_BODY || r.body[r.body_len] != '\0'))
        abort ();
      free (ch_http_error_chain (r.body, r.body_len));
    }
  else if (ret < 0 && err == NULL)
    abort ();
  ch_http_response_clear (&r);
  ate_error_release (&err);
  free (ch_http_error_chain ((const char *) data, size));
  return 0;
}
