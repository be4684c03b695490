/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Output files that appear under their final name only when complete: a
 * temporary ".<name>.tmp-XXXXXX" in the same directory, fsync, rename, fsync
 * of the directory.  Freed before commit, the temporary is removed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot-internal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

struct snapshot_outfile
{
  char *path;
  char *tmp_path;
  int fd;
  bool committed;
};

int
snapshot_outfile_open (const char *path, mode_t mode, struct snapshot_outfile **out,
                       struct ate_error **err)
{
  cleanup_free char *dir = NULL;
  cleanup_free char *base = NULL;
  struct snapshot_outfile *of;
  int fd;

  if (path[0] == '\0' || str_has_suffix (path, "/"))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "output `%s` is not a file name", path);
  if (ate_is_dir (path))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EISDIR,
                                "output `%s` is a directory", path);
  dir = ate_path_dirname (path);
  base = ate_path_basename (path);
  of = xmalloc0 (sizeof (*of));
  of->path = xstrdup (path);
  /* Long names are cut so that the temporary still fits NAME_MAX. */
  of->tmp_path = xasprintf ("%s/.%.200s.tmp-XXXXXX", dir, base);
  fd = mkostemp (of->tmp_path, O_CLOEXEC);
  if (fd < 0)
    {
      int e = errno;
      free (of->path);
      free (of->tmp_path);
      free (of);
      return ate_error_make (err, e, "create a temporary file in `%s`", dir);
    }
  of->fd = fd;
  if (fchmod (fd, mode != 0 ? mode : 0600) < 0)
    {
      int e = errno;
      snapshot_outfile_free (of);
      return ate_error_make (err, e, "chmod `%s`", path);
    }
  *out = of;
  return 0;
}

int
snapshot_outfile_fd (const struct snapshot_outfile *of)
{
  return of->fd;
}

static int
rename_noreplace (const char *from, const char *to)
{
  if (renameat2 (AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)
    return -1;
  /* File systems without RENAME_NOREPLACE: link() refuses to replace too. */
  if (link (from, to) < 0)
    return -1;
  unlink (from);
  return 0;
}

int
snapshot_outfile_commit (struct snapshot_outfile *of, bool replace, bool no_fsync,
                         struct ate_error **err)
{
  if (!no_fsync && fsync (of->fd) < 0)
    return ate_error_make (err, errno, "fsync `%s`", of->tmp_path);
  if (close (steal_fd (&of->fd)) < 0)
    return ate_error_make (err, errno, "close `%s`", of->tmp_path);
  if ((replace ? rename (of->tmp_path, of->path) : rename_noreplace (of->tmp_path, of->path))
      < 0)
    {
      if (errno == EEXIST)
        return ate_error_make_code (err, ATE_CODE_ALREADY_EXISTS, EEXIST,
                                    "output `%s` exists", of->path);
      return ate_error_make (err, errno, "rename `%s` to `%s`", of->tmp_path, of->path);
    }
  of->committed = true;
  if (!no_fsync)
    return ate_fsync_dir_of (of->path, err);
  return 0;
}

void
snapshot_outfile_free (struct snapshot_outfile *of)
{
  if (of == NULL)
    return;
  close_and_reset (&of->fd);
  if (!of->committed)
    unlink (of->tmp_path);
  free (of->path);
  free (of->tmp_path);
  free (of);
}
