/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sandbox-class admission rules (libateadmission).
 *
 * The same rules a cluster enforces for the ate.dev/v1alpha1 kinds
 * SandboxConfig, WorkerPool and ActorTemplate: the CRD schema constraints we
 * depend on, the ValidatingAdmissionPolicy "ateom-microvm-sandboxconfig-assets"
 * (deploy/kustomize/base/policy/), and cross-object checks the cluster only
 * reports at run time (class mismatches between a WorkerPool, its
 * SandboxConfig and the ActorTemplates that select it).  Plus the worker
 * Deployment the controller builds for a WorkerPool, and the check the server
 * runs on a RunWorkload's runtime_asset_paths.
 *
 * Usage:
 *   set = ate_admission_set_new ();
 *   ate_admission_set_add_file (set, "x.yaml", NULL, &err);
 *   ate_admission_validate (set, NULL, 0, &report, &err);
 *   for (i = 0; i < ate_admission_report_count (report); i++) ...
 */
#ifndef ATE_K8S_ADMISSION_H
#define ATE_K8S_ADMISSION_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

struct ate_error;

#define ATE_ADMISSION_API_VERSION "ate.dev/v1alpha1"
#define ATE_ADMISSION_CLASS_GVISOR "gvisor"
#define ATE_ADMISSION_CLASS_MICROVM "microvm"

/* Validation / asset-check flags. */
enum
{
  /* Require the later upstream micro-VM asset set (adds "virtiofsd"); the
   * default is the set of the upstream contract this runtime implements,
   * which our virtio-blk runtime needs (docs/admission.md, "The policy"). */
  ATE_ADMISSION_REQUIRE_VIRTIOFSD = 1u << 0,
  /* ate_admission_check_runtime_assets only: the server has its own
   * fallbacks for "cloud-hypervisor" and "kata-config" (flags/defaults), so
   * those two may be absent from runtime_asset_paths. */
  ATE_ADMISSION_SERVER_FALLBACKS = 1u << 1,
};

/* Bounds on YAML input (everything in it is peer-controlled). */
struct ate_admission_limits
{
  size_t max_bytes;        /* whole input */
  size_t max_depth;        /* nesting of mappings/sequences */
  size_t max_nodes;        /* scalars + mappings + sequences */
  size_t max_scalar_bytes; /* one scalar */
  size_t max_documents;    /* "---"-separated documents */
};

void ate_admission_limits_default (struct ate_admission_limits *l);

/* ---- Loading ------------------------------------------------------------ */

/* The objects of one or more YAML sources, validated together (cross-object
 * rules see every object of the set). */
struct ate_admission_set;

struct ate_admission_set *ate_admission_set_new (void);
void ate_admission_set_free (struct ate_admission_set *set);

/* Parse a (multi-document) YAML buffer.  `source` names it in verdicts.
 * limits NULL = defaults.  Anchors, aliases, merge keys, duplicate keys and
 * non-core tags are rejected; so is input over the limits.  On failure
 * nothing from this buffer is added. */
int ate_admission_set_add_yaml (struct ate_admission_set *set, const char *source, const char *buf,
                                size_t len, const struct ate_admission_limits *limits,
                                struct ate_error **err);

/* Read a file ("-" = stdin) and add it. */
int ate_admission_set_add_file (struct ate_admission_set *set, const char *path,
                                const struct ate_admission_limits *limits, struct ate_error **err);

/* Objects of the ate.dev group in the set (after kind: List expansion),
 * and objects of other groups, which are skipped by validation. */
size_t ate_admission_set_count (const struct ate_admission_set *set);
size_t ate_admission_set_skipped (const struct ate_admission_set *set);

/* ---- Validation ---------------------------------------------------------- */

enum ate_admission_origin
{
  ATE_ADMISSION_ORIGIN_SCHEMA,     /* CRD schema / apiserver object checks */
  ATE_ADMISSION_ORIGIN_POLICY,     /* our ValidatingAdmissionPolicy */
  ATE_ADMISSION_ORIGIN_CROSS,      /* between objects of the set */
  ATE_ADMISSION_ORIGIN_CONTROLLER, /* what the controller/scheduler would fail on */
};

struct ate_admission_violation
{
  const char *source;    /* file name given when loading */
  const char *kind;      /* "SandboxConfig", ...; "<unknown>" if absent */
  const char *name;      /* metadata.name, or "#<n>" (document number) */
  const char *namespace; /* NULL when not set */
  const char *path;      /* "spec.assets.amd64", "spec.containers[0].name" */
  const char *message;   /* like the apiserver's / the policy's message */
  const char *detail;    /* extra context (e.g. missing asset names) or NULL */
  enum ate_admission_origin origin;
};

struct ate_admission_report;

/* Validate every ate.dev object of `set`.  `old` (may be NULL) holds the
 * stored versions for an UPDATE: objects with the same kind, namespace and
 * name are compared (ActorTemplate spec immutability).  Returns 0 with a
 * report (possibly with violations); < 0 only on internal errors. */
int ate_admission_validate (const struct ate_admission_set *set,
                            const struct ate_admission_set *old, unsigned flags,
                            struct ate_admission_report **out, struct ate_error **err);

size_t ate_admission_report_count (const struct ate_admission_report *r);
const struct ate_admission_violation *
ate_admission_report_get (const struct ate_admission_report *r, size_t i);
/* Number of objects validated. */
size_t ate_admission_report_objects (const struct ate_admission_report *r);
void ate_admission_report_free (struct ate_admission_report *r);

/* "SOURCE: KIND/NAME: path: message[ (detail)]" (new string). */
char *ate_admission_violation_format (const struct ate_admission_violation *v);

/* The report as a JSON object {"objects":N,"violations":[{...}]}. */
struct json_object *ate_admission_report_to_json (const struct ate_admission_report *r);

const char *ate_admission_origin_name (enum ate_admission_origin o);

/* ---- Policy data --------------------------------------------------------- */

/* The asset names a SandboxConfig of `sandbox_class` must define for every
 * architecture (NULL-terminated, static), or NULL for an unknown class. */
const char *const *ate_admission_required_assets (const char *sandbox_class, unsigned flags);

/* The denial message of the policy rule for `sandbox_class` (static) or NULL. */
const char *ate_admission_policy_message (const char *sandbox_class, unsigned flags);

/* Check the asset names of a RunWorkload's runtime_asset_paths against the
 * class's required set.  sandbox_class NULL or "" means "gvisor" (the
 * platform default).  Fails with INVALID_ARGUMENT naming every missing
 * asset, or an unknown class.  With ATE_ADMISSION_SERVER_FALLBACKS,
 * "cloud-hypervisor" and "kata-config" are not required. */
int ate_admission_check_runtime_assets (const char *sandbox_class, const char *const *names,
                                        size_t n, unsigned flags, struct ate_error **err);

/* ---- Worker pod shape ---------------------------------------------------- */

/* Build the apps/v1 Deployment the controller applies for WorkerPool `name`
 * of the set (name NULL: the set must hold exactly one WorkerPool).  The
 * WorkerPool must pass validation; otherwise fails with INVALID_ARGUMENT and
 * the first violation.  Returns a new JSON object. */
int ate_admission_render_workerpool (const struct ate_admission_set *set, const char *name,
                                     struct json_object **out, struct ate_error **err);

/* Names of the WorkerPools in the set (NULL-terminated, new strv). */
char **ate_admission_set_workerpool_names (const struct ate_admission_set *set);

/* Serialise a JSON value as a YAML document (block style, strings quoted
 * where a plain scalar would read back as another type).  New string. */
int ate_admission_to_yaml (struct json_object *value, char **out, struct ate_error **err);

#endif
