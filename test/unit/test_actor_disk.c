/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor's disk layer (runtime/actor/disk.c) alone, with a real rootfs
 * manager: bundles checked (FAILED_PRECONDITION naming what atelet must
 * prepare), the pod's resolv.conf in each rootfs (verbatim, 0644, fixed
 * mtime, a symlink replaced and never followed, an empty file refused),
 * directory times normalised, a disk per container for Run, and the golden
 * template: kept at the first checkpoint of a Run activation (never by a
 * restored one), linked into the actor directory, shipped on request, and
 * every Restore's disk reset to it.  Needs e2fsprogs (77 otherwise).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor/disk.h"
#include "actor/model.h"
#include "rootfs/rootfs.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

#define FIXED_TIME 1704067200 /* the rootfs builder's fixed time */
#define RESOLV "nameserver 10.0.0.10\nsearch svc.cluster.local\n"

struct fx
{
  char *dir, *resolv;
  struct actor_env env;
  struct actor *a;
};

static void
must (int r, struct ate_error **err, const char *what)
{
  if (r < 0)
    fail_msg ("%s: %s", what, *err ? (*err)->msg : "?");
}

static ate_deadline_t
soon (void)
{
  return ate_deadline_in_ms (60000);
}

static void
put (const char *dir, const char *name, const char *text)
{
  cleanup_free char *p = ate_path_join (dir, name);
  struct ate_error *err = NULL;
  must (ate_write_file (p, text, strlen (text), 0644, &err), &err, p);
}

/* A bundle atelet would prepare: rootfs with a file, config.json. */
static void
make_bundle (const struct actor_ctr *c)
{
  cleanup_free char *rootfs = ate_path_join (c->bundle, "rootfs");
  cleanup_free char *bin = ate_path_join (rootfs, "bin");
  struct ate_error *err = NULL;
  must (ate_mkdir_p (bin, 0755, &err), &err, "bundle");
  put (bin, "app", "#!/bin/sh\necho hi\n");
  put (c->bundle, "config.json", "{}");
}

static struct actor *
make_actor (struct fx *f, size_t n)
{
  struct actor_container cs[] = { { .name = "c1" }, { .name = "c2" } };
  struct actor_request req = { .ns = "ns", .tmpl = "t", .id = "a1", .containers = cs,
                               .n_containers = n };
  struct actor *a = actor_new (&f->env, &req);
  struct ate_error *err = NULL;
  must (ate_mkdir_p (a->dir, 0700, &err), &err, "actor dir");
  return a;
}

static int
setup (void **state)
{
  struct fx *f = xmalloc0 (sizeof (*f));
  struct rootfs_config rc;
  struct ate_error *err = NULL;
  char tmpl[] = "/tmp/ate-test-actor-disk-XXXXXX";

  f->dir = xstrdup (mkdtemp (tmpl));
  f->resolv = ate_path_join (f->dir, "resolv.conf");
  put (f->dir, "resolv.conf", RESOLV);
  f->env.cfg.paths.base = f->dir;
  f->env.cfg.paths.run_dir = f->dir;
  f->env.cfg.paths.pod_uid = "uid";
  ate_paths_init_defaults (&f->env.cfg.paths);
  f->env.cfg.resolv_conf = f->resolv;
  rootfs_config_init (&rc);
  rc.base_path = f->dir;
  rc.cache_max_bytes = 0;
  must (rootfs_manager_new (&rc, &f->env.rootfs, &err), &err, "rootfs manager");
  f->a = make_actor (f, 2);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *f = *state;
  struct ate_error *err = NULL;

  actor_free (f->a);
  rootfs_manager_free (f->env.rootfs);
  if (ate_rm_rf (f->dir, &err) < 0)
    ate_error_release (&err);
  free (f->dir);
  free (f->resolv);
  free (f);
  return 0;
}

static void
test_bundles_checked (void **state)
{
  struct fx *f = *state;
  struct actor *a = f->a;
  struct ate_error *err = NULL;
  cleanup_free char *config = ate_path_join (a->ctrs[1].bundle, "config.json");

  assert_int_equal (actor_disk_check_bundles (a, &err), -1);
  assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
  assert_non_null (strstr (err->msg, "container c1 has no rootfs"));
  ate_error_release (&err);

  make_bundle (&a->ctrs[0]);
  make_bundle (&a->ctrs[1]);
  must (actor_disk_check_bundles (a, &err), &err, "complete bundles");
  unlink (config);
  assert_int_equal (actor_disk_check_bundles (a, &err), -1);
  assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
  assert_non_null (strstr (err->msg, "container c2 has no config.json"));
  ate_error_release (&err);
  /* Run checks them before it builds anything. */
  assert_int_equal (actor_disk_prepare_run (&f->env, a, soon (), &err), -1);
  assert_false (ate_path_exists (a->ctrs[0].disk));
  ate_error_release (&err);
}

static void
assert_resolv_conf (const struct actor_ctr *c)
{
  cleanup_free char *p = xasprintf ("%s/rootfs/etc/resolv.conf", c->bundle);
  cleanup_free char *rootfs = ate_path_join (c->bundle, "rootfs");
  cleanup_free char *text = NULL;
  size_t len = 0;
  struct stat st;
  struct ate_error *err = NULL;

  assert_int_equal (lstat (p, &st), 0);
  assert_true (S_ISREG (st.st_mode));
  assert_int_equal (st.st_mode & 07777, 0644);
  assert_int_equal (st.st_mtim.tv_sec, FIXED_TIME);
  must (ate_read_file (p, 4096, &text, &len, &err), &err, "read resolv.conf");
  assert_int_equal (len, strlen (RESOLV));
  assert_memory_equal (text, RESOLV, len);
  /* Directory times are the builder's, so the disk is reproducible. */
  assert_int_equal (stat (rootfs, &st), 0);
  assert_int_equal (st.st_mtim.tv_sec, FIXED_TIME);
}

static void
test_run_writes_resolv_conf_and_builds_disks (void **state)
{
  struct fx *f = *state;
  struct actor *a = f->a;
  struct ate_error *err = NULL;
  cleanup_free char *outside = ate_path_join (f->dir, "outside");
  cleanup_free char *etc = xasprintf ("%s/rootfs/etc", a->ctrs[1].bundle);
  cleanup_free char *link = ate_path_join (etc, "resolv.conf");
  cleanup_free char *text = NULL;
  size_t len = 0;
  struct stat st;

  make_bundle (&a->ctrs[0]);
  make_bundle (&a->ctrs[1]);
  /* An image whose resolv.conf points elsewhere. */
  put (f->dir, "outside", "untouched\n");
  must (ate_mkdir_p (etc, 0755, &err), &err, "etc");
  assert_int_equal (symlink (outside, link), 0);

  must (actor_disk_prepare_run (&f->env, a, soon (), &err), &err, "prepare run");
  assert_resolv_conf (&a->ctrs[0]);
  assert_resolv_conf (&a->ctrs[1]);
  must (ate_read_file (outside, 4096, &text, &len, &err), &err, "outside");
  assert_string_equal (text, "untouched\n");
  for (size_t i = 0; i < a->n_ctrs; i++)
    {
      assert_int_equal (stat (a->ctrs[i].disk, &st), 0);
      assert_true (st.st_size > 0);
    }
  /* A retried Run finds everything in place. */
  must (actor_disk_prepare_run (&f->env, a, soon (), &err), &err, "prepare run again");
  assert_resolv_conf (&a->ctrs[0]);
}

static void
test_empty_resolv_conf_refused (void **state)
{
  struct fx *f = *state;
  struct ate_error *err = NULL;

  make_bundle (&f->a->ctrs[0]);
  make_bundle (&f->a->ctrs[1]);
  put (f->dir, "resolv.conf", "");
  assert_int_equal (actor_disk_prepare_run (&f->env, f->a, soon (), &err), -1);
  assert_int_equal (err->status, EINVAL);
  assert_non_null (strstr (err->msg, "is empty"));
  ate_error_release (&err);
}

/* The first bytes of a file. */
static void
read_head (const char *path, char *buf, size_t n)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, buf, n, 0), (ssize_t) n);
  close (fd);
}

static void
scribble (const char *path)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, "guest writes", 12, 0), 12);
  close (fd);
}

static void
test_golden_kept_shipped_and_reset (void **state)
{
  struct fx *f = *state;
  struct actor *a = f->a;
  struct ate_error *err = NULL;
  cleanup_free char *cp = ate_path_join (a->dir, "checkpoint-state");
  cleanup_free char *linked = ate_path_join (a->dir, "golden-rootfs.ext4");
  cleanup_free char *shipped0 = ate_path_join (cp, "golden-rootfs.ext4");
  cleanup_free char *shipped1 = ate_path_join (cp, "golden-rootfs-c2.ext4");
  char golden[4096], now[4096];
  struct actor *b;

  make_bundle (&a->ctrs[0]);
  make_bundle (&a->ctrs[1]);
  must (actor_disk_prepare_run (&f->env, a, soon (), &err), &err, "prepare run");
  must (ate_mkdir_p (cp, 0700, &err), &err, "checkpoint dir");
  read_head (a->ctrs[0].disk, golden, sizeof (golden));

  /* First checkpoint of a Run activation: the template, linked and
   * shipped. */
  f->env.cfg.ship_golden_disk = true;
  must (actor_disk_save_golden (&f->env, a, cp, &err), &err, "save golden");
  assert_true (ate_path_exists (linked));
  assert_true (ate_path_exists (shipped0));
  assert_true (ate_path_exists (shipped1));

  /* A restored activation's disk holds writes: it never becomes the
   * template, and its Restore resets it. */
  b = make_actor (f, 2);
  b->restored = true;
  scribble (b->ctrs[0].disk);
  must (actor_disk_save_golden (&f->env, b, cp, &err), &err, "save golden (restored)");
  must (actor_disk_prepare_restore (&f->env, b, cp, soon (), &err), &err, "prepare restore");
  read_head (b->ctrs[0].disk, now, sizeof (now));
  assert_memory_equal (now, golden, sizeof (golden));
  actor_free (b);
}

static void
test_restore_without_template_rebuilds_for_this_actor_only (void **state)
{
  struct fx *f = *state;
  struct actor *a = f->a;
  struct ate_error *err = NULL;
  cleanup_free char *restore = ate_path_join (a->dir, "restore-state");
  cleanup_free char *key = xasprintf ("ns:t:%s", a->base_id);

  make_bundle (&a->ctrs[0]);
  make_bundle (&a->ctrs[1]);
  must (ate_mkdir_p (restore, 0700, &err), &err, "restore dir");
  assert_false (rootfs_golden_exists (f->env.rootfs, key));
  must (actor_disk_prepare_restore (&f->env, a, restore, soon (), &err), &err, "prepare restore");
  assert_resolv_conf (&a->ctrs[0]);
  /* The rebuild is this actor's bundle: it never becomes the lineage's
   * template (only the lineage's own Run makes one). */
  assert_false (rootfs_golden_exists (f->env.rootfs, key));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_bundles_checked, setup, teardown),
    cmocka_unit_test_setup_teardown (test_run_writes_resolv_conf_and_builds_disks, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_empty_resolv_conf_refused, setup, teardown),
    cmocka_unit_test_setup_teardown (test_golden_kept_shipped_and_reset, setup, teardown),
    cmocka_unit_test_setup_teardown (test_restore_without_template_rebuilds_for_this_actor_only, setup,
                                     teardown),
  };
  char *const probe[] = { "mkfs.ext4", "-V", NULL };
  struct ate_error *err = NULL;

  if (ate_proc_run (probe, NULL, ate_deadline_in_ms (10000), NULL, &err) < 0)
    {
      printf ("test_actor_disk: skipped: no mkfs.ext4 (%s)\n", err->msg);
      ate_error_release (&err);
      return 77;
    }
  ate_log_set_level (ATE_LOG_ERROR);
  return cmocka_run_group_tests_name ("actor disk", tests, NULL, NULL);
}
