/* SPDX-License-Identifier: Apache-2.0 */
/* GCE detection for the log labels key (docs/logging.md, "GCE detection"),
 * the way
 * cloud.google.com/go/compute/metadata decides OnGCE. */
#define _GNU_SOURCE
#include "actorlog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/error.h"
#include "util/fs.h"
#include "util/http.h"
#include "util/time.h"
#include "util/util.h"

#define DEFAULT_METADATA_URL "http://169.254.169.254"
#define DEFAULT_DNS_NAME "metadata.google.internal."
#define DEFAULT_METADATA_IP "169.254.169.254"
#define DEFAULT_DMI_PATH "/sys/class/dmi/id/product_name"
#define DEFAULT_PROBE_MS 2000
#define DEFAULT_TRY_HARDER_MS 5000

/* Shared by the caller and the probe threads: a DNS lookup cannot be
 * cancelled, so a probe may outlive the decision; whoever drops the last
 * reference frees it. */
struct probes
{
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int refs;
  bool results[2];
  int n_results;
  char *url, *dns_name, *ip;
  int64_t timeout_ms;
};

static void
probes_unref (struct probes *p)
{
  bool last;
  pthread_mutex_lock (&p->lock);
  last = --p->refs == 0;
  pthread_mutex_unlock (&p->lock);
  if (!last)
    return;
  pthread_mutex_destroy (&p->lock);
  pthread_cond_destroy (&p->cond);
  free (p->url);
  free (p->dns_name);
  free (p->ip);
  free (p);
}

static void
report (struct probes *p, bool result)
{
  pthread_mutex_lock (&p->lock);
  p->results[p->n_results++] = result;
  pthread_cond_broadcast (&p->cond);
  pthread_mutex_unlock (&p->lock);
  probes_unref (p);
}

static void *
http_probe (void *arg)
{
  struct probes *p = arg;
  cleanup_free char *flavor = NULL;
  struct ate_error *err = NULL;
  long status = 0;
  bool google = false;

  /* The metadata server says who it is in a response header. */
  if (ate_http_get (p->url, ate_deadline_in_ms (p->timeout_ms), &status, "Metadata-Flavor",
                    &flavor, &err)
      == 0)
    google = flavor != NULL && strcmp (flavor, "Google") == 0;
  ate_error_release (&err);
  report (p, google);
  return NULL;
}

static void *
dns_probe (void *arg)
{
  struct probes *p = arg;
  struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
  struct addrinfo *res = NULL;
  bool match = false;

  if (getaddrinfo (p->dns_name, NULL, &hints, &res) == 0)
    {
      for (struct addrinfo *a = res; a && !match; a = a->ai_next)
        {
          char buf[INET_ADDRSTRLEN];
          const struct sockaddr_in *sin = (const struct sockaddr_in *) a->ai_addr;
          if (inet_ntop (AF_INET, &sin->sin_addr, buf, sizeof (buf)))
            match = strcmp (buf, p->ip) == 0;
        }
      freeaddrinfo (res);
    }
  report (p, match);
  return NULL;
}

static bool
dmi_says_google (const char *path)
{
  cleanup_free char *text = NULL;
  size_t len = 0;

  if (ate_read_file (path, 4096, &text, &len, NULL) < 0)
    return false;
  while (len && (text[len - 1] == '\n' || text[len - 1] == ' ' || text[len - 1] == '\t'))
    text[--len] = '\0';
  return strcmp (text, "Google") == 0 || strcmp (text, "Google Compute Engine") == 0;
}

static int
start_probe (struct probes *p, void *(*fn) (void *))
{
  pthread_t t;
  pthread_attr_t a;
  int r;

  pthread_mutex_lock (&p->lock);
  p->refs++;
  pthread_mutex_unlock (&p->lock);
  pthread_attr_init (&a);
  pthread_attr_setdetachstate (&a, PTHREAD_CREATE_DETACHED);
  r = pthread_create (&t, &a, fn, p);
  pthread_attr_destroy (&a);
  if (r != 0)
    {
      probes_unref (p);
      return 0;
    }
  return 1;
}

/* Wait until `want` results arrived or the deadline; returns how many. */
static int
wait_results (struct probes *p, int want, ate_deadline_t deadline)
{
  struct timespec ts = { .tv_sec = deadline / ATE_NSEC_PER_SEC,
                         .tv_nsec = deadline % ATE_NSEC_PER_SEC };
  int n;

  pthread_mutex_lock (&p->lock);
  while (p->n_results < want)
    if (pthread_cond_timedwait (&p->cond, &p->lock, &ts) == ETIMEDOUT)
      break;
  n = p->n_results;
  pthread_mutex_unlock (&p->lock);
  return n;
}

static bool
decide (struct probes *p, int started, bool try_harder, int64_t probe_ms, int64_t harder_ms)
{
  /* Each probe is bounded by its own timeout; the DNS one by the resolver:
   * do not wait for it beyond the probe timeout plus the try-harder time. */
  ate_deadline_t first_by = ate_deadline_in_ms (probe_ms + harder_ms);
  int n = wait_results (p, 1, first_by);

  if (n == 0)
    return false;
  if (!try_harder || p->results[0] || started < 2)
    return p->results[0];
  n = wait_results (p, 2, ate_deadline_in_ms (harder_ms));
  return n >= 2 && p->results[1];
}

bool
actorlog_on_gce (const struct actorlog_gce_opts *o)
{
  struct actorlog_gce_opts d = o ? *o : (struct actorlog_gce_opts) { 0 };
  const char *host = o && o->metadata_host ? o->metadata_host : getenv ("GCE_METADATA_HOST");
  struct probes *p;
  pthread_condattr_t ca;
  int started = 0;
  bool try_harder, result;

  if (host && *host)
    return true;
  try_harder = dmi_says_google (d.dmi_product_path ? d.dmi_product_path : DEFAULT_DMI_PATH);

  p = xmalloc0 (sizeof (*p));
  pthread_mutex_init (&p->lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&p->cond, &ca);
  pthread_condattr_destroy (&ca);
  p->refs = 1;
  p->url = xstrdup (d.metadata_url ? d.metadata_url : DEFAULT_METADATA_URL);
  p->dns_name = xstrdup (d.dns_name ? d.dns_name : DEFAULT_DNS_NAME);
  p->ip = xstrdup (d.metadata_ip ? d.metadata_ip : DEFAULT_METADATA_IP);
  p->timeout_ms = d.probe_timeout_ms > 0 ? d.probe_timeout_ms : DEFAULT_PROBE_MS;
  if (*p->url)
    started += start_probe (p, http_probe);
  if (*p->dns_name)
    started += start_probe (p, dns_probe);
  result = started > 0
           && decide (p, started, try_harder, p->timeout_ms,
                      d.try_harder_ms > 0 ? d.try_harder_ms : DEFAULT_TRY_HARDER_MS);
  probes_unref (p);
  return result;
}
