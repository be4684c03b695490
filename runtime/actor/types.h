/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actor runtime's inputs: its configuration and a decoded, validated
 * request.  Data only (and the asset lookup): the bottom of the actor
 * layers (docs/architecture.md, "Layers"), shared by every layer and by the
 * server.
 */
#ifndef ATE_ACTOR_TYPES_H
#define ATE_ACTOR_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/paths.h"

struct ate_cancel;

/* Most containers one actor may have (one virtio-blk rootfs disk each). */
#define ACTOR_MAX_CONTAINERS 25

struct actor_container
{
  const char *name;
  /* Readiness probe: HTTP GET http://169.254.17.2:<port><path>; port 0 means
   * no probe. */
  int32_t readyz_port;
  const char *readyz_path;
};

struct actor_asset
{
  const char *name;
  const char *path;
};

struct actor_request
{
  const char *ns;
  const char *tmpl;
  const char *id;
  const struct actor_container *containers;
  size_t n_containers;
  const struct actor_asset *assets;
  size_t n_assets;
  /* Raised when the caller goes away (NULL: never): a Run or Restore stops
   * at its next safe point and rolls back (docs/api.md, "Cancellation"). */
  const struct ate_cancel *cancel;
};

struct actor_runtime_config
{
  struct ate_paths paths;
  const char *ch_binary;           /* --cloud-hypervisor-binary */
  const char *kata_config;         /* --kata-config */
  bool kata_debug;                 /* --kata-debug */
  const char *restore_memory_mode; /* --restore-memory-mode: auto, copy, ondemand */
  const uint16_t *ingress_ports;   /* --ingress-ports (NULL: TCP 80) */
  size_t n_ingress_ports;
  bool ship_golden_disk;           /* --ship-golden-disk */
  uint64_t rootfs_cache_max_bytes; /* --rootfs-cache-size (0: no image cache) */
  const char *resolv_conf;         /* --resolv-conf (default /etc/resolv.conf) */
  bool detect_gce;                 /* probe for GCE to pick the log label key */
};

/* Lookup of an asset path by name (NULL when absent). */
const char *actor_request_asset (const struct actor_request *req, const char *name);

#endif
