/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest's network: its own namespace with a tap "eth0", and a thread
 * that moves frames between that tap and the VM's virtio-net queues (the
 * host tap fds ateom handed over), so traffic really crosses the server's
 * veth, tc mirred and tap.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <stdio.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sim.h"
#include "util/util.h"

#define VNET_HDR_LEN 12 /* virtio_net_hdr_v1, what CH configures */
#define FRAME_MAX 65562

struct netns_job
{
  int netns_fd;
  int tap_fd;
  char *err;
  const char *mac;
};

static int
link_up (const char *name)
{
  struct ifreq ifr = { 0 };
  cleanup_close int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return -1;
  snprintf (ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
    return -1;
  ifr.ifr_flags |= IFF_UP;
  return ioctl (s, SIOCSIFFLAGS, &ifr);
}

static int
set_mac (const char *name, const char *mac)
{
  struct ifreq ifr = { 0 };
  unsigned int b[6];
  cleanup_close int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  if (s < 0)
    return -1;
  if (sscanf (mac, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
    {
      errno = EINVAL;
      return -1;
    }
  snprintf (ifr.ifr_name, IFNAMSIZ, "%s", name);
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  for (int k = 0; k < 6; k++)
    ifr.ifr_hwaddr.sa_data[k] = (char) b[k];
  return ioctl (s, SIOCSIFHWADDR, &ifr);
}

/* Runs on its own thread: unshare affects only this thread, which exits
 * afterwards; the namespace lives on through the fd (and the tap in it). */
static void *
netns_thread (void *arg)
{
  struct netns_job *j = arg;
  struct ifreq ifr = { 0 };
  int fd;

  if (unshare (CLONE_NEWNET) < 0)
    {
      j->err = xasprintf ("unshare(CLONE_NEWNET): %s", strerror (errno));
      return NULL;
    }
  j->netns_fd = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  fd = open ("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (j->netns_fd < 0 || fd < 0)
    {
      j->err = xasprintf ("guest netns/tun: %s", strerror (errno));
      if (fd >= 0)
        close (fd);
      return NULL;
    }
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf (ifr.ifr_name, IFNAMSIZ, "eth0");
  if (ioctl (fd, TUNSETIFF, &ifr) < 0)
    {
      j->err = xasprintf ("create guest tap eth0: %s", strerror (errno));
      close (fd);
      return NULL;
    }
  j->tap_fd = fd;
  /* The virtio-net device's MAC is what the guest sees on its eth0: the
   * agent finds the interface by it (UpdateInterface). */
  if (j->mac && set_mac ("eth0", j->mac) < 0)
    {
      j->err = xasprintf ("set guest eth0 MAC %s: %s", j->mac, strerror (errno));
      return NULL;
    }
  if (link_up ("lo") < 0)
    j->err = xasprintf ("bring up lo in the guest netns: %s", strerror (errno));
  return NULL;
}

int
sim_guest_netns_create (const char *mac, int *netns_fd, int *tap_fd, char **errmsg)
{
  struct netns_job j = { .netns_fd = -1, .tap_fd = -1, .mac = mac };
  pthread_t th;

  *netns_fd = *tap_fd = -1;
  if (pthread_create (&th, NULL, netns_thread, &j) != 0)
    {
      *errmsg = xasprintf ("netns thread: %s", strerror (errno));
      return -1;
    }
  pthread_join (th, NULL);
  if (j.err)
    {
      close_and_reset (&j.netns_fd);
      close_and_reset (&j.tap_fd);
      *errmsg = j.err;
      return -1;
    }
  *netns_fd = j.netns_fd;
  *tap_fd = j.tap_fd;
  return 0;
}

int
sim_tap_adopt (int fd, bool *vnet, char **errmsg)
{
  struct ifreq ifr = { 0 };
  int hdr = VNET_HDR_LEN, fl;

  if (fd <= 2)
    {
      *errmsg = xasprintf ("fd %d is not a valid tap fd (must be > 2)", fd);
      return -1;
    }
  if (ioctl (fd, TUNGETIFF, &ifr) < 0)
    {
      *errmsg = xasprintf ("fd %d is not a tap device (TUNGETIFF: %s)", fd, strerror (errno));
      return -1;
    }
  if (!(ifr.ifr_flags & IFF_TAP))
    {
      *errmsg = xasprintf ("fd %d (%s) is a tun, not a tap", fd, ifr.ifr_name);
      return -1;
    }
  *vnet = (ifr.ifr_flags & IFF_VNET_HDR) != 0;
  if (*vnet && (ioctl (fd, TUNSETVNETHDRSZ, &hdr) < 0 || ioctl (fd, TUNSETOFFLOAD, 0) < 0))
    {
      *errmsg = xasprintf ("configure tap %s: %s", ifr.ifr_name, strerror (errno));
      return -1;
    }
  fl = fcntl (fd, F_GETFL);
  if (fl < 0 || fcntl (fd, F_SETFL, fl | O_NONBLOCK) < 0)
    {
      *errmsg = xasprintf ("tap %s: %s", ifr.ifr_name, strerror (errno));
      return -1;
    }
  return 0;
}

/* ------------------------------------------------------------ forwarder */

struct sim_netfwd
{
  pthread_t th;
  int evfd;
  atomic_bool running;
  atomic_bool stop;
  int guest_tap;
  int *host;     /* every queue fd of every device */
  bool *vnet;
  size_t nhost;
};

static void
forward_host_to_guest (struct sim_netfwd *f, size_t i, unsigned char *buf)
{
  for (int burst = 0; burst < 64; burst++)
    {
      ssize_t n = read (f->host[i], buf, FRAME_MAX);
      size_t skip = f->vnet[i] ? VNET_HDR_LEN : 0;
      if (n <= (ssize_t) skip)
        return;
      /* A guest whose eth0 is still down drops the frame, as a real one
       * would before its driver is up. */
      if (write (f->guest_tap, buf + skip, (size_t) n - skip) < 0 && errno != EIO
          && errno != EAGAIN)
        sim_log ("net: write to guest eth0: %s", strerror (errno));
    }
}

static void
forward_guest_to_host (struct sim_netfwd *f, unsigned char *buf)
{
  for (int burst = 0; burst < 64; burst++)
    {
      ssize_t n = read (f->guest_tap, buf + VNET_HDR_LEN, FRAME_MAX - VNET_HDR_LEN);
      if (n <= 0 || f->nhost == 0)
        return;
      /* Transmit on queue 0 of the first device (the guest has one NIC). */
      memset (buf, 0, VNET_HDR_LEN);
      if (f->vnet[0])
        n = write (f->host[0], buf, (size_t) n + VNET_HDR_LEN);
      else
        n = write (f->host[0], buf + VNET_HDR_LEN, (size_t) n);
      if (n < 0 && errno != EAGAIN && errno != EIO)
        sim_log ("net: write to host tap: %s", strerror (errno));
    }
}

static void *
netfwd_main (void *arg)
{
  struct sim_netfwd *f = arg;
  unsigned char *buf = xmalloc (FRAME_MAX);
  struct pollfd *p = xcalloc (f->nhost + 2, sizeof (*p));

  while (!atomic_load (&f->stop))
    {
      size_t n = 0;
      bool run = atomic_load (&f->running);
      uint64_t ev;

      p[n++] = (struct pollfd){ .fd = f->evfd, .events = POLLIN };
      /* A paused VM does not process its queues. */
      if (run)
        {
          p[n++] = (struct pollfd){ .fd = f->guest_tap, .events = POLLIN };
          for (size_t i = 0; i < f->nhost; i++)
            p[n++] = (struct pollfd){ .fd = f->host[i], .events = POLLIN };
        }
      if (poll (p, n, -1) < 0)
        continue;
      if (p[0].revents && read (f->evfd, &ev, sizeof (ev)) < 0)
        ev = 0;
      if (!run)
        continue;
      if (p[1].revents & POLLIN)
        forward_guest_to_host (f, buf);
      for (size_t i = 0; i < f->nhost; i++)
        if (p[2 + i].revents & POLLIN)
          forward_host_to_guest (f, i, buf);
    }
  free (p);
  free (buf);
  return NULL;
}

struct sim_netfwd *
sim_netfwd_start (int guest_tap, struct sim_net_dev *devs, size_t n)
{
  struct sim_netfwd *f;
  size_t total = 0;

  if (guest_tap < 0)
    return NULL;
  for (size_t i = 0; i < n; i++)
    total += devs[i].nfds;
  f = xmalloc0 (sizeof (*f));
  f->guest_tap = guest_tap;
  f->host = xcalloc (total + 1, sizeof (int));
  f->vnet = xcalloc (total + 1, sizeof (bool));
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < devs[i].nfds; k++)
      {
        f->host[f->nhost] = devs[i].fds[k];
        f->vnet[f->nhost++] = devs[i].vnet[k];
      }
  f->evfd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (f->evfd < 0 || pthread_create (&f->th, NULL, netfwd_main, f) != 0)
    {
      sim_log ("net: cannot start the forwarder: %s", strerror (errno));
      close_and_reset (&f->evfd);
      free (f->host);
      free (f->vnet);
      free (f);
      return NULL;
    }
  return f;
}

static void
kick (struct sim_netfwd *f)
{
  uint64_t one = 1;
  if (write (f->evfd, &one, sizeof (one)) < 0)
    sim_log ("net: kick: %s", strerror (errno));
}

void
sim_netfwd_set_running (struct sim_netfwd *f, bool running)
{
  if (f == NULL)
    return;
  atomic_store (&f->running, running);
  kick (f);
}

void
sim_netfwd_stop (struct sim_netfwd *f)
{
  if (f == NULL)
    return;
  atomic_store (&f->stop, true);
  kick (f);
  pthread_join (f->th, NULL);
  close (f->evfd);
  free (f->host);
  free (f->vnet);
  free (f);
}
