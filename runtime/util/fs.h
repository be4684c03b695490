/* SPDX-License-Identifier: Apache-2.0 */
/* File-system helpers.  Every fd is opened O_CLOEXEC. */
#ifndef ATE_FS_H
#define ATE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ate_error;

/* mkdir -p; existing directories keep their mode, new ones get `mode`. */
int ate_mkdir_p (const char *path, mode_t mode, struct ate_error **err);

/* rm -rf that never follows symlinks and does not cross into other mounts'
 * contents beyond what unlinkat allows.  A missing path is success. */
int ate_rm_rf (const char *path, struct ate_error **err);

/* Read a whole file; fails with EFBIG when larger than max_size.  The buffer
 * is NUL-terminated (not counted in *len). */
int ate_read_file (const char *path, size_t max_size, char **out, size_t *len,
                   struct ate_error **err);

/* Truncate-and-write (not atomic). */
int ate_write_file (const char *path, const void *data, size_t len, mode_t mode,
                    struct ate_error **err);

/* Write to "<path>.tmp.<pid>.<n>", fsync, rename over path, fsync the
 * directory.  A crash leaves either the old or the new content. */
int ate_write_file_atomic (const char *path, const void *data, size_t len,
                           mode_t mode, struct ate_error **err);

int ate_fsync_dir_of (const char *path, struct ate_error **err);

bool ate_path_exists (const char *path);
bool ate_is_dir (const char *path);
bool ate_is_regular_file (const char *path);

/* unlink, ENOENT is success. */
int ate_unlink_if_exists (const char *path, struct ate_error **err);

/* Join two path components with exactly one '/'. */
char *ate_path_join (const char *a, const char *b);

/* Basename/dirname without modifying the argument (new strings). */
char *ate_path_basename (const char *path);
char *ate_path_dirname (const char *path);

#endif
