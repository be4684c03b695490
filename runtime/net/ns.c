/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "net/ns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

struct ns_job
{
  int target_fd;
  int home_fd;
  net_ns_fn fn;
  void *arg;
  struct ate_error **err; /* the caller's: it waits in pthread_join */
  int rc;
};

static void *
ns_job_main (void *p)
{
  struct ns_job *job = p;

  if (job->target_fd >= 0 && setns (job->target_fd, CLONE_NEWNET) < 0)
    job->rc = ate_error_make (job->err, errno, "enter network namespace");
  else
    job->rc = job->fn (job->arg, job->err);

  /* Always go home, also after a failure: the thread ends right after, but
   * nothing it might still do (thread-exit handlers of libraries) should
   * run in a foreign namespace, and a failure here means the namespace
   * setup is broken, which the caller must hear about. */
  if (setns (job->home_fd, CLONE_NEWNET) < 0)
    job->rc = ate_error_make (job->err, errno,
                              "return to the pod network namespace");
  return NULL;
}

int
net_ns_run (int target_fd, int home_fd, net_ns_fn fn, void *arg,
            struct ate_error **err)
{
  struct ns_job job = {
    .target_fd = target_fd, .home_fd = home_fd, .fn = fn, .arg = arg,
    .err = err, .rc = 0,
  };
  pthread_t th;
  int r;

  r = pthread_create (&th, NULL, ns_job_main, &job);
  if (r != 0)
    return ate_error_make (err, r, "create network namespace helper thread");
  r = pthread_join (th, NULL);
  if (r != 0)
    abort (); /* joining our own joinable thread cannot fail */
  if (job.rc < 0 && err != NULL && *err == NULL)
    return ate_error_make (err, 0, "network namespace helper failed");
  return job.rc;
}

int
net_ns_open_current (struct ate_error **err)
{
  int fd = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ate_error_make (err, errno, "open /proc/thread-self/ns/net");
  return fd;
}

bool
net_ns_same (int fd_a, int fd_b)
{
  struct stat a, b;

  if (fstat (fd_a, &a) < 0 || fstat (fd_b, &b) < 0)
    return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* 1: a network namespace, 0: not a namespace at all, < 0: another kind of
 * namespace (an error). */
static int
ns_fd_kind (int fd, const char *path, struct ate_error **err)
{
  struct statfs sfs;
  int type;

  if (fstatfs (fd, &sfs) < 0)
    return ate_error_make (err, errno, "statfs `%s`", path);
  if ((unsigned long) sfs.f_type != (unsigned long) NSFS_MAGIC)
    return 0;
  type = ioctl (fd, NS_GET_NSTYPE);
  if (type < 0)
    return ate_error_make (err, errno, "query namespace type of `%s`", path);
  if (type != CLONE_NEWNET)
    return ate_error_make (err, EINVAL,
                           "`%s` is a namespace but not a network namespace",
                           path);
  return 1;
}

static int
ns_create_mount (void *arg, struct ate_error **err)
{
  const char *path = arg;

  if (unshare (CLONE_NEWNET) < 0)
    return ate_error_make (err, errno, "unshare network namespace");
  /* The type is ignored for a bind mount; "none" keeps checkers quiet. */
  if (mount ("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0)
    return ate_error_make (err, errno, "bind mount network namespace on `%s`",
                           path);
  return 0;
}

/* Returns the open fd of an existing network namespace at path, -2 when
 * path is absent, -3 when it is a plain file to mount over, or -1 (error). */
static int
ns_open_existing (const char *path, struct ate_error **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  int kind;

  if (fd < 0)
    {
      if (errno == ENOENT)
        return -2;
      return ate_error_make (err, errno, "open `%s`", path);
    }
  kind = ns_fd_kind (fd, path, err);
  if (kind < 0)
    return -1;
  if (kind == 1)
    return steal_fd (&fd);
  if (fstat (fd, &st) < 0)
    return ate_error_make (err, errno, "stat `%s`", path);
  if (!S_ISREG (st.st_mode))
    return ate_error_make (err, EINVAL,
                           "`%s` exists and is neither a network namespace "
                           "nor a regular file", path);
  return -3;
}

int
net_ns_open_or_create (const char *path, int home_fd, bool *created,
                       struct ate_error **err)
{
  cleanup_free char *dir = NULL;
  bool made_file = false;
  int fd, r;

  *created = false;
  fd = ns_open_existing (path, err);
  if (fd >= 0 || fd == -1)
    return fd;

  if (fd == -2)
    {
      dir = ate_path_dirname (path);
      if (ate_mkdir_p (dir, 0755, err) < 0)
        return ate_error_wrap (err, "while creating the netns directory");
      fd = open (path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
      if (fd < 0)
        return ate_error_make (err, errno, "create `%s`", path);
      close (fd);
      made_file = true;
    }

  r = net_ns_run (-1, home_fd, ns_create_mount, (void *) path, err);
  if (r >= 0)
    {
      fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0)
        r = ate_error_make (err, errno, "open `%s`", path);
      else if (ns_fd_kind (fd, path, err) != 1)
        {
          r = ate_error_make (err, EINVAL,
                              "`%s` is not a network namespace after mounting",
                              path);
          close_and_reset (&fd);
        }
    }
  if (r < 0)
    {
      /* The thread's namespace died with it; only the mount and the file
       * we made can be left. */
      umount2 (path, MNT_DETACH);
      if (made_file)
        unlink (path);
      return -1;
    }
  *created = true;
  return fd;
}

int
net_ns_remove (const char *path, struct ate_error **err)
{
  if (umount2 (path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    return ate_error_make (err, errno, "unmount `%s`", path);
  if (unlink (path) < 0 && errno != ENOENT)
    return ate_error_make (err, errno, "remove `%s`", path);
  return 0;
}
