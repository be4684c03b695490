/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"
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

struct flag_def;
typedef int (*flag_check) (struct server_options *o, const struct flag_def *f,
                           struct ate_error **err);

struct flag_def
{
  const char *name;
  enum flag_type type;
  size_t offset;
  const char *arg;  /* placeholder in the usage text */
  const char *help;
  flag_check check; /* semantic check of the final value, or NULL */
  bool cmdline_only; /* not accepted in a configuration file */
};

#define OPT(field) offsetof (struct server_options, field)

static int check_pod_uid (struct server_options *o, const struct flag_def *f,
                          struct ate_error **err);
static int check_abs_path (struct server_options *o, const struct flag_def *f,
                           struct ate_error **err);
static int check_abs_path_or_empty (struct server_options *o, const struct flag_def *f,
                                    struct ate_error **err);
static int check_not_empty (struct server_options *o, const struct flag_def *f,
                            struct ate_error **err);
static int check_log_level (struct server_options *o, const struct flag_def *f,
                            struct ate_error **err);
static int check_restore_memory_mode (struct server_options *o, const struct flag_def *f,
                                      struct ate_error **err);
static int check_ingress_ports (struct server_options *o, const struct flag_def *f,
                                struct ate_error **err);
static int check_rootfs_cache_size (struct server_options *o, const struct flag_def *f,
                                    struct ate_error **err);

static const struct flag_def flags[] = {
  { "pod-uid", FLAG_STRING, OPT (pod_uid), "UID",
    "UID of the worker pod (required). Names the socket directory\n"
    "<base-path>/ateoms/<UID>/, the socket ateom.sock in it and the\n"
    "interior network namespace ateom:<UID>.",
    check_pod_uid, true },
  { "cloud-hypervisor-binary", FLAG_STRING, OPT (ch_binary), "PATH",
    "cloud-hypervisor to run when a request has no \"cloud-hypervisor\"\n"
    "runtime asset (default \"cloud-hypervisor\", looked up in PATH).",
    check_not_empty, false },
  { "kata-config", FLAG_STRING, OPT (kata_config), "PATH",
    "kata configuration.toml to read guest memory, vCPUs and kernel\n"
    "parameters from when a request has no \"kata-config\" asset.",
    check_abs_path_or_empty, false },
  { "kata-debug", FLAG_BOOL, OPT (kata_debug), NULL,
    "Boot guests with agent debug logging and the agent's debug console\n"
    "on vsock port 1026 (changes the guest command line: snapshots taken\n"
    "with and without it are not interchangeable).", NULL, false },
  { "base-path", FLAG_STRING, OPT (base_path), "DIR",
    "State shared with atelet (default " ATE_DEFAULT_BASE_PATH ").",
    check_abs_path, false },
  { "run-dir", FLAG_STRING, OPT (run_dir), "DIR",
    "Per-VM runtime directories (default " ATE_DEFAULT_RUN_DIR ").",
    check_abs_path, false },
  { "log-level", FLAG_STRING, OPT (log_level), "LEVEL",
    "debug, info, warn or error (default info).",
    check_log_level, false },
  { "shutdown-grace", FLAG_SECONDS, OPT (shutdown_grace_s), "SECONDS",
    "On SIGTERM/SIGINT, how long in-flight RPCs may run before they are\n"
    "cancelled (default 15: with the cancellation wait and the teardown it\n"
    "fits in a pod's default 30 s termination grace period).", NULL, false },
  { "restore-memory-mode", FLAG_STRING, OPT (restore_memory_mode), "MODE",
    "How vm.restore fills guest memory: auto (default: by cloud-hypervisor\n"
    "version: v51 Copy, v52 OnDemand, v53+ Copy), copy or ondemand.",
    check_restore_memory_mode, false },
  { "ingress-ports", FLAG_STRING, OPT (ingress_ports_text), "PORTS",
    "Comma-separated TCP ports of the pod IP forwarded to the actor\n"
    "(default 80; \"none\" for no ingress).",
    check_ingress_ports, false },
  { "ship-golden-disk", FLAG_BOOL, OPT (ship_golden_disk), NULL,
    "List the lineage's golden rootfs disk among a checkpoint's files\n"
    "(golden-rootfs.ext4, sparse) so restores on other nodes reset to it\n"
    "instead of rebuilding it from the image.", NULL, false },
  { "rootfs-cache-size", FLAG_STRING, OPT (rootfs_cache_size_text), "SIZE",
    "Bound of the rootfs image cache under <base-path>/rootfs-cache, e.g.\n"
    "20GiB, 512MiB, 0 to disable (default 20GiB).",
    check_rootfs_cache_size, false },
  { "resolv-conf", FLAG_STRING, OPT (resolv_conf), "PATH",
    "resolv.conf copied into every container rootfs for guest DNS\n"
    "(default /etc/resolv.conf, the pod's).",
    check_abs_path, false },
  { "detect-gce", FLAG_BOOL, OPT (detect_gce), NULL,
    "Probe for GCE at start-up to label actor logs for Cloud Logging\n"
    "(default true; GCE_METADATA_HOST set means GCE).", NULL, false },
  { "netns-dir", FLAG_STRING, OPT (netns_dir), "DIR",
    "Where the interior network namespace is bind-mounted (default\n"
    "/run/netns).",
    check_abs_path, false },
  { "kata-run-dir", FLAG_STRING, OPT (kata_run_dir), "DIR",
    "kata's runtime directory swept for stale sandbox state (default\n"
    "/run/kata-containers).",
    check_abs_path, false },
  { "config", FLAG_STRING, OPT (config), "PATH",
    "Configuration file to read instead of $" SERVER_CONFIG_ENV " or the\n"
    "default files " SERVER_CONFIG_IMAGE_PATH " and\n"
    "<base-path>/" SERVER_CONFIG_NODE_NAME " (\"\" reads none).",
    NULL, true },
  { "version", FLAG_BOOL, OPT (version), NULL, "Print the version and exit.", NULL, true },
  { "help", FLAG_BOOL, OPT (help), NULL, "Print this help and exit.", NULL, true },
};

_Static_assert (ATE_N_ELEMENTS (flags) <= SERVER_OPTIONS_MAX_FLAGS,
                "SERVER_OPTIONS_MAX_FLAGS is too small");

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
  free (o->config);
  free (o->config_files);
  for (size_t i = 0; i < SERVER_OPTIONS_MAX_FLAGS; i++)
    free (o->origin[i]);
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
          o->on_cmdline[f - flags] = true;
          continue;
        }
      if (f->type == FLAG_BOOL)
        {
          if (set_flag (o, f, NULL, false, err) < 0)
            return -1;
          o->on_cmdline[f - flags] = true;
          continue;
        }
      if (i + 1 >= argc)
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "flag needs an argument: -%s", f->name);
      if (set_flag (o, f, argv[++i], true, err) < 0)
        return -1;
      o->on_cmdline[f - flags] = true;
    }
  return 0;
}

/* Configuration files: one "name = value" per line, the names of the flags
 * without dashes, values as they would follow "--name=" (optionally in
 * double quotes, taken literally); blank lines and lines starting with '#'
 * are ignored. */

static char *
trim (char *s, char *end)
{
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
    *--end = '\0';
  *end = '\0';
  return s;
}

static int
apply_config_line (struct server_options *o, struct server_options *scratch, const char *name,
                   unsigned lineno, unsigned *seen, char *line, struct ate_error **err)
{
  char *eq = strchr (line, '=');
  char *key, *value;
  const struct flag_def *f;
  size_t i;

  if (eq == NULL)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "%s:%u: want \"name = value\"", name, lineno);
  key = trim (line, eq);
  value = trim (eq + 1, eq + 1 + strlen (eq + 1));
  if (key[0] == '-')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "%s:%u: write the flag name without dashes: \"%s\"", name,
                                lineno, key + strspn (key, "-"));
  f = NULL;
  for (i = 0; i < ATE_N_ELEMENTS (flags); i++)
    if (strcmp (flags[i].name, key) == 0)
      {
        f = &flags[i];
        break;
      }
  if (f == NULL)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "%s:%u: unknown key \"%s\"",
                                name, lineno, key);
  if (f->cmdline_only)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "%s:%u: %s can only be given on the command line", name, lineno,
                                key);
  if (seen[i])
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "%s:%u: %s is already set on line %u", name, lineno, key, seen[i]);
  seen[i] = lineno;
  if (value[0] == '"')
    {
      size_t n = strlen (value);
      if (n < 2 || value[n - 1] != '"' || memchr (value + 1, '"', n - 2) != NULL)
        return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                    "%s:%u: %s: a quoted value is one \"...\" without quotes inside",
                                    name, lineno, key);
      value[n - 1] = '\0';
      value++;
    }
  /* The command line wins; its value is still checked like the others. */
  if (set_flag (o->on_cmdline[i] ? scratch : o, f, value, true, err) < 0)
    return ate_error_wrap (err, "%s:%u", name, lineno);
  if (!o->on_cmdline[i])
    {
      free (o->origin[i]);
      o->origin[i] = xasprintf ("%s:%u", name, lineno);
    }
  return 0;
}

int
server_options_apply_config (struct server_options *o, const char *name, const char *text,
                             size_t len, struct ate_error **err)
{
  cleanup_free char *copy = NULL;
  struct server_options scratch;
  unsigned seen[SERVER_OPTIONS_MAX_FLAGS] = { 0 };
  unsigned lineno = 0;
  char *line, *next;
  int r = 0;

  if (memchr (text, '\0', len) != NULL)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "%s: contains a NUL byte",
                                name);
  copy = xstrndup (text, len);
  server_options_init (&scratch);
  for (line = copy; r == 0 && line != NULL; line = next)
    {
      char *end;

      next = strchr (line, '\n');
      if (next)
        *next++ = '\0';
      else if (*line == '\0')
        break;
      lineno++;
      end = line + strlen (line);
      if (end > line && end[-1] == '\r')
        *--end = '\0';
      line = trim (line, end);
      if (line[0] == '\0' || line[0] == '#')
        continue;
      r = apply_config_line (o, &scratch, name, lineno, seen, line, err);
    }
  server_options_free (&scratch);
  return r;
}

/* Read one file; *missing is set (and 0 returned) when it does not exist
 * and may be absent. */
static int
read_config_file (struct server_options *o, const char *path, bool may_be_absent,
                  bool *missing, struct ate_error **err)
{
  cleanup_close int fd = -1;
  cleanup_free char *text = NULL;
  size_t len = 0;
  struct stat st;

  *missing = false;
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0 && errno == ENOENT && may_be_absent)
    {
      *missing = true;
      return 0;
    }
  if (fd < 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, errno,
                                "configuration file `%s`", path);
  if (fstat (fd, &st) < 0)
    return ate_error_make (err, errno, "stat `%s`", path);
  if (!S_ISREG (st.st_mode))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "configuration file `%s` is not a regular file", path);
  /* It names the binaries we run as root: only root may write it. */
  if ((st.st_uid != 0 && st.st_uid != geteuid ()) || (st.st_mode & (S_IWGRP | S_IWOTH)))
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "configuration file `%s` must be owned by root and not "
                                "writable by group or others (owner %u, mode %04o)",
                                path, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777));
  if (st.st_size > SERVER_CONFIG_MAX_SIZE)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "configuration file `%s` is larger than %d bytes", path,
                                SERVER_CONFIG_MAX_SIZE);
  text = xmalloc ((size_t) st.st_size + 1);
  while (len < (size_t) st.st_size)
    {
      ssize_t n = TEMP_FAILURE_RETRY (read (fd, text + len, (size_t) st.st_size - len));
      if (n < 0)
        return ate_error_make (err, errno, "read `%s`", path);
      if (n == 0)
        break;
      len += (size_t) n;
    }
  if (server_options_apply_config (o, path, text, len, err) < 0)
    return -1;
  if (o->config_files == NULL)
    o->config_files = xstrdup (path);
  else
    {
      char *joined = xasprintf ("%s, %s", o->config_files, path);
      free (o->config_files);
      o->config_files = joined;
    }
  return 0;
}

int
server_options_load_config (struct server_options *o, const char *env_config,
                            struct ate_error **err)
{
  cleanup_free char *node_path = NULL;
  bool missing;

  if (o->config != NULL || env_config != NULL)
    {
      const char *path = o->config != NULL ? o->config : env_config;
      const char *what = o->config != NULL ? "--config" : "$" SERVER_CONFIG_ENV;
      if (path[0] == '\0')
        return 0;
      if (ate_validate_abs_path (what, path, err) < 0)
        return -1;
      return read_config_file (o, path, false, &missing, err);
    }
  /* The node's file lives under the base path the command line chose
   * (a file cannot move the file that set it). */
  node_path = ate_path_join (o->base_path, SERVER_CONFIG_NODE_NAME);
  if (read_config_file (o, SERVER_CONFIG_IMAGE_PATH, true, &missing, err) < 0
      || read_config_file (o, node_path, true, &missing, err) < 0)
    return -1;
  return 0;
}

/* Semantic checks, one per flag. */

static const char *
flag_string (struct server_options *o, const struct flag_def *f)
{
  return *(char **) ((char *) o + f->offset);
}

static int
check_pod_uid (struct server_options *o, const struct flag_def *f, struct ate_error **err)
{
  (void) f;
  if (o->pod_uid[0] == '\0')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--pod-uid is required (the Deployment passes --pod-uid=$(POD_UID))");
  if (strlen (o->pod_uid) > 64)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--pod-uid is longer than 64 characters");
  for (const char *p = o->pod_uid; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
          || *p == '-' || *p == '_' || *p == '.'))
      return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                  "--pod-uid \"%s\" may only contain letters, digits, '-', '_' and '.'",
                                  o->pod_uid);
  if (strcmp (o->pod_uid, ".") == 0 || strcmp (o->pod_uid, "..") == 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "--pod-uid \"%s\" is not a name",
                                o->pod_uid);
  return 0;
}

static int
check_abs_path (struct server_options *o, const struct flag_def *f, struct ate_error **err)
{
  cleanup_free char *field = xasprintf ("--%s", f->name);
  return ate_validate_abs_path (field, flag_string (o, f), err);
}

static int
check_abs_path_or_empty (struct server_options *o, const struct flag_def *f,
                         struct ate_error **err)
{
  return flag_string (o, f)[0] == '\0' ? 0 : check_abs_path (o, f, err);
}

static int
check_not_empty (struct server_options *o, const struct flag_def *f, struct ate_error **err)
{
  if (flag_string (o, f)[0] == '\0')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0, "--%s must not be empty",
                                f->name);
  return 0;
}

static int
check_log_level (struct server_options *o, const struct flag_def *f, struct ate_error **err)
{
  enum ate_log_level lvl;
  (void) f;
  if (ate_log_parse_level (o->log_level, &lvl) < 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--log-level \"%s\": want debug, info, warn or error", o->log_level);
  return 0;
}

static int
check_restore_memory_mode (struct server_options *o, const struct flag_def *f,
                           struct ate_error **err)
{
  (void) f;
  if (strcasecmp (o->restore_memory_mode, "auto") != 0
      && strcasecmp (o->restore_memory_mode, "copy") != 0
      && strcasecmp (o->restore_memory_mode, "ondemand") != 0)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--restore-memory-mode \"%s\": want auto, copy or ondemand",
                                o->restore_memory_mode);
  return 0;
}

static int
check_ingress_ports (struct server_options *o, const struct flag_def *f, struct ate_error **err)
{
  cleanup_free char *copy = xstrdup (o->ingress_ports_text);
  char *save = NULL;

  (void) f;
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
check_rootfs_cache_size (struct server_options *o, const struct flag_def *f,
                         struct ate_error **err)
{
  static const struct
  {
    const char *suffix;
    uint64_t mult;
  } units[] = { { "", 1 },           { "K", 1ULL << 10 },  { "KiB", 1ULL << 10 },
                { "M", 1ULL << 20 }, { "MiB", 1ULL << 20 }, { "G", 1ULL << 30 },
                { "GiB", 1ULL << 30 }, { "T", 1ULL << 40 }, { "TiB", 1ULL << 40 } };
  const char *text = o->rootfs_cache_size_text;
  char *end = NULL;
  unsigned long long v;

  (void) f;
  errno = 0;
  v = strtoull (text, &end, 10);
  if (errno || end == text || text[0] == '-')
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "--rootfs-cache-size: bad size \"%s\"", text);
  for (size_t i = 0; i < ATE_N_ELEMENTS (units); i++)
    if (strcmp (end, units[i].suffix) == 0)
      {
        if (v > UINT64_MAX / units[i].mult)
          break;
        o->rootfs_cache_size = v * units[i].mult;
        return 0;
      }
  return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                              "--rootfs-cache-size: bad size \"%s\" (want e.g. 20GiB, 512MiB, 0)",
                              text);
}

int
server_options_validate (const struct server_options *o_const, struct ate_error **err)
{
  struct server_options *o = (struct server_options *) o_const;

  for (size_t i = 0; i < ATE_N_ELEMENTS (flags); i++)
    if (flags[i].check != NULL && flags[i].check (o, &flags[i], err) < 0)
      return o->origin[i] ? ate_error_wrap (err, "%s", o->origin[i]) : -1;
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
           "Configuration files set the same flags, one \"name = value\" per line\n"
           "(the flag name without dashes, the value as after --name=, optionally\n"
           "in double quotes; '#' starts a comment line).  Read: the file of\n"
           "--config, else of $" SERVER_CONFIG_ENV ", else " SERVER_CONFIG_IMAGE_PATH "\n"
           "(the image's) and then <base-path>/" SERVER_CONFIG_NODE_NAME " (the\n"
           "node's), those that exist.  Flags on the command line win; pod-uid,\n"
           "config, help and version are command-line only.  An unknown name or a\n"
           "bad value is an error naming FILE:LINE.\n"
           "\n"
           "Logs are JSON lines on stdout. SIGTERM or SIGINT stops accepting calls,\n"
           "lets in-flight calls finish (up to --shutdown-grace) and exits 0.\n");
}
