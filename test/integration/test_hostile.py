# SPDX-License-Identifier: Apache-2.0
"""Hostile input end to end (issue 15): assets, bundles and snapshots that
try to pick host files, block the server or confuse its errors.  Every case
ends in a clear status before anything runs, and the worker stays usable."""

import json
import os
import time

import grpc

from actorenv import Pod
from ateomtest import main
from test_actor import NS, TMPL, PERSONALITY, PodTest, code_of


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


if __name__ == "__main__":
    main()
