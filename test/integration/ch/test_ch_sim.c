/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cloud-hypervisor driver (runtime/ch) against ch-sim in all three
 * personalities: launch, ping, create, add-net with real multiqueue taps,
 * boot, pause, snapshot, stop; restore with net fds; OnDemand delta + merge
 * + restore; the same without the merge must fail; disk mismatch; disk
 * locks; fresh-VMM rule; frames crossing tap -> ch-sim -> guest eth0.
 *
 * Runs in a network namespace of its own (root only; exit 77 otherwise).
 * ATE_CH_SIM_RECORD=<file> makes every ch-sim record its requests there
 * (used by the OpenAPI conformance test); ATE_TEST_FILTER selects tests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "ch/ch.h"
#include "qcow2/qcow2.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

#define MEM_SIZE (64ull << 20)
#define MAC "02:a8:1e:00:00:02"
#define QUEUE_PAIRS 2

#define MAX_VMMS 8

struct env
{
  char dir[64];
  char *kernel, *image, *disk;
  struct ch_vmm *vmms[MAX_VMMS]; /* launched and not yet stopped */
};

static struct env E;

static void
check (int r, struct ate_error **err)
{
  if (r < 0)
    fail_msg ("%s", (*err)->msg);
}

static char *
sim_binary (const char *personality)
{
  const char *b = getenv ("ATE_BUILD_DIR");
  return xasprintf ("%s/bin/ch-sim-%s", b ? b : ".", personality);
}

static void
make_file (const char *path, off_t size, const char *data)
{
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, size), 0);
  if (data)
    assert_int_equal (pwrite (fd, data, strlen (data), 8192), (ssize_t) strlen (data));
  close (fd);
}

static int
setup (void **state)
{
  (void) state;
  snprintf (E.dir, sizeof (E.dir), "/tmp/test_ch_sim.XXXXXX");
  if (mkdtemp (E.dir) == NULL)
    return -1;
  E.kernel = ate_path_join (E.dir, "vmlinux");
  E.image = ate_path_join (E.dir, "kata.img");
  E.disk = ate_path_join (E.dir, "actor-rootfs.ext4");
  make_file (E.kernel, 4096, "kernel");
  make_file (E.image, 1 << 20, "image");
  make_file (E.disk, 8 << 20, "rootfs v1");
  return 0;
}

static int
teardown (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  if (ate_rm_rf (E.dir, &err) < 0)
    ate_error_release (&err);
  /* A failed test leaves its VMMs running: kill and reap them. */
  for (size_t i = 0; i < MAX_VMMS; i++)
    {
      ch_vmm_free (E.vmms[i]);
      E.vmms[i] = NULL;
    }
  free (E.kernel);
  free (E.image);
  free (E.disk);
  assert_int_equal (ate_proc_tracked_count (), 0); /* no VMM left behind */
  return 0;
}

static char *
in_dir (const char *name)
{
  return ate_path_join (E.dir, name);
}

/* Multiqueue tap with vnet headers, as ateom's setupRestoreTap makes. */
static void
make_taps (const char *name, int *fds, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      struct ifreq ifr = { 0 };
      fds[i] = open ("/dev/net/tun", O_RDWR | O_CLOEXEC);
      assert_true (fds[i] >= 0);
      ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE | IFF_VNET_HDR;
      snprintf (ifr.ifr_name, IFNAMSIZ, "%s", name);
      if (ioctl (fds[i], TUNSETIFF, &ifr) < 0)
        fail_msg ("TUNSETIFF %s: %s", name, strerror (errno));
    }
}

static void
close_all (int *fds, size_t n)
{
  for (size_t i = 0; i < n; i++)
    close (fds[i]);
}

static struct ch_vmm *
launch (const char *personality, const char *sockname)
{
  cleanup_free char *bin = sim_binary (personality);
  cleanup_free char *sock = in_dir (sockname);
  struct ch_vmm *vmm = NULL;
  struct ate_error *err = NULL;
  const char *rec = getenv ("ATE_CH_SIM_RECORD");

  if (rec)
    setenv ("CH_SIM_RECORD", rec, 1);
  setenv ("CH_SIM_BOOT_MS", "50", 1);
  check (ch_vmm_launch (bin, sock, ate_deadline_in_ms (10000), &vmm, &err), &err);
  for (size_t i = 0; i < MAX_VMMS; i++)
    if (E.vmms[i] == NULL)
      {
        E.vmms[i] = vmm;
        return vmm;
      }
  fail_msg ("too many VMMs in one test");
  return NULL;
}

static void
stop (struct ch_vmm *vmm)
{
  struct ate_error *err = NULL;
  pid_t pid = ch_vmm_pid (vmm);
  for (size_t i = 0; i < MAX_VMMS; i++)
    if (E.vmms[i] == vmm)
      E.vmms[i] = NULL;
  check (ch_vmm_stop (vmm, ate_deadline_in_ms (5000), &err), &err);
  ch_vmm_free (vmm);
  assert_true (kill (pid, 0) < 0 && errno == ESRCH);
}

static void create_and_boot_disk (struct ch_vmm *vmm, const char *vsock, const char *type,
                                  bool backing_files);

static void
create_and_boot (struct ch_vmm *vmm, const char *vsock)
{
  create_and_boot_disk (vmm, vsock, "Raw", false);
}

/* The same with E.disk declared as type (an overlay: "Qcow2", true). */
static void
create_and_boot_disk (struct ch_vmm *vmm, const char *vsock, const char *type,
                      bool backing_files)
{
  struct ch_disk_config disks[] = { { E.image, true, false, 1, 1024, "Raw", false },
                                    { E.disk, false, false, 1, 1024, type, backing_files } };
  cleanup_free char *serial = in_dir ("serial.log"), *vs = in_dir (vsock);
  struct ch_vm_config cfg = { .boot_vcpus = 1, .memory_size = MEM_SIZE, .memory_shared = true,
                              .kernel = E.kernel, .cmdline = "console=ttyS0", .disks = disks,
                              .n_disks = 2, .rng_src = "/dev/urandom", .serial_file = serial,
                              .vsock_cid = 3, .vsock_socket = vs };
  const char *sock = ch_vmm_socket (vmm);
  struct ate_error *err = NULL;
  int fds[QUEUE_PAIRS];

  check (ch_vm_create (sock, &cfg, ate_deadline_in_ms (5000), &err), &err);
  make_taps ("tap0_kata", fds, QUEUE_PAIRS);
  check (ch_vm_add_net (sock, MAC, 2 * QUEUE_PAIRS, fds, QUEUE_PAIRS, ate_deadline_in_ms (5000),
                        &err), &err);
  close_all (fds, QUEUE_PAIRS);
  check (ch_vm_boot (sock, ate_deadline_in_ms (5000), &err), &err);
}

static void
expect_state (struct ch_vmm *vmm, const char *want)
{
  cleanup_free char *st = NULL;
  struct ate_error *err = NULL;
  check (ch_vm_info_state (ch_vmm_socket (vmm), &st, ate_deadline_in_ms (5000), &err), &err);
  assert_string_equal (st, want);
}

static void
pause_and_snapshot (struct ch_vmm *vmm, const char *snapname)
{
  cleanup_free char *dir = in_dir (snapname);
  struct ate_error *err = NULL;
  const char *sock = ch_vmm_socket (vmm);

  check (ch_vm_pause (sock, ate_deadline_in_ms (5000), &err), &err);
  check (ch_vm_pause (sock, ate_deadline_in_ms (5000), &err), &err); /* idempotent */
  expect_state (vmm, "Paused");
  check (ch_vm_snapshot (sock, dir, ate_deadline_in_ms (10000), &err), &err);
  static const char *const files[] = { "config.json", "state.json", "memory-ranges" };
  for (size_t i = 0; i < ATE_N_ELEMENTS (files); i++)
    {
      cleanup_free char *p = ate_path_join (dir, files[i]);
      assert_true (ate_is_regular_file (p));
    }
}

/* Restore snapname into a new VMM; returns the VMM, and the resume error
 * (NULL on success) in *resume_err. */
static struct ch_vmm *
restore (const char *personality, const char *snapname, enum ch_restore_pref pref,
         const char *sockname, struct ate_error **resume_err, enum ch_restore_mode *used)
{
  cleanup_free char *dir = in_dir (snapname);
  cleanup_free char *vs = xasprintf ("%s/vsock-%s", E.dir, sockname);
  struct ch_disk_repoint rp = { "actor-rootfs.ext4", E.disk };
  struct ch_config_rewrite rw = { .vsock_socket = vs, .disks = &rp, .n_disks = 1 };
  struct ch_net_device *devs = NULL;
  struct ate_error *err = NULL;
  struct ch_vmm *vmm;
  enum ch_restore_mode mode;
  bool send;
  size_t ndev;

  check (ch_snapshot_config_rewrite (dir, &rw, &err), &err);
  check (ch_snapshot_net_devices (dir, &devs, &ndev, &err), &err);
  assert_int_equal (ndev, 1);
  assert_int_equal (devs[0].queue_pairs, QUEUE_PAIRS);
  assert_string_equal (devs[0].mac, MAC);
  vmm = launch (personality, sockname);
  check (ch_restore_mode_choose (ch_vmm_version (vmm), pref, &mode, &send, &err), &err);
  int fds[QUEUE_PAIRS];
  struct ch_restore_net net = { devs[0].id, QUEUE_PAIRS };
  make_taps ("tap0_kata", fds, QUEUE_PAIRS);
  check (ch_vm_restore (ch_vmm_socket (vmm), dir, mode, send, &net, 1, fds, QUEUE_PAIRS,
                        ate_deadline_in_ms (10000), &err), &err);
  close_all (fds, QUEUE_PAIRS);
  ch_net_devices_free (devs, ndev);
  expect_state (vmm, "Paused");
  ch_vm_resume (ch_vmm_socket (vmm), ate_deadline_in_ms (10000), resume_err);
  if (used)
    *used = mode;
  return vmm;
}

static off_t
populated (const char *snapname)
{
  cleanup_free char *p = xasprintf ("%s/%s/memory-ranges", E.dir, snapname);
  struct stat st;
  assert_int_equal (stat (p, &st), 0);
  assert_int_equal (st.st_size, (off_t) MEM_SIZE);
  return st.st_blocks * 512;
}

/* ---------------------------------------------------------- lifecycle */

static void
lifecycle (const char *personality, unsigned major)
{
  struct ate_error *err = NULL;
  struct ch_vmm *vmm = launch (personality, "api-a.sock");
  enum ch_restore_mode mode;

  assert_int_equal (ch_vmm_version (vmm)->major, major);
  create_and_boot (vmm, "vsock-a.sock");
  expect_state (vmm, "Running");
  /* A booted VMM never takes a restore (CH: VM already created). */
  cleanup_free char *snap = in_dir ("snap1");
  assert_int_equal (ch_vm_restore (ch_vmm_socket (vmm), snap, CH_RESTORE_COPY, major > 51, NULL, 0,
                                   NULL, 0, ate_deadline_in_ms (5000), &err), -1);
  assert_non_null (strstr (err->msg, "already created"));
  ate_error_release (&err);
  ate_sleep_ms_until (150, ATE_DEADLINE_NONE);
  pause_and_snapshot (vmm, "snap1");
  stop (vmm);

  vmm = restore (personality, "snap1", CH_RESTORE_PREF_AUTO, "api-b.sock", &err, &mode);
  if (err)
    fail_msg ("resume after restore: %s", err->msg);
  assert_int_equal (mode, major == 52 ? CH_RESTORE_ONDEMAND : CH_RESTORE_COPY);
  expect_state (vmm, "Running");
  stop (vmm);
}

static void
test_lifecycle_v51 (void **state)
{
  (void) state;
  lifecycle ("v51.1", 51);
  /* v51 cannot demand-page: forcing it is a clear error. */
  struct ch_version v = { 51, 1, 0, "51.1.0" };
  enum ch_restore_mode m;
  bool send;
  struct ate_error *err = NULL;
  assert_int_equal (ch_restore_mode_choose (&v, CH_RESTORE_PREF_ONDEMAND, &m, &send, &err), -1);
  ate_error_release (&err);
}

static void
test_lifecycle_v52 (void **state)
{
  (void) state;
  lifecycle ("v52.0", 52);
}

static void
test_lifecycle_v53 (void **state)
{
  (void) state;
  lifecycle ("v53.0", 53);
}

/* ------------------------------------------------------ OnDemand + merge */

static void
test_ondemand_delta_merge_v52 (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct ch_vmm *vmm = launch ("v52.0", "api-a.sock");
  cleanup_free char *base = NULL, *delta = NULL;

  create_and_boot (vmm, "vsock-a.sock");
  ate_sleep_ms_until (150, ATE_DEADLINE_NONE);
  pause_and_snapshot (vmm, "snap1");
  stop (vmm);

  vmm = restore ("v52.0", "snap1", CH_RESTORE_PREF_ONDEMAND, "api-b.sock", &err, NULL);
  if (err)
    fail_msg ("resume: %s", err->msg);
  ate_sleep_ms_until (200, ATE_DEADLINE_NONE);
  pause_and_snapshot (vmm, "snap2");
  stop (vmm);
  /* Only the pages touched since the restore: a delta. */
  assert_true (populated ("snap2") < populated ("snap1"));

  /* The delta on its own is not a guest: resume fails loudly. */
  vmm = restore ("v52.0", "snap2", CH_RESTORE_PREF_COPY, "api-c.sock", &err, NULL);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "incomplete"));
  ate_error_release (&err);
  stop (vmm);

  /* Merged into its base it is the complete guest again. */
  base = xasprintf ("%s/snap1/memory-ranges", E.dir);
  delta = xasprintf ("%s/snap2/memory-ranges", E.dir);
  check (ch_merge_delta_into_base (base, delta, &err), &err);
  assert_false (ate_path_exists (base));
  vmm = restore ("v52.0", "snap2", CH_RESTORE_PREF_AUTO, "api-d.sock", &err, NULL);
  if (err)
    fail_msg ("resume after merge: %s", err->msg);
  expect_state (vmm, "Running");
  stop (vmm);
}

static void
test_ondemand_v53_prefaults (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct ch_vmm *vmm = launch ("v53.0", "api-a.sock");

  create_and_boot (vmm, "vsock-a.sock");
  pause_and_snapshot (vmm, "snap1");
  stop (vmm);
  vmm = restore ("v53.0", "snap1", CH_RESTORE_PREF_ONDEMAND, "api-b.sock", &err, NULL);
  if (err)
    fail_msg ("resume: %s", err->msg);
  check (ch_vm_pause (ch_vmm_socket (vmm), ate_deadline_in_ms (5000), &err), &err);
  /* v53 refuses snapshots until its background prefault is done. */
  cleanup_free char *dir = in_dir ("snap2");
  ate_deadline_t dl = ate_deadline_in_ms (10000);
  while (ch_vm_snapshot (ch_vmm_socket (vmm), dir, dl, &err) < 0)
    {
      assert_non_null (strstr (err->msg, "in progress"));
      ate_error_release (&err);
      assert_true (ate_sleep_ms_until (20, dl));
    }
  stop (vmm);
  /* ... and then the snapshot is complete: no merge needed. */
  vmm = restore ("v53.0", "snap2", CH_RESTORE_PREF_AUTO, "api-c.sock", &err, NULL);
  if (err)
    fail_msg ("resume: %s", err->msg);
  stop (vmm);
}

/* ------------------------------------------------------ disks and rules */

static void
test_disk_mismatch (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct ch_vmm *vmm = launch ("v52.0", "api-a.sock");

  create_and_boot (vmm, "vsock-a.sock");
  pause_and_snapshot (vmm, "snap1");
  stop (vmm);
  /* A rebuilt disk that differs from what the guest cached. */
  make_file (E.disk, 8 << 20, "rootfs v2");
  vmm = restore ("v52.0", "snap1", CH_RESTORE_PREF_AUTO, "api-b.sock", &err, NULL);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "differs from what the guest had at its snapshot"));
  ate_error_release (&err);
  stop (vmm);
  /* Reset to the golden content: the same lineage restores fine. */
  make_file (E.disk, 8 << 20, "rootfs v1");
  vmm = restore ("v52.0", "snap1", CH_RESTORE_PREF_AUTO, "api-c.sock", &err, NULL);
  if (err)
    fail_msg ("resume: %s", err->msg);
  stop (vmm);
}

/* Boot a VM whose writable disk is `disk` as declared; returns the boot
 * error (NULL when it booted). */
static struct ate_error *
boot_with_disk (struct ch_vmm *vmm, const char *disk, const char *type, bool backing_files)
{
  struct ch_disk_config disks[] = { { E.image, true, false, 1, 1024, "Raw", false },
                                    { disk, false, false, 1, 1024, type, backing_files } };
  struct ch_vm_config cfg = { .boot_vcpus = 1, .memory_size = MEM_SIZE, .kernel = E.kernel,
                              .disks = disks, .n_disks = 2 };
  struct ate_error *err = NULL;

  check (ch_vm_create (ch_vmm_socket (vmm), &cfg, ate_deadline_in_ms (5000), &err), &err);
  if (ch_vm_boot (ch_vmm_socket (vmm), ate_deadline_in_ms (5000), &err) < 0)
    return err;
  return NULL;
}

static bool
dirty_bit (const char *path)
{
  uint8_t b = 0;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pread (fd, &b, 1, 79), 1);
  close (fd);
  return b & 1;
}

/* A qcow2 overlay over a raw base, as cloud-hypervisor takes it: the
 * declared type must be the detected one, a backing file needs
 * backing_files, the dirty bit is set while the VM runs and cleared only
 * by a clean stop (a killed VMM leaves it). */
static void
test_qcow2_overlay (void **state)
{
  (void) state;
  cleanup_free char *base = in_dir ("base.raw");
  cleanup_free char *ov = in_dir ("overlay.qcow2");
  struct ate_error *err = NULL;
  struct qcow2_image *img = NULL;
  struct ch_vmm *vmm;
  pid_t pid;
  int fd;

  make_file (base, 8 << 20, "base content");
  check (qcow2_file_create_overlay (ov, base, 8 << 20, &err), &err);

  vmm = launch ("v52.0", "api-a.sock");
  err = boot_with_disk (vmm, ov, "Raw", false);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "image type mismatch: configured Raw, detected Qcow2"));
  ate_error_release (&err);
  stop (vmm);

  vmm = launch ("v52.0", "api-b.sock");
  err = boot_with_disk (vmm, ov, "Qcow2", false);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "backing_files is not enabled"));
  ate_error_release (&err);
  stop (vmm);

  vmm = launch ("v53.0", "api-c.sock");
  assert_null (boot_with_disk (vmm, ov, "Qcow2", true));
  assert_true (dirty_bit (ov));
  stop (vmm);
  assert_false (dirty_bit (ov));
  fd = open (ov, O_RDONLY | O_CLOEXEC);
  check (qcow2_image_open (fd, &(struct qcow2_expect){ .virtual_size = 8 << 20,
                                                       .backing_name = base }, &img, &err), &err);
  qcow2_image_free (img);
  close (fd);

  /* A VMM that dies leaves the overlay dirty: it must not be read. */
  vmm = launch ("v53.0", "api-d.sock");
  assert_null (boot_with_disk (vmm, ov, "Qcow2", true));
  pid = ch_vmm_pid (vmm);
  assert_int_equal (kill (pid, SIGKILL), 0);
  for (size_t i = 0; i < MAX_VMMS; i++)
    if (E.vmms[i] == vmm)
      E.vmms[i] = NULL;
  ch_vmm_free (vmm); /* reaps it */
  assert_true (dirty_bit (ov));
  fd = open (ov, O_RDONLY | O_CLOEXEC);
  assert_int_equal (qcow2_image_open (fd, NULL, &img, &err), -1);
  assert_int_equal (err->status, EUCLEAN);
  ate_error_release (&err);
  close (fd);
  /* ch-sim's own reader (not runtime/qcow2's) refuses it too. */
  vmm = launch ("v53.0", "api-e.sock");
  err = boot_with_disk (vmm, ov, "Qcow2", true);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "the image is dirty"));
  ate_error_release (&err);
  stop (vmm);
}

static void
qemu_io (const char *image, const char *cmd)
{
  char *argv[] = { (char *) "qemu-io", (char *) "-f", (char *) "qcow2", (char *) "-c",
                   (char *) cmd, (char *) image, NULL };
  struct ate_error *err = NULL;
  check (ate_proc_run (argv, NULL, ate_deadline_in_ms (10000), NULL, &err), &err);
}

/* The guest's disk digest is over the virtual disk: an overlay that stores
 * the same virtual content differently (a cluster of zeroes over the
 * base's zeroes) restores; a changed byte does not. */
static void
test_overlay_digest_is_virtual (void **state)
{
  (void) state;
  cleanup_free char *base = in_dir ("vbase.raw"), *sub = in_dir ("ov");
  cleanup_free char *ov = ate_path_join (sub, "actor-rootfs.ext4");
  cleanup_free char *saved = E.disk;
  struct ate_error *err = NULL;
  struct ch_vmm *vmm;

  if (access ("/usr/bin/qemu-io", X_OK) != 0)
    skip ();
  assert_int_equal (mkdir (sub, 0700), 0);
  make_file (base, 8 << 20, "base content");
  check (qcow2_file_create_overlay (ov, base, 8 << 20, &err), &err);
  E.disk = ov;
  vmm = launch ("v53.0", "api-a.sock");
  create_and_boot_disk (vmm, "vsock-a.sock", "Qcow2", true);
  pause_and_snapshot (vmm, "osnap");
  stop (vmm);
  qemu_io (ov, "write -P 0 1M 64k");
  vmm = restore ("v53.0", "osnap", CH_RESTORE_PREF_AUTO, "api-b.sock", &err, NULL);
  if (err)
    fail_msg ("the same virtual disk stored differently: %s", err->msg);
  stop (vmm);
  qemu_io (ov, "write -P 0x55 2M 4k");
  vmm = restore ("v53.0", "osnap", CH_RESTORE_PREF_AUTO, "api-c.sock", &err, NULL);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "differs from what the guest had at its snapshot"));
  ate_error_release (&err);
  stop (vmm);
  E.disk = steal_pointer (&saved);
}

static void
set_be32 (const char *path, off_t off, uint32_t v)
{
  uint32_t be = htobe32 (v);
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (pwrite (fd, &be, 4, off), 4);
  close (fd);
}

/* ch-sim reads qcow2 with its own code: what it does not implement, or an
 * image whose tables point outside the file, is refused at boot; a file
 * it wrote and closed cleanly passes qemu-img check. */
static void
test_qcow2_reader (void **state)
{
  (void) state;
  static const struct { off_t off; uint32_t v; const char *want; } bad[] = {
    { 4, 1, "unsupported version 1" },
    { 20, 8, "invalid cluster size" },
    { 32, 1, "encrypted images" },
    { 60, 1, "internal snapshots" },
    { 96, 3, "refcount order 3" },
    { 76, 8, "unsupported incompatible features" },
    { 44, 0x7fff0000, "outside the file" },
  };
  cleanup_free char *base = in_dir ("rbase.raw");
  struct ate_error *err = NULL;

  make_file (base, 8 << 20, "base content");
  for (size_t i = 0; i < ATE_N_ELEMENTS (bad); i++)
    {
      cleanup_free char *ov = xasprintf ("%s/bad-%zu.qcow2", E.dir, i);
      cleanup_free char *sock = xasprintf ("api-bad-%zu.sock", i);
      struct ch_vmm *vmm;
      check (qcow2_file_create_overlay (ov, base, 8 << 20, &err), &err);
      set_be32 (ov, bad[i].off, bad[i].v);
      vmm = launch ("v53.0", sock);
      err = boot_with_disk (vmm, ov, "Qcow2", true);
      if (err == NULL || strstr (err->msg, bad[i].want) == NULL)
        fail_msg ("case %zu: want \"%s\", got %s", i, bad[i].want, err ? err->msg : "a boot");
      ate_error_release (&err);
      stop (vmm);
    }
  {
    cleanup_free char *ov = in_dir ("good.qcow2");
    char *argv[] = { (char *) "qemu-img", (char *) "check", (char *) "-f", (char *) "qcow2",
                     ov, NULL };
    struct ch_vmm *vmm;
    check (qcow2_file_create_overlay (ov, base, 8 << 20, &err), &err);
    vmm = launch ("v53.0", "api-good.sock");
    assert_null (boot_with_disk (vmm, ov, "Qcow2", true));
    stop (vmm);
    if (access ("/usr/bin/qemu-img", X_OK) == 0)
      check (ate_proc_run (argv, NULL, ate_deadline_in_ms (10000), NULL, &err), &err);
  }
}

static void
test_disk_lock_and_bad_requests (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct ch_vmm *a = launch ("v53.0", "api-a.sock");
  struct ch_vmm *b = launch ("v53.0", "api-b.sock");
  struct ch_disk_config disks[] = { { E.disk, false, false, 0, 0, NULL, false } };
  struct ch_vm_config cfg = { .boot_vcpus = 1, .memory_size = MEM_SIZE, .kernel = E.kernel,
                              .disks = disks, .n_disks = 1 };
  int fds[2];

  create_and_boot (a, "vsock-a.sock");
  check (ch_vm_create (ch_vmm_socket (b), &cfg, ate_deadline_in_ms (5000), &err), &err);
  assert_int_equal (ch_vm_boot (ch_vmm_socket (b), ate_deadline_in_ms (5000), &err), -1);
  assert_non_null (strstr (err->msg, "lock"));
  ate_error_release (&err);

  /* add-net: one fd for 4 queues is refused by the driver; a pipe is not a tap. */
  assert_int_equal (pipe2 (fds, O_CLOEXEC) == 0, 1);
  close (fds[1]);
  assert_int_equal (ch_vm_add_net (ch_vmm_socket (b), MAC, 4, fds, 1, ate_deadline_in_ms (5000), &err), -1);
  ate_error_release (&err);
  assert_int_equal (ch_vm_add_net (ch_vmm_socket (b), MAC, 2, fds, 1, ate_deadline_in_ms (5000), &err), -1);
  assert_non_null (strstr (err->msg, "HTTP 400"));
  assert_non_null (strstr (err->msg, "not a tap"));
  ate_error_release (&err);
  close (fds[0]);

  /* Snapshot of a running VM, into a missing directory. */
  cleanup_free char *dir = in_dir ("snapx");
  assert_int_equal (ch_vm_snapshot (ch_vmm_socket (a), dir, ate_deadline_in_ms (5000), &err), -1);
  assert_non_null (strstr (err->msg, "not paused"));
  ate_error_release (&err);
  stop (b);
  stop (a);
}

/* ------------------------------------------------- vsock and network */

static int
vsock_connect (const char *path, unsigned port, char *reply, size_t n)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  char cmd[32];
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ssize_t r;
  struct timeval tv = { 5, 0 };

  snprintf (sa.sun_path, sizeof (sa.sun_path), "%s", path);
  assert_int_equal (connect (fd, (struct sockaddr *) &sa, sizeof (sa)), 0);
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof (tv));
  snprintf (cmd, sizeof (cmd), "connect %u\n", port);
  assert_int_equal (write (fd, cmd, strlen (cmd)), (ssize_t) strlen (cmd));
  r = read (fd, reply, n - 1);
  reply[r > 0 ? r : 0] = '\0';
  return fd;
}

/* Run a command on the debug console with the split sentinel
 * (docs/kata-agent.md, "Debug console dump"). */
static char *
console (const char *vs, const char *cmd)
{
  char buf[256];
  int fd = vsock_connect (vs, 1026, buf, sizeof (buf));
  cleanup_free char *line = xasprintf ("{ %s ; } 2>&1; echo __ATE''_END__\n", cmd);
  size_t cap = 65536, len = 0;
  char *out = xmalloc0 (cap);

  assert_true (strncmp (buf, "OK ", 3) == 0);
  assert_int_equal (write (fd, line, strlen (line)), (ssize_t) strlen (line));
  while (len < cap - 1 && strstr (out, "\n__ATE_END__") == NULL)
    {
      ssize_t r = read (fd, out + len, cap - 1 - len);
      if (r <= 0)
        break;
      len += (size_t) r;
      out[len] = '\0';
    }
  close (fd);
  return out;
}

static void
test_vsock_console_and_network (void **state)
{
  (void) state;
  struct ch_vmm *vmm = launch ("v52.0", "api-a.sock");
  cleanup_free char *vs = in_dir ("vsock-a.sock");
  char buf[64];
  int fd;

  create_and_boot (vmm, "vsock-a.sock");
  fd = vsock_connect (vs, 9999, buf, sizeof (buf)); /* nobody listens */
  assert_string_equal (buf, "");
  close (fd);
  cleanup_free char *o = console (vs, "echo hi-$((1+1)); test -n \"$ATE_SIM_ROOTFS_DISK\" && echo disk-ok");
  assert_non_null (strstr (o, "\nhi-2"));
  assert_non_null (strstr (o, "disk-ok"));

  /* Frames sent on the host tap come out of the guest's eth0. */
  free (console (vs, "ip link set eth0 up"));
  struct ifreq ifr = { 0 };
  int s = socket (AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons (ETH_P_ALL));
  assert_true (s >= 0);
  snprintf (ifr.ifr_name, IFNAMSIZ, "tap0_kata");
  assert_int_equal (ioctl (s, SIOCGIFFLAGS, &ifr), 0);
  ifr.ifr_flags |= IFF_UP;
  assert_int_equal (ioctl (s, SIOCSIFFLAGS, &ifr), 0);
  assert_int_equal (ioctl (s, SIOCGIFINDEX, &ifr), 0);
  struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_ifindex = ifr.ifr_ifindex,
                            .sll_halen = 6 };
  unsigned char frame[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5 };
  for (int i = 0; i < 20; i++)
    assert_int_equal (sendto (s, frame, sizeof (frame), 0, (struct sockaddr *) &ll, sizeof (ll)), 60);
  close (s);
  ate_sleep_ms_until (200, ATE_DEADLINE_NONE);
  cleanup_free char *rx = console (vs, "cat /sys/class/net/eth0/statistics/rx_packets");
  const char *p = strstr (rx, "\n");
  long n = 0;
  while (p && *p && n == 0)
    n = strtol (p + 1, (char **) &p, 10);
  if (n < 20)
    fail_msg ("guest eth0 received %ld frames, want >= 20: %s", n, rx);
  stop (vmm);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_lifecycle_v51, setup, teardown),
    cmocka_unit_test_setup_teardown (test_lifecycle_v52, setup, teardown),
    cmocka_unit_test_setup_teardown (test_lifecycle_v53, setup, teardown),
    cmocka_unit_test_setup_teardown (test_ondemand_delta_merge_v52, setup, teardown),
    cmocka_unit_test_setup_teardown (test_ondemand_v53_prefaults, setup, teardown),
    cmocka_unit_test_setup_teardown (test_disk_mismatch, setup, teardown),
    cmocka_unit_test_setup_teardown (test_qcow2_overlay, setup, teardown),
    cmocka_unit_test_setup_teardown (test_qcow2_reader, setup, teardown),
    cmocka_unit_test_setup_teardown (test_overlay_digest_is_virtual, setup, teardown),
    cmocka_unit_test_setup_teardown (test_disk_lock_and_bad_requests, setup, teardown),
    cmocka_unit_test_setup_teardown (test_vsock_console_and_network, setup, teardown),
  };
  const char *filter = getenv ("ATE_TEST_FILTER");

  if (geteuid () != 0)
    {
      printf ("skipped: needs root (network namespaces, taps)\n");
      return 77;
    }
  /* Our own network namespace: taps and packets never touch the host. */
  if (unshare (CLONE_NEWNET) < 0)
    {
      printf ("skipped: unshare(CLONE_NEWNET): %s\n", strerror (errno));
      return 77;
    }
  if (filter && *filter)
    cmocka_set_test_filter (filter);
  ate_log_set_fd (2);
  return cmocka_run_group_tests (tests, NULL, NULL);
}
