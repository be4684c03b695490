/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frames and connections through what runtime/net builds:
 *
 *   client ns --veth-- pod ns (eth0, ateom0, nft) --veth-- interior ns
 *   (eth0 <-tc-> tap0_kata) == fd == forwarder thread == gtap0 in a
 *   "guest" ns (169.254.17.2, MAC 02:a8:1e:00:00:02)
 *
 * The forwarder copies frames (with their virtio-net headers) between the
 * actor tap and the guest's tap, the way cloud-hypervisor's virtio-net
 * would.  Needs root.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "net/tap.h"
#include "net_fixture.h"
#include "util/error.h"
#include "util/time.h"
#include "util/util.h"

#define VNET_HDR_LEN ((ssize_t) sizeof (struct virtio_net_hdr))
#define ETHERTYPE_TEST 0x88b5 /* IEEE local experimental */
#define WAIT_MS 5000

static const uint8_t host_mac[6] = { 0x02, 0xa8, 0x1e, 0x00, 0x00, 0x01 };
static const uint8_t guest_mac[6] = { 0x02, 0xa8, 0x1e, 0x00, 0x00, 0x02 };

struct forwarder
{
  int a, b, stop;
  pthread_t th;
  bool running;
};

struct world
{
  struct nt_pod pod;
  int guest_fd; /* guest netns */
  int gtap;     /* guest tap queue */
  int *fds;     /* actor tap queues */
  size_t nfds;
  struct forwarder fwd;
};

/* ---- forwarder ---------------------------------------------------------- */

static void
pump (int from, int to)
{
  char buf[65536 + 64];
  for (;;)
    {
      ssize_t n = read (from, buf, sizeof (buf));
      if (n <= 0)
        return; /* EAGAIN: drained */
      /* A full guest queue drops the frame, as a NIC would. */
      if (write (to, buf, (size_t) n) < 0 && errno != EAGAIN)
        return;
    }
}

static void *
forwarder_main (void *p)
{
  struct forwarder *f = p;
  struct pollfd pf[3] = { { f->a, POLLIN, 0 }, { f->b, POLLIN, 0 },
                          { f->stop, POLLIN, 0 } };
  for (;;)
    {
      if (poll (pf, 3, -1) < 0 && errno != EINTR)
        break;
      if (pf[2].revents)
        break;
      if (pf[0].revents & POLLIN)
        pump (f->a, f->b);
      if (pf[1].revents & POLLIN)
        pump (f->b, f->a);
      if ((pf[0].revents | pf[1].revents) & (POLLERR | POLLHUP | POLLNVAL))
        break;
    }
  return NULL;
}

static void
forwarder_start (struct forwarder *f, int a, int b)
{
  f->a = a;
  f->b = b;
  f->stop = eventfd (0, EFD_CLOEXEC);
  assert_true (f->stop >= 0);
  assert_int_equal (pthread_create (&f->th, NULL, forwarder_main, f), 0);
  f->running = true;
}

static void
forwarder_stop (struct forwarder *f)
{
  uint64_t one = 1;
  if (!f->running)
    return;
  assert_int_equal (write (f->stop, &one, sizeof (one)), sizeof (one));
  pthread_join (f->th, NULL);
  close_and_reset (&f->stop);
  f->running = false;
}

/* ---- world ------------------------------------------------------------ */

static int
job_guest_tap (void *arg, struct ate_error **err)
{
  return net_tap_open_queues ("gtap0", 1, arg, err);
}

static void
guest_new_mtu (struct world *w, const char *mtu)
{
  w->guest_fd = nt_ns_new ();
  nt_in_ns (w->guest_fd, job_guest_tap, &w->gtap);
  assert_int_equal (nt_cmd (w->guest_fd, NULL, "ip", "link", "set", "lo", "up", NULL), 0);
  assert_int_equal (nt_cmd (w->guest_fd, NULL, "ip", "link", "set", "gtap0",
                            "address", NET_GUEST_MAC, "mtu", mtu, "up", NULL), 0);
  assert_int_equal (nt_cmd (w->guest_fd, NULL, "ip", "addr", "add",
                            NET_ACTOR_IP "/30", "dev", "gtap0", NULL), 0);
  assert_int_equal (nt_cmd (w->guest_fd, NULL, "ip", "route", "add", "default",
                            "via", NET_HOST_VETH_IP, NULL), 0);
}

static void
guest_new (struct world *w)
{
  guest_new_mtu (w, "1400");
}

static void
actor_up (struct world *w)
{
  struct ate_error *err = NULL;

  if (net_actor_setup (w->pod.ctx, NULL, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  if (net_tap_create (w->pod.ctx, "tap0_kata", 1, 0, &w->fds, &w->nfds, &err) < 0)
    fail_msg ("tap: %s", err->msg);
}

static int
world_setup (void **state)
{
  struct world *w = xmalloc0 (sizeof (*w));
  const uint16_t ports[] = { 80, 8080 };

  w->pod.pod_fd = w->pod.client_fd = -1;
  w->guest_fd = w->gtap = w->fwd.stop = -1;
  *state = w;
  nt_pod_new (&w->pod, &(struct nt_pod_opts){ .with_client = true,
                                              .ports = ports, .n_ports = 2 });
  actor_up (w);
  return 0;
}

static int
world_teardown (void **state)
{
  struct world *w = *state;
  bool ok;

  forwarder_stop (&w->fwd);
  net_tap_fds_free (w->fds, w->nfds);
  close_and_reset (&w->gtap);
  close_and_reset (&w->guest_fd);
  ok = nt_pod_free (&w->pod);
  free (w);
  return ok ? 0 : -1;
}

/* ---- helpers ---------------------------------------------------------- */

static bool
wait_readable (int fd, ate_deadline_t deadline)
{
  struct pollfd pf = { fd, POLLIN, 0 };
  int r;
  do
    r = poll (&pf, 1, ate_deadline_poll_ms (deadline));
  while (r < 0 && errno == EINTR);
  return r > 0;
}

static size_t
build_frame (uint8_t *buf, const uint8_t dst[6], const uint8_t src[6],
             const char *payload)
{
  size_t len = 14 + strlen (payload);
  memset (buf, 0, 64);
  memcpy (buf, dst, 6);
  memcpy (buf + 6, src, 6);
  buf[12] = ETHERTYPE_TEST >> 8;
  buf[13] = ETHERTYPE_TEST & 0xff;
  memcpy (buf + 14, payload, strlen (payload));
  return len < 60 ? 60 : len; /* minimum Ethernet payload */
}

static bool
frame_matches (const uint8_t *f, ssize_t n, const uint8_t dst[6],
               const char *payload)
{
  return n >= 14 + (ssize_t) strlen (payload) && memcmp (f, dst, 6) == 0
         && f[12] == (ETHERTYPE_TEST >> 8) && f[13] == (ETHERTYPE_TEST & 0xff)
         && memcmp (f + 14, payload, strlen (payload)) == 0;
}

static int
packet_socket_on (int ns_fd, const char *dev)
{
  struct nt_link l;
  struct sockaddr_ll sll = { .sll_family = AF_PACKET,
                             .sll_protocol = htons (ETH_P_ALL) };
  int s = nt_socket (ns_fd, AF_PACKET, SOCK_RAW);

  assert_true (nt_link_get (ns_fd, dev, &l));
  sll.sll_ifindex = l.ifindex;
  assert_int_equal (bind (s, (struct sockaddr *) &sll, sizeof (sll)), 0);
  return s;
}

/* ---- L2 ----------------------------------------------------------------- */

/* guest -> tap fd -> (tc) -> interior eth0 -> veth -> ateom0, and back. */
static void
test_frames_both_ways (void **state)
{
  struct world *w = *state;
  cleanup_close int ps = packet_socket_on (w->pod.pod_fd, NET_HOST_VETH);
  cleanup_free char *up = xasprintf ("ate-up-%d", (int) getpid ());
  cleanup_free char *down = xasprintf ("ate-down-%d", (int) getpid ());
  uint8_t out[VNET_HDR_LEN + 64], in[65536];
  ate_deadline_t deadline;
  struct nt_link ateom0;
  bool seen = false;
  size_t len;

  /* Up: a virtio-net header (no offloads) and the frame, as the guest's
   * virtio-net would hand it to the VMM. */
  memset (out, 0, VNET_HDR_LEN);
  len = build_frame (out + VNET_HDR_LEN, host_mac, guest_mac, up);
  assert_int_equal (write (w->fds[0], out, VNET_HDR_LEN + len),
                    VNET_HDR_LEN + (ssize_t) len);
  deadline = ate_deadline_in_ms (WAIT_MS);
  while (!seen && wait_readable (ps, deadline))
    {
      ssize_t n = recv (ps, in, sizeof (in), 0);
      seen = frame_matches (in, n, host_mac, up);
    }
  assert_true (seen);

  /* Down: a frame sent on ateom0 comes out of the tap fd, with a header. */
  assert_true (nt_link_get (w->pod.pod_fd, NET_HOST_VETH, &ateom0));
  len = build_frame (out, guest_mac, host_mac, down);
  struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = ateom0.ifindex,
                            .sll_halen = 6 };
  memcpy (to.sll_addr, guest_mac, 6);
  assert_int_equal (sendto (ps, out, len, 0, (struct sockaddr *) &to, sizeof (to)),
                    (ssize_t) len);
  seen = false;
  deadline = ate_deadline_in_ms (WAIT_MS);
  while (!seen && wait_readable (w->fds[0], deadline))
    {
      ssize_t n;
      while (!seen && (n = read (w->fds[0], in, sizeof (in))) > 0)
        seen = n > VNET_HDR_LEN
               && frame_matches (in + VNET_HDR_LEN, n - VNET_HDR_LEN, guest_mac, down);
    }
  assert_true (seen);
}

/* ---- TCP ---------------------------------------------------------------- */

static int
tcp_listen (int ns_fd, const char *ip, uint16_t port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons (port) };
  int one = 1, s = nt_socket (ns_fd, AF_INET, SOCK_STREAM);

  assert_int_equal (inet_pton (AF_INET, ip, &a.sin_addr), 1);
  assert_int_equal (setsockopt (s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one)), 0);
  assert_int_equal (bind (s, (struct sockaddr *) &a, sizeof (a)), 0);
  assert_int_equal (listen (s, 8), 0);
  return s;
}

static void
set_timeouts (int s)
{
  struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
  assert_int_equal (setsockopt (s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof (tv)), 0);
  assert_int_equal (setsockopt (s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof (tv)), 0);
}

/* connect from ns_fd; returns the socket or -errno. */
static int
tcp_connect (int ns_fd, const char *ip, uint16_t port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons (port) };
  int s = nt_socket (ns_fd, AF_INET, SOCK_STREAM), e;

  assert_int_equal (inet_pton (AF_INET, ip, &a.sin_addr), 1);
  set_timeouts (s);
  if (connect (s, (struct sockaddr *) &a, sizeof (a)) == 0)
    return s;
  e = errno;
  close (s);
  return -e;
}

/* Accept on listener; *peer gets the source address the server sees. */
static int
tcp_accept (int listener, char peer[INET_ADDRSTRLEN])
{
  struct sockaddr_in a;
  socklen_t alen = sizeof (a);
  int s;

  assert_true (wait_readable (listener, ate_deadline_in_ms (WAIT_MS)));
  s = accept4 (listener, (struct sockaddr *) &a, &alen, SOCK_CLOEXEC);
  assert_true (s >= 0);
  set_timeouts (s);
  inet_ntop (AF_INET, &a.sin_addr, peer, INET_ADDRSTRLEN);
  return s;
}

static void
ping_pong (int client, int server)
{
  char buf[8] = { 0 };
  assert_int_equal (write (client, "ping", 4), 4);
  assert_int_equal (read (server, buf, sizeof (buf)), 4);
  assert_memory_equal (buf, "ping", 4);
  assert_int_equal (write (server, "pong", 4), 4);
  assert_int_equal (read (client, buf, sizeof (buf)), 4);
  assert_memory_equal (buf, "pong", 4);
}

/* Push `total` bytes from a to b (both non-blocking), byte-exact. */
static void
bulk (int a, int b, size_t total)
{
  cleanup_free uint8_t *src = xmalloc (total);
  cleanup_free uint8_t *dst = xmalloc (total);
  size_t sent = 0, got = 0;
  ate_deadline_t deadline = ate_deadline_in_ms (WAIT_MS * 2);

  for (size_t i = 0; i < total; i++)
    src[i] = (uint8_t) (i * 131 + (i >> 8));
  fcntl (a, F_SETFL, O_NONBLOCK);
  fcntl (b, F_SETFL, O_NONBLOCK);
  while (got < total)
    {
      struct pollfd pf[2] = { { a, sent < total ? POLLOUT : 0, 0 }, { b, POLLIN, 0 } };
      int r = poll (pf, 2, ate_deadline_poll_ms (deadline));
      assert_true (r > 0);
      if (pf[0].revents & POLLOUT)
        {
          ssize_t n = write (a, src + sent, total - sent);
          if (n > 0)
            sent += (size_t) n;
        }
      if (pf[1].revents & POLLIN)
        {
          ssize_t n = read (b, dst + got, total - got);
          assert_true (n > 0 || errno == EAGAIN);
          if (n > 0)
            got += (size_t) n;
        }
    }
  assert_memory_equal (src, dst, total);
}

/* pod -> 169.254.17.2 over ateom0, the veth, tc and the tap. */
static void
test_tcp_pod_to_guest (void **state)
{
  struct world *w = *state;
  cleanup_close int l80 = -1, c = -1, s = -1;
  char peer[INET_ADDRSTRLEN];

  guest_new (w);
  forwarder_start (&w->fwd, w->fds[0], w->gtap);
  l80 = tcp_listen (w->guest_fd, "0.0.0.0", 80);
  c = tcp_connect (w->pod.pod_fd, NET_ACTOR_IP, 80);
  assert_true (c >= 0);
  s = tcp_accept (l80, peer);
  assert_string_equal (peer, NET_HOST_VETH_IP);
  ping_pong (c, s);
}

/* client -> pod-ip:port is DNATed to the guest for every configured port
 * (and only those); the guest sees the client's address.  The guest's
 * own connections leave masqueraded as the pod IP. */
static void
test_dnat_and_masquerade (void **state)
{
  struct world *w = *state;
  cleanup_close int l80 = -1, l8080 = -1, lclient = -1;
  char peer[INET_ADDRSTRLEN];
  const uint16_t ports[] = { 80, 8080 };

  guest_new (w);
  forwarder_start (&w->fwd, w->fds[0], w->gtap);
  l80 = tcp_listen (w->guest_fd, "0.0.0.0", 80);
  l8080 = tcp_listen (w->guest_fd, "0.0.0.0", 8080);
  for (size_t i = 0; i < ATE_N_ELEMENTS (ports); i++)
    {
      cleanup_close int c = tcp_connect (w->pod.client_fd, w->pod.pod_ip, ports[i]);
      cleanup_close int s = -1;
      assert_true (c >= 0);
      s = tcp_accept (ports[i] == 80 ? l80 : l8080, peer);
      assert_string_equal (peer, w->pod.client_ip);
      ping_pong (c, s);
      if (i == 0)
        bulk (c, s, 512 * 1024); /* many full-MTU frames through the tap */
    }
  /* Not configured: the pod itself answers (nothing listens there). */
  assert_int_equal (tcp_connect (w->pod.client_fd, w->pod.pod_ip, 81), -ECONNREFUSED);

  lclient = tcp_listen (w->pod.client_fd, w->pod.client_ip, 9000);
  {
    cleanup_close int c = tcp_connect (w->guest_fd, w->pod.client_ip, 9000);
    cleanup_close int s = -1;
    assert_true (c >= 0);
    s = tcp_accept (lclient, peer);
    assert_string_equal (peer, w->pod.pod_ip);
    ping_pong (c, s);
  }
}

/* The next activation (cleanup, setup, new tap) carries traffic to a guest
 * that kept its state: the gateway MAC is the same, so its ARP entry for
 * 169.254.17.1 stays valid. */
static void
test_reactivation (void **state)
{
  struct world *w = *state;
  cleanup_close int l80 = -1;
  char peer[INET_ADDRSTRLEN];
  struct ate_error *err = NULL;

  guest_new (w);
  forwarder_start (&w->fwd, w->fds[0], w->gtap);
  l80 = tcp_listen (w->guest_fd, "0.0.0.0", 80);
  {
    cleanup_close int c = tcp_connect (w->pod.client_fd, w->pod.pod_ip, 80);
    cleanup_close int s = tcp_accept (l80, peer);
    ping_pong (c, s);
  }

  forwarder_stop (&w->fwd);
  net_tap_fds_free (w->fds, w->nfds);
  w->fds = NULL;
  w->nfds = 0;
  if (net_actor_cleanup (w->pod.ctx, &err) < 0)
    fail_msg ("cleanup: %s", err->msg);
  actor_up (w);
  forwarder_start (&w->fwd, w->fds[0], w->gtap);
  {
    cleanup_close int c = tcp_connect (w->guest_fd, w->pod.client_ip, 80);
    /* Nothing listens on the client: a refusal proves the round trip. */
    assert_int_equal (c, -ECONNREFUSED);
  }
  {
    cleanup_close int c = tcp_connect (w->pod.client_fd, w->pod.pod_ip, 80);
    cleanup_close int s = tcp_accept (l80, peer);
    assert_string_equal (peer, w->pod.client_ip);
    ping_pong (c, s);
  }
}

/* A snapshot taken on a 1500-MTU pod (any reference-made golden snapshot)
 * restored on a 1460-MTU pod (GKE): the guest keeps sending 1500-byte
 * frames.  With the veths and the tap at the guest's MTU they reach the pod
 * namespace, which routes them to the smaller pod interface (TCP clamped at
 * the SYN); at the pod's MTU they were dropped between the tap and the veth
 * without a trace. */
static int
world_setup_pod_1460 (void **state)
{
  struct world *w = xmalloc0 (sizeof (*w));
  const uint16_t ports[] = { 80 };
  struct ate_error *err = NULL;
  struct net_actor_info info;

  w->pod.pod_fd = w->pod.client_fd = -1;
  w->guest_fd = w->gtap = w->fwd.stop = -1;
  *state = w;
  nt_pod_new (&w->pod, &(struct nt_pod_opts){ .with_client = true, .mtu = 1460,
                                              .ports = ports, .n_ports = 1 });
  /* The far side of the pod network has the usual 1500: its MSS is 1460. */
  assert_int_equal (nt_cmd (w->pod.client_fd, NULL, "ip", "link", "set", "cl0", "mtu", "1500",
                            NULL), 0);
  if (net_actor_setup_mtu (w->pod.ctx, 1500, &info, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  assert_int_equal (info.pod_mtu, 1460);
  assert_int_equal (info.link_mtu, 1500);
  if (net_tap_create (w->pod.ctx, "tap0_kata", 1, 0, &w->fds, &w->nfds, &err) < 0)
    fail_msg ("tap: %s", err->msg);
  return 0;
}

static void
test_restored_guest_mtu_above_the_pod_mtu (void **state)
{
  struct world *w = *state;
  cleanup_close int l80 = -1, lclient = -1;
  cleanup_close int interior = nt_pod_interior_fd (&w->pod);
  char peer[INET_ADDRSTRLEN];
  struct nt_link l;

  assert_true (nt_link_get (w->pod.pod_fd, NET_HOST_VETH, &l));
  assert_int_equal (l.mtu, 1500);
  assert_true (nt_link_get (interior, "tap0_kata", &l));
  assert_int_equal (l.mtu, 1500);
  assert_true (nt_link_get (w->pod.pod_fd, "eth0", &l));
  assert_int_equal (l.mtu, 1460);

  guest_new_mtu (w, "1500");
  forwarder_start (&w->fwd, w->fds[0], w->gtap);
  /* guest -> client: full-size segments leave the guest. */
  lclient = tcp_listen (w->pod.client_fd, w->pod.client_ip, 9000);
  {
    cleanup_close int c = tcp_connect (w->guest_fd, w->pod.client_ip, 9000);
    cleanup_close int s = -1;
    assert_true (c >= 0);
    s = tcp_accept (lclient, peer);
    ping_pong (c, s);
    bulk (c, s, 256 * 1024);
    bulk (s, c, 256 * 1024);
  }
  /* client -> pod:80 -> guest. */
  l80 = tcp_listen (w->guest_fd, "0.0.0.0", 80);
  {
    cleanup_close int c = tcp_connect (w->pod.client_fd, w->pod.pod_ip, 80);
    cleanup_close int s = tcp_accept (l80, peer);
    ping_pong (c, s);
    bulk (s, c, 256 * 1024);
    bulk (c, s, 256 * 1024);
  }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_frames_both_ways, world_setup, world_teardown),
    cmocka_unit_test_setup_teardown (test_tcp_pod_to_guest, world_setup, world_teardown),
    cmocka_unit_test_setup_teardown (test_dnat_and_masquerade, world_setup, world_teardown),
    cmocka_unit_test_setup_teardown (test_reactivation, world_setup, world_teardown),
    cmocka_unit_test_setup_teardown (test_restored_guest_mtu_above_the_pod_mtu,
                                     world_setup_pod_1460, world_teardown),
  };

  nt_init_or_skip ("test_net_datapath");
  return cmocka_run_group_tests (tests, NULL, NULL);
}
