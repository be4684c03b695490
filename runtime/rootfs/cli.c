/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ateom-rootfs: build or check a rootfs disk outside the server, through the
 * same code path, fingerprint and image cache as the server.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "rootfs.h"
#include "util/error.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/util.h"
#include "version.h"

#define EXIT_USAGE 2

static void
usage (FILE *f)
{
  fprintf (f,
           "Usage: ateom-rootfs [--help] [--version] COMMAND [OPTIONS] ARGS\n"
           "\n"
           "Build and inspect the ext4 rootfs disks of ateom-microvm (docs/rootfs.md).\n"
           "\n"
           "Commands:\n"
           "  build [OPTIONS] SRC_DIR OUT_IMAGE\n"
           "      Make OUT_IMAGE a disk of the tree SRC_DIR, exactly as the server does:\n"
           "      reuse OUT_IMAGE when its fingerprint matches and it was not written\n"
           "      since, else clone it from the image cache, else run mkfs.ext4.\n"
           "  base [OPTIONS] SRC_DIR\n"
           "      Make sure the image cache holds the base image of the tree SRC_DIR\n"
           "      (built once per node, keyed by content) and print its id and path.\n"
           "  inspect [OPTIONS] IMAGE\n"
           "      Print the geometry, the fingerprint and whether the build is cached.\n"
           "  geometry SRC_DIR\n"
           "      Print the size and inode count a disk of SRC_DIR gets.\n"
           "\n"
           "Options:\n"
           "  --base-path DIR        server state (default " ATE_DEFAULT_BASE_PATH ")\n"
           "  --cache-dir DIR        image cache (default <base-path>/" ROOTFS_CACHE_SUBDIR ")\n"
           "  --cache-max-bytes N    bound of the image cache (default %llu)\n"
           "  --no-cache             neither use nor fill the image cache (build)\n"
           "  --force                rebuild even if OUT_IMAGE matches (build)\n"
           "  --metadata-digest      digest file metadata only, no content (build)\n"
           "  --mkfs PATH            mkfs.ext4 to run (default: mkfs.ext4 in PATH)\n"
           "  --debugfs PATH         debugfs to run (default: debugfs in PATH)\n"
           "  --json                 machine-readable output\n"
           "  --log-level LEVEL      debug, info, warn, error (default info; logs go\n"
           "                         to stderr as JSON lines)\n"
           "\n"
           "Exit status: 0 success, 1 failure, 2 usage error.\n",
           (unsigned long long) ROOTFS_DEFAULT_CACHE_MAX_BYTES);
}

struct cli
{
  struct rootfs_config cfg;
  bool no_cache, force, json;
};

static int
parse_bytes (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;

  if (s[0] < '0' || s[0] > '9')
    return -1;
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno != 0 || *end != '\0')
    return -1;
  *out = v;
  return 0;
}

/* Options common to every command; returns the index of the first
 * argument, or -1 on a usage error. */
static int
parse_options (int argc, char **argv, struct cli *c)
{
  enum { O_BASE = 256, O_CACHE_DIR, O_CACHE_MAX, O_NO_CACHE, O_FORCE, O_META, O_MKFS,
         O_DEBUGFS, O_JSON, O_LOG };
  static const struct option longopts[] = {
    { "base-path", required_argument, NULL, O_BASE },
    { "cache-dir", required_argument, NULL, O_CACHE_DIR },
    { "cache-max-bytes", required_argument, NULL, O_CACHE_MAX },
    { "no-cache", no_argument, NULL, O_NO_CACHE },
    { "force", no_argument, NULL, O_FORCE },
    { "metadata-digest", no_argument, NULL, O_META },
    { "mkfs", required_argument, NULL, O_MKFS },
    { "debugfs", required_argument, NULL, O_DEBUGFS },
    { "json", no_argument, NULL, O_JSON },
    { "log-level", required_argument, NULL, O_LOG },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  enum ate_log_level level;
  int opt;

  while ((opt = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    switch (opt)
      {
      case O_BASE: c->cfg.base_path = optarg; break;
      case O_CACHE_DIR: c->cfg.cache_dir = optarg; break;
      case O_CACHE_MAX:
        if (parse_bytes (optarg, &c->cfg.cache_max_bytes) < 0)
          {
            fprintf (stderr, "ateom-rootfs: --cache-max-bytes wants a number of bytes\n");
            return -1;
          }
        break;
      case O_NO_CACHE: c->no_cache = true; break;
      case O_FORCE: c->force = true; break;
      case O_META: c->cfg.metadata_digest_only = true; break;
      case O_MKFS: c->cfg.mkfs_path = optarg; break;
      case O_DEBUGFS: c->cfg.debugfs_path = optarg; break;
      case O_JSON: c->json = true; break;
      case O_LOG:
        if (ate_log_parse_level (optarg, &level) < 0)
          {
            fprintf (stderr, "ateom-rootfs: unknown log level \"%s\"\n", optarg);
            return -1;
          }
        ate_log_set_level (level);
        break;
      case 'h': usage (stdout); exit (0);
      default: return -1;
      }
  if (c->no_cache)
    c->cfg.cache_max_bytes = 0;
  return optind;
}

static int
fail (struct ate_error **err)
{
  fprintf (stderr, "ateom-rootfs: %s\n", (*err)->msg);
  ate_error_release (err);
  return EXIT_FAILURE;
}

static char *
absolute (const char *path)
{
  char *cwd;
  char *r;

  if (path[0] == '/')
    return xstrdup (path);
  cwd = getcwd (NULL, 0);
  if (cwd == NULL)
    ate_oom ();
  r = xasprintf ("%s/%s", cwd, path);
  free (cwd);
  return r;
}

static void
print_outcome (const char *image, const struct rootfs_outcome *o, bool json)
{
  if (json)
    {
      struct json_object *j = json_object_new_object ();
      json_object_object_add (j, "image", json_object_new_string (image));
      json_object_object_add (j, "origin", json_object_new_string (rootfs_origin_name (o->origin)));
      json_object_object_add (j, "size_mib", json_object_new_int64 ((int64_t) o->geometry.size_mib));
      json_object_object_add (j, "inodes", json_object_new_int64 ((int64_t) o->geometry.inodes));
      json_object_object_add (j, "entries", json_object_new_int64 ((int64_t) o->geometry.entries));
      json_object_object_add (j, "content_bytes",
                              json_object_new_int64 ((int64_t) o->geometry.content_bytes));
      json_object_object_add (j, "elapsed_ms", json_object_new_double (o->elapsed_ms));
      printf ("%s\n", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN));
      json_object_put (j);
      return;
    }
  printf ("image: %s\norigin: %s\nsize-mib: %" PRIu64 "\ninodes: %" PRIu64
          "\nentries: %" PRIu64 "\ncontent-bytes: %" PRIu64 "\nelapsed: %.3f s\n",
          image, rootfs_origin_name (o->origin), o->geometry.size_mib, o->geometry.inodes,
          o->geometry.entries, o->geometry.content_bytes, o->elapsed_ms / 1000.0);
}

static int
cmd_build (struct cli *c, int argc, char **argv)
{
  cleanup_error struct ate_error *err = NULL;
  cleanup_free char *src = NULL, *out = NULL;
  struct rootfs_manager *mgr = NULL;
  struct rootfs_outcome o;
  int r;

  if (argc != 2)
    {
      fprintf (stderr, "ateom-rootfs build: want SRC_DIR OUT_IMAGE\n");
      return EXIT_USAGE;
    }
  src = absolute (argv[0]);
  out = absolute (argv[1]);
  if (rootfs_manager_new (&c->cfg, &mgr, &err) < 0)
    return fail (&err);
  if (c->force)
    r = rootfs_disk_rebuild_ex (mgr, src, out, ATE_DEADLINE_NONE, &o, &err);
  else
    r = rootfs_disk_for_run_ex (mgr, src, out, ATE_DEADLINE_NONE, &o, &err);
  /* The cache entry of a fresh build is finished after the disk is handed
   * over: let it complete instead of cancelling it on the way out. */
  rootfs_manager_wait_idle (mgr);
  rootfs_manager_free (mgr);
  if (r < 0)
    return fail (&err);
  print_outcome (out, &o, c->json);
  return EXIT_SUCCESS;
}

static int
cmd_base (struct cli *c, int argc, char **argv)
{
  cleanup_error struct ate_error *err = NULL;
  cleanup_free char *src = NULL;
  struct rootfs_manager *mgr = NULL;
  struct rootfs_base *b = NULL;
  int64_t t0 = ate_now_ns ();

  if (argc != 1)
    {
      fprintf (stderr, "ateom-rootfs base: want SRC_DIR\n");
      return EXIT_USAGE;
    }
  src = absolute (argv[0]);
  if (rootfs_manager_new (&c->cfg, &mgr, &err) < 0)
    return fail (&err);
  if (rootfs_base_get (mgr, src, ATE_DEADLINE_NONE, &b, &err) < 0)
    {
      rootfs_manager_free (mgr);
      return fail (&err);
    }
  double ms = ate_elapsed_ms (t0);
  if (c->json)
    printf ("{\"id\":\"%s\",\"path\":\"%s\",\"size\":%" PRIu64 ",\"content_digest\":\"%s\","
            "\"origin\":\"%s\",\"elapsed_ms\":%.1f}\n",
            b->id, b->path, b->size, b->content_digest, rootfs_origin_name (b->origin), ms);
  else
    printf ("id: %s\npath: %s\nsize: %" PRIu64 "\ncontent-digest: %s\norigin: %s\n"
            "elapsed: %.3f s\n",
            b->id, b->path, b->size, b->content_digest, rootfs_origin_name (b->origin),
            ms / 1000.0);
  fflush (stdout);
  /* Durable before exit: the seal runs after the caller has the base. */
  rootfs_manager_wait_idle (mgr);
  rootfs_base_release (b);
  rootfs_manager_free (mgr);
  return EXIT_SUCCESS;
}

static const char *
fingerprint_state (const struct rootfs_image_info *i)
{
  if (!i->has_fingerprint)
    return "none";
  if (i->fingerprint_error)
    return "invalid";
  return i->fingerprint_matches_disk ? "valid" : "valid, but the disk was written since or is from an earlier boot";
}

static void
print_info_json (const char *image, const struct rootfs_image_info *i)
{
  struct json_object *j = json_object_new_object ();
  json_object_object_add (j, "image", json_object_new_string (image));
  json_object_object_add (j, "file_size", json_object_new_int64 ((int64_t) i->file_size));
  json_object_object_add (j, "allocated", json_object_new_int64 ((int64_t) i->allocated));
  json_object_object_add (j, "block_size", json_object_new_int64 ((int64_t) i->block_size));
  json_object_object_add (j, "blocks", json_object_new_int64 ((int64_t) i->blocks));
  json_object_object_add (j, "inodes", json_object_new_int64 ((int64_t) i->inodes));
  json_object_object_add (j, "free_inodes", json_object_new_int64 ((int64_t) i->free_inodes));
  json_object_object_add (j, "uuid", json_object_new_string (i->uuid));
  json_object_object_add (j, "hash_seed", json_object_new_string (i->hash_seed));
  json_object_object_add (j, "journal", json_object_new_boolean (i->has_journal));
  json_object_object_add (j, "fingerprint_state", json_object_new_string (fingerprint_state (i)));
  if (i->fingerprint_error)
    json_object_object_add (j, "fingerprint_error", json_object_new_string (i->fingerprint_error));
  if (i->fingerprint)
    json_object_object_add (j, "fingerprint", json_object_new_string (i->fingerprint));
  if (i->cache_entry)
    json_object_object_add (j, "cache_entry", json_object_new_string (i->cache_entry));
  json_object_object_add (j, "in_cache", json_object_new_boolean (i->in_cache));
  printf ("%s\n", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN));
  json_object_put (j);
}

static void
print_info (const char *image, const struct rootfs_image_info *i)
{
  printf ("image: %s\nfile-size: %" PRIu64 " (%" PRIu64 " MiB, %" PRIu64 " allocated)\n"
          "block-size: %" PRIu64 "\nblocks: %" PRIu64 "\ninodes: %" PRIu64 " (%" PRIu64
          " in use)\nuuid: %s\nhash-seed: %s\njournal: %s\nfingerprint: %s%s%s\n",
          image, i->file_size, i->file_size >> 20, i->allocated, i->block_size, i->blocks,
          i->inodes, i->inodes - i->free_inodes, i->uuid, i->hash_seed,
          i->has_journal ? "yes" : "no", fingerprint_state (i),
          i->fingerprint_error ? ": " : "", i->fingerprint_error ? i->fingerprint_error : "");
  if (i->cache_entry)
    printf ("cache: %s (%s)\n", i->in_cache ? "cached" : "not cached", i->cache_entry);
  else
    printf ("cache: unknown (no valid fingerprint)\n");
  if (i->fingerprint && !i->fingerprint_error)
    printf ("\n%s", i->fingerprint);
}

static int
cmd_inspect (struct cli *c, int argc, char **argv)
{
  cleanup_error struct ate_error *err = NULL;
  struct rootfs_manager *mgr = NULL;
  struct rootfs_image_info info;
  int r;

  if (argc != 1)
    {
      fprintf (stderr, "ateom-rootfs inspect: want IMAGE\n");
      return EXIT_USAGE;
    }
  c->cfg.cache_max_bytes = 0; /* look at the cache directory, do not create it */
  if (rootfs_manager_new (&c->cfg, &mgr, &err) < 0)
    return fail (&err);
  r = rootfs_image_inspect (mgr, argv[0], &info, &err);
  rootfs_manager_free (mgr);
  if (r < 0)
    return fail (&err);
  if (c->json)
    print_info_json (argv[0], &info);
  else
    print_info (argv[0], &info);
  rootfs_image_info_clear (&info);
  return EXIT_SUCCESS;
}

static int
cmd_geometry (struct cli *c, int argc, char **argv)
{
  cleanup_error struct ate_error *err = NULL;
  struct rootfs_geometry g;

  if (argc != 1)
    {
      fprintf (stderr, "ateom-rootfs geometry: want SRC_DIR\n");
      return EXIT_USAGE;
    }
  if (rootfs_geometry_compute (argv[0], &g, &err) < 0)
    return fail (&err);
  if (c->json)
    printf ("{\"entries\":%" PRIu64 ",\"content_bytes\":%" PRIu64 ",\"inodes\":%" PRIu64
            ",\"size_mib\":%" PRIu64 "}\n",
            g.entries, g.content_bytes, g.inodes, g.size_mib);
  else
    printf ("entries: %" PRIu64 "\ncontent-bytes: %" PRIu64 "\ninodes: %" PRIu64
            "\nsize-mib: %" PRIu64 "\n",
            g.entries, g.content_bytes, g.inodes, g.size_mib);
  return EXIT_SUCCESS;
}

int
main (int argc, char **argv)
{
  struct cli c;
  const char *cmd;
  int first;

  memset (&c, 0, sizeof (c));
  rootfs_config_init (&c.cfg);
  ate_log_set_fd (2);
  if (argc >= 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0))
    {
      usage (stdout);
      return EXIT_SUCCESS;
    }
  if (argc >= 2 && strcmp (argv[1], "--version") == 0)
    {
      printf ("ateom-rootfs %s (%s)\n", ATE_VERSION, ATE_GIT_COMMIT);
      return EXIT_SUCCESS;
    }
  if (argc < 2)
    {
      usage (stderr);
      return EXIT_USAGE;
    }
  cmd = argv[1];
  first = parse_options (argc - 1, argv + 1, &c);
  if (first < 0)
    {
      usage (stderr);
      return EXIT_USAGE;
    }
  argc -= 1 + first;
  argv += 1 + first;
  if (strcmp (cmd, "build") == 0)
    return cmd_build (&c, argc, argv);
  if (strcmp (cmd, "base") == 0)
    return cmd_base (&c, argc, argv);
  if (strcmp (cmd, "inspect") == 0)
    return cmd_inspect (&c, argc, argv);
  if (strcmp (cmd, "geometry") == 0)
    return cmd_geometry (&c, argc, argv);
  fprintf (stderr, "ateom-rootfs: unknown command \"%s\"\n", cmd);
  usage (stderr);
  return EXIT_USAGE;
}
