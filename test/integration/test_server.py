# SPDX-License-Identifier: Apache-2.0
"""The server as atelet sees it, through two independent clients (Python
grpcio and grpc-go): health, validation errors naming the field, unknown
methods, malformed messages, deadlines, shutdown."""

import os
import signal
import threading
import time
import unittest

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ateomtest import (need_root, Server, go_client, have_go_client, run_request, ateom_pb2, main,
                       bin_path, SANITIZED)
import health_pb2  # noqa: E402  (generated; ateomtest puts it on the path)
import reflection_pb2 as R  # noqa: E402
import subprocess

ASSETS = {"kata-kernel": "/k", "kata-image": "/i", "cloud-hypervisor": "/ch",
          "kata-config": "/c"}


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server().start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        log = cls.srv.log()
        cls.srv.cleanup()
        if rc != 0:
            raise AssertionError("server exited %s:\n%s" % (rc, log))

    def expect_code(self, fn, code, needle=None):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        if needle:
            self.assertIn(needle, cm.exception.details())
        return cm.exception

    def test_socket_mode_and_health(self):
        st = os.stat(self.srv.socket)
        self.assertEqual(st.st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.dirname(self.srv.socket)).st_mode & 0o777, 0o700)
        self.assertEqual(self.srv.health(), "SERVING")
        self.assertEqual(self.srv.health("ateom.Ateom"), "SERVING")
        self.expect_code(lambda: self.srv.health("nope"), grpc.StatusCode.NOT_FOUND)

    def test_invalid_ids_name_the_field(self):
        cases = [
            (dict(actor="../x"), "actor_id"),
            (dict(actor="a/b"), "actor_id"),
            (dict(actor=""), "actor_id is required"),
            (dict(ns="../../etc"), "actor_template_namespace"),
            (dict(tmpl="x/.."), "actor_template_name"),
            (dict(actor="A" * 70), "actor_id"),
            (dict(containers=()), "actor spec has no containers"),
            (dict(containers=("ok", "ok")), "used twice"),
            (dict(containers=("pause",)), "pause"),
            (dict(assets={"kata-kernel": "/k"}), "lacks required microvm assets: kata-image"),
            (dict(assets=dict(ASSETS, **{"kata-image": "rel/img"})), "not an absolute path"),
            (dict(assets=dict(ASSETS, **{"kata-image": "/a/../../etc/shadow"})), "`..`"),
        ]
        for kw, needle in cases:
            kw.setdefault("assets", ASSETS)
            req = run_request(**kw)
            with self.subTest(kw=kw):
                self.expect_code(lambda: self.srv.call("RunWorkload", req),
                                 grpc.StatusCode.INVALID_ARGUMENT, needle)

    def test_any_asset_name_atelet_forwards_is_accepted(self):
        # atelet forwards every asset name of the SandboxConfig; the CRD does
        # not constrain them.  Unknown ones pass validation (the call then
        # fails later only because no bundle was prepared) and are logged
        # once per name.
        odd = {"gpu firmware": "/f", "caf\u00e9-blob": "relative/ok", "k" * 200: "/x"}
        odd.update(("extra-%d" % i, "/e%d" % i) for i in range(40))
        req = run_request(actor="assets", assets=dict(ASSETS, **odd))
        for _ in range(2):
            with self.assertRaises(grpc.RpcError) as cm:
                self.srv.call("RunWorkload", req)
            self.assertNotEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT,
                                cm.exception.details())
        time.sleep(0.1)
        ignored = [r.get("asset") for r in self.srv.log_records()
                   if r.get("msg", "").startswith("runtime asset ignored")]
        self.assertEqual(sorted(ignored), sorted(odd))
        # Known names are still checked.
        req = run_request(actor="assets", assets=dict(ASSETS, **dict(odd, **{"kata-image": "i"})))
        self.expect_code(lambda: self.srv.call("RunWorkload", req),
                         grpc.StatusCode.INVALID_ARGUMENT, 'runtime_asset_paths["kata-image"]')

    def test_too_many_containers_is_unimplemented(self):
        req = run_request(containers=["c%d" % i for i in range(26)], assets=ASSETS)
        self.expect_code(lambda: self.srv.call("RunWorkload", req),
                         grpc.StatusCode.UNIMPLEMENTED, "at most 25 containers, got 26")

    def test_readyz_validation(self):
        req = run_request(assets=ASSETS)
        req.spec.containers[0].readyz.http_get.port = 0
        self.expect_code(lambda: self.srv.call("RunWorkload", req),
                         grpc.StatusCode.INVALID_ARGUMENT, "readyz.http_get.port 0")

    def test_checkpoint_and_restore_validate_too(self):
        req = run_request(actor="..", cls=ateom_pb2.CheckpointWorkloadRequest)
        self.expect_code(lambda: self.srv.call("CheckpointWorkload", req),
                         grpc.StatusCode.INVALID_ARGUMENT, "actor_id")
        req = run_request(containers=(), cls=ateom_pb2.RestoreWorkloadRequest)
        self.expect_code(lambda: self.srv.call("RestoreWorkload", req),
                         grpc.StatusCode.INVALID_ARGUMENT, "no containers")

    def test_nul_bytes_are_invalid_argument(self):
        # protobuf-c cuts a C string at its first NUL: "a1\0../../etc" would
        # run a1.  Every string field is checked on the wire bytes.
        def with_readyz(req):
            req.spec.containers[0].readyz.http_get.port = 8080
            req.spec.containers[0].readyz.http_get.path = "/ok\0/x"
            return req
        cases = [
            ("RunWorkload", run_request(actor="a1\0../../etc", assets=ASSETS), "actor_id"),
            ("RunWorkload", run_request(ns="default\0x", assets=ASSETS),
             "actor_template_namespace"),
            ("RunWorkload", run_request(tmpl="t\0x", assets=ASSETS), "actor_template_name"),
            ("RunWorkload", run_request(containers=("c\0x",), assets=ASSETS),
             "spec.containers.name"),
            ("RunWorkload", run_request(assets=dict(ASSETS, **{"kata-kernel": "/etc/passwd\0x"})),
             "runtime_asset_paths.value"),
            ("RunWorkload", run_request(assets=dict(ASSETS, **{"kata-kernel\0x": "/k"})),
             "runtime_asset_paths.key"),
            ("RunWorkload", with_readyz(run_request(assets=ASSETS)),
             "spec.containers.readyz.http_get.path"),
            ("CheckpointWorkload",
             run_request(actor="a1\0evil", cls=ateom_pb2.CheckpointWorkloadRequest), "actor_id"),
            ("RestoreWorkload",
             run_request(actor="a1\0evil", assets=ASSETS, cls=ateom_pb2.RestoreWorkloadRequest),
             "actor_id"),
        ]
        for method, req, field in cases:
            with self.subTest(method=method, field=field):
                self.expect_code(lambda: self.srv.call(method, req),
                                 grpc.StatusCode.INVALID_ARGUMENT, field + " contains a NUL byte")
        self.expect_code(lambda: self.srv.health("\0ateom.Ateom"), grpc.StatusCode.INVALID_ARGUMENT,
                         "service contains a NUL byte")

    def test_unknown_method_is_unimplemented_at_once(self):
        t0 = time.time()
        self.expect_code(lambda: self.srv.call_raw("/ateom.Ateom/Nope", b"", timeout=20),
                         grpc.StatusCode.UNIMPLEMENTED, "unknown method /ateom.Ateom/Nope")
        self.expect_code(lambda: self.srv.call_raw("/other.Svc/X", b"", timeout=20),
                         grpc.StatusCode.UNIMPLEMENTED)
        self.assertLess(time.time() - t0, 5)

    def test_malformed_message(self):
        # Field 3 (actor_id) declared as a 100-byte string but truncated.
        self.expect_code(lambda: self.srv.call_raw(
            "/ateom.Ateom/RunWorkload", b"\x1a\x64abc"), grpc.StatusCode.INVALID_ARGUMENT,
            "malformed RunWorkloadRequest")

    def test_oversized_message_rejected(self):
        big = run_request(assets=dict(ASSETS, extra="/" + "x" * (5 << 20)))
        self.expect_code(lambda: self.srv.call("RunWorkload", big),
                         grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_elapsed_trailer_and_log_record(self):
        req = run_request(actor="..", assets=ASSETS)
        with self.srv.channel() as ch:
            fn = ch.unary_unary("/ateom.Ateom/RunWorkload",
                                request_serializer=ateom_pb2.RunWorkloadRequest.SerializeToString,
                                response_deserializer=ateom_pb2.RunWorkloadResponse.FromString)
            with self.assertRaises(grpc.RpcError) as cm:
                fn(req, timeout=10)
            trailers = dict(cm.exception.trailing_metadata())
        self.assertIn("x-server-elapsed-us", trailers)
        self.assertTrue(trailers["x-server-elapsed-us"].isdigit())
        time.sleep(0.1)
        recs = [r for r in self.srv.log_records() if r.get("msg") == "Handle RPC"]
        self.assertTrue(recs)
        last = recs[-1]
        for key in ("time", "level", "method", "code", "elapsed_ms"):
            self.assertIn(key, last)

    def test_concurrent_calls(self):
        errors = []

        def worker():
            try:
                for _ in range(20):
                    self.assertEqual(self.srv.health(), "SERVING")
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        ts = [threading.Thread(target=worker) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])

    @unittest.skipUnless(have_go_client(), "grpc-go client not built (go missing)")
    def test_go_client(self):
        r = go_client(self.srv.socket, "health")
        self.assertEqual(r["code"], "OK")
        self.assertEqual(r["response"]["status"], "SERVING")
        r = go_client(self.srv.socket, "run", "-namespace", "default", "-template", "t",
                      "-actor", "../x", "-container", "c")
        self.assertEqual(r["code"], "InvalidArgument")
        self.assertIn("actor_id", r["message"])
        r = go_client(self.srv.socket, "checkpoint", "-namespace", "default", "-template", "t",
                      "-actor", "A")
        self.assertEqual(r["code"], "InvalidArgument")
        r = go_client(self.srv.socket, "restore", "-namespace", "default", "-template", "t",
                      "-actor", "a1")
        self.assertEqual(r["code"], "InvalidArgument")
        self.assertIn("no containers", r["message"])
        r = go_client(self.srv.socket, "/ateom.Ateom/Nope", timeout="20s")
        self.assertEqual(r["code"], "Unimplemented")
        self.assertLess(r["elapsed_ms"], 5000)

    def test_ateomctl(self):
        out = subprocess.run([bin_path("ateomctl"), "--socket", self.srv.socket, "health"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertEqual(out.stdout.strip(), "SERVING")
        out = subprocess.run([bin_path("ateomctl"), "--socket", self.srv.socket, "run",
                              "--namespace", "default", "--template", "t", "--actor", "x/y",
                              "--container", "c", "--asset", "kata-kernel=/k",
                              "--asset", "kata-image=/i"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 3, out.stderr)
        self.assertIn("INVALID_ARGUMENT: actor_id", out.stderr)
        out = subprocess.run([bin_path("ateomctl"), "--socket", "/nonexistent/sock",
                              "--timeout", "2s", "health"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 14, out.stderr)
        out = subprocess.run([bin_path("ateomctl"), "bogus-command", "--socket", "/x"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 64)


class HalfSentCallsTest(unittest.TestCase):
    """Calls whose request message never completes must neither lock out
    health checks nor hold their slots for longer than the receive bound."""

    def test_half_sent_calls_are_bounded_and_health_has_a_reserve(self):
        srv = Server().start()
        stop = threading.Event()
        channels = []
        try:
            def never():
                # The request stream stays open and empty: headers go out,
                # the message never does.
                stop.wait()
                return
                yield  # pragma: no cover
            futures = []
            for _ in range(4):
                ch = grpc.insecure_channel("unix:" + srv.socket,
                                           options=[("grpc.use_local_subchannel_pool", 1)])
                channels.append(ch)
                fn = ch.stream_unary("/ateom.Ateom/RunWorkload",
                                     request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
                futures += [fn.future(never()) for _ in range(75)]
            t0 = time.time()
            time.sleep(1.5)
            # 300 half-sent calls: the 256 slots are full, health is not.
            for _ in range(3):
                self.assertEqual(srv.health(timeout=5), "SERVING")
            self.assertEqual(srv.health("ateom.Ateom", timeout=5), "SERVING")
            codes = {}
            for f in futures:
                try:
                    f.result(timeout=max(1, 25 - (time.time() - t0)))
                    codes["OK"] = codes.get("OK", 0) + 1
                except grpc.RpcError as e:
                    codes[e.code().name] = codes.get(e.code().name, 0) + 1
                    if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        self.assertIn("request message not received in time", e.details())
            elapsed = time.time() - t0
            # Every stalled call was ended by the server's bound (10 s), not
            # earlier and not by a client deadline (there is none).
            self.assertGreaterEqual(codes.get("DEADLINE_EXCEEDED", 0), 256, codes)
            self.assertEqual(set(codes) - {"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}, set(),
                             codes)
            self.assertGreater(elapsed, 9)
            self.assertLess(elapsed, 20)
            # The slots are free again.
            req = run_request(actor="..", assets=ASSETS)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.call("RunWorkload", req, timeout=5)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("request message not received in time", srv.log())
        finally:
            stop.set()
            for ch in channels:
                ch.close()
            rc = srv.stop()
            log = srv.log()
            srv.cleanup()
            self.assertEqual(rc, 0, log)


class StartupTest(unittest.TestCase):
    def test_flags(self):
        exe = bin_path("ateom-microvm")
        out = subprocess.run([exe, "--help"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        for flag in ("--pod-uid", "--cloud-hypervisor-binary", "--kata-config", "--kata-debug",
                     "--version", "--base-path", "--run-dir", "--config", "ATEOM_MICROVM_CONFIG"):
            self.assertIn(flag, out.stdout)
        out = subprocess.run([exe, "--version"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"^\S+ commit=\S+ built=\S+ linux/\S+\n$")
        out = subprocess.run([exe], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)
        self.assertIn("--pod-uid is required", out.stderr)
        out = subprocess.run([exe, "--bogus"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)

    def test_stale_socket_replaced_and_regular_file_too(self):
        srv = Server()
        try:
            os.makedirs(os.path.dirname(srv.socket))
            with open(srv.socket, "w") as f:
                f.write("stale")
            srv.start()
            self.assertEqual(srv.health(), "SERVING")
            self.assertEqual(srv.stop(), 0)
            self.assertFalse(os.path.exists(srv.socket))
        finally:
            srv.cleanup()

    def test_sigterm_stops_cleanly(self):
        # An idle server stops at once on SIGTERM: exit 0, socket removed,
        # later calls refused.  (A Run in flight during SIGTERM is tested
        # end to end in test_actor.py ShutdownTest.)
        srv = Server(extra_args=["--shutdown-grace=1"]).start()
        try:
            self.assertEqual(srv.health(), "SERVING")
            t0 = time.time()
            self.assertEqual(srv.stop(signal.SIGTERM), 0)
            self.assertLess(time.time() - t0, 5)
            self.assertIn('"msg":"stopped"', srv.log())
            self.assertFalse(os.path.exists(srv.socket))
            with self.assertRaises(grpc.RpcError) as cm:
                srv.health(timeout=2)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        finally:
            srv.cleanup()

REFLECTION = ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
              "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
SERVICES = ["ateom.Ateom", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"]


class ReflectionTest(unittest.TestCase):
    """gRPC server reflection, as grpcurl uses it: a client that knows no
    .proto file lists the services, fetches their descriptors and calls them."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server().start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        log = cls.srv.log()
        cls.srv.cleanup()
        if rc != 0:
            raise AssertionError("server exited %s:\n%s" % (rc, log))

    def reflect(self, requests, path=REFLECTION[0], timeout=10):
        with self.srv.channel() as ch:
            fn = ch.stream_stream(path, request_serializer=R.ServerReflectionRequest.SerializeToString,
                                  response_deserializer=R.ServerReflectionResponse.FromString)
            return list(fn(iter(requests), timeout=timeout))

    def files(self, response):
        self.assertEqual(response.WhichOneof("message_response"), "file_descriptor_response",
                         response)
        out = []
        for blob in response.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto()
            fd.ParseFromString(blob)
            out.append(fd)
        return out

    def test_list_services_on_both_versions(self):
        for path in REFLECTION:
            with self.subTest(path=path):
                [r] = self.reflect([R.ServerReflectionRequest(host="h", list_services="*")], path)
                self.assertEqual(r.valid_host, "h")
                self.assertEqual(r.original_request.list_services, "*")
                self.assertEqual(sorted(s.name for s in r.list_services_response.service), SERVICES)

    def test_descriptors_are_those_of_the_protos(self):
        # protoc's Python output leaves out the json_name of fields; the
        # descriptor set keeps them.  Otherwise they must be the same.
        def without_json_names(fd):
            def strip(msgs):
                for m in msgs:
                    for f in m.field:
                        f.ClearField("json_name")
                    strip(m.nested_type)
            strip(fd.message_type)
            return fd

        for request, module in ((dict(file_by_filename="ateom.proto"), ateom_pb2),
                                (dict(file_containing_symbol="grpc.health.v1.Health"), health_pb2)):
            [r] = self.reflect([R.ServerReflectionRequest(**request)])
            [got] = self.files(r)
            want = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
            self.assertEqual(without_json_names(got), want)

    def test_symbols(self):
        cases = {
            "ateom.Ateom": "ateom.proto",
            "ateom.Ateom.RunWorkload": "ateom.proto",
            "ateom.RunWorkloadRequest": "ateom.proto",
            "ateom.RunWorkloadRequest.actor_id": "ateom.proto",
            "ateom.RunWorkloadRequest.RuntimeAssetPathsEntry": "ateom.proto",
            "grpc.health.v1.HealthCheckResponse.ServingStatus": "health.proto",
            "grpc.health.v1.HealthCheckResponse.SERVING": "health.proto",
            "grpc.reflection.v1.ServerReflectionRequest.message_request":
                "grpc/reflection/v1/reflection.proto",
            "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo":
                "grpc/reflection/v1alpha/reflection.proto",
        }
        names = list(cases)
        responses = self.reflect([R.ServerReflectionRequest(file_containing_symbol=n) for n in names])
        self.assertEqual(len(responses), len(names))
        for name, r in zip(names, responses):
            with self.subTest(symbol=name):
                # Answers come in request order.
                self.assertEqual(r.original_request.file_containing_symbol, name)
                self.assertEqual(self.files(r)[0].name, cases[name])

    def test_unknown_names_are_not_found(self):
        reqs = [R.ServerReflectionRequest(file_containing_symbol=n)
                for n in ("ateom", "ateom.Nope", "ateom.Ateom.Nope", "ateom.Ateom.RunWorkload.x",
                          "ateom.RunWorkloadRequestX", "grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING",
                          "", ".ateom.Ateom")]
        reqs.append(R.ServerReflectionRequest(file_by_filename="nope.proto"))
        reqs.append(R.ServerReflectionRequest(file_containing_extension=R.ExtensionRequest(
            containing_type="ateom.RunWorkloadRequest", extension_number=100)))
        reqs.append(R.ServerReflectionRequest(all_extension_numbers_of_type="ateom.Ateom"))
        for req, r in zip(reqs, self.reflect(reqs)):
            with self.subTest(req=str(req)):
                self.assertEqual(r.WhichOneof("message_response"), "error_response", r)
                self.assertEqual(r.error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
                self.assertIn("not found", r.error_response.error_message)
        [r] = self.reflect([R.ServerReflectionRequest(host="only")])
        self.assertEqual(r.error_response.error_code, grpc.StatusCode.INVALID_ARGUMENT.value[0])

    def test_extension_numbers(self):
        [r] = self.reflect([R.ServerReflectionRequest(
            all_extension_numbers_of_type="ateom.RunWorkloadRequest")])
        self.assertEqual(r.all_extension_numbers_response.base_type_name, "ateom.RunWorkloadRequest")
        self.assertEqual(list(r.all_extension_numbers_response.extension_number), [])

    def test_malformed_request_ends_the_stream(self):
        with self.srv.channel() as ch:
            fn = ch.stream_stream(REFLECTION[1], request_serializer=lambda b: b,
                                  response_deserializer=lambda b: b)
            with self.assertRaises(grpc.RpcError) as cm:
                list(fn(iter([b"\x22\x64abc"]), timeout=10))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("malformed ServerReflectionRequest", cm.exception.details())
        self.assertEqual(self.srv.health(), "SERVING")

    def test_client_without_protos_calls_the_server(self):
        """What grpcurl does: descriptors from reflection only, dynamic
        messages, real calls."""
        [r] = self.reflect([R.ServerReflectionRequest(list_services="")])
        services = [s.name for s in r.list_services_response.service]
        pool = descriptor_pool.DescriptorPool()
        added = set()
        for r in self.reflect([R.ServerReflectionRequest(file_containing_symbol=s) for s in services]):
            # Imports first, as a descriptor pool needs them.
            for fd in reversed(self.files(r)):
                if fd.name not in added:
                    pool.Add(fd)
                    added.add(fd.name)
        for name in services:
            self.assertTrue(pool.FindServiceByName(name).methods)
        factory = message_factory.MessageFactory(pool)
        check = pool.FindServiceByName("grpc.health.v1.Health").FindMethodByName("Check")
        run = pool.FindServiceByName("ateom.Ateom").FindMethodByName("RunWorkload")
        req_t, resp_t = (factory.GetPrototype(check.input_type),
                         factory.GetPrototype(check.output_type))
        with self.srv.channel() as ch:
            fn = ch.unary_unary("/%s/%s" % (check.containing_service.full_name, check.name),
                                request_serializer=req_t.SerializeToString,
                                response_deserializer=resp_t.FromString)
            resp = fn(req_t(service="ateom.Ateom"), timeout=10)
            self.assertEqual(check.output_type.fields_by_name["status"].enum_type
                             .values_by_number[resp.status].name, "SERVING")
            req_t = factory.GetPrototype(run.input_type)
            fn = ch.unary_unary("/%s/%s" % (run.containing_service.full_name, run.name),
                                request_serializer=req_t.SerializeToString,
                                response_deserializer=lambda b: b)
            req = req_t(actor_template_namespace="default", actor_template_name="t", actor_id="../x")
            req.spec.containers.add(name="c")
            with self.assertRaises(grpc.RpcError) as cm:
                fn(req, timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("actor_id", cm.exception.details())

    def test_open_streams_are_bounded_and_do_not_block_rpcs(self):
        release = threading.Event()

        def idle():
            yield R.ServerReflectionRequest(list_services="")
            release.wait(30)

        with self.srv.channel() as ch:
            fn = ch.stream_stream(REFLECTION[0],
                                  request_serializer=R.ServerReflectionRequest.SerializeToString,
                                  response_deserializer=R.ServerReflectionResponse.FromString)
            streams = [fn(idle(), timeout=30) for _ in range(8)]
            try:
                for st in streams:
                    next(st)  # each is open and answered
                with self.assertRaises(grpc.RpcError) as cm:
                    list(fn(iter([R.ServerReflectionRequest(list_services="")]), timeout=10))
                self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
                self.assertIn("too many streams", cm.exception.details())
                self.assertEqual(self.srv.health(), "SERVING")
            finally:
                release.set()
                for st in streams:
                    self.assertEqual(list(st), [])
        # The slots are free again.
        [r] = self.reflect([R.ServerReflectionRequest(list_services="")])
        self.assertEqual(len(r.list_services_response.service), len(SERVICES))


class ConfigFileTest(unittest.TestCase):
    """The server configured by files, as an operator does on a cluster."""

    def write(self, path, text, mode=0o644):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)

    def serving_record(self, srv):
        recs = [r for r in srv.log_records() if r.get("msg") == "serving"]
        return recs[0] if recs else None

    def test_node_file_under_base_path(self):
        srv = Server()
        try:
            node = os.path.join(srv.base, "ateom-microvm", "config")
            self.write(node, "# node settings\nlog-level = debug\nshutdown-grace = 1\n")
            srv.start()
            self.assertEqual(srv.health(), "SERVING")
            self.assertEqual(self.serving_record(srv)["config"], node)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_named_file_and_command_line_wins(self):
        srv = Server()
        try:
            cfg = os.path.join(srv.tmp, "ateom.conf")
            self.write(cfg, "log-level = warn\n", 0o600)
            # From the environment: warn hides the "serving" record.
            srv.env["ATEOM_MICROVM_CONFIG"] = cfg
            srv.start()
            self.assertEqual(srv.health(), "SERVING")
            self.assertIsNone(self.serving_record(srv))
            self.assertEqual(srv.stop(), 0)
            # --config names it too; the command line's --log-level wins.
            del srv.env["ATEOM_MICROVM_CONFIG"]
            srv.extra_args = ["--config", cfg, "--log-level=info"]
            srv.start()
            self.assertEqual(self.serving_record(srv)["config"], cfg)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()

    def test_bad_file_stops_start_up_naming_file_and_line(self):
        srv = Server()
        try:
            cfg = os.path.join(srv.tmp, "ateom.conf")
            cases = [
                ("log-level = info\nmetrics = on\n", cfg + ':2: unknown key "metrics"'),
                ("\nrootfs-cache-size = lots\n", cfg + ':2: --rootfs-cache-size: bad size'),
                ("pod-uid = other\n", cfg + ":1: pod-uid can only be given on the command line"),
            ]
            for text, needle in cases:
                with self.subTest(text=text):
                    self.write(cfg, text)
                    out = subprocess.run(srv.argv() + ["--config=" + cfg], capture_output=True,
                                         text=True, timeout=60)
                    self.assertEqual(out.returncode, 2, out.stderr)
                    self.assertIn(needle, out.stderr)
            self.write(cfg, "log-level = info\n", 0o666)
            out = subprocess.run(srv.argv() + ["--config=" + cfg], capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(out.returncode, 2, out.stderr)
            self.assertIn("not writable by group or others", out.stderr)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    need_root()
    main()
