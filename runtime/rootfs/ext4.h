/* SPDX-License-Identifier: Apache-2.0 */
/* The few ext4 superblock fields the builder checks and inspect prints. */
#ifndef ATE_ROOTFS_EXT4_H
#define ATE_ROOTFS_EXT4_H

#include <stdbool.h>
#include <stdint.h>

struct ate_error;

struct rootfs_ext4_sb
{
  uint64_t inodes_count;
  uint64_t free_inodes;
  uint64_t blocks_count;
  uint64_t block_size;
  uint64_t first_ino;
  int64_t mkfs_time;
  bool has_journal;
  char uuid[37];
  char hash_seed[37];
};

/* Read the primary superblock (offset 1024) of an image; EINVAL when the
 * file is not ext2/3/4. */
int rootfs_ext4_read_sb (int fd, struct rootfs_ext4_sb *sb, struct ate_error **err);

#endif
