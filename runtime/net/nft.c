/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "net/nft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/net.h"
#include "util/error.h"
#include "util/util.h"

#define T "ip " NET_NFT_TABLE
#define NFT_ERROR_MAX 2048

/* libnftables keeps process-wide state (symbol tables, the gmp allocator
 * setup) that is not documented as thread-safe: one context at a time. */
static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;

static void
append (char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
append (char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
  va_list ap;
  int n;

  for (;;)
    {
      va_start (ap, fmt);
      n = vsnprintf (*buf + *len, *cap - *len, fmt, ap);
      va_end (ap);
      if (n < 0)
        abort (); /* only our own formats */
      if ((size_t) n < *cap - *len)
        break;
      *cap = (*cap + (size_t) n + 1) * 2;
      *buf = xrealloc (*buf, *cap);
    }
  *len += (size_t) n;
}

char *
net_nft_setup_script (const struct in_addr *pod_ip, const uint16_t *ports,
                      size_t n_ports, bool clamp_mss, bool inject_failure)
{
  char ip[INET_ADDRSTRLEN];
  size_t len = 0, cap = 1024;
  char *buf = xmalloc (cap);

  buf[0] = '\0';
  if (inet_ntop (AF_INET, pod_ip, ip, sizeof (ip)) == NULL)
    abort (); /* an in_addr always formats */

  /* "add; delete; add" replaces a table that may or may not exist inside
   * one transaction (nft 1.0.6 has no "destroy"). */
  append (&buf, &len, &cap, "add table " T "\ndelete table " T "\nadd table " T "\n");
  append (&buf, &len, &cap,
          "add chain " T " prerouting { type nat hook prerouting priority dstnat; policy accept; }\n");
  for (size_t i = 0; i < n_ports; i++)
    append (&buf, &len, &cap,
            "add rule " T " prerouting ip daddr %s tcp dport %u dnat to " NET_ACTOR_IP ":%u\n",
            ip, (unsigned) ports[i], (unsigned) ports[i]);
  append (&buf, &len, &cap,
          "add chain " T " postrouting { type nat hook postrouting priority srcnat; policy accept; }\n"
          "add rule " T " postrouting ip saddr " NET_ACTOR_IP " masquerade\n"
          "add chain " T " forward { type filter hook forward priority filter; policy accept; }\n");
  if (clamp_mss)
    append (&buf, &len, &cap,
            "add rule " T " forward tcp flags syn tcp option maxseg size set rt mtu\n");
  append (&buf, &len, &cap, "add rule " T " forward accept\n");
  if (inject_failure)
    append (&buf, &len, &cap,
            "add rule " T " forward jump ateom_injected_missing_chain\n");
  return buf;
}

const char *
net_nft_cleanup_script (void)
{
  return "add table " T "\ndelete table " T "\n";
}

/* nft's error output is the failing line with carets under it; keep the
 * "Error:" lines only, joined, bounded. */
static char *
nft_error_summary (const char *out)
{
  size_t len = 0, cap = 256;
  char *buf = xmalloc (cap);
  const char *line = out ? out : "";

  buf[0] = '\0';
  while (*line && len < NFT_ERROR_MAX)
    {
      const char *nl = strchrnul (line, '\n');
      const char *e = memmem (line, (size_t) (nl - line), "Error:", 6);
      if (e)
        append (&buf, &len, &cap, "%s%.*s", len ? "; " : "",
                (int) (nl - e), e);
      line = *nl ? nl + 1 : nl;
    }
  if (len == 0)
    append (&buf, &len, &cap, "no error text");
  if (len > NFT_ERROR_MAX)
    buf[NFT_ERROR_MAX] = '\0';
  return buf;
}

int
net_nft_run (const char *script, struct ate_error **err)
{
  struct nft_ctx *nft;
  int r, ret = 0;

  pthread_mutex_lock (&nft_lock);
  nft = nft_ctx_new (NFT_CTX_DEFAULT);
  if (nft == NULL)
    {
      pthread_mutex_unlock (&nft_lock);
      return ate_error_make (err, ENOMEM, "create nftables context");
    }
  if (nft_ctx_buffer_output (nft) < 0 || nft_ctx_buffer_error (nft) < 0)
    ret = ate_error_make (err, ENOMEM, "buffer nftables output");
  else
    {
      r = nft_run_cmd_from_buffer (nft, script);
      if (r != 0)
        {
          cleanup_free char *why = nft_error_summary (nft_ctx_get_error_buffer (nft));
          ret = ate_error_make (err, 0, "nftables: %s", why);
        }
    }
  nft_ctx_free (nft);
  pthread_mutex_unlock (&nft_lock);
  return ret;
}
