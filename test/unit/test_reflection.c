/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC server reflection answers from a descriptor set (no sockets). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "reflection.h"
#include "util/error.h"
#include "util/util.h"

/* A tiny protobuf encoder for hand-made descriptors. */
struct buf
{
  uint8_t b[4096];
  size_t n;
};

static void
put_varint (struct buf *o, uint64_t v)
{
  do
    {
      o->b[o->n++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
      v >>= 7;
    }
  while (v);
}

static void
put_bytes (struct buf *o, unsigned field, const void *p, size_t len)
{
  assert_true (o->n + len + 12 < sizeof (o->b));
  put_varint (o, (field << 3) | 2);
  put_varint (o, len);
  memcpy (o->b + o->n, p, len);
  o->n += len;
}

static void
put_str (struct buf *o, unsigned field, const char *s)
{
  put_bytes (o, field, s, strlen (s));
}

static void
put_msg (struct buf *o, unsigned field, const struct buf *m)
{
  put_bytes (o, field, m->b, m->n);
}

/* file name, package, imports (NULL-terminated), one message `Outer` with a
 * nested `Inner` (field `x`), and a service `Svc` with method `Do`. */
static void
make_file (struct buf *set, const char *name, const char *pkg, const char *const *imports)
{
  struct buf file = { 0 }, outer = { 0 }, inner = { 0 }, field = { 0 }, svc = { 0 }, method = { 0 };

  put_str (&field, 1, "x");
  put_str (&inner, 1, "Inner");
  put_msg (&inner, 2, &field);
  put_str (&outer, 1, "Outer");
  put_msg (&outer, 3, &inner);
  put_str (&method, 1, "Do");
  put_str (&svc, 1, "Svc");
  put_msg (&svc, 2, &method);
  put_str (&file, 1, name);
  put_str (&file, 2, pkg);
  for (; imports && *imports; imports++)
    put_str (&file, 3, *imports);
  put_msg (&file, 4, &outer);
  put_msg (&file, 6, &svc);
  put_msg (set, 1, &file);
}

static Grpc__Reflection__V1alpha__ServerReflectionResponse *
ask (struct reflection *r, Grpc__Reflection__V1alpha__ServerReflectionRequest *req)
{
  struct ate_error *err = NULL;
  uint8_t in[512], *out = NULL;
  size_t in_len = grpc__reflection__v1alpha__server_reflection_request__pack (req, in), out_len = 0;
  Grpc__Reflection__V1alpha__ServerReflectionResponse *resp;

  assert_int_equal (reflection_answer (r, in, in_len, &out, &out_len, &err), 0);
  resp = grpc__reflection__v1alpha__server_reflection_response__unpack (NULL, out_len, out);
  free (out);
  assert_non_null (resp);
  return resp;
}

static Grpc__Reflection__V1alpha__ServerReflectionResponse *
ask_symbol (struct reflection *r, const char *symbol)
{
  Grpc__Reflection__V1alpha__ServerReflectionRequest req
      = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case
      = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  req.file_containing_symbol = (char *) symbol;
  return ask (r, &req);
}

/* The names of the files answered, space-separated, or "error N". */
static char *
answer_names (Grpc__Reflection__V1alpha__ServerReflectionResponse *resp)
{
  char *out = xstrdup ("");

  if (resp->message_response_case
      == GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE)
    {
      free (out);
      out = xasprintf ("error %d", resp->error_response->error_code);
    }
  else
    for (size_t i = 0; i < resp->file_descriptor_response->n_file_descriptor_proto; i++)
      {
        const ProtobufCBinaryData *f = &resp->file_descriptor_response->file_descriptor_proto[i];
        /* field 1 (name) comes first in our files */
        assert_true (f->len > 2 && f->data[0] == 0x0a);
        char *next = xasprintf ("%s%s%.*s", out, i ? " " : "", (int) f->data[1], f->data + 2);
        free (out);
        out = next;
      }
  grpc__reflection__v1alpha__server_reflection_response__free_unpacked (resp, NULL);
  return out;
}

static void
expect_symbol (struct reflection *r, const char *symbol, const char *files)
{
  cleanup_free char *got = answer_names (ask_symbol (r, symbol));
  if (strcmp (got, files) != 0)
    fail_msg ("%s: got \"%s\", want \"%s\"", symbol, got, files);
}

static void
test_symbols_and_imports (void **state)
{
  (void) state;
  static const char *const a_imports[] = { "b.proto", "c.proto", "missing.proto", NULL };
  static const char *const bc_imports[] = { "d.proto", NULL };
  struct buf set = { 0 };
  struct reflection *r;

  make_file (&set, "a.proto", "pa", a_imports);
  make_file (&set, "b.proto", "pb", bc_imports);
  make_file (&set, "c.proto", "pc.sub", bc_imports);
  make_file (&set, "d.proto", "pd", NULL);
  r = reflection_new (set.b, set.n, NULL, 0);

  /* A diamond of imports: each file once, the requested one first; an
   * import missing from the set is left out. */
  expect_symbol (r, "pa.Outer", "a.proto b.proto c.proto d.proto");
  expect_symbol (r, "pb.Outer.Inner", "b.proto d.proto");
  expect_symbol (r, "pb.Outer.Inner.x", "b.proto d.proto");
  expect_symbol (r, "pc.sub.Svc", "c.proto d.proto");
  expect_symbol (r, "pc.sub.Svc.Do", "c.proto d.proto");
  expect_symbol (r, "pd.Outer", "d.proto");
  expect_symbol (r, "pc.Outer", "error 5");
  expect_symbol (r, "pc.sub", "error 5");
  expect_symbol (r, "pd.Outer.Inner.y", "error 5");
  expect_symbol (r, "pd.Outer.Inn", "error 5");
  expect_symbol (r, "pd.Svc.Do.x", "error 5");
  expect_symbol (r, "pd.OuterX", "error 5");
  reflection_free (r);
}

static void
test_services_and_malformed (void **state)
{
  (void) state;
  static const struct rpc_method methods[] = {
    { .path = "/a.A/X" }, { .path = "/a.A/Y" }, { .path = "/b.B/X" }, { .path = "bogus" },
  };
  struct reflection *r = reflection_new (ate_served_descriptors, ate_served_descriptors_len, methods,
                                         ATE_N_ELEMENTS (methods));
  Grpc__Reflection__V1alpha__ServerReflectionRequest req
      = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  Grpc__Reflection__V1alpha__ServerReflectionResponse *resp;
  struct ate_error *err = NULL;
  uint8_t *out = NULL;
  size_t out_len, n;
  const struct rpc_method *m;

  req.message_request_case = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  req.list_services = (char *) "";
  resp = ask (r, &req);
  assert_int_equal (resp->list_services_response->n_service, 4);
  assert_string_equal (resp->list_services_response->service[0]->name, "a.A");
  assert_string_equal (resp->list_services_response->service[1]->name, "b.B");
  assert_string_equal (resp->list_services_response->service[2]->name,
                       "grpc.reflection.v1.ServerReflection");
  assert_string_equal (resp->list_services_response->service[3]->name,
                       "grpc.reflection.v1alpha.ServerReflection");
  grpc__reflection__v1alpha__server_reflection_response__free_unpacked (resp, NULL);

  m = reflection_methods (r, &n);
  assert_int_equal (n, 2);
  assert_true (m[0].stream && m[1].stream);

  /* The embedded set has the served protos. */
  expect_symbol (r, "ateom.Ateom.RestoreWorkload", "ateom.proto");
  expect_symbol (r, "grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto");

  assert_true (reflection_answer (r, (const uint8_t *) "\x22\x64" "abc", 5, &out, &out_len, &err) < 0);
  assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
  ate_error_release (&err);
  reflection_free (r);
}

/* A corrupt descriptor set answers NOT_FOUND instead of reading past it. */
static void
test_truncated_set (void **state)
{
  (void) state;
  struct buf set = { 0 };
  struct reflection *r;

  make_file (&set, "a.proto", "pa", NULL);
  for (size_t cut = 0; cut < set.n; cut++)
    {
      uint8_t *copy = xmalloc (cut + 1);
      memcpy (copy, set.b, cut);
      r = reflection_new (copy, cut, NULL, 0);
      cleanup_free char *got = answer_names (ask_symbol (r, "pa.Outer.Inner.x"));
      assert_true (strcmp (got, "error 5") == 0 || strcmp (got, "a.proto") == 0);
      reflection_free (r);
      free (copy);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_symbols_and_imports),
    cmocka_unit_test (test_services_and_malformed),
    cmocka_unit_test (test_truncated_set),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
