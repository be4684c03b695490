# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for the integration tests: start the server on a private
base path, talk to it with grpcio (Python) and with the grpc-go client, and
check that nothing leaks.  Run with Debian's /usr/bin/python3."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("ATE_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
SOURCE = os.environ.get("ATE_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
BIN = os.path.join(BUILD, "bin")
sys.path.insert(0, os.path.join(BUILD, "generated", "python"))

import grpc  # noqa: E402
import ateom_pb2  # noqa: E402
import health_pb2  # noqa: E402

SANITIZED = os.environ.get("ATE_SANITIZED") == "1"

SERVICE = "/ateom.Ateom/"
METHODS = {
    "RunWorkload": (ateom_pb2.RunWorkloadRequest, ateom_pb2.RunWorkloadResponse),
    "CheckpointWorkload": (ateom_pb2.CheckpointWorkloadRequest,
                           ateom_pb2.CheckpointWorkloadResponse),
    "RestoreWorkload": (ateom_pb2.RestoreWorkloadRequest, ateom_pb2.RestoreWorkloadResponse),
}


def need_root(test=None):
    if os.geteuid() != 0:
        print("SKIP: needs root", file=sys.stderr)
        sys.exit(77)


def bin_path(name):
    return os.path.join(BIN, name)


class Server:
    """ateom-microvm on a private base path and run dir."""

    def __init__(self, pod_uid=None, extra_args=(), env=None, valgrind=None, base=None,
                 wrapper=("unshare", "--net")):
        self.tmp = tempfile.mkdtemp(prefix="ate-it-")
        self.base = base or os.path.join(self.tmp, "base")
        self.run_dir = os.path.join(self.tmp, "run")
        self.pod_uid = pod_uid or ("pod-%d" % os.getpid())
        self.socket = os.path.join(self.base, "ateoms", self.pod_uid, "ateom.sock")
        self.log_path = os.path.join(self.tmp, "server.log")
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, **(env or {}))
        self.valgrind = valgrind
        self.wrapper = list(wrapper or [])
        self.proc = None
        self._log = None

    def argv(self):
        argv = [bin_path("ateom-microvm"), "--pod-uid=" + self.pod_uid,
                "--base-path=" + self.base, "--run-dir=" + self.run_dir] + self.extra_args
        if self.valgrind:
            argv = self.valgrind + argv
        return self.wrapper + argv

    def start(self, timeout=60):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %d:\n%s" % (self.proc.returncode, self.log()))
            if os.path.exists(self.socket):
                try:
                    if self.health(timeout=2) == "SERVING":
                        return self
                except grpc.RpcError:
                    pass
            time.sleep(0.02)
        raise RuntimeError("server did not come up:\n" + self.log())

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_records(self):
        out = []
        for line in self.log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._log.close()
        self.proc = None
        return rc

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def channel(self):
        return grpc.insecure_channel("unix:" + self.socket)

    def call(self, method, request, timeout=30):
        req_t, resp_t = METHODS[method]
        with self.channel() as ch:
            fn = ch.unary_unary(SERVICE + method, request_serializer=req_t.SerializeToString,
                                response_deserializer=resp_t.FromString)
            return fn(request, timeout=timeout)

    def call_raw(self, path, payload, timeout=30):
        with self.channel() as ch:
            fn = ch.unary_unary(path, request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
            return fn(payload, timeout=timeout)

    def health(self, service="", timeout=10):
        with self.channel() as ch:
            fn = ch.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                response_deserializer=health_pb2.HealthCheckResponse.FromString)
            r = fn(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)


def go_client(socket_path, method, *args, timeout="30s"):
    """Run the grpc-go client; returns its JSON result."""
    exe = bin_path("ateom-go-client")
    out = subprocess.run([exe, "-socket", socket_path, "-method", method, "-timeout", timeout]
                         + list(args), capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError("ateom-go-client failed: %s" % out.stderr)
    return json.loads(out.stdout)


def have_go_client():
    return os.path.exists(bin_path("ateom-go-client"))


def run_request(ns="default", tmpl="counter-microvm", actor="a1", containers=("counter",),
                assets=None, cls=None):
    cls = cls or ateom_pb2.RunWorkloadRequest
    req = cls(actor_template_namespace=ns, actor_template_name=tmpl, actor_id=actor)
    for c in containers:
        req.spec.containers.add(name=c)
    for k, v in (assets or {}).items():
        req.runtime_asset_paths[k] = v
    return req


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    unittest.main(verbosity=2)
