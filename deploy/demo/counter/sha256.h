/* SPDX-License-Identifier: Apache-2.0 */
#ifndef ATE_COUNTER_SHA256_H
#define ATE_COUNTER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define COUNTER_SHA256_LEN 32
/* Unpadded base64 of a SHA-256 digest: ceil(32 * 4 / 3) = 43 chars + NUL. */
#define COUNTER_SHA256_B64_LEN 44

struct counter_sha256
{
  uint32_t h[8];
  uint64_t total;
  uint8_t block[64];
  size_t used;
};

void counter_sha256_init (struct counter_sha256 *ctx);
void counter_sha256_update (struct counter_sha256 *ctx, const void *data, size_t len);
void counter_sha256_final (struct counter_sha256 *ctx, uint8_t out[COUNTER_SHA256_LEN]);

/* Standard-alphabet base64 without '=' padding (what the reference counter
 * logs as "fshash"); out must hold 4 * ceil(len / 3) + 1 bytes. */
void counter_base64_raw (const uint8_t *in, size_t len, char *out);

#endif
