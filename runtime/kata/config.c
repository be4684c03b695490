/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "toml.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/untrusted.h"
#include "util/util.h"

/* Bound on reading the kata-config asset. */
#define KATA_CONFIG_READ_MS 10000

static int
bad_type (const struct toml_value *v, const char *key, const char *want,
          struct ate_error **err)
{
  return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                              "line %u: [hypervisor.clh] %s must be %s", v->line, key, want);
}

static int
on_value (void *ctx, const char *const *path, size_t depth, const struct toml_value *v,
          struct ate_error **err)
{
  struct kata_config *cfg = ctx;
  const char *key;

  if (depth != 3 || strcmp (path[0], "hypervisor") != 0 || strcmp (path[1], "clh") != 0)
    return 0;
  key = path[2];
  if (strcmp (key, "default_memory") == 0)
    {
      if (v->in_array || v->type != TOML_INTEGER)
        return bad_type (v, key, "an integer (MiB)", err);
      cfg->memory_mib = v->integer;
    }
  else if (strcmp (key, "default_vcpus") == 0)
    {
      /* Newer kata writes fractional vCPUs: truncate. */
      if (!v->in_array && v->type == TOML_FLOAT && isfinite (v->number))
        cfg->vcpus = v->number >= (double) INT32_MAX ? INT32_MAX : (int64_t) v->number;
      else if (!v->in_array && v->type == TOML_INTEGER)
        cfg->vcpus = v->integer;
      else
        return bad_type (v, key, "a number", err);
    }
  else if (strcmp (key, "kernel_params") == 0)
    {
      if (v->in_array || v->type != TOML_STRING)
        return bad_type (v, key, "a string", err);
      if (memchr (v->str, '\0', v->len))
        return bad_type (v, key, "a string without NUL characters", err);
      free (cfg->kernel_params);
      cfg->kernel_params = xstrdup (v->str);
    }
  return 0;
}

int
kata_config_parse (const char *text, size_t len, struct kata_config *out,
                   struct ate_error **err)
{
  struct kata_config cfg = { 0 };

  if (toml_parse (text, len, on_value, &cfg, err) < 0)
    {
      kata_config_release (&cfg);
      return ate_error_wrap (err, "parse kata configuration");
    }
  if (cfg.memory_mib <= 0)
    cfg.memory_mib = KATA_DEFAULT_MEMORY_MIB;
  if (cfg.vcpus <= 0)
    cfg.vcpus = KATA_DEFAULT_VCPUS;
  if (cfg.kernel_params == NULL)
    cfg.kernel_params = xstrdup ("");
  *out = cfg;
  return 0;
}

int
kata_config_load (const char *path, struct kata_config *out, struct ate_error **err)
{
  cleanup_free char *text = NULL;
  size_t len = 0;

  if (path == NULL || *path == '\0')
    return kata_config_parse ("", 0, out, err);
  /* An asset named by the caller: a FIFO or device must not block us
   * (docs/api.md, "Files the server opens for a caller"). */
  if (ate_untrusted_read (NULL, path, TOML_MAX_SIZE, ate_deadline_in_ms (KATA_CONFIG_READ_MS),
                          &text, &len, err)
      < 0)
    return ate_error_wrap (err, "read kata configuration");
  if (kata_config_parse (text, len, out, err) < 0)
    return ate_error_wrap (err, "`%s`", path);
  return 0;
}

void
kata_config_release (struct kata_config *cfg)
{
  free (cfg->kernel_params);
  cfg->kernel_params = NULL;
}

/* Append `add` unless `marker` already occurs (so a config that sets the
 * parameter itself wins). */
static char *
append_param (char *params, const char *marker, const char *add)
{
  char *r;
  if (strstr (params, marker))
    return params;
  r = *params ? xasprintf ("%s %s", params, add) : xstrdup (add);
  free (params);
  return r;
}

char *
kata_kernel_params (const char *kernel_params, bool debug)
{
  char *p = xstrdup (kernel_params ? kernel_params : "");

  if (debug)
    {
      p = append_param (p, "agent.debug_console_vport",
                        "agent.debug_console agent.debug_console_vport=1026");
      p = append_param (p, "agent.log=", "agent.log=debug agent.debug_console");
    }
  return p;
}

char *
kata_kernel_cmdline (const char *arch, const char *kernel_params, bool debug)
{
  const char *console = (arch && (strcmp (arch, "arm64") == 0 || strcmp (arch, "aarch64") == 0))
                            ? "ttyAMA0"
                            : "ttyS0";
  cleanup_free char *params = kata_kernel_params (kernel_params, debug);

  return xasprintf ("root=/dev/vda1 rootflags=data=ordered,errors=remount-ro ro "
                    "rootfstype=ext4 panic=1 no_timer_check noreplace-smp "
                    "console=%s,115200n8 systemd.unit=kata-containers.target "
                    "systemd.mask=systemd-networkd.service "
                    "systemd.mask=systemd-networkd.socket%s%s",
                    console, *params ? " " : "", params);
}
