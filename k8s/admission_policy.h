/* SPDX-License-Identifier: Apache-2.0 */
/* The ValidatingAdmissionPolicy rules (admission_policy.c). */
#ifndef ATE_K8S_ADMISSION_POLICY_H
#define ATE_K8S_ADMISSION_POLICY_H

#include "k8s/admission.h"
#include "k8s/admission_object.h"

void admission_policy_check (struct ate_admission_report *r, const struct admission_object *o,
                             unsigned flags);

#endif
