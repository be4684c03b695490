/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor's VM, the cloud-hypervisor side of an activation (vm.h;
 * docs/architecture.md, "The three RPCs"; docs/cloud-hypervisor.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor/model.h"
#include "actor/state.h"
#include "actor/timing.h"
#include "actor/vm.h"
#include "ch/ch.h"
#include "kata/config.h"
#include "net/net.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/untrusted.h"
#include "util/util.h"

#define MIB (1024ULL * 1024ULL)
/* Bounds on the files handed to cloud-hypervisor for a caller
 * (docs/api.md, "Files the server opens for a caller"). */
#define KERNEL_MAX (512ULL * MIB)
#define IMAGE_MAX (1ULL << 40)
#define STATE_JSON_MAX (256ULL * MIB)
#define MEMORY_RANGES_MAX (1ULL << 42)
#define RNG_SRC "/dev/urandom"
#define VSOCK_CID 3
#define IMAGE_TYPE "Raw"

/* The kernel and the image are the caller's assets: regular files (a
 * FIFO would block cloud-hypervisor's open), bounded. */
static int
check_assets (const struct actor *a, struct ate_error **err)
{
  if (a->kata_kernel == NULL || a->kata_image == NULL)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                                "the kata-kernel and kata-image runtime assets are required");
  if (ate_untrusted_check (NULL, a->kata_kernel, KERNEL_MAX, err) < 0)
    return ate_error_wrap (err, "the kata-kernel asset");
  if (ate_untrusted_check (NULL, a->kata_image, IMAGE_MAX, err) < 0)
    return ate_error_wrap (err, "the kata-image asset");
  return 0;
}

/* Disk i of the VM: the kata image read-only, then one writable rootfs
 * per container.  One place for vm.create and the restore configuration,
 * so a restore expects exactly what a Run creates. */
static const char *
disk_path (const struct actor *a, size_t i)
{
  return i == 0 ? a->kata_image : a->ctrs[i - 1].disk;
}

int
actor_vm_launch (struct actor *a, const char *socket_name,
                 struct actor_timing *t, ate_deadline_t deadline, struct ate_error **err)
{
  int64_t mark = ate_now_ns ();

  if (ate_mkdir_p (a->vm_dir, 0700, err) < 0)
    return -1;
  free (a->api_socket);
  a->api_socket = ate_path_join (a->vm_dir, socket_name);
  if (ACTOR_VMM_CALL (t, ch_vmm_launch (a->ch_binary, a->api_socket,
                                  ate_deadline_min (deadline, ate_deadline_in_ms (ACTOR_VMM_READY_MS)),
                                  &a->vmm, err))
      < 0)
    return ate_error_wrap (err, "launch cloud-hypervisor `%s`", a->ch_binary);
  if (actor_state_save (a, err) < 0)
    return -1;
  actor_timing_step (t, "vmm_launch", &mark);
  return 0;
}

/* Disks: the kata image read-only, then one writable rootfs per container. */
int
actor_vm_create (const struct actor_env *env, struct actor *a, struct actor_timing *t,
                 ate_deadline_t deadline, struct ate_error **err)
{
  struct kata_config kc = { 0 };
  struct ch_vm_config vc = { 0 };
  cleanup_free struct ch_disk_config *disks = xcalloc (a->n_ctrs + 1, sizeof (*disks));
  cleanup_free char *cmdline = NULL;
  int r;

  if (check_assets (a, err) < 0)
    return -1;
  if (kata_config_load (a->kata_config, &kc, err) < 0)
    return ate_error_wrap (err, "read the kata configuration");
  cmdline = kata_kernel_cmdline (env->arch, kc.kernel_params, env->cfg.kata_debug);
  for (size_t i = 0; i <= a->n_ctrs; i++)
    {
      disks[i].path = disk_path (a, i);
      disks[i].readonly = i == 0;
      disks[i].num_queues = (uint32_t) kc.vcpus;
      disks[i].queue_size = 1024;
      disks[i].image_type = IMAGE_TYPE;
    }
  vc.boot_vcpus = vc.max_vcpus = (uint32_t) kc.vcpus;
  vc.memory_size = (uint64_t) kc.memory_mib * MIB;
  vc.memory_shared = true;
  vc.kernel = a->kata_kernel;
  vc.cmdline = cmdline;
  vc.disks = disks;
  vc.n_disks = a->n_ctrs + 1;
  vc.rng_src = RNG_SRC;
  vc.serial_file = a->serial;
  vc.vsock_cid = VSOCK_CID;
  vc.vsock_socket = a->vsock;
  r = ACTOR_VMM_CALL (t, ch_vm_create (a->api_socket, &vc, deadline, err));
  kata_config_release (&kc);
  if (r < 0)
    return ate_error_wrap (err, "vm.create");
  return 0;
}

int
actor_vm_add_net_boot (const struct actor_env *env, struct actor *a, struct actor_timing *t,
                       ate_deadline_t deadline, struct ate_error **err)
{
  cleanup_free char *tap = net_tap_name (0);
  int64_t mark = ate_now_ns ();
  int *fds = NULL;
  size_t nfds = 0;
  int r;

  if (net_tap_create (env->net, tap, 1, 0, &fds, &nfds, err) < 0)
    return ate_error_wrap (err, "create %s", tap);
  r = ACTOR_VMM_CALL (t, ch_vm_add_net (a->api_socket, ACTOR_TAP_MAC, 2, fds, nfds, deadline, err));
  /* CH holds its own duplicates. */
  net_tap_fds_free (fds, nfds);
  if (r < 0)
    return ate_error_wrap (err, "vm.add-net");
  if (ACTOR_VMM_CALL (t, ch_vm_boot (a->api_socket, deadline, err)) < 0)
    return ate_error_wrap (err, "vm.boot");
  actor_timing_step (t, "vm_boot", &mark);
  return 0;
}

/* The snapshot's files are untrusted (docs/api.md, "What a snapshot may
 * carry"): regular files beneath restore-state, then a configuration built
 * from this server's own assets and paths. */
int
actor_vm_restore_config (const struct actor_env *env, struct actor *a, const char *restore_dir,
                         ate_deadline_t deadline, struct ate_error **err)
{
  struct kata_config kc = { 0 };
  struct ch_restore_expect exp = { 0 };
  cleanup_free struct ch_expected_disk *disks = xcalloc (a->n_ctrs + 1, sizeof (*disks));
  cleanup_free char *cmdline = NULL;
  int r;

  if (ate_untrusted_check (restore_dir, "state.json", STATE_JSON_MAX, err) < 0
      || ate_untrusted_check (restore_dir, "memory-ranges", MEMORY_RANGES_MAX, err) < 0)
    return ate_error_wrap (err, "the snapshot in restore-state");
  if (check_assets (a, err) < 0)
    return -1;
  if (kata_config_load (a->kata_config, &kc, err) < 0)
    return ate_error_wrap (err, "read the kata configuration");
  cmdline = kata_kernel_cmdline (env->arch, kc.kernel_params, env->cfg.kata_debug);
  for (size_t i = 0; i <= a->n_ctrs; i++)
    {
      disks[i].path = disk_path (a, i);
      disks[i].readonly = i == 0;
      disks[i].image_type = IMAGE_TYPE;
    }
  exp.kernel = a->kata_kernel;
  exp.cmdline = cmdline;
  exp.vcpus = (uint32_t) kc.vcpus;
  exp.memory_size = (uint64_t) kc.memory_mib * MIB;
  exp.disks = disks;
  exp.n_disks = a->n_ctrs + 1;
  exp.rng_src = RNG_SRC;
  exp.serial_file = a->serial;
  exp.vsock_socket = a->vsock;
  exp.vsock_cid = VSOCK_CID;
  exp.net_mac = ACTOR_TAP_MAC;
  r = ch_restore_config_sanitise (restore_dir, &exp, deadline, err);
  kata_config_release (&kc);
  return r;
}

/* One tap per net device of the snapshot, fds in device order. */
static int
restore_taps (const struct actor_env *env, const char *restore_dir, struct ch_restore_net **nets,
              size_t *n_nets, int **fds, size_t *nfds, struct ate_error **err)
{
  struct ch_net_device *devs = NULL;
  size_t n = 0;

  *fds = NULL;
  *nfds = 0;
  if (ch_snapshot_net_devices (restore_dir, &devs, &n, err) < 0)
    return ate_error_wrap (err, "read the snapshot's net devices");
  *nets = xcalloc (n ? n : 1, sizeof (**nets));
  *n_nets = n;
  for (size_t i = 0; i < n; i++)
    {
      cleanup_free char *tap = net_tap_name ((unsigned) i);
      int *tfds = NULL;
      size_t tn = 0;
      if (net_tap_create (env->net, tap, devs[i].queue_pairs, 0, &tfds, &tn, err) < 0)
        {
          ch_net_devices_free (devs, n);
          return ate_error_wrap (err, "create %s", tap);
        }
      (*nets)[i].id = xstrdup (devs[i].id);
      (*nets)[i].num_fds = tn;
      *fds = xrealloc (*fds, (*nfds + tn) * sizeof (int));
      memcpy (*fds + *nfds, tfds, tn * sizeof (int));
      *nfds += tn;
      free (tfds);
    }
  ch_net_devices_free (devs, n);
  return 0;
}

static void
restore_nets_free (struct ch_restore_net *nets, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free ((char *) nets[i].id);
  free (nets);
}

int
actor_vm_restore (const struct actor_env *env, struct actor *a, const char *restore_dir,
                  struct actor_timing *t, ate_deadline_t deadline, struct ate_error **err)
{
  struct ch_restore_net *nets = NULL;
  size_t n_nets = 0, nfds = 0;
  int *fds = NULL;
  enum ch_restore_pref pref = CH_RESTORE_PREF_AUTO;
  enum ch_restore_mode mode;
  bool send_mode;
  int64_t mark = ate_now_ns ();
  int r;

  if (restore_taps (env, restore_dir, &nets, &n_nets, &fds, &nfds, err) < 0)
    goto fail;
  actor_timing_step (t, "taps", &mark);
  if (env->cfg.restore_memory_mode
      && ch_restore_pref_parse (env->cfg.restore_memory_mode, &pref, err) < 0)
    goto fail;
  if (ch_restore_mode_choose (ch_vmm_version (a->vmm), pref, &mode, &send_mode, err) < 0)
    goto fail;
  r = ACTOR_VMM_CALL (t, ch_vm_restore (a->api_socket, restore_dir, mode, send_mode, nets, n_nets, fds,
                                  nfds, deadline, err));
  net_tap_fds_free (fds, nfds);
  fds = NULL;
  restore_nets_free (nets, n_nets);
  nets = NULL;
  if (r < 0)
    return ate_error_wrap (err, "vm.restore (%s)", ch_restore_mode_name (mode));
  actor_timing_step (t, "vm_restore", &mark);
  /* CH demand-pages guest memory from the restore dir until the VM is torn
   * down, and the next snapshot will be a delta of it
   * (docs/cloud-hypervisor.md, "Supported CH versions"). */
  if (mode == CH_RESTORE_ONDEMAND)
    {
      cleanup_free char *mem = ate_path_join (restore_dir, "memory-ranges");
      cleanup_free char *keep = ate_path_join (a->dir, ACTOR_RESTORE_BASE);
      a->restore_src = xstrdup (restore_dir);
      if ((unlink (keep) < 0 && errno != ENOENT) || link (mem, keep) < 0)
        ate_log (ATE_LOG_WARN, "the restore source is not kept beside the actor: a checkpoint "
                 "needs restore-state/ in place", "actor_id", a->id, "error", strerror (errno),
                 NULL);
    }
  if (actor_state_save (a, err) < 0)
    return -1;
  if (ACTOR_VMM_CALL (t, ch_vm_resume (a->api_socket, deadline, err)) < 0)
    return ate_error_wrap (err, "vm.resume");
  actor_timing_step (t, "vm_resume", &mark);
  ate_log (ATE_LOG_INFO, "restored with memory mode", "actor_id", a->id, "mode",
           ch_restore_mode_name (mode), "cloud_hypervisor", ch_vmm_version (a->vmm)->raw, NULL);
  return 0;

fail:
  net_tap_fds_free (fds, nfds);
  restore_nets_free (nets, n_nets);
  return -1;
}

/* Move the complete snapshot from the staging directory into dir, file by
 * file (rename: a final name never holds a torn file), then remove the
 * staging directory. */
static int
publish_snapshot (const char *staging, const char *dir, struct ate_error **err)
{
  cleanup_strv char **files = NULL;

  if (actor_list_files (staging, &files, err) < 0)
    return -1;
  if (ate_rm_rf (dir, err) < 0 || ate_mkdir_p (dir, 0700, err) < 0)
    return ate_error_wrap (err, "prepare the checkpoint directory");
  for (char **f = files; *f; f++)
    {
      cleanup_free char *from = ate_path_join (staging, *f);
      cleanup_free char *to = ate_path_join (dir, *f);
      if (rename (from, to) < 0)
        return ate_error_make (err, errno, "move `%s` into `%s`", from, dir);
    }
  {
    /* fsync of the directory holding <dir>/<any name>, i.e. dir itself. */
    cleanup_free char *inside = ate_path_join (dir, ".");
    if (ate_fsync_dir_of (inside, err) < 0)
      return -1;
  }
  return ate_rm_rf (staging, err);
}

/* A retried checkpoint after an on-demand restore whose earlier attempt
 * merged the delta into the base (the base's blocks moved into the merged
 * file) and was then cut short (a crash before the marker): the merged file
 * is the full memory now and must become the base, not be wiped with the
 * staging or checkpoint directory.  An interrupted merge is finished
 * first. */
static int
keep_merged_base (const struct actor *a, const char *staging, const char *dir,
                  struct ate_error **err)
{
  cleanup_free char *src = ate_path_join (a->restore_src, "memory-ranges");
  cleanup_free char *kept = ate_path_join (a->dir, ACTOR_RESTORE_BASE);
  const char *const where[] = { staging, dir };

  for (size_t i = 0; i < ATE_N_ELEMENTS (where); i++)
    {
      cleanup_free char *merged = ate_path_join (where[i], "memory-ranges");
      const char *base = ate_path_exists (kept) || !ate_path_exists (src) ? kept : src;
      if (ch_merge_recover (base, merged, err) < 0)
        return -1;
      if (ate_path_exists (kept) || ate_path_exists (src) || !ate_path_exists (merged))
        continue;
      if (rename (merged, kept) < 0)
        return ate_error_make (err, errno, "keep the merged memory of an interrupted "
                                           "checkpoint as the base");
      ate_log (ATE_LOG_INFO, "merged memory of an interrupted checkpoint kept as its base",
               "actor_id", a->id, NULL);
    }
  return 0;
}

int
actor_vm_checkpoint (struct actor *a, const char *dir, struct actor_timing *t,
                     ate_deadline_t deadline, struct ate_error **err)
{
  /* cloud-hypervisor writes into a staging directory beside the final one
   * (same file system): a snapshot cut short (ENOSPC, a crash) leaves no
   * partial file under a final name. */
  cleanup_free char *staging = xasprintf ("%s.staging", dir);
  cleanup_free char *base_id_file = ate_path_join (staging, ATE_BASE_ID_FILE);
  int64_t mark = ate_now_ns ();

  if (ACTOR_VMM_CALL (t, ch_ping (a->api_socket, NULL,
                            ate_deadline_min (deadline, ate_deadline_in_ms (ACTOR_CHECKPOINT_READY_MS)),
                            err))
      < 0)
    return ate_error_wrap (err, "cloud-hypervisor is not answering");
  if (ACTOR_VMM_CALL (t, ch_vm_pause (a->api_socket, deadline, err)) < 0)
    return ate_error_wrap (err, "vm.pause");
  actor_timing_step (t, "pause", &mark);
  if (a->restore_src && keep_merged_base (a, staging, dir, err) < 0)
    return -1;
  if (ate_rm_rf (dir, err) < 0 || ate_mkdir_p (dir, 0700, err) < 0
      || ate_rm_rf (staging, err) < 0 || ate_mkdir_p (staging, 0700, err) < 0)
    return ate_error_wrap (err, "prepare the checkpoint directory");
  /* The lineage id, exact bytes, no newline (docs/architecture.md,
   * "Lineage"). */
  if (ate_write_file (base_id_file, a->base_id, strlen (a->base_id), 0600, err) < 0)
    goto fail;
  if (ACTOR_VMM_CALL (t, ch_vm_snapshot (a->api_socket, staging, deadline, err)) < 0)
    {
      ate_error_wrap (err, "vm.snapshot");
      goto fail;
    }
  actor_timing_step (t, "snapshot", &mark);
  if (a->restore_src)
    {
      cleanup_free char *src = ate_path_join (a->restore_src, "memory-ranges");
      cleanup_free char *kept = ate_path_join (a->dir, ACTOR_RESTORE_BASE);
      cleanup_free char *delta = ate_path_join (staging, "memory-ranges");
      /* The link to what the VM was restored from, whatever atelet did to
       * restore-state/ since (a merge interrupted by a crash left its work
       * under the delta's name: ch_merge_recover finds it by that name). */
      const char *base = ate_path_exists (kept) || !ate_path_exists (src) ? kept : src;
      struct stat ms, ss;
      if (ch_merge_delta_into_base (base, delta, err) < 0)
        {
          ate_error_wrap (err, "merge the on-demand snapshot delta into its base");
          goto fail;
        }
      /* The merge took the base's blocks: a restore-state name still on
       * them is no restore source any more. */
      if (stat (delta, &ms) == 0 && stat (src, &ss) == 0 && ms.st_dev == ss.st_dev
          && ms.st_ino == ss.st_ino)
        unlink (src);
      actor_timing_step (t, "merge", &mark);
    }
  if (publish_snapshot (staging, dir, err) < 0)
    return ate_error_wrap (err, "publish the snapshot");
  return 0;

fail:
  {
    /* Free the space a cut-short snapshot took (a retry starts over). */
    struct ate_error *e = NULL;
    if (ate_rm_rf (staging, &e) < 0)
      ate_error_log_warning_and_release (&e, "remove the staging directory");
  }
  return -1;
}

void
actor_vm_stop (struct actor *a)
{
  actor_vm_stop_by (a, ATE_DEADLINE_NONE);
}

void
actor_vm_stop_by (struct actor *a, ate_deadline_t deadline)
{
  struct ate_error *e = NULL;

  if (a->vmm == NULL)
    return;
  if (ch_vmm_stop (a->vmm, ate_deadline_min (deadline, ate_deadline_in_ms (ACTOR_TEARDOWN_MS)),
                   &e)
          < 0
      && e)
    ate_error_log_warning_and_release (&e, "cloud-hypervisor did not shut down cleanly");
  ch_vmm_free (a->vmm);
  a->vmm = NULL;
}
