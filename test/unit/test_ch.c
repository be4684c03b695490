/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for runtime/ch: HTTP formatter/parser/transport, VmConfig and
 * restore bodies (the reference's, byte for byte), snapshot config rewrite,
 * net devices,
 * version parsing and the restore-mode chooser. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "ch/ch.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/util.h"

static char tmpdir[64];

static int
setup_tmp (void **state)
{
  (void) state;
  snprintf (tmpdir, sizeof (tmpdir), "/tmp/test_ch.XXXXXX");
  return mkdtemp (tmpdir) ? 0 : -1;
}

static int
teardown_tmp (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  if (ate_rm_rf (tmpdir, &err) < 0)
    ate_error_release (&err);
  return 0;
}

/* ------------------------------------------------------------ formatter */

static void
test_format_head (void **state)
{
  (void) state;
  size_t len;
  cleanup_free char *h = ch_http_format_head ("PUT", "/api/v1/vm.add-net", 52, true, &len);
  assert_string_equal (h, "PUT /api/v1/vm.add-net HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                          "Content-Type: application/json\r\nContent-Length: 52\r\n\r\n");
  assert_int_equal (len, strlen (h));
  cleanup_free char *g = ch_http_format_head ("GET", "/api/v1/vmm.ping", 0, false, NULL);
  assert_string_equal (g, "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
  cleanup_free char *p = ch_http_format_head ("PUT", "/api/v1/vm.boot", 0, false, NULL);
  assert_string_equal (p, "PUT /api/v1/vm.boot HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                          "Content-Length: 0\r\n\r\n");
}

/* --------------------------------------------------------------- parser */

static int
parse (const char *s, struct ch_http_response *r, size_t *used)
{
  struct ate_error *err = NULL;
  int ret = ch_http_parse_response (s, strlen (s), r, used, &err);
  if (ret < 0)
    {
      assert_non_null (err);
      ate_error_release (&err);
    }
  return ret;
}

static void
test_parse_204 (void **state)
{
  (void) state;
  struct ch_http_response r = { 0 };
  size_t used = 0;
  const char *s = "HTTP/1.1 204 No Content\r\nServer: Cloud Hypervisor API\r\n\r\n";
  assert_int_equal (parse (s, &r, &used), 1);
  assert_int_equal (r.status, 204);
  assert_string_equal (r.reason, "No Content");
  assert_null (r.body);
  assert_int_equal (used, strlen (s));
  ch_http_response_clear (&r);
  /* A 204 never has a body even if a length is announced. */
  assert_int_equal (parse ("HTTP/1.1 204 \r\nContent-Length: 5\r\n\r\n", &r, &used), 1);
  assert_null (r.body);
  ch_http_response_clear (&r);
}

static void
test_parse_body (void **state)
{
  (void) state;
  struct ch_http_response r = { 0 };
  size_t used = 0;
  const char *s = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                  "CONTENT-LENGTH:  17 \r\n\r\n{\"version\":\"52\"}\nEXTRA";
  assert_int_equal (parse (s, &r, &used), 1);
  assert_int_equal (r.status, 200);
  assert_string_equal (r.content_type, "application/json");
  assert_int_equal (r.body_len, 17);
  assert_memory_equal (r.body, "{\"version\":\"52\"}\n", 17);
  assert_int_equal (used, strlen (s) - 5);
  ch_http_response_clear (&r);
}

static void
test_parse_incomplete (void **state)
{
  (void) state;
  struct ch_http_response r = { 0 };
  size_t used = 0;
  assert_int_equal (parse ("", &r, &used), 0);
  assert_int_equal (parse ("HTTP/1.1 200 OK\r\nContent-Len", &r, &used), 0);
  assert_int_equal (parse ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", &r, &used), 0);
  assert_int_equal (parse ("HTT", &r, &used), 0);
}

static void
test_parse_garbage (void **state)
{
  (void) state;
  struct ch_http_response r = { 0 };
  size_t used = 0;
  const char *bad[] = {
    "SSH-2.0-OpenSSH\r\n\r\n",
    "HTTP/1.1 20 OK\r\n\r\n",
    "HTTP/1.1 abc OK\r\n\r\n",
    "HTTP/1.1 099 Low\r\n\r\n",
    "HTTP/1.1 200OK\r\n\r\n",
    "HTTP/2.0 200 OK\r\n\r\n",
    "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
    "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 4194305\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 200 OK\nBare: lf\r\n\r\n",
    "HTTP/1.1 200 O\x01K\r\n\r\n",
  };
  for (size_t i = 0; i < ATE_N_ELEMENTS (bad); i++)
    {
      int r2 = parse (bad[i], &r, &used);
      if (r2 != -1)
        fail_msg ("accepted garbage #%zu: %s", i, bad[i]);
    }
}

static void
test_parse_oversize_head (void **state)
{
  (void) state;
  size_t n = CH_HTTP_MAX_HEAD + 10;
  cleanup_free char *buf = xmalloc (n + 1);
  struct ch_http_response r = { 0 };
  struct ate_error *err = NULL;
  size_t used;
  memcpy (buf, "HTTP/1.1 200 OK\r\nX: ", 20);
  memset (buf + 20, 'a', n - 20);
  buf[n] = '\0';
  assert_int_equal (ch_http_parse_response (buf, n, &r, &used, &err), -1);
  assert_non_null (strstr (err->msg, "larger than"));
  ate_error_release (&err);
}

static void
test_error_chain (void **state)
{
  (void) state;
  const char *b = "[\"Error from API\",\"The VM could not be paused\",\"Invalid state\"]";
  cleanup_free char *c = ch_http_error_chain (b, strlen (b));
  assert_string_equal (c, "Error from API: The VM could not be paused: Invalid state");
  cleanup_free char *d = ch_http_error_chain ("  plain text\n", 13);
  assert_string_equal (d, "plain text");
  cleanup_free char *e = ch_http_error_chain (NULL, 0);
  assert_string_equal (e, "");
}

/* ------------------------------------------------------------ transport */

struct fake_server
{
  int lfd;
  const char *reply;
  char req[8192];
  size_t req_len;
  int nfds_first_read; /* fds that arrived with the first byte */
  int fds_later;
};

static void *
fake_server_main (void *arg)
{
  struct fake_server *s = arg;
  int c = accept4 (s->lfd, NULL, NULL, SOCK_CLOEXEC);
  bool first = true;
  if (c < 0)
    return NULL;
  for (;;)
    {
      union
      {
        char buf[CMSG_SPACE (sizeof (int) * 16)];
        struct cmsghdr a;
      } ctl;
      struct iovec iov = { s->req + s->req_len, sizeof (s->req) - s->req_len - 1 };
      struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof (ctl.buf) };
      ssize_t n = recvmsg (c, &m, MSG_CMSG_CLOEXEC);
      if (n <= 0)
        break;
      for (struct cmsghdr *h = CMSG_FIRSTHDR (&m); h; h = CMSG_NXTHDR (&m, h))
        if (h->cmsg_type == SCM_RIGHTS)
          {
            int k = (int) ((h->cmsg_len - CMSG_LEN (0)) / sizeof (int));
            int fds[16];
            memcpy (fds, CMSG_DATA (h), sizeof (int) * (size_t) k);
            for (int i = 0; i < k; i++)
              close (fds[i]);
            if (first)
              s->nfds_first_read += k;
            else
              s->fds_later += k;
          }
      first = false;
      s->req_len += (size_t) n;
      s->req[s->req_len] = '\0';
      char *he = strstr (s->req, "\r\n\r\n");
      if (he)
        {
          char *cl = strcasestr (s->req, "Content-Length: ");
          size_t want = (size_t) (he + 4 - s->req) + (cl ? strtoul (cl + 16, NULL, 10) : 0);
          if (s->req_len >= want)
            break;
        }
    }
  if (write (c, s->reply, strlen (s->reply)) < 0)
    fprintf (stderr, "fake server write: %s\n", strerror (errno));
  close (c);
  return NULL;
}

static int
fake_listen (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  snprintf (sa.sun_path, sizeof (sa.sun_path), "%s", path);
  unlink (path);
  assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof (sa)), 0);
  assert_int_equal (listen (fd, 4), 0);
  return fd;
}

static void
test_request_fds_and_error (void **state)
{
  (void) state;
  cleanup_free char *sock = ate_path_join (tmpdir, "api.sock");
  struct fake_server s = { 0 };
  pthread_t th;
  struct ate_error *err = NULL;
  int p[2];

  s.lfd = fake_listen (sock);
  s.reply = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 46\r\n\r\n"
            "[\"Error from API\",\"The VM could not be added\"]";
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  pthread_create (&th, NULL, fake_server_main, &s);
  assert_int_equal (ch_vm_add_net (sock, "02:a8:1e:00:00:02", 4, p, 2,
                                   ate_deadline_in_ms (5000), &err), -1);
  pthread_join (th, NULL);
  close (s.lfd);
  close (p[0]);
  close (p[1]);
  assert_int_equal (s.nfds_first_read, 2);
  assert_int_equal (s.fds_later, 0);
  assert_string_equal (s.req, "PUT /api/v1/vm.add-net HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                              "Content-Type: application/json\r\nContent-Length: 54\r\n\r\n"
                              "{\"mac\":\"02:a8:1e:00:00:02\",\"num_queues\":4,\"num_fds\":2}");
  assert_non_null (err);
  assert_string_equal (err->msg, "PUT /api/v1/vm.add-net: HTTP 500: Error from API: "
                                 "The VM could not be added");
  ate_error_release (&err);
}

static void
test_request_ping_and_timeout (void **state)
{
  (void) state;
  cleanup_free char *sock = ate_path_join (tmpdir, "ping.sock");
  struct fake_server s = { 0 };
  struct ch_version v;
  struct ate_error *err = NULL;
  pthread_t th;

  s.lfd = fake_listen (sock);
  s.reply = "HTTP/1.1 200 OK\r\nContent-Length: 66\r\n\r\n"
            "{\"build_version\":\"v53.0\",\"version\":\"53.0.0\",\"pid\":1,\"features\":[]}";
  pthread_create (&th, NULL, fake_server_main, &s);
  assert_int_equal (ch_ping (sock, &v, ate_deadline_in_ms (5000), &err), 0);
  pthread_join (th, NULL);
  assert_int_equal (v.major, 53);
  assert_string_equal (s.req, "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");

  /* Nobody accepts: the deadline bounds the call. */
  int64_t t0 = ate_now_ns ();
  assert_int_equal (ch_vm_boot (sock, ate_deadline_in_ms (100), &err), -1);
  assert_true (ate_now_ns () - t0 < 2 * ATE_NSEC_PER_SEC);
  assert_int_equal (err->status, ETIMEDOUT);
  ate_error_release (&err);
  close (s.lfd);

  /* No server at all. */
  unlink (sock);
  assert_int_equal (ch_ping (sock, NULL, ate_deadline_in_ms (100), &err), -1);
  assert_int_equal (err->status, ENOENT);
  ate_error_release (&err);
}

/* ------------------------------------------------------ bodies (App. A) */

static void
test_vm_config_appendix_a (void **state)
{
  (void) state;
  const char *expected
      = "{\"cpus\":{\"boot_vcpus\":1,\"max_vcpus\":1},\"memory\":{\"size\":2147483648,\"shared\":true},"
        "\"payload\":{\"kernel\":\"/var/lib/ateom-gvisor/static-files/runsc-<sha kernel>\","
        "\"cmdline\":\"root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4 "
        "panic=1 no_timer_check noreplace-smp console=ttyS0,115200n8 "
        "systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service "
        "systemd.mask=systemd-networkd.socket cgroup_no_v1=all "
        "systemd.unified_cgroup_hierarchy=1 agent.debug_console agent.debug_console_vport=1026\"},"
        "\"disks\":[{\"path\":\"/var/lib/ateom-gvisor/static-files/runsc-<sha image>\","
        "\"readonly\":true,\"direct\":false,\"num_queues\":1,\"queue_size\":1024,\"image_type\":\"Raw\"},"
        "{\"path\":\"/var/lib/ateom-gvisor/actors/default:counter-microvm:a1/actor-rootfs.ext4\","
        "\"readonly\":false,\"direct\":false,\"num_queues\":1,\"queue_size\":1024,\"image_type\":\"Raw\"}],"
        "\"rng\":{\"src\":\"/dev/urandom\"},"
        "\"serial\":{\"mode\":\"File\",\"file\":\"/run/vc/vm/a1/serial.log\"},"
        "\"vsock\":{\"cid\":3,\"socket\":\"/run/vc/vm/a1/clh.sock\"}}";
  struct ch_disk_config disks[] = {
    { "/var/lib/ateom-gvisor/static-files/runsc-<sha image>", true, false, 1, 1024, "Raw", false },
    { "/var/lib/ateom-gvisor/actors/default:counter-microvm:a1/actor-rootfs.ext4", false, false, 1,
      1024, "Raw", false },
  };
  struct ch_vm_config cfg = {
    .boot_vcpus = 1,
    .memory_size = 2048ull << 20,
    .memory_shared = true,
    .kernel = "/var/lib/ateom-gvisor/static-files/runsc-<sha kernel>",
    .cmdline = "root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro rootfstype=ext4 "
               "panic=1 no_timer_check noreplace-smp console=ttyS0,115200n8 "
               "systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service "
               "systemd.mask=systemd-networkd.socket cgroup_no_v1=all "
               "systemd.unified_cgroup_hierarchy=1 agent.debug_console "
               "agent.debug_console_vport=1026",
    .disks = disks,
    .n_disks = 2,
    .rng_src = "/dev/urandom",
    .serial_file = "/run/vc/vm/a1/serial.log",
    .vsock_cid = 3,
    .vsock_socket = "/run/vc/vm/a1/clh.sock",
  };
  cleanup_free char *json = NULL;
  struct ate_error *err = NULL;

  assert_int_equal (ch_vm_config_to_json (&cfg, &json, &err), 0);
  assert_string_equal (json, expected);

  /* Omit-when-zero rules and the platform object. */
  free (json);
  json = NULL;
  struct ch_disk_config bare = { "/img", true, false, 0, 0, NULL, false };
  cfg.disks = &bare;
  cfg.n_disks = 1;
  cfg.num_pci_segments = 2;
  cfg.rng_src = NULL;
  cfg.serial_file = NULL;
  cfg.vsock_socket = NULL;
  assert_int_equal (ch_vm_config_to_json (&cfg, &json, &err), 0);
  assert_non_null (strstr (json, "\"disks\":[{\"path\":\"/img\",\"readonly\":true,\"direct\":false}]"));
  assert_non_null (strstr (json, "\"platform\":{\"num_pci_segments\":2}}"));
  assert_null (strstr (json, "rng"));

  /* A qcow2 overlay that reads its backing file. */
  free (json);
  json = NULL;
  struct ch_disk_config overlay = { "/ov.qcow2", false, false, 0, 0, "Qcow2", true };
  cfg.disks = &overlay;
  assert_int_equal (ch_vm_config_to_json (&cfg, &json, &err), 0);
  assert_non_null (strstr (json, "\"disks\":[{\"path\":\"/ov.qcow2\",\"readonly\":false,"
                                 "\"direct\":false,\"image_type\":\"Qcow2\",\"backing_files\":true}]"));
  cfg.disks = &bare;

  /* Rejections. */
  cfg.vsock_socket = "/x.sock";
  cfg.vsock_cid = 2;
  assert_int_equal (ch_vm_config_to_json (&cfg, &json, &err), -1);
  ate_error_release (&err);
  cfg.vsock_cid = 3;
  cfg.kernel = NULL;
  assert_int_equal (ch_vm_config_to_json (&cfg, &json, &err), -1);
  ate_error_release (&err);
}

static void
test_restore_body_appendix_a (void **state)
{
  (void) state;
  struct ch_restore_net net = { "_net2", 1 };
  cleanup_free char *body = ch_restore_body (
      "/var/lib/ateom-gvisor/actors/default:counter-microvm:a1/restore-state",
      CH_RESTORE_ONDEMAND, true, &net, 1);
  assert_string_equal (body, "{\"source_url\":\"file:///var/lib/ateom-gvisor/actors/"
                             "default:counter-microvm:a1/restore-state\",\"memory_restore_mode\":"
                             "\"OnDemand\",\"net_fds\":[{\"id\":\"_net2\",\"num_fds\":1}]}");
  assert_int_equal (strlen (body), 165);
  cleanup_free char *head = ch_http_format_head ("PUT", "/api/v1/vm.restore", strlen (body), true, NULL);
  assert_string_equal (head, "PUT /api/v1/vm.restore HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                             "Content-Type: application/json\r\nContent-Length: 165\r\n\r\n");
  cleanup_free char *v51 = ch_restore_body ("/r", CH_RESTORE_COPY, false, NULL, 0);
  assert_string_equal (v51, "{\"source_url\":\"file:///r\"}");
  cleanup_free char *an = ch_add_net_body ("02:a8:1e:00:00:02", 2, 1);
  assert_string_equal (an, "{\"mac\":\"02:a8:1e:00:00:02\",\"num_queues\":2,\"num_fds\":1}");
  cleanup_free char *an0 = ch_add_net_body (NULL, 0, 1);
  assert_string_equal (an0, "{\"num_fds\":1}");
}

/* -------------------------------------------------- version and modes */

static void
test_version_parse (void **state)
{
  (void) state;
  struct ch_version v;
  struct ate_error *err = NULL;
  const struct
  {
    const char *s;
    unsigned a, b, c;
  } ok[] = { { "52.0.0", 52, 0, 0 }, { "v51.1", 51, 1, 0 }, { "v53.0-246-gae44c297", 53, 0, 0 },
             { "cloud-hypervisor v51.1.0", 51, 1, 0 }, { "60", 60, 0, 0 } };
  for (size_t i = 0; i < ATE_N_ELEMENTS (ok); i++)
    {
      assert_int_equal (ch_version_parse (ok[i].s, &v, &err), 0);
      assert_int_equal (v.major, ok[i].a);
      assert_int_equal (v.minor, ok[i].b);
      assert_int_equal (v.patch, ok[i].c);
    }
  const char *bad[] = { "", "v", "x52", "52.x", "52.0.0junk", "99999999999" };
  for (size_t i = 0; i < ATE_N_ELEMENTS (bad); i++)
    {
      assert_int_equal (ch_version_parse (bad[i], &v, &err), -1);
      ate_error_release (&err);
    }
  assert_int_equal (ch_version_parse (NULL, &v, &err), -1);
  ate_error_release (&err);
}

static void
test_restore_mode_choose (void **state)
{
  (void) state;
  struct ch_version v51 = { 51, 1, 0, "51.1.0" }, v52 = { 52, 0, 0, "52.0.0" },
                    v53 = { 53, 0, 0, "53.0.0" }, v60 = { 60, 2, 0, "60.2.0" };
  enum ch_restore_mode m;
  bool send;
  struct ate_error *err = NULL;

  assert_int_equal (ch_restore_mode_choose (&v51, CH_RESTORE_PREF_AUTO, &m, &send, &err), 0);
  assert_int_equal (m, CH_RESTORE_COPY);
  assert_false (send);
  assert_int_equal (ch_restore_mode_choose (&v51, CH_RESTORE_PREF_COPY, &m, &send, &err), 0);
  assert_false (send);
  assert_int_equal (ch_restore_mode_choose (&v51, CH_RESTORE_PREF_ONDEMAND, &m, &send, &err), -1);
  assert_non_null (strstr (err->msg, "v52.0"));
  ate_error_release (&err);
  assert_int_equal (ch_restore_mode_choose (&v52, CH_RESTORE_PREF_AUTO, &m, &send, &err), 0);
  assert_int_equal (m, CH_RESTORE_ONDEMAND);
  assert_true (send);
  assert_int_equal (ch_restore_mode_choose (&v52, CH_RESTORE_PREF_COPY, &m, &send, &err), 0);
  assert_int_equal (m, CH_RESTORE_COPY);
  assert_int_equal (ch_restore_mode_choose (&v53, CH_RESTORE_PREF_AUTO, &m, &send, &err), 0);
  assert_int_equal (m, CH_RESTORE_COPY);
  assert_true (send);
  assert_int_equal (ch_restore_mode_choose (&v53, CH_RESTORE_PREF_ONDEMAND, &m, &send, &err), 0);
  assert_int_equal (m, CH_RESTORE_ONDEMAND);
  assert_int_equal (ch_restore_mode_choose (&v60, CH_RESTORE_PREF_AUTO, &m, &send, &err), 0);
  assert_int_equal (m, CH_RESTORE_COPY);

  enum ch_restore_pref p;
  assert_int_equal (ch_restore_pref_parse ("OnDemand", &p, &err), 0);
  assert_int_equal (p, CH_RESTORE_PREF_ONDEMAND);
  assert_int_equal (ch_restore_pref_parse ("lazy", &p, &err), -1);
  ate_error_release (&err);
  assert_string_equal (ch_restore_mode_name (CH_RESTORE_ONDEMAND), "OnDemand");
}

/* ------------------------------------------------------ snapshot config */

static const char *snapshot_config
    = "{\"cpus\":{\"boot_vcpus\":1,\"max_vcpus\":1,\"topology\":null,\"kvm_hyperv\":false,"
      "\"max_phys_bits\":46,\"affinity\":null,\"features\":{\"amx\":false}},"
      "\"memory\":{\"size\":9223372036854775807,\"mergeable\":false,\"hotplug_method\":\"Acpi\","
      "\"hotplug_size\":18446744073709551615,\"shared\":true,\"hugepages\":false,\"zones\":null,"
      "\"thp\":true},"
      "\"payload\":{\"kernel\":\"/k\",\"cmdline\":\"a=b \\\"q\\\" \\u00e9\"},"
      "\"disks\":[{\"path\":\"/img\",\"readonly\":true,\"id\":\"_disk0\",\"pci_segment\":0},"
      "{\"path\":\"/old/actor/actor-rootfs.ext4\",\"readonly\":false,\"id\":\"_disk1\","
      "\"rate_limiter_config\":{\"bandwidth\":{\"size\":-9223372036854775807,\"refill_time\":100}}},"
      "{\"path\":\"/old/actor/container-1.ext4\",\"id\":\"_disk2\"}],"
      "\"net\":[{\"tap\":null,\"ip\":\"192.168.249.1\",\"mask\":\"255.255.255.0\","
      "\"mac\":\"02:a8:1e:00:00:02\",\"num_queues\":4,\"queue_size\":256,\"id\":\"_net3\","
      "\"fds\":[-1,-1]},{\"id\":\"_net4\",\"num_queues\":1}],"
      "\"rng\":{\"src\":\"/dev/urandom\",\"iommu\":false},"
      "\"serial\":{\"file\":\"/run/vc/vm/old/serial.log\",\"mode\":\"File\",\"iommu\":false},"
      "\"console\":{\"file\":null,\"mode\":\"Tty\",\"iommu\":false},"
      "\"vsock\":{\"cid\":3,\"socket\":\"/run/vc/vm/old/clh.sock\",\"iommu\":false,\"id\":\"_vsock5\"},"
      "\"iommu\":false,\"pvpanic\":false,\"watchdog\":false}";

static void
write_config (const char *dir, const char *text)
{
  cleanup_free char *p = ate_path_join (dir, "config.json");
  struct ate_error *err = NULL;
  assert_int_equal (ate_write_file (p, text, strlen (text), 0644, &err), 0);
}

static void
test_config_rewrite (void **state)
{
  (void) state;
  struct ch_disk_repoint rp[] = { { "actor-rootfs.ext4", "/new/actor/actor-rootfs.ext4" },
                                  { "container-1.ext4", "/new/actor/container-1.ext4" } };
  struct ch_config_rewrite rw = { .vsock_socket = "/run/vc/vm/new/clh.sock",
                                  .serial_file = "/run/vc/vm/new/serial.log",
                                  .disks = rp,
                                  .n_disks = 2 };
  cleanup_free char *cfgpath = ate_path_join (tmpdir, "config.json");
  cleanup_json struct json_object *got = NULL, *want = NULL;
  struct ate_error *err = NULL;
  struct stat st;

  write_config (tmpdir, snapshot_config);
  assert_int_equal (ch_snapshot_config_rewrite (tmpdir, &rw, &err), 0);
  assert_int_equal (stat (cfgpath, &st), 0);
  assert_int_equal (st.st_mode & 0777, 0600);

  /* Expected = the input with exactly the four fields changed. */
  assert_int_equal (ate_json_parse_file (cfgpath, 1 << 20, &got, &err), 0);
  assert_int_equal (ate_json_parse (snapshot_config, strlen (snapshot_config), 64, &want, &err), 0);
  struct json_object *o, *d;
  json_object_object_get_ex (want, "vsock", &o);
  json_object_object_add (o, "socket", json_object_new_string ("/run/vc/vm/new/clh.sock"));
  json_object_object_get_ex (want, "serial", &o);
  json_object_object_add (o, "file", json_object_new_string ("/run/vc/vm/new/serial.log"));
  json_object_object_get_ex (want, "disks", &o);
  d = json_object_array_get_idx (o, 1);
  json_object_object_add (d, "path", json_object_new_string ("/new/actor/actor-rootfs.ext4"));
  d = json_object_array_get_idx (o, 2);
  json_object_object_add (d, "path", json_object_new_string ("/new/actor/container-1.ext4"));
  assert_true (json_object_equal (got, want));

  /* 64-bit integers survive byte for byte in the file. */
  cleanup_free char *text = NULL;
  size_t len;
  assert_int_equal (ate_read_file (cfgpath, 1 << 20, &text, &len, &err), 0);
  assert_non_null (strstr (text, "\"size\":9223372036854775807"));
  assert_non_null (strstr (text, "\"hotplug_size\":18446744073709551615"));
  assert_non_null (strstr (text, "\"size\":-9223372036854775807"));
  assert_null (strstr (text, "/old/"));
  assert_null (strstr (text, "e+"));

  /* A serial that is not a file is left alone. */
  write_config (tmpdir, "{\"serial\":{\"mode\":\"Tty\",\"file\":null},"
                        "\"disks\":[{\"path\":\"/a/actor-rootfs.ext4\"}]}");
  rw.n_disks = 1;
  assert_int_equal (ch_snapshot_config_rewrite (tmpdir, &rw, &err), 0);
  free (text);
  text = NULL;
  assert_int_equal (ate_read_file (cfgpath, 1 << 20, &text, &len, &err), 0);
  assert_string_equal (text, "{\"serial\":{\"mode\":\"Tty\",\"file\":null},"
                             "\"disks\":[{\"path\":\"/new/actor/actor-rootfs.ext4\"}]}");
}

static void
test_config_rewrite_errors (void **state)
{
  (void) state;
  struct ch_disk_repoint rp = { "actor-rootfs.ext4", "/new/actor-rootfs.ext4" };
  struct ch_config_rewrite rw = { .disks = &rp, .n_disks = 1 };
  cleanup_free char *cfgpath = ate_path_join (tmpdir, "config.json");
  cleanup_free char *text = NULL;
  struct ate_error *err = NULL;
  size_t len;
  const char *nodisk = "{\"disks\":[{\"path\":\"/img/rootfs.img\"}]}";

  write_config (tmpdir, nodisk);
  assert_int_equal (ch_snapshot_config_rewrite (tmpdir, &rw, &err), -1);
  assert_non_null (strstr (err->msg, "actor-rootfs.ext4"));
  ate_error_release (&err);
  /* Bad input loses nothing. */
  assert_int_equal (ate_read_file (cfgpath, 1 << 20, &text, &len, &err), 0);
  assert_string_equal (text, nodisk);

  write_config (tmpdir, "{\"disks\":[");
  assert_int_equal (ch_snapshot_config_rewrite (tmpdir, &rw, &err), -1);
  ate_error_release (&err);
  write_config (tmpdir, "[1,2]");
  assert_int_equal (ch_snapshot_config_rewrite (tmpdir, &rw, &err), -1);
  ate_error_release (&err);
  unlink (cfgpath);
  assert_int_equal (ch_snapshot_config_rewrite (tmpdir, &rw, &err), -1);
  assert_int_equal (err->status, ENOENT);
  ate_error_release (&err);
}

static void
test_net_devices (void **state)
{
  (void) state;
  struct ch_net_device *devs = NULL;
  size_t n = 99;
  struct ate_error *err = NULL;

  write_config (tmpdir, snapshot_config);
  assert_int_equal (ch_snapshot_net_devices (tmpdir, &devs, &n, &err), 0);
  assert_int_equal (n, 2);
  assert_string_equal (devs[0].id, "_net3");
  assert_string_equal (devs[0].mac, "02:a8:1e:00:00:02");
  assert_int_equal (devs[0].queue_pairs, 2);
  assert_string_equal (devs[1].id, "_net4");
  assert_null (devs[1].mac);
  assert_int_equal (devs[1].queue_pairs, 1);
  ch_net_devices_free (devs, n);

  write_config (tmpdir, "{\"cpus\":{}}");
  assert_int_equal (ch_snapshot_net_devices (tmpdir, &devs, &n, &err), 0);
  assert_int_equal (n, 0);
  assert_null (devs);
  write_config (tmpdir, "{\"net\":null}");
  assert_int_equal (ch_snapshot_net_devices (tmpdir, &devs, &n, &err), 0);
  assert_int_equal (n, 0);

  const char *bad[] = { "{\"net\":{}}", "{\"net\":[{\"mac\":\"x\"}]}", "{\"net\":[{\"id\":\"\"}]}",
                        "{\"net\":[{\"id\":\"a\",\"num_queues\":\"2\"}]}",
                        "{\"net\":[{\"id\":\"a\",\"num_queues\":-2}]}", "{\"net\":[3]}" };
  for (size_t i = 0; i < ATE_N_ELEMENTS (bad); i++)
    {
      write_config (tmpdir, bad[i]);
      assert_int_equal (ch_snapshot_net_devices (tmpdir, &devs, &n, &err), -1);
      ate_error_release (&err);
    }
}

static void
test_snapshot_format (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  static const char *const foreign[][2] = {
    /* the overlay-rootfs format: a virtio-fs device, only the image disk */
    { "{\"cpus\":{},\"memory\":{},\"payload\":{},\"disks\":[{\"path\":\"/x/img\"}],"
      "\"fs\":[{\"tag\":\"kataShared\",\"socket\":\"/run/vc/vm/a1/virtiofsd.sock\"}]}",
      "virtio-fs format" },
    { "{\"memory\":{},\"payload\":{}}", "no \"cpus\"" },
    { "[1,2]", "not a JSON object" },
    { "{\"cpus\":", "not valid JSON" },
  };

  write_config (tmpdir, snapshot_config);
  assert_int_equal (ch_snapshot_check_format_file (tmpdir, &err), 0);
  write_config (tmpdir, "{\"cpus\":{},\"memory\":{},\"payload\":{},\"fs\":null}");
  assert_int_equal (ch_snapshot_check_format_file (tmpdir, &err), 0);
  for (size_t i = 0; i < ATE_N_ELEMENTS (foreign); i++)
    {
      write_config (tmpdir, foreign[i][0]);
      assert_int_equal (ch_snapshot_check_format_file (tmpdir, &err), -1);
      assert_int_equal (ate_error_code (err), ATE_CODE_FAILED_PRECONDITION);
      if (strstr (err->msg, foreign[i][1]) == NULL)
        fail_msg ("\"%s\" lacks \"%s\"", err->msg, foreign[i][1]);
      /* Never a host path: the caller may show it to HTTP clients. */
      assert_null (strstr (err->msg, tmpdir));
      assert_null (strstr (err->msg, "/run/vc"));
      ate_error_release (&err);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_format_head),
    cmocka_unit_test_setup_teardown (test_snapshot_format, setup_tmp, teardown_tmp),
    cmocka_unit_test (test_parse_204),
    cmocka_unit_test (test_parse_body),
    cmocka_unit_test (test_parse_incomplete),
    cmocka_unit_test (test_parse_garbage),
    cmocka_unit_test (test_parse_oversize_head),
    cmocka_unit_test (test_error_chain),
    cmocka_unit_test_setup_teardown (test_request_fds_and_error, setup_tmp, teardown_tmp),
    cmocka_unit_test_setup_teardown (test_request_ping_and_timeout, setup_tmp, teardown_tmp),
    cmocka_unit_test (test_vm_config_appendix_a),
    cmocka_unit_test (test_restore_body_appendix_a),
    cmocka_unit_test (test_version_parse),
    cmocka_unit_test (test_restore_mode_choose),
    cmocka_unit_test_setup_teardown (test_config_rewrite, setup_tmp, teardown_tmp),
    cmocka_unit_test_setup_teardown (test_config_rewrite_errors, setup_tmp, teardown_tmp),
    cmocka_unit_test_setup_teardown (test_net_devices, setup_tmp, teardown_tmp),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
