/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "ext4.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/util.h"

/* Offsets in struct ext4_super_block (Linux fs/ext4/ext4.h). */
#define SB_OFFSET 1024
#define SB_SIZE 1024
#define SB_INODES_COUNT 0x00
#define SB_BLOCKS_COUNT_LO 0x04
#define SB_FREE_INODES 0x10
#define SB_LOG_BLOCK_SIZE 0x18
#define SB_MAGIC 0x38
#define SB_FIRST_INO 0x54
#define SB_FEATURE_COMPAT 0x5C
#define SB_FEATURE_INCOMPAT 0x60
#define SB_UUID 0x68
#define SB_HASH_SEED 0xEC
#define SB_MKFS_TIME 0x108
#define SB_BLOCKS_COUNT_HI 0x150
#define EXT4_MAGIC 0xEF53
#define COMPAT_HAS_JOURNAL 0x4
#define INCOMPAT_64BIT 0x80

static uint32_t
le32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
         | (uint32_t) p[3] << 24;
}

static void
format_uuid (const uint8_t *u, char *buf)
{
  snprintf (buf, 37,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
            u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
            u[14], u[15]);
}

int
rootfs_ext4_read_sb (int fd, struct rootfs_ext4_sb *sb, struct ate_error **err)
{
  uint8_t b[SB_SIZE];
  ssize_t n = TEMP_FAILURE_RETRY (pread (fd, b, sizeof (b), SB_OFFSET));
  uint32_t log_bs, incompat;
  uint8_t seed[16];

  memset (sb, 0, sizeof (*sb));
  if (n < 0)
    return ate_error_make (err, errno, "read superblock");
  if (n != SB_SIZE || (b[SB_MAGIC] | b[SB_MAGIC + 1] << 8) != EXT4_MAGIC)
    return ate_error_make (err, EINVAL, "not an ext4 image (no superblock magic)");
  log_bs = le32 (b + SB_LOG_BLOCK_SIZE);
  if (log_bs > 6)
    return ate_error_make (err, EINVAL, "superblock: bad block size");
  incompat = le32 (b + SB_FEATURE_INCOMPAT);
  sb->block_size = 1024ULL << log_bs;
  sb->inodes_count = le32 (b + SB_INODES_COUNT);
  sb->free_inodes = le32 (b + SB_FREE_INODES);
  sb->blocks_count = le32 (b + SB_BLOCKS_COUNT_LO);
  if (incompat & INCOMPAT_64BIT)
    sb->blocks_count |= (uint64_t) le32 (b + SB_BLOCKS_COUNT_HI) << 32;
  sb->first_ino = le32 (b + SB_FIRST_INO);
  sb->mkfs_time = le32 (b + SB_MKFS_TIME);
  sb->has_journal = (le32 (b + SB_FEATURE_COMPAT) & COMPAT_HAS_JOURNAL) != 0;
  format_uuid (b + SB_UUID, sb->uuid);
  /* s_hash_seed is four little-endian u32 words; e2fsprogs prints it as
   * the UUID given to -E hash_seed=, i.e. the raw bytes in order. */
  memcpy (seed, b + SB_HASH_SEED, sizeof (seed));
  format_uuid (seed, sb->hash_seed);
  if (sb->free_inodes > sb->inodes_count)
    return ate_error_make (err, EINVAL, "superblock: more free inodes than inodes");
  return 0;
}
