#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""shellcheck and yamllint on every deploy script and manifest, and the
--help / bad-option behaviour of every script."""
import glob
import os
import shutil
import subprocess
import unittest

from deploytest import SOURCE, skip_whole_test, main

SCRIPTS = ["hack/build-image.sh", "deploy/image/runtime-packages.sh"] + sorted(
    os.path.relpath(p, SOURCE) for p in glob.glob(os.path.join(SOURCE, "hack/kind/*.sh"))
    + glob.glob(os.path.join(SOURCE, "hack/microvm-assets/*.sh")))
EXECUTABLES = [s for s in SCRIPTS if os.access(os.path.join(SOURCE, s), os.X_OK)]
YAML_DIRS = ["deploy/kustomize", "deploy/demo"]

for tool in ("shellcheck", "yamllint"):
    if not shutil.which(tool):
        skip_whole_test("%s is not installed (hack/install-deps.sh installs it)" % tool)


class LintTest(unittest.TestCase):
    def test_executables_present(self):
        for s in ("hack/build-image.sh", "hack/kind/create-cluster.sh",
                  "hack/kind/run-microvm-demo.sh", "hack/kind/run-openshell-e2e.sh",
                  "hack/microvm-assets/assemble.sh", "hack/microvm-assets/stage-to-rustfs.sh",
                  "hack/microvm-assets/stage-to-gcs.sh"):
            self.assertIn(s, EXECUTABLES)

    def test_shellcheck(self):
        r = subprocess.run(["shellcheck", "-x", "--severity=style"] + SCRIPTS, cwd=SOURCE,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_yamllint(self):
        config = os.path.join(SOURCE, ".yamllint")
        args = ["-c", config] if os.path.exists(config) else []
        r = subprocess.run(["yamllint", "--strict"] + args + YAML_DIRS, cwd=SOURCE,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_help_and_bad_options(self):
        for s in EXECUTABLES:
            path = os.path.join(SOURCE, s)
            for flag in ("--help", "-h"):
                r = subprocess.run([path, flag], capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 0, s + r.stderr)
                self.assertIn("Usage:", r.stdout, s)
            r = subprocess.run([path, "--no-such-option"], capture_output=True, text=True,
                               timeout=30)
            self.assertNotEqual(r.returncode, 0, s)
            if s != "deploy/image/runtime-packages.sh":
                self.assertIn("--dry-run", subprocess.run(
                    [path, "--help"], capture_output=True, text=True).stdout, s)


if __name__ == "__main__":
    main()
