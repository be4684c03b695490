/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Files opened on someone else's behalf: restore-state files (from object
 * storage), bundles' config.json, runtime assets (docs/api.md, "Files the
 * server opens for a caller").  One rule for all of them:
 *   - beneath the directory they belong to, when there is one: no "..", no
 *     symbolic link in any component;
 *   - O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, so a FIFO or a device
 *     cannot block the open;
 *   - a regular file (checked on the open fd), no larger than a limit;
 *   - reads end at the caller's deadline.
 * Violations are FAILED_PRECONDITION naming the file and what it is.
 */
#ifndef ATE_UNTRUSTED_H
#define ATE_UNTRUSTED_H

#include <stddef.h>
#include <sys/stat.h>

#include "util/time.h"

struct ate_error;

/* Open `name` beneath `dir` (dir NULL: `name` is an absolute path chosen by
 * the caller, e.g. an asset; symlinks to a regular file are then allowed,
 * as installed assets are often versioned links).  Returns an fd opened
 * O_RDONLY, and its stat in *st when st is non-NULL. */
int ate_untrusted_open (const char *dir, const char *name, size_t max_size, struct stat *st,
                        struct ate_error **err);

/* Open, check and read the whole file (NUL-terminated, *len without it). */
int ate_untrusted_read (const char *dir, const char *name, size_t max_size,
                        ate_deadline_t deadline, char **out, size_t *len,
                        struct ate_error **err);

/* Open and check only (an asset another process opens, e.g. the kernel). */
int ate_untrusted_check (const char *dir, const char *name, size_t max_size,
                         struct ate_error **err);

/* "a FIFO", "a directory", "a symbolic link", ... for messages. */
const char *ate_file_type_name (mode_t mode);

#endif
