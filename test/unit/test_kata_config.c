/* SPDX-License-Identifier: Apache-2.0 */
/* kata configuration.toml reader and the guest kernel command line. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unistd.h>

#include "kata/config.h"
#include "kata/toml.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

/* The shape of kata 3.31's configuration-clh.toml (written for this test:
 * comments, every value form it uses, the tables around [hypervisor.clh]). */
static const char stock_clh[] =
  "# Copyright header and generator notes\n"
  "#\n"
  "# XXX: WARNING: this file is auto-generated.\n"
  "\n"
  "[hypervisor.clh]\n"
  "path = \"/opt/kata/bin/cloud-hypervisor\"\n"
  "kernel = \"/opt/kata/share/kata-containers/vmlinux.container\"\n"
  "image = \"/opt/kata/share/kata-containers/kata-containers.img\"\n"
  "\n"
  "# rootfs filesystem type:\n"
  "#   - ext4 (default)\n"
  "rootfs_type=\"ext4\"\n"
  "confidential_guest = false\n"
  "snp_guest_policy=0x30000\n"
  "disable_selinux=false\n"
  "disable_guest_selinux=true\n"
  "enable_annotations = [\"enable_iommu\", \"virtio_fs_extra_args\", \"kernel_params\"]\n"
  "valid_hypervisor_paths = [\"/opt/kata/bin/cloud-hypervisor\"]\n"
  "kernel_params = \"cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1\"\n"
  "\n"
  "# Default number of vCPUs per SB/VM:\n"
  "default_vcpus = 1\n"
  "default_maxvcpus = 0\n"
  "default_memory = 2048\n"
  "default_maxmemory = 0\n"
  "shared_fs = \"virtio-fs\"\n"
  "virtio_fs_daemon = \"/opt/kata/libexec/virtiofsd\"\n"
  "valid_virtio_fs_daemon_paths = [\n"
  "    \"/opt/kata/libexec/virtiofsd\",\n"
  "    \"/usr/libexec/virtiofsd\", # the distro one\n"
  "]\n"
  "virtio_fs_cache_size = 0\n"
  "virtio_fs_queue_size = 1024\n"
  "virtio_fs_extra_args = [\"--thread-pool-size=1\", \"-o\", \"announce_submounts\"]\n"
  "virtio_fs_cache = \"auto\"\n"
  "block_device_driver = \"virtio-blk\"\n"
  "valid_entropy_sources = [\"/dev/urandom\",\"/dev/random\",\"\"]\n"
  "#file_mem_backend = \"\"\n"
  "pflashes = []\n"
  "\n"
  "[agent.kata]\n"
  "enable_debug = false\n"
  "kernel_modules=[]\n"
  "dial_timeout = 45\n"
  "\n"
  "[runtime]\n"
  "enable_debug = false\n"
  "internetworking_model=\"tcfilter\"\n"
  "disable_guest_seccomp=true\n"
  "sandbox_cgroup_only=false\n"
  "static_sandbox_resource_mgmt=true\n"
  "experimental=[]\n"
  "vfio_mode=\"guest-kernel\"\n";

static struct kata_config
parse_ok (const char *text)
{
  struct kata_config cfg = { 0 };
  struct ate_error *err = NULL;
  if (kata_config_parse (text, strlen (text), &cfg, &err) < 0)
    fail_msg ("parse failed: %s\n--\n%s", err->msg, text);
  return cfg;
}

static void
expect_cfg (const char *text, int64_t mem, int64_t vcpus, const char *params)
{
  struct kata_config cfg = parse_ok (text);
  if (cfg.memory_mib != mem || cfg.vcpus != vcpus || strcmp (cfg.kernel_params, params) != 0)
    fail_msg ("got %lld MiB, %lld vCPUs, \"%s\" for:\n%s", (long long) cfg.memory_mib,
              (long long) cfg.vcpus, cfg.kernel_params, text);
  kata_config_release (&cfg);
}

static void
test_stock_config (void **state)
{
  (void) state;
  expect_cfg (stock_clh, 2048, 1, "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1");
  /* CRLF line endings and a byte order mark. */
  {
    struct buf_t
    {
      char *d;
    } b = { xmalloc (sizeof (stock_clh) * 2 + 4) };
    char *o = b.d;
    o += sprintf (o, "\xef\xbb\xbf");
    for (const char *s = stock_clh; *s; s++)
      {
        if (*s == '\n')
          *o++ = '\r';
        *o++ = *s;
      }
    *o = '\0';
    expect_cfg (b.d, 2048, 1, "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1");
    free (b.d);
  }
}

static void
test_values_and_defaults (void **state)
{
  (void) state;
  /* The reference's own test shape. */
  expect_cfg ("[hypervisor.clh]\npath = \"/usr/local/bin/cloud-hypervisor\"\n"
              "default_memory = 512\ndefault_vcpus = 2\n"
              "kernel_params = \"agent.foo=bar systemd.unit=kata-containers.target\"\n"
              "shared_fs = \"virtio-fs\"\n",
              512, 2, "agent.foo=bar systemd.unit=kata-containers.target");
  expect_cfg ("", 2048, 1, "");
  expect_cfg ("[hypervisor.clh]\nkernel_params = \"x\"\n", 2048, 1, "x");
  expect_cfg ("[hypervisor.clh]\ndefault_memory = 0\ndefault_vcpus = -1\n", 2048, 1, "");
  /* Fractional vCPUs are truncated. */
  expect_cfg ("[hypervisor.clh]\ndefault_vcpus = 2.75\n", 2048, 2, "");
  expect_cfg ("[hypervisor.clh]\ndefault_vcpus = 0.5\n", 2048, 1, "");
  expect_cfg ("[hypervisor.clh]\ndefault_vcpus = 4e0\n", 2048, 4, "");
  /* Other hypervisors' keys are not ours. */
  expect_cfg ("[hypervisor.qemu]\ndefault_memory = 4096\n[hypervisor.clh]\n"
              "default_memory = 1024\n",
              1024, 1, "");
  /* Dotted keys, quoted keys, inline tables reach the same keys. */
  expect_cfg ("[hypervisor]\nclh.default_memory = 4096\nclh.\"default_vcpus\" = 3\n", 4096, 3,
              "");
  expect_cfg ("[\"hypervisor\" . 'clh']\ndefault_memory = 1_024\n", 1024, 1, "");
  expect_cfg ("hypervisor = { clh = { default_memory = 768, kernel_params = 'a b' } }\n", 768,
              1, "a b");
  expect_cfg ("hypervisor.clh.default_memory = 0x400\n", 1024, 1, "");
  /* String forms. */
  expect_cfg ("[hypervisor.clh]\nkernel_params = \"a\\tb \\u00e9 \\U0001F600 \\\"q\\\"\"\n",
              2048, 1, "a\tb \xc3\xa9 \xf0\x9f\x98\x80 \"q\"");
  expect_cfg ("[hypervisor.clh]\nkernel_params = 'C:\\path\\no escapes'\n", 2048, 1,
              "C:\\path\\no escapes");
  expect_cfg ("[hypervisor.clh]\nkernel_params = \"\"\"\nquiet \\\n    panic=1\"\"\"\n", 2048, 1,
              "quiet panic=1");
  expect_cfg ("[hypervisor.clh]\nkernel_params = '''\nline1\nline2'''\n", 2048, 1,
              "line1\nline2");
  expect_cfg ("[hypervisor.clh]\nkernel_params = \"\"\"x\"\"\"\"\"\n", 2048, 1, "x\"\"");
}

static void
test_other_toml_features (void **state)
{
  (void) state;
  /* Everything else a valid document may contain is accepted. */
  expect_cfg ("title = \"t\"\n"
              "odt1 = 1979-05-27T07:32:00Z\nodt2 = 1979-05-27 00:32:00.999999-07:00\n"
              "ldt = 1979-05-27T07:32:00\nld = 1979-05-27\nlt = 07:32:00.5\n"
              "f = [+1.0, -3.5e-2, 6.626e-34, inf, -inf, nan, 1_000.000_1]\n"
              "i = [+99, -17, 0, 0o755, 0b1101, 0xdead_beef, -9223372036854775808]\n"
              "nested = [[1, 2], [\"a\", 'b'], [], [{x = 1}]]\n"
              "empty = {}\n"
              "[[products]]\nname = \"Hammer\"\n[products.dims]\nw = 1\n"
              "[[products]]\nname = \"Nail\"\n[products.dims]\nw = 2\n"
              "[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n"
              "[fruit.apple.texture]\nsmooth = true\n"
              "[a.b.c]\nx = 1\n[a]\ny = 2\n"
              "[hypervisor.clh]  # trailing comment\ndefault_memory = 4096 # MiB\n",
              4096, 1, "");
}

static void
expect_error (const char *text, const char *want)
{
  struct kata_config cfg = { 0 };
  struct ate_error *err = NULL;

  if (kata_config_parse (text, strlen (text), &cfg, &err) == 0)
    fail_msg ("accepted:\n%s", text);
  if (strstr (err->msg, want) == NULL)
    fail_msg ("error \"%s\" lacks \"%s\" for:\n%s", err->msg, want, text);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  assert_null (cfg.kernel_params);
  ate_error_release (&err);
}

static void
test_malformed (void **state)
{
  (void) state;
  expect_error ("[hypervisor.clh]\n\ndefault_memory =\n", "line 3: missing value");
  expect_error ("[hypervisor.clh]\ndefault_memory = 12abc\n", "line 2: invalid value '12abc'");
  expect_error ("a = \"open\n", "line 1: control character 0x0a in a string");
  expect_error ("a = \"never closed", "line 1: unterminated string");
  expect_error ("a = '''\nx\n", "line 3: unterminated string");
  expect_error ("a = 1\nb = 2\na = 3\n", "line 3: duplicate key 'a'");
  expect_error ("[t]\nx=1\n[t]\n", "line 3: table [t] redefined");
  expect_error ("[hypervisor.clh\nx = 1\n", "line 1: expected ']' after a table name");
  expect_error ("x = 1 2\n", "line 1: unexpected '2' after a value");
  expect_error ("x = 9223372036854775808\n", "line 1: integer 9223372036854775808 out of range");
  expect_error ("x = 0123\n", "line 1: leading zeros");
  expect_error ("x = \"\\q\"\n", "line 1: invalid escape sequence \\q");
  expect_error ("x = \"\\uD800\"\n", "not a Unicode scalar value");
  expect_error ("x = \"\xff\"\n", "line 1: invalid UTF-8");
  expect_error ("x = \"a\x01\"\n", "control character 0x01 in a string");
  expect_error ("# bell \x07\n", "control character 0x07 in a comment");
  expect_error ("a = 1\na.b = 2\n", "line 2: 'a' is a value");
  expect_error ("[fruit]\napple.color = 1\n[fruit.apple]\n", "line 3: table [apple] redefined");
  expect_error ("[a.b]\nx = 1\n[a]\nb.y = 2\n", "line 4: 'b' is a [table]");
  expect_error ("t = {x = 1, x = 2}\n", "line 1: duplicate key 'x'");
  expect_error ("t = {x = 1,}\n", "expected a key");
  expect_error ("arr = [1 2]\n", "line 1: expected ',' or ']' in an array");
  expect_error ("arr = [\n1,\n2,\n", "line 4: missing value");
  expect_error ("x = 1979-13-27T07:32:00Z junk\n", "line 1");
  expect_error ("x = 1.\n", "invalid value '1.'");
  expect_error ("x = .5\n", "invalid value '.5'");
  expect_error ("x = 1__0\n", "invalid value '1__0'");
  expect_error ("x = +0x10\n", "invalid value '+0x10'");
  expect_error ("x = TRUE\n", "invalid value 'TRUE'");
  expect_error ("[[a]]\n[a]\n", "line 2: table [a] redefined");
  expect_error ("a = [1]\n[[a]]\n", "line 2: [[a]]: 'a' is already a value");
  expect_error ("= 1\n", "line 1: expected a key, found '='");
  expect_error ("key\n", "line 1: expected '=' after key 'key'");
  expect_error ("\"\"\"k\"\"\" = 1\n", "a multi-line string cannot be a key");
  /* Our keys with the wrong type. */
  expect_error ("[hypervisor.clh]\nkernel_params = 5\n",
                "line 2: [hypervisor.clh] kernel_params must be a string");
  expect_error ("[hypervisor.clh]\n\ndefault_memory = \"2048\"\n",
                "line 3: [hypervisor.clh] default_memory must be an integer");
  expect_error ("[hypervisor.clh]\ndefault_memory = 1.5\n", "default_memory must be an integer");
  expect_error ("[hypervisor.clh]\ndefault_vcpus = [1]\n", "default_vcpus must be a number");
  expect_error ("[hypervisor.clh]\ndefault_vcpus = nan\n", "default_vcpus must be a number");
  expect_error ("[hypervisor.clh]\nkernel_params = \"a\\u0000b\"\n", "without NUL");
}

static void
test_limits (void **state)
{
  (void) state;
  size_t n = 100;
  char *deep = xmalloc (n * 2 + 16);
  char *o = deep;
  o += sprintf (o, "x = ");
  for (size_t i = 0; i < 40; i++)
    *o++ = '[';
  for (size_t i = 0; i < 40; i++)
    *o++ = ']';
  *o++ = '\n';
  *o = '\0';
  expect_error (deep, "nested deeper than 32");
  free (deep);

  struct ate_error *err = NULL;
  struct kata_config cfg;
  assert_true (kata_config_parse ("", TOML_MAX_SIZE + 1, &cfg, &err) < 0);
  assert_int_equal (err->status, EFBIG);
  ate_error_release (&err);
}

static void
test_load (void **state)
{
  (void) state;
  struct kata_config cfg = { 0 };
  struct ate_error *err = NULL;
  char tmpl[] = "/tmp/ate-test-kcfg-XXXXXX";
  char *dir = mkdtemp (tmpl);
  cleanup_free char *path = ate_path_join (dir, "configuration-clh.toml");

  /* No path: defaults. */
  assert_int_equal (kata_config_load (NULL, &cfg, &err), 0);
  assert_int_equal (cfg.memory_mib, 2048);
  kata_config_release (&cfg);
  assert_int_equal (kata_config_load ("", &cfg, &err), 0);
  kata_config_release (&cfg);
  /* A named but unreadable asset is an error, not silent defaults. */
  assert_true (kata_config_load (path, &cfg, &err) < 0);
  assert_int_equal (err->status, ENOENT);
  assert_non_null (strstr (err->msg, "configuration-clh.toml"));
  ate_error_release (&err);
  assert_int_equal (ate_write_file (path, stock_clh, strlen (stock_clh), 0600, &err), 0);
  assert_int_equal (kata_config_load (path, &cfg, &err), 0);
  assert_int_equal (cfg.memory_mib, 2048);
  kata_config_release (&cfg);
  assert_int_equal (ate_write_file (path, "[x\n", 3, 0600, &err), 0);
  assert_true (kata_config_load (path, &cfg, &err) < 0);
  assert_non_null (strstr (err->msg, "line 1"));
  assert_non_null (strstr (err->msg, path));
  ate_error_release (&err);
  /* A FIFO as the asset fails at once instead of blocking the open. */
  unlink (path);
  assert_int_equal (mkfifo (path, 0600), 0);
  assert_true (kata_config_load (path, &cfg, &err) < 0);
  assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
  assert_non_null (strstr (err->msg, "FIFO"));
  ate_error_release (&err);
  assert_int_equal (ate_rm_rf (dir, &err), 0);
}

#define BASE                                                                       \
  "root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4 "    \
  "panic=1 no_timer_check noreplace-smp console=ttyS0,115200n8 "                  \
  "systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service "     \
  "systemd.mask=systemd-networkd.socket"
#define STOCK "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1"

static void
test_cmdline (void **state)
{
  (void) state;
  static const struct
  {
    const char *arch, *params;
    bool debug;
    const char *want;
  } cases[] = {
    /* Without --kata-debug the guest gets no debug console
     * (docs/kata-agent.md, "Guest kernel command line"). */
    { "amd64", STOCK, false, BASE " " STOCK },
    /* The reference's command line tail plus agent.log=debug. */
    { "amd64", STOCK, true,
      BASE " " STOCK " agent.debug_console agent.debug_console_vport=1026 "
           "agent.log=debug agent.debug_console" },
    { "amd64", "", false, BASE },
    { "x86_64", "", true,
      BASE " agent.debug_console agent.debug_console_vport=1026 agent.log=debug "
           "agent.debug_console" },
    /* Parameters the config sets itself are not added again. */
    { "amd64", "agent.debug_console_vport=2000 agent.log=warn", true,
      BASE " agent.debug_console_vport=2000 agent.log=warn" },
  };
  for (size_t i = 0; i < ATE_N_ELEMENTS (cases); i++)
    {
      cleanup_free char *got = kata_kernel_cmdline (cases[i].arch, cases[i].params,
                                                    cases[i].debug);
      assert_string_equal (got, cases[i].want);
    }
  {
    cleanup_free char *arm = kata_kernel_cmdline ("arm64", STOCK, false);
    cleanup_free char *aarch = kata_kernel_cmdline ("aarch64", "", false);
    assert_non_null (strstr (arm, " console=ttyAMA0,115200n8 "));
    assert_non_null (strstr (aarch, " console=ttyAMA0,115200n8 "));
    assert_null (strstr (arm, "ttyS0"));
  }
  /* Idempotent on its own output. */
  {
    cleanup_free char *once = kata_kernel_params (STOCK, true);
    cleanup_free char *twice = kata_kernel_params (once, true);
    assert_string_equal (once, twice);
    cleanup_free char *none = kata_kernel_params (NULL, false);
    assert_string_equal (none, "");
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_stock_config),   cmocka_unit_test (test_values_and_defaults),
    cmocka_unit_test (test_other_toml_features), cmocka_unit_test (test_malformed),
    cmocka_unit_test (test_limits),         cmocka_unit_test (test_load),
    cmocka_unit_test (test_cmdline),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
