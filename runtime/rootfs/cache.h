/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The image cache: the first build of a tree is kept as
 * "<dir>/<key>.ext4" (read-only) with its build identity in
 * "<dir>/<key>.fingerprint", key = rootfs_fingerprint_cache_key().  Later
 * builds of the same tree clone it (reflink where the file system shares
 * extents, sparse copy otherwise) instead of running mkfs.
 *
 * Bounded by allocated bytes with least-recently-used eviction; the last
 * use is the mtime of the entry's fingerprint file, so the order survives
 * restarts.  A reader holds flock(LOCK_SH) on the image while it clones;
 * eviction takes LOCK_EX without waiting and skips entries it cannot lock,
 * so an image in use is never removed.  Inserts and evictions are
 * serialised by flock on "<dir>/.lock" (also across processes, e.g. the
 * server and the ateom-rootfs CLI).
 */
#ifndef ATE_ROOTFS_CACHE_H
#define ATE_ROOTFS_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "fingerprint.h"

struct ate_error;
struct rootfs_cache;

int rootfs_cache_open (const char *dir, uint64_t max_bytes, struct rootfs_cache **out,
                       struct ate_error **err);
void rootfs_cache_free (struct rootfs_cache *c);

const char *rootfs_cache_dir (const struct rootfs_cache *c);

/* "<dir>/<key>.ext4" of the build fp describes. */
char *rootfs_cache_entry_path (const struct rootfs_cache *c, const struct rootfs_fingerprint *fp);

bool rootfs_cache_contains (struct rootfs_cache *c, const struct rootfs_fingerprint *fp);

/* The same for a cache directory that is not open (inspect). */
char *rootfs_cache_entry_path_in (const char *dir, const struct rootfs_fingerprint *fp);
bool rootfs_cache_has_entry_in (const char *dir, const struct rootfs_fingerprint *fp);

/* Clone the entry of fp into dst_fd (empty, writable).  Returns 1 on a hit,
 * 0 on a miss (no entry, or an entry that does not check out). */
int rootfs_cache_clone_to (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                           int dst_fd, const char **method, struct ate_error **err);

/* Speculation while the content is still being hashed: clone the most
 * recently used entry whose build identity equals fp's in everything but
 * the content digest (not known yet) into dst_fd and describe it in
 * *found.  The caller keeps the clone only if the content digest then
 * matches (and calls rootfs_cache_touch).  1 when cloned, 0 when there is
 * no candidate. */
int rootfs_cache_clone_candidate (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                                  int dst_fd, struct rootfs_fingerprint *found,
                                  const char **method, struct ate_error **err);

/* Mark the entry of fp as just used (LRU order). */
void rootfs_cache_touch (struct rootfs_cache *c, const struct rootfs_fingerprint *fp);

/* Keep the finished image in src_fd as the entry of fp, evicting least
 * recently used entries not in use.  Returns 1 when inserted (or already
 * present), 0 when it does not fit.  = stage + commit. */
int rootfs_cache_insert (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                         int src_fd, struct ate_error **err);

/* The same in two steps, so that only the copy is on the caller's path:
 * stage copies src_fd into a locked temporary of the entry (*out NULL when
 * the image is larger than the whole cache or already cached); commit,
 * after the caller has its disk, makes room, fsyncs and installs it (1),
 * or drops it when it does not fit (0).  Commit and discard free it. */
struct rootfs_cache_staged;
int rootfs_cache_stage (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                        int src_fd, struct rootfs_cache_staged **out, struct ate_error **err);
int rootfs_cache_commit (struct rootfs_cache *c, struct rootfs_cache_staged *s,
                         struct ate_error **err);
void rootfs_cache_discard (struct rootfs_cache_staged *s);

/* ---- base images (rootfs_base_get): entries used in place ----
 *
 * A pin is an fd of the entry holding flock(LOCK_SH): eviction skips it, in
 * this and every other process, for as long as any dup of the fd is open.
 * Pinned entries stay even when they exceed the bound; others make way. */

/* Where a base is built before its content digest is known: the entry
 * path of fp's identity without content (a name cleanup recognises). */
char *rootfs_cache_spec_temp_base (const struct rootfs_cache *c,
                                   const struct rootfs_fingerprint *fp);

/* The most recently used entry equal to fp in everything but content. */
bool rootfs_cache_find_candidate (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                                  struct rootfs_fingerprint *found);

/* Pin the entry of fp; returns the fd, or -1 (ENOENT: not cached). */
int rootfs_cache_pin (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                      struct ate_error **err);

/* The same by key (64 hex digits); *fp gets the entry's identity. */
int rootfs_cache_pin_key (struct rootfs_cache *c, const char *key, struct rootfs_fingerprint *fp,
                          struct ate_error **err);

/* Publish the finished image in (fd, tmp), a rootfs_temp_create temporary
 * in the cache directory, as the entry of fp, pinned, and trim the others
 * to the bound; returns a pin fd.  When the entry exists already the
 * temporary is removed and the existing entry pinned.  Not durable until
 * rootfs_cache_seal (until then lookups ignore it). */
int rootfs_cache_install_pinned (struct rootfs_cache *c, const struct rootfs_fingerprint *fp,
                                 int fd, const char *tmp, struct ate_error **err);

/* fsync the entry (fd: a pin) and write its fingerprint. */
int rootfs_cache_seal (struct rootfs_cache *c, const struct rootfs_fingerprint *fp, int fd,
                       struct ate_error **err);

/* Evict unpinned entries down to the bound (after a pin was released). */
void rootfs_cache_trim (struct rootfs_cache *c);

/* Allocated bytes of all entries. */
uint64_t rootfs_cache_usage (struct rootfs_cache *c);

#endif
