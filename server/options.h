/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Command-line flags of ateom-microvm.  Syntax follows Go's flag package, as
 * the reference does: -flag or --flag, --flag=value or --flag value, booleans
 * only as --flag or --flag=true|false, parsing stops at the first non-flag
 * argument or "--".
 */
#ifndef ATE_SERVER_OPTIONS_H
#define ATE_SERVER_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct ate_error;

struct server_options
{
  char *pod_uid;
  char *ch_binary;
  char *kata_config;
  bool kata_debug;
  bool version;
  bool help;
  char *base_path;
  char *run_dir;
  char *log_level;
  long shutdown_grace_s;
  char *restore_memory_mode;
  char *ingress_ports_text;
  uint16_t ingress_ports[64];
  size_t n_ingress_ports;
  bool ship_golden_disk;
  char *rootfs_cache_size_text;
  uint64_t rootfs_cache_size;
  char *resolv_conf;
  bool detect_gce;
  char *netns_dir;
  char *kata_run_dir;
};

void server_options_init (struct server_options *o);
void server_options_free (struct server_options *o);

/* Returns 0 on success (check o->help / o->version), < 0 with an
 * INVALID_ARGUMENT error on a bad command line. */
int server_options_parse (struct server_options *o, int argc, char *const argv[],
                          struct ate_error **err);

/* Semantic checks after parsing (pod uid shape, absolute paths). */
int server_options_validate (const struct server_options *o, struct ate_error **err);

void server_options_usage (FILE *out);

#endif
