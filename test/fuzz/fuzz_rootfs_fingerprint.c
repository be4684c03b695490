/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fingerprint side file is read back from disk on every Run: the parser
 * must reject anything malformed without crashing, and whatever it accepts
 * must be in canonical form (format(parse(x)) == x), so two fingerprints
 * compare equal exactly when their files do.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rootfs/fingerprint.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct rootfs_fingerprint fp, again;
  struct ate_error *err = NULL;
  char *text;

  if (rootfs_fingerprint_parse ((const char *) data, size, &fp, &err) < 0)
    {
      if (err == NULL || err->msg == NULL)
        abort ();
      ate_error_release (&err);
      return 0;
    }
  text = rootfs_fingerprint_format (&fp, true);
  if (strlen (text) != size || memcmp (text, data, size) != 0)
    abort ();
  if (rootfs_fingerprint_parse (text, strlen (text), &again, &err) < 0
      || !rootfs_fingerprint_same_build (&fp, &again) || again.has_disk != fp.has_disk)
    abort ();
  free (text);
  return 0;
}
