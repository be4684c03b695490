/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of runtime/rootfs without mkfs: geometry, tree digests,
 * fingerprint files, temporary-file naming and cleanup, lineage keys. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "rootfs/clone.h"
#include "rootfs/ext4.h"
#include "rootfs/fingerprint.h"
#include "rootfs/rootfs.h"
#include "rootfs/scan.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/proc.h"
#include "util/util.h"

/* Every directory a test makes lives under one per-run directory that the
 * group teardown removes, so a failing test (cmocka jumps out of it) leaves
 * nothing behind. */
static char *run_dir;

static int
group_setup (void **state)
{
  char tmpl[] = "/tmp/ate-test-rootfs-XXXXXX";
  (void) state;
  if (mkdtemp (tmpl) == NULL)
    return -1;
  run_dir = xstrdup (tmpl);
  return 0;
}

static int
group_teardown (void **state)
{
  struct ate_error *err = NULL;
  (void) state;
  if (ate_rm_rf (run_dir, &err) < 0)
    {
      fprintf (stderr, "cleanup: %s\n", err->msg);
      ate_error_release (&err);
    }
  free (run_dir);
  return 0;
}

static char *
make_tmpdir (void)
{
  char *tmpl = xasprintf ("%s/t-XXXXXX", run_dir);
  assert_non_null (mkdtemp (tmpl));
  return tmpl;
}

static void
rm_tree (char *dir)
{
  struct ate_error *err = NULL;
  assert_int_equal (ate_rm_rf (dir, &err), 0);
  free (dir);
}

static char *
at (const char *dir, const char *rel)
{
  return xasprintf ("%s/%s", dir, rel);
}

/* A file of `size` apparent bytes (sparse) with an optional first byte. */
static void
make_file (const char *dir, const char *rel, off_t size, int first_byte)
{
  cleanup_free char *p = at (dir, rel);
  int fd = open (p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  if (first_byte >= 0)
    {
      unsigned char b = (unsigned char) first_byte;
      assert_int_equal (write (fd, &b, 1), 1);
    }
  assert_int_equal (ftruncate (fd, size), 0);
  close (fd);
}

static void
set_mtime (const char *dir, const char *rel, time_t t)
{
  cleanup_free char *p = at (dir, rel);
  struct timespec ts[2] = { { t, 0 }, { t, 0 } };
  assert_int_equal (utimensat (AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void
make_dir (const char *dir, const char *rel)
{
  cleanup_free char *p = at (dir, rel);
  assert_int_equal (mkdir (p, 0755), 0);
}

static void
make_link (const char *dir, const char *rel, const char *target)
{
  cleanup_free char *p = at (dir, rel);
  assert_int_equal (symlink (target, p), 0);
}

/* The geometry test vector (docs/rootfs.md, "Geometry"). */
static char *
make_vector_tree (void)
{
  char *d = make_tmpdir ();
  make_dir (d, "sub");
  make_file (d, "a", 1 << 20, 'a');
  make_file (d, "sub/b", 2 << 20, 'b');
  make_link (d, "link", "a");
  set_mtime (d, "a", 1600000000);
  set_mtime (d, "sub/b", 1600000000);
  set_mtime (d, "link", 1600000000);
  set_mtime (d, "sub", 1600000000);
  return d;
}

static void
scan (const char *dir, bool content, struct rootfs_scan *s)
{
  struct rootfs_scan_opts o;
  struct ate_error *err = NULL;

  rootfs_scan_opts_init (&o);
  o.hash_content = content;
  if (rootfs_scan_tree (dir, &o, s, &err) < 0)
    fail_msg ("scan: %s", err->msg);
}

static void
test_geometry_vector (void **state)
{
  (void) state;
  char *d = make_vector_tree ();
  struct rootfs_geometry g;
  struct ate_error *err = NULL;

  assert_int_equal (rootfs_geometry_compute (d, &g, &err), 0);
  assert_int_equal (g.entries, 5);
  assert_int_equal (g.content_bytes, 3145728);
  assert_int_equal (g.inodes, 8198);
  assert_int_equal (g.size_mib, 518);
  /* bytes = 3145728 + 8198*256 + 196608 + 536870912 = 542311936 */
  rootfs_geometry_from_counts (5, 3145728, &g);
  assert_int_equal (g.size_mib, (542311936ULL + (1 << 20) - 1) >> 20);
  rootfs_geometry_from_counts (1, 0, &g);
  assert_int_equal (g.inodes, 8193);
  assert_int_equal (g.size_mib, 515); /* 8193*256 + 512 MiB rounds up */
  rm_tree (d);
}

static void
test_geometry_errors (void **state)
{
  (void) state;
  struct rootfs_geometry g;
  struct ate_error *err = NULL;
  char *d = make_tmpdir ();
  cleanup_free char *missing = at (d, "missing");
  cleanup_free char *file = at (d, "file");

  assert_true (rootfs_geometry_compute (missing, &g, &err) < 0);
  assert_int_equal (err->status, ENOENT);
  assert_non_null (strstr (err->msg, "missing"));
  ate_error_release (&err);
  make_file (d, "file", 10, 'x');
  assert_true (rootfs_geometry_compute (file, &g, &err) < 0);
  assert_int_equal (err->status, ENOTDIR);
  ate_error_release (&err);
  rm_tree (d);
}

static void
test_scan_too_deep (void **state)
{
  (void) state;
  char *d = make_tmpdir ();
  struct rootfs_scan s;
  struct rootfs_scan_opts o;
  struct ate_error *err = NULL;
  int fd = open (d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  /* ROOTFS_SCAN_MAX_DEPTH + 1 levels, made with *at() calls to keep
   * paths short. */
  for (int i = 0; i <= ROOTFS_SCAN_MAX_DEPTH; i++)
    {
      assert_int_equal (mkdirat (fd, "d", 0755), 0);
      int n = openat (fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      assert_true (n >= 0);
      close (fd);
      fd = n;
    }
  close (fd);
  rootfs_scan_opts_init (&o);
  assert_true (rootfs_scan_tree (d, &o, &s, &err) < 0);
  assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
  assert_null (strstr (err->msg, "symbolic link"));
  ate_error_release (&err);
  rm_tree (d);
}

static void
copy_tree (const char *from, const char *to)
{
  char *argv[] = { (char *) "cp", (char *) "-a", (char *) from, (char *) to, NULL };
  struct ate_error *err = NULL;
  if (ate_proc_run (argv, NULL, ATE_DEADLINE_NONE, NULL, &err) < 0)
    fail_msg ("cp: %s", err->msg);
}

static void
test_digest_stable (void **state)
{
  (void) state;
  char *d = make_vector_tree ();
  char *e = make_tmpdir ();
  cleanup_free char *copy = at (e, "copy");
  struct rootfs_scan a, b, c;

  scan (d, true, &a);
  scan (d, true, &b);
  copy_tree (d, copy);
  scan (copy, true, &c);
  assert_true (a.has_content_digest);
  assert_memory_equal (a.tree_digest, b.tree_digest, ROOTFS_DIGEST_LEN);
  assert_memory_equal (a.content_digest, b.content_digest, ROOTFS_DIGEST_LEN);
  /* A fresh copy (new inodes, ctimes, atimes) digests the same. */
  assert_memory_equal (a.tree_digest, c.tree_digest, ROOTFS_DIGEST_LEN);
  assert_memory_equal (a.content_digest, c.content_digest, ROOTFS_DIGEST_LEN);
  assert_int_equal (a.inodes_used, 4);
  assert_int_equal (a.max_file_size, 2 << 20);
  assert_string_equal (a.max_file_path, "sub/b");
  rootfs_scan_clear (&a);
  rootfs_scan_clear (&b);
  rootfs_scan_clear (&c);
  rm_tree (d);
  rm_tree (e);
}

typedef void (*mutation_fn) (const char *dir);

static void mut_chmod (const char *d) { cleanup_free char *p = at (d, "a"); assert_int_equal (chmod (p, 0600), 0); }
static void mut_mtime (const char *d) { set_mtime (d, "a", 1600000001); }
static void mut_size (const char *d) { cleanup_free char *p = at (d, "a"); assert_int_equal (truncate (p, 1 << 21), 0); set_mtime (d, "a", 1600000000); }
static void mut_rename (const char *d) { cleanup_free char *p = at (d, "a"), *q = at (d, "b"); assert_int_equal (rename (p, q), 0); }
static void mut_new_file (const char *d) { make_file (d, "sub/new", 0, -1); set_mtime (d, "sub/new", 1600000000); set_mtime (d, "sub", 1600000000); }
static void mut_symlink (const char *d) { cleanup_free char *p = at (d, "link"); unlink (p); make_link (d, "link", "sub/b"); set_mtime (d, "link", 1600000000); }
static void mut_xattr (const char *d) { cleanup_free char *p = at (d, "a"); assert_int_equal (setxattr (p, "user.test", "v", 1, 0), 0); }
static void mut_root_xattr (const char *d) { assert_int_equal (setxattr (d, "user.test", "v", 1, 0), 0); }
static void mut_hardlink (const char *d) { cleanup_free char *p = at (d, "a"), *q = at (d, "sub/hl"); assert_int_equal (link (p, q), 0); set_mtime (d, "sub", 1600000000); }
static void mut_fifo (const char *d) { cleanup_free char *p = at (d, "sub/b"); unlink (p); assert_int_equal (mkfifo (p, 0644), 0); set_mtime (d, "sub/b", 1600000000); set_mtime (d, "sub", 1600000000); }
static void mut_chown (const char *d) { cleanup_free char *p = at (d, "a"); assert_int_equal (lchown (p, 1234, 5678), 0); }

static void
test_digest_changes (void **state)
{
  (void) state;
  /* Times and owners are not content: atelet's unpack keeps neither, so
   * they must not change the digest (a retry after a re-unpack would
   * otherwise never find the finished image). */
  static const struct { const char *name; mutation_fn fn; bool root_only; bool changes; } muts[] = {
    { "chmod", mut_chmod, false, true },       { "mtime", mut_mtime, false, false },
    { "size", mut_size, false, true },         { "rename", mut_rename, false, true },
    { "new file", mut_new_file, false, true }, { "symlink target", mut_symlink, false, true },
    { "xattr", mut_xattr, false, true },       { "root xattr", mut_root_xattr, false, true },
    { "hard link", mut_hardlink, false, true }, { "type", mut_fifo, false, true },
    { "owner", mut_chown, true, false },
  };
  char *base = make_vector_tree ();
  struct rootfs_scan ref;

  scan (base, false, &ref);
  for (size_t i = 0; i < ATE_N_ELEMENTS (muts); i++)
    {
      char *d;
      struct rootfs_scan s;
      if (muts[i].root_only && geteuid () != 0)
        continue;
      d = make_vector_tree ();
      muts[i].fn (d);
      scan (d, false, &s);
      bool same = memcmp (ref.tree_digest, s.tree_digest, ROOTFS_DIGEST_LEN) == 0;
      if (muts[i].changes && same)
        fail_msg ("tree digest did not change after: %s", muts[i].name);
      if (!muts[i].changes && !same)
        fail_msg ("tree digest changed after: %s", muts[i].name);
      rootfs_scan_clear (&s);
      rm_tree (d);
    }
  rootfs_scan_clear (&ref);
  rm_tree (base);
}

static void
test_digest_hardlink_inodes (void **state)
{
  (void) state;
  char *d = make_vector_tree ();
  struct rootfs_scan s;

  mut_hardlink (d);
  scan (d, true, &s);
  /* 5 names + root, but a and sub/hl share one inode. */
  assert_int_equal (s.entries, 6);
  assert_int_equal (s.inodes_used, 4);
  assert_int_equal (s.content_bytes, 3145728 + (1 << 20));
  rootfs_scan_clear (&s);
  rm_tree (d);
}

static void
test_digest_content (void **state)
{
  (void) state;
  char *a = make_tmpdir (), *b = make_tmpdir ();
  cleanup_free char *pb = at (b, "f");
  struct rootfs_scan sa, sb;
  char *zeros = xmalloc0 (300000);

  /* Zeros written as data vs. a hole: the same content. */
  make_file (a, "f", 300000, -1);
  cleanup_close int fd = open (pb, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  assert_int_equal (write (fd, zeros, 300000), 300000);
  set_mtime (a, "f", 1600000000);
  set_mtime (b, "f", 1600000000);
  scan (a, true, &sa);
  scan (b, true, &sb);
  assert_memory_equal (sa.tree_digest, sb.tree_digest, ROOTFS_DIGEST_LEN);
  assert_memory_equal (sa.content_digest, sb.content_digest, ROOTFS_DIGEST_LEN);
  rootfs_scan_clear (&sb);

  /* One changed byte, same size and mtime: only the content digest moves. */
  assert_int_equal (pwrite (fd, "x", 1, 200000), 1);
  set_mtime (b, "f", 1600000000);
  scan (b, true, &sb);
  assert_memory_equal (sa.tree_digest, sb.tree_digest, ROOTFS_DIGEST_LEN);
  assert_memory_not_equal (sa.content_digest, sb.content_digest, ROOTFS_DIGEST_LEN);
  rootfs_scan_clear (&sb);
  scan (b, false, &sb);
  assert_false (sb.has_content_digest);
  rootfs_scan_clear (&sa);
  rootfs_scan_clear (&sb);
  free (zeros);
  rm_tree (a);
  rm_tree (b);
}

static void
scan_threads (const char *dir, unsigned threads, struct rootfs_scan *s)
{
  struct rootfs_scan_opts o;
  struct ate_error *err = NULL;

  rootfs_scan_opts_init (&o);
  o.threads = threads;
  if (rootfs_scan_tree (dir, &o, s, &err) < 0)
    fail_msg ("scan: %s", err->msg);
}

static void
test_digest_chunks_parallel (void **state)
{
  (void) state;
  char *d = make_tmpdir ();
  cleanup_free char *big = at (d, "big");
  struct rootfs_scan one, four, changed;

  /* A sparse file spanning three chunks with data in the second and
   * third, next to small files: any thread count gives the same digest. */
  make_file (d, "big", (off_t) (2 * ROOTFS_CONTENT_CHUNK + 4096), 'x');
  cleanup_close int fd = open (big, O_WRONLY | O_CLOEXEC);
  assert_int_equal (pwrite (fd, "middle", 6, (off_t) ROOTFS_CONTENT_CHUNK + 100), 6);
  assert_int_equal (pwrite (fd, "tail", 4, (off_t) (2 * ROOTFS_CONTENT_CHUNK)), 4);
  for (int i = 0; i < 20; i++)
    {
      cleanup_free char *n = xasprintf ("small%02d", i);
      make_file (d, n, 1000 + i, 'a' + i);
    }
  scan_threads (d, 1, &one);
  scan_threads (d, 4, &four);
  assert_memory_equal (one.content_digest, four.content_digest, ROOTFS_DIGEST_LEN);
  assert_int_equal (one.n_files, 21);
  /* A byte in the middle chunk changes it (size and mtime kept). */
  assert_int_equal (pwrite (fd, "MIDDLE", 6, (off_t) ROOTFS_CONTENT_CHUNK + 100), 6);
  set_mtime (d, "big", 0);
  scan_threads (d, 3, &changed);
  set_mtime (d, "big", 0);
  rootfs_scan_clear (&one);
  scan_threads (d, 1, &one);
  assert_memory_equal (one.content_digest, changed.content_digest, ROOTFS_DIGEST_LEN);
  assert_memory_not_equal (four.content_digest, changed.content_digest, ROOTFS_DIGEST_LEN);
  rootfs_scan_clear (&one);
  rootfs_scan_clear (&four);
  rootfs_scan_clear (&changed);
  rm_tree (d);
}

static void
test_content_swapped_file (void **state)
{
  (void) state;
  char *d = make_tmpdir (), *e = make_tmpdir ();
  cleanup_free char *f = at (d, "sub/f"), *sub = at (d, "sub"), *away = at (e, "sub");
  struct rootfs_scan_opts o;
  struct rootfs_scan s;
  struct ate_error *err = NULL;

  make_dir (d, "sub");
  make_file (d, "sub/f", 100, 'a');
  make_file (e, "outside", 100, 'z');
  rootfs_scan_opts_init (&o);
  o.hash_content = false;
  assert_int_equal (rootfs_scan_tree (d, &o, &s, &err), 0);
  /* Between the walk and the hashing, sub becomes a symlink out of the
   * tree: the hasher must not follow it. */
  assert_int_equal (rename (sub, away), 0);
  cleanup_free char *target = xasprintf ("%s/sub", e);
  assert_int_equal (symlink (target, sub), 0);
  assert_true (rootfs_scan_hash_content (&s, &o, &err) < 0);
  ate_error_release (&err);
  rootfs_scan_clear (&s);

  /* A file replaced by another of the same size is noticed too. */
  unlink (sub);
  assert_int_equal (rename (away, sub), 0);
  assert_int_equal (rootfs_scan_tree (d, &o, &s, &err), 0);
  unlink (f);
  make_file (d, "sub/f", 100, 'b');
  assert_true (rootfs_scan_hash_content (&s, &o, &err) < 0);
  assert_int_equal (err->status, EAGAIN);
  ate_error_release (&err);
  rootfs_scan_clear (&s);
  rm_tree (d);
  rm_tree (e);
}

static void
sample_fingerprint (struct rootfs_fingerprint *fp)
{
  memset (fp, 0, sizeof (*fp));
  for (int i = 0; i < ROOTFS_DIGEST_LEN; i++)
    {
      fp->tree_digest[i] = (uint8_t) i;
      fp->content_digest[i] = (uint8_t) (255 - i);
      fp->options_digest[i] = (uint8_t) (i * 7);
    }
  fp->has_content_digest = true;
  fp->entries = 5;
  fp->content_bytes = 3145728;
  fp->inodes = 8198;
  fp->size_mib = 518;
  strcpy (fp->mkfs_version, "mke2fs 1.47.0 (5-Feb-2023)");
  rootfs_derive_uuid (fp->tree_digest, "u", fp->uuid);
  rootfs_derive_uuid (fp->tree_digest, "h", fp->hash_seed);
  fp->fake_time = 1704067200;
  fp->has_disk = true;
  fp->disk_ino = 42;
  fp->disk_size = 518ULL << 20;
  fp->disk_mtime_ns = 1764201600123456789LL;
  strcpy (fp->boot_id, "b39fe5e1-3ac0-45c7-ac28-453b77e602bf");
}

static void
test_fingerprint_roundtrip (void **state)
{
  (void) state;
  struct rootfs_fingerprint fp, back;
  struct ate_error *err = NULL;
  char k1[ROOTFS_CACHE_KEY_LEN + 1], k2[ROOTFS_CACHE_KEY_LEN + 1];
  cleanup_free char *text = NULL, *id = NULL;

  sample_fingerprint (&fp);
  text = rootfs_fingerprint_format (&fp, true);
  assert_true (str_has_prefix (text, "ateom-rootfs-fingerprint 1\n"));
  assert_non_null (strstr (text, "\nsize-mib 518\n"));
  assert_non_null (strstr (text, "\ndisk-mtime-ns 1764201600123456789\n"));
  assert_int_equal (rootfs_fingerprint_parse (text, strlen (text), &back, &err), 0);
  assert_true (back.has_disk);
  assert_int_equal (back.disk_ino, 42);
  assert_int_equal (back.disk_mtime_ns, fp.disk_mtime_ns);
  assert_true (rootfs_fingerprint_same_build (&fp, &back));

  /* The disk lines are not part of the identity or the cache key. */
  id = rootfs_fingerprint_format (&fp, false);
  assert_null (strstr (id, "disk-"));
  rootfs_fingerprint_cache_key (&fp, k1);
  back.disk_ino = 43;
  assert_true (rootfs_fingerprint_same_build (&fp, &back));
  rootfs_fingerprint_cache_key (&back, k2);
  assert_string_equal (k1, k2);
  assert_int_equal (strlen (k1), 64);

  /* The content digest is the only difference "except content" ignores. */
  back = fp;
  back.content_digest[0] ^= 1;
  assert_false (rootfs_fingerprint_same_build (&fp, &back));
  assert_true (rootfs_fingerprint_same_build_except_content (&fp, &back));
  back.size_mib++;
  assert_false (rootfs_fingerprint_same_build_except_content (&fp, &back));
  back = fp;

  /* Every identity field counts. */
  back.has_content_digest = false;
  assert_false (rootfs_fingerprint_same_build (&fp, &back));
  rootfs_fingerprint_cache_key (&back, k2);
  assert_string_not_equal (k1, k2);
  back = fp;
  strcpy (back.mkfs_version, "mke2fs 1.47.4 (1-Jan-2026)");
  assert_false (rootfs_fingerprint_same_build (&fp, &back));
  back = fp;
  back.options_digest[3] ^= 1;
  assert_false (rootfs_fingerprint_same_build (&fp, &back));
}

static void
expect_parse_error (const char *text, const char *needle)
{
  struct rootfs_fingerprint fp;
  struct ate_error *err = NULL;

  if (rootfs_fingerprint_parse (text, strlen (text), &fp, &err) == 0)
    fail_msg ("parsed although it should not: %s", needle);
  if (strstr (err->msg, needle) == NULL)
    fail_msg ("error \"%s\" does not mention \"%s\"", err->msg, needle);
  ate_error_release (&err);
}

static char *
replace (const char *s, const char *from, const char *to)
{
  const char *p = strstr (s, from);
  assert_non_null (p);
  return xasprintf ("%.*s%s%s", (int) (p - s), s, to, p + strlen (from));
}

static void
test_fingerprint_parse_errors (void **state)
{
  (void) state;
  struct rootfs_fingerprint fp;
  struct ate_error *err = NULL;
  cleanup_free char *text = NULL;
  char big[ROOTFS_FP_MAX_BYTES + 2];

  sample_fingerprint (&fp);
  text = rootfs_fingerprint_format (&fp, true);
  expect_parse_error ("", "unexpected end");
  expect_parse_error ("garbage\n", "expected \"key value\"");
  {
    cleanup_free char *t = xstrndup (text, strlen (text) - 1);
    expect_parse_error (t, "not terminated");
  }
  {
    cleanup_free char *t = xstrndup (text, (size_t) (strstr (text, "mkfs ") - text));
    expect_parse_error (t, "unexpected end");
  }
  {
    cleanup_free char *t = replace (text, "fingerprint 1", "fingerprint 2");
    assert_true (rootfs_fingerprint_parse (t, strlen (t), &fp, &err) < 0);
    assert_int_equal (err->status, EPROTO);
    ate_error_release (&err);
  }
  {
    cleanup_free char *t = replace (text, "inodes 8198", "inodes 8199");
    expect_parse_error (t, "geometry");
  }
  {
    cleanup_free char *t = replace (text, "entries 5", "entries 05");
    expect_parse_error (t, "decimal");
  }
  {
    cleanup_free char *t = replace (text, "entries 5", "entries -5");
    expect_parse_error (t, "decimal");
  }
  {
    cleanup_free char *t = replace (text, "size-mib 518", "size-mib 99999999999999999999999");
    expect_parse_error (t, "out of range");
  }
  {
    cleanup_free char *t = replace (text, "tree-digest sha256:00", "tree-digest sha256:0A");
    expect_parse_error (t, "hex");
  }
  {
    cleanup_free char *t = replace (text, "uuid ", "uuid X");
    expect_parse_error (t, "UUID");
  }
  {
    cleanup_free char *t = replace (text, "hash-seed", "hash_seed");
    expect_parse_error (t, "expected key \"hash-seed\"");
  }
  {
    cleanup_free char *t = xasprintf ("%sextra 1\n", text);
    expect_parse_error (t, "after the last key");
  }
  {
    cleanup_free char *t = replace (text, "mkfs mke2fs", "mkfs \tmke2fs");
    expect_parse_error (t, "non-printable");
  }
  {
    cleanup_free char *t = replace (text, "\ndisk-size", "\n");
    expect_parse_error (t, "expected key \"disk-size\"");
  }
  memset (big, 'a', sizeof (big) - 1);
  big[sizeof (big) - 1] = '\0';
  assert_true (rootfs_fingerprint_parse (big, strlen (big), &fp, &err) < 0);
  assert_int_equal (err->status, EFBIG);
  ate_error_release (&err);
  assert_true (rootfs_fingerprint_parse ("a\0b\n", 4, &fp, &err) < 0);
  assert_non_null (strstr (err->msg, "NUL"));
  ate_error_release (&err);
}

static void
test_fingerprint_file (void **state)
{
  (void) state;
  char *d = make_tmpdir ();
  cleanup_free char *disk = at (d, "actor-rootfs.ext4");
  cleanup_free char *path = rootfs_fingerprint_path (disk);
  struct rootfs_fingerprint fp, back;
  struct ate_error *err = NULL;
  struct stat st;

  assert_true (str_has_suffix (path, "/actor-rootfs.ext4.fingerprint"));
  assert_true (rootfs_fingerprint_read (path, &back, &err) < 0);
  assert_int_equal (err->status, ENOENT);
  ate_error_release (&err);
  sample_fingerprint (&fp);
  assert_int_equal (rootfs_fingerprint_write (path, &fp, true, &err), 0);
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_mode & 0777, 0600);
  assert_int_equal (rootfs_fingerprint_read (path, &back, &err), 0);
  assert_true (rootfs_fingerprint_same_build (&fp, &back));
  assert_int_equal (back.disk_size, fp.disk_size);
  /* A truncated file (a crash mid-write of someone else's tool) is an
   * error naming the file, not a crash or a match. */
  assert_int_equal (truncate (path, 100), 0);
  assert_true (rootfs_fingerprint_read (path, &back, &err) < 0);
  assert_non_null (strstr (err->msg, "actor-rootfs.ext4.fingerprint"));
  ate_error_release (&err);
  rm_tree (d);
}

static void
test_fingerprint_describes (void **state)
{
  (void) state;
  struct rootfs_fingerprint fp;
  struct stat st;
  char boot[ROOTFS_UUID_LEN + 1];

  sample_fingerprint (&fp);
  memset (&st, 0, sizeof (st));
  st.st_ino = 42;
  st.st_size = 518LL << 20;
  st.st_mtim.tv_sec = 1764201600;
  st.st_mtim.tv_nsec = 123456789;
  assert_true (rootfs_fingerprint_describes (&fp, &st, fp.boot_id));
  assert_false (rootfs_fingerprint_describes (&fp, &st, "00000000-0000-0000-0000-000000000000"));
  st.st_mtim.tv_nsec++; /* written by a VM */
  assert_false (rootfs_fingerprint_describes (&fp, &st, fp.boot_id));
  st.st_mtim.tv_nsec--;
  st.st_ino++; /* replaced */
  assert_false (rootfs_fingerprint_describes (&fp, &st, fp.boot_id));
  fp.has_disk = false;
  st.st_ino--;
  assert_false (rootfs_fingerprint_describes (&fp, &st, fp.boot_id));
  rootfs_boot_id (boot);
  assert_int_equal (strlen (boot), 36);
}

static void
test_derive_uuid (void **state)
{
  (void) state;
  uint8_t dg[ROOTFS_DIGEST_LEN] = { 1, 2, 3 };
  char a[ROOTFS_UUID_LEN + 1], b[ROOTFS_UUID_LEN + 1], c[ROOTFS_UUID_LEN + 1];

  rootfs_derive_uuid (dg, "x", a);
  rootfs_derive_uuid (dg, "x", b);
  rootfs_derive_uuid (dg, "y", c);
  assert_string_equal (a, b);
  assert_string_not_equal (a, c);
  assert_int_equal (strlen (a), 36);
  assert_int_equal (a[8], '-');
  assert_int_equal (a[14], '8');                 /* version 8 */
  assert_non_null (strchr ("89ab", a[19]));      /* RFC variant */
  dg[31] ^= 1;
  rootfs_derive_uuid (dg, "x", c);
  assert_string_not_equal (a, c);
}

static void
test_temp_naming (void **state)
{
  (void) state;
  char *d = make_tmpdir ();
  cleanup_free char *disk = at (d, "actor-rootfs.ext4");
  cleanup_free char *tmp = NULL, *base = NULL;
  struct ate_error *err = NULL;
  int fd = -1;

  assert_true (rootfs_temp_name_matches ("actor-rootfs.ext4", "actor-rootfs.ext4.aZ09xY.building"));
  assert_false (rootfs_temp_name_matches ("actor-rootfs.ext4", "actor-rootfs.ext4"));
  assert_false (rootfs_temp_name_matches ("actor-rootfs.ext4", "actor-rootfs.ext4.fingerprint"));
  assert_false (rootfs_temp_name_matches ("actor-rootfs.ext4", "actor-rootfs.ext4.aZ09x.building"));
  assert_false (rootfs_temp_name_matches ("actor-rootfs.ext4", "actor-rootfs.ext4.aZ0-xY.building"));
  assert_false (rootfs_temp_name_matches ("actor-rootfs.ext4", "golden-rootfs.ext4.aZ09xY.building"));
  assert_false (rootfs_temp_name_matches ("actor-rootfs.ext4", "actor-rootfs.ext4.aZ09xY.buildingx"));

  assert_int_equal (rootfs_temp_create (disk, &tmp, &fd, &err), 0);
  base = ate_path_basename (tmp);
  assert_true (rootfs_temp_name_matches ("actor-rootfs.ext4", base));
  struct stat st;
  assert_int_equal (fstat (fd, &st), 0);
  assert_int_equal (st.st_mode & 0777, 0600);
  close (fd);
  rm_tree (d);
}

static void
test_temp_cleanup (void **state)
{
  (void) state;
  char *d = make_tmpdir ();
  cleanup_free char *disk = at (d, "actor-rootfs.ext4");
  cleanup_free char *live = NULL;
  cleanup_free char *stale_fp = NULL, *own_fp = NULL;
  struct ate_error *err = NULL;
  int live_fd = -1;

  /* Two leftovers of a crashed build, one temporary of a live build, the
   * disk itself, its fingerprint, an unrelated file, and fingerprint
   * temporaries of a dead and of this process. */
  make_file (d, "actor-rootfs.ext4.abc123.building", 4096, 'x');
  make_file (d, "actor-rootfs.ext4.ZZZ999.building", 0, -1);
  assert_int_equal (rootfs_temp_create (disk, &live, &live_fd, &err), 0);
  make_file (d, "actor-rootfs.ext4", 4096, 'x');
  make_file (d, "actor-rootfs.ext4.fingerprint", 10, 'x');
  make_file (d, "golden-rootfs.ext4.abc123.building", 10, 'x');
  stale_fp = xasprintf ("actor-rootfs.ext4.fingerprint.tmp.%d.0", 999999999);
  own_fp = xasprintf ("actor-rootfs.ext4.fingerprint.tmp.%d.0", (int) getpid ());
  make_file (d, stale_fp, 10, 'x');
  make_file (d, own_fp, 10, 'x');
  /* Not a file of ours although named like one: left alone, no error. */
  make_dir (d, "actor-rootfs.ext4.DirDir.building");
  {
    cleanup_free char *p = at (d, "actor-rootfs.ext4.Fifo00.building");
    assert_int_equal (mkfifo (p, 0600), 0);
  }

  assert_int_equal (rootfs_temp_cleanup (disk, &err), 3);
  {
    cleanup_free char *p1 = at (d, "actor-rootfs.ext4.abc123.building");
    cleanup_free char *p2 = at (d, "actor-rootfs.ext4.ZZZ999.building");
    cleanup_free char *p3 = at (d, "golden-rootfs.ext4.abc123.building");
    cleanup_free char *p4 = at (d, stale_fp), *p5 = at (d, own_fp);
    cleanup_free char *p6 = at (d, "actor-rootfs.ext4.fingerprint");
    assert_false (ate_path_exists (p1));
    assert_false (ate_path_exists (p2));
    assert_false (ate_path_exists (p4));
    assert_true (ate_path_exists (live));
    assert_true (ate_path_exists (disk));
    assert_true (ate_path_exists (p3));
    assert_true (ate_path_exists (p5));
    assert_true (ate_path_exists (p6));
    cleanup_free char *p7 = at (d, "actor-rootfs.ext4.DirDir.building");
    cleanup_free char *p8 = at (d, "actor-rootfs.ext4.Fifo00.building");
    assert_true (ate_is_dir (p7));
    assert_true (ate_path_exists (p8));
  }
  /* Once the live build is gone (its lock released), it is a leftover. */
  close (live_fd);
  assert_int_equal (rootfs_temp_cleanup (disk, &err), 1);
  assert_false (ate_path_exists (live));
  rm_tree (d);
}

static void
test_lineage_key (void **state)
{
  (void) state;
  static const char *good[] = { "default:counter-microvm:a1", "ns:tmpl.v2:x", "a:b:c",
                                "default:counter-microvm:a1:sidecar" };
  static const char *bad[] = { "", "default:counter", "a:b:c:d:e", "A:b:c", "a:b/c:d", "a:b:../x",
                               "a::c", ":b:c", "a:b:", "a:b:c/d", "a:-b:c", "a:b:c:",
                               "a:b:c:D", "a:b:c:../d" };
  struct ate_error *err = NULL;

  for (size_t i = 0; i < ATE_N_ELEMENTS (good); i++)
    if (rootfs_lineage_key_validate (good[i], &err) < 0)
      fail_msg ("%s: %s", good[i], err->msg);
  for (size_t i = 0; i < ATE_N_ELEMENTS (bad); i++)
    {
      if (rootfs_lineage_key_validate (bad[i], &err) == 0)
        fail_msg ("accepted bad lineage key \"%s\"", bad[i]);
      assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
      ate_error_release (&err);
    }
}

static void
test_ext4_reject (void **state)
{
  (void) state;
  char *d = make_tmpdir ();
  cleanup_free char *p = at (d, "img");
  struct rootfs_ext4_sb sb;
  struct ate_error *err = NULL;

  make_file (d, "img", 1 << 20, 'x');
  cleanup_close int fd = open (p, O_RDONLY | O_CLOEXEC);
  assert_true (rootfs_ext4_read_sb (fd, &sb, &err) < 0);
  assert_non_null (strstr (err->msg, "not an ext4 image"));
  ate_error_release (&err);
  rm_tree (d);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_geometry_vector),
    cmocka_unit_test (test_geometry_errors),
    cmocka_unit_test (test_scan_too_deep),
    cmocka_unit_test (test_digest_stable),
    cmocka_unit_test (test_digest_changes),
    cmocka_unit_test (test_digest_hardlink_inodes),
    cmocka_unit_test (test_digest_content),
    cmocka_unit_test (test_digest_chunks_parallel),
    cmocka_unit_test (test_content_swapped_file),
    cmocka_unit_test (test_fingerprint_roundtrip),
    cmocka_unit_test (test_fingerprint_parse_errors),
    cmocka_unit_test (test_fingerprint_file),
    cmocka_unit_test (test_fingerprint_describes),
    cmocka_unit_test (test_derive_uuid),
    cmocka_unit_test (test_temp_naming),
    cmocka_unit_test (test_temp_cleanup),
    cmocka_unit_test (test_lineage_key),
    cmocka_unit_test (test_ext4_reject),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
