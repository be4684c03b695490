/* SPDX-License-Identifier: Apache-2.0 */
/* Checks between objects and controller-level checks (admission_cross.c). */
#ifndef ATE_K8S_ADMISSION_CROSS_H
#define ATE_K8S_ADMISSION_CROSS_H

#include "k8s/admission.h"
#include "k8s/admission_object.h"

void admission_cross_check (struct ate_admission_report *r, const struct ate_admission_set *set,
                            unsigned flags);
void admission_controller_check (struct ate_admission_report *r, const struct admission_object *o);

#endif
