/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decoding and validation of the three ateom requests into the runtime's
 * struct actor_request, before any side effect: names that become path
 * components, container counts and names, readiness probes, asset paths.
 */
#ifndef ATE_SERVER_REQUEST_H
#define ATE_SERVER_REQUEST_H

#include <stddef.h>

#include "actor/actor.h"
#include "ateom.pb-c.h"

struct ate_error;

enum rpc_kind
{
  RPC_RUN,
  RPC_CHECKPOINT,
  RPC_RESTORE,
};

/* Owns the arrays; the strings point into the protobuf message, which must
 * outlive it. */
struct parsed_request
{
  struct actor_request req;
  struct actor_container *containers;
  struct actor_asset *assets;
};

/* A SandboxConfig names a handful of assets; this bounds the work a call
 * can ask for (docs/api.md, "Requests"). */
#define REQUEST_MAX_ASSETS 1024
#define REQUEST_MAX_STRING 4096
#define REQUEST_MAX_READYZ_PATH 1024

/* The common fields of the three request messages. */
struct request_fields
{
  const char *ns;
  const char *tmpl;
  const char *id;
  const Ateom__WorkloadSpec *spec;
  size_t n_assets;
  Ateom__RunWorkloadRequest__RuntimeAssetPathsEntry *const *assets;
};

/* Validate f by the rules of kind (docs/api.md); INVALID_ARGUMENT or
 * UNIMPLEMENTED name the field, INTERNAL is a kind outside the enum. */
int request_parse (enum rpc_kind kind, const struct request_fields *f,
                   struct parsed_request *out, struct ate_error **err);
void parsed_request_free (struct parsed_request *p);

/* INVALID_ARGUMENT naming the field when any string field of the encoded
 * message (sub-messages and map entries included) holds a NUL byte, which
 * the decoded C string would silently cut (docs/api.md, "Requests"). */
int request_check_strings (const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                           struct ate_error **err);

/* Helpers to fill request_fields from each message. */
void request_fields_from_run (const Ateom__RunWorkloadRequest *m, struct request_fields *f);
void request_fields_from_checkpoint (const Ateom__CheckpointWorkloadRequest *m,
                                     struct request_fields *f);
void request_fields_from_restore (const Ateom__RestoreWorkloadRequest *m,
                                  struct request_fields *f);

#endif
