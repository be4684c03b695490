# SPDX-License-Identifier: Apache-2.0
"""Run, Checkpoint and Restore end to end on the simulator (issue 7): memory
continuity across two cycles in the personality given by
ATE_CH_PERSONALITY, reset to golden, cross-node restore, the state machine,
log forwarding, faults with leak accounting, restart safety."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

from actorenv import FromFile, Pod, sh
from ateomtest import need_root, main, SANITIZED, go_client, have_go_client, ateom_pb2

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
        record = os.path.join(tempfile.mkdtemp(prefix="ate-rec-"), "record.jsonl")
        pod = self.pod(env={"CH_SIM_RECORD": record})
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
        # Every request the server sent, against the real OpenAPI document
        # of this cloud-hypervisor version (skipped without the reference
        # copies of ATE_SHARED_DIR).
        r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "ch",
                                                         "check_openapi.py"), "--record", record],
                           capture_output=True, text=True)
        shutil.rmtree(os.path.dirname(record), ignore_errors=True)
        if r.returncode != 77:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class GoldenTest(PodTest):
    def write_disk_marker(self, pod, actor):
        out = pod.console(actor, 'echo written-after-restore > /tmp/ate-marker-$$ && '
                          'debugfs -w -R "write /tmp/ate-marker-$$ marker" '
                          '"$ATE_SIM_ROOTFS_DISK" && rm -f /tmp/ate-marker-$$')
        self.assertIn("Allocated inode", out)

    def disk_ls(self, pod, actor):
        return pod.console(actor, 'debugfs -R "ls -l /" "$ATE_SIM_ROOTFS_DISK" 2>/dev/null')

    def test_reset_to_golden(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        golden = os.path.join(pod.server.tmp, "golden")
        pod.ship(NS, TMPL, "a1", pod.checkpoint(NS, TMPL, "a1"), golden)
        tmpl = os.path.join(pod.base, "golden-disks", "%s:%s:a1.ext4" % (NS, TMPL))
        self.assertTrue(os.path.exists(tmpl), "lineage template missing")
        self.assertTrue(os.path.exists(os.path.join(pod.actor_dir(NS, TMPL, "a1"),
                                                    "golden-rootfs.ext4")))
        # Restore #1 writes into its rootfs.
        pod.unship(golden, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 2)
        self.write_disk_marker(pod, "a1")
        self.assertIn("marker", self.disk_ls(pod, "a1"))
        pod.ship(NS, TMPL, "a1", pod.checkpoint(NS, TMPL, "a1"), golden + "-later")
        # Restore #2 from the golden snapshot: the disk is golden again (the
        # simulated guest refuses to resume on any other disk), memory too.
        pod.unship(golden, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertNotIn("marker", self.disk_ls(pod, "a1"))
        self.assertEqual(pod.count(), 2)
        pod.checkpoint(NS, TMPL, "a1")

    def test_other_actor_of_the_lineage_resets_to_the_same_template(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "golden")
        pod.run(NS, TMPL, "golden", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        store = os.path.join(pod.server.tmp, "g")
        pod.ship(NS, TMPL, "golden", pod.checkpoint(NS, TMPL, "golden"), store)
        for actor in ("b1", "b2"):
            pod.unship(store, NS, TMPL, actor)
            pod.restore(NS, TMPL, actor, timeout=TIMEOUT)
            self.assertEqual(pod.count(), 2)
            pod.checkpoint(NS, TMPL, actor)
        self.assertIn('"template":"%s"' % os.path.join(
            pod.base, "golden-disks", "%s:%s:golden.ext4" % (NS, TMPL)), pod.server.log())


class CrossNodeTest(PodTest):
    def golden_on_a(self, extra_args=()):
        a = self.pod(extra_args=extra_args)
        a.prepare(NS, TMPL, "g1")
        a.run(NS, TMPL, "g1", timeout=TIMEOUT)
        self.assertEqual(a.count(), 1)
        store = os.path.join(a.server.tmp, "store")
        files = a.checkpoint(NS, TMPL, "g1")
        a.ship(NS, TMPL, "g1", files, store)
        return a, store, files

    def test_restore_on_another_node_rebuilds_the_same_disk(self):
        _, store, files = self.golden_on_a()
        self.assertEqual(files, SNAPSHOT_FILES)
        # The bundle on the other node is unpacked at another time: directory
        # times differ, the rebuilt disk must not.
        time.sleep(1.1)
        b = self.pod()
        b.unship(store, NS, TMPL, "c1")
        b.restore(NS, TMPL, "c1", timeout=TIMEOUT)
        self.assertEqual(b.count(), 2)
        self.assertIn('"origin":"built"', b.server.log())
        b.checkpoint(NS, TMPL, "c1")

    def test_shipped_golden_disk_is_used_on_the_other_node(self):
        _, store, files = self.golden_on_a(extra_args=["--ship-golden-disk"])
        self.assertEqual(files, ["base-id", "config.json", "golden-rootfs.ext4",
                                 "memory-ranges", "state.json"])
        b = self.pod()
        b.unship(store, NS, TMPL, "c1")
        b.restore(NS, TMPL, "c1", timeout=TIMEOUT)
        self.assertEqual(b.count(), 2)
        log = b.server.log()
        self.assertIn("rootfs disk reset to golden", log)
        self.assertNotIn('"origin":"built"', log)


class StateMachineTest(PodTest):
    def test_one_actor_per_worker(self):
        # The one test whose bundles keep pinned times (an unpack that
        # preserves them); everything else unpacks as atelet does.
        pod = self.pod(pinned_times=True)
        pod.prepare(NS, TMPL, "a1")
        pod.prepare(NS, TMPL, "a2")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        # A retried Run of the same actor converges.
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        code, msg = code_of(lambda: pod.checkpoint(NS, TMPL, "a2"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("is not running here (another actor is executing", msg)
        self.assertNotIn("a1", msg)
        self.assertEqual(pod.count(), 1)
        files = pod.checkpoint(NS, TMPL, "a1")
        # A retried checkpoint (the upload failed) gets the same files ...
        self.assertEqual(pod.checkpoint(NS, TMPL, "a1"), files)
        # ... until atelet resets the actor's directories.
        pod.reset_actor_dirs(NS, TMPL, "a1")
        code, msg = code_of(lambda: pod.checkpoint(NS, TMPL, "a1"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("no actor is executing", msg)

    def test_cancelled_run_rolls_back(self):
        # A caller without a deadline that gives up while the Run waits for
        # readiness: the Run stops there and rolls back everything.
        pod = self.pod()
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        with pod.server.channel() as ch:
            fn = ch.unary_unary("/ateom.Ateom/RunWorkload",
                                request_serializer=ateom_pb2.RunWorkloadRequest.SerializeToString,
                                response_deserializer=ateom_pb2.RunWorkloadResponse.FromString)
            req = pod.request(ateom_pb2.RunWorkloadRequest, NS, TMPL, "a1",
                              readyz={"counter": (81, "/never")})
            fut = fn.future(req)
            deadline = time.time() + 20
            while time.time() < deadline and "Starting counter server" not in pod.server.log():
                time.sleep(0.05)
            fut.cancel()
            t0 = time.time()
            recs = []
            while time.time() < t0 + 5 and not recs:
                time.sleep(0.05)
                recs = [r for r in pod.server.log_records() if r.get("msg") == "Handle RPC"]
        self.assertTrue(recs, "the cancel was not noticed")
        self.assertEqual(recs[0]["code"], "CANCELLED", recs[0])
        self.assertLess(time.time() - t0, 3)
        self.assert_clean(pod, baseline)
        # The worker takes the retry.
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        pod.checkpoint(NS, TMPL, "a1")

    def test_worker_freed_while_an_actor_is_held(self):
        # ateapi frees a worker whose actor it no longer counts on (a stale
        # assignment released, a suspend finalised after a failed
        # checkpoint) and assigns it to another actor: that Run or Restore
        # proceeds, the held actor is stopped without a checkpoint.
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        pod.prepare("team-b", "secret-tmpl", "b7")
        pod.run("team-b", "secret-tmpl", "b7", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        self.assertIn("RunWorkload of another actor", pod.server.log())
        code, msg = code_of(lambda: pod.checkpoint(NS, TMPL, "a1"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        for secret in ("team-b", "secret-tmpl", "b7"):
            self.assertNotIn(secret, msg)
        # ... and a Restore of another actor likewise.
        store = os.path.join(pod.server.tmp, "s")
        pod.ship("team-b", "secret-tmpl", "b7", pod.checkpoint("team-b", "secret-tmpl", "b7"),
                 store)
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        pod.unship(store, "team-b", "secret-tmpl", "b7")
        pod.restore("team-b", "secret-tmpl", "b7", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 2)
        pod.checkpoint("team-b", "secret-tmpl", "b7")


    def test_restore_without_snapshot_files(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        code, msg = code_of(lambda: pod.restore(NS, TMPL, "a1"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("config.json is missing", msg)

    def test_run_without_bundle(self):
        pod = self.pod()
        pod.reset_actor_dirs(NS, TMPL, "a1")
        baseline = pod.snapshot_state()
        code, msg = code_of(lambda: pod.run(NS, TMPL, "a1"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("has no rootfs", msg)
        self.assert_clean(pod, baseline)

    def test_lock_wait_honours_the_deadline(self):
        pod = self.pod(boot_ms=3000)
        pod.prepare(NS, TMPL, "a1")
        t = threading.Thread(target=lambda: pod.run(NS, TMPL, "a1", timeout=TIMEOUT))
        t.start()
        time.sleep(0.5)
        t0 = time.time()
        code, msg = code_of(lambda: pod.checkpoint(NS, TMPL, "a1", timeout=1))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.time() - t0, 2.5)
        t.join()
        # The holder is named in our log only, never to another caller.
        self.assertIn('"holder":"RunWorkload for default/counter-microvm/a1"', pod.server.log())
        pod.checkpoint(NS, TMPL, "a1")

    def test_lock_wait_notices_a_cancel_without_deadline(self):
        # A caller without a deadline that gives up (grpc-go cancels its
        # context) is noticed while it queues, not when the holder is done.
        pod = self.pod(boot_ms=3000)
        pod.prepare(NS, TMPL, "a1")
        t = threading.Thread(target=lambda: pod.run(NS, TMPL, "a1", timeout=TIMEOUT))
        t.start()
        time.sleep(0.5)
        with pod.server.channel() as ch:
            fn = ch.unary_unary("/ateom.Ateom/CheckpointWorkload",
                                request_serializer=ateom_pb2.CheckpointWorkloadRequest.SerializeToString,
                                response_deserializer=ateom_pb2.CheckpointWorkloadResponse.FromString)
            fut = fn.future(pod.request(ateom_pb2.CheckpointWorkloadRequest, NS, TMPL, "a1"))
            time.sleep(0.3)
            fut.cancel()
            deadline = time.time() + 1.5
            recs = []
            while time.time() < deadline and not recs:
                time.sleep(0.05)
                recs = [r for r in pod.server.log_records() if r.get("msg") == "Handle RPC"
                        and r.get("method") == "/ateom.Ateom/CheckpointWorkload"]
        self.assertTrue(recs, "the cancelled call was not noticed while the Run held the worker")
        self.assertEqual(recs[0]["code"], "CANCELLED")
        self.assertTrue(t.is_alive())
        t.join()
        pod.checkpoint(NS, TMPL, "a1")


class RestoreRetryTest(PodTest):
    """ateapi's resume workflow calls Restore again for the same actor on
    the same worker when it failed after our Restore succeeded (its final
    store update, or a reply that lost the race with its deadline); atelet
    first removes restore-state and downloads the snapshot again."""

    def test_retried_restore_converges(self):
        pod = self.pod()
        store = os.path.join(pod.server.tmp, "s")
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        pod.ship(NS, TMPL, "a1", pod.checkpoint(NS, TMPL, "a1"), store)
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 2)
        # The retry: same snapshot, unpacked again.  It runs, restored from
        # that snapshot, and is not restored twice (the count goes on).
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 3)
        self.assertIn("actor already running from this snapshot", pod.server.log())
        # It holds across a server restart too (the state file keeps it).
        pod.restart(signal.SIGKILL)
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 4)
        # A Restore from another snapshot restarts it from that one.
        newer = os.path.join(pod.server.tmp, "s2")
        pod.ship(NS, TMPL, "a1", pod.checkpoint(NS, TMPL, "a1"), newer)
        pod.unship(newer, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 5)
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 2)  # from the first snapshot again
        self.assertIn("restarting it from the requested snapshot", pod.server.log())
        pod.checkpoint(NS, TMPL, "a1")

    def test_retry_without_the_snapshot_keeps_the_actor(self):
        pod = self.pod()
        store = os.path.join(pod.server.tmp, "s")
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        pod.ship(NS, TMPL, "a1", pod.checkpoint(NS, TMPL, "a1"), store)
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        pod.reset_actor_dirs(NS, TMPL, "a1")  # a download that never came
        code, msg = code_of(lambda: pod.restore(NS, TMPL, "a1"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertEqual(pod.count(), 2)
        # atelet removed restore-state, which the VM pages its memory from,
        # and never placed it again; a checkpoint still completes (the
        # server keeps its own link to that memory) and restores.
        self.assertIn("OnDemand", pod.server.log())
        files = pod.checkpoint(NS, TMPL, "a1")
        newer = os.path.join(pod.server.tmp, "s2")
        pod.ship(NS, TMPL, "a1", files, newer)
        self.assertFalse(os.path.exists(os.path.join(pod.actor_dir(NS, TMPL, "a1"),
                                                     "restore-base.memory-ranges")))
        pod.unship(newer, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 3)
        pod.checkpoint(NS, TMPL, "a1")


class MtuTest(PodTest):
    """A pod network below 1500 (GKE's 1460): every guest keeps the 1500 a
    reference-made snapshot has frozen in, the host side carries it, and
    the pod namespace routes to the pod MTU, clamping TCP."""

    def link_mtu(self, pod, name):
        return json.loads(sh("ip", "-n", pod.netns, "-j", "link", "show", name).stdout)[0]["mtu"]

    def check(self, pod):
        self.assertEqual(self.link_mtu(pod, "eth0"), 1460)
        self.assertEqual(self.link_mtu(pod, "ateom0"), 1500)
        self.assertIn("mtu 1500", pod.console("a1", "ip -o link show eth0"))
        table = sh("ip", "netns", "exec", pod.netns, "nft", "list", "table", "ip",
                   "ateom_actor").stdout
        self.assertIn("maxseg size set rt mtu", table)

    def test_pod_mtu_1460(self):
        pod = self.pod(mtu=1460)
        store = os.path.join(pod.server.tmp, "s")
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        self.check(pod)
        self.assertEqual(pod.count(via="pod"), 1)
        pod.ship(NS, TMPL, "a1", pod.checkpoint(NS, TMPL, "a1"), store)
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.check(pod)
        self.assertEqual(pod.count(via="pod"), 2)
        pod.checkpoint(NS, TMPL, "a1")


class MessagesTest(PodTest):
    """atenet shows FAILED_PRECONDITION messages to an actor's HTTP
    clients: no failure we can provoke names a host path or another
    tenant's actor."""

    OTHER = ("team-b", "secret-tmpl", "b7")

    def assert_clean_message(self, pod, code, msg, want_code):
        self.assertEqual(code, want_code, msg)
        for leak in [pod.server.tmp, "/run/", "/var/lib", "/tmp/"] + list(self.OTHER):
            self.assertNotIn(leak, msg)

    def test_no_host_paths_or_other_actors_in_messages(self):
        pod = self.pod(boot_ms=1500)
        fp = grpc.StatusCode.FAILED_PRECONDITION
        cases = []
        # A bundle atelet did not prepare.
        pod.reset_actor_dirs(NS, TMPL, "a1")
        cases.append((code_of(lambda: pod.run(NS, TMPL, "a1")), fp))
        # No snapshot, a garbled one, a virtio-fs one.
        pod.prepare(NS, TMPL, "a1")
        cases.append((code_of(lambda: pod.restore(NS, TMPL, "a1")), fp))
        rs = os.path.join(pod.actor_dir(NS, TMPL, "a1"), "restore-state")
        with open(os.path.join(rs, "config.json"), "w") as f:
            f.write("{not json")
        cases.append((code_of(lambda: pod.restore(NS, TMPL, "a1")), fp))
        with open(os.path.join(rs, "config.json"), "w") as f:
            json.dump({"cpus": {}, "memory": {}, "payload": {},
                       "fs": [{"tag": "kataShared", "socket": "/run/vc/vm/a1/vfsd.sock"}]}, f)
        with open(os.path.join(rs, "state.json"), "w") as f:
            f.write("{}")
        code, msg = code_of(lambda: pod.restore(NS, TMPL, "a1"))
        self.assertIn("virtio-fs format", msg)
        cases.append(((code, msg), fp))
        # Another tenant's actor holds the worker: a checkpoint of ours, and
        # a call that waits for the worker past its deadline.
        pod.prepare(*self.OTHER)
        pod.run(*self.OTHER, timeout=TIMEOUT)
        cases.append((code_of(lambda: pod.checkpoint(NS, TMPL, "a1")), fp))
        pod.prepare(NS, TMPL, "a2")
        slow = threading.Thread(target=lambda: code_of(lambda: pod.run(NS, TMPL, "a2",
                                                                          timeout=TIMEOUT)))
        slow.start()
        time.sleep(0.3)
        cases.append((code_of(lambda: pod.checkpoint(NS, TMPL, "a1", timeout=0.5)),
                      grpc.StatusCode.DEADLINE_EXCEEDED))
        slow.join()
        # An asset the server must read that is not there.
        req = pod.request(ateom_pb2.RunWorkloadRequest, NS, TMPL, "a3")
        req.runtime_asset_paths["kata-config"] = os.path.join(pod.server.tmp, "no-such.toml")
        pod.prepare(NS, TMPL, "a3")
        code, msg = code_of(lambda: pod.server.call("RunWorkload", req, timeout=TIMEOUT))
        self.assertNotEqual(code, grpc.StatusCode.OK)
        cases.append(((code, msg), code))
        for (code, msg), want in cases:
            with self.subTest(msg=msg):
                self.assert_clean_message(pod, code, msg, want)
        # The detail is in our log.
        self.assertIn(pod.server.tmp, pod.server.log())


class GoClientTest(PodTest):
    """The lifecycle driven by grpc-go, the stack atelet uses."""

    @unittest.skipUnless(have_go_client(), "grpc-go client not built (go missing)")
    def test_lifecycle_over_grpc_go(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "g1")
        flags = ["-namespace", NS, "-template", TMPL, "-actor", "g1", "-container", "counter",
                 "-readyz", "counter:80:/readyz"]
        flags += sum((["-asset", "%s=%s" % kv] for kv in pod.assets.items()), [])
        r = go_client(pod.server.socket, "run", *flags, timeout="60s")
        self.assertEqual(r["code"], "OK", r)
        self.assertEqual(pod.count(), 1)
        r = go_client(pod.server.socket, "checkpoint", *flags)
        self.assertEqual(r["code"], "OK", r)
        self.assertEqual(r["response"]["snapshot_files"], SNAPSHOT_FILES)
        store = os.path.join(pod.server.tmp, "s")
        pod.ship(NS, TMPL, "g1", SNAPSHOT_FILES, store)
        pod.unship(store, NS, TMPL, "g1")
        r = go_client(pod.server.socket, "restore", *flags, timeout="60s")
        self.assertEqual(r["code"], "OK", r)
        self.assertEqual(pod.count(), 2)
        # A retried Restore of the same snapshot converges: no second restore.
        pod.unship(store, NS, TMPL, "g1")
        r = go_client(pod.server.socket, "restore", *flags)
        self.assertEqual(r["code"], "OK", r)
        self.assertEqual(pod.count(), 3)
        pod.checkpoint(NS, TMPL, "g1")


class SeedTest(PodTest):
    """The seed's failure: a large image whose rootfs build outlives the
    RPC deadline.  The first Run times out while the build goes on; atelet
    then removes the bundle and unpacks it again (fresh times) before the
    retry, which takes the finished build, or joins the running one whose
    source was just deleted: one mkfs in all."""

    def big_image(self, pod):
        mib = 160 if SANITIZED else 320
        layer = os.path.join(pod.server.tmp, "model.bin")
        sh("dd", "if=/dev/urandom", "of=" + layer, "bs=1M", "count=%d" % mib, "status=none")
        return {"etc/os-release": "ID=ateom-test\n", "model.bin": FromFile(layer)}

    def run_times_out_then_retry(self, wait_for_build):
        pod = self.pod()
        baseline = pod.snapshot_state()
        pod.reset_actor_dirs(NS, TMPL, "big")
        pod.make_bundle(NS, TMPL, "big", "counter", files=self.big_image(pod))
        code, msg = code_of(lambda: pod.run(NS, TMPL, "big", timeout=0.5, unpack=False))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED, msg)
        if wait_for_build:
            deadline = time.time() + TIMEOUT
            while time.time() < deadline and "kept for the retry" not in pod.server.log() \
                    and '"origin":"built"' not in pod.server.log():
                time.sleep(0.1)
        # pod.run removes the bundle and unpacks it again first, as atelet
        # does before every Run.
        pod.run(NS, TMPL, "big", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        recs = pod.server.log_records()
        mkfs = [r for r in recs if r.get("msg") == "rootfs: running mkfs.ext4"]
        self.assertEqual(len(mkfs), 1, "one build in all: %s" % mkfs)
        ready = [r for r in recs if r.get("msg") == "rootfs disk ready"]
        pod.checkpoint(NS, TMPL, "big")
        self.assert_clean(pod, baseline)
        return ready[-1]

    def test_retry_after_the_build_finished(self):
        ready = self.run_times_out_then_retry(wait_for_build=True)
        self.assertEqual(ready["origin"], "reused", ready)

    def test_retry_joins_the_running_build(self):
        # The build started from the first unpack, which the retry's unpack
        # deleted: it must not depend on it.
        ready = self.run_times_out_then_retry(wait_for_build=False)
        self.assertIn(ready["origin"], ("built", "reused"), ready)
        self.assertTrue(ready["joined"] == "true" or ready["origin"] == "reused", ready)


class ShutdownTest(PodTest):
    def test_sigterm_lets_the_inflight_run_finish(self):
        pod = self.pod(boot_ms=1500)
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        result = []
        t = threading.Thread(target=lambda: result.append(
            code_of(lambda: pod.run(NS, TMPL, "a1", timeout=TIMEOUT))))
        t.start()
        time.sleep(0.5)
        t0 = time.time()
        self.assertEqual(pod.server.stop(signal.SIGTERM), 0)
        t.join()
        self.assertEqual(result[0][0], grpc.StatusCode.OK, result[0][1])
        self.assertGreater(time.time() - t0, 0.5)
        log = pod.server.log()
        self.assertIn("stopping an actor that was not checkpointed", log)
        self.assertIn('"msg":"stopped"', log)
        self.assertEqual(len(pod.sim_pids()), 0)
        r = sh("ip", "netns", "list", check=False).stdout
        self.assertNotIn("ateom:" + pod.server.pod_uid, r)
        self.assertEqual(pod.links(), [l for l in baseline["links"] if l.startswith("atepod")])


class LogTest(PodTest):
    def test_container_output_is_forwarded_with_labels(self):
        pod = self.pod()
        ctrs = ("counter", "talker")
        pod.reset_actor_dirs(NS, TMPL, "a1")
        pod.make_bundle(NS, TMPL, "a1", "counter")
        pod.make_bundle(NS, TMPL, "a1", "talker", args=(
            "/bin/sh", "-c", 'echo plain line; echo \'{"msg":"json line","n":12345678901234567890}\'; '
            'echo to-stderr >&2; echo null; sleep 600'))
        pod.run(NS, TMPL, "a1", containers=ctrs, timeout=TIMEOUT)
        deadline = time.time() + 10
        want = {"plain line", "to-stderr", "null"}
        while time.time() < deadline:
            recs = [r for r in pod.server.log_records() if "labels" in r]
            seen = {r.get("message") for r in recs}
            if want <= seen and any(r.get("msg") == "json line" for r in recs):
                break
            time.sleep(0.1)
        recs = [r for r in pod.server.log_records() if "labels" in r]
        talker = [r for r in recs if r["labels"].get("ate.dev/container_name") == "talker"]
        self.assertTrue(want <= {r.get("message") for r in talker}, talker)
        j = [r for r in talker if r.get("msg") == "json line"][0]
        self.assertEqual(j["labels"]["ate.dev/actor_id"], "a1")
        self.assertEqual(j["labels"]["ate.dev/actor_template_namespace"], NS)
        self.assertEqual(j["labels"]["ate.dev/actor_template_name"], TMPL)
        self.assertIn("time", j)
        # Numbers are forwarded exactly as written.
        self.assertIn('"n":12345678901234567890', pod.server.log())
        self.assertEqual(pod.count(), 1)
        # Two containers: two disks, and both survive a cycle.
        store = os.path.join(pod.server.tmp, "s")
        files = pod.checkpoint(NS, TMPL, "a1")
        pod.ship(NS, TMPL, "a1", files, store)
        pod.reset_actor_dirs(NS, TMPL, "a1")
        pod.make_bundle(NS, TMPL, "a1", "counter")
        pod.make_bundle(NS, TMPL, "a1", "talker", args=("/bin/sh", "-c", "sleep 600"))
        dst = os.path.join(pod.actor_dir(NS, TMPL, "a1"), "restore-state")
        for f in files:
            sh("cp", "--sparse=always", os.path.join(store, f), os.path.join(dst, f))
        pod.restore(NS, TMPL, "a1", containers=ctrs, timeout=TIMEOUT)
        self.assertEqual(pod.count(), 2)
        self.assertTrue(os.path.exists(os.path.join(pod.base, "golden-disks",
                                                    "%s:%s:a1:talker.ext4" % (NS, TMPL))))
        pod.checkpoint(NS, TMPL, "a1")


class ReadyzTest(PodTest):
    def test_readiness_gates_run_and_restore(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", readyz={"counter": (80, "/readyz")}, timeout=TIMEOUT)
        self.assertIn('"readyz_ms"', pod.server.log())
        self.assertEqual(pod.count(), 1)
        store = os.path.join(pod.server.tmp, "s")
        pod.ship(NS, TMPL, "a1", pod.checkpoint(NS, TMPL, "a1"), store)
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", readyz={"counter": (80, "readyz")}, timeout=TIMEOUT)
        self.assertEqual(pod.count(), 2)
        pod.checkpoint(NS, TMPL, "a1")


# A web app whose probe path redirects, as common frameworks do (a
# trailing-slash 301, then a 307 to an absolute URL built from the Host
# header), plus a redirect loop.  It runs as a real process in the
# simulated guest's network namespace.
REDIRECT_APP = r"""
import http.server, time
time.sleep(0.5)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = self.headers.get("Host", "")
        routes = {"/ready": (301, "/ready/"), "/ready/": (307, "http://%s/ok?from=%s" % (host, host)),
                  "/loop": (302, "/loop/"), "/loop/": (302, "http://%s/loop" % host)}
        if self.path.startswith("/ok"):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok\n"); return
        code, loc = routes.get(self.path, (404, None))
        self.send_response(code)
        if loc:
            self.send_header("Location", loc)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


class ReadyzRedirectTest(PodTest):
    def prepare_web(self, pod, actor):
        pod.prepare(NS, TMPL, actor)
        pod.make_bundle(NS, TMPL, actor, "web", args=("/usr/bin/python3", "-c", REDIRECT_APP))

    def test_probe_follows_redirect_chains(self):
        pod = self.pod()
        self.prepare_web(pod, "a1")
        ctrs = ("counter", "web")
        t0 = time.time()
        pod.run(NS, TMPL, "a1", containers=ctrs, timeout=TIMEOUT,
                readyz={"counter": (80, "/readyz"), "web": (8080, "/ready")})
        self.assertLess(time.time() - t0, 20)
        self.assertEqual(pod.count(), 1)
        pod.checkpoint(NS, TMPL, "a1")

    def test_redirect_loop_fails_clearly(self):
        pod = self.pod()
        baseline = pod.snapshot_state()
        self.prepare_web(pod, "a1")
        code, msg = code_of(lambda: pod.run(
            NS, TMPL, "a1", containers=("counter", "web"), timeout=4,
            readyz={"counter": (80, "/readyz"), "web": (8080, "/loop")}))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED, msg)
        time.sleep(1)
        self.assert_clean(pod, baseline)
        log = pod.server.log()
        self.assertIn("container web not ready: GET http://169.254.17.2:8080/loop", log)
        self.assertIn("redirect loop: HTTP 302 from http://169.254.17.2:8080/loop/ back to "
                      "http://169.254.17.2:8080/loop", log)


class FaultTest(PodTest):
    """Each fault ends with a clear status and nothing leaked; the worker
    takes the next call."""

    def recover_and_run(self, pod, actor="ok1"):
        pod.prepare(NS, TMPL, actor)
        pod.run(NS, TMPL, actor, timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        pod.checkpoint(NS, TMPL, actor)

    def test_agent_never_answers(self):
        pod = self.pod(boot_ms=3600 * 1000)
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        code, msg = code_of(lambda: pod.run(NS, TMPL, "a1", timeout=3))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED, msg)
        time.sleep(1)  # the handler finishes its rollback after the deadline
        self.assert_clean(pod, baseline)
        self.assertIn("connect to the kata agent", pod.server.log())

    def test_readiness_never_passes(self):
        pod = self.pod()
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        code, msg = code_of(lambda: pod.run(NS, TMPL, "a1", readyz={"counter": (81, "/")},
                                            timeout=4))
        self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED, msg)
        time.sleep(1)
        self.assert_clean(pod, baseline)
        self.assertIn("not ready: GET http://169.254.17.2:81/", pod.server.log())
        self.recover_and_run(pod)

    def test_deadline_in_every_step(self):
        pod = self.pod(boot_ms=300)
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        seen = set()
        for ms in (1, 20, 60, 120, 250, 400, 600, 900):
            code, msg = code_of(lambda: pod.run(NS, TMPL, "a1", timeout=ms / 1000.0))
            if code == grpc.StatusCode.OK:
                pod.checkpoint(NS, TMPL, "a1")
                pod.prepare(NS, TMPL, "a1")
                continue
            self.assertEqual(code, grpc.StatusCode.DEADLINE_EXCEEDED, msg)
            seen.add(ms)
            time.sleep(0.3)
            self.assert_clean(pod, baseline)
        self.assertGreaterEqual(len(seen), 4)
        # Retries converge: a Run with time to spare succeeds.
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        pod.checkpoint(NS, TMPL, "a1")
        self.assert_clean(pod, baseline)

    def test_vmm_killed_before_checkpoint(self):
        pod = self.pod()
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        for pid in pod.sim_pids():
            os.kill(pid, signal.SIGKILL)
        code, msg = code_of(lambda: pod.checkpoint(NS, TMPL, "a1"))
        # Not ABORTED: callers read that as "retry", and no retry can
        # take this snapshot; a retry gets the same answer.
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("VM exited before its checkpoint completed", msg)
        self.assertIn("restore the actor from its last snapshot", msg)
        self.assertEqual(code_of(lambda: pod.checkpoint(NS, TMPL, "a1")), (code, msg))
        self.assert_clean(pod, baseline)
        self.recover_and_run(pod)

    def test_vmm_killed_during_snapshot(self):
        # The simulator dies (SIGKILL) when the vm.snapshot request arrives.
        pod = self.pod(env={"CH_SIM_CRASH_ON": "vm.snapshot"})
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        code, msg = code_of(lambda: pod.checkpoint(NS, TMPL, "a1"))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("VM exited before its checkpoint completed", msg)
        self.assertIn("cloud-hypervisor exited during the checkpoint", pod.server.log())
        self.assertIn("vm.snapshot", pod.server.log())
        self.assertEqual(code_of(lambda: pod.checkpoint(NS, TMPL, "a1")), (code, msg))
        self.assert_clean(pod, baseline)
        # The worker takes the next actor (its VMMs crash only on snapshots).
        pod.prepare(NS, TMPL, "ok1")
        pod.run(NS, TMPL, "ok1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)

    def test_server_killed_between_checkpoint_and_restore(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        store = os.path.join(pod.server.tmp, "s")
        files = pod.checkpoint(NS, TMPL, "a1")
        pod.restart(signal.SIGKILL)
        # The checkpoint retried after the restart returns the same files.
        self.assertEqual(pod.checkpoint(NS, TMPL, "a1"), files)
        pod.ship(NS, TMPL, "a1", files, store)
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 2)
        pod.checkpoint(NS, TMPL, "a1")

    def test_server_killed_while_running_then_checkpoint(self):
        pod = self.pod()
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 1)
        pod.restart(signal.SIGKILL)
        self.assertIn("recovered a running actor after a restart", pod.server.log())
        self.assertEqual(pod.count(), 2)
        store = os.path.join(pod.server.tmp, "s")
        pod.ship(NS, TMPL, "a1", pod.checkpoint(NS, TMPL, "a1"), store)
        self.assert_clean(pod, dict(baseline, fds=pod.snapshot_state()["fds"]))
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
        self.assertEqual(pod.count(), 3)
        pod.checkpoint(NS, TMPL, "a1")

    def test_server_killed_and_vmm_gone(self):
        pod = self.pod()
        baseline = pod.snapshot_state()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        pod.server.proc.send_signal(signal.SIGKILL)
        pod.server.proc.wait()
        for pid in pod.sim_pids():
            os.kill(pid, signal.SIGKILL)
        pod.restart()
        self.assertIn("cleaning up after an actor whose VMM is gone", pod.server.log())
        self.assert_clean(pod, dict(baseline, fds=pod.snapshot_state()["fds"]))
        self.recover_and_run(pod)

    def test_sandbox_cleanup_failure_names_its_cause_once(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        # A stale sandbox directory under a read-only parent: the teardown
        # after the checkpoint cannot remove it.
        sandboxes = os.path.join(pod.kata_run, "shared", "sandboxes")
        os.makedirs(os.path.join(sandboxes, "a1", "left"), exist_ok=True)
        sh("mount", "--bind", sandboxes, sandboxes)
        try:
            sh("mount", "-o", "remount,bind,ro", sandboxes)
            pod.checkpoint(NS, TMPL, "a1")
        finally:
            sh("umount", "-l", sandboxes)
        warn = [r for r in pod.server.log_records() if r.get("msg") == "teardown after checkpoint"]
        self.assertEqual(len(warn), 1, warn)
        err = warn[0]["error"]
        self.assertIn("clean up the sandbox state: clean up stale state of sandbox a1", err)
        # The cause once, not repeated by every layer that passes it on.
        self.assertEqual(err.count("Read-only file system"), 1, err)
        self.recover_and_run(pod)


class CyclesTest(PodTest):
    def test_many_cycles_do_not_grow(self):
        n = int(os.environ.get("ATE_CYCLES", "30" if SANITIZED else "200"))
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        pod.run(NS, TMPL, "a1", timeout=TIMEOUT)
        store = os.path.join(pod.server.tmp, "s")
        pid = pod.server.pid
        samples = []
        t0 = time.time()
        for i in range(n):
            self.assertEqual(pod.count(), i + 1)
            shutil_store = store + str(i % 2)
            files = pod.checkpoint(NS, TMPL, "a1")
            pod.ship(NS, TMPL, "a1", files, shutil_store)
            pod.unship(shutil_store, NS, TMPL, "a1")
            pod.restore(NS, TMPL, "a1", timeout=TIMEOUT)
            sh("rm", "-rf", shutil_store)
            if i in (n // 10, n - 1):
                # Short-lived helpers (a rootfs job finishing, a background
                # network cleanup) come and go: take the quietest sample.
                states = []
                for _ in range(5):
                    states.append(pod.snapshot_state())
                    time.sleep(0.05)
                st = dict(states[0], fds=min(x["fds"] for x in states),
                          threads=min(x["threads"] for x in states))
                with open("/proc/%d/status" % pid) as f:
                    rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")][0]
                samples.append((i, st["fds"], st["threads"], rss))
        elapsed = time.time() - t0
        pod.checkpoint(NS, TMPL, "a1")
        (i0, fd0, th0, rss0), (i1, fd1, th1, rss1) = samples
        print("\n%d cycles in %.1f s (%.0f ms each); at %d: fds %d threads %d rss %d KiB; "
              "at %d: fds %d threads %d rss %d KiB" % (n, elapsed, 1000 * elapsed / n, i0, fd0,
                                                       th0, rss0, i1, fd1, th1, rss1))
        # One helper thread (a log pump starting, a rootfs job ending) may be
        # caught in either sample; a leak grows with the cycles.
        self.assertLessEqual(fd1, fd0)
        self.assertLessEqual(th1, th0 + 1)
        if not SANITIZED:  # ASan's quarantine and shadow memory grow by design
            self.assertLess(rss1 - rss0, 2048, "RSS grew by %d KiB" % (rss1 - rss0))


if __name__ == "__main__":
    need_root(None)
    main()
