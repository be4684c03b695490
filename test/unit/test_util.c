/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/gojson.h"
#include "util/http.h"
#include "util/json.h"
#include "util/lines.h"
#include "util/paths.h"
#include "util/proc.h"
#include "util/sparse.h"
#include "util/time.h"
#include "util/untrusted.h"
#include "util/util.h"
#include "util/validate.h"

static char *
make_tmpdir (void)
{
  char tmpl[] = "/tmp/ate-test-util-XXXXXX";
  char *d = mkdtemp (tmpl);
  assert_non_null (d);
  return xstrdup (d);
}

static void
test_error_wrap_chain (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  int r = ate_error_make (&err, ENOENT, "open `%s`", "/x");
  assert_true (r < 0);
  ate_error_wrap (&err, "while building rootfs for %s", "a1");
  assert_string_equal (err->msg,
                       "while building rootfs for a1: open `/x`: No such file or directory");
  assert_int_equal (err->status, ENOENT);
  assert_int_equal (ate_error_code (err), ATE_CODE_INTERNAL);
  ate_error_set_code (err, ATE_CODE_UNIMPLEMENTED);
  assert_int_equal (ate_error_code (err), ATE_CODE_UNIMPLEMENTED);
  ate_error_release (&err);
  assert_null (err);

  ate_error_make (&err, ETIMEDOUT, "wait");
  assert_int_equal (ate_error_code (err), ATE_CODE_DEADLINE_EXCEEDED);
  /* A second error while one is pending is appended, not lost. */
  ate_error_make_code (&err, ATE_CODE_INVALID_ARGUMENT, 0, "second");
  assert_non_null (strstr (err->msg, "; second"));
  ate_error_free (err);

  /* Collecting: the first failure decides code and errno, every message
   * is kept in order, the source is always released. */
  struct ate_error *acc = NULL, *step = NULL;
  ate_error_collect (&acc, &step, "nothing to collect");
  assert_null (acc);
  ate_error_make_code (&step, ATE_CODE_ABORTED, EBUSY, "umount `/a`");
  ate_error_collect (&acc, &step, "in step %d", 1);
  assert_null (step);
  ate_error_make (&step, ETIMEDOUT, "remove `/b`");
  ate_error_collect (&acc, &step, NULL);
  assert_null (step);
  assert_string_equal (acc->msg, "in step 1: umount `/a`: Device or resource busy; "
                                 "remove `/b`: Connection timed out");
  assert_int_equal (acc->status, EBUSY);
  assert_int_equal (ate_error_code (acc), ATE_CODE_ABORTED);
  ate_error_make (&step, 0, "dropped");
  ate_error_collect (NULL, &step, "nobody wants it");
  assert_null (step);
  ate_error_release (&acc);

  assert_string_equal (ate_code_name (ATE_CODE_FAILED_PRECONDITION), "FAILED_PRECONDITION");
  assert_string_equal (ate_code_name (99), "UNKNOWN");
}

static void
test_xmemdup0 (void **state)
{
  (void) state;
  /* Exactly n bytes, NUL bytes kept, nothing read past n (valgrind and ASan
   * would see a read past the 3-byte buffer otherwise). */
  char *page = xmalloc (3);
  memcpy (page, "a\0b", 3);
  cleanup_free char *d = xmemdup0 (page, 3);
  assert_memory_equal (d, "a\0b\0", 4);
  free (page);
  cleanup_free char *e = xmemdup0 ("xyz", 0);
  assert_string_equal (e, "");
}

static void
test_xstrndup_unterminated (void **state)
{
  (void) state;
  /* An unterminated buffer of exactly n bytes (a gRPC slice, the end of a
   * qcow2 header cluster): ASan saw strndup read one byte past it. */
  char *buf = xmalloc (9);
  memcpy (buf, "base.raw!", 9);
  cleanup_free char *all = xstrndup (buf, 9);
  assert_string_equal (all, "base.raw!");
  cleanup_free char *part = xstrndup (buf, 4);
  assert_string_equal (part, "base");
  free (buf);
  cleanup_free char *stop = xstrndup ("ab\0cd", 5);
  assert_string_equal (stop, "ab");
}

static char *
gojson_roundtrip (const char *in, int max_depth)
{
  struct ate_gojson *v = ate_gojson_parse_object (in, strlen (in), max_depth);
  struct ate_strbuf b = { 0 };
  if (v == NULL)
    return NULL;
  ate_gojson_encode (&b, v);
  ate_gojson_free (v);
  return b.d;
}

static void
test_gojson (void **state)
{
  (void) state;
  cleanup_free char *sorted = gojson_roundtrip (" {\"b\":1e400,\"a\":\"<\\u2028\",\"a\":[true,null]} ", 8);
  assert_string_equal (sorted, "{\"a\":[true,null],\"b\":1e400}");
  cleanup_free char *escaped = gojson_roundtrip ("{\"k\":\"<&>\\u2028\xff\"}", 8);
  /* Decoding turns the invalid byte into U+FFFD itself, as Go does. */
  assert_string_equal (escaped, "{\"k\":\"\\u003c\\u0026\\u003e\\u2028\xef\xbf\xbd\"}");
  cleanup_free char *deep = gojson_roundtrip ("{\"a\":{\"b\":{}}}", 3);
  assert_string_equal (deep, "{\"a\":{\"b\":{}}}");
  assert_null (gojson_roundtrip ("{\"a\":{\"b\":{}}}", 2));
  assert_null (gojson_roundtrip ("{} x", 8));
  assert_null (gojson_roundtrip ("[1]", 8));

  struct ate_gojson *o = ate_gojson_parse_object ("{\"x\":\"old\",\"y\":1}", 17, 8);
  struct ate_gojson *ours = ate_gojson_new (ATE_GOJSON_OBJECT);
  struct ate_strbuf b = { 0 };
  ate_gojson_put_str (ours, "x", "new");
  ate_gojson_object_merge (o, ours);
  assert_string_equal (ate_gojson_get (o, "x")->s, "new");
  ate_gojson_encode (&b, o);
  assert_string_equal (b.d, "{\"x\":\"new\",\"y\":1}");
  free (b.d);
  ate_gojson_free (o);
}

struct lines_seen
{
  char text[64];
};

static void
lines_collect (void *ctx, const char *line, size_t len)
{
  struct lines_seen *s = ctx;
  strncat (s->text, line, len);
  strcat (s->text, "|");
}

static void
test_line_splitter (void **state)
{
  (void) state;
  struct lines_seen seen = { "" };
  struct ate_line_splitter s;

  ate_line_splitter_init (&s, 4, lines_collect, &seen);
  ate_line_splitter_feed (&s, "ab\n\ncdefgh", 10);
  ate_line_splitter_feed (&s, "ij\r\nk", 5);
  ate_line_splitter_finish (&s);
  /* The empty line is dropped; "gh" and "ij" fill one 4-byte piece. */
  assert_string_equal (seen.text, "ab|cdef|ghij|\r|k|");
}

static void
test_validate_names (void **state)
{
  (void) state;
  struct ate_error *err = NULL;

  assert_true (ate_is_dns1123_label ("a1"));
  assert_true (ate_is_dns1123_label ("counter-microvm"));
  assert_false (ate_is_dns1123_label (""));
  assert_false (ate_is_dns1123_label ("-a"));
  assert_false (ate_is_dns1123_label ("a-"));
  assert_false (ate_is_dns1123_label ("A"));
  assert_false (ate_is_dns1123_label ("a_b"));
  assert_false (ate_is_dns1123_label ("a/b"));
  assert_false (ate_is_dns1123_label (".."));
  char long64[65];
  memset (long64, 'x', 64);
  long64[64] = '\0';
  assert_false (ate_is_dns1123_label (long64));
  long64[63] = '\0';
  assert_true (ate_is_dns1123_label (long64));

  assert_true (ate_is_dns1123_subdomain ("a.b-c.d"));
  assert_false (ate_is_dns1123_subdomain ("a..b"));
  assert_false (ate_is_dns1123_subdomain ("a."));
  assert_false (ate_is_dns1123_subdomain (".a"));

  assert_true (ate_validate_label ("actor_id", "../etc", &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  assert_non_null (strstr (err->msg, "actor_id"));
  ate_error_release (&err);
  assert_true (ate_validate_label ("actor_id", "", &err) < 0);
  assert_string_equal (err->msg, "actor_id is required");
  ate_error_release (&err);

  assert_int_equal (ate_validate_abs_path ("p", "/a/b", &err), 0);
  assert_true (ate_validate_abs_path ("p", "a/b", &err) < 0);
  ate_error_release (&err);
  assert_true (ate_validate_abs_path ("p", "/a/../b", &err) < 0);
  ate_error_release (&err);
  assert_true (ate_validate_abs_path ("p", "/a/..", &err) < 0);
  ate_error_release (&err);
  assert_int_equal (ate_validate_abs_path ("p", "/a/..b", &err), 0);
}

static void
test_paths (void **state)
{
  (void) state;
  struct ate_paths p = { .pod_uid = "uid-1" };
  ate_paths_init_defaults (&p);
  cleanup_free char *sock = ate_path_ateom_socket (&p);
  cleanup_free char *actor = ate_path_actor (&p, "default", "counter-microvm", "a1");
  cleanup_free char *bundle = ate_path_bundle (&p, "default", "counter-microvm", "a1", "counter");
  cleanup_free char *vm = ate_path_vm_file (&p, "a1", "clh.sock");
  cleanup_free char *netns = ate_path_netns (&p);
  cleanup_free char *cp = ate_path_actor_sub (&p, "ns", "t", "i", "checkpoint-state");

  assert_string_equal (sock, "/var/lib/ateom-gvisor/ateoms/uid-1/ateom.sock");
  assert_string_equal (actor, "/var/lib/ateom-gvisor/actors/default:counter-microvm:a1");
  assert_string_equal (bundle,
                       "/var/lib/ateom-gvisor/actors/default:counter-microvm:a1/bundles/counter");
  assert_string_equal (vm, "/run/vc/vm/a1/clh.sock");
  assert_string_equal (netns, "/run/netns/ateom:uid-1");
  assert_string_equal (cp, "/var/lib/ateom-gvisor/actors/ns:t:i/checkpoint-state");

  cleanup_free char *j1 = ate_path_join ("/a/", "/b");
  cleanup_free char *j2 = ate_path_join ("/", "b");
  assert_string_equal (j1, "/a/b");
  assert_string_equal (j2, "/b");
}

static void
test_time_format (void **state)
{
  (void) state;
  char buf[ATE_TIME_BUF];
  setenv ("TZ", "UTC", 1);
  tzset ();
  ate_time_rfc3339nano (1700000000LL * ATE_NSEC_PER_SEC + 120000000, buf);
  assert_string_equal (buf, "2023-11-14T22:13:20.12Z");
  ate_time_rfc3339nano (1700000000LL * ATE_NSEC_PER_SEC, buf);
  assert_string_equal (buf, "2023-11-14T22:13:20Z");
  ate_time_rfc3339millis (1700000000LL * ATE_NSEC_PER_SEC + 5000000, buf);
  assert_string_equal (buf, "2023-11-14T22:13:20.005Z");

  assert_int_equal (ate_deadline_poll_ms (ATE_DEADLINE_NONE), -1);
  assert_int_equal (ate_deadline_poll_ms (ate_now_ns () - 1), 0);
  assert_true (ate_deadline_expired (ate_now_ns () - 1));
  assert_false (ate_deadline_expired (ATE_DEADLINE_NONE));
}

static void
test_fs_roundtrip (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  cleanup_free char *dir = make_tmpdir ();
  cleanup_free char *deep = xasprintf ("%s/a/b/c", dir);
  cleanup_free char *file = xasprintf ("%s/a/b/c/f", dir);
  cleanup_free char *link = xasprintf ("%s/a/link", dir);
  cleanup_free char *content = NULL;
  size_t len = 0;

  assert_int_equal (ate_mkdir_p (deep, 0700, &err), 0);
  assert_int_equal (ate_mkdir_p (deep, 0700, &err), 0);
  assert_int_equal (ate_write_file_atomic (file, "hello", 5, 0600, &err), 0);
  assert_int_equal (ate_read_file (file, 100, &content, &len, &err), 0);
  assert_int_equal (len, 5);
  assert_string_equal (content, "hello");
  free (steal_pointer (&content));
  assert_true (ate_read_file (file, 3, &content, &len, &err) < 0);
  assert_int_equal (err->status, EFBIG);
  ate_error_release (&err);

  /* rm -rf must not follow a symlink out of the tree. */
  cleanup_free char *outside = make_tmpdir ();
  cleanup_free char *keep = xasprintf ("%s/keep", outside);
  assert_int_equal (ate_write_file (keep, "k", 1, 0600, &err), 0);
  assert_int_equal (symlink (outside, link), 0);
  cleanup_free char *top = xasprintf ("%s/a", dir);
  assert_int_equal (ate_rm_rf (top, &err), 0);
  assert_false (ate_path_exists (top));
  assert_true (ate_path_exists (keep));
  assert_int_equal (ate_rm_rf (top, &err), 0); /* missing is fine */
  assert_int_equal (ate_rm_rf (outside, &err), 0);

  /* A failure names the path once (it used to be "remove `p`: stat `p`"). */
  cleanup_free char *plain = xasprintf ("%s/plain", dir);
  cleanup_free char *under = xasprintf ("%s/plain/x", dir);
  cleanup_free char *want = xasprintf ("stat `%s`: Not a directory", under);
  assert_int_equal (ate_write_file (plain, "p", 1, 0600, &err), 0);
  assert_true (ate_rm_rf (under, &err) < 0);
  assert_string_equal (err->msg, want);
  ate_error_release (&err);
  assert_int_equal (ate_rm_rf (dir, &err), 0);
}

static void
test_sparse_copy (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  cleanup_free char *dir = make_tmpdir ();
  cleanup_free char *src = xasprintf ("%s/src", dir);
  cleanup_free char *dst = xasprintf ("%s/dst", dir);
  cleanup_close int s = open (src, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  cleanup_close int d = open (dst, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  const off_t size = 64 << 20;
  char buf[4096];
  struct stat st;

  assert_true (s >= 0 && d >= 0);
  assert_int_equal (ftruncate (s, size), 0);
  memset (buf, 'A', sizeof (buf));
  assert_int_equal (pwrite (s, buf, sizeof (buf), 1 << 20), (ssize_t) sizeof (buf));
  memset (buf, 'B', sizeof (buf));
  assert_int_equal (pwrite (s, buf, 100, size - 100), 100);
  assert_int_equal (ate_sparse_copy_fd (s, d, &err), 0);
  assert_int_equal (fstat (d, &st), 0);
  assert_int_equal (st.st_size, size);
  /* The copy stays sparse: far fewer blocks than the logical size. */
  assert_true (st.st_blocks * 512 < (1 << 22));
  char got[100];
  assert_int_equal (pread (d, got, 100, size - 100), 100);
  assert_memory_equal (got, buf, 100);
  assert_int_equal (pread (d, got, 10, (1 << 20)), 10);
  assert_memory_equal (got, "AAAAAAAAAA", 10);
  assert_int_equal (pread (d, got, 10, 0), 10);
  for (int i = 0; i < 10; i++)
    assert_int_equal (got[i], 0);
  ate_rm_rf (dir, &err);
}

static void
test_proc_run (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  cleanup_free char *out = NULL;
  char *ok[] = { "sh", "-c", "echo out; echo err >&2", NULL };
  char *fail[] = { "sh", "-c", "echo boom >&2; exit 3", NULL };
  char *missing[] = { "/nonexistent/definitely-not-here", NULL };
  char *slow[] = { "sleep", "5", NULL };

  assert_int_equal (ate_proc_run (ok, NULL, ATE_DEADLINE_NONE, &out, &err), 0);
  assert_string_equal (out, "out\nerr");

  assert_true (ate_proc_run (fail, NULL, ATE_DEADLINE_NONE, NULL, &err) < 0);
  assert_non_null (strstr (err->msg, "exit status 3"));
  assert_non_null (strstr (err->msg, "boom"));
  ate_error_release (&err);

  assert_true (ate_proc_run (missing, NULL, ATE_DEADLINE_NONE, NULL, &err) < 0);
  assert_int_equal (err->status, ENOENT);
  assert_non_null (strstr (err->msg, "exec"));
  ate_error_release (&err);

  int64_t t0 = ate_now_ns ();
  assert_true (ate_proc_run (slow, NULL, ate_deadline_in_ms (200), NULL, &err) < 0);
  assert_int_equal (err->status, ETIMEDOUT);
  assert_int_equal (ate_error_code (err), ATE_CODE_DEADLINE_EXCEEDED);
  assert_true (ate_now_ns () - t0 < 2 * ATE_NSEC_PER_SEC);
  ate_error_release (&err);
  assert_int_equal (ate_proc_tracked_count (), 0);
}

static void
test_proc_spawn_wait_kill (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct ate_proc *p = NULL;
  char *argv[] = { "sleep", "30", NULL };
  int status = 0;

  assert_int_equal (ate_proc_spawn (argv, NULL, &p, &err), 0);
  assert_true (ate_proc_pid (p) > 0);
  assert_true (ate_proc_wait (p, ate_deadline_in_ms (50), &status, &err) < 0);
  assert_int_equal (err->status, ETIMEDOUT);
  ate_error_release (&err);
  assert_false (ate_proc_exited (p));
  ate_proc_kill_and_wait (p);
  assert_true (ate_proc_exited (p));
  assert_int_equal (ate_proc_wait (p, ATE_DEADLINE_NONE, &status, &err), 0);
  assert_true (WIFSIGNALED (status));
  assert_int_equal (WTERMSIG (status), SIGKILL);
  assert_string_equal (ate_proc_status_string (status), "killed by signal 9 (Killed)");
  ate_proc_free (p);

  /* Re-attach by pid + start time, as after a restart. */
  assert_int_equal (ate_proc_spawn (argv, NULL, &p, &err), 0);
  unsigned long long st = 0;
  assert_int_equal (ate_proc_starttime (ate_proc_pid (p), &st, &err), 0);
  struct ate_proc *q = NULL;
  assert_true (ate_proc_open_existing (ate_proc_pid (p), st + 1, "sleep", &q, &err) < 0);
  assert_int_equal (err->status, ESRCH);
  ate_error_release (&err);
  assert_int_equal (ate_proc_open_existing (ate_proc_pid (p), st, "sleep", &q, &err), 0);
  assert_int_equal (ate_proc_signal (q, SIGKILL), 0);
  assert_int_equal (ate_proc_wait (q, ate_deadline_in_ms (5000), NULL, &err), 0);
  ate_proc_free (q);
  ate_proc_free (p);

  /* Fds are not inherited unless asked for. */
  int pipefd[2];
  assert_int_equal (pipe (pipefd), 0); /* deliberately without O_CLOEXEC */
  char script[128];
  snprintf (script, sizeof (script), "test -e /proc/self/fd/%d && exit 1; test -e /proc/self/fd/3", pipefd[1]);
  char *check[] = { "sh", "-c", script, NULL };
  struct ate_spawn_opts o;
  ate_spawn_opts_init (&o);
  o.keep_fds = &pipefd[0];
  o.n_keep_fds = 1;
  assert_int_equal (ate_proc_run (check, &o, ate_deadline_in_ms (5000), NULL, &err), 0);
  close (pipefd[0]);
  close (pipefd[1]);
  assert_int_equal (ate_proc_tracked_count (), 0);
}

static void
test_json_parse_limits (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct json_object *o = NULL;
  const char *big = "{\"size\":9223372036854775807,\"u\":18446744073709551615}";

  assert_int_equal (ate_json_parse (big, strlen (big), 0, &o, &err), 0);
  cleanup_free char *s = ate_json_to_string (o, 0);
  assert_string_equal (s, big);
  json_object_put (o);

  assert_true (ate_json_parse ("{} x", 4, 0, &o, &err) < 0);
  ate_error_release (&err);
  assert_true (ate_json_parse ("{\"a\":", 5, 0, &o, &err) < 0);
  ate_error_release (&err);
  assert_true (ate_json_parse ("[[[[1]]]]", 9, 3, &o, &err) < 0);
  ate_error_release (&err);
}

/* A one-shot HTTP peer on 127.0.0.1 that answers with a canned reply. */
struct peer
{
  int lfd;
  int port;
  const char *reply;
  pthread_t t;
};

static void *
peer_main (void *arg)
{
  struct peer *p = arg;
  int c = accept (p->lfd, NULL, NULL);
  char buf[4096];
  if (c < 0)
    return NULL;
  (void) !recv (c, buf, sizeof (buf), 0);
  if (p->reply)
    (void) !send (c, p->reply, strlen (p->reply), MSG_NOSIGNAL);
  else
    usleep (400 * 1000); /* say nothing */
  close (c);
  return NULL;
}

static void
peer_start (struct peer *p, const char *reply)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof (a);
  p->lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (p->lfd >= 0);
  assert_int_equal (bind (p->lfd, (struct sockaddr *) &a, sizeof (a)), 0);
  assert_int_equal (listen (p->lfd, 1), 0);
  assert_int_equal (getsockname (p->lfd, (struct sockaddr *) &a, &len), 0);
  p->port = ntohs (a.sin_port);
  p->reply = reply;
  assert_int_equal (pthread_create (&p->t, NULL, peer_main, p), 0);
}

static void
peer_stop (struct peer *p)
{
  pthread_join (p->t, NULL);
  close (p->lfd);
}

static void
test_http_get (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct peer p;
  long status = 0;
  char *value = NULL;
  char url[64];

  peer_start (&p, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nmetadata-flavor:  Google \r\n\r\nok\n");
  snprintf (url, sizeof (url), "http://127.0.0.1:%d/readyz", p.port);
  assert_int_equal (ate_http_get (url, ate_deadline_in_ms (2000), &status, "Metadata-Flavor",
                                  &value, &err), 0);
  assert_int_equal (status, 200);
  assert_string_equal (value, "Google");
  free (value);
  peer_stop (&p);

  peer_start (&p, "HTTP/1.0 503 Service Unavailable\r\n\r\n");
  snprintf (url, sizeof (url), "http://127.0.0.1:%d", p.port);
  assert_int_equal (ate_http_get (url, ate_deadline_in_ms (2000), &status, "X", &value, &err), 0);
  assert_int_equal (status, 503);
  assert_null (value);
  peer_stop (&p);

  peer_start (&p, "garbage\r\n\r\n");
  snprintf (url, sizeof (url), "http://127.0.0.1:%d/", p.port);
  assert_true (ate_http_get (url, ate_deadline_in_ms (2000), &status, NULL, NULL, &err) < 0);
  assert_non_null (strstr (err->msg, "not an HTTP response"));
  ate_error_release (&err);
  peer_stop (&p);

  peer_start (&p, "HTTP/1.1 200 OK\r\n"); /* closes before the end of the head */
  snprintf (url, sizeof (url), "http://127.0.0.1:%d/", p.port);
  assert_true (ate_http_get (url, ate_deadline_in_ms (2000), &status, NULL, NULL, &err) < 0);
  assert_int_equal (err->status, ECONNRESET);
  ate_error_release (&err);
  peer_stop (&p);

  peer_start (&p, NULL); /* silent: the deadline wins */
  snprintf (url, sizeof (url), "http://127.0.0.1:%d/", p.port);
  assert_true (ate_http_get (url, ate_deadline_in_ms (100), &status, NULL, NULL, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_DEADLINE_EXCEEDED);
  ate_error_release (&err);
  peer_stop (&p);

  assert_true (ate_http_get ("https://x/", ate_deadline_in_ms (100), &status, NULL, NULL, &err) < 0);
  ate_error_release (&err);
  assert_true (ate_http_get ("http://127.0.0.1:1/", ate_deadline_in_ms (1000), &status, NULL,
                             NULL, &err) < 0);
  assert_int_equal (err->status, ECONNREFUSED);
  ate_error_release (&err);
}

/* An HTTP peer on 127.0.0.1 that answers every connection from a table
 * keyed by the request path (query included), until stopped. */
struct route
{
  const char *path;
  const char *reply; /* the whole response; "PORT" is replaced by the peer's port */
};

struct router
{
  int lfd;
  int port;
  const struct route *routes;
  int requests;
  char last_host[64];
  pthread_t t;
};

static void *
router_main (void *arg)
{
  struct router *p = arg;
  for (;;)
    {
      char buf[4096], path[1024] = "", reply[1024] = "HTTP/1.1 404 Not Found\r\n\r\n";
      int c = accept (p->lfd, NULL, NULL);
      ssize_t n;
      if (c < 0)
        return NULL;
      n = recv (c, buf, sizeof (buf) - 1, 0);
      buf[n > 0 ? n : 0] = '\0';
      sscanf (buf, "GET %1023s ", path);
      const char *h = strstr (buf, "\r\nHost: ");
      if (h)
        sscanf (h + 8, "%63[^\r]", p->last_host);
      p->requests++;
      for (const struct route *r = p->routes; r->path; r++)
        if (strcmp (r->path, path) == 0)
          {
            const char *port = strstr (r->reply, "PORT");
            if (port)
              snprintf (reply, sizeof (reply), "%.*s%d%s", (int) (port - r->reply), r->reply,
                        p->port, port + 4);
            else
              snprintf (reply, sizeof (reply), "%s", r->reply);
          }
      (void) !send (c, reply, strlen (reply), MSG_NOSIGNAL);
      close (c);
    }
}

static void
router_start (struct router *p, const struct route *routes)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof (a);
  memset (p, 0, sizeof (*p));
  p->lfd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (p->lfd >= 0);
  assert_int_equal (bind (p->lfd, (struct sockaddr *) &a, sizeof (a)), 0);
  assert_int_equal (listen (p->lfd, 16), 0);
  assert_int_equal (getsockname (p->lfd, (struct sockaddr *) &a, &len), 0);
  p->port = ntohs (a.sin_port);
  p->routes = routes;
  assert_int_equal (pthread_create (&p->t, NULL, router_main, p), 0);
}

static void
router_stop (struct router *p)
{
  shutdown (p->lfd, SHUT_RDWR);
  pthread_join (p->t, NULL);
  close (p->lfd);
}

static long
follow (struct router *p, const char *path, struct ate_error **err)
{
  char url[128];
  long status = 0;
  snprintf (url, sizeof (url), "http://127.0.0.1:%d%s", p->port, path);
  p->requests = 0;
  if (ate_http_get_follow (url, ate_deadline_in_ms (2000), &status, err) < 0)
    return -1;
  return status;
}

static void
test_http_get_follow (void **state)
{
  (void) state;
  static const struct route routes[] = {
    /* a trailing-slash redirect, then a relative one with dot segments */
    { "/readyz", "HTTP/1.1 301 Moved Permanently\r\nLocation: /readyz/\r\n\r\n" },
    { "/readyz/", "HTTP/1.1 307 Temporary Redirect\r\nlocation: ../app/./ok?x=1#frag\r\n\r\n" },
    { "/app/ok?x=1", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" },
    /* an absolute Location on this host, built from the Host header */
    { "/abs", "HTTP/1.1 308 Permanent Redirect\r\nLocation: http://127.0.0.1:PORT/app/ok?x=1\r\n\r\n" },
    { "/query", "HTTP/1.1 302 Found\r\nLocation: ?x=1\r\n\r\n" },
    { "/app/query", "HTTP/1.1 303 See Other\r\nLocation: ok?x=1\r\n\r\n" },
    /* loops and chains */
    { "/loop-a", "HTTP/1.1 302 Found\r\nLocation: /loop-b\r\n\r\n" },
    { "/loop-b", "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:PORT/loop-a\r\n\r\n" },
    { "/c0", "HTTP/1.1 307 x\r\nLocation: /c1\r\n\r\n" },
    { "/c1", "HTTP/1.1 307 x\r\nLocation: /c2\r\n\r\n" },
    { "/c2", "HTTP/1.1 307 x\r\nLocation: /c3\r\n\r\n" },
    { "/c3", "HTTP/1.1 307 x\r\nLocation: /c4\r\n\r\n" },
    { "/c4", "HTTP/1.1 307 x\r\nLocation: /c5\r\n\r\n" },
    { "/c5", "HTTP/1.1 307 x\r\nLocation: /c6\r\n\r\n" },
    { "/c6", "HTTP/1.1 307 x\r\nLocation: /c7\r\n\r\n" },
    { "/c7", "HTTP/1.1 307 x\r\nLocation: /c8\r\n\r\n" },
    { "/c8", "HTTP/1.1 307 x\r\nLocation: /c9\r\n\r\n" },
    { "/c9", "HTTP/1.1 307 x\r\nLocation: /c10\r\n\r\n" },
    { "/c10", "HTTP/1.1 200 OK\r\n\r\n" },
    /* not followed */
    { "/noloc", "HTTP/1.1 301 Moved Permanently\r\n\r\n" },
    { "/other", "HTTP/1.1 302 Found\r\nLocation: http://localhost:PORT/app/ok?x=1\r\n\r\n" },
    { "/tls", "HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1/\r\n\r\n" },
    { "/notmod", "HTTP/1.1 304 Not Modified\r\nLocation: /app/ok?x=1\r\n\r\n" },
    { NULL, NULL },
  };
  struct ate_error *err = NULL;
  struct router p;
  char host[64];

  router_start (&p, routes);
  snprintf (host, sizeof (host), "127.0.0.1:%d", p.port);

  assert_int_equal (follow (&p, "/readyz", &err), 200);
  assert_int_equal (p.requests, 3);
  assert_string_equal (p.last_host, host); /* Host carries the port, as Go sends it */
  assert_int_equal (follow (&p, "/abs", &err), 200);
  assert_int_equal (p.requests, 2);
  assert_int_equal (follow (&p, "/app/query", &err), 200);
  assert_int_equal (follow (&p, "/app/ok?x=1#f", &err), 200);

  /* Go's client makes at most 10 requests: 9 redirects are followed... */
  assert_int_equal (follow (&p, "/c1", &err), 200);
  assert_int_equal (p.requests, 10);
  /* ... and the 10th is an error. */
  assert_int_equal (follow (&p, "/c0", &err), -1);
  assert_int_equal (p.requests, 10);
  assert_non_null (strstr (err->msg, "stopped after 10 redirects"));
  ate_error_release (&err);

  assert_int_equal (follow (&p, "/loop-a", &err), -1);
  assert_non_null (strstr (err->msg, "redirect loop"));
  assert_non_null (strstr (err->msg, "/loop-a"));
  assert_int_equal (p.requests, 2);
  ate_error_release (&err);

  /* A 3xx without a Location, or one that is not a redirect, is the answer. */
  assert_int_equal (follow (&p, "/noloc", &err), 301);
  assert_int_equal (follow (&p, "/notmod", &err), 304);
  assert_int_equal (p.requests, 1);

  assert_int_equal (follow (&p, "/other", &err), -1);
  assert_non_null (strstr (err->msg, "another host `localhost`"));
  assert_int_equal (p.requests, 1);
  ate_error_release (&err);
  assert_int_equal (follow (&p, "/tls", &err), -1);
  assert_non_null (strstr (err->msg, "plain http"));
  ate_error_release (&err);
  assert_int_equal (follow (&p, "/missing", &err), 404);
  router_stop (&p);
}

/* Files opened for a caller: beneath their directory, no symlink, no FIFO,
 * size bounded; each refusal names the file and is FAILED_PRECONDITION. */
static void
test_untrusted_open (void **state)
{
  (void) state;
  cleanup_free char *dir = make_tmpdir ();
  cleanup_free char *f = ate_path_join (dir, "config.json");
  cleanup_free char *fifo = ate_path_join (dir, "fifo");
  cleanup_free char *link = ate_path_join (dir, "link");
  cleanup_free char *sub = ate_path_join (dir, "sub");
  cleanup_free char *sublink = ate_path_join (dir, "sublink");
  cleanup_free char *text = NULL;
  struct ate_error *err = NULL;
  size_t len = 0;
  struct
  {
    const char *name;
    size_t max;
    const char *says;
  } bad[] = {
    { "fifo", 100, "is a FIFO" },
    { "link", 100, "`link` is a symbolic link" },
    { "sub", 100, "is a directory" },
    { "sublink/config.json", 100, "symbolic link" },
    { "../x", 100, "leaves its directory" },
    { "missing", 100, "is missing" },
    { "config.json", 3, "at most 3" },
  };

  assert_int_equal (ate_write_file (f, "{\"a\":1}", 7, 0600, &err), 0);
  assert_int_equal (mkfifo (fifo, 0600), 0);
  assert_int_equal (symlink (f, link), 0);
  assert_int_equal (mkdir (sub, 0700), 0);
  assert_int_equal (symlink (dir, sublink), 0);

  assert_int_equal (ate_untrusted_read (dir, "config.json", 100, ate_deadline_in_ms (1000), &text,
                                        &len, &err), 0);
  assert_int_equal (len, 7);
  assert_string_equal (text, "{\"a\":1}");
  for (size_t i = 0; i < ATE_N_ELEMENTS (bad); i++)
    {
      /* A FIFO must not block the open (it has no writer). */
      assert_int_equal (ate_untrusted_check (dir, bad[i].name, bad[i].max, &err), -1);
      assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
      if (strstr (err->msg, bad[i].says) == NULL)
        fail_msg ("%s: \"%s\" does not say \"%s\"", bad[i].name, err->msg, bad[i].says);
      ate_error_release (&err);
    }
  /* Without a directory (an asset): a link to a regular file is fine, a
   * FIFO is not. */
  assert_int_equal (ate_untrusted_check (NULL, link, 100, &err), 0);
  assert_int_equal (ate_untrusted_check (NULL, fifo, 100, &err), -1);
  assert_non_null (strstr (err->msg, "FIFO"));
  ate_error_release (&err);
  assert_int_equal (ate_untrusted_check (NULL, "relative", 100, &err), -1);
  ate_error_release (&err);
  /* An expired deadline ends the read. */
  free (text);
  text = NULL;
  assert_int_equal (ate_untrusted_read (dir, "config.json", 100, ate_now_ns () - 1, &text, &len,
                                        &err), -1);
  assert_int_equal (err->code, ATE_CODE_DEADLINE_EXCEEDED);
  ate_error_release (&err);
  assert_int_equal (ate_rm_rf (dir, &err), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_error_wrap_chain),
    cmocka_unit_test (test_xmemdup0),
    cmocka_unit_test (test_xstrndup_unterminated),
    cmocka_unit_test (test_gojson),
    cmocka_unit_test (test_line_splitter),
    cmocka_unit_test (test_validate_names),
    cmocka_unit_test (test_paths),
    cmocka_unit_test (test_time_format),
    cmocka_unit_test (test_fs_roundtrip),
    cmocka_unit_test (test_untrusted_open),
    cmocka_unit_test (test_sparse_copy),
    cmocka_unit_test (test_proc_run),
    cmocka_unit_test (test_proc_spawn_wait_kill),
    cmocka_unit_test (test_json_parse_limits),
    cmocka_unit_test (test_http_get),
    cmocka_unit_test (test_http_get_follow),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
