/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sparse-file primitives shared by the snapshot merge (runtime/ch), the disk
 * reset (runtime/rootfs) and the transfer codec (runtime/snapshot):
 * SEEK_DATA/SEEK_HOLE extent walking and in-kernel range copies.
 */
#ifndef ATE_SPARSE_H
#define ATE_SPARSE_H

#include <stdint.h>
#include <sys/types.h>

struct ate_error;

/* Find the next data extent of fd at or after `from`, limited to `size`.
 * Returns 1 and sets [*start, *end) when found, 0 when there is no more
 * data, < 0 on error.  Filesystems without SEEK_DATA report everything as
 * data (still correct, only slower). */
int ate_sparse_next_extent (int fd, off_t from, off_t size, off_t *start,
                            off_t *end, struct ate_error **err);

/* Copy bytes [start, end) of src to the same offsets of dst, with
 * copy_file_range and a pread/pwrite fallback (EXDEV, EINVAL, ENOSYS). */
int ate_sparse_copy_range (int src, int dst, off_t start, off_t end,
                           struct ate_error **err);

/* Copy every data extent of src into dst at the same offsets (dst bytes
 * outside src's extents are untouched).  Adds the number of data bytes to
 * *copied when non-NULL. */
int ate_sparse_copy_extents (int src, int dst, off_t size, uint64_t *copied,
                             struct ate_error **err);

/* Make dst a sparse copy of src: truncate dst to 0, copy extents, set the
 * size.  Holes stay holes. */
int ate_sparse_copy_fd (int src, int dst, struct ate_error **err);

#endif
