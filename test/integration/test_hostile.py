# SPDX-License-Identifier: Apache-2.0
"""Hostile input end to end (issue 15): assets, bundles and snapshots that
try to pick host files, block the server or confuse its errors.  Every case
ends in a clear status before anything runs, and the worker stays usable."""

import json
import os
import shutil
import signal
import time

import grpc

from actorenv import Pod, sh
from ateomtest import main
from test_actor import NS, TMPL, PERSONALITY, SNAPSHOT_FILES, PodTest, code_of


class AssetTest(PodTest):
    def test_fifo_kata_config_fails_at_once(self):
        pod = self.pod()
        fifo = os.path.join(pod.assets_dir, "fifo-config.toml")
        os.mkfifo(fifo)
        good = pod.assets["kata-config"]
        pod.prepare(NS, TMPL, "a1")
        pod.assets["kata-config"] = fifo
        t0 = time.time()
        code, msg = code_of(lambda: pod.run(NS, TMPL, "a1", timeout=20))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("is a FIFO, not a regular file", msg)
        self.assertLess(time.time() - t0, 10)
        # Not wedged: the next Run with a real configuration works.
        pod.assets["kata-config"] = good
        pod.run(NS, TMPL, "a1", timeout=60)
        self.assertEqual(pod.count(), 1)
        pod.checkpoint(NS, TMPL, "a1")


class BundleTest(PodTest):
    def bundle_config(self, pod, actor):
        return os.path.join(pod.actor_dir(NS, TMPL, actor), "bundles", "counter", "config.json")

    def test_invalid_json_config_names_the_file(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        cfg = self.bundle_config(pod, "a1")
        with open(cfg, "w") as f:
            f.write('{"process": ')
        code, msg = code_of(lambda: pod.run(NS, TMPL, "a1", unpack=False))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("bundles/counter/config.json", msg)
        self.assertIn("not valid JSON", msg)

    def test_deeply_nested_rootfs_is_a_precondition(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        rootfs = os.path.join(os.path.dirname(self.bundle_config(pod, "a1")), "rootfs")
        fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY)
        for _ in range(520):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.close(fd)
        code, msg = code_of(lambda: pod.run(NS, TMPL, "a1", unpack=False))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("nested deeper than 512 directories", msg)
        self.assertNotIn("symbolic links", msg)

    def test_fifo_config_json_says_fifo(self):
        pod = self.pod()
        pod.prepare(NS, TMPL, "a1")
        cfg = self.bundle_config(pod, "a1")
        os.unlink(cfg)
        os.mkfifo(cfg)
        code, msg = code_of(lambda: pod.run(NS, TMPL, "a1", unpack=False, timeout=20))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("config.json` is a FIFO, not a regular file", msg)


class SnapshotTest(PodTest):
    """restore-state comes from object storage: nothing in it may pick a
    host file or device, and a refused snapshot leaves the worker usable."""

    def snapshot(self, pod, actor="a1", **kw):
        pod.prepare(NS, TMPL, actor)
        pod.run(NS, TMPL, actor)
        self.assertEqual(pod.count(), 1)
        store = os.path.join(pod.server.tmp, "store-" + actor)
        files = pod.checkpoint(NS, TMPL, actor)
        pod.ship(NS, TMPL, actor, files, store)
        return store

    def variant(self, pod, store, name, edit=None, files=None):
        """A copy of store with config.json edited (edit(cfg) -> cfg) or
        files replaced (files(dir))."""
        dst = os.path.join(pod.server.tmp, "v-" + name)
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(dst)
        for f in os.listdir(store):  # links: memory-ranges is large and sparse
            if not (edit and f == "config.json"):
                os.link(os.path.join(store, f), os.path.join(dst, f))
        if edit:
            with open(os.path.join(store, "config.json")) as f:
                cfg = json.load(f)
            with open(os.path.join(dst, "config.json"), "w") as f:
                json.dump(edit(cfg) or cfg, f)
        if files:
            files(dst)
        return dst

    def vmm_starts(self, pod):
        return pod.server.log().count('"msg":"cloud-hypervisor ready"')

    def restore_refused(self, pod, store, needle, actor="a1"):
        before = self.vmm_starts(pod)
        pod.unship(store, NS, TMPL, actor)
        code, msg = code_of(lambda: pod.restore(NS, TMPL, actor, unpack=False, timeout=20))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn(needle, msg)
        # Refused before cloud-hypervisor started.
        self.assertEqual(self.vmm_starts(pod), before, msg)
        return msg

    def test_config_json_cannot_pick_host_files(self):
        pod = self.pod()
        store = self.snapshot(pod)

        def disk_path(path, i=1):
            def edit(cfg):
                cfg["disks"][i]["path"] = path
            return edit

        def add(key, value):
            def edit(cfg):
                cfg[key] = value
            return edit

        def sub(key, member, value):
            def edit(cfg):
                cfg.setdefault(key, {})[member] = value
            return edit

        def extra_disk(cfg):
            cfg["disks"].append({"path": "/etc/shadow", "readonly": False})

        other = pod.actor_dir(NS, TMPL, "a2") + "/actor-rootfs-x.ext4"
        cases = [
            ("shadow", disk_path("/etc/shadow"), "disks[1].path"),
            ("other-actor", disk_path(other), "disks[1].path"),
            ("extra", extra_disk, "disks has 3 entries"),
            ("console", add("console", {"mode": "File", "file": "/etc/cron.d/x"}), "console"),
            ("pmem", add("pmem", [{"file": "/etc/shadow", "size": 4096}]), "pmem"),
            ("vfio", add("devices", [{"path": "/sys/bus/pci/devices/0000:00:02.0"}]), "devices"),
            ("fs", add("fs", [{"tag": "x", "socket": "/run/containerd/containerd.sock",
                               "num_queues": 1, "queue_size": 1024}]), "fs"),
            ("vdpa", add("vdpa", [{"path": "/dev/vhost-vdpa-0", "num_queues": 1}]), "vdpa"),
            ("user", add("user_devices", [{"socket": "/run/containerd/containerd.sock"}]),
             "user_devices"),
            ("rng", sub("rng", "src", "/dev/vda"), "rng.src"),
            ("initramfs", sub("payload", "initramfs", "/etc/shadow"), "payload.initramfs"),
            ("firmware", sub("payload", "firmware", "/etc/shadow"), "payload.firmware"),
            ("serial", add("serial", {"mode": "Socket", "socket": "/tmp/x.sock"}), "serial."),
        ]
        for name, edit, needle in cases:
            with self.subTest(case=name):
                self.restore_refused(pod, self.variant(pod, store, name, edit=edit), needle)
        # The real snapshot still restores: nothing was left behind.
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", unpack=False)
        self.assertEqual(pod.count(), 2)
        pod.checkpoint(NS, TMPL, "a1")

    def test_restore_state_files_must_be_regular(self):
        pod = self.pod()
        store = self.snapshot(pod)

        def symlink_ranges(d):
            target = os.path.join(pod.server.tmp, "ranges-elsewhere")
            shutil.move(os.path.join(d, "memory-ranges"), target)
            os.symlink(target, os.path.join(d, "memory-ranges"))

        def fifo(name):
            def make(d):
                os.unlink(os.path.join(d, name))
                os.mkfifo(os.path.join(d, name))
            return make

        # cp in unship copies a symlink's target: put the link in place
        # after unshipping.
        for name, make, needle in [
                ("ranges-link", symlink_ranges, "memory-ranges` is a symbolic link"),
                ("ranges-fifo", fifo("memory-ranges"), "memory-ranges` is a FIFO"),
                ("state-fifo", fifo("state.json"), "state.json` is a FIFO"),
                ("config-fifo", fifo("config.json"), "config.json` is a FIFO"),
                ("base-id-fifo", fifo("base-id"), "base-id` is a FIFO")]:
            with self.subTest(case=name):
                pod.unship(store, NS, TMPL, "a1")
                make(os.path.join(pod.actor_dir(NS, TMPL, "a1"), "restore-state"))
                t0 = time.time()
                code, msg = code_of(lambda: pod.restore(NS, TMPL, "a1", unpack=False, timeout=20))
                self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
                self.assertIn(needle, msg)
                self.assertLess(time.time() - t0, 10)
        # The worker is not blocked: the real snapshot restores and the
        # actor can be saved again.
        pod.unship(store, NS, TMPL, "a1")
        pod.restore(NS, TMPL, "a1", unpack=False)
        self.assertEqual(pod.count(), 2)
        self.assertIn("memory-ranges", pod.checkpoint(NS, TMPL, "a1"))

    def test_fifo_kernel_asset_fails_at_once(self):
        pod = self.pod()
        fifo = os.path.join(pod.assets_dir, "vmlinux-fifo")
        os.mkfifo(fifo)
        good = pod.assets["kata-kernel"]
        pod.prepare(NS, TMPL, "a1")
        pod.assets["kata-kernel"] = fifo
        code, msg = code_of(lambda: pod.run(NS, TMPL, "a1", timeout=20))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, msg)
        self.assertIn("is a FIFO", msg)
        pod.assets["kata-kernel"] = good
        pod.run(NS, TMPL, "a1")
        pod.checkpoint(NS, TMPL, "a1")


class GoldenPoisonTest(PodTest):
    def test_shipped_golden_disk_only_serves_its_own_actor(self):
        # v2's real snapshot, with its golden disk shipped.
        a = self.pod(extra_args=["--ship-golden-disk"])
        a.prepare(NS, TMPL, "v2")
        a.run(NS, TMPL, "v2")
        self.assertEqual(a.count(), 1)
        files = a.checkpoint(NS, TMPL, "v2")
        self.assertIn("golden-rootfs.ext4", files)
        store = os.path.join(a.server.tmp, "store-v2")
        a.ship(NS, TMPL, "v2", files, store)
        # An attacker's snapshot for x1: base-id names lineage v2 and it
        # ships a planted golden disk.
        evil = os.path.join(a.server.tmp, "store-x1")
        os.makedirs(evil)
        for f in files:
            if f != "golden-rootfs.ext4":
                os.link(os.path.join(store, f), os.path.join(evil, f))
        planted = os.path.join(evil, "golden-rootfs.ext4")
        sh("cp", "--sparse=always", os.path.join(store, "golden-rootfs.ext4"), planted)
        with open(planted, "r+b") as f:
            f.seek(2 << 20)
            f.write(b"planted by another snapshot" * 100)
        b = self.pod()
        b.unship(evil, NS, TMPL, "x1")
        code, msg = code_of(lambda: b.restore(NS, TMPL, "x1", unpack=False, timeout=30))
        if code == grpc.StatusCode.OK:
            b.checkpoint(NS, TMPL, "x1")
        # v2's own restore on that node gets v2's disk, not the planted one.
        b.unship(store, NS, TMPL, "v2")
        b.restore(NS, TMPL, "v2", unpack=False)
        self.assertEqual(b.count(), 2)
        b.checkpoint(NS, TMPL, "v2")


class FullDiskTest(PodTest):
    def test_snapshot_cut_short_leaves_no_torn_file(self):
        pod = self.pod()
        actor = pod.actor_dir(NS, TMPL, "a1")
        os.makedirs(actor)
        sh("mount", "-t", "tmpfs", "-o", "size=96m", "ate-full", actor)
        try:
            pod.prepare(NS, TMPL, "a1")
            pod.run(NS, TMPL, "a1")
            self.assertEqual(pod.count(), 1)
            filler = os.path.join(actor, "filler")
            with open(filler, "wb") as f:
                try:
                    while True:
                        f.write(b"\xff" * (64 << 10))
                        f.flush()
                except OSError:
                    pass
            # Room for base-id and config.json, not for the memory.
            os.truncate(filler, os.path.getsize(filler) - (32 << 10))
            code, msg = code_of(lambda: pod.checkpoint(NS, TMPL, "a1"))
            self.assertNotEqual(code, grpc.StatusCode.OK, msg)
            self.assertIn("vm.snapshot", msg)
            cp = os.path.join(actor, "checkpoint-state")
            # No file under a final name, no half-written staging left.
            self.assertEqual(os.listdir(cp) if os.path.isdir(cp) else [], [])
            self.assertFalse(os.path.exists(cp + ".staging"))
            self.assertFalse(os.path.exists(os.path.join(actor, "checkpoint-state.complete")))
            # Space again: the retry completes.
            os.unlink(filler)
            self.assertEqual(pod.checkpoint(NS, TMPL, "a1"), SNAPSHOT_FILES)
        finally:
            sh("umount", "-l", actor, check=False)


if __name__ == "__main__":
    main()
