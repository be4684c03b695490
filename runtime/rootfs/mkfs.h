/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running mkfs.ext4 -d and the debugfs pass that makes its output
 * deterministic (docs/rootfs.md, "How a disk is built" and "Determinism").  Child processes only, argv
 * arrays, a clean environment, cancellation and a deadline while waiting,
 * the tool's output in the error.
 */
#ifndef ATE_ROOTFS_MKFS_H
#define ATE_ROOTFS_MKFS_H

#include <stdint.h>

#include "rootfs.h"
#include "scan.h"
#include "util/time.h"

struct ate_error;

/* E2FSPROGS_FAKE_TIME and the time every inode's atime, mtime and ctime (and the root
 * inode's times) are set to: 2024-01-01T00:00:00Z.  Not 0, which e2fsprogs
 * reads as "unset". */
#define ROOTFS_FAKE_TIME 1704067200LL

/* Labels of the UUID and hash seed derivation (rootfs_derive_uuid). */
#define ROOTFS_UUID_LABEL "ateom-rootfs uuid v1"
#define ROOTFS_HASH_SEED_LABEL "ateom-rootfs hash_seed v1"

struct rootfs_tool_env
{
  int cancel_fd;           /* readable = stop now (ECANCELED); -1: none */
  ate_deadline_t deadline; /* ETIMEDOUT */
};

/* First line of `<mkfs> -V` (e.g. "mke2fs 1.47.0 (5-Feb-2023)"). */
int rootfs_mkfs_version (const char *mkfs_path, const struct rootfs_tool_env *env,
                         char **out, struct ate_error **err);

/* SHA-256 of everything besides the tree and the mkfs version that decides
 * the bytes of an image: the mkfs argv template, the pinned mke2fs.conf,
 * the fake time and the normalisation recipe. */
void rootfs_build_options_digest (uint8_t *out);

struct rootfs_mkfs_params
{
  const char *mkfs_path;
  const char *src_dir;
  const char *src_name;   /* src_dir in messages (the bundle it was staged from) */
  const char *image_path; /* an existing, empty file */
  int image_fd;           /* the same file, for progress reports */
  const struct rootfs_geometry *geometry;
  const char *uuid;
  const char *hash_seed;
};

/* Size the image (sparse) and run mkfs.ext4 -d into it. */
int rootfs_mkfs_build (const struct rootfs_mkfs_params *p, const struct rootfs_tool_env *env,
                       struct ate_error **err);

struct rootfs_normalise_params
{
  const char *debugfs_path;
  const char *image_path;
  int image_fd;
  const char *uuid;        /* checked against the superblock */
  uint64_t inodes_used;    /* inodes of the tree (root excluded) */
  bool reset_owners;       /* some inode is not 0:0 (else the owner commands,
                            * 2 of 5 per inode, would change nothing) */
};

/* Root inode 0:0 0755 with fixed times; every other inode's atime, mtime
 * and ctime set to ROOTFS_FAKE_TIME and its owner to 0:0 (mkfs copies them
 * from the source, where they are the unpack's). */
int rootfs_normalise (const struct rootfs_normalise_params *p,
                      const struct rootfs_tool_env *env, struct ate_error **err);

#endif
