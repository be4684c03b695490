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

from ateomtest import (need_root, Server, go_client, have_go_client, run_request, ateom_pb2, main,
                       bin_path, SANITIZED)
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
