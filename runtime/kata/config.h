/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What ateom takes from a kata configuration.toml and the guest kernel
 * command line built from it (docs/kata-agent.md, "kata configuration.toml"
 * and "Guest kernel command line").
 */
#ifndef KATA_CONFIG_H
#define KATA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ate_error;

#define KATA_DEFAULT_MEMORY_MIB 2048
#define KATA_DEFAULT_VCPUS 1

struct kata_config
{
  int64_t memory_mib;  /* [hypervisor.clh] default_memory; <= 0 -> 2048 */
  int64_t vcpus;       /* default_vcpus, a float is truncated; <= 0 -> 1 */
  char *kernel_params; /* kernel_params, "" when absent */
};

/* Parse a configuration document.  Every other key is ignored, but the
 * whole document must be valid TOML: errors name the line.  A wrong type
 * for one of the three keys is an error too. */
int kata_config_parse (const char *text, size_t len, struct kata_config *out,
                       struct ate_error **err);

/* path NULL or "": the defaults.  Otherwise the file must be readable and
 * valid (an asset that was named but cannot be read is an error, not a
 * silent 2 GiB / 1 vCPU guest). */
int kata_config_load (const char *path, struct kata_config *out, struct ate_error **err);

void kata_config_release (struct kata_config *cfg);

/* kernel_params plus what ateom adds: with debug (--kata-debug) the debug
 * console (agent.debug_console agent.debug_console_vport=1026) and
 * agent.log=debug, each unless already present; without debug nothing. */
char *kata_kernel_params (const char *kernel_params, bool debug);

/* The full guest command line: the fixed kata boot parameters, the console
 * for the architecture ("arm64"/"aarch64": ttyAMA0, else ttyS0), then
 * kata_kernel_params(). */
char *kata_kernel_cmdline (const char *arch, const char *kernel_params, bool debug);

#endif
