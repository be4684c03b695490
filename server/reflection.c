/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "reflection.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "util/error.h"
#include "util/util.h"

/* The wire form of both protocol versions is the same: one generated codec
 * (v1alpha) serves the two method paths. */
typedef Grpc__Reflection__V1alpha__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse refl_response;

#define MAX_FILES 64  /* files in one answer (a file and its imports) */
#define MAX_DEPTH 32  /* nesting of message declarations */

/* gRPC status codes carried in an ErrorResponse. */
#define CODE_INVALID_ARGUMENT 3
#define CODE_NOT_FOUND 5

struct reflection
{
  const uint8_t *set;
  size_t set_len;
  char *services[REFLECTION_MAX_SERVICES + 2];
  size_t n_services;
  struct rpc_method methods[2];
};

/* Protobuf wire format, just enough to walk descriptors. */

struct pb_field
{
  uint32_t num;
  unsigned wire_type;
  uint64_t varint;
  const uint8_t *data; /* length-delimited payload */
  size_t len;
};

static bool
pb_varint (const uint8_t *buf, size_t len, size_t *pos, uint64_t *out)
{
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64 && *pos < len; shift += 7)
    {
      uint8_t b = buf[(*pos)++];
      v |= (uint64_t) (b & 0x7f) << shift;
      if ((b & 0x80) == 0)
        {
          *out = v;
          return true;
        }
    }
  return false;
}

/* 1: a field was read; 0: end of buffer; -1: malformed. */
static int
pb_next (const uint8_t *buf, size_t len, size_t *pos, struct pb_field *f)
{
  uint64_t key, n;

  if (*pos >= len)
    return 0;
  if (!pb_varint (buf, len, pos, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
    return -1;
  f->num = (uint32_t) (key >> 3);
  f->wire_type = key & 7;
  f->data = NULL;
  f->len = 0;
  switch (f->wire_type)
    {
    case 0:
      return pb_varint (buf, len, pos, &f->varint) ? 1 : -1;
    case 1:
      n = 8;
      break;
    case 5:
      n = 4;
      break;
    case 2:
      if (!pb_varint (buf, len, pos, &n))
        return -1;
      f->data = buf + *pos;
      f->len = (size_t) n;
      break;
    default:
      return -1; /* groups are not used by descriptors */
    }
  if (n > len - *pos)
    return -1;
  *pos += (size_t) n;
  return 1;
}

/* The string field `num` of a message (the last occurrence), or NULL. */
static const uint8_t *
pb_string (const uint8_t *msg, size_t len, uint32_t num, size_t *out_len)
{
  const uint8_t *found = NULL;
  struct pb_field f;
  size_t pos = 0;
  int r;

  *out_len = 0;
  while ((r = pb_next (msg, len, &pos, &f)) > 0)
    if (f.num == num && f.wire_type == 2)
      {
        found = f.data;
        *out_len = f.len;
      }
  return r < 0 ? NULL : found;
}

static bool
bytes_equal (const uint8_t *a, size_t alen, const char *s, size_t slen)
{
  return a != NULL && alen == slen && memcmp (a, s, slen) == 0;
}

/* Descriptor field numbers (google/protobuf/descriptor.proto). */
enum
{
  SET_FILE = 1,
  FILE_NAME = 1,
  FILE_PACKAGE = 2,
  FILE_DEPENDENCY = 3,
  FILE_MESSAGE = 4,
  FILE_ENUM = 5,
  FILE_SERVICE = 6,
  FILE_EXTENSION = 7,
  MESSAGE_NAME = 1,
  MESSAGE_FIELD = 2,
  MESSAGE_NESTED = 3,
  MESSAGE_ENUM = 4,
  MESSAGE_EXTENSION = 6,
  MESSAGE_ONEOF = 8,
  ENUM_VALUE = 2,
  SERVICE_METHOD = 2,
  NAME = 1, /* the name of every other descriptor */
};

/* Whether `rest` (a name relative to a scope) names the descriptor `msg`
 * (a message, enum or service called name) or something inside it.
 * want_message: only a message itself matches. */
static bool scope_defines (const uint8_t *scope, size_t len, bool is_file, const char *rest,
                           bool want_message, int depth);

/* "Name" or "Name.tail": returns tail ("" for an exact match) or NULL. */
static const char *
strip_component (const char *rest, const uint8_t *name, size_t nlen)
{
  if (name == NULL || nlen == 0 || strncmp (rest, (const char *) name, nlen) != 0)
    return NULL;
  if (rest[nlen] == '\0')
    return rest + nlen;
  if (rest[nlen] == '.')
    return rest + nlen + 1;
  return NULL;
}

static bool
children_named (const uint8_t *msg, size_t len, uint32_t field, const char *name)
{
  struct pb_field f;
  size_t pos = 0, nlen;

  while (pb_next (msg, len, &pos, &f) > 0)
    if (f.num == field && f.wire_type == 2)
      {
        const uint8_t *n = pb_string (f.data, f.len, NAME, &nlen);
        if (bytes_equal (n, nlen, name, strlen (name)))
          return true;
      }
  return false;
}

/* Enum values are scoped beside their enum (C++ scoping rules). */
static bool
enum_values_named (const uint8_t *scope, size_t len, uint32_t enum_field, const char *name)
{
  struct pb_field f;
  size_t pos = 0;

  while (pb_next (scope, len, &pos, &f) > 0)
    if (f.num == enum_field && f.wire_type == 2 && children_named (f.data, f.len, ENUM_VALUE, name))
      return true;
  return false;
}

static bool
scope_defines (const uint8_t *scope, size_t len, bool is_file, const char *rest,
               bool want_message, int depth)
{
  uint32_t f_message = is_file ? FILE_MESSAGE : MESSAGE_NESTED;
  uint32_t f_enum = is_file ? FILE_ENUM : MESSAGE_ENUM;
  struct pb_field f;
  size_t pos = 0, nlen;

  if (depth > MAX_DEPTH)
    return false;
  while (pb_next (scope, len, &pos, &f) > 0)
    {
      const uint8_t *name;
      const char *tail;

      if (f.wire_type != 2)
        continue;
      if (f.num != f_message && f.num != f_enum && !(is_file && f.num == FILE_SERVICE))
        continue;
      name = pb_string (f.data, f.len, NAME, &nlen);
      tail = strip_component (rest, name, nlen);
      if (tail == NULL)
        continue;
      if (*tail == '\0')
        return !want_message || f.num == f_message;
      if (want_message)
        {
          if (f.num == f_message && scope_defines (f.data, f.len, false, tail, true, depth + 1))
            return true;
          continue;
        }
      if (f.num == FILE_SERVICE && is_file)
        {
          if (children_named (f.data, f.len, SERVICE_METHOD, tail))
            return true;
        }
      else if (f.num == f_message)
        {
          if (children_named (f.data, f.len, MESSAGE_FIELD, tail)
              || children_named (f.data, f.len, MESSAGE_ONEOF, tail)
              || children_named (f.data, f.len, MESSAGE_EXTENSION, tail)
              || scope_defines (f.data, f.len, false, tail, false, depth + 1))
            return true;
        }
    }
  if (want_message)
    return false;
  return enum_values_named (scope, len, f_enum, rest)
         || children_named (scope, len, is_file ? FILE_EXTENSION : MESSAGE_EXTENSION, rest);
}

/* Whether the FileDescriptorProto defines the fully qualified symbol. */
static bool
file_defines (const uint8_t *file, size_t len, const char *symbol, bool want_message)
{
  size_t plen;
  const uint8_t *pkg = pb_string (file, len, FILE_PACKAGE, &plen);
  const char *rest = symbol;

  if (pkg != NULL && plen > 0)
    {
      rest = strip_component (symbol, pkg, plen);
      if (rest == NULL || *rest == '\0')
        return false;
    }
  return scope_defines (file, len, true, rest, want_message, 0);
}

/* The files of the set, one at a time. */
static bool
set_next_file (const struct reflection *r, size_t *pos, const uint8_t **file, size_t *len)
{
  struct pb_field f;
  int rc;

  while ((rc = pb_next (r->set, r->set_len, pos, &f)) > 0)
    if (f.num == SET_FILE && f.wire_type == 2)
      {
        *file = f.data;
        *len = f.len;
        return true;
      }
  return false;
}

static bool
find_file (const struct reflection *r, const char *name, size_t name_len, ProtobufCBinaryData *out)
{
  const uint8_t *file;
  size_t pos = 0, len, nlen;

  while (set_next_file (r, &pos, &file, &len))
    {
      const uint8_t *n = pb_string (file, len, FILE_NAME, &nlen);
      if (bytes_equal (n, nlen, name, name_len))
        {
          out->data = (uint8_t *) file;
          out->len = len;
          return true;
        }
    }
  return false;
}

static bool
find_symbol (const struct reflection *r, const char *symbol, bool want_message,
             ProtobufCBinaryData *out)
{
  const uint8_t *file;
  size_t pos = 0, len;

  while (set_next_file (r, &pos, &file, &len))
    if (file_defines (file, len, symbol, want_message))
      {
        out->data = (uint8_t *) file;
        out->len = len;
        return true;
      }
  return false;
}

/* files[0] is set; append its imports, transitively, each once. */
static size_t
add_dependencies (const struct reflection *r, ProtobufCBinaryData *files)
{
  size_t n = 1;

  for (size_t i = 0; i < n; i++)
    {
      struct pb_field f;
      size_t pos = 0;

      while (pb_next (files[i].data, files[i].len, &pos, &f) > 0)
        {
          ProtobufCBinaryData dep;
          bool seen = false;

          if (f.num != FILE_DEPENDENCY || f.wire_type != 2
              || !find_file (r, (const char *) f.data, f.len, &dep))
            continue;
          for (size_t j = 0; j < n && !seen; j++)
            seen = files[j].data == dep.data;
          if (!seen && n < MAX_FILES)
            files[n++] = dep;
        }
    }
  return n;
}

int
reflection_answer (struct reflection *r, const uint8_t *req, size_t req_len, uint8_t **resp,
                   size_t *resp_len, struct ate_error **err)
{
  refl_request *in = grpc__reflection__v1alpha__server_reflection_request__unpack (NULL, req_len,
                                                                                 req);
  refl_response out = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__FileDescriptorResponse fdr
      = GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ListServiceResponse lsr
      = GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ExtensionNumberResponse enr
      = GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ErrorResponse er = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
  Grpc__Reflection__V1alpha__ServiceResponse svc[ATE_N_ELEMENTS (r->services)];
  Grpc__Reflection__V1alpha__ServiceResponse *svcp[ATE_N_ELEMENTS (r->services)];
  ProtobufCBinaryData files[MAX_FILES];
  cleanup_free char *message = NULL;

  if (in == NULL)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, 0,
                                "malformed ServerReflectionRequest: not a valid protobuf message");
  out.valid_host = in->host;
  out.original_request = in;
  switch (in->message_request_case)
    {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
      if (find_file (r, in->file_by_filename, strlen (in->file_by_filename), &files[0]))
        {
          fdr.n_file_descriptor_proto = add_dependencies (r, files);
          fdr.file_descriptor_proto = files;
        }
      else
        message = xasprintf ("file %s not found", in->file_by_filename);
      break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
      if (find_symbol (r, in->file_containing_symbol, false, &files[0]))
        {
          fdr.n_file_descriptor_proto = add_dependencies (r, files);
          fdr.file_descriptor_proto = files;
        }
      else
        message = xasprintf ("symbol %s not found", in->file_containing_symbol);
      break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
      /* The served protos declare no extensions. */
      message = xasprintf ("extension %d of %s not found",
                           in->file_containing_extension->extension_number,
                           in->file_containing_extension->containing_type);
      break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
      if (find_symbol (r, in->all_extension_numbers_of_type, true, &files[0]))
        {
          enr.base_type_name = in->all_extension_numbers_of_type;
          out.message_response_case
              = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
          out.all_extension_numbers_response = &enr;
        }
      else
        message = xasprintf ("message type %s not found", in->all_extension_numbers_of_type);
      break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
      for (size_t i = 0; i < r->n_services; i++)
        {
          grpc__reflection__v1alpha__service_response__init (&svc[i]);
          svc[i].name = r->services[i];
          svcp[i] = &svc[i];
        }
      lsr.n_service = r->n_services;
      lsr.service = svcp;
      out.message_response_case
          = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
      out.list_services_response = &lsr;
      break;
    default:
      er.error_code = CODE_INVALID_ARGUMENT;
      er.error_message = (char *) "the request names no message_request";
      break;
    }
  if (fdr.n_file_descriptor_proto > 0)
    {
      out.message_response_case
          = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
      out.file_descriptor_response = &fdr;
    }
  else if (message != NULL)
    {
      er.error_code = CODE_NOT_FOUND;
      er.error_message = message;
    }
  if (er.error_code != 0)
    {
      out.message_response_case
          = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
      out.error_response = &er;
    }
  *resp_len = grpc__reflection__v1alpha__server_reflection_response__get_packed_size (&out);
  *resp = xmalloc (*resp_len ? *resp_len : 1);
  grpc__reflection__v1alpha__server_reflection_response__pack (&out, *resp);
  grpc__reflection__v1alpha__server_reflection_request__free_unpacked (in, NULL);
  return 0;
}

static int
handle_info (void *ctx, const uint8_t *req, size_t len, ate_deadline_t deadline,
             const struct ate_cancel *cancel, uint8_t **resp, size_t *resp_len,
             struct ate_error **err)
{
  (void) deadline;
  (void) cancel;
  return reflection_answer (ctx, req, len, resp, resp_len, err);
}

/* "/pkg.Service/Method" -> "pkg.Service" */
static void
add_service (struct reflection *r, const char *path)
{
  const char *slash;
  size_t n;

  if (path[0] != '/' || (slash = strchr (path + 1, '/')) == NULL)
    return;
  n = (size_t) (slash - path - 1);
  for (size_t i = 0; i < r->n_services; i++)
    if (strlen (r->services[i]) == n && strncmp (r->services[i], path + 1, n) == 0)
      return;
  if (r->n_services < ATE_N_ELEMENTS (r->services))
    r->services[r->n_services++] = xstrndup (path + 1, n);
}

struct reflection *
reflection_new (const uint8_t *set, size_t set_len, const struct rpc_method *methods,
                size_t n_methods)
{
  struct reflection *r = xmalloc0 (sizeof (*r));

  r->set = set;
  r->set_len = set_len;
  r->methods[0] = (struct rpc_method){
    .path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    .handler = handle_info,
    .ctx = r,
    .stream = true,
  };
  r->methods[1] = r->methods[0];
  r->methods[1].path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  for (size_t i = 0; i < n_methods && r->n_services < REFLECTION_MAX_SERVICES; i++)
    add_service (r, methods[i].path);
  for (size_t i = 0; i < ATE_N_ELEMENTS (r->methods); i++)
    add_service (r, r->methods[i].path);
  return r;
}

void
reflection_free (struct reflection *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->n_services; i++)
    free (r->services[i]);
  free (r);
}

const struct rpc_method *
reflection_methods (struct reflection *r, size_t *n)
{
  *n = ATE_N_ELEMENTS (r->methods);
  return r->methods;
}
