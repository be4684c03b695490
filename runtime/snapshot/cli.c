/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ateom-snapshot: pack, unpack and inspect snapshot files in atelet's
 * sparse-extent zstd transfer format (docs/snapshot-format.md).
 *
 * Exit status: 0 on success, 1 on any failure, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot-internal.h"
#include "snapshot.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/time.h"
#include "util/util.h"
#include "version.h"

#define PROG "ateom-snapshot"
#define EXIT_USAGE 2
/* Progress is shown on a terminal only for files at least this large. */
#define PROGRESS_MIN_BYTES (64ULL * 1024 * 1024)
#define PROGRESS_INTERVAL_NS (200 * ATE_NSEC_PER_MSEC)

static volatile sig_atomic_t interrupted;

static const char usage_text[] =
    "Usage: " PROG " pack [--level N] [--threads N] [--format auto|sparse|plain]\n"
    "                      [--force] [--no-fsync] [--no-progress] [--verbose] INPUT OUTPUT\n"
    "       " PROG " unpack [--max-size BYTES] [--force] [--no-fsync] [--no-progress]\n"
    "                        [--verbose] INPUT OUTPUT\n"
    "       " PROG " inspect [--json] INPUT\n"
    "       " PROG " --help | --version\n"
    "\n"
    "Packs files into, and unpacks them from, the sparse-extent zstd format\n"
    "atelet ships snapshot files in (\"ATESPRSE\", version 2).  unpack and inspect\n"
    "also accept plain zstd streams.  INPUT or OUTPUT `-` means stdin/stdout.\n"
    "\n"
    "pack     A regular file is walked with SEEK_DATA/SEEK_HOLE: only populated\n"
    "         extents are read and compressed.  A pipe on stdin becomes plain zstd.\n"
    "  -l, --level N     zstd level (default 1, like atelet; negative = faster)\n"
    "  -T, --threads N   compression workers (default 0 = one per CPU)\n"
    "      --format F    auto (default), sparse (input must be a regular file), plain\n"
    "unpack   Recreates the holes.  The output appears only when complete and\n"
    "         valid (temporary file, fsync, rename); to `-` holes become zeros.\n"
    "      --max-size B  refuse a logical size above B (suffixes K, M, G, T: KiB...)\n"
    "inspect  Validates the whole input and prints its format, logical size,\n"
    "         populated bytes, extent count, compressed size and ratio.\n"
    "      --json        one JSON object instead of text\n"
    "common:\n"
    "  -f, --force       replace an existing OUTPUT\n"
    "      --no-fsync    skip fsync before the rename (faster, not crash-safe)\n"
    "      --no-progress no progress line (shown on a terminal for files >= 64 MiB)\n"
    "  -v, --verbose     print a summary line on stderr (default: on a terminal)\n"
    "\n"
    "Exit status: 0 success, 1 failure (nothing left under OUTPUT), 2 usage error.\n";

struct cli
{
  int level;
  int threads;
  enum snapshot_format format;
  uint64_t max_size;
  bool force;
  bool no_fsync;
  bool progress;
  bool verbose;
  bool json;
  const char *in;
  const char *out;
};

struct progress
{
  const char *verb;
  int64_t last_ns;
  bool shown;
};

static int usage_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static int
usage_error (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  fprintf (stderr, PROG ": ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\nTry `" PROG " --help'.\n");
  va_end (ap);
  return EXIT_USAGE;
}

static void
on_signal (int sig)
{
  (void) sig;
  interrupted = 1;
}

static void
setup_signals (void)
{
  struct sigaction sa = { .sa_handler = on_signal };

  /* No SA_RESTART: a blocked read returns EINTR and the codec stops cleanly,
   * removing its temporary file. */
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);
  /* A closed pipe is an error to report (EPIPE), not a silent death. */
  signal (SIGPIPE, SIG_IGN);
}

static void
human (uint64_t v, char *buf, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double d = (double) v;
  size_t u = 0;

  while (d >= 1024 && u + 1 < ATE_N_ELEMENTS (units))
    {
      d /= 1024;
      u++;
    }
  if (u == 0)
    snprintf (buf, len, "%" PRIu64 " B", v);
  else
    snprintf (buf, len, "%.1f %s", d, units[u]);
}

static void
progress_cb (void *data, uint64_t done, uint64_t total)
{
  struct progress *p = data;
  char a[32], b[32];
  int64_t now = ate_now_ns ();

  if (total < PROGRESS_MIN_BYTES && done < PROGRESS_MIN_BYTES)
    return;
  if (p->shown && now - p->last_ns < PROGRESS_INTERVAL_NS)
    return;
  p->last_ns = now;
  p->shown = true;
  human (done, a, sizeof (a));
  if (total > 0)
    {
      human (total, b, sizeof (b));
      fprintf (stderr, "\r\033[K%s %s / %s (%d%%)", p->verb, a, b,
               (int) (done * 100.0 / (double) total));
    }
  else
    fprintf (stderr, "\r\033[K%s %s", p->verb, a);
}

static void
progress_end (struct progress *p)
{
  if (p->shown)
    fputs ("\r\033[K", stderr);
}

static int
parse_int (const char *s, long min, long max, long *out)
{
  char *end;
  long v;

  errno = 0;
  v = strtol (s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

static int
parse_size (const char *s, uint64_t *out)
{
  static const char suffixes[] = "KMGT";
  char *end;
  unsigned long long v;
  const char *sfx;

  errno = 0;
  if (s[0] == '-' || (v = strtoull (s, &end, 10), errno != 0) || end == s)
    return -1;
  if (*end != '\0')
    {
      if (end[1] != '\0' || (sfx = strchr (suffixes, end[0])) == NULL)
        return -1;
      for (const char *c = suffixes; c <= sfx; c++)
        {
          if (v > (unsigned long long) INT64_MAX / 1024)
            return -1;
          v *= 1024;
        }
    }
  if (v == 0 || v > (unsigned long long) INT64_MAX)
    return -1;
  *out = v;
  return 0;
}

enum command
{
  CMD_PACK,
  CMD_UNPACK,
  CMD_INSPECT,
};

enum
{
  OPT_FORMAT = 256,
  OPT_MAX_SIZE,
  OPT_NO_FSYNC,
  OPT_NO_PROGRESS,
  OPT_JSON,
};

static const struct option long_opts[] = {
  { "level", required_argument, NULL, 'l' },
  { "threads", required_argument, NULL, 'T' },
  { "format", required_argument, NULL, OPT_FORMAT },
  { "max-size", required_argument, NULL, OPT_MAX_SIZE },
  { "force", no_argument, NULL, 'f' },
  { "no-fsync", no_argument, NULL, OPT_NO_FSYNC },
  { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
  { "verbose", no_argument, NULL, 'v' },
  { "json", no_argument, NULL, OPT_JSON },
  { "help", no_argument, NULL, 'h' },
  { NULL, 0, NULL, 0 },
};

static bool
option_allowed (enum command cmd, int c)
{
  switch (c)
    {
    case 'l':
    case 'T':
    case OPT_FORMAT:
      return cmd == CMD_PACK;
    case OPT_MAX_SIZE:
      return cmd == CMD_UNPACK;
    case OPT_JSON:
      return cmd == CMD_INSPECT;
    default:
      return cmd != CMD_INSPECT;
    }
}

static int
parse_format (const char *s, enum snapshot_format *out)
{
  if (strcmp (s, "auto") == 0)
    *out = SNAPSHOT_FORMAT_AUTO;
  else if (strcmp (s, "sparse") == 0)
    *out = SNAPSHOT_FORMAT_SPARSE_V2;
  else if (strcmp (s, "plain") == 0)
    *out = SNAPSHOT_FORMAT_PLAIN_ZSTD;
  else
    return -1;
  return 0;
}

/* One option; returns 0, or an exit status to stop with. */
static int
apply_option (struct cli *cli, int c, const char *arg)
{
  long v;

  switch (c)
    {
    case 'l':
      if (parse_int (arg, INT_MIN, INT_MAX, &v) < 0)
        return usage_error ("invalid level `%s'", arg);
      cli->level = (int) v;
      return 0;
    case 'T':
      if (parse_int (arg, 0, SNAPSHOT_MAX_THREADS, &v) < 0)
        return usage_error ("invalid thread count `%s' (0 to 256)", arg);
      cli->threads = (int) v;
      return 0;
    case OPT_FORMAT:
      return parse_format (arg, &cli->format) < 0
                 ? usage_error ("invalid format `%s' (auto, sparse or plain)", arg)
                 : 0;
    case OPT_MAX_SIZE:
      return parse_size (arg, &cli->max_size) < 0 ? usage_error ("invalid size `%s'", arg) : 0;
    case 'f':
      cli->force = true;
      return 0;
    case OPT_NO_FSYNC:
      cli->no_fsync = true;
      return 0;
    case OPT_NO_PROGRESS:
      cli->progress = false;
      return 0;
    case 'v':
      cli->verbose = true;
      return 0;
    case OPT_JSON:
      cli->json = true;
      return 0;
    default:
      return usage_error ("%s", "unknown option");
    }
}

/* Returns -1 to go on, else the exit status. */
static int
parse_args (enum command cmd, int argc, char **argv, struct cli *cli)
{
  int c, want = cmd == CMD_INSPECT ? 1 : 2;

  opterr = 0;
  optind = 1;
  while ((c = getopt_long (argc, argv, "+:l:T:fvh", long_opts, NULL)) != -1)
    {
      int r;
      if (c == 'h')
        {
          fputs (usage_text, stdout);
          return 0;
        }
      if (c == '?' || c == ':')
        return usage_error (c == ':' ? "option `%s' needs a value" : "unknown option `%s'",
                            argv[optind - 1]);
      if (!option_allowed (cmd, c))
        return usage_error ("option `%s' does not apply to this command", argv[optind - 1]);
      if ((r = apply_option (cli, c, optarg)) != 0)
        return r;
    }
  if (argc - optind != want)
    return usage_error ("%s", want == 1 ? "expected one INPUT" : "expected INPUT and OUTPUT");
  cli->in = argv[optind];
  cli->out = want == 2 ? argv[optind + 1] : NULL;
  return -1;
}

static int
fail (struct ate_error **err)
{
  fprintf (stderr, PROG ": %s\n", (*err)->msg);
  ate_error_release (err);
  return EXIT_FAILURE;
}

static bool
is_stdio (const char *path)
{
  return strcmp (path, "-") == 0;
}

/* stdin for `-` (never a terminal: nobody types a snapshot), else the file. */
static int
open_input (const char *path, struct ate_error **err)
{
  int fd;

  if (is_stdio (path))
    {
      if (isatty (STDIN_FILENO))
        return ate_error_make (err, 0, "refusing to read a snapshot from a terminal");
      return STDIN_FILENO;
    }
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return ate_error_make (err, errno, "open `%s`", path);
  return fd;
}

static void
close_input (int fd)
{
  if (fd > STDIN_FILENO)
    close (fd);
}

static void
print_summary (const char *verb, const struct cli *cli, const struct snapshot_stats *st)
{
  char l[32], p[32], c[32];

  if (!cli->verbose && !isatty (STDERR_FILENO))
    return;
  human (st->logical_size, l, sizeof (l));
  human (st->populated_bytes, p, sizeof (p));
  human (st->compressed_bytes, c, sizeof (c));
  fprintf (stderr, "%s %s -> %s: %s, logical %s, populated %s in %" PRIu64
                   " extents, compressed %s\n",
           verb, cli->in, cli->out, snapshot_format_name (st->format), l, p,
           st->extent_count, c);
}

static int
check_output (const struct cli *cli, struct ate_error **err)
{
  if (is_stdio (cli->out))
    {
      if (isatty (STDOUT_FILENO))
        return ate_error_make (err, 0, "refusing to write binary data to a terminal");
      return 0;
    }
  /* Checked early so that a long run does not end in EEXIST; the rename
   * checks again. */
  if (!cli->force && ate_path_exists (cli->out))
    return ate_error_make (err, 0, "output `%s` exists (use --force to replace it)",
                           cli->out);
  return 0;
}

static int
cmd_pack (struct cli *cli)
{
  cleanup_error struct ate_error *err = NULL;
  cleanup_outfile struct snapshot_outfile *of = NULL;
  struct progress pr = { .verb = "packing" };
  struct snapshot_encode_opts o = {
    .level = cli->level, .threads = cli->threads, .format = cli->format,
    .cancel = &interrupted, .progress = cli->progress ? progress_cb : NULL,
    .progress_data = &pr,
  };
  struct snapshot_stats st;
  int in_fd, r;

  if (check_output (cli, &err) < 0 || (in_fd = open_input (cli->in, &err)) < 0)
    return fail (&err);
  if (is_stdio (cli->out))
    r = snapshot_encode_fd (in_fd, STDOUT_FILENO, &o, &st, &err);
  else
    r = (snapshot_outfile_open (cli->out, 0, &of, &err) < 0
         || snapshot_encode_fd (in_fd, snapshot_outfile_fd (of), &o, &st, &err) < 0
         || snapshot_outfile_commit (of, cli->force, cli->no_fsync, &err) < 0)
            ? -1
            : 0;
  progress_end (&pr);
  close_input (in_fd);
  if (r < 0)
    return fail (&err);
  print_summary ("packed", cli, &st);
  return EXIT_SUCCESS;
}

static int
cmd_unpack (struct cli *cli)
{
  cleanup_error struct ate_error *err = NULL;
  struct progress pr = { .verb = "unpacking" };
  struct snapshot_decode_opts o = {
    .max_size = cli->max_size, .no_replace = !cli->force, .no_fsync = cli->no_fsync,
    .cancel = &interrupted, .progress = cli->progress ? progress_cb : NULL,
    .progress_data = &pr,
  };
  struct snapshot_stats st;
  int in_fd, r;

  if (check_output (cli, &err) < 0 || (in_fd = open_input (cli->in, &err)) < 0)
    return fail (&err);
  if (is_stdio (cli->out))
    r = snapshot_decode_to_stream (in_fd, STDOUT_FILENO, &o, NULL, &st, &err);
  else
    r = snapshot_decode_fd (in_fd, cli->out, &o, NULL, &st, &err);
  progress_end (&pr);
  close_input (in_fd);
  if (r < 0)
    return fail (&err);
  print_summary ("unpacked", cli, &st);
  return EXIT_SUCCESS;
}

static double
ratio (uint64_t a, uint64_t b)
{
  return b == 0 ? 0.0 : (double) a / (double) b;
}

static void
print_inspect_json (const struct snapshot_stats *st)
{
  cleanup_json json_object *o = json_object_new_object ();

  json_object_object_add (o, "format", json_object_new_string (snapshot_format_name (st->format)));
  json_object_object_add (o, "logical_size", json_object_new_int64 ((int64_t) st->logical_size));
  json_object_object_add (o, "populated_bytes",
                          json_object_new_int64 ((int64_t) st->populated_bytes));
  json_object_object_add (o, "extent_count", json_object_new_int64 ((int64_t) st->extent_count));
  json_object_object_add (o, "compressed_bytes",
                          json_object_new_int64 ((int64_t) st->compressed_bytes));
  json_object_object_add (o, "ratio",
                          json_object_new_double (ratio (st->populated_bytes, st->compressed_bytes)));
  json_object_object_add (o, "logical_ratio",
                          json_object_new_double (ratio (st->logical_size, st->compressed_bytes)));
  puts (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN));
}

static void
print_inspect_text (const struct snapshot_stats *st)
{
  char h[32];

  printf ("format:           %s\n", st->format == SNAPSHOT_FORMAT_SPARSE_V2
                                        ? "sparse-v2 (ATESPRSE version 2)"
                                        : "plain-zstd (fallback; holes = 64 KiB zero blocks)");
  human (st->logical_size, h, sizeof (h));
  printf ("logical size:     %" PRIu64 " (%s)\n", st->logical_size, h);
  human (st->populated_bytes, h, sizeof (h));
  printf ("populated bytes:  %" PRIu64 " (%s)\n", st->populated_bytes, h);
  printf ("extents:          %" PRIu64 "\n", st->extent_count);
  human (st->compressed_bytes, h, sizeof (h));
  printf ("compressed size:  %" PRIu64 " (%s)\n", st->compressed_bytes, h);
  printf ("ratio:            %.2f (populated / compressed), %.2f (logical / compressed)\n",
          ratio (st->populated_bytes, st->compressed_bytes),
          ratio (st->logical_size, st->compressed_bytes));
}

static int
cmd_inspect (struct cli *cli)
{
  cleanup_error struct ate_error *err = NULL;
  struct snapshot_decode_opts o = { .cancel = &interrupted };
  struct snapshot_stats st;
  int in_fd, r;

  if ((in_fd = open_input (cli->in, &err)) < 0)
    return fail (&err);
  r = snapshot_inspect (in_fd, &o, &st, &err);
  close_input (in_fd);
  if (r < 0)
    return fail (&err);
  if (cli->json)
    print_inspect_json (&st);
  else
    print_inspect_text (&st);
  return fflush (stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int
main (int argc, char **argv)
{
  struct cli cli = { .progress = true };
  enum command cmd;
  int r;

  if (argc < 2)
    return usage_error ("%s", "missing command (pack, unpack or inspect)");
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0
      || strcmp (argv[1], "help") == 0)
    {
      fputs (usage_text, stdout);
      return EXIT_SUCCESS;
    }
  if (strcmp (argv[1], "--version") == 0)
    {
      printf (PROG " %s (commit %s)\n", ATE_VERSION, ATE_GIT_COMMIT);
      return EXIT_SUCCESS;
    }
  if (strcmp (argv[1], "pack") == 0)
    cmd = CMD_PACK;
  else if (strcmp (argv[1], "unpack") == 0)
    cmd = CMD_UNPACK;
  else if (strcmp (argv[1], "inspect") == 0)
    cmd = CMD_INSPECT;
  else
    return usage_error ("unknown command `%s'", argv[1]);
  if ((r = parse_args (cmd, argc - 1, argv + 1, &cli)) >= 0)
    return r;
  if (!isatty (STDERR_FILENO))
    cli.progress = false;
  setup_signals ();
  switch (cmd)
    {
    case CMD_PACK:
      return cmd_pack (&cli);
    case CMD_UNPACK:
      return cmd_unpack (&cli);
    case CMD_INSPECT:
      break;
    }
  return cmd_inspect (&cli);
}
