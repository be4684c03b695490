/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Command-line flags of ateom-microvm.  Syntax follows Go's flag package, as
 * the reference does: -flag or --flag, --flag=value or --flag value, booleans
 * only as --flag or --flag=true|false, parsing stops at the first non-flag
 * argument or "--".
 *
 * The same flags can be set in configuration files, one `name = value` per
 * line (see server_options_load_config and docs/operations.md): the value
 * text goes through the same parser and validators as on the command line,
 * and the command line wins over the files.
 */
#ifndef ATE_SERVER_OPTIONS_H
#define ATE_SERVER_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct ate_error;

/* Environment variable naming the configuration file. */
#define SERVER_CONFIG_ENV "ATEOM_MICROVM_CONFIG"
/* The image's configuration file, read when it exists. */
#define SERVER_CONFIG_IMAGE_PATH "/etc/ateom-microvm/config"
/* The node's configuration file, relative to --base-path (the hostPath every
 * worker pod mounts), read after the image's when it exists. */
#define SERVER_CONFIG_NODE_NAME "ateom-microvm/config"
#define SERVER_CONFIG_MAX_SIZE (64 * 1024)
#define SERVER_OPTIONS_MAX_FLAGS 32

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
  char *config; /* --config: NULL when not given, "" for no file */

  /* Per flag (indexed like the flag table): set on the command line, and
   * "FILE:LINE" when a configuration file set the value in use. */
  bool on_cmdline[SERVER_OPTIONS_MAX_FLAGS];
  char *origin[SERVER_OPTIONS_MAX_FLAGS];
  char *config_files; /* the files read, ", "-separated, for the log */
};

void server_options_init (struct server_options *o);
void server_options_free (struct server_options *o);

/* Returns 0 on success (check o->help / o->version), < 0 with an
 * INVALID_ARGUMENT error on a bad command line. */
int server_options_parse (struct server_options *o, int argc, char *const argv[],
                          struct ate_error **err);

/* Read the configuration: the file named by --config, else by env_config
 * (the value of $ATEOM_MICROVM_CONFIG, or NULL), else each of
 * SERVER_CONFIG_IMAGE_PATH and <base-path>/SERVER_CONFIG_NODE_NAME that
 * exists, in this order (a later file overrides an earlier one).  An empty
 * name means no file.  A named file must exist.  Flags given on the command
 * line keep their value (the file's is still checked).  Files must be
 * regular, owned by root (or us) and not writable by group or others. */
int server_options_load_config (struct server_options *o, const char *env_config,
                                struct ate_error **err);

/* Apply the text of one configuration file; name is used in messages
 * ("NAME:LINE: ..."). */
int server_options_apply_config (struct server_options *o, const char *name, const char *text,
                                 size_t len, struct ate_error **err);

/* Semantic checks after parsing (pod uid shape, absolute paths).  An error
 * about a value from a configuration file starts with "FILE:LINE: ". */
int server_options_validate (const struct server_options *o, struct ate_error **err);

void server_options_usage (FILE *out);

#endif
