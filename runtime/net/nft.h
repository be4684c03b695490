/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The nftables table `ip ateom_actor` in the pod namespace
 * (docs/networking.md, "nftables"),
 * through libnftables.  Each script is one transaction: the kernel applies
 * all of it or none of it.
 */
#ifndef ATE_NET_NFT_H
#define ATE_NET_NFT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ate_error;

/* Replace the table with: prerouting (nat, dstnat) DNAT of <pod_ip>:<port>
 * to the actor for each port, postrouting (nat, srcnat) masquerade of the
 * actor's address, forward (filter, policy accept) accept, after, with
 * clamp_mss, the MSS of forwarded TCP SYNs set to the route MTU.  With
 * inject_failure the script ends with a rule the kernel rejects (a jump to
 * a missing chain), for failure tests.  Returns a new string. */
char *net_nft_setup_script (const struct in_addr *pod_ip,
                            const uint16_t *ports, size_t n_ports,
                            bool clamp_mss, bool inject_failure);

/* Delete the table if it exists (one transaction, so no listing first). */
const char *net_nft_cleanup_script (void);

/* Run a script with libnftables in the calling thread's namespace.  The
 * error carries nft's own error lines. */
int net_nft_run (const char *script, struct ate_error **err);

#endif
