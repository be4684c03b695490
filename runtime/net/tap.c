/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/error.h"
#include "util/util.h"

bool
net_ifname_is_valid (const char *name)
{
  size_t len;

  if (name == NULL)
    return false;
  len = strlen (name);
  if (len == 0 || len >= IFNAMSIZ || strcmp (name, ".") == 0
      || strcmp (name, "..") == 0)
    return false;
  for (const char *p = name; *p; p++)
    {
      unsigned char c = (unsigned char) *p;
      /* '%' would make the kernel pick a name (tap%d); ':' marks aliases. */
      if (c <= ' ' || c == '/' || c == ':' || c == '%' || c >= 0x7f)
        return false;
    }
  return true;
}

static int
tap_open_one (const char *name, short flags, struct ate_error **err)
{
  cleanup_close int fd = -1;
  struct ifreq ifr;

  fd = open ("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return ate_error_make (err, errno, "open /dev/net/tun");
  memset (&ifr, 0, sizeof (ifr));
  snprintf (ifr.ifr_name, sizeof (ifr.ifr_name), "%s", name);
  ifr.ifr_flags = flags;
  if (ioctl (fd, TUNSETIFF, &ifr) < 0)
    return ate_error_make (err, errno, "TUNSETIFF `%s`", name);
  /* Root owns the device: cloud-hypervisor runs as root and nobody else
   * may attach to it. */
  if (ioctl (fd, TUNSETOWNER, 0UL) < 0)
    return ate_error_make (err, errno, "TUNSETOWNER `%s`", name);
  if (ioctl (fd, TUNSETGROUP, 0UL) < 0)
    return ate_error_make (err, errno, "TUNSETGROUP `%s`", name);
  return steal_fd (&fd);
}

int
net_tap_open_queues (const char *name, unsigned int n, int *fds,
                     struct ate_error **err)
{
  short flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  unsigned int i;

  if (!net_ifname_is_valid (name))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "invalid tap name `%s`", name ? name : "");
  if (n == 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "a tap needs at least one queue");
  if (n > 1)
    flags |= IFF_MULTI_QUEUE;
  for (i = 0; i < n; i++)
    fds[i] = -1;
  for (i = 0; i < n; i++)
    {
      fds[i] = tap_open_one (name, flags, err);
      if (fds[i] < 0)
        {
          ate_error_wrap (err, "while opening queue %u of %u of tap `%s`",
                          i + 1, n, name);
          goto fail;
        }
    }
  if (ioctl (fds[0], TUNSETPERSIST, 1UL) < 0)
    {
      ate_error_make (err, errno, "TUNSETPERSIST `%s`", name);
      goto fail;
    }
  return 0;

fail:
  for (i = 0; i < n; i++)
    close_and_reset (&fds[i]);
  return -1;
}
