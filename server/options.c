/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/error.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/util.h"
#include "util/validate.h"

enum flag_type
{
  FLAG_STRING,
  FLAG_BOOL,
  FLAG_SECONDS,
};

struct flag_def
{
  const char *name;
  enum flag_type type;
  size_t offset;
  const char *arg;  /* placeholder in the usage text */
  const char *help;
};

#define OPT(field) offsetof (struct server_options, field)

static const struct flag_def flags[] = {
  { "pod-uid", FLAG_STRING, OPT (pod_uid), "UID",
    "UID of the worker pod (required). Names the socket directory\n"
    "<base-path>/ateoms/<UID>/, the socket ateom.sock in it and the\n"
    "interior network namespace ateom:<UID>." },
  { "cloud-hypervisor-binary", FLAG_STRING, OPT (ch_binary), "PATH",
    "cloud-hypervisor to run when a request has no \"cloud-hypervisor\"\n"
    "runtime asset (default \"cloud-hypervisor\", looked up in PATH)." },
  { "kata-config", FLAG_STRING, OPT (kata_config), "PATH",
    "kata configuration.toml to read guest memory, vCPUs and kernel\n"
    "parameters from when a request has no \"kata-config\" asset." },
  { "kata-debug", FLAG_BOOL, OPT (kata_debug), NULL,
    "Boot guests with agent debug logging and the agent's debug console\n"
    "on vsock port 1026 (changes the guest command line: snapshots taken\n"
    "with and without it are not interchangeable)." },
  { "base-path", FLAG_STRING, OPT (base_path), "DIR",
    "State shared with atelet (default " ATE_DEFAULT_BASE_PATH ")." },
  { "run-dir", FLAG_STRING, OPT (run_dir), "DIR",
    "Per-VM runtime directories (default " ATE_DEFAULT_RUN_DIR ")." },
  { "log-level", FLAG_STRING, OPT (log_level), "LEVEL",
    "debug, info, warn or error (default info)." },
  { "shutdown-grace", FLAG_SECONDS, OPT (shutdown_grace_s), "SECONDS",
    "On SIGTERM/SIGINT, how long in-flight RPCs may run before they are\n"
    "cancelled (default 15: with the cancellation wait and the teardown it\n"
    "fits in a pod's default 30 s termination grace period)." },
  { "restore-memory-mode", FLAG_STRING, OPT (restore_memory_mode), "MODE",
    "How vm.restore fills guest memory: auto (default: by cloud-hypervisor\n"
    "version: v51 Copy, v52 OnDemand, v53+ Copy), copy or ondemand." },
  { "ingress-ports", FLAG_STRING, OPT (ingress_ports_text), "PORTS",
    "Comma-separated TCP ports of the pod IP forwarded to the actor\n"
    "(default 80; \"none\" for no ingress)." },
  { "ship-golden-disk", FLAG_BOOL, OPT (ship_golden_disk), NULL,
    "List the lineage's golden rootfs disk among a checkpoint's files\n"
    "(golden-rootfs.ext4, sparse) so restores on other nodes reset to it\n"
    "instead of rebuilding it from the image." },
  { "rootfs-cache-size", FLAG_STRING, OPT (rootfs_cache_size_text), "SIZE",
    "Bound of the rootfs image cache under <base-path>/rootfs-cache, e.g.\n"
    "20GiB, 512MiB, 0 to disable (default 20GiB)." },
  { "resolv-conf", FLAG_STRING, OPT (resolv_conf), "PATH",
    "resolv.conf copied into every container rootfs for guest DNS\n"
    "(default /etc/resolv.conf, the pod's)." },
  { "detect-gce", FLAG_BOOL, OPT (detect_gce), NULL,
    "Probe for GCE at start-up to label actor logs for Cloud Logging\n"
    "(default true; GCE_METADATA_HOST set means GCE)." },
  { "netns-dir", FLAG_STRING, OPT (netns_dir), "DIR",
    "Where the interior network namespace is bind-mounted (default\n"
    "/run/netns)." },
  { "kata-run-dir", FLAG_STRING, OPT (kata_run_dir), "DIR",
    "kata's runtime directory swept for stale sandbox state (default\n"
    "/run/kata-containers)." },
  { "version", FLAG_BOOL, OPT (version), NULL, "Print the version and exit." },
  { "help", FLAG_BOOL, OPT (help), NULL, "Print this help and exit." },
};

void
server_options_init (struct server_options *o)
{
  memset (o, 0, sizeof (*o));
  o->ch_binary = xstrdup ("cloud-hypervisor");
  o->kata_config = xstrdup ("");
  o->pod_uid = xstrdup ("");
  o->base_path = xstrdup (ATE_DEFAULT_BASE_PATH);
  o->run_dir = xstrdup (ATE_DEFAULT_RUN_DIR);
  o->log_level = xstrdup ("info");
  o->shutdown_grace_s = 15;
  o->restore_memory_mode = xstrdup ("auto");
  o->ingress_ports_text = xstrdup ("80");
  o->rootfs_cache_size_text = xstrdup ("20GiB");
  o->resolv_conf = xstrdup ("/etc/resolv.conf");
  o->detect_gce = true;
  o->netns_dir = xstrdup (ATE_DEFAULT_NETNS_DIR);
  o->kata_run_dir = xstrdup (ATE_DEFAULT_KATA_RUN_DIR);
}

void
server_options_free (struct server_options *o)
{
  free (o->pod_uid);
  free (o->ch_binary);
  free (o->kata_config);
  free (o->base_path);
  free (o->run_dir);
  free (o->log_level);
  free (o->restore_memory_mode);
  free (o->ingress_ports_text);
  free (o->rootfs_cache_size_text);
  free (o->resolv_conf);
  free (o->netns_dir);
  free (o->kata_run_dir);
  memset (o, 0, sizeof (*o));
}

static const struct flag_def *
find_flag (const char *name, size_t len)
{
  for (size_t i = 0; i < ATE_N_ELEMENTS (flags); i++)
    if (strlen (flags[i].name) == len && strncmp (flags[i].name, name, len) == 0)
      return &flags[i];
  if ((len == 1 && name[0] == 'h'))
    return find_flag ("help", 4);
  return NULL;
}

static int
set_flag (struct server_options *o, const struct flag_def *f, const char *value,
          bool has_value, struct ate_error **err)
{
  void *target = (char *) o + f->offset;

  switch (f->type)
    {
    case FLAG_BOOL:
      {
        bool *b = target;
        if (!has_value || strcmp (value, "true") == 0 || strcmp (value, "1") == 0)
          *b = true;
        else if (strcmp (value, "false") == 0 || strcmp (value, "0") == 0)
          *b = false;
        else
          return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                      "invalid boolean value \"%s\" for -%s", value, f->name);
        return 0;
      }
    case FLAG_STRING:
      {
        char **s = target;
        free (*s);
        *s = xstrdup (value);
        return 0;
      }
    case FLAG_SECONDS:
      {
        char *end = NULL;
        long *l = target;
        errno = 0;
        long v = strtol (value, &end, 10);
        if (errno || end == value || *end != '\0' || v < 0 || v > 86400)
          return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                      "invalid value \"%s\" for -%s: want seconds 0..86400",
                                      value, f->name);
        *l = v;
        return 0;
      }
    }
  return 0;
}

int
server_options_parse (struct server_options *o, int argc, char *const argv[],
                      struct ate_error **err)
{
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      const char *name, *eq;
      const struct flag_def *f;

      if (a[0] != '-' || a[1] == '\0')
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "unexpected argument \"%s\" (ateom-microvm takes only flags)", a);
      if (strcmp (a, "--") == 0)
        {
          if (i + 1 < argc)
            return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                        "unexpected argument \"%s\"", argv[i + 1]);
          break;
        }
      name = a + 1;
      if (*name == '-')
        name++;
      if (*name == '-' || *name == '=')
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "bad flag syntax: %s", a);
      eq = strchr (name, '=');
      f = find_flag (name, eq ? (size_t) (eq - name) : strlen (name));
      if (f == NULL)
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "flag provided but not defined: -%.*s",
                                    (int) (eq ? eq - name : (ptrdiff_t) strlen (name)), name);
      if (eq)
        {
          if (set_flag (o, f, eq + 1, true, err) < 0)
            return -1;
          continue;
        }
      if (f->type == FLAG_BOOL)
        {
          if (set_flag (o, f, NULL, false, err) < 0)
            return -1;
          continue;
        }
      if (i + 1 >= argc)
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "flag needs an argument: -%s", f->name);
      if (set_flag (o, f, argv[++i], true, err) < 0)
        return -1;
    }
  return 0;
}

static int
parse_ports (struct server_options *o, struct ate_error **err)
{
  cleanup_free char *copy = xstrdup (o->ingress_ports_text);
  char *save = NULL;

  o->n_ingress_ports = 0;
  if (strcmp (copy, "none") == 0)
    return 0;
  for (char *tok = strtok_r (copy, ",", &save); tok; tok = strtok_r (NULL, ",", &save))
    {
      char *end = NULL;
      errno = 0;
      long p = strtol (tok, &end, 10);
      if (errno || end == tok || *end != '\0' || p < 1 || p > 65535)
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "--ingress-ports: \"%s\" is not a port 1..65535", tok);
      for (size_t i = 0; i < o->n_ingress_ports; i++)
        if (o->ingress_ports[i] == p)
          return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                      "--ingress-ports: %ld is listed twice", p);
      if (o->n_ingress_ports == ATE_N_ELEMENTS (o->ingress_ports))
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "--ingress-ports: at most %zu ports",
                                    ATE_N_ELEMENTS (o->ingress_ports));
      o->ingress_ports[o->n_ingress_ports++] = (uint16_t) p;
    }
  if (o->n_ingress_ports == 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--ingress-ports is empty (use \"none\" for no ingress)");
  return 0;
}

/* "20GiB", "512MiB", "1G", "0", plain bytes. */
static int
parse_size (const char *flag, const char *text, uint64_t *out, struct ate_error **err)
{
  static const struct
  {
    const char *suffix;
    uint64_t mult;
  } units[] = { { "", 1 },           { "K", 1ULL << 10 },  { "KiB", 1ULL << 10 },
                { "M", 1ULL << 20 }, { "MiB", 1ULL << 20 }, { "G", 1ULL << 30 },
                { "GiB", 1ULL << 30 }, { "T", 1ULL << 40 }, { "TiB", 1ULL << 40 } };
  char *end = NULL;
  unsigned long long v;

  errno = 0;
  v = strtoull (text, &end, 10);
  if (errno || end == text || text[0] == '-')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "%s: bad size \"%s\"", flag,
                                text);
  for (size_t i = 0; i < ATE_N_ELEMENTS (units); i++)
    if (strcmp (end, units[i].suffix) == 0)
      {
        if (v > UINT64_MAX / units[i].mult)
          break;
        *out = v * units[i].mult;
        return 0;
      }
  return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                              "%s: bad size \"%s\" (want e.g. 20GiB, 512MiB, 0)", flag, text);
}

int
server_options_validate (const struct server_options *o_const, struct ate_error **err)
{
  struct server_options *o = (struct server_options *) o_const;
  enum ate_log_level lvl;
  const char *p;

  if (o->pod_uid[0] == '\0')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--pod-uid is required (the Deployment passes --pod-uid=$(POD_UID))");
  if (strlen (o->pod_uid) > 64)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--pod-uid is longer than 64 characters");
  for (p = o->pod_uid; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || *p == '-' || *p == '_' || *p == '.'))
      return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                  "--pod-uid \"%s\" may only contain letters, digits, '-', '_' and '.'",
                                  o->pod_uid);
  if (strcmp (o->pod_uid, ".") == 0 || strcmp (o->pod_uid, "..") == 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "--pod-uid \"%s\" is not a name",
                                o->pod_uid);
  if (ate_validate_abs_path ("--base-path", o->base_path, err) < 0
      || ate_validate_abs_path ("--run-dir", o->run_dir, err) < 0)
    return -1;
  if (o->kata_config[0] != '\0' && ate_validate_abs_path ("--kata-config", o->kata_config, err) < 0)
    return -1;
  if (o->ch_binary[0] == '\0')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--cloud-hypervisor-binary must not be empty");
  if (ate_log_parse_level (o->log_level, &lvl) < 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--log-level \"%s\": want debug, info, warn or error", o->log_level);
  if (strcasecmp (o->restore_memory_mode, "auto") != 0
      && strcasecmp (o->restore_memory_mode, "copy") != 0
      && strcasecmp (o->restore_memory_mode, "ondemand") != 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--restore-memory-mode \"%s\": want auto, copy or ondemand",
                                o->restore_memory_mode);
  if (parse_ports (o, err) < 0
      || parse_size ("--rootfs-cache-size", o->rootfs_cache_size_text, &o->rootfs_cache_size, err) < 0)
    return -1;
  if (ate_validate_abs_path ("--resolv-conf", o->resolv_conf, err) < 0
      || ate_validate_abs_path ("--netns-dir", o->netns_dir, err) < 0
      || ate_validate_abs_path ("--kata-run-dir", o->kata_run_dir, err) < 0)
    return -1;
  return 0;
}

void
server_options_usage (FILE *out)
{
  fprintf (out,
           "Usage: ateom-microvm --pod-uid=UID [flags]\n"
           "\n"
           "The micro-VM runtime server of agent-substrate. Serves the ateom gRPC\n"
           "service (RunWorkload, CheckpointWorkload, RestoreWorkload) and\n"
           "grpc.health.v1.Health on the unix socket\n"
           "<base-path>/ateoms/<pod-uid>/ateom.sock, booting, snapshotting and\n"
           "restoring cloud-hypervisor micro-VMs that run the kata guest.\n"
           "\n"
           "Flags (-flag and --flag are the same; values as --flag=v or --flag v;\n"
           "booleans as --flag or --flag=false):\n");
  for (size_t i = 0; i < ATE_N_ELEMENTS (flags); i++)
    {
      const struct flag_def *f = &flags[i];
      fprintf (out, "  --%s%s%s\n", f->name, f->arg ? " " : "", f->arg ? f->arg : "");
      for (const char *l = f->help; *l;)
        {
          const char *nl = strchr (l, '\n');
          int len = nl ? (int) (nl - l) : (int) strlen (l);
          fprintf (out, "        %.*s\n", len, l);
          l += len + (nl ? 1 : 0);
        }
    }
  fprintf (out,
           "\n"
           "Logs are JSON lines on stdout. SIGTERM or SIGINT stops accepting calls,\n"
           "lets in-flight calls finish (up to --shutdown-grace) and exits 0.\n");
}
