/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One walk of a bundle rootfs yields everything a build needs to know about
 * it: the geometry counts (docs/rootfs.md, "Geometry"), the number of inodes
 * mkfs.ext4 -d will
 * allocate, and two SHA-256 digests:
 *
 *   tree digest     names, types, modes, sizes, device numbers, symlink
 *                   targets, xattrs and the hard-link structure: the
 *                   metadata of the image that survives an unpack.  Never
 *                   owners or times: atelet's unpack preserves neither, and
 *                   the build sets them to 0:0 and a fixed time in every
 *                   inode.  Cheap (no file content).  The image UUID and
 *                   hash seed are derived from it.
 *   content digest  the tree digest plus the bytes of every regular file in a
 *                   canonical form where holes and zero blocks look the same,
 *                   so it does not depend on the source file system.  Keys
 *                   the shared image cache (optional, see rootfs_config).
 *
 * The walk is depth-first in byte order of names, the order in which
 * mke2fs 1.47 populates directories, so the first name of a hard-linked
 * inode is the one mkfs sees first.  Symlinks are never followed.
 */
#ifndef ATE_ROOTFS_SCAN_H
#define ATE_ROOTFS_SCAN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "util/time.h"

struct ate_error;

#define ROOTFS_DIGEST_LEN 32
/* Directory nesting the walk accepts (one open fd per level). */
#define ROOTFS_SCAN_MAX_DEPTH 512

/* Content is hashed in chunks of this size, in parallel; a file's digest
 * is the SHA-256 of its chunks' digests. */
#define ROOTFS_CONTENT_CHUNK (64ULL << 20)
#define ROOTFS_CONTENT_MAX_THREADS 8

struct rootfs_scan_opts
{
  bool hash_content;         /* rootfs_scan_tree also hashes content */
  unsigned threads;          /* for content hashing; 0: number of CPUs, at most 4 */
  const atomic_bool *cancel; /* NULL: never cancelled */
  ate_deadline_t deadline;
  const char *name;          /* the tree in messages; NULL: its path (a build
                              * reading a staged copy names the bundle) */
};

/* A regular file whose bytes count (the first name of each inode). */
struct rootfs_scan_file
{
  char *path;     /* relative to the root */
  uint64_t index; /* entry index in walk order */
  uint64_t size;
  dev_t dev;
  ino_t ino;
  /* Checked again after the build.  Not the ctime: removing the bundle's
   * name of an inode the build still holds (staging.h) moves it. */
  mode_t mode;
  struct timespec mtime;
};

struct rootfs_scan
{
  uint64_t entries;       /* every entry including the root directory */
  uint64_t content_bytes; /* apparent sizes of regular files, per name */
  uint64_t inodes_used;   /* inodes mkfs allocates for the tree, root excluded */
  bool foreign_owners;     /* an entry not owned by 0:0 (not in the digests:
                           * only whether the build must reset owners) */
  uint64_t max_file_size; /* largest regular file ... */
  char *max_file_path;    /* ... and its path relative to the root */
  uint8_t tree_digest[ROOTFS_DIGEST_LEN];
  bool has_content_digest;
  uint8_t content_digest[ROOTFS_DIGEST_LEN];
  /* for rootfs_scan_hash_content */
  char *root;
  char *name; /* for messages */
  dev_t root_dev;
  ino_t root_ino;
  struct rootfs_scan_file *files;
  size_t n_files;
};

void rootfs_scan_opts_init (struct rootfs_scan_opts *o);

/* Walk src_dir (which must be a directory).  Any error of the walk fails
 * (docs/rootfs.md, "How a disk is built").  ECANCELED when *cancel became
 * true, ETIMEDOUT at the
 * deadline. */
int rootfs_scan_tree (const char *src_dir, const struct rootfs_scan_opts *o,
                      struct rootfs_scan *out, struct ate_error **err);

/* Compute s->content_digest from the files the walk listed (content.c).
 * Files are reopened beneath the root without following symlinks and must
 * still be the inodes the walk saw. */
int rootfs_scan_hash_content (struct rootfs_scan *s, const struct rootfs_scan_opts *o,
                              struct ate_error **err);

/* Check that no listed file changed since the walk (inode, size, mode, mtime),
 * e.g. after mkfs read the tree: EAGAIN naming the first that did. */
int rootfs_scan_verify_unchanged (const struct rootfs_scan *s, struct ate_error **err);

/* The tree was copied to new_root with the same inodes for every
 * non-directory (staging.h): read the files there from now on. */
int rootfs_scan_rebase (struct rootfs_scan *s, const char *new_root, struct ate_error **err);

void rootfs_scan_clear (struct rootfs_scan *s);

/* Lower-case hex of a digest into buf (2 * ROOTFS_DIGEST_LEN + 1 bytes). */
void rootfs_digest_hex (const uint8_t *digest, char *buf);

#endif
