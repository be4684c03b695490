/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor's writable ext4 rootfs disk (guest /dev/vdb), docs/rootfs.md.
 *
 * One struct rootfs_manager per process.  Every disk operation runs as a job
 * on its own thread (mkfs.ext4 and debugfs as child processes), never on the
 * caller's deadline: a caller waits until its deadline and then gets
 * DEADLINE_EXCEEDED while the job continues; a later call for the same disk
 * joins the running job (one job per disk path, never two mkfs on one file)
 * and converges.  Output is written to "<disk>.<random>.building" in the
 * disk's directory, fsync'd and renamed over the disk, so a partial image is
 * never visible under the final name; leftovers of a crash are removed before
 * the next build.
 *
 * Builds are byte-deterministic: two builds of the same tree content on any
 * node produce identical images (fixed UUID and hash seed derived from the
 * tree digest, E2FSPROGS_FAKE_TIME, a pinned mke2fs.conf, a read-only source,
 * normalised inode times, root inode 0:0 0755).  A fingerprint side file
 * "<disk>.fingerprint" records what a disk was built from; an image cache
 * under the base path turns the second build of an image into a clone.
 *
 * Layout under the base path (docs/rootfs.md):
 *   <base>/rootfs-cache/<key>.ext4, <key>.fingerprint   image cache
 *   <base>/golden-disks/<ns>:<tmpl>:<base-id>.ext4        lineage templates
 */
#ifndef ATE_ROOTFS_H
#define ATE_ROOTFS_H

#include <stdbool.h>
#include <stdint.h>

#include "util/time.h"

struct ate_error;
struct rootfs_manager;

#define ROOTFS_CACHE_SUBDIR "rootfs-cache"
#define ROOTFS_GOLDEN_SUBDIR "golden-disks"
#define ROOTFS_FINGERPRINT_SUFFIX ".fingerprint"
#define ROOTFS_DEFAULT_CACHE_MAX_BYTES (20ULL << 30)
#define ROOTFS_DEFAULT_BUILD_TIMEOUT_MS (30LL * 60 * 1000)

struct rootfs_config
{
  const char *base_path;    /* default ATE_DEFAULT_BASE_PATH */
  const char *cache_dir;    /* default <base>/rootfs-cache */
  const char *golden_dir;   /* default <base>/golden-disks */
  uint64_t cache_max_bytes; /* allocated bytes; 0 disables the image cache */
  const char *mkfs_path;    /* default "mkfs.ext4" from PATH */
  const char *debugfs_path; /* default "debugfs" from PATH */
  int64_t build_timeout_ms; /* cap for one job; <= 0: the default */
  /* Digest file metadata only (no content hashing).  Cheaper for huge
   * trees, but then the image cache trusts names, sizes and mtimes: only
   * safe when every image on the node comes from one trust domain. */
  bool metadata_digest_only;
};

void rootfs_config_init (struct rootfs_config *cfg);

int rootfs_manager_new (const struct rootfs_config *cfg, struct rootfs_manager **out,
                        struct ate_error **err);

/* Cancels running jobs (their children are killed and waited for, their
 * temporary files removed) and joins their threads.  No other call on mgr
 * may be in progress or follow.  NULL-safe. */
void rootfs_manager_free (struct rootfs_manager *mgr);

/* Wait until no job runs, including the work jobs do after their callers
 * got the result (adding a fresh image to the cache, removing a replaced
 * disk).  For tests and tools; the server never needs to. */
void rootfs_manager_wait_idle (struct rootfs_manager *mgr);

/* ---- geometry (docs/rootfs.md, "Geometry") ---- */

struct rootfs_geometry
{
  uint64_t entries;       /* including the root directory */
  uint64_t content_bytes; /* apparent sizes of regular files */
  uint64_t inodes;        /* entries + entries/4 + 8192 */
  uint64_t size_mib;      /* ceil((content + inodes*256 + content/16 + 512 MiB) / MiB) */
};

void rootfs_geometry_from_counts (uint64_t entries, uint64_t content_bytes,
                                  struct rootfs_geometry *g);

/* Walk src_dir and compute its geometry (no digests). */
int rootfs_geometry_compute (const char *src_dir, struct rootfs_geometry *g,
                             struct ate_error **err);

/* ---- disks ---- */

enum rootfs_origin
{
  ROOTFS_ORIGIN_REUSED = 0, /* existing disk matched its fingerprint */
  ROOTFS_ORIGIN_BUILT,      /* mkfs.ext4 ran */
  ROOTFS_ORIGIN_CACHE,      /* cloned from the image cache */
  ROOTFS_ORIGIN_TEMPLATE,   /* cloned from a golden template */
};

const char *rootfs_origin_name (enum rootfs_origin o);

struct rootfs_outcome
{
  enum rootfs_origin origin;
  struct rootfs_geometry geometry; /* zero for template resets */
  bool joined;        /* this call waited for a job another call started */
  double elapsed_ms;  /* duration of the job */
  const char *copy;   /* how a cache entry or template was copied: "reflink",
                       * "sparse-copy"; NULL otherwise */
};

/* Run (docs/rootfs.md, "Run, Restore and retries"): make disk_path a disk
 * of bundle_rootfs_dir.  Reuses an
 * existing disk whose fingerprint matches the tree and which was not
 * written since it was built; otherwise builds (from the image cache when
 * possible).  DEADLINE_EXCEEDED when the deadline passes first; the job
 * continues and a retry joins it. */
int rootfs_disk_for_run (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                         const char *disk_path, ate_deadline_t deadline,
                         struct ate_error **err);

/* Restore without a template: a fresh disk on every call (no reuse of an
 * existing disk).  The only exception is the retry of a call that timed
 * out: a build that finished after its caller gave up, and that nobody has
 * received or touched since, is handed to the next call for the same disk
 * instead of being rebuilt (the bytes would be identical). */
int rootfs_disk_rebuild (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                         const char *disk_path, ate_deadline_t deadline,
                         struct ate_error **err);

/* The same with a report of what happened (out may be NULL). */
int rootfs_disk_for_run_ex (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                            const char *disk_path, ate_deadline_t deadline,
                            struct rootfs_outcome *out, struct ate_error **err);
int rootfs_disk_rebuild_ex (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                            const char *disk_path, ate_deadline_t deadline,
                            struct rootfs_outcome *out, struct ate_error **err);

/* ---- base images (docs/rootfs.md, "Base images") ----
 *
 * The read-only image of a bundle's tree, shared by every actor of every
 * lineage on the node: an entry of the image cache, used in place (the
 * backing file of the actors' copy-on-write overlays).  Keyed by content
 * only, byte-identical on every node with the same mkfs.  Built at most
 * once per node (a detached job like the disk builds: a caller that times
 * out gets DEADLINE_EXCEEDED, the retry joins the job or finds the entry).
 * Pinned while held: eviction skips a pinned base in every process, and a
 * base stays while pinned even beyond the cache bound. */

#define ROOTFS_BASE_ID_LEN 64

struct rootfs_base
{
  char *path;    /* <cache>/<id>.ext4, read-only (mode 0400): the raw disk */
  uint64_t size; /* bytes: the guest's virtual disk size */
  /* SHA-256 (hex) of the build identity: the content digest, the mkfs
   * version and every option that decides the bytes.  Equal ids are equal
   * bytes on any node; bind a delta to this. */
  char id[ROOTFS_BASE_ID_LEN + 1];
  /* "sha256:<hex>" of names, types, modes, sizes, content, symlink
   * targets, xattrs (docs/rootfs.md); "none" with metadata_digest_only. */
  char content_digest[8 + 2 * 32 + 1];
  struct rootfs_geometry geometry;
  enum rootfs_origin origin; /* BUILT or CACHE (REUSED for acquire) */
  bool joined;               /* waited for a job another call started */
  /* private */
  struct rootfs_manager *mgr;
  int pin_fd;
};

/* The base of bundle_rootfs_dir, pinned: built (detached) unless the cache
 * has it.  DEADLINE_EXCEEDED when the deadline passes first; the job goes
 * on and a retry, also after atelet unpacked the bundle again, joins it or
 * takes the finished entry.  Release with rootfs_base_release. */
int rootfs_base_get (struct rootfs_manager *mgr, const char *bundle_rootfs_dir,
                     ate_deadline_t deadline, struct rootfs_base **out, struct ate_error **err);

/* Pin the cached base with this id (a restore on this node, recovery after
 * a restart).  NOT_FOUND-like error (status ENOENT) when it is not cached:
 * then get it from the bundle. */
int rootfs_base_acquire (struct rootfs_manager *mgr, const char *id, struct rootfs_base **out,
                         struct ate_error **err);

/* Unpin (the cache may evict it from now on) and free.  NULL-safe. */
void rootfs_base_release (struct rootfs_base *base);

/* ---- golden templates (docs/rootfs.md, "Golden templates") ---- */

/* The per-actor name of the reference (<actorDir>/golden-rootfs.ext4)
 * and the name a template has in a checkpoint's files. */
#define ROOTFS_GOLDEN_FILE_NAME "golden-rootfs.ext4"

/* "<ns>:<tmpl>:<base-id>[:<container>]": ns, base-id and container DNS-1123
 * labels, tmpl a DNS-1123 subdomain (the container part names the extra
 * disks of a multi-container actor).  INVALID_ARGUMENT otherwise. */
int rootfs_lineage_key_validate (const char *lineage_key, struct ate_error **err);

/* <golden_dir>/<lineage_key>.ext4, or NULL if the key is invalid. */
char *rootfs_golden_path (struct rootfs_manager *mgr, const char *lineage_key);

bool rootfs_golden_exists (struct rootfs_manager *mgr, const char *lineage_key);

/* Save disk_path (of a paused VM) as the lineage's template unless one
 * exists (templates are never refreshed).  Returns 1 when saved, 0 when a
 * template already existed. */
int rootfs_golden_save (struct rootfs_manager *mgr, const char *lineage_key,
                        const char *disk_path, struct ate_error **err);

/* The same; replace = true swaps in disk_path even when a template exists
 * (the lineage's root activation was checkpointed again).  Returns 1 when
 * saved, 0 when a template existed and replace was false. */
int rootfs_golden_save_ex (struct rootfs_manager *mgr, const char *lineage_key,
                           const char *disk_path, bool replace, struct ate_error **err);

/* Place the lineage's template as <dir>/golden-rootfs.ext4 (hard link, or a
 * sparse copy across file systems), replacing an older file of that name.
 * For a checkpoint directory (to ship the template with the snapshot) and
 * for the reference's per-actor name in the actor directory. */
int rootfs_golden_link_into (struct rootfs_manager *mgr, const char *lineage_key,
                             const char *dir, struct ate_error **err);
/* The same under another file name in dir (a plain name, no '/'). */
int rootfs_golden_link_as (struct rootfs_manager *mgr, const char *lineage_key,
                           const char *dir, const char *name, struct ate_error **err);

/* Install file (e.g. <restore dir>/golden-rootfs.ext4 from another node) as
 * the lineage's template unless one exists.  The file must be an ext4
 * image.  Returns 1 when installed, 0 when a template already existed. */
int rootfs_golden_import (struct rootfs_manager *mgr, const char *lineage_key,
                          const char *file, struct ate_error **err);

/* Reset disk_path to the bytes of template_path: FICLONE where the file
 * system supports it, else a SEEK_DATA/SEEK_HOLE + copy_file_range copy;
 * through a temporary file and rename, as a job detached from the deadline
 * like the builds.  The disk's fingerprint side file is removed (the disk
 * is no longer a fresh build of a tree). */
int rootfs_golden_reset (struct rootfs_manager *mgr, const char *template_path,
                         const char *disk_path, ate_deadline_t deadline,
                         struct ate_error **err);

/* ---- inspection (ateom-rootfs inspect) ---- */

struct rootfs_image_info
{
  /* superblock */
  uint64_t block_size;
  uint64_t blocks;
  uint64_t inodes;
  uint64_t free_inodes;
  uint64_t file_size;      /* of the image file */
  uint64_t allocated;      /* bytes allocated on the host */
  char uuid[37];
  char hash_seed[37];
  int64_t mkfs_time;
  bool has_journal;
  /* fingerprint side file */
  bool has_fingerprint;
  char *fingerprint_error; /* why it could not be used, NULL if valid */
  char *fingerprint;       /* its text */
  bool fingerprint_matches_disk; /* written since built? */
  /* image cache */
  char *cache_entry;       /* path of the cache entry of this build */
  bool in_cache;
};

int rootfs_image_inspect (struct rootfs_manager *mgr, const char *image,
                          struct rootfs_image_info *info, struct ate_error **err);
void rootfs_image_info_clear (struct rootfs_image_info *info);

#endif
