/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor network's life cycle (docs/networking.md).  Each step that
 * touches a namespace is a job for net_ns_run(); the steps are numbered as in
 * docs/networking.md, "Per activation".
 */
#define _GNU_SOURCE
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/net_testing.h"
#include "net/nft.h"
#include "net/nl.h"
#include "net/ns.h"
#include "net/tap.h"
#include "net/tc.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/util.h"
#include "util/validate.h"

#define NET_NETNS_NAME_MAX 255

/* Public entry points accept err == NULL (errors are then dropped); the
 * code below always has somewhere to collect them. */
#define NET_ERR_SINK(err)                                                      \
  cleanup_error struct ate_error *err##_sink = NULL;                           \
  if ((err) == NULL)                                                           \
  (err) = &err##_sink

struct net_ctx
{
  pthread_mutex_t lock; /* serialises every operation on the context */
  char *netns_path;
  char *pod_ifname;
  uint16_t *ports;
  size_t n_ports;
  int pod_fd;      /* the namespace recorded by net_ctx_new */
  int interior_fd; /* -1 after net_ctx_destroy_netns */
  enum net_fault fault;
};

/* ---- helpers ---------------------------------------------------------- */

const char *
net_fault_name (enum net_fault fault)
{
  static const char *const names[NET_FAULT_COUNT] = {
    [NET_FAULT_NONE] = "none",
    [NET_FAULT_SETUP_VETH] = "setup-veth",
    [NET_FAULT_SETUP_HOST_VETH] = "setup-host-veth",
    [NET_FAULT_SETUP_INTERIOR] = "setup-interior",
    [NET_FAULT_SETUP_FORWARD] = "setup-forward",
    [NET_FAULT_SETUP_NFT] = "setup-nft",
    [NET_FAULT_TAP_QUEUES] = "tap-queues",
    [NET_FAULT_TAP_TC] = "tap-tc",
    [NET_FAULT_RETURN_HOME] = "return-home",
  };
  if ((unsigned) fault >= NET_FAULT_COUNT)
    return "unknown";
  return names[fault];
}

void
net_ctx_inject_fault (struct net_ctx *ctx, enum net_fault fault)
{
  pthread_mutex_lock (&ctx->lock);
  ctx->fault = fault;
  pthread_mutex_unlock (&ctx->lock);
}

/* Fail here if the armed fault is f (once). */
static int
fault_point (struct net_ctx *ctx, enum net_fault f, struct ate_error **err)
{
  if (ctx->fault != f)
    return 0;
  ctx->fault = NET_FAULT_NONE;
  return ate_error_make (err, EIO, "injected failure at %s", net_fault_name (f));
}

static bool
fault_take (struct net_ctx *ctx, enum net_fault f)
{
  if (ctx->fault != f)
    return false;
  ctx->fault = NET_FAULT_NONE;
  return true;
}

static int
run_in (struct net_ctx *ctx, int ns_fd, net_ns_fn fn, void *arg,
        struct ate_error **err)
{
  /* The fault swaps the way home for an invalid fd: setns fails exactly as
   * it would if the pod namespace had become unusable. */
  int home = fault_take (ctx, NET_FAULT_RETURN_HOME) ? -1 : ctx->pod_fd;

  return net_ns_run (ns_fd, home, fn, arg, err);
}

static int
run_in_pod (struct net_ctx *ctx, net_ns_fn fn, void *arg, struct ate_error **err)
{
  return run_in (ctx, ctx->pod_fd, fn, arg, err);
}

static int
run_in_interior (struct net_ctx *ctx, net_ns_fn fn, void *arg,
                 struct ate_error **err)
{
  if (ctx->interior_fd < 0)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                                "the interior network namespace `%s` was "
                                "destroyed", ctx->netns_path);
  return run_in (ctx, ctx->interior_fd, fn, arg, err);
}

/* tap<digits>_kata: the taps the reference and kata create. */
static bool
is_kata_tap_name (const char *name)
{
  const char *p = name + 3;

  if (strncmp (name, "tap", 3) != 0 || *p < '0' || *p > '9')
    return false;
  while (*p >= '0' && *p <= '9')
    p++;
  return strcmp (p, "_kata") == 0;
}

char *
net_tap_name (unsigned int index)
{
  return xasprintf ("tap%u_kata", index);
}

void
net_tap_fds_free (int *fds, size_t nfds)
{
  if (fds == NULL)
    return;
  for (size_t i = 0; i < nfds; i++)
    if (fds[i] >= 0)
      close (fds[i]);
  free (fds);
}

/* ---- context ---------------------------------------------------------- */

static int
config_validate (const struct net_config *cfg, struct ate_error **err)
{
  const char *name = cfg->netns_name;

  if (name == NULL || name[0] == '\0' || strlen (name) > NET_NETNS_NAME_MAX
      || strchr (name, '/') || strcmp (name, ".") == 0
      || strcmp (name, "..") == 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "invalid network namespace name `%s`",
                                name ? name : "");
  if (cfg->netns_dir
      && ate_validate_abs_path ("netns directory", cfg->netns_dir, err) < 0)
    return -1;
  if (cfg->pod_ifname && !net_ifname_is_valid (cfg->pod_ifname))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "invalid pod interface name `%s`",
                                cfg->pod_ifname);
  if (cfg->ingress_ports == NULL && cfg->n_ingress_ports != 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "ingress port count without ports");
  if (cfg->n_ingress_ports > NET_MAX_INGRESS_PORTS)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "%zu ingress ports (at most %d)",
                                cfg->n_ingress_ports, NET_MAX_INGRESS_PORTS);
  for (size_t i = 0; i < cfg->n_ingress_ports; i++)
    {
      if (cfg->ingress_ports[i] == 0)
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                    "ingress port 0 is not a port");
      for (size_t j = 0; j < i; j++)
        if (cfg->ingress_ports[j] == cfg->ingress_ports[i])
          return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                      "ingress port %u listed twice",
                                      (unsigned) cfg->ingress_ports[i]);
    }
  return 0;
}

int
net_ctx_new (const struct net_config *cfg, struct net_ctx **out,
             struct ate_error **err)
{
  struct net_ctx *ctx;
  bool created = false;

  if (cfg == NULL)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "no network configuration");
  if (config_validate (cfg, err) < 0)
    return -1;

  ctx = xmalloc0 (sizeof (*ctx));
  pthread_mutex_init (&ctx->lock, NULL);
  ctx->pod_fd = -1;
  ctx->interior_fd = -1;
  ctx->netns_path = ate_path_join (cfg->netns_dir ? cfg->netns_dir
                                                  : NET_DEFAULT_NETNS_DIR,
                                   cfg->netns_name);
  ctx->pod_ifname = xstrdup (cfg->pod_ifname ? cfg->pod_ifname
                                             : NET_DEFAULT_POD_IFNAME);
  if (cfg->ingress_ports == NULL)
    {
      ctx->n_ports = 1;
      ctx->ports = xmalloc (sizeof (uint16_t));
      ctx->ports[0] = NET_DEFAULT_INGRESS_PORT;
    }
  else if (cfg->n_ingress_ports > 0)
    {
      ctx->n_ports = cfg->n_ingress_ports;
      ctx->ports = xcalloc (ctx->n_ports, sizeof (uint16_t));
      memcpy (ctx->ports, cfg->ingress_ports, ctx->n_ports * sizeof (uint16_t));
    }

  ctx->pod_fd = net_ns_open_current (err);
  if (ctx->pod_fd < 0)
    goto fail;
  ctx->interior_fd = net_ns_open_or_create (ctx->netns_path, ctx->pod_fd,
                                            &created, err);
  if (ctx->interior_fd < 0)
    {
      ate_error_wrap (err, "while creating the interior network namespace");
      goto fail;
    }
  if (net_ns_same (ctx->pod_fd, ctx->interior_fd))
    {
      ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, 0,
                           "`%s` is the pod's own network namespace",
                           ctx->netns_path);
      goto fail;
    }
  ate_log (ATE_LOG_INFO,
           created ? "Created interior network namespace"
                   : "Reusing existing interior network namespace",
           "path", ctx->netns_path, NULL);
  *out = ctx;
  return 0;

fail:
  net_ctx_free (ctx);
  return -1;
}

void
net_ctx_free (struct net_ctx *ctx)
{
  if (ctx == NULL)
    return;
  close_and_reset (&ctx->pod_fd);
  close_and_reset (&ctx->interior_fd);
  pthread_mutex_destroy (&ctx->lock);
  free (ctx->netns_path);
  free (ctx->pod_ifname);
  free (ctx->ports);
  free (ctx);
}

int
net_ctx_destroy_netns (struct net_ctx *ctx, struct ate_error **err)
{
  NET_ERR_SINK (err);
  int r;

  pthread_mutex_lock (&ctx->lock);
  close_and_reset (&ctx->interior_fd);
  r = net_ns_remove (ctx->netns_path, err);
  pthread_mutex_unlock (&ctx->lock);
  return r;
}

const char *
net_ctx_netns_path (const struct net_ctx *ctx)
{
  return ctx->netns_path;
}

/* ---- cleanup (docs/networking.md, "Cleanup") --------------------------- */

static int
job_pod_cleanup (void *arg, struct ate_error **err)
{
  const bool *keep_nft = arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  struct ate_error *step = NULL;

  /* Each step runs whatever the others did; every failure is kept.  Before
   * a setup the table is left alone: the setup replaces it in one
   * transaction, and every nftables commit waits for an RCU grace period
   * (~10 ms here), which is most of a restore's own time. */
  if (!*keep_nft)
    {
      net_nft_run (net_nft_cleanup_script (), &step);
      ate_error_collect (err, &step, "while deleting nftables table ip " NET_NFT_TABLE);
    }

  if (net_nl_open (&sk, &step) == 0)
    net_link_delete (sk, NET_HOST_VETH, NULL, &step);
  ate_error_collect (err, &step, "while deleting " NET_HOST_VETH);
  return *err ? -1 : 0;
}

static int
job_interior_cleanup (void *arg, struct ate_error **err)
{
  (void) arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  cleanup_strv char **names = NULL;
  struct ate_error *step = NULL;
  const char *fixed[] = { NET_INTERIOR_VETH, NET_INTERIOR_VETH_TEMP };

  if (net_nl_open (&sk, err) < 0)
    return -1;
  for (size_t i = 0; i < ATE_N_ELEMENTS (fixed); i++)
    {
      net_link_delete (sk, fixed[i], NULL, &step);
      ate_error_collect (err, &step, "while deleting the interior veth");
    }
  /* Unlike the reference, taps go now too: after a checkpoint or a failed
   * activation nothing uses them, and a persistent tap would otherwise
   * keep its tc filters and memory until the next activation. */
  if (net_link_list_names (sk, &names, &step) == 0)
    for (char **n = names; *n; n++)
      if (is_kata_tap_name (*n))
        {
          net_link_delete (sk, *n, NULL, &step);
          ate_error_collect (err, &step, "while deleting a tap");
        }
  ate_error_collect (err, &step, "while listing interior links");
  return *err ? -1 : 0;
}

static int
cleanup_locked (struct net_ctx *ctx, bool keep_nft, struct ate_error **err)
{
  struct ate_error *acc = NULL, *step = NULL;

  run_in_pod (ctx, job_pod_cleanup, &keep_nft, &step);
  ate_error_collect (&acc, &step, "in the pod network namespace");
  run_in_interior (ctx, job_interior_cleanup, ctx, &step);
  ate_error_collect (&acc, &step, "in the interior network namespace");
  if (acc == NULL)
    return 0;
  ate_error_collect (err, &acc, "while cleaning up the actor network");
  return -1;
}

int
net_actor_cleanup (struct net_ctx *ctx, struct ate_error **err)
{
  NET_ERR_SINK (err);
  int r;

  pthread_mutex_lock (&ctx->lock);
  r = cleanup_locked (ctx, false, err);
  pthread_mutex_unlock (&ctx->lock);
  return r;
}

/* ---- setup (docs/networking.md, "Per activation") ---------------------- */

struct setup_job
{
  struct net_ctx *ctx;
  struct in_addr pod_ip;
  unsigned int pod_mtu;  /* the pod interface's */
  unsigned int want_mtu; /* the guest's, 0: the pod's */
  unsigned int mtu;      /* of the veth pair (and the taps): the guest's */
};

/* Step 2: the pod's IPv4 address and MTU. */
static int
job_pod_probe (void *arg, struct ate_error **err)
{
  struct setup_job *j = arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  struct net_link_attrs pod;
  int r;

  if (net_nl_open (&sk, err) < 0)
    return -1;
  r = net_link_lookup (sk, j->ctx->pod_ifname, 0, &pod, err);
  if (r < 0)
    return -1;
  if (r == 0)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, ENODEV,
                                "pod interface `%s` not found",
                                j->ctx->pod_ifname);
  if (net_addr_first_v4 (sk, pod.ifindex, &j->pod_ip, err) < 0)
    {
      ate_error_set_code (*err, ATE_CODE_FAILED_PRECONDITION);
      return ate_error_wrap (err, "while reading the IPv4 address of pod "
                             "interface `%s`", j->ctx->pod_ifname);
    }
  j->pod_mtu = pod.mtu;
  j->mtu = j->want_mtu ? j->want_mtu : pod.mtu;
  return 0;
}

/* Step 3: a clean slate in the interior namespace (old taps, stale veth
 * ends); failures are logged only, as a later step fails clearly if a
 * leftover is in the way. */
static int
job_interior_sweep (void *arg, struct ate_error **err)
{
  (void) arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  cleanup_strv char **names = NULL;
  struct net_link_attrs lo;
  int r;

  if (net_nl_open (&sk, err) < 0 || net_link_list_names (sk, &names, err) < 0)
    return -1;
  for (char **n = names; *n; n++)
    {
      struct ate_error *e = NULL;
      if (strcmp (*n, "lo") == 0)
        continue;
      /* Per-namespace fallback tunnels (sit0, tunl0, ...) exist whenever
       * their module is loaded and cannot be deleted: not worth a warning. */
      if (net_link_delete (sk, *n, NULL, &e) < 0)
        ate_log (e->status == EOPNOTSUPP ? ATE_LOG_DEBUG : ATE_LOG_WARN,
                 "Failed to delete leftover interior link", "link", *n,
                 "err", e->msg, NULL);
      ate_error_release (&e);
    }
  r = net_link_lookup (sk, "lo", 0, &lo, err);
  if (r < 0)
    return -1;
  if (r == 0)
    return ate_error_make (err, ENODEV, "no `lo` in the interior namespace");
  return net_link_set_up (sk, lo.ifindex, 0, err);
}

/* Step 4: veth ateom0 <-> interior eth0, ateom0 addressed and up. */
static int
job_pod_veth (void *arg, struct ate_error **err)
{
  struct setup_job *j = arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  struct net_link_attrs host;
  int r;

  if (net_nl_open (&sk, err) < 0)
    return -1;
  if (net_veth_create (sk, NET_HOST_VETH, NET_HOST_VETH_MAC, NET_INTERIOR_VETH,
                       j->ctx->interior_fd, j->mtu, err) < 0
      || fault_point (j->ctx, NET_FAULT_SETUP_VETH, err) < 0)
    return ate_error_wrap (err, "while creating the actor veth pair");
  r = net_link_lookup (sk, NET_HOST_VETH, 0, &host, err);
  if (r < 0)
    return -1;
  if (r == 0)
    return ate_error_make (err, ENODEV, NET_HOST_VETH " vanished after creation");
  if (net_addr_replace_v4 (sk, host.ifindex, NET_HOST_VETH_IP,
                           NET_ACTOR_PREFIXLEN, err) < 0
      || net_link_set_up (sk, host.ifindex, 0, err) < 0
      || fault_point (j->ctx, NET_FAULT_SETUP_HOST_VETH, err) < 0)
    return ate_error_wrap (err, "while configuring " NET_HOST_VETH);
  return 0;
}

/* Step 5: the interior eth0 addressed, up, default route via ateom0. */
static int
job_interior_configure (void *arg, struct ate_error **err)
{
  struct setup_job *j = arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  struct net_link_attrs eth0;
  int r;

  if (net_nl_open (&sk, err) < 0)
    return -1;
  r = net_link_lookup (sk, NET_INTERIOR_VETH, 0, &eth0, err);
  if (r < 0)
    return -1;
  if (r == 0)
    return ate_error_make (err, ENODEV, "interior " NET_INTERIOR_VETH
                           " missing after the veth pair was created");
  if (net_addr_replace_v4 (sk, eth0.ifindex, NET_ACTOR_IP, NET_ACTOR_PREFIXLEN,
                           err) < 0
      || net_link_set_up (sk, eth0.ifindex, 0, err) < 0
      || net_route_replace_default_v4 (sk, eth0.ifindex, NET_HOST_VETH_IP, err) < 0
      || fault_point (j->ctx, NET_FAULT_SETUP_INTERIOR, err) < 0)
    return ate_error_wrap (err, "while configuring the interior " NET_INTERIOR_VETH);
  return 0;
}

static int
enable_ip_forward (struct ate_error **err)
{
  /* O_WRONLY without O_CREAT: a missing knob is an error, never a new
   * file.  The path resolves in this thread's network namespace. */
  cleanup_close int fd = open ("/proc/sys/net/ipv4/ip_forward",
                               O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return ate_error_make (err, errno, "open /proc/sys/net/ipv4/ip_forward");
  if (TEMP_FAILURE_RETRY (write (fd, "1\n", 2)) != 2)
    return ate_error_make (err, errno, "enable IPv4 forwarding");
  return 0;
}

/* Steps 6 and 7: forwarding and the nftables table. */
static int
job_pod_forward_nft (void *arg, struct ate_error **err)
{
  struct setup_job *j = arg;
  cleanup_free char *script = NULL;

  if (enable_ip_forward (err) < 0
      || fault_point (j->ctx, NET_FAULT_SETUP_FORWARD, err) < 0)
    return ate_error_wrap (err, "while enabling IPv4 forwarding");
  /* A guest whose MTU exceeds the pod's sends frames the pod interface
   * cannot carry: the pod namespace routes between the two (ICMP
   * "fragmentation needed" for DF packets), and TCP connections are clamped
   * to the smaller MTU at their SYN so they never depend on that. */
  script = net_nft_setup_script (&j->pod_ip, j->ctx->ports, j->ctx->n_ports,
                                 j->mtu > j->pod_mtu,
                                 fault_take (j->ctx, NET_FAULT_SETUP_NFT));
  if (net_nft_run (script, err) < 0)
    return ate_error_wrap (err, "while installing nftables table ip "
                           NET_NFT_TABLE);
  return 0;
}

static int
setup_steps (struct net_ctx *ctx, unsigned int guest_mtu, struct net_actor_info *info,
             struct ate_error **err)
{
  struct setup_job j = { .ctx = ctx, .want_mtu = guest_mtu };

  if (run_in_pod (ctx, job_pod_probe, &j, err) < 0
      || run_in_interior (ctx, job_interior_sweep, &j, err) < 0
      || run_in_pod (ctx, job_pod_veth, &j, err) < 0
      || run_in_interior (ctx, job_interior_configure, &j, err) < 0
      || run_in_pod (ctx, job_pod_forward_nft, &j, err) < 0)
    return -1;
  if (info)
    {
      inet_ntop (AF_INET, &j.pod_ip, info->pod_ipv4, sizeof (info->pod_ipv4));
      info->pod_mtu = j.pod_mtu;
      info->link_mtu = j.mtu;
    }
  return 0;
}

int
net_actor_setup (struct net_ctx *ctx, struct net_actor_info *info,
                 struct ate_error **err)
{
  return net_actor_setup_mtu (ctx, 0, info, err);
}

int
net_actor_setup_mtu (struct net_ctx *ctx, unsigned int guest_mtu, struct net_actor_info *info,
                     struct ate_error **err)
{
  NET_ERR_SINK (err);
  struct ate_error *undo = NULL;
  int r;

  if (guest_mtu != 0 && (guest_mtu < NET_MIN_MTU || guest_mtu > NET_MAX_MTU))
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, EINVAL,
                                "guest MTU %u out of range %d..%d", guest_mtu, NET_MIN_MTU,
                                NET_MAX_MTU);

  pthread_mutex_lock (&ctx->lock);
  r = cleanup_locked (ctx, true, err);
  if (r < 0)
    {
      ate_error_wrap (err, "before setting up the actor network");
      goto out;
    }
  r = setup_steps (ctx, guest_mtu, info, err);
  if (r < 0 && cleanup_locked (ctx, false, &undo) < 0)
    ate_error_collect (err, &undo, "and then");
out:
  pthread_mutex_unlock (&ctx->lock);
  return r;
}

/* ---- taps (docs/networking.md, "Taps") --------------------------------- */

struct tap_job
{
  struct net_ctx *ctx;
  const char *name;
  unsigned int queue_pairs;
  unsigned int mtu;
  int *fds;
  bool built; /* the tap exists and the job has not removed it again */
};

/* Remove eth0's redirects to the tap (they would blackhole traffic) and,
 * when none is left, its ingress qdisc, which the tap build added. */
static int
tap_unhook_eth0 (struct nl_sock *sk, int eth0_ifindex, int tap_ifindex,
                 struct ate_error **err)
{
  unsigned int kept = 0;

  if (eth0_ifindex <= 0)
    return 0;
  if (net_tc_prune_redirects (sk, eth0_ifindex, tap_ifindex, &kept, err) < 0)
    return -1;
  return kept == 0 ? net_tc_ingress_delete (sk, eth0_ifindex, err) : 0;
}

/* Take down what a failed tap build left: the tap and its hooks on eth0. */
static void
tap_rollback (struct nl_sock *sk, int eth0_ifindex, struct tap_job *j,
              int tap_ifindex, struct ate_error **err)
{
  struct ate_error *step = NULL;

  for (unsigned int i = 0; i < j->queue_pairs; i++)
    close_and_reset (&j->fds[i]);
  /* Delete first: the kernel then reports redirects to the tap as going
   * to ifindex 0, which the prune removes along with those to tap_ifindex. */
  if (net_link_delete (sk, j->name, NULL, &step) == 0
      && tap_unhook_eth0 (sk, eth0_ifindex, tap_ifindex, &step) == 0)
    j->built = false;
  ate_error_collect (err, &step, "and then, while removing the partial tap");
}

/* After a job that built the tap failed to report back (e.g. it could not
 * return to the pod namespace): the same rollback from a fresh thread. */
static int
job_tap_remove (void *arg, struct ate_error **err)
{
  struct tap_job *j = arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  struct net_link_attrs eth0 = { .ifindex = 0 }, tap = { .ifindex = -1 };

  if (net_nl_open (&sk, err) < 0
      || net_link_lookup (sk, NET_INTERIOR_VETH, 0, &eth0, err) < 0
      || net_link_lookup (sk, j->name, 0, &tap, err) < 0)
    return -1;
  tap_rollback (sk, eth0.ifindex, j, tap.ifindex, err);
  return *err ? -1 : 0;
}

static int
tap_replace_existing (struct nl_sock *sk, int eth0_ifindex, const char *name,
                      struct ate_error **err)
{
  struct net_link_attrs old;
  int r = net_link_lookup (sk, name, 0, &old, err);

  if (r <= 0)
    return r;
  if (net_link_delete (sk, name, NULL, err) < 0
      || net_tc_prune_redirects (sk, eth0_ifindex, old.ifindex, NULL, err) < 0)
    return ate_error_wrap (err, "while replacing the existing link `%s`", name);
  return 0;
}

/* Open a netlink socket in the interior namespace and find its eth0, which
 * the activation's setup created. */
static int
open_interior_eth0 (struct nl_sock **sk, struct net_link_attrs *eth0, struct ate_error **err)
{
  int r;

  if (net_nl_open (sk, err) < 0)
    return -1;
  r = net_link_lookup (*sk, NET_INTERIOR_VETH, 0, eth0, err);
  if (r < 0)
    return -1;
  if (r == 0)
    return ate_error_make_code (err, ATE_CODE_FAILED_PRECONDITION, ENODEV,
                                "the interior " NET_INTERIOR_VETH " does not "
                                "exist (is the actor network set up?)");
  return 0;
}

static int
job_tap_create (void *arg, struct ate_error **err)
{
  struct tap_job *j = arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  struct net_link_attrs eth0, tap = { .ifindex = -1 };

  if (open_interior_eth0 (&sk, &eth0, err) < 0)
    return -1;
  if (tap_replace_existing (sk, eth0.ifindex, j->name, err) < 0
      || net_tap_open_queues (j->name, j->queue_pairs, j->fds, err) < 0)
    return -1;
  j->built = true;

  if (fault_point (j->ctx, NET_FAULT_TAP_QUEUES, err) < 0
      || net_link_lookup (sk, j->name, 0, &tap, err) <= 0
      || net_link_set_up (sk, tap.ifindex, j->mtu ? j->mtu : eth0.mtu, err) < 0)
    goto fail;
  /* eth0 -> tap first, then tap -> eth0 (the reference's order). */
  if (net_tc_ingress_replace (sk, eth0.ifindex, err) < 0
      || net_tc_redirect_add (sk, eth0.ifindex, tap.ifindex, err) < 0
      || fault_point (j->ctx, NET_FAULT_TAP_TC, err) < 0
      || net_tc_ingress_replace (sk, tap.ifindex, err) < 0
      || net_tc_redirect_add (sk, tap.ifindex, eth0.ifindex, err) < 0)
    goto fail;
  return 0;

fail:
  if (*err == NULL)
    ate_error_make (err, ENODEV, "tap `%s` vanished after creation", j->name);
  ate_error_wrap (err, "while configuring tap `%s`", j->name);
  tap_rollback (sk, eth0.ifindex, j, tap.ifindex, err);
  return -1;
}

int
net_tap_create (struct net_ctx *ctx, const char *name, unsigned int queue_pairs,
                unsigned int mtu, int **fds, size_t *nfds,
                struct ate_error **err)
{
  NET_ERR_SINK (err);
  struct tap_job j = { .ctx = ctx, .name = name, .queue_pairs = queue_pairs,
                       .mtu = mtu };
  int r;

  if (!net_ifname_is_valid (name))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "invalid tap name `%s`", name ? name : "");
  if (queue_pairs < 1 || queue_pairs > NET_MAX_QUEUE_PAIRS)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "%u queue pairs for tap `%s` (1..%d)",
                                queue_pairs, name, NET_MAX_QUEUE_PAIRS);
  if (mtu != 0 && (mtu < NET_MIN_MTU || mtu > NET_MAX_MTU))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "MTU %u for tap `%s` (%d..%d)", mtu, name,
                                NET_MIN_MTU, NET_MAX_MTU);
  j.fds = xcalloc (queue_pairs, sizeof (int));
  for (unsigned int i = 0; i < queue_pairs; i++)
    j.fds[i] = -1;

  pthread_mutex_lock (&ctx->lock);
  r = run_in_interior (ctx, job_tap_create, &j, err);
  if (r < 0 && j.built)
    {
      struct ate_error *undo = NULL;
      if (run_in_interior (ctx, job_tap_remove, &j, &undo) < 0)
        ate_error_collect (err, &undo, "and then");
    }
  pthread_mutex_unlock (&ctx->lock);
  if (r < 0)
    {
      net_tap_fds_free (j.fds, queue_pairs);
      return -1;
    }
  *fds = j.fds;
  *nfds = queue_pairs;
  return 0;
}

/* ---- guest MTU (docs/networking.md, "MTU") ----------------------------- */

static int
job_interior_mtu (void *arg, struct ate_error **err)
{
  unsigned int *mtu = arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  struct net_link_attrs eth0;

  if (open_interior_eth0 (&sk, &eth0, err) < 0)
    return -1;
  *mtu = eth0.mtu;
  return 0;
}

int
net_interior_mtu (struct net_ctx *ctx, unsigned int *mtu, struct ate_error **err)
{
  NET_ERR_SINK (err);
  unsigned int m = NET_DEFAULT_MTU;
  int r;

  pthread_mutex_lock (&ctx->lock);
  r = run_in_interior (ctx, job_interior_mtu, &m, err);
  pthread_mutex_unlock (&ctx->lock);
  *mtu = r < 0 ? NET_DEFAULT_MTU : m;
  return r < 0 ? ate_error_wrap (err, "while reading the interior MTU") : 0;
}
