/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "fingerprint.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rootfs.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/util.h"

#define FP_MAGIC "ateom-rootfs-fingerprint"

static void
sha256 (const void *data, size_t len, uint8_t *out)
{
  unsigned int n = 0;
  if (EVP_Digest (data, len, out, &n, EVP_sha256 (), NULL) != 1)
    abort ();
}

void
rootfs_derive_uuid (const uint8_t *digest, const char *label, char *buf)
{
  uint8_t in[ROOTFS_DIGEST_LEN + 64];
  uint8_t h[ROOTFS_DIGEST_LEN];
  size_t ll = strlen (label);

  if (ll > 64)
    ll = 64;
  memcpy (in, label, ll);
  memcpy (in + ll, digest, ROOTFS_DIGEST_LEN);
  sha256 (in, ll + ROOTFS_DIGEST_LEN, h);
  h[6] = (uint8_t) ((h[6] & 0x0f) | 0x80); /* version 8: custom */
  h[8] = (uint8_t) ((h[8] & 0x3f) | 0x80); /* RFC variant */
  snprintf (buf, ROOTFS_UUID_LEN + 1,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
            h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11],
            h[12], h[13], h[14], h[15]);
}

static char *
format_identity (const struct rootfs_fingerprint *fp)
{
  char tree[2 * ROOTFS_DIGEST_LEN + 1], content[2 * ROOTFS_DIGEST_LEN + 1];
  char opts[2 * ROOTFS_DIGEST_LEN + 1];

  rootfs_digest_hex (fp->tree_digest, tree);
  rootfs_digest_hex (fp->content_digest, content);
  rootfs_digest_hex (fp->options_digest, opts);
  return xasprintf (FP_MAGIC " %d\n"
                    "tree-digest sha256:%s\n"
                    "content-digest %s%s\n"
                    "entries %" PRIu64 "\n"
                    "content-bytes %" PRIu64 "\n"
                    "inodes %" PRIu64 "\n"
                    "size-mib %" PRIu64 "\n"
                    "mkfs %s\n"
                    "options sha256:%s\n"
                    "uuid %s\n"
                    "hash-seed %s\n"
                    "fake-time %" PRId64 "\n",
                    ROOTFS_FP_VERSION, tree, fp->has_content_digest ? "sha256:" : "",
                    fp->has_content_digest ? content : "none", fp->entries,
                    fp->content_bytes, fp->inodes, fp->size_mib, fp->mkfs_version, opts,
                    fp->uuid, fp->hash_seed, fp->fake_time);
}

char *
rootfs_fingerprint_format (const struct rootfs_fingerprint *fp, bool with_disk)
{
  cleanup_free char *id = format_identity (fp);

  if (!with_disk || !fp->has_disk)
    return steal_pointer (&id);
  return xasprintf ("%sdisk-ino %" PRIu64 "\ndisk-size %" PRIu64 "\ndisk-mtime-ns %" PRId64
                    "\nboot-id %s\n",
                    id, fp->disk_ino, fp->disk_size, fp->disk_mtime_ns, fp->boot_id);
}

void
rootfs_fingerprint_cache_key (const struct rootfs_fingerprint *fp, char *buf)
{
  cleanup_free char *id = format_identity (fp);
  uint8_t h[ROOTFS_DIGEST_LEN];

  sha256 (id, strlen (id), h);
  rootfs_digest_hex (h, buf);
}

bool
rootfs_fingerprint_same_build (const struct rootfs_fingerprint *a,
                               const struct rootfs_fingerprint *b)
{
  cleanup_free char *ia = format_identity (a);
  cleanup_free char *ib = format_identity (b);
  return strcmp (ia, ib) == 0;
}

bool
rootfs_fingerprint_same_build_except_content (const struct rootfs_fingerprint *a,
                                              const struct rootfs_fingerprint *b)
{
  struct rootfs_fingerprint x = *b;
  x.has_content_digest = a->has_content_digest;
  memcpy (x.content_digest, a->content_digest, ROOTFS_DIGEST_LEN);
  return rootfs_fingerprint_same_build (a, &x);
}

/* ---- parsing ---- */

struct cursor
{
  const char *p;
  const char *end;
  int line;
  char key[32];
  char value[ROOTFS_FP_MKFS_MAX + 16];
};

static int
parse_error (struct ate_error **err, const struct cursor *c, const char *what)
{
  return ate_error_make (err, EINVAL, "fingerprint line %d: %s", c->line, what);
}

/* Next "key value\n" line; the key must be `want`. */
static int
next_line (struct cursor *c, const char *want, struct ate_error **err)
{
  const char *nl, *sp;
  size_t klen, vlen;

  c->line++;
  if (c->p >= c->end)
    return parse_error (err, c, "unexpected end of file");
  nl = memchr (c->p, '\n', (size_t) (c->end - c->p));
  if (nl == NULL)
    return parse_error (err, c, "line not terminated (truncated file?)");
  sp = memchr (c->p, ' ', (size_t) (nl - c->p));
  if (sp == NULL)
    return parse_error (err, c, "expected \"key value\"");
  klen = (size_t) (sp - c->p);
  vlen = (size_t) (nl - sp - 1);
  if (klen >= sizeof (c->key) || vlen >= sizeof (c->value))
    return parse_error (err, c, "line too long");
  memcpy (c->key, c->p, klen);
  c->key[klen] = '\0';
  memcpy (c->value, sp + 1, vlen);
  c->value[vlen] = '\0';
  for (size_t i = 0; i < vlen; i++)
    if ((unsigned char) c->value[i] < 0x20 || (unsigned char) c->value[i] > 0x7e)
      return parse_error (err, c, "value has a non-printable character");
  if (strcmp (c->key, want) != 0)
    {
      char msg[96];
      snprintf (msg, sizeof (msg), "expected key \"%s\"", want);
      return parse_error (err, c, msg);
    }
  c->p = nl + 1;
  return 0;
}

static int
parse_u64 (struct cursor *c, const char *key, uint64_t max, uint64_t *out,
           struct ate_error **err)
{
  char *end;
  unsigned long long v;

  if (next_line (c, key, err) < 0)
    return -1;
  if (c->value[0] < '0' || c->value[0] > '9' || (c->value[0] == '0' && c->value[1]))
    return parse_error (err, c, "expected a decimal number");
  errno = 0;
  v = strtoull (c->value, &end, 10);
  if (errno != 0 || *end != '\0' || v > max)
    return parse_error (err, c, "number out of range");
  *out = v;
  return 0;
}

static int
parse_i64 (struct cursor *c, const char *key, int64_t *out, struct ate_error **err)
{
  uint64_t v;
  if (parse_u64 (c, key, INT64_MAX, &v, err) < 0)
    return -1;
  *out = (int64_t) v;
  return 0;
}

static int
hex_digest (const char *s, uint8_t *out)
{
  for (size_t i = 0; i < ROOTFS_DIGEST_LEN; i++)
    {
      int v = 0;
      for (int k = 0; k < 2; k++)
        {
          char ch = s[2 * i + (size_t) k];
          v <<= 4;
          if (ch >= '0' && ch <= '9')
            v |= ch - '0';
          else if (ch >= 'a' && ch <= 'f')
            v |= ch - 'a' + 10;
          else
            return -1;
        }
      out[i] = (uint8_t) v;
    }
  return s[2 * ROOTFS_DIGEST_LEN] == '\0' ? 0 : -1;
}

static int
parse_digest (struct cursor *c, const char *key, bool allow_none, bool *present,
              uint8_t *out, struct ate_error **err)
{
  if (next_line (c, key, err) < 0)
    return -1;
  if (allow_none && strcmp (c->value, "none") == 0)
    {
      *present = false;
      memset (out, 0, ROOTFS_DIGEST_LEN);
      return 0;
    }
  if (!str_has_prefix (c->value, "sha256:") || hex_digest (c->value + 7, out) < 0)
    return parse_error (err, c, "expected sha256:<64 lower-case hex digits>");
  if (present)
    *present = true;
  return 0;
}

static int
parse_uuid (struct cursor *c, const char *key, char *out, struct ate_error **err)
{
  if (next_line (c, key, err) < 0)
    return -1;
  if (strlen (c->value) != ROOTFS_UUID_LEN)
    return parse_error (err, c, "expected a UUID");
  for (size_t i = 0; i < ROOTFS_UUID_LEN; i++)
    {
      char ch = c->value[i];
      bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
        return parse_error (err, c, "expected a lower-case UUID");
    }
  memcpy (out, c->value, ROOTFS_UUID_LEN + 1);
  return 0;
}

static int
parse_header (struct cursor *c, struct rootfs_fingerprint *fp, struct ate_error **err)
{
  uint64_t version;

  if (parse_u64 (c, FP_MAGIC, UINT32_MAX, &version, err) < 0)
    return -1;
  if (version != ROOTFS_FP_VERSION)
    return ate_error_make (err, EPROTO, "fingerprint version %" PRIu64 " (this build reads %d)",
                           version, ROOTFS_FP_VERSION);
  if (parse_digest (c, "tree-digest", false, NULL, fp->tree_digest, err) < 0
      || parse_digest (c, "content-digest", true, &fp->has_content_digest,
                       fp->content_digest, err) < 0)
    return -1;
  return 0;
}

static int
parse_body (struct cursor *c, struct rootfs_fingerprint *fp, struct ate_error **err)
{
  struct rootfs_geometry g;
  bool present;

  if (parse_u64 (c, "entries", UINT32_MAX, &fp->entries, err) < 0
      || parse_u64 (c, "content-bytes", UINT64_MAX / 2, &fp->content_bytes, err) < 0
      || parse_u64 (c, "inodes", UINT32_MAX, &fp->inodes, err) < 0
      || parse_u64 (c, "size-mib", UINT64_MAX >> 21, &fp->size_mib, err) < 0)
    return -1;
  rootfs_geometry_from_counts (fp->entries, fp->content_bytes, &g);
  if (fp->entries == 0 || g.inodes != fp->inodes || g.size_mib != fp->size_mib)
    return parse_error (err, c, "geometry does not follow from entries and content-bytes");
  if (next_line (c, "mkfs", err) < 0)
    return -1;
  if (c->value[0] == '\0' || strlen (c->value) >= ROOTFS_FP_MKFS_MAX)
    return parse_error (err, c, "bad mkfs version");
  strcpy (fp->mkfs_version, c->value);
  if (parse_digest (c, "options", false, &present, fp->options_digest, err) < 0
      || parse_uuid (c, "uuid", fp->uuid, err) < 0
      || parse_uuid (c, "hash-seed", fp->hash_seed, err) < 0
      || parse_i64 (c, "fake-time", &fp->fake_time, err) < 0)
    return -1;
  return 0;
}

int
rootfs_fingerprint_parse (const char *buf, size_t len, struct rootfs_fingerprint *fp,
                          struct ate_error **err)
{
  struct cursor c = { .p = buf, .end = buf + len };

  memset (fp, 0, sizeof (*fp));
  if (len > ROOTFS_FP_MAX_BYTES)
    return ate_error_make (err, EFBIG, "fingerprint larger than %d bytes",
                           ROOTFS_FP_MAX_BYTES);
  if (memchr (buf, '\0', len) != NULL)
    return ate_error_make (err, EINVAL, "fingerprint contains a NUL byte");
  if (parse_header (&c, fp, err) < 0 || parse_body (&c, fp, err) < 0)
    return -1;
  if (c.p == c.end)
    return 0;
  if (parse_u64 (&c, "disk-ino", UINT64_MAX, &fp->disk_ino, err) < 0
      || parse_u64 (&c, "disk-size", INT64_MAX, &fp->disk_size, err) < 0
      || parse_i64 (&c, "disk-mtime-ns", &fp->disk_mtime_ns, err) < 0
      || parse_uuid (&c, "boot-id", fp->boot_id, err) < 0)
    return -1;
  fp->has_disk = true;
  if (c.p != c.end)
    {
      c.line++;
      return parse_error (err, &c, "unexpected data after the last key");
    }
  return 0;
}

bool
rootfs_fingerprint_describes (const struct rootfs_fingerprint *fp, const struct stat *st,
                              const char *boot_id)
{
  return fp->has_disk && fp->disk_ino == (uint64_t) st->st_ino
         && fp->disk_size == (uint64_t) st->st_size
         && fp->disk_mtime_ns
              == (int64_t) st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec
         && strcmp (fp->boot_id, boot_id) == 0;
}

void
rootfs_boot_id (char *buf)
{
  cleanup_free char *text = NULL;
  cleanup_error struct ate_error *e = NULL;
  size_t len = 0;

  snprintf (buf, ROOTFS_UUID_LEN + 1, "unknown");
  if (ate_read_file ("/proc/sys/kernel/random/boot_id", 64, &text, &len, &e) < 0)
    return;
  if (len >= ROOTFS_UUID_LEN && (len == ROOTFS_UUID_LEN || text[ROOTFS_UUID_LEN] == '\n'))
    {
      memcpy (buf, text, ROOTFS_UUID_LEN);
      buf[ROOTFS_UUID_LEN] = '\0';
    }
}

char *
rootfs_fingerprint_path (const char *disk_path)
{
  return xasprintf ("%s" ROOTFS_FINGERPRINT_SUFFIX, disk_path);
}

int
rootfs_fingerprint_read (const char *path, struct rootfs_fingerprint *fp,
                         struct ate_error **err)
{
  cleanup_free char *buf = NULL;
  size_t len = 0;

  if (ate_read_file (path, ROOTFS_FP_MAX_BYTES, &buf, &len, err) < 0)
    return -1;
  if (rootfs_fingerprint_parse (buf, len, fp, err) < 0)
    return ate_error_wrap (err, "`%s`", path);
  return 0;
}

int
rootfs_fingerprint_write (const char *path, const struct rootfs_fingerprint *fp,
                          bool with_disk, struct ate_error **err)
{
  cleanup_free char *text = rootfs_fingerprint_format (fp, with_disk);
  return ate_write_file_atomic (path, text, strlen (text), 0600, err);
}
