/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target for the snapshot decoder (runtime/snapshot).
 *
 * The first byte chooses what the rest is, so that the fuzzer reaches the
 * payload parser without having to invent valid zstd:
 *   0: the encoded stream itself (prefix, zstd framing, trailing bytes)
 *   1: a sparse payload: "ATESPRSE" | 2 | zstd(rest) is decoded
 *   2: plain content: zstd(rest) is decoded (the fallback)
 *
 * Every input is decoded three ways (inspect, into a file, into a stream)
 * and the results must agree: same verdict and statistics, the same bytes
 * in the file and the stream, and nothing left in the output directory
 * after a failure.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "snapshot/snapshot.h"
#include "util/error.h"

#define MAX_OUTPUT (1024 * 1024)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The scratch directory of the current input, removed even when an
 * invariant fails (a crash must not leave files behind). */
static char scratch_dir[64];

static void
check (int cond, const char *what)
{
  if (!cond)
    {
      fprintf (stderr, "fuzz_snapshot_decode: invariant broken: %s\n", what);
      if (scratch_dir[0] != '\0')
        {
          char out[96];
          snprintf (out, sizeof (out), "%s/out", scratch_dir);
          unlink (out);
          rmdir (scratch_dir);
        }
      abort ();
    }
}

static void
write_all (int fd, const void *p, size_t n)
{
  while (n > 0)
    {
      ssize_t w = write (fd, p, n);
      check (w > 0, "write to memfd");
      p = (const char *) p + w;
      n -= (size_t) w;
    }
}

/* The input for the decoder, in a memfd. */
static int
make_input (const uint8_t *data, size_t size)
{
  int fd = memfd_create ("fuzz-in", MFD_CLOEXEC);
  uint8_t mode = data[0] % 3;
  const uint8_t *rest = data + 1;
  size_t n = size - 1;

  check (fd >= 0, "memfd_create");
  if (mode == 0)
    {
      write_all (fd, rest, n);
      return fd;
    }
  if (mode == 1)
    write_all (fd, "ATESPRSE\x02\x00\x00\x00", 12);
  size_t cap = ZSTD_compressBound (n);
  void *z = malloc (cap == 0 ? 1 : cap);
  check (z != NULL, "malloc");
  size_t zn = ZSTD_compress (z, cap, rest, n, 1);
  check (!ZSTD_isError (zn), "compress");
  write_all (fd, z, zn);
  free (z);
  return fd;
}

static size_t
read_fd (int fd, uint8_t *buf, size_t cap)
{
  size_t done = 0;
  ssize_t r;

  check (lseek (fd, 0, SEEK_SET) == 0, "seek");
  while (done < cap && (r = read (fd, buf + done, cap - done)) > 0)
    done += (size_t) r;
  return done;
}

static int
dir_is_empty (const char *path)
{
  DIR *d = opendir (path);
  struct dirent *de;
  int empty = 1;

  check (d != NULL, "opendir");
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      empty = 0;
  closedir (d);
  return empty;
}

/* The file and the stream hold the same bytes. */
static void
compare_outputs (const char *out, int stream_fd, const struct snapshot_stats *st)
{
  static uint8_t a[MAX_OUTPUT + 1], b[MAX_OUTPUT + 1];
  int fd = open (out, O_RDONLY | O_CLOEXEC);
  size_t na, nb;

  check (fd >= 0, "output exists after success");
  na = read_fd (fd, a, sizeof (a));
  nb = read_fd (stream_fd, b, sizeof (b));
  close (fd);
  check (na == st->logical_size, "file size is the logical size");
  check (na == nb && memcmp (a, b, na) == 0, "file and stream agree");
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct snapshot_decode_opts o = { .max_size = MAX_OUTPUT, .no_fsync = true };
  struct snapshot_stats s_inspect = { 0 }, s_file = { 0 }, s_stream = { 0 };
  struct ate_error *e1 = NULL, *e2 = NULL, *e3 = NULL;
  char dir[] = "/tmp/ate-fuzz-snapshot-XXXXXX";
  char *out;
  int in, stream, r1, r2, r3;

  if (size == 0)
    return 0;
  in = make_input (data, size);
  check (lseek (in, 0, SEEK_SET) == 0, "seek");
  check (mkdtemp (dir) != NULL, "mkdtemp");
  snprintf (scratch_dir, sizeof (scratch_dir), "%s", dir);
  check (asprintf (&out, "%s/out", dir) > 0, "asprintf");
  stream = memfd_create ("fuzz-out", MFD_CLOEXEC);
  check (stream >= 0, "memfd_create");

  r1 = snapshot_inspect (in, &o, &s_inspect, &e1);
  check (lseek (in, 0, SEEK_SET) == 0, "seek");
  r2 = snapshot_decode_fd (in, out, &o, NULL, &s_file, &e2);
  check (lseek (in, 0, SEEK_SET) == 0, "seek");
  r3 = snapshot_decode_to_stream (in, stream, &o, NULL, &s_stream, &e3);

  check ((r1 < 0) == (r2 < 0) && (r2 < 0) == (r3 < 0), "same verdict");
  if (r2 < 0)
    {
      check (e1 != NULL && e2 != NULL && e3 != NULL, "errors set");
      check (dir_is_empty (dir), "nothing left after a failure");
    }
  else
    {
      check (memcmp (&s_inspect, &s_file, sizeof (s_file)) == 0, "inspect == decode");
      check (memcmp (&s_stream, &s_file, sizeof (s_file)) == 0, "stream == decode");
      compare_outputs (out, stream, &s_file);
    }
  ate_error_release (&e1);
  ate_error_release (&e2);
  ate_error_release (&e3);
  unlink (out);
  rmdir (dir);
  scratch_dir[0] = '\0';
  free (out);
  close (stream);
  close (in);
  return 0;
}
