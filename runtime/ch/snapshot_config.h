/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The snapshot's config.json (docs/cloud-hypervisor.md, "Snapshots"): paths
 * in it belong to the
 * actor that was snapshotted, so a restore repoints them; its net devices
 * say which taps the restored VM needs.  64-bit integers survive exactly
 * (json-c int64/uint64, never doubles); other fields are kept as they are.
 */
#ifndef ATE_CH_SNAPSHOT_CONFIG_H
#define ATE_CH_SNAPSHOT_CONFIG_H

#include <stddef.h>

struct ate_error;

#define CH_CONFIG_JSON_MAX (4u << 20)
#define CH_NET_DEVICES_MAX 64

struct ch_disk_repoint
{
  const char *basename; /* e.g. "actor-rootfs.ext4" */
  const char *new_path; /* absolute */
};

struct ch_config_rewrite
{
  const char *vsock_socket; /* NULL: keep; applied when "vsock" is an object */
  const char *serial_file;  /* NULL: keep; applied when serial.mode == "File" */
  const char *fs_socket;    /* NULL: keep; every fs[].socket */
  /* Every disks[] entry whose path has one of these basenames gets the new
   * path; each basename must match at least one disk (a container disk
   * left pointing at another actor's file would be silent corruption). */
  const struct ch_disk_repoint *disks;
  size_t n_disks;
};

/* Rewrite <restore_dir>/config.json in place (temp file + rename, 0600). */
int ch_snapshot_config_rewrite (const char *restore_dir, const struct ch_config_rewrite *rw,
                                struct ate_error **err);

/* The same on a parsed document (for tests and callers that hold one). */
struct json_object;
int ch_snapshot_config_apply (struct json_object *cfg, const struct ch_config_rewrite *rw,
                              struct ate_error **err);

struct ch_net_device
{
  char *id;
  char *mac;            /* may be NULL */
  unsigned queue_pairs; /* num_queues / 2, at least 1 */
};

/* The "net" array of <restore_dir>/config.json in order (none: *n = 0). */
int ch_snapshot_net_devices (const char *restore_dir, struct ch_net_device **devs, size_t *n,
                             struct ate_error **err);

void ch_net_devices_free (struct ch_net_device *devs, size_t n);

/* Refuse, with FAILED_PRECONDITION naming the format, a snapshot this
 * server cannot restore (docs/operations.md, "Mixed fleets"): one whose VM
 * has virtio-fs devices (the overlay-rootfs format of agent-substrate's
 * later servers: the rootfs is served by virtiofsd, not a disk) or a
 * config.json that is not a cloud-hypervisor VM configuration at all.  The
 * message names no host path. */
int ch_snapshot_check_format (struct json_object *cfg, struct ate_error **err);

/* The same on <restore_dir>/config.json. */
int ch_snapshot_check_format_file (const char *restore_dir, struct ate_error **err);

#endif
