/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ext4.h"
#include "fingerprint.h"
#include "internal.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

void
rootfs_image_info_clear (struct rootfs_image_info *info)
{
  if (info == NULL)
    return;
  free (info->fingerprint_error);
  free (info->fingerprint);
  free (info->cache_entry);
  memset (info, 0, sizeof (*info));
}

static void
inspect_fingerprint (struct rootfs_manager *mgr, const char *image, const struct stat *st,
                     struct rootfs_image_info *info)
{
  cleanup_free char *path = rootfs_fingerprint_path (image);
  cleanup_error struct ate_error *e = NULL;
  struct rootfs_fingerprint fp;
  size_t len = 0;

  if (ate_read_file (path, ROOTFS_FP_MAX_BYTES, &info->fingerprint, &len, &e) < 0)
    {
      if (e->status != ENOENT)
        {
          info->has_fingerprint = true;
          info->fingerprint_error = xstrdup (e->msg);
        }
      return;
    }
  info->has_fingerprint = true;
  if (rootfs_fingerprint_parse (info->fingerprint, len, &fp, &e) < 0)
    {
      info->fingerprint_error = xstrdup (e->msg);
      return;
    }
  char boot[ROOTFS_UUID_LEN + 1];
  rootfs_boot_id (boot);
  info->fingerprint_matches_disk = rootfs_fingerprint_describes (&fp, st, boot);
  info->cache_entry = rootfs_cache_entry_path_in (mgr->cache_dir, &fp);
  info->in_cache = rootfs_cache_has_entry_in (mgr->cache_dir, &fp);
}

int
rootfs_image_inspect (struct rootfs_manager *mgr, const char *image,
                      struct rootfs_image_info *info, struct ate_error **err)
{
  cleanup_close int fd = open (image, O_RDONLY | O_CLOEXEC);
  struct rootfs_ext4_sb sb;
  struct stat st;

  memset (info, 0, sizeof (*info));
  if (fd < 0)
    return ate_error_make (err, errno, "open `%s`", image);
  if (fstat (fd, &st) < 0)
    return ate_error_make (err, errno, "stat `%s`", image);
  if (!S_ISREG (st.st_mode))
    return ate_error_make (err, EINVAL, "`%s` is not a regular file", image);
  if (rootfs_ext4_read_sb (fd, &sb, err) < 0)
    return ate_error_wrap (err, "`%s`", image);
  info->block_size = sb.block_size;
  info->blocks = sb.blocks_count;
  info->inodes = sb.inodes_count;
  info->free_inodes = sb.free_inodes;
  info->file_size = (uint64_t) st.st_size;
  info->allocated = (uint64_t) st.st_blocks * 512;
  memcpy (info->uuid, sb.uuid, sizeof (info->uuid));
  memcpy (info->hash_seed, sb.hash_seed, sizeof (info->hash_seed));
  info->mkfs_time = sb.mkfs_time;
  info->has_journal = sb.has_journal;
  inspect_fingerprint (mgr, image, &st, info);
  return 0;
}
