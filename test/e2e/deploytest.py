# SPDX-License-Identifier: Apache-2.0
"""Shared helpers of the deploy-script tests: run a script of the
repository with the stub CLIs on PATH, read back what the stubs saw."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get("ATE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ATE_BUILD_DIR", "")
STUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stubs", "stub.py")
STUB_TOOLS = ("kubectl", "kind", "docker", "podman", "buildah", "mmdebstrap", "curl", "gcloud",
              "aws", "go", "openssl", "kubectl-ate")
ZERO_DIGEST = "sha256:" + "0" * 64
STUB_DIGEST = "sha256:" + "ab" * 32
STUB_PUSHED_DIGEST = "sha256:" + "cd" * 32

# The pinned assets (docs/operations.md, "Pinned versions": kata 3.31,
# cloud-hypervisor v52.0): the values every
# manifest and script must carry, written here independently of them.
SPEC_PINS = {
    "amd64": {
        "cloud-hypervisor": "829af01ff075bb96c4f183905134c453a88d68cbabdc6b87df21098842581ee9",
        "kata-kernel": "a5f0af5fe536cd52c3ca214d15d81c577e5c5dc672947ab7980b91ddcb7c9d71",
        "kata-image": "ca9e06621b7edd2e056607c04db8bcebd92ad37ad4e37d18b8247d851feb0fae",
        "kata-config": "8cce580e5abf78c05c8e9b929c24a524b9a81fc47be4e2e4f38dcae5ef052be6",
    },
    "arm64": {
        "cloud-hypervisor": "bf004ddc1a148f47caa87ac49a783b8dbd6bf9bc27abe522ed197df7b982d3b1",
        "kata-kernel": "a44d663f4ddad20a35527a3578fadef9beb23c1e5cb720e85d6928d6de70d3a1",
        "kata-image": "7ebd652760c881374c0a761d34addcb76d9a650e35c10c01b780ebcdd9a1f2aa",
        "kata-config": "df504d9be0ed01765fdc8a9467955e1e671eb97724443f65a524bf914ccb818b",
    },
}
ASSET_FILES = {"cloud-hypervisor": "cloud-hypervisor", "kata-kernel": "vmlinux",
               "kata-image": "rootfs.img", "kata-config": "configuration-clh.toml"}


def skip_whole_test(message):
    """ctest's skip: exit 77 with a reason."""
    print("SKIP: " + message)
    sys.stdout.flush()
    os._exit(77)


def commands(stdout):
    """The '+ ' lines a script printed (its command trace)."""
    return [l[2:] for l in stdout.splitlines() if l.startswith("+ ")]


class ScriptTestCase(unittest.TestCase):
    """Each test gets a temp dir with stub CLIs, a stub log and state, a
    fixed work dir and a private cache/home."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ate-e2e-")
        self.bin = os.path.join(self.tmp, "bin")
        os.mkdir(self.bin)
        for tool in STUB_TOOLS:
            os.symlink(STUB, os.path.join(self.bin, tool))
        self.log = os.path.join(self.tmp, "stub.log")
        self.work = os.path.join(self.tmp, "work")
        self.artifacts = os.path.join(self.tmp, "artifacts")
        admission = os.path.join(BUILD, "bin", "ate-admission") if BUILD else ""
        self.env = dict(os.environ)
        self.env.update({
            "PATH": self.bin + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
            "STUB_LOG": self.log,
            "STUB_STATE": os.path.join(self.tmp, "stub.state"),
            "ATE_WORK_DIR": self.work,
            "ATE_ARTIFACTS_DIR": self.artifacts,
            "ATE_ADMISSION": admission if os.access(admission, os.X_OK) else "/nonexistent",
            "HOME": os.path.join(self.tmp, "home"),
            "XDG_CACHE_HOME": os.path.join(self.tmp, "cache"),
            "ATE_KVM_DEVICE": "/dev/null",  # a read/writable char device
        })
        for k in ("KIND_CLUSTER_NAME", "KUBECTL_CONTEXT", "ARCH", "OUT", "BUCKET", "CH_VER",
                  "CH_SHA256", "ATE_IMAGE", "SUBSTRATE_COMMIT", "SUBSTRATE_DIR", "KUBECTL_ATE",
                  "PROJECT_ID", "STUB_FAIL", "STUB_COUNT_RESET", "ATE_DRY_RUN"):
            self.env.pop(k, None)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_script(self, script, *args, env=None, check=None, timeout=120):
        e = dict(self.env)
        e.update(env or {})
        r = subprocess.run([os.path.join(SOURCE, script)] + list(args), cwd=self.tmp, env=e,
                           capture_output=True, text=True, timeout=timeout)
        if check is not None and (r.returncode == 0) != check:
            self.fail("%s %s exited %d\n--- stdout\n%s\n--- stderr\n%s"
                      % (script, " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def stub_calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(l) for l in f]

    def stub_lines(self):
        return [" ".join([c["tool"]] + c["args"]) for c in self.stub_calls()]

    def assertInOrder(self, lines, needles):
        """Each needle is a substring of some line, in this order."""
        i = 0
        for needle in needles:
            while i < len(lines) and needle not in lines[i]:
                i += 1
            if i == len(lines):
                self.fail("%r not found (in order) in:\n%s" % (needle, "\n".join(lines)))
            i += 1

    def make_substrate_checkout(self):
        """A git checkout standing in for agent-substrate/substrate: its
        installer is a stub; SUBSTRATE_COMMIT is set to its HEAD."""
        d = os.path.join(self.tmp, "substrate")
        os.makedirs(os.path.join(d, "hack"))
        inst = os.path.join(d, "hack", "install-ate-kind.sh")
        os.symlink(STUB, inst)
        git = ["git", "-C", d, "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run(["git", "init", "-q", d], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "stub"], check=True)
        head = subprocess.run(["git", "-C", d, "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        self.env["SUBSTRATE_COMMIT"] = head
        return d


def main():
    unittest.main(module="__main__", verbosity=2)
