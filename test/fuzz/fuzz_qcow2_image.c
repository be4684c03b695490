/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A snapshot's disk delta comes from object storage: the qcow2 validator
 * must reject anything malformed without crashing or over-reading, and
 * whatever it accepts must rewrite into an image that validates again with
 * the same guest clusters (same data, same zero clusters) and our backing
 * name.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qcow2/qcow2.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define MAX_CLUSTERS 4096

struct list
{
  int fd;
  size_t n;
  uint64_t guest[MAX_CLUSTERS];
  uint8_t digest[MAX_CLUSTERS]; /* 0 for zero clusters, else a byte sum + 1 */
  uint64_t cluster_size;
};

static int
collect (uint64_t guest, uint64_t host, void *opaque, struct ate_error **err)
{
  struct list *l = opaque;
  uint8_t buf[512];
  unsigned sum = 1;

  (void) err;
  if (l->n == MAX_CLUSTERS)
    return 1;
  l->guest[l->n] = guest;
  if (host != 0)
    {
      /* The first 512 bytes stand for the cluster. */
      if (pread (l->fd, buf, sizeof buf, (off_t) host) != (ssize_t) sizeof buf)
        abort ();
      for (size_t i = 0; i < sizeof buf; i++)
        sum += buf[i];
      l->digest[l->n] = (uint8_t) (sum % 255 + 1);
    }
  else
    l->digest[l->n] = 0;
  l->n++;
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct list a, b;
  struct qcow2_image *img = NULL, *again = NULL;
  struct ate_error *err = NULL;
  int in = memfd_create ("in", MFD_CLOEXEC), out = memfd_create ("out", MFD_CLOEXEC);

  if (in < 0 || out < 0 || write (in, data, size) != (ssize_t) size)
    abort ();
  if (qcow2_image_open (in, NULL, &img, &err) < 0)
    {
      if (err == NULL || err->msg == NULL)
        abort ();
      ate_error_release (&err);
      goto done;
    }
  memset (&a, 0, sizeof a);
  memset (&b, 0, sizeof b);
  a.fd = in;
  b.fd = out;
  if (qcow2_image_foreach_cluster (img, collect, &a, &err) != 0)
    goto done;
  if (qcow2_image_write (img, out, "fuzz-base", &err) < 0)
    abort ();
  if (qcow2_image_open (out, &(struct qcow2_expect){ .virtual_size = qcow2_image_virtual_size (img),
                                                    .backing_name = "fuzz-base" },
                        &again, &err) < 0)
    abort ();
  if (qcow2_image_foreach_cluster (again, collect, &b, &err) != 0 || a.n != b.n
      || memcmp (a.guest, b.guest, a.n * sizeof a.guest[0]) != 0
      || memcmp (a.digest, b.digest, a.n) != 0
      || qcow2_image_data_clusters (again) != qcow2_image_data_clusters (img)
      || qcow2_image_zero_clusters (again) != qcow2_image_zero_clusters (img))
    abort ();
done:
  qcow2_image_free (again);
  qcow2_image_free (img);
  ate_error_release (&err);
  close (in);
  close (out);
  return 0;
}
