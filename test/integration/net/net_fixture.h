/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the runtime/net integration tests: throw-away network
 * namespaces standing in for the worker pod, a client and a guest, and
 * independent ways to look at what the library built (libnl queries, `nft
 * -j`, `tc`).  Nothing here touches the host's own namespace: every
 * namespace is created by unshare() on a helper thread and dies with its
 * last fd; mounts happen in a private mount namespace of the test process.
 */
#ifndef ATE_NET_FIXTURE_H
#define ATE_NET_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"

struct nl_sock;
struct json_object;

/* Call first in main(): skips (exit 77) unless root, and moves the process
 * into a private mount namespace so that no test mount can leak. */
void nt_init_or_skip (const char *test_name);

/* The test process's own network namespace (the "host"). */
int nt_host_fd (void);

/* A fresh, empty network namespace (fd; close it to destroy the
 * namespace). */
int nt_ns_new (void);

/* Run fn(arg) on a thread inside ns; fails the test on error. */
void nt_in_ns (int ns_fd, int (*fn) (void *arg, struct ate_error **err),
               void *arg);

/* A libnl route socket / a socket bound to ns. */
struct nl_sock *nt_nl (int ns_fd);
int nt_socket (int ns_fd, int domain, int type);

/* Run argv (NULL-terminated) with its network namespace set to ns_fd;
 * *out (may be NULL) gets combined output.  Returns the exit status (0 is
 * success) or -1 if it could not run. */
int nt_cmd (int ns_fd, char **out, const char *arg0, ...)
    __attribute__ ((sentinel));

/* `nft -j list ruleset` inside ns, parsed. */
struct json_object *nt_nft_ruleset (int ns_fd);
/* Number of non-metainfo objects in the ruleset of ns. */
int nt_nft_object_count (int ns_fd);

/* Link lookups through libnl: true if found (attrs filled). */
struct nt_link
{
  int ifindex;
  unsigned int mtu;
  unsigned int flags;
  char mac[18];
  char kind[16];
};
bool nt_link_get (int ns_fd, const char *name, struct nt_link *out);
int nt_link_count (int ns_fd); /* all links including lo */

/* A pod: its namespace, an eth0 (veth) with pod_ip/24 and mtu, its peer
 * either in a client namespace (with_client) as `cl0` with client_ip, or
 * left in the pod namespace as `eth0p`; and a net_ctx created from a thread
 * inside the pod namespace with a unique interior namespace under a
 * temporary netns_dir. */
struct nt_pod
{
  int pod_fd;
  int client_fd; /* -1 without client */
  char *netns_dir;
  char *netns_name;
  char *netns_path;
  char pod_ip[16];
  char client_ip[16];
  unsigned int mtu;
  struct net_ctx *ctx;
};

struct nt_pod_opts
{
  bool with_client;
  bool no_eth0;     /* the pod has no eth0 at all */
  bool no_ipv4;     /* eth0 without an IPv4 address */
  unsigned int mtu; /* 0: 1400 */
  const uint16_t *ports;
  size_t n_ports;
};

void nt_pod_new (struct nt_pod *pod, const struct nt_pod_opts *opts);
/* A second context on the same pod and netns path (a "restarted server"). */
struct net_ctx *nt_pod_ctx_again (struct nt_pod *pod);
/* Cleanup, destroy the interior namespace, close everything.  Never
 * fails the test (it runs in teardowns); returns false if anything could
 * not be undone.  A zeroed pod (pod_fd -1) is fine. */
bool nt_pod_free (struct nt_pod *pod);

/* The interior namespace of a pod, opened by path. */
int nt_pod_interior_fd (const struct nt_pod *pod);

/* Count open fds of this process. */
int nt_fd_count (void);

#endif
