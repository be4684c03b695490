/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helper for test/bench/bench_merge.sh: generate sparse memory images and
 * time one merge.
 *
 *   bench_merge gen <path> <size MiB> <percent populated> <seed>
 *   bench_merge delta-into-base <base> <delta>      prints seconds
 *   bench_merge overlay <base> <delta> <out>        prints seconds
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ch/merge.h"
#include "util/error.h"
#include "util/time.h"
#include "util/util.h"

#define CHUNK (1 << 20)

/* Populate `percent` of the file in 1 MiB chunks at pseudo-random
 * positions (a guest's touched memory is clustered, not uniform). */
static int
gen (const char *path, long mib, long percent, unsigned seed)
{
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  cleanup_free char *buf = xmalloc (CHUNK);
  long want = mib * percent / 100;

  if (fd < 0 || ftruncate (fd, (off_t) mib * CHUNK) < 0)
    {
      perror (path);
      return 1;
    }
  srand (seed);
  for (long i = 0, done = 0; done < want && i < 100 * mib; i++)
    {
      long pos = rand () % mib;
      for (size_t k = 0; k < CHUNK; k++)
        buf[k] = (char) (rand () & 0xff);
      if (pwrite (fd, buf, CHUNK, (off_t) pos * CHUNK) != CHUNK)
        {
          perror (path);
          return 1;
        }
      done++;
    }
  close (fd);
  return 0;
}

int
main (int argc, char **argv)
{
  struct ate_error *err = NULL;
  int64_t t0;
  int r;

  if (argc == 6 && strcmp (argv[1], "gen") == 0)
    return gen (argv[2], atol (argv[3]), atol (argv[4]), (unsigned) atol (argv[5]));
  t0 = ate_now_ns ();
  if (argc == 4 && strcmp (argv[1], "delta-into-base") == 0)
    r = ch_merge_delta_into_base (argv[2], argv[3], &err);
  else if (argc == 5 && strcmp (argv[1], "overlay") == 0)
    r = ch_merge_sparse_overlay (argv[2], argv[3], argv[4], &err);
  else
    {
      fprintf (stderr, "usage: bench_merge gen|delta-into-base|overlay ...\n");
      return 2;
    }
  if (r < 0)
    {
      fprintf (stderr, "bench_merge: %s\n", err->msg);
      return 1;
    }
  printf ("%.6f\n", (double) (ate_now_ns () - t0) / 1e9);
  return 0;
}
