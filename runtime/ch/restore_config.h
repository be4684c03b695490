/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The restore configuration, built from what this server knows (docs/api.md,
 * "What a snapshot may carry").  The snapshot's config.json comes from
 * object storage: it may only supply what the saved memory and device state
 * depend on (vCPU and memory geometry, device ids, PCI placement, MAC and
 * queue counts), each checked against what this server would have created.
 * Every host resource (kernel, disks, sockets, serial file, rng source) is
 * the server's own; anything this server never creates (pmem, fs, VFIO,
 * vdpa, user devices, initramfs, firmware, non-File serial, ...) is refused
 * with FAILED_PRECONDITION naming the field, before cloud-hypervisor starts.
 */
#ifndef ATE_CH_RESTORE_CONFIG_H
#define ATE_CH_RESTORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/time.h"

struct ate_error;
struct json_object;

/* One disk this server attaches, in VM order (image first). */
struct ch_expected_disk
{
  const char *path;       /* absolute: the file the restored VM gets */
  const char *image_type; /* "Raw", "Qcow2"; NULL: not sent */
  bool backing_files;     /* a qcow2 overlay reads its backing file */
  bool readonly;
  const char *id;         /* NULL: the snapshot's id (checked) */
};

struct ch_restore_expect
{
  const char *kernel;  /* absolute */
  const char *cmdline; /* NULL: none */
  uint32_t vcpus;      /* boot = max; 0: the snapshot's, bounded */
  uint64_t memory_size; /* bytes; 0: the snapshot's, bounded */
  const struct ch_expected_disk *disks;
  size_t n_disks;
  const char *rng_src;      /* NULL: the snapshot must have none */
  const char *serial_file;  /* serial is a File there */
  const char *vsock_socket; /* NULL: the snapshot must have no vsock */
  uint32_t vsock_cid;
  const char *net_mac;      /* every net device has this MAC; NULL: any valid MAC */
};

/* Build the configuration the restored VM gets from a parsed snapshot
 * config and the server's own expectations; *out is a new object. */
int ch_restore_config_build (struct json_object *snap, const struct ch_restore_expect *exp,
                             struct json_object **out, struct ate_error **err);

/* Read <restore_dir>/config.json (an untrusted file: see ate_file_read_beneath),
 * build, and replace it (temp file + rename, 0600). */
int ch_restore_config_sanitise (const char *restore_dir, const struct ch_restore_expect *exp,
                                ate_deadline_t deadline, struct ate_error **err);

#endif
