/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ate-counter: the counter-microvm demo workload.
 *
 * A tiny HTTP server that keeps a request count in memory.  Every request
 * (any method, any path except /readyz) increments the count and gets
 *   hello from: <ip> | preserved memory count: <n>
 * A count that continues after suspend/resume proves that the guest's RAM
 * survived the snapshot.  At start it writes 1 MiB of random bytes to a file
 * on the root filesystem and logs its SHA-256 ("fshash"), then logs the hash
 * again every tick, so a broken rootfs restore shows up in the logs.
 *
 * One thread, one poll loop: requests are served one at a time, each with a
 * 5 s deadline, which is plenty for a demo and keeps the snapshot state
 * trivial (no threads parked in the guest).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sha256.h"

#define RANDOM_FILE_SIZE (1024 * 1024)
#define RANDOM_FILE_READ_LIMIT (16 * 1024 * 1024)
#define REQUEST_HEAD_MAX 8192
#define REQUEST_BODY_MAX (1024 * 1024)
#define REQUEST_DEADLINE_MS 5000
#define LOG_LINE_MAX 4096

struct log_field
{
  const char *key;
  const char *str; /* NULL: the field is the number below */
  long long num;
};
#define F_STR(k, v) { .key = (k), .str = (v) }
#define F_NUM(k, v) { .key = (k), .str = NULL, .num = (long long) (v) }
#define F_END { .key = NULL }

static volatile sig_atomic_t stop_requested;
static uint64_t request_count;
static bool ready;

static void
on_signal (int sig)
{
  (void) sig;
  stop_requested = 1;
}

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends s as a JSON string; returns false when the line is full. */
static bool
json_append_string (char *buf, size_t cap, size_t *len, const char *s)
{
  size_t n = *len;
  if (n + 1 >= cap)
    return false;
  buf[n++] = '"';
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    {
      char esc[8];
      size_t elen = 1;
      esc[0] = (char) *p;
      if (*p == '"' || *p == '\\')
        {
          esc[0] = '\\';
          esc[1] = (char) *p;
          elen = 2;
        }
      else if (*p == '\n')
        elen = (size_t) snprintf (esc, sizeof esc, "\\n");
      else if (*p < 0x20)
        elen = (size_t) snprintf (esc, sizeof esc, "\\u%04x", *p);
      if (n + elen + 2 >= cap)
        return false;
      memcpy (buf + n, esc, elen);
      n += elen;
    }
  buf[n++] = '"';
  *len = n;
  return true;
}

static bool
json_append_raw (char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static bool
json_append_raw (char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int r = vsnprintf (buf + *len, cap - *len, fmt, ap);
  va_end (ap);
  if (r < 0 || (size_t) r >= cap - *len)
    return false;
  *len += (size_t) r;
  return true;
}

/* One JSON object per line on stdout, shaped like Go's slog JSON handler
 * (time, level, msg, then the fields), written with a single write(2). */
static void
counter_log (const char *level, const char *msg, const struct log_field *fields)
{
  char buf[LOG_LINE_MAX];
  size_t len = 0;
  struct timespec ts;
  struct tm tm;
  char stamp[32];

  clock_gettime (CLOCK_REALTIME, &ts);
  gmtime_r (&ts.tv_sec, &tm);
  strftime (stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

  bool ok = json_append_raw (buf, sizeof buf, &len, "{\"time\":\"%s.%09ldZ\",\"level\":", stamp,
                             ts.tv_nsec)
            && json_append_string (buf, sizeof buf, &len, level)
            && json_append_raw (buf, sizeof buf, &len, ",\"msg\":")
            && json_append_string (buf, sizeof buf, &len, msg);
  for (const struct log_field *f = fields; ok && f && f->key; f++)
    {
      ok = json_append_raw (buf, sizeof buf, &len, ",")
           && json_append_string (buf, sizeof buf, &len, f->key)
           && json_append_raw (buf, sizeof buf, &len, ":");
      if (ok && f->str)
        ok = json_append_string (buf, sizeof buf, &len, f->str);
      else if (ok)
        ok = json_append_raw (buf, sizeof buf, &len, "%lld", f->num);
    }
  if (!ok)
    {
      /* A field too long for one line: keep the line valid JSON. */
      len = 0;
      json_append_raw (buf, sizeof buf, &len, "{\"level\":\"ERROR\",\"msg\":\"log line too long\"");
    }
  json_append_raw (buf, sizeof buf, &len, "}\n");
  for (size_t off = 0; off < len;)
    {
      ssize_t w = write (STDOUT_FILENO, buf + off, len - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return;
      off += (size_t) w;
    }
}

static void
log_errno (const char *msg, int err)
{
  const struct log_field f[] = { F_STR ("err", strerror (err)), F_END };
  counter_log ("ERROR", msg, f);
}

/* The first non-loopback IPv4 address of the process, like the reference
 * counter: x.x.x.x when the lookup fails, y.y.y.y when there is none. */
static void
current_ip (char *out, size_t cap)
{
  struct ifaddrs *ifs = NULL;
  if (getifaddrs (&ifs) < 0)
    {
      log_errno ("Error getting interface addresses", errno);
      snprintf (out, cap, "x.x.x.x");
      return;
    }
  snprintf (out, cap, "y.y.y.y");
  for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
    {
      if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK))
        continue;
      const struct sockaddr_in *sin = (const struct sockaddr_in *) i->ifa_addr;
      if ((ntohl (sin->sin_addr.s_addr) >> 24) == 127)
        continue;
      if (inet_ntop (AF_INET, &sin->sin_addr, out, (socklen_t) cap))
        break;
    }
  freeifaddrs (ifs);
}

static int
write_all (int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0)
    {
      ssize_t w = write (fd, p, len);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return -1;
      p += w;
      len -= (size_t) w;
    }
  return 0;
}

static int
write_random_file (const char *path)
{
  static uint8_t chunk[64 * 1024];
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  for (size_t done = 0; done < RANDOM_FILE_SIZE; done += sizeof chunk)
    {
      for (size_t got = 0; got < sizeof chunk;)
        {
          ssize_t r = getrandom (chunk + got, sizeof chunk - got, 0);
          if (r < 0 && errno == EINTR)
            continue;
          if (r < 0)
            goto fail;
          got += (size_t) r;
        }
      if (write_all (fd, chunk, sizeof chunk) < 0)
        goto fail;
    }
  if (close (fd) < 0)
    return -1;
  return 0;
fail:;
  int saved = errno;
  close (fd);
  errno = saved;
  return -1;
}

/* SHA-256 of the file as unpadded base64 into out (COUNTER_SHA256_B64_LEN). */
static int
hash_random_file (const char *path, char *out)
{
  uint8_t buf[64 * 1024];
  uint8_t digest[COUNTER_SHA256_LEN];
  struct counter_sha256 ctx;
  size_t total = 0;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  counter_sha256_init (&ctx);
  for (;;)
    {
      ssize_t r = read (fd, buf, sizeof buf);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0 || total + (size_t) r > RANDOM_FILE_READ_LIMIT)
        {
          int saved = r < 0 ? errno : EFBIG;
          close (fd);
          errno = saved;
          return -1;
        }
      if (r == 0)
        break;
      counter_sha256_update (&ctx, buf, (size_t) r);
      total += (size_t) r;
    }
  close (fd);
  counter_sha256_final (&ctx, digest);
  counter_base64_raw (digest, sizeof digest, out);
  return 0;
}

/* Waits until fd is ready for events or the deadline passes (-1, ETIMEDOUT). */
static int
wait_fd (int fd, short events, int64_t deadline)
{
  for (;;)
    {
      int64_t left = deadline - now_ms ();
      if (left <= 0)
        {
          errno = ETIMEDOUT;
          return -1;
        }
      struct pollfd p = { .fd = fd, .events = events };
      int r = poll (&p, 1, (int) left);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return -1;
      if (r > 0)
        return 0;
    }
}

static int
send_all (int fd, const char *p, size_t len, int64_t deadline)
{
  while (len > 0)
    {
      ssize_t w = send (fd, p, len, MSG_NOSIGNAL);
      if (w < 0 && (errno == EAGAIN || errno == EINTR))
        {
          if (wait_fd (fd, POLLOUT, deadline) < 0)
            return -1;
          continue;
        }
      if (w < 0)
        return -1;
      p += w;
      len -= (size_t) w;
    }
  return 0;
}

/* Reads until the end of the request head; returns the head length (the
 * bytes after it, already read, are body), 0 when the head is too big, -1 on
 * errors and timeouts. */
static ssize_t
read_request_head (int fd, char *buf, size_t cap, size_t *got, int64_t deadline)
{
  *got = 0;
  while (*got < cap - 1)
    {
      ssize_t r = recv (fd, buf + *got, cap - 1 - *got, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR))
        {
          if (wait_fd (fd, POLLIN, deadline) < 0)
            return -1;
          continue;
        }
      if (r <= 0)
        return -1;
      *got += (size_t) r;
      buf[*got] = '\0';
      char *end = strstr (buf, "\r\n\r\n");
      if (end)
        return end + 4 - buf;
    }
  return 0;
}

/* Value of a header in the head (case-insensitive name), or -1. */
static long long
header_number (const char *head, const char *name)
{
  size_t nlen = strlen (name);
  for (const char *line = strstr (head, "\r\n"); line; line = strstr (line, "\r\n"))
    {
      line += 2;
      if (strncasecmp (line, name, nlen) == 0 && line[nlen] == ':')
        {
          char *end;
          errno = 0;
          long long v = strtoll (line + nlen + 1, &end, 10);
          if (errno != 0 || end == line + nlen + 1 || v < 0)
            return -1;
          return v;
        }
    }
  return -1;
}

/* Discards the rest of a small request body so closing the socket does not
 * reset the connection before the client has read the reply. */
static void
drain_body (int fd, long long remaining, int64_t deadline)
{
  char sink[4096];
  if (remaining <= 0 || remaining > REQUEST_BODY_MAX)
    return;
  while (remaining > 0)
    {
      ssize_t r = recv (fd, sink, sizeof sink, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR))
        {
          if (wait_fd (fd, POLLIN, deadline) < 0)
            return;
          continue;
        }
      if (r <= 0)
        return;
      remaining -= r;
    }
}

static void
reply (int fd, int status, const char *reason, const char *body, int64_t deadline)
{
  char head[256];
  int n = snprintf (head, sizeof head,
                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    status, reason, strlen (body));
  if (send_all (fd, head, (size_t) n, deadline) == 0)
    send_all (fd, body, strlen (body), deadline);
}

static void
handle_connection (int fd)
{
  char buf[REQUEST_HEAD_MAX];
  char method[16], target[1024], version[16];
  size_t got;
  int64_t deadline = now_ms () + REQUEST_DEADLINE_MS;

  ssize_t head_len = read_request_head (fd, buf, sizeof buf, &got, deadline);
  if (head_len < 0)
    return;
  if (head_len == 0)
    {
      reply (fd, 431, "Request Header Fields Too Large", "request head too large\n", deadline);
      return;
    }
  if (sscanf (buf, "%15s %1023s %15[^\r\n]", method, target, version) != 3
      || strncmp (version, "HTTP/1.", 7) != 0 || target[0] != '/')
    {
      reply (fd, 400, "Bad Request", "malformed request\n", deadline);
      return;
    }
  long long length = header_number (buf, "Content-Length");
  drain_body (fd, length - (long long) (got - (size_t) head_len), deadline);

  target[strcspn (target, "?")] = '\0';
  if (strcmp (target, "/readyz") == 0)
    {
      if (ready)
        reply (fd, 200, "OK", "ok\n", deadline);
      else
        reply (fd, 503, "Service Unavailable", "not ready\n", deadline);
      return;
    }

  char ip[INET_ADDRSTRLEN];
  char body[128];
  current_ip (ip, sizeof ip);
  request_count++;
  snprintf (body, sizeof body, "hello from: %s | preserved memory count: %" PRIu64 "\n", ip,
            request_count);
  const struct log_field f[] = { F_STR ("response", body), F_END };
  counter_log ("INFO", "Handled request", f);
  reply (fd, 200, "OK", body, deadline);
}

static int
listen_on (int port, int *bound_port)
{
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
  socklen_t alen = sizeof addr;
  int one = 1;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  if (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
      || bind (fd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen (fd, 64) < 0
      || getsockname (fd, (struct sockaddr *) &addr, &alen) < 0)
    {
      int saved = errno;
      close (fd);
      errno = saved;
      return -1;
    }
  *bound_port = ntohs (addr.sin_port);
  return fd;
}

static int
log_count (int count, const char *random_file)
{
  char hash[COUNTER_SHA256_B64_LEN];
  if (hash_random_file (random_file, hash) < 0)
    {
      /* The reference crashes here: a missing file means the rootfs did not
       * survive, which is exactly what the demo must not hide. */
      log_errno ("Error reading random file", errno);
      return -1;
    }
  const struct log_field f[] = { F_NUM ("count", count), F_STR ("fshash", hash), F_END };
  counter_log ("INFO", "Count", f);
  return 0;
}

static int
serve (int lfd, const char *random_file, int tick_seconds)
{
  int count = 0;
  int64_t next_tick = now_ms () + (int64_t) tick_seconds * 1000;

  while (!stop_requested)
    {
      int64_t left = next_tick - now_ms ();
      struct pollfd p = { .fd = lfd, .events = POLLIN };
      int r = poll (&p, 1, left > 0 ? (int) left : 0);
      if (r < 0 && errno != EINTR)
        {
          log_errno ("poll failed", errno);
          return -1;
        }
      if (now_ms () >= next_tick)
        {
          if (log_count (++count, random_file) < 0)
            return -1;
          next_tick += (int64_t) tick_seconds * 1000;
        }
      if (r <= 0)
        continue;
      for (;;)
        {
          int cfd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
          if (cfd < 0)
            break;
          handle_connection (cfd);
          close (cfd);
        }
    }
  return 0;
}

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: ate-counter [--port N] [--random-file PATH] [--tick-seconds N]\n"
           "\n"
           "The counter-microvm demo workload: an HTTP server that answers every\n"
           "request with 'hello from: <ip> | preserved memory count: <n>' (the count\n"
           "lives in memory) and /readyz with 'ok'.  Logs JSON lines on stdout.\n"
           "\n"
           "  --port N           TCP port (default 80; 0 picks a free port, logged)\n"
           "  --random-file P    1 MiB random file whose hash is logged (default\n"
           "                     /random-content-file)\n"
           "  --tick-seconds N   seconds between Count log lines (default 10)\n");
}

static int
parse_int (const char *s, int min, int max, int *out)
{
  char *end;
  errno = 0;
  long v = strtol (s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    return -1;
  *out = (int) v;
  return 0;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "port", required_argument, NULL, 'p' },
    { "random-file", required_argument, NULL, 'f' },
    { "tick-seconds", required_argument, NULL, 't' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int port = 80, tick_seconds = 10, bound_port, c;
  const char *random_file = "/random-content-file";

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1)
    {
      switch (c)
        {
        case 'p':
          if (parse_int (optarg, 0, 65535, &port) < 0)
            {
              fprintf (stderr, "ate-counter: invalid --port '%s' (0-65535)\n", optarg);
              return 2;
            }
          break;
        case 'f':
          random_file = optarg;
          break;
        case 't':
          if (parse_int (optarg, 1, 3600, &tick_seconds) < 0)
            {
              fprintf (stderr, "ate-counter: invalid --tick-seconds '%s' (1-3600)\n", optarg);
              return 2;
            }
          break;
        case 'h':
          usage (stdout);
          return 0;
        default:
          usage (stderr);
          return 2;
        }
    }
  if (optind != argc)
    {
      usage (stderr);
      return 2;
    }

  struct sigaction sa = { .sa_handler = on_signal };
  sigemptyset (&sa.sa_mask);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  signal (SIGPIPE, SIG_IGN);

  int lfd = listen_on (port, &bound_port);
  if (lfd < 0)
    {
      log_errno ("Error starting server", errno);
      return 1;
    }
  const struct log_field start[] = { F_NUM ("port", bound_port), F_END };
  counter_log ("INFO", "Starting counter server", start);

  if (write_random_file (random_file) < 0)
    {
      log_errno ("Error writing random file", errno);
      close (lfd);
      return 1;
    }
  char hash[COUNTER_SHA256_B64_LEN];
  if (hash_random_file (random_file, hash) < 0)
    {
      log_errno ("Error reading random file", errno);
      close (lfd);
      return 1;
    }
  const struct log_field wrote[] = { F_STR ("fshash", hash), F_END };
  counter_log ("INFO", "Wrote content to random file", wrote);
  ready = true;
  counter_log ("INFO", "Readyz now reports OK", NULL);

  int rc = log_count (0, random_file) < 0 ? -1 : serve (lfd, random_file, tick_seconds);
  close (lfd);
  counter_log (rc < 0 ? "ERROR" : "INFO", "Counter server stopped", NULL);
  return rc < 0 ? 1 : 0;
}
