#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""shellcheck and yamllint on every deploy script and manifest, and the
--help / bad-option behaviour of every script."""
import glob
import os
import re
import shutil
import subprocess
import unittest

from deploytest import SOURCE, skip_whole_test, main

SCRIPTS = ["hack/build-image.sh", "hack/image-demo.sh", "deploy/image/runtime-packages.sh"] + sorted(
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
        # hack/demo.sh too: hack/image-demo.sh drives it (it has no dry run:
        # it touches no cluster).
        r = subprocess.run(["shellcheck", "-x", "--severity=style"] + SCRIPTS + ["hack/demo.sh"],
                           cwd=SOURCE,
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


class WorkerImageDependenciesTest(unittest.TestCase):
    """The worker image's build stage must install the -dev package of every
    pkg-config module the CMake build requires (else the image build breaks
    the day someone adds a library)."""

    def build_stage_packages(self):
        with open(os.path.join(SOURCE, "deploy/image/Dockerfile")) as f:
            text = f.read()
        build = text.split("\nFROM ", 2)[1]  # the first (build) stage
        install = re.search(r"apt-get install -y --no-install-recommends(.*?)&&", build, re.S)
        return set(install.group(1).replace("\\", " ").split())

    def required_modules(self):
        mods = set()
        for root, dirs, files in os.walk(SOURCE):
            dirs[:] = [d for d in dirs if not d.startswith(("build", ".git"))]
            if "CMakeLists.txt" in files:
                with open(os.path.join(root, "CMakeLists.txt")) as f:
                    for m in re.finditer(r"pkg_check_modules\(\w+\s+REQUIRED\s+IMPORTED_TARGET"
                                         r"([^)]*)\)", f.read()):
                        mods.update(m.group(1).split())
        return mods

    def dockerfile(self):
        with open(os.path.join(SOURCE, "deploy/image/Dockerfile")) as f:
            return f.read()

    def test_commit_reaches_the_binary(self):
        """The build context has no .git: the commit must reach cmake as a
        build argument, and the image build must check that --version names
        it (a label alone left `commit=unknown` in the binary)."""
        text = self.dockerfile()
        build, runtime = text.split("\nFROM ", 2)[1:]
        self.assertIn("ARG ATE_GIT_COMMIT", build)
        self.assertRegex(build, r'cmake -S \. -B /build [^\n]*"-DATE_GIT_COMMIT=\$\{ATE_GIT_COMMIT\}"')
        self.assertIn("ARG ATE_GIT_COMMIT", runtime)
        self.assertIn('grep -q " commit=${ATE_GIT_COMMIT} "', runtime)

    def test_every_tool_is_checked(self):
        """`command -v a b` under dash succeeds when only one is found:
        each tool the server runs is checked on its own."""
        text = self.dockerfile()
        self.assertNotRegex(text, r"command -v [^\s|;]+ [^\s|;]+")
        self.assertIn('for t in mkfs.ext4 debugfs; do command -v "$t" || exit 1; done', text)

    def test_base_images_are_not_floating(self):
        """Base images name a Debian point release (or a digest), not a
        moving suite tag."""
        bases = re.findall(r"^ARG (BUILD_IMAGE|RUNTIME_IMAGE)=(\S+)$", self.dockerfile(), re.M)
        self.assertEqual([b[0] for b in bases], ["BUILD_IMAGE", "RUNTIME_IMAGE"])
        for _, ref in bases:
            self.assertRegex(ref, r"^debian(:12\.\d+(-slim)?|@sha256:[0-9a-f]{64})$")

    def test_build_stage_covers_pkg_config_modules(self):
        if not shutil.which("pkg-config") or not shutil.which("dpkg"):
            self.skipTest("needs pkg-config and dpkg")
        have = self.build_stage_packages()
        self.assertIn("cmake", have)
        for mod in sorted(self.required_modules()):
            pcdir = subprocess.run(["pkg-config", "--variable=pcfiledir", mod],
                                   capture_output=True, text=True).stdout.strip()
            self.assertTrue(pcdir, "pkg-config does not know %s here" % mod)
            owner = subprocess.run(["dpkg", "-S", os.path.join(pcdir, mod + ".pc")],
                                   capture_output=True, text=True).stdout.split(":")[0]
            self.assertIn(owner, have, "%s (%s) is missing from deploy/image/Dockerfile's "
                          "build stage" % (owner, mod))


if __name__ == "__main__":
    main()
