/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fingerprint side file "<disk>.fingerprint": what a disk was built
 * from, so that an existing disk is reused only when it is a fresh build of
 * the current tree, and the key of the image cache.  Versioned text, one
 * "key value" per line in a fixed order (docs/rootfs.md):
 *
 *   ateom-rootfs-fingerprint 1
 *   tree-digest sha256:<hex>
 *   content-digest sha256:<hex>|none
 *   entries <n>
 *   content-bytes <n>
 *   inodes <n>
 *   size-mib <n>
 *   mkfs <first line of mkfs.ext4 -V>
 *   options sha256:<hex>      (every option that affects the bytes)
 *   uuid <uuid>
 *   hash-seed <uuid>
 *   fake-time <seconds>
 *   disk-ino <n>              (the disk file right after the build; a
 *   disk-size <n>              write by a VM changes its mtime, so a used
 *   disk-mtime-ns <n>          disk is never mistaken for a fresh one;
 *   boot-id <uuid>             disks are not fsync'ed, so one from an
 *                              earlier boot is never trusted either)
 *
 * The lines up to fake-time are the build identity; its SHA-256 is the
 * image cache key.  The parser is strict: anything unexpected (a truncated
 * file, an unknown version, a value out of range) is an error and the disk
 * is rebuilt.
 */
#ifndef ATE_ROOTFS_FINGERPRINT_H
#define ATE_ROOTFS_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scan.h"

struct ate_error;

#define ROOTFS_FP_VERSION 1
#define ROOTFS_FP_MAX_BYTES 4096
#define ROOTFS_FP_MKFS_MAX 128
#define ROOTFS_UUID_LEN 36
#define ROOTFS_CACHE_KEY_LEN (2 * ROOTFS_DIGEST_LEN)

struct rootfs_fingerprint
{
  uint8_t tree_digest[ROOTFS_DIGEST_LEN];
  bool has_content_digest;
  uint8_t content_digest[ROOTFS_DIGEST_LEN];
  uint64_t entries;
  uint64_t content_bytes;
  uint64_t inodes;
  uint64_t size_mib;
  char mkfs_version[ROOTFS_FP_MKFS_MAX];
  uint8_t options_digest[ROOTFS_DIGEST_LEN];
  char uuid[ROOTFS_UUID_LEN + 1];
  char hash_seed[ROOTFS_UUID_LEN + 1];
  int64_t fake_time;
  bool has_disk;
  uint64_t disk_ino;
  uint64_t disk_size;
  int64_t disk_mtime_ns;
  char boot_id[ROOTFS_UUID_LEN + 1];
};

/* Text of the fingerprint; the disk lines only when with_disk and
 * fp->has_disk. */
char *rootfs_fingerprint_format (const struct rootfs_fingerprint *fp, bool with_disk);

int rootfs_fingerprint_parse (const char *buf, size_t len, struct rootfs_fingerprint *fp,
                              struct ate_error **err);

/* Same build identity (everything but the disk lines). */
bool rootfs_fingerprint_same_build (const struct rootfs_fingerprint *a,
                                    const struct rootfs_fingerprint *b);

/* The same in everything but the content digest. */
bool rootfs_fingerprint_same_build_except_content (const struct rootfs_fingerprint *a,
                                                   const struct rootfs_fingerprint *b);

/* Hex SHA-256 of the identity text (buf: ROOTFS_CACHE_KEY_LEN + 1). */
void rootfs_fingerprint_cache_key (const struct rootfs_fingerprint *fp, char *buf);

/* Does fp (with disk lines) describe the file st, unwritten since the
 * build, in this boot? */
struct stat;
bool rootfs_fingerprint_describes (const struct rootfs_fingerprint *fp, const struct stat *st,
                                   const char *boot_id);

/* /proc/sys/kernel/random/boot_id into buf (ROOTFS_UUID_LEN + 1 bytes);
 * "unknown" when it cannot be read (then no disk is ever reused). */
void rootfs_boot_id (char *buf);

/* "<disk>.fingerprint" */
char *rootfs_fingerprint_path (const char *disk_path);

/* Read and parse; the error's status is ENOENT when there is no file. */
int rootfs_fingerprint_read (const char *path, struct rootfs_fingerprint *fp,
                             struct ate_error **err);

/* Atomic write (temporary file, fsync, rename), mode 0600. */
int rootfs_fingerprint_write (const char *path, const struct rootfs_fingerprint *fp,
                              bool with_disk, struct ate_error **err);

/* A name-based UUID (RFC 9562 version 8) derived from a digest and a label,
 * lower-case, into buf (ROOTFS_UUID_LEN + 1 bytes). */
void rootfs_derive_uuid (const uint8_t *digest, const char *label, char *buf);

#endif
