/* SPDX-License-Identifier: Apache-2.0 */
/* Actor log lines and events, byte for byte as Go's encoding/json writes
 * them (docs/logging.md); line splitting; the GCE decision; the log pumps. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kata/actorlog.h"
#include "kata/agent.h"
#include "kata/agent.pb-c.h"
#include "kata/io.h"
#include "kata/logpump.h"
#include "kata/ttrpc.h"
#include "kata/ttrpc.pb-c.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/lines.h"
#include "util/log.h"
#include "util/util.h"

/* 2023-11-14T22:13:20.123456789Z */
#define WALL 1700000000123456789LL
#define T "\"time\":\"2023-11-14T22:13:20.123456789Z\""
#define L                                                                      \
  "{\"ate.dev/actor_id\":\"a1\",\"ate.dev/actor_template_name\":\"counter-microvm\"," \
  "\"ate.dev/actor_template_namespace\":\"default\",\"ate.dev/container_name\":\"counter\"}"
#define LBL "\"labels\":" L

static const struct actorlog_labels labels = {
  .key = ACTORLOG_LABELS_KEY,
  .actor_id = "a1",
  .template_name = "counter-microvm",
  .template_namespace = "default",
  .container_name = "counter",
};

static const struct
{
  const char *in;
  size_t len; /* 0: strlen */
  const char *want;
} cases[] = {
  /* Text becomes a message. */
  { "hello world", 0, "{" LBL ",\"message\":\"hello world\"," T "}" },
  { "  spaced\r", 0, "{" LBL ",\"message\":\"  spaced\\r\"," T "}" },
  { "<a href=\"x\">&</a>", 0,
    "{" LBL ",\"message\":\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u003c/a\\u003e\"," T "}" },
  { "sep\xe2\x80\xa8par\xe2\x80\xa9", 0, "{" LBL ",\"message\":\"sep\\u2028par\\u2029\"," T "}" },
  /* Invalid UTF-8 in text: one \ufffd per bad byte. */
  { "a\xff" "b\xe2\x82", 0, "{" LBL ",\"message\":\"a\\ufffdb\\ufffd\\ufffd\"," T "}" },
  { "\xed\xa0\x80|\xc0\xaf|\xf4\x90\x80\x80", 0,
    "{" LBL ",\"message\":\"\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\\ufffd\"," T
    "}" },
  { "ok \xef\xbf\xbd \xf0\x9f\x98\x80", 0,
    "{" LBL ",\"message\":\"ok \xef\xbf\xbd \xf0\x9f\x98\x80\"," T "}" },
  { "c\x01\x1f\x7f\b\f\t", 0, "{" LBL ",\"message\":\"c\\u0001\\u001f\x7f\\b\\f\\t\"," T "}" },
  { "nul\0byte", 8, "{" LBL ",\"message\":\"nul\\u0000byte\"," T "}" },
  /* Not exactly one object: text. */
  { "null", 0, "{" LBL ",\"message\":\"null\"," T "}" },
  { "[1,2]", 0, "{" LBL ",\"message\":\"[1,2]\"," T "}" },
  { "\"str\"", 0, "{" LBL ",\"message\":\"\\\"str\\\"\"," T "}" },
  { "42", 0, "{" LBL ",\"message\":\"42\"," T "}" },
  { "{\"a\":1} x", 0, "{" LBL ",\"message\":\"{\\\"a\\\":1} x\"," T "}" },
  { "{\"a\":1}{\"b\":2}", 0, "{" LBL ",\"message\":\"{\\\"a\\\":1}{\\\"b\\\":2}\"," T "}" },
  { "{\"a\":01}", 0, "{" LBL ",\"message\":\"{\\\"a\\\":01}\"," T "}" },
  { "{\"a\":1.}", 0, "{" LBL ",\"message\":\"{\\\"a\\\":1.}\"," T "}" },
  { "{\"a\":+1}", 0, "{" LBL ",\"message\":\"{\\\"a\\\":+1}\"," T "}" },
  { "{\"a\":\"tab\there\"}", 0, "{" LBL ",\"message\":\"{\\\"a\\\":\\\"tab\\there\\\"}\"," T "}" },
  { "{\"a\":\"\\x\"}", 0, "{" LBL ",\"message\":\"{\\\"a\\\":\\\"\\\\x\\\"}\"," T "}" },
  { "{\"a\":tru}", 0, "{" LBL ",\"message\":\"{\\\"a\\\":tru}\"," T "}" },
  { "{\"a\":1,}", 0, "{" LBL ",\"message\":\"{\\\"a\\\":1,}\"," T "}" },
  { "{", 0, "{" LBL ",\"message\":\"{\"," T "}" },
  /* Objects: time added when missing, labels set, keys sorted. */
  { "{\"msg\":\"hi\",\"level\":\"INFO\"}", 0, "{" LBL ",\"level\":\"INFO\",\"msg\":\"hi\"," T "}" },
  { " \t{\"time\":\"2020-01-01T00:00:00Z\",\"msg\":\"x\"}\t\r ", 0,
    "{" LBL ",\"msg\":\"x\",\"time\":\"2020-01-01T00:00:00Z\"}" },
  { "{\"time\":null}", 0, "{" LBL ",\"time\":null}" },
  { "{}", 0, "{" LBL "," T "}" },
  { "{\"n\":1.0e+10,\"m\":-0,\"big\":123456789012345678901234567890,\"f\":0.10,\"e\":1E-7}", 0,
    "{\"big\":123456789012345678901234567890,\"e\":1E-7,\"f\":0.10," LBL
    ",\"m\":-0,\"n\":1.0e+10," T "}" },
  { "{\"a\":1,\"a\":2}", 0, "{\"a\":2," LBL "," T "}" },
  { "{\"z\":{\"b\":1,\"a\":[{\"d\":true,\"c\":false},null,[]]}}", 0,
    "{" LBL "," T ",\"z\":{\"a\":[{\"c\":false,\"d\":true},null,[]],\"b\":1}}" },
  { "{\"\xc3\xa9\":1,\"z\":2,\"aa\":3,\"a\":4,\"A\":5}", 0,
    "{\"A\":5,\"a\":4,\"aa\":3," LBL "," T ",\"z\":2,\"\xc3\xa9\":1}" },
  { "{\"<k>&\":\"v\"}", 0, "{\"\\u003ck\\u003e\\u0026\":\"v\"," LBL "," T "}" },
  /* String decoding and re-encoding. */
  { "{\"s\":\"\\u00e9\\n\\t\\\"\\\\\\/\\b\\f\\u0001\\u007f\\u0000\"}", 0,
    "{" LBL ",\"s\":\"\xc3\xa9\\n\\t\\\"\\\\/\\b\\f\\u0001\x7f\\u0000\"," T "}" },
  { "{\"s\":\"\\ud83d\\ude00 \\ud800 x \\udc00 \\ud800\\u0041\"}", 0,
    "{" LBL ",\"s\":\"\xf0\x9f\x98\x80 \xef\xbf\xbd x \xef\xbf\xbd \xef\xbf\xbd" "A\"," T "}" },
  { "{\"s\":\"bad \xff utf8\"}", 0, "{" LBL ",\"s\":\"bad \xef\xbf\xbd utf8\"," T "}" },
  { "{\"s\":\"\\u2028<\"}", 0, "{" LBL ",\"s\":\"\\u2028\\u003c\"," T "}" },
  /* The labels key: merged into an object (ours win), else replaced. */
  { "{\"labels\":{\"team\":\"x\",\"ate.dev/actor_id\":\"spoof\"},\"msg\":\"m\"}", 0,
    "{\"labels\":{\"ate.dev/actor_id\":\"a1\",\"ate.dev/actor_template_name\":\"counter-microvm\","
    "\"ate.dev/actor_template_namespace\":\"default\",\"ate.dev/container_name\":\"counter\","
    "\"team\":\"x\"},\"msg\":\"m\"," T "}" },
  { "{\"labels\":\"str\"}", 0, "{" LBL "," T "}" },
  { "{\"labels\":null}", 0, "{" LBL "," T "}" },
  { "{\"labels\":[1]}", 0, "{" LBL "," T "}" },
  { "{\"labels\":{\"a\":1},\"labels\":\"later\"}", 0, "{" LBL "," T "}" },
};

static void
test_format_lines (void **state)
{
  (void) state;
  for (size_t i = 0; i < ATE_N_ELEMENTS (cases); i++)
    {
      size_t in_len = cases[i].len ? cases[i].len : strlen (cases[i].in);
      size_t n = 0;
      cleanup_free char *got = actorlog_format_line (&labels, cases[i].in, in_len, WALL, &n);
      assert_int_equal (n, strlen (got));
      if (strcmp (got, cases[i].want) != 0)
        fail_msg ("case %zu (%s)\n got: %s\nwant: %s", i, cases[i].in, got, cases[i].want);
    }
}

static void
test_format_depth_limit (void **state)
{
  (void) state;
  size_t depth = ACTORLOG_MAX_DEPTH + 1, n;
  char *deep = xmalloc (2 * depth + 16), *o = deep;
  cleanup_free char *got = NULL;

  o += sprintf (o, "{\"a\":");
  for (size_t i = 0; i < depth; i++)
    *o++ = '[';
  for (size_t i = 0; i < depth; i++)
    *o++ = ']';
  o += sprintf (o, "}");
  got = actorlog_format_line (&labels, deep, strlen (deep), WALL, &n);
  assert_true (str_has_prefix (got, "{" LBL ",\"message\":\"{\\\"a\\\":[[["));
  free (deep);
}

static void
test_events_and_keys (void **state)
{
  (void) state;
  struct actorlog_labels gce = labels;
  size_t n;
  cleanup_free char *ev = NULL, *line = NULL, *nozero = NULL;

  ev = actorlog_format_event (&labels, "Actor starting", WALL, &n);
  assert_string_equal (ev, "{\"labels\":{\"ate.dev/actor_id\":\"a1\",\"ate.dev/actor_template_name\":"
                           "\"counter-microvm\",\"ate.dev/actor_template_namespace\":\"default\"},"
                           "\"message\":\"Actor starting\"," T "}");
  gce.key = actorlog_labels_key (true);
  assert_string_equal (gce.key, "logging.googleapis.com/labels");
  assert_string_equal (actorlog_labels_key (false), "labels");
  line = actorlog_format_line (&gce, "x", 1, WALL, &n);
  assert_string_equal (line, "{\"logging.googleapis.com/labels\":" L ",\"message\":\"x\"," T "}");
  /* RFC 3339 with trailing fractional zeros trimmed. */
  nozero = actorlog_format_event (&labels, "e", 1700000000120000000LL, &n);
  assert_non_null (strstr (nozero, "\"time\":\"2023-11-14T22:13:20.12Z\""));
}

/* ---- line splitting ---- */

struct collected
{
  char *lines[64];
  size_t lens[64];
  int n;
};

static void
collect (void *ctx, const char *line, size_t len)
{
  struct collected *c = ctx;
  assert_true (c->n < 64);
  c->lines[c->n] = xmalloc (len + 1);
  memcpy (c->lines[c->n], line, len);
  c->lines[c->n][len] = '\0';
  c->lens[c->n++] = len;
}

static void
collected_free (struct collected *c)
{
  for (int i = 0; i < c->n; i++)
    free (c->lines[i]);
  c->n = 0;
}

static void
test_splitter (void **state)
{
  (void) state;
  struct collected c = { 0 };
  struct ate_line_splitter s;
  static const char *chunks[] = { "first li", "ne\nsecond\n\n\nthi", "rd\r\n", "", "tail" };

  ate_line_splitter_init (&s, ACTORLOG_MAX_LINE, collect, &c);
  for (size_t i = 0; i < ATE_N_ELEMENTS (chunks); i++)
    ate_line_splitter_feed (&s, chunks[i], strlen (chunks[i]));
  assert_int_equal (c.n, 3);
  ate_line_splitter_finish (&s);
  assert_int_equal (c.n, 4);
  assert_string_equal (c.lines[0], "first line");
  assert_string_equal (c.lines[1], "second");
  assert_string_equal (c.lines[2], "third\r");
  assert_string_equal (c.lines[3], "tail");
  collected_free (&c);

  /* An endless line is passed on in ACTORLOG_MAX_LINE pieces. */
  {
    size_t total = ACTORLOG_MAX_LINE * 2 + 10;
    char *big = xmalloc (total + 1);
    memset (big, 'x', total);
    big[total - 1] = '\n';
    ate_line_splitter_init (&s, ACTORLOG_MAX_LINE, collect, &c);
    for (size_t off = 0; off < total; off += 4096)
      ate_line_splitter_feed (&s, big + off, total - off < 4096 ? total - off : 4096);
    ate_line_splitter_finish (&s);
    assert_int_equal (c.n, 3);
    assert_int_equal (c.lens[0], ACTORLOG_MAX_LINE);
    assert_int_equal (c.lens[1], ACTORLOG_MAX_LINE);
    assert_int_equal (c.lens[2], 9);
    collected_free (&c);
    free (big);
  }
}

/* ---- GCE decision against a local metadata server ---- */

struct http_server
{
  int fd;
  int port;
  bool google;
  int requests;
  pthread_t thread;
};

static void *
http_main (void *arg)
{
  struct http_server *h = arg;
  for (;;)
    {
      int c = accept4 (h->fd, NULL, NULL, SOCK_CLOEXEC);
      char buf[2048];
      size_t n = 0;
      if (c < 0)
        return NULL;
      h->requests++;
      while (n < sizeof (buf) - 1)
        {
          ssize_t r = read (c, buf + n, sizeof (buf) - 1 - n);
          if (r <= 0)
            break;
          n += (size_t) r;
          buf[n] = '\0';
          if (strstr (buf, "\r\n\r\n"))
            break;
        }
      const char *resp = h->google ? "HTTP/1.1 200 OK\r\nmetadata-flavor:  Google\r\n"
                                     "Content-Length: 2\r\n\r\nok"
                                   : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      (void) !write (c, resp, strlen (resp));
      close (c);
    }
}

static void
http_start (struct http_server *h, bool google)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };
  socklen_t sl = sizeof (sa);

  memset (h, 0, sizeof (*h));
  h->google = google;
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  h->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal (bind (h->fd, (struct sockaddr *) &sa, sizeof (sa)), 0);
  assert_int_equal (listen (h->fd, 8), 0);
  assert_int_equal (getsockname (h->fd, (struct sockaddr *) &sa, &sl), 0);
  h->port = ntohs (sa.sin_port);
  assert_int_equal (pthread_create (&h->thread, NULL, http_main, h), 0);
}

static void
http_stop (struct http_server *h)
{
  shutdown (h->fd, SHUT_RDWR);
  pthread_join (h->thread, NULL);
  close (h->fd);
}

static void
test_gce_detection (void **state)
{
  (void) state;
  struct http_server yes, no;
  char tmpl[] = "/tmp/ate-test-gce-XXXXXX";
  char *dir = mkdtemp (tmpl);
  cleanup_free char *dmi = ate_path_join (dir, "product_name");
  cleanup_free char *url_yes = NULL, *url_no = NULL;
  struct ate_error *err = NULL;
  struct actorlog_gce_opts o = { .metadata_host = "", .dmi_product_path = dmi,
                                 .dns_name = "", .probe_timeout_ms = 1000,
                                 .try_harder_ms = 500 };

  http_start (&yes, true);
  http_start (&no, false);
  url_yes = xasprintf ("http://127.0.0.1:%d", yes.port);
  url_no = xasprintf ("http://127.0.0.1:%d", no.port);

  /* The environment variable alone decides. */
  {
    struct actorlog_gce_opts env = o;
    env.metadata_host = "169.254.169.254:80";
    env.metadata_url = "";
    assert_true (actorlog_on_gce (&env));
  }
  /* No DMI hint: the (only) probe's answer. */
  o.metadata_url = url_yes;
  assert_true (actorlog_on_gce (&o));
  o.metadata_url = url_no;
  assert_false (actorlog_on_gce (&o));
  /* Nothing listening: no. */
  o.metadata_url = "http://127.0.0.1:1";
  assert_false (actorlog_on_gce (&o));
  /* DMI says Google: a negative HTTP probe waits for the DNS one, which
   * says yes when the name resolves to the metadata address. */
  assert_int_equal (ate_write_file (dmi, "Google Compute Engine\n", 22, 0644, &err), 0);
  o.metadata_url = url_no;
  o.dns_name = "localhost";
  o.metadata_ip = "127.0.0.1";
  assert_true (actorlog_on_gce (&o));
  o.metadata_ip = "169.254.169.254";
  assert_false (actorlog_on_gce (&o));
  assert_true (yes.requests >= 1);
  assert_true (no.requests >= 2);
  http_stop (&yes);
  http_stop (&no);
  assert_int_equal (ate_rm_rf (dir, &err), 0);
}

/* ---- pumps against a scripted agent ---- */

struct script_agent
{
  int fd;
  pthread_t thread;
  const char *const *chunks; /* ReadStdout answers, then EOF */
  int next;
  int stderr_calls;
};

static void *
script_main (void *arg)
{
  struct script_agent *a = arg;
  for (;;)
    {
      struct ttrpc_header h;
      uint8_t *payload = NULL;
      struct ate_error *err = NULL;
      Grpc__ReadStreamResponse rs = GRPC__READ_STREAM_RESPONSE__INIT;
      cleanup_free uint8_t *frame = NULL;
      size_t len = 0;
      Ttrpc__Request *req;
      bool is_stdout;

      if (ttrpc_frame_read (a->fd, ATE_DEADLINE_NONE, &h, &payload, NULL, &err) < 0)
        {
          ate_error_free (err);
          return NULL;
        }
      req = ttrpc__request__unpack (NULL, h.length, payload);
      is_stdout = strcmp (req->method, "ReadStdout") == 0;
      ttrpc__request__free_unpacked (req, NULL);
      free (payload);
      if (!is_stdout)
        {
          /* stderr stays silent: its pump blocks until the connection
           * is closed. */
          a->stderr_calls++;
          continue;
        }
      if (a->chunks[a->next])
        {
          rs.data.data = (uint8_t *) a->chunks[a->next];
          rs.data.len = strlen (a->chunks[a->next++]);
        }
      ttrpc_response_frame (h.stream_id, 0, NULL, &rs.base, &frame, &len, &err);
      kata_io_write_full (a->fd, frame, len, ATE_DEADLINE_NONE, &err);
    }
}

static void
test_pumps (void **state)
{
  (void) state;
  static const char *const chunks[] = { "{\"msg\":\"started\",\"lev", "el\":\"INFO\"}\nplain ",
                                        "text\n<b>\n", "unterminated", NULL };
  struct script_agent a = { .chunks = chunks };
  struct kata_agent *agent = NULL;
  struct kata_log_pump *out = NULL, *errp = NULL;
  struct ate_error *err = NULL;
  char path[] = "/tmp/ate-test-pump-XXXXXX";
  int logfd = mkostemp (path, O_CLOEXEC);
  int sv[2];
  cleanup_free char *text = NULL;
  size_t len;

  assert_true (logfd >= 0);
  ate_log_set_fd (logfd);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  a.fd = sv[1];
  assert_int_equal (pthread_create (&a.thread, NULL, script_main, &a), 0);
  assert_int_equal (kata_agent_new_from_fd (sv[0], &agent, &err), 0);
  assert_int_equal (kata_log_pump_start (agent, "a1", "a1", KATA_STREAM_STDOUT, &labels, &out,
                                         &err),
                    0);
  assert_int_equal (kata_log_pump_start (agent, "a1", "a1", KATA_STREAM_STDERR, &labels, &errp,
                                         &err),
                    0);
  /* stdout ends by itself (empty data); stderr only when we close. */
  kata_log_pump_stop_join (out);
  while (a.stderr_calls == 0)
    usleep (1000);
  kata_agent_close (agent);
  kata_log_pump_stop_join (errp);
  kata_agent_free (agent);
  pthread_join (a.thread, NULL);
  close (a.fd);
  ate_log_set_fd (1);

  assert_int_equal (ate_read_file (path, 1 << 20, &text, &len, &err), 0);
  unlink (path);
  close (logfd);
  /* Four lines, in order, each one JSON object with our labels. */
  char *lines[8];
  int n = 0;
  for (char *save = NULL, *l = strtok_r (text, "\n", &save); l && n < 8;
       l = strtok_r (NULL, "\n", &save))
    if (strstr (l, "\"labels\":"))
      lines[n++] = l;
  assert_int_equal (n, 4);
  assert_true (str_has_prefix (lines[0], "{" LBL ",\"level\":\"INFO\",\"msg\":\"started\",\"time\":\""));
  assert_true (str_has_prefix (lines[1], "{" LBL ",\"message\":\"plain text\",\"time\":\""));
  assert_true (str_has_prefix (lines[2], "{" LBL ",\"message\":\"\\u003cb\\u003e\",\"time\":\""));
  assert_true (str_has_prefix (lines[3], "{" LBL ",\"message\":\"unterminated\",\"time\":\""));
}

int
main (void)
{
  setenv ("TZ", "UTC", 1);
  tzset ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_format_lines),   cmocka_unit_test (test_format_depth_limit),
    cmocka_unit_test (test_events_and_keys), cmocka_unit_test (test_splitter),
    cmocka_unit_test (test_gce_detection),  cmocka_unit_test (test_pumps),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
