/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz the restore-config sanitiser with hostile snapshot config.json
 * files.  Invariants: a refusal is FAILED_PRECONDITION; an accepted
 * config holds no host path but the server's own.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ch/restore_config.h"
#include "util/error.h"
#include "util/json.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const struct ch_expected_disk disks[] = {
  { "/assets/kata.img", "Raw", false, true, NULL },
  { "/base/actors/ns:t:a1/actor-rootfs.ext4", "Raw", false, false, NULL },
};

static const struct ch_restore_expect expect = {
  .kernel = "/assets/vmlinux",
  .cmdline = "console=hvc0",
  .vcpus = 1,
  .memory_size = 2147483648ULL,
  .disks = disks,
  .n_disks = 2,
  .rng_src = "/dev/urandom",
  .serial_file = "/run/a1/serial.log",
  .vsock_socket = "/run/a1/clh.sock",
  .vsock_cid = 3,
  .net_mac = "02:a8:1e:00:00:02",
};

static const char *const own_paths[] = { "/assets/kata.img", "/base/actors/ns:t:a1/actor-rootfs.ext4",
                                         "/assets/vmlinux", "/dev/urandom", "/run/a1/serial.log",
                                         "/run/a1/clh.sock" };

static void
check_strings (struct json_object *o)
{
  switch (json_object_get_type (o))
    {
    case json_type_object:
      {
        json_object_object_foreach (o, k, v)
        {
          (void) k;
          check_strings (v);
        }
        break;
      }
    case json_type_array:
      for (size_t i = 0; i < json_object_array_length (o); i++)
        check_strings (json_object_array_get_idx (o, i));
      break;
    case json_type_string:
      {
        const char *s = json_object_get_string (o);
        bool own = false;
        if (strchr (s, '/') == NULL)
          return;
        for (size_t i = 0; i < ATE_N_ELEMENTS (own_paths); i++)
          own = own || strcmp (s, own_paths[i]) == 0;
        if (!own)
          abort ();
        break;
      }
    default:
      break;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct json_object *snap = NULL, *out = NULL;
  struct ate_error *err = NULL;

  if (ate_json_parse ((const char *) data, size, ATE_JSON_MAX_DEPTH, &snap, &err) < 0)
    {
      ate_error_free (err);
      return 0;
    }
  if (ch_restore_config_build (snap, &expect, &out, &err) < 0)
    {
      if (err == NULL || err->code != ATE_CODE_FAILED_PRECONDITION || out != NULL)
        abort ();
      ate_error_free (err);
    }
  else
    {
      check_strings (out);
      json_object_put (out);
    }
  json_object_put (snap);
  return 0;
}
