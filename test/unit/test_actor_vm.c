/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor's vm layer (runtime/actor/vm.c) alone, against ch-sim: launch
 * and stop, vm.create from the assets resolved when the actor is made, a
 * checkpoint (and its retry on the paused VM), restores in both memory
 * modes and the delta merge of the checkpoint after an OnDemand restore,
 * with the state file and the step timings each records.  Root (with
 * /dev/net/tun) adds tap0 + vm.add-net + vm.boot and a restore whose
 * snapshot has a net device, on a throw-away pod namespace; without root
 * those are skipped and the binary exits 77 after the rest passed.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor/model.h"
#include "actor/state.h"
#include "actor/timing.h"
#include "actor/vm.h"
#include "ch/ch.h"
#include "net/net.h"
#include "net_fixture.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/proc.h"
#include "util/util.h"

#define KATA_CONFIG                                                                            \
  "[hypervisor.clh]\n"                                                                         \
  "kernel_params = \"cgroup_no_v1=all\"\n"                                                     \
  "default_vcpus = 1\n"                                                                        \
  "default_memory = 256\n"

struct fx
{
  char *dir, *base, *run, *kata_run, *record;
  char *kernel, *image, *kata_config, *ch_sim;
  struct actor_env env;
  struct nt_pod pod;
  bool have_pod;
};

static void
must (int r, struct ate_error **err, const char *what)
{
  if (r < 0)
    fail_msg ("%s: %s", what, *err ? (*err)->msg : "?");
}

static char *
build_path (const char *rel)
{
  const char *b = getenv ("ATE_BUILD_DIR");
  return xasprintf ("%s/%s", b ? b : ".", rel);
}

static int
setup (void **state)
{
  struct fx *f = xmalloc0 (sizeof (*f));
  struct ate_error *err = NULL;
  char tmpl[] = "/tmp/ate-test-actor-vm-XXXXXX";

  f->dir = xstrdup (mkdtemp (tmpl));
  f->base = ate_path_join (f->dir, "base");
  f->run = ate_path_join (f->dir, "run");
  f->kata_run = ate_path_join (f->dir, "kata");
  f->record = ate_path_join (f->dir, "requests.jsonl");
  f->kernel = ate_path_join (f->dir, "vmlinux");
  f->image = ate_path_join (f->dir, "kata.img");
  f->kata_config = ate_path_join (f->dir, "configuration-clh.toml");
  f->ch_sim = build_path ("bin/ch-sim-v52.0");
  must (ate_mkdir_p (f->base, 0700, &err), &err, "base");
  must (ate_mkdir_p (f->run, 0700, &err), &err, "run");
  must (ate_write_file (f->kernel, "kernel", 6, 0644, &err), &err, "kernel");
  must (ate_write_file (f->image, "image", 5, 0644, &err), &err, "image");
  must (ate_write_file (f->kata_config, KATA_CONFIG, strlen (KATA_CONFIG), 0644, &err), &err,
        "kata config");
  f->env.cfg.paths.base = f->base;
  f->env.cfg.paths.run_dir = f->run;
  f->env.cfg.paths.kata_run = f->kata_run;
  f->env.cfg.paths.pod_uid = "uid";
  ate_paths_init_defaults (&f->env.cfg.paths);
  f->env.cfg.ch_binary = f->ch_sim;
  f->env.arch = xstrdup ("amd64");
  f->env.labels_key = "labels";
  /* ch-sim inherits this: every request it gets is recorded. */
  setenv ("CH_SIM_RECORD", f->record, 1);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *f = *state;
  struct ate_error *err = NULL;

  if (f->have_pod)
    {
      if (net_actor_cleanup (f->pod.ctx, &err) < 0)
        ate_error_release (&err);
      nt_pod_free (&f->pod);
    }
  unsetenv ("CH_SIM_RECORD");
  if (ate_rm_rf (f->dir, &err) < 0)
    ate_error_release (&err);
  free (f->dir);
  free (f->base);
  free (f->run);
  free (f->kata_run);
  free (f->record);
  free (f->kernel);
  free (f->image);
  free (f->kata_config);
  free (f->ch_sim);
  free (f->env.arch);
  free (f);
  return 0;
}

/* An actor ns/t/<id> with one container and the three kata assets (or
 * without the kernel); its actor dir and rootfs disk exist. */
static struct actor *
make_actor (struct fx *f, const char *id, bool with_kernel)
{
  struct actor_container c = { .name = "c1" };
  struct actor_asset assets[] = {
    { "kata-config", f->kata_config },
    { "kata-image", f->image },
    { "kata-kernel", f->kernel },
  };
  struct actor_request req = { .ns = "ns", .tmpl = "t", .id = id, .containers = &c,
                               .n_containers = 1, .assets = assets,
                               .n_assets = with_kernel ? 3 : 2 };
  struct ate_error *err = NULL;
  struct actor *a = actor_new (&f->env, &req);

  must (ate_mkdir_p (a->dir, 0700, &err), &err, "actor dir");
  if (!ate_path_exists (a->ctrs[0].disk))
    {
      must (ate_write_file (a->ctrs[0].disk, "", 0, 0600, &err), &err, "disk");
      assert_int_equal (truncate (a->ctrs[0].disk, 8 << 20), 0);
    }
  return a;
}

static ate_deadline_t
soon (void)
{
  return ate_deadline_in_ms (20000);
}

static bool
has_step (const struct actor_timing *t, const char *key)
{
  return json_object_object_get_ex (t->steps, key, NULL);
}

/* The state file as JSON (must exist). */
static struct json_object *
state_file (const struct actor *a)
{
  cleanup_free char *path = ate_path_join (a->vm_dir, ACTOR_STATE_FILE);
  struct json_object *o = NULL;
  struct ate_error *err = NULL;
  must (ate_json_parse_file (path, 1 << 20, &o, &err), &err, "state file");
  return o;
}

/* The body of the last recorded request to `path` (NULL if none). */
static struct json_object *
recorded_body (struct fx *f, const char *path)
{
  cleanup_free char *text = NULL;
  size_t len = 0;
  struct json_object *found = NULL;
  char *save = NULL;

  if (ate_read_file (f->record, 16 << 20, &text, &len, NULL) < 0)
    return NULL;
  for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      struct json_object *o = json_tokener_parse (line), *p, *b;
      if (o && json_object_object_get_ex (o, "path", &p)
          && strcmp (json_object_get_string (p), path) == 0
          && json_object_object_get_ex (o, "body", &b) && b)
        {
          json_object_put (found);
          found = json_tokener_parse (json_object_get_string (b));
        }
      json_object_put (o);
    }
  return found;
}

static const char *
jpath (struct json_object *o, const char *a, const char *b)
{
  struct json_object *x, *y;
  if (!json_object_object_get_ex (o, a, &x) || !json_object_object_get_ex (x, b, &y))
    return NULL;
  return json_object_get_string (y);
}

static void
test_launch_records_state_and_stop_reaps (void **state)
{
  struct fx *f = *state;
  struct actor *a = make_actor (f, "a1", true);
  struct actor_timing t;
  struct ate_error *err = NULL;
  struct json_object *st;
  pid_t pid;

  actor_timing_init (&t, "test");
  must (actor_vm_launch (a, ACTOR_API_SOCKET, &t, soon (), &err), &err, "launch");
  assert_non_null (a->vmm);
  assert_true (ate_path_exists (a->api_socket));
  assert_non_null (strstr (a->api_socket, ACTOR_API_SOCKET));
  assert_true (has_step (&t, "vmm_launch_ms"));
  assert_true (t.vmm_ns > 0);
  assert_int_equal (t.agent_ns, 0);
  pid = ch_vmm_pid (a->vmm);
  st = state_file (a);
  assert_int_equal (json_object_get_int64 (json_object_object_get (st, "vmm_pid")), pid);
  assert_string_equal (ate_json_get_string (st, "api_socket"), a->api_socket);
  json_object_put (st);

  actor_vm_stop (a);
  assert_null (a->vmm);
  /* Stopped and reaped: the pid is gone. */
  assert_int_equal (kill (pid, 0), -1);
  assert_int_equal (errno, ESRCH);
  actor_vm_stop (a); /* nothing left: a no-op */
  actor_timing_release (&t);
  actor_free (a);
}

static void
test_launch_failure_names_binary (void **state)
{
  struct fx *f = *state;
  struct actor *a;
  struct ate_error *err = NULL;

  f->env.cfg.ch_binary = "/nonexistent/cloud-hypervisor";
  a = make_actor (f, "a1", true);
  f->env.cfg.ch_binary = f->ch_sim;
  assert_int_equal (actor_vm_launch (a, ACTOR_API_SOCKET, NULL, soon (), &err), -1);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "launch cloud-hypervisor `/nonexistent/cloud-hypervisor`"));
  assert_null (a->vmm);
  ate_error_release (&err);
  actor_free (a);
}

/* The request's cloud-hypervisor asset wins over the configured binary. */
static void
test_asset_overrides_binary (void **state)
{
  struct fx *f = *state;
  struct actor_container c = { .name = "c1" };
  struct actor_asset assets[] = { { "cloud-hypervisor", "/from/the/request" } };
  struct actor_request req = { .ns = "ns", .tmpl = "t", .id = "a1", .containers = &c,
                               .n_containers = 1, .assets = assets, .n_assets = 1 };
  struct actor *a = actor_new (&f->env, &req);
  struct ate_error *err = NULL;

  assert_string_equal (a->ch_binary, "/from/the/request");
  assert_null (a->kata_config); /* neither an asset nor configured */
  assert_null (a->kata_kernel);
  assert_int_equal (actor_vm_launch (a, ACTOR_API_SOCKET, NULL, soon (), &err), -1);
  assert_non_null (strstr (err->msg, "/from/the/request"));
  ate_error_release (&err);
  actor_free (a);
}

static void
test_create_from_resolved_assets (void **state)
{
  struct fx *f = *state;
  struct actor *a = make_actor (f, "a1", true);
  struct actor_timing t;
  struct ate_error *err = NULL;
  struct json_object *body, *disks, *d;

  actor_timing_init (&t, "test");
  must (actor_vm_launch (a, ACTOR_API_SOCKET, &t, soon (), &err), &err, "launch");
  must (actor_vm_create (&f->env, a, &t, soon (), &err), &err, "create");
  body = recorded_body (f, "/api/v1/vm.create");
  assert_non_null (body);
  assert_string_equal (jpath (body, "payload", "kernel"), f->kernel);
  assert_string_equal (jpath (body, "vsock", "socket"), a->vsock);
  assert_string_equal (jpath (body, "serial", "file"), a->serial);
  assert_int_equal (json_object_get_int (json_object_object_get (
                        json_object_object_get (body, "cpus"), "boot_vcpus")),
                    1);
  assert_int_equal (json_object_get_int64 (json_object_object_get (
                        json_object_object_get (body, "memory"), "size")),
                    256LL << 20);
  /* The kata image read-only first, then the container's disk. */
  assert_true (json_object_object_get_ex (body, "disks", &disks));
  assert_int_equal (json_object_array_length (disks), 2);
  d = json_object_array_get_idx (disks, 0);
  assert_string_equal (ate_json_get_string (d, "path"), f->image);
  assert_true (json_object_get_boolean (json_object_object_get (d, "readonly")));
  d = json_object_array_get_idx (disks, 1);
  assert_string_equal (ate_json_get_string (d, "path"), a->ctrs[0].disk);
  assert_false (json_object_get_boolean (json_object_object_get (d, "readonly")));
  json_object_put (body);
  actor_vm_stop (a);
  actor_timing_release (&t);
  actor_free (a);
}

static void
test_create_without_kernel_fails (void **state)
{
  struct fx *f = *state;
  struct actor *a = make_actor (f, "a1", false);
  struct ate_error *err = NULL;

  must (actor_vm_launch (a, ACTOR_API_SOCKET, NULL, soon (), &err), &err, "launch");
  assert_int_equal (actor_vm_create (&f->env, a, NULL, soon (), &err), -1);
  assert_non_null (strstr (err->msg, "kata-kernel"));
  assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
  ate_error_release (&err);
  actor_vm_stop (a);
  actor_free (a);
}

static void
assert_file_equals (const char *path, const char *want)
{
  cleanup_free char *buf = NULL;
  size_t len = 0;
  struct ate_error *err = NULL;
  must (ate_read_file (path, 4096, &buf, &len, &err), &err, path);
  assert_int_equal (len, strlen (want));
  assert_memory_equal (buf, want, len);
}

/* A booted VM of actor `id` (no network). */
static struct actor *
booted (struct fx *f, const char *id)
{
  struct actor *a = make_actor (f, id, true);
  struct ate_error *err = NULL;
  must (actor_vm_launch (a, ACTOR_API_SOCKET, NULL, soon (), &err), &err, "launch");
  must (actor_vm_create (&f->env, a, NULL, soon (), &err), &err, "create");
  must (ch_vm_boot (a->api_socket, soon (), &err), &err, "boot");
  return a;
}

/* Copy checkpoint files into a restore dir, as atelet ships them. */
static char *
ship (struct actor *a, const char *from)
{
  char *to = ate_path_join (a->dir, "restore-state");
  char *const argv[] = { "cp", "-r", "--sparse=always", (char *) from, to, NULL };
  struct ate_error *err = NULL;
  must (ate_rm_rf (to, &err), &err, "rm restore-state");
  must (ate_proc_run (argv, NULL, soon (), NULL, &err), &err, "cp");
  return to;
}

static void
test_checkpoint_writes_lineage_and_retries (void **state)
{
  struct fx *f = *state;
  struct actor *a = booted (f, "a1");
  cleanup_free char *dir = ate_path_join (a->dir, "checkpoint-state");
  cleanup_free char *base_id = ate_path_join (dir, ATE_BASE_ID_FILE);
  cleanup_strv char **files = NULL;
  struct actor_timing t;
  struct ate_error *err = NULL;

  free (a->base_id);
  a->base_id = xstrdup ("golden1");
  actor_timing_init (&t, "test");
  must (actor_vm_checkpoint (a, dir, &t, soon (), &err), &err, "checkpoint");
  /* The lineage id, exact bytes. */
  assert_file_equals (base_id, "golden1");
  must (actor_list_files (dir, &files, &err), &err, "list");
  assert_string_equal (files[0], "base-id");
  assert_string_equal (files[1], "config.json");
  assert_string_equal (files[2], "memory-ranges");
  assert_string_equal (files[3], "state.json");
  assert_null (files[4]);
  assert_true (has_step (&t, "pause_ms"));
  assert_true (has_step (&t, "snapshot_ms"));
  assert_false (has_step (&t, "merge_ms")); /* not restored: nothing to merge */
  assert_true (t.vmm_ns > 0);
  actor_timing_release (&t);

  /* The VM stays paused; a retry continues from there. */
  must (actor_vm_checkpoint (a, dir, NULL, soon (), &err), &err, "retried checkpoint");
  assert_file_equals (base_id, "golden1");
  actor_vm_stop (a);
  actor_free (a);
}

/* Checkpoint a1, then restore it into a fresh VMM in `mode`. */
static struct actor *
restored (struct fx *f, const char *mode, struct actor_timing *t, char **restore_dir)
{
  struct actor *a = booted (f, "a1");
  cleanup_free char *cp = ate_path_join (a->dir, "checkpoint-state");
  struct ate_error *err = NULL;

  must (actor_vm_checkpoint (a, cp, NULL, soon (), &err), &err, "checkpoint");
  actor_vm_stop (a);
  actor_free (a);

  a = make_actor (f, "a1", true);
  a->restored = true;
  *restore_dir = ship (a, cp);
  f->env.cfg.restore_memory_mode = mode;
  must (actor_vm_launch (a, ACTOR_API_SOCKET_RESTORE, t, soon (), &err), &err, "launch");
  must (actor_vm_restore (&f->env, a, *restore_dir, t, soon (), &err), &err, "restore");
  f->env.cfg.restore_memory_mode = NULL;
  return a;
}

static void
test_restore_ondemand_then_checkpoint_merges (void **state)
{
  struct fx *f = *state;
  cleanup_free char *restore_dir = NULL;
  cleanup_free char *cp2 = NULL;
  struct actor_timing t;
  struct ate_error *err = NULL;
  struct json_object *st;
  cleanup_free char *info = NULL;
  struct actor *a;

  actor_timing_init (&t, "test");
  a = restored (f, "ondemand", &t, &restore_dir);
  assert_non_null (strstr (a->api_socket, ACTOR_API_SOCKET_RESTORE));
  assert_true (has_step (&t, "taps_ms"));
  assert_true (has_step (&t, "vm_restore_ms"));
  assert_true (has_step (&t, "vm_resume_ms"));
  must (ch_vm_info_state (a->api_socket, &info, soon (), &err), &err, "vm.info");
  assert_string_equal (info, "Running");
  /* CH pages from the restore dir until teardown: recorded for restarts. */
  assert_string_equal (a->restore_src, restore_dir);
  st = state_file (a);
  assert_string_equal (ate_json_get_string (st, "restore_source"), restore_dir);
  assert_true (json_object_get_boolean (json_object_object_get (st, "restored")));
  json_object_put (st);
  actor_timing_release (&t);

  /* The next snapshot is a delta: merged into its base. */
  cp2 = ate_path_join (a->dir, "checkpoint-2");
  actor_timing_init (&t, "test");
  must (actor_vm_checkpoint (a, cp2, &t, soon (), &err), &err, "checkpoint after restore");
  assert_true (has_step (&t, "merge_ms"));
  actor_timing_release (&t);
  actor_vm_stop (a);
  actor_free (a);
}

static void
test_restore_copy_keeps_no_source (void **state)
{
  struct fx *f = *state;
  cleanup_free char *restore_dir = NULL;
  struct json_object *st;
  struct actor *a = restored (f, "copy", NULL, &restore_dir);

  assert_null (a->restore_src);
  st = state_file (a);
  assert_false (json_object_object_get_ex (st, "restore_source", NULL));
  json_object_put (st);
  actor_vm_stop (a);
  actor_free (a);
}

static void
test_restore_bad_mode_fails_before_the_vmm (void **state)
{
  struct fx *f = *state;
  struct actor *a = booted (f, "a1");
  cleanup_free char *cp = ate_path_join (a->dir, "checkpoint-state");
  struct ate_error *err = NULL;
  struct actor *b;

  must (actor_vm_checkpoint (a, cp, NULL, soon (), &err), &err, "checkpoint");
  actor_vm_stop (a);
  actor_free (a);
  b = make_actor (f, "a1", true);
  must (actor_vm_launch (b, ACTOR_API_SOCKET_RESTORE, NULL, soon (), &err), &err, "launch");
  f->env.cfg.restore_memory_mode = "sometimes";
  assert_int_equal (actor_vm_restore (&f->env, b, cp, NULL, soon (), &err), -1);
  f->env.cfg.restore_memory_mode = NULL;
  assert_non_null (err);
  assert_null (recorded_body (f, "/api/v1/vm.restore"));
  ate_error_release (&err);
  actor_vm_stop (b);
  actor_free (b);
}

/* ---- with a pod network (root) ---- */

static bool
pod_up (struct fx *f)
{
  struct nt_pod_opts o = { 0 };
  struct net_actor_info info;
  struct ate_error *err = NULL;

  nt_pod_new (&f->pod, &o);
  f->have_pod = true;
  f->env.net = f->pod.ctx;
  must (net_actor_setup (f->pod.ctx, &info, &err), &err, "network setup");
  return true;
}

static void
test_add_net_boot_then_restore_with_tap (void **state)
{
  struct fx *f = *state;
  struct actor *a = make_actor (f, "a1", true);
  cleanup_free char *cp = ate_path_join (a->dir, "checkpoint-state");
  cleanup_free char *restore_dir = NULL;
  cleanup_free char *info = NULL;
  struct actor_timing t;
  struct ate_error *err = NULL;
  struct json_object *net;

  pod_up (f);
  actor_timing_init (&t, "test");
  must (actor_vm_launch (a, ACTOR_API_SOCKET, &t, soon (), &err), &err, "launch");
  must (actor_vm_create (&f->env, a, &t, soon (), &err), &err, "create");
  must (actor_vm_add_net_boot (&f->env, a, &t, soon (), &err), &err, "add-net + boot");
  assert_true (has_step (&t, "vm_boot_ms"));
  net = recorded_body (f, "/api/v1/vm.add-net");
  assert_non_null (net);
  assert_string_equal (ate_json_get_string (net, "mac"), ACTOR_TAP_MAC);
  json_object_put (net);
  must (ch_vm_info_state (a->api_socket, &info, soon (), &err), &err, "vm.info");
  assert_string_equal (info, "Running");
  actor_timing_release (&t);

  /* The snapshot has a net device: the restore makes its tap and passes
   * the fds. */
  must (actor_vm_checkpoint (a, cp, NULL, soon (), &err), &err, "checkpoint");
  actor_vm_stop (a);
  actor_free (a);
  a = make_actor (f, "a1", true);
  restore_dir = ship (a, cp);
  must (actor_vm_launch (a, ACTOR_API_SOCKET_RESTORE, NULL, soon (), &err), &err, "launch");
  must (actor_vm_restore (&f->env, a, restore_dir, NULL, soon (), &err), &err, "restore");
  free (info);
  info = NULL;
  must (ch_vm_info_state (a->api_socket, &info, soon (), &err), &err, "vm.info");
  assert_string_equal (info, "Running");
  actor_vm_stop (a);
  actor_free (a);
}

int
main (void)
{
  const struct CMUnitTest plain[] = {
    cmocka_unit_test_setup_teardown (test_launch_records_state_and_stop_reaps, setup, teardown),
    cmocka_unit_test_setup_teardown (test_launch_failure_names_binary, setup, teardown),
    cmocka_unit_test_setup_teardown (test_asset_overrides_binary, setup, teardown),
    cmocka_unit_test_setup_teardown (test_create_from_resolved_assets, setup, teardown),
    cmocka_unit_test_setup_teardown (test_create_without_kernel_fails, setup, teardown),
    cmocka_unit_test_setup_teardown (test_checkpoint_writes_lineage_and_retries, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_restore_ondemand_then_checkpoint_merges, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_restore_copy_keeps_no_source, setup, teardown),
    cmocka_unit_test_setup_teardown (test_restore_bad_mode_fails_before_the_vmm, setup,
                                     teardown),
  };
  const struct CMUnitTest with_net[] = {
    cmocka_unit_test_setup_teardown (test_add_net_boot_then_restore_with_tap, setup, teardown),
  };
  cleanup_free char *sim = build_path ("bin/ch-sim-v52.0");
  bool root = geteuid () == 0;
  int r;

  if (access (sim, X_OK) != 0)
    {
      printf ("test_actor_vm: skipped: no %s\n", sim);
      return 77;
    }
  ate_log_set_level (ATE_LOG_ERROR);
  /* Before any thread: a private mount namespace for the pod's netns. */
  if (root)
    nt_init_or_skip ("test_actor_vm");
  r = cmocka_run_group_tests_name ("actor vm", plain, NULL, NULL);
  if (r != 0)
    return r;
  if (!root)
    {
      printf ("test_actor_vm: network tests skipped: need root\n");
      return 77;
    }
  return cmocka_run_group_tests_name ("actor vm with a pod network", with_net, NULL, NULL);
}
