/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC server reflection: grpc.reflection.v1 and v1alpha
 * ServerReflectionInfo, so that grpcurl and other reflection clients work
 * without the .proto files.  Answers come from a serialized
 * FileDescriptorSet of the served protos that the build compiles into the
 * binary (api/CMakeLists.txt); nothing is parsed or kept until a request
 * arrives.  See docs/api.md, "Server reflection".
 */
#ifndef ATE_SERVER_REFLECTION_H
#define ATE_SERVER_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

struct ate_error;
struct reflection;

#define REFLECTION_MAX_SERVICES 16

/* The FileDescriptorSet of api/'s served protos with their imports
 * (ate_proto_descriptors, generated at build time). */
extern const unsigned char ate_served_descriptors[];
extern const size_t ate_served_descriptors_len;

/* set: a serialized google.protobuf.FileDescriptorSet (borrowed, must
 * outlive the result).  The services listed are those of methods plus the
 * two reflection services. */
struct reflection *reflection_new (const uint8_t *set, size_t set_len,
                                   const struct rpc_method *methods, size_t n_methods);
void reflection_free (struct reflection *r);

/* The v1 and v1alpha ServerReflectionInfo methods (bidirectional streams;
 * valid while r lives). */
const struct rpc_method *reflection_methods (struct reflection *r, size_t *n);

/* Answer one serialized ServerReflectionRequest with one serialized
 * ServerReflectionResponse (an unknown file or symbol is an error_response
 * in it); < 0 with INVALID_ARGUMENT only for a malformed request. */
int reflection_answer (struct reflection *r, const uint8_t *req, size_t req_len, uint8_t **resp,
                       size_t *resp_len, struct ate_error **err);

#endif
