/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net_fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/nl.h"
#include "net/ns.h"
#include "util/error.h"
#include "util/json.h"
#include "util/util.h"

static int host_fd = -1;
static unsigned int pod_counter;

static int
job_probe_unshare (void *arg, struct ate_error **err)
{
  (void) arg;
  if (unshare (CLONE_NEWNET) < 0)
    return ate_error_make (err, errno, "unshare(CLONE_NEWNET)");
  return 0;
}

void
nt_init_or_skip (const char *test_name)
{
  struct ate_error *err = NULL;

  if (geteuid () != 0)
    {
      printf ("%s: skipped: needs root for network namespaces\n", test_name);
      exit (77);
    }
  if (access ("/dev/net/tun", R_OK | W_OK) != 0)
    {
      printf ("%s: skipped: no /dev/net/tun\n", test_name);
      exit (77);
    }
  /* Private mounts: the interior namespaces' bind mounts vanish with this
   * process even if it crashes.  Only possible while single-threaded. */
  if (unshare (CLONE_NEWNS) < 0
      || mount ("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
    printf ("%s: note: no private mount namespace (%s); relying on cleanup\n",
            test_name, strerror (errno));
  host_fd = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (host_fd < 0)
    {
      printf ("%s: skipped: cannot open own network namespace\n", test_name);
      exit (77);
    }
  if (net_ns_run (-1, host_fd, job_probe_unshare, NULL, &err) < 0)
    {
      printf ("%s: skipped: %s\n", test_name, err->msg);
      ate_error_free (err);
      exit (77);
    }
}

int
nt_host_fd (void)
{
  return host_fd;
}

static int
job_new_ns (void *arg, struct ate_error **err)
{
  int *fd = arg;
  if (unshare (CLONE_NEWNET) < 0)
    return ate_error_make (err, errno, "unshare(CLONE_NEWNET)");
  *fd = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*fd < 0)
    return ate_error_make (err, errno, "open own netns");
  return 0;
}

int
nt_ns_new (void)
{
  int fd = -1;
  nt_in_ns (-1, job_new_ns, &fd);
  assert_true (fd >= 0);
  return fd;
}

void
nt_in_ns (int ns_fd, int (*fn) (void *arg, struct ate_error **err), void *arg)
{
  struct ate_error *err = NULL;
  if (net_ns_run (ns_fd, host_fd, fn, arg, &err) < 0)
    fail_msg ("in test namespace: %s", err ? err->msg : "?");
}

static int
job_nl (void *arg, struct ate_error **err)
{
  return net_nl_open (arg, err);
}

struct nl_sock *
nt_nl (int ns_fd)
{
  struct nl_sock *sk = NULL;
  nt_in_ns (ns_fd, job_nl, &sk);
  return sk;
}

struct sock_job
{
  int domain, type, fd;
};

static int
job_socket (void *arg, struct ate_error **err)
{
  struct sock_job *j = arg;
  j->fd = socket (j->domain, j->type | SOCK_CLOEXEC, 0);
  if (j->fd < 0)
    return ate_error_make (err, errno, "socket");
  return 0;
}

int
nt_socket (int ns_fd, int domain, int type)
{
  struct sock_job j = { .domain = domain, .type = type, .fd = -1 };
  nt_in_ns (ns_fd, job_socket, &j);
  return j.fd;
}

/* PATH lookup in the parent: the child only makes async-signal-safe calls. */
static char *
find_program (const char *name)
{
  const char *path = getenv ("PATH");
  cleanup_free char *copy = xstrdup (path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  char *save = NULL;

  for (char *d = strtok_r (copy, ":", &save); d; d = strtok_r (NULL, ":", &save))
    {
      char *full = xasprintf ("%s/%s", d, name);
      if (access (full, X_OK) == 0)
        return full;
      free (full);
    }
  fail_msg ("%s not found in PATH", name);
  return NULL;
}

/* fork + setns + exec, and waitpid: the fixture's own small spawner (the
 * tests also run under valgrind, which lacks pidfd_open). */
int
nt_cmd (int ns_fd, char **out, const char *arg0, ...)
{
  const char *argv[32];
  cleanup_free char *exe = find_program (arg0);
  size_t n = 0, used = 0, cap = 4096;
  char *buf = xmalloc (cap);
  int pipefd[2], status = 0;
  va_list ap;
  pid_t pid;

  argv[n++] = arg0;
  va_start (ap, arg0);
  while (n < ATE_N_ELEMENTS (argv) - 1 && (argv[n] = va_arg (ap, const char *)))
    n++;
  va_end (ap);
  argv[n] = NULL;

  assert_int_equal (pipe2 (pipefd, O_CLOEXEC), 0);
  pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      int devnull = open ("/dev/null", O_RDONLY);
      if (devnull < 0 || dup2 (devnull, 0) < 0 || dup2 (pipefd[1], 1) < 0
          || dup2 (pipefd[1], 2) < 0 || setns (ns_fd, CLONE_NEWNET) < 0)
        _exit (126);
      execv (exe, (char *const *) argv);
      _exit (127);
    }
  close (pipefd[1]);
  for (;;)
    {
      ssize_t r;
      if (used + 1024 > cap)
        buf = xrealloc (buf, cap *= 2);
      r = read (pipefd[0], buf + used, cap - used - 1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      used += (size_t) r;
    }
  buf[used] = '\0';
  close (pipefd[0]);
  while (waitpid (pid, &status, 0) < 0)
    assert_int_equal (errno, EINTR);
  if (out)
    *out = buf;
  else
    free (buf);
  if (!WIFEXITED (status))
    return 128 + (WIFSIGNALED (status) ? WTERMSIG (status) : 0);
  return WEXITSTATUS (status);
}

struct json_object *
nt_nft_ruleset (int ns_fd)
{
  cleanup_free char *out = NULL;
  struct json_object *o = NULL;
  struct ate_error *err = NULL;

  if (nt_cmd (ns_fd, &out, "nft", "-j", "list", "ruleset", NULL) != 0)
    fail_msg ("nft -j list ruleset: %s", out);
  if (ate_json_parse (out, strlen (out), 64, &o, &err) < 0)
    fail_msg ("nft output is not JSON: %s: %s", err->msg, out);
  return o;
}

int
nt_nft_object_count (int ns_fd)
{
  cleanup_json struct json_object *o = nt_nft_ruleset (ns_fd);
  struct json_object *arr = NULL;
  int n = 0;

  assert_true (json_object_object_get_ex (o, "nftables", &arr));
  for (size_t i = 0; i < json_object_array_length (arr); i++)
    if (!json_object_object_get_ex (json_object_array_get_idx (arr, i),
                                    "metainfo", NULL))
      n++;
  return n;
}

bool
nt_link_get (int ns_fd, const char *name, struct nt_link *out)
{
  struct nl_sock *sk = nt_nl (ns_fd);
  struct rtnl_link *l = NULL;
  int r = rtnl_link_get_kernel (sk, 0, name, &l);

  nl_socket_free (sk);
  if (r == -NLE_NODEV || r == -NLE_OBJ_NOTFOUND)
    return false;
  if (r < 0)
    fail_msg ("look up %s: %s", name, nl_geterror (r));
  if (out)
    {
      struct nl_addr *mac = rtnl_link_get_addr (l);
      const char *kind = rtnl_link_get_type (l);
      memset (out, 0, sizeof (*out));
      out->ifindex = rtnl_link_get_ifindex (l);
      out->mtu = rtnl_link_get_mtu (l);
      out->flags = rtnl_link_get_flags (l);
      if (mac)
        nl_addr2str (mac, out->mac, sizeof (out->mac));
      snprintf (out->kind, sizeof (out->kind), "%s", kind ? kind : "");
    }
  rtnl_link_put (l);
  return true;
}

int
nt_link_count (int ns_fd)
{
  struct nl_sock *sk = nt_nl (ns_fd);
  struct nl_cache *cache = NULL;
  int n;

  assert_int_equal (rtnl_link_alloc_cache (sk, AF_UNSPEC, &cache), 0);
  n = nl_cache_nitems (cache);
  nl_cache_free (cache);
  nl_socket_free (sk);
  return n;
}

/* ---- pods ------------------------------------------------------------- */

struct pod_job
{
  struct nt_pod *pod;
  const struct nt_pod_opts *opts;
};

static int
job_pod_links (void *arg, struct ate_error **err)
{
  struct pod_job *j = arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  struct net_link_attrs a;
  const bool client = j->opts->with_client;

  if (net_nl_open (&sk, err) < 0)
    return -1;
  if (net_link_lookup (sk, "lo", 0, &a, err) <= 0
      || net_link_set_up (sk, a.ifindex, 0, err) < 0)
    return -1;
  if (j->opts->no_eth0)
    return 0;
  if (net_veth_create (sk, "eth0", "02:00:00:77:00:01", client ? "cl0" : "eth0p",
                       client ? j->pod->client_fd : j->pod->pod_fd,
                       j->pod->mtu, err) < 0
      || net_link_lookup (sk, "eth0", 0, &a, err) <= 0)
    return -1;
  if (!j->opts->no_ipv4
      && net_addr_replace_v4 (sk, a.ifindex, j->pod->pod_ip, 24, err) < 0)
    return -1;
  if (net_link_set_up (sk, a.ifindex, 0, err) < 0)
    return -1;
  if (!client
      && (net_link_lookup (sk, "eth0p", 0, &a, err) <= 0
          || net_link_set_up (sk, a.ifindex, 0, err) < 0))
    return -1;
  return 0;
}

static int
job_client_links (void *arg, struct ate_error **err)
{
  struct pod_job *j = arg;
  cleanup_nl_sock struct nl_sock *sk = NULL;
  struct net_link_attrs a;

  if (net_nl_open (&sk, err) < 0)
    return -1;
  if (net_link_lookup (sk, "lo", 0, &a, err) <= 0
      || net_link_set_up (sk, a.ifindex, 0, err) < 0
      || net_link_lookup (sk, "cl0", 0, &a, err) <= 0
      || net_addr_replace_v4 (sk, a.ifindex, j->pod->client_ip, 24, err) < 0
      || net_link_set_up (sk, a.ifindex, 0, err) < 0)
    return -1;
  return 0;
}

struct ctx_job
{
  struct nt_pod *pod;
  const struct nt_pod_opts *opts;
  struct net_ctx *ctx;
};

static int
job_ctx_new (void *arg, struct ate_error **err)
{
  struct ctx_job *j = arg;
  struct net_config cfg = {
    .netns_dir = j->pod->netns_dir,
    .netns_name = j->pod->netns_name,
    .ingress_ports = j->opts ? j->opts->ports : NULL,
    .n_ingress_ports = j->opts ? j->opts->n_ports : 0,
  };
  return net_ctx_new (&cfg, &j->ctx, err);
}

void
nt_pod_new (struct nt_pod *pod, const struct nt_pod_opts *opts)
{
  static const struct nt_pod_opts none;
  char tmpl[] = "/tmp/ate-net-test-XXXXXX";
  struct pod_job pj = { .pod = pod, .opts = opts ? opts : &none };
  struct ctx_job cj = { .pod = pod, .opts = pj.opts };

  memset (pod, 0, sizeof (*pod));
  pod->pod_fd = pod->client_fd = -1;
  pod->mtu = pj.opts->mtu ? pj.opts->mtu : 1400;
  snprintf (pod->pod_ip, sizeof (pod->pod_ip), "10.77.0.1");
  snprintf (pod->client_ip, sizeof (pod->client_ip), "10.77.0.2");
  assert_non_null (mkdtemp (tmpl));
  pod->netns_dir = xstrdup (tmpl);
  pod->netns_name = xasprintf ("ateom:nt-%d-%u", (int) getpid (), ++pod_counter);
  pod->netns_path = xasprintf ("%s/%s", pod->netns_dir, pod->netns_name);

  pod->pod_fd = nt_ns_new ();
  if (pj.opts->with_client)
    pod->client_fd = nt_ns_new ();
  nt_in_ns (pod->pod_fd, job_pod_links, &pj);
  if (pj.opts->with_client)
    nt_in_ns (pod->client_fd, job_client_links, &pj);
  nt_in_ns (pod->pod_fd, job_ctx_new, &cj);
  pod->ctx = cj.ctx;
}

struct net_ctx *
nt_pod_ctx_again (struct nt_pod *pod)
{
  struct ctx_job cj = { .pod = pod };
  nt_in_ns (pod->pod_fd, job_ctx_new, &cj);
  return cj.ctx;
}

bool
nt_pod_free (struct nt_pod *pod)
{
  struct ate_error *err = NULL;
  bool ok = true;

  /* Runs from cmocka teardowns, also after a failed assertion: report and
   * keep going, so that nothing stays behind. */
  if (pod->ctx)
    {
      if (net_actor_cleanup (pod->ctx, &err) < 0)
        {
          fprintf (stderr, "teardown: cleanup: %s\n", err->msg);
          ate_error_release (&err);
          ok = false;
        }
      if (net_ctx_destroy_netns (pod->ctx, &err) < 0)
        {
          fprintf (stderr, "teardown: destroy netns: %s\n", err->msg);
          ate_error_release (&err);
          ok = false;
        }
      net_ctx_free (pod->ctx);
    }
  else if (pod->netns_path)
    net_ns_remove (pod->netns_path, NULL);
  close_and_reset (&pod->pod_fd);
  close_and_reset (&pod->client_fd);
  if (pod->netns_dir && rmdir (pod->netns_dir) < 0)
    {
      fprintf (stderr, "teardown: rmdir %s: %s\n", pod->netns_dir,
               strerror (errno));
      ok = false;
    }
  free (pod->netns_dir);
  free (pod->netns_name);
  free (pod->netns_path);
  memset (pod, 0, sizeof (*pod));
  pod->pod_fd = pod->client_fd = -1;
  return ok;
}

int
nt_pod_interior_fd (const struct nt_pod *pod)
{
  int fd = open (pod->netns_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail_msg ("open %s: %s", pod->netns_path, strerror (errno));
  return fd;
}

int
nt_fd_count (void)
{
  DIR *d = opendir ("/proc/self/fd");
  struct dirent *de;
  int n = 0;

  assert_non_null (d);
  while ((de = readdir (d)))
    if (de->d_name[0] != '.')
      n++;
  closedir (d);
  return n - 1; /* the directory's own fd */
}
