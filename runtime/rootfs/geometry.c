/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <string.h>

#include "rootfs.h"
#include "scan.h"
#include "util/error.h"

/* docs/rootfs.md, "Geometry": one inode per entry plus 25% and a fixed reserve for files the
 * actor creates; content + eager inode table (256-byte inodes) + ~6% for
 * bitmaps, directories and extents + 512 MiB of scratch space.  Unused
 * space stays sparse.  Only apparent sizes count, so the cold build and a
 * rebuild on another node agree. */
#define ROOTFS_MIB (1024ULL * 1024ULL)
#define ROOTFS_INODE_RESERVE 8192ULL
#define ROOTFS_INODE_BYTES 256ULL
#define ROOTFS_SCRATCH_BYTES (512ULL * ROOTFS_MIB)

void
rootfs_geometry_from_counts (uint64_t entries, uint64_t content_bytes,
                             struct rootfs_geometry *g)
{
  uint64_t bytes;

  memset (g, 0, sizeof (*g));
  g->entries = entries;
  g->content_bytes = content_bytes;
  g->inodes = entries + entries / 4 + ROOTFS_INODE_RESERVE;
  bytes = content_bytes + g->inodes * ROOTFS_INODE_BYTES + content_bytes / 16
          + ROOTFS_SCRATCH_BYTES;
  g->size_mib = (bytes + ROOTFS_MIB - 1) / ROOTFS_MIB;
}

int
rootfs_geometry_compute (const char *src_dir, struct rootfs_geometry *g,
                         struct ate_error **err)
{
  struct rootfs_scan_opts o;
  struct rootfs_scan s;

  rootfs_scan_opts_init (&o);
  o.hash_content = false;
  if (rootfs_scan_tree (src_dir, &o, &s, err) < 0)
    return -1;
  rootfs_geometry_from_counts (s.entries, s.content_bytes, g);
  rootfs_scan_clear (&s);
  return 0;
}
