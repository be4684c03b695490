/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid vsock handshake against a scripted cloud-hypervisor stand-in. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kata/io.h"
#include "kata/vsock.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

enum mode
{
  MODE_OK_THEN_DATA, /* "OK 1073741824\n" immediately followed by guest bytes */
  MODE_EOF,          /* close at once (nothing listens in the guest) */
  MODE_GARBAGE,      /* "ERR no listener\n" */
  MODE_SILENT,       /* never answer */
  MODE_NO_NEWLINE,   /* a reply longer than any valid one, no newline */
  MODE_BOOTING,      /* EOF for the first `boot_after` connections, then OK */
  MODE_SPLIT,        /* the OK line in three pieces */
  MODE_CUSTOM,       /* `reply`, then close */
};

struct fake_ch
{
  char *dir;
  char *path;
  int listen_fd;
  enum mode mode;
  int boot_after;
  int accepted;
  const char *reply;
  char command[64]; /* the CONNECT line received */
  pthread_t thread;
  volatile bool stop;
};

static void
read_command (struct fake_ch *f, int fd)
{
  size_t n = 0;
  while (n + 1 < sizeof (f->command))
    {
      char ch;
      if (read (fd, &ch, 1) != 1)
        break;
      f->command[n++] = ch;
      if (ch == '\n')
        break;
    }
  f->command[n] = '\0';
}

static void
serve_one (struct fake_ch *f, int fd)
{
  read_command (f, fd);
  switch (f->mode)
    {
    case MODE_OK_THEN_DATA:
      (void) !write (fd, "OK 1073741824\nGUEST", 19);
      break;
    case MODE_EOF:
      break;
    case MODE_GARBAGE:
      (void) !write (fd, "ERR no listener\n", 16);
      break;
    case MODE_SILENT:
      while (!f->stop)
        usleep (5000);
      break;
    case MODE_NO_NEWLINE:
      {
        char junk[100];
        memset (junk, 'O', sizeof (junk));
        (void) !write (fd, junk, sizeof (junk));
        while (!f->stop)
          usleep (5000);
      }
      break;
    case MODE_BOOTING:
      if (f->accepted > f->boot_after)
        (void) !write (fd, "OK 7\n", 5);
      break;
    case MODE_CUSTOM:
      (void) !write (fd, f->reply, strlen (f->reply));
      break;
    case MODE_SPLIT:
      (void) !write (fd, "O", 1);
      usleep (20000);
      (void) !write (fd, "K 12", 4);
      usleep (20000);
      (void) !write (fd, "3\n", 2);
      break;
    }
}

static void *
fake_ch_main (void *arg)
{
  struct fake_ch *f = arg;
  while (!f->stop)
    {
      int fd = accept4 (f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd < 0)
        break;
      f->accepted++;
      serve_one (f, fd);
      /* Keep an OK connection open a little so the client can read. */
      if (f->mode == MODE_OK_THEN_DATA)
        usleep (50000);
      close (fd);
    }
  return NULL;
}

static struct fake_ch *
fake_ch_start (enum mode mode)
{
  struct fake_ch *f = xmalloc0 (sizeof (*f));
  char tmpl[] = "/tmp/ate-test-vsock-XXXXXX";
  struct sockaddr_un sa = { .sun_family = AF_UNIX };

  assert_non_null (mkdtemp (tmpl));
  f->dir = xstrdup (tmpl);
  f->path = xasprintf ("%s/clh.sock", f->dir);
  f->mode = mode;
  strcpy (sa.sun_path, f->path);
  f->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (f->listen_fd >= 0);
  assert_int_equal (bind (f->listen_fd, (struct sockaddr *) &sa, sizeof (sa)), 0);
  assert_int_equal (listen (f->listen_fd, 16), 0);
  assert_int_equal (pthread_create (&f->thread, NULL, fake_ch_main, f), 0);
  return f;
}

static void
fake_ch_stop (struct fake_ch *f)
{
  struct ate_error *err = NULL;
  f->stop = true;
  shutdown (f->listen_fd, SHUT_RDWR);
  pthread_join (f->thread, NULL);
  close (f->listen_fd);
  assert_int_equal (ate_rm_rf (f->dir, &err), 0);
  free (f->dir);
  free (f->path);
  free (f);
}

static void
test_ok_without_over_read (void **state)
{
  (void) state;
  struct fake_ch *f = fake_ch_start (MODE_OK_THEN_DATA);
  struct ate_error *err = NULL;
  int fd = -1;
  char buf[8] = { 0 };

  assert_int_equal (kata_vsock_connect (f->path, 1024, ate_deadline_in_ms (2000), &fd, &err),
                    0);
  assert_string_equal (f->command, "CONNECT 1024\n");
  /* The guest's first bytes are still in the socket. */
  assert_int_equal (kata_io_read_full (fd, buf, 5, ate_deadline_in_ms (2000), NULL, &err), 0);
  assert_string_equal (buf, "GUEST");
  close (fd);
  fake_ch_stop (f);
}

static void
test_split_reply (void **state)
{
  (void) state;
  struct fake_ch *f = fake_ch_start (MODE_SPLIT);
  struct ate_error *err = NULL;
  int fd = -1;

  assert_int_equal (kata_vsock_connect (f->path, 1026, ate_deadline_in_ms (2000), &fd, &err),
                    0);
  assert_string_equal (f->command, "CONNECT 1026\n");
  close (fd);
  fake_ch_stop (f);
}

static void
expect_failure (enum mode mode, int64_t deadline_ms, int want_errno, const char *want_msg)
{
  struct fake_ch *f = fake_ch_start (mode);
  struct ate_error *err = NULL;
  int fd = -1;
  int64_t start = ate_now_ns ();

  assert_true (kata_vsock_connect (f->path, 1024, ate_deadline_in_ms (deadline_ms), &fd, &err)
               < 0);
  assert_int_equal (fd, -1);
  assert_non_null (err);
  if (strstr (err->msg, want_msg) == NULL)
    fail_msg ("error \"%s\" lacks \"%s\"", err->msg, want_msg);
  assert_int_equal (err->status, want_errno);
  assert_true (ate_elapsed_ms (start) < deadline_ms + 1000);
  ate_error_release (&err);
  fake_ch_stop (f);
}

static void
test_eof_means_not_listening (void **state)
{
  (void) state;
  expect_failure (MODE_EOF, 2000, ECONNREFUSED, "nothing listens on guest port 1024 yet");
}

static void
test_garbage_reply (void **state)
{
  (void) state;
  expect_failure (MODE_GARBAGE, 2000, EPROTO,
                  "unexpected CONNECT reply for guest port 1024: \"ERR no listener\\x0a\"");
}

static void
test_slow_agent_times_out (void **state)
{
  (void) state;
  expect_failure (MODE_SILENT, 200, ETIMEDOUT, "before the handshake deadline");
}

static void
test_overlong_reply (void **state)
{
  (void) state;
  expect_failure (MODE_NO_NEWLINE, 2000, EPROTO, "unexpected CONNECT reply");
}

static void
test_missing_socket (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  int fd = -1;
  assert_true (kata_vsock_connect ("/nonexistent/ate/clh.sock", 1024,
                                   ate_deadline_in_ms (1000), &fd, &err)
               < 0);
  assert_int_equal (err->status, ENOENT);
  assert_non_null (strstr (err->msg, "/nonexistent/ate/clh.sock"));
  ate_error_release (&err);
}

static void
test_reply_parser_strictness (void **state)
{
  (void) state;
  /* Valid replies are "OK", one space, 1..10 digits and a newline. */
  static const struct
  {
    const char *reply;
    bool ok;
  } cases[] = {
    { "OK 1\n", true },        { "OK 4294967295\n", true }, { "OK \n", false },
    { "OK 12a\n", false },     { "ok 1\n", false },         { "OK  1\n", false },
    { "OK 12345678901\n", false }, { "OK 1\r\n", false },   { "\n", false },
  };
  for (size_t i = 0; i < ATE_N_ELEMENTS (cases); i++)
    {
      struct fake_ch *f = fake_ch_start (MODE_CUSTOM);
      struct ate_error *err = NULL;
      int fd = -1;
      int r;

      f->reply = cases[i].reply;
      r = kata_vsock_connect (f->path, 1024, ate_deadline_in_ms (2000), &fd, &err);
      if (cases[i].ok != (r == 0))
        fail_msg ("reply \"%s\": got %d (%s)", cases[i].reply, r, err ? err->msg : "");
      if (fd >= 0)
        close (fd);
      ate_error_release (&err);
      fake_ch_stop (f);
    }
}

static void
test_dial_retry_until_booted (void **state)
{
  (void) state;
  struct fake_ch *f = fake_ch_start (MODE_BOOTING);
  struct ate_error *err = NULL;
  int fd = -1;

  f->boot_after = 3;
  assert_int_equal (kata_vsock_dial_retry (f->path, 1024, ate_deadline_in_ms (5000), 1000, 20,
                                           &fd, &err),
                    0);
  assert_true (fd >= 0);
  assert_int_equal (f->accepted, 4);
  close (fd);
  fake_ch_stop (f);
}

static void
test_dial_retry_gives_up (void **state)
{
  (void) state;
  struct fake_ch *f = fake_ch_start (MODE_EOF);
  struct ate_error *err = NULL;
  int fd = -1;
  int64_t start = ate_now_ns ();

  assert_true (kata_vsock_dial_retry (f->path, 1024, ate_deadline_in_ms (300), 100, 50, &fd,
                                      &err)
               < 0);
  assert_true (ate_elapsed_ms (start) >= 290);
  assert_true (ate_elapsed_ms (start) < 1500);
  assert_non_null (strstr (err->msg, "not reachable"));
  assert_non_null (strstr (err->msg, "nothing listens on guest port 1024 yet"));
  assert_int_equal (err->status, ECONNREFUSED);
  assert_true (f->accepted >= 3);
  ate_error_release (&err);
  fake_ch_stop (f);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_ok_without_over_read),
    cmocka_unit_test (test_split_reply),
    cmocka_unit_test (test_eof_means_not_listening),
    cmocka_unit_test (test_garbage_reply),
    cmocka_unit_test (test_slow_agent_times_out),
    cmocka_unit_test (test_overlong_reply),
    cmocka_unit_test (test_missing_socket),
    cmocka_unit_test (test_reply_parser_strictness),
    cmocka_unit_test (test_dial_retry_until_booted),
    cmocka_unit_test (test_dial_retry_gives_up),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
