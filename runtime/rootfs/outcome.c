/* SPDX-License-Identifier: Apache-2.0 */
/* Names of what a disk operation reports, for logs and the CLI: a leaf, so
 * that the job body (build.c) and the job table (manager.c) do not call
 * each other. */
#include "rootfs.h"

const char *
rootfs_origin_name (enum rootfs_origin o)
{
  switch (o)
    {
    case ROOTFS_ORIGIN_REUSED: return "reused";
    case ROOTFS_ORIGIN_BUILT: return "built";
    case ROOTFS_ORIGIN_CACHE: return "cache";
    case ROOTFS_ORIGIN_TEMPLATE: return "template";
    }
  return "unknown";
}
