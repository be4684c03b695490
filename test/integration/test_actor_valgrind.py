# SPDX-License-Identifier: Apache-2.0
"""The whole actor lifecycle with the server under valgrind: Run,
Checkpoint, Restore (OnDemand, so the next checkpoint merges), a retried
Restore that converges, Checkpoint, a Run its caller cancels, then SIGTERM.
No memory errors, no definite or indirect leaks."""

import os
import shutil
import signal
import time
import unittest

from actorenv import Pod
from ateomtest import need_root, main, ateom_pb2

VALGRIND = shutil.which("valgrind")
SUPP = os.path.join(os.environ.get("ATE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                    "test", "valgrind.supp")
NS, TMPL = "default", "counter-microvm"


@unittest.skipUnless(VALGRIND, "valgrind not installed")
class ActorValgrindTest(unittest.TestCase):
    def test_lifecycle(self):
        pod = Pod(valgrind=[VALGRIND, "--quiet", "--error-exitcode=99", "--leak-check=full",
                            "--errors-for-leak-kinds=definite,indirect",
                            "--show-leak-kinds=definite,indirect", "--num-callers=30",
                            "--suppressions=" + SUPP,
                            "--track-fds=no"])
        try:
            pod.server.start(timeout=180)
            pod.prepare(NS, TMPL, "a1")
            pod.run(NS, TMPL, "a1", readyz={"counter": (80, "/readyz")}, timeout=300)
            self.assertEqual(pod.count(), 1)
            store = os.path.join(pod.server.tmp, "s")
            pod.ship(NS, TMPL, "a1", pod.checkpoint(NS, TMPL, "a1", timeout=300), store)
            pod.unship(store, NS, TMPL, "a1")
            pod.restore(NS, TMPL, "a1", timeout=300)
            self.assertEqual(pod.count(), 2)
            pod.unship(store, NS, TMPL, "a1")
            pod.restore(NS, TMPL, "a1", timeout=300)  # the retry converges
            self.assertEqual(pod.count(), 3)
            pod.checkpoint(NS, TMPL, "a1", timeout=300)
            # A caller that gives up while the Run probes readiness.
            pod.prepare(NS, TMPL, "a2")
            with pod.server.channel() as ch:
                fn = ch.unary_unary(
                    "/ateom.Ateom/RunWorkload",
                    request_serializer=ateom_pb2.RunWorkloadRequest.SerializeToString,
                    response_deserializer=ateom_pb2.RunWorkloadResponse.FromString)
                fut = fn.future(pod.request(ateom_pb2.RunWorkloadRequest, NS, TMPL, "a2",
                                            readyz={"counter": (81, "/")}))
                deadline = time.time() + 120
                while time.time() < deadline and '"ate.dev/actor_id":"a2","ate.dev/actor_' \
                        'template_name":"counter-microvm","ate.dev/actor_template_namespace":' \
                        '"default","ate.dev/container_name":"counter"},"level":"INFO","msg":' \
                        '"Starting counter server' not in pod.server.log():
                    time.sleep(0.2)
                fut.cancel()
                while time.time() < deadline and '"code":"CANCELLED"' not in pod.server.log():
                    time.sleep(0.2)
            self.assertIn('"code":"CANCELLED"', pod.server.log())
            rc = pod.server.stop(signal.SIGTERM, timeout=300)
            log = pod.server.log()
            self.assertEqual(rc, 0, "valgrind/server exit %s:\n%s" % (rc, log[-8000:]))
            for bad in ("definitely lost", "indirectly lost", "Invalid read", "Invalid write",
                        "uninitialised", "Mismatched free"):
                self.assertNotIn(bad, log)
        finally:
            pod.cleanup()


if __name__ == "__main__":
    need_root()
    main()
