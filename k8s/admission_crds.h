/* SPDX-License-Identifier: Apache-2.0 */
/* The schemas and defaults of the ate.dev CRDs (admission_crds.c). */
#ifndef ATE_K8S_ADMISSION_CRDS_H
#define ATE_K8S_ADMISSION_CRDS_H

#include <json-c/json.h>

#include "k8s/admission_object.h"
#include "k8s/admission_schema.h"

const struct admission_schema *admission_crd_schema (enum admission_kind kind);

/* Apply the CRD defaults the apiserver applies before validation. */
void admission_crd_apply_defaults (enum admission_kind kind, struct json_object *root);

#endif
