/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ValidatingAdmissionPolicy "ateom-microvm-sandboxconfig-assets"
 * (deploy/kustomize/base/policy/sandboxconfig-assets.yaml) in C.  Each
 * function below mirrors one `validations[]` entry of the manifest; the
 * agreement test (test/integration/admission/cel_agreement.py) evaluates the
 * manifest's CEL on the shared case table and compares with this code, so
 * a change here must be made there too (and the other way round).
 *
 *   [0] gvisor:  class != 'gvisor' || (has(assets) && size(assets) > 0 &&
 *                assets.all(arch, 'runsc' in assets[arch]))
 *   [1] microvm: the same shape with cloud-hypervisor, kata-kernel,
 *                kata-image, kata-config (upstream e44249f7; the
 *                require-virtiofsd component adds virtiofsd, as later
 *                upstream 86e138f6 does; docs/admission.md)
 *   [2] urls:    class != 'microvm' || !has(assets) || every asset url
 *                matches '^(gs|s3)://[^/]+/.+$' (ours: atelet reads
 *                assets from an object store, taking the host as bucket and
 *                the path as object; any other scheme fails only on the
 *                node; gvisor configs are left to upstream's own policy)
 */
#define _GNU_SOURCE
#include <string.h>

#include "k8s/admission_object.h"
#include "k8s/admission_policy.h"
#include "k8s/admission_report.h"
#include "util/error.h"
#include "util/util.h"

static const char *const gvisor_assets[] = { "runsc", NULL };
static const char *const microvm_assets[]
    = { "cloud-hypervisor", "kata-kernel", "kata-image", "kata-config", NULL };
static const char *const microvm_head_assets[]
    = { "cloud-hypervisor", "virtiofsd", "kata-kernel", "kata-image", "kata-config", NULL };

static const char gvisor_message[] = "a gvisor SandboxConfig must define a 'runsc' asset for "
                                     "every architecture under spec.assets";
static const char microvm_message[]
    = "a microvm SandboxConfig must define cloud-hypervisor, kata-kernel, kata-image, and "
      "kata-config assets for every architecture under spec.assets";
static const char microvm_head_message[]
    = "a microvm SandboxConfig must define cloud-hypervisor, virtiofsd, kata-kernel, "
      "kata-image, and kata-config assets for every architecture under spec.assets";
static const char url_message[]
    = "every asset url under spec.assets must be a gs:// or s3:// object URL "
      "(gs://BUCKET/OBJECT)";

const char *const *
ate_admission_required_assets (const char *sandbox_class, unsigned flags)
{
  if (sandbox_class == NULL)
    return NULL;
  if (strcmp (sandbox_class, ATE_ADMISSION_CLASS_GVISOR) == 0)
    return gvisor_assets;
  if (strcmp (sandbox_class, ATE_ADMISSION_CLASS_MICROVM) == 0)
    return (flags & ATE_ADMISSION_REQUIRE_VIRTIOFSD) ? microvm_head_assets : microvm_assets;
  return NULL;
}

const char *
ate_admission_policy_message (const char *sandbox_class, unsigned flags)
{
  if (sandbox_class == NULL)
    return NULL;
  if (strcmp (sandbox_class, ATE_ADMISSION_CLASS_GVISOR) == 0)
    return gvisor_message;
  if (strcmp (sandbox_class, ATE_ADMISSION_CLASS_MICROVM) == 0)
    return (flags & ATE_ADMISSION_REQUIRE_VIRTIOFSD) ? microvm_head_message : microvm_message;
  return NULL;
}

/* "a, b, c" of the required names missing from one architecture's map (a
 * non-map has none of them: CEL's `in` fails on it, which denies). */
static char *
missing_names (struct json_object *arch_map, const char *const *required)
{
  char *out = NULL;

  for (; *required; required++)
    {
      char *next;
      if (admission_get (arch_map, *required) != NULL)
        continue;
      next = out ? xasprintf ("%s, %s", out, *required) : xstrdup (*required);
      free (out);
      out = next;
    }
  return out;
}

static void
check_class_assets (struct ate_admission_report *r, const struct admission_object *o,
                    struct json_object *assets, const char *cls, unsigned flags)
{
  const char *const *required = ate_admission_required_assets (cls, flags);
  const char *message = ate_admission_policy_message (cls, flags);
  struct admission_path p;

  if (required == NULL)
    return; /* an unknown class fails the CRD enum; no policy rule names it */
  if (!json_object_is_type (assets, json_type_object) || json_object_object_length (assets) == 0)
    {
      admission_report_add (r, o, ATE_ADMISSION_ORIGIN_POLICY, "spec.assets",
                            assets ? "spec.assets is empty" : "spec.assets is not set", "%s",
                            message);
      return;
    }
  admission_path_init (&p, "spec.assets");
  json_object_object_foreach (assets, arch, arch_map)
  {
    cleanup_free char *missing = missing_names (arch_map, required);
    cleanup_free char *detail = NULL;
    size_t saved;
    if (missing == NULL)
      continue;
    detail = xasprintf ("missing: %s", missing);
    saved = admission_path_push_key (&p, arch);
    admission_report_add (r, o, ATE_ADMISSION_ORIGIN_POLICY, p.buf, detail, "%s", message);
    admission_path_pop (&p, saved);
  }
  admission_path_fini (&p);
}

/* '^(gs|s3)://[^/]+/.+$' with RE2 semantics ('.' does not match '\n'). */
static bool
is_object_url (const char *s, size_t len)
{
  size_t i = 5, bucket;

  if (len < 5 || (memcmp (s, "gs://", 5) != 0 && memcmp (s, "s3://", 5) != 0))
    return false;
  for (bucket = 0; i < len && s[i] != '/'; i++)
    bucket++;
  if (bucket == 0 || i == len)
    return false;
  i++; /* the '/' */
  if (i == len)
    return false;
  return memchr (s + i, '\n', len - i) == NULL;
}

static void
check_urls (struct ate_admission_report *r, const struct admission_object *o,
            struct json_object *assets)
{
  struct admission_path p;

  if (!json_object_is_type (assets, json_type_object))
    return;
  admission_path_init (&p, "spec.assets");
  json_object_object_foreach (assets, arch, arch_map)
  {
    size_t saved = admission_path_push_key (&p, arch);
    if (!json_object_is_type (arch_map, json_type_object))
      {
        admission_path_pop (&p, saved);
        continue;
      }
    json_object_object_foreach (arch_map, name, asset)
    {
      struct json_object *url = admission_get (asset, "url");
      size_t saved2 = admission_path_push_key (&p, name);
      size_t saved3 = admission_path_push_field (&p, "url");
      /* A missing or non-string url is the CRD schema's to report. */
      if (json_object_is_type (url, json_type_string)
          && !is_object_url (json_object_get_string (url),
                             (size_t) json_object_get_string_len (url)))
        {
          cleanup_free char *q = admission_quote (json_object_get_string (url),
                                                  (size_t) json_object_get_string_len (url));
          cleanup_free char *detail = xasprintf ("got %s", q);
          admission_report_add (r, o, ATE_ADMISSION_ORIGIN_POLICY, p.buf, detail, "%s",
                                url_message);
        }
      admission_path_pop (&p, saved3);
      admission_path_pop (&p, saved2);
    }
    admission_path_pop (&p, saved);
  }
  admission_path_fini (&p);
}

void
admission_policy_check (struct ate_admission_report *r, const struct admission_object *o,
                        unsigned flags)
{
  struct json_object *spec = admission_get (o->root, "spec");
  struct json_object *assets = admission_get (spec, "assets");
  const char *cls = admission_get_str (spec, "sandboxClass");

  if (cls != NULL)
    check_class_assets (r, o, assets, cls, flags);
  if (cls != NULL && strcmp (cls, ATE_ADMISSION_CLASS_MICROVM) == 0)
    check_urls (r, o, assets);
}

/* ---- The server's check of runtime_asset_paths ------------------------------------ */

static bool
names_contain (const char *const *names, size_t n, const char *want)
{
  for (size_t i = 0; i < n; i++)
    if (names[i] != NULL && strcmp (names[i], want) == 0)
      return true;
  return false;
}

int
ate_admission_check_runtime_assets (const char *sandbox_class, const char *const *names, size_t n,
                                    unsigned flags, struct ate_error **err)
{
  const char *cls = sandbox_class && *sandbox_class ? sandbox_class : ATE_ADMISSION_CLASS_GVISOR;
  const char *const *required = ate_admission_required_assets (cls, flags);
  cleanup_free char *missing = NULL;

  if (required == NULL)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "unknown sandbox class \"%s\" (supported: gvisor, microvm)", cls);
  for (; *required; required++)
    {
      char *next;
      if ((flags & ATE_ADMISSION_SERVER_FALLBACKS)
          && (strcmp (*required, "cloud-hypervisor") == 0
              || strcmp (*required, "kata-config") == 0))
        continue;
      if (names_contain (names, n, *required))
        continue;
      next = missing ? xasprintf ("%s, %s", missing, *required) : xstrdup (*required);
      free (missing);
      missing = next;
    }
  if (missing != NULL)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "runtime_asset_paths lacks required %s assets: %s (the "
                                "SandboxConfig must define them for this node's architecture)",
                                cls, missing);
  return 0;
}
