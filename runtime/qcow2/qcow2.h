/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small qcow2 (version 3) module for the actors' copy-on-write disks
 * (docs/rootfs.md, "Copy-on-write disks"):
 *
 * - create an empty overlay over a raw base, in O(1);
 * - open and fully validate an untrusted qcow2 (a snapshot's disk delta
 *   comes from object storage): only the subset we and cloud-hypervisor
 *   write is accepted, every table is bounds-checked and no two uses share
 *   a host cluster;
 * - walk the allocated guest clusters;
 * - write a fresh, normalised qcow2 of our own layout from the allocated
 *   clusters of a validated image, in O(written data), with the backing
 *   file name the caller chooses (never the one the input names).
 *
 * Errors: a malformed or unsupported image is INVALID_ARGUMENT (EINVAL); an
 * image whose dirty bit is set (the VMM did not close it) is
 * FAILED_PRECONDITION with errno EUCLEAN; an image for another virtual size
 * or another backing file than the caller expects is FAILED_PRECONDITION
 * (EXDEV).
 */
#ifndef ATE_QCOW2_H
#define ATE_QCOW2_H

#include <stdbool.h>
#include <stdint.h>

struct ate_error;

/* The cluster size of every overlay we create (cloud-hypervisor's and
 * qemu's default). */
#define QCOW2_CLUSTER_BITS 16
/* cloud-hypervisor's limit on the virtual size. */
#define QCOW2_MAX_VIRTUAL_SIZE (UINT64_C (1) << 44)
/* The qcow2 specification's limit on a backing file name. */
#define QCOW2_BACKING_NAME_MAX 1023
/* Limits on what an untrusted image may make us hold in memory. */
#define QCOW2_MAX_L1_ENTRIES (UINT32_C (1) << 20)
#define QCOW2_MAX_L2_BYTES (UINT64_C (64) << 20)
#define QCOW2_MAX_HOST_CLUSTERS (UINT64_C (1) << 27)

/* A validated image, read through a file descriptor the caller keeps open
 * for the image's lifetime. */
struct qcow2_image;

/* What the caller requires of an image it opens. */
struct qcow2_expect
{
  uint64_t virtual_size;    /* 0: any; else FAILED_PRECONDITION when it differs */
  bool need_backing;        /* refuse an image without a backing file */
  const char *backing_name; /* NULL: any; else FAILED_PRECONDITION when it differs */
};

/* Write an empty overlay of virtual_size bytes over the raw file
 * backing_name into fd (truncated first).  O(1): a few small writes. */
int qcow2_write_overlay (int fd, const char *backing_name, uint64_t virtual_size,
                         struct ate_error **err);

/* The same into a new file at path (mode 0600, O_EXCL). */
int qcow2_file_create_overlay (const char *path, const char *backing_name,
                               uint64_t virtual_size, struct ate_error **err);

/* Validate the image in fd and keep its tables (L1 and the allocated L2
 * tables; bounded by the limits above). */
int qcow2_image_open (int fd, const struct qcow2_expect *expect, struct qcow2_image **out,
                      struct ate_error **err);

void qcow2_image_free (struct qcow2_image *img);

uint64_t qcow2_image_virtual_size (const struct qcow2_image *img);
uint32_t qcow2_image_cluster_bits (const struct qcow2_image *img);
/* NULL when the image has no backing file. */
const char *qcow2_image_backing_name (const struct qcow2_image *img);
/* Clusters with guest data, and clusters that read as zeros. */
uint64_t qcow2_image_data_clusters (const struct qcow2_image *img);
uint64_t qcow2_image_zero_clusters (const struct qcow2_image *img);

/* Called for each allocated guest cluster in guest order: host_offset is
 * where its data is, or 0 for a cluster that reads as zeros.  A non-zero
 * return stops the walk and is returned. */
typedef int (*qcow2_cluster_fn) (uint64_t guest_offset, uint64_t host_offset, void *opaque,
                                 struct ate_error **err);

int qcow2_image_foreach_cluster (const struct qcow2_image *img, qcow2_cluster_fn fn,
                                 void *opaque, struct ate_error **err);

/* Write a normalised copy of img into out_fd (truncated first): our own
 * layout, the same guest content, backing file backing_name (format raw).
 * Its size is that of the allocated clusters plus a few metadata
 * clusters; holes in the metadata stay holes. */
int qcow2_image_write (const struct qcow2_image *img, int out_fd, const char *backing_name,
                       struct ate_error **err);

/* Validate in_path (opened O_NOFOLLOW) and write its normalised copy to
 * out_path through a temporary file in the same directory, fsync'ed and
 * renamed into place (mode 0600). */
int qcow2_file_rewrite (const char *in_path, const struct qcow2_expect *expect,
                        const char *out_path, const char *backing_name,
                        struct ate_error **err);

#endif
