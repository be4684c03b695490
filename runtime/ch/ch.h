/* SPDX-License-Identifier: Apache-2.0 */
/* Everything ateom does with cloud-hypervisor (docs/cloud-hypervisor.md). */
#ifndef ATE_CH_H
#define ATE_CH_H

#include "ch/api.h"
#include "ch/http.h"
#include "ch/merge.h"
#include "ch/restore_config.h"
#include "ch/snapshot_config.h"
#include "ch/vmm.h"

#endif
