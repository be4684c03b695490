/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Temporary files next to their final name, crash-safe installation, and
 * sparse clones.
 *
 * A temporary file is "<final>.XXXXXX.building" in the final file's
 * directory, held with flock(LOCK_EX) for as long as it is written: the
 * cleanup of leftovers removes only temporaries nobody holds, so it never
 * takes the file of a live build (of this or another process), and a crash
 * releases the lock.
 */
#ifndef ATE_ROOTFS_CLONE_H
#define ATE_ROOTFS_CLONE_H

#include <stdbool.h>
#include <stdint.h>

struct ate_error;

#define ROOTFS_TEMP_SUFFIX ".building"

/* Create and lock a new temporary for final_path (mode 0600). */
int rootfs_temp_create (const char *final_path, char **tmp_path, int *fd,
                        struct ate_error **err);

/* Is `name` a temporary of the file named `base` (same directory)? */
bool rootfs_temp_name_matches (const char *base, const char *name);

/* Remove unheld temporaries of final_path, and fingerprint temporaries of
 * processes that no longer exist.  Returns the number removed. */
int rootfs_temp_cleanup (const char *final_path, struct ate_error **err);

/* Rename the temporary over final_path without waiting for the data to
 * reach the disk: no process ever sees a partial file under the final
 * name, but after a power loss the file may be incomplete.  For actor
 * disks, whose fingerprint records the boot (they are never trusted after
 * a reboot); a gigabyte of writeback would otherwise sit on the RPC's
 * path. */
int rootfs_temp_publish (const char *tmp_path, const char *final_path, struct ate_error **err);

/* Durable: fsync the temporary, rename it over final_path, fsync the
 * directory (cache entries and templates, which outlive a reboot). */
int rootfs_temp_install (int fd, const char *tmp_path, const char *final_path,
                         struct ate_error **err);

/* The same without replacing: returns 1 when installed, 0 when final_path
 * already existed (the temporary is then removed). */
int rootfs_temp_install_new (int fd, const char *tmp_path, const char *final_path,
                             struct ate_error **err);

/* Make dst (empty, writable) a copy of src: FICLONE where the file system
 * shares extents, else a SEEK_DATA/SEEK_HOLE walk with copy_file_range
 * (holes stay holes).  *method is "reflink" or "sparse-copy". */
int rootfs_clone_fd (int src, int dst, const char **method, struct ate_error **err);

/* Bytes the file occupies on the host (st_blocks * 512). */
uint64_t rootfs_allocated_bytes (int fd);

#endif
