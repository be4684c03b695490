/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Actor log forwarding (docs/logging.md): the lines an actor's container
 * writes, and
 * the actor lifecycle events, become one JSON object per line on stdout,
 * labelled with the actor's identity, written under the same lock as the
 * runtime log (ate_log_write_line).
 *
 * Serialisation follows Go's encoding/json exactly (util/gojson.h says
 * how, and why json-c cannot): object keys sorted bytewise, '<' '>' '&'
 * U+2028 U+2029 escaped, invalid UTF-8 replaced by U+FFFD, numbers kept as
 * written. The log pumps split a container's stream with util/lines.h,
 * ACTORLOG_MAX_LINE bytes at most per line.
 */
#ifndef KATA_ACTORLOG_H
#define KATA_ACTORLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACTORLOG_LABELS_KEY "labels"
#define ACTORLOG_GCE_LABELS_KEY "logging.googleapis.com/labels"

/* Lines longer than this are forwarded in pieces of this size (the
 * reference has no limit; a container must not be able to exhaust the
 * worker's memory with one endless line). */
#define ACTORLOG_MAX_LINE (1u << 20)
/* JSON nested deeper than this is forwarded as text. */
#define ACTORLOG_MAX_DEPTH 512

struct actorlog_labels
{
  const char *key;                /* ACTORLOG_LABELS_KEY or ACTORLOG_GCE_LABELS_KEY */
  const char *actor_id;           /* ate.dev/actor_id */
  const char *template_name;      /* ate.dev/actor_template_name */
  const char *template_namespace; /* ate.dev/actor_template_namespace */
  const char *container_name;     /* ate.dev/container_name; NULL on events */
};

/* Where the GCE probes look (docs/logging.md, "GCE detection"); NULL
 * members take the defaults
 * shown.  An empty probe target ("") disables that probe. */
struct actorlog_gce_opts
{
  const char *metadata_host;    /* getenv ("GCE_METADATA_HOST") */
  const char *dmi_product_path; /* /sys/class/dmi/id/product_name */
  const char *metadata_url;     /* http://169.254.169.254 */
  const char *dns_name;         /* metadata.google.internal. */
  const char *metadata_ip;      /* 169.254.169.254 */
  int64_t probe_timeout_ms;     /* 0: 2000 (each probe) */
  int64_t try_harder_ms;        /* 0: 5000 (second probe when the DMI says Google) */
};

/* Is this a GCE VM?  GCE_METADATA_HOST set: yes.  Otherwise an HTTP probe
 * of the metadata server (header Metadata-Flavor: Google) and a DNS probe
 * (metadata.google.internal resolves to 169.254.169.254) run in parallel;
 * when the DMI product name is "Google" or "Google Compute Engine" a
 * positive probe wins (the other is awaited up to try_harder_ms), else the
 * first answer wins.  Call once at start-up. */
bool actorlog_on_gce (const struct actorlog_gce_opts *opts);

const char *actorlog_labels_key (bool on_gce);

/* The output line for one container line (without its '\n'): a JSON object
 * gets "time" when missing and the labels merged in; anything else (text,
 * arrays, numbers, null, invalid or trailing garbage) becomes
 * {"<key>":{labels},"message":"<line>","time":"<now>"}.  wall_ns is the
 * time to stamp (CLOCK_REALTIME ns).  Returns a new string (*out_len set). */
char *actorlog_format_line (const struct actorlog_labels *labels, const char *line,
                            size_t len, int64_t wall_ns, size_t *out_len);

/* {"<key>":{3 labels},"message":"<message>","time":"<now>"}. */
char *actorlog_format_event (const struct actorlog_labels *labels, const char *message,
                             int64_t wall_ns, size_t *out_len);

/* Write a lifecycle event ("Actor starting", ...) to the log stream. */
void actorlog_event (const struct actorlog_labels *labels, const char *message);

/* Format and write one container line with the labels (what the log pumps
 * do for every line). */
void actorlog_write_line (const struct actorlog_labels *labels, const char *line, size_t len);

#endif
