/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A private copy of a bundle's rootfs that a build reads instead of the
 * bundle (docs/rootfs.md, "Builds and atelet's unpacks").
 *
 * atelet removes rootfs/ and unpacks it again before every Run and Restore,
 * also before the retry of a Run whose build outlived its deadline: a build
 * that read the bundle would lose its source half-way.  So a job first
 * copies the tree's structure into "<near>.XXXXXX.staging/": directories are
 * created anew (mode and xattrs), every other entry is a hard link to the
 * bundle's inode.  That costs one link per file, whatever the file sizes,
 * and atelet's removal then only drops its own names: the inodes stay
 * readable under ours until the job removes the copy.  (atelet never writes
 * into an existing inode: its untar creates every file.)
 *
 * Hard links need the same file system: atelet's bundles and ateom's
 * directories share the base path in a worker pod.  Where they do not
 * (EXDEV), or links are refused (EPERM: protected_hardlinks for a
 * non-root CLI user), the build reads the bundle directly and fails safely
 * if it changes (rootfs_scan_verify_unchanged).
 *
 * The copy is held with flock(LOCK_EX) on its directory while it is used;
 * leftovers of a crash are removed by the next job next to the same file.
 */
#ifndef ATE_ROOTFS_STAGING_H
#define ATE_ROOTFS_STAGING_H

#include <stdatomic.h>

struct ate_error;

#define ROOTFS_STAGING_SUFFIX ".staging"

struct rootfs_staging
{
  char *dir; /* the copy; NULL when the build reads the source itself */
  int lock_fd;
};

/* Copy src's structure next to near_path.  Returns 1 with st->dir set, 0
 * when hard links are not possible here (st->dir NULL, nothing left
 * behind), -1 on any other error (also when src changes under the walk).
 * ECANCELED when *cancel becomes true. */
int rootfs_staging_create (const char *src, const char *near_path, const atomic_bool *cancel,
                           struct rootfs_staging *st, struct ate_error **err);

/* Remove the copy (the bundle's inodes are not touched).  NULL-safe. */
void rootfs_staging_remove (struct rootfs_staging *st);

/* Remove copies next to near_path that no live job holds.  Returns the
 * number removed. */
int rootfs_staging_cleanup (const char *near_path, struct ate_error **err);

#endif
