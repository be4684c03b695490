/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network namespaces: running code inside one without moving the caller,
 * and the named (bind-mounted) interior namespace.
 */
#ifndef ATE_NET_NS_H
#define ATE_NET_NS_H

#include <stdbool.h>

struct ate_error;

typedef int (*net_ns_fn) (void *arg, struct ate_error **err);

/* Run fn(arg) on a new thread that first enters target_fd (< 0: stays in
 * the caller's namespace; fn may unshare) and, whatever fn returned, enters
 * home_fd before it ends.  Failing to enter home_fd is reported as an
 * error; the thread ends either way, so a thread stuck in a foreign
 * namespace is never reused.  Returns fn's result or < 0. */
int net_ns_run (int target_fd, int home_fd, net_ns_fn fn, void *arg,
                struct ate_error **err);

/* O_CLOEXEC fd of the calling thread's network namespace. */
int net_ns_open_current (struct ate_error **err);

/* True if both fds refer to the same namespace. */
bool net_ns_same (int fd_a, int fd_b);

/* Open the named namespace at path if it is one (returns the fd), create it
 * otherwise (directory mode 0755, file mode 0444, bind mount of a new
 * namespace).  *created tells which.  A regular file that is not a mounted
 * namespace (left by a lost mount) is mounted over.  home_fd is the
 * namespace the helper thread returns to. */
int net_ns_open_or_create (const char *path, int home_fd, bool *created,
                           struct ate_error **err);

/* Lazily unmount and unlink path.  A missing path is success. */
int net_ns_remove (const char *path, struct ate_error **err);

#endif
