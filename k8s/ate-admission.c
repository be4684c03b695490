/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ate-admission: check ate.dev manifests the way the cluster will, and print
 * the worker Deployment the controller builds for a WorkerPool.
 *
 * Exit status: 0 every object passes / rendered, 1 violations, 2 usage or
 * input errors (unreadable file, YAML error, limits).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "k8s/admission.h"
#include "util/error.h"
#include "util/json.h"
#include "util/util.h"
#include "version.h"

enum output
{
  OUTPUT_DEFAULT,
  OUTPUT_TEXT,
  OUTPUT_JSON,
  OUTPUT_YAML,
};

struct options
{
  enum output output;
  unsigned flags;
  const char *name;
  bool verbose;
  char **old_files;
  size_t n_old;
};

static void
usage (FILE *f)
{
  fputs ("Usage: ate-admission [OPTIONS] COMMAND [OPTIONS] FILE...\n"
         "\n"
         "Check SandboxConfig, WorkerPool and ActorTemplate manifests (ate.dev/v1alpha1)\n"
         "against the CRD schemas, the ateom-microvm-sandboxconfig-assets admission\n"
         "policy and the cross-object rules, or print the worker Deployment of a\n"
         "WorkerPool.\n"
         "\n"
         "Commands:\n"
         "  validate FILE...           one line per violation:\n"
         "                             FILE: KIND/NAME: field.path: message\n"
         "  render-workerpool FILE...  print the Deployment the controller applies for the\n"
         "                             WorkerPool in the input\n"
         "\n"
         "FILE may be - for standard input.  Objects of other API groups are skipped.\n"
         "Every FILE of one invocation is one input: cross-object rules see them all\n"
         "(an object defined in several FILEs is taken as alternatives, not a duplicate).\n"
         "\n"
         "Options:\n"
         "  -o, --output FORMAT    validate: text (default), json or yaml;\n"
         "                         render-workerpool: yaml (default) or json\n"
         "      --old FILE         validate as an update of the objects in FILE\n"
         "                         (ActorTemplate spec is immutable); repeatable\n"
         "      --require-virtiofsd\n"
         "                         require the later upstream micro-VM asset set (adds\n"
         "                         virtiofsd)\n"
         "  -n, --name NAME        render-workerpool: the WorkerPool to render when the\n"
         "                         input holds several\n"
         "  -v, --verbose          validate: print a summary on standard error\n"
         "  -h, --help             show this help\n"
         "      --version          show the version\n"
         "\n"
         "Exit status: 0 all objects pass, 1 violations found, 2 usage or input error.\n",
         f);
}

static int
parse_output (const char *s, enum output *out)
{
  if (strcmp (s, "text") == 0)
    *out = OUTPUT_TEXT;
  else if (strcmp (s, "json") == 0)
    *out = OUTPUT_JSON;
  else if (strcmp (s, "yaml") == 0)
    *out = OUTPUT_YAML;
  else
    return -1;
  return 0;
}

static int
parse_options (int argc, char **argv, struct options *o)
{
  enum
  {
    OPT_OLD = 256,
    OPT_VIRTIOFSD,
    OPT_VERSION,
  };
  static const struct option long_opts[] = {
    { "output", required_argument, NULL, 'o' },
    { "old", required_argument, NULL, OPT_OLD },
    { "require-virtiofsd", no_argument, NULL, OPT_VIRTIOFSD },
    { "name", required_argument, NULL, 'n' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
  };
  int c;

  while ((c = getopt_long (argc, argv, "o:n:vh", long_opts, NULL)) != -1)
    switch (c)
      {
      case 'o':
        if (parse_output (optarg, &o->output) < 0)
          {
            fprintf (stderr, "ate-admission: unknown output format \"%s\" (text, json, yaml)\n",
                     optarg);
            return 2;
          }
        break;
      case OPT_OLD:
        o->old_files = xrealloc (o->old_files, (o->n_old + 1) * sizeof (char *));
        o->old_files[o->n_old++] = optarg;
        break;
      case OPT_VIRTIOFSD:
        o->flags |= ATE_ADMISSION_REQUIRE_VIRTIOFSD;
        break;
      case 'n':
        o->name = optarg;
        break;
      case 'v':
        o->verbose = true;
        break;
      case 'h':
        usage (stdout);
        return 0;
      case OPT_VERSION:
        printf ("ate-admission %s (%s)\n", ATE_VERSION, ATE_GIT_COMMIT);
        return 0;
      default:
        usage (stderr);
        return 2;
      }
  return -1;
}

/* Load every file; report each unusable one and go on with the rest. */
static bool
load_files (struct ate_admission_set *set, char **files, size_t n)
{
  bool ok = true;

  for (size_t i = 0; i < n; i++)
    {
      cleanup_error struct ate_error *err = NULL;
      if (ate_admission_set_add_file (set, files[i], NULL, &err) < 0)
        {
          fprintf (stderr, "ate-admission: %s\n", err->msg);
          ok = false;
        }
    }
  return ok;
}

static int
print_json_or_yaml (struct json_object *v, enum output output)
{
  cleanup_free char *text = NULL;
  cleanup_error struct ate_error *err = NULL;

  if (output == OUTPUT_JSON)
    {
      text = ate_json_to_string (v, 1);
      printf ("%s\n", text);
      return 0;
    }
  if (ate_admission_to_yaml (v, &text, &err) < 0)
    {
      fprintf (stderr, "ate-admission: %s\n", err->msg);
      return -1;
    }
  fputs (text, stdout);
  return 0;
}

static int
cmd_validate (const struct options *o, char **files, size_t n)
{
  struct ate_admission_set *set = ate_admission_set_new ();
  struct ate_admission_set *old = NULL;
  struct ate_admission_report *report = NULL;
  cleanup_error struct ate_error *err = NULL;
  bool loaded = load_files (set, files, n);
  int ret;

  if (o->n_old > 0)
    {
      old = ate_admission_set_new ();
      loaded = load_files (old, o->old_files, o->n_old) && loaded;
    }
  if (ate_admission_validate (set, old, o->flags, &report, &err) < 0)
    {
      fprintf (stderr, "ate-admission: %s\n", err->msg);
      ret = 2;
      goto out;
    }
  if (o->output == OUTPUT_JSON || o->output == OUTPUT_YAML)
    {
      struct json_object *j = ate_admission_report_to_json (report);
      print_json_or_yaml (j, o->output);
      json_object_put (j);
    }
  else
    for (size_t i = 0; i < ate_admission_report_count (report); i++)
      {
        cleanup_free char *line
            = ate_admission_violation_format (ate_admission_report_get (report, i));
        printf ("%s\n", line);
      }
  if (o->verbose)
    fprintf (stderr,
             "ate-admission: %zu objects checked, %zu of other kinds skipped, %zu "
             "violations\n",
             ate_admission_report_objects (report), ate_admission_set_skipped (set),
             ate_admission_report_count (report));
  ret = !loaded ? 2 : ate_admission_report_count (report) > 0 ? 1 : 0;
out:
  ate_admission_report_free (report);
  ate_admission_set_free (set);
  ate_admission_set_free (old);
  return ret;
}

static int
cmd_render (const struct options *o, char **files, size_t n)
{
  struct ate_admission_set *set = ate_admission_set_new ();
  struct json_object *dep = NULL;
  cleanup_error struct ate_error *err = NULL;
  enum output output = o->output == OUTPUT_DEFAULT ? OUTPUT_YAML : o->output;
  int ret = 0;

  if (output == OUTPUT_TEXT)
    {
      fprintf (stderr, "ate-admission: render-workerpool prints yaml or json\n");
      ret = 2;
    }
  else if (!load_files (set, files, n))
    ret = 2;
  else if (ate_admission_render_workerpool (set, o->name, &dep, &err) < 0)
    {
      fprintf (stderr, "ate-admission: %s\n", err->msg);
      ret = ate_error_code (err) == ATE_CODE_INVALID_ARGUMENT && strstr (err->msg, "is invalid")
                ? 1
                : 2;
    }
  else if (print_json_or_yaml (dep, output) < 0)
    ret = 2;
  json_object_put (dep);
  ate_admission_set_free (set);
  return ret;
}

int
main (int argc, char **argv)
{
  struct options o = { .output = OUTPUT_DEFAULT };
  const char *cmd;
  int ret;

  /* GNU getopt permutes: options may come before or after the command. */
  ret = parse_options (argc, argv, &o);
  if (ret >= 0)
    goto out;
  if (optind >= argc)
    {
      usage (stderr);
      ret = 2;
      goto out;
    }
  cmd = argv[optind++];
  if (strcmp (cmd, "validate") != 0 && strcmp (cmd, "render-workerpool") != 0)
    {
      fprintf (stderr, "ate-admission: unknown command \"%s\" (see --help)\n", cmd);
      ret = 2;
      goto out;
    }
  if (optind >= argc)
    {
      fprintf (stderr, "ate-admission: %s needs at least one FILE (- for standard input)\n", cmd);
      ret = 2;
      goto out;
    }
  if (strcmp (cmd, "validate") == 0)
    ret = cmd_validate (&o, argv + optind, (size_t) (argc - optind));
  else
    ret = cmd_render (&o, argv + optind, (size_t) (argc - optind));
out:
  free (o.old_files);
  return ret;
}
