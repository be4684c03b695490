/* SPDX-License-Identifier: Apache-2.0 */
/* Tap devices through /dev/net/tun, in the calling thread's namespace. */
#ifndef ATE_NET_TAP_H
#define ATE_NET_TAP_H

#include <stdbool.h>

struct ate_error;

/* An interface name the kernel accepts as is: 1..15 bytes, no '/', ':',
 * '%' or white space, not "." or "..". */
bool net_ifname_is_valid (const char *name);

/* Create (or attach to) tap `name` with one queue per fd: IFF_TAP |
 * IFF_NO_PI | IFF_VNET_HDR, plus IFF_MULTI_QUEUE when n > 1; owner and
 * group 0; every fd O_CLOEXEC | O_NONBLOCK; persistent (it outlives the
 * fds).  On failure every fd opened here is closed again (the device then
 * goes away with them unless it was already persistent). */
int net_tap_open_queues (const char *name, unsigned int n, int *fds,
                         struct ate_error **err);

#endif
