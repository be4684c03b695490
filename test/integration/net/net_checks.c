/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net_checks.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/tc.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/error.h"
#include "util/json.h"
#include "util/util.h"

static struct json_object *
parse_json (const char *text)
{
  struct json_object *o = NULL;
  struct ate_error *err = NULL;

  if (ate_json_parse (text, strlen (text), 64, &o, &err) < 0)
    fail_msg ("bad JSON (%s): %s", err->msg, text);
  return o;
}

/* `ip -j <args>` inside ns. */
static struct json_object *
ip_json (int ns_fd, const char *a1, const char *a2, const char *a3,
         const char *a4, const char *a5)
{
  cleanup_free char *out = NULL;

  if (nt_cmd (ns_fd, &out, "ip", "-j", a1, a2, a3, a4, a5, NULL) != 0)
    fail_msg ("ip -j %s %s %s %s %s: %s", a1, a2, a3 ? a3 : "", a4 ? a4 : "",
              a5 ? a5 : "", out);
  return parse_json (out);
}

static void
expect_json_equal (struct json_object *got, const char *want_text)
{
  cleanup_json struct json_object *want = parse_json (want_text);

  if (!json_object_equal (got, want))
    fail_msg ("got  %s\nwant %s", json_object_to_json_string (got),
              json_object_to_json_string (want));
}

/* [{"family":"inet","local":...,"prefixlen":...,"broadcast":...}] of dev. */
static void
expect_only_ipv4 (int ns_fd, const char *dev, const char *local,
                  const char *broadcast)
{
  cleanup_json struct json_object *o = ip_json (ns_fd, "-4", "addr", "show",
                                                "dev", dev);
  struct json_object *info, *a, *v;

  assert_int_equal (json_object_array_length (o), 1);
  assert_true (json_object_object_get_ex (json_object_array_get_idx (o, 0),
                                          "addr_info", &info));
  assert_int_equal (json_object_array_length (info), 1);
  a = json_object_array_get_idx (info, 0);
  assert_string_equal (ate_json_get_string (a, "local"), local);
  assert_true (json_object_object_get_ex (a, "prefixlen", &v));
  assert_int_equal (json_object_get_int (v), 30);
  assert_string_equal (ate_json_get_string (a, "broadcast"), broadcast);
  assert_string_equal (ate_json_get_string (a, "scope"), "global");
}

static void
expect_link (int ns_fd, const char *name, const char *kind, const char *mac,
             unsigned int mtu)
{
  struct nt_link l;

  if (!nt_link_get (ns_fd, name, &l))
    fail_msg ("link %s missing", name);
  assert_string_equal (l.kind, kind);
  if (mac)
    assert_string_equal (l.mac, mac);
  if (mtu)
    assert_int_equal (l.mtu, mtu);
  assert_true (l.flags & IFF_UP);
}

struct fwd_job
{
  int value;
};

static int
job_read_forward (void *arg, struct ate_error **err)
{
  struct fwd_job *j = arg;
  char buf[8] = { 0 };
  cleanup_close int fd = open ("/proc/sys/net/ipv4/ip_forward",
                               O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read (fd, buf, sizeof (buf) - 1) <= 0)
    return ate_error_make (err, errno, "read ip_forward");
  j->value = atoi (buf);
  return 0;
}

int
nc_ip_forward (int ns_fd)
{
  struct fwd_job j = { -1 };
  nt_in_ns (ns_fd, job_read_forward, &j);
  return j.value;
}

struct json_object *
nc_actor_table (int ns_fd)
{
  cleanup_json struct json_object *rs = nt_nft_ruleset (ns_fd);
  struct json_object *arr, *out = json_object_new_array ();

  assert_true (json_object_object_get_ex (rs, "nftables", &arr));
  for (size_t i = 0; i < json_object_array_length (arr); i++)
    {
      struct json_object *o = json_object_array_get_idx (arr, i);
      json_object_object_foreach (o, kind, body)
      {
        const char *fam = ate_json_get_string (body, "family");
        const char *tbl = ate_json_get_string (body, strcmp (kind, "table") == 0
                                                         ? "name" : "table");
        if (strcmp (kind, "metainfo") == 0 || fam == NULL || tbl == NULL
            || strcmp (fam, "ip") != 0 || strcmp (tbl, "ateom_actor") != 0)
          continue;
        json_object_object_del (body, "handle");
        json_object_array_add (out, json_object_get (o));
      }
    }
  return out;
}

static char *
expected_table (const char *pod_ip, const uint16_t *ports, size_t n)
{
  static const uint16_t def[] = { 80 };
  cleanup_free char *dnat = xstrdup ("");
  const char *head =
      "{\"table\":{\"family\":\"ip\",\"name\":\"ateom_actor\"}},"
      "{\"chain\":{\"family\":\"ip\",\"table\":\"ateom_actor\",\"name\":\"prerouting\","
      "\"type\":\"nat\",\"hook\":\"prerouting\",\"prio\":-100,\"policy\":\"accept\"}},"
      "{\"chain\":{\"family\":\"ip\",\"table\":\"ateom_actor\",\"name\":\"postrouting\","
      "\"type\":\"nat\",\"hook\":\"postrouting\",\"prio\":100,\"policy\":\"accept\"}},"
      "{\"chain\":{\"family\":\"ip\",\"table\":\"ateom_actor\",\"name\":\"forward\","
      "\"type\":\"filter\",\"hook\":\"forward\",\"prio\":0,\"policy\":\"accept\"}}";
  const char *tail =
      "{\"rule\":{\"family\":\"ip\",\"table\":\"ateom_actor\",\"chain\":\"postrouting\","
      "\"expr\":[{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"ip\","
      "\"field\":\"saddr\"}},\"right\":\"169.254.17.2\"}},{\"masquerade\":null}]}},"
      "{\"rule\":{\"family\":\"ip\",\"table\":\"ateom_actor\",\"chain\":\"forward\","
      "\"expr\":[{\"accept\":null}]}}";

  if (ports == NULL)
    {
      ports = def;
      n = 1;
    }
  for (size_t i = 0; i < n; i++)
    {
      char *next = xasprintf (
          "%s{\"rule\":{\"family\":\"ip\",\"table\":\"ateom_actor\","
          "\"chain\":\"prerouting\",\"expr\":[{\"match\":{\"op\":\"==\",\"left\":"
          "{\"payload\":{\"protocol\":\"ip\",\"field\":\"daddr\"}},\"right\":\"%s\"}},"
          "{\"match\":{\"op\":\"==\",\"left\":{\"payload\":{\"protocol\":\"tcp\","
          "\"field\":\"dport\"}},\"right\":%u}},{\"dnat\":{\"addr\":\"169.254.17.2\","
          "\"port\":%u}}]}},",
          dnat, pod_ip, (unsigned) ports[i], (unsigned) ports[i]);
      free (dnat);
      dnat = next;
    }
  return xasprintf ("[%s,%s%s]", head, dnat, tail);
}

/* The expression-level encoding of the table in docs/networking.md
 * ("nftables"), in order. */
static void
check_nft_expressions (int ns_fd, const char *pod_ip)
{
  cleanup_free char *out = NULL;
  cleanup_free char *cmp_pod = NULL;
  unsigned a, b, c, d;
  const char *p;

  assert_int_equal (sscanf (pod_ip, "%u.%u.%u.%u", &a, &b, &c, &d), 4);
  cmp_pod = xasprintf ("[ cmp eq reg 1 0x%02x%02x%02x%02x ]", d, c, b, a);
  if (nt_cmd (ns_fd, &out, "nft", "--debug=netlink", "list", "table", "ip",
              "ateom_actor", NULL) != 0)
    fail_msg ("nft --debug=netlink: %s", out);
  const char *want[] = {
    "ip ateom_actor prerouting",
    "[ payload load 4b @ network header + 16 => reg 1 ]",
    cmp_pod,
    "[ meta load l4proto => reg 1 ]",
    "[ cmp eq reg 1 0x00000006 ]",
    "[ payload load 2b @ transport header + 2 => reg 1 ]",
    "[ cmp eq reg 1 0x00005000 ]",
    "[ immediate reg 1 0x0211fea9 ]",
    "[ immediate reg 2 0x00005000 ]",
    "[ nat dnat ip addr_min reg 1 ",
    "ip ateom_actor postrouting",
    "[ payload load 4b @ network header + 12 => reg 1 ]",
    "[ cmp eq reg 1 0x0211fea9 ]",
    "[ masq ]",
    "ip ateom_actor forward",
    "[ immediate reg 0 accept ]",
  };
  p = out;
  for (size_t i = 0; i < ATE_N_ELEMENTS (want); i++)
    {
      const char *at = strstr (p, want[i]);
      if (at == NULL)
        fail_msg ("`%s` missing (in order) in:\n%s", want[i], out);
      p = at + strlen (want[i]);
    }
}

static void
check_routes (int interior_fd)
{
  cleanup_json struct json_object *routes = ip_json (interior_fd, "-4", "route",
                                                     "show", NULL, NULL);
  expect_json_equal (
      routes,
      "[{\"dst\":\"default\",\"gateway\":\"169.254.17.1\",\"dev\":\"eth0\","
      "\"flags\":[]},"
      "{\"dst\":\"169.254.17.0/30\",\"dev\":\"eth0\",\"protocol\":\"kernel\","
      "\"scope\":\"link\",\"prefsrc\":\"169.254.17.2\",\"flags\":[]}]");
}

void
nc_check_actor_network (struct nt_pod *pod, const uint16_t *ports, size_t n,
                        int n_taps)
{
  cleanup_close int interior = nt_pod_interior_fd (pod);
  cleanup_json struct json_object *table = NULL;
  cleanup_free char *want = NULL;
  struct nt_link lo;

  /* Pod side. */
  expect_link (pod->pod_fd, "ateom0", "veth", "02:a8:1e:00:00:01", pod->mtu);
  expect_only_ipv4 (pod->pod_fd, "ateom0", "169.254.17.1", "169.254.17.3");
  assert_false (nt_link_get (pod->pod_fd, "ateom1", NULL));
  assert_int_equal (nc_ip_forward (pod->pod_fd), 1);
  table = nc_actor_table (pod->pod_fd);
  want = expected_table (pod->pod_ip, ports, n);
  expect_json_equal (table, want);
  check_nft_expressions (pod->pod_fd, pod->pod_ip);

  /* Interior side: lo, eth0 and the taps, nothing else. */
  assert_int_equal (nt_link_count (interior), 2 + n_taps);
  assert_true (nt_link_get (interior, "lo", &lo));
  assert_true (lo.flags & IFF_UP);
  expect_link (interior, "eth0", "veth", NULL, pod->mtu);
  expect_only_ipv4 (interior, "eth0", "169.254.17.2", "169.254.17.3");
  check_routes (interior);
}

/* ---- tc --------------------------------------------------------------- */

struct redirect
{
  int count;  /* filters with a mirred action */
  int target; /* ifindex of the last one */
  bool exact; /* every one of them is exactly the documented filter */
};

static void
redirects_of (struct nl_sock *sk, int ifindex, struct redirect *r)
{
  struct nl_cache *cache = NULL;
  struct nl_object *o;

  memset (r, 0, sizeof (*r));
  r->exact = true;
  if (rtnl_cls_alloc_cache (sk, ifindex, TC_H_MAKE (0xffffU << 16, 0), &cache) < 0)
    return; /* no ingress qdisc */
  for (o = nl_cache_get_first (cache); o; o = nl_cache_get_next (o))
    {
      struct rtnl_cls *cls = (struct rtnl_cls *) o;
      struct rtnl_act *act = rtnl_u32_get_action (cls);
      uint32_t classid = 0, val = 1, mask = 1;
      int off = 1, offmask = 1;

      if (act == NULL)
        continue; /* the u32 hash table entry */
      r->count++;
      r->target = (int) rtnl_mirred_get_ifindex (act);
      rtnl_u32_get_classid (cls, &classid);
      rtnl_u32_get_key (cls, 0, &val, &mask, &off, &offmask);
      if (strcmp (rtnl_tc_get_kind (TC_CAST (cls)), "u32") != 0
          || rtnl_cls_get_prio (cls) != 1
          || rtnl_cls_get_protocol (cls) != ETH_P_ALL
          || classid != TC_H_MAKE (1U << 16, 1) || val != 0 || mask != 0
          || off != 0 || offmask != 0
          || strcmp (rtnl_tc_get_kind (TC_CAST (act)), "mirred") != 0
          || rtnl_mirred_get_action (act) != TCA_EGRESS_REDIR
          || rtnl_mirred_get_policy (act) != TC_ACT_STOLEN
          || rtnl_act_next (act) != NULL)
        r->exact = false;
    }
  nl_cache_free (cache);
}

int
nc_redirect_count (int ns_fd, const char *dev, int *target)
{
  struct nl_sock *sk = nt_nl (ns_fd);
  struct nt_link l;
  struct redirect r = { 0 };

  if (nt_link_get (ns_fd, dev, &l))
    redirects_of (sk, l.ifindex, &r);
  nl_socket_free (sk);
  if (target)
    *target = r.target;
  return r.count;
}

/* Ingress qdiscs exist exactly on the given ifindexes. */
static void
check_ingress_qdiscs (struct nl_sock *sk, int a, int b)
{
  struct nl_cache *cache = NULL;
  struct nl_object *o;
  int seen_a = 0, seen_b = 0;

  assert_int_equal (rtnl_qdisc_alloc_cache (sk, &cache), 0);
  for (o = nl_cache_get_first (cache); o; o = nl_cache_get_next (o))
    {
      struct rtnl_tc *tc = TC_CAST (o);
      if (strcmp (rtnl_tc_get_kind (tc), "ingress") != 0)
        continue;
      assert_int_equal (rtnl_tc_get_handle (tc), 0xffff0000U);
      assert_int_equal (rtnl_tc_get_parent (tc), TC_H_INGRESS);
      if (rtnl_tc_get_ifindex (tc) == a)
        seen_a++;
      else if (rtnl_tc_get_ifindex (tc) == b)
        seen_b++;
      else
        fail_msg ("unexpected ingress qdisc on link %d", rtnl_tc_get_ifindex (tc));
    }
  nl_cache_free (cache);
  assert_int_equal (seen_a, 1);
  assert_int_equal (seen_b, 1);
}

bool
nc_has_ingress_qdisc (int ns_fd, const char *dev)
{
  struct nl_sock *sk = nt_nl (ns_fd);
  struct nl_cache *cache = NULL;
  struct nl_object *o;
  struct nt_link l;
  bool found = false;

  assert_true (nt_link_get (ns_fd, dev, &l));
  assert_int_equal (rtnl_qdisc_alloc_cache (sk, &cache), 0);
  for (o = nl_cache_get_first (cache); o; o = nl_cache_get_next (o))
    if (rtnl_tc_get_ifindex (TC_CAST (o)) == l.ifindex
        && strcmp (rtnl_tc_get_kind (TC_CAST (o)), "ingress") == 0)
      found = true;
  nl_cache_free (cache);
  nl_socket_free (sk);
  return found;
}

/* What only `tc` shows: the terminal flag ("*flowid") and the key. */
static void
check_tc_text (int ns_fd, const char *dev, const char *peer)
{
  cleanup_free char *out = NULL;
  cleanup_free char *mirred = xasprintf ("mirred (Egress Redirect to device %s) stolen",
                                         peer);

  if (nt_cmd (ns_fd, &out, "tc", "-d", "filter", "show", "dev", dev, "ingress",
              NULL) != 0)
    fail_msg ("tc filter show: %s", out);
  if (!strstr (out, "protocol all pref 1 u32") || !strstr (out, "*flowid 1:1")
      || !strstr (out, "match 00000000/00000000 at 0") || !strstr (out, mirred))
    fail_msg ("unexpected filters on %s:\n%s", dev, out);
}

static void
check_tap_link (int ns_fd, const char *name, unsigned int queue_pairs,
                unsigned int mtu)
{
  cleanup_json struct json_object *o = ip_json (ns_fd, "-d", "link", "show",
                                                "dev", name);
  struct json_object *link = json_object_array_get_idx (o, 0), *li, *d, *v;

  expect_link (ns_fd, name, "tun", NULL, mtu);
  assert_true (json_object_object_get_ex (link, "linkinfo", &li));
  assert_true (json_object_object_get_ex (li, "info_data", &d));
  assert_string_equal (ate_json_get_string (d, "type"), "tap");
  assert_true (json_object_object_get_ex (d, "pi", &v) && !json_object_get_boolean (v));
  assert_true (json_object_object_get_ex (d, "vnet_hdr", &v) && json_object_get_boolean (v));
  assert_true (json_object_object_get_ex (d, "persist", &v) && json_object_get_boolean (v));
  assert_true (json_object_object_get_ex (d, "multi_queue", &v));
  assert_int_equal (json_object_get_boolean (v), queue_pairs > 1);
  assert_string_equal (ate_json_get_string (d, "user"), "root");
  assert_string_equal (ate_json_get_string (d, "group"), "root");
}

static void
check_tap_fds (const char *name, unsigned int queue_pairs, const int *fds,
               size_t nfds)
{
  assert_int_equal (nfds, queue_pairs);
  for (size_t i = 0; i < nfds; i++)
    {
      struct ifreq ifr;
      memset (&ifr, 0, sizeof (ifr));
      assert_true (fds[i] >= 0);
      assert_true (fcntl (fds[i], F_GETFL) & O_NONBLOCK);
      assert_true (fcntl (fds[i], F_GETFD) & FD_CLOEXEC);
      assert_int_equal (ioctl (fds[i], TUNGETIFF, &ifr), 0);
      assert_string_equal (ifr.ifr_name, name);
      assert_int_equal (ifr.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
                        IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
      assert_int_equal (!!(ifr.ifr_flags & IFF_MULTI_QUEUE), queue_pairs > 1);
    }
}

void
nc_check_tap (struct nt_pod *pod, const char *name, unsigned int queue_pairs,
              unsigned int mtu, const int *fds, size_t nfds)
{
  cleanup_close int interior = nt_pod_interior_fd (pod);
  struct nl_sock *sk = nt_nl (interior);
  struct nt_link eth0, tap;
  struct redirect r;

  check_tap_fds (name, queue_pairs, fds, nfds);
  check_tap_link (interior, name, queue_pairs, mtu);
  assert_true (nt_link_get (interior, "eth0", &eth0));
  assert_true (nt_link_get (interior, name, &tap));
  check_ingress_qdiscs (sk, eth0.ifindex, tap.ifindex);

  redirects_of (sk, eth0.ifindex, &r);
  assert_int_equal (r.count, 1);
  assert_int_equal (r.target, tap.ifindex);
  assert_true (r.exact);
  redirects_of (sk, tap.ifindex, &r);
  assert_int_equal (r.count, 1);
  assert_int_equal (r.target, eth0.ifindex);
  assert_true (r.exact);
  nl_socket_free (sk);

  check_tc_text (interior, "eth0", name);
  check_tc_text (interior, name, "eth0");
}

void
nc_check_clean (struct nt_pod *pod)
{
  cleanup_close int interior = nt_pod_interior_fd (pod);
  cleanup_json struct json_object *table = nc_actor_table (pod->pod_fd);

  assert_false (nt_link_get (pod->pod_fd, "ateom0", NULL));
  assert_false (nt_link_get (pod->pod_fd, "ateom1", NULL));
  assert_int_equal (json_object_array_length (table), 0);
  if (nt_link_count (interior) != 1)
    {
      cleanup_free char *out = NULL;
      nt_cmd (interior, &out, "ip", "-br", "link", NULL);
      fail_msg ("interior namespace not empty:\n%s", out);
    }
}
