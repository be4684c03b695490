/* SPDX-License-Identifier: Apache-2.0 */
/* The restore-config sanitiser: what a snapshot's config.json may carry. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ch/restore_config.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/util.h"

/* A config.json as cloud-hypervisor writes it (every member, defaults
 * included) for an actor with two containers on another worker. */
static const char *snap_text
    = "{\"cpus\":{\"boot_vcpus\":2,\"max_vcpus\":2,\"topology\":null,\"kvm_hyperv\":false,"
      "\"max_phys_bits\":46,\"affinity\":null,\"features\":{\"amx\":false},\"nested\":true,"
      "\"core_scheduling\":\"Vm\"},"
      "\"memory\":{\"size\":2147483648,\"mergeable\":false,\"hotplug_method\":\"Acpi\","
      "\"hotplug_size\":null,\"hotplugged_size\":null,\"shared\":true,\"hugepages\":false,"
      "\"hugepage_size\":null,\"prefault\":false,\"zones\":null,\"thp\":true},"
      "\"payload\":{\"firmware\":null,\"kernel\":\"/old/vmlinux\",\"cmdline\":\"old\","
      "\"initramfs\":null,\"igvm\":null,\"host_data\":null},"
      "\"rate_limit_groups\":null,"
      "\"disks\":[{\"path\":\"/old/assets/kata.img\",\"readonly\":true,\"direct\":false,"
      "\"iommu\":false,\"num_queues\":2,\"queue_size\":1024,\"vhost_user\":false,"
      "\"vhost_socket\":null,\"rate_limit_group\":null,\"rate_limiter_config\":null,"
      "\"id\":\"_disk0\",\"disable_io_uring\":false,\"disable_aio\":false,\"pci_segment\":0,"
      "\"serial\":null,\"queue_affinity\":null,\"sparse\":true,\"image_type\":\"Raw\","
      "\"backing_files\":false},"
      "{\"path\":\"/old/actors/ns:t:a1/actor-rootfs.ext4\",\"readonly\":false,\"num_queues\":2,"
      "\"queue_size\":1024,\"id\":\"_disk1\",\"pci_segment\":0,\"pci_device_id\":5,"
      "\"image_type\":\"Raw\"},"
      "{\"path\":\"/old/actors/ns:t:a1/actor-rootfs-side.ext4\",\"readonly\":false,"
      "\"id\":\"_disk2\"}],"
      "\"net\":[{\"tap\":null,\"ip\":\"192.168.249.1\",\"mask\":\"255.255.255.0\","
      "\"mac\":\"02:a8:1e:00:00:02\",\"host_mac\":null,\"mtu\":1500,\"iommu\":false,"
      "\"num_queues\":2,\"queue_size\":256,\"vhost_user\":false,\"vhost_socket\":null,"
      "\"vhost_mode\":\"Client\",\"id\":\"_net3\",\"fds\":[-1],\"rate_limiter_config\":null,"
      "\"pci_segment\":0,\"offload_tso\":true,\"offload_ufo\":true,\"offload_csum\":true}],"
      "\"rng\":{\"src\":\"/dev/urandom\",\"iommu\":false},"
      "\"balloon\":null,\"fs\":null,\"pmem\":null,"
      "\"serial\":{\"file\":\"/old/run/a1/serial.log\",\"mode\":\"File\",\"iommu\":false},"
      "\"console\":{\"file\":null,\"mode\":\"Tty\",\"iommu\":false},"
      "\"debug_console\":{\"file\":null,\"mode\":\"Off\",\"iobase\":233},"
      "\"devices\":null,\"user_devices\":null,\"vdpa\":null,"
      "\"vsock\":{\"cid\":3,\"socket\":\"/old/run/a1/clh.sock\",\"iommu\":false,"
      "\"id\":\"_vsock4\",\"pci_segment\":0},"
      "\"iommu\":false,\"sgx_epc\":null,\"numa\":null,\"watchdog\":false,\"pvpanic\":false,"
      "\"pci_segments\":null,\"platform\":null,\"tpm\":null,\"landlock_enable\":false,"
      "\"landlock_rules\":null}";

static struct ch_expected_disk disks[3] = {
  { "/assets/kata.img", "Raw", false, true, NULL },
  { "/base/actors/ns:t:a1/actor-rootfs.ext4", "Raw", false, false, NULL },
  { "/base/actors/ns:t:a1/actor-rootfs-side.ext4", "Raw", false, false, NULL },
};

static struct ch_restore_expect expect = {
  .kernel = "/assets/vmlinux",
  .cmdline = "console=hvc0 new",
  .vcpus = 2,
  .memory_size = 2147483648ULL,
  .disks = disks,
  .n_disks = 3,
  .rng_src = "/dev/urandom",
  .serial_file = "/run/a1/serial.log",
  .vsock_socket = "/run/a1/clh.sock",
  .vsock_cid = 3,
  .net_mac = "02:a8:1e:00:00:02",
};

static struct json_object *
parse (const char *text)
{
  struct json_object *o = NULL;
  struct ate_error *err = NULL;
  assert_int_equal (ate_json_parse (text, strlen (text), 64, &o, &err), 0);
  return o;
}

/* One JSON value (bare numbers need a delimiter for json-c). */
static struct json_object *
parse_value (const char *text)
{
  cleanup_free char *wrapped = xasprintf ("[%s]", text);
  cleanup_json struct json_object *arr = parse (wrapped);
  return json_object_get (json_object_array_get_idx (arr, 0));
}

/* Set (or, value NULL, delete) the member at a dotted path, where numbers
 * index arrays: "disks.1.path". */
static void
patch (struct json_object *root, const char *dotted, const char *value)
{
  cleanup_free char *copy = xstrdup (dotted);
  char *save = NULL, *key = strtok_r (copy, ".", &save), *next;
  struct json_object *o = root;

  for (; (next = strtok_r (NULL, ".", &save)) != NULL; key = next)
    {
      struct json_object *child = NULL;
      if (json_object_is_type (o, json_type_array))
        child = json_object_array_get_idx (o, (size_t) atoi (key));
      else if (!json_object_object_get_ex (o, key, &child)
               || json_object_is_type (child, json_type_null))
        {
          child = json_object_new_object ();
          json_object_object_add (o, key, child);
        }
      o = child;
    }
  if (json_object_is_type (o, json_type_array))
    {
      if (value)
        json_object_array_put_idx (o, (size_t) atoi (key), parse_value (value));
      return;
    }
  if (value)
    json_object_object_add (o, key, parse_value (value));
  else
    json_object_object_del (o, key);
}

static void
test_build_rebuilds_host_paths (void **state)
{
  (void) state;
  cleanup_json struct json_object *snap = parse (snap_text), *out = NULL;
  struct ate_error *err = NULL;
  struct json_object *o, *d;

  assert_int_equal (ch_restore_config_build (snap, &expect, &out, &err), 0);
  cleanup_free char *text = ate_json_to_string (out, 0);
  /* Nothing of the snapshot's host paths survives. */
  assert_null (strstr (text, "/old/"));
  assert_true (json_object_object_get_ex (out, "payload", &o));
  assert_string_equal (ate_json_get_string (o, "kernel"), "/assets/vmlinux");
  assert_string_equal (ate_json_get_string (o, "cmdline"), "console=hvc0 new");
  assert_true (json_object_object_get_ex (out, "disks", &o));
  assert_int_equal (json_object_array_length (o), 3);
  for (size_t i = 0; i < 3; i++)
    {
      d = json_object_array_get_idx (o, i);
      assert_string_equal (ate_json_get_string (d, "path"), disks[i].path);
    }
  /* Guest-visible state the memory image depends on is kept. */
  d = json_object_array_get_idx (o, 1);
  assert_string_equal (ate_json_get_string (d, "id"), "_disk1");
  assert_non_null (strstr (text, "\"pci_device_id\":5"));
  assert_non_null (strstr (text, "\"queue_size\":1024"));
  assert_true (json_object_object_get_ex (out, "net", &o));
  d = json_object_array_get_idx (o, 0);
  assert_string_equal (ate_json_get_string (d, "id"), "_net3");
  assert_non_null (strstr (text, "\"fds\":[-1]"));
  assert_true (json_object_object_get_ex (out, "vsock", &o));
  assert_string_equal (ate_json_get_string (o, "socket"), "/run/a1/clh.sock");
  assert_string_equal (ate_json_get_string (o, "id"), "_vsock4");
  assert_true (json_object_object_get_ex (out, "serial", &o));
  assert_string_equal (ate_json_get_string (o, "file"), "/run/a1/serial.log");
  assert_non_null (strstr (text, "\"size\":2147483648"));
  assert_non_null (strstr (text, "\"debug_console\":{\"mode\":\"Off\",\"iobase\":233}"));

  /* What the simulator writes (the vm.create body plus ids) also builds. */
  const char *sim = "{\"cpus\":{\"boot_vcpus\":2,\"max_vcpus\":2},\"memory\":{\"size\":"
                    "2147483648,\"shared\":true},\"payload\":{\"kernel\":\"/k\"},\"disks\":["
                    "{\"path\":\"/i\",\"readonly\":true,\"id\":\"_disk0\"},{\"path\":\"/x/"
                    "actor-rootfs.ext4\",\"readonly\":false,\"id\":\"_disk1\"},{\"path\":"
                    "\"/x/actor-rootfs-side.ext4\",\"id\":\"_disk2\"}],\"rng\":{\"src\":"
                    "\"/dev/urandom\"},\"serial\":{\"mode\":\"File\",\"file\":\"/s\"},"
                    "\"vsock\":{\"cid\":3,\"socket\":\"/v\"},\"net\":[{\"mac\":"
                    "\"02:a8:1e:00:00:02\",\"num_queues\":2,\"id\":\"_net3\"}]}";
  json_object_put (out);
  out = NULL;
  json_object_put (snap);
  snap = parse (sim);
  assert_int_equal (ch_restore_config_build (snap, &expect, &out, &err), 0);
}

struct hostile
{
  const char *path;  /* dotted member */
  const char *value; /* JSON; NULL deletes */
  const char *named; /* the message names this */
};

/* Every case is the snapshot above with one member changed. */
static const struct hostile cases[] = {
  { "disks.1.path", "\"/etc/shadow\"", "disks[1].path" },
  { "disks.2.path", "\"/base/actors/ns:t:a2/actor-rootfs.ext4\"", "disks[2].path" },
  { "disks.3", "{\"path\":\"/etc/shadow\",\"readonly\":false}", "disks has 4" },
  { "disks.0.readonly", "false", "disks[0].readonly" },
  { "disks.1.readonly", "true", "disks[1].readonly" },
  { "disks.1.vhost_user", "true", "disks[1].vhost_user" },
  { "disks.1.vhost_socket", "\"/run/containerd/containerd.sock\"", "disks[1].vhost_socket" },
  { "disks.1.image_type", "\"Qcow2\"", "disks[1].image_type" },
  { "disks.1.backing_files", "true", "disks[1].backing_files" },
  { "disks.1.direct", "true", "disks[1].direct" },
  { "disks.1.serial", "\"x\"", "disks[1].serial" },
  { "disks.1.pci_segment", "1", "disks[1].pci_segment" },
  { "disks.1.pci_device_id", "32", "disks[1].pci_device_id" },
  { "disks.1.id", "\"_disk0\"", "used by two devices" },
  { "disks.1.id", "\"../x\"", "disks[1].id" },
  { "disks.1.unknown", "1", "disks[1].unknown" },
  { "pmem", "[{\"file\":\"/etc/shadow\"}]", "pmem" },
  { "fs", "[{\"tag\":\"x\",\"socket\":\"/run/containerd/containerd.sock\"}]", "fs" },
  { "devices", "[{\"path\":\"/sys/bus/pci/devices/0000:00:01.0\"}]", "devices" },
  { "user_devices", "[{\"socket\":\"/run/x.sock\"}]", "user_devices" },
  { "vdpa", "[{\"path\":\"/dev/vhost-vdpa-0\",\"num_queues\":1}]", "vdpa" },
  { "generic-vhost-user", "[{\"socket\":\"/x\"}]", "generic-vhost-user" },
  { "balloon", "{\"size\":1}", "balloon" },
  { "tpm", "{\"socket\":\"/x\"}", "tpm" },
  { "numa", "[{\"guest_numa_id\":0}]", "numa" },
  { "landlock_rules", "[{\"path\":\"/\",\"access\":\"rw\"}]", "landlock_rules" },
  { "rate_limit_groups", "[{\"id\":\"g\"}]", "rate_limit_groups" },
  { "pci_segments", "[{\"pci_segment\":1}]", "pci_segments" },
  { "iommu", "true", "iommu" },
  { "watchdog", "true", "watchdog" },
  { "sgx_epc", "[{\"id\":\"e\"}]", "sgx_epc" },
  { "something_new", "{\"path\":\"/etc\"}", "something_new" },
  { "console.mode", "\"File\"", "console.mode" },
  { "console.file", "\"/etc/cron.d/x\"", "console.file" },
  { "console.socket", "\"/tmp/s\"", "console.socket" },
  { "console.mode", "\"Pty\"", "console.mode" },
  { "debug_console.mode", "\"File\"", "debug_console.mode" },
  { "debug_console.file", "\"/etc/x\"", "debug_console.file" },
  { "serial.mode", "\"Socket\"", "serial.mode" },
  { "serial.mode", "\"Tty\"", "serial.mode" },
  { "serial.socket", "\"/tmp/s\"", "serial.socket" },
  { "serial", NULL, "serial is missing" },
  { "rng.src", "\"/dev/vda\"", "rng.src" },
  { "rng.iommu", "true", "rng.iommu" },
  { "payload.initramfs", "\"/etc/shadow\"", "payload.initramfs" },
  { "payload.firmware", "\"/etc/shadow\"", "payload.firmware" },
  { "payload.igvm", "\"/x\"", "payload.igvm" },
  { "memory.zones", "[{\"id\":\"z\",\"size\":1,\"file\":\"/etc/shadow\"}]", "memory.zones" },
  { "memory.size", "4294967296", "memory.size" },
  { "memory.size", "18446744073709551615", "memory.size" },
  { "memory.shared", "false", "memory.shared" },
  { "memory.hugepages", "true", "memory.hugepages" },
  { "memory.hotplug_size", "1073741824", "memory.hotplug_size" },
  { "cpus.boot_vcpus", "1", "cpus.boot_vcpus" },
  { "cpus.max_vcpus", "8", "cpus.max_vcpus" },
  { "cpus.affinity", "[{\"vcpu\":0,\"host_cpus\":[0]}]", "cpus.affinity" },
  { "cpus.features.amx", "\"yes\"", "cpus.features.amx" },
  { "cpus", NULL, "cpus is missing" },
  { "vsock.cid", "2", "vsock.cid" },
  { "vsock.iommu", "true", "vsock.iommu" },
  { "vsock", NULL, "vsock is missing" },
  { "net.0.tap", "\"eth0\"", "net[0].tap" },
  { "net.0.host_mac", "\"02:00:00:00:00:01\"", "net[0].host_mac" },
  { "net.0.vhost_user", "true", "net[0].vhost_user" },
  { "net.0.vhost_socket", "\"/x\"", "net[0].vhost_socket" },
  { "net.0.ip", "\"10.0.0.1\"", "net[0].ip" },
  { "net.0.mac", "\"02:00:00:00:00:09\"", "net[0].mac" },
  { "net.0.num_queues", "3", "net[0].num_queues" },
  { "net.0.id", NULL, "net[0].id" },
  { "net.0.fds", "[3,4]", "net[0].fds" },
  { "net.0.fds", "[\"x\"]", "net[0].fds" },
  { "platform.uuid", "\"x\"", "platform.uuid" },
  { "platform.num_pci_segments", "99", "platform.num_pci_segments" },
  { "rtc.iommu", "true", "rtc.iommu" },
};

static void
test_build_refuses_hostile_members (void **state)
{
  (void) state;
  for (size_t i = 0; i < ATE_N_ELEMENTS (cases); i++)
    {
      cleanup_json struct json_object *snap = parse (snap_text), *out = NULL;
      struct ate_error *err = NULL;

      patch (snap, cases[i].path, cases[i].value);
      if (ch_restore_config_build (snap, &expect, &out, &err) == 0)
        fail_msg ("case %zu (%s) accepted", i, cases[i].path);
      assert_null (out);
      if (err->code != ATE_CODE_FAILED_PRECONDITION || strstr (err->msg, cases[i].named) == NULL)
        fail_msg ("case %zu (%s): code %d, message \"%s\" does not name %s", i, cases[i].path,
                  err->code, err->msg, cases[i].named);
      ate_error_release (&err);
    }
}

static void
test_build_accepts_geometry (void **state)
{
  (void) state;
  /* Values a different CH build or version may hold, all accepted. */
  static const struct hostile ok[] = {
    { "platform.num_pci_segments", "2", NULL },
    { "cpus.max_phys_bits", "40", NULL },
    { "memory.thp", "false", NULL },
    { "console.mode", "\"Off\"", NULL },
    { "net.0.offload_tso", "false", NULL },
    { "disks.1.sparse", "false", NULL },
    { "disks.1.image_type", NULL, NULL },
    { "net.0.ip", "null", NULL },
    { "rtc", "{\"id\":\"_rtc0\"}", NULL },
  };
  for (size_t i = 0; i < ATE_N_ELEMENTS (ok); i++)
    {
      cleanup_json struct json_object *snap = parse (snap_text), *out = NULL;
      struct ate_error *err = NULL;
      patch (snap, ok[i].path, ok[i].value);
      if (ch_restore_config_build (snap, &expect, &out, &err) < 0)
        fail_msg ("case %zu (%s) refused: %s", i, ok[i].path, err->msg);
    }
  /* PCI segment 1 exists once the platform has two. */
  cleanup_json struct json_object *snap = parse (snap_text), *out = NULL;
  struct ate_error *err = NULL;
  patch (snap, "platform.num_pci_segments", "2");
  patch (snap, "disks.1.pci_segment", "1");
  assert_int_equal (ch_restore_config_build (snap, &expect, &out, &err), 0);
}

static void
test_build_qcow2_overlays (void **state)
{
  (void) state;
  struct ch_expected_disk q[3] = {
    disks[0],
    { "/base/actors/ns:t:a1/actor-rootfs.qcow2", "Qcow2", true, false, NULL },
    { "/base/actors/ns:t:a1/actor-rootfs-side.qcow2", "Qcow2", true, false, NULL },
  };
  struct ch_restore_expect e = expect;
  cleanup_json struct json_object *snap = parse (snap_text), *out = NULL;
  struct ate_error *err = NULL;
  struct json_object *arr, *d;

  e.disks = q;
  patch (snap, "disks.1.path", "\"/old/actor-rootfs.qcow2\"");
  patch (snap, "disks.1.image_type", "\"Qcow2\"");
  patch (snap, "disks.1.backing_files", "true");
  patch (snap, "disks.2.path", "\"/old/actor-rootfs-side.qcow2\"");
  patch (snap, "disks.2.image_type", "\"Qcow2\"");
  assert_int_equal (ch_restore_config_build (snap, &e, &out, &err), 0);
  json_object_object_get_ex (out, "disks", &arr);
  d = json_object_array_get_idx (arr, 2);
  assert_string_equal (ate_json_get_string (d, "path"), q[2].path);
  assert_string_equal (ate_json_get_string (d, "image_type"), "Qcow2");
  assert_true (json_object_object_get_ex (d, "backing_files", NULL));
  /* A raw disk where an overlay is expected is refused. */
  json_object_put (out);
  out = NULL;
  patch (snap, "disks.2.image_type", "\"Raw\"");
  assert_int_equal (ch_restore_config_build (snap, &e, &out, &err), -1);
  assert_non_null (strstr (err->msg, "disks[2].image_type"));
  ate_error_release (&err);
}

static void
test_sanitise_file (void **state)
{
  (void) state;
  char dir[] = "/tmp/test_restore_config.XXXXXX";
  struct ate_error *err = NULL;
  cleanup_free char *cfg = NULL, *text = NULL;
  size_t len;

  assert_non_null (mkdtemp (dir));
  cfg = ate_path_join (dir, "config.json");
  assert_int_equal (ate_write_file (cfg, snap_text, strlen (snap_text), 0644, &err), 0);
  assert_int_equal (ch_restore_config_sanitise (dir, &expect, ATE_DEADLINE_NONE, &err), 0);
  assert_int_equal (ate_read_file (cfg, 1 << 20, &text, &len, &err), 0);
  assert_null (strstr (text, "/old/"));
  free (text);
  text = NULL;

  /* Invalid JSON and a FIFO are refused, naming the file. */
  assert_int_equal (ate_write_file (cfg, "{\"cpus\":", 8, 0644, &err), 0);
  assert_int_equal (ch_restore_config_sanitise (dir, &expect, ATE_DEADLINE_NONE, &err), -1);
  assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
  assert_non_null (strstr (err->msg, "config.json"));
  ate_error_release (&err);
  unlink (cfg);
  assert_int_equal (mkfifo (cfg, 0600), 0);
  assert_int_equal (ch_restore_config_sanitise (dir, &expect, ATE_DEADLINE_NONE, &err), -1);
  assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
  assert_non_null (strstr (err->msg, "FIFO"));
  ate_error_release (&err);
  unlink (cfg);
  assert_int_equal (symlink ("/etc/passwd", cfg), 0);
  assert_int_equal (ch_restore_config_sanitise (dir, &expect, ATE_DEADLINE_NONE, &err), -1);
  assert_non_null (strstr (err->msg, "symbolic link"));
  ate_error_release (&err);
  assert_int_equal (ate_rm_rf (dir, &err), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_build_rebuilds_host_paths),
    cmocka_unit_test (test_build_refuses_hostile_members),
    cmocka_unit_test (test_build_accepts_geometry),
    cmocka_unit_test (test_build_qcow2_overlays),
    cmocka_unit_test (test_sanitise_file),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
