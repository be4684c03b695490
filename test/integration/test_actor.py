# SPDX-License-Identifier: Apache-2.0
"""Run, Checkpoint and Restore end to end on the simulator (issue 7): memory
continuity across two cycles in the personality given by
ATE_CH_PERSONALITY, reset to golden, cross-node restore, the state machine,
log forwarding, faults with leak accounting, restart safety."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

from actorenv import Pod, sh
from ateomtest import need_root, main, SANITIZED

PERSONALITY = os.environ.get("ATE_CH_PERSONALITY", "v52.0")
NS, TMPL = "default", "counter-microvm"
SNAPSHOT_FILES = ["base-id", "config.json", "memory-ranges", "state.json"]
TIMEOUT = 120 if SANITIZED else 60


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


class PodTest(unittest.TestCase):
    pods = []

    def pod(self, **kw):
        kw.setdefault("personality", PERSONALITY)
        p = Pod(**kw)
        self.pods.append(p)
        return p.start()

    def tearDown(self):
        while self.pods:
            self.pods.pop().cleanup()

    def assert_clean(self, pod, baseline):
        """Nothing of an activation is left once it is gone."""
        deadline = time.time() + 10
        while time.time() < deadline:
            now = pod.snapshot_state()
            if now["sims"] == 0 and now["links"] == baseline["links"] \
                    and now["tables"] == baseline["tables"] and now["mounts"] == baseline["mounts"]:
                break
            time.sleep(0.1)
        now = pod.snapshot_state()
        self.assertEqual(now["sims"], 0, "ch-sim processes left: %s" % [
            open("/proc/%d/status" % p).read().split("\n")[:3] for p in pod.sim_pids()])
        self.assertEqual(now["links"], baseline["links"])
        self.assertEqual(now["tables"], baseline["tables"])
        self.assertEqual(now["mounts"], baseline["mounts"])
        self.assertLessEqual(now["fds"], baseline["fds"] + 2, "fds leaked: %s" % now)

    def cycle(self, pod, actor, store, containers=("counter",)):
        files = pod.checkpoint(NS, TMPL, actor, timeout=TIMEOUT)
        pod.ship(NS, TMPL, actor, files, store)
        pod.unship(store, NS, TMPL, actor, containers)
        pod.restore(NS, TMPL, actor, containers, timeout=TIMEOUT)
        return files


class ContinuityTest(PodTest):
    def test_count_continues_across_two_cycles(self):
        pod = self.pod()
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        store = tempfile.mkdtemp(dir=pod.server.tmp)
        files = self.cycle(pod, "a1", store + "/1")
        self.assertEqual(files, SNAPSHOT_FILES)
        with open(os.path.join(store, "1", "base-id"), "rb") as f:
            self.assertEqual(f.read(), b"a1")
        self.assertEqual(pod.count(), 2)
        # The second cycle checkpoints a restored VM: after an OnDemand
        # restore its snapshot is a delta that must be merged.
        files = self.cycle(pod, "a1", store + "/2")
        self.assertEqual(files, SNAPSHOT_FILES)
        # Through the pod IP and the DNAT rule, from another namespace.
        self.assertEqual(pod.count(via="dnat"), 3)
        pod.checkpoint(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assert_clean(pod, baseline)
        log = pod.server.log()
        for event in ("Actor starting", "Actor started", "Actor checkpointing",
                      "Actor checkpointed", "Actor restoring", "Actor restored"):
            self.assertIn('"message":"%s"' % event, log)
        self.assertIn('"msg":"RestoreWorkload timings"', log)


if __name__ == "__main__":
    need_root(None)
    main()
