/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "message.h"

#include <stdbool.h>
#include <string.h>

#include "util/paths.h"
#include "util/strbuf.h"
#include "util/util.h"

/* Roots a host path may start with besides the server's own directories. */
static const char *const system_roots[] = {
  "/var/", "/run/", "/tmp/", "/proc/", "/sys/", "/dev/", "/etc/", "/usr/", "/opt/",
  "/home/", "/root/", "/srv/", "/mnt/", "/lib/", "/lib64/", "/bin/", "/sbin/", "/nix/", "/snap/",
};

static bool
path_char (char c)
{
  return c != '\0' && c != ' ' && c != '\t' && c != '\n' && c != '`' && c != '\'' && c != '"'
         && c != ')' && c != '(' && c != ',' && c != ';' && c != '[' && c != ']' && c != '{'
         && c != '}';
}

/* prefix is a directory: p is it or inside it. */
static bool
under (const char *p, size_t len, const char *prefix)
{
  size_t n;
  if (prefix == NULL || prefix[0] != '/')
    return false;
  n = strlen (prefix);
  while (n > 1 && prefix[n - 1] == '/')
    n--;
  return len >= n && strncmp (p, prefix, n) == 0 && (len == n || p[n] == '/');
}

static bool
host_path (const char *p, size_t len, const struct ate_paths *paths)
{
  const char *dirs[] = { paths->base, paths->run_dir, paths->netns_dir, paths->kata_run };
  for (size_t i = 0; i < ATE_N_ELEMENTS (dirs); i++)
    if (under (p, len, dirs[i]))
      return true;
  for (size_t i = 0; i < ATE_N_ELEMENTS (system_roots); i++)
    {
      size_t n = strlen (system_roots[i]);
      if (len >= n && strncmp (p, system_roots[i], n) == 0)
        return true;
      if (system_roots[i][n - 1] == '/' && len == n - 1 && strncmp (p, system_roots[i], len) == 0)
        return true;
    }
  return false;
}

/* Append the caller's form of the path p[0..len). */
static void
put_path (struct ate_strbuf *out, const char *p, size_t len, const struct ate_paths *paths,
          const char *own_dir, const char *actors_dir)
{
  if (own_dir && under (p, len, own_dir))
    {
      size_t n = strlen (own_dir);
      if (len == n)
        ate_strbuf_add_str (out, "the actor's directory");
      else
        ate_strbuf_add (out, p + n + 1, len - n - 1);
    }
  else if (under (p, len, actors_dir) && len > strlen (actors_dir))
    ate_strbuf_add_str (out, "<another actor's directory>");
  else if (host_path (p, len, paths))
    ate_strbuf_add_str (out, "<host path>");
  else
    ate_strbuf_add (out, p, len);
}

char *
message_for_caller (const char *msg, const struct ate_paths *paths,
                    const struct message_actor *caller)
{
  cleanup_free char *own_dir = NULL;
  cleanup_free char *actors_dir = xasprintf ("%s/actors", paths->base ? paths->base : "");
  struct ate_strbuf out = { 0 };
  const char *p = msg ? msg : "";

  if (caller && caller->ns && caller->tmpl && caller->id)
    own_dir = ate_path_actor (paths, caller->ns, caller->tmpl, caller->id);
  ate_strbuf_add_str (&out, "");
  while (*p)
    {
      /* A path starts with '/' at the start or after a non-path character
       * ("file:///x" counts: its slashes follow a ':'). */
      bool starts = *p == '/' && (p == msg || !path_char (p[-1]) || p[-1] == ':' || p[-1] == '=');
      if (!starts)
        {
          ate_strbuf_add (&out, p, 1);
          p++;
          continue;
        }
      const char *s = p;
      while (s[0] == '/' && s[1] == '/')
        s++; /* "///var" of a file URL */
      size_t len = 0;
      while (path_char (s[len]))
        len++;
      /* A trailing ':' or '.' ends the sentence, not the path. */
      size_t keep = len;
      while (keep > 1 && (s[keep - 1] == ':' || s[keep - 1] == '.'))
        keep--;
      ate_strbuf_add (&out, p, (size_t) (s - p));
      put_path (&out, s, keep, paths, own_dir, actors_dir);
      p = s + keep;
    }
  return out.d;
}
