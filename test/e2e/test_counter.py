#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The counter demo workload: start it on a free port, talk HTTP to it.

Checks what the demo relies on: the count lives in memory and increases by
one per request (1, 2, ...), /readyz answers ok without counting, the fshash
log line is the unpadded base64 SHA-256 of the 1 MiB random file, logs are
JSON lines, bad requests get a 400, SIGTERM stops it cleanly.

ATE_COUNTER_WRAPPER (e.g. "valgrind --error-exitcode=99 ...") runs the
binary under a wrapper.
"""
import base64
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

BUILD = os.environ.get("ATE_BUILD_DIR", "")
COUNTER = os.path.join(BUILD, "bin", "ate-counter")
WRAPPER = shlex.split(os.environ.get("ATE_COUNTER_WRAPPER", ""))
STARTUP_TIMEOUT = 30 if WRAPPER else 5
REPLY = re.compile(r"^hello from: (\d+\.\d+\.\d+\.\d+|x\.x\.x\.x|y\.y\.y\.y) "
                   r"\| preserved memory count: (\d+)\n$")


class CounterProcess:
    def __init__(self, tmpdir):
        self.random_file = os.path.join(tmpdir, "random-content-file")
        self.log_path = os.path.join(tmpdir, "counter.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            WRAPPER + [COUNTER, "--port", "0", "--random-file", self.random_file,
                       "--tick-seconds", "1"],
            stdout=self.log, stderr=subprocess.PIPE)
        self.port = self._wait_for_port()

    def lines(self):
        with open(self.log_path, "rb") as f:
            return [json.loads(l) for l in f.read().decode().splitlines() if l.strip()]

    def _wait_for_port(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            for entry in self.lines():
                if entry.get("msg") == "Readyz now reports OK":
                    starts = [e for e in self.lines() if e.get("msg") == "Starting counter server"]
                    return starts[0]["port"]
            if self.proc.poll() is not None:
                raise AssertionError("counter exited early: %s" % self.proc.stderr.read())
            time.sleep(0.05)
        raise AssertionError("counter did not become ready")

    def request(self, path, method="GET", data=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                     method=method, data=data)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            self.proc.stderr.close()
        return rc


class CounterTest(unittest.TestCase):
    def setUp(self):
        if not os.access(COUNTER, os.X_OK):
            self.fail("ate-counter not built at %s" % COUNTER)
        self.tmp = tempfile.TemporaryDirectory(prefix="ate-counter-test-")
        self.counter = CounterProcess(self.tmp.name)

    def tearDown(self):
        try:
            # Also catches valgrind's error exit code under the wrapper.
            self.assertEqual(self.counter.stop(), 0, self.counter.proc.stderr)
        finally:
            self.tmp.cleanup()

    def test_count_increments_per_request(self):
        status, body = self.counter.request("/", method="POST")
        self.assertEqual(status, 200)
        self.assertEqual(REPLY.match(body).group(2), "1", body)
        status, body = self.counter.request("/any/path?x=1")
        self.assertEqual(REPLY.match(body).group(2), "2", body)
        # A request body is read and ignored; the count still moves by one.
        status, body = self.counter.request("/", method="POST", data=b"x" * 10000)
        self.assertEqual(REPLY.match(body).group(2), "3", body)

    def test_readyz_does_not_count(self):
        self.assertEqual(self.counter.request("/readyz"), (200, "ok\n"))
        status, body = self.counter.request("/")
        self.assertEqual(REPLY.match(body).group(2), "1", body)

    def test_bad_request(self):
        with socket.create_connection(("127.0.0.1", self.counter.port), timeout=10) as s:
            s.sendall(b"garbage\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400 "))
        status, body = self.counter.request("/")
        self.assertEqual(REPLY.match(body).group(2), "1", body)

    def test_fshash_and_json_logs(self):
        with open(self.counter.random_file, "rb") as f:
            content = f.read()
        self.assertEqual(len(content), 1024 * 1024)
        want = base64.b64encode(hashlib.sha256(content).digest()).decode().rstrip("=")
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            counts = [e for e in self.counter.lines() if e.get("msg") == "Count"]
            if len(counts) >= 2:
                break
            time.sleep(0.1)
        self.assertGreaterEqual(len(counts), 2, "expected a Count line per tick")
        self.assertEqual([e["count"] for e in counts[:2]], [0, 1])
        for e in counts:
            self.assertEqual(e["fshash"], want)
            self.assertEqual(e["level"], "INFO")
            self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
        wrote = [e for e in self.counter.lines() if e.get("msg") == "Wrote content to random file"]
        self.assertEqual(wrote[0]["fshash"], want)

    def test_sigterm_exits_zero(self):
        self.counter.request("/")
        self.assertEqual(self.counter.stop(), 0)
        self.assertEqual(self.counter.lines()[-1]["msg"], "Counter server stopped")


class CounterUsageTest(unittest.TestCase):
    def test_bad_flags(self):
        for args in (["--port", "70000"], ["--tick-seconds", "0"], ["extra"]):
            r = subprocess.run([COUNTER] + args, capture_output=True)
            self.assertEqual(r.returncode, 2, args)

    def test_unwritable_random_file_fails_loudly(self):
        r = subprocess.run([COUNTER, "--port", "0", "--random-file", "/nonexistent-dir/f"],
                           capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"Error writing random file", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
