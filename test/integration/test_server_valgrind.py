# SPDX-License-Identifier: Apache-2.0
"""The server under valgrind: 1000 calls of every kind (valid health
checks, invalid requests, malformed messages, unknown methods, reflection
streams), then
SIGTERM while calls are still in flight.  No memory errors, no definite or
indirect leaks, exit status 0."""

import os
import shutil
import signal
import sys
import threading
import time
import unittest

import grpc

from ateomtest import need_root, Server, run_request, main, ateom_pb2

VALGRIND = shutil.which("valgrind")
SUPP = os.path.join(os.environ.get("ATE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                    "test", "valgrind.supp")


@unittest.skipUnless(VALGRIND, "valgrind not installed")
class ValgrindTest(unittest.TestCase):
    def test_1000_calls_then_shutdown_in_flight(self):
        srv = Server(valgrind=[VALGRIND, "--quiet", "--error-exitcode=99", "--leak-check=full",
                               "--errors-for-leak-kinds=definite,indirect",
                               "--show-leak-kinds=definite,indirect", "--num-callers=30",
                            "--suppressions=" + SUPP,
                               "--log-file=%s" % "/dev/stderr"],
                     extra_args=["--shutdown-grace=5"])
        srv.start(timeout=120)
        try:
            calls = [0]
            lock = threading.Lock()
            stop = threading.Event()

            def reflect():
                # list_services, file_containing_symbol, then a malformed
                # message that ends the stream.
                with srv.channel() as ch:
                    fn = ch.stream_stream(
                        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                        request_serializer=lambda b: b, response_deserializer=lambda b: b)
                    list(fn(iter([b"\x3a\x00", b"\x22\x0bateom.Ateom", b"\x22\x64x"]),
                            timeout=30))

            def one(i):
                k = i % 5
                try:
                    if k == 0:
                        srv.health(timeout=30)
                    elif k == 1:
                        srv.call("RunWorkload", run_request(actor="bad/id"), timeout=30)
                    elif k == 2:
                        srv.call_raw("/ateom.Ateom/RunWorkload", b"\x1a\x64x", timeout=30)
                    elif k == 3:
                        srv.call_raw("/ateom.Ateom/Unknown", b"", timeout=30)
                    else:
                        reflect()
                except grpc.RpcError:
                    pass

            def worker(base, n):
                for i in range(n):
                    one(base + i)
                    with lock:
                        calls[0] += 1

            ts = [threading.Thread(target=worker, args=(j * 250, 250)) for j in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(calls[0], 1000)

            # Calls in flight during shutdown.
            def busy():
                while not stop.is_set():
                    one(0)
                    one(1)
                    one(4)
            bs = [threading.Thread(target=busy) for _ in range(4)]
            for t in bs:
                t.start()
            time.sleep(0.5)
            rc = srv.stop(signal.SIGTERM, timeout=120)
            stop.set()
            for t in bs:
                t.join()
            log = srv.log()
            self.assertEqual(rc, 0, "valgrind/server exit %s:\n%s" % (rc, log[-6000:]))
            self.assertNotIn("definitely lost", log)
            self.assertNotIn("Invalid read", log)
            self.assertNotIn("Invalid write", log)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    need_root()
    main()
