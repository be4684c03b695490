/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime/rootfs with the real mkfs.ext4 and debugfs: image contents,
 * e2fsck, byte determinism, reuse, deadlines and retries, SIGKILL of mkfs,
 * concurrency, the image cache, golden templates, shutdown.
 *
 * mkfs runs through a wrapper script (the manager's mkfs path) that counts
 * invocations and can be told to wait, fail or hang after writing.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "rootfs/cache.h"
#include "rootfs/fingerprint.h"
#include "rootfs/rootfs.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

static char *real_mkfs;

struct fixture
{
  char *dir;     /* everything of this test */
  char *ctl;     /* wrapper control files */
  char *wrapper; /* mkfs path given to the manager */
  char *cache;
  char *base;
};

static char *
at (const char *dir, const char *rel)
{
  return xasprintf ("%s/%s", dir, rel);
}

static char *
find_tool (const char *name)
{
  static const char *dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin" };
  for (size_t i = 0; i < ATE_N_ELEMENTS (dirs); i++)
    {
      char *p = xasprintf ("%s/%s", dirs[i], name);
      if (access (p, X_OK) == 0)
        return p;
      free (p);
    }
  return NULL;
}

static void
write_text (const char *path, const char *text, mode_t mode)
{
  struct ate_error *err = NULL;
  if (ate_write_file (path, text, strlen (text), mode, &err) < 0)
    fail_msg ("%s", err->msg);
}

static void
ctl_set (struct fixture *f, const char *name, const char *value)
{
  cleanup_free char *p = at (f->ctl, name);
  if (value)
    write_text (p, value, 0644);
  else
    unlink (p);
}

/* Number of mkfs runs that built something (the -V probe is not one). */
static int
mkfs_runs (struct fixture *f)
{
  cleanup_free char *p = at (f->ctl, "count");
  cleanup_free char *buf = NULL;
  struct ate_error *err = NULL;
  size_t len = 0;
  int n = 0;

  if (ate_read_file (p, 1 << 20, &buf, &len, &err) < 0)
    {
      ate_error_release (&err);
      return 0;
    }
  for (size_t i = 0; i < len; i++)
    n += buf[i] == '\n';
  return n;
}

static int
setup (void **state)
{
  struct fixture *f = xmalloc0 (sizeof (*f));
  char tmpl[] = "/tmp/ate-test-rootfs-build-XXXXXX";
  cleanup_free char *script = NULL;

  assert_non_null (mkdtemp (tmpl));
  f->dir = xstrdup (tmpl);
  f->ctl = at (f->dir, "ctl");
  f->wrapper = at (f->dir, "mkfs-wrapper");
  f->cache = at (f->dir, "cache");
  f->base = at (f->dir, "base");
  assert_int_equal (mkdir (f->ctl, 0755), 0);
  assert_int_equal (mkdir (f->base, 0755), 0);
  script = xasprintf ("#!/bin/sh\n"
                      "ctl='%s'\n"
                      "case \" $* \" in *\" -d \"*)\n"
                      "  echo \"$*\" >> \"$ctl/count\"\n"
                      "  if [ -f \"$ctl/delay\" ]; then sleep \"$(cat \"$ctl/delay\")\"; fi\n"
                      "  if [ -f \"$ctl/fail\" ]; then cat \"$ctl/fail\" >&2; exit 1; fi\n"
                      "  if [ -f \"$ctl/starve\" ]; then\n"
                      "    # real mkfs, too few inodes (-N) or blocks (size)\n"
                      "    what=$(cat \"$ctl/starve\"); n=$#; i=0; prev=\n"
                      "    for a in \"$@\"; do\n"
                      "      i=$((i + 1))\n"
                      "      if [ \"$what\" = inodes ] && [ \"$prev\" = -N ]; then a=16; fi\n"
                      "      if [ \"$what\" = blocks ] && [ $i -eq $n ]; then a=6M; fi\n"
                      "      set -- \"$@\" \"$a\"; prev=$a\n"
                      "    done\n"
                      "    shift $n\n"
                      "  fi\n"
                      "  if [ -f \"$ctl/hang\" ]; then\n"
                      "    '%s' \"$@\" || exit $?\n"
                      "    echo $$ > \"$ctl/pid.tmp\"; mv \"$ctl/pid.tmp\" \"$ctl/pid\"\n"
                      "    exec sleep 60\n"
                      "  fi;;\n"
                      "esac\n"
                      "exec '%s' \"$@\"\n",
                      f->ctl, real_mkfs, real_mkfs);
  write_text (f->wrapper, script, 0755);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  struct ate_error *err = NULL;
  cleanup_free char *mnt = at (f->dir, "tmpfs");

  cleanup_free char *xfs = at (f->dir, "xfs");

  /* A test that failed between mount and umount. */
  umount2 (mnt, MNT_DETACH);
  umount2 (xfs, MNT_DETACH);
  assert_int_equal (ate_rm_rf (f->dir, &err), 0);
  free (f->dir);
  free (f->ctl);
  free (f->wrapper);
  free (f->cache);
  free (f->base);
  free (f);
  assert_int_equal (ate_proc_tracked_count (), 0);
  return 0;
}

static struct rootfs_manager *
manager (struct fixture *f, uint64_t cache_bytes)
{
  struct rootfs_config cfg;
  struct rootfs_manager *m = NULL;
  struct ate_error *err = NULL;

  rootfs_config_init (&cfg);
  cfg.base_path = f->base;
  cfg.cache_dir = f->cache;
  cfg.cache_max_bytes = cache_bytes;
  cfg.mkfs_path = f->wrapper;
  if (rootfs_manager_new (&cfg, &m, &err) < 0)
    fail_msg ("%s", err->msg);
  return m;
}

static void
make_file (const char *dir, const char *rel, const char *content, time_t mtime)
{
  cleanup_free char *p = at (dir, rel);
  struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
  write_text (p, content, 0644);
  assert_int_equal (utimensat (AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* A small tree with every kind of entry mkfs copies. */
static char *
make_tree (struct fixture *f, const char *name)
{
  char *d = at (f->dir, name);
  cleanup_free char *sub = at (d, "etc"), *bin = at (d, "bin"), *lnk = at (d, "bin/sh-link");
  cleanup_free char *fifo = at (d, "etc/fifo"), *hl = at (d, "bin/hard");
  cleanup_free char *tool = at (d, "bin/tool");

  assert_int_equal (mkdir (d, 0700), 0); /* as atelet makes bundle roots */
  assert_int_equal (mkdir (sub, 0750), 0);
  assert_int_equal (mkdir (bin, 0755), 0);
  make_file (d, "etc/hostname", "actor\n", 1600000000);
  make_file (d, "bin/tool", "#!/bin/sh\necho tool\n", 1600000000);
  assert_int_equal (chmod (tool, 04755), 0);
  assert_int_equal (symlink ("tool", lnk), 0);
  assert_int_equal (mkfifo (fifo, 0600), 0);
  assert_int_equal (link (tool, hl), 0);
  assert_int_equal (setxattr (tool, "user.origin", "layer-3", 7, 0), 0);
  if (geteuid () == 0)
    {
      assert_int_equal (chown (d, 1000, 1000), 0);
      assert_int_equal (lchown (sub, 0, 42), 0);
      cleanup_free char *h = at (d, "etc/hostname");
      assert_int_equal (lchown (h, 1001, 1002), 0);
    }
  return d;
}

/* What a second unpack by atelet changes: every time (now, with
 * nanoseconds) and, when root runs the test, every owner. */
static void
unpack_again (const char *dir)
{
  char *argv[] = { (char *) "find", (char *) dir, (char *) "-exec", (char *) "touch",
                   (char *) "-h", (char *) "-d", (char *) "2031-05-06 07:08:09.123456789",
                   (char *) "{}", (char *) "+", NULL };
  struct ate_error *err = NULL;
  if (geteuid () == 0)
    {
      cleanup_free char *tool = at (dir, "bin/tool");
      char *cargv[] = { (char *) "chown", (char *) "-hR", (char *) "4242:4343", (char *) dir,
                        NULL };
      if (ate_proc_run (cargv, NULL, ATE_DEADLINE_NONE, NULL, &err) < 0)
        fail_msg ("chown: %s", err->msg);
      /* chown clears the set-user-ID bit; the mode is content. */
      if (ate_path_exists (tool))
        assert_int_equal (chmod (tool, 04755), 0);
    }
  if (ate_proc_run (argv, NULL, ATE_DEADLINE_NONE, NULL, &err) < 0)
    fail_msg ("touch: %s", err->msg);
}

static int
try_copy_tree (const char *from, const char *to, struct ate_error **err)
{
  char *argv[] = { (char *) "cp", (char *) "-a", (char *) from, (char *) to, NULL };
  return ate_proc_run (argv, NULL, ATE_DEADLINE_NONE, NULL, err);
}

static void
copy_tree (const char *from, const char *to)
{
  struct ate_error *err = NULL;
  if (try_copy_tree (from, to, &err) < 0)
    fail_msg ("cp: %s", err->msg);
}

static char *
run_tool (char *const argv[], int *status)
{
  struct ate_spawn_opts o;
  struct ate_proc *p = NULL;
  struct ate_error *err = NULL;
  char *out = xmalloc0 (1 << 20);
  size_t len = 0;

  ate_spawn_opts_init (&o);
  o.stdout_fd = ATE_SPAWN_PIPE;
  o.stderr_fd = ATE_SPAWN_STDOUT;
  if (ate_proc_spawn (argv, &o, &p, &err) < 0)
    fail_msg ("%s", err->msg);
  for (;;)
    {
      ssize_t r = read (ate_proc_output_fd (p), out + len, (1 << 20) - 1 - len);
      if (r <= 0)
        break;
      len += (size_t) r;
    }
  assert_int_equal (ate_proc_wait (p, ATE_DEADLINE_NONE, status, &err), 0);
  ate_proc_free (p);
  return out;
}

static void
assert_fsck_clean (const char *image)
{
  cleanup_free char *e2fsck = find_tool ("e2fsck");
  char *argv[] = { e2fsck, (char *) "-fn", (char *) image, NULL };
  int status = 0;
  cleanup_free char *out = run_tool (argv, &status);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    fail_msg ("e2fsck -fn %s: %s\n%s", image, ate_proc_status_string (status), out);
}

static char *
debugfs (const char *image, const char *cmd)
{
  cleanup_free char *tool = find_tool ("debugfs");
  char *argv[] = { tool, (char *) "-R", (char *) cmd, (char *) image, NULL };
  int status = 0;
  char *out = run_tool (argv, &status);
  assert_true (WIFEXITED (status));
  return out;
}

static void
assert_contains (const char *hay, const char *needle)
{
  if (strstr (hay, needle) == NULL)
    fail_msg ("expected \"%s\" in:\n%s", needle, hay);
}

/* cmp(1) for sparse images: a range that is a hole in both files is zero
 * in both; everything else is read and compared.  (cmp reads 512 MiB of
 * holes per image, seconds per test.) */
static off_t
next_data (int fd, off_t from, off_t size)
{
  off_t d = lseek (fd, from, SEEK_DATA);
  return d < 0 ? size : d;
}

static off_t
next_hole (int fd, off_t from, off_t size)
{
  off_t h = lseek (fd, from, SEEK_HOLE);
  return h < 0 || h > size ? size : h;
}

static void
assert_same_bytes (const char *a, const char *b)
{
  cleanup_close int fa = open (a, O_RDONLY | O_CLOEXEC), fb = open (b, O_RDONLY | O_CLOEXEC);
  cleanup_free char *ba = xmalloc (1 << 20), *bb = xmalloc (1 << 20);
  struct stat sa, sb;
  off_t off = 0;

  assert_true (fa >= 0 && fb >= 0);
  assert_int_equal (fstat (fa, &sa), 0);
  assert_int_equal (fstat (fb, &sb), 0);
  if (sa.st_size != sb.st_size)
    fail_msg ("%s and %s differ in size", a, b);
  while (off < sa.st_size)
    {
      off_t da = next_data (fa, off, sa.st_size), db = next_data (fb, off, sa.st_size);
      off_t start = da < db ? da : db, end;
      if (start >= sa.st_size)
        break;
      end = da == start ? next_hole (fa, start, sa.st_size) : da;
      off_t eb = db == start ? next_hole (fb, start, sa.st_size) : db;
      if (eb < end)
        end = eb;
      if (end - start > (1 << 20))
        end = start + (1 << 20);
      size_t n = (size_t) (end - start);
      assert_int_equal (pread (fa, ba, n, start), (ssize_t) n);
      assert_int_equal (pread (fb, bb, n, start), (ssize_t) n);
      if (memcmp (ba, bb, n) != 0)
        fail_msg ("%s and %s differ in [%lld, %lld)", a, b, (long long) start, (long long) end);
      off = end;
    }
}

/* Build and wait for the job's background work (the cache commit), so
 * that the cache is in its final state when the test looks at it. */
static void
build_ok (struct rootfs_manager *m, const char *src, const char *disk,
          struct rootfs_outcome *o)
{
  struct ate_error *err = NULL;
  if (rootfs_disk_for_run_ex (m, src, disk, ATE_DEADLINE_NONE, o, &err) < 0)
    fail_msg ("%s", err->msg);
  rootfs_manager_wait_idle (m);
}

static void
assert_no_temporaries (const char *dir)
{
  cleanup_dir DIR *d = opendir (dir);
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (str_has_suffix (de->d_name, ".building") || str_has_suffix (de->d_name, ".staging"))
      fail_msg ("temporary file left: %s", de->d_name);
}

/* ---- contents ---- */

static void
test_image_contents (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  cleanup_free char *fp = rootfs_fingerprint_path (disk);
  struct rootfs_outcome o;

  build_ok (m, src, disk, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (o.geometry.entries, 8);
  assert_int_equal (mkfs_runs (f), 1);
  assert_true (ate_is_regular_file (fp));
  assert_fsck_clean (disk);
  {
    /* Root inode fixed at 0:0 0755 although the source root is 0700
     * (owned by 1000 when root runs the test). */
    cleanup_free char *s = debugfs (disk, "stat /");
    assert_contains (s, "Mode:  0755");
    assert_contains (s, "User:     0   Group:     0");
  }
  {
    cleanup_free char *s = debugfs (disk, "stat /bin/tool");
    assert_contains (s, "Mode:  04755");
    assert_contains (s, "Links: 2");
    assert_contains (s, "user.origin (7) = \"layer-3\"");
    /* Every time is the fixed epoch: atelet's unpack keeps none. */
    assert_contains (s, "mtime: 0x65920080:00000000");
    assert_contains (s, "atime: 0x65920080:00000000");
    assert_contains (s, "ctime: 0x65920080:00000000");
    assert_contains (s, "crtime: 0x65920080:00000000");
  }
  {
    cleanup_free char *s = debugfs (disk, "stat /bin/sh-link");
    assert_contains (s, "Type: symlink");
    assert_contains (s, "Fast link dest: \"tool\"");
  }
  {
    cleanup_free char *s = debugfs (disk, "stat /etc/fifo");
    assert_contains (s, "Type: FIFO");
  }
  {
    /* Owners are root whoever owns the source (1001:1002 and 0:42 when
     * root runs the test): atelet's unpack keeps none. */
    cleanup_free char *s = debugfs (disk, "stat /etc/hostname");
    cleanup_free char *e = debugfs (disk, "stat /etc");
    cleanup_free char *l = debugfs (disk, "stat /bin/sh-link");
    assert_contains (s, "User:     0   Group:     0");
    assert_contains (s, "mtime: 0x65920080:00000000");
    assert_contains (e, "Mode:  0750");
    assert_contains (e, "User:     0   Group:     0");
    assert_contains (e, "mtime: 0x65920080:00000000");
    assert_contains (l, "User:     0   Group:     0");
    assert_contains (l, "mtime: 0x65920080:00000000");
  }
  rootfs_manager_free (m);
}

static void
test_large_file (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = at (f->dir, "big"), *huge = at (src, "huge");
  cleanup_free char *disk = at (f->dir, "big.ext4");
  struct rootfs_outcome o;
  int fd;

  /* > 2 GiB (e2fsprogs 1.47.3 fails on these): sparse, so it costs nothing. */
  assert_int_equal (mkdir (src, 0755), 0);
  fd = open (huge, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "end", 3, (off_t) 2200 << 20), 3);
  close (fd);
  build_ok (m, src, disk, &o);
  assert_true (o.geometry.content_bytes > (2ULL << 30));
  assert_fsck_clean (disk);
  cleanup_free char *s = debugfs (disk, "stat /huge");
  assert_contains (s, "Size: 2306867203");
  rootfs_manager_free (m);
}

/* ---- determinism ---- */

static void
test_deterministic (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *copy = at (f->dir, "copy"), *mnt = at (f->dir, "tmpfs");
  cleanup_free char *d1 = at (f->dir, "d1.ext4"), *d2 = at (f->dir, "d2.ext4");
  cleanup_free char *d3 = at (f->dir, "d3.ext4"), *tcopy = at (mnt, "src");
  struct rootfs_outcome o;

  build_ok (m, src, d1, &o);
  sleep (1); /* a different second for everything mkfs might stamp */
  /* As atelet unpacks: fresh times (with nanoseconds), other owners. */
  copy_tree (src, copy);
  unpack_again (copy);
  build_ok (m, copy, d2, &o);
  assert_int_equal (mkfs_runs (f), 2);
  assert_same_bytes (d1, d2);
  {
    cleanup_free char *p1 = rootfs_fingerprint_path (d1), *p2 = rootfs_fingerprint_path (d2);
    struct rootfs_fingerprint a, b;
    struct ate_error *e = NULL;
    assert_int_equal (rootfs_fingerprint_read (p1, &a, &e), 0);
    assert_int_equal (rootfs_fingerprint_read (p2, &b, &e), 0);
    assert_true (rootfs_fingerprint_same_build (&a, &b));
  }
  /* From another file system (tmpfs: other inode numbers, readdir order,
   * hole layout, no O_NOATIME semantics). */
  if (geteuid () == 0)
    {
      assert_int_equal (mkdir (mnt, 0755), 0);
      assert_int_equal (mount ("tmpfs", mnt, "tmpfs", 0, "size=64m"), 0);
      struct ate_error *err = NULL;
      int r = try_copy_tree (src, tcopy, &err);
      if (r == 0)
        r = rootfs_disk_for_run_ex (m, tcopy, d3, ATE_DEADLINE_NONE, &o, &err);
      assert_int_equal (umount (mnt), 0);
      if (r < 0)
        fail_msg ("%s", err->msg);
      assert_same_bytes (d1, d3);
      /* Owned by root throughout, as atelet unpacks (the build then skips
       * resetting owners): the same bytes. */
      cleanup_free char *rooted = at (f->dir, "rooted"), *d4 = at (f->dir, "d4.ext4");
      cleanup_free char *tool = at (rooted, "bin/tool");
      char *argv[] = { (char *) "chown", (char *) "-hR", (char *) "0:0", rooted, NULL };
      copy_tree (src, rooted);
      if (ate_proc_run (argv, NULL, ATE_DEADLINE_NONE, NULL, &err) < 0)
        fail_msg ("chown: %s", err->msg);
      assert_int_equal (chmod (tool, 04755), 0);
      build_ok (m, rooted, d4, &o);
      assert_same_bytes (d1, d4);
    }
  assert_fsck_clean (d2);
  rootfs_manager_free (m);
}

/* ---- reuse and rebuild ---- */

static void
test_reuse_and_rebuild (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  struct rootfs_outcome o;
  struct ate_error *err = NULL;

  build_ok (m, src, disk, &o);
  build_ok (m, src, disk, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_REUSED);
  assert_int_equal (mkfs_runs (f), 1);

  /* A VM wrote to the disk: never reused as if it were fresh. */
  {
    cleanup_close int fd = open (disk, O_WRONLY | O_CLOEXEC);
    usleep (20000);
    assert_int_equal (pwrite (fd, "x", 1, 4 << 20), 1);
  }
  build_ok (m, src, disk, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 2);

  /* The tree changed: rebuilt. */
  make_file (src, "new-file", "new\n", 1600000000);
  build_ok (m, src, disk, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 3);
  cleanup_free char *s = debugfs (disk, "stat /new-file");
  assert_contains (s, "Size: 4");

  /* Restore without a template: a fresh build on every call. */
  assert_int_equal (rootfs_disk_rebuild_ex (m, src, disk, ATE_DEADLINE_NONE, &o, &err), 0);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 4);
  assert_fsck_clean (disk);
  rootfs_manager_free (m);
  /* The replaced disks were set aside and removed after each job. */
  assert_no_temporaries (f->dir);
}

/* ---- deadlines ---- */

static void
wait_for_file (const char *path, int ms)
{
  for (int i = 0; i < ms / 10 && !ate_path_exists (path); i++)
    usleep (10000);
  assert_true (ate_path_exists (path));
}

static void
test_deadline_then_join (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  struct rootfs_outcome o;
  struct ate_error *err = NULL;

  ctl_set (f, "delay", "1");
  assert_true (rootfs_disk_for_run_ex (m, src, disk, ate_deadline_in_ms (200), &o, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_DEADLINE_EXCEEDED);
  assert_contains (err->msg, "still being prepared");
  ate_error_release (&err);
  assert_false (ate_path_exists (disk));
  /* The retry joins the running build: one mkfs. */
  assert_int_equal (rootfs_disk_for_run_ex (m, src, disk, ATE_DEADLINE_NONE, &o, &err), 0);
  assert_true (o.joined);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 1);
  assert_fsck_clean (disk);
  rootfs_manager_free (m);
}

static void
test_deadline_then_retry_after_finish (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  cleanup_free char *fp = rootfs_fingerprint_path (disk);
  struct rootfs_outcome o;
  struct ate_error *err = NULL;

  /* Run: the build finishes after the caller gave up; the retry reuses
   * it through the fingerprint. */
  ctl_set (f, "delay", "0.5");
  assert_true (rootfs_disk_for_run (m, src, disk, ate_deadline_in_ms (50), &err) < 0);
  ate_error_release (&err);
  wait_for_file (fp, 5000);
  usleep (100000);
  assert_int_equal (rootfs_disk_for_run_ex (m, src, disk, ATE_DEADLINE_NONE, &o, &err), 0);
  assert_int_equal (mkfs_runs (f), 1);

  /* Rebuild: the unreceived build is handed to the retry once; the next
   * rebuild runs mkfs again. */
  assert_true (rootfs_disk_rebuild (m, src, disk, ate_deadline_in_ms (50), &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_DEADLINE_EXCEEDED);
  ate_error_release (&err);
  usleep (1500000);
  assert_int_equal (mkfs_runs (f), 2);
  assert_int_equal (rootfs_disk_rebuild_ex (m, src, disk, ATE_DEADLINE_NONE, &o, &err), 0);
  assert_int_equal (mkfs_runs (f), 2);
  ctl_set (f, "delay", NULL);
  assert_int_equal (rootfs_disk_rebuild_ex (m, src, disk, ATE_DEADLINE_NONE, &o, &err), 0);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 3);
  rootfs_manager_free (m);
}

static void
test_sigkill_mkfs (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  cleanup_free char *pidfile = at (f->ctl, "pid"), *pid = NULL;
  cleanup_free char *leftover = at (f->dir, "actor-rootfs.ext4.Crash1.building");
  struct rootfs_outcome o;
  struct ate_error *err = NULL;
  size_t len;

  /* mkfs has written the temporary file and is still running when it is
   * killed. */
  ctl_set (f, "hang", "1");
  assert_true (rootfs_disk_for_run (m, src, disk, ate_deadline_in_ms (100), &err) < 0);
  ate_error_release (&err);
  wait_for_file (pidfile, 5000);
  assert_int_equal (ate_read_file (pidfile, 64, &pid, &len, &err), 0);
  assert_int_equal (kill (atoi (pid), SIGKILL), 0);
  assert_true (rootfs_disk_for_run (m, src, disk, ATE_DEADLINE_NONE, &err) < 0);
  assert_contains (err->msg, "killed by signal 9");
  ate_error_release (&err);
  assert_false (ate_path_exists (disk));
  rootfs_manager_wait_idle (m); /* the staged source goes after the result */
  assert_no_temporaries (f->dir);
  /* A crash leftover (no live holder) is removed by the next build, which
   * succeeds. */
  write_text (leftover, "partial", 0600);
  ctl_set (f, "hang", NULL);
  unlink (pidfile);
  build_ok (m, src, disk, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  assert_false (ate_path_exists (leftover));
  assert_int_equal (mkfs_runs (f), 2);
  assert_fsck_clean (disk);
  rootfs_manager_free (m);
}

static void
test_mkfs_failure_message (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  struct ate_error *err = NULL;

  ctl_set (f, "fail", "__populate_fs: Could not allocate block in ext2 filesystem while "
                      "writing file \"big\"\nmkfs.ext4: Could not allocate block in ext2 "
                      "filesystem while populating file system\n");
  assert_true (rootfs_disk_for_run (m, src, disk, ATE_DEADLINE_NONE, &err) < 0);
  assert_contains (err->msg, "exit status 1");
  assert_contains (err->msg, "while populating file system");
  assert_contains (err->msg, "ran out of space");
  assert_contains (err->msg, disk);
  ate_error_release (&err);
  assert_false (ate_path_exists (disk));
  rootfs_manager_free (m);

  /* The real mkfs running out of inodes, then of blocks: its own words
   * and a hint in the error. */
  m = manager (f, 0);
  ctl_set (f, "fail", NULL);
  /* -N 16 still gives 16 inodes per block group (64 here): more files. */
  for (int i = 0; i < 100; i++)
    {
      cleanup_free char *name = xasprintf ("etc/file%03d", i);
      make_file (src, name, "0123456789abcdef", 1600000000);
    }
  ctl_set (f, "starve", "inodes");
  assert_true (rootfs_disk_for_run (m, src, disk, ATE_DEADLINE_NONE, &err) < 0);
  assert_contains (err->msg, "Could not allocate inode");
  assert_contains (err->msg, "ran out of inodes");
  ate_error_release (&err);
  {
    cleanup_free char *bigf = at (src, "etc/big");
    cleanup_close int fd = open (bigf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    char buf[65536];
    memset (buf, 'z', sizeof (buf));
    for (int i = 0; i < 64; i++)
      assert_int_equal (write (fd, buf, sizeof (buf)), (ssize_t) sizeof (buf));
  }
  ctl_set (f, "starve", "blocks");
  assert_true (rootfs_disk_for_run (m, src, disk, ATE_DEADLINE_NONE, &err) < 0);
  assert_contains (err->msg, "Could not allocate block");
  assert_contains (err->msg, "ran out of space");
  ate_error_release (&err);
  ctl_set (f, "starve", NULL);
  assert_false (ate_path_exists (disk));
  rootfs_manager_wait_idle (m);
  assert_no_temporaries (f->dir);
  rootfs_manager_free (m);

  /* No mkfs at all: a clear error naming it. */
  struct rootfs_config cfg;
  rootfs_config_init (&cfg);
  cfg.cache_max_bytes = 0;
  cfg.mkfs_path = "/nonexistent/mkfs.ext4";
  assert_int_equal (rootfs_manager_new (&cfg, &m, &err), 0);
  assert_true (rootfs_disk_for_run (m, src, disk, ATE_DEADLINE_NONE, &err) < 0);
  assert_contains (err->msg, "/nonexistent/mkfs.ext4");
  ate_error_release (&err);
  rootfs_manager_free (m);
}

static void
test_tree_changed_during_build (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  cleanup_free char *host = at (src, "etc/hostname");
  struct ate_error *err = NULL;

  /* atelet rewrites a file while mkfs waits to start: the build fails
   * instead of producing a disk its fingerprint does not describe. */
  ctl_set (f, "delay", "0.6");
  assert_true (rootfs_disk_for_run (m, src, disk, ate_deadline_in_ms (200), &err) < 0);
  ate_error_release (&err);
  write_text (host, "other\n", 0644);
  ctl_set (f, "delay", NULL);
  assert_true (rootfs_disk_for_run (m, src, disk, ATE_DEADLINE_NONE, &err) < 0);
  assert_int_equal (err->status, EAGAIN);
  assert_contains (err->msg, "etc/hostname");
  ate_error_release (&err);
  assert_false (ate_path_exists (disk));
  /* The next call builds the tree as it is now. */
  build_ok (m, src, disk, NULL);
  cleanup_free char *s = debugfs (disk, "cat /etc/hostname");
  assert_contains (s, "other");
  rootfs_manager_free (m);
}

static void
rm_tree (const char *dir)
{
  struct ate_error *err = NULL;
  if (ate_rm_rf (dir, &err) < 0)
    fail_msg ("%s", err->msg);
}

static void
test_unpacked_again_during_build (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *image = make_tree (f, "image");
  cleanup_free char *src = at (f->dir, "bundle-rootfs");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  cleanup_free char *ref = at (f->dir, "ref.ext4");
  struct rootfs_outcome o;
  struct ate_error *err = NULL;

  /* The Run times out while mkfs has not read the tree yet; atelet removes
   * the bundle and unpacks it again (fresh times) before the retry, which
   * joins the build: that build must not have lost its source. */
  copy_tree (image, src);
  ctl_set (f, "delay", "1");
  assert_true (rootfs_disk_for_run_ex (m, src, disk, ate_deadline_in_ms (200), &o, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_DEADLINE_EXCEEDED);
  ate_error_release (&err);
  rm_tree (src);
  copy_tree (image, src);
  unpack_again (src);
  ctl_set (f, "delay", NULL);
  if (rootfs_disk_for_run_ex (m, src, disk, ATE_DEADLINE_NONE, &o, &err) < 0)
    fail_msg ("%s", err->msg);
  assert_true (o.joined);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 1);
  rootfs_manager_wait_idle (m);
  assert_no_temporaries (f->dir);
  /* The same bytes as a build that was never disturbed. */
  build_ok (m, image, ref, NULL);
  assert_same_bytes (disk, ref);
  assert_fsck_clean (disk);
  rootfs_manager_free (m);
}

/* ---- base images ---- */

static struct rootfs_base *
base_ok (struct rootfs_manager *m, const char *src)
{
  struct rootfs_base *b = NULL;
  struct ate_error *err = NULL;
  if (rootfs_base_get (m, src, ATE_DEADLINE_NONE, &b, &err) < 0)
    fail_msg ("%s", err->msg);
  return b;
}

static void
test_base_images (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 1);
  cleanup_free char *src = make_tree (f, "src"), *again = at (f->dir, "again");
  cleanup_free char *other = make_tree (f, "other");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  cleanup_free char *otherfile = at (other, "etc/other");
  struct rootfs_base *a, *a2, *a3, *b;
  struct ate_error *err = NULL;
  struct stat st;

  a = base_ok (m, src);
  assert_int_equal (a->origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 1);
  assert_int_equal (strlen (a->id), ROOTFS_BASE_ID_LEN);
  assert_true (str_has_prefix (a->content_digest, "sha256:"));
  assert_true (str_has_prefix (a->path, f->cache));
  assert_int_equal (stat (a->path, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0400);
  assert_int_equal ((uint64_t) st.st_size, a->size);
  assert_int_equal (a->size, a->geometry.size_mib << 20);
  assert_fsck_clean (a->path);
  rootfs_manager_wait_idle (m); /* sealed: durable, with its fingerprint */

  /* atelet unpacks the bundle again (fresh times, other owners): the same
   * base, from the cache, nothing built or copied. */
  copy_tree (src, again);
  unpack_again (again);
  a2 = base_ok (m, again);
  assert_int_equal (a2->origin, ROOTFS_ORIGIN_CACHE);
  assert_string_equal (a2->id, a->id);
  assert_string_equal (a2->path, a->path);
  assert_int_equal (mkfs_runs (f), 1);
  /* By id, as a restore on this node does; a bad id is refused. */
  if (rootfs_base_acquire (m, a->id, &a3, &err) < 0)
    fail_msg ("%s", err->msg);
  assert_string_equal (a3->path, a->path);
  assert_true (rootfs_base_acquire (m, "../../etc/passwd", &b, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  ate_error_release (&err);
  /* An actor disk of the same tree has the same bytes. */
  build_ok (m, src, disk, NULL);
  assert_same_bytes (disk, a->path);

  /* The cache bound is 1 byte: every base beyond it stays while pinned,
   * and goes when its last holder releases it. */
  write_text (otherfile, "other\n", 0644);
  b = base_ok (m, other);
  assert_int_equal (b->origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 2); /* the actor disk was a clone */
  rootfs_manager_wait_idle (m);
  cleanup_free char *apath0 = xstrdup (a->path);
  assert_true (ate_path_exists (apath0));
  rootfs_base_release (a);
  rootfs_base_release (a2);
  assert_true (ate_path_exists (apath0)); /* a3 still holds it */
  rootfs_base_release (a3);
  assert_false (ate_path_exists (apath0)); /* unpinned, over the bound */
  {
    cleanup_free char *apath = NULL, *bpath = xstrdup (b->path);
    a = base_ok (m, src); /* evicted: built again */
    assert_int_equal (a->origin, ROOTFS_ORIGIN_BUILT);
    assert_int_equal (mkfs_runs (f), 3);
    apath = xstrdup (a->path);
    rootfs_manager_wait_idle (m);
    rootfs_base_release (a);
    assert_false (ate_path_exists (apath));
    assert_true (ate_path_exists (bpath));
    rootfs_base_release (b);
    assert_false (ate_path_exists (bpath));
  }
  rootfs_manager_free (m);
}

static void
test_base_deadline_and_unpack (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 1ULL << 30);
  cleanup_free char *image = make_tree (f, "image");
  cleanup_free char *src = at (f->dir, "bundle-rootfs");
  struct rootfs_base *b = NULL;
  struct ate_error *err = NULL;

  /* Timed out; atelet unpacks again; the retry joins the running build. */
  copy_tree (image, src);
  ctl_set (f, "delay", "1");
  assert_true (rootfs_base_get (m, src, ate_deadline_in_ms (200), &b, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_DEADLINE_EXCEEDED);
  ate_error_release (&err);
  rm_tree (src);
  copy_tree (image, src);
  unpack_again (src);
  ctl_set (f, "delay", NULL);
  b = base_ok (m, src);
  assert_true (b->joined);
  assert_int_equal (b->origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 1);
  rootfs_base_release (b);

  /* Timed out, finished while nobody waited, unpacked again: the retry
   * takes the finished base. */
  rm_tree (src);
  copy_tree (image, src);
  make_file (src, "etc/new", "new\n", 1600000000);
  ctl_set (f, "delay", "0.5");
  assert_true (rootfs_base_get (m, src, ate_deadline_in_ms (50), &b, &err) < 0);
  ate_error_release (&err);
  rootfs_manager_wait_idle (m);
  ctl_set (f, "delay", NULL);
  rm_tree (src);
  copy_tree (image, src);
  make_file (src, "etc/new", "new\n", 1600000000);
  unpack_again (src);
  b = base_ok (m, src);
  assert_int_equal (b->origin, ROOTFS_ORIGIN_CACHE);
  assert_int_equal (mkfs_runs (f), 2);
  rootfs_base_release (b);
  rootfs_manager_free (m);
  assert_no_temporaries (f->cache);
}

/* ---- concurrency ---- */

struct call
{
  struct rootfs_manager *m;
  const char *src, *disk;
  int result;
  struct rootfs_outcome o;
  char *msg;
};

static void *
call_thread (void *arg)
{
  struct call *c = arg;
  struct ate_error *err = NULL;
  c->result = rootfs_disk_for_run_ex (c->m, c->src, c->disk, ATE_DEADLINE_NONE, &c->o, &err);
  if (err)
    c->msg = xstrdup (err->msg);
  ate_error_release (&err);
  return NULL;
}

static void
test_concurrent_one_build (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  struct call c[3];
  pthread_t t[3];

  ctl_set (f, "delay", "0.5");
  for (int i = 0; i < 3; i++)
    {
      c[i] = (struct call){ .m = m, .src = src, .disk = disk };
      assert_int_equal (pthread_create (&t[i], NULL, call_thread, &c[i]), 0);
    }
  for (int i = 0; i < 3; i++)
    pthread_join (t[i], NULL);
  int joined = 0;
  for (int i = 0; i < 3; i++)
    {
      if (c[i].result != 0)
        fail_msg ("call %d: %s", i, c[i].msg);
      joined += c[i].o.joined;
    }
  assert_int_equal (joined, 2);
  assert_int_equal (mkfs_runs (f), 1);
  rootfs_manager_free (m);
}

/* ---- image cache ---- */

static char *
entry_of (struct fixture *f, const char *disk)
{
  cleanup_free char *fpath = rootfs_fingerprint_path (disk);
  struct rootfs_fingerprint fp;
  struct ate_error *err = NULL;
  if (rootfs_fingerprint_read (fpath, &fp, &err) < 0)
    fail_msg ("%s", err->msg);
  return rootfs_cache_entry_path_in (f->cache, &fp);
}

static void
test_cache_hit_and_restart (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 1ULL << 30);
  cleanup_free char *src = make_tree (f, "src"), *copy = at (f->dir, "copy");
  cleanup_free char *a = at (f->dir, "a.ext4"), *b = at (f->dir, "b.ext4");
  cleanup_free char *c = at (f->dir, "c.ext4");
  struct rootfs_outcome o;

  build_ok (m, src, a, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  copy_tree (src, copy);
  build_ok (m, copy, b, &o); /* another actor of the same image */
  assert_int_equal (o.origin, ROOTFS_ORIGIN_CACHE);
  assert_int_equal (mkfs_runs (f), 1);
  assert_same_bytes (a, b);
  rootfs_manager_free (m);

  m = manager (f, 1ULL << 30); /* the cache survives a restart */
  build_ok (m, src, c, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_CACHE);
  assert_int_equal (mkfs_runs (f), 1);
  assert_same_bytes (a, c);
  rootfs_manager_free (m);
}

static void
test_cache_keyed_by_content (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 1ULL << 30);
  cleanup_free char *x = at (f->dir, "x"), *y = at (f->dir, "y");
  cleanup_free char *a = at (f->dir, "a.ext4"), *b = at (f->dir, "b.ext4");
  struct rootfs_outcome o;

  /* Same names, sizes, modes and mtimes, different bytes: another image
   * must never be served from the cache. */
  assert_int_equal (mkdir (x, 0755), 0);
  assert_int_equal (mkdir (y, 0755), 0);
  make_file (x, "bin", "good-binary\n", 1600000000);
  make_file (y, "bin", "evil-binary\n", 1600000000);
  build_ok (m, x, a, &o);
  build_ok (m, y, b, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  assert_int_equal (mkfs_runs (f), 2);
  cleanup_free char *s = debugfs (b, "cat /bin");
  assert_contains (s, "evil-binary");
  rootfs_manager_free (m);
}

static uint64_t
allocated (const char *path)
{
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  return (uint64_t) st.st_blocks * 512;
}

static void
test_cache_eviction_and_in_use (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *x = at (f->dir, "x"), *y = at (f->dir, "y"), *z = at (f->dir, "z");
  cleanup_free char *a = at (f->dir, "a.ext4"), *b = at (f->dir, "b.ext4");
  cleanup_free char *c = at (f->dir, "c.ext4"), *d = at (f->dir, "d.ext4");
  cleanup_free char *ea = NULL, *eb = NULL, *ec = NULL;
  struct rootfs_manager *m;
  struct rootfs_outcome o;
  uint64_t one;

  assert_int_equal (mkdir (x, 0755), 0);
  assert_int_equal (mkdir (y, 0755), 0);
  assert_int_equal (mkdir (z, 0755), 0);
  make_file (x, "f", "x\n", 1600000000);
  make_file (y, "f", "y\n", 1600000000);
  make_file (z, "f", "z\n", 1600000000);
  /* Measure one image, then allow a bit more than one entry. */
  m = manager (f, 0);
  build_ok (m, x, a, &o);
  rootfs_manager_free (m);
  one = allocated (a);
  unlink (a);
  m = manager (f, one + one / 2);
  build_ok (m, x, a, &o);
  ea = entry_of (f, a);
  assert_true (ate_is_regular_file (ea));
  build_ok (m, y, b, &o); /* least recently used x goes */
  eb = entry_of (f, b);
  assert_false (ate_path_exists (ea));
  assert_true (ate_is_regular_file (eb));

  /* y in use (a reader holds its lock): z does not evict it and is not
   * cached (the bound holds). */
  cleanup_close int held = open (eb, O_RDONLY | O_CLOEXEC);
  assert_int_equal (flock (held, LOCK_SH), 0);
  build_ok (m, z, c, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_BUILT);
  ec = entry_of (f, c);
  assert_true (ate_is_regular_file (eb));
  assert_false (ate_path_exists (ec));
  close_and_reset (&held);
  /* Still usable afterwards. */
  build_ok (m, y, d, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_CACHE);
  assert_same_bytes (b, d);
  assert_int_equal (mkfs_runs (f), 4);
  rootfs_manager_free (m);
}

/* ---- golden templates ---- */

static void
test_golden (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  cleanup_free char *other = at (f->dir, "other.ext4"), *ckpt = at (f->dir, "ckpt");
  cleanup_free char *shipped = at (ckpt, ROOTFS_GOLDEN_FILE_NAME);
  cleanup_free char *fp = rootfs_fingerprint_path (other);
  const char *key = "default:counter-microvm:golden-a1";
  cleanup_free char *tpl = rootfs_golden_path (m, key);
  struct ate_error *err = NULL;
  struct stat s1, s2;

  build_ok (m, src, disk, NULL);
  /* The golden actor wrote a file before its checkpoint. */
  make_file (src, "random-content-file", "42\n", 1600000000);
  build_ok (m, src, other, NULL);
  assert_int_equal (rootfs_golden_save (m, key, other, &err), 1);
  assert_true (rootfs_golden_exists (m, key));
  assert_int_equal (rootfs_golden_save (m, key, disk, &err), 0); /* never refreshed */
  assert_same_bytes (tpl, other);

  /* Any actor of the lineage resets to the template. */
  assert_int_equal (rootfs_golden_reset (m, tpl, disk, ATE_DEADLINE_NONE, &err), 0);
  assert_same_bytes (tpl, disk);
  cleanup_free char *dfp = rootfs_fingerprint_path (disk);
  assert_false (ate_path_exists (dfp));
  assert_true (ate_path_exists (fp));

  /* Shipped with a checkpoint: a hard link named golden-rootfs.ext4. */
  assert_int_equal (mkdir (ckpt, 0700), 0);
  assert_int_equal (rootfs_golden_link_into (m, key, ckpt, &err), 0);
  assert_int_equal (rootfs_golden_link_into (m, key, ckpt, &err), 0);
  assert_int_equal (stat (tpl, &s1), 0);
  assert_int_equal (stat (shipped, &s2), 0);
  assert_int_equal (s1.st_ino, s2.st_ino);

  /* Installed on another node from the restore directory. */
  struct rootfs_config cfg;
  struct rootfs_manager *m2 = NULL;
  cleanup_free char *base2 = at (f->dir, "node2");
  rootfs_config_init (&cfg);
  cfg.base_path = base2;
  cfg.cache_max_bytes = 0;
  cfg.mkfs_path = f->wrapper;
  assert_int_equal (rootfs_manager_new (&cfg, &m2, &err), 0);
  assert_int_equal (rootfs_golden_import (m2, key, shipped, &err), 1);
  assert_int_equal (rootfs_golden_import (m2, key, shipped, &err), 0);
  cleanup_free char *tpl2 = rootfs_golden_path (m2, key);
  assert_same_bytes (tpl, tpl2);
  assert_int_equal (stat (tpl2, &s2), 0);
  assert_true (s2.st_ino != s1.st_ino); /* a copy, not atelet's file */

  /* Refused: a truncated download, an unknown lineage, a bad key. */
  cleanup_free char *trunc = at (f->dir, "truncated.ext4");
  copy_tree (shipped, trunc);
  assert_int_equal (truncate (trunc, 8 << 20), 0);
  assert_true (rootfs_golden_import (m2, "default:counter-microvm:b2", trunc, &err) < 0);
  assert_contains (err->msg, "truncated");
  ate_error_release (&err);
  assert_true (rootfs_golden_link_into (m2, "default:counter-microvm:none", ckpt, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_NOT_FOUND);
  ate_error_release (&err);
  assert_true (rootfs_golden_save (m2, "../../etc:x:y", disk, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  ate_error_release (&err);
  assert_null (rootfs_golden_path (m2, "a/b:c:d"));
  rootfs_manager_free (m2);
  rootfs_manager_free (m);
}

/* ---- reflink ---- */

static bool
mount_xfs (struct fixture *f, const char *mnt)
{
  cleanup_free char *img = at (f->dir, "xfs.img"), *mkfs = find_tool ("mkfs.xfs");
  struct ate_error *err = NULL;

  if (geteuid () != 0 || mkfs == NULL)
    return false;
  char *mk[] = { mkfs, (char *) "-q", (char *) "-m", (char *) "reflink=1", img, NULL };
  char *mo[] = { (char *) "mount", (char *) "-o", (char *) "loop", img, (char *) mnt, NULL };
  assert_int_equal (mkdir (mnt, 0755), 0);
  cleanup_close int fd = open (img, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  assert_int_equal (ftruncate (fd, 2LL << 30), 0);
  if (ate_proc_run (mk, NULL, ATE_DEADLINE_NONE, NULL, &err) < 0
      || ate_proc_run (mo, NULL, ATE_DEADLINE_NONE, NULL, &err) < 0)
    {
      fprintf (stderr, "note: no XFS loop mount here, reflink not tested: %s\n", err->msg);
      ate_error_release (&err);
      return false;
    }
  return true;
}

static void
test_reflink (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *mnt = at (f->dir, "xfs"), *src = make_tree (f, "src");
  cleanup_free char *cache = NULL, *a = NULL, *b = NULL, *c = NULL, *tpl = NULL;
  struct rootfs_manager *m = NULL;
  struct rootfs_config cfg;
  struct rootfs_outcome o;
  struct ate_error *err = NULL;
  const char *key = "default:counter-microvm:a1";

  if (!mount_xfs (f, mnt))
    skip ();
  cache = at (mnt, "cache");
  a = at (mnt, "a.ext4");
  b = at (mnt, "b.ext4");
  c = at (mnt, "c.ext4");
  rootfs_config_init (&cfg);
  cfg.base_path = mnt;
  cfg.cache_max_bytes = 1ULL << 30;
  cfg.mkfs_path = f->wrapper;
  assert_int_equal (rootfs_manager_new (&cfg, &m, &err), 0);
  build_ok (m, src, a, &o);
  build_ok (m, src, b, &o);
  assert_int_equal (o.origin, ROOTFS_ORIGIN_CACHE);
  assert_string_equal (o.copy, "reflink");
  assert_same_bytes (a, b);
  /* Templates and resets share extents too. */
  assert_int_equal (rootfs_golden_save (m, key, a, &err), 1);
  tpl = rootfs_golden_path (m, key);
  assert_int_equal (rootfs_golden_reset (m, tpl, c, ATE_DEADLINE_NONE, &err), 0);
  assert_same_bytes (a, c);
  rootfs_manager_free (m);
  assert_int_equal (umount (mnt), 0);
}

static void
test_golden_from_cache (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 1ULL << 30);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *a = at (f->dir, "a.ext4"), *b = at (f->dir, "b.ext4");
  const char *key = "default:counter-microvm:a1";
  cleanup_free char *tpl = rootfs_golden_path (m, key), *entry = NULL;
  struct ate_error *err = NULL;
  struct stat s1, s2;

  /* A Restore without a template rebuilds the disk (here from the cache)
   * and keeps it as the template: a link to the cache entry, no copy. */
  build_ok (m, src, a, NULL);
  assert_int_equal (rootfs_disk_rebuild (m, src, b, ATE_DEADLINE_NONE, &err), 0);
  rootfs_manager_wait_idle (m);
  entry = entry_of (f, b);
  assert_int_equal (rootfs_golden_save (m, key, b, &err), 1);
  assert_int_equal (stat (tpl, &s1), 0);
  assert_int_equal (stat (entry, &s2), 0);
  assert_int_equal (s1.st_ino, s2.st_ino);
  assert_same_bytes (tpl, b);
  assert_int_equal (rootfs_golden_save (m, key, a, &err), 0);

  /* A disk a VM wrote to is copied, never linked. */
  {
    cleanup_close int fd = open (a, O_WRONLY | O_CLOEXEC);
    usleep (20000);
    assert_int_equal (pwrite (fd, "x", 1, 4 << 20), 1);
  }
  assert_int_equal (rootfs_golden_save_ex (m, key, a, true, &err), 1);
  assert_int_equal (stat (tpl, &s1), 0);
  assert_true (s1.st_ino != s2.st_ino);
  assert_same_bytes (tpl, a);
  rootfs_manager_free (m);
}

/* ---- shutdown ---- */

static void
test_free_cancels (void **state)
{
  struct fixture *f = *state;
  struct rootfs_manager *m = manager (f, 0);
  cleanup_free char *src = make_tree (f, "src");
  cleanup_free char *disk = at (f->dir, "actor-rootfs.ext4");
  struct ate_error *err = NULL;
  int64_t t0;

  ctl_set (f, "delay", "30");
  assert_true (rootfs_disk_for_run (m, src, disk, ate_deadline_in_ms (100), &err) < 0);
  ate_error_release (&err);
  t0 = ate_now_ns ();
  rootfs_manager_free (m);
  assert_true (ate_elapsed_ms (t0) < 5000);
  assert_false (ate_path_exists (disk));
  assert_no_temporaries (f->dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_image_contents, setup, teardown),
    cmocka_unit_test_setup_teardown (test_large_file, setup, teardown),
    cmocka_unit_test_setup_teardown (test_deterministic, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reuse_and_rebuild, setup, teardown),
    cmocka_unit_test_setup_teardown (test_deadline_then_join, setup, teardown),
    cmocka_unit_test_setup_teardown (test_deadline_then_retry_after_finish, setup, teardown),
    cmocka_unit_test_setup_teardown (test_sigkill_mkfs, setup, teardown),
    cmocka_unit_test_setup_teardown (test_mkfs_failure_message, setup, teardown),
    cmocka_unit_test_setup_teardown (test_tree_changed_during_build, setup, teardown),
    cmocka_unit_test_setup_teardown (test_unpacked_again_during_build, setup, teardown),
    cmocka_unit_test_setup_teardown (test_base_images, setup, teardown),
    cmocka_unit_test_setup_teardown (test_base_deadline_and_unpack, setup, teardown),
    cmocka_unit_test_setup_teardown (test_concurrent_one_build, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cache_hit_and_restart, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cache_keyed_by_content, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cache_eviction_and_in_use, setup, teardown),
    cmocka_unit_test_setup_teardown (test_golden, setup, teardown),
    cmocka_unit_test_setup_teardown (test_golden_from_cache, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reflink, setup, teardown),
    cmocka_unit_test_setup_teardown (test_free_cancels, setup, teardown),
  };

  real_mkfs = find_tool ("mkfs.ext4");
  cleanup_free char *dbg = find_tool ("debugfs"), *fsck = find_tool ("e2fsck");
  if (real_mkfs == NULL || dbg == NULL || fsck == NULL)
    {
      fprintf (stderr, "SKIP: e2fsprogs (mkfs.ext4, debugfs, e2fsck) not installed\n");
      return 77;
    }
  /* debugfs for the manager comes from PATH. */
  setenv ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
  ate_log_set_level (getenv ("ATE_TEST_VERBOSE") ? ATE_LOG_DEBUG : ATE_LOG_WARN);
  int r = cmocka_run_group_tests (tests, NULL, NULL);
  free (real_mkfs);
  return r;
}
