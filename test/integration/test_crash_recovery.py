# SPDX-License-Identifier: Apache-2.0
"""Crash recovery converges from every kill point (issue 15): the server is
SIGKILLed (ATE_TEST_KILL_AT, runtime/util/killpoint.h) after every step of
Run, Checkpoint and Restore that its timings records name, and between
vm.shutdown and the VMM's exit; it is restarted, the interrupted call is
retried to success, the actor's whole cycle completes, and nothing leaks
(processes, links, nftables tables, mounts, temporary files)."""

import os
import time

import grpc

from actorenv import Pod
from ateomtest import main
from test_actor import NS, TMPL, PERSONALITY, SNAPSHOT_FILES, PodTest

RPCS = ("RunWorkload", "CheckpointWorkload", "RestoreWorkload")


class CrashRecoveryTest(PodTest):
    def cycle(self, pod, on_call=None):
        """Run, Checkpoint, Restore, Checkpoint of a1; every call is retried
        through server deaths (on_call restarts the server)."""
        store = os.path.join(pod.server.tmp, "store")

        def call(fn):
            for attempt in range(4):
                try:
                    return fn()
                except grpc.RpcError as e:
                    if pod.server.proc.poll() is None:
                        if attempt < 3:
                            time.sleep(0.2)
                            continue
                        raise
                    on_call(e)
            self.fail("no success after 4 attempts")

        pod.prepare(NS, TMPL, "a1")
        call(lambda: pod.run(NS, TMPL, "a1"))
        self.assertEqual(pod.count(), 1)
        files = call(lambda: pod.checkpoint(NS, TMPL, "a1"))
        self.assertEqual(files, SNAPSHOT_FILES)
        pod.ship(NS, TMPL, "a1", files, store)
        pod.unship(store, NS, TMPL, "a1")
        call(lambda: pod.restore(NS, TMPL, "a1", unpack=False))
        self.assertEqual(pod.count(), 2)
        files = call(lambda: pod.checkpoint(NS, TMPL, "a1"))
        self.assertEqual(files, SNAPSHOT_FILES)

    def steps(self):
        pod = self.pod()
        self.cycle(pod)
        points = set()
        for r in pod.server.log_records():
            for rpc in RPCS:
                if r.get("msg") == rpc + " timings":
                    points.add(rpc + "/start")
                    points.update(rpc + "/" + k[:-3] for k in r["steps"])
        pod.cleanup()
        self.pods.remove(pod)
        return sorted(points) + ["vmm/vm_shutdown"]

    def leftovers(self, pod):
        out = []
        for dirpath, dirnames, filenames in os.walk(pod.base):
            for n in dirnames + filenames:
                if ".tmp" in n or n.endswith(".staging"):
                    out.append(os.path.join(dirpath, n))
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open("/proc/%s/cmdline" % p, "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                if b"mkfs" in cmd and pod.server.tmp.encode() in cmd:
                    out.append("mkfs pid %s" % p)
        return out

    def test_every_kill_point_converges(self):
        points = self.steps()
        # Every RPC has steps beyond "start" (the enumeration is real).
        for rpc in RPCS:
            self.assertGreater(len([p for p in points if p.startswith(rpc + "/")]), 3, points)
        for point in points:
            with self.subTest(point=point):
                once = "/tmp/ate-kill-once-%d-%s" % (os.getpid(), point.replace("/", "-"))
                if os.path.exists(once):
                    os.unlink(once)
                pod = self.pod(env={"ATE_TEST_KILL_AT": point, "ATE_TEST_KILL_ONCE": once})
                baseline = pod.snapshot_state()
                deaths = []

                def restart(e):
                    deaths.append(e.code())
                    pod.server.proc.wait()
                    pod.server._log.close()
                    pod.server.proc = None
                    pod.server.start()

                self.cycle(pod, on_call=restart)
                self.assertTrue(os.path.exists(once), "kill point %s never reached" % point)
                self.assertEqual(len(deaths), 1, deaths)
                self.assertIn("test kill point reached", pod.server.log())
                self.assert_clean(pod, dict(baseline, fds=10 ** 6))
                self.assertEqual(self.leftovers(pod), [])
                os.unlink(once)
                pod.cleanup()
                self.pods.remove(pod)


if __name__ == "__main__":
    main()
