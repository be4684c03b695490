/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of libateadmission pieces the case table does not reach
 * directly: YAML scalar resolution, limits, the YAML writer, name shapes,
 * the runtime-asset check the server uses, and the worker Deployment shape
 * (TestMicroVMPodShape of the reference: gvisor has none of the four KVM
 * items, microvm has all four).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "k8s/admission.h"
#include "k8s/admission_names.h"
#include "k8s/admission_object.h"
#include "k8s/admission_report.h"
#include "k8s/admission_yaml.h"
#include "util/error.h"
#include "util/util.h"

/* ---- helpers ---------------------------------------------------------------- */

static struct json_object *
load_one (const char *yaml)
{
  struct admission_doc *docs = NULL;
  size_t n = 0;
  struct json_object *root;
  cleanup_error struct ate_error *err = NULL;

  if (admission_yaml_load (yaml, strlen (yaml), NULL, &docs, &n, &err) < 0)
    fail_msg ("parse failed: %s", err->msg);
  assert_int_equal (n, 1);
  root = json_object_get (docs[0].root);
  admission_docs_free (docs, n);
  return root;
}

static char *
load_error (const char *yaml, const struct ate_admission_limits *lim)
{
  struct admission_doc *docs = NULL;
  size_t n = 0;
  struct ate_error *err = NULL;
  char *msg;

  if (admission_yaml_load (yaml, strlen (yaml), lim, &docs, &n, &err) == 0)
    {
      admission_docs_free (docs, n);
      fail_msg ("expected an error for: %s", yaml);
    }
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  msg = xstrdup (err->msg);
  ate_error_free (err);
  return msg;
}

static void
assert_error_contains (const char *yaml, const struct ate_admission_limits *lim, const char *want)
{
  cleanup_free char *msg = load_error (yaml, lim);
  if (strstr (msg, want) == NULL)
    fail_msg ("error \"%s\" lacks \"%s\"", msg, want);
}

/* Type and JSON text of the value of key "v" in "v: <text>". */
static void
assert_scalar (const char *text, json_type type, const char *json)
{
  cleanup_free char *doc = xasprintf ("v: %s\n", text);
  struct json_object *root = load_one (doc);
  struct json_object *v = admission_get (root, "v");
  const char *got = v ? json_object_to_json_string_ext (v, JSON_C_TO_STRING_PLAIN) : "null";

  if (json_object_get_type (v) != type || strcmp (got, json) != 0)
    fail_msg ("%s: got %s %s, want %s %s", text, json_type_to_name (json_object_get_type (v)), got,
              json_type_to_name (type), json);
  json_object_put (root);
}

/* ---- YAML reading ---------------------------------------------------------------- */

static void
test_yaml_scalars (void **state)
{
  (void) state;
  assert_scalar ("~", json_type_null, "null");
  assert_scalar ("", json_type_null, "null");
  assert_scalar ("Null", json_type_null, "null");
  assert_scalar ("yes", json_type_boolean, "true");
  assert_scalar ("On", json_type_boolean, "true");
  assert_scalar ("n", json_type_boolean, "false");
  assert_scalar ("FALSE", json_type_boolean, "false");
  assert_scalar ("'yes'", json_type_string, "\"yes\"");
  assert_scalar ("12", json_type_int, "12");
  assert_scalar ("-12", json_type_int, "-12");
  assert_scalar ("+7", json_type_int, "7");
  assert_scalar ("0x1F", json_type_int, "31");
  assert_scalar ("0o17", json_type_int, "15");
  assert_scalar ("017", json_type_int, "15");
  assert_scalar ("0b101", json_type_int, "5");
  assert_scalar ("1_000", json_type_int, "1000");
  assert_scalar ("-9223372036854775808", json_type_int, "-9223372036854775808");
  assert_scalar ("18446744073709551615", json_type_int, "18446744073709551615");
  assert_scalar ("08", json_type_double, "08");
  assert_scalar ("1.5", json_type_double, "1.5");
  assert_scalar ("1e3", json_type_double, "1e3");
  assert_scalar ("500m", json_type_string, "\"500m\"");
  assert_scalar ("1Gi", json_type_string, "\"1Gi\"");
  assert_scalar ("0x", json_type_string, "\"0x\"");
  assert_scalar ("\"12\"", json_type_string, "\"12\"");
  assert_scalar ("!!str 12", json_type_string, "\"12\"");
  assert_scalar ("!!int \"12\"", json_type_int, "12");
  assert_scalar ("2024-01-01", json_type_string, "\"2024-01-01\"");
  assert_scalar ("\"a\\0b\"", json_type_string, "\"a\\u0000b\"");
}

static void
test_yaml_refusals (void **state)
{
  (void) state;
  assert_error_contains ("a: &x 1\nb: *x\n", NULL, "anchors are not supported");
  assert_error_contains ("a: [*x]\n", NULL, "line 1");
  assert_error_contains ("a: 1\na: 2\n", NULL, "duplicate mapping key a");
  assert_error_contains ("<<: {a: 1}\n", NULL, "merge keys");
  assert_error_contains ("? [a]\n: 1\n", NULL, "mapping keys must be scalars");
  assert_error_contains ("a: !custom 1\n", NULL, "unsupported YAML tag");
  assert_error_contains ("a: !!int abc\n", NULL, "does not match its tag");
  assert_error_contains ("a: !!binary aGk=\n", NULL, "unsupported YAML tag");
  assert_error_contains ("a: .inf\n", NULL, "cannot be represented in JSON");
  assert_error_contains ("a: [1, 2\n", NULL, "line");
  assert_error_contains ("a: \"\\0\"\n\"k\\0\": 1\n", NULL, "must not contain NUL");
}

static void
test_yaml_limits (void **state)
{
  struct ate_admission_limits lim;
  cleanup_free char *deep = NULL;
  cleanup_free char *docs = NULL;
  size_t n = 0;
  (void) state;

  ate_admission_limits_default (&lim);
  lim.max_bytes = 10;
  assert_error_contains ("a: 123456789\n", &lim, "more than the limit");

  ate_admission_limits_default (&lim);
  lim.max_depth = 3;
  assert_error_contains ("a: {b: {c: {d: 1}}}\n", &lim, "nesting too deep");
  deep = xmalloc (200001);
  memset (deep, '[', 200000);
  deep[200000] = '\0';
  assert_error_contains (deep, NULL, "nesting too deep");

  ate_admission_limits_default (&lim);
  lim.max_nodes = 5;
  assert_error_contains ("[1, 2, 3, 4, 5, 6]\n", &lim, "too many YAML nodes");

  ate_admission_limits_default (&lim);
  lim.max_scalar_bytes = 4;
  assert_error_contains ("a: abcdef\n", &lim, "scalar too long");

  ate_admission_limits_default (&lim);
  lim.max_documents = 3;
  docs = xstrdup ("a: 1\n---\nb: 1\n---\nc: 1\n---\nd: 1\n");
  assert_error_contains (docs, &lim, "too many YAML documents");

  /* Empty and comment-only documents are dropped; the others keep their
   * document numbers and lines. */
  {
    struct admission_doc *d = NULL;
    cleanup_error struct ate_error *err = NULL;
    const char *text = "# c\n---\n---\na: 1\n---\n# only\n---\nb: 2\n";
    assert_int_equal (admission_yaml_load (text, strlen (text), NULL, &d, &n, &err), 0);
    assert_int_equal (n, 2);
    assert_int_equal (d[0].index, 2);
    assert_int_equal (d[0].line, 3);
    assert_int_equal (d[1].index, 4);
    admission_docs_free (d, n);
  }
}

static void
test_set_rejects_non_objects (void **state)
{
  struct ate_admission_set *set = ate_admission_set_new ();
  cleanup_error struct ate_error *err = NULL;
  const char *good = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n";
  const char *bad_list = "apiVersion: v1\nkind: List\nitems: [1]\n";
  const char *mixed = "apiVersion: ate.dev/v1alpha1\nkind: WorkerPool\nmetadata: {name: a}\n"
                      "spec: {replicas: 1, ateomImage: x}\n---\n- a\n";
  (void) state;

  assert_int_equal (ate_admission_set_add_yaml (set, "good", good, strlen (good), NULL, &err), 0);
  assert_int_equal (ate_admission_set_skipped (set), 1);
  assert_true (ate_admission_set_add_yaml (set, "bad", bad_list, strlen (bad_list), NULL, &err)
               < 0);
  assert_non_null (strstr (err->msg, "items[0] is not an object"));
  ate_error_release (&err);
  /* A bad buffer adds nothing, not even its good documents. */
  assert_true (ate_admission_set_add_yaml (set, "mixed", mixed, strlen (mixed), NULL, &err) < 0);
  assert_non_null (strstr (err->msg, "mixed: document 2"));
  assert_int_equal (ate_admission_set_count (set), 0);
  ate_error_release (&err);
  assert_true (ate_admission_set_add_file (set, "/nonexistent/x.yaml", NULL, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  ate_admission_set_free (set);
}

/* ---- YAML writing ----------------------------------------------------------------- */

static void
test_yaml_emit_roundtrip (void **state)
{
  const char *src = "{\"s\": [\"true\", \"1\", \"\", \"null\", \"0x10\", \"1.5\", \"yes\","
                    " \"plain\", \"a: b\", \"- x\", \"two\\nlines\\n\", \"$(POD_UID)\", \"#c\"],"
                    " \"n\": [1, -2, 1.5, true, null], \"e\": {}, \"l\": [],"
                    " \"k\": {\"true\": 1, \"ate.dev/x\": \"y\"}}";
  struct json_object *in = json_tokener_parse (src);
  struct json_object *back;
  cleanup_free char *yaml = NULL;
  cleanup_error struct ate_error *err = NULL;
  (void) state;

  assert_non_null (in);
  assert_int_equal (ate_admission_to_yaml (in, &yaml, &err), 0);
  assert_non_null (strstr (yaml, "- 'true'\n"));
  assert_non_null (strstr (yaml, "- plain\n"));
  assert_non_null (strstr (yaml, "e: {}\n"));
  back = load_one (yaml);
  if (!json_object_equal (in, back))
    fail_msg ("round trip changed the value:\n%s\n%s", yaml, json_object_to_json_string (back));
  json_object_put (in);
  json_object_put (back);
}

/* ---- names ----------------------------------------------------------------------- */

static void
test_names (void **state)
{
  const char *why = NULL;
  char long_label[80];
  (void) state;

  memset (long_label, 'a', sizeof (long_label));
  assert_true (admission_is_dns1123_label ("a-1", 3));
  assert_false (admission_is_dns1123_label ("-a", 2));
  assert_false (admission_is_dns1123_label (long_label, 64));
  assert_true (admission_is_dns1123_label (long_label, 63));
  /* Kubernetes does not bound the parts of a subdomain to 63. */
  assert_true (admission_is_dns1123_subdomain (long_label, 80));
  assert_true (admission_is_dns1123_subdomain ("a.b-c.d", 7));
  assert_false (admission_is_dns1123_subdomain ("a..b", 4));
  assert_false (admission_is_dns1123_subdomain ("A", 1));
  assert_false (admission_is_dns1123_subdomain ("a\0b", 3));
  assert_true (admission_is_label_key ("ate.dev/sandboxClass", 20, &why));
  assert_true (admission_is_label_key ("pool", 4, &why));
  assert_false (admission_is_label_key ("/x", 2, &why));
  assert_false (admission_is_label_key ("a/b/c", 5, &why));
  assert_false (admission_is_label_key ("Bad_/x", 6, &why));
  assert_false (admission_is_label_key ("bad key", 7, &why));
  assert_true (admission_is_label_value ("", 0, &why));
  assert_true (admission_is_label_value ("My_Value.1", 10, &why));
  assert_false (admission_is_label_value ("-x", 2, &why));
  assert_false (admission_is_label_value (long_label, 64, &why));
}

static void
test_quote_and_path (void **state)
{
  struct admission_path p;
  char big[300];
  cleanup_free char *q1 = admission_quote ("a\"b\\c\n\x01", 7);
  cleanup_free char *q2 = NULL;
  (void) state;

  assert_string_equal (q1, "\"a\\\"b\\\\c\\n\\x01\"");
  memset (big, 'z', sizeof (big));
  q2 = admission_quote (big, sizeof (big));
  assert_true (str_has_suffix (q2, "\"..."));
  assert_true (strlen (q2) < 200);

  admission_path_init (&p, "");
  admission_path_push_field (&p, "spec");
  admission_path_push_field (&p, "nodeSelector");
  {
    size_t saved = admission_path_push_key (&p, "ate.dev/sandboxClass");
    assert_string_equal (p.buf, "spec.nodeSelector[ate.dev/sandboxClass]");
    admission_path_pop (&p, saved);
  }
  admission_path_push_key (&p, "amd64");
  admission_path_push_index (&p, 3);
  assert_string_equal (p.buf, "spec.nodeSelector.amd64[3]");
  admission_path_fini (&p);
}

/* ---- runtime assets ---------------------------------------------------------------- */

static void
assert_assets_error (const char *cls, const char *const *names, size_t n, unsigned flags,
                     const char *want)
{
  struct ate_error *err = NULL;
  assert_true (ate_admission_check_runtime_assets (cls, names, n, flags, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  if (strstr (err->msg, want) == NULL)
    fail_msg ("\"%s\" lacks \"%s\"", err->msg, want);
  ate_error_free (err);
}

static void
test_runtime_assets (void **state)
{
  const char *full[] = { "kata-config", "kata-image", "kata-kernel", "cloud-hypervisor" };
  const char *two[] = { "kata-kernel", "kata-image" };
  const char *with_null[] = { NULL, "runsc" };
  struct ate_error *err = NULL;
  (void) state;

  assert_int_equal (ate_admission_check_runtime_assets ("microvm", full, 4, 0, &err), 0);
  assert_null (err);
  assert_assets_error ("microvm", two, 2, 0,
                       "lacks required microvm assets: cloud-hypervisor, "
                       "kata-config");
  assert_int_equal (
      ate_admission_check_runtime_assets ("microvm", two, 2, ATE_ADMISSION_SERVER_FALLBACKS, &err),
      0);
  assert_assets_error ("microvm", two, 1, ATE_ADMISSION_SERVER_FALLBACKS, ": kata-image");
  assert_assets_error ("microvm", full, 4, ATE_ADMISSION_REQUIRE_VIRTIOFSD, ": virtiofsd");
  assert_assets_error ("microvm", NULL, 0, 0,
                       ": cloud-hypervisor, kata-kernel, kata-image, kata-config");
  assert_assets_error ("kvm", full, 4, 0, "unknown sandbox class \"kvm\"");
  assert_int_equal (ate_admission_check_runtime_assets (NULL, with_null, 2, 0, &err), 0);
  assert_assets_error ("", full, 4, 0, "gvisor assets: runsc");

  assert_string_equal (ate_admission_required_assets ("gvisor", 0)[0], "runsc");
  assert_null (ate_admission_required_assets ("kvm", 0));
  assert_null (ate_admission_policy_message (NULL, 0));
  assert_non_null (strstr (
      ate_admission_policy_message ("microvm", ATE_ADMISSION_REQUIRE_VIRTIOFSD), "virtiofsd"));
}

/* ---- worker Deployment -------------------------------------------------------------- */

static const char pool_yaml[]
    = "apiVersion: ate.dev/v1alpha1\n"
      "kind: WorkerPool\n"
      "metadata: {name: p, namespace: ns, uid: 1234-abcd}\n"
      "spec:\n"
      "  replicas: 3\n"
      "  ateomImage: img:1\n"
      "  sandboxClass: %s\n"
      "  template:\n"
      "    nodeSelector: {zone: a, ate.dev/sandboxClass: other}\n"
      "    tolerations: [{key: t, operator: Exists, effect: NoSchedule}]\n"
      "    resources: {limits: {memory: 2Gi, cpu: 1}}\n";

static struct json_object *
render (const char *cls)
{
  cleanup_free char *text = xasprintf (pool_yaml, cls);
  struct ate_admission_set *set = ate_admission_set_new ();
  struct json_object *dep = NULL;
  cleanup_error struct ate_error *err = NULL;

  assert_int_equal (ate_admission_set_add_yaml (set, "pool", text, strlen (text), NULL, &err), 0);
  if (ate_admission_render_workerpool (set, NULL, &dep, &err) < 0)
    fail_msg ("render: %s", err->msg);
  ate_admission_set_free (set);
  return dep;
}

static struct json_object *
at_path (struct json_object *o, const char *path)
{
  cleanup_free char *copy = xstrdup (path);
  char *save = NULL;
  for (char *tok = strtok_r (copy, "/", &save); tok && o; tok = strtok_r (NULL, "/", &save))
    o = json_object_is_type (o, json_type_array)
            ? json_object_array_get_idx (o, (size_t) atoi (tok))
            : admission_get (o, tok);
  return o;
}

static bool
has_kvm_volume (struct json_object *dep)
{
  struct json_object *vols = at_path (dep, "spec/template/spec/volumes");
  for (size_t i = 0; i < json_object_array_length (vols); i++)
    {
      struct json_object *hp = admission_get (json_object_array_get_idx (vols, i), "hostPath");
      if (strcmp (admission_get_str (hp, "path"), "/dev/kvm") == 0
          && strcmp (admission_get_str (hp, "type"), "CharDevice") == 0)
        return true;
    }
  return false;
}

static bool
has_kvm_mount (struct json_object *dep)
{
  struct json_object *m = at_path (dep, "spec/template/spec/containers/0/volumeMounts");
  for (size_t i = 0; i < json_object_array_length (m); i++)
    if (strcmp (admission_get_str (json_object_array_get_idx (m, i), "mountPath"), "/dev/kvm") == 0)
      return true;
  return false;
}

static bool
has_class_toleration (struct json_object *dep)
{
  struct json_object *t = at_path (dep, "spec/template/spec/tolerations");
  for (size_t i = 0; t && i < json_object_array_length (t); i++)
    if (strcmp (admission_get_str (json_object_array_get_idx (t, i), "key"), "ate.dev/sandboxClass")
        == 0)
      return true;
  return false;
}

static void
test_pod_shape_by_class (void **state)
{
  struct json_object *g = render ("gvisor");
  struct json_object *m = render ("microvm");
  (void) state;

  /* gvisor: none of the four; the pool's own selector key stays. */
  assert_false (has_kvm_volume (g));
  assert_false (has_kvm_mount (g));
  assert_false (has_class_toleration (g));
  assert_string_equal (
      admission_get_str (at_path (g, "spec/template/spec/nodeSelector"), "ate.dev/sandboxClass"),
      "other");
  /* microvm: all four; ours overrides the same key, the pool's others stay,
   * the class toleration comes after the pool's. */
  assert_true (has_kvm_volume (m));
  assert_true (has_kvm_mount (m));
  assert_true (has_class_toleration (m));
  assert_string_equal (
      admission_get_str (at_path (m, "spec/template/spec/nodeSelector"), "ate.dev/sandboxClass"),
      "microvm");
  assert_string_equal (admission_get_str (at_path (m, "spec/template/spec/nodeSelector"), "zone"),
                       "a");
  assert_string_equal (admission_get_str (at_path (m, "spec/template/spec/tolerations/0"), "key"),
                       "t");
  assert_string_equal (admission_get_str (at_path (m, "spec/template/spec/tolerations/1"), "value"),
                       "microvm");

  /* Both classes: the rest of the shape. */
  assert_string_equal (admission_get_str (at_path (m, "metadata"), "name"), "p-deployment");
  assert_string_equal (admission_get_str (at_path (m, "metadata/ownerReferences/0"), "uid"),
                       "1234-abcd");
  assert_int_equal (json_object_get_int (at_path (m, "spec/replicas")), 3);
  assert_string_equal (
      json_object_get_string (at_path (m, "spec/template/spec/containers/0/args/0")),
      "--pod-uid=$(POD_UID)");
  assert_int_equal (json_object_array_length (at_path (m, "spec/template/spec/containers/0/args")),
                    1);
  assert_string_equal (
      json_object_get_string (
          at_path (m, "spec/template/spec/containers/0/env/0/valueFrom/fieldRef/fieldPath")),
      "metadata.uid");
  assert_true (json_object_get_boolean (
      at_path (m, "spec/template/spec/containers/0/securityContext/privileged")));
  /* Quantities are strings, like resource.Quantity. */
  assert_string_equal (
      json_object_get_string (at_path (m, "spec/template/spec/containers/0/resources/limits/cpu")),
      "1");
  assert_string_equal (
      admission_get_str (at_path (m, "spec/template/spec/volumes/0/hostPath"), "path"),
      "/var/lib/ateom-gvisor");
  json_object_put (g);
  json_object_put (m);
}

static void
test_render_errors (void **state)
{
  const char *two = "apiVersion: ate.dev/v1alpha1\nkind: WorkerPool\nmetadata: {name: a}\n"
                    "spec: {replicas: 1, ateomImage: x}\n---\n"
                    "apiVersion: ate.dev/v1alpha1\nkind: WorkerPool\nmetadata: {name: b}\n"
                    "spec: {replicas: -1, ateomImage: x}\n";
  struct ate_admission_set *set = ate_admission_set_new ();
  struct json_object *dep = NULL;
  struct ate_error *err = NULL;
  char **names;
  (void) state;

  assert_true (ate_admission_render_workerpool (set, NULL, &dep, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_NOT_FOUND);
  ate_error_release (&err);
  assert_int_equal (ate_admission_set_add_yaml (set, "two", two, strlen (two), NULL, &err), 0);
  assert_true (ate_admission_render_workerpool (set, NULL, &dep, &err) < 0);
  assert_non_null (strstr (err->msg, "2 WorkerPools"));
  ate_error_release (&err);
  assert_true (ate_admission_render_workerpool (set, "b", &dep, &err) < 0);
  assert_non_null (strstr (err->msg, "WorkerPool b is invalid"));
  assert_non_null (strstr (err->msg, "spec.replicas"));
  ate_error_release (&err);
  assert_int_equal (ate_admission_render_workerpool (set, "a", &dep, &err), 0);
  assert_string_equal (admission_get_str (admission_get (dep, "metadata"), "namespace"), "default");
  assert_non_null (at_path (dep, "metadata/ownerReferences/0"));
  assert_null (admission_get (at_path (dep, "metadata/ownerReferences/0"), "uid"));
  json_object_put (dep);
  names = ate_admission_set_workerpool_names (set);
  assert_string_equal (names[0], "a");
  assert_string_equal (names[1], "b");
  assert_null (names[2]);
  strv_free (names);
  ate_admission_set_free (set);
}

/* ---- report ---------------------------------------------------------------------------- */

static void
test_report_format_and_json (void **state)
{
  const char *text = "apiVersion: ate.dev/v1alpha1\nkind: SandboxConfig\n"
                     "metadata: {name: s}\nspec: {sandboxClass: microvm, assets: "
                     "{amd64: {kata-kernel: {url: 'gs://b/k', sha256: "
                     "a397be1abc2420d26bce6c70e6e2ff96c73aaaab929756c56f5e2089ea842b63}}}}\n"
                     "---\napiVersion: ate.dev/v1alpha1\nkind: WorkerPool\nmetadata: {}\n"
                     "spec: {replicas: 1, ateomImage: x}\n";
  struct ate_admission_set *set = ate_admission_set_new ();
  struct ate_admission_report *r = NULL;
  struct json_object *j;
  cleanup_free char *line = NULL;
  cleanup_error struct ate_error *err = NULL;
  (void) state;

  assert_int_equal (ate_admission_set_add_yaml (set, "f.yaml", text, strlen (text), NULL, &err), 0);
  assert_int_equal (ate_admission_validate (set, NULL, 0, &r, &err), 0);
  assert_int_equal (ate_admission_report_objects (r), 2);
  assert_int_equal (ate_admission_report_count (r), 2);
  line = ate_admission_violation_format (ate_admission_report_get (r, 0));
  assert_string_equal (line, "f.yaml: SandboxConfig/s: spec.assets.amd64: a microvm "
                             "SandboxConfig must define cloud-hypervisor, kata-kernel, "
                             "kata-image, and kata-config assets for every architecture under "
                             "spec.assets (missing: cloud-hypervisor, kata-image, kata-config)");
  /* An object without a name is named by its document number. */
  assert_string_equal (ate_admission_report_get (r, 1)->name, "#2");
  assert_string_equal (ate_admission_report_get (r, 1)->path, "metadata.name");
  assert_null (ate_admission_report_get (r, 2));
  j = ate_admission_report_to_json (r);
  assert_int_equal (json_object_array_length (admission_get (j, "violations")), 2);
  assert_string_equal (
      admission_get_str (json_object_array_get_idx (admission_get (j, "violations"), 0), "origin"),
      "policy");
  json_object_put (j);
  ate_admission_report_free (r);
  ate_admission_set_free (set);
}

/* Many broken values: the report stops at its limit and says so. */
static void
test_report_limit (void **state)
{
  size_t cap = 1u << 20, used;
  char *text = xmalloc (cap);
  struct ate_admission_set *set = ate_admission_set_new ();
  struct ate_admission_report *r = NULL;
  const struct ate_admission_violation *last;
  cleanup_error struct ate_error *err = NULL;
  (void) state;

  used = (size_t) snprintf (text, cap,
                            "apiVersion: ate.dev/v1alpha1\nkind: SandboxConfig\n"
                            "metadata: {name: many}\nspec:\n  assets:\n");
  for (int i = 0; i < 10050; i++)
    used += (size_t) snprintf (text + used, cap - used, "    a%d: {}\n", i);
  assert_int_equal (ate_admission_set_add_yaml (set, "many", text, used, NULL, &err), 0);
  assert_int_equal (ate_admission_validate (set, NULL, 0, &r, &err), 0);
  assert_int_equal (ate_admission_report_count (r), 10001);
  last = ate_admission_report_get (r, 10000);
  assert_non_null (strstr (last->message, "further violations are not reported"));
  ate_admission_report_free (r);
  ate_admission_set_free (set);
  free (text);
}

/* Templates x pools beyond the bound: one violation says the check was
 * not done (instead of minutes of work or a silent skip). */
static void
test_selector_pair_limit (void **state)
{
  size_t cap = 1u << 20, used = 0;
  char *text = xmalloc (cap);
  struct ate_admission_set *set = ate_admission_set_new ();
  struct ate_admission_report *r = NULL;
  cleanup_error struct ate_error *err = NULL;
  size_t hits = 0;
  (void) state;

  for (int i = 0; i < 1001; i++)
    used += (size_t) snprintf (text + used, cap - used,
                               "---\napiVersion: ate.dev/v1alpha1\nkind: WorkerPool\n"
                               "metadata: {name: p%d}\nspec: {replicas: 1, ateomImage: x}\n"
                               "---\napiVersion: ate.dev/v1alpha1\nkind: ActorTemplate\n"
                               "metadata: {name: t%d}\nspec: {pauseImage: p@x, "
                               "snapshotsConfig: {location: l}}\n",
                               i, i);
  assert_true (used < cap);
  assert_int_equal (ate_admission_set_add_yaml (set, "pairs", text, used, NULL, &err), 0);
  assert_int_equal (ate_admission_validate (set, NULL, 0, &r, &err), 0);
  for (size_t i = 0; i < ate_admission_report_count (r); i++)
    hits += strstr (ate_admission_report_get (r, i)->message, "not checked: 1001 ActorTemplates")
            != NULL;
  assert_int_equal (hits, 1);
  assert_int_equal (ate_admission_report_count (r), 1);
  ate_admission_report_free (r);
  ate_admission_set_free (set);
  free (text);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_yaml_scalars),
    cmocka_unit_test (test_yaml_refusals),
    cmocka_unit_test (test_yaml_limits),
    cmocka_unit_test (test_set_rejects_non_objects),
    cmocka_unit_test (test_yaml_emit_roundtrip),
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_quote_and_path),
    cmocka_unit_test (test_runtime_assets),
    cmocka_unit_test (test_pod_shape_by_class),
    cmocka_unit_test (test_render_errors),
    cmocka_unit_test (test_report_format_and_json),
    cmocka_unit_test (test_report_limit),
    cmocka_unit_test (test_selector_pair_limit),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
