/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays a fuzz corpus through LLVMFuzzerTestOneInput without libFuzzer, so
 * every committed corpus entry (including past crashers) is a regression
 * test in the normal and sanitizer builds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
run_file (const char *path)
{
  FILE *f = fopen (path, "rbe");
  struct stat st;
  uint8_t *buf;
  size_t n;

  if (f == NULL || fstat (fileno (f), &st) < 0)
    {
      perror (path);
      if (f)
        fclose (f);
      return -1;
    }
  buf = malloc ((size_t) st.st_size + 1);
  if (buf == NULL)
    abort ();
  n = fread (buf, 1, (size_t) st.st_size, f);
  fclose (f);
  LLVMFuzzerTestOneInput (buf, n);
  free (buf);
  return 0;
}

int
main (int argc, char **argv)
{
  int count = 0, failed = 0;

  for (int i = 1; i < argc; i++)
    {
      DIR *d = opendir (argv[i]);
      struct dirent *de;
      if (d == NULL)
        {
          if (run_file (argv[i]) < 0)
            failed++;
          else
            count++;
          continue;
        }
      while ((de = readdir (d)) != NULL)
        {
          char *p;
          if (de->d_name[0] == '.')
            continue;
          if (asprintf (&p, "%s/%s", argv[i], de->d_name) < 0)
            abort ();
          if (run_file (p) < 0)
            failed++;
          else
            count++;
          free (p);
        }
      closedir (d);
    }
  printf ("%d corpus inputs replayed, %d unreadable\n", count, failed);
  if (count == 0)
    {
      fprintf (stderr, "empty corpus\n");
      return 1;
    }
  return failed ? 1 : 0;
}
