/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util/error.h"
#include "util/sparse.h"
#include "util/util.h"

#define XATTR_LIST_MAX_BYTES 65536
#define XATTR_VALUE_MAX_BYTES 65536

struct link_slot
{
  dev_t dev;
  ino_t ino;
  uint64_t index; /* 0 = empty, else 1 + entry index of the first name */
};

struct walker
{
  const struct rootfs_scan_opts *opts;
  struct rootfs_scan *out;
  EVP_MD_CTX *tree;
  char *xlist;
  char *xvalue;
  struct link_slot *links;
  size_t links_cap;
  size_t links_used;
  size_t files_cap;
  char *rel;      /* path of the current entry relative to the root */
  size_t rel_len;
  size_t rel_cap;
  uint64_t index; /* entry counter (DFS order) */
};

void
rootfs_scan_opts_init (struct rootfs_scan_opts *o)
{
  memset (o, 0, sizeof (*o));
  o->hash_content = true;
  o->deadline = ATE_DEADLINE_NONE;
}

void
rootfs_digest_hex (const uint8_t *digest, char *buf)
{
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < ROOTFS_DIGEST_LEN; i++)
    {
      buf[2 * i] = hex[digest[i] >> 4];
      buf[2 * i + 1] = hex[digest[i] & 0xf];
    }
  buf[2 * ROOTFS_DIGEST_LEN] = '\0';
}

static void
put_bytes (EVP_MD_CTX *c, const void *p, size_t n)
{
  /* EVP_DigestUpdate only fails on a broken context (a programming error). */
  if (EVP_DigestUpdate (c, p, n) != 1)
    abort ();
}

static void
put_u64 (EVP_MD_CTX *c, uint64_t v)
{
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t) (v >> (8 * i));
  put_bytes (c, b, sizeof (b));
}

static void
put_str (EVP_MD_CTX *c, const char *s, size_t n)
{
  put_u64 (c, n);
  put_bytes (c, s, n);
}

static int
check_stop (struct walker *w, struct ate_error **err)
{
  if (w->opts->cancel && atomic_load (w->opts->cancel))
    return ate_error_make (err, ECANCELED, "scan cancelled");
  if (ate_deadline_expired (w->opts->deadline))
    return ate_error_make (err, ETIMEDOUT, "scan did not finish in time");
  return 0;
}

/* Maintain w->rel as "<parent>/<name>" while an entry is processed. */
static size_t
rel_push (struct walker *w, const char *name)
{
  size_t old = w->rel_len, n = strlen (name);
  size_t need = old + 1 + n + 1;

  if (need > w->rel_cap)
    {
      w->rel_cap = need * 2;
      w->rel = xrealloc (w->rel, w->rel_cap);
    }
  if (old > 0)
    w->rel[w->rel_len++] = '/';
  memcpy (w->rel + w->rel_len, name, n + 1);
  w->rel_len += n;
  return old;
}

static void
rel_pop (struct walker *w, size_t old)
{
  w->rel_len = old;
  w->rel[old] = '\0';
}

static const char *
rel_name (const struct walker *w)
{
  return w->rel_len ? w->rel : ".";
}

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
cmp_cstr (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Names of a directory in byte order (the order mke2fs populates them). */
static int
read_names (int dirfd, char ***names, size_t *count, struct ate_error **err)
{
  int fd = fcntl (dirfd, F_DUPFD_CLOEXEC, 3);
  cleanup_dir DIR *d = NULL;
  char **v = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;

  if (fd < 0)
    return ate_error_make (err, errno, "dup directory fd");
  d = fdopendir (fd);
  if (d == NULL)
    {
      int e = errno;
      close (fd);
      return ate_error_make (err, e, "fdopendir");
    }
  while ((errno = 0, de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (n + 1 >= cap)
        {
          cap = cap ? cap * 2 : 32;
          v = xrealloc (v, cap * sizeof (*v));
        }
      v[n++] = xstrdup (de->d_name);
    }
  if (errno != 0)
    {
      int e = errno;
      for (size_t i = 0; i < n; i++)
        free (v[i]);
      free (v);
      return ate_error_make (err, e, "readdir");
    }
  if (n > 1)
    qsort (v, n, sizeof (*v), cmp_names);
  *names = v;
  *count = n;
  return 0;
}

static void
free_names (char **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (v[i]);
  free (v);
}

/* Hash the xattrs of dirfd/name (sorted by name) into the tree digest.  The
 * /proc/self/fd path keeps the lookup relative to the directory we hold, so
 * path length never matters and no symlink is followed. */
static int
hash_xattrs (struct walker *w, int dirfd, const char *name, struct ate_error **err)
{
  char path[64 + NAME_MAX];
  ssize_t len;
  const char **keys = NULL;
  size_t nkeys = 0;
  int ret = 0;

  snprintf (path, sizeof (path), "/proc/self/fd/%d/%s", dirfd, name);
  len = llistxattr (path, w->xlist, XATTR_LIST_MAX_BYTES);
  if (len < 0)
    {
      if (errno == ENOTSUP || errno == ENODATA)
        len = 0;
      else if (errno == ERANGE)
        return ate_error_make (err, E2BIG, "xattr names of `%s` exceed %d bytes",
                               rel_name (w), XATTR_LIST_MAX_BYTES);
      else
        return ate_error_make (err, errno, "list xattrs of `%s`", rel_name (w));
    }
  for (ssize_t off = 0; off < len; off += (ssize_t) strlen (w->xlist + off) + 1)
    {
      keys = xrealloc (keys, (nkeys + 1) * sizeof (*keys));
      keys[nkeys++] = w->xlist + off;
    }
  if (nkeys > 1)
    qsort (keys, nkeys, sizeof (*keys), cmp_cstr);
  put_u64 (w->tree, nkeys);
  for (size_t i = 0; i < nkeys && ret == 0; i++)
    {
      ssize_t vl = lgetxattr (path, keys[i], w->xvalue, XATTR_VALUE_MAX_BYTES);
      if (vl < 0)
        {
          ret = ate_error_make (err, errno, "read xattr %s of `%s`", keys[i], rel_name (w));
          break;
        }
      put_str (w->tree, keys[i], strlen (keys[i]));
      put_str (w->tree, w->xvalue, (size_t) vl);
    }
  free (keys);
  return ret;
}

/* Returns 1 + the entry index of an earlier name of the same inode, or 0
 * after remembering this one.  Only non-directories with several links
 * count, as in mke2fs. */
static uint64_t
link_lookup_or_add (struct walker *w, const struct stat *st)
{
  if (w->links_used * 2 >= w->links_cap)
    {
      size_t ncap = w->links_cap ? w->links_cap * 2 : 256;
      struct link_slot *n = xcalloc (ncap, sizeof (*n));
      for (size_t i = 0; i < w->links_cap; i++)
        if (w->links[i].index)
          {
            size_t h = (size_t) ((w->links[i].ino * 0x9E3779B97F4A7C15ULL) ^ w->links[i].dev);
            while (n[h % ncap].index)
              h++;
            n[h % ncap] = w->links[i];
          }
      free (w->links);
      w->links = n;
      w->links_cap = ncap;
    }
  size_t h = (size_t) ((st->st_ino * 0x9E3779B97F4A7C15ULL) ^ st->st_dev);
  for (;; h++)
    {
      struct link_slot *s = &w->links[h % w->links_cap];
      if (s->index == 0)
        {
          s->dev = st->st_dev;
          s->ino = st->st_ino;
          s->index = 1 + w->index;
          w->links_used++;
          return 0;
        }
      if (s->dev == st->st_dev && s->ino == st->st_ino)
        return s->index;
    }
}

/* Remember a regular file for content hashing. */
static void
list_file (struct walker *w, const struct stat *st)
{
  struct rootfs_scan *o = w->out;
  if (o->n_files == w->files_cap)
    {
      w->files_cap = w->files_cap ? w->files_cap * 2 : 256;
      o->files = xrealloc (o->files, w->files_cap * sizeof (*o->files));
    }
  o->files[o->n_files++] = (struct rootfs_scan_file){ .path = xstrdup (w->rel),
                                                      .index = w->index,
                                                      .size = (uint64_t) st->st_size,
                                                      .dev = st->st_dev,
                                                      .ino = st->st_ino,
                                                      .mode = st->st_mode,
                                                      .mtime = st->st_mtim };
}

static char
type_char (mode_t m)
{
  switch (m & S_IFMT)
    {
    case S_IFDIR: return 'd';
    case S_IFREG: return 'f';
    case S_IFLNK: return 'l';
    case S_IFCHR: return 'c';
    case S_IFBLK: return 'b';
    case S_IFIFO: return 'p';
    case S_IFSOCK: return 's';
    default: return '?';
    }
}

/* Feed one non-root entry's metadata record into the tree digest. */
static int
record_entry (struct walker *w, int dirfd, const char *name, uint32_t depth,
              const struct stat *st, struct ate_error **err)
{
  char type = type_char (st->st_mode);
  uint64_t link_ref = 0;

  if (type == '?')
    return ate_error_make (err, EINVAL, "`%s` has an unknown file type 0%o", rel_name (w),
                           (unsigned) (st->st_mode & S_IFMT));
  put_u64 (w->tree, depth);
  put_str (w->tree, name, strlen (name));
  if (type != 'd' && type != 'l' && st->st_nlink > 1)
    link_ref = link_lookup_or_add (w, st);
  put_u64 (w->tree, link_ref);
  if (link_ref != 0)
    return 0; /* the earlier name carries the inode's metadata */
  w->out->inodes_used++;
  if (st->st_uid != 0 || st->st_gid != 0)
    w->out->foreign_owners = true;
  put_bytes (w->tree, &type, 1);
  /* No owners and no times: atelet's unpack sets neither (every unpack has
   * fresh times and its own owner), and the build gives every inode owner
   * 0:0 and the fixed time (docs/rootfs.md, "What the guest sees"). */
  put_u64 (w->tree, st->st_mode & 07777);
  if (type == 'f')
    put_u64 (w->tree, (uint64_t) st->st_size);
  if (type == 'c' || type == 'b')
    {
      put_u64 (w->tree, major (st->st_rdev));
      put_u64 (w->tree, minor (st->st_rdev));
    }
  if (type == 'l')
    {
      char target[PATH_MAX];
      ssize_t n = readlinkat (dirfd, name, target, sizeof (target));
      if (n < 0)
        return ate_error_make (err, errno, "readlink `%s`", rel_name (w));
      if ((size_t) n >= sizeof (target))
        return ate_error_make (err, ENAMETOOLONG, "symlink `%s` target too long",
                               rel_name (w));
      put_str (w->tree, target, (size_t) n);
    }
  if (hash_xattrs (w, dirfd, name, err) < 0)
    return -1;
  if (type == 'f')
    list_file (w, st);
  return 0;
}

static int walk_dir (struct walker *w, int dirfd, uint32_t depth, struct ate_error **err);

static int
visit (struct walker *w, int dirfd, const char *name, uint32_t depth, struct ate_error **err)
{
  struct stat st;

  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return ate_error_make (err, errno, "stat `%s`", rel_name (w));
  w->out->entries++;
  if (S_ISREG (st.st_mode))
    {
      w->out->content_bytes += (uint64_t) st.st_size;
      if ((uint64_t) st.st_size > w->out->max_file_size || w->out->max_file_path == NULL)
        {
          w->out->max_file_size = (uint64_t) st.st_size;
          free (w->out->max_file_path);
          w->out->max_file_path = xstrdup (w->rel);
        }
    }
  if (record_entry (w, dirfd, name, depth, &st, err) < 0)
    return -1;
  w->index++;
  if (!S_ISDIR (st.st_mode))
    return 0;
  if (depth >= ROOTFS_SCAN_MAX_DEPTH)
    /* The caller's image, not our failure (no errno: ELOOP's text would
     * speak of symbolic links). */
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                                "the bundle's rootfs: `%s` is nested deeper than %d directories",
                                rel_name (w), ROOTFS_SCAN_MAX_DEPTH);
  cleanup_close int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return ate_error_make (err, errno, "open directory `%s`", rel_name (w));
  return walk_dir (w, fd, depth + 1, err);
}

static int
walk_dir (struct walker *w, int dirfd, uint32_t depth, struct ate_error **err)
{
  char **names = NULL;
  size_t n = 0;
  int ret = 0;

  if (check_stop (w, err) < 0)
    return -1;
  if (read_names (dirfd, &names, &n, err) < 0)
    return ate_error_wrap (err, "read directory `%s`", rel_name (w));
  for (size_t i = 0; i < n && ret == 0; i++)
    {
      size_t old = rel_push (w, names[i]);
      ret = visit (w, dirfd, names[i], depth, err);
      rel_pop (w, old);
    }
  free_names (names, n);
  return ret;
}

static void
walker_free (struct walker *w)
{
  EVP_MD_CTX_free (w->tree);
  free (w->xlist);
  free (w->xvalue);
  free (w->links);
  free (w->rel);
}

static int
scan_root (struct walker *w, const char *src_dir, struct ate_error **err)
{
  cleanup_close int fd = open (src_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  unsigned int dlen = 0;
  struct stat st;

  if (fd < 0)
    return ate_error_make (err, errno, "source `%s` is not a readable directory", src_dir);
  if (fstat (fd, &st) < 0)
    return ate_error_make (err, errno, "stat `%s`", src_dir);
  w->out->root = xstrdup (src_dir);
  w->out->name = xstrdup (w->opts->name ? w->opts->name : src_dir);
  w->out->root_dev = st.st_dev;
  w->out->root_ino = st.st_ino;
  /* The root inode's mode, owner and times are set explicitly by the build
   * (docs/rootfs.md, "How a disk is built", step 4), so only its xattrs,
   * which mkfs copies, count. */
  w->out->entries = 1;
  put_u64 (w->tree, 0);
  put_str (w->tree, "", 0);
  if (hash_xattrs (w, fd, ".", err) < 0)
    return -1;
  w->index = 1;
  if (walk_dir (w, fd, 1, err) < 0)
    return -1;
  if (EVP_DigestFinal_ex (w->tree, w->out->tree_digest, &dlen) != 1)
    abort ();
  return 0;
}

int
rootfs_scan_rebase (struct rootfs_scan *s, const char *new_root, struct ate_error **err)
{
  struct stat st;

  if (stat (new_root, &st) < 0)
    return ate_error_make (err, errno, "stat `%s`", new_root);
  free (s->root);
  s->root = xstrdup (new_root);
  s->root_dev = st.st_dev;
  s->root_ino = st.st_ino;
  return 0;
}

void
rootfs_scan_clear (struct rootfs_scan *s)
{
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->n_files; i++)
    free (s->files[i].path);
  free (s->files);
  free (s->root);
  free (s->name);
  free (s->max_file_path);
  memset (s, 0, sizeof (*s));
}

int
rootfs_scan_tree (const char *src_dir, const struct rootfs_scan_opts *o,
                  struct rootfs_scan *out, struct ate_error **err)
{
  struct rootfs_scan_opts defaults;
  struct walker w;
  int ret;

  if (o == NULL)
    {
      rootfs_scan_opts_init (&defaults);
      o = &defaults;
    }
  memset (out, 0, sizeof (*out));
  memset (&w, 0, sizeof (w));
  w.opts = o;
  w.out = out;
  w.tree = EVP_MD_CTX_new ();
  if (w.tree == NULL)
    ate_oom ();
  if (EVP_DigestInit_ex (w.tree, EVP_sha256 (), NULL) != 1)
    abort ();
  w.xlist = xmalloc (XATTR_LIST_MAX_BYTES);
  w.xvalue = xmalloc (XATTR_VALUE_MAX_BYTES);
  w.rel = xstrdup ("");
  w.rel_cap = 1;
  ret = scan_root (&w, src_dir, err);
  walker_free (&w);
  if (ret == 0 && o->hash_content)
    ret = rootfs_scan_hash_content (out, o, err);
  if (ret < 0)
    {
      rootfs_scan_clear (out);
      return ate_error_wrap (err, "scan `%s`", o->name ? o->name : src_dir);
    }
  return 0;
}
