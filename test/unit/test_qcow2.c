/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the qcow2 module (runtime/qcow2): empty overlays, the
 * validator on images written by qemu and by us and on every kind of
 * malformed header and table, the normalised rewrite (same guest content,
 * our backing name, size proportional to the written data).  Every file we
 * write is cross-checked with `qemu-img check` and `qemu-img compare` when
 * qemu-utils is installed (those parts are skipped without it).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2/qcow2.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/proc.h"
#include "util/time.h"
#include "util/util.h"

#define KiB (UINT64_C (1024))
#define MiB (UINT64_C (1024) * 1024)
#define GiB (UINT64_C (1024) * 1024 * 1024)
#define CS (UINT64_C (1) << QCOW2_CLUSTER_BITS)

static char *tmpdir;
static bool have_qemu;

static int
setup (void **state)
{
  char tmpl[] = "/var/tmp/ate-test-qcow2-XXXXXX";
  (void) state;
  tmpdir = xstrdup (mkdtemp (tmpl));
  have_qemu = access ("/usr/bin/qemu-img", X_OK) == 0 && access ("/usr/bin/qemu-io", X_OK) == 0;
  return tmpdir == NULL ? -1 : 0;
}

static int
teardown (void **state)
{
  struct ate_error *err = NULL;
  (void) state;
  ate_rm_rf (tmpdir, &err);
  free (tmpdir);
  return err == NULL ? 0 : -1;
}

static char *
tpath (const char *name)
{
  return ate_path_join (tmpdir, name);
}

/* Run argv; returns the exit status (0 ok), output in *out if wanted. */
static int
run (char *const argv[], char **out)
{
  struct ate_spawn_opts o;
  struct ate_error *err = NULL;
  int r;

  ate_spawn_opts_init (&o);
  o.stdout_fd = ATE_SPAWN_PIPE;
  o.stderr_fd = ATE_SPAWN_STDOUT;
  r = ate_proc_run (argv, &o, ate_deadline_in_ms (60000), out, &err);
  if (r < 0)
    {
      print_message ("%s: %s\n", argv[0], err->msg);
      ate_error_release (&err);
      return 1;
    }
  return 0;
}

static void
qemu_check (const char *img)
{
  char *argv[] = { "qemu-img", "check", "-q", "-f", "qcow2", (char *) img, NULL };
  if (have_qemu)
    assert_int_equal (run (argv, NULL), 0);
}

/* Same guest content (exit 0 of qemu-img compare in strict mode). */
static void
qemu_same (const char *a, const char *fa, const char *b, const char *fb)
{
  char *argv[] = { "qemu-img", "compare", "-s", "-f", (char *) fa, "-F", (char *) fb,
                   (char *) a, (char *) b, NULL };
  if (have_qemu)
    assert_int_equal (run (argv, NULL), 0);
}

static void
qemu_differ (const char *a, const char *fa, const char *b, const char *fb)
{
  char *argv[] = { "qemu-img", "compare", "-q", "-f", (char *) fa, "-F", (char *) fb,
                   (char *) a, (char *) b, NULL };
  if (have_qemu)
    assert_int_not_equal (run (argv, NULL), 0);
}

/* qemu-io commands (each "-c" "cmd") on a qcow2 image. */
static void
qemu_io (const char *img, const char *const *cmds)
{
  char *argv[32];
  size_t n = 0;

  argv[n++] = "qemu-io";
  argv[n++] = "-f";
  argv[n++] = "qcow2";
  for (size_t i = 0; cmds[i] != NULL; i++)
    {
      argv[n++] = "-c";
      argv[n++] = (char *) cmds[i];
    }
  argv[n++] = (char *) img;
  argv[n] = NULL;
  assert_int_equal (run (argv, NULL), 0);
}

/* A sparse raw base of size bytes with a recognisable pattern every MiB. */
static char *
make_base (const char *name, uint64_t size)
{
  char *path = tpath (name);
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  char block[4096];

  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, (off_t) size), 0);
  for (uint64_t off = 0; off < size && off < 64 * MiB; off += MiB)
    {
      memset (block, (int) (0x40 + off / MiB), sizeof block);
      assert_int_equal (pwrite (fd, block, sizeof block, (off_t) off), (ssize_t) sizeof block);
    }
  close (fd);
  return path;
}

static struct qcow2_image *
open_ok (const char *path, int *fd, const struct qcow2_expect *expect)
{
  struct qcow2_image *img = NULL;
  struct ate_error *err = NULL;

  *fd = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (*fd >= 0);
  if (qcow2_image_open (*fd, expect, &img, &err) < 0)
    fail_msg ("open %s: %s", path, err->msg);
  return img;
}

/* Opening fails with this code and a message containing want. */
static void
open_fails (const char *path, enum ate_code code, const char *want)
{
  struct qcow2_image *img = NULL;
  struct ate_error *err = NULL;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  assert_true (fd >= 0);
  assert_int_equal (qcow2_image_open (fd, NULL, &img, &err), -1);
  assert_null (img);
  assert_non_null (err);
  if (strstr (err->msg, want) == NULL || ate_error_code (err) != code)
    fail_msg ("want \"%s\" (%s), got \"%s\" (%s)", want, ate_code_name (code), err->msg,
              ate_code_name (ate_error_code (err)));
  ate_error_release (&err);
  close (fd);
}

static void
rewrite_ok (const char *in, const char *out, const char *backing, const struct qcow2_expect *e)
{
  struct ate_error *err = NULL;
  if (qcow2_file_rewrite (in, e, out, backing, &err) < 0)
    fail_msg ("rewrite %s: %s", in, err->msg);
}

static void
test_overlay_empty (void **state)
{
  cleanup_free char *base = make_base ("base-empty.raw", 64 * MiB);
  cleanup_free char *ov = tpath ("empty.qcow2");
  struct ate_error *err = NULL;
  struct qcow2_image *img;
  int fd;
  (void) state;

  assert_int_equal (qcow2_file_create_overlay (ov, base, 64 * MiB, &err), 0);
  /* Never over an existing file. */
  assert_int_equal (qcow2_file_create_overlay (ov, base, 64 * MiB, &err), -1);
  assert_int_equal (err->status, EEXIST);
  ate_error_release (&err);

  img = open_ok (ov, &fd, &(struct qcow2_expect){ .virtual_size = 64 * MiB, .need_backing = true,
                                                  .backing_name = base });
  assert_string_equal (qcow2_image_backing_name (img), base);
  assert_int_equal (qcow2_image_virtual_size (img), 64 * MiB);
  assert_int_equal (qcow2_image_cluster_bits (img), QCOW2_CLUSTER_BITS);
  assert_int_equal (qcow2_image_data_clusters (img), 0);
  assert_int_equal (qcow2_image_zero_clusters (img), 0);
  qcow2_image_free (img);
  close (fd);

  qemu_check (ov);
  qemu_same (ov, "qcow2", base, "raw");
}

/* O(1): the overlay of a 3 GiB (or 1 TiB) disk is a few clusters, almost
 * all holes. */
static void
test_overlay_size_independent (void **state)
{
  static const uint64_t sizes[] = { 3 * GiB, 1024 * GiB };
  struct ate_error *err = NULL;
  (void) state;

  for (size_t i = 0; i < ATE_N_ELEMENTS (sizes); i++)
    {
      cleanup_free char *name = xasprintf ("big-%zu.qcow2", i);
      cleanup_free char *bname = xasprintf ("big-%zu.raw", i);
      cleanup_free char *ov = tpath (name);
      cleanup_free char *base = tpath (bname);
      struct qcow2_image *img;
      struct stat st;
      int fd;

      /* A sparse base: qemu-img opens the backing file. */
      fd = open (base, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      assert_true (fd >= 0);
      assert_int_equal (ftruncate (fd, (off_t) sizes[i]), 0);
      close (fd);
      assert_int_equal (qcow2_file_create_overlay (ov, base, sizes[i], &err), 0);
      assert_int_equal (stat (ov, &st), 0);
      assert_true ((uint64_t) st.st_size <= 8 * CS);
      assert_true ((uint64_t) st.st_blocks * 512 <= 4 * CS);
      img = open_ok (ov, &fd, NULL);
      assert_int_equal (qcow2_image_virtual_size (img), sizes[i]);
      qcow2_image_free (img);
      close (fd);
      qemu_check (ov);
      unlink (base);
    }
}

struct walk
{
  uint64_t n, last, data, zero;
  int stop_at;
};

static int
walk_cb (uint64_t guest, uint64_t host, void *opaque, struct ate_error **err)
{
  struct walk *w = opaque;
  (void) err;
  if (w->n > 0)
    assert_true (guest > w->last);
  w->last = guest;
  w->n++;
  if (host == 0)
    w->zero++;
  else
    w->data++;
  if (w->stop_at > 0 && w->n == (uint64_t) w->stop_at)
    return 42;
  return 0;
}

/* qemu writes into our overlay (data, zeroes over base data, a partial
 * cluster); we validate, walk and rewrite it; qemu sees the same disk. */
static void
test_rewrite_qemu_written (void **state)
{
  static const char *const cmds[] = { "write -P 0xab 1M 1M", "write -z 8M 128k",
                                      "write -P 0x11 100k 4k", "write -P 0x22 60M 64k", NULL };
  cleanup_free char *base = make_base ("base-rw.raw", 64 * MiB);
  cleanup_free char *ov = tpath ("rw.qcow2");
  cleanup_free char *out = tpath ("rw-out.qcow2");
  cleanup_free char *again = tpath ("rw-again.qcow2");
  struct ate_error *err = NULL;
  struct qcow2_image *img;
  struct walk w = { 0 };
  int fd;
  (void) state;

  if (!have_qemu)
    skip ();
  assert_int_equal (qcow2_file_create_overlay (ov, base, 64 * MiB, &err), 0);
  qemu_io (ov, cmds);
  qemu_check (ov);

  img = open_ok (ov, &fd, NULL);
  assert_int_equal (qcow2_image_foreach_cluster (img, walk_cb, &w, &err), 0);
  assert_int_equal (w.data, qcow2_image_data_clusters (img));
  assert_int_equal (w.zero, qcow2_image_zero_clusters (img));
  assert_int_equal (w.data, 16 + 1 + 1);
  assert_int_equal (w.zero, 2);
  /* A callback's non-zero return stops the walk. */
  w = (struct walk){ .stop_at = 3 };
  assert_int_equal (qcow2_image_foreach_cluster (img, walk_cb, &w, &err), 42);
  assert_int_equal (w.n, 3);
  qcow2_image_free (img);
  close (fd);

  rewrite_ok (ov, out, base, &(struct qcow2_expect){ .virtual_size = 64 * MiB, .backing_name = base });
  qemu_check (out);
  qemu_same (out, "qcow2", ov, "qcow2");
  /* The base under it is not what the guest sees any more. */
  qemu_differ (out, "qcow2", base, "raw");

  /* Normalised means a fixed point: rewriting our own output gives the
   * same bytes. */
  rewrite_ok (out, again, base, NULL);
  {
    char *argv[] = { "cmp", out, again, NULL };
    assert_int_equal (run (argv, NULL), 0);
  }
}

/* The written size follows the guest's writes, not the disk size. */
static void
test_rewrite_size_proportional (void **state)
{
  static const char *const cmds[] = { "write -P 0x5a 1G 1M", NULL };
  cleanup_free char *ov = tpath ("prop.qcow2");
  cleanup_free char *out = tpath ("prop-out.qcow2");
  struct ate_error *err = NULL;
  struct stat st;
  (void) state;

  if (!have_qemu)
    skip ();
  /* No backing data needed for the size: a sparse 3 GiB base. */
  {
    cleanup_free char *base = tpath ("base-3g.raw");
    int fd = open (base, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true (fd >= 0);
    assert_int_equal (ftruncate (fd, (off_t) (3 * GiB)), 0);
    close (fd);
    assert_int_equal (qcow2_file_create_overlay (ov, base, 3 * GiB, &err), 0);
    qemu_io (ov, cmds);
    rewrite_ok (ov, out, base, NULL);
    qemu_check (out);
    qemu_same (out, "qcow2", ov, "qcow2");
  }
  assert_int_equal (stat (out, &st), 0);
  assert_true ((uint64_t) st.st_size < MiB + 8 * CS);
  assert_true ((uint64_t) st.st_blocks * 512 < MiB + 8 * CS);
}

/* Images qemu-img creates itself (feature name table, lazy refcounts off,
 * header of 112 bytes) and with other cluster sizes are read; the rewrite
 * keeps the cluster size. */
static void
test_qemu_created (void **state)
{
  static const char *const sizes[] = { "cluster_size=512", "cluster_size=65536",
                                       "cluster_size=2M" };
  static const char *const cmds[] = { "write -P 0x33 0 3k", "write -P 0x44 5M 300k", NULL };
  cleanup_free char *base = make_base ("base-q.raw", 16 * MiB);
  struct ate_error *err = NULL;
  (void) state;
  (void) err;

  if (!have_qemu)
    skip ();
  for (size_t i = 0; i < ATE_N_ELEMENTS (sizes); i++)
    {
      cleanup_free char *n1 = xasprintf ("q-%zu.qcow2", i);
      cleanup_free char *n2 = xasprintf ("q-%zu-out.qcow2", i);
      cleanup_free char *ov = tpath (n1);
      cleanup_free char *out = tpath (n2);
      char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-o", (char *) sizes[i],
                       "-b", base, "-F", "raw", ov, NULL };
      struct qcow2_image *img;
      int fd;

      assert_int_equal (run (argv, NULL), 0);
      qemu_io (ov, cmds);
      img = open_ok (ov, &fd, &(struct qcow2_expect){ .virtual_size = 16 * MiB, .need_backing = true });
      assert_string_equal (qcow2_image_backing_name (img), base);
      assert_true (qcow2_image_data_clusters (img) > 0);
      qcow2_image_free (img);
      close (fd);
      rewrite_ok (ov, out, base, NULL);
      qemu_check (out);
      qemu_same (out, "qcow2", ov, "qcow2");
    }
}

/* A delta for another base, or another disk size, is a precondition
 * failure; our backing name replaces whatever the input named. */
static void
test_expectations (void **state)
{
  cleanup_free char *base = make_base ("base-x.raw", 32 * MiB);
  cleanup_free char *ov = tpath ("x.qcow2");
  cleanup_free char *out = tpath ("x-out.qcow2");
  struct ate_error *err = NULL;
  struct qcow2_image *img = NULL;
  int fd;
  (void) state;

  assert_int_equal (qcow2_file_create_overlay (ov, "sha256-of-another-base", 32 * MiB, &err), 0);
  fd = open (ov, O_RDONLY | O_CLOEXEC);
  assert_int_equal (qcow2_image_open (fd, &(struct qcow2_expect){ .backing_name = "sha256-mine" },
                                      &img, &err), -1);
  assert_int_equal (ate_error_code (err), ATE_CODE_FAILED_PRECONDITION);
  assert_non_null (strstr (err->msg, "not against `sha256-mine`"));
  ate_error_release (&err);
  assert_int_equal (qcow2_image_open (fd, &(struct qcow2_expect){ .virtual_size = 64 * MiB },
                                      &img, &err), -1);
  assert_int_equal (ate_error_code (err), ATE_CODE_FAILED_PRECONDITION);
  assert_int_equal (err->status, EXDEV);
  ate_error_release (&err);
  close (fd);

  assert_int_equal (qcow2_file_rewrite (ov, &(struct qcow2_expect){ .virtual_size = 64 * MiB },
                                        out, base, &err), -1);
  assert_false (ate_path_exists (out));
  ate_error_release (&err);

  rewrite_ok (ov, out, base, &(struct qcow2_expect){ .backing_name = "sha256-of-another-base" });
  img = open_ok (out, &fd, NULL);
  assert_string_equal (qcow2_image_backing_name (img), base);
  qcow2_image_free (img);
  close (fd);
  qemu_check (out);
  qemu_same (out, "qcow2", base, "raw");

  /* An image without a backing file is refused where one is needed. */
  if (have_qemu)
    {
      cleanup_free char *plain = tpath ("plain.qcow2");
      char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", plain, "1M", NULL };
      assert_int_equal (run (argv, NULL), 0);
      fd = open (plain, O_RDONLY | O_CLOEXEC);
      assert_int_equal (qcow2_image_open (fd, &(struct qcow2_expect){ .need_backing = true },
                                          &img, &err), -1);
      assert_non_null (strstr (err->msg, "no backing file"));
      ate_error_release (&err);
      close (fd);
    }

  /* The input is never followed through a symlink. */
  {
    cleanup_free char *link = tpath ("link.qcow2");
    cleanup_free char *out2 = tpath ("x-out2.qcow2");
    assert_int_equal (symlink (ov, link), 0);
    assert_int_equal (qcow2_file_rewrite (link, NULL, out2, base, &err), -1);
    assert_int_equal (err->status, ELOOP);
    ate_error_release (&err);
  }
}

/* ---- malformed images ---- */

/* Our layout for a 64 MiB disk with data in guest clusters 0 and 1:
 * header 0, L1 64k, refcount table 128k, refcount block 192k, L2 256k,
 * data 320k and 384k. */
#define OFF_L1 (1 * CS)
#define OFF_RT (2 * CS)
#define OFF_RB (3 * CS)
#define OFF_L2 (4 * CS)
#define OFF_D0 (5 * CS)

static char *
make_valid (void)
{
  cleanup_free char *ov = tpath ("valid-src.qcow2");
  char *out = tpath ("valid.qcow2");
  struct ate_error *err = NULL;
  int fd;
  uint64_t l2e[2];
  uint8_t hb[8];

  /* Build the input by hand from an empty overlay: one L2 table at the end
   * of the file and two data clusters, then normalise it.  The backing file
   * (relative to the image) exists for qemu-img. */
  free (make_base ("base.raw", 64 * MiB));
  unlink (ov);
  unlink (out);
  assert_int_equal (qcow2_file_create_overlay (ov, "base.raw", 64 * MiB, &err), 0);
  fd = open (ov, O_RDWR | O_CLOEXEC);
  assert_true (fd >= 0);
  {
    struct stat st;
    uint64_t end, l1e;
    char data[4096];
    assert_int_equal (fstat (fd, &st), 0);
    end = (uint64_t) st.st_size;
    assert_int_equal (end % CS, 0);
    l1e = htobe64 (end | (UINT64_C (1) << 63));
    assert_int_equal (pwrite (fd, &l1e, 8, (off_t) OFF_L1), 8);
    l2e[0] = htobe64 ((end + CS) | (UINT64_C (1) << 63));
    l2e[1] = htobe64 ((end + 2 * CS) | (UINT64_C (1) << 63));
    assert_int_equal (pwrite (fd, l2e, 16, (off_t) end), 16);
    memset (data, 0x77, sizeof data);
    assert_int_equal (pwrite (fd, data, sizeof data, (off_t) (end + CS)), (ssize_t) sizeof data);
    memset (data, 0x78, sizeof data);
    assert_int_equal (pwrite (fd, data, sizeof data, (off_t) (end + 2 * CS)), (ssize_t) sizeof data);
    assert_int_equal (ftruncate (fd, (off_t) (end + 3 * CS)), 0);
  }
  close (fd);
  rewrite_ok (ov, out, "base.raw", NULL);
  /* The layout the mutations below rely on. */
  fd = open (out, O_RDONLY | O_CLOEXEC);
  assert_int_equal (pread (fd, hb, 8, 40), 8);
  assert_int_equal (be64toh (*(uint64_t *) hb), OFF_L1);
  assert_int_equal (pread (fd, hb, 8, (off_t) OFF_L1), 8);
  assert_int_equal (be64toh (*(uint64_t *) hb) & ~(UINT64_C (1) << 63), OFF_L2);
  assert_int_equal (pread (fd, hb, 8, (off_t) OFF_L2), 8);
  assert_int_equal (be64toh (*(uint64_t *) hb) & ~(UINT64_C (1) << 63), OFF_D0);
  close (fd);
  return out;
}

enum width
{
  U8 = 1,
  U32 = 4,
  U64 = 8,
};

struct mutation
{
  const char *what;
  uint64_t off;
  enum width width;
  uint64_t value;
  bool or_in; /* value is OR-ed into the field instead of replacing it */
  enum ate_code code;
  const char *want;
  uint64_t off2; /* then this 64-bit field (0: none) */
  uint64_t value2;
};

static void
poke (const char *path, const struct mutation *m)
{
  int fd = open (path, O_RDWR | O_CLOEXEC);
  uint8_t buf[8] = { 0 };
  uint64_t v;

  assert_true (fd >= 0);
  assert_int_equal (pread (fd, buf, m->width, (off_t) m->off), m->width);
  if (m->width == U8)
    v = buf[0];
  else if (m->width == U32)
    v = be32toh (*(uint32_t *) buf);
  else
    v = be64toh (*(uint64_t *) buf);
  v = m->or_in ? v | m->value : m->value;
  if (m->width == U8)
    buf[0] = (uint8_t) v;
  else if (m->width == U32)
    *(uint32_t *) buf = htobe32 ((uint32_t) v);
  else
    *(uint64_t *) buf = htobe64 (v);
  assert_int_equal (pwrite (fd, buf, m->width, (off_t) m->off), m->width);
  if (m->off2 != 0)
    {
      v = htobe64 (m->value2);
      assert_int_equal (pwrite (fd, &v, 8, (off_t) m->off2), 8);
    }
  close (fd);
}

#define INV ATE_CODE_INVALID_ARGUMENT
#define FP ATE_CODE_FAILED_PRECONDITION
#define COPIED (UINT64_C (1) << 63)

static const struct mutation mutations[] = {
  { "magic", 0, U32, 0x514649fa, false, INV, "bad magic", 0, 0 },
  { "version 2", 4, U32, 2, false, INV, "version 2", 0, 0 },
  { "cluster bits 8", 20, U32, 8, false, INV, "cluster_bits 8", 0, 0 },
  { "cluster bits 22", 20, U32, 22, false, INV, "cluster_bits 22", 0, 0 },
  { "encrypted", 32, U32, 1, false, INV, "encrypted", 0, 0 },
  { "dirty", 72, U64, 1, false, FP, "not closed cleanly", 0, 0 },
  { "corrupt", 72, U64, 2, false, INV, "corrupt", 0, 0 },
  { "external data", 72, U64, 4, false, INV, "external data file", 0, 0 },
  { "compression type bit", 72, U64, 8, false, INV, "compression type", 0, 0 },
  { "extended L2", 72, U64, 16, false, INV, "extended L2", 0, 0 },
  { "unknown incompatible", 72, U64, UINT64_C (1) << 40, false, INV, "bit 40", 0, 0 },
  { "autoclear bitmaps", 88, U64, 1, false, INV, "autoclear", 0, 0 },
  { "refcount order 3", 96, U32, 3, false, INV, "refcount_order 3", 0, 0 },
  { "header length 100", 100, U32, 100, false, INV, "header length", 0, 0 },
  { "header length unaligned", 100, U32, 108, false, INV, "header length", 0, 0 },
  { "compression zstd", 104, U8, 1, false, INV, "compression type 1", 0, 0 },
  { "snapshots", 60, U32, 1, false, INV, "internal snapshots", 0, 0 },
  { "snapshot offset", 64, U64, 4 * CS, false, INV, "internal snapshots", 0, 0 },
  { "virtual size 0", 24, U64, 0, false, INV, "virtual size 0", 0, 0 },
  { "virtual size odd", 24, U64, 64 * MiB + 1, false, INV, "virtual size", 0, 0 },
  { "virtual size 32 TiB", 24, U64, UINT64_C (32) << 40, false, INV, "virtual size", 0, 0 },
  { "backing name too long", 16, U32, 1024, false, INV, "backing file name length", 0, 0 },
  { "backing name outside cluster", 8, U64, CS - 4, false, INV, "outside the header cluster", 0, 0 },
  { "backing name over header", 8, U64, 8, false, INV, "outside the header cluster", 0, 0 },
  { "backing length without offset", 8, U64, 0, false, INV, "without an offset", 0, 0 },
  { "backing format qcow2", 112 + 8, U32, 0x71636f77, false, INV, "only raw", 0, 0 },
  { "backing format length", 112 + 4, U32, 4, false, INV, "only raw", 0, 0 },
  { "unknown extension", 112, U32, 0x23852875, false, INV, "unsupported header extension", 0, 0 },
  { "extension past name", 112 + 4, U32, 64, false, INV, "runs past", 0, 0 },
  { "L1 offset unaligned", 40, U64, OFF_L1 + 512, false, INV, "L1 table offset", 0, 0 },
  { "L1 offset zero", 40, U64, 0, false, INV, "L1 table offset", 0, 0 },
  { "L1 past end", 40, U64, UINT64_C (1) << 40, false, INV, "runs past the end", 0, 0 },
  { "L1 too small", 36, U32, 0, false, INV, "L1 table of 0 entries", 0, 0 },
  { "L1 too large", 36, U32, (1u << 20) + 1, false, INV, "L1 table of", 0, 0 },
  { "L1 on header", 40, U64, 0, false, INV, "L1 table offset", 0, 0 },
  { "L1 on refcount table", 40, U64, OFF_RT, false, INV, "overlaps", 0, 0 },
  { "L1 entry reserved bit", OFF_L1, U64, 1, true, INV, "L1 entry", 0, 0 },
  { "L1 entry unaligned", OFF_L1, U64, COPIED | (OFF_L2 + 512), false, INV, "L1 entry", 0, 0 },
  { "L1 entry beyond size", 36, U32, 2, false, INV, "beyond the virtual size",
    OFF_L1 + 8, COPIED | (OFF_D0 + 2 * CS) },
  { "L2 on header", OFF_L1, U64, COPIED | 0, false, INV, "L1 entry", 0, 0 },
  { "L2 on refcount block", OFF_L1, U64, COPIED | OFF_RB, false, INV, "overlaps", 0, 0 },
  { "L2 past end", OFF_L1, U64, COPIED | (UINT64_C (1) << 40), false, INV, "past the end", 0, 0 },
  { "data on L1", OFF_L2, U64, COPIED | OFF_L1, false, INV, "overlaps", 0, 0 },
  { "data on L2", OFF_L2, U64, COPIED | OFF_L2, false, INV, "overlaps", 0, 0 },
  { "data twice", OFF_L2 + 8, U64, COPIED | OFF_D0, false, INV, "overlaps", 0, 0 },
  { "data unaligned", OFF_L2, U64, COPIED | (OFF_D0 + 512), false, INV, "not aligned", 0, 0 },
  { "data past end", OFF_L2, U64, COPIED | (OFF_D0 + 2 * CS), false, INV, "past the end", 0, 0 },
  { "compressed", OFF_L2, U64, UINT64_C (1) << 62, true, INV, "compressed", 0, 0 },
  { "L2 reserved bit", OFF_L2, U64, 2, true, INV, "reserved bits", 0, 0 },
  { "L2 copied only", OFF_L2 + 16, U64, COPIED, false, INV, "copied flag", 0, 0 },
  { "L2 beyond size", OFF_L2 + 1024 * 8, U64, COPIED | (OFF_D0 + CS), false, INV,
    "beyond the virtual size", 0, 0 },
  { "refcount table zero", 48, U64, 0, false, INV, "refcount table offset", 0, 0 },
  { "refcount table unaligned", 48, U64, OFF_RT + 8, false, INV, "refcount table offset", 0, 0 },
  { "refcount table clusters 0", 56, U32, 0, false, INV, "refcount table of 0", 0, 0 },
  { "refcount table huge", 56, U32, 1000, false, INV, "refcount table of 1000", 0, 0 },
  { "refcount table on L1", 48, U64, OFF_L1, false, INV, "refcount block", 0, 0 },
  { "refcount block on L2", OFF_RT, U64, OFF_L2, false, INV, "overlaps", 0, 0 },
  { "refcount block unaligned", OFF_RT, U64, OFF_RB + 8, false, INV, "refcount block offset", 0, 0 },
  { "refcount block past end", OFF_RT + 8, U64, UINT64_C (1) << 40, false, INV, "past the end", 0, 0 },
};

static void
test_malformed (void **state)
{
  cleanup_free char *valid = make_valid ();
  cleanup_free char *bad = tpath ("bad.qcow2");
  struct qcow2_image *img;
  int fd;
  (void) state;

  /* The unmodified image is valid, and qemu agrees. */
  img = open_ok (valid, &fd, NULL);
  assert_int_equal (qcow2_image_data_clusters (img), 2);
  qcow2_image_free (img);
  close (fd);
  if (have_qemu)
    {
      char *argv[] = { "qemu-img", "check", "-q", "-f", "qcow2", "-U", valid, NULL };
      assert_int_equal (run (argv, NULL), 0);
    }

  for (size_t i = 0; i < ATE_N_ELEMENTS (mutations); i++)
    {
      const struct mutation *m = &mutations[i];
      char *argv[] = { "cp", valid, bad, NULL };

      print_message ("mutation: %s\n", m->what);
      assert_int_equal (run (argv, NULL), 0);
      poke (bad, m);
      open_fails (bad, m->code, m->want);
    }
}

static void
test_truncated (void **state)
{
  cleanup_free char *valid = make_valid ();
  cleanup_free char *bad = tpath ("trunc.qcow2");
  struct stat st;
  (void) state;

  assert_int_equal (stat (valid, &st), 0);
  /* Every cut, at cluster and sub-cluster granularity, is refused. */
  for (off_t cut = 0; cut < st.st_size; cut += (off_t) (cut < 2048 ? 8 : CS / 4))
    {
      char *argv[] = { "cp", valid, bad, NULL };
      struct qcow2_image *img = NULL;
      struct ate_error *err = NULL;
      int fd;

      assert_int_equal (run (argv, NULL), 0);
      assert_int_equal (truncate (bad, cut), 0);
      fd = open (bad, O_RDONLY | O_CLOEXEC);
      if (qcow2_image_open (fd, NULL, &img, &err) == 0)
        fail_msg ("a cut at %lld was accepted", (long long) cut);
      assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
      ate_error_release (&err);
      close (fd);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_overlay_empty),
    cmocka_unit_test (test_overlay_size_independent),
    cmocka_unit_test (test_rewrite_qemu_written),
    cmocka_unit_test (test_rewrite_size_proportional),
    cmocka_unit_test (test_qemu_created),
    cmocka_unit_test (test_expectations),
    cmocka_unit_test (test_malformed),
    cmocka_unit_test (test_truncated),
  };
  return cmocka_run_group_tests (tests, setup, teardown);
}
