/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "mkfs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/mount.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ext4.h"
#include "util/error.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/util.h"

#define TOOL_OUTPUT_MAX (16 * 1024)
#define PROGRESS_EVERY_MS 5000
#define VERSION_TIMEOUT_MS 10000

/* mke2fs.conf is pinned (passed through MKE2FS_CONFIG) so that an image does
 * not depend on the node's /etc/mke2fs.conf.  These are Debian 12's
 * defaults for ext4, the configuration the reference ran with. */
static const char mke2fs_conf[] =
  "[defaults]\n"
  "\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr\n"
  "\tdefault_mntopts = acl,user_xattr\n"
  "\tenable_periodic_fsck = 0\n"
  "\tblocksize = 4096\n"
  "\tinode_size = 256\n"
  "\tinode_ratio = 16384\n"
  "\n"
  "[fs_types]\n"
  "\text4 = {\n"
  "\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,"
  "extra_isize\n"
  "\t}\n";

/* The part of the argv that is the same for every build (the reference's
 * options plus the determinism options, docs/rootfs.md "How a disk is
 * built"); part of the options digest. */
#define MKFS_EXTENDED "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0"
#define NORMALISE_RECIPE "root=0:0:040755:times;inodes=atime,ctime,mtime,uid=0,gid=0;v2"

void
rootfs_build_options_digest (uint8_t *out)
{
  cleanup_free char *s = xasprintf ("mkfs -F -q -N <inodes> -E %s,hash_seed=<seed> -U <uuid>"
                                    " -O ^has_journal -d <src> <image> <size>M\n"
                                    "fake-time %lld\nnormalise %s\nmke2fs.conf\n%s",
                                    MKFS_EXTENDED, ROOTFS_FAKE_TIME, NORMALISE_RECIPE,
                                    mke2fs_conf);
  unsigned int n = 0;
  if (EVP_Digest (s, strlen (s), out, &n, EVP_sha256 (), NULL) != 1)
    abort ();
}

/* ---- running a tool ---- */

struct tool_run
{
  const char *what;     /* for messages */
  char *const *argv;
  int stdin_fd;         /* -1: /dev/null */
  const int *keep_fds;  /* become fds 3, 4, ... */
  size_t n_keep_fds;
  bool stdout_to_null;  /* else stdout and stderr are both captured */
  void (*progress) (void *data, double elapsed_ms);
  void *progress_data;
};

/* The environment of e2fsprogs children: nothing inherited that could
 * change the bytes (MKE2FS_*, locale), fake time, pinned config at fd 3. */
static char **
tool_environment (void)
{
  const char *path = getenv ("PATH");
  char **env = xcalloc (6, sizeof (char *));

  env[0] = xasprintf ("PATH=%s", path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  env[1] = xstrdup ("LC_ALL=C");
  env[2] = xstrdup ("TZ=UTC");
  env[3] = xasprintf ("E2FSPROGS_FAKE_TIME=%lld", ROOTFS_FAKE_TIME);
  env[4] = xstrdup ("MKE2FS_CONFIG=/proc/self/fd/3");
  return env;
}

#define TOOL_READ_CHUNK 4096
_Static_assert (TOOL_READ_CHUNK <= TOOL_OUTPUT_MAX, "a read must fit the output buffer");

/* Keep the last TOOL_OUTPUT_MAX bytes (n <= TOOL_READ_CHUNK). */
static void
output_append (char *buf, size_t *len, const char *data, size_t n)
{
  if (*len + n > TOOL_OUTPUT_MAX)
    {
      size_t drop = *len + n - TOOL_OUTPUT_MAX;
      memmove (buf, buf + drop, *len - drop);
      *len -= drop;
    }
  memcpy (buf + *len, data, n);
  *len += n;
}

/* Read what is available; returns false at EOF. */
static bool
output_drain (int fd, char *buf, size_t *len)
{
  char chunk[TOOL_READ_CHUNK];
  for (;;)
    {
      ssize_t r = read (fd, chunk, sizeof (chunk));
      if (r > 0)
        {
          output_append (buf, len, chunk, (size_t) r);
          continue;
        }
      if (r < 0 && errno == EINTR)
        continue;
      return r < 0 && errno == EAGAIN;
    }
}

/* Wait for the child while collecting its output, reporting progress and
 * watching the cancel fd and the deadline. */
static int
tool_wait (const struct tool_run *t, const struct rootfs_tool_env *env, struct ate_proc *p,
           char *out, size_t *out_len, int *status, struct ate_error **err)
{
  int ofd = ate_proc_output_fd (p);
  int64_t start = ate_now_ns ();
  ate_deadline_t tick = ate_deadline_in_ms (PROGRESS_EVERY_MS);
  bool open_out = ofd >= 0;

  if (ofd >= 0)
    fcntl (ofd, F_SETFL, fcntl (ofd, F_GETFL) | O_NONBLOCK);
  while (!ate_proc_exited (p))
    {
      struct pollfd pfd[3] = { { .fd = ate_proc_pidfd (p), .events = POLLIN },
                               { .fd = open_out ? ofd : -1, .events = POLLIN },
                               { .fd = env->cancel_fd, .events = POLLIN } };
      int r = poll (pfd, 3, ate_deadline_poll_ms (ate_deadline_min (tick, env->deadline)));
      if (r < 0 && errno != EINTR)
        return ate_error_make (err, errno, "poll while waiting for %s", t->what);
      if (pfd[1].revents)
        open_out = output_drain (ofd, out, out_len);
      if (pfd[2].revents)
        return ate_error_make (err, ECANCELED, "%s cancelled (shutting down)", t->what);
      if (ate_deadline_expired (env->deadline))
        return ate_error_make (err, ETIMEDOUT, "%s still running after the build time limit",
                               t->what);
      if (ate_deadline_expired (tick))
        {
          if (t->progress)
            t->progress (t->progress_data, ate_elapsed_ms (start));
          tick = ate_deadline_in_ms (PROGRESS_EVERY_MS);
        }
    }
  if (ate_proc_wait (p, ATE_DEADLINE_NONE, status, err) < 0)
    return -1;
  /* A grandchild may still hold the pipe: take what is there, no more. */
  if (ofd >= 0)
    output_drain (ofd, out, out_len);
  return 0;
}

/* Run to completion.  *output (NUL-terminated, the last TOOL_OUTPUT_MAX
 * bytes) is set whenever the child ran, also on error. */
static int
tool_run (const struct tool_run *t, const struct rootfs_tool_env *env, char **output,
          int *status, struct ate_error **err)
{
  struct ate_spawn_opts o;
  struct ate_proc *p = NULL;
  cleanup_strv char **envv = tool_environment ();
  char *out = xmalloc (TOOL_OUTPUT_MAX + 1);
  size_t out_len = 0;
  int ret;

  ate_spawn_opts_init (&o);
  o.stdin_fd = t->stdin_fd >= 0 ? t->stdin_fd : ATE_SPAWN_NULL;
  o.stdout_fd = t->stdout_to_null ? ATE_SPAWN_NULL : ATE_SPAWN_PIPE;
  o.stderr_fd = t->stdout_to_null ? ATE_SPAWN_PIPE : ATE_SPAWN_STDOUT;
  o.env = envv;
  o.keep_fds = t->keep_fds;
  o.n_keep_fds = t->n_keep_fds;
  /* If the server dies, mkfs must not keep writing a temp file nobody
   * will rename. */
  o.pdeathsig = SIGKILL;
  /* Its own process group, so that giving up also stops whatever it
   * started (a wrapper script's children). */
  o.new_session = true;
  if (ate_proc_spawn (t->argv, &o, &p, err) < 0)
    {
      free (out);
      return ate_error_wrap (err, "start %s", t->what);
    }
  ret = tool_wait (t, env, p, out, &out_len, status, err);
  if (ret < 0)
    {
      /* The leader is not reaped yet, so its pid (= the group id) cannot
       * have been reused. */
      kill (-ate_proc_pid (p), SIGKILL);
    }
  ate_proc_free (p); /* kills and waits when tool_wait gave up */
  out[out_len] = '\0';
  *output = out;
  return ret;
}

/* Trim trailing whitespace in place; returns s. */
static char *
rstrip (char *s)
{
  size_t n = strlen (s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
    s[--n] = '\0';
  return s;
}

static int
memfd_with (const char *name, const char *data, size_t len, struct ate_error **err)
{
  int fd = memfd_create (name, MFD_CLOEXEC);
  size_t done = 0;

  if (fd < 0)
    return ate_error_make (err, errno, "memfd_create");
  while (done < len)
    {
      ssize_t w = write (fd, data + done, len - done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        {
          int e = errno;
          close (fd);
          return ate_error_make (err, e, "write memfd");
        }
      done += (size_t) w;
    }
  if (lseek (fd, 0, SEEK_SET) < 0)
    {
      int e = errno;
      close (fd);
      return ate_error_make (err, e, "seek memfd");
    }
  return fd;
}

int
rootfs_mkfs_version (const char *mkfs_path, const struct rootfs_tool_env *env,
                     char **out, struct ate_error **err)
{
  char *argv[] = { (char *) mkfs_path, (char *) "-V", NULL };
  cleanup_free char *output = NULL;
  struct rootfs_tool_env e = *env;
  struct tool_run t = { .what = mkfs_path, .argv = argv, .stdin_fd = -1 };
  cleanup_close int conf = memfd_with ("mke2fs.conf", mke2fs_conf, strlen (mke2fs_conf), err);
  int status = 0;
  char *nl;

  if (conf < 0)
    return -1;
  t.keep_fds = &conf;
  t.n_keep_fds = 1;
  e.deadline = ate_deadline_min (env->deadline, ate_deadline_in_ms (VERSION_TIMEOUT_MS));
  if (tool_run (&t, &e, &output, &status, err) < 0)
    return ate_error_wrap (err, "probe the mkfs version");
  nl = strchr (output, '\n');
  if (nl)
    *nl = '\0';
  rstrip (output);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0 || !str_has_prefix (output, "mke2fs ")
      || strlen (output) >= 120)
    return ate_error_make (err, ENOEXEC,
                           "`%s -V` is not e2fsprogs' mke2fs (%s, output \"%.200s\")",
                           mkfs_path, ate_proc_status_string (status), output);
  *out = steal_pointer (&output);
  return 0;
}

/* A read-only, noatime view of the source that exists only as a detached
 * mount held by an fd (open_tree + mount_setattr): mkfs cannot change the
 * tree it reads, and the view disappears with the fd, also on a crash.
 * Needs CAP_SYS_ADMIN: returns -1 without it (the caller reads the tree
 * directly: mkfs -d only reads, and the times it copies are normalised
 * afterwards either way). */
static int
open_readonly_view (const char *src)
{
  struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME,
                             .attr_clr = MOUNT_ATTR__ATIME };
  int fd = (int) syscall (SYS_open_tree, AT_FDCWD, src,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fd < 0)
    {
      if (errno != EPERM)
        ate_log (ATE_LOG_WARN, "rootfs: cannot make a read-only view of the source",
                 "src", src, "error", strerror (errno), NULL);
      return -1;
    }
  if (syscall (SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
               sizeof (attr))
      < 0)
    {
      ate_log (ATE_LOG_WARN, "rootfs: cannot make the source view read-only", "src", src,
               "error", strerror (errno), NULL);
      close (fd);
      return -1;
    }
  return fd;
}

static void
mkfs_progress (void *data, double elapsed_ms)
{
  const struct rootfs_mkfs_params *p = data;
  struct stat st;
  struct json_object *a = json_object_new_object ();

  if (fstat (p->image_fd, &st) == 0)
    json_object_object_add (a, "written_bytes", json_object_new_int64 (st.st_blocks * 512));
  json_object_object_add (a, "content_bytes",
                          json_object_new_int64 ((int64_t) p->geometry->content_bytes));
  json_object_object_add (a, "image", json_object_new_string (p->image_path));
  json_object_object_add (a, "elapsed_ms", json_object_new_int64 ((int64_t) elapsed_ms));
  ate_log_obj (ATE_LOG_INFO, "rootfs: mkfs.ext4 in progress", a);
}

static int
mkfs_failed (const struct rootfs_mkfs_params *p, int status, const char *output,
             struct ate_error **err)
{
  const char *hint = "";

  if (strstr (output, "No space left on device"))
    hint = " (the file system that holds the disk is full)";
  else if (strstr (output, "Could not allocate block"))
    hint = " (the image ran out of space: the tree grew while it was built?)";
  else if (strstr (output, "Could not allocate inode"))
    hint = " (the image ran out of inodes: the tree grew while it was built?)";
  else if (strstr (output, "file too big"))
    hint = " (this e2fsprogs cannot copy files larger than 2 GiB: a bug of 1.47.x fixed "
           "in 1.47.4; use another e2fsprogs version)";
  return ate_error_make (err, 0, "%s -d `%s` %s %" PRIu64 "M failed: %s%s: %s", p->mkfs_path,
                         p->src_name ? p->src_name : p->src_dir, p->image_path,
                         p->geometry->size_mib,
                         ate_proc_status_string (status), hint, output);
}

int
rootfs_mkfs_build (const struct rootfs_mkfs_params *p, const struct rootfs_tool_env *env,
                   struct ate_error **err)
{
  cleanup_close int conf = memfd_with ("mke2fs.conf", mke2fs_conf, strlen (mke2fs_conf), err);
  cleanup_close int view = -1;
  cleanup_free char *inodes = NULL, *ext = NULL, *size = NULL, *output = NULL;
  int keep[2];
  int status = 0;

  if (conf < 0)
    return -1;
  if (ftruncate (p->image_fd, (off_t) (p->geometry->size_mib << 20)) < 0)
    return ate_error_make (err, errno, "size `%s` to %" PRIu64 " MiB", p->image_path,
                           p->geometry->size_mib);
  view = open_readonly_view (p->src_dir);
  keep[0] = conf;
  keep[1] = view;
  inodes = xasprintf ("%" PRIu64, p->geometry->inodes);
  ext = xasprintf (MKFS_EXTENDED ",hash_seed=%s", p->hash_seed);
  size = xasprintf ("%" PRIu64 "M", p->geometry->size_mib);
  char *argv[] = { (char *) p->mkfs_path, (char *) "-F", (char *) "-q", (char *) "-N", inodes,
                   (char *) "-E", ext, (char *) "-U", (char *) p->uuid, (char *) "-O",
                   (char *) "^has_journal", (char *) "-d",
                   (char *) (view >= 0 ? "/proc/self/fd/4" : p->src_dir),
                   (char *) p->image_path, size, NULL };
  struct tool_run t = { .what = "mkfs.ext4", .argv = argv, .stdin_fd = -1,
                        .keep_fds = keep, .n_keep_fds = view >= 0 ? 2 : 1,
                        .progress = mkfs_progress, .progress_data = (void *) p };
  if (tool_run (&t, env, &output, &status, err) < 0)
    return -1;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    return mkfs_failed (p, status, rstrip (output), err);
  return 0;
}

/* ---- normalisation ---- */

/* Every inode of the tree gets the fixed time and owner 0:0: mkfs -d copies
 * atime, mtime and ctime (seconds; crtime is the fake time already) and the
 * owner from the source, where atelet's unpack leaves the unpack's time and
 * its own user. */
static char *
normalise_commands (uint64_t first_ino, uint64_t count, bool owners, size_t *len)
{
  /* Five lines of at most 40 bytes per inode. */
  size_t cap = 512 + count * 224, n = 0;
  char *buf = xmalloc (cap);
  const long long t = ROOTFS_FAKE_TIME;

  n += (size_t) snprintf (buf + n, cap - n,
                          "sif <2> mode 040755\nsif <2> uid 0\nsif <2> gid 0\n"
                          "sif <2> atime @%lld\nsif <2> ctime @%lld\n"
                          "sif <2> mtime @%lld\nsif <2> crtime @%lld\n",
                          t, t, t, t);
  for (uint64_t i = 0; i < count; i++)
    {
      uint64_t ino = first_ino + i;
      n += (size_t) snprintf (buf + n, cap - n,
                              "sif <%" PRIu64 "> atime @%lld\nsif <%" PRIu64 "> ctime @%lld\n"
                              "sif <%" PRIu64 "> mtime @%lld\n",
                              ino, t, ino, t, ino, t);
      if (owners)
        n += (size_t) snprintf (buf + n, cap - n,
                                "sif <%" PRIu64 "> uid 0\nsif <%" PRIu64 "> gid 0\n", ino, ino);
    }
  *len = n;
  return buf;
}

/* debugfs exits 0 even when a command fails; anything on stderr besides
 * its version banner is a failure. */
static bool
debugfs_output_clean (const char *out)
{
  const char *p = out;

  if (str_has_prefix (p, "debugfs "))
    {
      p = strchr (p, '\n');
      if (p == NULL)
        return true;
      p++;
    }
  for (; *p; p++)
    if (*p != '\n' && *p != ' ')
      return false;
  return true;
}

static int
tree_inode_range (const struct rootfs_normalise_params *p, uint64_t *first, uint64_t *count,
                  struct ate_error **err)
{
  struct rootfs_ext4_sb sb;
  uint64_t used;

  if (rootfs_ext4_read_sb (p->image_fd, &sb, err) < 0)
    return ate_error_wrap (err, "check `%s` after mkfs", p->image_path);
  if (strcmp (sb.uuid, p->uuid) != 0)
    return ate_error_make (err, EINVAL, "`%s`: UUID %s, expected %s", p->image_path, sb.uuid,
                           p->uuid);
  used = sb.inodes_count - sb.free_inodes;
  /* Inodes below s_first_ino are reserved (root is 2); mke2fs allocates
   * lost+found and then the tree's inodes contiguously from s_first_ino. */
  if (sb.first_ino < 11 || used != sb.first_ino - 1 + 1 + p->inodes_used)
    return ate_error_make (err, EAGAIN,
                           "`%s` has %" PRIu64 " inodes in use, expected %" PRIu64
                           " (did the source tree change during the build?)",
                           p->image_path, used, sb.first_ino - 1 + 1 + p->inodes_used);
  *first = sb.first_ino;
  *count = 1 + p->inodes_used;
  return 0;
}

int
rootfs_normalise (const struct rootfs_normalise_params *p, const struct rootfs_tool_env *env,
                  struct ate_error **err)
{
  cleanup_close int conf = -1, cmds = -1;
  cleanup_free char *text = NULL, *output = NULL;
  uint64_t first = 0, count = 0;
  size_t len = 0;
  int status = 0;

  if (tree_inode_range (p, &first, &count, err) < 0)
    return -1;
  text = normalise_commands (first, count, p->reset_owners, &len);
  cmds = memfd_with ("debugfs-commands", text, len, err);
  if (cmds < 0)
    return -1;
  conf = memfd_with ("mke2fs.conf", mke2fs_conf, strlen (mke2fs_conf), err);
  if (conf < 0)
    return -1;
  char *argv[] = { (char *) p->debugfs_path, (char *) "-w", (char *) "-f", (char *) "-",
                   (char *) p->image_path, NULL };
  struct tool_run t = { .what = "debugfs", .argv = argv, .stdin_fd = cmds,
                        .keep_fds = &conf, .n_keep_fds = 1, .stdout_to_null = true };
  if (tool_run (&t, env, &output, &status, err) < 0)
    return ate_error_wrap (err, "normalise inode times of `%s`", p->image_path);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0 || !debugfs_output_clean (output))
    return ate_error_make (err, 0, "normalise inode times of `%s`: %s -w failed: %s: %s",
                           p->image_path, p->debugfs_path, ate_proc_status_string (status),
                           rstrip (output));
  return 0;
}
